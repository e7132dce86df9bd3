//! The revision history of a deployment, as pure steps: the record of a revision the
//! controller starts acting on, how records move on (running, failed, rolled back,
//! superseded), and which earlier revision a failed one goes back to.
//!
//! What it promises: a revision is rolled back only to a recorded revision that reached
//! `Running`, is not the failed one, maps to a different app (spec hash) and still parses as
//! a valid spec, and did not fail after all (a crash loop may start after a moment of
//! `Running`); the most recent such revision wins. Outcomes only move forward: a record
//! `RolledBack` or `Superseded` stays so.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use theseus::api::{DeploymentSpec, Reason, RevisionOutcome, RevisionRecord, SpecText};

/// The largest spec a record keeps (as JSON text): a record holds one spec, and etcd takes at
/// most 1.5 MiB in one request. A revision with a larger spec is recorded without it, and so
/// cannot be rolled back to nor undone to.
pub const MAX_RECORDED_SPEC: usize = 512 * 1024;

/// The record of a revision the controller starts acting on, `spec_text` being the
/// `/desired` value `spec` was read from; its text is what the record keeps.
pub fn started(
    revision: i64,
    spec_text: &[u8],
    spec: &DeploymentSpec,
    spec_hash: &str,
    now: DateTime<Utc>,
) -> RevisionRecord {
    RevisionRecord {
        revision,
        spec: if spec_text.len() <= MAX_RECORDED_SPEC {
            SpecText::from_json(spec_text).unwrap_or_default()
        } else {
            SpecText::not_kept()
        },
        spec_hash: spec_hash.to_owned(),
        change_cause: spec.change_cause.clone(),
        outcome: RevisionOutcome::Deploying,
        failure_reason: None,
        failure_message: None,
        rolled_back_to: None,
        app_version: None,
        started_at: now,
        running_at: None,
        ended_at: None,
    }
}

/// Whether the failure of `record`'s revision is decided for good, until /desired changes:
/// rolled back, or failed by a crash loop. A revision failed by its deadline alone may still
/// run late, and is then `Running`.
pub fn decided(record: &RevisionRecord) -> bool {
    match record.outcome {
        RevisionOutcome::RolledBack => true,
        RevisionOutcome::Failed => {
            record.failure_reason.as_deref() != Some(Reason::DeadlineExceeded.as_str())
        }
        _ => false,
    }
}

/// One deployment's revision records by revision, as the copy of its history holds them
/// (shared: a reconcile reads them without copying them).
pub type Revisions = BTreeMap<u64, Arc<RevisionRecord>>;

/// The records a new revision ends: those still deploying or running, now superseded.
pub fn superseded(history: &Revisions, revision: i64, now: DateTime<Utc>) -> Vec<RevisionRecord> {
    history
        .values()
        .filter(|record| record.revision != revision)
        .filter(|record| {
            matches!(
                record.outcome,
                RevisionOutcome::Deploying | RevisionOutcome::Running
            )
        })
        .map(|record| RevisionRecord {
            outcome: RevisionOutcome::Superseded,
            ended_at: Some(now),
            ..RevisionRecord::clone(record)
        })
        .collect()
}

/// `record` once it reached `Running` with app version `version`; `None` when it says so
/// already or has ended for good.
pub fn running(
    record: &RevisionRecord,
    version: Option<&str>,
    at: DateTime<Utc>,
) -> Option<RevisionRecord> {
    let late = record.outcome == RevisionOutcome::Failed && !decided(record);
    if record.outcome != RevisionOutcome::Deploying && !late {
        return None;
    }
    Some(RevisionRecord {
        outcome: RevisionOutcome::Running,
        running_at: record.running_at.or(Some(at)),
        app_version: version.map(str::to_owned).or(record.app_version.clone()),
        failure_reason: None,
        failure_message: None,
        ended_at: None,
        ..record.clone()
    })
}

/// `record` failed for `reason`; rolled back to `to` if given.
pub fn failed(
    record: &RevisionRecord,
    reason: Reason,
    message: &str,
    to: Option<i64>,
    now: DateTime<Utc>,
) -> RevisionRecord {
    RevisionRecord {
        outcome: if to.is_some() {
            RevisionOutcome::RolledBack
        } else {
            RevisionOutcome::Failed
        },
        failure_reason: Some(reason.as_str().to_owned()),
        failure_message: Some(message.to_owned()),
        rolled_back_to: to,
        ended_at: Some(now),
        ..record.clone()
    }
}

/// The revision a failed one goes back to, with its spec; see the module documentation.
pub fn rollback_target<'a>(
    history: &'a Revisions,
    failed: &RevisionRecord,
) -> Option<(&'a RevisionRecord, DeploymentSpec)> {
    history.values().rev().find_map(|record| {
        if record.revision == failed.revision
            || !record.reached_running()
            || matches!(
                record.outcome,
                RevisionOutcome::Failed | RevisionOutcome::RolledBack
            )
            || record.spec_hash == failed.spec_hash
        {
            return None;
        }
        let spec = record.spec.parse().ok()?;
        Some((record.as_ref(), spec))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use theseus::api::parse_spec;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn record(revision: i64, hash: &str, outcome: RevisionOutcome) -> RevisionRecord {
        let text = json!({"cmd": format!("sleep {revision}")}).to_string();
        let spec = parse_spec(text.as_bytes()).unwrap();
        let mut record = started(revision, text.as_bytes(), &spec, hash, at(revision));
        record.outcome = outcome;
        if outcome != RevisionOutcome::Deploying {
            record.running_at = matches!(
                outcome,
                RevisionOutcome::Running | RevisionOutcome::Superseded
            )
            .then_some(at(revision + 1));
        }
        record
    }

    fn history(records: Vec<RevisionRecord>) -> Revisions {
        records
            .into_iter()
            .map(|record| (record.revision as u64, Arc::new(record)))
            .collect()
    }

    #[test]
    fn a_failed_revision_goes_back_to_the_latest_other_app_that_ran() {
        let failed = record(9, "c", RevisionOutcome::Deploying);
        let history = history(vec![
            record(3, "a", RevisionOutcome::Superseded),
            record(5, "b", RevisionOutcome::Superseded),
            record(7, "x", RevisionOutcome::RolledBack),
            record(8, "c", RevisionOutcome::Superseded),
            failed.clone(),
        ]);
        let (target, spec) = rollback_target(&history, &failed).unwrap();
        assert_eq!(target.revision, 5, "8 is the same app, 7 never ran");
        assert_eq!(spec.cmd.as_deref(), Some("sleep 5"));
    }

    #[test]
    fn without_a_revision_that_ran_there_is_nothing_to_go_back_to() {
        let failed = record(4, "b", RevisionOutcome::Deploying);
        let history = history(vec![
            record(2, "a", RevisionOutcome::Failed),
            failed.clone(),
        ]);
        assert!(rollback_target(&history, &failed).is_none());
    }

    #[test]
    fn a_spec_too_large_to_record_is_left_out_and_never_gone_back_to() {
        let text = json!({"cmd": "x".repeat(MAX_RECORDED_SPEC)}).to_string();
        let spec = parse_spec(text.as_bytes()).unwrap();
        let mut large = started(2, text.as_bytes(), &spec, "a", at(2));
        assert!(!large.spec.is_kept());
        large.outcome = RevisionOutcome::Superseded;
        large.running_at = Some(at(3));
        let failed = record(4, "b", RevisionOutcome::Deploying);
        let history = history(vec![large, failed.clone()]);
        assert!(rollback_target(&history, &failed).is_none());
    }

    #[test]
    fn outcomes_move_forward_only() {
        let deploying = record(4, "b", RevisionOutcome::Deploying);
        let ran = running(&deploying, Some("v4"), at(10)).unwrap();
        assert_eq!(ran.outcome, RevisionOutcome::Running);
        assert_eq!(ran.app_version.as_deref(), Some("v4"));
        assert!(running(&ran, Some("v4"), at(11)).is_none(), "said already");
        let other = record(3, "a", RevisionOutcome::Deploying);
        let rolled = failed(&other, Reason::CrashLooping, "exits", Some(2), at(12));
        assert_eq!(rolled.outcome, RevisionOutcome::RolledBack);
        assert!(running(&rolled, None, at(13)).is_none());
        let history = history(vec![ran.clone(), rolled.clone()]);
        let ended = superseded(&history, 5, at(14));
        assert_eq!(ended.len(), 1, "only the running one");
        assert_eq!(ended[0].outcome, RevisionOutcome::Superseded);
    }
}
