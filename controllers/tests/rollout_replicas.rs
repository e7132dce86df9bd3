//! Rollouts with two replicas of the controller against one etcd and one Marathon: only the
//! leader decides and acts, and the replica that takes over after it does not decide again
//! what the first one already decided.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Cluster, deployment_reconciles, metric_sum, wait_until};
use theseus::api::{ConditionKind, Decision, JournalEntry, Reason, RevisionRecord};
use theseus::store::Revision;
use theseus_controllers::controller::Controller;
use theseus_controllers::runtime::health::Role;

const KEY: &str = "web/dev";
const APP: &str = "/web/dev";

/// Every Marathon write a replica made, of any kind.
fn marathon_writes(controller: &Controller) -> f64 {
    metric_sum(
        &controller.metrics().encode(),
        "theseus_controller_marathon_writes_total",
        "",
    )
}

fn leads(controller: &Controller) -> bool {
    matches!(controller.role(), Role::Leader { synced: true })
}

async fn record(cluster: &Cluster, revision: Revision) -> RevisionRecord {
    cluster
        .history(KEY)
        .await
        .remove(&revision)
        .unwrap_or_else(|| panic!("revision {revision} of {KEY} has no history record"))
}

fn rollbacks(journal: &[JournalEntry]) -> usize {
    journal
        .iter()
        .filter(|entry| entry.decision == Decision::RolledBack)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_only_the_leader_rolls_back_and_its_successor_does_not_roll_back_again() {
    let cluster = Cluster::start().await;
    let replica = |identity: &str| {
        let mut config = cluster.config();
        config.identity = identity.into();
        config.resync = Duration::from_millis(500);
        config
    };
    let first = Controller::start(replica("replica-a")).await.unwrap();
    let second = Controller::start(replica("replica-b")).await.unwrap();
    wait_until("one replica leads", || async {
        leads(&first) || leads(&second)
    })
    .await;
    let (leader, standby) = if leads(&first) {
        (first, second)
    } else {
        (second, first)
    };
    wait_until("the other replica stands by", || async {
        standby.role() == Role::Standby
    })
    .await;

    let good = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    cluster.wait_running(KEY, good).await;
    let bad = cluster
        .put_spec(KEY, &json!({"cmd": "exit 3", "instances": 2}))
        .await;
    cluster
        .wait_status(KEY, "is rolled back", |s| {
            s.observed_revision == bad
                && s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| c.is(Reason::RolledBack))
        })
        .await;
    wait_until("the good revision runs again", || async {
        let app = cluster.app(APP).await.unwrap();
        app.cmd.as_deref() == Some("sleep 1000")
            && app.deployments.as_ref().is_some_and(Vec::is_empty)
            && cluster.running_tasks(APP).len() == 2
    })
    .await;

    // The standby watched all of it and did nothing.
    assert_eq!(standby.role(), Role::Standby);
    assert_eq!(
        marathon_writes(&standby),
        0.0,
        "the standby wrote to Marathon"
    );
    assert_eq!(
        deployment_reconciles(&standby),
        0.0,
        "the standby reconciled"
    );
    assert!(
        marathon_writes(&leader) >= 3.0,
        "the leader made the app, the bad update and the rollback"
    );
    assert_eq!(rollbacks(&cluster.journal(KEY).await), 1);
    let decided = record(&cluster, bad).await;

    // The leader goes; the standby takes over, reconciles the failed revision again (the
    // resync) and leaves the rollback as it was decided.
    leader.shutdown().await;
    wait_until("the standby takes over", || async { leads(&standby) }).await;
    let after_takeover = deployment_reconciles(&standby);
    wait_until("the new leader resyncs twice", || async {
        deployment_reconciles(&standby) >= after_takeover + 2.0
    })
    .await;
    assert_eq!(
        metric_sum(
            &standby.metrics().encode(),
            "theseus_controller_marathon_writes_total",
            "action=\"update\"",
        ),
        0.0,
        "the new leader rolled back again"
    );
    assert_eq!(rollbacks(&cluster.journal(KEY).await), 1);
    assert_eq!(record(&cluster, bad).await, decided, "decided once");
    assert_eq!(
        cluster.app(APP).await.unwrap().cmd.as_deref(),
        Some("sleep 1000")
    );
    standby.shutdown().await;
}
