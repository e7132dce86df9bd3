//! A watch of a prefix that never loses or repeats a change.
//!
//! The stream lists the prefix at a revision R, emits every entry and `Synced { R }`, then
//! watches from R + 1. What it emitted for every key is held in a [`Cache`] (the stream's own
//! holds every entry; a cache that [follows](Cache::follow) a watch holds what its contents
//! keep, and nothing is held twice), and the stream remembers the revision up to which it has
//! emitted everything. From that it recovers on its own:
//!
//! - a broken stream (a member died, etcd restarted, a keep-alive ping went unanswered, etcd
//!   cancelled the watch) resumes with a new watch from that revision + 1, on the next
//!   member if the one it was on fails; events at or below the revision are dropped, so a
//!   resumed watch repeats nothing;
//! - a compacted revision (the watch needs history etcd has discarded) relists and emits
//!   only the difference to what the cache holds, then `Synced`, then watches from the
//!   list's revision + 1 (never from the compaction revision: that would skip events).
//!
//! Each failure is reported as an `Err` item while the stream recovers with exponential
//! backoff; the stream ends only when it is dropped. It does its work only while polled.
//!
//! A dead connection is noticed by gRPC keep-alive pings (see
//! [`EtcdConfig::keep_alive_interval`](super::EtcdConfig::keep_alive_interval)); watches
//! ask for etcd's progress notifications, but their revision is not used to advance the
//! resume point (not every etcd release orders one after the events still queued for the
//! watcher), so
//! after a long quiet spell a resume may find its revision compacted and relist instead.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use etcd_client::{EventType, WatchOptions};
use futures::{Stream, StreamExt};

use super::cache::{Cache, CacheChange, ChangeOf, Contents};
use super::error::describe;
use super::members::CallError;
use super::{Entry, Error, Revision, Store};
use crate::api::KeyError;

/// Shortest wait before a watch is re-established.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest wait before a watch is re-established.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// One change seen by a [`WatchStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or changed.
    Put {
        /// The entry now.
        entry: Entry,
        /// The entry the stream last emitted for this key, if any.
        prev: Option<Entry>,
    },
    /// A key was deleted.
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion (of the relist, after a compaction).
        revision: Revision,
        /// The entry the stream last emitted for this key.
        prev: Option<Entry>,
    },
    /// After the initial list and after every relist: everything up to `revision` has been
    /// emitted, so a consumer's view equals etcd's at that revision.
    Synced {
        /// The revision of the list.
        revision: Revision,
    },
}

/// The stream returned by [`Store::watch`]: `Stream<Item = Result<WatchEvent, Error>>`.
pub struct WatchStream {
    store: Store,
    prefix: String,
    inner: Pin<Box<dyn Stream<Item = Result<WatchEvent, Error>> + Send>>,
}

impl WatchStream {
    pub(crate) fn new(store: Store, prefix: String) -> WatchStream {
        let changes = Cache::new(StreamEntries).changes(store.clone(), prefix.clone());
        let events = changes.filter_map(|item| {
            futures::future::ready(match item {
                Ok(change) => WatchEvent::emitted(change).map(Ok),
                Err(error) => Some(Err(error)),
            })
        });
        WatchStream {
            store,
            prefix,
            inner: Box::pin(events),
        }
    }

    /// The store and the prefix watched, for a cache that follows the same prefix.
    pub(crate) fn into_parts(self) -> (Store, String) {
        (self.store, self.prefix)
    }
}

impl WatchEvent {
    /// The event for a change of the stream's own cache.
    fn emitted(change: ChangeOf<StreamEntries>) -> Option<WatchEvent> {
        match change {
            CacheChange::Put { entry, old, .. } => Some(WatchEvent::Put { entry, prev: old }),
            CacheChange::Delete { key, revision, old } => Some(WatchEvent::Delete {
                key,
                revision,
                prev: Some(old),
            }),
            CacheChange::Synced { revision } => Some(WatchEvent::Synced { revision }),
            // Every key names itself.
            CacheChange::Invalid { .. } | CacheChange::InvalidGone { .. } => None,
        }
    }
}

/// What a [`WatchStream`] holds: every entry, by its etcd key.
struct StreamEntries;

impl Contents for StreamEntries {
    type Key = String;
    type Value = Entry;

    fn key(&self, etcd_key: &str) -> Option<Result<String, KeyError>> {
        Some(Ok(etcd_key.to_owned()))
    }

    fn value(&self, _: &String, entry: &Entry) -> Entry {
        entry.clone()
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

/// Where a prefix watch stands.
enum WatchPhase {
    /// Nothing is known to be current: list (at start, and after a compaction).
    Relist,
    /// Everything up to `PrefixWatch::revision` is emitted and no watch is open: open one.
    Resume,
    /// A watch is open on member `member`.
    Watching {
        stream: Box<etcd_client::WatchStream>,
        member: usize,
    },
    /// A step failed; wait, then relist or resume.
    Backoff { relist: bool },
}

/// The most room for queued changes kept once they are all handed out.
const PENDING_ROOM_KEPT: usize = 1024;

/// The state machine behind [`WatchStream`] and [`Cache::follow`].
pub(crate) struct PrefixWatch<C: Contents> {
    store: Store,
    prefix: String,
    /// What was emitted for every key that exists as far as the consumer knows.
    cache: Cache<C>,
    /// Every change up to this revision has been emitted.
    revision: Revision,
    phase: WatchPhase,
    /// Items produced by one step, handed out one per poll.
    pending: VecDeque<Result<ChangeOf<C>, Error>>,
    delays: ExponentialBackoff,
}

fn retry_delays() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(MIN_RETRY_DELAY)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}

impl<C: Contents> Drop for PrefixWatch<C> {
    fn drop(&mut self) {
        self.cache.stopped();
    }
}

impl<C: Contents> PrefixWatch<C> {
    pub(crate) fn new(store: Store, prefix: String, cache: Cache<C>) -> PrefixWatch<C> {
        PrefixWatch {
            store,
            prefix,
            cache,
            revision: 0,
            phase: WatchPhase::Relist,
            pending: VecDeque::new(),
            delays: retry_delays(),
        }
    }

    pub(crate) async fn next_item(&mut self) -> Result<ChangeOf<C>, Error> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                // A list's changes, queued at once, leave room for all of them behind (11 MB
                // for a list of 45,000 keys): given back once they are handed out.
                if self.pending.is_empty() && self.pending.capacity() > PENDING_ROOM_KEPT {
                    self.pending = VecDeque::new();
                }
                // Handed out: the consumer has seen every change of the list before it.
                if let Ok(CacheChange::Synced { revision }) = item {
                    self.cache.mark_synced(revision);
                }
                return item;
            }
            self.step().await;
        }
    }

    /// Moves the state machine one transition on, queueing what it produced.
    async fn step(&mut self) {
        self.phase = match std::mem::replace(&mut self.phase, WatchPhase::Relist) {
            WatchPhase::Relist => match self.store.list(&self.prefix).await {
                // Listed at R: queue the difference and watch from R + 1 at once, before the
                // consumer sees `Synced`, so a slow consumer does not widen the window in
                // which a compaction could force another relist.
                Ok(listing) => {
                    self.revision = listing.revision;
                    self.cache.relisted(listing, &mut self.pending);
                    self.resume().await
                }
                Err(error) => {
                    self.pending.push_back(Err(error));
                    WatchPhase::Backoff { relist: true }
                }
            },
            // Broken stream or failed open: a new watch from the last emitted revision + 1.
            WatchPhase::Resume => self.resume().await,
            // Events keep it watching; a compaction relists; a break backs off and resumes.
            WatchPhase::Watching { mut stream, member } => {
                let message = stream.message().await;
                self.on_message(message, stream, member)
            }
            // After the wait, retry what failed: the list, or the open.
            WatchPhase::Backoff { relist } => {
                let delay = self.delays.next().unwrap_or(MAX_RETRY_DELAY);
                tokio::time::sleep(delay).await;
                if relist {
                    WatchPhase::Relist
                } else {
                    WatchPhase::Resume
                }
            }
        };
    }

    /// Opens a watch from the next revision, or queues the failure and backs off.
    async fn resume(&mut self) -> WatchPhase {
        match self.open().await {
            Ok((stream, member)) => {
                self.delays = retry_delays();
                WatchPhase::Watching {
                    stream: Box::new(stream),
                    member,
                }
            }
            Err(error) => {
                self.pending.push_back(Err(error));
                WatchPhase::Backoff { relist: false }
            }
        }
    }

    fn on_message(
        &mut self,
        message: Result<Option<etcd_client::WatchResponse>, etcd_client::Error>,
        stream: Box<etcd_client::WatchStream>,
        member: usize,
    ) -> WatchPhase {
        let broken = |watcher: &mut PrefixWatch<C>, reason: String| {
            watcher.store.members().demote(member);
            watcher.pending.push_back(Err(Error::WatchBroken {
                prefix: watcher.prefix.clone(),
                endpoint: watcher.store.members().endpoint(member).to_owned(),
                reason,
                resume_from: watcher.revision + 1,
            }));
            WatchPhase::Backoff { relist: false }
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return broken(self, "etcd closed the stream".into()),
            Err(error) => return broken(self, describe(&error)),
        };
        if response.compact_revision() != 0 {
            // etcd cancelled the watch because it needs history that is gone: relist.
            self.pending.push_back(Err(Error::Compacted {
                prefix: self.prefix.clone(),
                revision: self.revision + 1,
                compact_revision: response.compact_revision(),
            }));
            return WatchPhase::Relist;
        }
        if response.canceled() {
            let reason = match response.cancel_reason() {
                "" => "etcd cancelled the watch".to_owned(),
                reason => format!("etcd cancelled the watch: {reason}"),
            };
            return broken(self, reason);
        }
        self.delays = retry_delays();
        self.apply_events(response.events());
        WatchPhase::Watching { stream, member }
    }

    /// Opens a watch from `revision + 1` on the first member that accepts it.
    async fn open(&self) -> Result<(etcd_client::WatchStream, usize), Error> {
        let start = self.revision + 1;
        let prefix = self.prefix.as_str();
        let max_response = self.store.max_response_bytes();
        let (member, stream) = self
            .store
            .members()
            .call(
                &format!("watch `{prefix}` from revision {start}"),
                |client| async move {
                    let mut options = WatchOptions::new()
                        .with_start_revision(start)
                        .with_progress_notify();
                    options = if prefix.is_empty() {
                        options.with_all_keys()
                    } else {
                        options.with_prefix()
                    };
                    // One response may carry a whole transaction's values.
                    let mut stream = client
                        .watch_client()
                        .max_decoding_message_size(max_response)
                        .watch(prefix, Some(options))
                        .await?;
                    // etcd answers a create request first; a watch it refuses (permission)
                    // comes back created and cancelled at once.
                    match stream.message().await? {
                        Some(created) if created.canceled() && created.compact_revision() == 0 => {
                            Err(CallError::Refused(created.cancel_reason().to_owned()))
                        }
                        Some(_) => Ok(stream),
                        None => Err(CallError::Etcd(etcd_client::Error::WatchError(
                            "the stream ended before etcd created the watch".into(),
                        ))),
                    }
                },
            )
            .await?;
        tracing::debug!(
            prefix,
            start,
            endpoint = self.store.members().endpoint(member),
            "watching"
        );
        Ok((stream, member))
    }

    /// Emits the events of one watch response that are newer than what was emitted.
    fn apply_events(&mut self, events: &[etcd_client::Event]) {
        // A response carries whole revisions (one transaction's events are never split), so
        // comparing against the revision before the response keeps every event of a
        // transaction and drops every event a previous watch already delivered.
        let seen = self.revision;
        let mut newest = seen;
        let fresh = events.iter().filter_map(|event| {
            let kv = event.kv()?;
            let revision = kv.mod_revision();
            if revision <= seen {
                return None;
            }
            newest = newest.max(revision);
            Some(match event.event_type() {
                EventType::Put => WatchEvent::Put {
                    entry: Entry::from(kv),
                    prev: None,
                },
                // A key the consumer never saw cannot be deleted from its view: the cache
                // drops a delete of a key it does not hold.
                EventType::Delete => WatchEvent::Delete {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    revision,
                    prev: None,
                },
            })
        });
        self.cache.watched(fresh, &mut self.pending);
        self.revision = newest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_from_the_minimum_and_stay_under_the_maximum() {
        let delays: Vec<Duration> = retry_delays().take(30).collect();
        assert_eq!(delays.len(), 30, "the watch never stops retrying");
        // Jitter adds up to one delay on top; the first is at least the minimum.
        assert!(delays[0] >= MIN_RETRY_DELAY && delays[0] <= 2 * MIN_RETRY_DELAY);
        assert!(
            delays.iter().all(|d| *d <= 2 * MAX_RETRY_DELAY),
            "{delays:?}"
        );
        assert!(delays[29] >= MAX_RETRY_DELAY, "{delays:?}");
    }
}
