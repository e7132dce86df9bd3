#!/usr/bin/env bash
# The main job: the whole theseus stack on this one machine, with the examples.
#
# Installs what is missing (etcd-server, etcd-client, protobuf-compiler), builds the
# workspace, then runs theseus-quickstart, which starts etcd on etcd's default client URL
# (http://127.0.0.1:2379), localmarathon with three agents, theseus-controller and a watcher,
# applies examples/, shows them working, and stops everything on Ctrl-C. State and logs live in
# .local/quickstart/ (ignored by git); a second run starts from them again, no cleanup needed.
# Extra arguments go to theseus-quickstart (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/dependencies.sh
ensure_packages

echo "building theseus (the first build takes a few minutes)"
cargo build --quiet --workspace --bins
exec target/debug/theseus-quickstart "$@"
