//! A local copy of an etcd prefix kept current by the store's watch: the one cache the
//! controller's reflectors, its copy of `/observed` and the guest side are built on
//! (kube-runtime's reflector store).
//!
//! What it promises:
//! - A [`Cache`] holds, under the key its [`Contents`] reads from each etcd key, what the
//!   contents keep of every entry the watch has delivered: once the first list is handed out
//!   ([`Cache::wait_synced`]), what etcd held at some revision R, every later change the watch
//!   has delivered, and every write its owner recorded ([`Cache::written`],
//!   [`Cache::removed`]).
//! - Changes apply in revision order: a put or a delete older than what the cache holds for
//!   the key (the echo of a write the owner recorded, a relist racing a newer write) changes
//!   nothing, and a key the owner removed never comes back with an older value.
//! - [`Cache::follow`] turns a [`WatchStream`] into the cache's [`Changes`]: every difference
//!   the watch brings, handed out after the cache holds it. A put of a new revision is a
//!   change unless the contents call the old and new values the
//!   [`same`](Contents::same); a delete is a change if the key was held; a key under the
//!   prefix that names nothing is reported once, and again when it goes; `Synced` follows
//!   every list, and a relist after a compaction hands out only the difference to what the
//!   cache held.
//! - Every value is held once: the watch remembers what it delivered in the cache's map, not
//!   in a map of its own. Keys the contents ignore are not held at all.
//!
//! What it does not: say what a change means (its owner does), or keep more than one watch's
//! worth of state (follow one watch per cache).
//!
//! States: `Listing` (before the first list is handed out) → `Synced { revision }`, updated
//! at each later list; `Listing` → `Stopped` when the watch goes away before its first list.

use std::collections::{BTreeMap, BTreeSet, VecDeque, btree_map};
use std::fmt;
use std::ops::RangeBounds;
use std::pin::Pin;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::watch::{PrefixWatch, WatchEvent, WatchStream};
use super::{Entry, Error, Listing, Revision, Store};
use crate::api::KeyError;

/// What a cache keeps: how an etcd key names one of its keys, and what it keeps of a value.
pub trait Contents: Send + Sync + 'static {
    /// The key entries are held under.
    type Key: Ord + Clone + Send + Sync + 'static;
    /// What is held of an entry.
    type Value: Send + Sync + 'static;

    /// The key `etcd_key` names: `None` for a key the cache ignores, an error for a key that
    /// should name one and does not (it is reported, not held).
    fn key(&self, etcd_key: &str) -> Option<Result<Self::Key, KeyError>>;

    /// What to hold of `entry`, stored under `key`.
    fn value(&self, key: &Self::Key, entry: &Entry) -> Self::Value;

    /// Whether replacing `old` by `new` under `key` changes nothing the owner cares about, so
    /// no [`CacheChange`] is handed out. By default every new revision is a change.
    fn same(&self, key: &Self::Key, old: &Self::Value, new: &Self::Value) -> bool {
        let _ = (key, old, new);
        false
    }
}

/// One change of a cache, handed out after the cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChange<K, V> {
    /// A key was created or changed.
    Put {
        /// The key.
        key: K,
        /// The entry as etcd delivered it.
        entry: Entry,
        /// What the cache held before, if anything.
        old: Option<V>,
    },
    /// A held key was deleted.
    Delete {
        /// The key.
        key: K,
        /// The revision of the deletion (of the relist, after a compaction).
        revision: Revision,
        /// What the cache held.
        old: V,
    },
    /// An etcd key under the prefix names no key; reported the first time it is seen.
    Invalid {
        /// The etcd key.
        key: String,
        /// Why it names nothing.
        error: KeyError,
    },
    /// An etcd key reported [`Invalid`](CacheChange::Invalid) was deleted.
    InvalidGone {
        /// The etcd key.
        key: String,
    },
    /// After the initial list and after every relist: the cache equals etcd at `revision`.
    Synced {
        /// The revision of the list.
        revision: Revision,
    },
}

/// The changes of a cache with contents `C`.
pub type ChangeOf<C> = CacheChange<<C as Contents>::Key, <C as Contents>::Value>;

/// Where a cache stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Waiting for the first complete list.
    Listing,
    /// The cache equals etcd's state at `revision` plus later changes.
    Synced {
        /// The revision of the last list.
        revision: Revision,
    },
    /// The watch went away before the first list was handed out.
    Stopped,
}

/// A held value with the revision of the write that made it.
struct HeldValue<V> {
    revision: Revision,
    value: V,
}

/// What a cache holds, behind its lock.
struct Holdings<K, V> {
    held: BTreeMap<K, HeldValue<V>>,
    /// Etcd keys that name no key, with why.
    invalid: BTreeMap<String, KeyError>,
    /// The owner's deletions the watch has not delivered yet, with their revisions.
    removed: BTreeMap<K, Revision>,
    /// The newest revision applied, of any key under the prefix.
    revision: Revision,
}

struct Shared<C: Contents> {
    contents: C,
    state: RwLock<Holdings<C::Key, C::Value>>,
    sync: watch::Sender<CacheState>,
}

/// The cache: cheap to clone, clones share it. See the module documentation.
pub struct Cache<C: Contents> {
    shared: Arc<Shared<C>>,
}

impl<C: Contents> Clone for Cache<C> {
    fn clone(&self) -> Self {
        Cache {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: Contents> fmt::Debug for Cache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("state", &self.state())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// A read of a cache: the held values as of one moment. Hold it briefly; the watch waits.
pub struct CacheRead<'a, K, V> {
    state: RwLockReadGuard<'a, Holdings<K, V>>,
}

impl<K: Ord, V> CacheRead<'_, K, V> {
    /// The value held under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.state.held.get(key).map(|slot| &slot.value)
    }

    /// Every held key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.state.held.iter().map(|(key, slot)| (key, &slot.value))
    }

    /// The held keys and values in `range`, in key order.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> impl Iterator<Item = (&K, &V)> {
        self.state
            .held
            .range(range)
            .map(|(key, slot)| (key, &slot.value))
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.state.held.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.state.held.is_empty()
    }

    /// The newest revision applied.
    pub fn revision(&self) -> Revision {
        self.state.revision
    }
}

impl<C: Contents> Cache<C> {
    /// An empty cache of `contents`; fill it with [`Cache::follow`] or
    /// [`Cache::apply_listing`].
    pub fn new(contents: C) -> Cache<C> {
        Cache {
            shared: Arc::new(Shared {
                contents,
                state: RwLock::new(Holdings {
                    held: BTreeMap::new(),
                    invalid: BTreeMap::new(),
                    removed: BTreeMap::new(),
                    revision: 0,
                }),
                sync: watch::Sender::new(CacheState::Listing),
            }),
        }
    }

    /// What the cache keeps.
    pub fn contents(&self) -> &C {
        &self.shared.contents
    }

    /// Follows the prefix `watch` was opened on, from a fresh list: the changes, each handed
    /// out after the cache holds it. The cache fills only while they are polled.
    pub fn follow(&self, watch: WatchStream) -> Changes<C> {
        let (store, prefix) = watch.into_parts();
        self.changes(store, prefix)
    }

    pub(crate) fn changes(&self, store: Store, prefix: String) -> Changes<C> {
        let watcher = PrefixWatch::new(store, prefix, self.clone());
        let stream = futures::stream::unfold(watcher, |mut watcher| async move {
            let item = watcher.next_item().await;
            Some((item, watcher))
        });
        Changes {
            inner: Box::pin(stream),
        }
    }

    /// A read of the held values.
    pub fn read(&self) -> CacheRead<'_, C::Key, C::Value> {
        CacheRead {
            state: self.shared.state.read().unwrap_or_else(|p| p.into_inner()),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Holdings<C::Key, C::Value>> {
        self.shared.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The value held under `key`.
    pub fn get(&self, key: &C::Key) -> Option<C::Value>
    where
        C::Value: Clone,
    {
        self.read().get(key).cloned()
    }

    /// Every held key, in order.
    pub fn keys(&self) -> Vec<C::Key> {
        self.read().iter().map(|(key, _)| key.clone()).collect()
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The etcd keys under the prefix that name no key, with why, in order.
    pub fn invalid_keys(&self) -> Vec<(String, KeyError)> {
        self.read()
            .state
            .invalid
            .iter()
            .map(|(key, error)| (key.clone(), error.clone()))
            .collect()
    }

    /// The newest revision applied, of any key under the prefix.
    pub fn revision(&self) -> Revision {
        self.read().revision()
    }

    /// Where the cache stands.
    pub fn state(&self) -> CacheState {
        *self.shared.sync.borrow()
    }

    /// Whether the first list has been handed out.
    pub fn is_synced(&self) -> bool {
        matches!(self.state(), CacheState::Synced { .. })
    }

    /// Waits until the first list has been handed out; `false` if the watch went away
    /// before that.
    pub async fn wait_synced(&self) -> bool {
        let mut state = self.shared.sync.subscribe();
        matches!(
            state
                .wait_for(|state| *state != CacheState::Listing)
                .await
                .as_deref(),
            Ok(CacheState::Synced { .. })
        )
    }

    /// The owner wrote `value` under `key` at `revision`: held unless the cache knows a
    /// write at that revision or later. Hands out no change.
    pub fn written(&self, key: C::Key, value: C::Value, revision: Revision) {
        let mut state = self.write();
        if let Some(&removed) = state.removed.get(&key) {
            if removed >= revision {
                return;
            }
            state.removed.remove(&key);
        }
        match state.held.get_mut(&key) {
            Some(slot) if slot.revision >= revision => {}
            Some(slot) => *slot = HeldValue { revision, value },
            None => {
                state.held.insert(key, HeldValue { revision, value });
            }
        }
    }

    /// The owner deleted `key` at `revision`: dropped unless written after it, and an older
    /// put the watch delivers later does not bring it back. Hands out no change.
    pub fn removed(&self, key: &C::Key, revision: Revision) {
        let mut state = self.write();
        if state
            .held
            .get(key)
            .is_some_and(|slot| slot.revision <= revision)
        {
            state.held.remove(key);
        }
        state.removed.insert(key.clone(), revision);
    }

    /// Applies one event as a watch delivers it (its `prev` is not read: the cache knows what
    /// it held); the change, if any. `Synced` marks the cache synced at once.
    pub fn apply(&self, event: WatchEvent) -> Option<ChangeOf<C>> {
        match event {
            WatchEvent::Put { entry, .. } => {
                let mut state = self.write();
                self.put(&mut state, entry, Source::Watch)
            }
            WatchEvent::Delete { key, revision, .. } => {
                self.delete(&mut self.write(), &key, revision)
            }
            WatchEvent::Synced { revision } => {
                self.mark_synced(revision);
                Some(CacheChange::Synced { revision })
            }
        }
    }

    /// Applies a complete listing: the difference to what is held, then `Synced`, marking the
    /// cache synced. For a cache filled from one read instead of a watch.
    pub fn apply_listing(&self, listing: Listing) -> Vec<ChangeOf<C>> {
        let revision = listing.revision;
        let mut changes = VecDeque::new();
        self.relisted(listing, &mut changes);
        self.mark_synced(revision);
        changes.into_iter().filter_map(Result::ok).collect()
    }

    /// Applies a listing, queueing the difference to what is held and then `Synced`.
    pub(crate) fn relisted(
        &self,
        listing: Listing,
        out: &mut VecDeque<Result<ChangeOf<C>, Error>>,
    ) {
        let mut state = self.write();
        let mut listed = BTreeSet::new();
        let mut listed_invalid = BTreeSet::new();
        for entry in listing.entries {
            match self.shared.contents.key(&entry.key) {
                Some(Ok(key)) => {
                    listed.insert(key);
                }
                Some(Err(_)) => {
                    listed_invalid.insert(entry.key.clone());
                }
                None => {}
            }
            out.extend(self.put(&mut state, entry, Source::List).map(Ok));
        }
        // What is gone from the list was deleted meanwhile, unless the owner wrote it since.
        let gone: Vec<C::Key> = state
            .held
            .iter()
            .filter(|(key, slot)| slot.revision <= listing.revision && !listed.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            if let Some(slot) = state.held.remove(&key) {
                out.push_back(Ok(CacheChange::Delete {
                    key,
                    revision: listing.revision,
                    old: slot.value,
                }));
            }
        }
        let invalid_gone: Vec<String> = state
            .invalid
            .keys()
            .filter(|key| !listed_invalid.contains(*key))
            .cloned()
            .collect();
        for key in invalid_gone {
            state.invalid.remove(&key);
            out.push_back(Ok(CacheChange::InvalidGone { key }));
        }
        state.revision = state.revision.max(listing.revision);
        out.push_back(Ok(CacheChange::Synced {
            revision: listing.revision,
        }));
    }

    /// Applies the events of one watch response at once, so that a reader never sees half a
    /// transaction, queueing the changes.
    pub(crate) fn watched(
        &self,
        events: impl IntoIterator<Item = WatchEvent>,
        out: &mut VecDeque<Result<ChangeOf<C>, Error>>,
    ) {
        let mut state = self.write();
        for event in events {
            let change = match event {
                WatchEvent::Put { entry, .. } => self.put(&mut state, entry, Source::Watch),
                WatchEvent::Delete { key, revision, .. } => self.delete(&mut state, &key, revision),
                WatchEvent::Synced { .. } => None,
            };
            out.extend(change.map(Ok));
        }
    }

    /// The first list has been handed out (or a later one): the cache equals etcd at
    /// `revision`, so the owner's deletions up to it are settled.
    pub(crate) fn mark_synced(&self, revision: Revision) {
        self.write()
            .removed
            .retain(|_, removed| *removed > revision);
        self.shared
            .sync
            .send_replace(CacheState::Synced { revision });
    }

    /// The watch went away: a reader still waiting for the first list stops waiting.
    pub(crate) fn stopped(&self) {
        self.shared.sync.send_if_modified(|state| {
            let listing = *state == CacheState::Listing;
            if listing {
                *state = CacheState::Stopped;
            }
            listing
        });
    }

    fn put(
        &self,
        state: &mut Holdings<C::Key, C::Value>,
        entry: Entry,
        source: Source,
    ) -> Option<ChangeOf<C>> {
        let revision = entry.mod_revision;
        state.revision = state.revision.max(revision);
        if source == Source::Watch {
            forget_delivered_removals(state, revision);
        }
        let key = match self.shared.contents.key(&entry.key)? {
            Ok(key) => key,
            Err(error) => {
                let first = state
                    .invalid
                    .insert(entry.key.clone(), error.clone())
                    .is_none();
                return first.then_some(CacheChange::Invalid {
                    key: entry.key,
                    error,
                });
            }
        };
        if let Some(&removed) = state.removed.get(&key) {
            if removed >= revision {
                return None;
            }
            state.removed.remove(&key);
        }
        // One walk of the map per put: the controller's copy of /observed/ sees every write
        // it makes come back, and its keys compare by their strings.
        let slot = match state.held.entry(key) {
            btree_map::Entry::Occupied(slot) if slot.get().revision >= revision => return None,
            slot => slot,
        };
        let value = self.shared.contents.value(slot.key(), &entry);
        match slot {
            btree_map::Entry::Occupied(mut slot) => {
                let same = self
                    .shared
                    .contents
                    .same(slot.key(), &slot.get().value, &value);
                let held = slot.get_mut();
                held.revision = revision;
                let old = std::mem::replace(&mut held.value, value);
                (!same).then(|| CacheChange::Put {
                    key: slot.key().clone(),
                    entry,
                    old: Some(old),
                })
            }
            btree_map::Entry::Vacant(slot) => {
                let key = slot.key().clone();
                slot.insert(HeldValue { revision, value });
                Some(CacheChange::Put {
                    key,
                    entry,
                    old: None,
                })
            }
        }
    }

    fn delete(
        &self,
        state: &mut Holdings<C::Key, C::Value>,
        etcd_key: &str,
        revision: Revision,
    ) -> Option<ChangeOf<C>> {
        state.revision = state.revision.max(revision);
        forget_delivered_removals(state, revision);
        let key = match self.shared.contents.key(etcd_key)? {
            Ok(key) => key,
            Err(_) => {
                state.invalid.remove(etcd_key)?;
                return Some(CacheChange::InvalidGone {
                    key: etcd_key.to_owned(),
                });
            }
        };
        if state.held.get(&key)?.revision > revision {
            return None;
        }
        let slot = state.held.remove(&key)?;
        Some(CacheChange::Delete {
            key,
            revision,
            old: slot.value,
        })
    }
}

/// Where a put comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A watch response: in revision order.
    Watch,
    /// A list: its entries carry their own, older revisions.
    List,
}

/// Forgets the owner's deletions the watch has passed: it delivers changes in revision
/// order, so one at `revision` means every change before it was delivered.
fn forget_delivered_removals<K: Ord, V>(state: &mut Holdings<K, V>, revision: Revision) {
    if !state.removed.is_empty() {
        state.removed.retain(|_, removed| *removed >= revision);
    }
}

/// The changes of a cache as its watch delivers them: `Stream<Item = Result<CacheChange, Error>>`.
///
/// Errors are the watch's; it recovers from them by itself (see [`WatchStream`]), so the
/// stream never ends.
pub struct Changes<C: Contents> {
    inner: Pin<Box<dyn Stream<Item = Result<ChangeOf<C>, Error>> + Send>>,
}

impl<C: Contents> Changes<C> {
    /// Hands every item to `on_item` until `stop` fires.
    pub async fn run_until(
        mut self,
        stop: &CancellationToken,
        mut on_item: impl FnMut(Result<ChangeOf<C>, Error>),
    ) {
        loop {
            let item = tokio::select! {
                () = stop.cancelled() => return,
                item = self.next() => item,
            };
            match item {
                Some(item) => on_item(item),
                None => return,
            }
        }
    }
}

impl<C: Contents> Stream for Changes<C> {
    type Item = Result<ChangeOf<C>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<C: Contents> fmt::Debug for Changes<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys under `/k/` by their last segment; an uppercase one names nothing.
    struct Letters;

    impl Contents for Letters {
        type Key = String;
        type Value = String;

        fn key(&self, etcd_key: &str) -> Option<Result<String, KeyError>> {
            let rest = etcd_key.strip_prefix("/k/")?;
            Some(if rest.contains(char::is_uppercase) {
                Err(KeyError::NotAKey {
                    value: rest.to_owned(),
                })
            } else {
                Ok(rest.to_owned())
            })
        }

        fn value(&self, _: &String, entry: &Entry) -> String {
            String::from_utf8_lossy(&entry.value).into_owned()
        }

        fn same(&self, _: &String, old: &String, new: &String) -> bool {
            old == new
        }
    }

    fn entry(key: &str, value: &str, revision: Revision) -> Entry {
        Entry {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        }
    }

    fn put(key: &str, value: &str, revision: Revision) -> WatchEvent {
        WatchEvent::Put {
            entry: entry(key, value, revision),
            prev: None,
        }
    }

    fn delete(key: &str, revision: Revision) -> WatchEvent {
        WatchEvent::Delete {
            key: key.into(),
            revision,
            prev: None,
        }
    }

    fn keys(changes: &[ChangeOf<Letters>]) -> Vec<String> {
        changes
            .iter()
            .map(|change| match change {
                CacheChange::Put { key, .. } => format!("put {key}"),
                CacheChange::Delete { key, .. } => format!("delete {key}"),
                CacheChange::Invalid { key, .. } => format!("invalid {key}"),
                CacheChange::InvalidGone { key } => format!("invalid gone {key}"),
                CacheChange::Synced { revision } => format!("synced {revision}"),
            })
            .collect()
    }

    #[test]
    fn a_relist_hands_out_only_the_difference_to_what_is_held() {
        let cache = Cache::new(Letters);
        cache.apply(put("/k/changed", "1", 2));
        cache.apply(put("/k/kept", "1", 3));
        cache.apply(put("/k/deleted", "1", 4));
        cache.apply(put("/k/BAD", "1", 4));
        cache.apply(put("/elsewhere", "1", 5));
        let changes = cache.apply_listing(Listing {
            entries: vec![
                entry("/k/changed", "2", 8),
                entry("/k/created", "1", 7),
                entry("/k/kept", "1", 3),
            ],
            revision: 9,
        });
        assert_eq!(
            keys(&changes),
            [
                "put changed",
                "put created",
                "delete deleted",
                "invalid gone /k/BAD",
                "synced 9"
            ]
        );
        assert_eq!(cache.keys(), ["changed", "created", "kept"]);
        assert_eq!(cache.state(), CacheState::Synced { revision: 9 });
        assert_eq!(cache.revision(), 9);
    }

    #[test]
    fn an_older_put_or_delete_changes_nothing() {
        let cache = Cache::new(Letters);
        assert!(cache.apply(put("/k/a", "1", 5)).is_some());
        assert_eq!(cache.apply(put("/k/a", "0", 4)), None);
        assert_eq!(cache.apply(delete("/k/a", 3)), None);
        assert_eq!(cache.get(&"a".into()).as_deref(), Some("1"));
        assert_eq!(
            cache.apply(put("/k/a", "1", 6)),
            None,
            "the contents call it the same"
        );
        assert_eq!(
            cache.apply(delete("/k/a", 7)),
            Some(CacheChange::Delete {
                key: "a".into(),
                revision: 7,
                old: "1".into()
            })
        );
        assert_eq!(cache.apply(delete("/k/a", 8)), None, "not held");
    }

    #[test]
    fn a_key_the_owner_removed_does_not_come_back_with_an_older_value() {
        let cache = Cache::new(Letters);
        cache.written("a".into(), "mine".into(), 5);
        assert_eq!(cache.apply(put("/k/a", "older", 4)), None);
        cache.removed(&"a".into(), 6);
        assert!(cache.is_empty());
        assert_eq!(cache.apply(put("/k/a", "mine", 5)), None);
        let changes = cache.apply_listing(Listing {
            entries: vec![entry("/k/a", "mine", 5)],
            revision: 5,
        });
        assert_eq!(keys(&changes), ["synced 5"], "the list raced the delete");
        assert!(cache.is_empty());
        assert!(cache.apply(put("/k/a", "again", 7)).is_some());
    }

    #[test]
    fn a_key_that_names_nothing_is_reported_once_and_again_when_it_goes() {
        let cache = Cache::new(Letters);
        assert!(matches!(
            cache.apply(put("/k/BAD", "1", 2)),
            Some(CacheChange::Invalid { .. })
        ));
        assert_eq!(cache.apply(put("/k/BAD", "2", 3)), None);
        assert_eq!(cache.invalid_keys().len(), 1);
        assert!(cache.is_empty());
        assert_eq!(
            cache.apply(delete("/k/BAD", 4)),
            Some(CacheChange::InvalidGone {
                key: "/k/BAD".into()
            })
        );
        assert!(cache.invalid_keys().is_empty());
    }

    #[tokio::test]
    async fn readers_wait_for_the_first_list_or_learn_the_watch_went_away() {
        let cache = Cache::new(Letters);
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_synced().await }
        });
        cache.apply(WatchEvent::Synced { revision: 3 });
        assert!(waiting.await.unwrap());

        let cache = Cache::new(Letters);
        cache.stopped();
        assert!(!cache.wait_synced().await);
    }
}
