//! The `/desired` reflector against a real etcd: its copy equals etcd's and every change is
//! announced, across compactions and etcd restarts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use support::{etcdctl, store, wait_until};
use theseus::api::DeploymentKey;
use theseus::store::{KeyPath, Layout, Store};
use theseus_controllers::runtime::metrics::Metrics;
use theseus_controllers::runtime::reflector::{Reflection, Reflector, ReflectorState};
use theseus_testkit::EtcdServer;
use tokio_util::sync::CancellationToken;

struct Running {
    reflection: Reflection<DeploymentKey>,
    changed: Arc<Mutex<BTreeSet<DeploymentKey>>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn reflect(store: &Store) -> Running {
    let layout: Layout = store.layout().clone();
    let (reflector, reflection) = Reflector::new("desired", move |key| match layout.parse(key) {
        Some(KeyPath::Desired(key)) => Some(Ok(key)),
        _ => None,
    });
    let changed = Arc::new(Mutex::new(BTreeSet::new()));
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();
    let changes = reflector.changes(
        store.watch(&store.layout().desired_root()),
        Arc::clone(&metrics),
    );
    let task = tokio::spawn({
        let changed = Arc::clone(&changed);
        let stop = stop.clone();
        async move {
            let mut changes = std::pin::pin!(changes);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    key = changes.next() => match key {
                        Some(key) => changed.lock().unwrap().insert(key),
                        None => return,
                    },
                };
            }
        }
    });
    Running {
        reflection,
        changed,
        metrics,
        stop,
        task,
    }
}

/// What etcd holds under `/desired`: key → mod revision.
async fn in_etcd(store: &Store) -> BTreeMap<DeploymentKey, i64> {
    let layout = store.layout();
    store
        .list(&layout.desired_root())
        .await
        .unwrap()
        .entries
        .into_iter()
        .filter_map(|entry| match layout.parse(&entry.key) {
            Some(KeyPath::Desired(key)) => Some((key, entry.mod_revision)),
            _ => None,
        })
        .collect()
}

fn in_copy(reflection: &Reflection<DeploymentKey>) -> BTreeMap<DeploymentKey, i64> {
    reflection
        .keys()
        .into_iter()
        .map(|key| {
            let revision = reflection.get(&key).unwrap().mod_revision;
            (key, revision)
        })
        .collect()
}

fn key(text: &str) -> DeploymentKey {
    text.parse().unwrap()
}

/// etcd's current revision, read the way a user would.
fn revision(etcd: &EtcdServer) -> i64 {
    let status: serde_json::Value = serde_json::from_str(&etcdctl(
        etcd,
        &["get", "/", "--prefix", "--keys-only", "-w", "json"],
    ))
    .unwrap();
    status["header"]["revision"].as_i64().unwrap()
}

// One thread: while the test runs etcdctl and restarts etcd (blocking calls), nothing polls
// the reflector, so its watch breaks and must resume from a revision the compaction removed.
#[tokio::test(flavor = "current_thread")]
async fn the_copy_follows_etcd_and_names_every_change_across_a_compaction() {
    let mut etcd = EtcdServer::start();
    let store = store(&etcd, "/t").await;
    let layout = store.layout().clone();
    for name in ["a", "b", "c"] {
        store
            .put(&layout.desired(&key(&format!("svc/{name}"))), "{}")
            .await
            .unwrap();
    }
    // Not a deployment key: ignored.
    store.put("/t/desired/svc", "{}").await.unwrap();

    let running = reflect(&store);
    assert!(running.reflection.wait_synced().await);
    assert_eq!(in_copy(&running.reflection), in_etcd(&store).await);
    assert_eq!(
        std::mem::take(&mut *running.changed.lock().unwrap()).len(),
        3
    );

    etcd.kill();
    etcd.restart();
    etcdctl(&etcd, &["put", "/t/desired/svc/a", "{\"instances\": 2}"]);
    etcdctl(&etcd, &["del", "/t/desired/svc/b"]);
    etcdctl(&etcd, &["put", "/t/desired/svc/d", "{}"]);
    etcdctl(
        &etcd,
        &["compact", &revision(&etcd).to_string(), "--physical"],
    );
    etcdctl(&etcd, &["put", "/t/desired/svc/e", "{}"]);

    wait_until("the copy equals etcd", || async {
        in_copy(&running.reflection) == in_etcd(&store).await
    })
    .await;
    let changed = running.changed.lock().unwrap().clone();
    let expected: BTreeSet<DeploymentKey> = ["svc/a", "svc/b", "svc/d", "svc/e"]
        .into_iter()
        .map(key)
        .collect();
    assert_eq!(
        changed, expected,
        "every change and nothing else is announced"
    );
    assert!(
        running
            .metrics
            .encode()
            .contains("operation=\"watch\",result=\"compacted\""),
        "the compaction path was not taken:\n{}",
        running.metrics.encode()
    );
    assert!(matches!(
        running.reflection.state(),
        ReflectorState::Synced { .. }
    ));
    running.stop.cancel();
    running.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_etcd_restarts_are_all_seen() {
    let mut etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let layout = store.layout().clone();
    store
        .put(&layout.desired(&key("svc/a")), "{}")
        .await
        .unwrap();
    let running = reflect(&store);
    assert!(running.reflection.wait_synced().await);

    etcd.kill();
    etcd.restart();
    let writer = support::store(&etcd, "").await;
    writer
        .put(&layout.desired(&key("svc/b")), "{}")
        .await
        .unwrap();
    writer.delete(&layout.desired(&key("svc/a"))).await.unwrap();

    wait_until("the copy equals etcd after the restart", || async {
        in_copy(&running.reflection) == in_etcd(&writer).await
    })
    .await;
    assert!(running.changed.lock().unwrap().contains(&key("svc/b")));
    running.stop.cancel();
    running.task.await.unwrap();
}
