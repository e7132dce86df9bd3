//! The deployments reconcile: one `/desired/<service>/<name>` key against Marathon.
//!
//! What it promises, for one key (never reconciled twice at once):
//! - a valid spec and no app: the mapped app is created; an owned app that differs (spec hash,
//!   or fields edited by hand) is replaced and Marathon rolls it; an instances-only difference
//!   is a scale, without a restart;
//! - a lock on the app held only by deployments this controller started for the same key is
//!   overridden (`force`): the newer spec wins; a lock held by anything else is waited out
//!   (requeued, and the status says so);
//! - the key deleted: the owned app is deleted (and its status removed); an app without the
//!   ownership labels for the key is never changed or deleted, whatever its id;
//! - an invalid spec: status `Invalid` with every error, no Marathon call, the running app left
//!   exactly as it was;
//! - Marathon unreachable or failing: the status says so and the key backs off. Every write
//!   goes through the snapshot ([`MarathonSnapshot::writes`]), which records its answer and,
//!   when its outcome is unknown, marks the app stale, so the next attempt re-reads it before
//!   deciding: nothing is written twice;
//! - decisions come from the shared [`MarathonSnapshot`], never from a per-key read, so a
//!   converged key costs no Marathon call and (its status being the same) no etcd write;
//! - a revision being deployed that waits says why ([`waiting`]): instances no agent can take
//!   (`WaitingForResources`), from Marathon's launch queue, read (shared, see
//!   [`LaunchQueue`]) only while instances of the app's version wait for a launch, and looked
//!   at again every 2 s meanwhile; tasks failing a health check
//!   (`HealthChecksFailing`), from their health results (one read of the app when the picture
//!   holds only a health event's verdict). What it says never changes what is asked of
//!   Marathon;
//! - every Marathon write happens only while the leadership holds ([`Fence::check`], made by
//!   the snapshot's writes before every request); between a
//!   Marathon write and the status write sits the failpoint
//!   `deployments::after_marathon_write`, for tests that kill the controller there.
//!
//! How a revision is recorded, fails and is rolled back is [`rollout`]'s part.
//!
//! Which deployments this controller started is remembered for the leadership term only:
//! after a failover, a lock held by the previous leader's deployment is waited out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use theseus::api::{
    Condition, ConditionKind, Decision, DeploymentKey, DeploymentSpec, DeploymentStatus, Phase,
    Reason, RevisionOutcome, parse_spec,
};
use theseus::marathon::{self, App, AppId, DeploymentId, QueueEntry};
use theseus::store::Entry;
use tracing::{debug, info, warn};

use super::crash_loop::{apply_crash_loop, count_failures, crash_loops};
use super::history;
use super::launch_queue::LaunchQueue;
use super::progress::{Deadline, apply_deadline, stop_clock};
use super::records::{Recording, Records};
use super::started::StartedMarathonDeployments;
use super::status::{Situation, Subject, report};
use super::waiting::{self, set_progressing};
use crate::marathon_snapshot::{MarathonSnapshot, PictureError, WriteError};
use crate::runtime::fence::{Fence, FenceError};
use crate::runtime::metrics::MetricLabel;
use crate::runtime::reflector::Reflection;
use crate::runtime::runner::Action;
use theseus::mapping::{DesiredApp, Drift, Mapping, Ownership, drift};

mod rollout;

use rollout::{Decided, record_running, report_failure};

/// How soon a key waiting for someone else's deployment is looked at again.
const LOCK_RETRY: Duration = Duration::from_secs(2);
/// Added to a revision's time left before its deadline is looked at again, so the look
/// finds it passed.
const DEADLINE_SLACK: Duration = Duration::from_millis(100);
/// How soon a revision whose instances wait for a launch is looked at again: what Marathon's
/// launch queue says about them changes without an event.
const WAITING_RETRY: Duration = Duration::from_secs(2);

/// The failpoint between a Marathon write and the status write.
pub const AFTER_MARATHON_WRITE: &str = "deployments::after_marathon_write";
/// The failpoint between recording a rollback and asking Marathon for it.
pub const BEFORE_ROLLBACK: &str = "deployments::before_rollback";

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Marathon could not be asked or did not answer; the status says so.
    #[error("Marathon is unavailable while reconciling {key}: {source}; retrying with backoff")]
    MarathonUnavailable {
        /// The deployment.
        key: DeploymentKey,
        /// Why.
        #[source]
        source: PictureError,
    },
    /// Marathon answered a write with an error that a retry may fix.
    #[error("Marathon failed to {action} app `{app}` for {key}: {source}")]
    Marathon {
        /// The deployment.
        key: DeploymentKey,
        /// The app.
        app: AppId,
        /// `create`, `update`, `scale` or `delete`.
        action: &'static str,
        /// Marathon's answer.
        #[source]
        source: Arc<marathon::Error>,
    },
    /// The status could not be written (etcd failed, or the leadership is gone).
    #[error("cannot record the status of {key}: {source}")]
    Status {
        /// The deployment.
        key: DeploymentKey,
        /// Why.
        #[source]
        source: Box<FenceError>,
    },
    /// The revision history or the journal could not be written (etcd failed, or the
    /// leadership is gone); nothing was asked of Marathon after it.
    #[error("cannot record the rollout of {key}: {source}")]
    Record {
        /// The deployment.
        key: DeploymentKey,
        /// Why.
        #[source]
        source: Box<FenceError>,
    },
    /// The leadership ended before a Marathon write; nothing was written.
    #[error("not writing app `{app}` for {key}: {source}")]
    NotLeading {
        /// The deployment.
        key: DeploymentKey,
        /// The app.
        app: AppId,
        /// Why.
        #[source]
        source: Box<FenceError>,
    },
}

impl MetricLabel for ReconcileError {
    fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::MarathonUnavailable { source, .. } => source.metric_label(),
            ReconcileError::Marathon { source, .. } => source.metric_label(),
            ReconcileError::Status { source, .. } | ReconcileError::Record { source, .. } => {
                source.metric_label()
            }
            ReconcileError::NotLeading { .. } => "leadership_lost",
        }
    }
}

/// What converging an app did.
struct Converged {
    situation: Situation<'static>,
    /// Whether Marathon accepted a write.
    wrote: bool,
    /// The write, for the journal.
    decision: Option<(Decision, String)>,
    /// What to do next if all went well.
    action: Action,
    /// The error to back off with, after the status is written.
    failure: Option<ReconcileError>,
}

/// What looking at why a revision being deployed waits found.
#[derive(Debug, Default)]
struct Waited {
    /// The launch queue's entry of the app, if the queue was read (`Some(None)`: no instance
    /// of the app waits in it).
    queue: Option<Option<QueueEntry>>,
    /// Look again after this long, even if nothing else happens.
    look_again: Option<Duration>,
}

impl Converged {
    fn done(situation: Situation<'static>) -> Self {
        Self {
            situation,
            wrote: false,
            decision: None,
            action: Action::Done,
            failure: None,
        }
    }

    fn wrote(decision: Decision, message: String) -> Self {
        Self {
            wrote: true,
            decision: Some((decision, message)),
            ..Self::done(Situation::Applied)
        }
    }

    fn failed(situation: Situation<'static>, failure: ReconcileError) -> Self {
        Self {
            failure: Some(failure),
            ..Self::done(situation)
        }
    }
}

/// The deployments reconciler of one leadership term.
#[derive(Debug)]
pub struct Deployments {
    mapping: Mapping,
    desired: Reflection<DeploymentKey>,
    snapshot: Arc<MarathonSnapshot>,
    records: Records,
    fence: Fence,
    /// Deployments this term started, by key.
    started: StartedMarathonDeployments,
    /// Marathon's launch queue, read for waiting deployments only.
    launch_queue: LaunchQueue,
}

impl Deployments {
    /// A reconciler over these caches, writing through these handles.
    pub fn new(
        mapping: Mapping,
        desired: Reflection<DeploymentKey>,
        snapshot: Arc<MarathonSnapshot>,
        records: Records,
        fence: Fence,
    ) -> Self {
        let launch_queue = LaunchQueue::new(snapshot.client().clone());
        Self {
            mapping,
            desired,
            snapshot,
            records,
            fence,
            started: StartedMarathonDeployments::default(),
            launch_queue,
        }
    }

    /// The mapping.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Every key there is something to reconcile for: a spec, a status, a history or
    /// journal, or an app in the group whose id is a deployment's.
    pub fn keys(&self) -> BTreeSet<DeploymentKey> {
        let mut keys: BTreeSet<DeploymentKey> = self.desired.keys().into_iter().collect();
        keys.extend(self.records.statuses.keys());
        keys.extend(self.records.history.keys());
        keys.extend(self.records.journal.keys());
        keys.extend(
            self.snapshot
                .apps()
                .iter()
                .filter_map(|app| self.mapping.key_of(&app.id)),
        );
        keys
    }

    /// Reconciles `key`; see the module documentation.
    pub async fn reconcile(&self, key: DeploymentKey) -> Result<Action, ReconcileError> {
        let app_id = self.mapping.app_id(&key);
        match self.desired.get(&key) {
            Some(entry) => self.reconcile_desired(&key, &app_id, &entry).await,
            None => self.reconcile_removed(&key, &app_id).await,
        }
    }

    async fn reconcile_desired(
        &self,
        key: &DeploymentKey,
        app_id: &AppId,
        entry: &Entry,
    ) -> Result<Action, ReconcileError> {
        let revision = entry.mod_revision;
        let spec = match parse_spec(&entry.value) {
            Ok(spec) => spec,
            Err(errors) => {
                debug!(%errors, "the spec is invalid; leaving Marathon as it is");
                let app = self
                    .snapshot
                    .app(app_id)
                    .filter(|app| self.mapping.ownership(key, app) == Ownership::Owned);
                let subject = Subject {
                    revision,
                    app_id,
                    desired_instances: None,
                    health_checked: false,
                };
                let status = report(subject, app.as_deref(), &Situation::Invalid(&errors));
                self.write_status(key, status).await?;
                return Ok(Action::Done);
            }
        };
        let desired = self.mapping.desired_app(key, &spec);
        let mut subject = Subject {
            revision,
            app_id,
            desired_instances: Some(spec.instances),
            health_checked: !spec.health_checks.is_empty(),
        };
        let prior = self.records.statuses.get(key);
        let mut recording = Recording::new(revision);
        let history = self.records.history.get(key);
        // A paused revision is not acted on, so it gets no record until it is resumed.
        let record = if spec.paused {
            None
        } else {
            Some(self.begin_revision(entry, &spec, &desired, &history, &mut recording))
        };
        // A revision rolled back stays rolled back until /desired changes: the app is kept
        // at the revision it went back to, drift included.
        let rollback = record
            .as_ref()
            .filter(|record| record.outcome == RevisionOutcome::RolledBack)
            .map(|record| {
                record
                    .rolled_back_to
                    .and_then(|to| history.get(&u64::try_from(to).ok()?))
                    .and_then(|target| target.spec.parse().ok())
                    .map(|target| {
                        // The status counts instances against what runs: the target's.
                        subject.desired_instances = Some(target.instances);
                        subject.health_checked = !target.health_checks.is_empty();
                        self.mapping.desired_app(key, &target)
                    })
            });
        let converged = match self.snapshot.current_app(app_id).await {
            // Paused: nothing of this deployment goes to Marathon, drift included.
            Ok(app) if spec.paused => {
                let waiting = app.as_deref().is_none_or(|app| {
                    self.mapping.ownership(key, app) == Ownership::Owned
                        && drift(&desired, app) != Drift::InSync
                });
                Converged::done(Situation::Paused { waiting })
            }
            // Rolled back to a revision the history no longer holds: the app stays as it is.
            Ok(_) if matches!(rollback, Some(None)) => Converged::done(Situation::Applied),
            Ok(app) => {
                self.started.forget_finished(key, app.as_deref());
                match &rollback {
                    Some(Some(target)) => self.converge(key, target, app, true).await,
                    _ => self.converge(key, &desired, app, false).await,
                }
            }
            Err(error) => unavailable(key, error),
        };
        if converged.wrote {
            fail::fail_point!(AFTER_MARATHON_WRITE);
        }
        recording.journal.extend(converged.decision.clone());
        let app = self.snapshot.app(app_id);
        let mut status = report(subject, app.as_deref(), &converged.situation);
        let mut action = converged.action;
        let mut failure = converged.failure;
        match (&converged.situation, record) {
            (Situation::Paused { .. }, _) => {
                stop_clock(&mut status);
                recording.journal.on_reason(
                    prior.as_deref(),
                    &status,
                    Reason::Paused,
                    Decision::Paused,
                );
            }
            (
                Situation::Applied | Situation::Locked(_) | Situation::MarathonUnavailable(_),
                Some(record),
            ) => {
                recording.journal.on_reason(
                    prior.as_deref(),
                    &status,
                    Reason::WaitingForDeployment,
                    Decision::WaitingForDeployment,
                );
                if history::decided(&record) {
                    report_failure(&mut status, prior.as_deref(), &record);
                } else {
                    let now = Utc::now();
                    let deadline = Duration::from_secs(spec.progress_deadline_seconds.into());
                    // Why it waits is said before its deadline is judged, so that a revision
                    // past it names what it waited for.
                    let waited = match app.as_deref() {
                        // Just written: Marathon has placed nothing yet. Look again soon, since
                        // no event may come before the deadline if nothing can be placed.
                        Some(_)
                            if matches!(converged.situation, Situation::Applied)
                                && converged.wrote
                                && status.phase == Phase::Deploying =>
                        {
                            Waited {
                                queue: None,
                                look_again: Some(WAITING_RETRY),
                            }
                        }
                        Some(app)
                            if matches!(converged.situation, Situation::Applied)
                                && status.phase == Phase::Deploying =>
                        {
                            self.explain_waiting(&spec, app, &mut status).await
                        }
                        _ => Waited::default(),
                    };
                    if let Some(after) = waited.look_again {
                        action = match action {
                            Action::RequeueAfter(before) => Action::RequeueAfter(before.min(after)),
                            Action::Done => Action::RequeueAfter(after),
                        };
                    }
                    let outcome = apply_deadline(&mut status, prior.as_deref(), deadline, now);
                    // Failures count until the revision runs, and after that within its
                    // deadline: a task that runs for a moment before it exits still loops.
                    let counting = status.revision_running_at.is_none()
                        || status.revision_started_at.is_some_and(|started| {
                            now < started
                                + chrono::Duration::from_std(deadline)
                                    .unwrap_or(chrono::Duration::MAX)
                        });
                    count_failures(&mut status, prior.as_deref(), app.as_deref(), counting);
                    let crash_looping = match app.as_deref() {
                        Some(app) if crash_loops(&status, spec.crash_loop_limit) => {
                            let queued = match waited.queue {
                                Some(queued) => queued,
                                None => self.queue_entry(app).await,
                            };
                            let next = waiting::next_launch(
                                app,
                                queued.as_ref(),
                                status.revision_task_failures,
                            );
                            apply_crash_loop(&mut status, spec.crash_loop_limit, &next)
                        }
                        _ => false,
                    };
                    match outcome {
                        _ if crash_looping => {}
                        Deadline::Met => {
                            record_running(&record, &status, &mut recording);
                        }
                        Deadline::Pending(left) => {
                            // Look again when the deadline passes, even if nothing else
                            // happens.
                            let due = left + DEADLINE_SLACK;
                            action = match action {
                                Action::RequeueAfter(after) => Action::RequeueAfter(after.min(due)),
                                Action::Done => Action::RequeueAfter(due),
                            };
                        }
                        Deadline::Exceeded => {}
                    }
                    let undecided = matches!(
                        record.outcome,
                        RevisionOutcome::Deploying | RevisionOutcome::Running
                    );
                    if status.phase == Phase::Failed && undecided {
                        let reason = if crash_looping {
                            Reason::CrashLooping
                        } else {
                            Reason::DeadlineExceeded
                        };
                        let decided = self
                            .fail_revision(
                                key,
                                &spec,
                                &record,
                                &history,
                                reason,
                                &mut status,
                                &mut recording,
                            )
                            .await?;
                        match decided {
                            Decided::RolledBack(rolled) => {
                                subject.desired_instances = Some(rolled.instances);
                                subject.health_checked = rolled.health_checked;
                                status = report(
                                    subject,
                                    self.snapshot.app(app_id).as_deref(),
                                    &rolled.situation,
                                );
                                report_failure(&mut status, prior.as_deref(), &rolled.record);
                                failure = failure.or(rolled.failure);
                                action = rolled.action;
                            }
                            Decided::Failed(record) => {
                                report_failure(&mut status, prior.as_deref(), &record)
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        self.record(key, &spec, recording, Some(status)).await?;
        match failure {
            Some(failure) => Err(failure),
            None => Ok(action),
        }
    }

    /// Says in `status` why the revision of `spec`, being deployed as `app`, waits: instances
    /// no agent can take (`WaitingForResources`, from the launch queue, read only when
    /// instances of the app's version wait for a launch) or tasks failing a health check
    /// (`HealthChecksFailing`). Leaves the status as it is when neither is known.
    async fn explain_waiting(
        &self,
        spec: &DeploymentSpec,
        app: &App,
        status: &mut DeploymentStatus,
    ) -> Waited {
        let mut waited = Waited::default();
        if waiting::unlaunched(app) > 0 {
            waited.look_again = Some(WAITING_RETRY);
            let queued = self.queue_entry(app).await;
            if let Some(message) = queued
                .as_ref()
                .and_then(|entry| waiting::unplaced(app, entry))
            {
                set_progressing(
                    status,
                    Condition::fails(
                        ConditionKind::Progressing,
                        Reason::WaitingForResources,
                        message,
                    ),
                );
                waited.queue = Some(queued);
                return waited;
            }
            waited.queue = Some(queued);
        }
        let Some((mut message, lacking)) = waiting::failing_checks(spec, app) else {
            return waited;
        };
        // A health event carries only the verdict: one read of the app gives the checks'
        // results (their failures in a row and the last cause). The read changes the picture,
        // so later looks find the details there, until the verdict changes again.
        if lacking {
            match self.snapshot.refresh(&app.id).await {
                Ok(Some(read)) => {
                    if let Some((detailed, _)) = waiting::failing_checks(spec, &read) {
                        message = detailed;
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    debug!(app = %app.id, %error, "cannot read the health results of the app");
                }
            }
        }
        set_progressing(
            status,
            Condition::fails(
                ConditionKind::Progressing,
                Reason::HealthChecksFailing,
                message,
            ),
        );
        waited
    }

    /// The launch queue's entry of `app`; `None` also when the queue cannot be read (the
    /// status then says less, and nothing else changes).
    async fn queue_entry(&self, app: &App) -> Option<QueueEntry> {
        match self.launch_queue.entry(&app.id).await {
            Ok(entry) => entry,
            Err(error) => {
                warn!(
                    app = %app.id,
                    %error,
                    kind = error.metric_label(),
                    "the status cannot say why the app's instances wait"
                );
                None
            }
        }
    }

    async fn reconcile_removed(
        &self,
        key: &DeploymentKey,
        app_id: &AppId,
    ) -> Result<Action, ReconcileError> {
        let app = match self.snapshot.current_app(app_id).await {
            Ok(app) => app,
            Err(error) => {
                if self.records.statuses.contains(key) {
                    let status = report(
                        removed(app_id),
                        self.snapshot.app(app_id).as_deref(),
                        &Situation::Deleting(Some(error.to_string())),
                    );
                    self.write_status(key, status).await?;
                }
                return Err(ReconcileError::MarathonUnavailable {
                    key: key.clone(),
                    source: error,
                });
            }
        };
        let owned = app
            .as_deref()
            .is_some_and(|app| self.mapping.ownership(key, app) == Ownership::Owned);
        if owned {
            match self.snapshot.writes(&self.fence).delete(app_id).await {
                Ok(()) => {
                    info!(app = %app_id, "deleted the app of a removed deployment");
                    fail::fail_point!(AFTER_MARATHON_WRITE);
                }
                Err(WriteError::NotLeading { source, .. }) => {
                    return Err(not_leading(key, app_id, source));
                }
                Err(error) => {
                    let converged = self.write_failure(key, app_id, "delete", error);
                    let message = match &converged.situation {
                        Situation::MarathonUnavailable(message) | Situation::Rejected(message) => {
                            message.clone()
                        }
                        _ => "Marathon refused the delete".to_owned(),
                    };
                    let status = report(
                        removed(app_id),
                        self.snapshot.app(app_id).as_deref(),
                        &Situation::Deleting(Some(message)),
                    );
                    self.write_status(key, status).await?;
                    return match converged.failure {
                        Some(failure) => Err(failure),
                        None => Ok(Action::RequeueAfter(LOCK_RETRY)),
                    };
                }
            }
        }
        self.started.forget(key);
        // The history and the journal go before the status, so a stop in between leaves the
        // status to say the deployment is being deleted, and the next reconcile finishes.
        for list in [
            self.records.history.remove(key).await,
            self.records.journal.remove(key).await,
        ] {
            list.map_err(|source| ReconcileError::Record {
                key: key.clone(),
                source: Box::new(source),
            })?;
        }
        self.records
            .statuses
            .remove(key)
            .await
            .map_err(|source| ReconcileError::Status {
                key: key.clone(),
                source: Box::new(source),
            })?;
        Ok(Action::Done)
    }

    /// Makes `app` match `desired`. `rollback`: `desired` is an earlier revision a failed one
    /// goes back to, which overrides any lock on the owned app (the failed revision's
    /// deployment, whoever started it).
    async fn converge(
        &self,
        key: &DeploymentKey,
        desired: &DesiredApp,
        app: Option<Arc<App>>,
        rollback: bool,
    ) -> Converged {
        let id = desired.id();
        let current = match app {
            Some(current) => current,
            None => match self.create(key, desired).await {
                Ok(converged) => return converged,
                // A create that finds the id taken looks at what took it, once.
                Err(_taken) => {
                    debug!(app = %id, "the app appeared meanwhile; reading it");
                    match self.snapshot.refresh(id).await {
                        Ok(Some(read)) => read,
                        Ok(None) => {
                            return match self.create(key, desired).await {
                                Ok(converged) => converged,
                                Err(taken) => self.write_failure(key, id, "create", taken),
                            };
                        }
                        Err(error) => {
                            let error = Arc::new(error);
                            self.snapshot.note_failure(&error);
                            return self.marathon_failure(key, id, "read", error);
                        }
                    }
                }
            },
        };
        if let Ownership::NotOwned(message) = self.mapping.ownership(key, &current) {
            return Converged::done(Situation::NotOwned(message));
        }
        // A rollback overrides any lock: the failed revision's deployment, whoever started
        // it. Otherwise only this term's deployments for the key give way to a newer write.
        let may_override = |held: &[DeploymentId]| rollback || self.started.all_mine(key, held);
        let writes = self.snapshot.writes(&self.fence);
        match drift(desired, &current) {
            Drift::InSync => Converged::done(Situation::Applied),
            Drift::Scale { from, to } => match writes.scale(id, to, may_override).await {
                Ok(written) => {
                    info!(app = %id, from, to, force = written.forced, "scaled the app");
                    self.started.started(key, written.deployment);
                    Converged::wrote(
                        Decision::AppScaled,
                        format!("scaled Marathon app `{id}` from {from} to {to} instances"),
                    )
                }
                Err(error) => self.write_failure(key, id, "scale", error),
            },
            Drift::Update { fields } => {
                let fields: Vec<String> = fields.iter().map(ToString::to_string).collect();
                match writes.update(&desired.app, may_override).await {
                    Ok(written) => {
                        info!(
                            app = %id,
                            changed = fields.join(", "),
                            force = written.forced,
                            rollback,
                            "updated the app"
                        );
                        self.started.started(key, written.deployment);
                        Converged::wrote(
                            Decision::AppUpdated,
                            format!("updated Marathon app `{id}` ({})", fields.join(", ")),
                        )
                    }
                    Err(error) => self.write_failure(key, id, "update", error),
                }
            }
        }
    }

    /// Creates the app of `desired`; the error back if Marathon says the id is taken (by an
    /// app the picture does not show).
    async fn create(
        &self,
        key: &DeploymentKey,
        desired: &DesiredApp,
    ) -> Result<Converged, WriteError> {
        let id = desired.id();
        match self.snapshot.writes(&self.fence).create(&desired.app).await {
            Ok(deployment) => {
                info!(app = %id, "created the app");
                if let Some(deployment) = deployment {
                    self.started.started(key, deployment);
                }
                Ok(Converged::wrote(
                    Decision::AppCreated,
                    format!("created Marathon app `{id}`"),
                ))
            }
            Err(WriteError::Marathon(error))
                if matches!(*error, marathon::Error::AppExists { .. }) =>
            {
                Err(WriteError::Marathon(error))
            }
            Err(error) => Ok(self.write_failure(key, id, "create", error)),
        }
    }

    fn locked(&self, marathon_deployments: Vec<DeploymentId>) -> Converged {
        debug!(
            ?marathon_deployments,
            "locked by Marathon deployments this controller did not start; waiting"
        );
        Converged {
            action: Action::RequeueAfter(LOCK_RETRY),
            ..Converged::done(Situation::Locked(marathon_deployments))
        }
    }

    /// The situation and error of a write that was not made or failed (the snapshot has
    /// already taken note of it).
    fn write_failure(
        &self,
        key: &DeploymentKey,
        app: &AppId,
        action: &'static str,
        error: WriteError,
    ) -> Converged {
        match error {
            WriteError::NotLeading { source, .. } => {
                Converged::failed(Situation::Applied, not_leading(key, app, source))
            }
            WriteError::Locked { deployments, .. } => self.locked(deployments),
            WriteError::Marathon(error) => self.marathon_failure(key, app, action, error),
        }
    }

    /// The situation and error of a failed Marathon call.
    fn marathon_failure(
        &self,
        key: &DeploymentKey,
        app: &AppId,
        action: &'static str,
        error: Arc<marathon::Error>,
    ) -> Converged {
        use marathon::Error as E;
        let message = error.to_string();
        let situation = match &*error {
            // Refusals: a retry of the same request would be refused again; report, and try
            // again at the next resync or change.
            E::Invalid { .. } => return Converged::done(Situation::Rejected(message)),
            // Nothing reached Marathon.
            E::Connect { .. } | E::Config { .. } | E::CaFile { .. } => {
                return unavailable(key, PictureError::Unreachable(error));
            }
            // Marathon may or may not have acted, or its state is not what the picture says
            // (the snapshot marked the app stale: it is re-read before deciding again).
            E::Timeout { .. } | E::Transport { .. } | E::Unavailable { .. } => {
                Situation::MarathonUnavailable(message)
            }
            // Refused for good (unauthorized, forbidden, anything else): reported as an error.
            _ => Situation::Rejected(message),
        };
        Converged::failed(
            situation,
            ReconcileError::Marathon {
                key: key.clone(),
                app: app.clone(),
                action,
                source: error,
            },
        )
    }

    async fn write_status(
        &self,
        key: &DeploymentKey,
        status: theseus::api::DeploymentStatus,
    ) -> Result<(), ReconcileError> {
        self.records
            .statuses
            .write(key, status)
            .await
            .map(|_| ())
            .map_err(|source| ReconcileError::Status {
                key: key.clone(),
                source: Box::new(source),
            })
    }
}

/// The situation and error of a reconcile that cannot trust Marathon's picture.
fn unavailable(key: &DeploymentKey, error: PictureError) -> Converged {
    Converged::failed(
        Situation::MarathonUnavailable(error.to_string()),
        ReconcileError::MarathonUnavailable {
            key: key.clone(),
            source: error,
        },
    )
}

/// The error of a write the leadership's end kept from being sent.
fn not_leading(key: &DeploymentKey, app: &AppId, source: FenceError) -> ReconcileError {
    ReconcileError::NotLeading {
        key: key.clone(),
        app: app.clone(),
        source: Box::new(source),
    }
}

/// The subject of a removed deployment's status.
fn removed(app_id: &AppId) -> Subject<'_> {
    Subject {
        revision: 0,
        app_id,
        desired_instances: None,
        health_checked: false,
    }
}
