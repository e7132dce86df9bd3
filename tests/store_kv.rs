//! Typed reads, writes, listings and transactions against a real etcd.

use serde::{Deserialize, Serialize};
use theseus::api::DeploymentKey;
use theseus::store::{Error, EtcdConfig, Layout, Store, Txn};
use theseus_testkit::EtcdServer;

async fn connect(etcd: &EtcdServer, prefix: &str) -> Store {
    Store::connect(
        EtcdConfig::new(etcd.endpoints()),
        Layout::new(prefix).unwrap(),
    )
    .await
    .unwrap()
}

fn key(text: &str) -> DeploymentKey {
    text.parse().unwrap()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Spec {
    image: String,
    instances: u32,
}

#[tokio::test]
async fn put_then_get_returns_the_value_with_its_revisions() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let first = store.put("/k", "one").await.unwrap();
    let second = store.put("/k", "two").await.unwrap();
    assert!(second > first);
    let entry = store.get("/k").await.unwrap().unwrap();
    assert_eq!(entry.key, "/k");
    assert_eq!(entry.value_str().unwrap(), "two");
    assert_eq!(entry.create_revision, first);
    assert_eq!(entry.mod_revision, second);
    assert_eq!(entry.version, 2);
    assert_eq!(store.get("/missing").await.unwrap(), None);
}

#[tokio::test]
async fn delete_reports_whether_the_key_existed() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    store.put("/k", "v").await.unwrap();
    assert!(store.delete("/k").await.unwrap());
    assert!(!store.delete("/k").await.unwrap());
    assert_eq!(store.get("/k").await.unwrap(), None);
}

#[tokio::test]
async fn json_values_round_trip() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "/theseus").await;
    let at = store.layout().desired(&key("ingestor/dev"));
    assert_eq!(at, "/theseus/desired/ingestor/dev");
    let spec = Spec {
        image: "registry.local:5000/flask".into(),
        instances: 4,
    };
    let revision = store.put_json(&at, &spec).await.unwrap();
    let (read, entry) = store.get_json::<Spec>(&at).await.unwrap().unwrap();
    assert_eq!(read, spec);
    assert_eq!(entry.mod_revision, revision);
    assert!(store.get_json::<Spec>("/nothing").await.unwrap().is_none());
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_reported_with_its_key() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let at = store.layout().desired(&key("ingestor/dev"));
    // Written the way a user would, bypassing theseus.
    theseus_testkit::expect_success(&etcd.etcdctl(&["put", &at, "{not json"]), "put");
    let error = store.get_json::<Spec>(&at).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Decode { .. }), "{message}");
    assert!(message.contains("/desired/ingestor/dev"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    let listing = store.list(&store.layout().desired_root()).await.unwrap();
    let error = listing.entries[0].json::<Spec>().unwrap_err().to_string();
    assert!(error.contains("/desired/ingestor/dev"), "{error}");
}

#[tokio::test]
async fn list_is_one_consistent_sorted_read_of_exactly_the_prefix() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    store.put("/desired/b/x", "2").await.unwrap();
    store.put("/desired/a/x", "1").await.unwrap();
    store.put("/desiredx", "outside").await.unwrap();
    let last = store.put("/observed/a/x/status", "outside").await.unwrap();
    let listing = store.list("/desired/").await.unwrap();
    let keys: Vec<&str> = listing.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["/desired/a/x", "/desired/b/x"]);
    assert_eq!(listing.revision, last);
    let everything = store.list("").await.unwrap();
    assert_eq!(everything.entries.len(), 4);
}

#[tokio::test]
async fn list_reads_more_keys_than_fit_in_one_page_at_one_revision() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let total = 1234;
    for chunk in (0..total).collect::<Vec<_>>().chunks(100) {
        let txn = chunk.iter().fold(Txn::new(), |txn, i| {
            txn.put(&format!("/many/{i:05}"), i.to_string())
        });
        assert!(store.txn(txn).await.unwrap().succeeded);
    }
    let listing = store.list("/many/").await.unwrap();
    assert_eq!(listing.entries.len(), total);
    let expected: Vec<String> = (0..total).map(|i| format!("/many/{i:05}")).collect();
    let keys: Vec<String> = listing.entries.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys, expected);
    assert!(
        listing
            .entries
            .iter()
            .all(|e| e.mod_revision <= listing.revision)
    );
}

#[tokio::test]
async fn layouts_with_different_prefixes_do_not_see_each_other() {
    let etcd = EtcdServer::start();
    let blue = connect(&etcd, "/blue").await;
    let green = connect(&etcd, "/green").await;
    let k = key("ingestor/dev");
    blue.put(&blue.layout().desired(&k), "blue").await.unwrap();
    green
        .put(&green.layout().desired(&k), "green")
        .await
        .unwrap();
    let listing = blue.list(&blue.layout().desired_root()).await.unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].value_str().unwrap(), "blue");
    assert_eq!(listing.entries[0].key, "/blue/desired/ingestor/dev");
    assert_eq!(
        blue.layout().parse(&green.layout().desired(&k)),
        None,
        "a key of another prefix parsed as ours"
    );
}

#[tokio::test]
async fn txn_with_a_failed_compare_writes_nothing() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let revision = store.put("/guarded", "v1").await.unwrap();
    store.put("/other", "keep").await.unwrap();
    let stale = Txn::new()
        .require_mod_revision("/guarded", revision - 1)
        .put("/guarded", "v2")
        .put("/new", "x")
        .delete("/other");
    let outcome = store.txn(stale).await.unwrap();
    assert!(!outcome.succeeded);
    assert_eq!(
        store.get("/guarded").await.unwrap().unwrap().value,
        b"v1".to_vec()
    );
    assert_eq!(store.get("/new").await.unwrap(), None);
    assert!(store.get("/other").await.unwrap().is_some());

    let current = Txn::new()
        .require_mod_revision("/guarded", revision)
        .put("/guarded", "v2")
        .delete("/other");
    let outcome = store.txn(current).await.unwrap();
    assert!(outcome.succeeded);
    let entry = store.get("/guarded").await.unwrap().unwrap();
    assert_eq!(entry.value, b"v2".to_vec());
    assert_eq!(entry.mod_revision, outcome.revision);
    assert_eq!(store.get("/other").await.unwrap(), None);
}

#[tokio::test]
async fn mod_revision_zero_means_the_key_must_not_exist() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let create = || {
        Txn::new()
            .require_mod_revision("/once", 0)
            .put("/once", "x")
    };
    assert!(store.txn(create()).await.unwrap().succeeded);
    assert!(!store.txn(create()).await.unwrap().succeeded);
}

#[tokio::test]
async fn create_revision_fences_writes_on_a_leadership() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let leader_key = format!("{}holder", store.layout().leader_root());
    let term = store.put(&leader_key, "replica-1").await.unwrap();
    let fenced = |token| {
        Txn::new()
            .require_create_revision(&leader_key, token)
            .put("/observed/a/b/status", format!("written under {token}"))
    };
    assert!(store.txn(fenced(term)).await.unwrap().succeeded);
    // The leadership is lost and taken by someone else: a new create revision.
    store.delete(&leader_key).await.unwrap();
    let next_term = store.put(&leader_key, "replica-2").await.unwrap();
    assert!(!store.txn(fenced(term)).await.unwrap().succeeded);
    assert!(store.txn(fenced(next_term)).await.unwrap().succeeded);
}

#[tokio::test]
async fn delete_prefix_removes_every_key_under_it_and_nothing_else() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let k = key("ingestor/dev");
    let layout = store.layout().clone();
    store.put(&layout.status(&k), "s").await.unwrap();
    store.put(&layout.task(&k, "t1"), "1").await.unwrap();
    store.put(&layout.task(&k, "t2"), "2").await.unwrap();
    store
        .put(&layout.task(&key("ingestor/devx"), "t3"), "3")
        .await
        .unwrap();
    let txn = Txn::new().delete_prefix(&layout.tasks(&k));
    assert!(!txn.is_empty());
    assert!(store.txn(txn).await.unwrap().succeeded);
    let left: Vec<String> = store
        .list(&layout.observed_root())
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        left,
        [
            "/observed/ingestor/dev/status",
            "/observed/ingestor/devx/tasks/t3"
        ]
    );
    assert!(Txn::new().require_mod_revision("/x", 0).is_empty());
}

#[tokio::test]
async fn compacting_a_revision_twice_is_refused_naming_the_endpoint() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    let revision = store.put("/k", "v").await.unwrap();
    store.compact(revision).await.unwrap();
    let error = store.compact(revision).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Refused { .. }), "{message}");
    assert!(message.contains(&etcd.endpoint()), "{message}");
    assert!(message.contains("compact"), "{message}");
}

#[tokio::test]
async fn list_reads_values_of_any_size_etcd_accepts() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    // 600 values of 10 kB: 6 MB, more than gRPC's default 4 MiB in one page of 500.
    let ten_kb = "x".repeat(10_000);
    for i in 0..600 {
        store
            .put(&format!("/desired/s/n{i:04}"), ten_kb.as_str())
            .await
            .unwrap();
    }
    // A few values near etcd's own request limit (1.5 MiB by default).
    let near_limit = "y".repeat(1_400_000);
    for i in 0..3 {
        store
            .put(&format!("/desired/t/big{i}"), near_limit.as_str())
            .await
            .unwrap();
    }
    let listing = store.list("/desired/").await.unwrap();
    assert_eq!(listing.entries.len(), 603);
    assert!(
        listing
            .entries
            .iter()
            .all(|entry| entry.value.len() == 10_000 || entry.value.len() == 1_400_000)
    );
    let mut keys: Vec<&str> = listing.entries.iter().map(|e| e.key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 603, "no key twice across pages");
    assert_eq!(
        store
            .get("/desired/t/big1")
            .await
            .unwrap()
            .unwrap()
            .value
            .len(),
        1_400_000
    );
}

#[tokio::test]
async fn a_value_beyond_what_can_be_read_is_reported_with_its_key() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd, "").await;
    store.put("/big/a", "small").await.unwrap();
    store.put("/big/b", "z".repeat(200_000)).await.unwrap();
    store.put("/big/c", "small").await.unwrap();
    let limited = store.with_max_response_bytes(100_000);

    let error = limited.list("/big/").await.unwrap_err();
    assert!(
        matches!(&error, Error::ValueTooLarge { key, .. } if key == "/big/b"),
        "{error}"
    );
    assert!(error.to_string().contains("/big/b"), "{error}");
    let error = limited.get("/big/b").await.unwrap_err();
    assert!(
        matches!(&error, Error::ValueTooLarge { key, .. } if key == "/big/b"),
        "{error}"
    );
    // Under the limit, a listing still reads everything, in smaller pages.
    store.delete("/big/b").await.unwrap();
    for i in 0..40 {
        store
            .put(&format!("/big/m{i:02}"), "m".repeat(20_000))
            .await
            .unwrap();
    }
    assert_eq!(limited.list("/big/").await.unwrap().entries.len(), 42);
}
