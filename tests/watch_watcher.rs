//! The watcher in-process against a real etcd: what runs the hook and what does not, services
//! that appear later, and the final state delivered after etcd restarts or compacts the
//! history the watch needed.

mod task_harness;

use std::time::Duration;

use task_harness::{DEADLINE, connect, delete_task, put_task, task};
use theseus::api::{DnsLabel, Health, TaskRecord};
use theseus::guest::watcher::{Change, Debounce, Hook, HookOutcome, Watcher, WatcherConfig};
use theseus::store::Store;
use theseus_testkit::{EtcdCluster, EtcdServer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A hook that hands every change to the test.
struct Recorder(mpsc::UnboundedSender<Change>);

impl Hook for Recorder {
    async fn run(&self, change: &Change, _shutdown: &CancellationToken) -> HookOutcome {
        let _ = self.0.send(change.clone());
        HookOutcome::Succeeded
    }
}

/// A watcher running in the background; stopped when dropped.
struct Running {
    changes: mpsc::UnboundedReceiver<Change>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

impl Running {
    fn start(store: Store, services: &[&str], labels: &[&str]) -> Running {
        let config = WatcherConfig {
            services: services
                .iter()
                .map(|s| DnsLabel::parse("service", s).unwrap())
                .collect(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            debounce: Debounce::new(Duration::from_millis(20)),
        };
        let watcher = Watcher::new(store, config).unwrap();
        let (sender, changes) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watcher.run(Recorder(sender), shutdown.clone()));
        Running {
            changes,
            shutdown,
            task,
        }
    }

    async fn next(&mut self) -> Change {
        tokio::time::timeout(DEADLINE, self.changes.recv())
            .await
            .expect("the hook runs")
            .expect("the watcher runs")
    }

    /// Changes until one for `service` whose endpoints are exactly `ids`; returns them all.
    async fn until_nodes(&mut self, service: &str, ids: &[&str]) -> Vec<Change> {
        let mut seen = Vec::new();
        loop {
            let change = self.next().await;
            let done = change.service == service && task_ids(&change.nodes) == ids;
            seen.push(change);
            if done {
                return seen;
            }
        }
    }
}

fn task_ids(nodes: &[theseus::guest::Node]) -> Vec<&str> {
    nodes.iter().map(|n| n.task_id.as_str()).collect()
}

fn web(id: &str, host: &str) -> TaskRecord {
    task("web", "dev", id, host, &[("http", 31000, 80)], &["dev"])
}

#[tokio::test]
async fn the_hook_runs_on_start_then_only_when_serving_endpoints_change() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    let a = web("web_dev.a", "10.0.0.1");
    let mut b = web("web_dev.b", "10.0.0.2");
    b.state = "TASK_STAGING".into();
    put_task(&store, &a).await;
    put_task(&store, &b).await;
    let mut watcher = Running::start(store.clone(), &["web"], &[]);

    let first = watcher.next().await;
    assert_eq!(first.service, "web");
    assert_eq!(task_ids(&first.added), ["web_dev.a"]);
    assert_eq!(first.delta, 1);
    assert!(first.removed.is_empty());

    // None of these touch web's serving endpoints...
    store.put("/observed/web/dev/status", "{}").await.unwrap();
    put_task(&store, &task("db", "dev", "db_dev.x", "10.0.0.9", &[], &[])).await;
    put_task(&store, &a).await;
    let mut c = web("web_dev.c", "10.0.0.3");
    c.state = "TASK_STARTING".into();
    put_task(&store, &c).await;
    // ...this does: b starts running.
    b.state = "TASK_RUNNING".into();
    let revision = put_task(&store, &b).await;
    let second = watcher.next().await;
    assert_eq!(task_ids(&second.added), ["web_dev.b"]);
    assert!(second.removed.is_empty());
    assert_eq!(second.delta, 1);
    assert_eq!(task_ids(&second.nodes), ["web_dev.a", "web_dev.b"]);
    assert_eq!(second.revision, revision);

    // A task that fails its health checks leaves; a deleted one too.
    let mut checked = a.clone();
    checked.health_checked = true;
    checked.health = Health::Unhealthy;
    put_task(&store, &checked).await;
    let third = watcher.next().await;
    assert_eq!(task_ids(&third.removed), ["web_dev.a"]);
    assert_eq!(third.delta, -1);
    delete_task(&store, &b).await;
    let fourth = watcher.next().await;
    assert_eq!(task_ids(&fourth.removed), ["web_dev.b"]);
    assert!(fourth.nodes.is_empty());
}

#[tokio::test]
async fn a_service_that_does_not_exist_yet_is_delivered_empty_then_when_it_appears() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "/p").await;
    put_task(&store, &web("web_dev.a", "10.0.0.1")).await;
    let mut watcher = Running::start(store.clone(), &["web", "db"], &[]);
    let mut first: Vec<Change> = vec![watcher.next().await, watcher.next().await];
    first.sort_by(|a, b| a.service.cmp(&b.service));
    assert_eq!(first[0].service, "db");
    assert!(first[0].nodes.is_empty());
    assert_eq!(first[0].delta, 0);
    assert_eq!(task_ids(&first[1].nodes), ["web_dev.a"]);

    put_task(
        &store,
        &task(
            "db",
            "main",
            "db_main.1",
            "10.0.0.5",
            &[("pg", 31432, 5432)],
            &[],
        ),
    )
    .await;
    let appeared = watcher.next().await;
    assert_eq!(appeared.service, "db");
    assert_eq!(task_ids(&appeared.added), ["db_main.1"]);
    assert_eq!(appeared.delta, 1);
    assert_eq!(appeared.added[0].ports["pg"].host, 31432);
}

#[tokio::test]
async fn only_endpoints_carrying_every_label_count() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    put_task(
        &store,
        &task("web", "eu", "web_eu.1", "10.0.0.1", &[], &["eu", "prod"]),
    )
    .await;
    put_task(
        &store,
        &task("web", "us", "web_us.1", "10.0.0.2", &[], &["us", "prod"]),
    )
    .await;
    let mut watcher = Running::start(store.clone(), &["web"], &["prod", "eu"]);
    assert_eq!(task_ids(&watcher.next().await.nodes), ["web_eu.1"]);
    // A task outside the labels changes nothing; one inside does.
    put_task(
        &store,
        &task("web", "us", "web_us.2", "10.0.0.3", &[], &["us", "prod"]),
    )
    .await;
    put_task(
        &store,
        &task("web", "eu", "web_eu.2", "10.0.0.4", &[], &["eu", "prod"]),
    )
    .await;
    let next = watcher.next().await;
    assert_eq!(task_ids(&next.added), ["web_eu.2"]);
    assert_eq!(next.delta, 1);
}

#[tokio::test]
async fn the_final_state_is_delivered_after_etcd_restarts_under_the_watcher() {
    let mut etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    let a = web("web_dev.a", "10.0.0.1");
    put_task(&store, &a).await;
    let mut watcher = Running::start(store.clone(), &["web"], &[]);
    assert_eq!(task_ids(&watcher.next().await.nodes), ["web_dev.a"]);

    etcd.kill();
    etcd.restart();
    put_task(&store, &web("web_dev.b", "10.0.0.2")).await;
    put_task(&store, &web("web_dev.c", "10.0.0.3")).await;
    delete_task(&store, &a).await;
    let seen = watcher
        .until_nodes("web", &["web_dev.b", "web_dev.c"])
        .await;
    // However the changes were gathered, together they take a to b and c.
    let added: Vec<&str> = seen.iter().flat_map(|c| task_ids(&c.added)).collect();
    let removed: Vec<&str> = seen.iter().flat_map(|c| task_ids(&c.removed)).collect();
    assert!(
        added.contains(&"web_dev.b") && added.contains(&"web_dev.c"),
        "{seen:?}"
    );
    assert_eq!(removed, ["web_dev.a"]);
    assert_eq!(seen.iter().map(|c| c.delta).sum::<i64>(), 1);
}

#[tokio::test]
async fn the_final_state_is_delivered_after_etcd_compacted_the_history_the_watch_needed() {
    let mut cluster = EtcdCluster::start(3);
    // The watcher talks to member 0 only; changes go through the others while it is down.
    let watching = connect(vec![cluster.endpoint(0)], "").await;
    let writer = connect(vec![cluster.endpoint(1), cluster.endpoint(2)], "").await;
    let a = web("web_dev.a", "10.0.0.1");
    put_task(&writer, &a).await;
    let mut watcher = Running::start(watching, &["web"], &[]);
    assert_eq!(task_ids(&watcher.next().await.nodes), ["web_dev.a"]);

    cluster.kill_member(0);
    put_task(&writer, &web("web_dev.b", "10.0.0.2")).await;
    let short_lived = web("web_dev.gone", "10.0.0.4");
    put_task(&writer, &short_lived).await;
    delete_task(&writer, &short_lived).await;
    delete_task(&writer, &a).await;
    let last = put_task(&writer, &web("web_dev.c", "10.0.0.3")).await;
    writer.compact(last).await.unwrap();
    cluster.restart_member(0);

    let seen = watcher
        .until_nodes("web", &["web_dev.b", "web_dev.c"])
        .await;
    let last_change = seen.last().unwrap();
    assert!(last_change.revision >= last, "{last_change:?}");
    let added: Vec<&str> = seen.iter().flat_map(|c| task_ids(&c.added)).collect();
    let removed: Vec<&str> = seen.iter().flat_map(|c| task_ids(&c.removed)).collect();
    assert!(
        !added.contains(&"web_dev.gone"),
        "history etcd discarded: {seen:?}"
    );
    assert_eq!(removed, ["web_dev.a"]);
}
