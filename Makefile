GO ?= go
PKGS := ./...

.PHONY: build test unittest vmtest lint bench fuzz tidy-check

build:
	$(GO) build -o bin/cgmon ./cmd/cgmon

# The one gate: race-enabled tests on this host, then the real-kernel VM suite.
test: unittest vmtest

unittest:
	$(GO) test -race -count=1 $(PKGS)

vmtest:
	$(GO) run ./internal/vmtest/cmd/vmtest $(VMTEST_FLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) build $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 $(PKGS)

tidy-check:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum
