//! People's edits of `/desired` (`theseus::edit`) against a real etcd: each changes only its
//! field, on the revision it was based on, and never overwrites a concurrent write.

use chrono::DateTime;
use serde_json::{Value, json};
use theseus::api::{DeploymentKey, RevisionOutcome, RevisionRecord, SpecText};
use theseus::edit::{self, Edit, EditError, Edited, Expected};
use theseus::store::{EtcdConfig, Layout, Store};
use theseus_testkit::EtcdServer;

const PATH: &str = "/p/desired/web/dev";

async fn connect(etcd: &EtcdServer) -> Store {
    Store::connect(
        EtcdConfig::new(etcd.endpoints()),
        Layout::new("/p").unwrap(),
    )
    .await
    .unwrap()
}

fn key() -> DeploymentKey {
    "web/dev".parse().unwrap()
}

async fn put(store: &Store, spec: Value) -> i64 {
    store.put(PATH, spec.to_string()).await.unwrap()
}

async fn desired(store: &Store) -> Value {
    serde_json::from_slice(&store.get(PATH).await.unwrap().unwrap().value).unwrap()
}

fn record(revision: i64, spec: Value, ran: bool) -> RevisionRecord {
    RevisionRecord {
        revision,
        spec: SpecText::from_value(&spec).unwrap(),
        spec_hash: format!("hash-{revision}"),
        change_cause: Some(format!("release {revision}")),
        outcome: RevisionOutcome::Superseded,
        failure_reason: None,
        failure_message: None,
        rolled_back_to: None,
        app_version: None,
        started_at: DateTime::UNIX_EPOCH,
        running_at: ran.then_some(DateTime::UNIX_EPOCH),
        ended_at: None,
    }
}

#[tokio::test]
async fn scale_changes_only_instances_at_the_revision_read() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let first = put(&store, json!({"cmd": "run", "labels": ["a"]})).await;
    let scale = Edit::Scale { instances: 3 };
    let Edited::Written {
        revision,
        previous,
        change,
    } = edit::apply(&store, &key(), &scale, Expected::Revision(first))
        .await
        .unwrap()
    else {
        panic!("scaling to 3 writes");
    };
    assert_eq!(previous, first);
    assert!(revision > first);
    assert_eq!(change, "instances 1 → 3");
    assert_eq!(
        desired(&store).await,
        json!({"cmd": "run", "labels": ["a"], "instances": 3})
    );
    let again = edit::apply(&store, &key(), &scale, Expected::Current)
        .await
        .unwrap();
    assert!(matches!(again, Edited::Unchanged { revision: at, .. } if at == revision));
}

#[tokio::test]
async fn an_edit_based_on_a_replaced_revision_is_a_conflict_and_writes_nothing() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let shown = put(&store, json!({"cmd": "run"})).await;
    let concurrent = put(&store, json!({"cmd": "run", "instances": 4})).await;
    for edit in [
        Edit::Scale { instances: 2 },
        Edit::Pause,
        Edit::Undo { to_revision: None },
    ] {
        let error = edit::apply(&store, &key(), &edit, Expected::Revision(shown))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                EditError::Conflict { expected, found: Some(found), .. }
                    if expected == shown && found == concurrent
            ),
            "{error}"
        );
        assert_eq!(error.metric_label(), "conflict");
    }
    assert_eq!(desired(&store).await, json!({"cmd": "run", "instances": 4}));
    store.delete(PATH).await.unwrap();
    let deleted = edit::apply(&store, &key(), &Edit::Pause, Expected::Revision(concurrent))
        .await
        .unwrap_err();
    assert!(matches!(deleted, EditError::Conflict { found: None, .. }));
    let missing = edit::apply(&store, &key(), &Edit::Pause, Expected::Current)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, EditError::NoDeployment { .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn pause_and_resume_set_and_remove_paused_only() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    put(&store, json!({"cmd": "run", "instances": 2})).await;
    let paused = edit::apply(&store, &key(), &Edit::Pause, Expected::Current)
        .await
        .unwrap();
    assert!(matches!(paused, Edited::Written { .. }));
    assert_eq!(
        desired(&store).await,
        json!({"cmd": "run", "instances": 2, "paused": true})
    );
    let again = edit::apply(&store, &key(), &Edit::Pause, Expected::Current)
        .await
        .unwrap();
    assert!(matches!(again, Edited::Unchanged { ref reason, .. } if reason == "already paused"));
    edit::apply(&store, &key(), &Edit::Resume, Expected::Current)
        .await
        .unwrap();
    assert_eq!(desired(&store).await, json!({"cmd": "run", "instances": 2}));
}

#[tokio::test]
async fn undo_writes_a_recorded_spec_back_with_a_cause_saying_so() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let layout = store.layout().clone();
    for record in [
        record(2, json!({"cmd": "v1"}), true),
        record(3, json!({"cmd": "v2"}), true),
        record(4, json!({"cmd": "v2b"}), false),
        record(5, Value::Null, true),
    ] {
        store
            .put_json(&layout.history_record(&key(), record.revision), &record)
            .await
            .unwrap();
    }
    // Later than every recorded revision.
    let current = put(&store, json!({"cmd": "v3"})).await;
    assert!(current > 5);
    let undone = edit::apply(
        &store,
        &key(),
        &Edit::Undo { to_revision: None },
        Expected::Revision(current),
    )
    .await
    .unwrap();
    assert!(
        matches!(&undone, Edited::Written { change, .. } if change == "the spec of revision 3 written back"),
        "{undone:?}"
    );
    let spec = desired(&store).await;
    assert_eq!(spec["cmd"], "v2");
    assert_eq!(
        spec["change_cause"],
        format!("undo: back to revision 3 from revision {current} (release 3)")
    );

    let to_first = Edit::Undo {
        to_revision: Some(2),
    };
    edit::apply(&store, &key(), &to_first, Expected::Current)
        .await
        .unwrap();
    assert_eq!(desired(&store).await["cmd"], "v1");
    for (revision, expected) in [(7, "not_recorded"), (5, "spec_not_kept")] {
        let undo = Edit::Undo {
            to_revision: Some(revision),
        };
        let error = edit::apply(&store, &key(), &undo, Expected::Current)
            .await
            .unwrap_err();
        assert_eq!(error.metric_label(), expected, "{error}");
    }
}

#[tokio::test]
async fn an_edit_whose_result_is_not_a_valid_spec_writes_nothing() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    put(&store, json!({"cmd": "run"})).await;
    let error = edit::apply(
        &store,
        &key(),
        &Edit::Scale { instances: 20_000 },
        Expected::Current,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, EditError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("/instances"), "{error}");
    assert_eq!(desired(&store).await, json!({"cmd": "run"}));
    store.put(PATH, "not json").await.unwrap();
    let error = edit::apply(&store, &key(), &Edit::Pause, Expected::Current)
        .await
        .unwrap_err();
    assert!(matches!(error, EditError::NotAnObject { .. }), "{error}");
}
