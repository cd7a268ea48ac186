#!/usr/bin/env bash
# Side-by-side benchmarks. Builds release, runs each selected benchmark with its peer in the
# same run, and writes BENCHMARKS.md. Usage: scripts/bench.sh [--smoke] [NAME...]
#   startup   `ws --help` with every plugin present (goal <= 15 ms) and `ws echo_server --help`
# --smoke runs each benchmark briefly so CI can check the script still works.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
NAMES=()
for a in "$@"; do
    case "$a" in
        --smoke) SMOKE=1 ;;
        *) NAMES+=("$a") ;;
    esac
done
[ "${#NAMES[@]}" -gt 0 ] || NAMES=(startup)

cargo build --release --workspace --quiet
WS=target/release/ws
OUT=BENCHMARKS.md
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT

# mean wall time of a command in ms over N runs (after 10 warm-up runs)
time_ms() {
    local n=$1; shift
    for _ in $(seq 10); do "$@" >/dev/null 2>&1 || true; done
    local start end
    start=$(date +%s%N)
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 || true; done
    end=$(date +%s%N)
    awk -v s="$start" -v e="$end" -v n="$n" 'BEGIN { printf "%.2f", (e - s) / n / 1e6 }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minmax() { sort -n | awk 'NR == 1 { min = $1 } { max = $1 } END { print min "–" max }'; }

bench_startup() {
    local n=200 rounds=3
    [ "$SMOKE" = 1 ] && n=5 && rounds=1
    local help=() plug=() truebin=()
    for _ in $(seq "$rounds"); do
        truebin+=("$(time_ms "$n" /bin/true)")
        help+=("$(time_ms "$n" "$WS" --help)")
        plug+=("$(time_ms "$n" "$WS" echo_server --help)")
    done
    local nplugins
    nplugins=$("$WS" --help | awk '/^Subcommands:/ { on = 1; next } on && NF' | wc -l)
    {
        echo "### startup"
        echo
        echo "Mean wall time per run over $n runs, median of $rounds rounds (min–max); \`/bin/true\` is the process-spawn floor."
        echo
        echo "| command | ms | goal |"
        echo "|---|---|---|"
        echo "| \`/bin/true\` | $(printf '%s\n' "${truebin[@]}" | median) ($(printf '%s\n' "${truebin[@]}" | minmax)) | |"
        echo "| \`ws --help\` ($nplugins plugins) | $(printf '%s\n' "${help[@]}" | median) ($(printf '%s\n' "${help[@]}" | minmax)) | ≤ 15 |"
        echo "| \`ws echo_server --help\` | $(printf '%s\n' "${plug[@]}" | median) ($(printf '%s\n' "${plug[@]}" | minmax)) | |"
        echo
        echo "Command: \`scripts/bench.sh startup\`"
        echo
    } >>"$RESULTS"
}

for name in "${NAMES[@]}"; do
    case "$name" in
        startup) bench_startup ;;
        *) echo "bench.sh: unknown benchmark '$name' (known: startup)" >&2; exit 2 ;;
    esac
done

if [ "$SMOKE" = 1 ]; then
    cat "$RESULTS"
    exit 0
fi

{
    echo "# Benchmarks"
    echo
    echo "Written by \`scripts/bench.sh ${NAMES[*]}\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "These machines are shared and noisy: compare ratios within one run, not absolute figures across runs."
    echo
    cat "$RESULTS"
} >"$OUT"
cat "$OUT"
