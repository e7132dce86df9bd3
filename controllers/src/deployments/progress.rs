//! The progress deadline of a revision: how long a new `/desired` revision may take to reach
//! `Running` before it has failed.
//!
//! What it promises: [`apply_deadline`] is pure. The clock of a revision starts when the
//! controller first acts on it and is kept in its status (`revision_started_at`), so it
//! survives restarts and failovers; it stops for good when the revision first runs
//! (`revision_running_at`), so a later loss of instances is `Degraded`, not a failed rollout
//! (a crash loop within the deadline still fails it: see [`super::crash_loop`]).
//! A revision past its deadline is `Failed` with the `Progressing` reason `DeadlineExceeded`,
//! whose message says what it was waiting for and the last task failure. The same inputs give
//! the same report, so an idle resync writes nothing. While paused, no clock runs.
//!
//! What it does not do: roll back (the reconcile decides that, from the revision history).

use std::time::Duration;

use chrono::{DateTime, Utc};
use theseus::api::{Condition, ConditionKind, DeploymentStatus, Phase, Reason};

/// Where the revision stands against its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The revision reached `Running` (or no clock runs): nothing to wait for.
    Met,
    /// Still within it: look again after this long.
    Pending(Duration),
    /// Passed without reaching `Running`.
    Exceeded,
}

/// Carries the revision's clock from `prior` (the status written before, if it describes the
/// same revision) into `status`, and marks `status` failed when the deadline has passed.
pub fn apply_deadline(
    status: &mut DeploymentStatus,
    prior: Option<&DeploymentStatus>,
    deadline: Duration,
    now: DateTime<Utc>,
) -> Deadline {
    let same_revision = prior.filter(|prior| prior.observed_revision == status.observed_revision);
    let started = same_revision
        .and_then(|prior| prior.revision_started_at)
        .unwrap_or(now);
    let running = same_revision
        .and_then(|prior| prior.revision_running_at)
        .or((status.phase == Phase::Running).then_some(now));
    status.revision_started_at = Some(started);
    status.revision_running_at = running;
    if running.is_some() {
        return Deadline::Met;
    }
    let due = started + chrono::Duration::from_std(deadline).unwrap_or(chrono::Duration::MAX);
    if now < due {
        return Deadline::Pending((due - now).to_std().unwrap_or_default());
    }
    let waiting = status
        .condition(ConditionKind::Progressing)
        .map(|condition| condition.message.clone())
        .unwrap_or_default();
    let mut message = format!(
        "revision {} did not reach Running within {} s of {}",
        status.observed_revision,
        deadline.as_secs(),
        started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if !waiting.is_empty() {
        message.push_str(&format!("; {waiting}"));
    }
    if let Some(failure) = &status.last_task_failure {
        message.push_str(&format!(
            "; last task failure: {} {} on {}",
            failure.state, failure.message, failure.host
        ));
    }
    let exceeded = Condition::fails(
        ConditionKind::Progressing,
        Reason::DeadlineExceeded,
        message,
    );
    match status
        .conditions
        .iter_mut()
        .find(|condition| condition.is_about(ConditionKind::Progressing))
    {
        Some(condition) => *condition = exceeded,
        None => status.conditions.push(exceeded),
    }
    status.phase = Phase::Failed;
    Deadline::Exceeded
}

/// A status of a paused deployment runs no clock: it starts afresh on resume.
pub fn stop_clock(status: &mut DeploymentStatus) {
    status.revision_started_at = None;
    status.revision_running_at = None;
}

#[cfg(test)]
mod tests {
    use theseus::api::{InstanceCounts, LastTaskFailure};

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn status(revision: i64, phase: Phase) -> DeploymentStatus {
        DeploymentStatus {
            observed_revision: revision,
            phase,
            conditions: vec![Condition::holds(
                ConditionKind::Progressing,
                Reason::Deploying,
                "Marathon deployment(s) [d1] in progress",
            )],
            instances: InstanceCounts::default(),
            app_id: Some("/web/dev".into()),
            app_version: None,
            deployment_ids: vec![],
            last_task_failure: None,
            revision_started_at: None,
            revision_running_at: None,
            revision_task_failures: 0,
            updated_at: at(0),
        }
    }

    const TEN: Duration = Duration::from_secs(10);

    #[test]
    fn the_clock_starts_when_the_revision_is_first_acted_on_and_survives_in_the_status() {
        let mut first = status(7, Phase::Deploying);
        assert_eq!(
            apply_deadline(&mut first, None, TEN, at(0)),
            Deadline::Pending(TEN)
        );
        assert_eq!(first.revision_started_at, Some(at(0)));
        let mut later = status(7, Phase::Deploying);
        assert_eq!(
            apply_deadline(&mut later, Some(&first), TEN, at(4)),
            Deadline::Pending(Duration::from_secs(6))
        );
        assert!(
            later.same_report(&first),
            "nothing new to write while waiting"
        );
        let mut next_revision = status(8, Phase::Deploying);
        apply_deadline(&mut next_revision, Some(&later), TEN, at(9));
        assert_eq!(
            next_revision.revision_started_at,
            Some(at(9)),
            "a new clock"
        );
    }

    #[test]
    fn a_revision_past_its_deadline_fails_naming_what_it_waited_for_and_the_last_failure() {
        let mut first = status(7, Phase::Deploying);
        apply_deadline(&mut first, None, TEN, at(0));
        let mut late = status(7, Phase::Deploying);
        late.last_task_failure = Some(LastTaskFailure {
            task_id: "t1".into(),
            state: "TASK_FAILED".into(),
            message: "Command exited with status 1".into(),
            host: "127.0.0.11".into(),
            timestamp: String::new(),
        });
        assert_eq!(
            apply_deadline(&mut late, Some(&first), TEN, at(10)),
            Deadline::Exceeded
        );
        assert_eq!(late.phase, Phase::Failed);
        let condition = late.condition(ConditionKind::Progressing).unwrap();
        assert!(condition.is(Reason::DeadlineExceeded));
        assert!(!condition.status);
        for part in [
            "revision 7",
            "10 s",
            "[d1] in progress",
            "exited with status 1",
        ] {
            assert!(condition.message.contains(part), "{}", condition.message);
        }
        let mut again = status(7, Phase::Deploying);
        again.last_task_failure = late.last_task_failure.clone();
        apply_deadline(&mut again, Some(&late), TEN, at(70));
        assert!(again.same_report(&late), "an idle resync rewrites nothing");
    }

    #[test]
    fn once_running_the_deadline_is_met_for_good() {
        let mut first = status(7, Phase::Deploying);
        apply_deadline(&mut first, None, TEN, at(0));
        let mut running = status(7, Phase::Running);
        assert_eq!(
            apply_deadline(&mut running, Some(&first), TEN, at(3)),
            Deadline::Met
        );
        let mut degraded = status(7, Phase::Degraded);
        assert_eq!(
            apply_deadline(&mut degraded, Some(&running), TEN, at(60)),
            Deadline::Met
        );
        assert_eq!(degraded.phase, Phase::Degraded);
        assert_eq!(degraded.revision_running_at, Some(at(3)));
    }
}
