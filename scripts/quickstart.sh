#!/usr/bin/env bash
# The whole theseus stack on this one machine, with the examples: a local etcd on etcd's
# default client URL (http://127.0.0.1:2379), then the examples applied and shown. Runs in
# the foreground until Ctrl-C, then stops everything it started. Installs what is missing.
#
# State lives in .local/quickstart/ (ignored by git); a second run starts from it again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/dependencies.sh
ensure_packages

STATE=.local/quickstart
ETCD_URL=http://127.0.0.1:2379
mkdir -p "$STATE"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port_taken() {
    # bash's /dev/tcp connects: success means something already listens there.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

if port_taken 2379; then
    echo "error: 127.0.0.1:2379 is taken; the quick start runs its own etcd there so that" >&2
    echo "etcdctl and theseus work without flags. Stop whatever listens on 2379 and retry." >&2
    exit 1
fi

say "building"
cargo build --quiet --bins

BIN=target/debug
PIDS=()
cleanup() {
    trap - INT TERM EXIT
    say "stopping"
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    echo "everything the quick start started has stopped"
}
trap cleanup INT TERM EXIT

say "starting etcd on $ETCD_URL (data in $STATE/etcd)"
etcd --name quickstart --data-dir "$STATE/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster quickstart=http://127.0.0.1:2380 \
    --logger=zap --log-level=warn >"$STATE/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    if etcdctl --endpoints "$ETCD_URL" endpoint health >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
etcdctl --endpoints "$ETCD_URL" endpoint health

export ETCD_ENDPOINTS="$ETCD_URL"

say "applying examples/ingestor.yaml (the old system's deploy file, unchanged)"
"$BIN/theseus" apply -f examples/ingestor.yaml

say "desired deployments"
"$BIN/theseus" get

say "what is in etcd"
etcdctl --endpoints "$ETCD_URL" get /desired --prefix

cat <<EOF

Try it by hand in another terminal (no flags needed, etcd is on its default URL):

  target/debug/theseus validate -f examples/ingestor.yaml
  etcdctl put /desired/web/blue '{"cmd": "python3 -m http.server \$PORT_HTTP", "ports": {"http": 8000}}'
  target/debug/theseus get
  target/debug/theseus get -o json web
  target/debug/theseus delete web/blue

Press Ctrl-C to stop.
EOF

wait "${PIDS[0]}"
