//! The controller's benchmark: numbers, printed as a table, no assertions.
//!
//! `cargo bench -p theseus-controllers --bench controller`
//!
//! It starts a real etcd (testkit), localmarathon in this process with its simulated executor
//! (on agents large enough that placement never limits), and the `theseus-controller` release
//! binary as a child process. It first measures the parts without the controller, so that the
//! controller's share of each number can be read off:
//! - etcd: put → watch event; localmarathon: `POST /v2/apps` → its `api_post_event`, with
//!   Marathon empty and with 0 → 200 apps accumulating; localmarathon alone taking 1,000 apps
//!   to running;
//!
//! then the controller:
//! 1. put → app: from writing `/desired/<key>` to Marathon's `api_post_event` for the new app,
//!    200 puts one after another, with Marathon kept empty (each app deleted before the next
//!    put) and with the apps accumulating;
//! 2. 1,000 new deployments written at once, until every status is `Running` at its revision
//!    (followed with an etcd watch, not by polling);
//! 3. one idle resync of the 1,000 converged keys (a fresh controller with a short resync):
//!    Marathon calls by route, and etcd requests as the controller counts them and as etcd's
//!    own `/metrics` counts them;
//! 4. the controller's resident memory (VmRSS) with 1,000 keys.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use localmarathon::{AgentSpec, ExecutorKind, LocalMarathon};
use serde_json::json;
use theseus::api::{DeploymentKey, DeploymentStatus, Phase};
use theseus::marathon::{
    App, AppId, AppQuery, EventKind, EventStream, MarathonClient, MarathonConfig,
};
use theseus::store::{EtcdConfig, KeyPath, Layout, Store, WatchEvent};
use theseus_testkit::{EtcdServer, free_port};

const LATENCY_PUTS: usize = 200;
const DEPLOYMENTS: usize = 1000;

/// The controller binary, killed when dropped (and by the kernel if the benchmark dies).
struct ControllerProcess {
    child: Child,
    http: String,
}

impl ControllerProcess {
    fn spawn(etcd: &EtcdServer, marathon: &str, resync: &str) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_theseus-controller"));
        command
            .args(["--etcd-endpoints", &etcd.endpoint(), "--marathon", marathon])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--resync", resync, "--workers", "32", "--lease-ttl", "10s"])
            .env("RUST_LOG", "warn")
            .env_remove("THESEUS_PREFIX")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: between fork and exec only the async-signal-safe prctl(2) runs. It makes
        // the kernel kill the controller if the benchmark dies without dropping this.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .expect("start theseus-controller (built by cargo bench)");
        Self {
            child,
            http: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn metrics(&self) -> String {
        match reqwest::get(format!("{}/metrics", self.http)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn wait_leading(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = reqwest::get(format!("{}/readyz", self.http))
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if let Some(response) = ready
                && response.text().await.unwrap_or_default().contains("leader")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the controller did not start leading"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident and peak resident memory, in MiB.
    fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn terminate(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of every series of metric `name` whose line contains `labels`.
fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Marathon calls by `METHOD route`, from the controller's metrics.
fn marathon_calls(text: &str) -> BTreeMap<String, f64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("theseus_controller_marathon_requests_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        *calls
            .entry(format!("{} {}", label("method"), label("route")))
            .or_default() += value.parse::<f64>().unwrap();
    }
    calls
}

/// etcd's own count of finished unary requests by method (Range, Put, Txn, DeleteRange, …).
async fn etcd_server_requests(etcd: &EtcdServer) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("{}/metrics", etcd.endpoint()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if !line.starts_with("grpc_server_handled_total{") || !line.contains("grpc_type=\"unary\"")
        {
            continue;
        }
        let method = line
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?")
            .to_owned();
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counts.entry(method).or_default() += value;
    }
    counts
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// Latencies, summarised as `p50 / p99 (max)`.
fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "{} / {} (max {})",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*latencies.last().unwrap())
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
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

/// Waits until Marathon no longer has `app`.
async fn wait_gone(client: &MarathonClient, app: &AppId) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get_app(app, &[]).await.is_ok() {
        assert!(Instant::now() < deadline, "{app} was not deleted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until every status under `/observed` of `revisions` says Running at its revision.
async fn wait_all_running(store: &Store, revisions: &HashMap<String, i64>) -> Instant {
    let layout = store.layout().clone();
    let mut watch = store.watch(&layout.observed_root());
    let mut running: HashMap<String, bool> = HashMap::new();
    while let Some(event) = watch.next().await {
        let Ok(WatchEvent::Put { entry, .. }) = event else {
            continue;
        };
        let Some(KeyPath::Status(key)) = layout.parse(&entry.key) else {
            continue;
        };
        let key = key.to_string();
        let Some(revision) = revisions.get(&key) else {
            continue;
        };
        let status: DeploymentStatus = entry.json().unwrap();
        running.insert(
            key,
            status.observed_revision == *revision && status.phase == Phase::Running,
        );
        if running.len() == revisions.len() && running.values().all(|r| *r) {
            return Instant::now();
        }
    }
    unreachable!("the watch does not end")
}

fn app(id: &AppId) -> App {
    let mut app = App::new(id.clone());
    app.cmd = Some("sleep 1000".into());
    app.instances = Some(1);
    app
}

fn deployment_key(i: usize) -> DeploymentKey {
    format!("svc{}/d{i}", i % 10).parse().unwrap()
}

#[tokio::main]
async fn main() {
    let etcd = EtcdServer::start();
    let marathon = LocalMarathon::builder()
        .executor(ExecutorKind::Sim)
        .agents((11..=14).map(|i| AgentSpec {
            cpus: 100_000.0,
            mem: 100_000_000.0,
            disk: 100_000_000.0,
            ..AgentSpec::new([127, 0, 0, i].into())
        }))
        .start()
        .await
        .unwrap();
    let store = Store::connect(EtcdConfig::new(etcd.endpoints()), Layout::default())
        .await
        .unwrap();
    let layout = store.layout().clone();
    let client =
        MarathonClient::new(MarathonConfig::new(vec![marathon.url().parse().unwrap()])).unwrap();
    let mut rows: Vec<(String, String, &str)> = Vec::new();

    eprintln!("0/4: baselines without the controller");
    let mut watch = store.watch("/baseline/");
    while !matches!(watch.next().await, Some(Ok(WatchEvent::Synced { .. }))) {}
    let mut etcd_put = Vec::with_capacity(LATENCY_PUTS);
    for i in 0..LATENCY_PUTS {
        let started = Instant::now();
        store.put(&format!("/baseline/{i}"), "x").await.unwrap();
        while !matches!(watch.next().await, Some(Ok(WatchEvent::Put { .. }))) {}
        etcd_put.push(started.elapsed());
    }
    drop(watch);
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
        wait_gone(&client, &id).await;
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
    wait_empty(&client).await;

    // localmarathon alone: 1,000 creates (32 at a time, as the controller's workers) until
    // every task runs. Polled every 20 ms: an event stream this busy falls more than 1,024
    // events behind and is cut off, as Marathon's is.
    let started = Instant::now();
    stream::iter(0..DEPLOYMENTS)
        .for_each_concurrent(32, |i| {
            let client = client.clone();
            async move {
                let id = AppId::parse(&format!("/baseline/bulk{i}")).unwrap();
                client.create_app(&app(&id)).await.unwrap();
            }
        })
        .await;
    loop {
        let apps = client.list_apps(&AppQuery::default()).await.unwrap();
        let running = apps.iter().filter(|a| a.tasks_running == Some(1)).count();
        if running == DEPLOYMENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let marathon_alone = started.elapsed();
    rows.push((
        format!("baseline: Marathon alone, {DEPLOYMENTS} creates → all running"),
        format!("{:.2} s", marathon_alone.as_secs_f64()),
        "",
    ));
    stream::iter(0..DEPLOYMENTS)
        .for_each_concurrent(32, |i| {
            let client = client.clone();
            async move {
                let id = AppId::parse(&format!("/baseline/bulk{i}")).unwrap();
                client.delete_app(&id, true).await.unwrap();
            }
        })
        .await;
    wait_empty(&client).await;

    eprintln!("1/4: put → app");
    let controller = ControllerProcess::spawn(&etcd, &marathon.url(), "3600s");
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
        wait_gone(&client, &id).await;
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
    wait_empty(&client).await;

    eprintln!("2/4: {DEPLOYMENTS} new deployments");
    let started = Instant::now();
    let puts: Vec<(String, i64)> = stream::iter(0..DEPLOYMENTS)
        .map(|i| {
            let store = store.clone();
            let layout = layout.clone();
            async move {
                let key = deployment_key(i);
                let revision = store
                    .put(
                        &layout.desired(&key),
                        json!({"cmd": "sleep 1000", "instances": 1}).to_string(),
                    )
                    .await
                    .unwrap();
                (key.to_string(), revision)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let revisions: HashMap<String, i64> = puts.into_iter().collect();
    let all_running = wait_all_running(&store, &revisions).await;
    rows.push((
        format!("{DEPLOYMENTS} new deployments → all Running"),
        format!("{:.2} s", (all_running - started).as_secs_f64()),
        "≤ 2 s",
    ));
    let (rss, peak) = controller.memory_mib();
    rows.push((
        format!("controller RSS (peak) after creating {DEPLOYMENTS}"),
        format!("{rss:.1} MiB ({peak:.1} MiB)"),
        "≤ 50 MB",
    ));
    controller.terminate();

    eprintln!("3/4: one idle resync of {DEPLOYMENTS} keys");
    let controller = ControllerProcess::spawn(&etcd, &marathon.url(), "3s");
    controller.wait_leading().await;
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
    let etcd_before = etcd_server_requests(&etcd).await;
    let mut after;
    loop {
        after = controller.metrics().await;
        if relists(&after) >= relists(&before) + 1.0
            && reconciles(&after) >= reconciles(&before) + DEPLOYMENTS as f64
            && metric_sum(&after, "theseus_controller_queue_running_keys", "") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let etcd_after = etcd_server_requests(&etcd).await;
    rows.push((
        format!("idle resync of {DEPLOYMENTS} keys: reconciles"),
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

    eprintln!("4/4: memory");
    let (rss, peak) = controller.memory_mib();
    rows.push((
        format!("controller RSS (peak), fresh start with {DEPLOYMENTS} keys + resync"),
        format!("{rss:.1} MiB ({peak:.1} MiB)"),
        "≤ 50 MB",
    ));
    controller.terminate();

    println!();
    println!(
        "theseus-controller benchmark: etcd 3.4, localmarathon (sim executor) in process, \
         controller release binary as a child process, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap();
    let value_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap();
    println!(
        "| {:<width$} | {:<value_width$} | {:<13} |",
        "measurement", "result", "target"
    );
    println!(
        "|-{}-|-{}-|---------------|",
        "-".repeat(width),
        "-".repeat(value_width)
    );
    for (what, value, target) in rows {
        println!("| {what:<width$} | {value:<value_width$} | {target:<13} |");
    }
    marathon.shutdown().await;
}
