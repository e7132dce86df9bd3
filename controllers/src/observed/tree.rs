//! The controller's copy of the task records under `<p>/observed/`: a [`Cache`] following one
//! resumable watch keeps it current, and the controller's own writes enter it as soon as etcd
//! accepts them.
//!
//! What it promises:
//! - After [`ObservedTree::wait_synced`], the copy holds, as a [`HeldRecord`] each (what a
//!   record says, not the record), the task records etcd held at some
//!   revision R, every later change the watch has delivered, and every write the controller
//!   reported ([`ObservedTree::written`], [`ObservedTree::removed`]). Changes are ordered by
//!   etcd revision: the watch's echo of an older write never turns a newer one back, so a
//!   reconcile right after a write compares with what it wrote.
//! - A record that does not decode counts as present and unreadable: it differs from every
//!   record the controller would write, so it is replaced.
//! - [`ObservedTree::changes`] is the stream that applies the watch. A change the controller
//!   did not make (someone deleted or edited a record by hand) yields
//!   [`TreeChange::Records`] with the deployment's key, after the copy is updated.
//! - Every change of a status (`/observed/<service>/<name>/status`), from the first list on,
//!   is yielded as a [`StatusChange`], so the statuses and the task records load
//!   from one list of `/observed/` and whoever keeps the statuses sees every later write to
//!   them, the controller's own and anyone else's. The copy keeps no statuses itself.
//! - Likewise every change of a history record or journal entry
//!   (`/observed/<service>/<name>/(history|journal)/...`) is yielded as a [`ListChange`]: those keys are never taken for task records, nor for garbage.
//!
//! Compactions, broken streams and etcd restarts are the watch's business
//! ([`theseus::store::WatchStream`]): it relists and delivers the difference. The cache holds
//! the revision of every status, history record and journal entry (to tell a change from its
//! echo and to find what a relist no longer lists), never their values.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use theseus::api::{DeploymentKey, KeyError, TaskRecord};
use theseus::store::{
    Cache, CacheChange, ChangeOf, Contents, Entry, KeyPath, Layout, Revision, WatchStream,
};
use tracing::{debug, warn};

use crate::runtime::metrics::Metrics;
use crate::runtime::reflector::watch_interrupted;

/// What a key under `/observed/` names, in the order the copy holds them: every task record
/// first, those of one deployment together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ObservedKey {
    /// `<service>/<name>/tasks/<task-id>`.
    Task { key: DeploymentKey, task_id: String },
    /// `<service>/<name>/status`.
    Status(DeploymentKey),
    /// `<service>/<name>/(history|journal)/<index>`.
    List {
        key: DeploymentKey,
        list: ListKind,
        index: u64,
    },
}

/// A task record as the copy holds it: `None` for a value that does not decode, and for
/// every key that is not a task record.
type Record = Option<HeldRecord>;

/// What the copy keeps of a task record: digests of what it says, enough to tell whether a
/// record the controller would write says the same ([`HeldRecord::says`]), in 24 bytes
/// rather than the record (about half a kilobyte in a dozen allocations; 30,000 tasks hold
/// 30,000 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRecord {
    /// Every field but the staged and started times.
    fields: u64,
    /// The staged and started times.
    times: u64,
    /// Which of the two times the record has: bit 0 staged, bit 1 started.
    times_set: u8,
}

impl HeldRecord {
    /// What the copy keeps of `record`.
    pub fn of(record: &TaskRecord) -> HeldRecord {
        // Every field named, so that a new one cannot be left out of the digest.
        let TaskRecord {
            service,
            deployment,
            task_id,
            app_id,
            host,
            agent_id,
            ip_addresses,
            ports,
            state,
            health,
            health_checked,
            staged_at,
            started_at,
            version,
            labels,
        } = record;
        let mut fields = DefaultHasher::new();
        (service, deployment, task_id, app_id, host, agent_id).hash(&mut fields);
        (ip_addresses, state, health, health_checked, version, labels).hash(&mut fields);
        ports.len().hash(&mut fields);
        for (name, binding) in ports {
            (name, binding.host, binding.container, &binding.protocol).hash(&mut fields);
        }
        let mut times = DefaultHasher::new();
        (staged_at, started_at).hash(&mut times);
        HeldRecord {
            fields: fields.finish(),
            times: times.finish(),
            times_set: u8::from(staged_at.is_some()) | (u8::from(started_at.is_some()) << 1),
        }
    }

    /// Whether `wanted` says what the record held says. A staged or started time, once
    /// written, stands: the one taken from the event that reported the change and the one a
    /// later read of Marathon gives may differ by a few milliseconds, and rewriting every
    /// record for that would double the writes of every task start. A time learnt that the
    /// record lacks, or a time the record has that is no longer known, is a change.
    pub fn says(&self, wanted: &TaskRecord) -> bool {
        let wanted = HeldRecord::of(wanted);
        self.fields == wanted.fields && self.times_set == wanted.times_set
    }
}

/// What the copy keeps of `/observed/`.
struct TaskRecords {
    layout: Layout,
}

impl Contents for TaskRecords {
    type Key = ObservedKey;
    type Value = Record;

    fn key(&self, etcd_key: &str) -> Option<Result<ObservedKey, KeyError>> {
        Some(Ok(match self.layout.parse(etcd_key)? {
            KeyPath::Task { key, task_id } => ObservedKey::Task { key, task_id },
            KeyPath::Status(key) => ObservedKey::Status(key),
            KeyPath::History { key, revision } => ObservedKey::List {
                key,
                list: ListKind::History,
                index: u64::try_from(revision).ok()?,
            },
            KeyPath::Journal { key, sequence } => ObservedKey::List {
                key,
                list: ListKind::Journal,
                index: sequence,
            },
            _ => return None,
        }))
    }

    fn value(&self, key: &ObservedKey, entry: &Entry) -> Record {
        if !matches!(key, ObservedKey::Task { .. }) {
            return None;
        }
        match entry.json::<TaskRecord>() {
            Ok(record) => Some(HeldRecord::of(&record)),
            Err(error) => {
                warn!(%error, "a task record does not decode; it will be rewritten");
                None
            }
        }
    }

    /// A task record is changed when its value is; every new revision of a status or list
    /// entry is handed on.
    fn same(&self, key: &ObservedKey, old: &Record, new: &Record) -> bool {
        matches!(key, ObservedKey::Task { .. }) && old == new
    }
}

/// A change of a deployment's status under `/observed/`, as the watch delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The deployment whose status changed.
    pub key: DeploymentKey,
    /// The new entry; `None` when the status was deleted.
    pub entry: Option<Entry>,
    /// The revision of the change.
    pub revision: Revision,
    /// Part of the first list (what the previous terms left), not a change made since.
    pub listed: bool,
}

/// Which list under a deployment's `/observed` prefix a [`ListChange`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ListKind {
    /// `history/<revision>`.
    History,
    /// `journal/<sequence>`.
    Journal,
}

/// A change of a history record or journal entry, as the watch delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListChange {
    /// The deployment.
    pub key: DeploymentKey,
    /// The list.
    pub list: ListKind,
    /// The revision (history) or sequence (journal) the key names.
    pub index: u64,
    /// The new entry; `None` when it was deleted.
    pub entry: Option<Entry>,
    /// The revision of the change.
    pub revision: Revision,
}

/// What one change of the copy means to its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeChange {
    /// The task records of this deployment, changed by someone else.
    Records(DeploymentKey),
    /// A status.
    Status(StatusChange),
    /// A history record or journal entry.
    List(ListChange),
}

/// What one watch event changed.
#[derive(Debug, PartialEq, Eq)]
enum TreeEffect {
    /// The task records of a deployment, changed by someone else.
    Records(DeploymentKey),
    /// A status.
    Status(StatusChange),
    /// A history record or journal entry.
    List(ListChange),
    /// Nothing the copy's users need to hear of.
    Nothing,
}

/// The copy; cheap to clone, clones share it. See the module documentation.
#[derive(Clone)]
pub struct ObservedTree {
    cache: Cache<TaskRecords>,
}

impl fmt::Debug for ObservedTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedTree")
            .field("synced", &self.cache.is_synced())
            .finish_non_exhaustive()
    }
}

impl ObservedTree {
    /// An empty copy of the task records of `layout`; fill it with [`ObservedTree::run`].
    pub fn new(layout: Layout) -> ObservedTree {
        ObservedTree {
            cache: Cache::new(TaskRecords { layout }),
        }
    }

    /// Applies `watch` (of the layout's `/observed/`) to the copy as the returned stream is
    /// read, which yields what each change means to the copy's users; watch errors are
    /// counted and logged, and the watch recovers by itself.
    pub fn changes(
        &self,
        watch: WatchStream,
        metrics: Arc<Metrics>,
    ) -> impl Stream<Item = TreeChange> + Send + 'static {
        let tree = self.clone();
        self.cache.follow(watch).filter_map(move |item| {
            futures::future::ready(match item {
                Ok(change) => match tree.applied(change) {
                    TreeEffect::Records(key) => Some(TreeChange::Records(key)),
                    TreeEffect::Status(change) => Some(TreeChange::Status(change)),
                    TreeEffect::List(change) => Some(TreeChange::List(change)),
                    TreeEffect::Nothing => None,
                },
                Err(error) => {
                    watch_interrupted("observed", &error, &metrics);
                    None
                }
            })
        })
    }

    /// What one change of the copy means.
    fn applied(&self, change: ChangeOf<TaskRecords>) -> TreeEffect {
        // The first list's changes are handed out before its `Synced`.
        let listed = !self.cache.is_synced();
        let (key, entry, revision) = match change {
            CacheChange::Put { key, entry, .. } => {
                let revision = entry.mod_revision;
                (key, Some(entry), revision)
            }
            CacheChange::Delete { key, revision, .. } => (key, None, revision),
            CacheChange::Synced { revision } => {
                debug!(revision, "the copy of /observed is synced");
                return TreeEffect::Nothing;
            }
            CacheChange::Invalid { .. } | CacheChange::InvalidGone { .. } => {
                return TreeEffect::Nothing;
            }
        };
        match key {
            ObservedKey::Task { key, .. } => TreeEffect::Records(key),
            ObservedKey::Status(key) => TreeEffect::Status(StatusChange {
                key,
                entry,
                revision,
                listed,
            }),
            ObservedKey::List { key, list, index } => TreeEffect::List(ListChange {
                key,
                list,
                index,
                entry,
                revision,
            }),
        }
    }

    /// Waits until the first complete list has been applied; `false` if the copy stopped
    /// being filled before that.
    pub async fn wait_synced(&self) -> bool {
        self.cache.wait_synced().await
    }

    /// The records of `key` by task id, as the copy holds them; `None` for one that does
    /// not decode.
    pub fn records(&self, key: &DeploymentKey) -> BTreeMap<String, Option<HeldRecord>> {
        let from = ObservedKey::Task {
            key: key.clone(),
            task_id: String::new(),
        };
        self.cache
            .read()
            .range(from..)
            .map_while(|(observed, record)| match observed {
                ObservedKey::Task { key: of, task_id } if of == key => {
                    Some((task_id.clone(), *record))
                }
                _ => None,
            })
            .collect()
    }

    /// Every deployment with at least one record.
    pub fn keys(&self) -> Vec<DeploymentKey> {
        let mut keys: Vec<DeploymentKey> = Vec::new();
        for (observed, _) in self.cache.read().iter() {
            let ObservedKey::Task { key, .. } = observed else {
                break;
            };
            if keys.last() != Some(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.cache
            .read()
            .iter()
            .take_while(|(observed, _)| matches!(observed, ObservedKey::Task { .. }))
            .count()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The controller wrote `record` for `task_id` of `key` at `revision`.
    pub fn written(
        &self,
        key: &DeploymentKey,
        task_id: &str,
        record: &TaskRecord,
        revision: Revision,
    ) {
        self.cache
            .written(task(key, task_id), Some(HeldRecord::of(record)), revision);
    }

    /// The controller deleted the record of `task_id` of `key` at `revision`.
    pub fn removed(&self, key: &DeploymentKey, task_id: &str, revision: Revision) {
        self.cache.removed(&task(key, task_id), revision);
    }
}

fn task(key: &DeploymentKey, task_id: &str) -> ObservedKey {
    ObservedKey::Task {
        key: key.clone(),
        task_id: task_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use theseus::api::Health;
    use theseus::marathon::task::TaskState;

    use theseus::store::WatchEvent;

    use super::*;

    impl ObservedTree {
        fn layout(&self) -> &Layout {
            &self.cache.contents().layout
        }

        fn apply(&self, event: WatchEvent) -> TreeEffect {
            self.cache
                .apply(event)
                .map_or(TreeEffect::Nothing, |change| self.applied(change))
        }
    }

    fn key() -> DeploymentKey {
        "web/dev".parse().unwrap()
    }

    fn record(host: &str) -> TaskRecord {
        TaskRecord {
            service: "web".into(),
            deployment: "dev".into(),
            task_id: "t1".into(),
            app_id: "/web/dev".into(),
            host: host.into(),
            agent_id: None,
            ip_addresses: vec![],
            ports: BTreeMap::new(),
            state: TaskState::Running,
            health: Health::Unknown,
            health_checked: false,
            staged_at: None,
            started_at: None,
            version: None,
            labels: vec![],
        }
    }

    fn put_event(tree: &ObservedTree, task: &str, value: &[u8], revision: Revision) -> WatchEvent {
        WatchEvent::Put {
            entry: Entry {
                key: tree.layout().task(&key(), task),
                value: value.to_vec(),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: 0,
            },
            prev: None,
        }
    }

    fn delete_event(tree: &ObservedTree, task: &str, revision: Revision) -> WatchEvent {
        WatchEvent::Delete {
            key: tree.layout().task(&key(), task),
            revision,
            prev: None,
        }
    }

    fn json(record: &TaskRecord) -> Vec<u8> {
        serde_json::to_vec(record).unwrap()
    }

    #[test]
    fn the_echo_of_an_older_write_does_not_turn_a_newer_one_back() {
        let tree = ObservedTree::new(Layout::default());
        tree.apply(WatchEvent::Synced { revision: 1 });
        tree.written(&key(), "t1", &record("a"), 5);
        tree.written(&key(), "t1", &record("b"), 6);
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("a")), 5)),
            TreeEffect::Nothing
        );
        assert_eq!(
            tree.records(&key())["t1"],
            Some(HeldRecord::of(&record("b")))
        );
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("b")), 6)),
            TreeEffect::Nothing,
            "its own echo is no change"
        );

        tree.removed(&key(), "t1", 7);
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("b")), 6)),
            TreeEffect::Nothing
        );
        assert!(
            tree.records(&key()).is_empty(),
            "a deleted record came back"
        );
        assert_eq!(
            tree.apply(delete_event(&tree, "t1", 7)),
            TreeEffect::Nothing
        );
        assert!(tree.keys().is_empty());
    }

    #[test]
    fn changes_made_by_someone_else_name_their_deployment() {
        let tree = ObservedTree::new(Layout::default());
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("a")), 2)),
            TreeEffect::Records(key())
        );
        tree.apply(WatchEvent::Synced { revision: 2 });
        assert_eq!(
            tree.apply(put_event(&tree, "t1", b"{not json", 3)),
            TreeEffect::Records(key())
        );
        assert_eq!(tree.records(&key())["t1"], None, "present, unreadable");
        assert_eq!(
            tree.apply(delete_event(&tree, "t1", 4)),
            TreeEffect::Records(key())
        );
        assert_eq!(
            tree.apply(delete_event(&tree, "t1", 4)),
            TreeEffect::Nothing
        );
        assert!(tree.is_empty());
    }

    #[test]
    fn every_status_change_is_handed_out_with_whether_it_was_listed() {
        let tree = ObservedTree::new(Layout::default());
        let status = Entry {
            key: tree.layout().status(&key()),
            value: b"{}".to_vec(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            lease: 0,
        };
        assert_eq!(
            tree.apply(WatchEvent::Put {
                entry: status.clone(),
                prev: None,
            }),
            TreeEffect::Status(StatusChange {
                key: key(),
                entry: Some(status.clone()),
                revision: 2,
                listed: true,
            })
        );
        tree.apply(WatchEvent::Synced { revision: 2 });
        let later = Entry {
            mod_revision: 3,
            ..status.clone()
        };
        assert_eq!(
            tree.apply(WatchEvent::Put {
                entry: later.clone(),
                prev: None,
            }),
            TreeEffect::Status(StatusChange {
                key: key(),
                entry: Some(later),
                revision: 3,
                listed: false,
            })
        );
        assert_eq!(
            tree.apply(WatchEvent::Delete {
                key: status.key,
                revision: 4,
                prev: None,
            }),
            TreeEffect::Status(StatusChange {
                key: key(),
                entry: None,
                revision: 4,
                listed: false,
            })
        );
        assert!(tree.is_empty(), "statuses are not task records");
    }

    #[test]
    fn history_and_journal_entries_are_handed_on_never_taken_for_task_records() {
        let tree = ObservedTree::new(Layout::default());
        tree.apply(WatchEvent::Synced { revision: 1 });
        let entry = |key: String, revision| Entry {
            key,
            value: b"{}".to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        };
        let record = entry(tree.layout().history_record(&key(), 7), 8);
        assert_eq!(
            tree.apply(WatchEvent::Put {
                entry: record.clone(),
                prev: None,
            }),
            TreeEffect::List(ListChange {
                key: key(),
                list: ListKind::History,
                index: 7,
                entry: Some(record),
                revision: 8,
            })
        );
        // A delete is delivered only for a key that was delivered before it.
        tree.apply(WatchEvent::Put {
            entry: entry(tree.layout().journal_entry(&key(), 3), 8),
            prev: None,
        });
        assert_eq!(
            tree.apply(WatchEvent::Delete {
                key: tree.layout().journal_entry(&key(), 3),
                revision: 9,
                prev: None,
            }),
            TreeEffect::List(ListChange {
                key: key(),
                list: ListKind::Journal,
                index: 3,
                entry: None,
                revision: 9,
            })
        );
        assert!(tree.is_empty());
    }
}
