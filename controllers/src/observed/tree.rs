//! The controller's copy of the task records under `<p>/observed/`: one resumable watch
//! keeps it current, and the controller's own writes enter it as soon as etcd accepts them.
//!
//! What it promises:
//! - After [`ObservedTree::wait_synced`], the copy holds the task records etcd held at some
//!   revision R, every later change the watch has delivered, and every write the controller
//!   reported ([`ObservedTree::written`], [`ObservedTree::removed`]). Changes are ordered by
//!   etcd revision: the watch's echo of an older write never turns a newer one back, so a
//!   reconcile right after a write compares with what it wrote.
//! - A record that does not decode counts as present and unreadable: it differs from every
//!   record the controller would write, so it is replaced.
//! - A change the controller did not make (someone deleted or edited a record by hand) calls
//!   `on_change` with the deployment's key, after the copy is updated.
//! - Every change of a status (`/observed/<service>/<name>/status`), from the first list on,
//!   is handed to `on_status` as a [`StatusChange`], so the statuses and the task records load
//!   from one list of `/observed/` and whoever keeps the statuses sees every later write to
//!   them, the controller's own and anyone else's. The copy keeps no statuses itself.
//! - Likewise every change of a history record or journal entry
//!   (`/observed/<service>/<name>/(history|journal)/...`) is handed to `on_list` as a
//!   [`ListChange`]: those keys are never taken for task records, nor for garbage.
//!
//! Compactions, broken streams and etcd restarts are the watch's business
//! ([`theseus::store::WatchStream`]): it relists and delivers the difference.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use theseus::api::{DeploymentKey, TaskRecord};
use theseus::store::{Entry, KeyPath, Layout, Revision, WatchEvent, WatchStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::runtime::metrics::Metrics;

/// A task record as the copy knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    /// `None`: the value does not decode. Boxed: a deployment's map of one record keeps a
    /// B-tree leaf's room for eleven, which would hold eleven records inline.
    record: Option<Box<TaskRecord>>,
    /// The revision of the write that made it.
    revision: Revision,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// What one watch event changed.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// The task records of a deployment, changed by someone else.
    Records(DeploymentKey),
    /// A status.
    Status(StatusChange),
    /// A history record or journal entry.
    List(ListChange),
    /// Nothing the copy's users need to hear of.
    Nothing,
}

#[derive(Debug, Default)]
struct TreeState {
    /// Records by deployment, then by task id.
    records: HashMap<DeploymentKey, BTreeMap<String, Known>>,
    /// The controller's deletions the watch has not delivered yet, with their revisions.
    removed: HashMap<(DeploymentKey, String), Revision>,
    synced: bool,
}

/// The copy; cheap to clone, clones share it. See the module documentation.
#[derive(Clone)]
pub struct ObservedTree {
    layout: Layout,
    state: Arc<Mutex<TreeState>>,
    synced: watch::Sender<bool>,
}

impl fmt::Debug for ObservedTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedTree")
            .field("synced", &*self.synced.borrow())
            .finish_non_exhaustive()
    }
}

impl ObservedTree {
    /// An empty copy of the task records of `layout`; fill it with [`ObservedTree::run`].
    pub fn new(layout: Layout) -> ObservedTree {
        ObservedTree {
            layout,
            state: Arc::default(),
            synced: watch::Sender::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, TreeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `watch` (of the layout's `/observed/`) until `stop`, calling `on_change` with
    /// the deployment of every record someone else changed and `on_status` with every change
    /// of a status.
    pub async fn run(
        &self,
        mut watch: WatchStream,
        metrics: Arc<Metrics>,
        on_change: impl Fn(&DeploymentKey),
        on_status: impl Fn(StatusChange),
        on_list: impl Fn(ListChange),
        stop: CancellationToken,
    ) {
        loop {
            let item = tokio::select! {
                () = stop.cancelled() => return,
                item = watch.next() => item,
            };
            match item {
                Some(Ok(event)) => match self.apply(event) {
                    Applied::Records(key) => on_change(&key),
                    Applied::Status(change) => on_status(change),
                    Applied::List(change) => on_list(change),
                    Applied::Nothing => {}
                },
                Some(Err(error)) => {
                    // The watch recovers by itself (resume or relist); count and report.
                    metrics.etcd_request("watch", error.metric_label(), Duration::ZERO);
                    warn!(%error, "the watch of /observed was interrupted; recovering");
                }
                None => return,
            }
        }
    }

    /// Applies one watch event; what it changed.
    fn apply(&self, event: WatchEvent) -> Applied {
        let mut state = self.state();
        let records = match event {
            WatchEvent::Put { entry, .. } => {
                prune_removed(&mut state, entry.mod_revision);
                match self.layout.parse(&entry.key) {
                    Some(KeyPath::Task { key, task_id }) => {
                        let revision = entry.mod_revision;
                        let record = match entry.json::<TaskRecord>() {
                            Ok(record) => Some(Box::new(record)),
                            Err(error) => {
                                warn!(%error, "a task record does not decode; it will be rewritten");
                                None
                            }
                        };
                        put(&mut state, key, task_id, Known { record, revision })
                    }
                    Some(KeyPath::Status(key)) => {
                        return Applied::Status(StatusChange {
                            key,
                            revision: entry.mod_revision,
                            listed: !state.synced,
                            entry: Some(entry),
                        });
                    }
                    Some(path) => match list_of(path) {
                        Some((key, list, index)) => {
                            return Applied::List(ListChange {
                                key,
                                list,
                                index,
                                revision: entry.mod_revision,
                                entry: Some(entry),
                            });
                        }
                        None => None,
                    },
                    None => None,
                }
            }
            WatchEvent::Delete { key, revision, .. } => {
                prune_removed(&mut state, revision);
                match self.layout.parse(&key) {
                    Some(KeyPath::Task { key, task_id }) => {
                        delete(&mut state, key, task_id, revision)
                    }
                    Some(KeyPath::Status(key)) => {
                        return Applied::Status(StatusChange {
                            key,
                            revision,
                            listed: !state.synced,
                            entry: None,
                        });
                    }
                    Some(path) => match list_of(path) {
                        Some((key, list, index)) => {
                            return Applied::List(ListChange {
                                key,
                                list,
                                index,
                                revision,
                                entry: None,
                            });
                        }
                        None => None,
                    },
                    None => None,
                }
            }
            WatchEvent::Synced { revision } => {
                debug!(revision, "the copy of /observed is synced");
                // The copy is etcd's at `revision`: deletions up to it are settled.
                state.removed.retain(|_, removed| *removed > revision);
                state.synced = true;
                drop(state);
                self.synced.send_replace(true);
                None
            }
        };
        records.map_or(Applied::Nothing, Applied::Records)
    }

    /// Waits until the first complete list has been applied; `false` if the copy stopped
    /// being filled before that.
    pub async fn wait_synced(&self) -> bool {
        let mut synced = self.synced.subscribe();
        synced.wait_for(|synced| *synced).await.is_ok()
    }

    /// The records of `key` by task id; `None` for one that does not decode.
    pub fn records(&self, key: &DeploymentKey) -> BTreeMap<String, Option<TaskRecord>> {
        self.state()
            .records
            .get(key)
            .map(|tasks| {
                tasks
                    .iter()
                    .map(|(id, known)| (id.clone(), known.record.as_deref().cloned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every deployment with at least one record.
    pub fn keys(&self) -> Vec<DeploymentKey> {
        self.state().records.keys().cloned().collect()
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.state().records.values().map(BTreeMap::len).sum()
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
        record: TaskRecord,
        revision: Revision,
    ) {
        let known = Known {
            record: Some(Box::new(record)),
            revision,
        };
        put(&mut self.state(), key.clone(), task_id.to_owned(), known);
    }

    /// The controller deleted the record of `task_id` of `key` at `revision`.
    pub fn removed(&self, key: &DeploymentKey, task_id: &str, revision: Revision) {
        let mut state = self.state();
        delete(&mut state, key.clone(), task_id.to_owned(), revision);
        state
            .removed
            .insert((key.clone(), task_id.to_owned()), revision);
    }
}

/// The deployment, list and index of a history or journal key.
fn list_of(path: KeyPath) -> Option<(DeploymentKey, ListKind, u64)> {
    match path {
        KeyPath::History { key, revision } => {
            Some((key, ListKind::History, u64::try_from(revision).ok()?))
        }
        KeyPath::Journal { key, sequence } => Some((key, ListKind::Journal, sequence)),
        _ => None,
    }
}

/// Puts `known` unless a write at its revision or later is known; the key if the record
/// changed.
fn put(
    state: &mut TreeState,
    key: DeploymentKey,
    task_id: String,
    known: Known,
) -> Option<DeploymentKey> {
    let id = (key, task_id);
    if let Some(&removed) = state.removed.get(&id) {
        if removed >= known.revision {
            return None;
        }
        state.removed.remove(&id);
    }
    let (key, task_id) = id;
    let tasks = state.records.entry(key.clone()).or_default();
    match tasks.get(&task_id) {
        Some(old) if old.revision >= known.revision => None,
        old => {
            let changed = old.is_none_or(|old| old.record != known.record);
            tasks.insert(task_id, known);
            changed.then_some(key)
        }
    }
}

/// Deletes the record unless it was written after `revision`; the key if it was there.
fn delete(
    state: &mut TreeState,
    key: DeploymentKey,
    task_id: String,
    revision: Revision,
) -> Option<DeploymentKey> {
    let tasks = state.records.get_mut(&key)?;
    if tasks.get(&task_id)?.revision > revision {
        return None;
    }
    tasks.remove(&task_id);
    if tasks.is_empty() {
        state.records.remove(&key);
    }
    Some(key)
}

/// Forgets the controller's deletions the watch has passed: it delivers changes in revision
/// order, so one at `revision` means every change before it was delivered.
fn prune_removed(state: &mut TreeState, revision: Revision) {
    if !state.removed.is_empty() {
        state.removed.retain(|_, removed| *removed >= revision);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use theseus::api::Health;
    use theseus::marathon::task::TaskState;

    use super::*;

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
                key: tree.layout.task(&key(), task),
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
            key: tree.layout.task(&key(), task),
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
        tree.written(&key(), "t1", record("a"), 5);
        tree.written(&key(), "t1", record("b"), 6);
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("a")), 5)),
            Applied::Nothing
        );
        assert_eq!(tree.records(&key())["t1"], Some(record("b")));
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("b")), 6)),
            Applied::Nothing,
            "its own echo is no change"
        );

        tree.removed(&key(), "t1", 7);
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("b")), 6)),
            Applied::Nothing
        );
        assert!(
            tree.records(&key()).is_empty(),
            "a deleted record came back"
        );
        assert_eq!(tree.apply(delete_event(&tree, "t1", 7)), Applied::Nothing);
        assert!(tree.keys().is_empty());
    }

    #[test]
    fn changes_made_by_someone_else_name_their_deployment() {
        let tree = ObservedTree::new(Layout::default());
        assert_eq!(
            tree.apply(put_event(&tree, "t1", &json(&record("a")), 2)),
            Applied::Records(key())
        );
        tree.apply(WatchEvent::Synced { revision: 2 });
        assert_eq!(
            tree.apply(put_event(&tree, "t1", b"{not json", 3)),
            Applied::Records(key())
        );
        assert_eq!(tree.records(&key())["t1"], None, "present, unreadable");
        assert_eq!(
            tree.apply(delete_event(&tree, "t1", 4)),
            Applied::Records(key())
        );
        assert_eq!(tree.apply(delete_event(&tree, "t1", 4)), Applied::Nothing);
        assert!(tree.is_empty());
    }

    #[test]
    fn every_status_change_is_handed_out_with_whether_it_was_listed() {
        let tree = ObservedTree::new(Layout::default());
        let status = Entry {
            key: tree.layout.status(&key()),
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
            Applied::Status(StatusChange {
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
            Applied::Status(StatusChange {
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
            Applied::Status(StatusChange {
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
        let record = entry(tree.layout.history_record(&key(), 7), 8);
        assert_eq!(
            tree.apply(WatchEvent::Put {
                entry: record.clone(),
                prev: None,
            }),
            Applied::List(ListChange {
                key: key(),
                list: ListKind::History,
                index: 7,
                entry: Some(record),
                revision: 8,
            })
        );
        assert_eq!(
            tree.apply(WatchEvent::Delete {
                key: tree.layout.journal_entry(&key(), 3),
                revision: 9,
                prev: None,
            }),
            Applied::List(ListChange {
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
