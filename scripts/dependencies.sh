# Sourced by the other scripts: installs what theseus needs from Debian when it is missing.
#   etcd-server        the etcd the tests and the quick start run
#   etcd-client        etcdctl, the user's path into etcd
#   protobuf-compiler  protoc, which etcd-client's build script needs
#   python3, python3-venv  the example watcher hook, task scripts in tests, and the test that
#                      drives localmarathon with the Python Marathon client (in a venv)

ensure_packages() {
    local missing=()
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    echo "installing ${missing[*]} from Debian" >&2
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: ${missing[*]} missing and not root (no sudo): install them and retry" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The package may start a system etcd on the default port; the tests and the quick start
    # run their own, so stop it when a service manager is there to do it.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
        "${sudo[@]}" systemctl stop etcd || true
    fi
}
