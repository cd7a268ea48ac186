#!/usr/bin/env bash
# A/B of the uncompressed hot paths against an earlier commit: `scripts/ab.sh COMMIT [ROUNDS]`.
# Builds COMMIT (release) in a temporary worktree, then runs echo_server (32 B x64 and 1 MiB x4),
# proxy_server in front of this tree's echo_server (50 connections x 8), broadcast_server
# (fan-out 1 -> 100) and httpd (a 1 KiB file, wrk) from both builds, alternating, with this
# tree's `ws bench` (and wrk) as the one load client; prints the medians and new/old. For
# changes that must not slow what they do not touch (the deflate layer: +-3 %).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/ab.sh COMMIT [ROUNDS]}
ROUNDS=${2:-5}
unset http_proxy https_proxy all_proxy HTTPS_PROXY ALL_PROXY no_proxy NO_PROXY
work=$(mktemp -d)
trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# AB_OLD=PATH/ws: a build of COMMIT made already (e.g. by an earlier run) instead of building it.
if [ -z "${AB_OLD:-}" ]; then
  git worktree add -f "$work/tree" "$base" >/dev/null 2>&1
  (cd "$work/tree" && CARGO_TARGET_DIR=${AB_TARGET:-/tmp/ws-ab-target} cargo build --release --workspace --quiet)
fi
cargo build --release --workspace --quiet
OLD=${AB_OLD:-${AB_TARGET:-/tmp/ws-ab-target}/release/ws} NEW=target/release/ws
start() { "$@" > "$work/srv" 2>&1 & PID=$!; for _ in $(seq 100); do grep -q 'Listening on' "$work/srv" && break; sleep 0.05; done; PORT=$(grep -o 'Listening on [^ ]*' "$work/srv" | head -1 | sed 's/.*://'); }
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mkdir -p "$work/www" && head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/www/1k.txt"
declare -A R C
for _ in $(seq $ROUNDS); do
  for v in OLD NEW; do
    bin=${!v}
    # echo, 32 B x64
    start "$bin" echo_server -q --port 0
    c0=$(cpu $PID); out=$($NEW bench ws://127.0.0.1:$PORT -s 32 -w 64 -d 3 --warmup 1 --json); c1=$(cpu $PID)
    R[echo$v]+="$(echo "$out" | sed 's/.*"rate":\([0-9.]*\).*/\1/') "
    C[echo$v]+="$(awk -v a=$c0 -v b=$c1 -v n="$(echo "$out" | sed 's/.*"messages":\([0-9]*\).*/\1/')" 'BEGIN{printf "%.4f", (b-a)/n*1e5}') "
    kill $PID; wait $PID 2>/dev/null || true
    # echo of big messages, 1 MiB x4 (reads of the socket in big pieces)
    start "$bin" echo_server -q --port 0
    out=$($NEW bench ws://127.0.0.1:$PORT -s 1048576 -w 4 -d 3 --warmup 1 --json)
    R[big$v]+="$(echo "$out" | sed 's/.*"rate":\([0-9.]*\).*/\1/') "
    kill $PID; wait $PID 2>/dev/null || true
    # proxy in front of the NEW echo server, 50 connections x 8
    start "$NEW" echo_server -q --port 0; UP=$PORT; UPID=$PID
    start "$bin" proxy_server -q --port 0 --remote_host ws://127.0.0.1:$UP
    out=$($NEW bench ws://127.0.0.1:$PORT -c 50 -w 8 -d 3 --warmup 1 --json)
    R[proxy$v]+="$(echo "$out" | sed 's/.*"rate":\([0-9.]*\).*/\1/') "
    kill $PID $UPID; wait 2>/dev/null || true
    # fan-out 1 -> 100
    start "$bin" broadcast_server -q --port 0
    out=$($NEW bench ws://127.0.0.1:$PORT --mode fanout -c 100 -w 64 -s 32 -d 3 --warmup 1 --json)
    R[fanout$v]+="$(echo "$out" | sed 's/.*"rate":\([0-9.]*\).*/\1/') "
    kill $PID; wait $PID 2>/dev/null || true
    # httpd, a 1 KiB file, keep-alive (wrk -t1 -c32): requests/s and server CPU us per request
    start "$bin" httpd -q --threads 1 --port 0 --root "$work/www"
    wrk -t1 -c32 -d1s "http://127.0.0.1:$PORT/1k.txt" >/dev/null
    c0=$(cpu $PID); out=$(wrk -t1 -c32 -d3s "http://127.0.0.1:$PORT/1k.txt"); c1=$(cpu $PID)
    R[httpd$v]+="$(echo "$out" | awk '/Requests\/sec/ { print $2 }') "
    C[httpd$v]+="$(awk -v a=$c0 -v b=$c1 -v n="$(echo "$out" | awk '/requests in/ { print $1 }')" 'BEGIN{printf "%.3f", (b-a)/n*1e6}') "
    kill $PID; wait $PID 2>/dev/null || true
  done
done
for k in echo big proxy fanout httpd; do
  o=$(med ${R[${k}OLD]}); n=$(med ${R[${k}NEW]})
  printf '%s: old %s  new %s  new/old %.3f   (old: %s| new: %s)\n' $k $o $n "$(awk -v a=$n -v b=$o 'BEGIN{print a/b}')" "${R[${k}OLD]}" "${R[${k}NEW]}"
done
printf 'echo server CPU s/100k: old %s new %s\n' "$(med ${C[echoOLD]})" "$(med ${C[echoNEW]})"
printf 'httpd server CPU us/request: old %s new %s  (old: %s| new: %s)\n' "$(med ${C[httpdOLD]})" "$(med ${C[httpdNEW]})" "${C[httpdOLD]}" "${C[httpdNEW]}"
