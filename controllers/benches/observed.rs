//! The observed reconciler's benchmark: numbers, printed as a table, no assertions.
//!
//! `cargo bench -p theseus-controllers --bench observed`
//!
//! A real etcd (testkit), localmarathon in this process with its simulated executor, and the
//! `theseus-controller` release binary as a child process. The benchmark follows Marathon's
//! event stream and an etcd watch of `/observed` itself, so each latency is the time between
//! the benchmark seeing Marathon's event and seeing the controller's record (the controller
//! reads the same stream at the same moment); the etcd baseline says how much of that is
//! etcd's own put → watch delay.
//!
//! 1. A task reaching TASK_RUNNING → its record, and a task ending → its record gone: 200
//!    tasks killed one after another through Marathon's API, each replaced by Marathon. Over
//!    the same run, the controller's Marathon calls per task event (the old subscriber made
//!    a full `GET /v2/tasks` for each).
//! 2. 100 deployments of 10 instances → 1,000 records.
//! 3. The controller stopped, every one of those tasks replaced (`/restart`), the controller
//!    started again: how long until the tree is right, and what it wrote.
//! 4. Idle resyncs with 1,000 records: record writes, etcd's own request counts, Marathon
//!    calls; and the controller's memory.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use theseus::api::{DeploymentKey, TaskRecord};
use theseus::marathon::{AppId, Event, EventKind, EventStream, MarathonClient, TaskId, TaskState};
use theseus::store::{KeyPath, Layout, Store, WatchEvent, WatchStream};

mod support;
use support::{
    ControllerProcess, Stack, delta, etcd_put_to_watch, etcd_server_requests, marathon_calls,
    metric_sum, print_table, summary,
};

const KILLS: usize = 200;
const WIDE_APPS: usize = 100;
const WIDE_INSTANCES: usize = 10;

/// When the benchmark saw each thing happen to a task, from Marathon's events and from the
/// records in etcd.
#[derive(Default)]
struct Sightings {
    running_event: HashMap<String, Instant>,
    ended_event: HashMap<String, Instant>,
    running_record: HashMap<String, Instant>,
    record_removed: HashMap<String, Instant>,
    /// Tasks with a running record now.
    recorded: BTreeSet<String>,
    /// `status_update_event`s and `instance_changed_event`s seen.
    task_events: usize,
}

impl Sightings {
    fn saw_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::StatusUpdate(update) => {
                self.task_events += 1;
                let id = update.task_id.as_str().to_owned();
                if update.task_status.is_terminal() {
                    self.ended_event.entry(id).or_insert(now);
                } else if update.task_status == TaskState::Running {
                    self.running_event.entry(id).or_insert(now);
                }
            }
            Event::InstanceChanged(_) => self.task_events += 1,
            _ => {}
        }
    }

    fn saw_watch(&mut self, layout: &Layout, event: WatchEvent) {
        let now = Instant::now();
        match event {
            WatchEvent::Put { entry, .. } => {
                if let Some(KeyPath::Task { task_id, .. }) = layout.parse(&entry.key) {
                    let record: TaskRecord = entry.json().unwrap();
                    if record.is_running() {
                        self.running_record.entry(task_id.clone()).or_insert(now);
                        self.recorded.insert(task_id);
                    }
                }
            }
            WatchEvent::Delete { key, .. } => {
                if let Some(KeyPath::Task { task_id, .. }) = layout.parse(&key) {
                    self.record_removed.entry(task_id.clone()).or_insert(now);
                    self.recorded.remove(&task_id);
                }
            }
            WatchEvent::Synced { .. } => {}
        }
    }
}

/// Feeds `sightings` from both streams until `done` holds.
async fn follow(
    sightings: &mut Sightings,
    events: &mut EventStream,
    watch: &mut WatchStream,
    layout: &Layout,
    done: impl Fn(&Sightings) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !done(sightings) {
        tokio::select! {
            event = events.next() => sightings.saw_event(event.unwrap().unwrap()),
            event = watch.next() => sightings.saw_watch(layout, event.unwrap().unwrap()),
            () = tokio::time::sleep_until(deadline) => panic!("the benchmark stalled"),
        }
    }
}

/// The task ids under `/observed/` and the task ids Marathon runs, once they are equal; the
/// time that took, polling every 20 ms.
async fn wait_tree_matches(store: &Store, client: &MarathonClient) -> Instant {
    let layout = store.layout().clone();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let recorded: HashSet<String> = store
            .list(&layout.observed_root())
            .await
            .unwrap()
            .entries
            .iter()
            .filter_map(|entry| match layout.parse(&entry.key) {
                Some(KeyPath::Task { task_id, .. }) => Some(task_id),
                _ => None,
            })
            .collect();
        let running: HashSet<String> = client
            .tasks(None)
            .await
            .unwrap()
            .iter()
            .filter(|task| task.state == TaskState::Running)
            .map(|task| task.id.as_str().to_owned())
            .collect();
        if recorded == running && !running.is_empty() {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "the tree did not match Marathon");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn wide_key(i: usize) -> DeploymentKey {
    format!("wide/d{i}").parse().unwrap()
}

fn records_written(text: &str, action: &str) -> f64 {
    metric_sum(
        text,
        "theseus_controller_observed_records_total",
        &format!("action=\"{action}\""),
    )
}

#[tokio::main]
async fn main() {
    let Stack {
        etcd,
        marathon,
        store,
        client,
    } = Stack::start().await;
    let layout = store.layout().clone();
    let mut rows: Vec<(String, String, &str)> = Vec::new();

    eprintln!("0/4: etcd baseline");
    let mut etcd_put = etcd_put_to_watch(&store, KILLS).await;
    rows.push((
        "baseline: etcd put → watch event, p50 / p99".into(),
        summary(&mut etcd_put),
        "",
    ));

    eprintln!("1/4: {KILLS} tasks killed and replaced");
    let controller = ControllerProcess::spawn(&etcd, &marathon.url(), "3600s");
    controller.wait_leading().await;
    let key: DeploymentKey = "bench/latency".parse().unwrap();
    let app = AppId::parse("/bench/latency").unwrap();
    let mut events = client
        .events(&[EventKind::StatusUpdate, EventKind::InstanceChanged])
        .await
        .unwrap();
    let mut watch = store.watch(&layout.observed_root());
    let mut sightings = Sightings::default();
    store
        .put(
            &layout.desired(&key),
            json!({"cmd": "sleep 1000", "ports": {"http": 8080}}).to_string(),
        )
        .await
        .unwrap();
    follow(&mut sightings, &mut events, &mut watch, &layout, |s| {
        s.recorded.len() == 1
    })
    .await;
    let before = controller.metrics().await;
    let events_before = sightings.task_events;
    let mut victims = Vec::with_capacity(KILLS);
    for _ in 0..KILLS {
        let victim = sightings.recorded.iter().next().unwrap().clone();
        client
            .kill_task(&app, &TaskId::new(victim.clone()), false, false)
            .await
            .unwrap();
        follow(&mut sightings, &mut events, &mut watch, &layout, |s| {
            s.record_removed.contains_key(&victim)
                && s.ended_event.contains_key(&victim)
                && s.recorded
                    .iter()
                    .any(|id| *id != victim && s.running_event.contains_key(id))
        })
        .await;
        victims.push(victim);
    }
    let after = controller.metrics().await;
    let task_events = sightings.task_events - events_before;
    drop(events);
    drop(watch);
    let mut running: Vec<Duration> = sightings
        .running_event
        .iter()
        .filter_map(|(id, event)| {
            let record = sightings.running_record.get(id)?;
            Some(record.saturating_duration_since(*event))
        })
        .collect();
    let mut ended: Vec<Duration> = victims
        .iter()
        .map(|id| sightings.record_removed[id].saturating_duration_since(sightings.ended_event[id]))
        .collect();
    rows.push((
        format!(
            "TASK_RUNNING event → record in etcd ({} tasks): p50 / p99",
            running.len()
        ),
        summary(&mut running),
        "p99 ≤ 10 ms",
    ));
    rows.push((
        format!(
            "task ended event → record removed ({} tasks): p50 / p99",
            ended.len()
        ),
        summary(&mut ended),
        "",
    ));
    let calls = delta(&marathon_calls(&after), &marathon_calls(&before));
    let reads: f64 = calls
        .iter()
        .filter(|(route, _)| route.starts_with("GET ") && !route.ends_with("/v2/events"))
        .map(|(_, count)| *count)
        .fold(0.0, |sum, count| sum + count);
    rows.push((
        format!("{KILLS} kills: task events (status update + instance changed)"),
        task_events.to_string(),
        "",
    ));
    rows.push((
        format!("{KILLS} kills: controller's Marathon calls"),
        format!("{calls:?}"),
        "",
    ));
    rows.push((
        "Marathon reads per task event (old subscriber: 1 GET /v2/tasks)".into(),
        format!("{:.3}", reads / task_events as f64),
        "0",
    ));
    rows.push((
        format!("{KILLS} kills: records put / removed"),
        format!(
            "{} / {}",
            records_written(&after, "put") - records_written(&before, "put"),
            records_written(&after, "delete") - records_written(&before, "delete"),
        ),
        "",
    ));

    eprintln!("2/4: {WIDE_APPS} deployments × {WIDE_INSTANCES} instances");
    let started = Instant::now();
    for i in 0..WIDE_APPS {
        store
            .put(
                &layout.desired(&wide_key(i)),
                json!({"cmd": "sleep 1000", "instances": WIDE_INSTANCES,
                       "ports": {"http": 8080, "admin": 8081}})
                .to_string(),
            )
            .await
            .unwrap();
    }
    let matched = wait_tree_matches(&store, &client).await;
    let tasks = WIDE_APPS * WIDE_INSTANCES;
    rows.push((
        format!("{WIDE_APPS} deployments × {WIDE_INSTANCES} → {tasks} records (from the puts)"),
        format!("{:.2} s", (matched - started).as_secs_f64()),
        "",
    ));
    controller.terminate();

    eprintln!("3/4: every task replaced while the controller is down");
    let old: HashSet<String> = client
        .tasks(None)
        .await
        .unwrap()
        .iter()
        .map(|task| task.id.as_str().to_owned())
        .collect();
    for i in 0..WIDE_APPS {
        let id = AppId::parse(&format!("/{}", wide_key(i))).unwrap();
        client.restart_app(&id, false).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let now = client.tasks(None).await.unwrap();
        let replaced = now.len() == tasks + 1
            && now
                .iter()
                .filter(|task| task.app_id.as_str().starts_with("/wide/"))
                .all(|task| !old.contains(task.id.as_str()) && task.state == TaskState::Running);
        if replaced && client.deployments().await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the restarts did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let controller = ControllerProcess::spawn(&etcd, &marathon.url(), "2s");
    let matched = wait_tree_matches(&store, &client).await;
    let restarted = controller.metrics().await;
    rows.push((
        format!("restart after all {tasks} tasks were replaced → tree right"),
        format!(
            "{:.2} s (relists: {})",
            (matched - started).as_secs_f64(),
            ["initial", "reconnect", "resync"]
                .map(|reason| format!(
                    "{reason} {}",
                    metric_sum(
                        &restarted,
                        "theseus_controller_marathon_snapshot_relists_total",
                        &format!("reason=\"{reason}\""),
                    )
                ))
                .join(", ")
        ),
        "1 relist",
    ));
    rows.push((
        "  … records put / removed by then".into(),
        format!(
            "{} / {}",
            records_written(&restarted, "put"),
            records_written(&restarted, "delete")
        ),
        "",
    ));

    eprintln!("4/4: idle resyncs with {} records", tasks + 1);
    let relists = |text: &str| {
        metric_sum(
            text,
            "theseus_controller_marathon_snapshot_relists_total",
            "reason=\"resync\"",
        )
    };
    let reconciles = |text: &str| metric_sum(text, "theseus_controller_reconciles_total", "");
    let deadline = Instant::now() + Duration::from_secs(120);
    while relists(&controller.metrics().await) < 1.0 {
        assert!(Instant::now() < deadline, "no resync happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = controller.metrics().await;
    let etcd_before = etcd_server_requests(&etcd).await;
    let keys = (WIDE_APPS + 1) as f64;
    let mut after;
    loop {
        after = controller.metrics().await;
        if relists(&after) >= relists(&before) + 3.0
            && reconciles(&after) >= reconciles(&before) + 3.0 * 2.0 * keys
            && metric_sum(&after, "theseus_controller_queue_running_keys", "") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let etcd_after = etcd_server_requests(&etcd).await;
    let resyncs = relists(&after) - relists(&before);
    rows.push((
        format!(
            "{resyncs} idle resyncs, {} records: records written",
            tasks + 1
        ),
        format!(
            "{}",
            records_written(&after, "put") + records_written(&after, "delete")
                - records_written(&before, "put")
                - records_written(&before, "delete")
        ),
        "0",
    ));
    rows.push((
        "  … etcd unary requests, etcd's count".into(),
        format!("{:?}", delta(&etcd_after, &etcd_before)),
        "0 writes",
    ));
    rows.push((
        "  … controller's Marathon calls".into(),
        format!(
            "{:?}",
            delta(&marathon_calls(&after), &marathon_calls(&before))
        ),
        "1 list each",
    ));
    let (rss, peak) = controller.memory_mib();
    rows.push((
        format!("controller RSS (peak) with {} records", tasks + 1),
        format!("{rss:.1} MiB ({peak:.1} MiB)"),
        "",
    ));
    controller.terminate();

    print_table(
        "observed reconciler benchmark: etcd 3.4, localmarathon (sim executor) in process, \
         controller release binary as a child process",
        &rows,
    );
    marathon.shutdown().await;
}
