GO ?= go
PKGS := ./...

.PHONY: build test unittest pyclient-test vmtest fleettest lint bench bench-cli fuzz tidy-check

build:
	$(GO) build -o bin/cgmon ./cmd/cgmon

# The one gate: race-enabled tests on this host, then the real-kernel VM suite,
# then the Slurm example on a real Slurm.
test: unittest pyclient-test vmtest fleettest

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

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) build $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 $(PKGS)

# cgmon run -- /bin/true against /usr/bin/time /bin/true, side by side, with
# the start-up floors of package startfloor (needs hyperfine).
BENCH_BIN ?= /tmp/cgmon-bench
bench-cli:
	mkdir -p $(BENCH_BIN)
	$(GO) build -o $(BENCH_BIN)/cgmon ./cmd/cgmon
	for p in mini containerd alldeps; do $(GO) build -o $(BENCH_BIN)/$$p ./internal/startfloor/$$p || exit 1; done
	hyperfine -N --warmup 30 --runs 500 --export-json $(BENCH_BIN)/cli.json \
		'$(BENCH_BIN)/cgmon run -o /dev/null -- /bin/true' '/usr/bin/time -o /dev/null /bin/true' \
		'$(BENCH_BIN)/mini' '$(BENCH_BIN)/containerd' '$(BENCH_BIN)/alldeps'
	$(GO) run ./internal/startfloor/medians $(BENCH_BIN)/cli.json /usr/bin/time

tidy-check:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum
