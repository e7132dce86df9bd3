//! The watch stream against a real etcd that restarts, compacts and loses members: no
//! change lost, none emitted twice.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use theseus::store::{Entry, Error, EtcdConfig, Layout, Store, WatchEvent, WatchStream};
use theseus_testkit::{EtcdCluster, EtcdServer};

/// How long a test waits for the stream to reach a state before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

async fn connect(endpoints: Vec<String>) -> Store {
    let mut config = EtcdConfig::new(endpoints);
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    Store::connect(config, Layout::default()).await.unwrap()
}

/// A consumer of a watch that checks the stream's promises on every item.
struct Observer {
    stream: WatchStream,
    /// What the consumer believes etcd holds.
    view: BTreeMap<String, Entry>,
    /// Every (key, mod revision) emitted as a Put: a repeat is a duplicate.
    emitted: HashSet<(String, i64)>,
    /// Every event, in order.
    events: Vec<WatchEvent>,
    errors: Vec<Error>,
}

impl Observer {
    fn new(stream: WatchStream) -> Observer {
        Observer {
            stream,
            view: BTreeMap::new(),
            emitted: HashSet::new(),
            events: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn apply(&mut self, event: WatchEvent) {
        match &event {
            WatchEvent::Put { entry, prev } => {
                assert_eq!(
                    prev.as_ref(),
                    self.view.get(&entry.key),
                    "prev of {} is not what was emitted last",
                    entry.key
                );
                assert!(
                    self.emitted.insert((entry.key.clone(), entry.mod_revision)),
                    "duplicate: {} at revision {} emitted twice",
                    entry.key,
                    entry.mod_revision
                );
                self.view.insert(entry.key.clone(), entry.clone());
            }
            WatchEvent::Delete { key, prev, .. } => {
                let had = self.view.remove(key);
                assert!(had.is_some(), "delete of {key}, which was never emitted");
                assert_eq!(prev.as_ref(), had.as_ref(), "prev of deleted {key}");
            }
            WatchEvent::Synced { .. } => {}
        }
        self.events.push(event);
    }

    /// Consumes items until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&Observer) -> bool) {
        let wait = async {
            while !done(self) {
                match self
                    .stream
                    .next()
                    .await
                    .expect("the watch stream never ends")
                {
                    Ok(event) => self.apply(event),
                    Err(error) => self.errors.push(error),
                }
            }
        };
        if tokio::time::timeout(DEADLINE, wait).await.is_err() {
            panic!(
                "timed out waiting until {what}; events: {:?}; errors: {:?}",
                self.events,
                self.errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
        }
    }

    /// Consumes items until the next error, which it returns.
    async fn until_error(&mut self) -> String {
        let before = self.errors.len();
        self.until("the stream reports an error", |o| o.errors.len() > before)
            .await;
        self.errors[before].to_string()
    }

    fn value(&self, key: &str) -> Option<String> {
        self.view
            .get(key)
            .map(|entry| entry.value_str().unwrap().to_owned())
    }

    fn synced_count(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, WatchEvent::Synced { .. }))
            .count()
    }

    /// The values of every Put of `key`, in order.
    fn history(&self, key: &str) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Put { entry, .. } if entry.key == key => {
                    Some(entry.value_str().unwrap().to_owned())
                }
                _ => None,
            })
            .collect()
    }

    /// The consumer's view equals etcd's current content of `prefix`.
    async fn assert_view_matches(&self, store: &Store, prefix: &str) {
        let listing = store.list(prefix).await.unwrap();
        let actual: BTreeMap<String, Entry> = listing
            .entries
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect();
        assert_eq!(self.view, actual, "the watched view differs from etcd");
    }
}

#[tokio::test]
async fn watch_starts_with_a_consistent_list_then_synced_then_changes() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints()).await;
    store.put("/w/a", "1").await.unwrap();
    let listed_at = store.put("/w/b", "1").await.unwrap();
    store.put("/outside", "x").await.unwrap();
    let mut observer = Observer::new(store.watch("/w/"));
    observer
        .until("the initial list is synced", |o| o.synced_count() == 1)
        .await;
    assert_eq!(observer.events.len(), 3, "{:?}", observer.events);
    let WatchEvent::Synced { revision } = observer.events[2] else {
        panic!("third event is not Synced: {:?}", observer.events)
    };
    // The outside put came after /w/b, so the list's revision is at least that.
    assert!(revision > listed_at);
    assert!(matches!(
        &observer.events[0],
        WatchEvent::Put { prev: None, .. }
    ));

    store.put("/w/a", "2").await.unwrap();
    store.put("/outside", "y").await.unwrap();
    store.delete("/w/b").await.unwrap();
    store.put("/w/c", "1").await.unwrap();
    observer
        .until("/w/c appears", |o| o.value("/w/c").is_some())
        .await;
    assert_eq!(observer.history("/w/a"), ["1", "2"]);
    assert_eq!(observer.value("/w/b"), None);
    assert!(observer.view.keys().all(|k| k.starts_with("/w/")));
    assert!(observer.errors.is_empty(), "{:?}", observer.errors);
    observer.assert_view_matches(&store, "/w/").await;
}

#[tokio::test]
async fn watch_emits_every_key_of_a_transaction() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints()).await;
    let mut observer = Observer::new(store.watch("/t/"));
    observer.until("synced", |o| o.synced_count() == 1).await;
    let txn = theseus::store::Txn::new()
        .put("/t/1", "a")
        .put("/t/2", "b")
        .put("/t/3", "c");
    store.txn(txn).await.unwrap();
    observer.until("all three", |o| o.view.len() == 3).await;
}

#[tokio::test]
async fn watch_resumes_after_etcd_restart_without_loss_or_duplicates() {
    let mut etcd = EtcdServer::start();
    let store = connect(etcd.endpoints()).await;
    for i in 0..5 {
        store.put(&format!("/r/{i}"), "before").await.unwrap();
    }
    let mut observer = Observer::new(store.watch("/r/"));
    observer.until("five keys", |o| o.view.len() == 5).await;
    store.put("/r/0", "changed").await.unwrap();
    observer
        .until("the change", |o| {
            o.value("/r/0").as_deref() == Some("changed")
        })
        .await;

    etcd.kill();
    // Polled while etcd is down, the stream reports the failure and keeps trying.
    let broken = observer.until_error().await;
    assert!(broken.contains("/r/"), "{broken}");
    let unreachable = observer.until_error().await;
    assert!(unreachable.contains(&etcd.endpoint()), "{unreachable}");

    etcd.restart();
    for i in 5..10 {
        store.put(&format!("/r/{i}"), "after").await.unwrap();
    }
    store.put("/r/1", "changed").await.unwrap();
    store.delete("/r/2").await.unwrap();
    observer
        .until("every write after the restart", |o| {
            o.view.len() == 9 && o.value("/r/1").as_deref() == Some("changed")
        })
        .await;
    assert_eq!(observer.history("/r/0"), ["before", "changed"]);
    assert_eq!(observer.history("/r/1"), ["before", "changed"]);
    assert_eq!(observer.history("/r/7"), ["after"]);
    // Resuming needs no relist: one Synced, from the initial list.
    assert_eq!(observer.synced_count(), 1);
    observer.assert_view_matches(&store, "/r/").await;
}

#[tokio::test]
async fn watch_relists_after_compaction_and_emits_only_the_difference() {
    let mut etcd = EtcdServer::start();
    let store = connect(etcd.endpoints()).await;
    for key in ["/c/changed", "/c/deleted", "/c/unchanged"] {
        store.put(key, "1").await.unwrap();
    }
    let mut observer = Observer::new(store.watch("/c/"));
    observer.until("synced", |o| o.synced_count() == 1).await;
    let events_before = observer.events.len();

    // Break the stream while nobody polls it, change things, and compact the history the
    // stream would need to resume.
    etcd.kill();
    etcd.restart();
    store.put("/c/changed", "2").await.unwrap();
    store.delete("/c/deleted").await.unwrap();
    store.put("/c/created", "1").await.unwrap();
    let last = store.put("/c/changed", "3").await.unwrap();
    store.compact(last).await.unwrap();

    observer
        .until("the relist is synced", |o| o.synced_count() == 2)
        .await;
    assert!(
        observer
            .errors
            .iter()
            .any(|e| matches!(e, Error::Compacted { .. })),
        "{:?}",
        observer.errors
    );
    let relist: Vec<String> = observer.events[events_before..]
        .iter()
        .map(|e| match e {
            WatchEvent::Put { entry, prev } => format!(
                "put {} {} (was {:?})",
                entry.key,
                entry.value_str().unwrap(),
                prev.as_ref().map(|p| p.value_str().unwrap().to_owned())
            ),
            WatchEvent::Delete { key, .. } => format!("delete {key}"),
            WatchEvent::Synced { revision } => {
                assert!(*revision >= last);
                "synced".into()
            }
        })
        .collect();
    assert_eq!(
        relist,
        [
            "put /c/changed 3 (was Some(\"1\"))",
            "put /c/created 1 (was None)",
            "delete /c/deleted",
            "synced"
        ]
    );

    // And it watches again from the list's revision + 1.
    store.put("/c/later", "1").await.unwrap();
    observer
        .until("a change after the relist", |o| {
            o.value("/c/later").is_some()
        })
        .await;
    observer.assert_view_matches(&store, "/c/").await;
}

#[tokio::test]
async fn compaction_under_a_live_watch_loses_nothing() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints()).await;
    let mut observer = Observer::new(store.watch("/l/"));
    observer.until("synced", |o| o.synced_count() == 1).await;
    let mut last = 0;
    for i in 0..20 {
        last = store
            .put(&format!("/l/{}", i % 4), i.to_string())
            .await
            .unwrap();
        if i % 5 == 4 {
            store.compact(last).await.unwrap();
        }
    }
    observer
        .until("the last write", |o| {
            o.view.values().any(|e| e.mod_revision == last)
        })
        .await;
    for k in 0..4 {
        let expected: Vec<String> = (0..20)
            .filter(|i| i % 4 == k)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(observer.history(&format!("/l/{k}")), expected);
    }
    observer.assert_view_matches(&store, "/l/").await;
}

#[tokio::test]
async fn watch_moves_to_another_member_when_its_member_dies() {
    let mut cluster = EtcdCluster::start(3);
    let store = connect(cluster.endpoints()).await;
    for i in 0..5 {
        store.put(&format!("/m/{i}"), "before").await.unwrap();
    }
    let mut observer = Observer::new(store.watch("/m/"));
    observer.until("five keys", |o| o.view.len() == 5).await;

    // The store starts with the first endpoint, so the watch is on member 0.
    cluster.kill_member(0);
    let broken = observer.until_error().await;
    assert!(broken.contains(&cluster.endpoint(0)), "{broken}");
    for i in 5..10 {
        store.put(&format!("/m/{i}"), "after").await.unwrap();
    }
    store.put("/m/0", "changed").await.unwrap();
    observer
        .until("every write after the kill", |o| {
            o.view.len() == 10 && o.value("/m/0").as_deref() == Some("changed")
        })
        .await;
    assert_eq!(observer.history("/m/0"), ["before", "changed"]);
    assert_eq!(observer.synced_count(), 1);
    observer.assert_view_matches(&store, "/m/").await;
}

#[tokio::test]
async fn watch_relists_on_another_member_after_a_compaction_while_its_member_was_down() {
    let mut cluster = EtcdCluster::start(3);
    let store = connect(cluster.endpoints()).await;
    store.put("/x/kept", "1").await.unwrap();
    store.put("/x/gone", "1").await.unwrap();
    let mut observer = Observer::new(store.watch("/x/"));
    observer.until("synced", |o| o.synced_count() == 1).await;

    cluster.kill_member(0);
    store.delete("/x/gone").await.unwrap();
    let last = store.put("/x/new", "1").await.unwrap();
    store.compact(last).await.unwrap();
    observer
        .until("the relist is synced", |o| o.synced_count() == 2)
        .await;
    assert_eq!(observer.value("/x/gone"), None);
    assert_eq!(observer.value("/x/new").as_deref(), Some("1"));
    assert_eq!(observer.history("/x/kept"), ["1"]);
    observer.assert_view_matches(&store, "/x/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_keeps_delivering_while_members_are_killed_and_restarted_in_turn() {
    let mut cluster = EtcdCluster::start(3);
    let store = connect(cluster.endpoints()).await;
    let mut observer = Observer::new(store.watch("/r/"));
    observer.until("synced", |o| o.synced_count() == 1).await;
    for round in 0..9 {
        let member = round % 3;
        cluster.kill_member(member);
        let during = store
            .put(&format!("/r/{round}"), "while a member is down")
            .await
            .unwrap();
        observer
            .until("the write made while a member is down", |o| {
                o.view.values().any(|e| e.mod_revision == during)
            })
            .await;
        cluster.restart_member(member);
        let after = store
            .put(&format!("/r/{round}"), "after the restart")
            .await
            .unwrap();
        observer
            .until("the write after the restart", |o| {
                o.view.values().any(|e| e.mod_revision == after)
            })
            .await;
    }
    observer.assert_view_matches(&store, "/r/").await;
}
