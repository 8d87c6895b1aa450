#!/usr/bin/env bash
# Measures `logship replay` of a synthetic journal onto a file against
# `dd oflag=direct` of the same number of bytes to the same disk, in one run.
# Usage: scripts/bench-replay.sh [SIZE] [DIR] [mkjournal flags]
#   (defaults: 1GiB, /var/tmp; e.g. --sequential for a dd-like workload)
set -euo pipefail
size=${1:-1GiB}
dir=$(mktemp -d "${2:-/var/tmp}/logship-bench.XXXXXX")
shift 2 || shift $#
trap 'rm -rf "$dir"' EXIT
cd "$(dirname "$0")/.."
make -s build
go run ./fixtures/mkjournal -o "$dir/j.log" --size "$size" --device 2GiB "$@"
cat "$dir/j.log" > /dev/null # journal in page cache: we measure writing, as dd does
payload=$(./bin/logship inspect "$dir/j.log" | awk '/writes \(/{print}' )
echo "journal: $(du -h --apparent-size "$dir/j.log" | cut -f1); $payload"
bytes=$(stat -c %s "$dir/j.log")
mb=$((bytes / 1048576))
now() { date +%s.%N; }
ratio() { # name replay-start replay-end dd-start dd-end
  awk -v n="$1" -v t0="$2" -v t1="$3" -v t2="$4" -v t3="$5" -v mb="$mb" -v round="$round" \
    'BEGIN { r = t1 - t0; d = t3 - t2; printf "round %d, %s: replay %.2fs (%.0f MiB/s of journal), dd %.2fs (%.0f MiB/s): replay/dd = %.2f\n", round, n, r, mb/r, d, mb/d, d/r }'
}
# Two comparisons. "sparse": replay onto a fresh sparse file against dd
# into a fresh file: replay's writes land at the journal's offsets, so the
# file system allocates blocks all over the file while dd appends. "written":
# both onto a file whose blocks are all allocated already (dd conv=notrunc
# over the same file), which leaves the write path alone.
for round in 1 2 3; do
  truncate -s 2G "$dir/target"; sync
  t0=$(now); ./bin/logship replay -q "$dir/j.log" "$dir/target"; t1=$(now)
  rm -f "$dir/target"; sync
  t2=$(now); dd if="$dir/j.log" of="$dir/dd.out" bs=1M count=$mb oflag=direct status=none; t3=$(now)
  rm -f "$dir/dd.out"; sync
  ratio "sparse target, dd oflag=direct" "$t0" "$t1" "$t2" "$t3"

  dd if=/dev/zero of="$dir/target" bs=1M count=2048 status=none; sync
  t0=$(now); ./bin/logship replay -q --direct "$dir/j.log" "$dir/target"; t1=$(now)
  sync
  t2=$(now); dd if="$dir/j.log" of="$dir/target" bs=1M count=$mb oflag=direct conv=notrunc status=none; t3=$(now)
  rm -f "$dir/target"; sync
  ratio "written target, replay --direct, dd oflag=direct conv=notrunc" "$t0" "$t1" "$t2" "$t3"
done
