#!/usr/bin/env bash
# Ships one journal of large writes over loopback to a local `logship serve`
# with 1, 4 and 8 streams, and replays it onto a sparse file of the same
# disk, in one run, rounds interleaved; prints each run's seconds, MiB/s and
# peak RSS, and the ratios ship/replay: each ship run has a replay run just
# before it, and its ratio is against that one (the machine may be shared);
# the summary gives the median of each combination's ratios over the rounds. Times are wall clock from the start
# of the process to its exit, as a user sees them (ship: every window
# acked, so durable in the server's staging log).
# Usage: scripts/bench-ship.sh [SIZE] [DIR] [ROUNDS] [-- ship flags]
#   (defaults: 320MiB of 1 MiB writes, /var/tmp, 3 rounds)
# SERVE_VARIANTS: serve flag sets to compare, separated by ';' (default
# "--write-through 0;--write-through 4MiB": group commit, then large windows
# written through). STREAMS: the stream counts (default "1 4 8").
# LOGSHIP=path uses another binary (e.g. an older build, for before/after).
# TLS=1 adds runs with TLS beside the insecure ones (certificates made with
# openssl in the scratch directory).
set -euo pipefail
size=${1:-320MiB}
dir=$(mktemp -d "${2:-/var/tmp}/logship-bench.XXXXXX")
rounds=${3:-3}
shift 3 || shift $#
[[ ${1:-} == -- ]] && shift
extra=("$@")
cd "$(dirname "$0")/.."
if [[ -z ${LOGSHIP:-} ]]; then
  go build -o "$dir/logship" ./cmd/logship
  LOGSHIP=$dir/logship
fi
serve_pid=
cleanup() {
  if [[ -n $serve_pid ]]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
go run ./fixtures/mkjournal -o "$dir/j.log" --sequential --size "$size" --device "$size"
mb=$(( $(stat -c %s "$dir/j.log") / 1048576 ))
devsize=$(( ($(stat -c %s "$dir/j.log") / 1048576 + 1) * 1048576 ))
cat "$dir/j.log" > /dev/null # in the page cache: we measure writing
echo "journal: ${mb} MiB, $("$LOGSHIP" inspect "$dir/j.log" | head -1 | sed 's/.*: //')"

if [[ -n ${TLS:-} ]]; then
  (cd "$dir" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=ca -days 2 2>/dev/null &&
    for n in server client; do
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > $n.ext
      openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 2 -extfile $n.ext 2>/dev/null
    done)
fi

now() { date +%s.%N; }
rss() { awk '/Maximum resident/{printf "%.0f", $6/1024}' "$1"; }
line() { # label seconds rss
  awk -v l="$1" -v s="$2" -v mb="$mb" -v r="$3" 'BEGIN { printf "%-58s %6.2f s %7.0f MiB/s  peak RSS (MiB) %s\n", l, s, mb/s, r }'
}

run_replay() {
  rm -f "$dir/target"; truncate -s "$devsize" "$dir/target"; sync
  local t0 t1
  t0=$(now); /usr/bin/time -v -o "$dir/time.replay" "$LOGSHIP" replay -q "$dir/j.log" "$dir/target"; t1=$(now)
  rm -f "$dir/target"; sync
  replay_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  line "replay" "$replay_s" "$(rss "$dir/time.replay"); CPU s $(awk '/User time/{u=$4} /System time/{s=$4} END { printf "%.2f", u + s }' "$dir/time.replay")"
}

run_ship() { # streams auth variant
  local n=$1 auth=$2 variant=$3 sargs cargs
  case $auth in
    insecure) sargs=(--insecure); cargs=(--insecure) ;;
    tls) sargs=(--tls-cert "$dir/server.pem" --tls-key "$dir/server.key" --client-ca "$dir/ca.pem")
         cargs=(--tls-cert "$dir/client.pem" --tls-key "$dir/client.key" --ca "$dir/ca.pem") ;;
  esac
  rm -rf "$dir/srv" "$dir/serve.log"; sync
  "$LOGSHIP" serve --listen 127.0.0.1:0 --dir "$dir/srv" "${sargs[@]}" \
    $variant --log-format json 2> "$dir/serve.log" &
  serve_pid=$!
  local addr=
  for _ in $(seq 200); do
    addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$dir/serve.log" 2>/dev/null | head -1 || true)
    [[ -n $addr ]] && break
    sleep 0.05
  done
  [[ -n $addr ]] || { echo "serve did not start:"; cat "$dir/serve.log"; exit 1; }
  local t0 t1
  t0=$(now)
  /usr/bin/time -v -o "$dir/time.ship" "$LOGSHIP" ship "$dir/j.log" --to "$addr" --task t --streams "$n" \
    --progress never "${cargs[@]}" "${extra[@]}" > /dev/null
  t1=$(now)
  local srss scpu cpu
  srss=$(awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$serve_pid/status")
  scpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$serve_pid/stat")
  cpu=$(awk '/User time/{u=$4} /System time/{s=$4} END { printf "%.2f", u + s }' "$dir/time.ship")
  kill "$serve_pid"; wait "$serve_pid" || true; serve_pid=
  local s; s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  line "ship --streams $n ($auth) $variant" "$s" "ship $(rss "$dir/time.ship") / serve $srss; CPU s ship $cpu / serve $scpu"
  awk -v l="$n $auth" -v s="$s" -v r="$replay_s" 'BEGIN { printf "    ship/replay throughput %.2f\n", r/s }'
  echo "$auth|$variant|$n|$s|$replay_s" >> "$dir/results"
}

auths=(insecure)
[[ -n ${TLS:-} ]] && auths+=(tls)
for round in $(seq "$rounds"); do
  echo "round $round"
  for auth in "${auths[@]}"; do
    IFS=';' read -ra variants <<< "${SERVE_VARIANTS:---write-through 0;--write-through 4MiB}"
    for variant in "${variants[@]}"; do
      for n in ${STREAMS:-1 4 8}; do
        run_replay
        run_ship "$n" "$auth" "$variant"
      done
    done
  done
done
echo
echo "median over $rounds rounds (ship/replay throughput; ship MiB/s)"
sort -t'|' -k1,1 -k2,2 -k3,3n "$dir/results" | awk -F'|' -v mb="$mb" '
  function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  function flush() { if (k != "") printf "%-58s ratio %.2f   %4.0f MiB/s\n", k, med(r, c), med(m, c) }
  { key = "ship --streams " $3 " (" $1 ") " $2; if (key != k) { flush(); k = key; c = 0 } c++; r[c] = $5 / $4; m[c] = mb / $4 }
  END { flush() }'
