//! The bounded lists the controller keeps under a deployment's own `/observed` prefix, the
//! revision history (`history/<revision>`) and the decision journal (`journal/<sequence>`):
//! what etcd holds, and the only way the controller writes them.
//!
//! What it promises:
//! - [`KeptList::observe`] is fed every change of the list the watch of `/observed/`
//!   delivers, from its first list on, so the copy is what etcd holds. Changes are ordered by
//!   revision: the echo of an older write never turns a newer one back, and an entry this
//!   replica deleted does not come back from the late echo of its put.
//! - [`KeptList::write`] puts entries and deletes the oldest beyond the bound in one fenced
//!   transaction; the copy has them as soon as etcd accepted it. Writing what the copy already
//!   holds writes nothing.
//! - An entry that does not decode is not returned, but counts against the bound (it goes
//!   first, being among the oldest or not).
//! - The history's copy holds its records, which the reconciler reads back (a revision's
//!   record, a rollback's target). The journal's copy holds only which entries exist: no
//!   decision reads the journal back, its entries are only ever added under new sequence
//!   numbers, and at thousands of deployments their messages would be a large part of the
//!   controller's memory. [`KeptList::get`] of the journal returns nothing;
//!   [`KeptList::indexes`] gives what it holds.
//!
//! What it does not do: repair entries somebody else wrote. These lists inform people and
//! `theseus rollout undo`; the one decision taken from them, a rollback, only ever goes to a
//! revision recorded as having reached `Running`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use theseus::api::DeploymentKey;
use theseus::store::{Layout, Revision, Txn};
use tracing::warn;

use crate::observed::tree::{ListChange, ListKind};
use crate::runtime::fence::{FenceError, FencedStore, MAX_TXN_OPERATIONS};
use crate::small_map::SmallMap;

/// The most value bytes one transaction puts (etcd's request limit is 1.5 MiB).
pub(crate) const TXN_BYTES: usize = 1024 * 1024;

/// What etcd holds at one index.
#[derive(Debug, Clone)]
enum Held<T> {
    /// Shared: a reconcile reads the values without copying them.
    Value(Arc<T>),
    /// A readable entry whose value this kind of list does not keep (the journal's).
    Present,
    Unreadable,
    /// Deleted at the slot's revision; kept until the watch has passed it.
    Deleted,
}

#[derive(Debug, Clone)]
struct Slot<T> {
    held: Held<T>,
    revision: Revision,
}

/// One transaction of a write, and what it puts.
#[derive(Debug)]
struct ListTxn<T> {
    txn: Txn,
    bytes: usize,
    written: Vec<(u64, T)>,
}

impl<T> Default for ListTxn<T> {
    fn default() -> Self {
        Self {
            txn: Txn::new(),
            bytes: 0,
            written: Vec::new(),
        }
    }
}

/// A write of one deployment's list, staged by [`KeptList::stage`].
#[derive(Debug)]
pub struct StagedList<T> {
    key: DeploymentKey,
    batches: Vec<ListTxn<T>>,
    deletes: Vec<u64>,
}

/// One transaction of a staged write, and what the copy learns once etcd accepts it
/// ([`KeptList::settle`]).
#[derive(Debug)]
pub struct StagedTxn<T> {
    /// The puts and deletes.
    pub txn: Txn,
    /// The value bytes it puts.
    pub bytes: usize,
    key: DeploymentKey,
    written: Vec<(u64, T)>,
    deletes: Vec<u64>,
}

impl<T> StagedList<T> {
    /// The write's transactions, to be applied in order (one unless its values are too
    /// large for one request).
    pub fn into_txns(self) -> Vec<StagedTxn<T>> {
        let count = self.batches.len();
        let mut deletes = Some(self.deletes);
        self.batches
            .into_iter()
            .enumerate()
            .map(|(position, batch)| StagedTxn {
                txn: batch.txn,
                bytes: batch.bytes,
                key: self.key.clone(),
                written: batch.written,
                deletes: if position + 1 == count {
                    deletes.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
            .collect()
    }
}

/// One kind of list of every deployment; see the module documentation.
#[derive(Debug)]
pub struct KeptList<T> {
    fenced: FencedStore,
    layout: Layout,
    kind: ListKind,
    copy: Mutex<HashMap<DeploymentKey, SmallMap<u64, Slot<T>>>>,
}

impl<T: Clone + PartialEq + Serialize + DeserializeOwned> KeptList<T> {
    /// An empty copy of the `kind` lists; fill it with [`KeptList::observe`].
    pub fn new(fenced: FencedStore, kind: ListKind) -> Self {
        let layout = fenced.store().layout().clone();
        Self {
            fenced,
            layout,
            kind,
            copy: Mutex::default(),
        }
    }

    fn copy(&self) -> MutexGuard<'_, HashMap<DeploymentKey, SmallMap<u64, Slot<T>>>> {
        self.copy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of entry `index` of `key`'s list.
    fn entry_key(&self, key: &DeploymentKey, index: u64) -> String {
        match self.kind {
            ListKind::History => self
                .layout
                .history_record(key, Revision::try_from(index).unwrap_or(Revision::MAX)),
            ListKind::Journal => self.layout.journal_entry(key, index),
        }
    }

    /// The prefix of `key`'s list.
    pub fn prefix(&self, key: &DeploymentKey) -> String {
        match self.kind {
            ListKind::History => self.layout.history(key),
            ListKind::Journal => self.layout.journal(key),
        }
    }

    /// What the copy holds of a readable entry `value`: the value itself, or only that it
    /// is there (see the module documentation).
    fn held(&self, value: T) -> Held<T> {
        match self.kind {
            ListKind::History => Held::Value(Arc::new(value)),
            ListKind::Journal => Held::Present,
        }
    }

    /// Applies one change the watch delivered (of this kind of list).
    pub fn observe(&self, change: ListChange) {
        debug_assert_eq!(change.list, self.kind);
        // The echo of a write this replica has settled changes nothing: it is not decoded
        // again. Anything else is decoded before the copy is locked again.
        let settled = self
            .copy()
            .get(&change.key)
            .and_then(|list| list.get(&change.index))
            .is_some_and(|slot| slot.revision >= change.revision);
        let held = (!settled).then(|| match &change.entry {
            Some(entry) => match entry.json::<T>() {
                Ok(value) => self.held(value),
                Err(error) => {
                    warn!(key = %change.key, %error, "an entry under /observed does not decode");
                    Held::Unreadable
                }
            },
            None => Held::Deleted,
        });
        let mut copy = self.copy();
        let list = copy.entry(change.key.clone()).or_default();
        // The watch delivers in revision order: deletions it has passed are settled.
        list.retain(|_, slot| {
            !matches!(slot.held, Held::Deleted) || slot.revision >= change.revision
        });
        match (list.get(&change.index), held) {
            (Some(slot), _) if slot.revision >= change.revision => {}
            (_, Some(held)) => {
                list.insert(
                    change.index,
                    Slot {
                        held,
                        revision: change.revision,
                    },
                );
            }
            // Settled, then the list went (the deployment's removal): the echo brings
            // nothing back.
            (_, None) => {}
        }
        if list.is_empty() {
            copy.remove(&change.key);
        }
    }

    /// The readable entries of `key`, by index.
    pub fn get(&self, key: &DeploymentKey) -> BTreeMap<u64, Arc<T>> {
        self.copy()
            .get(key)
            .map(|list| {
                list.iter()
                    .filter_map(|(index, slot)| match &slot.held {
                        Held::Value(value) => Some((*index, Arc::clone(value))),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The indexes of `key`'s entries, readable or not, in order.
    pub fn indexes(&self, key: &DeploymentKey) -> Vec<u64> {
        self.copy()
            .get(key)
            .map(|list| {
                list.iter()
                    .filter(|(_, slot)| !matches!(slot.held, Held::Deleted))
                    .map(|(index, _)| *index)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The highest index `key`'s list holds (0 when empty).
    pub fn last_index(&self, key: &DeploymentKey) -> u64 {
        self.copy()
            .get(key)
            .and_then(|list| {
                list.iter()
                    .rev()
                    .find(|(_, slot)| !matches!(slot.held, Held::Deleted))
                    .map(|(index, _)| *index)
            })
            .unwrap_or(0)
    }

    /// Every deployment with an entry.
    pub fn keys(&self) -> Vec<DeploymentKey> {
        self.copy()
            .iter()
            .filter(|(_, list)| {
                list.values()
                    .any(|slot| !matches!(slot.held, Held::Deleted))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Puts `puts` into `key`'s list and deletes its oldest entries beyond `keep`, in one
    /// fenced transaction; whether anything was written.
    pub async fn write(
        &self,
        key: &DeploymentKey,
        puts: Vec<(u64, T)>,
        keep: usize,
    ) -> Result<bool, FenceError> {
        let Some(staged) = self.stage(key, puts, keep)? else {
            return Ok(false);
        };
        for part in staged.into_txns() {
            let revision = self.fenced.txn(&self.prefix(key), part.txn.clone()).await?;
            self.settle(part, revision);
        }
        Ok(true)
    }

    /// What [`KeptList::write`] would write, not written yet: `None` when the copy already
    /// holds it. Apply its transactions ([`StagedList::into_txns`]) in order, each followed
    /// by [`KeptList::settle`].
    pub fn stage(
        &self,
        key: &DeploymentKey,
        puts: Vec<(u64, T)>,
        keep: usize,
    ) -> Result<Option<StagedList<T>>, FenceError> {
        let (puts, deletes) = {
            let copy = self.copy();
            let list = copy.get(key);
            let puts: Vec<(u64, T)> = puts
                .into_iter()
                .filter(|(index, value)| {
                    !list.and_then(|list| list.get(index)).is_some_and(
                        |slot| matches!(&slot.held, Held::Value(held) if **held == *value),
                    )
                })
                .collect();
            let mut live: Vec<(u64, bool)> = list
                .map(|list| {
                    list.iter()
                        .filter(|(_, slot)| !matches!(slot.held, Held::Deleted))
                        .map(|(index, slot)| (*index, matches!(slot.held, Held::Unreadable)))
                        .collect()
                })
                .unwrap_or_default();
            for (index, _) in &puts {
                if !live.iter().any(|(live, _)| live == index) {
                    live.push((*index, false));
                }
            }
            // Unreadable entries first, then the oldest.
            live.sort_by_key(|(index, unreadable)| (!unreadable, *index));
            let excess = live.len().saturating_sub(keep);
            let room = MAX_TXN_OPERATIONS.saturating_sub(puts.len());
            let deletes: Vec<u64> = live
                .into_iter()
                .take(excess.min(room))
                .map(|(index, _)| index)
                .collect();
            (puts, deletes)
        };
        let puts: Vec<(u64, T)> = puts
            .into_iter()
            .filter(|(index, _)| !deletes.contains(index))
            .collect();
        if puts.is_empty() && deletes.is_empty() {
            return Ok(None);
        }
        // etcd refuses a request over 1.5 MiB: puts go in as few transactions as keep each
        // under a budget, the deletions with the last.
        let mut batches: Vec<ListTxn<T>> = vec![ListTxn::default()];
        for (index, value) in puts {
            let entry_key = self.entry_key(key, index);
            let bytes = serde_json::to_vec(&value).map_err(|error| FenceError::Encode {
                key: entry_key.clone(),
                reason: error.to_string(),
            })?;
            let last = batches.last_mut().expect("one batch at least");
            if last.bytes > 0 && last.bytes + bytes.len() > TXN_BYTES {
                batches.push(ListTxn::default());
            }
            let last = batches.last_mut().expect("one batch at least");
            last.bytes += bytes.len();
            last.txn = std::mem::take(&mut last.txn).put(&entry_key, bytes);
            last.written.push((index, value));
        }
        let last = batches.last_mut().expect("one batch at least");
        for index in &deletes {
            last.txn = std::mem::take(&mut last.txn).delete(&self.entry_key(key, *index));
        }
        Ok(Some(StagedList {
            key: key.clone(),
            batches,
            deletes,
        }))
    }

    /// Gives the copy what `part` put and deleted, once etcd accepted it at `revision`.
    pub fn settle(&self, part: StagedTxn<T>, revision: Revision) {
        let written: Vec<(u64, Held<T>)> = part
            .written
            .into_iter()
            .map(|(index, value)| (index, self.held(value)))
            .collect();
        let mut copy = self.copy();
        let list = copy.entry(part.key).or_default();
        for (index, held) in written {
            list.insert(index, Slot { held, revision });
        }
        for index in part.deletes {
            list.insert(
                index,
                Slot {
                    held: Held::Deleted,
                    revision,
                },
            );
        }
    }

    /// Deletes `key`'s whole list, if it has any entry; whether it deleted one.
    pub async fn remove(&self, key: &DeploymentKey) -> Result<bool, FenceError> {
        let held = self.copy().get(key).is_some_and(|list| {
            list.values()
                .any(|slot| !matches!(slot.held, Held::Deleted))
        });
        if !held {
            return Ok(false);
        }
        let revision = self.fenced.delete_prefix(&self.prefix(key)).await?;
        if let Some(list) = self.copy().get_mut(key) {
            for slot in list.values_mut() {
                *slot = Slot {
                    held: Held::Deleted,
                    revision,
                };
            }
        }
        Ok(true)
    }
}
