//! A reflector: a local copy of an etcd prefix, kept current by the store's resumable watch,
//! telling a callback which keys changed (kube-runtime's `reflector` + `store`).
//!
//! What it promises:
//! - [`Reflection`] (the readers' handle) holds exactly the entries the watch has delivered,
//!   by typed key: after [`Reflection::wait_synced`] returns, every entry etcd held at some
//!   revision R, plus every change after R the watch has delivered.
//! - Every delivered change calls `on_change` with its key, after the copy is updated, so a
//!   reconcile triggered by it reads the new value. A put that does not change the value's
//!   revision (a relist re-delivering what was known) is not a change.
//! - An etcd key under the watched prefix that names no key of the reflector (`key_of`
//!   says why) is kept aside: warned about once, with its key and the reason, counted in
//!   the `invalid_keys` gauge while it exists, and listed by [`Reflection::invalid_keys`].
//! - Compactions, broken streams and etcd restarts are the watch's business
//!   ([`theseus::store::WatchStream`]): it relists and delivers the difference, then
//!   `Synced`; the reflector only counts the errors it reports.
//!
//! States: `Listing` (before the first `Synced`) → `Synced { revision }`, updated at each
//! later `Synced`.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures::StreamExt;
use theseus::api::KeyError;
use theseus::store::{Entry, Revision, WatchEvent, WatchStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::metrics::Metrics;

/// Where a reflector stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReflectorState {
    /// Waiting for the first complete list.
    Listing,
    /// The copy equals etcd's state at `revision` plus later changes.
    Synced {
        /// The revision of the last list.
        revision: Revision,
    },
}

/// The readers' handle: cheap to clone, clones share the copy.
pub struct Reflection<K> {
    entries: Arc<RwLock<BTreeMap<K, Entry>>>,
    invalid: Arc<RwLock<BTreeMap<String, KeyError>>>,
    state: watch::Receiver<ReflectorState>,
}

impl<K> Clone for Reflection<K> {
    fn clone(&self) -> Self {
        Self {
            entries: Arc::clone(&self.entries),
            invalid: Arc::clone(&self.invalid),
            state: self.state.clone(),
        }
    }
}

impl<K> fmt::Debug for Reflection<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reflection")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Clone> Reflection<K> {
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<K, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `key`, if it exists.
    pub fn get(&self, key: &K) -> Option<Entry> {
        self.read().get(key).cloned()
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<K> {
        self.read().keys().cloned().collect()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The etcd keys under the prefix that name no key, with why, in order.
    pub fn invalid_keys(&self) -> Vec<(String, KeyError)> {
        self.invalid
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(key, error)| (key.clone(), error.clone()))
            .collect()
    }

    /// Where the reflector stands.
    pub fn state(&self) -> ReflectorState {
        *self.state.borrow()
    }

    /// Waits until the first complete list has been applied. Returns `false` if the
    /// reflector stopped before that.
    pub async fn wait_synced(&self) -> bool {
        let mut state = self.state.clone();
        state
            .wait_for(|s| matches!(s, ReflectorState::Synced { .. }))
            .await
            .is_ok()
    }
}

/// Turns an etcd key into a reflector key: `None` for a key the reflector ignores, an error
/// for a key under its prefix that should name one and does not.
type KeyOf<K> = Box<dyn Fn(&str) -> Option<Result<K, KeyError>> + Send + Sync>;

/// The writer side; run it with [`Reflector::run`].
pub struct Reflector<K> {
    name: &'static str,
    entries: Arc<RwLock<BTreeMap<K, Entry>>>,
    invalid: Arc<RwLock<BTreeMap<String, KeyError>>>,
    state: watch::Sender<ReflectorState>,
    key_of: KeyOf<K>,
}

impl<K: Ord + Clone + Hash + Send + Sync + fmt::Display + 'static> Reflector<K> {
    /// A reflector named `name` (for logs and metrics) whose keys are `key_of(etcd key)`;
    /// etcd keys for which it returns `None` are ignored, and those for which it returns an
    /// error are reported (see the module documentation). Returns it with its readers'
    /// handle.
    pub fn new(
        name: &'static str,
        key_of: impl Fn(&str) -> Option<Result<K, KeyError>> + Send + Sync + 'static,
    ) -> (Self, Reflection<K>) {
        let entries = Arc::new(RwLock::new(BTreeMap::new()));
        let invalid = Arc::new(RwLock::new(BTreeMap::new()));
        let (state, receiver) = watch::channel(ReflectorState::Listing);
        (
            Self {
                name,
                entries: Arc::clone(&entries),
                invalid: Arc::clone(&invalid),
                state,
                key_of: Box::new(key_of),
            },
            Reflection {
                entries,
                invalid,
                state: receiver,
            },
        )
    }

    /// Applies `watch` to the copy until `stop`, calling `on_change` with every changed key.
    pub async fn run(
        self,
        mut watch: WatchStream,
        metrics: Arc<Metrics>,
        on_change: impl Fn(&K),
        stop: CancellationToken,
    ) {
        loop {
            let item = tokio::select! {
                () = stop.cancelled() => return,
                item = watch.next() => item,
            };
            match item {
                Some(Ok(event)) => {
                    if let Some(key) = self.apply(event, &metrics) {
                        on_change(&key);
                    }
                }
                Some(Err(error)) => {
                    // The watch recovers by itself (resume or relist); count and report.
                    metrics.etcd_request("watch", error.metric_label(), Duration::ZERO);
                    warn!(reflector = self.name, %error, "watch interrupted; recovering");
                }
                None => return,
            }
        }
    }

    /// Applies one event; the key it changed, if any.
    fn apply(&self, event: WatchEvent, metrics: &Metrics) -> Option<K> {
        match event {
            WatchEvent::Put { entry, prev } => {
                let key = match (self.key_of)(&entry.key)? {
                    Ok(key) => key,
                    Err(error) => {
                        self.set_invalid(&entry.key, Some(error), metrics);
                        return None;
                    }
                };
                let unchanged = prev
                    .as_ref()
                    .is_some_and(|prev| prev.mod_revision == entry.mod_revision);
                self.entries
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), entry);
                (!unchanged).then_some(key)
            }
            WatchEvent::Delete { key: etcd_key, .. } => {
                let key = match (self.key_of)(&etcd_key)? {
                    Ok(key) => key,
                    Err(_) => {
                        self.set_invalid(&etcd_key, None, metrics);
                        return None;
                    }
                };
                let removed = self
                    .entries
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                removed.map(|_| key)
            }
            WatchEvent::Synced { revision } => {
                debug!(reflector = self.name, revision, "synced");
                self.state.send_replace(ReflectorState::Synced { revision });
                None
            }
        }
    }

    /// Records that `etcd_key` names no key (`Some(why)`) or is gone (`None`); warns the
    /// first time a key is seen.
    fn set_invalid(&self, etcd_key: &str, error: Option<KeyError>, metrics: &Metrics) {
        let mut invalid = self.invalid.write().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(error) => {
                if !invalid.contains_key(etcd_key) {
                    warn!(
                        reflector = self.name,
                        key = etcd_key,
                        %error,
                        "ignoring a key that names no deployment; delete or rename it"
                    );
                }
                invalid.insert(etcd_key.to_owned(), error);
            }
            None => {
                invalid.remove(etcd_key);
            }
        }
        metrics.invalid_keys(self.name, invalid.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, revision: Revision) -> Entry {
        Entry {
            key: key.into(),
            value: b"{}".to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        }
    }

    fn reflector() -> (Reflector<String>, Reflection<String>) {
        Reflector::new("test", |key: &str| {
            let rest = key.strip_prefix("/desired/")?;
            Some(if rest.contains(char::is_uppercase) {
                Err(KeyError::NotAKey {
                    value: rest.to_owned(),
                })
            } else {
                Ok(rest.to_owned())
            })
        })
    }

    impl Reflector<String> {
        fn apply_for_test(&self, event: WatchEvent) -> Option<String> {
            self.apply(event, &Metrics::new())
        }
    }

    #[test]
    fn puts_and_deletes_change_the_copy_and_name_their_key() {
        let (reflector, reflection) = reflector();
        let put = |key: &str, revision, prev| WatchEvent::Put {
            entry: entry(key, revision),
            prev,
        };
        assert_eq!(
            reflector.apply_for_test(put("/desired/a/b", 2, None)),
            Some("a/b".into())
        );
        assert_eq!(reflection.get(&"a/b".into()).unwrap().mod_revision, 2);
        assert_eq!(
            reflector.apply_for_test(put("/desired/a/b", 3, Some(entry("/desired/a/b", 2)))),
            Some("a/b".into())
        );
        assert_eq!(
            reflector.apply_for_test(put("/desired/a/b", 3, Some(entry("/desired/a/b", 3)))),
            None,
            "a re-delivered value is not a change"
        );
        assert_eq!(reflector.apply_for_test(put("/elsewhere/x", 4, None)), None);
        assert_eq!(
            reflector.apply_for_test(WatchEvent::Delete {
                key: "/desired/a/b".into(),
                revision: 5,
                prev: None
            }),
            Some("a/b".into())
        );
        assert!(reflection.is_empty());
    }

    #[test]
    fn keys_that_name_nothing_are_listed_and_counted_until_deleted() {
        let (reflector, reflection) = reflector();
        let metrics = Metrics::new();
        let put = |key: &str, revision| WatchEvent::Put {
            entry: entry(key, revision),
            prev: None,
        };
        assert_eq!(reflector.apply(put("/desired/BAD", 2), &metrics), None);
        assert_eq!(reflector.apply(put("/desired/BAD", 3), &metrics), None);
        assert!(reflection.is_empty());
        let invalid = reflection.invalid_keys();
        assert_eq!(invalid.len(), 1);
        assert_eq!(invalid[0].0, "/desired/BAD");
        assert!(
            metrics
                .encode()
                .contains("theseus_controller_invalid_keys{reflector=\"test\"} 1")
        );
        reflector.apply(
            WatchEvent::Delete {
                key: "/desired/BAD".into(),
                revision: 4,
                prev: None,
            },
            &metrics,
        );
        assert!(reflection.invalid_keys().is_empty());
        assert!(
            metrics
                .encode()
                .contains("theseus_controller_invalid_keys{reflector=\"test\"} 0")
        );
    }

    #[tokio::test]
    async fn readers_wait_for_the_first_complete_list() {
        let (reflector, reflection) = reflector();
        assert_eq!(reflection.state(), ReflectorState::Listing);
        let waiting = tokio::spawn({
            let reflection = reflection.clone();
            async move { reflection.wait_synced().await }
        });
        reflector.apply_for_test(WatchEvent::Synced { revision: 9 });
        assert!(waiting.await.unwrap());
        assert_eq!(reflection.state(), ReflectorState::Synced { revision: 9 });
    }
}
