#!/usr/bin/env bash
# The whole test suite: installs the peers the tests need (scripts/peers.sh), builds the
# workspace (the tests spawn the real `ws` and its plugin .so files, which `cargo test`
# alone does not build), then runs every test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/peers.sh
cargo build --workspace --all-targets
cargo test --workspace "$@"
