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
# Debian packages the tests need: qemu-io (independent journal producer),
# the kernel VM (qemu-system-x86, busybox-static, dmsetup), ext4 tools.
DEBS      := qemu-utils qemu-system-x86 busybox-static e2fsprogs dmsetup

.PHONY: all build deps test test-unit test-race vet lint bench fuzz demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/logship ./cmd/logship

# deps installs what the tests need on a fresh Debian machine. It is quiet
# and quick when everything is there already.
deps:
	@missing=""; for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to apt-get install$$missing" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(GO) mod download

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi

test: deps vet build
	$(GO) test -count=1 -timeout 40m ./...
	$(GO) test -count=1 -race -timeout 20m ./barrier/... ./replay/... ./parallel/...

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
