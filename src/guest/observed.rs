//! The task records under a watched prefix: a [`Cache`] following one store watch, read a
//! batch at a time.
//!
//! A batch is one item of the watch and every item already queued behind it. The store's
//! watch queues a whole etcd response (whole revisions: a transaction is never split) and a
//! whole relist before handing out the first item, so after a batch the records are those of
//! one etcd revision, never half of a transaction. Readers look only after a batch, and only
//! once the first list is [`synced`](ObservedTasks::is_synced).
//!
//! A value that is not a valid [`TaskRecord`] is logged with its key and counts as absent:
//! one bad record does not hide the others.

use std::collections::BTreeSet;

use futures::{FutureExt, StreamExt};

use super::service_tasks::ServiceTasks;
use crate::api::{DnsLabel, KeyError, TaskRecord};
use crate::store::{
    Cache, CacheChange, ChangeOf, Changes, Contents, Entry, KeyPath, Layout, Listing, Revision,
    WatchStream,
};

/// What the guest side keeps: the task records of the watched services, by service and etcd
/// key; `None` for a value that does not decode.
#[derive(Debug)]
pub(crate) struct WatchedTasks {
    layout: Layout,
    watched: BTreeSet<DnsLabel>,
}

impl Contents for WatchedTasks {
    type Key = (DnsLabel, String);
    type Value = Option<TaskRecord>;

    fn key(&self, etcd_key: &str) -> Option<Result<(DnsLabel, String), KeyError>> {
        match self.layout.parse(etcd_key)? {
            KeyPath::Task { key, .. } if self.watched.contains(&key.service) => {
                Some(Ok((key.service, etcd_key.to_owned())))
            }
            _ => None,
        }
    }

    fn value(&self, _: &(DnsLabel, String), entry: &Entry) -> Option<TaskRecord> {
        entry
            .json::<TaskRecord>()
            .inspect_err(|error| {
                tracing::warn!(%error, "ignoring a task record that does not decode");
            })
            .ok()
    }

    fn same(
        &self,
        _: &(DnsLabel, String),
        old: &Option<TaskRecord>,
        new: &Option<TaskRecord>,
    ) -> bool {
        old == new
    }
}

/// Task records of the watched services.
#[derive(Debug)]
pub(crate) struct ObservedTasks {
    cache: Cache<WatchedTasks>,
    /// Services whose records changed since [`take_changed`](Self::take_changed).
    changed: BTreeSet<DnsLabel>,
}

impl ObservedTasks {
    /// Keeps the records of `watched` under `layout`.
    pub fn new(layout: Layout, watched: impl IntoIterator<Item = DnsLabel>) -> ObservedTasks {
        ObservedTasks {
            cache: Cache::new(WatchedTasks {
                layout,
                watched: watched.into_iter().collect(),
            }),
            changed: BTreeSet::new(),
        }
    }

    /// The one prefix that covers every watched service: the service's own when there is
    /// one, else all of `/observed`.
    pub fn prefix(&self) -> String {
        let contents = self.cache.contents();
        match contents.watched.iter().collect::<Vec<_>>()[..] {
            [service] => contents.layout.observed_service(service),
            _ => contents.layout.observed_root(),
        }
    }

    /// Follows `watch` (of [`prefix`](Self::prefix)); apply its changes with
    /// [`next_batch`](Self::next_batch).
    pub fn follow(&self, watch: WatchStream) -> Changes<WatchedTasks> {
        self.cache.follow(watch)
    }

    /// Whether the first listing has been applied.
    pub fn is_synced(&self) -> bool {
        self.cache.is_synced()
    }

    /// The newest revision applied.
    pub fn revision(&self) -> Revision {
        self.cache.revision()
    }

    /// The services whose records changed since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<DnsLabel> {
        std::mem::take(&mut self.changed)
    }

    /// The records of `service` (empty for a service that has none yet).
    pub fn service(&self, service: &DnsLabel) -> ServiceTasks {
        let read = self.cache.read();
        let from = (service.clone(), String::new());
        let records = read
            .range(from..)
            .take_while(|((of, _), _)| of == service)
            .filter_map(|(_, record)| record.clone())
            .collect();
        ServiceTasks::new(
            service.clone(),
            self.cache.contents().layout.observed_service(service),
            read.revision(),
            records,
        )
    }

    /// Applies a listing as the watch's initial list would: every entry, then `Synced`.
    pub fn apply_listing(&mut self, listing: Listing) {
        for change in self.cache.apply_listing(listing) {
            self.note(change);
        }
    }

    /// Applies one event of a watch.
    #[cfg(test)]
    fn apply(&mut self, event: crate::store::WatchEvent) {
        if let Some(change) = self.cache.apply(event) {
            self.note(change);
        }
    }

    /// Notes the service of a change of what readers see: an unreadable record counts as
    /// absent.
    fn note(&mut self, change: ChangeOf<WatchedTasks>) {
        let (service, before, key) = match change {
            CacheChange::Put { key, old, .. } => (key.0.clone(), old.flatten(), Some(key)),
            CacheChange::Delete { key, old, .. } => (key.0, old, None),
            _ => return,
        };
        let now = key.and_then(|key| self.cache.get(&key).flatten());
        if before != now {
            self.changed.insert(service);
        }
    }

    /// Applies the next batch of `changes`: waits for one item, then takes every item that is
    /// already there. Returns the errors the watch reported meanwhile (it recovers from them
    /// by itself).
    pub async fn next_batch(
        &mut self,
        changes: &mut Changes<WatchedTasks>,
    ) -> Vec<crate::store::Error> {
        let mut errors = Vec::new();
        let mut item = changes.next().await;
        loop {
            match item {
                Some(Ok(change)) => self.note(change),
                Some(Err(error)) => errors.push(error),
                // The store's watch never ends; nothing more is there to apply.
                None => return errors,
            }
            // The stream keeps its own state between polls, so dropping a `next()` that is
            // not ready loses nothing.
            match changes.next().now_or_never() {
                Some(next) => item = next,
                None => return errors,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DeploymentKey;
    use crate::store::WatchEvent;

    fn service(name: &str) -> DnsLabel {
        DnsLabel::parse("service", name).unwrap()
    }

    fn put(key: &str, value: &str, revision: Revision) -> WatchEvent {
        WatchEvent::Put {
            entry: Entry {
                key: key.into(),
                value: value.as_bytes().to_vec(),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: 0,
            },
            prev: None,
        }
    }

    fn record_json(service: &str, task_id: &str) -> String {
        serde_json::json!({
            "service": service, "deployment": "dev", "task_id": task_id,
            "app_id": format!("/{service}/dev"), "host": "10.0.0.1", "state": "TASK_RUNNING"
        })
        .to_string()
    }

    fn task_key(layout: &Layout, service: &str, task_id: &str) -> String {
        let key = DeploymentKey::new(service, "dev").unwrap();
        layout.task(&key, task_id)
    }

    #[test]
    fn one_service_is_watched_under_its_own_prefix_several_under_the_root() {
        let layout = Layout::new("/p").unwrap();
        let one = ObservedTasks::new(layout.clone(), [service("a")]);
        assert_eq!(one.prefix(), "/p/observed/a/");
        let two = ObservedTasks::new(layout, [service("a"), service("b")]);
        assert_eq!(two.prefix(), "/p/observed/");
    }

    #[test]
    fn only_task_records_of_watched_services_are_kept() {
        let layout = Layout::default();
        let mut observed = ObservedTasks::new(layout.clone(), [service("a")]);
        observed.apply(put(
            &task_key(&layout, "a", "t1"),
            &record_json("a", "t1"),
            2,
        ));
        observed.apply(put(
            &task_key(&layout, "b", "t2"),
            &record_json("b", "t2"),
            3,
        ));
        observed.apply(put("/observed/a/dev/status", "{}", 4));
        // The rollout history and journal sit beside the tasks: neither is an endpoint.
        observed.apply(put("/observed/a/dev/history/3", r#"{"spec": {}}"#, 4));
        observed.apply(put("/observed/a/dev/journal/0000000001", "{}", 4));
        observed.apply(WatchEvent::Synced { revision: 4 });
        assert!(observed.is_synced());
        assert_eq!(observed.revision(), 4);
        assert_eq!(observed.take_changed(), BTreeSet::from([service("a")]));
        let tasks = observed.service(&service("a"));
        assert_eq!(tasks.records.len(), 1);
        assert_eq!(tasks.revision, 4);
        assert!(observed.service(&service("b")).records.is_empty());
    }

    #[test]
    fn a_record_that_stops_decoding_counts_as_gone_and_a_rewrite_of_the_same_is_no_change() {
        let layout = Layout::default();
        let key = task_key(&layout, "a", "t1");
        let mut observed = ObservedTasks::new(layout, [service("a")]);
        observed.apply(put(&key, &record_json("a", "t1"), 2));
        observed.take_changed();
        observed.apply(put(&key, &record_json("a", "t1"), 3));
        assert!(observed.take_changed().is_empty(), "same record again");
        observed.apply(put(&key, "not json", 4));
        assert_eq!(observed.take_changed(), BTreeSet::from([service("a")]));
        assert!(observed.service(&service("a")).records.is_empty());
        observed.apply(WatchEvent::Delete {
            key,
            revision: 5,
            prev: None,
        });
        assert!(observed.take_changed().is_empty(), "already gone");
        assert_eq!(observed.revision(), 5);
    }
}
