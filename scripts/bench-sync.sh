#!/usr/bin/env bash
# Measures differential sync against a full sync and against rsync, in one run,
# on one pair of images: OLD (SIZE of random bytes) and NEW (OLD with PCT per
# cent of its 4 KiB blocks overwritten at random places).
#
#   1. full sync of OLD to two tasks (1 and 4 streams): the baseline
#   2. diff sync of NEW onto each (1 and 4 streams)
#   3. verify NEW against one of them (equal images: what the digests cost)
#   4. rsync --inplace --no-whole-file NEW onto a copy of OLD (local, delta
#      algorithm forced; --stats gives the bytes it sent)
#
# Every step starts with cold page caches. Prints one line per step: wall
# time, bytes on the wire, and for the diff syncs the ratio of wire bytes to
# changed bytes.
# Usage: scripts/bench-sync.sh [SIZE_MIB] [PCT] [DIR]   (defaults: 1024, 1, /var/tmp)
# Needs rsync (installed with apt-get when missing, as root).
set -euo pipefail
mib=${1:-1024}
pct=${2:-1}
dir=$(mktemp -d "${3:-/var/tmp}/logship-sync.XXXXXX")
cd "$(dirname "$0")/.."
command -v rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
make -s build
bin=$PWD/bin/logship
srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

blocks=$((mib * 256))
changed=$((blocks * pct / 100))
head -c "$((mib * 1048576))" /dev/urandom > "$dir/old"
cp "$dir/old" "$dir/new"
# Distinct random 4 KiB blocks, each overwritten with random bytes.
for b in $(shuf -i 0-$((blocks - 1)) -n "$changed"); do
  dd if=/dev/urandom of="$dir/new" bs=4096 seek="$b" count=1 conv=notrunc status=none
done
changed_bytes=$((changed * 4096))
echo "images: $mib MiB, $changed blocks of 4 KiB changed ($changed_bytes bytes, $pct%)"

port=$((20000 + RANDOM % 20000))
"$bin" serve --listen "127.0.0.1:$port" --dir "$dir/srv" --insecure --log-level warn &
srv=$!
for _ in $(seq 50); do "$bin" status --to "127.0.0.1:$port" --insecure >/dev/null 2>&1 && break; sleep 0.1; done
# Every step starts with cold caches (both sides' files are on this disk).
cold() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

field() { sed -n "s/.*\"$1\":\([0-9.e+]*\).*/\1/p"; }
report() { # name json
  local secs wire
  secs=$(echo "$2" | field seconds)
  wire=$(echo "$2" | field wire_bytes)
  if [ -n "${3:-}" ]; then
    awk -v n="$1" -v s="$secs" -v w="$wire" -v c="$changed_bytes" -v d="$((mib * 1048576))" \
      'BEGIN { printf "%-22s %7.2fs  %13d B on the wire  wire/changed %.3f  (limit 1.1*changed+0.1%% of device: %.3f)\n", n, s, w, w/c, (1.1*c + d/1000)/c }'
  else
    printf "%-22s %7.2fs  %13d B on the wire\n" "$1" "$secs" "$wire"
  fi
}

for s in 1 4; do
  cold
  out=$("$bin" sync "$dir/old" --to "127.0.0.1:$port" --insecure --task "s$s" --mode full --streams "$s" --json -q)
  report "sync full, $s stream(s)" "$out"
done
for s in 1 4; do
  cold
  out=$("$bin" sync "$dir/new" --to "127.0.0.1:$port" --insecure --task "s$s" --mode diff --streams "$s" --json -q)
  report "sync diff, $s stream(s)" "$out" ratio
done
cold
t0=$(date +%s.%N)
out=$("$bin" verify "$dir/new" --to "127.0.0.1:$port" --insecure --task s4 --json | tail -1)
t1=$(date +%s.%N)
echo "$out" | grep -q '"equal":true' || { echo "verify: images differ: $out" >&2; exit 1; }
echo "verify (equal)         $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s  $(echo "$out" | field wire_bytes) B on the wire"

cp "$dir/old" "$dir/dst"
cold
t0=$(date +%s.%N)
sent=$(rsync --inplace --no-whole-file --stats "$dir/new" "$dir/dst" | sed -n 's/^Total bytes sent: \([0-9,]*\).*/\1/p' | tr -d ,)
t1=$(date +%s.%N)
cmp -s "$dir/new" "$dir/dst" || { echo "rsync: copy differs" >&2; exit 1; }
echo "rsync --inplace --no-whole-file $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s  $sent B sent"
