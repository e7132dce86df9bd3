//! Convergence at scale, against localmarathon's simulated executor: many keys changed
//! rapidly end at their last spec, and an idle resync of converged keys costs one Marathon
//! list and no etcd write.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use localmarathon::ExecutorKind;
use serde_json::{Value, json};
use support::{Cluster, metric_sum, wait_until};
use theseus::api::{DeploymentStatus, Phase};
use theseus::store::{KeyPath, Revision};

/// Every status under `/observed`, by key text.
async fn statuses(cluster: &Cluster) -> BTreeMap<String, DeploymentStatus> {
    let layout = cluster.store.layout();
    cluster
        .store
        .list(&layout.observed_root())
        .await
        .unwrap()
        .entries
        .into_iter()
        .filter_map(|entry| match layout.parse(&entry.key) {
            Some(KeyPath::Status(key)) => Some((key.to_string(), entry.json().unwrap())),
            _ => None,
        })
        .collect()
}

fn spec(round: u32, i: u32) -> Value {
    json!({"cmd": format!("sleep {}", 1000 + round), "instances": 1 + (i + round) % 3})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_keys_changed_rapidly_each_converge_to_their_last_spec() {
    let cluster = Cluster::start_with(ExecutorKind::Sim).await;
    let controller = cluster.controller().await;

    // Three rounds of changes to 200 keys, as fast as etcd takes them, while the controller
    // works; then every tenth key is deleted.
    let mut last: BTreeMap<String, Option<(Revision, Value)>> = BTreeMap::new();
    for round in 0..3 {
        for i in 0..200 {
            let key = format!("svc{}/d{i}", i % 7);
            let spec = spec(round, i);
            let revision = cluster.put_spec(&key, &spec).await;
            last.insert(key, Some((revision, spec)));
        }
    }
    for i in (0..200).step_by(10) {
        let key = format!("svc{}/d{i}", i % 7);
        cluster.delete_spec(&key).await;
        last.insert(key, None);
    }
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    loop {
        let statuses = statuses(&cluster).await;
        let behind: Vec<String> = last
            .iter()
            .filter(|(key, want)| match (want, statuses.get(*key)) {
                (Some((revision, _)), Some(status)) => {
                    status.observed_revision != *revision || status.phase != Phase::Running
                }
                (None, None) => false,
                _ => true,
            })
            .map(|(key, want)| {
                format!(
                    "{key}: want {:?}, status {:?}",
                    want.as_ref().map(|(r, _)| r),
                    statuses.get(key)
                )
            })
            .collect();
        if behind.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let first = behind[0].split(':').next().unwrap();
            let in_marathon = cluster.app(&format!("/{first}")).await.map(|app| {
                (
                    app.instances,
                    app.tasks_running,
                    app.deployments,
                    app.version,
                )
            });
            panic!(
                "{} keys did not converge, e.g.:\n{}\nMarathon has /{first} as {in_marathon:?}",
                behind.len(),
                behind
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let apps: BTreeMap<String, _> = cluster
        .apps()
        .await
        .into_iter()
        .map(|app| (app.id.to_string(), app))
        .collect();
    let expected = last.values().filter(|want| want.is_some()).count();
    assert_eq!(apps.len(), expected, "one app per key, no orphan");
    for (key, want) in &last {
        let app = apps.get(&format!("/{key}"));
        match want {
            Some((_, spec)) => {
                let app = app.unwrap_or_else(|| panic!("no app for {key}"));
                assert_eq!(app.cmd.as_deref(), spec["cmd"].as_str(), "{key}");
                assert_eq!(
                    app.instances.map(u64::from),
                    spec["instances"].as_u64(),
                    "{key}"
                );
            }
            None => assert!(app.is_none(), "{key} was deleted but its app remains"),
        }
    }
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_resync_lists_marathon_once_and_writes_nothing_to_etcd() {
    let cluster = Cluster::start_with(ExecutorKind::Sim).await;
    let mut config = cluster.config();
    config.resync = Duration::from_millis(300);
    let controller = theseus_controllers::controller::Controller::start(config)
        .await
        .unwrap();
    let mut revisions = Vec::new();
    for i in 0..20 {
        let key = format!("svc/d{i}");
        revisions.push((
            key.clone(),
            cluster.put_spec(&key, &json!({"cmd": "sleep 1000"})).await,
        ));
    }
    for (key, revision) in &revisions {
        cluster.wait_running(key, *revision).await;
    }

    let relists = |text: &str| {
        metric_sum(
            text,
            "theseus_controller_marathon_snapshot_relists_total",
            "reason=\"resync\"",
        )
    };
    let lists = |text: &str| {
        metric_sum(
            text,
            "theseus_controller_marathon_requests_total",
            "route=\"/v2/apps\"",
        )
    };
    let marathon_calls =
        |text: &str| metric_sum(text, "theseus_controller_marathon_requests_total", "");
    let etcd_calls = |text: &str| metric_sum(text, "theseus_controller_etcd_requests_total", "");
    let reconciles = |text: &str| metric_sum(text, "theseus_controller_reconciles_total", "");
    // Let one resync pass so that nothing of the start-up is still in flight.
    let start = controller.metrics().encode();
    wait_until("a resync passed", || async {
        relists(&controller.metrics().encode()) > relists(&start)
    })
    .await;

    let before = controller.metrics().encode();
    wait_until("three more resyncs passed", || async {
        relists(&controller.metrics().encode()) >= relists(&before) + 3.0
    })
    .await;
    let after = controller.metrics().encode();
    let resyncs = relists(&after) - relists(&before);
    assert!(
        reconciles(&after) - reconciles(&before) >= 20.0 * (resyncs - 1.0),
        "every key was reconciled at each resync"
    );
    assert_eq!(
        etcd_calls(&after),
        etcd_calls(&before),
        "idle resyncs wrote to etcd"
    );
    assert_eq!(
        marathon_calls(&after) - marathon_calls(&before),
        lists(&after) - lists(&before),
        "idle resyncs made Marathon calls other than the list"
    );
    // The counters are read while resyncs go on; one list may be counted on either side.
    assert!(
        (lists(&after) - lists(&before) - resyncs).abs() <= 1.0,
        "one list per resync, not one call per key: {} lists for {resyncs} resyncs",
        lists(&after) - lists(&before)
    );
    controller.shutdown().await;
}
