GO ?= go
PKGS := ./...

.PHONY: build test unittest pyclient-test vmtest fleettest lint bench bench-cli fuzz fuzz-smoke soak soak-vm tidy-check

build:
	$(GO) build -o bin/cgmon ./cmd/cgmon

# The one gate: race-enabled tests on this host (the short soak among them),
# every fuzzer for a few seconds, then the real-kernel VM suite, then the
# Slurm example on a real Slurm.
test: unittest pyclient-test fuzz-smoke vmtest fleettest

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

# Every fuzzer of FUZZ_PKGS for FUZZTIME each. go test fuzzes one target
# at a time, so each package's instrumented test binary is built once and
# run per target from the package's directory, with go test's own cache of
# interesting inputs. A failing input is written under the package's
# testdata/fuzz/NAME/, where it stays a test case: commit it with the fix.
FUZZTIME ?= 30s
FUZZ_PKGS := ./cgroupmon ./internal/proctree ./cmd/cgmon/internal/cli
fuzz:
	@dir=$$(mktemp -d /tmp/cgmon-fuzz.XXXXXX) && trap 'rm -rf $$dir' EXIT && \
	cache=$$($(GO) env GOCACHE)/fuzz && \
	for p in $(FUZZ_PKGS); do \
		ip=$$($(GO) list $$p) && bin=$$dir/$$(basename $$ip).test && \
		$(GO) test -c -fuzz=. -o $$bin $$p || exit 1; \
		for f in $$(cd $$p && $$bin -test.list '^Fuzz'); do \
			echo "fuzz: $$p $$f for $(FUZZTIME)"; \
			(cd $$p && $$bin -test.run '^$$' -test.fuzz "^$$f\$$" -test.fuzztime $(FUZZTIME) \
				-test.fuzzcachedir $$cache/$$ip) > $$dir/log 2>&1 || { cat $$dir/log; exit 1; }; \
			grep '^fuzz: elapsed: .*execs' $$dir/log | tail -n 1 || true; \
		done; \
	done

# What make test runs: each fuzzer for a few seconds.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=3s

# The soak of issue 11 (RELIABILITY.md): a fresh cgmon, then every
# scenario of internal/soak here; soak-vm runs the Monitor's part in the
# v2-6.1 guest (OOMs, fork bombs at pids.max), under the shared VM lock.
SOAK_BIN ?= /tmp/cgmon-soak
SOAK_FLAGS ?=
soak:
	mkdir -p $(SOAK_BIN)
	$(GO) build -o $(SOAK_BIN)/cgmon ./cmd/cgmon
	$(GO) build -o $(SOAK_BIN)/soak ./internal/soak/cmd/soak
	$(SOAK_BIN)/soak -cgmon $(SOAK_BIN)/cgmon $(SOAK_FLAGS)

soak-vm:
	flock /tmp/cgmon-vm.lock $(GO) run ./internal/vmtest/cmd/vmtest -scenario v2-6.1 \
		-pkgs ./internal/soak -run TestVMSoak -test-timeout 90m -timeout 100m $(VMTEST_FLAGS)

tidy-check:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum
