"""guestutils: who this container is and where its peers are, answered by theseus.

A drop-in replacement for the old guestutils module: the same functions with the same
names, arguments and meanings, each one a call of the `theseus` binary in the image
(`theseus guest ... --json`), which reads the task records theseus keeps in etcd. The
binary is `$THESEUS_BIN` when that is set, else `theseus` on `PATH`. The task's
environment (SERVICE_NAME, MESOS_TASK_ID, HOST, ETCD_ENDPOINTS, THESEUS_PREFIX, ...) is
passed on as it is.

Where a function takes a `default`, a miss (no such variable, service, container or port)
returns it. Without a default, and for every other failure (etcd unreachable, a bad name),
the function raises GuestError, whose message is theseus's own: it names the variable,
service, container or port and what exists instead. Nothing answers a made-up value.

Standard library only, and written for Python 2.7 as well as Python 3.
"""

import json
import os
import subprocess
import sys

__all__ = [
    "GuestError",
    "get_environment_name",
    "get_service_name",
    "get_container_name",
    "get_container_host_address",
    "get_container_internal_address",
    "get_port",
    "get_node_list",
    "get_specific_host",
    "get_specific_port",
    "get_specific_exposed_port",
    "theseus_binary",
]

# The error kinds of `theseus guest` that mean "not found" rather than "broken".
MISSES = frozenset([
    "missing_variable",
    "no_such_service",
    "no_such_container",
    "no_such_port",
    "port_unknown",
])

# Marks an argument that was not given: None is a default like any other.
_NOTHING = object()


class GuestError(Exception):
    """A guestutils call failed.

    `kind` is theseus's name for what went wrong (`no_such_port`, `too_few_nodes`,
    `unreachable`, ...; None when theseus could not be run or said nothing readable),
    `command` the theseus command line that was run.
    """

    def __init__(self, message, kind=None, command=None):
        Exception.__init__(self, message)
        self.message = message
        self.kind = kind
        self.command = command

    @property
    def is_miss(self):
        """True when the variable, service, container or port asked for does not exist."""
        return self.kind in MISSES


def _native(value):
    """Text as the interpreter's own `str` (Python 2's json gives `unicode`)."""
    if sys.version_info[0] == 2 and not isinstance(value, str):
        return value.encode("utf-8")
    return value


def theseus_binary():
    """The `theseus` program to run: `$THESEUS_BIN`, else `theseus` found on `PATH`."""
    configured = os.environ.get("THESEUS_BIN")
    if configured:
        return configured
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or os.curdir, "theseus")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise GuestError(
        "cannot find the theseus program: it is not on PATH and THESEUS_BIN is not set; "
        "install theseus in the image or set THESEUS_BIN to its path")


def _guest(arguments):
    """Runs `theseus guest ARGUMENTS --json` and returns its JSON answer."""
    command = [theseus_binary(), "guest"] + list(arguments) + ["--json"]
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as error:
        raise GuestError("cannot run %s: %s" % (command[0], error), command=command)
    stdout, stderr = process.communicate()
    stdout = stdout.decode("utf-8", "replace")
    stderr = stderr.decode("utf-8", "replace").strip()
    try:
        answer = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        answer = None
    if process.returncode == 0 and answer is not None:
        return answer
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("message"):
        raise GuestError(_native(error["message"]), _native(error.get("kind")), command)
    if stderr.startswith("error: "):
        stderr = stderr[len("error: "):]
    raise GuestError(
        _native(stderr or "%s exited with status %d" % (" ".join(command), process.returncode)),
        command=command)


def _answer(arguments, field, default=_NOTHING):
    """The `field` of the answer to `theseus guest ARGUMENTS`, or `default` on a miss."""
    try:
        value = _guest(arguments)[field]
    except GuestError as error:
        if default is not _NOTHING and error.is_miss:
            return default
        raise
    return _native(value) if not isinstance(value, int) else value


def get_environment_name():
    """The name of the theseus installation this container belongs to (`default` without
    a prefix)."""
    return _answer(["env"], "environment")


def get_service_name():
    """The service this container belongs to (SERVICE_NAME)."""
    return _answer(["service"], "service")


def get_container_name():
    """This container's name: its Mesos task id (MESOS_TASK_ID, old CONTAINER_NAME)."""
    return _answer(["container"], "container")


def get_container_host_address():
    """The address of the host this container runs on, which its peers connect to (HOST,
    old CONTAINER_HOST_ADDRESS)."""
    return _answer(["host"], "host")


def get_container_internal_address():
    """This container's own IP address."""
    return _answer(["internal-address"], "internal_address")


def get_port(name, default=_NOTHING):
    """The port the named port listens on inside this container, as an int."""
    return _answer(["port", name], "port", default)


def get_node_list(service, ports=None, minimum=1, labels=None, wait=None):
    """`host:port1:port2` strings of the serving containers of `service`, sorted, over all
    its deployments; the ports are host ports of the named `ports`, in order.

    `labels` keeps only deployments carrying all of them. Fewer than `minimum` serving
    containers raises GuestError (kind `too_few_nodes`) rather than answering a short list;
    with `wait` (seconds) the call first waits that long for them.
    """
    arguments = ["node-list", service, "--minimum", str(int(minimum))]
    if ports:
        arguments += ["--ports", ",".join(ports)]
    if labels:
        arguments += ["--labels", ",".join(labels)]
    if wait is not None:
        arguments += ["--wait", "%dms" % int(float(wait) * 1000)]
    return [_native(node["address"]) for node in _guest(arguments)]


def get_specific_host(service, container):
    """The address of the host that runs `container` (a task id) of `service`."""
    return _answer(["specific-host", service, container], "host")


def get_specific_port(service, container, port, default=_NOTHING):
    """The host (external) port of the named `port` of `container` of `service`, as an
    int."""
    return _answer(["specific-port", service, container, port], "host_port", default)


def get_specific_exposed_port(service, container, port, default=_NOTHING):
    """The container (internal) port of the named `port` of `container` of `service`, as
    an int."""
    return _answer(
        ["specific-exposed-port", service, container, port], "container_port", default)
