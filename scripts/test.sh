#!/usr/bin/env bash
# The whole test suite: installs the peers the tests need (scripts/peers.sh), builds the
# workspace (the tests spawn the real `ws` and its plugin .so files, which `cargo test`
# alone does not build), then runs every test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every test talks to 127.0.0.1: a proxy from the environment (read by curl and by ws's own
# clients) must not come between.
unset http_proxy https_proxy all_proxy HTTPS_PROXY ALL_PROXY no_proxy NO_PROXY
scripts/peers.sh
cargo build --workspace --all-targets
cargo test --workspace "$@"
# The servers' tests again with four workers each (--threads defaults to $WS_THREADS, else a
# worker per core): what passes on this machine's cores passes on four.
if [ $# -eq 0 ]; then
    WS_THREADS=4 cargo test --test e2e -- echo_server rooms proxy httpd transfer redis
fi
