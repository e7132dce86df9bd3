#!/bin/sh
# A watcher hook (`theseus watch --services hello --exec examples/hooks/log-change.sh`) that
# logs every change of a service's serving endpoints: the old `service_change(service, delta)`
# contract in THESEUS_SERVICE and THESEUS_DELTA, the full change as JSON on stdin.
summary=$(python3 -c "$(cat <<'PY'
import json, sys

change = json.load(sys.stdin)

def endpoint(node):
    ports = ",".join("%s=%s" % (name, port["host"]) for name, port in sorted(node["ports"].items()))
    return "%s[%s]" % (node["host"], ports)

parts = ["+" + endpoint(n) for n in change["added"]] + ["-" + endpoint(n) for n in change["removed"]]
print(" ".join(parts) or "no endpoints changed", "(%d serving)" % len(change["nodes"]))
PY
)")
printf '%s %s changed by %s at revision %s: %s\n' \
    "$(date '+%H:%M:%S')" "$THESEUS_SERVICE" "$THESEUS_DELTA" "$THESEUS_REVISION" "$summary"
