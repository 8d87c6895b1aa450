# logship: build, test, benchmark, fuzz.
#
#   make check   the quick tier, for every change: vet, gofmt, staticcheck,
#                go mod tidy -diff, go test -short. Needs neither root nor
#                qemu nor any Debian tool: tests that need them skip under
#                -short (fixtures/prereq).
#   make test    what CI runs (.ci/run), as root: installs the Debian
#                packages it needs, vets, runs every test tier (unit,
#                integration on loop devices, kernel VM) and the fuzz seeds,
#                then the race detector on the concurrent packages. A missing
#                prerequisite fails a test, never skips it. A line is printed
#                as each package finishes (scripts/testprogress).
#   make bench   Go benchmarks in benchstat format (bench.txt).
#   make fuzz    each fuzz target for FUZZTIME.

GO        ?= go
# staticcheck, pinned so that a lint run is the same everywhere (v0.8.2 is
# the 2026 release that knows Go 1.26).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c
FUZZTIME  ?= 60s
# FUZZMINIMIZE bounds the minimization of each new input. A journal of
# 4096-byte sectors is tens of KiB even with a few entries, and with the
# default of 60 s FuzzReader spent its run minimizing one input (its
# progress showed 20 executions and no new input in 15 s; with 1 s, 23,000
# executions and 12 new inputs). A crasher is reported either way,
# minimized less.
FUZZMINIMIZE ?= 1s
BENCHTIME ?= 1s
COUNT     ?= 6

.PHONY: all build deps check test test-unit vet lint tidy bench fuzz demo clean

all: build

# VERSION and REVISION end up in 'logship --version' (without them the
# binary reports the module version and VCS revision of the build info).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)

build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION) -X main.revision=$(REVISION)" -o bin/logship ./cmd/logship

# deps installs what the tests need on a fresh Debian machine (as root):
# qemu-utils (qemu-io, the independent journal producer), qemu-system-x86,
# busybox-static, dmsetup, e2fsprogs, iproute2 and xz-utils (the kernel VM), then the
# Go modules. It is quiet and quick when everything is there already.
deps:
	sh scripts/vm-deps.sh
	$(GO) mod download

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi

# tidy fails when go.mod or go.sum are not what `go mod tidy` makes them.
tidy:
	$(GO) mod tidy -diff

lint:
	$(GO) run $(STATICCHECK) ./...

check: vet lint tidy test-unit

# -parallel 4: the quick tier's tests mostly wait on child processes,
# sockets and fsync, so twice GOMAXPROCS of them at once keep 2 cores busy
# (cmd/logship: 66 s against 99 s with the default of 2, at load 5 to 9).
test-unit:
	$(GO) test -short -count=1 -parallel 4 ./...

test: deps vet tidy build
	$(GO) test -json -count=1 -timeout 40m ./... | $(GO) run ./scripts/testprogress
	$(GO) test -json -count=1 -race -timeout 20m ./barrier/... ./replay/... ./parallel/... ./replica/... ./source/... ./bench/... | $(GO) run ./scripts/testprogress

# bench: every Go benchmark (BENCH selects them) COUNT times, then
# `logship bench`: BENCHSIZE of sequential writes shipped over 1 to 16
# streams on loopback and on the WAN model of docs/bench.md, BENCHREPEAT
# runs each; everything in bench.txt, in the format benchstat compares
# (benchstat old.txt bench.txt).
BENCH       ?= .
BENCHSIZE   ?= 256MiB
BENCHREPEAT ?= 3
BENCHLINKS  ?= --link loopback --link wan:rtt=40ms,flow=50Mbit,link=1Gbit
# The kernel's own TCP in the Debian kernel VM (docs/bench.md, "The kernel's
# TCP against the model"), beside the WAN model of the same paths: 24 MiB
# of sequential writes, 1 to 16 streams, 40 ms, 0.1% and 1% loss, a rate the
# emulated guest can carry. VMLINKS= skips it; about 15 minutes.
VMSIZE      ?= 24MiB
VMLINKS     ?= --link vm:rtt=40ms,loss=0.1%,rate=10Mbit --link vm:rtt=40ms,loss=1%,rate=10Mbit \
               --link wan:rtt=40ms,link=10Mbit,loss=0.001 --link wan:rtt=40ms,link=10Mbit,loss=0.01

bench: build
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem -benchtime=$(BENCHTIME) -count=$(COUNT) ./... | tee bench.txt
	./bin/logship bench --workload seq --size $(BENCHSIZE) --streams 1,2,4,8,16 $(BENCHLINKS) --repeat $(BENCHREPEAT) --gobench | tee -a bench.txt
	if [ -n "$(strip $(VMLINKS))" ]; then ./bin/logship bench --workload seq --size $(VMSIZE) --streams 1,2,4,8,16 $(VMLINKS) --gobench | tee -a bench.txt; fi

# faults: the fault-injection campaign of `logship bench faults` (root: the
# disk-full fault fills an ext4 loop device): RUNS runs from SEED, two at a
# time, shipping synthetic and kernel-captured journals, and crashtest
# --explore on the kernel journals. `make test` runs a short one.
RUNS ?= 500
SEED ?= 1
KERNEL_JOURNALS = journal/testdata/kernel/fsync-marks-512.log.zst journal/testdata/kernel/fsync-marks-4096.log.zst

.PHONY: faults
faults: build
	./bin/logship bench faults --runs $(RUNS) --seed $(SEED) --jobs 2 $(addprefix --journal ,$(KERNEL_JOURNALS)) --explore 32

fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) $$pkg || exit 1; \
		done; \
	done

demo: build
	./bin/logship demo

clean:
	rm -rf bin bench.txt
