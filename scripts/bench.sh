#!/usr/bin/env bash
# Side-by-side benchmarks. Builds release, runs each selected benchmark with its peer in the
# same run (servers alternate A/B/A/B; each figure is the median of 3 rounds, with min–max),
# and writes BENCHMARKS.md. Usage: scripts/bench.sh [--smoke] [--check] [NAME...]
#   startup   `ws --help` with every plugin present (goal <= 15 ms) and `ws echo_server --help`
#   oneshot   one message and its echo, process start to exit: `ws connect --max-messages 1`
#             vs websocat -1 vs wscat -x (scripts/peers.sh --bench builds websocat, once)
#   echo      echo_server vs Node ws vs Python websockets: 32 B x64 in flight, x1 (latency),
#             16 MiB messages; server peak RSS; a Node client as a second witness
#   idle      10,000 idle connections to echo_server vs Node ws: RSS per connection
#   fanout    1 sender, 100 receivers, 32 B through broadcast_server vs a Node ws broadcast server
#   redis     the same fan-out across two broadcast_servers sharing a room through Redis
#   proxy     echo through ws proxy_server vs direct vs nginx (1 worker) as a WebSocket proxy
#   httpd     ws httpd vs nginx (1 worker): 1 KiB file with wrk -t1 -c32, and a 1 GiB download
#   curl      ws curl vs curl against nginx: a 1 GiB download (throughput, peak RSS) and
#             1,000 sequential requests for a 1 KiB file (start-up + plugin load)
#   transfer  1 GiB send -> transfer -> receive: throughput and each process's peak RSS, with
#             `cat file > /dev/null` and a plain TCP copy (socat) as the physical reference
#   deflate   permessage-deflate: echo of 1 KiB JSON-like text x64 vs Node ws and Python
#             websockets with compression, compression ratios; 10,000 idle deflate
#             connections vs Node ws; fan-out 1 -> 100 of 1 KiB JSON vs a Node ws broadcast
#   push      ws push_server + ws autoroute (the reference's throughput test): 1,000,000 pushed
#             messages/s, with and without permessage-deflate, beside ws bench on the same server
#   gzip      ws gzip / ws gunzip vs GNU gzip -6 / gzip -d on a 512 MiB text file: time, peak RSS
#   threads   httpd --threads 2 vs nginx with 2 workers (defaults, open_file_cache): req/s and
#             CPU per 1,000 requests
#   syscalls  httpd vs nginx three ways (Debian defaults, tuned for small files, tuned +
#             open_file_cache): req/s, system calls per request, freshness after a change;
#             echo_server vs Node ws: system calls per round trip
#   bridge    ws bridge vs websocat, WebSocket <-> TCP (a Node echo): 32 B and 64 KiB messages,
#             round trips/s, the bridge's CPU per message, peak RSS
# --smoke runs each benchmark briefly so CI can check the script still works.
# --check, after the run, compares each figure with its goal (each written once, beside its
# benchmark, with `goal`) and exits 1 listing what fell short: for people who change hot
# code (not in CI: these machines are too noisy for a pass/fail line).
set -euo pipefail
cd "$(dirname "$0")/.."
# Loopback only: no proxy from the environment in between (ws's clients read them, as curl).
unset http_proxy https_proxy all_proxy HTTPS_PROXY ALL_PROXY no_proxy NO_PROXY

SMOKE=0
CHECK=0
NAMES=()
for a in "$@"; do
    case "$a" in
        --smoke) SMOKE=1 ;;
        --check) CHECK=1 ;;
        *) NAMES+=("$a") ;;
    esac
done
[ "${#NAMES[@]}" -gt 0 ] || NAMES=(startup oneshot echo idle fanout redis proxy httpd curl transfer deflate push gzip bridge threads syscalls)

scripts/peers.sh >/dev/null
cargo build --release --workspace --quiet
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export NODE_PATH=$PWD/.peers/node/node_modules
PY=$PWD/.peers/venv/bin/python
ROUNDS=3
DUR=3
[ "$SMOKE" = 1 ] && ROUNDS=1 && DUR=1
WS=target/release/ws
OUT=BENCHMARKS.md
RESULTS=$(mktemp)
GOALS=$(mktemp)

# goal BENCH WHAT VALUE OP TARGET: records a figure and its goal (OP is >= or <=) for --check
goal() { printf '%s|%s|%s|%s|%s\n' "$@" >>"$GOALS"; }

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

SERVER_PID=
SERVER_PORT=
SERVER_LOG=$(mktemp)
PORTS_GIVEN=$(mktemp)
trap 'rm -f "$RESULTS" "$GOALS" "$SERVER_LOG" "$PORTS_GIVEN"; [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null' EXIT

# start_server CMD... : starts a server that prints "Listening on HOST:PORT"; sets SERVER_PID/PORT
start_server() {
    "$@" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 200); do
        SERVER_PORT=$(grep -m1 -o 'Listening on [0-9.]*:[0-9]*' "$SERVER_LOG" | grep -o '[0-9]*$' || true)
        [ -n "$SERVER_PORT" ] && return 0
        sleep 0.05
    done
    echo "bench.sh: server did not start: $*" >&2
    cat "$SERVER_LOG" >&2
    exit 1
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
# cpu_s PID: CPU seconds (user + system) the process has used so far
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }
# per100k CPU0 CPU1 N: CPU seconds per 100,000 round trips
per100k() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.3f", (n > 0 ? (b - a) / n * 1e5 : 0) }'; }
# peak resident set of a process, in KiB
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
json_field() { "$PY" -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }

# the echo servers compared: name and command (all on port 0)
ECHO_SERVERS=(ws node python)
echo_cmd() {
    case "$1" in
        ws) echo "$WS echo_server -q --threads 1 --port 0" ;;
        node) echo "node tests/peers/echo_server.js" ;;
        python) echo "$PY tests/peers/echo_server.py" ;;
    esac
}

# med / mm / ratio: the median and the min–max of the values given, and a / b
med() { printf '%s\n' "$@" | median; }
mm() { printf '%s\n' "$@" | minmax; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
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
        echo "| \`/bin/true\` | $(med "${truebin[@]}") ($(mm "${truebin[@]}")) | |"
        echo "| \`ws --help\` ($nplugins plugins) | $(med "${help[@]}") ($(mm "${help[@]}")) | ≤ 15 |"
        goal startup "ws --help ms" "$(med "${help[@]}")" "<=" 15
        echo "| \`ws echo_server --help\` | $(med "${plug[@]}") ($(mm "${plug[@]}")) | |"
        echo
        echo "Command: \`scripts/bench.sh startup\`"
        echo
    } >>"$RESULTS"
}

# oneshot_run TOOL URL: one one-shot session; fails unless the echo came back
oneshot_run() {
    local out
    case "$1" in
        ws) out=$(printf 'x\n' | "$WS" connect "$2" --max-messages 1) ;;
        websocat) out=$(printf 'x\n' | "$WEBSOCAT" -1 "$2") ;;
        # wscat prints nothing without a terminal: it runs under script(1), whose own cost
        # (the pty row) is subtracted. -w 0: no wait after the reply (its default is 2 s).
        wscat) out=$(script -qc ".peers/node/node_modules/.bin/wscat -c $2 -x x -w 0 --no-color" /dev/null) ;;
        pty) out=$(script -qc "echo x" /dev/null) ;;
    esac
    [[ "$out" == *x* ]]
}

bench_oneshot() {
    local n=50 tools=(ws websocat wscat pty)
    [ "$SMOKE" = 1 ] && n=3
    WEBSOCAT=$PWD/.peers/cargo/bin/websocat
    if [ ! -x "$WEBSOCAT" ]; then
        if [ "$SMOKE" = 1 ]; then tools=(ws wscat pty); else scripts/peers.sh --bench >/dev/null; fi
    fi
    start_server "$WS" echo_server -q --threads 1 --port 0
    local url="ws://127.0.0.1:$SERVER_PORT/" t wscat_net
    declare -A ms=()
    for _ in $(seq "$ROUNDS"); do
        for t in "${tools[@]}"; do
            oneshot_run "$t" "$url" || { echo "bench.sh: $t got no echo" >&2; exit 1; }
            ms[$t]+="$(time_ms "$n" oneshot_run "$t" "$url") "
        done
    done
    stop_server
    {
        echo "### oneshot"
        echo
        echo "One message and its echo from \`ws echo_server\`, process start to exit: mean wall ms over $n runs, median of $ROUNDS rounds (min–max), tools alternating. Each run checks the echo came back."
        echo
        echo "| client | command | ms | vs ws |"
        echo "|---|---|---|---|"
        echo "| ws | \`printf 'x\\n' \| ws connect URL --max-messages 1\` | $(med ${ms[ws]}) ($(mm ${ms[ws]})) | 1 |"
        [ -n "${ms[websocat]:-}" ] &&
            echo "| websocat 1.14.1 | \`printf 'x\\n' \| websocat -1 URL\` | $(med ${ms[websocat]}) ($(mm ${ms[websocat]})) | $(ratio "$(med ${ms[websocat]})" "$(med ${ms[ws]})" | xargs printf '%.1f')× |"
        wscat_net=$(awk -v a="$(med ${ms[wscat]})" -v b="$(med ${ms[pty]})" 'BEGIN { printf "%.2f", a - b }')
        echo "| wscat 6.1.0 | \`script -qc 'wscat -c URL -x x -w 0' /dev/null\` | $(med ${ms[wscat]}) ($(mm ${ms[wscat]})) | |"
        echo "| (pty floor) | \`script -qc 'echo x' /dev/null\` | $(med ${ms[pty]}) ($(mm ${ms[pty]})) | |"
        echo "| wscat less the pty floor | | $wscat_net | $(ratio "$wscat_net" "$(med ${ms[ws]})" | xargs printf '%.1f')× |"
        echo
        echo "wscat prints nothing unless its output is a terminal, so it runs under script(1); its figure is compared after taking away script's own cost."
        echo "Goals: ws ≤ 1.0× websocat's time and ≤ 0.5× wscat's."
        echo
        echo "Command: \`scripts/bench.sh oneshot\`"
        echo
    } >>"$RESULTS"
    [ -n "${ms[websocat]:-}" ] && goal oneshot "time vs websocat" "$(ratio "$(med ${ms[ws]})" "$(med ${ms[websocat]})")" "<=" 1.0
    goal oneshot "time vs wscat" "$(ratio "$(med ${ms[ws]})" "$wscat_net")" "<=" 0.5
}

bench_bridge() {
    local tools=(ws websocat) size b
    WEBSOCAT=$PWD/.peers/cargo/bin/websocat
    if [ ! -x "$WEBSOCAT" ]; then
        if [ "$SMOKE" = 1 ]; then tools=(ws); else scripts/peers.sh --bench >/dev/null; fi
    fi
    # the TCP service behind both bridges: a Node echo with backpressure (socat's PIPE
    # deadlocks on itself past 64 KiB in flight)
    start_server node tests/peers/tcp_echo.js
    local echo_pid=$SERVER_PID echo_port=$SERVER_PORT
    declare -A rate mbs cpu rss
    for _ in $(seq "$ROUNDS"); do
        for size in 32 65536; do
            for b in "${tools[@]}"; do
                # both as their users bridge a WebSocket to TCP: binary messages, raw bytes
                if [ "$b" = ws ]; then
                    start_server "$WS" bridge -q ws-listen:127.0.0.1:0 "tcp:127.0.0.1:$echo_port"
                else
                    local port
                    port=$(free_port)
                    "$WEBSOCAT" -b "ws-l:127.0.0.1:$port" "tcp:127.0.0.1:$echo_port" >"$SERVER_LOG" 2>&1 &
                    SERVER_PID=$!
                    SERVER_PORT=$port
                    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
                fi
                # replies come back re-framed by the TCP side: checked as a byte stream
                measured_bench --reframed --binary -s "$size" -w 64
                rate[$b-$size]+="$(echo "$BENCH_OUT" | json_field rate) "
                mbs[$b-$size]+="$(echo "$BENCH_OUT" | json_field rate | awk -v s="$size" '{ printf "%.1f", $1 * s / 1e6 }') "
                cpu[$b-$size]+="$BENCH_CPU "
                rss[$b]+="$(peak_rss_kib "$SERVER_PID") "
                stop_server
            done
        done
    done
    kill "$echo_pid" 2>/dev/null || true
    wait "$echo_pid" 2>/dev/null || true
    {
        echo "### bridge"
        echo
        echo "WebSocket ↔ TCP: \`ws bench --reframed --binary -w 64 -s SIZE\` (${DUR}s) → bridge → a Node TCP echo (tests/peers/tcp_echo.js) and back; the echoes come back re-framed by TCP, so they are checked as one byte stream. ws: \`ws bridge ws-listen:… tcp:…\`; websocat 1.14.1: \`websocat -b ws-l:… tcp:…\`. Round trips/s and the bridge's CPU seconds per 100k round trips (the client, the bridge and the echo share 2 cores, so the CPU figure is the bridge's own cost); median of $ROUNDS rounds (min–max), bridges alternating."
        echo
        echo "| bridge | size | round trips/s | MB/s each way | vs websocat | CPU s / 100k | websocat's CPU / ws's |"
        echo "|---|---|---|---|---|---|---|"
        for size in 32 65536; do
            for b in "${tools[@]}"; do
                local vs="" cpuvs=""
                if [ -n "${rate[websocat-$size]:-}" ]; then
                    vs="$(ratio "$(med ${rate[$b-$size]})" "$(med ${rate[websocat-$size]})" | xargs printf '%.2f')×"
                    cpuvs="$(ratio "$(med ${cpu[websocat-$size]})" "$(med ${cpu[$b-$size]})" | xargs printf '%.2f')×"
                fi
                printf '| %s | %s B | %.0f (%s) | %s | %s | %s | %s |\n' "$b" "$size" "$(med ${rate[$b-$size]})" "$(mm ${rate[$b-$size]})" \
                    "$(med ${mbs[$b-$size]})" "$vs" "$(med ${cpu[$b-$size]})" "$cpuvs"
            done
        done
        echo
        echo "Peak RSS of the bridge process (MiB, median over its runs): ws $(awk -v k="$(med ${rss[ws]})" 'BEGIN { printf "%.1f", k / 1024 }')$([ -n "${rss[websocat]:-}" ] && awk -v k="$(med ${rss[websocat]})" 'BEGIN { printf ", websocat %.1f", k / 1024 }')."
        echo "Goals: ≥ 1.5× websocat's throughput for 64 KiB and 32 B messages; peak RSS ≤ 16 MiB."
        echo
        echo "Command: \`scripts/bench.sh bridge\`"
        echo
    } >>"$RESULTS"
    if [ -n "${rate[websocat-32]:-}" ]; then
        goal bridge "32 B round trips vs websocat" "$(ratio "$(med ${rate[ws-32]})" "$(med ${rate[websocat-32]})")" ">=" 1.5
        goal bridge "64 KiB round trips vs websocat" "$(ratio "$(med ${rate[ws-65536]})" "$(med ${rate[websocat-65536]})")" ">=" 1.5
    fi
    goal bridge "peak RSS MiB" "$(awk -v k="$(med ${rss[ws]})" 'BEGIN { print k / 1024 }')" "<=" 16
}

# measured_bench BENCH-ARGS... : `ws bench` against the running server (SERVER_PORT); sets
# BENCH_OUT (its JSON line) and BENCH_CPU: the server's CPU seconds per 100k messages over the
# measured seconds (after the 1 s warm-up), a figure that does not depend on how fast the
# client is
measured_bench() {
    local tmp c0 c1 bench_pid
    tmp=$(mktemp)
    "$WS" bench "ws://127.0.0.1:$SERVER_PORT" --json -d "$DUR" --warmup 1 "$@" >"$tmp" &
    bench_pid=$!
    sleep 1
    c0=$(cpu_s "$SERVER_PID")
    wait "$bench_pid"
    c1=$(cpu_s "$SERVER_PID")
    BENCH_OUT=$(cat "$tmp")
    rm -f "$tmp"
    BENCH_CPU=$(per100k "$c0" "$c1" "$(echo "$BENCH_OUT" | json_field messages)")
}

# bench_echo_case LABEL SIZE BENCH-ARGS... : every echo server, ROUNDS rounds alternating
# servers; SIZE is the message size given in BENCH-ARGS (for the MB/s column)
bench_echo_case() {
    local label=$1 size=$2; shift 2
    declare -A rate p50 rss cpu
    for _ in $(seq "$ROUNDS"); do
        for s in "${ECHO_SERVERS[@]}"; do
            # shellcheck disable=SC2046
            start_server $(echo_cmd "$s")
            measured_bench "$@"
            rate[$s]+="$(echo "$BENCH_OUT" | json_field rate) "
            cpu[$s]+="$BENCH_CPU "
            p50[$s]+="$(echo "$BENCH_OUT" | json_field p50_us) "
            rss[$s]+="$(peak_rss_kib "$SERVER_PID") "
            stop_server
        done
    done
    local base base_cpu
    base=$(med ${rate[node]})
    base_cpu=$(med ${cpu[node]})
    {
        echo "#### $label (\`ws bench URL $*\`)"
        echo
        echo "| server | round trips/s | vs Node ws | server CPU s per 100k round trips | CPU vs Node ws | MB/s each way | p50 latency µs | server peak RSS MiB |"
        echo "|---|---|---|---|---|---|---|---|"
        for s in "${ECHO_SERVERS[@]}"; do
            local m c
            m=$(med ${rate[$s]})
            c=$(med ${cpu[$s]})
            printf '| %s | %.0f (%s) | %.2f× | %s (%s) | %.2f× less | %.1f | %s | %.1f |\n' "$s" "$m" "$(mm ${rate[$s]})" \
                "$(ratio "$m" "$base")" "$c" "$(mm ${cpu[$s]})" "$(ratio "$base_cpu" "$c")" \
                "$(awk -v r="$m" -v z="$size" 'BEGIN { print r * z / 1e6 }')" \
                "$(med ${p50[$s]})" "$(awk -v k="$(med ${rss[$s]})" 'BEGIN { print k / 1024 }')"
        done
        echo
    } >>"$RESULTS"
    ECHO_WS_RATE=$(med ${rate[ws]})
    ECHO_CPU_VS_NODE=$(ratio "$base_cpu" "$(med ${cpu[ws]})")
    ECHO_WS_P50=$(med ${p50[ws]})
    ECHO_NODE_RATE=$base
}

# node_client_cpu SERVER FIELD SCRIPT ARGS...: runs the Node client SCRIPT against a fresh
# echo SERVER (after a 1 s warm-up with the same ARGS but 1 s), and sets NODE_OUT (its line)
# and NODE_CPU (the server's CPU s per 100k round trips; the rate is field FIELD of the line;
# the second ARG that is $DUR is the duration)
node_client_cpu() {
    local server=$1 field=$2 script=$3; shift 3
    # shellcheck disable=SC2046
    start_server $(echo_cmd "$server")
    local url="ws://127.0.0.1:$SERVER_PORT" c0 c1 warm=()
    for a in "$@"; do [ "$a" = "$DUR" ] && warm+=(1) || warm+=("$a"); done
    node "$script" "$url" "${warm[@]}" >/dev/null
    c0=$(cpu_s "$SERVER_PID")
    NODE_OUT=$(node "$script" "$url" "$@")
    c1=$(cpu_s "$SERVER_PID")
    NODE_CPU=$(per100k "$c0" "$c1" "$(echo "$NODE_OUT" | awk -v f="$field" -v d="$DUR" '{ print $f * d }')")
    stop_server
}

bench_echo() {
    {
        echo "### echo"
        echo
        echo "Servers: \`ws echo_server -q\` (release), Node \`ws\` 8 (\`tests/peers/echo_server.js\`), Python \`websockets\` (\`tests/peers/echo_server.py\`)."
        echo "Load: \`ws bench\` (one thread, checks every payload), ${DUR} s after 1 s warm-up, median of $ROUNDS rounds (min–max), servers alternating."
        echo "Goals (WebSocket-core issue): ≥ 1.0× Node ws at 32 B ×64; p50 ≤ 100 µs at ×1; 16 MiB echo ≥ 1,000 MB/s each way."
        echo
    } >>"$RESULTS"
    bench_echo_case "32 B, 64 in flight, 1 connection" 32 -s 32 -w 64
    goal echo "32 B ×64 vs Node ws" "$(ratio "$ECHO_WS_RATE" "$ECHO_NODE_RATE")" ">=" 1.0
    goal echo "32 B ×64 server CPU per round trip, Node ws / ws" "$ECHO_CPU_VS_NODE" ">=" 1.0
    bench_echo_case "32 B, 1 in flight (latency)" 32 -s 32 -w 1
    goal echo "p50 µs at ×1" "$ECHO_WS_P50" "<=" 100
    bench_echo_case "16 MiB binary, 2 in flight" 16777216 -s 16777216 -w 2 --binary
    goal echo "16 MiB MB/s each way" "$(awk -v r="$ECHO_WS_RATE" 'BEGIN { print r * 16777216 / 1e6 }')" ">=" 1000
    # a second witness: the Node client against ws and Node servers
    local line="" fixed="" s rate=20000
    declare -A witness at_rate
    for s in ws node python; do
        # the pipelined Node client (closed loop: 64 in flight)
        node_client_cpu "$s" 2 scripts/peers/ws_bench.js "$DUR" 64 32
        witness[$s]=$NODE_CPU
        line+="| $s | $NODE_OUT | $NODE_CPU |"$'\n'
        # The same offered load for every server (an open-loop Node client): server CPU per
        # round trip at equal work, whatever each server could reach flat out.
        node_client_cpu "$s" 4 scripts/peers/ws_rate.js "$rate" "$DUR" 4 32
        at_rate[$s]=$NODE_CPU
        fixed+="| $s | $NODE_OUT | $NODE_CPU |"$'\n'
    done
    goal echo "server CPU per round trip under the Node client, Node ws / ws" "$(ratio "${witness[node]}" "${witness[ws]}")" ">=" 1.0
    goal echo "server CPU per round trip at a fixed $rate/s (Node client), Node ws / ws" "$(ratio "${at_rate[node]}" "${at_rate[ws]}")" ">=" 1.0
    {
        echo "At a fixed offered load (\`node scripts/peers/ws_rate.js URL $rate $DUR 4 32\`: 4 connections, $rate messages/s whatever the server's speed, one message per write): every server does the same work, so its CPU per round trip compares the servers alone."
        echo
        echo "| server | Node client result | server CPU s per 100k round trips |"
        echo "|---|---|---|"
        printf '%s' "$fixed"
        echo
    } >>"$RESULTS"
    {
        echo "Cross-check with the Node client (\`node scripts/peers/ws_bench.js URL $DUR 64 32\`): one Node process is itself the limit here (both servers get about what it can send), so its rates bound the client, not the servers. The server CPU column does not depend on the client's speed, but it does on its batching: the Node client writes each message on its own, \`ws bench\` writes many per system call, so a server spends more per round trip here:"
        echo
        echo "| server | Node client result | server CPU s per 100k round trips |"
        echo "|---|---|---|"
        printf '%s' "$line"
        echo
        echo "Command: \`scripts/bench.sh echo\`"
        echo
    } >>"$RESULTS"
}

bench_idle() {
    local n=10000
    [ "$SMOKE" = 1 ] && n=200
    declare -A open before after per
    # servers alternate A-B-B-A across rounds
    local order=(ws node node ws ws node)
    local i
    for ((i = 0; i < 2 * ROUNDS; i++)); do
        local s=${order[$((i % 6))]}
        # shellcheck disable=SC2046
        start_server $(echo_cmd "$s")
        local b a o
        b=$(rss_kib "$SERVER_PID")
        "$WS" bench "ws://127.0.0.1:$SERVER_PORT" --mode idle -c "$n" -d 3 --json >"$SERVER_LOG.idle" 2>&1 &
        local bench_pid=$!
        # The client prints its line once every connection is open: sample then.
        for _ in $(seq 240); do grep -q '"open"' "$SERVER_LOG.idle" && break; sleep 0.25; done
        a=$(rss_kib "$SERVER_PID")
        wait "$bench_pid" || true
        o=$( (grep '"open"' "$SERVER_LOG.idle" || echo '{"open": 0}') | json_field open)
        open[$s]+="$o "
        before[$s]+="$b "
        after[$s]+="$a "
        per[$s]+="$(awk -v o="$o" -v b="$b" -v a="$a" 'BEGIN { printf "%.2f", (o > 0 ? (a - b) / o : 1e9) }') "
        stop_server
        rm -f "$SERVER_LOG.idle"
    done
    {
        echo "### idle"
        echo
        echo "$n idle WebSocket connections held by \`ws bench --mode idle -c $n\`; server RSS before connecting and once the client has every connection open; median of $ROUNDS rounds (min–max), servers alternating A-B-B-A. Goal (threads issue) ≤ 6 KiB per connection."
        echo
        echo "| server | open | RSS before MiB | RSS with $n MiB | KiB per connection |"
        echo "|---|---|---|---|---|"
        for s in ws node; do
            printf '| %s | %s | %.1f | %.1f | %s (%s) |\n' "$s" "$(med ${open[$s]})" \
                "$(awk -v k="$(med ${before[$s]})" 'BEGIN { print k / 1024 }')" \
                "$(awk -v k="$(med ${after[$s]})" 'BEGIN { print k / 1024 }')" "$(med ${per[$s]})" "$(mm ${per[$s]})"
        done
        echo
    } >>"$RESULTS"
    goal idle "KiB per connection" "$(med ${per[ws]})" "<=" 6
    [ "$SMOKE" = 1 ] || idle_many 50000
    echo "Command: \`scripts/bench.sh idle\`" >>"$RESULTS"
    echo >>"$RESULTS"
}

# idle_many N: N idle connections, more than one source address's ports allow: the servers
# listen on 0.0.0.0 and N/10000 clients connect to 127.0.0.1, 127.0.0.2, … (each
# destination has its own ephemeral ports). One round per server. The servers' open-file
# limit is raised to N + 1000 when the hard limit allows or can be raised (root with
# CAP_SYS_RESOURCE); else N is what the hard limit allows, and the table says so.
idle_many() {
    local n=$1 per_client=10000 wanted=$1 hard
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt $((n + 1000)) ] && ! (ulimit -Hn $((n + 1000)) 2>/dev/null); then
        n=$(((hard - 1000) / 1000 * 1000))
        echo "bench.sh: idle: the open-file limit is $hard and cannot be raised here: $n connections instead of $wanted" >&2
    fi
    local clients=$(((n + per_client - 1) / per_client))
    per_client=$((n / clients))
    n=$((per_client * clients))
    declare -A open per
    local s
    for s in ws node; do
        (
            if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $((n + 1000)) ]; then ulimit -Hn $((n + 1000)); fi
            ulimit -n $((n + 1000))
            case "$s" in
                ws) exec "$WS" echo_server -q --threads 1 --host 0.0.0.0 --port 0 --max-connections $((n + 1000)) ;;
                node) WS_PEER_HOST=0.0.0.0 exec node tests/peers/echo_server.js ;;
            esac
        ) >"$SERVER_LOG" 2>&1 &
        SERVER_PID=$!
        SERVER_PORT=""
        for _ in $(seq 200); do
            SERVER_PORT=$(grep -m1 -o 'Listening on [0-9.]*:[0-9]*' "$SERVER_LOG" | grep -o '[0-9]*$' || true)
            [ -n "$SERVER_PORT" ] && break
            sleep 0.05
        done
        local b a o=0 i pids=() logs=()
        b=$(rss_kib "$SERVER_PID")
        for ((i = 1; i <= clients; i++)); do
            logs+=("$(mktemp)")
            "$WS" bench "ws://127.0.0.$i:$SERVER_PORT" --mode idle -c "$per_client" -d 8 --json >"${logs[-1]}" 2>&1 &
            pids+=($!)
        done
        for _ in $(seq 480); do
            local all=1 l
            for l in "${logs[@]}"; do grep -q '"open"' "$l" || all=0; done
            [ "$all" = 1 ] && break
            sleep 0.25
        done
        a=$(rss_kib "$SERVER_PID")
        wait "${pids[@]}" || true
        for l in "${logs[@]}"; do
            o=$((o + $( (grep '"open"' "$l" || echo '{"open": 0}') | json_field open)))
            rm -f "$l"
        done
        open[$s]=$o
        per[$s]=$(awk -v o="$o" -v b="$b" -v a="$a" 'BEGIN { printf "%.2f", (o > 0 ? (a - b) / o : 1e9) }')
        stop_server
    done
    {
        echo "#### $n idle connections"
        echo
        echo "The servers listen on 0.0.0.0; $clients \`ws bench --mode idle -c $per_client\` clients connect to 127.0.0.1 … 127.0.0.$clients (one destination leaves too few ports for $wanted); one round each.$([ "$n" = "$wanted" ] || echo " $n, not $wanted: the open-file limit here is $hard and cannot be raised (no CAP_SYS_RESOURCE).")"
        echo
        echo "| server | open | KiB per connection |"
        echo "|---|---|---|"
        for s in ws node; do
            echo "| $s | ${open[$s]} | ${per[$s]} |"
        done
        echo
    } >>"$RESULTS"
    goal idle "KiB per connection with $n" "${per[ws]}" "<=" 6
}

bench_fanout() {
    local receivers=100
    declare -A rate rss
    for _ in $(seq "$ROUNDS"); do
        for s in ws node; do
            if [ "$s" = ws ]; then start_server "$WS" broadcast_server -q --port 0; else start_server node scripts/peers/broadcast_server.js; fi
            local out
            out=$("$WS" bench "ws://127.0.0.1:$SERVER_PORT" --mode fanout -c "$receivers" -w 64 -s 32 --json -d "$DUR" --warmup 1)
            rate[$s]+="$(echo "$out" | json_field rate) "
            rss[$s]+="$(peak_rss_kib "$SERVER_PID") "
            stop_server
        done
    done
    local base
    base=$(med ${rate[node]})
    {
        echo "### fanout"
        echo
        echo "One sender, $receivers receivers, 32 B text, the sender at most 64 messages ahead of the slowest receiver;"
        echo "\`ws bench URL --mode fanout -c $receivers -w 64 -s 32\`, ${DUR} s after 1 s warm-up, median of $ROUNDS rounds (min–max). Goal ≥ 1.0× Node."
        echo
        echo "| server | messages delivered/s | vs Node ws | server peak RSS MiB |"
        echo "|---|---|---|---|"
        for s in ws node; do
            local m
            m=$(med ${rate[$s]})
            printf '| %s | %.0f (%s) | %.2f× | %.1f |\n' "$s" "$m" "$(mm ${rate[$s]})" \
                "$(ratio "$m" "$base")" \
                "$(awk -v k="$(med ${rss[$s]})" 'BEGIN { print k / 1024 }')"
        done
        echo
        echo "Command: \`scripts/bench.sh fanout\`"
        echo
    } >>"$RESULTS"
    goal fanout "vs Node ws" "$(ratio "$(med ${rate[ws]})" "$base")" ">=" 1.0
}

bench_redis() {
    local receivers=100 port work
    port=$(free_port)
    work=$(mktemp -d)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
    local redis_pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    declare -A rate
    local run="$WS bench --mode fanout -c $receivers -w 64 -s 32 --json -d $DUR --warmup 1"
    for _ in $(seq "$ROUNDS"); do
        SERVER_LOG=$work/alone.log start_server "$WS" broadcast_server -q --port 0
        rate[alone]+="$($run "ws://127.0.0.1:$SERVER_PORT" | json_field rate) "
        stop_server
        SERVER_LOG=$work/a.log start_server "$WS" broadcast_server -q --port 0 --redis "redis://127.0.0.1:$port"
        local a_pid=$SERVER_PID a=$SERVER_PORT
        SERVER_LOG=$work/b.log start_server "$WS" broadcast_server -q --port 0 --redis "redis://127.0.0.1:$port"
        local b=$SERVER_PORT
        rate[split]+="$($run "ws://127.0.0.1:$a" --receivers-url "ws://127.0.0.1:$a" --receivers-url "ws://127.0.0.1:$b" | json_field rate) "
        rate[remote]+="$($run "ws://127.0.0.1:$a" --receivers-url "ws://127.0.0.1:$b" | json_field rate) "
        stop_server
        SERVER_PID=$a_pid stop_server
    done
    kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
    rm -rf "$work"
    local base
    base=$(med ${rate[alone]})
    {
        echo "### redis"
        echo
        echo "Fan-out across servers through Redis pub/sub (redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-)) vs one server alone."
        echo "One sender, $receivers receivers, 32 B text, the sender at most 64 messages ahead of the slowest receiver;"
        echo "\`ws bench URL --mode fanout -c $receivers -w 64 -s 32 [--receivers-url …]\`, ${DUR} s after 1 s warm-up, median of $ROUNDS rounds (min–max)."
        echo "Every message crosses Redis once per server (not once per receiver), so the hop costs latency, not fan-out work."
        echo
        echo "| layout | messages delivered/s | vs one server |"
        echo "|---|---|---|"
        local k m
        for k in alone split remote; do
            m=$(med ${rate[$k]})
            case $k in
                alone) label="one server, no Redis" ;;
                split) label="sender on A; receivers half on A, half on B (A → Redis → B)" ;;
                remote) label="sender on A; all receivers on B (every message crosses Redis)" ;;
            esac
            printf '| %s | %.0f (%s) | %.2f× |\n' "$label" "$m" "$(mm ${rate[$k]})" "$(ratio "$m" "$base")"
        done
        echo
        echo "Command: \`scripts/bench.sh redis\`"
        echo
    } >>"$RESULTS"
}

# free_port: a port to give a server that takes no port 0 (nginx), below the ephemeral range:
# a port from that range could be taken as the local port of an outgoing connection (wrk's,
# ws bench's) before the server binds it. Never the same port twice in a run.
free_port() {
    "$PY" -c '
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
given = set(open(sys.argv[1]).read().split())
for _ in range(200):
    p = random.randint(10000, lo - 1)
    if str(p) in given:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    open(sys.argv[1], "a").write(f"{p}\n")
    print(p)
    break
' "$PORTS_GIVEN"
}

# upstream_echo LOG THREADS: a `ws echo_server` in the background for a proxy to relay to (the
# server under test keeps SERVER_PID); sets UP_PID and UP_PORT
upstream_echo() {
    local pid=$SERVER_PID port=$SERVER_PORT
    SERVER_LOG=$1 start_server "$WS" echo_server -q --threads "$2" --port 0
    UP_PID=$SERVER_PID UP_PORT=$SERVER_PORT
    SERVER_PID=$pid SERVER_PORT=$port
}

# ws_proxy_location PORT: nginx's location relaying WebSocket connections to 127.0.0.1:PORT
ws_proxy_location() {
    echo "location / { proxy_pass http://127.0.0.1:$1; proxy_http_version 1.1;
    proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$connection_upgrade; proxy_read_timeout 3600s; }"
}

# nginx_conf WORK PORT SERVER-DIRECTIVES [WORKERS]: one worker unless WORKERS, temp paths under WORK/tmp, serving
# 127.0.0.1:PORT with the given directives (WebSocket upgrade map included)
nginx_conf() {
    local work=$1 port=$2 directives=$3 workers=${4:-1}
    mkdir -p "$work/tmp"
    cat >"$work/nginx.conf" <<NGINX
worker_processes $workers;
daemon off;
pid $work/tmp/nginx.pid;
error_log $work/tmp/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $work/tmp/body; proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fcgi; uwsgi_temp_path $work/tmp/uwsgi; scgi_temp_path $work/tmp/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; "" close; }
  server { listen 127.0.0.1:$port; $directives }
}
NGINX
}
# start_nginx WORK PORT: runs WORK/nginx.conf and waits for PORT; sets NGINX_PID
start_nginx() {
    /usr/sbin/nginx -c "$1/nginx.conf" >/dev/null 2>&1 &
    NGINX_PID=$!
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.05; done
    echo "bench.sh: nginx did not start on port $2:" >&2
    cat "$1/tmp/error.log" >&2 2>/dev/null || true
    exit 1
}
stop_nginx() {
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
}

bench_proxy() {
    local work
    work=$(mktemp -d)
    mkdir -p "$work/tmp"
    upstream_echo "$work/echo.log" 1
    local echo_pid=$UP_PID echo_port=$UP_PORT
    local nginx_port
    nginx_port=$(free_port)
    local location
    location=$(ws_proxy_location "$echo_port")
    nginx_conf "$work" "$nginx_port" "$location"
    # nginx relays an upgraded connection through proxy_buffer_size (4-8 KiB by default): for
    # 64 KiB messages its users would raise it, so that load is also measured that way.
    local tuned tuned_port
    tuned=$(mktemp -d)
    tuned_port=$(free_port)
    nginx_conf "$tuned" "$tuned_port" "proxy_buffer_size 64k; proxy_buffers 4 64k; $location"
    local big="64 KiB binary, 8 in flight"
    declare -A rate
    # other loads, ws and nginx only: label|ws bench arguments
    local loads=("50 connections × 8 in flight|-c 50 -w 8" "1 in flight (latency)|-w 1"
        "64 KiB binary, 8 in flight|-s 65536 -w 8 --binary")
    for _ in $(seq "$ROUNDS"); do
        rate[direct]+="$("$WS" bench "ws://127.0.0.1:$echo_port" --json -d "$DUR" --warmup 1 | json_field rate) "
        start_server "$WS" proxy_server -q --port 0 --remote_host "ws://127.0.0.1:$echo_port"
        rate[ws]+="$("$WS" bench "ws://127.0.0.1:$SERVER_PORT" --json -d "$DUR" --warmup 1 | json_field rate) "
        local l
        for l in "${loads[@]}"; do
            # shellcheck disable=SC2086 # the arguments are words on purpose
            rate[ws|${l%%|*}]+="$("$WS" bench "ws://127.0.0.1:$SERVER_PORT" --json -d "$DUR" --warmup 1 ${l#*|} | json_field rate) "
        done
        stop_server
        start_nginx "$work" "$nginx_port"
        rate[nginx]+="$("$WS" bench "ws://127.0.0.1:$nginx_port" --json -d "$DUR" --warmup 1 | json_field rate) "
        for l in "${loads[@]}"; do
            # shellcheck disable=SC2086
            rate[nginx|${l%%|*}]+="$("$WS" bench "ws://127.0.0.1:$nginx_port" --json -d "$DUR" --warmup 1 ${l#*|} | json_field rate) "
        done
        stop_nginx
        start_nginx "$tuned" "$tuned_port"
        rate[tuned]+="$("$WS" bench "ws://127.0.0.1:$tuned_port" --json -d "$DUR" --warmup 1 -s 65536 -w 8 --binary | json_field rate) "
        stop_nginx
    done
    kill "$echo_pid" 2>/dev/null || true
    local direct nginx
    direct=$(med ${rate[direct]})
    nginx=$(med ${rate[nginx]})
    goal proxy "vs direct" "$(ratio "$(med ${rate[ws]})" "$direct")" ">=" 0.7
    goal proxy "vs nginx" "$(ratio "$(med ${rate[ws]})" "$nginx")" ">=" 1.0
    {
        echo "### proxy"
        echo
        echo "Echo round trips/s, 32 B, 64 in flight, one connection (\`ws bench URL\`), ${DUR} s after 1 s warm-up, median of $ROUNDS rounds; upstream \`ws echo_server\`."
        echo "Goals: ≥ 0.7× direct and ≥ 1.0× nginx (1 worker)."
        echo
        echo "| path | round trips/s | vs direct | vs nginx |"
        echo "|---|---|---|---|"
        for s in direct ws nginx; do
            local m
            m=$(med ${rate[$s]})
            printf '| %s | %.0f (%s) | %.2f× | %.2f× |\n' "$s" "$m" "$(mm ${rate[$s]})" \
                "$(ratio "$m" "$direct")" "$(ratio "$m" "$nginx")"
        done
        echo
        echo "Other loads (round trips/s, same rounds):"
        echo
        echo "| load | \`ws bench\` arguments | ws | nginx | ws vs nginx |"
        echo "|---|---|---|---|---|"
        local l
        for l in "${loads[@]}"; do
            local name=${l%%|*} w n
            w=$(med ${rate[ws|$name]})
            n=$(med ${rate[nginx|$name]})
            printf '| %s | `%s` | %.0f (%s) | %.0f (%s) | %.2f× |\n' "$name" "${l#*|}" "$w" "$(mm ${rate[ws|$name]})" \
                "$n" "$(mm ${rate[nginx|$name]})" "$(ratio "$w" "$n")"
        done
        echo
        local w t
        w=$(med ${rate[ws|$big]})
        t=$(med ${rate[tuned]})
        printf '%s with nginx configured for it (`proxy_buffer_size 64k; proxy_buffers 4 64k;`): nginx %.0f (%s), ws vs nginx **%.2f×**. Claims about 64 KiB messages use this row.\n' \
            "$big" "$t" "$(mm ${rate[tuned]})" "$(ratio "$w" "$t")"
        echo
        echo "Command: \`scripts/bench.sh proxy\`"
        echo
    } >>"$RESULTS"
    rm -rf "$work" "$tuned"
}

bench_httpd() {
    local work
    work=$(mktemp -d)
    mkdir -p "$work/www" "$work/tmp"
    head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/www/1k.txt"
    local big=$((1024 * 1024 * 1024))
    [ "$SMOKE" = 1 ] && big=$((16 * 1024 * 1024))
    head -c "$big" /dev/zero >"$work/www/big.bin"
    # 100 KiB of log-like text, for the compressed case
    seq 1 20000 | awk '{ printf "2026-12-01T10:%02d:%02d GET /api/items/%d 200 %d ms\n", $1 % 60, $1 % 60, $1 * 7, $1 % 97 }' >"$work/lines.txt"
    head -c 102400 "$work/lines.txt" >"$work/www/100k.txt"
    # nginx's worker runs as nobody: let it read the files
    chmod 755 "$work" "$work/www" && chmod 644 "$work/www/"*
    local nginx_port
    nginx_port=$(free_port)
    # gzip as its users turn it on (level 1, compressed per request; wrk's 1 KiB requests
    # ask for no coding, so they are unaffected)
    # uploads: PUT into up/ (nginx: its dav module, as its users would turn it on)
    mkdir -p "$work/www/up" && chmod 777 "$work/www/up"
    nginx_conf "$work" "$nginx_port" "root $work/www; gzip on; gzip_types text/plain; location /up/ { dav_methods PUT; client_max_body_size 0; }"
    # the same nginx with its open-file cache on (off by default; it re-checks files only
    # every open_file_cache_valid seconds, where ws httpd checks on every request)
    local ofc_port
    ofc_port=$(free_port)
    nginx_conf "$work/ofc" "$ofc_port" "root $work/www; open_file_cache max=1000 inactive=20s; open_file_cache_valid 30s;"
    declare -A rps dl rss coded up uprss
    for _ in $(seq "$ROUNDS"); do
        for s in ws ws_flags nginx nginx_ofc; do
            local port pid
            if [ "$s" = ws ]; then
                start_server "$WS" httpd -q --threads 1 --port 0 --root "$work/www"
                port=$SERVER_PORT
                pid=$SERVER_PID
            elif [ "$s" = ws_flags ]; then
                start_server "$WS" httpd -q --threads 1 --port 0 --root "$work/www" --cors -H "X-Frame-Options: DENY" --cache-control "max-age=60" --upload --overwrite --max-upload-size 2g
                port=$SERVER_PORT
                pid=$SERVER_PID
            elif [ "$s" = nginx ]; then
                start_nginx "$work" "$nginx_port"
                pid=$NGINX_PID
                port=$nginx_port
            else
                start_nginx "$work/ofc" "$ofc_port"
                pid=$NGINX_PID
                port=$ofc_port
            fi
            # only 2xx answers count: a server answering errors fast must not score
            local out
            wrk -t1 -c32 -d1s "http://127.0.0.1:$port/1k.txt" >/dev/null # warm-up
            out=$(wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$port/1k.txt")
            if echo "$out" | grep -q "Non-2xx"; then echo "bench.sh: $s answered errors: $out" >&2; exit 1; fi
            rps[$s]+="$(echo "$out" | awk '/Requests\/sec/ { print $2 }') "
            # 100 KiB of text, compressed: ws with br and gzip (each made once per file
            # version), nginx with gzip (made per request)
            local codings=()
            [ "$s" = ws ] && codings=(br gzip)
            [ "$s" = nginx ] && codings=(gzip)
            for c in "${codings[@]}"; do
                out=$(wrk -t1 -c32 -d"${DUR}s" -H "Accept-Encoding: $c" "http://127.0.0.1:$port/100k.txt")
                if echo "$out" | grep -q "Non-2xx"; then echo "bench.sh: $s answered errors: $out" >&2; exit 1; fi
                coded[$s-$c]+="$(echo "$out" | awk '/Requests\/sec/ { print $2 }') "
            done
            # curl -T of the big file: ws with --upload, nginx with dav_methods PUT
            if [ "$s" = ws_flags ] || [ "$s" = nginx ]; then
                sync # each upload starts with no other writes pending (the disk's write-back is most of this figure)
                up[$s]+="$(curl -sf -o /dev/null -w '%{speed_upload}' -T "$work/www/big.bin" "http://127.0.0.1:$port/up/big.bin") "
                rm -f "$work/www/up/big.bin"
            fi
            if [ "$s" = ws_flags ]; then
                uprss[$s]+="$(peak_rss_kib "$pid") "
                stop_server
                continue
            fi
            dl[$s]+="$(curl -sf -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/big.bin") "
            local worker=$pid
            [ "$s" != ws ] && worker=$(pgrep -P "$pid" | head -1)
            rss[$s]+="$(peak_rss_kib "${worker:-$pid}") "
            if [ "$s" = ws ]; then stop_server; else stop_nginx; fi
        done
    done
    local base_rps base_dl
    base_rps=$(med ${rps[nginx]})
    base_dl=$(med ${dl[nginx]})
    goal httpd "1 KiB req/s vs nginx" "$(ratio "$(med ${rps[ws]})" "$base_rps")" ">=" 1.0
    goal httpd "download vs nginx" "$(ratio "$(med ${dl[ws]})" "$base_dl")" ">=" 0.9
    goal httpd "peak RSS MiB" "$(awk -v k="$(med ${rss[ws]})" 'BEGIN { print k / 1024 }')" "<=" 32
    goal httpd "1 KiB req/s with --cors -H --cache-control vs without" "$(ratio "$(med ${rps[ws_flags]})" "$(med ${rps[ws]})")" ">=" 0.95
    goal httpd "upload (curl -T) vs nginx dav" "$(ratio "$(med ${up[ws_flags]})" "$(med ${up[nginx]})")" ">=" 1.0
    goal httpd "upload peak RSS MiB" "$(awk -v k="$(med ${uprss[ws_flags]})" 'BEGIN { print k / 1024 }')" "<=" 32
    goal httpd "100 KiB text, ws br vs nginx gzip req/s" "$(ratio "$(med ${coded[ws-br]})" "$(med ${coded[nginx-gzip]})")" ">=" 1.0
    {
        echo "### httpd"
        echo
        echo "1 KiB file: \`wrk -t1 -c32 -d${DUR}s\` (keep-alive); download: \`curl -o /dev/null\` of a $((big / 1024 / 1024)) MiB file; median of $ROUNDS rounds (min–max)."
        echo "Goals: ≥ 1.0× nginx req/s; ≥ 0.9× nginx download throughput; server RSS ≤ 32 MiB."
        echo "nginx_ofc is the same nginx with \`open_file_cache\` on (it re-checks a file every 30 s; ws httpd keeps small files in memory until inotify reports a change: see § syscalls)."
        echo
        echo "| server | 1 KiB req/s | vs nginx | download MB/s | vs nginx | server peak RSS MiB |"
        echo "|---|---|---|---|---|---|"
        printf '| ws with --cors -H --cache-control --upload | %.0f (%s) | %.2f× | | | |\n' "$(med ${rps[ws_flags]})" "$(mm ${rps[ws_flags]})" "$(ratio "$(med ${rps[ws_flags]})" "$base_rps")"
        for s in ws nginx nginx_ofc; do
            local r d
            r=$(med ${rps[$s]})
            d=$(med ${dl[$s]})
            printf '| %s | %.0f (%s) | %.2f× | %.0f | %.2f× | %.1f |\n' "$s" "$r" "$(mm ${rps[$s]})" \
                "$(ratio "$r" "$base_rps")" "$(awk -v a="$d" 'BEGIN { print a / 1e6 }')" \
                "$(ratio "$d" "$base_dl")" \
                "$(awk -v k="$(med ${rss[$s]})" 'BEGIN { print k / 1024 }')"
        done
        echo
        echo "100 KiB of text, compressed (\`wrk -t1 -c32 -d${DUR}s -H 'Accept-Encoding: CODING'\`): ws makes each coding once per file version and keeps it; nginx (\`gzip on\`, level 1) compresses every answer."
        echo
        echo "| server, coding | req/s | vs nginx gzip |"
        echo "|---|---|---|"
        for k in ws-br ws-gzip nginx-gzip; do
            printf '| %s | %.0f (%s) | %.2f× |\n' "$k" "$(med ${coded[$k]})" "$(mm ${coded[$k]})" "$(ratio "$(med ${coded[$k]})" "$(med ${coded[nginx-gzip]})")"
        done
        echo
        echo
        echo "Upload: \`curl -T\` of the $((big / 1024 / 1024)) MiB file after \`sync\` (PUT; ws \`--upload --overwrite\`, written to a temporary file and renamed; nginx \`dav_methods PUT\`, which also writes a temporary file first). Both are bound by the disk's write-back here: compare over several runs."
        echo
        echo "| server | upload MB/s | vs nginx | server peak RSS MiB |"
        echo "|---|---|---|---|"
        for s in ws_flags nginx; do
            local label=$s
            [ "$s" = ws_flags ] && label="ws --upload"
            printf '| %s | %.0f (%s) | %.2f× | %s |\n' "$label" "$(awk -v a="$(med ${up[$s]})" 'BEGIN { print a / 1e6 }')" "$(mm ${up[$s]})" \
                "$(ratio "$(med ${up[$s]})" "$(med ${up[nginx]})")" \
                "$([ "$s" = ws_flags ] && awk -v k="$(med ${uprss[$s]})" 'BEGIN { printf "%.1f", k / 1024 }')"
        done
        echo
        echo "Command: \`scripts/bench.sh httpd\`"
        echo
    } >>"$RESULTS"
    rm -rf "$work"
}

# tree_cpu_s PID: CPU seconds of a process and its children (nginx: master and workers)
tree_cpu_s() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$(awk -v a="$total" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }')
    done
    echo "$total"
}

# small_site: a new folder with www/1k.txt (1 KiB of text) that nginx's worker may read;
# prints its path
small_site() {
    local work
    work=$(mktemp -d)
    mkdir -p "$work/www"
    head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/www/1k.txt"
    chmod 755 "$work" "$work/www" && chmod 644 "$work/www/"*
    echo "$work"
}

bench_threads() {
    local work
    work=$(small_site)
    local port_d port_o
    port_d=$(free_port)
    port_o=$(free_port)
    # nginx with two workers, as its users run it on two cores: Debian's defaults, and with
    # the open-file cache on
    nginx_conf "$work/d" "$port_d" "root $work/www;" 2
    nginx_conf "$work/o" "$port_o" "root $work/www; open_file_cache max=1000 inactive=20s; open_file_cache_valid 30s;" 2
    declare -A rps cpu
    for _ in $(seq "$ROUNDS"); do
        for s in ws1 ws2 nginx2 nginx2_ofc; do
            local port pid out c0 c1 n
            case "$s" in
                ws1 | ws2)
                    start_server "$WS" httpd -q --threads "${s#ws}" --port 0 --root "$work/www"
                    port=$SERVER_PORT
                    pid=$SERVER_PID
                    ;;
                nginx2) start_nginx "$work/d" "$port_d"; port=$port_d; pid=$NGINX_PID ;;
                nginx2_ofc) start_nginx "$work/o" "$port_o"; port=$port_o; pid=$NGINX_PID ;;
            esac
            wrk -t2 -c64 -d1s "http://127.0.0.1:$port/1k.txt" >/dev/null # warm-up
            c0=$(tree_cpu_s "$pid")
            out=$(wrk -t2 -c64 -d"${DUR}s" "http://127.0.0.1:$port/1k.txt")
            c1=$(tree_cpu_s "$pid")
            if echo "$out" | grep -q "Non-2xx"; then echo "bench.sh: $s answered errors: $out" >&2; exit 1; fi
            rps[$s]+="$(echo "$out" | awk '/Requests\/sec/ { print $2 }') "
            n=$(echo "$out" | awk '/requests in/ { print $1 }')
            cpu[$s]+="$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.4f", (b - a) / n * 1000 }') "
            case "$s" in ws*) stop_server ;; *) stop_nginx ;; esac
        done
    done
    rm -rf "$work"
    local base
    base=$(med ${rps[nginx2]})
    {
        echo "### threads"
        echo
        echo "Two workers on two cores: \`ws httpd --threads 2\` vs nginx \`worker_processes 2\` (Debian's defaults: sendfile on, tcp_nopush on; and with open_file_cache), 1 KiB file, \`wrk -t2 -c64 -d${DUR}s\`; \`--threads 1\` for scale. wrk shares the two cores, so the CPU seconds each server used per 1,000 requests (its process tree, from /proc) is the figure that does not depend on the core count. Median of $ROUNDS rounds (min–max)."
        echo
        echo "| server | req/s | vs nginx 2 workers | CPU ms per 1,000 requests |"
        echo "|---|---|---|---|"
        for s in ws2 ws1 nginx2 nginx2_ofc; do
            printf '| %s | %.0f (%s) | %.2f× | %.1f |\n' "$s" "$(med ${rps[$s]})" "$(mm ${rps[$s]})" \
                "$(ratio "$(med ${rps[$s]})" "$base")" "$(awk -v c="$(med ${cpu[$s]})" 'BEGIN { print c * 1000 }')"
        done
        echo
        echo "Goals (threads issue): --threads 2 ≥ 1.0× nginx with 2 workers (default and open_file_cache); CPU per request ≤ nginx's."
        echo
        echo "Command: \`scripts/bench.sh threads\`"
        echo
    } >>"$RESULTS"
    goal threads "httpd --threads 2 vs nginx 2 workers req/s" "$(ratio "$(med ${rps[ws2]})" "$base")" ">=" 1.0
    goal threads "httpd --threads 2 vs nginx 2 workers + open_file_cache req/s" "$(ratio "$(med ${rps[ws2]})" "$(med ${rps[nginx2_ofc]})")" ">=" 1.0
    goal threads "httpd CPU per request vs nginx 2 workers" "$(ratio "$(med ${cpu[ws2]})" "$(med ${cpu[nginx2]})")" "<=" 1.0
    threads_websocket
}

# The WebSocket servers with two workers, each beside the best peer that runs on two cores:
# echo vs Node `ws` under `cluster` (2 workers), proxy_server vs nginx with 2 workers (both
# in front of the same `ws echo_server --threads 2`), broadcast fan-out vs Node `ws` (one
# process: its rooms cannot span processes without a bus). Rate and the server's CPU seconds
# (process tree) per 100k round trips / delivered messages.
threads_websocket() {
    local work
    work=$(mktemp -d)
    upstream_echo "$work/up.log" 2
    local up_pid=$UP_PID up_port=$UP_PORT
    local nginx_port
    nginx_port=$(free_port)
    nginx_conf "$work" "$nginx_port" "$(ws_proxy_location "$up_port")" 2
    # label|server command ("nginx" for nginx)|ws bench arguments
    local runs=(
        "echo ws --threads 2|$WS echo_server -q --threads 2 --port 0|-c 64 -w 8 -s 32"
        "echo ws --threads 1|$WS echo_server -q --threads 1 --port 0|-c 64 -w 8 -s 32"
        "echo Node ws cluster 2|node scripts/peers/echo_cluster.js 2|-c 64 -w 8 -s 32"
        "proxy ws --threads 2|$WS proxy_server -q --threads 2 --port 0 --remote_host ws://127.0.0.1:$up_port|-c 64 -w 8 -s 32"
        "proxy nginx 2 workers|nginx|-c 64 -w 8 -s 32"
        "fan-out ws --threads 2|$WS broadcast_server -q --threads 2 --port 0|--mode fanout -c 100 -w 64 -s 32"
        "fan-out ws --threads 1|$WS broadcast_server -q --threads 1 --port 0|--mode fanout -c 100 -w 64 -s 32"
        "fan-out Node ws|node scripts/peers/broadcast_server.js|--mode fanout -c 100 -w 64 -s 32"
    )
    declare -A rate cpu
    local r
    for _ in $(seq "$ROUNDS"); do
        for r in "${runs[@]}"; do
            local label=${r%%|*} rest=${r#*|}
            local cmd=${rest%%|*} load=${rest#*|}
            local port pid out c0 c1
            if [ "$cmd" = nginx ]; then
                start_nginx "$work" "$nginx_port"
                port=$nginx_port pid=$NGINX_PID
            else
                # shellcheck disable=SC2086
                start_server $cmd
                port=$SERVER_PORT pid=$SERVER_PID
            fi
            c0=$(tree_cpu_s "$pid")
            # shellcheck disable=SC2086
            out=$("$WS" bench "ws://127.0.0.1:$port" $load -d "$DUR" --warmup 1 --json)
            c1=$(tree_cpu_s "$pid")
            rate[$label]+="$(echo "$out" | json_field rate) "
            cpu[$label]+="$(per100k "$c0" "$c1" "$(echo "$out" | json_field messages)") "
            if [ "$cmd" = nginx ]; then
                stop_nginx
            else
                pkill -P "$SERVER_PID" 2>/dev/null || true
                stop_server
            fi
        done
    done
    kill "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
    rm -rf "$work"
    {
        echo "#### WebSocket servers with two workers"
        echo
        echo "\`ws bench URL -c 64 -w 8 -s 32\` (echo, proxy) and \`--mode fanout -c 100 -w 64 -s 32\` (fan-out), ${DUR} s after 1 s warm-up; the proxies relay to one \`ws echo_server --threads 2\`. The peers as their users would run them on two cores: Node \`ws\` under \`cluster\` with two workers (\`scripts/peers/echo_cluster.js\`), nginx \`worker_processes 2\`; Node's broadcast server is one process (its rooms cannot span processes without a bus). CPU: the server's process tree, seconds per 100k round trips (fan-out: per 100k delivered messages). Median of $ROUNDS rounds (min–max)."
        echo
        echo "| load | server | rate | vs peer | CPU s per 100k | CPU vs peer |"
        echo "|---|---|---|---|---|---|"
        local group peer
        for r in "${runs[@]}"; do
            local label=${r%%|*}
            group=${label%% *}
            case "$group" in
                echo) peer="echo Node ws cluster 2" ;;
                proxy) peer="proxy nginx 2 workers" ;;
                fan-out) peer="fan-out Node ws" ;;
            esac
            printf '| %s | %s | %.0f (%s) | %.2f× | %s | %.2f× less |\n' "$group" "${label#* }" "$(med ${rate[$label]})" "$(mm ${rate[$label]})" \
                "$(ratio "$(med ${rate[$label]})" "$(med ${rate[$peer]})")" "$(med ${cpu[$label]})" \
                "$(ratio "$(med ${cpu[$peer]})" "$(med ${cpu[$label]})")"
        done
        echo
        echo "Goals (threads issue): with --threads 2, ≥ 1.0× the best peer with two workers or processes."
        echo
    } >>"$RESULTS"
    goal threads "echo_server --threads 2 vs Node ws cluster 2" "$(ratio "$(med ${rate[echo ws --threads 2]})" "$(med ${rate[echo Node ws cluster 2]})")" ">=" 1.0
    goal threads "proxy_server --threads 2 vs nginx 2 workers" "$(ratio "$(med ${rate[proxy ws --threads 2]})" "$(med ${rate[proxy nginx 2 workers]})")" ">=" 1.0
    goal threads "broadcast --threads 2 fan-out vs Node ws" "$(ratio "$(med ${rate[fan-out ws --threads 2]})" "$(med ${rate[fan-out Node ws]})")" ">=" 1.0
}

# syscall_count PID CMD...: runs CMD (the load) while `strace -c -f` counts the system calls
# of process PID (every thread); sets SYSCALLS (the total), SYSCALL_TOP (the most frequent
# calls, "name count, ...") and LOAD_OUT (CMD's output). A short run apart from the timed
# ones: strace slows the server many times over.
syscall_count() {
    local pid=$1 out st; shift
    out=$(mktemp)
    strace -c -f -p "$pid" -o "$out" 2>/dev/null &
    st=$!
    sleep 0.5
    LOAD_OUT=$("$@")
    kill -INT "$st" 2>/dev/null || true
    wait "$st" 2>/dev/null || true
    SYSCALLS=$(awk '/ total$/ { print $4 }' "$out")
    SYSCALL_TOP=$(awk '$1 ~ /^[0-9.]+$/ && !/ total$/ && $4 ~ /^[0-9]+$/ { print $4, $NF }' "$out" | sort -rn | head -4 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')
    rm -f "$out"
}

# per_unit CALLS UNITS: CALLS / UNITS with two decimals
per_unit() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.2f", (n > 0) ? c / n : 0 }'; }

bench_syscalls() {
    local work
    work=$(small_site)
    local -A port conf
    for s in nginx nginx_tuned nginx_tuned_ofc; do port[$s]=$(free_port); done
    # Debian's defaults (sendfile on, tcp_nopush on, from nginx_conf); tuned for small files
    # as the issue measured it; and tuned with the open-file cache
    conf[nginx]="root $work/www;"
    conf[nginx_tuned]="root $work/www; sendfile off; tcp_nopush off;"
    conf[nginx_tuned_ofc]="root $work/www; sendfile off; tcp_nopush off; open_file_cache max=1000 inactive=20s; open_file_cache_valid 30s;"
    for s in nginx nginx_tuned nginx_tuned_ofc; do nginx_conf "$work/$s" "${port[$s]}" "${conf[$s]}"; done
    local servers=(ws nginx nginx_tuned nginx_tuned_ofc)
    declare -A rps cpu calls top fresh
    # Five rounds (the four servers are within a few % of each other, this machine's noise
    # is more), each starting with the next server, so that none always runs first.
    local r rounds=5 order
    [ "$SMOKE" = 1 ] && rounds=1
    for r in $(seq "$rounds"); do
        order=("${servers[@]:$(((r - 1) % 4))}" "${servers[@]:0:$(((r - 1) % 4))}")
        for s in "${order[@]}"; do
            local p pid worker out n c0 c1
            if [ "$s" = ws ]; then
                start_server "$WS" httpd -q --threads 1 --port 0 --root "$work/www"
                p=$SERVER_PORT pid=$SERVER_PID worker=$SERVER_PID
            else
                start_nginx "$work/$s" "${port[$s]}"
                p=${port[$s]} pid=$NGINX_PID
                worker=$(pgrep -P "$pid" | head -1)
            fi
            wrk -t1 -c32 -d1s "http://127.0.0.1:$p/1k.txt" >/dev/null # warm-up
            c0=$(tree_cpu_s "$pid")
            out=$(wrk -t1 -c32 -d"${DUR}s" "http://127.0.0.1:$p/1k.txt")
            c1=$(tree_cpu_s "$pid")
            if echo "$out" | grep -q "Non-2xx"; then echo "bench.sh: $s answered errors: $out" >&2; exit 1; fi
            rps[$s]+="$(echo "$out" | awk '/Requests\/sec/ { print $2 }') "
            n=$(echo "$out" | awk '/requests in/ { print $1 }')
            cpu[$s]+="$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n * 1e6 }') "
            if [ -z "${calls[$s]:-}" ]; then
                syscall_count "$worker" wrk -t1 -c32 -d1s "http://127.0.0.1:$p/1k.txt"
                n=$(echo "$LOAD_OUT" | awk '/requests in/ { print $1 }')
                calls[$s]=$(per_unit "$SYSCALLS" "$n")
                top[$s]="$SYSCALL_TOP"
                # Freshness: replace the file the way editors and deploys do (a new file
                # renamed over it), then ask at once.
                printf 'version two %01000d' 0 | head -c 1024 >"$work/www/.new" && chmod 644 "$work/www/.new"
                mv "$work/www/.new" "$work/www/1k.txt"
                if curl -sf "http://127.0.0.1:$p/1k.txt" | grep -q '^version two'; then fresh[$s]="new version at once"; else fresh[$s]="old version (stale)"; fi
                head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/www/1k.txt"
            fi
            if [ "$s" = ws ]; then stop_server; else stop_nginx; fi
        done
    done
    # The echo servers: system calls per round trip (32 B, 64 in flight)
    declare -A echo_calls echo_top
    for s in ws node; do
        # shellcheck disable=SC2046
        start_server $(echo_cmd "$s")
        syscall_count "$SERVER_PID" "$WS" bench "ws://127.0.0.1:$SERVER_PORT" --json -d 1 -s 32 -w 64
        echo_calls[$s]=$(per_unit "$SYSCALLS" "$(echo "$LOAD_OUT" | json_field messages)")
        echo_top[$s]="$SYSCALL_TOP"
        stop_server
    done
    # The broadcast servers: system calls per delivered message (1 sender, 100 receivers)
    for s in ws node; do
        if [ "$s" = ws ]; then start_server "$WS" broadcast_server -q --threads 1 --port 0; else start_server node scripts/peers/broadcast_server.js; fi
        syscall_count "$SERVER_PID" "$WS" bench "ws://127.0.0.1:$SERVER_PORT" --mode fanout -c 100 -w 64 -s 32 --json -d 1
        echo_calls[fan$s]=$(per_unit "$SYSCALLS" "$(echo "$LOAD_OUT" | json_field messages)")
        echo_top[fan$s]="$SYSCALL_TOP"
        stop_server
    done
    # The file relays: system calls per MiB relayed (one sender, one receiver). Node ws's
    # broadcast server takes the file as one whole message (its default 100 MiB limit) and
    # sends it on as one frame (the PDU: twice the file's size, hex), which ws receive reads
    # in pieces; ws transfer relays frame by frame.
    local mib=32
    [ "$SMOKE" = 1 ] && mib=4
    head -c $((mib * 1024 * 1024)) /dev/urandom >"$work/relay.bin"
    for s in ws node; do
        if [ "$s" = ws ]; then start_server "$WS" transfer -q --threads 1 --port 0; else start_server node scripts/peers/broadcast_server.js; fi
        start_receive "ws://127.0.0.1:$SERVER_PORT" "$work"
        syscall_count "$SERVER_PID" "$WS" send "ws://127.0.0.1:$SERVER_PORT" "$work/relay.bin"
        end_receive "$work" relay.bin
        echo_calls[xfer$s]=$(per_unit "$SYSCALLS" "$mib")
        echo_top[xfer$s]="$SYSCALL_TOP"
        rm -rf "$work/recv"
        stop_server
    done
    rm -rf "$work"
    local base
    base=$(med ${rps[nginx_tuned_ofc]})
    {
        echo "### syscalls"
        echo
        echo "httpd against nginx configured three ways, one worker each, 1 KiB file, \`wrk -t1 -c32 -d${DUR}s\`, median of $rounds rounds (min–max; each round starts with the next server). wrk shares the two cores, so the server's CPU time per request (its process tree, from /proc, during the timed run) is given too: it does not depend on how the cores were shared. System calls per request: \`strace -c -f\` on the serving process during a separate 1 s wrk run (strace slows it; the count per request is what matters). Freshness: the file is replaced by a rename (as editors and deploys do) and fetched at once."
        echo
        echo "| server | req/s | vs nginx tuned + open_file_cache | server CPU µs per request | system calls per request | most frequent (in that run) | after a change |"
        echo "|---|---|---|---|---|---|---|"
        for s in "${servers[@]}"; do
            local label=$s
            case "$s" in
                ws) label="ws httpd" ;;
                nginx) label="nginx, Debian defaults (sendfile on, tcp_nopush on)" ;;
                nginx_tuned) label="nginx tuned (sendfile off, tcp_nopush off)" ;;
                nginx_tuned_ofc) label="nginx tuned + open_file_cache (valid 30 s)" ;;
            esac
            printf '| %s | %.0f (%s) | %.2f× | %s (%s) | %s | %s | %s |\n' "$label" "$(med ${rps[$s]})" "$(mm ${rps[$s]})" \
                "$(ratio "$(med ${rps[$s]})" "$base")" "$(med ${cpu[$s]})" "$(mm ${cpu[$s]})" "${calls[$s]}" "${top[$s]}" "${fresh[$s]}"
        done
        echo
        echo "Echo servers, system calls per round trip (32 B, 64 in flight, \`ws bench -s 32 -w 64\` for 1 s under strace):"
        echo
        echo "| server | system calls per round trip | most frequent |"
        echo "|---|---|---|"
        for s in ws node; do
            printf '| %s | %s | %s |\n' "$s" "${echo_calls[$s]}" "${echo_top[$s]}"
        done
        echo
        echo "Broadcast servers, system calls per delivered message (1 sender → 100 receivers, 32 B, \`ws bench --mode fanout -c 100 -w 64\` for 1 s under strace; ws with one worker):"
        echo
        echo "| server | system calls per delivered message | most frequent |"
        echo "|---|---|---|"
        for s in ws node; do
            printf '| %s | %s | %s |\n' "$s" "${echo_calls[fan$s]}" "${echo_top[fan$s]}"
        done
        echo
        echo "File relays, system calls per MiB relayed (\`ws send\` → relay → \`ws receive\`, a $mib MiB file, under strace; ws transfer with one worker, Node ws's broadcast server as the relay):"
        echo
        echo "| relay | system calls per MiB | most frequent |"
        echo "|---|---|---|"
        for s in ws node; do
            printf '| %s | %s | %s |\n' "$s" "${echo_calls[xfer$s]}" "${echo_top[xfer$s]}"
        done
        echo
        echo "Command: \`scripts/bench.sh syscalls\`"
        echo
    } >>"$RESULTS"
    goal syscalls "httpd 1 KiB req/s vs nginx tuned + open_file_cache" "$(ratio "$(med ${rps[ws]})" "$base")" ">=" 1.0
    goal syscalls "httpd system calls per request" "${calls[ws]}" "<=" 4
    goal syscalls "httpd CPU per request vs nginx tuned + open_file_cache" "$(ratio "$(med ${cpu[ws]})" "$(med ${cpu[nginx_tuned_ofc]})")" "<=" 1.0
    goal syscalls "echo system calls per round trip vs Node ws" "$(ratio "${echo_calls[ws]}" "${echo_calls[node]}")" "<=" 1.0
    goal syscalls "fan-out system calls per delivered message vs Node ws" "$(ratio "${echo_calls[fanws]}" "${echo_calls[fannode]}")" "<=" 1.0
    goal syscalls "transfer system calls per MiB vs Node ws relaying" "$(ratio "${echo_calls[xferws]}" "${echo_calls[xfernode]}")" "<=" 1.0
}

bench_curl() {
    local work
    work=$(mktemp -d)
    mkdir -p "$work/www" "$work/tmp"
    head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/www/1k.txt"
    local big=$((1024 * 1024 * 1024)) n=1000
    [ "$SMOKE" = 1 ] && big=$((16 * 1024 * 1024)) && n=20
    head -c "$big" /dev/urandom >"$work/www/big.bin"
    chmod 755 "$work" "$work/www" && chmod 644 "$work/www/"*
    local port
    port=$(free_port)
    # Uploads land in memory when there is room (the clients are measured, not the disk).
    local up=$work/up
    [ "$(df -Pm /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt $((big / 1048576 * 3)) ] 2>/dev/null && up=$(mktemp -d -p /dev/shm)
    mkdir -p "$up/tmp" && chmod -R 777 "$up"
    nginx_conf "$work" "$port" "root $work/www; location /up/ { root $up; dav_methods PUT; create_full_put_path on; client_max_body_size 0; client_body_temp_path $up/tmp; }"
    start_nginx "$work" "$port"
    local url="http://127.0.0.1:$port"
    declare -A dl null rss many upl uprss upcpu
    # warm-up: the page cache holds the file and each client has run once
    for c in curl "$WS curl"; do $c -s -o /dev/null "$url/big.bin"; done
    for _ in $(seq "$ROUNDS"); do
        for c in ws curl; do
            local cmd=(curl -s -o "$work/out.bin")
            [ "$c" = ws ] && cmd=("$WS" curl -s -o "$work/out.bin")
            # Same start for both: no dirty pages of the previous download being written back.
            sync
            dl[$c]+="$(wall /usr/bin/time -f "%M" -o "$work/rss" "${cmd[@]}" "$url/big.bin") "
            cmp -s "$work/out.bin" "$work/www/big.bin" || { echo "bench.sh: $c downloaded different bytes" >&2; exit 1; }
            rss[$c]+="$(tail -1 "$work/rss") "
            rm -f "$work/out.bin"
            # The client's own speed, without the disk.
            local tonull=(curl -s -o /dev/null)
            [ "$c" = ws ] && tonull=("$WS" curl -s -o /dev/null)
            null[$c]+="$(wall "${tonull[@]}" "$url/big.bin") "
            local small=(curl -s -o /dev/null)
            [ "$c" = ws ] && small=("$WS" curl -s -o /dev/null)
            local s e
            s=$(date +%s%N)
            for _ in $(seq "$n"); do "${small[@]}" "$url/1k.txt" || exit 1; done
            e=$(date +%s%N)
            many[$c]+="$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", (e - s) / 1e9 }') "
            # -T: the file PUT to nginx (dav_methods PUT), streamed.
            local put=(curl -s -o /dev/null -T "$work/www/big.bin")
            [ "$c" = ws ] && put=("$WS" curl -s -o /dev/null -T "$work/www/big.bin")
            upl[$c]+="$(wall /usr/bin/time -f "%M %U %S" -o "$work/rss" "${put[@]}" "$url/up/$c.bin") "
            uprss[$c]+="$(tail -1 "$work/rss" | awk '{ print $1 }') "
            upcpu[$c]+="$(tail -1 "$work/rss" | awk '{ print $2 + $3 }') "
            cmp -s "$up/up/$c.bin" "$work/www/big.bin" || { echo "bench.sh: $c uploaded different bytes" >&2; exit 1; }
            rm -f "$up/up/$c.bin"
        done
    done
    stop_nginx
    [ "$up" != "$work/up" ] && rm -rf "$up"
    local mib=$((big / 1024 / 1024))
    {
        echo "### curl"
        echo
        echo "Against nginx (1 worker): a $mib MiB download with \`-s -o FILE\` (after \`sync\`; the disk's writeback makes this noisy) and with \`-s -o /dev/null\`, and $n sequential runs fetching a 1 KiB file; median of $ROUNDS rounds (min–max)."
        echo "Goals (curl issue): download ≥ 1.0× curl's throughput with peak RSS ≤ 16 MiB; $n small requests ≤ 0.9× curl's time; a $mib MiB \`-T\` upload (PUT to nginx's dav module) ≥ 1.0× curl's throughput with peak RSS ≤ 16 MiB."
        echo
        echo "| client | download to file MB/s | vs curl | to /dev/null MB/s | vs curl | peak RSS MiB | $n requests, s | vs curl | -T upload MB/s | vs curl | upload peak RSS MiB | upload CPU s |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
        local base_dl base_null base_many
        base_dl=$(med ${dl[curl]})
        base_null=$(med ${null[curl]})
        base_many=$(med ${many[curl]})
        local base_up
        base_up=$(med ${upl[curl]})
        for c in ws curl; do
            local d z m u
            d=$(med ${dl[$c]})
            z=$(med ${null[$c]})
            m=$(med ${many[$c]})
            u=$(med ${upl[$c]})
            printf '| %s | %.0f | %.2f× | %.0f | %.2f× | %.1f | %s (%s) | %.2f× | %.0f | %.2f× | %.1f | %s |\n' "$c" "$(awk -v b="$big" -v t="$d" 'BEGIN { print b / t / 1e6 }')" \
                "$(awk -v a="$d" -v b="$base_dl" 'BEGIN { print b / a }')" \
                "$(awk -v b="$big" -v t="$z" 'BEGIN { print b / t / 1e6 }')" \
                "$(awk -v a="$z" -v b="$base_null" 'BEGIN { print b / a }')" \
                "$(awk -v k="$(med ${rss[$c]})" 'BEGIN { print k / 1024 }')" \
                "$m" "$(mm ${many[$c]})" "$(ratio "$m" "$base_many")" \
                "$(awk -v b="$big" -v t="$u" 'BEGIN { print b / t / 1e6 }')" \
                "$(awk -v a="$u" -v b="$base_up" 'BEGIN { print b / a }')" \
                "$(awk -v k="$(med ${uprss[$c]})" 'BEGIN { print k / 1024 }')" "$(med ${upcpu[$c]})"
        done
        echo
        echo "The upload's wall time is mostly nginx's (it writes the body to a temporary file, then renames it); the clients' own CPU seconds (user + system) show what each spends."
        echo
        echo "Command: \`scripts/bench.sh curl\`"
        echo
    } >>"$RESULTS"
    # times: a ratio of curl's time to ours is our throughput relative to curl's
    goal curl "download to file vs curl" "$(ratio "$(med ${dl[curl]})" "$(med ${dl[ws]})")" ">=" 1.0
    goal curl "download peak RSS MiB" "$(awk -v k="$(med ${rss[ws]})" 'BEGIN { print k / 1024 }')" "<=" 16
    goal curl "$n small requests, time vs curl" "$(ratio "$(med ${many[ws]})" "$(med ${many[curl]})")" "<=" 0.9
    goal curl "-T upload vs curl" "$(ratio "$(med ${upl[curl]})" "$(med ${upl[ws]})")" ">=" 1.0
    goal curl "upload peak RSS MiB" "$(awk -v k="$(med ${uprss[ws]})" 'BEGIN { print k / 1024 }')" "<=" 16
    rm -rf "$work"
}

# wall seconds of a command
wall() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", (e - s) / 1e9 }'
}

bench_push() {
    local n=1000000
    [ "$SMOKE" = 1 ] && n=20000
    local plain=() deflate=() echo_rate=() out
    for _ in $(seq "$ROUNDS"); do
        for mode in plain deflate; do
            # push_server's run ends with its first client, as the reference's
            start_server "$WS" push_server -q --port 0
            local x=()
            [ "$mode" = plain ] && x=(-x)
            out=$("$WS" autoroute "ws://127.0.0.1:$SERVER_PORT" --msg_count "$n" "${x[@]}" 2>&1)
            local ms
            ms=$(echo "$out" | grep -o 'AUTOROUTE IXWebSocket :: [0-9]*' | grep -o '[0-9]*$')
            [ -n "$ms" ] || { echo "bench.sh: autoroute failed: $out" >&2; exit 1; }
            local rate
            rate=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms > 0 ? ms : 1) * 1000 }')
            if [ "$mode" = plain ]; then plain+=("$rate"); else deflate+=("$rate"); fi
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=
        done
        start_server "$WS" push_server -q --port 0
        out=$("$WS" bench "ws://127.0.0.1:$SERVER_PORT" --json -d "$DUR" --warmup 1 -s 11 -w 64 -c 1)
        echo_rate+=("$(echo "$out" | json_field rate | xargs printf '%.0f')")
        stop_server
    done
    {
        echo "### push"
        echo
        echo "The reference's throughput test: \`ws push_server\` pushes $n messages of \`hello world\` to \`ws autoroute URL --msg_count $n\` (messages/s from its \`AUTOROUTE IXWebSocket :: T ms\` line), and \`ws bench\` (11 B, 64 in flight, one connection) echoing through the same server. Median of $ROUNDS rounds (min–max)."
        echo
        echo "| client | messages/s |"
        echo "|---|---|"
        echo "| \`ws autoroute -x\` (no compression) | $(med "${plain[@]}") ($(mm "${plain[@]}")) |"
        echo "| \`ws autoroute\` (permessage-deflate) | $(med "${deflate[@]}") ($(mm "${deflate[@]}")) |"
        echo "| \`ws bench\` echo round trips | $(med "${echo_rate[@]}") ($(mm "${echo_rate[@]}")) |"
        echo
        echo "Command: \`scripts/bench.sh push\`"
        echo
    } >>"$RESULTS"
}

bench_gzip() {
    local mib=512 rounds=5
    [ "$SMOKE" = 1 ] && mib=8 && rounds=1
    # In memory when there is room (the tools, not the disk, are measured: writing 512 MiB to
    # this disk varied by a second from run to run).
    local base=/dev/shm
    [ "$(df -Pm "$base" 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt $((mib * 4)) ] 2>/dev/null || base=${TMPDIR:-/tmp}
    local work
    work=$(mktemp -d -p "$base")
    # Log-like text (words and numbers), 4 MiB repeated: each repeat is far beyond deflate's
    # 32 KiB window, so it compresses as fresh text does.
    "$PY" -c '
import random, sys
random.seed(7)
words = "GET POST /api/v1/items user id=%d status ok error timeout connect latency ms bytes cache hit miss".split()
out = []
size = 0
while size < 4 << 20:
    line = "2026-12-01T%02d:%02d:%02d " % (random.randrange(24), random.randrange(60), random.randrange(60))
    line += " ".join(random.choice(words) for _ in range(8)) + " %d\n" % random.randrange(10**6)
    out.append(line)
    size += len(line)
sys.stdout.write("".join(out))' >"$work/chunk.txt"
    for _ in $(seq $((mib / 4))); do cat "$work/chunk.txt"; done >"$work/data.txt"
    rm -f "$work/chunk.txt"
    # timed NAME CMD...: wall seconds, CPU seconds and peak RSS KiB of CMD into arrays NAME_*
    declare -A wall=() cpu=() rss=()
    timed() {
        local name=$1; shift
        /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" >/dev/null 2>&1
        read -r e u s m <"$work/t"
        wall[$name]+="$e "
        cpu[$name]+="$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }') "
        rss[$name]+="$m "
    }
    for _ in $(seq "$rounds"); do
        timed gz_gnu sh -c "gzip -6 -c '$work/data.txt' > '$work/gnu.gz'"
        timed gz_ws "$WS" gzip --force "$work/data.txt"
        gzip -dc "$work/data.txt.gz" | cmp -s - "$work/data.txt" || { echo "bench.sh: ws gzip output differs" >&2; exit 1; }
        timed gun_gnu sh -c "gzip -dc '$work/gnu.gz' > '$work/gnu.out'"
        cp "$work/gnu.gz" "$work/in.txt.gz"
        timed gun_ws "$WS" gunzip --force "$work/in.txt.gz"
        cmp -s "$work/in.txt" "$work/data.txt" || { echo "bench.sh: ws gunzip output differs" >&2; exit 1; }
        rm -f "$work/gnu.out" "$work/in.txt" "$work/in.txt.gz"
    done
    local ratio_out
    ratio_out=$(awk -v a="$(stat -c %s "$work/data.txt")" -v b="$(stat -c %s "$work/data.txt.gz")" 'BEGIN { printf "%.1f", a / b }')
    mib_of() { printf '%s\n' "$@" | median | awk '{ printf "%.1f", $1 / 1024 }'; }
    row() {
        local job=$1 gnu=$2 ws=$3
        echo "| $job | $(med ${wall[$gnu]}) ($(mm ${wall[$gnu]})) | $(med ${wall[$ws]}) ($(mm ${wall[$ws]})) | $(ratio "$(med ${wall[$gnu]})" "$(med ${wall[$ws]})" | xargs printf '%.2f')× | $(med ${cpu[$gnu]}) | $(med ${cpu[$ws]}) | $(mib_of ${rss[$ws]}) |"
    }
    {
        echo "### gzip"
        echo
        echo "A $mib MiB log-like text file (compresses ${ratio_out}× at level 6) in $base; median of $rounds rounds (min–max). Goals: ≥ 1.0× GNU gzip's speed both ways; peak RSS ≤ 16 MiB."
        echo
        echo "| job | GNU gzip 1.12 s | ws s | ws speed vs GNU | GNU CPU s | ws CPU s | ws peak RSS MiB |"
        echo "|---|---|---|---|---|---|---|"
        row "compress (\`gzip -6 -c\` / \`ws gzip\`)" gz_gnu gz_ws
        row "decompress (\`gzip -dc\` / \`ws gunzip\`)" gun_gnu gun_ws
        echo
        echo "ws also hashes input and output (the reference's checksum lines) and writes to a temporary file it renames."
        echo
        echo "Command: \`scripts/bench.sh gzip\`"
        echo
    } >>"$RESULTS"
    goal gzip "compress speed vs GNU gzip -6" "$(ratio "$(med ${wall[gz_gnu]})" "$(med ${wall[gz_ws]})")" ">=" 1.0
    goal gzip "decompress speed vs GNU gzip -d" "$(ratio "$(med ${wall[gun_gnu]})" "$(med ${wall[gun_ws]})")" ">=" 1.0
    local most
    most=$(printf '%s\n' ${rss[gz_ws]} ${rss[gun_ws]} | sort -n | tail -1)
    goal gzip "peak RSS MiB" "$(awk -v k="$most" 'BEGIN { print k / 1024 }')" "<=" 16
    rm -rf "$work"
}

# start_receive URL WORK: `ws receive URL` into WORK/recv in the background (its peak RSS in
# WORK/recv.rss), once it waits for a file
start_receive() {
    mkdir -p "$2/recv"
    /usr/bin/time -f "%M" -o "$2/recv.rss" "$WS" receive "$1" --save-dir "$2/recv" >"$2/recv.log" 2>&1 &
    RECV_PID=$!
    for _ in $(seq 100); do grep -q "Waiting for message" "$2/recv.log" && break; sleep 0.05; done
    sleep 0.2
}

# end_receive WORK NAME: waits for the receiver and checks WORK/recv/NAME is WORK/NAME
end_receive() {
    wait "$RECV_PID" || { echo "bench.sh: ws receive failed" >&2; cat "$1/recv.log" >&2; exit 1; }
    cmp -s "$1/$2" "$1/recv/$2" || { echo "bench.sh: transferred file differs" >&2; exit 1; }
}

bench_transfer() {
    local size=$((1024 * 1024 * 1024))
    [ "$SMOKE" = 1 ] && size=$((16 * 1024 * 1024))
    local work
    work=$(mktemp -d)
    head -c "$size" /dev/urandom >"$work/file.bin"
    local cat_s=() tcp_s=() ws_s=() send_rss=() recv_rss=() relay_rss=()
    for _ in $(seq "$ROUNDS"); do
        cat_s+=("$(wall cat "$work/file.bin")")
        # plain TCP copy through loopback, written to disk like the receiver does
        local port
        port=$(free_port)
        socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "OPEN:$work/tcp.out,creat,trunc" &
        local socat_pid=$!
        sleep 0.3
        tcp_s+=("$(wall socat -u "OPEN:$work/file.bin" "TCP:127.0.0.1:$port")")
        wait "$socat_pid" || true
        rm -f "$work/tcp.out"
        # ws send -> ws transfer -> ws receive
        start_server "$WS" transfer -q --port 0
        start_receive "ws://127.0.0.1:$SERVER_PORT" "$work"
        ws_s+=("$(wall /usr/bin/time -f "%M" -o "$work/send.rss" "$WS" send "ws://127.0.0.1:$SERVER_PORT" "$work/file.bin")")
        end_receive "$work" file.bin
        send_rss+=("$(tail -1 "$work/send.rss")")
        recv_rss+=("$(tail -1 "$work/recv.rss")")
        relay_rss+=("$(peak_rss_kib "$SERVER_PID")")
        stop_server
        rm -rf "$work/recv"
    done
    local mib=$((size / 1024 / 1024))
    rate() { printf '%s\n' "$@" | median | awk -v b="$size" '{ printf "%.0f", b / $1 / 1e6 }'; }
    rss() { printf '%s\n' "$@" | median | awk '{ printf "%.1f", $1 / 1024 }'; }
    {
        echo "### transfer"
        echo
        echo "A $mib MiB random file; median of $ROUNDS rounds (wall-time min–max in s). Goals: ≥ 300 MB/s of file content; each process's peak RSS ≤ 64 MiB."
        echo
        echo "| path | MB/s | seconds | peak RSS MiB |"
        echo "|---|---|---|---|"
        echo "| \`cat file > /dev/null\` | $(rate "${cat_s[@]}") | $(mm "${cat_s[@]}") | |"
        echo "| plain TCP copy to disk (socat → socat) | $(rate "${tcp_s[@]}") | $(mm "${tcp_s[@]}") | |"
        echo "| \`ws send\` → \`ws transfer\` → \`ws receive\` (until the ack) | $(rate "${ws_s[@]}") | $(mm "${ws_s[@]}") | send $(rss "${send_rss[@]}"), transfer $(rss "${relay_rss[@]}"), receive $(rss "${recv_rss[@]}") |"
        echo
        echo "Command: \`scripts/bench.sh transfer\`"
        echo
    } >>"$RESULTS"
    goal transfer "MB/s of file content" "$(rate "${ws_s[@]}")" ">=" 300
    local most
    most=$(printf '%s\n' "${send_rss[@]}" "${relay_rss[@]}" "${recv_rss[@]}" | sort -n | tail -1)
    goal transfer "largest peak RSS MiB (send, transfer, receive)" "$(awk -v k="$most" 'BEGIN { print k / 1024 }')" "<=" 64
    rm -rf "$work"
}

# bench_deflate: the permessage-deflate figures (ws echo_server and broadcast_server accept
# deflate by default; the peers run with it on as their users turn it on)
bench_deflate() {
    local tmp n=10000 receivers=100
    [ "$SMOKE" = 1 ] && n=200
    tmp=$(mktemp)
    declare -A rate cpu rin rout fan per open
    local servers=(ws node python) s
    for _ in $(seq "$ROUNDS"); do
        for s in "${servers[@]}"; do
            case $s in
                ws) start_server "$WS" echo_server -q --threads 1 --port 0 ;;
                node) start_server node scripts/peers/deflate_echo_server.js ;;
                python) start_server "$PY" tests/peers/deflate_peer.py server ;;
            esac
            measured_bench --deflate --payload json -s 1024 -w 64
            rate[$s]+="$(echo "$BENCH_OUT" | json_field rate) "
            cpu[$s]+="$BENCH_CPU "
            rin[$s]+="$(echo "$BENCH_OUT" | json_field deflate_ratio_in) "
            rout[$s]+="$(echo "$BENCH_OUT" | json_field deflate_ratio_out) "
            stop_server
        done
    done
    local base base_cpu
    base=$(med ${rate[node]})
    base_cpu=$(med ${cpu[node]})
    {
        echo "### deflate"
        echo
        echo "permessage-deflate. Servers: \`ws echo_server -q\` (deflate accepted by default, zlib-rs level 3), Node \`ws\` 8 with \`perMessageDeflate: true\` (\`scripts/peers/deflate_echo_server.js\`), Python \`websockets\` with \`compression=\"deflate\"\` (\`tests/peers/deflate_peer.py server\`). Goals (permessage-deflate issue): echo ≥ 2× Node ws; fan-out ≥ 5× Node ws; ≤ 64 KiB per idle deflate connection."
        echo
        echo "#### Echo of 1 KiB JSON-like text, 64 in flight, 1 connection (\`ws bench URL --deflate --payload json -s 1024 -w 64\`, ${DUR} s after 1 s warm-up, median of $ROUNDS rounds)"
        echo
        echo "The ratios are payload bytes per byte on the wire, as \`ws bench\` counted them beneath its WebSocket layer: *received* is the server's compression, *sent* is \`ws bench\`'s own."
        echo
        echo "| server | round trips/s | vs Node ws | server CPU s per 100k round trips | CPU vs Node ws | wire ratio received | wire ratio sent |"
        echo "|---|---|---|---|---|---|---|"
        for s in "${servers[@]}"; do
            local m c
            m=$(med ${rate[$s]})
            c=$(med ${cpu[$s]})
            printf '| %s | %.0f (%s) | %.2f× | %s (%s) | %.2f× less | %s | %s |\n' "$s" "$m" "$(mm ${rate[$s]})" \
                "$(ratio "$m" "$base")" "$c" "$(mm ${cpu[$s]})" "$(ratio "$base_cpu" "$c")" "$(med ${rin[$s]})" "$(med ${rout[$s]})"
        done
        echo
    } >>"$RESULTS"
    goal deflate "echo 1 KiB JSON ×64 vs Node ws" "$(ratio "$(med ${rate[ws]})" "$base")" ">=" 2.0
    # Idle connections that negotiated deflate: no compressor until a message needs one.
    local order=(ws node node ws ws node) i
    for ((i = 0; i < 2 * ROUNDS; i++)); do
        s=${order[$((i % 6))]}
        if [ "$s" = ws ]; then start_server "$WS" echo_server -q --threads 1 --port 0; else start_server node scripts/peers/deflate_echo_server.js; fi
        local b a o
        b=$(rss_kib "$SERVER_PID")
        "$WS" bench "ws://127.0.0.1:$SERVER_PORT" --mode idle --deflate -c "$n" -d 3 --json >"$tmp" 2>&1 &
        local bench_pid=$!
        for _ in $(seq 240); do grep -q '"open"' "$tmp" && break; sleep 0.25; done
        a=$(rss_kib "$SERVER_PID")
        wait "$bench_pid" || true
        o=$( (grep '"open"' "$tmp" || echo '{"open": 0}') | json_field open)
        open[$s]+="$o "
        per[$s]+="$(awk -v o="$o" -v b="$b" -v a="$a" 'BEGIN { printf "%.2f", (o > 0 ? (a - b) / o : 1e9) }') "
        stop_server
    done
    {
        echo "#### $n idle connections that negotiated deflate (\`ws bench URL --mode idle --deflate -c $n\`; RSS growth per connection, median of $ROUNDS rounds, A-B-B-A)"
        echo
        echo "| server | open | KiB per connection |"
        echo "|---|---|---|"
        for s in ws node; do
            printf '| %s | %s | %s (%s) |\n' "$s" "$(med ${open[$s]})" "$(med ${per[$s]})" "$(mm ${per[$s]})"
        done
        echo
    } >>"$RESULTS"
    goal deflate "KiB per idle deflate connection" "$(med ${per[ws]})" "<=" 64
    # Fan-out: ws compresses each message once for every receiver (no server context
    # takeover); Node ws compresses it once per receiver.
    for _ in $(seq "$ROUNDS"); do
        for s in ws node; do
            if [ "$s" = ws ]; then start_server "$WS" broadcast_server -q --port 0; else start_server node scripts/peers/broadcast_server.js --deflate; fi
            local out
            out=$("$WS" bench "ws://127.0.0.1:$SERVER_PORT" --mode fanout --deflate --payload json -c "$receivers" -w 64 -s 1024 --json -d "$DUR" --warmup 1)
            fan[$s]+="$(echo "$out" | json_field rate) "
            rin[fan$s]+="$(echo "$out" | json_field deflate_ratio_in) "
            stop_server
        done
    done
    base=$(med ${fan[node]})
    {
        echo "#### Fan-out 1 → $receivers of 1 KiB JSON-like text (\`ws bench URL --mode fanout --deflate --payload json -c $receivers -w 64 -s 1024\`, ${DUR} s after 1 s warm-up, median of $ROUNDS rounds)"
        echo
        echo "| server | messages delivered/s | vs Node ws | wire ratio received |"
        echo "|---|---|---|---|"
        for s in ws node; do
            printf '| %s | %.0f (%s) | %.2f× | %s |\n' "$s" "$(med ${fan[$s]})" "$(mm ${fan[$s]})" "$(ratio "$(med ${fan[$s]})" "$base")" "$(med ${rin[fan$s]})"
        done
        echo
        echo "Command: \`scripts/bench.sh deflate\`"
        echo
    } >>"$RESULTS"
    goal deflate "fan-out 1 → 100 vs Node ws" "$(ratio "$(med ${fan[ws]})" "$base")" ">=" 5.0
    rm -f "$tmp"
}

for name in "${NAMES[@]}"; do
    case "$name" in
        deflate) bench_deflate ;;
        transfer) bench_transfer ;;
        proxy) bench_proxy ;;
        httpd) bench_httpd ;;
        curl) bench_curl ;;
        fanout) bench_fanout ;;
        redis) bench_redis ;;
        startup) bench_startup ;;
        oneshot) bench_oneshot ;;
        bridge) bench_bridge ;;
        threads) bench_threads ;;
        push) bench_push ;;
        gzip) bench_gzip ;;
        echo) bench_echo ;;
        idle) bench_idle ;;
        syscalls) bench_syscalls ;;
        *) echo "bench.sh: unknown benchmark '$name' (known: startup oneshot echo idle fanout redis proxy httpd curl transfer deflate push gzip threads bridge syscalls)" >&2; exit 2 ;;
    esac
done

# check_goals: prints each goal with its figure; returns 1 when any fell short
check_goals() {
    awk -F'|' '{ ok = ($4 == ">=") ? ($3 + 0 >= $5 + 0) : ($3 + 0 <= $5 + 0)
                 printf "%s %s: %s: %s (goal %s %s)\n", ok ? "ok  " : "SHORT", $1, $2, $3, $4, $5
                 if (!ok) bad = 1 }
               END { exit bad }' "$GOALS"
}

if [ "$SMOKE" = 1 ]; then
    cat "$RESULTS"
    # The goals' code runs too (one-second figures say nothing against them).
    echo "Goals (smoke figures, not judged):"
    check_goals || true
    exit 0
fi

# Each benchmark owns its "### name" section of BENCHMARKS.md: a run replaces the sections it
# measured (stamped with the run's date and machine) and keeps the others.
STAMP="Run: \`scripts/bench.sh ${NAMES[*]}\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)."
"$PY" - "$OUT" "$RESULTS" "$STAMP" <<'MERGE'
import re, sys
out, results, stamp = sys.argv[1], sys.argv[2], sys.argv[3]
def sections(text):
    parts = re.split(r"(?m)^(?=### )", text)
    return parts[0], {p.split("\n", 1)[0][4:].strip(): p for p in parts[1:]}
try:
    head, old = sections(open(out).read())
except FileNotFoundError:
    head, old = "", {}
_, new = sections(open(results).read())
head = ("# Benchmarks\n\nEach section says which run produced it. These machines are shared and noisy: "
        "compare ratios within one section, not absolute figures across sections.\n\n")
order = ["startup", "oneshot", "echo", "idle", "fanout", "redis", "proxy", "httpd", "syscalls", "curl", "transfer", "deflate", "push", "gzip", "bridge", "threads"]
merged = dict(old)
for name, body in new.items():
    lines = body.split("\n", 2)
    merged[name] = lines[0] + "\n\n" + stamp + "\n" + (lines[2] if len(lines) > 2 else "")
names = [n for n in order if n in merged] + [n for n in merged if n not in order]
open(out, "w").write(head + "".join(merged[n].rstrip("\n") + "\n\n" for n in names))
MERGE
cat "$RESULTS"
if [ "$CHECK" = 1 ]; then
    echo
    echo "Goals:"
    check_goals || { echo "bench.sh: some figures fell short of their goals (SHORT above)" >&2; exit 1; }
fi
