//! What the controller writes, against a real etcd: one reconcile's revision records, journal
//! entries and status go in one transaction when they fit in one request; what etcd already
//! holds is not written again; a history too large for one request is written first and the
//! status last; writes made at the same time share transactions, and share their fate.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use support::store;
use theseus::api::{
    Decision, DeploymentKey, DeploymentStatus, InstanceCounts, Phase, RevisionOutcome,
    RevisionRecord, SpecText,
};
use theseus::store::{Entry, Store};
use theseus_controllers::deployments::journal::JOURNAL_LENGTH;
use theseus_controllers::deployments::lists::KeptList;
use theseus_controllers::deployments::records::{Recording, Records};
use theseus_controllers::deployments::statuses::Statuses;
use theseus_controllers::observed::tree::ListKind;
use theseus_controllers::runtime::fence::{Fence, FenceError, FencedStore, LeaseDeadline};
use theseus_controllers::runtime::metrics::Metrics;
use theseus_testkit::EtcdServer;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LEADER_KEY: &str = "/theseus/leader/records-test";

fn key() -> DeploymentKey {
    "web/dev".parse().unwrap()
}

/// The records of a term that leads for the whole test.
async fn records(store: &Store, metrics: &Arc<Metrics>) -> Records {
    let token = store.put(LEADER_KEY, "replica-0").await.unwrap();
    let fence = Fence::new(
        LEADER_KEY,
        token,
        Arc::new(LeaseDeadline::new(
            Instant::now() + Duration::from_secs(3600),
        )),
        Duration::ZERO,
        CancellationToken::new(),
    );
    let fenced = FencedStore::new(store.clone(), fence, Arc::clone(metrics));
    Records {
        statuses: Arc::new(Statuses::new(fenced.clone(), Arc::clone(metrics))),
        history: Arc::new(KeptList::new(fenced.clone(), ListKind::History)),
        journal: Arc::new(KeptList::new(fenced.clone(), ListKind::Journal)),
        fenced,
    }
}

fn record(revision: i64, spec_bytes: usize) -> RevisionRecord {
    RevisionRecord {
        revision,
        spec: SpecText::from_value(&json!({"cmd": "x".repeat(spec_bytes), "instances": 1}))
            .unwrap(),
        spec_hash: format!("hash-{revision}"),
        change_cause: None,
        outcome: RevisionOutcome::Deploying,
        failure_reason: None,
        failure_message: None,
        rolled_back_to: None,
        app_version: None,
        started_at: Utc::now(),
        running_at: None,
        ended_at: None,
    }
}

fn status(revision: i64) -> DeploymentStatus {
    DeploymentStatus {
        observed_revision: revision,
        phase: Phase::Deploying,
        conditions: vec![],
        instances: InstanceCounts::default(),
        app_id: Some("/web/dev".into()),
        app_version: None,
        deployment_ids: vec![],
        last_task_failure: None,
        revision_started_at: None,
        revision_running_at: None,
        revision_task_failures: 0,
        updated_at: Utc::now(),
    }
}

/// The controller's count of etcd transactions.
fn txns(metrics: &Metrics) -> usize {
    metrics
        .encode()
        .lines()
        .filter(|line| line.contains("etcd_requests_total{operation=\"txn\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// Every key under the deployment's `/observed` prefix.
async fn observed(store: &Store) -> Vec<Entry> {
    store
        .list(&store.layout().observed(&key()))
        .await
        .unwrap()
        .entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciles_records_and_status_go_in_one_transaction_and_only_once() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let metrics = Arc::new(Metrics::new());
    let records = records(&store, &metrics).await;

    let mut recording = Recording::new(7);
    recording.history([record(5, 10), record(7, 10)]);
    recording
        .journal
        .push(Decision::RevisionStarted, "started revision 7".into());
    recording.journal.push(
        Decision::AppCreated,
        "created Marathon app `/web/dev`".into(),
    );
    records
        .write(&key(), recording, 10, Some(status(7)))
        .await
        .unwrap();

    let entries = observed(&store).await;
    assert_eq!(entries.len(), 5, "two records, two entries, a status");
    let revisions: Vec<i64> = entries.iter().map(|entry| entry.mod_revision).collect();
    assert!(
        revisions.iter().all(|revision| *revision == revisions[0]),
        "all written by one transaction: {revisions:?}"
    );
    assert_eq!(txns(&metrics), 1);

    // The same again writes nothing: the copies hold it.
    let mut again = Recording::new(7);
    again.history([(*records.history.get(&key())[&7]).clone()]);
    records
        .write(&key(), again, 10, Some(status(7)))
        .await
        .unwrap();
    assert_eq!(txns(&metrics), 1, "nothing new, nothing written");

    // A later record for the same revision replaces the earlier in the same reconcile.
    let mut running = Recording::new(7);
    let mut ran = record(7, 10);
    ran.outcome = RevisionOutcome::Running;
    running.history([record(7, 10), ran.clone()]);
    records.write(&key(), running, 10, None).await.unwrap();
    assert_eq!(txns(&metrics), 2);
    assert_eq!(records.history.get(&key())[&7].outcome, ran.outcome);
    assert_eq!(records.journal.indexes(&key()).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_too_large_for_one_request_goes_first_and_the_status_last() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let metrics = Arc::new(Metrics::new());
    let records = records(&store, &metrics).await;

    // Four records of about 400 KiB each, three kept: more than one request may carry.
    let mut recording = Recording::new(4);
    recording.history((1..=4).map(|revision| record(revision, 400 * 1024)));
    recording
        .journal
        .push(Decision::RevisionStarted, "started revision 4".into());
    records
        .write(&key(), recording, 3, Some(status(4)))
        .await
        .unwrap();

    let entries = observed(&store).await;
    let layout = store.layout();
    let history: Vec<&Entry> = entries
        .iter()
        .filter(|entry| entry.key.starts_with(&layout.history(&key())))
        .collect();
    assert_eq!(
        history.len(),
        3,
        "the oldest beyond the limit is not kept: {:?}",
        history.iter().map(|entry| &entry.key).collect::<Vec<_>>()
    );
    let status = entries
        .iter()
        .find(|entry| entry.key == layout.status(&key()))
        .expect("the status is written");
    assert!(
        history
            .iter()
            .all(|entry| entry.mod_revision < status.mod_revision),
        "the history is in etcd before the status"
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry.key.starts_with(&layout.journal(&key())))
    );
    assert!(txns(&metrics) >= 2);
}

/// One poll of the test's only thread queues every write before the sender runs, so the
/// sharing is certain, not likely.
#[tokio::test(flavor = "current_thread")]
async fn writes_made_at_once_share_one_transaction_and_its_revision() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let metrics = Arc::new(Metrics::new());
    let fenced = records(&store, &metrics).await.fenced;

    let keys: Vec<String> = (0..64)
        .map(|i| format!("/observed/s{i}/d/status"))
        .collect();
    let fenced = &fenced;
    let revisions = futures::future::join_all(
        keys.iter()
            .enumerate()
            .map(|(i, key)| async move { fenced.put_json(key, &i).await }),
    )
    .await;
    assert_eq!(txns(&metrics), 1, "64 writes, one transaction");
    for ((i, key), revision) in keys.iter().enumerate().zip(revisions) {
        let revision = revision.unwrap();
        let entry = store.get(key).await.unwrap().expect("written");
        assert_eq!(
            entry.mod_revision, revision,
            "{key}: the revision etcd gave it"
        );
        assert_eq!(entry.json::<usize>().unwrap(), i);
    }

    // A deposed term's writes made at once all fail, and write nothing.
    let lost = CancellationToken::new();
    let deposed = FencedStore::new(
        store.clone(),
        Fence::new(
            LEADER_KEY,
            fenced.fence().token() - 1,
            Arc::new(LeaseDeadline::new(
                Instant::now() + Duration::from_secs(3600),
            )),
            Duration::ZERO,
            lost.clone(),
        ),
        Arc::clone(&metrics),
    );
    let late = futures::future::join_all((0..8).map(|i| {
        let deposed = &deposed;
        async move {
            deposed
                .put_json(&format!("/observed/late{i}/d/status"), &i)
                .await
        }
    }))
    .await;
    assert!(
        late.iter()
            .all(|write| matches!(write, Err(FenceError::LeadershipLost { .. }))),
        "{late:?}"
    );
    assert!(lost.is_cancelled(), "a failed fence ends its term");
    assert!(
        store
            .list("/observed/late")
            .await
            .unwrap()
            .entries
            .is_empty(),
        "nothing of the deposed term's writes is in etcd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journals_copy_knows_its_entries_without_keeping_their_messages() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let metrics = Arc::new(Metrics::new());
    let records = records(&store, &metrics).await;

    // One entry more than the journal keeps: the oldest goes with the last.
    let kept = JOURNAL_LENGTH as u64;
    for n in 1..=kept + 1 {
        let mut recording = Recording::new(7);
        recording
            .journal
            .push(Decision::RevisionStarted, format!("entry {n}"));
        records.write(&key(), recording, 10, None).await.unwrap();
    }
    let journal = store
        .list(&store.layout().journal(&key()))
        .await
        .unwrap()
        .entries;
    assert_eq!(journal.len() as u64, kept, "the bound holds in etcd");
    assert_eq!(
        records.journal.indexes(&key()),
        (2..=kept + 1).collect::<Vec<u64>>()
    );
    assert_eq!(records.journal.last_index(&key()), kept + 1);
    assert!(records.journal.get(&key()).is_empty(), "no message is kept");
    assert_eq!(records.journal.keys(), [key()]);
}
