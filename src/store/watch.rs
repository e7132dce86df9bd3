//! A watch of a prefix that never loses or repeats a change.
//!
//! The stream lists the prefix at a revision R, emits every entry and `Synced { R }`, then
//! watches from R + 1. It remembers the last entry it emitted for every key, and the
//! revision up to which it has emitted everything. From that it recovers on its own:
//!
//! - a broken stream (a member died, etcd restarted, a keep-alive ping went unanswered, etcd
//!   cancelled the watch) resumes with a new watch from that revision + 1, on the next
//!   member if the one it was on fails; events at or below the revision are dropped, so a
//!   resumed watch repeats nothing;
//! - a compacted revision (the watch needs history etcd has discarded) relists and emits
//!   only the difference to what it emitted before, then `Synced`, then watches from the
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

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use etcd_client::{EventType, WatchOptions};
use futures::Stream;

use super::error::describe;
use super::members::CallError;
use super::{Entry, Error, Listing, Revision, Store};

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
    inner: Pin<Box<dyn Stream<Item = Result<WatchEvent, Error>> + Send>>,
}

impl WatchStream {
    pub(crate) fn new(store: Store, prefix: String) -> WatchStream {
        let watcher = Watcher::new(store, prefix);
        let stream = futures::stream::unfold(watcher, |mut watcher| async move {
            let item = watcher.next_item().await;
            Some((item, watcher))
        });
        WatchStream {
            inner: Box::pin(stream),
        }
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

/// Where the watcher stands.
enum Phase {
    /// Nothing is known to be current: list (at start, and after a compaction).
    Relist,
    /// Everything up to `Watcher::revision` is emitted and no watch is open: open one.
    Resume,
    /// A watch is open on member `member`.
    Watching {
        stream: Box<etcd_client::WatchStream>,
        member: usize,
    },
    /// A step failed; wait, then relist or resume.
    Backoff { relist: bool },
}

struct Watcher {
    store: Store,
    prefix: String,
    /// The last entry emitted for every key that exists as far as the consumer knows.
    known: BTreeMap<String, Entry>,
    /// Every change up to this revision has been emitted.
    revision: Revision,
    phase: Phase,
    /// Items produced by one step, handed out one per poll.
    pending: VecDeque<Result<WatchEvent, Error>>,
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

impl Watcher {
    fn new(store: Store, prefix: String) -> Watcher {
        Watcher {
            store,
            prefix,
            known: BTreeMap::new(),
            revision: 0,
            phase: Phase::Relist,
            pending: VecDeque::new(),
            delays: retry_delays(),
        }
    }

    async fn next_item(&mut self) -> Result<WatchEvent, Error> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            self.step().await;
        }
    }

    /// Moves the state machine one transition on, queueing what it produced.
    async fn step(&mut self) {
        self.phase = match std::mem::replace(&mut self.phase, Phase::Relist) {
            Phase::Relist => match self.store.list(&self.prefix).await {
                // Listed at R: queue the difference and watch from R + 1 at once, before the
                // consumer sees `Synced`, so a slow consumer does not widen the window in
                // which a compaction could force another relist.
                Ok(listing) => {
                    self.apply_listing(listing);
                    self.resume().await
                }
                Err(error) => {
                    self.pending.push_back(Err(error));
                    Phase::Backoff { relist: true }
                }
            },
            // Broken stream or failed open: a new watch from the last emitted revision + 1.
            Phase::Resume => self.resume().await,
            // Events keep it watching; a compaction relists; a break backs off and resumes.
            Phase::Watching { mut stream, member } => {
                let message = stream.message().await;
                self.on_message(message, stream, member)
            }
            // After the wait, retry what failed: the list, or the open.
            Phase::Backoff { relist } => {
                let delay = self.delays.next().unwrap_or(MAX_RETRY_DELAY);
                tokio::time::sleep(delay).await;
                if relist { Phase::Relist } else { Phase::Resume }
            }
        };
    }

    /// Opens a watch from the next revision, or queues the failure and backs off.
    async fn resume(&mut self) -> Phase {
        match self.open().await {
            Ok((stream, member)) => {
                self.delays = retry_delays();
                Phase::Watching {
                    stream: Box::new(stream),
                    member,
                }
            }
            Err(error) => {
                self.pending.push_back(Err(error));
                Phase::Backoff { relist: false }
            }
        }
    }

    fn on_message(
        &mut self,
        message: Result<Option<etcd_client::WatchResponse>, etcd_client::Error>,
        stream: Box<etcd_client::WatchStream>,
        member: usize,
    ) -> Phase {
        let broken = |watcher: &mut Watcher, reason: String| {
            watcher.store.members().demote(member);
            watcher.pending.push_back(Err(Error::WatchBroken {
                prefix: watcher.prefix.clone(),
                endpoint: watcher.store.members().endpoint(member).to_owned(),
                reason,
                resume_from: watcher.revision + 1,
            }));
            Phase::Backoff { relist: false }
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
            return Phase::Relist;
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
        Phase::Watching { stream, member }
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

    /// Emits the difference between what was emitted and `listing`, then `Synced`.
    fn apply_listing(&mut self, listing: Listing) {
        let mut current: BTreeMap<String, Entry> = listing
            .entries
            .into_iter()
            .map(|entry| (entry.key.clone(), entry))
            .collect();
        for (key, entry) in &current {
            let prev = self.known.get(key);
            if prev.is_some_and(|prev| prev.mod_revision == entry.mod_revision) {
                continue;
            }
            self.pending.push_back(Ok(WatchEvent::Put {
                entry: entry.clone(),
                prev: prev.cloned(),
            }));
        }
        for (key, prev) in std::mem::take(&mut self.known) {
            if !current.contains_key(&key) {
                self.pending.push_back(Ok(WatchEvent::Delete {
                    key,
                    revision: listing.revision,
                    prev: Some(prev),
                }));
            }
        }
        std::mem::swap(&mut self.known, &mut current);
        self.revision = listing.revision;
        self.pending.push_back(Ok(WatchEvent::Synced {
            revision: listing.revision,
        }));
    }

    /// Emits the events of one watch response that are newer than what was emitted.
    fn apply_events(&mut self, events: &[etcd_client::Event]) {
        // A response carries whole revisions (one transaction's events are never split), so
        // comparing against the revision before the response keeps every event of a
        // transaction and drops every event a previous watch already delivered.
        let seen = self.revision;
        let mut newest = seen;
        for event in events {
            let Some(kv) = event.kv() else { continue };
            let revision = kv.mod_revision();
            if revision <= seen {
                continue;
            }
            newest = newest.max(revision);
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match event.event_type() {
                EventType::Put => {
                    let entry = Entry::from(kv);
                    let prev = self.known.insert(key, entry.clone());
                    self.pending.push_back(Ok(WatchEvent::Put { entry, prev }));
                }
                EventType::Delete => {
                    // A key the consumer never saw cannot be deleted from its view.
                    if let Some(prev) = self.known.remove(&key) {
                        self.pending.push_back(Ok(WatchEvent::Delete {
                            key,
                            revision,
                            prev: Some(prev),
                        }));
                    }
                }
            }
        }
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
