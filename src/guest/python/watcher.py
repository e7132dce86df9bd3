#!/usr/bin/env python
"""watcher: calls watch_methods.service_change(service, delta) whenever the serving
containers of a watched service change, answered by theseus.

A drop-in replacement for the old watcher.py. Run it as before, beside guestutils.py and
the image's own watch_methods.py:

    WATCHES=svc1,svc2 python watcher.py [theseus watch options, e.g. --labels dev]

It runs `theseus watch --json-lines` (the binary is `$THESEUS_BIN`, else `theseus` on
`PATH`) and, for every change that reports, calls
`watch_methods.service_change(service, delta)`, where `delta` is the number of serving
containers now minus before. The first call for each service comes at start, with
`delta` equal to the number serving then (0 for a service that does not exist yet).
Calls are made one at a time, in this process, so watch_methods keeps its state between
them. An exception raised by service_change is logged with its traceback, and the next
change calls it again.

SIGTERM and SIGINT stop theseus and then the watcher. The exit status is theseus's.

Standard library only, and written for Python 2.7 as well as Python 3.
"""

import errno
import json
import logging
import os
import signal
import subprocess
import sys

from guestutils import GuestError, theseus_binary

log = logging.getLogger("watcher")


def watched_services():
    """The services named by WATCHES (separated by commas or spaces)."""
    return [name for name in os.environ.get("WATCHES", "").replace(",", " ").split() if name]


def deliver(watch_methods, line):
    """Calls service_change for one line of `theseus watch --json-lines`."""
    try:
        change = json.loads(line.decode("utf-8"))
        service = str(change["service"])
        delta = int(change["delta"])
    except (ValueError, KeyError, TypeError) as error:
        log.error("cannot read a change from theseus (%s): %r", error, line)
        return
    try:
        watch_methods.service_change(service, delta)
    except Exception:
        log.exception(
            "watch_methods.service_change(%r, %d) raised; the next change calls it again",
            service, delta)


def read_line(stream):
    """The next line of `stream`; a signal that interrupts the read (Python 2) retries."""
    while True:
        try:
            return stream.readline()
        except (IOError, OSError) as error:
            if error.errno != errno.EINTR:
                raise


def main(arguments):
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s watcher %(levelname)s %(message)s")
    services = watched_services()
    if not services:
        log.error("no service to watch: set WATCHES=svc1,svc2")
        return 2
    try:
        import watch_methods
    except ImportError:
        log.exception("cannot import watch_methods: put watch_methods.py beside watcher.py")
        return 2
    try:
        command = [theseus_binary(), "watch", "--json-lines", "--services", ",".join(services)]
    except GuestError as error:
        log.error("%s", error)
        return 2
    command += list(arguments)
    log.info("watching %s with %s", ",".join(services), " ".join(command))
    try:
        theseus = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except OSError as error:
        log.error("cannot run %s: %s", command[0], error)
        return 2

    def stop(number, frame):
        # theseus stops its watch, closes its output and exits; the loop below then ends.
        try:
            theseus.send_signal(number)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        line = read_line(theseus.stdout)
        if not line:
            break
        deliver(watch_methods, line)
    status = theseus.wait()
    if status < 0:
        return 128 - status
    if status != 0:
        log.error("theseus watch exited with status %d", status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
