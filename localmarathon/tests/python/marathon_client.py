"""Drives a Marathon server with the unmodified `marathon` package (thefactory/marathon-python).

Usage: marathon_client.py BASE_URL. Prints one JSON object with what it observed; exits non-zero
on any client error.
"""
import collections
import collections.abc
import json
import sys
import threading
import time

# marathon 0.13 predates Python 3.10, which removed these aliases; its JSON encoder still uses
# them for nested objects.
for _name in ("Iterable", "Mapping", "MutableMapping"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

from marathon import MarathonClient
from marathon.models import MarathonApp
from marathon.models.app import MarathonUpgradeStrategy
from marathon.models.events import MarathonEvent

DEADLINE = 60


def wait(what, check):
    end = time.time() + DEADLINE
    while time.time() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    base = sys.argv[1]
    client = MarathonClient(base)
    seen = []
    stop = threading.Event()

    # marathon 0.13 reads every deployment plan as if it carried the root groups `original`
    # and `target`, which Marathon 1.8+ no longer sends: its event_stream fails on the first
    # deployment event from a real Marathon 1.8+ too. So deployment events are left out here
    # (which also exercises event_type filters); the Rust tests cover them.
    followed = [
        "event_stream_attached",
        "api_post_event",
        "status_update_event",
        "instance_changed_event",
        "app_terminated_event",
    ]

    def follow():
        events_client = MarathonClient(base)
        for event in events_client.event_stream(event_types=followed):
            if not isinstance(event, MarathonEvent):
                raise SystemExit(f"not an event: {event!r}")
            seen.append(event.event_type)
            if stop.is_set():
                return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    wait("event_stream_attached", lambda: "event_stream_attached" in seen)

    result = {}
    assert client.ping().strip() == b"pong"
    info = client.get_info()
    result["info_name"] = info.name
    result["leader"] = client.get_leader()["leader"]

    app = MarathonApp(
        cmd="exec sleep 1000",
        cpus=0.1,
        mem=16,
        instances=1,
        labels={"owner": "py"},
        upgrade_strategy=MarathonUpgradeStrategy(minimum_health_capacity=0.5, maximum_over_capacity=0.5),
    )
    created = client.create_app("/py/app", app)
    result["created_id"] = created.id
    result["created_instances"] = created.instances

    wait("one running task", lambda: [t for t in client.list_tasks("/py/app") if t.state == "TASK_RUNNING"])
    apps = client.list_apps(embed_tasks=True)
    result["listed"] = [a.id for a in apps]
    result["tasks_running"] = client.get_app("/py/app").tasks_running

    deployment = client.scale_app("/py/app", instances=2)
    result["scale_deployment"] = "deploymentId" in deployment
    result["deployments_during_scale"] = len(client.list_deployments())
    wait("two running tasks", lambda: client.get_app("/py/app").tasks_running == 2 and not client.list_deployments())

    tasks = client.list_tasks("/py/app")
    result["task_hosts"] = sorted(t.host for t in tasks)
    result["all_tasks"] = len(client.list_tasks())
    killed = client.kill_task("/py/app", tasks[0].id)
    result["killed_task"] = killed.id == tasks[0].id
    wait("replacement", lambda: len([t for t in client.list_tasks("/py/app") if t.state == "TASK_RUNNING" and t.id != tasks[0].id]) == 2)

    before = {t.id for t in client.list_tasks("/py/app")}
    restart = client.restart_app("/py/app")
    result["restart_deployment"] = "deploymentId" in restart
    wait("restart done", lambda: not client.list_deployments() and
         {t.id for t in client.list_tasks("/py/app")}.isdisjoint(before) and
         len(client.list_tasks("/py/app")) == 2)

    versions = client.list_versions("/py/app")
    result["versions"] = len(versions)
    result["version_app"] = client.get_version("/py/app", versions[-1]).id

    client.delete_app("/py/app")
    wait("app gone", lambda: "/py/app" not in [a.id for a in client.list_apps()])
    wait("app_terminated_event", lambda: "app_terminated_event" in seen)
    stop.set()
    result["events"] = sorted(set(seen))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
