//! Crash loops: a new revision whose tasks keep failing has failed before its deadline.
//!
//! What it promises: [`count_failures`] is pure. It counts the task failures Marathon reports
//! for the app version of the revision (`lastTaskFailure.version` equal to the app's
//! version) that are the task's own (`TASK_FAILED`, `TASK_ERROR`; not a lost agent), each
//! task once, while the caller says the revision is young enough (until it
//! runs, and within its progress deadline after that); the count lives in
//! the status (`revision_task_failures`), so it survives restarts and costs no write of its
//! own (the status changes with every new failure anyway). More failures than the spec's
//! `crash_loop_limit` make the revision `Failed` with the reason `CrashLooping`, whose message
//! has the last task failure (how the task exited) and when Marathon launches the next task.
//!
//! What it does not promise: to see every failure. Failures that come faster than reconciles
//! are counted once; the progress deadline still bounds such a revision.

use theseus::api::{Condition, ConditionKind, DeploymentStatus, Phase, Reason};
use theseus::marathon::{App, TaskState};

use super::waiting::set_progressing;

/// Carries the revision's failure count from `prior` into `status`, adding the app's last
/// failure if `counting`, new and of the app's current version.
pub fn count_failures(
    status: &mut DeploymentStatus,
    prior: Option<&DeploymentStatus>,
    app: Option<&App>,
    counting: bool,
) {
    let same_revision = prior.filter(|prior| prior.observed_revision == status.observed_revision);
    let mut count = same_revision.map_or(0, |prior| prior.revision_task_failures);
    if counting
        && let Some(app) = app
        && let Some(failure) = &app.last_task_failure
        && failure.version.is_some()
        && failure.version == app.version
        // The task's own failure (it exited non-zero, or could not start); a lost agent or
        // an operator's kill is no crash loop.
        && matches!(failure.state, Some(TaskState::Failed | TaskState::Error))
        && prior
            .and_then(|prior| prior.last_task_failure.as_ref())
            .is_none_or(|seen| seen.task_id != failure.task_id.as_str())
    {
        count += 1;
    }
    status.revision_task_failures = count;
}

/// Whether the revision of `status` crash-loops: more failures than `limit`.
pub fn crash_loops(status: &DeploymentStatus, limit: u32) -> bool {
    status.revision_task_failures > limit
}

/// Marks `status` failed as crash-looping if its revision does (see [`crash_loops`]), with
/// the last task failure (its message says how the task exited) and `next_launch`, when
/// Marathon launches the next task; whether it does.
pub fn apply_crash_loop(status: &mut DeploymentStatus, limit: u32, next_launch: &str) -> bool {
    if !crash_loops(status, limit) {
        return false;
    }
    let mut message = format!(
        "revision {}: {} tasks of its version failed before it ran (crash_loop_limit {limit})",
        status.observed_revision, status.revision_task_failures
    );
    if let Some(failure) = &status.last_task_failure {
        message.push_str(&format!(
            "; last task failure: {} {} on {}",
            failure.state, failure.message, failure.host
        ));
    }
    if !next_launch.is_empty() {
        message.push_str(&format!("; {next_launch}"));
    }
    set_progressing(
        status,
        Condition::fails(ConditionKind::Progressing, Reason::CrashLooping, message),
    );
    status.phase = Phase::Failed;
    true
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use theseus::api::{InstanceCounts, LastTaskFailure};

    use super::*;

    fn status(revision: i64, failed_task: Option<&str>) -> DeploymentStatus {
        DeploymentStatus {
            observed_revision: revision,
            phase: Phase::Deploying,
            conditions: vec![],
            instances: InstanceCounts::default(),
            app_id: Some("/web/dev".into()),
            app_version: Some("v2".into()),
            deployment_ids: vec![],
            last_task_failure: failed_task.map(|task| LastTaskFailure {
                task_id: task.into(),
                state: "TASK_FAILED".into(),
                message: "exited with status 3".into(),
                host: "127.0.0.11".into(),
                timestamp: String::new(),
            }),
            revision_started_at: Some(Utc::now()),
            revision_running_at: None,
            revision_task_failures: 0,
            updated_at: Utc::now(),
        }
    }

    fn app(failed_task: &str, failed_version: &str) -> App {
        serde_json::from_value(
            json!({"id": "/web/dev", "version": "v2", "lastTaskFailure": {
            "appId": "/web/dev", "taskId": failed_task, "state": "TASK_FAILED",
            "version": failed_version}}),
        )
        .unwrap()
    }

    #[test]
    fn each_failure_of_the_new_version_counts_once() {
        let mut first = status(7, Some("t1"));
        count_failures(
            &mut first,
            Some(&status(6, Some("t0"))),
            Some(&app("t1", "v2")),
            true,
        );
        assert_eq!(first.revision_task_failures, 1);
        let mut again = status(7, Some("t1"));
        count_failures(&mut again, Some(&first), Some(&app("t1", "v2")), true);
        assert_eq!(again.revision_task_failures, 1, "the same failure");
        let mut second = status(7, Some("t2"));
        count_failures(&mut second, Some(&again), Some(&app("t2", "v2")), true);
        assert_eq!(second.revision_task_failures, 2);
        let mut old = status(7, Some("t3"));
        count_failures(&mut old, Some(&second), Some(&app("t3", "v1")), true);
        assert_eq!(old.revision_task_failures, 2, "a task of the old version");
        let mut lost = status(7, Some("t5"));
        let mut lost_app = app("t5", "v2");
        lost_app.last_task_failure.as_mut().unwrap().state = Some(TaskState::Lost);
        count_failures(&mut lost, Some(&old), Some(&lost_app), true);
        assert_eq!(
            lost.revision_task_failures, 2,
            "a lost agent is no crash loop"
        );
        let mut late = status(7, Some("t4"));
        count_failures(&mut late, Some(&old), Some(&app("t4", "v2")), false);
        assert_eq!(late.revision_task_failures, 2, "no longer counting");
    }

    #[test]
    fn past_the_limit_the_revision_fails_as_crash_looping() {
        let mut status = status(7, Some("t4"));
        status.revision_task_failures = 3;
        assert!(!apply_crash_loop(&mut status, 3, "next launch in 2 s"));
        status.revision_task_failures = 4;
        assert!(apply_crash_loop(&mut status, 3, "next launch in 2 s"));
        assert_eq!(status.phase, Phase::Failed);
        let condition = status.condition(ConditionKind::Progressing).unwrap();
        assert!(condition.is(Reason::CrashLooping));
        for part in ["exited with status 3", "next launch in 2 s"] {
            assert!(condition.message.contains(part), "{}", condition.message);
        }
    }
}
