//! The decision journal of a deployment (`/observed/<service>/<name>/journal/<sequence>`):
//! the decisions one reconcile made, gathered to be written at once.
//!
//! What it promises: one entry per decision, never one per reconcile. Marathon writes are
//! decisions; a condition reason is journaled only when it turns to that reason
//! ([`Journal::on_reason`]), so an idle resync journals nothing. The journal keeps the last
//! [`JOURNAL_LENGTH`] entries.

use chrono::Utc;
use theseus::api::{ConditionKind, Decision, DeploymentStatus, JournalEntry, Reason};

/// How many entries a deployment's journal keeps.
pub const JOURNAL_LENGTH: usize = 100;

/// The decisions of one reconcile of one revision.
#[derive(Debug)]
pub struct Journal {
    revision: i64,
    /// The entries, in the order they were decided.
    pub entries: Vec<JournalEntry>,
}

impl Journal {
    /// No decision yet about `revision`.
    pub fn new(revision: i64) -> Self {
        Self {
            revision,
            entries: Vec::new(),
        }
    }

    /// Adds a decision.
    pub fn push(&mut self, decision: Decision, message: String) {
        self.entries.push(JournalEntry {
            at: Utc::now(),
            revision: self.revision,
            decision,
            message,
        });
    }

    /// The decisions so far, leaving none.
    pub fn take(&mut self) -> Journal {
        Journal {
            revision: self.revision,
            entries: std::mem::take(&mut self.entries),
        }
    }

    /// Adds a decision, if there is one.
    pub fn extend(&mut self, decision: Option<(Decision, String)>) {
        if let Some((decision, message)) = decision {
            self.push(decision, message);
        }
    }

    /// Adds `decision` when `status`'s `Progressing` reason is `reason` and `prior`'s was
    /// not (or was about another revision).
    pub fn on_reason(
        &mut self,
        prior: Option<&DeploymentStatus>,
        status: &DeploymentStatus,
        reason: Reason,
        decision: Decision,
    ) {
        let Some(now) = status
            .condition(ConditionKind::Progressing)
            .filter(|condition| condition.is(reason))
        else {
            return;
        };
        let before = prior
            .filter(|prior| prior.observed_revision == status.observed_revision)
            .and_then(|prior| prior.condition(ConditionKind::Progressing))
            .is_some_and(|condition| condition.is(reason));
        if !before {
            self.push(decision, now.message.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use theseus::api::{Condition, InstanceCounts, Phase};

    use super::*;

    fn status(revision: i64, reason: Reason) -> DeploymentStatus {
        DeploymentStatus {
            observed_revision: revision,
            phase: Phase::Deploying,
            conditions: vec![Condition::fails(ConditionKind::Progressing, reason, "why")],
            instances: InstanceCounts::default(),
            app_id: None,
            app_version: None,
            deployment_ids: vec![],
            last_task_failure: None,
            revision_started_at: None,
            revision_running_at: None,
            revision_task_failures: 0,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_reason_is_journaled_when_it_starts_not_while_it_lasts() {
        let mut journal = Journal::new(7);
        let paused = status(7, Reason::Paused);
        journal.on_reason(None, &paused, Reason::Paused, Decision::Paused);
        assert_eq!(journal.entries.len(), 1);
        journal.on_reason(Some(&paused), &paused, Reason::Paused, Decision::Paused);
        assert_eq!(journal.entries.len(), 1, "still paused: nothing new");
        journal.on_reason(
            Some(&status(6, Reason::Paused)),
            &paused,
            Reason::Paused,
            Decision::Paused,
        );
        assert_eq!(journal.entries.len(), 2, "a new revision, paused again");
        journal.on_reason(
            None,
            &status(7, Reason::Deployed),
            Reason::Paused,
            Decision::Paused,
        );
        assert_eq!(journal.entries.len(), 2);
    }
}
