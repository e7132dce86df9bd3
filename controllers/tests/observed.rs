//! The observed reconciler end to end: real etcd, localmarathon running real processes, the
//! controller in process. The records under `/observed/<service>/<name>/tasks/` must be
//! exactly the tasks Marathon runs, with ports that reach each task's own process, through
//! kills, scaling, restarts of the controller and cuts of the event stream. The periodic
//! resync is off unless a test turns it on, so convergence proves the event path and the
//! relists at start and reconnect.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use localmarathon::TaskState;
use serde_json::{Value, json};
use support::{Cluster, metric_sum, wait_until};
use theseus::api::{Health, TaskRecord};
use theseus::marathon::{App, AppId, TaskId};
use theseus_controllers::controller::Controller;

const KEY: &str = "web/dev";
const APP: &str = "/web/dev";

/// A task that answers every connection to each of its named ports with
/// `<MESOS_TASK_ID> <port name>`, on its agent's address.
const ANSWER_WHO: &str = r#"exec python3 -c '
import os, socket, threading
def serve(name):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((os.environ["HOST"], int(os.environ["PORT_" + name.upper()])))
    server.listen()
    while True:
        connection, _ = server.accept()
        connection.sendall((os.environ["MESOS_TASK_ID"] + " " + name + "\n").encode())
        connection.close()
names = os.environ["PORT_NAMES"].split(",")
for name in names[1:]:
    threading.Thread(target=serve, args=(name,), daemon=True).start()
serve(names[0])
'"#;

fn answering(instances: u32) -> Value {
    json!({"cmd": ANSWER_WHO, "instances": instances, "cpus": 0.1, "mem": 32,
           "ports": {"http": 8080, "admin": 9090},
           "environment": {"PORT_NAMES": "http,admin"}, "labels": ["eu", "canary"]})
}

fn sleeping(instances: u32) -> Value {
    json!({"cmd": "exec sleep 1000", "instances": instances, "cpus": 0.1, "mem": 16,
           "ports": {"http": 8080}})
}

/// What the process behind `host:port` says.
fn who_answers(host: &str, port: u16) -> String {
    let stream = TcpStream::connect((host, port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// Task records written or removed so far.
fn record_writes(controller: &Controller) -> f64 {
    metric_sum(
        &controller.metrics().encode(),
        "theseus_controller_observed_records_total",
        "",
    )
}

/// Relists of Marathon for `reason` so far.
fn relists(controller: &Controller, reason: &str) -> f64 {
    metric_sum(
        &controller.metrics().encode(),
        "theseus_controller_marathon_snapshot_relists_total",
        &format!("reason=\"{reason}\""),
    )
}

fn ids(records: &std::collections::BTreeMap<String, TaskRecord>) -> BTreeSet<String> {
    records.keys().cloned().collect()
}

/// Where each recorded task runs, by task id: its state, host and host ports.
fn placement(
    records: &std::collections::BTreeMap<String, TaskRecord>,
) -> std::collections::BTreeMap<String, (String, String, Vec<u16>)> {
    records
        .iter()
        .map(|(id, record)| {
            let ports = record.ports.values().map(|port| port.host).collect();
            (
                id.clone(),
                (record.state.to_string(), record.host.clone(), ports),
            )
        })
        .collect()
}

/// Kills a task's process, as a crash would: Marathon sees it fail and starts another.
fn crash(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
}

/// Waits until app `id` runs `count` tasks none of which is in `old`.
async fn wait_replaced(cluster: &Cluster, id: &str, count: usize, old: &BTreeSet<String>) {
    wait_until("the killed tasks are replaced", || async {
        let running = cluster.marathon.tasks_of(id, TaskState::Running);
        running.len() == count && running.iter().all(|t| !old.contains(&t.id))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_port_reaches_the_process_of_its_own_task() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    cluster.put_spec(KEY, &answering(2)).await;

    let records = cluster.wait_tree_matches(KEY, 2).await;
    for (task_id, record) in &records {
        assert_eq!(record.task_id, *task_id);
        assert_eq!(
            (record.service.as_str(), record.deployment.as_str()),
            ("web", "dev")
        );
        assert_eq!(record.app_id, APP);
        assert_eq!(record.labels, ["eu", "canary"]);
        assert!(record.version.is_some() && record.agent_id.is_some());
        assert!(!record.ip_addresses.is_empty());
        assert!(!record.health_checked && record.is_serving());
        assert_eq!(
            record.ports.keys().collect::<Vec<_>>(),
            ["admin", "http"],
            "{record:?}"
        );
        for (name, port) in &record.ports {
            assert_eq!(
                port.container, port.host,
                "a command app shares its agent's ports"
            );
            let answer = wait_for_answer(&record.host, port.host).await;
            assert_eq!(answer, format!("{task_id} {name}"));
        }
    }
    controller.shutdown().await;
}

/// What the process behind `host:port` says, once it listens.
async fn wait_for_answer(host: &str, port: u16) -> String {
    wait_until(&format!("{host}:{port} answers"), || {
        let listening = TcpStream::connect((host, port)).is_ok();
        async move { listening }
    })
    .await;
    who_answers(host, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tasks_record_goes_and_its_replacements_comes() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    cluster.put_spec(KEY, &sleeping(2)).await;
    let before = cluster.wait_tree_matches(KEY, 2).await;

    let victim = before.keys().next().unwrap().clone();
    cluster
        .client
        .kill_task(
            &AppId::parse(APP).unwrap(),
            &TaskId::new(victim.clone()),
            false,
            false,
        )
        .await
        .unwrap();
    wait_until("the killed task's record goes", || async {
        !cluster.records(KEY).await.contains_key(&victim)
    })
    .await;
    let after = cluster.wait_tree_matches(KEY, 2).await;
    assert!(!after.contains_key(&victim));
    assert_eq!(ids(&after).intersection(&ids(&before)).count(), 1);

    // A crash instead of a kill: the same.
    let crashed = after.keys().next().unwrap().clone();
    let pid = cluster
        .marathon
        .tasks_of(APP, TaskState::Running)
        .into_iter()
        .find(|t| t.id == crashed)
        .and_then(|t| t.pid)
        .unwrap();
    crash(pid);
    wait_replaced(&cluster, APP, 2, &BTreeSet::from([victim, crashed.clone()])).await;
    let last = cluster.wait_tree_matches(KEY, 2).await;
    assert!(!last.contains_key(&crashed));
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_adds_records_and_scaling_down_removes_them() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    cluster.put_spec(KEY, &sleeping(1)).await;
    let one = cluster.wait_tree_matches(KEY, 1).await;

    cluster.put_spec(KEY, &sleeping(4)).await;
    let four = cluster.wait_tree_matches(KEY, 4).await;
    assert!(
        ids(&one).is_subset(&ids(&four)),
        "scaling up kept the first task"
    );

    cluster.put_spec(KEY, &sleeping(2)).await;
    let two = cluster.wait_tree_matches(KEY, 2).await;
    assert!(
        ids(&two).is_subset(&ids(&four)),
        "scaling down started nothing new"
    );

    cluster.put_spec(KEY, &sleeping(0)).await;
    wait_until("no record is left at 0 instances", || async {
        cluster.records(KEY).await.is_empty()
    })
    .await;
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_is_right_after_a_restart_whatever_changed_while_the_controller_was_down() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    cluster.put_spec(KEY, &sleeping(3)).await;
    cluster.put_spec("web/canary", &sleeping(1)).await;
    let matched = cluster.wait_tree_matches(KEY, 3).await;
    cluster.wait_tree_matches("web/canary", 1).await;
    controller.shutdown().await;
    // The picture to compare with is taken once the controller has stopped: until then it
    // may still complete a record it wrote from an event (with its staged and started times).
    let before = cluster.records(KEY).await;
    assert_eq!(ids(&before), ids(&matched), "the same tasks");

    // While no controller runs: two tasks crash, one is killed and replaced, and the whole
    // canary app is deleted behind theseus's back.
    let running = cluster.marathon.tasks_of(APP, TaskState::Running);
    crash(running[0].pid.unwrap());
    crash(running[1].pid.unwrap());
    cluster
        .client
        .kill_task(
            &AppId::parse(APP).unwrap(),
            &TaskId::new(running[2].id.clone()),
            false,
            false,
        )
        .await
        .unwrap();
    wait_replaced(&cluster, APP, 3, &ids(&before)).await;
    cluster
        .client
        .delete_app(&AppId::parse("/web/canary").unwrap(), true)
        .await
        .unwrap();
    wait_until("the canary app is gone", || async {
        cluster.app("/web/canary").await.is_none()
    })
    .await;
    assert_eq!(
        cluster.records(KEY).await,
        before,
        "nothing wrote meanwhile"
    );

    let mut config = cluster.config();
    config.identity = "restarted".into();
    let controller = Controller::start(config).await.unwrap();
    let after = cluster.wait_tree_matches(KEY, 3).await;
    assert!(ids(&after).is_disjoint(&ids(&before)));
    // The canary's spec is still there, so its app comes back: with new tasks only.
    let canary = cluster.wait_tree_matches("web/canary", 1).await;
    assert_eq!(
        relists(&controller, "resync"),
        0.0,
        "fixed by the relist at start, not by a resync"
    );
    assert!(canary.values().all(|record| record.is_serving()));
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_is_right_after_the_event_stream_is_cut_while_tasks_change() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    cluster.put_spec(KEY, &sleeping(2)).await;
    let before = cluster.wait_tree_matches(KEY, 2).await;
    let reconnects = relists(&controller, "reconnect");

    // Marathon's API (and with it the event stream) goes away while a task crashes and is
    // replaced: no event about it reaches the controller.
    cluster.marathon.stop_api().await;
    let victim = cluster.marathon.tasks_of(APP, TaskState::Running)[0].clone();
    crash(victim.pid.unwrap());
    wait_replaced(&cluster, APP, 2, &BTreeSet::from([victim.id.clone()])).await;
    // The controller learned nothing of it: the same tasks, still running where they ran.
    // (Only what the crash would change is compared: a record of `before` may still have
    // been completed with a timestamp in flight when the API went.)
    assert_eq!(placement(&cluster.records(KEY).await), placement(&before));
    cluster.marathon.start_api().await.unwrap();

    let after = cluster.wait_tree_matches(KEY, 2).await;
    assert!(!after.contains_key(&victim.id));
    assert!(relists(&controller, "reconnect") > reconnects);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_records_from_an_earlier_run_are_removed_by_the_first_relist() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    cluster.put_spec(KEY, &sleeping(1)).await;
    let real = cluster.wait_tree_matches(KEY, 1).await;
    controller.shutdown().await;

    // Left behind by an earlier run or another Marathon: a task that does not exist, a
    // deployment with neither spec nor app, a record that no longer says the truth, and
    // one that is not even a record.
    let layout = cluster.store.layout().clone();
    let (task_id, record) = real.iter().next().unwrap();
    let ghost = TaskRecord {
        task_id: "web_dev.instance-ghost._app.1".into(),
        ..record.clone()
    };
    let gone = TaskRecord {
        service: "gone".into(),
        deployment: "app".into(),
        app_id: "/gone/app".into(),
        ..record.clone()
    };
    let lying = TaskRecord {
        host: "10.9.9.9".into(),
        state: "TASK_STAGING".into(),
        ..record.clone()
    };
    let store = &cluster.store;
    store
        .put_json(&layout.task(&Cluster::key(KEY), &ghost.task_id), &ghost)
        .await
        .unwrap();
    store
        .put_json(&layout.task(&Cluster::key("gone/app"), task_id), &gone)
        .await
        .unwrap();
    store
        .put_json(&layout.task(&Cluster::key(KEY), task_id), &lying)
        .await
        .unwrap();
    store
        .put(
            &layout.task(&Cluster::key("gone/app"), "garbage"),
            "{not json",
        )
        .await
        .unwrap();

    let controller = cluster.controller().await;
    let after = cluster.wait_tree_matches(KEY, 1).await;
    assert_eq!(ids(&after), ids(&real), "the ghost stays");
    wait_until("the records of a deployment without app go", || async {
        cluster.records("gone/app").await.is_empty()
            && store
                .list(&layout.tasks(&Cluster::key("gone/app")))
                .await
                .unwrap()
                .entries
                .is_empty()
    })
    .await;
    controller.shutdown().await;
}

/// An app created in Marathon without theseus, at `id`, with `labels` and environment.
async fn foreign_app(cluster: &Cluster, id: &str, labels: Value, env: Value) {
    let app: App = serde_json::from_value(json!({
        "id": id, "cmd": "exec sleep 1000", "instances": 1, "cpus": 0.1, "mem": 16,
        "portDefinitions": [{"port": 0, "name": "http"}], "labels": labels, "env": env
    }))
    .unwrap();
    cluster.client.create_app(&app).await.unwrap();
    wait_until(&format!("{id} runs"), || async {
        cluster.marathon.tasks_of(id, TaskState::Running).len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tasks_of_an_app_theseus_does_not_own_never_get_records() {
    let cluster = Cluster::start().await;
    // One app without labels at a deployment's id, one labelled as theseus's but for the
    // installation with another prefix; each has a stale record the controller must see to.
    foreign_app(&cluster, "/free/app", json!({}), json!({})).await;
    foreign_app(
        &cluster,
        "/other/app",
        json!({"THESEUS_MANAGED": "true", "THESEUS_SERVICE": "other",
               "THESEUS_DEPLOYMENT": "app"}),
        json!({"THESEUS_PREFIX": "/elsewhere"}),
    )
    .await;
    let layout = cluster.store.layout().clone();
    for key in ["free/app", "other/app"] {
        cluster
            .store
            .put(&layout.task(&Cluster::key(key), "stale"), "{}")
            .await
            .unwrap();
    }
    let mut config = cluster.config();
    config.resync = Duration::from_millis(300);
    let controller = Controller::start(config).await.unwrap();
    cluster.put_spec(KEY, &sleeping(1)).await;
    cluster.wait_tree_matches(KEY, 1).await;
    wait_until("the stale records of unowned apps go", || async {
        cluster.records("free/app").await.is_empty()
            && cluster.records("other/app").await.is_empty()
    })
    .await;

    // Their tasks change (an event about an app in the controller's picture) and relists
    // pass: still nothing.
    let task = cluster.marathon.tasks_of("/other/app", TaskState::Running)[0].clone();
    crash(task.pid.unwrap());
    wait_replaced(&cluster, "/other/app", 1, &BTreeSet::from([task.id])).await;
    let seen = relists(&controller, "resync");
    wait_until("two more resyncs", || async {
        relists(&controller, "resync") >= seen + 2.0
    })
    .await;
    for key in ["free/app", "other/app"] {
        assert!(cluster.records(key).await.is_empty(), "{key} got records");
    }
    assert!(cluster.app("/other/app").await.is_some(), "left alone");
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_of_a_deleted_deployment_go_with_its_app() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    cluster.put_spec(KEY, &sleeping(2)).await;
    cluster.put_spec("web/stays", &sleeping(1)).await;
    cluster.wait_tree_matches(KEY, 2).await;
    let stays = cluster.wait_tree_matches("web/stays", 1).await;

    cluster.delete_spec(KEY).await;
    wait_until("the deleted deployment's records and status go", || async {
        cluster.records(KEY).await.is_empty() && cluster.status(KEY).await.is_none()
    })
    .await;
    assert!(cluster.app(APP).await.is_none());
    assert_eq!(ids(&cluster.records("web/stays").await), ids(&stays));
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_checked_task_serves_only_once_its_checks_pass() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    cluster
        .put_spec(
            KEY,
            &json!({"cmd": "exec sleep 1000", "instances": 1, "cpus": 0.1, "mem": 16,
                "health_checks": [{"protocol": "COMMAND",
                    "command": format!("test -f {}", flag.display()),
                    "grace_period_seconds": 0, "interval_seconds": 2, "timeout_seconds": 1,
                    "max_consecutive_failures": 0}]}),
        )
        .await;
    wait_until("the task is recorded running and unhealthy", || async {
        let records = cluster.records(KEY).await;
        records.values().any(|r| {
            r.is_running() && r.health_checked && r.health == Health::Unhealthy && !r.is_serving()
        })
    })
    .await;
    std::fs::write(&flag, "").unwrap();
    wait_until("the task's record turns healthy", || async {
        let records = cluster.records(KEY).await;
        records.len() == 1
            && records
                .values()
                .all(|r| r.health == Health::Healthy && r.is_serving())
    })
    .await;
    std::fs::remove_file(&flag).unwrap();
    wait_until("the task's record turns unhealthy again", || async {
        let records = cluster.records(KEY).await;
        records.len() == 1 && records.values().all(|r| r.health == Health::Unhealthy)
    })
    .await;
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_with_nothing_changed_writes_nothing() {
    let cluster = Cluster::start().await;
    let mut config = cluster.config();
    config.resync = Duration::from_millis(300);
    let controller = Controller::start(config).await.unwrap();
    cluster.put_spec(KEY, &sleeping(3)).await;
    cluster.wait_tree_matches(KEY, 3).await;
    // Events do not carry `startedAt`; a relist fills it in.
    wait_until("every record has its start time", || async {
        let records = cluster.records(KEY).await;
        records.len() == 3
            && records
                .values()
                .all(|r| r.started_at.is_some() && r.staged_at.is_some())
    })
    .await;

    let writes = record_writes(&controller);
    let records = cluster.records(KEY).await;
    let seen = relists(&controller, "resync");
    wait_until("three more resyncs", || async {
        relists(&controller, "resync") >= seen + 3.0
    })
    .await;
    assert_eq!(
        record_writes(&controller),
        writes,
        "an unchanged relist wrote"
    );
    assert_eq!(cluster.records(KEY).await, records);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_costs_no_marathon_call() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let revision = cluster.put_spec(KEY, &sleeping(1)).await;
    let before = cluster.wait_tree_matches(KEY, 1).await;
    // The app's own Marathon deployment ends with events that re-read the app: the counts
    // start once it has ended, the controller has seen it end, and the re-reads its events
    // asked for (queued before its end was applied) are done.
    cluster
        .wait_status(KEY, "runs with no Marathon deployment left", |status| {
            status.observed_revision == revision
                && status.phase == theseus::api::Phase::Running
                && status.deployment_ids.is_empty()
        })
        .await;
    wait_until("no re-read is pending", || async {
        metric_sum(
            &controller.metrics().encode(),
            "theseus_controller_marathon_snapshot_rereads_pending",
            "",
        ) == 0.0
    })
    .await;
    let calls = |controller: &Controller, route: &str| {
        metric_sum(
            &controller.metrics().encode(),
            "theseus_controller_marathon_requests_total",
            &format!("route=\"{route}\""),
        )
    };
    let (apps, app) = (
        calls(&controller, "/v2/apps"),
        calls(&controller, "/v2/apps/{app_id}"),
    );
    let task_events = |controller: &Controller, outcome: &str| {
        metric_sum(
            &controller.metrics().encode(),
            "theseus_controller_marathon_snapshot_task_events_total",
            &format!("outcome=\"{outcome}\""),
        )
    };
    let (applied, reread) = (
        task_events(&controller, "applied"),
        task_events(&controller, "reread"),
    );
    let deployment_rereads = metric_sum(
        &controller.metrics().encode(),
        "theseus_controller_marathon_snapshot_deployment_events_total",
        "outcome=\"reread\"",
    );

    // A crash and its replacement: failed, staging, starting, running, as events.
    let task = cluster.marathon.tasks_of(APP, TaskState::Running)[0].clone();
    crash(task.pid.unwrap());
    wait_replaced(&cluster, APP, 1, &ids(&before)).await;
    cluster.wait_tree_matches(KEY, 1).await;
    assert_eq!(calls(&controller, "/v2/apps"), apps, "a list per event");
    // The app's own creation may still be applied late: when the picture came from the
    // list made as the stream connected, that creation's deployment events name a
    // deployment it does not hold, and each asks for a re-read. A crash makes no Marathon
    // deployment, so every other read would be the crash's.
    let deployment_rereads = metric_sum(
        &controller.metrics().encode(),
        "theseus_controller_marathon_snapshot_deployment_events_total",
        "outcome=\"reread\"",
    ) - deployment_rereads;
    assert!(
        calls(&controller, "/v2/apps/{app_id}") - app <= deployment_rereads,
        "a read per event: {} reads, {deployment_rereads} asked for by deployment events",
        calls(&controller, "/v2/apps/{app_id}") - app
    );
    // The end of one task and the start of another, both taken from the events themselves
    // (which of an instance and a status event about the same change lands first varies).
    let applied_now = task_events(&controller, "applied");
    assert!(applied_now >= applied + 2.0, "{applied} → {applied_now}");
    assert_eq!(task_events(&controller, "reread"), reread);
    controller.shutdown().await;
}
