# Sourced by the other scripts: installs what theseus needs from Debian when it is missing.
# Each check tests for what the build or the tests read, not only for a program on the PATH:
# a package's recommended packages are not installed with --no-install-recommends.
#   etcd-server        the etcd the tests and the quick start run
#   etcd-client        etcdctl, the user's path into etcd
#   protobuf-compiler  protoc, which etcd-client's build script runs
#   libprotobuf-dev    the well-known .proto files (google/protobuf/descriptor.proto) that
#                      etcd's protos import; protobuf-compiler only recommends it
#   python3, python3-venv  the example watcher hook, task scripts in tests (the Python shim
#                      for old images among them), and the tests that drive localmarathon
#                      with the Python Marathon client and check the shim's Python 2.7
#                      syntax (each with a package from PyPI in a venv)
#   chromium, chromium-driver  the headless browser and its WebDriver server, for the
#                      dashboard's browser test (driven by Selenium from PyPI in a venv)
#   gcc, libc6-dev, make  the C compiler, headers and make with which crates' build scripts
#                      build their C code (jemalloc, the controller's allocator, runs its
#                      configure script and make)

# Succeeds when the command given after FILE and TEXT succeeds in a fresh temporary directory
# holding FILE with TEXT (printf escapes such as \n are expanded); its output is discarded.
probe_succeeds() {
    local file="$1" text="$2"
    shift 2
    local dir
    dir="$(mktemp -d)"
    printf '%b' "$text" >"$dir/$file"
    (cd "$dir" && "$@") >/dev/null 2>&1
    local status=$?
    rm -rf "$dir"
    return $status
}

# Succeeds when cc can compile and link a C program that includes a libc header, as the
# build scripts of crates with C code do.
cc_builds_c() {
    command -v cc >/dev/null 2>&1 || return 1
    probe_succeeds probe.c '#include <stdlib.h>\nint main(void) { return EXIT_SUCCESS; }\n' \
        cc -o probe probe.c
}

# Succeeds when protoc can compile a file importing a well-known type, as etcd-client's
# build script does.
protoc_reads_well_known_types() {
    command -v protoc >/dev/null 2>&1 || return 1
    probe_succeeds probe.proto 'syntax = "proto3";\nimport "google/protobuf/descriptor.proto";\n' \
        protoc --proto_path=. --descriptor_set_out=/dev/null probe.proto
}

missing_packages() {
    command -v etcd >/dev/null 2>&1 || echo etcd-server
    command -v etcdctl >/dev/null 2>&1 || echo etcd-client
    command -v protoc >/dev/null 2>&1 || echo protobuf-compiler
    if ! protoc_reads_well_known_types; then
        echo libprotobuf-dev
    fi
    if ! cc_builds_c; then
        echo gcc
        echo libc6-dev
    fi
    command -v make >/dev/null 2>&1 || echo make
    command -v python3 >/dev/null 2>&1 || echo python3
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || echo python3-venv
    # The browser test runs `chromium` (a wrapper script) and `chromedriver`, which starts
    # the browser binary itself: check for all three files.
    if ! command -v chromium >/dev/null 2>&1 || [ ! -x /usr/lib/chromium/chromium ]; then
        echo chromium
    fi
    [ -x /usr/bin/chromedriver ] || echo chromium-driver
}

ensure_packages() {
    local missing
    mapfile -t missing < <(missing_packages | sort -u)
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
    # Check again: an install that left something out must stop here, with its name, rather
    # than as a build error far from its cause.
    local still
    mapfile -t still < <(missing_packages | sort -u)
    if [ "${#still[@]}" -ne 0 ]; then
        echo "error: still missing after installing: ${still[*]}" >&2
        return 1
    fi
}
