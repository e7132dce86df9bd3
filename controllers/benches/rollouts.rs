//! The rollouts benchmark: numbers, printed as a table, no assertions.
//!
//! `cargo bench -p theseus-controllers --bench rollouts [-- --deployments N --rollbacks M]`
//!
//! A real etcd (testkit), localmarathon in this process with its simulated executor, and the
//! `theseus-controller` release binary as a child process. The benchmark follows an etcd watch
//! of `/observed` and Marathon's event stream itself.
//!
//! 1. `N` deployments of one instance created and run (not measured).
//! 2. Each rolled to a new revision (another command): what the controller writes to etcd
//!    per successful rollout, by kind of key, and etcd's transactions.
//! 3. `M` of them given a revision no agent can place, with a 2 s progress deadline: what the
//!    controller writes per rollback, and the time from the deadline passing (the revision's
//!    start as its history record gives it, plus the deadline) to Marathon receiving the
//!    request that puts the app back (its `api_post_event`).
//! 4. Idle resyncs of all `N` converged deployments, each now with a history and a journal:
//!    what the controller writes (nothing, if an idle resync stays idle).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use serde_json::json;
use theseus::api::{ConditionKind, DeploymentKey, DeploymentStatus, Phase, Reason, RevisionRecord};
use theseus::marathon::{AppId, Event, EventKind};
use theseus::store::{KeyPath, Store, WatchEvent};

mod support;
use support::{
    ControllerProcess, Stack, delta, etcd_server_requests, metric_sum, print_table, summary,
};

/// How many `/desired` puts are in flight at once.
const PUT_CONCURRENCY: usize = 64;
/// Every agent of the stack has 100,000 CPUs: a revision asking for more is never placed.
const UNPLACEABLE_CPUS: f64 = 200_000.0;
/// The progress deadline of the revisions that fail.
const DEADLINE_SECONDS: i64 = 2;

struct Args {
    deployments: usize,
    rollbacks: usize,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            deployments: 1_000,
            rollbacks: 100,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            let mut number = |flag: &str| -> usize {
                words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| panic!("{flag} needs a number"))
            };
            match word.as_str() {
                "--deployments" => args.deployments = number("--deployments"),
                "--rollbacks" => args.rollbacks = number("--rollbacks"),
                // `cargo bench` passes `--bench`.
                _ => {}
            }
        }
        args.rollbacks = args.rollbacks.min(args.deployments);
        args
    }
}

fn deployment_key(i: usize) -> DeploymentKey {
    format!("svc{}/r{i}", i % 10).parse().unwrap()
}

fn app_id(key: &DeploymentKey) -> AppId {
    format!("/{key}").parse().unwrap()
}

/// What the watch of `/observed` has seen: the latest status of each deployment, the task
/// records of each, and the writes counted by kind of key.
#[derive(Default)]
struct Observed {
    statuses: HashMap<String, DeploymentStatus>,
    records: HashMap<String, HashSet<String>>,
    writes: BTreeMap<&'static str, u64>,
}

impl Observed {
    /// Whether each of `revisions` is the observed revision of its deployment, whose status
    /// satisfies `done`, and whose app runs exactly one task with a record.
    fn all(
        &self,
        revisions: &HashMap<String, i64>,
        done: impl Fn(&DeploymentStatus) -> bool,
    ) -> bool {
        revisions.iter().all(|(key, revision)| {
            self.statuses
                .get(key)
                .is_some_and(|s| s.observed_revision == *revision && done(s))
                && self.records.get(key).is_some_and(|r| r.len() == 1)
        })
    }
}

fn count(observed: &mut Observed, kind: &'static str) {
    *observed.writes.entry(kind).or_default() += 1;
}

/// Follows `/observed` into `observed` for as long as the benchmark runs.
fn follow_observed(store: Store, observed: Arc<Mutex<Observed>>) {
    tokio::spawn(async move {
        let layout = store.layout().clone();
        let mut watch = store.watch(&layout.observed_root());
        let mut synced = false;
        while let Some(event) = watch.next().await {
            let mut observed = observed.lock().unwrap();
            match event {
                Ok(WatchEvent::Synced { .. }) => synced = true,
                Ok(WatchEvent::Put { entry, .. }) => match layout.parse(&entry.key) {
                    Some(KeyPath::Status(key)) => {
                        observed
                            .statuses
                            .insert(key.to_string(), entry.json().unwrap());
                        if synced {
                            count(&mut observed, "status");
                        }
                    }
                    Some(KeyPath::Task { key, task_id }) => {
                        observed
                            .records
                            .entry(key.to_string())
                            .or_default()
                            .insert(task_id);
                        if synced {
                            count(&mut observed, "task record put");
                        }
                    }
                    Some(KeyPath::History { .. }) if synced => count(&mut observed, "history"),
                    Some(KeyPath::Journal { .. }) if synced => count(&mut observed, "journal"),
                    _ => {}
                },
                Ok(WatchEvent::Delete { key, .. }) => {
                    if let Some(KeyPath::Task { key, task_id }) = layout.parse(&key) {
                        if let Some(records) = observed.records.get_mut(&key.to_string()) {
                            records.remove(&task_id);
                        }
                        count(&mut observed, "task record delete");
                    } else if synced {
                        count(&mut observed, "other delete");
                    }
                }
                Err(_) => {}
            }
        }
    });
}

/// Polls `observed` until `done` holds of it.
async fn wait_for(observed: &Mutex<Observed>, what: &str, done: impl Fn(&Observed) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done(&observed.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Puts `spec` of each deployment in `which` to `/desired`; the revision of each.
async fn put_specs(
    store: &Store,
    which: impl Iterator<Item = usize>,
    spec: impl Fn(usize) -> serde_json::Value,
) -> HashMap<String, i64> {
    let layout = store.layout().clone();
    stream::iter(which.map(|i| (i, spec(i).to_string())))
        .map(|(i, spec)| {
            let store = store.clone();
            let layout = layout.clone();
            async move {
                let key = deployment_key(i);
                let revision = store.put(&layout.desired(&key), spec).await.unwrap();
                (key.to_string(), revision)
            }
        })
        .buffer_unordered(PUT_CONCURRENCY)
        .collect()
        .await
}

/// The writes and etcd transactions a phase cost, per deployment it concerned.
fn per(writes: &BTreeMap<&'static str, u64>, n: usize) -> String {
    let total: u64 = writes.values().sum();
    let parts: Vec<String> = writes
        .iter()
        .map(|(kind, count)| format!("{kind} {:.2}", *count as f64 / n as f64))
        .collect();
    format!("{:.2} ({})", total as f64 / n as f64, parts.join(", "))
}

fn delta_writes(
    after: &BTreeMap<&'static str, u64>,
    before: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(kind, count)| (*kind, count - before.get(kind).copied().unwrap_or(0)))
        .filter(|(_, count)| *count > 0)
        .collect()
}

fn etcd_txns(requests: &BTreeMap<String, f64>) -> f64 {
    requests
        .iter()
        .filter(|(method, _)| method.contains("Txn") || method.contains("Put"))
        .map(|(_, count)| count)
        .sum()
}

#[tokio::main]
async fn main() {
    let Args {
        deployments,
        rollbacks,
    } = Args::parse();
    let Stack {
        etcd,
        marathon,
        store,
        client,
    } = Stack::start().await;
    let layout = store.layout().clone();
    let mut rows: Vec<(String, String, &str)> = Vec::new();
    let observed = Arc::new(Mutex::new(Observed::default()));
    follow_observed(store.clone(), Arc::clone(&observed));
    let controller = ControllerProcess::spawn(&etcd, &marathon.url(), "3s");
    controller.wait_leading().await;

    eprintln!("1/4: {deployments} deployments created");
    let created = put_specs(
        &store,
        0..deployments,
        |_| json!({"cmd": "sleep 1000", "instances": 1, "cpus": 0.1}),
    )
    .await;
    wait_for(&observed, "every deployment runs", |o| {
        o.all(&created, |s| s.phase == Phase::Running)
    })
    .await;

    eprintln!("2/4: {deployments} successful rollouts");
    let writes_before = observed.lock().unwrap().writes.clone();
    let etcd_before = etcd_server_requests(&etcd).await;
    let started = Instant::now();
    let rolled = put_specs(
        &store,
        0..deployments,
        |_| json!({"cmd": "sleep 2000", "instances": 1, "cpus": 0.1, "change_cause": "bench"}),
    )
    .await;
    wait_for(&observed, "every rollout finishes", |o| {
        o.all(&rolled, |s| s.phase == Phase::Running)
    })
    .await;
    let took = started.elapsed();
    let writes = delta_writes(&observed.lock().unwrap().writes, &writes_before);
    let requests = delta(&etcd_server_requests(&etcd).await, &etcd_before);
    rows.push((
        format!("{deployments} rollouts (1 instance each, new command): put → all Running"),
        format!("{:.2} s", took.as_secs_f64()),
        "",
    ));
    rows.push((
        "keys the controller wrote per successful rollout (by kind)".into(),
        per(&writes, deployments),
        "",
    ));
    rows.push((
        "etcd writes (txn + put requests) per successful rollout, all writers".into(),
        format!(
            "{:.2} (the benchmark's own /desired puts are 1.00 of it)",
            etcd_txns(&requests) / deployments as f64
        ),
        "",
    ));

    eprintln!("3/4: {rollbacks} rollbacks");
    let mut events = client.events(&[EventKind::ApiPost]).await.unwrap();
    let failing: Vec<usize> = (0..rollbacks)
        .map(|i| i * deployments / rollbacks)
        .collect();
    let failing_apps: HashSet<AppId> = failing
        .iter()
        .map(|&i| app_id(&deployment_key(i)))
        .collect();
    // When Marathon received each failing app's update that puts it back: an update whose
    // definition has the good revision's CPUs, after one with the unplaceable CPUs.
    let restored = tokio::spawn(async move {
        let mut failed = HashSet::new();
        let mut restored: HashMap<AppId, DateTime<Utc>> = HashMap::new();
        while restored.len() < failing_apps.len() {
            let Some(Ok(Event::ApiPost(post))) = events.next().await else {
                continue;
            };
            let Some(app) = post.app_definition else {
                continue;
            };
            if !failing_apps.contains(&app.id) {
                continue;
            }
            if app.cpus == Some(UNPLACEABLE_CPUS) {
                failed.insert(app.id.clone());
            } else if failed.contains(&app.id) {
                restored
                    .entry(app.id.clone())
                    .or_insert(post.timestamp.unwrap_or_else(Utc::now));
            }
        }
        restored
    });
    let writes_before = observed.lock().unwrap().writes.clone();
    let etcd_before = etcd_server_requests(&etcd).await;
    let bad = put_specs(&store, failing.iter().copied(), |_| {
        json!({"cmd": "sleep 2000", "instances": 1, "cpus": UNPLACEABLE_CPUS,
               "progress_deadline_seconds": DEADLINE_SECONDS})
    })
    .await;
    wait_for(&observed, "every failing revision is rolled back", |o| {
        bad.iter().all(|(key, revision)| {
            o.statuses.get(key).is_some_and(|s| {
                s.observed_revision == *revision
                    && s.condition(ConditionKind::Progressing)
                        .is_some_and(|c| c.is(Reason::RolledBack))
                    && s.instances.running == 1
            }) && o.records.get(key).is_some_and(|r| r.len() == 1)
        })
    })
    .await;
    let restored = restored.await.unwrap();
    let writes = delta_writes(&observed.lock().unwrap().writes, &writes_before);
    let requests = delta(&etcd_server_requests(&etcd).await, &etcd_before);
    let mut after_deadline = Vec::new();
    for i in &failing {
        let key = deployment_key(*i);
        let revision = bad[&key.to_string()];
        let entry = store
            .get(&layout.history_record(&key, revision))
            .await
            .unwrap()
            .expect("the failed revision's history record");
        let record: RevisionRecord = entry.json().unwrap();
        let deadline = record.started_at + chrono::Duration::seconds(DEADLINE_SECONDS);
        let reached = restored[&app_id(&key)];
        after_deadline.push((reached - deadline).to_std().unwrap_or(Duration::ZERO));
    }
    rows.push((
        format!("{rollbacks} rollbacks (deadline {DEADLINE_SECONDS} s, no agent fits)"),
        format!("{} rolled back", restored.len()),
        "",
    ));
    rows.push((
        "keys the controller wrote per rollback (by kind)".into(),
        per(&writes, rollbacks),
        "",
    ));
    rows.push((
        "etcd writes (txn + put requests) per rollback, all writers".into(),
        format!(
            "{:.2} (the benchmark's own /desired puts are 1.00 of it)",
            etcd_txns(&requests) / rollbacks as f64
        ),
        "",
    ));
    rows.push((
        "deadline passed → rollback request at Marathon: p50 / p99 (max)".into(),
        summary(&mut after_deadline),
        "",
    ));

    eprintln!("4/4: idle resyncs of {deployments} deployments with history");
    let reconciles = |text: &str| {
        metric_sum(
            text,
            "theseus_controller_reconciles_total",
            "controller=\"deployments\"",
        )
    };
    // One resync first, so that what the rollbacks left to settle is settled.
    let resynced = |from: f64, rounds: f64| {
        let controller = &controller;
        async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while reconciles(&controller.metrics().await) < from + rounds * deployments as f64 {
                assert!(Instant::now() < deadline, "the resyncs did not happen");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    resynced(reconciles(&controller.metrics().await), 1.0).await;
    let before = controller.metrics().await;
    let writes_before = observed.lock().unwrap().writes.clone();
    let etcd_before = etcd_server_requests(&etcd).await;
    let resyncs = 3.0;
    resynced(reconciles(&before), resyncs).await;
    let after = controller.metrics().await;
    let requests = delta(&etcd_server_requests(&etcd).await, &etcd_before);
    rows.push((
        format!("idle: {resyncs} resyncs of {deployments} deployments with history: reconciles"),
        format!("{}", reconciles(&after) - reconciles(&before)),
        "",
    ));
    rows.push((
        "idle resyncs: keys written under /observed".into(),
        format!(
            "{:?}",
            delta_writes(&observed.lock().unwrap().writes, &writes_before)
        ),
        "0",
    ));
    rows.push((
        "idle resyncs: etcd requests, etcd's count".into(),
        format!("{requests:?}"),
        "no writes",
    ));
    let (rss, peak) = controller.memory_mib();
    rows.push((
        "controller VmRSS / VmHWM at the end".into(),
        format!("{rss:.1} / {peak:.1} MiB"),
        "",
    ));
    controller.terminate();
    print_table(
        &format!(
            "theseus-controller rollouts benchmark, {deployments} deployments, {rollbacks} \
             rollbacks: etcd 3.4, localmarathon (sim executor) in process, controller release \
             binary as a child process (resync 3 s)"
        ),
        &rows,
    );
    marathon.shutdown().await;
}
