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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use serde_json::json;
use theseus::api::{DeploymentKey, DeploymentStatus, Phase};
use theseus::marathon::{App, AppId, AppQuery, EventKind, EventStream, MarathonClient};
use theseus::store::{KeyPath, Store, WatchEvent};

mod support;
use support::{
    ControllerProcess, Stack, delta, etcd_put_to_watch, etcd_server_requests, marathon_calls,
    metric_sum, print_table, summary,
};

const LATENCY_PUTS: usize = 200;
const DEPLOYMENTS: usize = 1000;

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
    let Stack {
        etcd,
        marathon,
        store,
        client,
    } = Stack::start().await;
    let layout = store.layout().clone();
    let mut rows: Vec<(String, String, &str)> = Vec::new();

    eprintln!("0/4: baselines without the controller");
    let mut etcd_put = etcd_put_to_watch(&store, LATENCY_PUTS).await;
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
            // Both reconcilers look at every key.
            && reconciles(&after) >= reconciles(&before) + 2.0 * DEPLOYMENTS as f64
            && metric_sum(&after, "theseus_controller_queue_running_keys", "") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let etcd_after = etcd_server_requests(&etcd).await;
    rows.push((
        format!("idle resync of {DEPLOYMENTS} keys: reconciles (both reconcilers)"),
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

    print_table(
        "theseus-controller benchmark: etcd 3.4, localmarathon (sim executor) in process, \
         controller release binary as a child process",
        &rows,
    );
    marathon.shutdown().await;
}
