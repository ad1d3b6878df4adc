GO ?= go
PKGS := ./...

.PHONY: build test unittest pyclient-test vmtest fleettest lint bench bench-cli bench-summary fuzz fuzz-smoke soak soak-vm tidy-check dist dist-check

build:
	$(GO) build -o bin/cgmon ./cmd/cgmon

# The one gate, in this order (also under make -j): the lint, race-enabled
# tests on this host (the short soak among them), the Python client's tests,
# every fuzzer for a few seconds, the real-kernel VM suite, then the Slurm
# example on a real Slurm.
test:
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory unittest
	@$(MAKE) --no-print-directory pyclient-test
	@$(MAKE) --no-print-directory fuzz-smoke
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
	@$(MAKE) --no-print-directory fuzz FUZZTIME=1s

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

# cgmon summary of a million synthetic results in three files (1% of them
# written twice, as resumed shards do): wall time and peak RSS.
bench-summary:
	mkdir -p $(BENCH_BIN)/results
	$(GO) build -o $(BENCH_BIN)/cgmon ./cmd/cgmon
	$(GO) run ./cmd/cgmon/internal/resultgen -n 1000000 -files 3 -dir $(BENCH_BIN)/results
	for i in 1 2 3 4 5; do /usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KiB peak RSS' \
		$(BENCH_BIN)/cgmon summary $(BENCH_BIN)/results/shard-0.ndjson $(BENCH_BIN)/results/shard-1.ndjson $(BENCH_BIN)/results/shard-2.ndjson >/dev/null || exit 1; done

# Release binaries: static (no cgo), without the build machine's paths
# (-trimpath), for each platform, and their SHA256SUMS. The version is what
# Go stamps from git (a tag, else a pseudo-version of the commit, and the
# commit, +dirty with uncommitted changes): `go version -m` and
# `cgmon version` show it. The go command stamps only in a checkout whose
# .git is a directory (a clone, not a linked worktree); dist says so when
# it could not. The same commit built with the same Go release gives the
# same bytes: the environment that could change them is fixed here.
DIST ?= dist
DIST_PLATFORMS := linux/amd64 linux/arm64
dist:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	for p in $(DIST_PLATFORMS); do \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} GOAMD64=v1 GOARM64=v8.0 GOEXPERIMENT= GOFLAGS= \
			$(GO) build -trimpath -buildvcs=true -ldflags='-s -w' -o $(DIST)/cgmon-$${p%/*}-$${p#*/} ./cmd/cgmon || exit 1; \
	done
	cd $(DIST) && sha256sum cgmon-* > SHA256SUMS
	@$(GO) version -m $(DIST)/cgmon-linux-amd64 | grep -q vcs.revision || \
		echo "dist: WARNING: no commit stamped (build from a git clone, not a linked worktree or an export)"
	@$(GO) version -m $(DIST)/cgmon-linux-amd64 | sed -n 's/^[[:space:]]*mod[[:space:]]*github.com\/cgmon\/cgmon[[:space:]]*\([^[:space:]]*\).*/dist: version \1/p'
	cat $(DIST)/SHA256SUMS

# make dist twice, each with an empty build cache, and compare the sums.
dist-check:
	rm -rf $(BENCH_BIN)/dist-a $(BENCH_BIN)/dist-b $(BENCH_BIN)/gocache-a $(BENCH_BIN)/gocache-b
	GOCACHE=$(BENCH_BIN)/gocache-a $(MAKE) --no-print-directory dist DIST=$(BENCH_BIN)/dist-a
	GOCACHE=$(BENCH_BIN)/gocache-b $(MAKE) --no-print-directory dist DIST=$(BENCH_BIN)/dist-b
	diff $(BENCH_BIN)/dist-a/SHA256SUMS $(BENCH_BIN)/dist-b/SHA256SUMS && echo "dist-check: identical"
