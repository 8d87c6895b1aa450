# logship: build, test, benchmark, fuzz.
#
#   make test    what CI runs (.ci/run): installs Debian packages it needs,
#                vets, runs every test tier (unit, integration as root,
#                kernel VM), the race detector on the concurrent packages,
#                and the fuzz seeds.
#   make bench   Go benchmarks in benchstat format (bench.txt).
#   make fuzz    each fuzz target for FUZZTIME.

GO        ?= go
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
COUNT     ?= 6

.PHONY: all build deps test test-unit test-race vet lint bench fuzz demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/logship ./cmd/logship

# deps installs what the tests need on a fresh Debian machine (as root):
# qemu-utils (qemu-io, the independent journal producer), qemu-system-x86,
# busybox-static, dmsetup, e2fsprogs and xz-utils (the kernel VM), then the
# Go modules. It is quiet and quick when everything is there already.
deps:
	sh scripts/vm-deps.sh
	$(GO) mod download

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi

test: deps vet build
	$(GO) test -count=1 -timeout 40m ./...
	$(GO) test -count=1 -race -timeout 20m ./barrier/... ./replay/... ./parallel/... ./replica/... ./source/... ./bench/...

test-unit:
	$(GO) test -short ./...

lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

bench: build
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(COUNT) ./... | tee bench.txt

fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

demo: build
	./bin/logship demo

clean:
	rm -rf bin bench.txt
