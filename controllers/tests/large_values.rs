//! Specs of any size etcd accepts: a controller that starts, takes over from another or
//! relists after a compaction reads every one of them, and converges.

mod support;

use std::time::Duration;

use localmarathon::ExecutorKind;
use serde_json::{Map, Value, json};
use support::{Cluster, wait_until};
use theseus::api::{DeploymentStatus, Phase};
use theseus::store::KeyPath;
use theseus_controllers::controller::Controller;

/// A valid spec of about `bytes` bytes (a large environment), running `instances` tasks.
fn large_spec(bytes: usize, instances: u32) -> Value {
    // Each value stays under the kernel's limit on one environment string (128 KiB).
    let chunk = 100_000.min(bytes);
    let environment: Map<String, Value> = (0..bytes.div_ceil(chunk))
        .map(|i| (format!("SETTING_{i:03}"), Value::String("v".repeat(chunk))))
        .collect();
    json!({"cmd": "sleep 1000", "instances": instances, "environment": environment})
}

/// How many deployments report Running at their spec's current revision.
async fn running_at_their_revision(cluster: &Cluster) -> usize {
    let layout = cluster.store.layout().clone();
    let desired = cluster.store.list(&layout.desired_root()).await.unwrap();
    let observed = cluster.store.list(&layout.observed_root()).await.unwrap();
    let statuses: std::collections::HashMap<_, DeploymentStatus> = observed
        .entries
        .iter()
        .filter_map(|entry| match layout.parse(&entry.key) {
            Some(KeyPath::Status(key)) => Some((key, entry.json().ok()?)),
            _ => None,
        })
        .collect();
    desired
        .entries
        .iter()
        .filter(|entry| {
            let Some(KeyPath::Desired(key)) = layout.parse(&entry.key) else {
                return false;
            };
            statuses.get(&key).is_some_and(|status| {
                status.phase == Phase::Running && status.observed_revision == entry.mod_revision
            })
        })
        .count()
}

async fn wait_all_running(cluster: &Cluster, count: usize, what: &str) {
    wait_until(what, || async {
        running_at_their_revision(cluster).await == count
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_of_any_size_converge_across_a_restart_a_failover_and_a_compaction() {
    let cluster = Cluster::start_with(ExecutorKind::Sim).await;
    // 1,000 specs of about 10 kB (one page of 500 would be over gRPC's default 4 MiB) and
    // two near etcd's own request limit.
    for i in 0..1_000 {
        cluster
            .put_spec(&format!("big/n{i:04}"), &large_spec(10_000, 1))
            .await;
    }
    for i in 0..2 {
        cluster
            .put_spec(&format!("huge/n{i}"), &large_spec(1_300_000, 1))
            .await;
    }
    let total = 1_002;

    let mut first_config = cluster.config();
    first_config.identity = "first".into();
    first_config.lease_ttl = Duration::from_secs(2);
    let first = Controller::start(first_config).await.unwrap();
    wait_all_running(&cluster, total, "every deployment runs").await;

    // A standby, then the leader goes: the standby lists everything to take over.
    let mut standby_config = cluster.config();
    standby_config.identity = "standby".into();
    let standby = Controller::start(standby_config).await.unwrap();
    wait_until("the standby stands by", || async {
        matches!(
            standby.role(),
            theseus_controllers::runtime::health::Role::Standby
        )
    })
    .await;
    first.shutdown().await;
    wait_until("the standby leads, synced", || async {
        matches!(
            standby.role(),
            theseus_controllers::runtime::health::Role::Leader { synced: true }
        )
    })
    .await;

    // Changes while it leads, then a compaction under its watches: it relists.
    for i in 0..20 {
        cluster
            .put_spec(&format!("big/n{i:04}"), &large_spec(10_000, 2))
            .await;
    }
    cluster.put_spec("huge/n0", &large_spec(1_300_000, 2)).await;
    let revision = cluster.store.put("/unrelated", "x").await.unwrap();
    cluster.store.compact(revision).await.unwrap();
    for i in 20..40 {
        cluster
            .put_spec(&format!("big/n{i:04}"), &large_spec(10_000, 2))
            .await;
    }
    wait_all_running(&cluster, total, "every deployment runs its latest spec").await;
    let text = standby.metrics().encode();
    for result in ["refused", "value_too_large"] {
        let count = support::metric_sum(
            &text,
            "theseus_controller_etcd_requests_total",
            &format!("result=\"{result}\""),
        );
        assert_eq!(count, 0.0, "etcd requests with result {result}");
    }
    standby.shutdown().await;
}
