//! Leadership terms as etcd recorded them, and the attribution of every Marathon write to a
//! term: the check that no deposed leader's write reached Marathon after its successor's
//! term had begun.
//!
//! The history comes from a watch of the election's keys. etcd's election makes the key with
//! the lowest create revision among the live ones the leader, so a term begins at the
//! revision where a key becomes that lowest one (its creation, or the deletion of the key
//! before it), and it is held by the replica whose identity is the key's value.
//!
//! A write is attributed, in the order the recording proxy received the writes, to a term of
//! the replica that sent it (every controller process talks to its own proxy listener, so the
//! sender is known) between two bounds that need no clock:
//!
//! - at least the latest term the watch knew to have begun when the proxy received it (the
//!   watch lags etcd, so the real term then was this one or a later one);
//! - a term that had begun at or before an etcd revision read after the proxy received it (a
//!   replica writes only once its campaign returned, so its term began before that read).
//!
//! Terms are matched in order (a write never belongs to an earlier term than the write
//! received before it), each write to the earliest term that fits; when a fitting sequence
//! exists, that choice finds it. A write no term fits is a violation: a replica that was no
//! longer leading wrote to Marathon after another replica's term had begun.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use theseus::store::{Revision, Store, WatchEvent};
use tokio_util::sync::CancellationToken;

/// The etcd prefix of the controllers' election keys (the controller's default layout).
pub const ELECTION_PREFIX: &str = "/theseus/leader/controller/";

/// One term of leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The leader's identity (`--identity`), the election key's value.
    pub identity: String,
    /// The election key's create revision: the term's fencing token.
    pub token: Revision,
    /// The revision at which the key became the leader.
    pub began: Revision,
}

/// The terms seen so far, from the watch of [`ELECTION_PREFIX`].
#[derive(Debug, Default)]
pub struct LeaderHistory {
    /// Live election keys: key → (create revision, identity).
    live: BTreeMap<String, (Revision, String)>,
    /// Every term, in the order they began.
    terms: Vec<Term>,
    /// The key of the current leader, if any.
    leader: Option<String>,
    /// Every change up to this revision has been applied.
    seen: Revision,
}

impl LeaderHistory {
    /// Applies a put of an election key (other keys only advance the seen revision).
    pub fn put(&mut self, key: &str, value: &str, create: Revision, revision: Revision) {
        if key.starts_with(ELECTION_PREFIX) {
            self.live.insert(key.to_owned(), (create, value.to_owned()));
            self.elect(revision);
        }
        self.saw(revision);
    }

    /// Applies a deletion at `revision`.
    pub fn delete(&mut self, key: &str, revision: Revision) {
        if self.live.remove(key).is_some() {
            self.elect(revision);
        }
        self.saw(revision);
    }

    /// Records that everything up to `revision` has been applied.
    pub fn saw(&mut self, revision: Revision) {
        self.seen = self.seen.max(revision);
    }

    /// Everything up to this revision has been applied.
    pub fn seen(&self) -> Revision {
        self.seen
    }

    /// The index of the latest term known to have begun.
    pub fn latest(&self) -> Option<usize> {
        self.terms.len().checked_sub(1)
    }

    /// Every term so far.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The identity of the replica that leads now, as far as the watch knows.
    pub fn leader(&self) -> Option<&str> {
        let key = self.leader.as_ref()?;
        self.live.get(key).map(|(_, identity)| identity.as_str())
    }

    /// Starts a term if the lowest live key changed at `revision`.
    fn elect(&mut self, revision: Revision) {
        let lowest = self
            .live
            .iter()
            .min_by_key(|(_, (create, _))| *create)
            .map(|(key, (create, identity))| (key.clone(), *create, identity.clone()));
        let key = lowest.as_ref().map(|(key, _, _)| key.clone());
        if key != self.leader
            && let Some((_, token, identity)) = lowest
        {
            self.terms.push(Term {
                identity,
                token,
                began: revision,
            });
        }
        self.leader = key;
    }
}

/// Keeps `history` current from a watch of everything under `/theseus/` (the election keys,
/// and the runner's own marker that tells how far the watch has come) until `stop`.
pub async fn follow(store: Store, history: Arc<Mutex<LeaderHistory>>, stop: CancellationToken) {
    let mut watch = store.watch("/theseus/");
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = watch.next() => event,
        };
        let mut history = history.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Some(Ok(WatchEvent::Put { entry, .. })) => {
                let value = String::from_utf8_lossy(&entry.value);
                history.put(
                    &entry.key,
                    &value,
                    entry.create_revision,
                    entry.mod_revision,
                );
            }
            Some(Ok(WatchEvent::Delete { key, revision, .. })) => history.delete(&key, revision),
            Some(Ok(WatchEvent::Synced { revision })) => history.saw(revision),
            // The stream recovers by itself (resumes, or relists after a compaction the
            // runner never makes past what it has seen).
            Some(Err(error)) => eprintln!("chaos: the leadership watch: {error}"),
            None => return,
        }
    }
}

/// Puts `marker` under `/theseus/` and waits until `history` has seen it, so that every term
/// begun before now is in it (the watch may lag, most of all after a member it was on died).
/// Returns the marker's revision, or `None` when the put failed or the watch did not catch up
/// by `deadline`.
pub async fn catch_up(
    store: &Store,
    history: &Mutex<LeaderHistory>,
    marker: &str,
    deadline: std::time::Instant,
) -> Option<Revision> {
    let revision = store
        .put(&format!("/theseus/chaos/{marker}"), "marker")
        .await
        .ok()?;
    loop {
        if history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .seen()
            >= revision
        {
            return Some(revision);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A Marathon write as the recording proxy saw it, with the bounds of its term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBounds {
    /// The identity of the replica that sent it.
    pub identity: String,
    /// The latest term known to have begun when the proxy received it.
    pub at_least: Option<usize>,
    /// An etcd revision read after the proxy received it (`None` when the read failed).
    pub began_by: Option<Revision>,
}

/// A write no term of its sender fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeposedWrite {
    /// The write's position among all writes, in the order the proxy received them.
    pub index: usize,
    /// Its sender.
    pub identity: String,
    /// The latest term (its leader's identity) that had begun before the write arrived.
    pub during: Option<String>,
}

/// Attributes every write to a term (see the module documentation); returns the term of each
/// write (`None` for a deposed one) and the deposed writes.
pub fn attribute(
    terms: &[Term],
    writes: &[WriteBounds],
) -> (Vec<Option<usize>>, Vec<DeposedWrite>) {
    let mut floor = 0;
    let mut assigned = Vec::with_capacity(writes.len());
    let mut deposed = Vec::new();
    for (index, write) in writes.iter().enumerate() {
        let from = floor.max(write.at_least.unwrap_or(0));
        let fits = (from..terms.len()).find(|&i| {
            terms[i].identity == write.identity
                && write.began_by.is_none_or(|by| terms[i].began <= by)
        });
        match fits {
            Some(term) => {
                floor = term;
                assigned.push(Some(term));
            }
            None => {
                deposed.push(DeposedWrite {
                    index,
                    identity: write.identity.clone(),
                    during: write.at_least.map(|i| terms[i].identity.clone()),
                });
                assigned.push(None);
            }
        }
    }
    (assigned, deposed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(lease: u32) -> String {
        format!("{ELECTION_PREFIX}{lease:x}")
    }

    fn write(identity: &str, at_least: Option<usize>, began_by: Option<Revision>) -> WriteBounds {
        WriteBounds {
            identity: identity.to_owned(),
            at_least,
            began_by,
        }
    }

    fn term(identity: &str, began: Revision) -> Term {
        Term {
            identity: identity.to_owned(),
            token: began,
            began,
        }
    }

    #[test]
    fn a_waiting_candidate_begins_its_term_when_the_leader_key_goes() {
        let mut history = LeaderHistory::default();
        history.put(&key(1), "a", 10, 10);
        history.put(&key(2), "b", 11, 11);
        history.put("/theseus/other", "x", 12, 12);
        assert_eq!(history.terms(), [term("a", 10)]);
        history.delete(&key(1), 13);
        assert_eq!(history.latest(), Some(1));
        assert_eq!(history.terms()[1].identity, "b");
        assert_eq!(history.terms()[1].token, 11);
        assert_eq!(history.terms()[1].began, 13);
        assert_eq!(history.seen(), 13);
    }

    #[test]
    fn a_replica_elected_again_has_a_second_term() {
        let mut history = LeaderHistory::default();
        history.put(&key(1), "a", 10, 10);
        history.delete(&key(1), 11);
        history.put(&key(2), "a", 12, 12);
        let identities: Vec<&str> = history
            .terms()
            .iter()
            .map(|t| t.identity.as_str())
            .collect();
        assert_eq!(identities, ["a", "a"]);
    }

    #[test]
    fn writes_that_follow_the_terms_in_order_are_all_attributed() {
        let terms = [term("a", 10), term("b", 20), term("a", 30)];
        let writes = [
            write("a", Some(0), Some(15)),
            // Received before the watch knew of b's term: still b's.
            write("b", Some(0), Some(25)),
            write("a", Some(1), Some(31)),
        ];
        let (assigned, deposed) = attribute(&terms, &writes);
        assert_eq!(assigned, [Some(0), Some(1), Some(2)]);
        assert!(deposed.is_empty());
    }

    #[test]
    fn a_write_after_the_successors_term_began_is_deposed() {
        let terms = [term("a", 10), term("b", 20)];
        let writes = [write("b", Some(1), Some(22)), write("a", Some(1), Some(23))];
        let (_, deposed) = attribute(&terms, &writes);
        assert_eq!(
            deposed,
            [DeposedWrite {
                index: 1,
                identity: "a".into(),
                during: Some("b".into()),
            }]
        );
    }

    #[test]
    fn a_deposed_write_is_not_excused_by_a_later_term_of_the_same_replica() {
        // a paused, b led, a wrote before it was elected again at revision 40.
        let terms = [term("a", 10), term("b", 20), term("a", 40)];
        let writes = [write("a", Some(1), Some(25))];
        let (_, deposed) = attribute(&terms, &writes);
        assert_eq!(deposed.len(), 1);
    }

    #[test]
    fn a_late_write_of_the_last_term_before_anyone_else_leads_is_its_own() {
        // a's key is gone, nobody leads yet: a's write harms no successor.
        let terms = [term("a", 10)];
        let writes = [write("a", Some(0), Some(12))];
        let (assigned, deposed) = attribute(&terms, &writes);
        assert_eq!(assigned, [Some(0)]);
        assert!(deposed.is_empty());
    }
}
