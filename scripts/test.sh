#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy, unit, integration and
# end-to-end tests (which start their own etcd and localmarathon on free loopback ports).
# Installs what is missing first. Extra arguments go to the test runner, e.g.
#   scripts/test.sh store_watch        # only tests whose name contains store_watch
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/dependencies.sh
ensure_packages

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# End-to-end tests run the workspace's programs (theseus, theseus-controller, localmarathon,
# theseus-hello) from the target directory: build them all first.
cargo build --workspace --bins --locked

if cargo nextest --version >/dev/null 2>&1; then
    # nextest runs every test in its own process: a failing test cannot leave state behind
    # for another, and etcd processes are reaped with their test.
    cargo nextest run --workspace --locked --no-fail-fast "$@"
    cargo test --workspace --locked --doc
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi

# One minute of the chaos suite (README, "The chaos suite") on a fixed seed, against the
# programs built above; only in a full run, not when test names were given.
if [ $# -eq 0 ]; then
    cargo run -p theseus-controllers --example chaos --locked -- --duration 60s --seed 1
fi
