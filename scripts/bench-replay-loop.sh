#!/usr/bin/env bash
# Replays one journal of large writes (1 MiB sequential writes, a FLUSH at
# the end) onto a fresh sparse file three ways, in one run, rounds
# interleaved: `logship replay`, a plain sequential loop that reads each
# entry's payload and pwrites it at its offset (scripts/pwrite-loop: one
# pread and one pwrite a MiB, the least a replayer can do), and `dd bs=1M` of as many
# bytes; each ends with an fdatasync. Prints seconds and the ratios
# replay/loop and replay/dd in throughput (above 1: replay is faster).
# Usage: scripts/bench-replay-loop.sh [SIZE] [DIR] [ROUNDS]
#   (defaults: 320MiB, /var/tmp, 5 rounds). LOGSHIP=path uses another binary;
#   BEFORE=path also replays with that one (say, built from main) first in
#   each round, for a before/after in the same run.
set -euo pipefail
size=${1:-320MiB}
dir=$(mktemp -d "${2:-/var/tmp}/logship-bench.XXXXXX")
rounds=${3:-5}
trap 'rm -rf "$dir"' EXIT
cd "$(dirname "$0")/.."
if [[ -z ${LOGSHIP:-} ]]; then
  CGO_ENABLED=0 go build -o "$dir/logship" ./cmd/logship # static, as make builds it
  LOGSHIP=$dir/logship
fi
go run ./fixtures/mkjournal -o "$dir/j.log" --sequential --size "$size" --device "$size"
bytes=$(stat -c %s "$dir/j.log")
mb=$((bytes / 1048576))
cat "$dir/j.log" > /dev/null # in the page cache: we measure writing
go build -o "$dir/pwrite-loop" ./scripts/pwrite-loop
now() { date +%s.%N; }
fresh() { rm -f "$dir/target"; truncate -s "$bytes" "$dir/target"; sync; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
for round in $(seq "$rounds"); do
  if [[ -n ${BEFORE:-} ]]; then
    fresh; t0=$(now); "$BEFORE" replay -q "$dir/j.log" "$dir/target"; b=$(el "$t0" "$(now)")
  fi
  fresh; t0=$(now); "$LOGSHIP" replay -q "$dir/j.log" "$dir/target"; r=$(el "$t0" "$(now)")
  fresh; t0=$(now); "$dir/pwrite-loop" "$dir/j.log" "$dir/target"; l=$(el "$t0" "$(now)")
  fresh; t0=$(now); dd if="$dir/j.log" of="$dir/target" bs=1M count="$mb" conv=notrunc,fdatasync status=none; d=$(el "$t0" "$(now)")
  awk -v n="$round" -v r="$r" -v l="$l" -v d="$d" -v mb="$mb" 'BEGIN {
    printf "round %d: replay %.2fs (%.0f MiB/s), pwrite loop %.2fs (%.0f MiB/s), dd %.2fs (%.0f MiB/s): replay/loop %.2f, replay/dd %.2f\n",
      n, r, mb/r, l, mb/l, d, mb/d, l/r, d/r }'
  if [[ -n ${BEFORE:-} ]]; then
    awk -v b="$b" -v l="$l" -v mb="$mb" 'BEGIN { printf "  before: replay %.2fs (%.0f MiB/s): replay/loop %.2f\n", b, mb/b, l/b }'
  fi
done
