//! A revision's rollout, for the deployments reconcile: its record in the history when the
//! controller first acts on it, its record once it runs (both written with the reconcile's
//! status, in one transaction), and when it fails, the decision (roll back or leave the app)
//! recorded before Marathon is asked, with one journal entry per decision.
//!
//! What it promises: a failed revision is rolled back only when its spec says
//! `auto_rollback` and the history holds a revision to go back to
//! ([`history::rollback_target`]); the rollback is a full update of the app to that revision,
//! overriding the failed revision's deployment, never a scale to zero or a delete, and never a
//! write to `/desired`. A controller that stops between the record and the Marathon write
//! finds the decision after its restart and finishes it, without deciding again; the
//! failpoint `deployments::before_rollback` sits there, for tests that kill it there.

use chrono::Utc;
use theseus::api::{
    Condition, ConditionKind, Decision, DeploymentKey, DeploymentSpec, DeploymentStatus, Phase,
    Reason, RevisionRecord,
};
use theseus::store::Entry;

use super::super::history::{self, Revisions};
use super::super::records::{Recording, RecordsError};
use super::super::status::Situation;
use super::{AFTER_MARATHON_WRITE, BEFORE_ROLLBACK, Deployments, ReconcileError, unavailable};
use crate::runtime::runner::Action;
use theseus::mapping::DesiredApp;

/// What a rollback did to Marathon.
pub(super) struct RolledBack {
    /// The failed revision's record, rolled back.
    pub(super) record: RevisionRecord,
    pub(super) situation: Situation<'static>,
    pub(super) action: Action,
    pub(super) failure: Option<ReconcileError>,
    /// The instances the revision gone back to asks for.
    pub(super) instances: u32,
    /// Whether the revision gone back to has health checks.
    pub(super) health_checked: bool,
}

/// What became of a failed revision.
pub(super) enum Decided {
    /// Rolled back.
    RolledBack(RolledBack),
    /// Failed, its app left as it is; the record says so.
    Failed(RevisionRecord),
}

impl Deployments {
    /// The record of `entry`'s revision, recorded (with the end of the revisions it
    /// supersedes) if this is the first time the controller acts on it. It is written with
    /// the reconcile's status: a controller that stops before then records it again.
    pub(super) fn begin_revision(
        &self,
        entry: &Entry,
        spec: &DeploymentSpec,
        desired: &DesiredApp,
        history: &Revisions,
        recording: &mut Recording,
    ) -> RevisionRecord {
        let revision = entry.mod_revision;
        if let Some(record) = u64::try_from(revision).ok().and_then(|r| history.get(&r)) {
            return RevisionRecord::clone(record);
        }
        let now = Utc::now();
        let record = history::started(revision, &entry.value, spec, desired.hash.as_str(), now);
        recording.history(history::superseded(history, revision, now));
        recording.history([record.clone()]);
        recording.journal.push(
            Decision::RevisionStarted,
            match &spec.change_cause {
                Some(cause) => format!("started revision {revision}: {cause}"),
                None => format!("started revision {revision}"),
            },
        );
        record
    }

    /// Records that `record`'s revision failed for `reason` (the status says how), and rolls
    /// it back when the spec allows and the history has a revision to go back to; what the
    /// rollback did, if there was one.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fail_revision(
        &self,
        key: &DeploymentKey,
        spec: &DeploymentSpec,
        record: &RevisionRecord,
        history: &Revisions,
        reason: Reason,
        status: &mut DeploymentStatus,
        recording: &mut Recording,
    ) -> Result<Decided, ReconcileError> {
        let now = Utc::now();
        let message = status
            .condition(ConditionKind::Progressing)
            .map(|condition| condition.message.clone())
            .unwrap_or_default();
        let target = spec
            .auto_rollback
            .then(|| history::rollback_target(history, record))
            .flatten();
        let Some((target, target_spec)) = target else {
            let failed = history::failed(record, reason, &message, None, now);
            recording.history([failed.clone()]);
            recording.journal.push(
                Decision::RevisionFailed,
                format!(
                    "revision {} failed ({reason}: {message}); {}",
                    record.revision,
                    if spec.auto_rollback {
                        "no earlier revision reached Running, so the app is left as it is"
                    } else {
                        "auto_rollback is off, so the app is left as it is"
                    }
                ),
            );
            return Ok(Decided::Failed(failed));
        };
        // The decision is recorded, and journaled, before Marathon is asked: a controller
        // that stops in between finds it after its restart and finishes the rollback, never
        // starting a second one, and leaves it journaled once.
        let rolled = history::failed(record, reason, &message, Some(target.revision), now);
        recording.history([rolled.clone()]);
        recording.journal.push(
            Decision::RolledBack,
            format!(
                "rolled revision {} back to revision {} ({reason}: {message})",
                record.revision, target.revision
            ),
        );
        self.record(key, spec, recording.take(), None).await?;
        fail::fail_point!(BEFORE_ROLLBACK);
        let target_app = self.mapping.desired_app(key, &target_spec);
        let app_id = target_app.id().clone();
        let converged = match self.snapshot.current_app(&app_id).await {
            Ok(app) => self.converge(key, &target_app, app, true).await,
            Err(error) => unavailable(key, error),
        };
        if converged.wrote {
            fail::fail_point!(AFTER_MARATHON_WRITE);
        }
        recording.journal.extend(converged.decision);
        Ok(Decided::RolledBack(RolledBack {
            record: rolled,
            situation: converged.situation,
            action: converged.action,
            failure: converged.failure,
            instances: target_spec.instances,
            health_checked: !target_spec.health_checks.is_empty(),
        }))
    }

    /// Writes what `recording` holds, and `status`, keeping the history `spec` asks for.
    pub(super) async fn record(
        &self,
        key: &DeploymentKey,
        spec: &DeploymentSpec,
        recording: Recording,
        status: Option<DeploymentStatus>,
    ) -> Result<(), ReconcileError> {
        // The current revision's record is always kept: it holds the rollback decision.
        let keep = usize::try_from(spec.revision_history_limit.max(1)).unwrap_or(usize::MAX);
        self.records
            .write(key, recording, keep, status)
            .await
            .map_err(|error| match error {
                RecordsError::Lists(source) => ReconcileError::Record {
                    key: key.clone(),
                    source: Box::new(source),
                },
                RecordsError::Status(source) => ReconcileError::Status {
                    key: key.clone(),
                    source: Box::new(source),
                },
            })
    }
}

/// Records that `record`'s revision reached `Running`, once.
pub(super) fn record_running(
    record: &RevisionRecord,
    status: &DeploymentStatus,
    recording: &mut Recording,
) {
    let at = status.revision_running_at.unwrap_or_else(Utc::now);
    let Some(running) = history::running(record, status.app_version.as_deref(), at) else {
        return;
    };
    recording.history([running]);
    recording.journal.push(
        Decision::RevisionRunning,
        format!(
            "revision {} runs (version {})",
            record.revision,
            status.app_version.as_deref().unwrap_or("unknown")
        ),
    );
}

/// Reports a revision whose failure was decided (see [`history::decided`]): `Failed`, with
/// the `Progressing` reason `RolledBack` naming the failed revision, why it failed and where it
/// went back to, or the reason it failed for. The same record gives the same report, so an
/// idle resync writes nothing.
pub(super) fn report_failure(
    status: &mut DeploymentStatus,
    prior: Option<&DeploymentStatus>,
    record: &RevisionRecord,
) {
    let same_revision = prior.filter(|prior| prior.observed_revision == status.observed_revision);
    let recorded_reason = record
        .failure_reason
        .as_deref()
        .and_then(Reason::parse)
        .unwrap_or(Reason::CrashLooping);
    let why = record
        .failure_message
        .as_deref()
        .unwrap_or("no reason recorded");
    let condition = match record.rolled_back_to {
        Some(to) => Condition::fails(
            ConditionKind::Progressing,
            Reason::RolledBack,
            format!(
                "revision {} failed ({recorded_reason}: {why}); Marathon app `{}` was rolled \
                 back to revision {to}, and revision {} will not be tried again until /desired \
                 changes",
                record.revision,
                status.app_id.as_deref().unwrap_or_default(),
                record.revision,
            ),
        ),
        None => Condition::fails(
            ConditionKind::Progressing,
            recorded_reason,
            format!(
                "{why}; the app is left as it is until /desired changes (no rollback: no \
                 earlier revision reached Running, or auto_rollback is off)"
            ),
        ),
    };
    match status
        .conditions
        .iter_mut()
        .find(|condition| condition.is_about(ConditionKind::Progressing))
    {
        Some(existing) => *existing = condition,
        None => status.conditions.push(condition),
    }
    status.phase = Phase::Failed;
    status.revision_started_at = Some(record.started_at);
    status.revision_running_at = None;
    status.revision_task_failures = same_revision.map_or(0, |prior| prior.revision_task_failures);
}
