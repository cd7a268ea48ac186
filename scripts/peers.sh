#!/usr/bin/env bash
# Installs the real peers the tests and benchmarks talk to, into .peers/ (git-ignored):
#   .peers/venv        Python: websockets (client/server peer), kosoku (Autobahn cases)
#   .peers/node        Node: ws (client/server peer), wscat (a one-shot client to compare with)
#   .peers/cargo       with --bench only: websocat (benchmarks; built from crates.io, ~6 min once)
# and, with apt when missing and we are root: curl, openssl, nginx, wrk, socat, redis-server, tmux, jq, tinyproxy, microsocks,
# chromium (headless, for pages served by httpd), zsh and fish (completion tests), strace (system calls per request, bench.sh).
# Idempotent: a stamp per part skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=.peers
mkdir -p "$PEERS"

PY_PACKAGES=(websockets==17.4 kosoku==0.1.0 httpbin==0.10.4 gunicorn==23.0.0)
NODE_PACKAGES=(ws@8 wscat@6.1.0)
WEBSOCAT_VERSION=1.14.1
APT_PACKAGES=(curl openssl nginx wrk socat redis-server tmux jq tinyproxy microsocks chromium zsh fish strace)
# installed by name when their command is missing: time provides /usr/bin/time, nghttp2-client h2load,
# man-db man (install tests render pages), gcc cc (the C plugin)

py_stamp="$PEERS/venv/.stamp-$(printf '%s ' "${PY_PACKAGES[@]}" | md5sum | cut -c1-8)"
if [ ! -f "$py_stamp" ]; then
    echo "peers: installing Python packages: ${PY_PACKAGES[*]}"
    python3 -m venv "$PEERS/venv"
    "$PEERS/venv/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    touch "$py_stamp"
fi

node_stamp="$PEERS/node/.stamp-$(printf '%s ' "${NODE_PACKAGES[@]}" | md5sum | cut -c1-8)"
if [ ! -f "$node_stamp" ]; then
    command -v npm >/dev/null || { echo "peers: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
    echo "peers: installing Node packages: ${NODE_PACKAGES[*]}"
    mkdir -p "$PEERS/node"
    (cd "$PEERS/node" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --no-audit --no-fund "${NODE_PACKAGES[@]}")
    touch "$node_stamp"
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || missing+=("$p")
done
[ -x /usr/bin/time ] || missing+=(time)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v man >/dev/null || missing+=(man-db)
command -v cc >/dev/null || missing+=(gcc)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "peers: apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "peers: missing ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

if [ "${1:-}" = --bench ] && [ "$("$PEERS/cargo/bin/websocat" --version 2>/dev/null)" != "websocat $WEBSOCAT_VERSION" ]; then
    echo "peers: building websocat $WEBSOCAT_VERSION from crates.io (about 6 minutes on 2 cores, once)"
    cargo install -q websocat --locked --version "$WEBSOCAT_VERSION" --root "$PEERS/cargo"
fi
