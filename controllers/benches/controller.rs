//! The controller's benchmark: numbers, printed as a table, no assertions.
//!
//! `cargo bench -p theseus-controllers --bench controller -- [--deployments N]
//! [--instances M] [--convergence-only]` (defaults 1,000 × 1)
//!
//! It starts a real etcd (testkit), localmarathon in this process (on threads of its own) with
//! its simulated executor (on agents large enough that placement never limits), and the
//! `theseus-controller` release binary as a child process, with its default settings but for
//! the resync period. It first measures the parts without the controller, so that the
//! controller's share of each number can be read off:
//! - etcd: put → watch event; localmarathon: `POST /v2/apps` → its `api_post_event`, with
//!   Marathon empty and with 0 → 200 apps accumulating; localmarathon alone taking 1,000 apps
//!   to running;
//!
//! then the controller:
//! 1. put → app: from writing `/desired/<key>` to Marathon's `api_post_event` for the new app,
//!    200 puts one after another, with Marathon kept empty (each app deleted before the next
//!    put) and with the apps accumulating;
//! 2. N new deployments of M instances written at once, until every status is `Running` at
//!    its revision and every task has its record (followed with an etcd watch, not by
//!    polling), against the floor measured in the same run: the longer of localmarathon
//!    alone creating the same apps until every task runs, and etcd alone writing the
//!    minimum keys (each spec, one status, one record per task). With it: the controller's
//!    peak and steady memory (VmHWM, VmRSS), puts per kind as etcd's watch saw them,
//!    localmarathon's full lists, single reads and cut event streams, relists by reason,
//!    reconciles, the work queue's peak (sampled), the Marathon events the controller read
//!    and the event backlog's peak;
//! 3. a restart with the N converged keys (a fresh controller with a short resync): how long
//!    until it leads and until its start-up pass has looked at every key; then one idle
//!    resync: Marathon calls by route, and etcd requests as the controller counts them and as
//!    etcd's own `/metrics` counts them; and the keys written or deleted under `/desired` and
//!    `/observed` from the restart to the end of the resync;
//! 4. the controller's resident memory (VmRSS) with N keys.
//!
//! `--convergence-only` runs part 2 alone (with its floor).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use localmarathon::Handle;
use serde_json::json;
use theseus::api::{DeploymentKey, Phase};
use theseus::marathon::{App, AppId, AppQuery, EventKind, EventStream, MarathonClient};
use theseus::store::{
    Entry, EtcdConfig, KeyPath, Layout, Revision, Store, WatchEvent, WatchStream,
};
use theseus_controllers::controller::DEFAULT_WORKERS;
use theseus_testkit::EtcdServer;

mod support;
use support::{
    ControllerProcess, MARATHON_THREADS, Stack, delta, etcd_cpu_seconds, etcd_put_to_watch,
    etcd_server_requests, marathon_calls, metric_sum, print_table, process_cpu_seconds, summary,
    thread_cpu_seconds,
};

const LATENCY_PUTS: usize = 200;
/// Concurrent creates of the floor's "Marathon alone", as the controller's workers.
const CREATE_CONCURRENCY: usize = DEFAULT_WORKERS as usize;
/// Concurrent puts of specs (and of the floor's "etcd alone").
const PUT_CONCURRENCY: usize = 64;

/// The command line: `--deployments N --instances M --convergence-only`; anything else
/// (cargo's `--bench`) is ignored.
struct Args {
    deployments: usize,
    instances: u32,
    convergence_only: bool,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            deployments: 1000,
            instances: 1,
            convergence_only: false,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            match word.as_str() {
                "--deployments" => args.deployments = number(words.next(), &word),
                "--instances" => args.instances = number(words.next(), &word),
                "--convergence-only" => args.convergence_only = true,
                _ => {}
            }
        }
        args
    }
}

fn number<T: std::str::FromStr>(word: Option<String>, flag: &str) -> T {
    word.and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{flag} needs a number"))
}

/// Waits for the first event naming `app` (its `api_post_event` when it was just created).
async fn event_about(events: &mut EventStream, app: &AppId) {
    loop {
        let event = events.next().await.unwrap().unwrap();
        if event.app_id() == Some(app) {
            return;
        }
    }
}

/// Waits until Marathon holds no app.
async fn wait_empty(client: &MarathonClient) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !client
        .list_apps(&AppQuery::default())
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "Marathon did not empty");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Marathon has no app, no task and no deployment left: the kills that follow a
/// deletion send their events after the app is gone from the list, and a controller that
/// connects later must not have them to read while it is measured.
async fn wait_quiet(marathon: &Handle, client: &MarathonClient) {
    wait_empty(client).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !marathon.tasks().is_empty() || !client.deployments().await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "Marathon did not finish its kills"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Marathon no longer has `app`.
async fn wait_gone(client: &MarathonClient, app: &AppId) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get_app(app, &[]).await.is_ok() {
        assert!(Instant::now() < deadline, "{app} was not deleted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What etcd's watch of `/observed` saw until convergence.
#[derive(Default)]
struct Convergence {
    /// Status puts, by phase.
    status_puts: BTreeMap<String, u64>,
    /// Task record puts, and how many of them were a record's first.
    record_puts: u64,
    first_record_puts: u64,
    record_deletes: u64,
    /// Puts of revision records and journal entries (the rollout's record).
    history_puts: u64,
    journal_puts: u64,
}

/// What the benchmark reads of a status: the rest of it is skipped, not decoded, so that
/// following 10,000 deployments costs this process little of the CPU it shares.
#[derive(serde::Deserialize)]
struct StatusProgress {
    observed_revision: i64,
    phase: Phase,
}

/// Follows `watch` (of `/observed/`, already synced) until every deployment of `keys` says
/// Running at the revision its spec was written at (known from `revisions` once every spec
/// is written) and `tasks` task records exist; what the watch saw on the way, and when it
/// was done. It reads from before the first spec is written, so that it sees every write of
/// the controller and never has to list what was written before it began.
async fn wait_converged(
    mut watch: WatchStream,
    layout: &Layout,
    keys: &[DeploymentKey],
    mut revisions_known: tokio::sync::watch::Receiver<Option<HashMap<String, i64>>>,
    tasks: usize,
) -> (Instant, Convergence) {
    // What each deployment's status last said (its revision, and whether it ran), by
    // status key.
    let mut said: HashMap<String, Option<(i64, bool)>> =
        keys.iter().map(|key| (layout.status(key), None)).collect();
    // The revision each spec was written at, by status key, once every spec is written.
    let mut revisions: Option<HashMap<String, i64>> = None;
    let runs = |revisions: &HashMap<String, i64>, key: &str, said: Option<(i64, bool)>| {
        said.is_some_and(|(revision, running)| running && revisions.get(key) == Some(&revision))
    };
    let mut phases: HashMap<Phase, u64> = HashMap::new();
    let mut records: HashSet<String> = HashSet::new();
    let mut seen = Convergence::default();
    let mut all_running = 0;
    loop {
        let event = tokio::select! {
            event = watch.next() => event.expect("the watch does not end"),
            changed = revisions_known.changed(), if revisions.is_none() => {
                changed.expect("the benchmark writes the revisions");
                let known: HashMap<String, i64> = revisions_known
                    .borrow()
                    .clone()
                    .expect("sent once every spec is written")
                    .into_iter()
                    .map(|(key, revision)| (layout.status(&key.parse().unwrap()), revision))
                    .collect();
                all_running = said
                    .iter()
                    .filter(|(key, said)| runs(&known, key, **said))
                    .count();
                revisions = Some(known);
                if all_running == said.len() && records.len() == tasks {
                    break;
                }
                continue;
            }
        };
        match event {
            Ok(WatchEvent::Put { entry, .. }) => {
                if let Some(said) = said.get_mut(&entry.key) {
                    let status: StatusProgress = entry.json().unwrap();
                    *phases.entry(status.phase).or_default() += 1;
                    let now = Some((status.observed_revision, status.phase == Phase::Running));
                    let before = std::mem::replace(said, now);
                    if let Some(revisions) = &revisions {
                        all_running = all_running + usize::from(runs(revisions, &entry.key, now))
                            - usize::from(runs(revisions, &entry.key, before));
                    }
                } else if entry.key.contains("/history/") {
                    seen.history_puts += 1;
                    continue;
                } else if entry.key.contains("/journal/") {
                    seen.journal_puts += 1;
                    continue;
                } else if entry.key.contains("/tasks/") {
                    match layout.parse(&entry.key) {
                        Some(KeyPath::Task { task_id, .. }) => {
                            seen.record_puts += 1;
                            if records.insert(task_id) {
                                seen.first_record_puts += 1;
                            }
                        }
                        _ => continue,
                    }
                } else {
                    continue;
                }
            }
            Ok(WatchEvent::Delete { key, .. }) => {
                if let Some(KeyPath::Task { task_id, .. }) = layout.parse(&key) {
                    seen.record_deletes += 1;
                    records.remove(&task_id);
                }
            }
            _ => continue,
        }
        if revisions.is_some() && all_running == said.len() && records.len() == tasks {
            break;
        }
    }
    seen.status_puts = phases
        .into_iter()
        .map(|(phase, puts)| (format!("{phase:?}"), puts))
        .collect();
    (Instant::now(), seen)
}

/// localmarathon alone: `n` apps of `instances` created (as many at once as the
/// controller's workers) until every task runs (polled every 20 ms); then removed.
async fn marathon_alone(
    marathon: &Handle,
    client: &MarathonClient,
    n: usize,
    instances: u32,
) -> Duration {
    let started = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(CREATE_CONCURRENCY, |i| {
            let client = client.clone();
            async move {
                let id = AppId::parse(&format!("/baseline/bulk{i}")).unwrap();
                client.create_app(&app_of(&id, instances)).await.unwrap();
            }
        })
        .await;
    // Asked of localmarathon's handle: listing every app with its tasks over HTTP every
    // 20 ms would hold its state lock long enough to slow what is measured.
    let tasks = n * instances as usize;
    while marathon
        .tasks()
        .iter()
        .filter(|task| task.state == localmarathon::TaskState::Running)
        .count()
        < tasks
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    stream::iter(0..n)
        .for_each_concurrent(CREATE_CONCURRENCY, |i| {
            let client = client.clone();
            async move {
                let id = AppId::parse(&format!("/baseline/bulk{i}")).unwrap();
                client.delete_app(&id, true).await.unwrap();
            }
        })
        .await;
    wait_quiet(marathon, client).await;
    took
}

/// etcd alone: the minimum keys of `n` deployments of `instances` (each spec, one status,
/// one record per task, of their usual sizes), written to an etcd of its own. Not the one the
/// controller is measured on: etcd 3.4 copies its write buffer, which keeps the size of the
/// largest batch of writes it has held, for every transaction with a compare, so the floor's
/// burst of writes would slow down every fenced write measured after it.
async fn etcd_alone(n: usize, instances: u32) -> Duration {
    let etcd = EtcdServer::start();
    let store = Store::connect(EtcdConfig::new(etcd.endpoints()), Layout::default())
        .await
        .unwrap();
    let spec = json!({"cmd": "sleep 1000", "instances": instances}).to_string();
    let status = json!({
        "observed_revision": 1234, "phase": "Running",
        "conditions": [
            {"type": "Valid", "status": "True", "reason": "SpecValid", "message": "the spec is valid"},
            {"type": "Progressing", "status": "True", "reason": "Applied", "message": "Marathon has the spec"},
            {"type": "Available", "status": "True", "reason": "AllRunning", "message": "every instance runs"}
        ],
        "instances": {"desired": instances, "staged": 0, "running": instances, "healthy": 0, "unhealthy": 0},
        "app_id": "/svc0/d0", "app_version": "2026-01-01T00:00:00.000Z", "deployment_ids": [],
        "updated_at": "2026-01-01T00:00:00.000Z"
    })
    .to_string();
    let record = json!({
        "service": "svc0", "deployment": "d0", "task_id": "svc0_d0.instance-5f2a7c1e-0000-11ef-8000-000000000000._app.1",
        "app_id": "/svc0/d0", "host": "127.0.0.11", "ip_addresses": ["127.0.0.11"], "ports": {},
        "state": "TASK_RUNNING", "health": "unknown", "staged_at": "2026-01-01T00:00:00.000Z",
        "started_at": "2026-01-01T00:00:00.000Z", "version": "2026-01-01T00:00:00.000Z", "labels": []
    })
    .to_string();
    let keys = (0..n).flat_map(|i| {
        let spec = (format!("/floor/desired/svc{}/d{i}", i % 10), spec.clone());
        let status = (
            format!("/floor/observed/svc{}/d{i}/status", i % 10),
            status.clone(),
        );
        let records = (0..instances).map({
            let record = record.clone();
            move |t| {
                (
                    format!("/floor/observed/svc{}/d{i}/tasks/t{t}", i % 10),
                    record.clone(),
                )
            }
        });
        [spec, status].into_iter().chain(records)
    });
    let started = Instant::now();
    stream::iter(keys)
        .for_each_concurrent(PUT_CONCURRENCY, |(key, value)| {
            let store = store.clone();
            async move {
                store.put(&key, value).await.unwrap();
            }
        })
        .await;
    let took = started.elapsed();
    drop(etcd);
    took
}

fn app(id: &AppId) -> App {
    app_of(id, 1)
}

fn app_of(id: &AppId, instances: u32) -> App {
    let mut app = App::new(id.clone());
    app.cmd = Some("sleep 1000".into());
    app.instances = Some(instances);
    // As the controller maps a spec without ports: no host port, so the agents' port
    // ranges never limit how many tasks run.
    app.port_definitions = Some(Vec::new());
    app
}

fn deployment_key(i: usize) -> DeploymentKey {
    format!("svc{}/d{i}", i % 10).parse().unwrap()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let deployments = args.deployments;
    let instances = args.instances;
    let Stack {
        etcd,
        marathon,
        store,
        client,
    } = Stack::start().await;
    let mut rows: Vec<(String, String, &str)> = Vec::new();
    if !args.convergence_only {
        latencies(&etcd, &marathon, &store, &client, &mut rows).await;
    }
    let controller = converge(&args, &etcd, &marathon, &store, &client, &mut rows).await;
    controller.terminate();
    if !args.convergence_only {
        idle_resync(deployments, &etcd, &marathon, &store, &mut rows).await;
    }
    print_table(
        &format!(
            "theseus-controller benchmark, {deployments} deployments × {instances} instances: \
             etcd 3.4, localmarathon (sim executor) in process on its own threads, controller release binary as \
             a child process"
        ),
        &rows,
    );
    marathon.shutdown().await;
}

/// The baselines without the controller, then part 1: put → app.
async fn latencies(
    etcd: &EtcdServer,
    marathon: &Handle,
    store: &Store,
    client: &MarathonClient,
    rows: &mut Vec<(String, String, &'static str)>,
) {
    let layout = store.layout().clone();
    eprintln!("0/4: baselines without the controller");
    let mut etcd_put = etcd_put_to_watch(store, LATENCY_PUTS).await;
    rows.push((
        "baseline: etcd put → watch event, p50 / p99".into(),
        summary(&mut etcd_put),
        "",
    ));

    let mut events = client.events(&[]).await.unwrap();
    let mut empty = Vec::with_capacity(LATENCY_PUTS);
    for i in 0..LATENCY_PUTS {
        let id = AppId::parse(&format!("/baseline/empty{i}")).unwrap();
        let started = Instant::now();
        client.create_app(&app(&id)).await.unwrap();
        event_about(&mut events, &id).await;
        empty.push(started.elapsed());
        client.delete_app(&id, true).await.unwrap();
        wait_gone(client, &id).await;
    }
    rows.push((
        "baseline: Marathon POST → api_post_event, empty".into(),
        summary(&mut empty),
        "",
    ));
    let mut accumulating = Vec::with_capacity(LATENCY_PUTS);
    for i in 0..LATENCY_PUTS {
        let id = AppId::parse(&format!("/baseline/many{i}")).unwrap();
        let started = Instant::now();
        client.create_app(&app(&id)).await.unwrap();
        event_about(&mut events, &id).await;
        accumulating.push(started.elapsed());
    }
    drop(events);
    rows.push((
        format!("baseline: Marathon POST → api_post_event, 0→{LATENCY_PUTS} apps"),
        summary(&mut accumulating),
        "",
    ));
    for i in 0..LATENCY_PUTS {
        let id = AppId::parse(&format!("/baseline/many{i}")).unwrap();
        client.delete_app(&id, true).await.unwrap();
    }
    wait_empty(client).await;

    eprintln!("1/4: put → app");
    let controller = ControllerProcess::spawn(etcd, &marathon.url(), "3600s");
    controller.wait_leading().await;
    let mut events = client.events(&[EventKind::ApiPost]).await.unwrap();
    let mut kept_empty = Vec::with_capacity(LATENCY_PUTS);
    for i in 0..LATENCY_PUTS {
        let key: DeploymentKey = format!("latency/e{i}").parse().unwrap();
        let id = AppId::parse(&format!("/{key}")).unwrap();
        let started = Instant::now();
        store
            .put(
                &layout.desired(&key),
                json!({"cmd": "sleep 1000"}).to_string(),
            )
            .await
            .unwrap();
        event_about(&mut events, &id).await;
        kept_empty.push(started.elapsed());
        store.delete(&layout.desired(&key)).await.unwrap();
        wait_gone(client, &id).await;
    }
    rows.push((
        "put → app exists, Marathon empty: p50 / p99".into(),
        summary(&mut kept_empty),
        "≤ 3 / ≤ 10 ms",
    ));
    let mut growing = Vec::with_capacity(LATENCY_PUTS);
    for i in 0..LATENCY_PUTS {
        let key: DeploymentKey = format!("latency/g{i}").parse().unwrap();
        let id = AppId::parse(&format!("/{key}")).unwrap();
        let started = Instant::now();
        store
            .put(
                &layout.desired(&key),
                json!({"cmd": "sleep 1000"}).to_string(),
            )
            .await
            .unwrap();
        event_about(&mut events, &id).await;
        growing.push(started.elapsed());
    }
    drop(events);
    rows.push((
        format!("put → app exists, 0→{LATENCY_PUTS} apps: p50 / p99"),
        summary(&mut growing),
        "≤ 3 / ≤ 10 ms",
    ));
    for i in 0..LATENCY_PUTS {
        let key: DeploymentKey = format!("latency/g{i}").parse().unwrap();
        store.delete(&layout.desired(&key)).await.unwrap();
    }
    wait_empty(client).await;

    controller.terminate();
}

/// Part 2: `deployments` × `instances` written at once until converged, against the floor.
async fn converge(
    args: &Args,
    etcd: &EtcdServer,
    marathon: &Handle,
    store: &Store,
    client: &MarathonClient,
    rows: &mut Vec<(String, String, &'static str)>,
) -> ControllerProcess {
    let (deployments, instances) = (args.deployments, args.instances);
    let layout = store.layout().clone();
    let tasks = deployments * instances as usize;
    eprintln!("2/4: the floor of {deployments} × {instances}");
    let marathon_floor = marathon_alone(marathon, client, deployments, instances).await;
    let etcd_floor = etcd_alone(deployments, instances).await;
    let floor = marathon_floor.max(etcd_floor);
    rows.push((
        format!("floor: Marathon alone, {deployments} × {instances} creates → all running"),
        format!("{:.2} s", marathon_floor.as_secs_f64()),
        "",
    ));
    rows.push((
        format!(
            "floor: etcd alone, {} keys (specs, statuses, records)",
            2 * deployments + tasks
        ),
        format!("{:.2} s", etcd_floor.as_secs_f64()),
        "",
    ));

    eprintln!("2/4: {deployments} × {instances} new deployments");
    let controller = ControllerProcess::spawn(etcd, &marathon.url(), "3600s");
    controller.wait_leading().await;
    // Its event stream connected and the first list made: a relist counted from here on is
    // a reconnection's.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric_sum(
        &controller.metrics().await,
        "theseus_controller_marathon_snapshot_relists_total",
        "reason=\"reconnect\"",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the controller never followed Marathon's events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second subscriber that only reads the stream's bytes: how often localmarathon itself
    // cuts a reader that never falls behind on its own account.
    let bare_reader_cuts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bare_reader = tokio::spawn({
        let url = format!("{}/v2/events", marathon.url());
        let cuts = std::sync::Arc::clone(&bare_reader_cuts);
        async move {
            loop {
                let Ok(response) = support::http()
                    .get(&url)
                    .header("Accept", "text/event-stream")
                    .send()
                    .await
                else {
                    return;
                };
                let mut bytes = response.bytes_stream();
                while let Some(Ok(_)) = bytes.next().await {}
                cuts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let traffic_before = marathon.traffic();
    let metrics_before = controller.metrics().await;
    let etcd_requests_before = etcd_server_requests(etcd).await;
    let cpu_before = (
        etcd_cpu_seconds(etcd).await,
        controller.cpu_seconds(),
        thread_cpu_seconds(MARATHON_THREADS),
        process_cpu_seconds("/proc/self/stat"),
    );
    let spec = json!({"cmd": "sleep 1000", "instances": instances}).to_string();
    // The watch of /observed/ has made its first list before the first put, so that it sees
    // every write of the controller as it happens.
    let mut watch = store.watch(&layout.observed_root());
    loop {
        match watch.next().await.expect("the watch does not end") {
            Ok(WatchEvent::Synced { .. }) => break,
            Ok(_) => {}
            Err(error) => panic!("cannot watch /observed/: {error}"),
        }
    }
    let revisions_known = tokio::sync::watch::Sender::new(None::<HashMap<String, i64>>);
    let watching = {
        let layout = layout.clone();
        let keys: Vec<DeploymentKey> = (0..deployments).map(deployment_key).collect();
        let known = revisions_known.subscribe();
        tokio::spawn(async move { wait_converged(watch, &layout, &keys, known, tasks).await })
    };
    let started = Instant::now();
    let puts: Vec<(String, i64)> = stream::iter(0..deployments)
        .map(|i| {
            let store = store.clone();
            let layout = layout.clone();
            let spec = spec.clone();
            async move {
                let key = deployment_key(i);
                let revision = store.put(&layout.desired(&key), spec).await.unwrap();
                (key.to_string(), revision)
            }
        })
        .buffer_unordered(PUT_CONCURRENCY)
        .collect()
        .await;
    revisions_known.send_replace(Some(puts.into_iter().collect()));
    // The work queue's depth, sampled until convergence.
    let mut queue_peak = 0.0_f64;
    let mut watching = watching;
    let (converged, seen) = loop {
        tokio::select! {
            done = &mut watching => break done.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                let text = controller.metrics().await;
                queue_peak = queue_peak.max(metric_sum(
                    &text,
                    "theseus_controller_queue_waiting_keys",
                    "controller=\"deployments\"",
                ));
            }
        }
    };
    let took = converged - started;
    let cpu = (
        etcd_cpu_seconds(etcd).await - cpu_before.0,
        controller.cpu_seconds() - cpu_before.1,
        thread_cpu_seconds(MARATHON_THREADS) - cpu_before.2,
        process_cpu_seconds("/proc/self/stat") - cpu_before.3,
    );
    let etcd_requests = delta(&etcd_server_requests(etcd).await, &etcd_requests_before);
    let (rss, peak) = controller.memory_mib();
    let traffic = marathon.traffic();
    let after = controller.metrics().await;
    let counted = |name: &str, labels: &str| {
        metric_sum(&after, name, labels) - metric_sum(&metrics_before, name, labels)
    };
    rows.push((
        format!("{deployments} × {instances}: specs written → all Running + {tasks} records"),
        format!(
            "{:.2} s ({:.2} ms per deployment)",
            took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / deployments as f64
        ),
        "",
    ));
    rows.push((
        "ratio to the floor".into(),
        format!("{:.2}×", took.as_secs_f64() / floor.as_secs_f64()),
        "≤ 2×",
    ));
    rows.push((
        "controller VmRSS / VmHWM after converging".into(),
        format!("{rss:.1} / {peak:.1} MiB"),
        "≤ 100 MiB",
    ));
    rows.push((
        "status puts (by phase) / task record puts (first puts, deletes)".into(),
        format!(
            "{} {:?} / {} ({}, {})",
            seen.status_puts.values().sum::<u64>(),
            seen.status_puts,
            seen.record_puts,
            seen.first_record_puts,
            seen.record_deletes
        ),
        "",
    ));
    rows.push((
        "floor: status puts / task record puts".into(),
        format!("{deployments} / {tasks}"),
        "",
    ));
    rows.push((
        "rollout record puts: revision records / journal entries (not in the floor)".into(),
        format!("{} / {}", seen.history_puts, seen.journal_puts),
        "",
    ));
    rows.push((
        "Marathon full lists / single app reads (localmarathon's count)".into(),
        format!(
            "{} / {}",
            traffic.app_lists - traffic_before.app_lists,
            traffic.app_reads - traffic_before.app_reads
        ),
        "no growth with N",
    ));
    rows.push((
        "relists by reason (controller's count)".into(),
        format!(
            "{:?}",
            ["initial", "reconnect", "resync", "probe"]
                .iter()
                .map(|reason| (
                    *reason,
                    counted(
                        "theseus_controller_marathon_snapshot_relists_total",
                        &format!("reason=\"{reason}\"")
                    )
                ))
                .filter(|(_, n)| *n > 0.0)
                .collect::<Vec<_>>()
        ),
        "",
    ));
    bare_reader.abort();
    let bare_cuts = bare_reader_cuts.load(std::sync::atomic::Ordering::Relaxed);
    rows.push((
        "event streams cut (1,024 events behind), all subscribers / ends a bare reader saw / \
         controller's reconnects"
            .into(),
        format!(
            "{} / {bare_cuts} / {}",
            traffic.stream_cuts - traffic_before.stream_cuts,
            counted(
                "theseus_controller_marathon_snapshot_relists_total",
                "reason=\"reconnect\""
            )
        ),
        "0",
    ));
    rows.push((
        "deployments reconciles / queue peak (sampled) / Marathon events read / event backlog peak"
            .into(),
        format!(
            "{} / {queue_peak} / {} / {}",
            counted(
                "theseus_controller_reconciles_total",
                "controller=\"deployments\""
            ),
            counted("theseus_controller_marathon_events_total", ""),
            metric_sum(&after, "theseus_controller_marathon_event_backlog_peak", "")
        ),
        "",
    ));
    for reconciler in ["deployments", "observed"] {
        let label = format!("controller=\"{reconciler}\"");
        let seconds = counted("theseus_controller_reconcile_duration_seconds_sum", &label);
        let count = counted(
            "theseus_controller_reconcile_duration_seconds_count",
            &label,
        );
        rows.push((
            format!("{reconciler} reconciles: count, errors, mean duration"),
            format!(
                "{count} / {} / {:.2} ms",
                counted("theseus_controller_reconcile_errors_total", &label),
                seconds * 1000.0 / count.max(1.0)
            ),
            "",
        ));
    }
    rows.push((
        "etcd requests by operation (controller's count)".into(),
        format!(
            "{:?}",
            ["put", "txn", "range", "delete"]
                .iter()
                .map(|op| (
                    *op,
                    counted(
                        "theseus_controller_etcd_requests_total",
                        &format!("operation=\"{op}\"")
                    )
                ))
                .filter(|(_, n)| *n > 0.0)
                .collect::<Vec<_>>()
        ),
        "",
    ));
    rows.push((
        "etcd requests by method (etcd's count, every client)".into(),
        format!("{etcd_requests:?}"),
        "",
    ));
    rows.push((
        "CPU seconds: etcd / controller / localmarathon / this benchmark".into(),
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            cpu.0,
            cpu.1,
            cpu.2,
            cpu.3 - cpu.2
        ),
        "",
    ));
    rows.push((
        "Marathon calls by route".into(),
        format!(
            "{:?}",
            delta(&marathon_calls(&after), &marathon_calls(&metrics_before))
        ),
        "",
    ));
    controller
}

/// What `/desired/` and `/observed/` hold: their entries and the revision of the reading.
async fn desired_and_observed(store: &Store) -> (Vec<Entry>, Revision) {
    let layout = store.layout();
    let desired = store.list(&layout.desired_root()).await.unwrap();
    let observed = store.list(&layout.observed_root()).await.unwrap();
    let mut entries = desired.entries;
    entries.extend(observed.entries);
    (entries, desired.revision.min(observed.revision))
}

/// Part 3 and 4: a restart with `deployments` converged keys, one idle resync, and the
/// memory afterwards.
async fn idle_resync(
    deployments: usize,
    etcd: &EtcdServer,
    marathon: &Handle,
    store: &Store,
    rows: &mut Vec<(String, String, &'static str)>,
) {
    eprintln!("3/4: a restart and one idle resync of {deployments} keys");
    let (before_restart, restarted_at) = desired_and_observed(store).await;
    let spawned = Instant::now();
    let controller = ControllerProcess::spawn(etcd, &marathon.url(), "3s");
    controller.wait_leading().await;
    let leading_after = spawned.elapsed();
    // Its start-up pass: both reconcilers look at every key once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = controller.metrics().await;
        if metric_sum(&text, "theseus_controller_reconciles_total", "") >= 2.0 * deployments as f64
            && metric_sum(&text, "theseus_controller_queue_running_keys", "") == 0.0
            && metric_sum(&text, "theseus_controller_queue_waiting_keys", "") == 0.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted controller did not look at every key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let passed_after = spawned.elapsed();
    rows.push((
        format!("restart with {deployments} converged keys: leading / start-up pass done"),
        format!(
            "{:.2} s / {:.2} s",
            leading_after.as_secs_f64(),
            passed_after.as_secs_f64()
        ),
        "",
    ));
    let relists = |text: &str| {
        metric_sum(
            text,
            "theseus_controller_marathon_snapshot_relists_total",
            "reason=\"resync\"",
        )
    };
    let reconciles = |text: &str| metric_sum(text, "theseus_controller_reconciles_total", "");
    // Let the start-up reconciles and the first resync pass.
    let deadline = Instant::now() + Duration::from_secs(120);
    while relists(&controller.metrics().await) < 1.0 {
        assert!(Instant::now() < deadline, "no resync happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = controller.metrics().await;
    let etcd_before = etcd_server_requests(etcd).await;
    let mut after;
    loop {
        after = controller.metrics().await;
        if relists(&after) >= relists(&before) + 1.0
            // Both reconcilers look at every key.
            && reconciles(&after) >= reconciles(&before) + 2.0 * deployments as f64
            && metric_sum(&after, "theseus_controller_queue_running_keys", "") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let etcd_after = etcd_server_requests(etcd).await;
    rows.push((
        format!("idle resync of {deployments} keys: reconciles (both reconcilers)"),
        format!("{}", reconciles(&after) - reconciles(&before)),
        "",
    ));
    rows.push((
        "idle resync: Marathon calls".into(),
        format!(
            "{:?}",
            delta(&marathon_calls(&after), &marathon_calls(&before))
        ),
        "1 list",
    ));
    rows.push((
        "idle resync: etcd requests, controller's count".into(),
        format!(
            "{}",
            metric_sum(&after, "theseus_controller_etcd_requests_total", "")
                - metric_sum(&before, "theseus_controller_etcd_requests_total", "")
        ),
        "0",
    ));
    rows.push((
        "idle resync: etcd unary requests, etcd's count".into(),
        format!("{:?}", delta(&etcd_after, &etcd_before)),
        "0 writes",
    ));
    // A put leaves its revision on the key; a deleted key is missing.
    let (after_resync, _) = desired_and_observed(store).await;
    let written = after_resync
        .iter()
        .filter(|entry| entry.mod_revision > restarted_at)
        .count();
    let left: HashSet<&str> = after_resync
        .iter()
        .map(|entry| entry.key.as_str())
        .collect();
    let deleted = before_restart
        .iter()
        .filter(|entry| !left.contains(entry.key.as_str()))
        .count();
    rows.push((
        "restart and idle resync: keys written / deleted under /desired and /observed".into(),
        format!("{written} / {deleted}"),
        "0 / 0",
    ));

    eprintln!("4/4: memory");
    let (rss, peak) = controller.memory_mib();
    rows.push((
        format!("controller RSS (peak), fresh start with {deployments} keys + resync"),
        format!("{rss:.1} MiB ({peak:.1} MiB)"),
        // The targets: with 1,000 deployments, and at the scale of 10,000.
        if deployments <= 1000 {
            "≤ 50 MB"
        } else {
            "≤ 100 MiB"
        },
    ));
    controller.terminate();
}
