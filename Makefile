GO ?= go
PKGS := ./...

.PHONY: build test unittest pyclient-test vmtest fleettest lint bench bench-cli fuzz tidy-check

build:
	$(GO) build -o bin/cgmon ./cmd/cgmon

# The one gate, in this order (also under make -j): the lint, race-enabled
# tests on this host, the Python client's tests, the real-kernel VM suite,
# then the Slurm example on a real Slurm.
test:
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory unittest
	@$(MAKE) --no-print-directory pyclient-test
	@$(MAKE) --no-print-directory vmtest
	@$(MAKE) --no-print-directory fleettest

unittest:
	$(GO) test -race -count=1 $(PKGS)

# The Python client's tests (stdlib unittest) against a fresh build.
pyclient-test: build
	CGMON_BIN=$(CURDIR)/bin/cgmon python3 -m unittest discover -s clients/python -p 'test_*.py'

vmtest:
	$(GO) run ./internal/vmtest/cmd/vmtest $(VMTEST_FLAGS)

# The Slurm example as a job array on a real one-node Slurm (internal/fleettest);
# needs root and Debian's slurmctld slurmd slurm-client munge (.ci/run installs them).
fleettest:
	$(GO) run ./internal/fleettest/cmd/fleettest $(FLEETTEST_FLAGS)

# staticcheck is pinned here and fetched through the module proxy; go.mod
# does not list it.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	GOOS=darwin $(GO) build $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 $(PKGS)

# The CLI's start-up against the floor of what it links, and a long-lived
# batch against a bare shell loop, each the median ratio of five side-by-side
# hyperfine runs (needs hyperfine; see BENCHMARKS.md).
BENCH_BIN ?= /tmp/cgmon-bench
bench-cli:
	GO=$(GO) BENCH_BIN=$(BENCH_BIN) ./internal/startfloor/bench-cli.sh

tidy-check:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum
