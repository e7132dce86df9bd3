//! A reflector: a local copy of an etcd prefix, kept current by the store's resumable watch,
//! offering a stream of the keys that changed (kube-runtime's `reflector` + `store`), over the
//! library's [`Cache`].
//!
//! What it promises:
//! - [`Reflection`] (the readers' handle) holds exactly the entries the watch has delivered,
//!   by typed key: after [`Reflection::wait_synced`] returns, every entry etcd held at some
//!   revision R, plus every change after R the watch has delivered.
//! - [`Reflector::changes`] yields every delivered change's key, after the copy is updated,
//!   so a reconcile triggered by it reads the new value. A put that does not change the value's
//!   revision (a relist re-delivering what was known) is not a change.
//! - An etcd key under the watched prefix that names no key of the reflector (`key_of`
//!   says why) is kept aside: warned about once, with its key and the reason, counted in
//!   the `invalid_keys` gauge while it exists, and listed by [`Reflection::invalid_keys`].
//! - Compactions, broken streams and etcd restarts are the watch's business
//!   ([`theseus::store::WatchStream`]): it relists and delivers the difference, then
//!   `Synced`; the reflector only counts the errors it reports.
//!
//! States: those of the cache ([`ReflectorState`]): `Listing` (before the first `Synced`) →
//! `Synced { revision }`, updated at each later `Synced`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use theseus::api::KeyError;
use theseus::store::{Cache, CacheChange, Contents, Entry, Error, WatchStream};
use tracing::{debug, warn};

use super::metrics::Metrics;

/// Where a reflector stands.
pub use theseus::store::CacheState as ReflectorState;

/// Turns an etcd key into a reflector key: `None` for a key the reflector ignores, an error
/// for a key under its prefix that should name one and does not.
type KeyOf<K> = Box<dyn Fn(&str) -> Option<Result<K, KeyError>> + Send + Sync>;

/// What a reflector keeps: every entry, by the key `key_of` reads from its etcd key.
struct ReflectedEntries<K> {
    key_of: KeyOf<K>,
}

impl<K: Ord + Clone + Send + Sync + 'static> Contents for ReflectedEntries<K> {
    type Key = K;
    type Value = Entry;

    fn key(&self, etcd_key: &str) -> Option<Result<K, KeyError>> {
        (self.key_of)(etcd_key)
    }

    fn value(&self, _: &K, entry: &Entry) -> Entry {
        entry.clone()
    }
}

/// The readers' handle: cheap to clone, clones share the copy.
pub struct Reflection<K: Ord + Clone + Send + Sync + 'static> {
    cache: Cache<ReflectedEntries<K>>,
}

impl<K: Ord + Clone + Send + Sync + 'static> Clone for Reflection<K> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
        }
    }
}

impl<K: Ord + Clone + Send + Sync + 'static> fmt::Debug for Reflection<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reflection")
            .field("state", &self.cache.state())
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Clone + Send + Sync + 'static> Reflection<K> {
    /// The entry of `key`, if it exists.
    pub fn get(&self, key: &K) -> Option<Entry> {
        self.cache.get(key)
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<K> {
        self.cache.keys()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// The etcd keys under the prefix that name no key, with why, in order.
    pub fn invalid_keys(&self) -> Vec<(String, KeyError)> {
        self.cache.invalid_keys()
    }

    /// Where the reflector stands.
    pub fn state(&self) -> ReflectorState {
        self.cache.state()
    }

    /// Waits until the first complete list has been applied. Returns `false` if the
    /// reflector stopped before that.
    pub async fn wait_synced(&self) -> bool {
        self.cache.wait_synced().await
    }
}

/// The writer side; run it with [`Reflector::run`].
pub struct Reflector<K: Ord + Clone + Send + Sync + 'static> {
    name: &'static str,
    cache: Cache<ReflectedEntries<K>>,
}

impl<K: Ord + Clone + Send + Sync + fmt::Display + 'static> Reflector<K> {
    /// A reflector named `name` (for logs and metrics) whose keys are `key_of(etcd key)`;
    /// etcd keys for which it returns `None` are ignored, and those for which it returns an
    /// error are reported (see the module documentation). Returns it with its readers'
    /// handle.
    pub fn new(
        name: &'static str,
        key_of: impl Fn(&str) -> Option<Result<K, KeyError>> + Send + Sync + 'static,
    ) -> (Self, Reflection<K>) {
        let cache = Cache::new(ReflectedEntries {
            key_of: Box::new(key_of),
        });
        (
            Self {
                name,
                cache: cache.clone(),
            },
            Reflection { cache },
        )
    }

    /// Applies `watch` to the copy as the returned stream is read, which yields every key
    /// that changed (for [`crate::runtime::trigger::run`]); watch errors are counted and
    /// logged, and the watch recovers by itself.
    pub fn changes(
        self,
        watch: WatchStream,
        metrics: Arc<Metrics>,
    ) -> impl Stream<Item = K> + Send + 'static {
        let changes = self.cache.follow(watch);
        changes.filter_map(move |item| {
            futures::future::ready(match item {
                Ok(change) => self.changed(change, &metrics),
                Err(error) => {
                    watch_interrupted(self.name, &error, &metrics);
                    None
                }
            })
        })
    }

    /// What one change of the copy means: the key it changed, if any.
    fn changed(&self, change: CacheChange<K, Entry>, metrics: &Metrics) -> Option<K> {
        match change {
            CacheChange::Put { key, .. } | CacheChange::Delete { key, .. } => Some(key),
            CacheChange::Invalid { key, error } => {
                warn!(
                    reflector = self.name,
                    key = %key,
                    %error,
                    "ignoring a key that names no deployment; delete or rename it"
                );
                metrics.invalid_keys(self.name, self.cache.invalid_keys().len());
                None
            }
            CacheChange::InvalidGone { .. } => {
                metrics.invalid_keys(self.name, self.cache.invalid_keys().len());
                None
            }
            CacheChange::Synced { revision } => {
                debug!(reflector = self.name, revision, "synced");
                None
            }
        }
    }
}

/// Counts and reports an error of a cache's watch, which recovers by itself (resume or
/// relist).
pub(crate) fn watch_interrupted(cache: &str, error: &Error, metrics: &Metrics) {
    metrics.etcd_request("watch", error.metric_label(), Duration::ZERO);
    warn!(cache, %error, "watch interrupted; recovering");
}

#[cfg(test)]
mod tests {
    use theseus::store::{Revision, WatchEvent};

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
        fn apply(&self, event: WatchEvent, metrics: &Metrics) -> Option<String> {
            let change = self.cache.apply(event)?;
            self.changed(change, metrics)
        }

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
