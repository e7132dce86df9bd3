//! The controller's own writes to Marathon, made through the snapshot so that the picture
//! always holds them: create, replace a definition (an update, or a rollback to an earlier
//! revision's definition), scale and delete.
//!
//! What every write promises:
//! - it is sent only while the leadership holds ([`Fence::check`], before every request,
//!   a retry with `force` included); a write refused by the fence sent nothing;
//! - Marathon's answer is in the picture before the write returns ([`SnapshotChange::Written`] tells
//!   listeners), and is counted in `theseus_controller_marathon_writes_total`;
//! - after an error whose outcome is unknown (a timeout, a broken connection, a 5xx) or that
//!   shows the picture is wrong (a 404, an id already taken, a lock that `force` did not
//!   lift), the app is marked stale: [`MarathonSnapshot::current_app`] re-reads it before
//!   anyone acts on it again, and nothing is written twice. A request that never reached
//!   Marathon, or that it refused as asked (400/422, 401, 403), leaves the picture as it is.
//!   A failure that means Marathon cannot answer marks it unreachable
//!   ([`MarathonSnapshot::note_failure`]).
//! - events about an app being created that come before the create's answer are applied
//!   after it rather than asking for a re-read; if the create fails, an app such events were
//!   about is re-read;
//! - a lock (409) on an update or a scale is overridden (`force`) only when the caller says
//!   the deployments holding it may be, and then once; otherwise the write returns
//!   [`WriteError::Locked`] and the picture is untouched. This is the one place that decides
//!   it.
//!
//! What it does not do: decide whether to write, or what a failure means for a deployment's
//! status. That is the reconciler's part.

use std::future::Future;
use std::sync::Arc;

use theseus::marathon::app::Version;
use theseus::marathon::{App, AppCreated, AppId, DeploymentId, DeploymentResult, Error};
use tracing::info;

use super::{MarathonSnapshot, SnapshotChange, add_deployment};
use crate::runtime::fence::{Fence, FenceError};

/// Why a write was not made, or failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The leadership ended before the request: nothing was sent.
    #[error("not writing app `{app}`: {source}")]
    NotLeading {
        /// The app.
        app: AppId,
        /// Why the fence refused.
        #[source]
        source: FenceError,
    },
    /// A running Marathon deployment holds the app, and the caller may not override it:
    /// nothing was written; wait for it to finish.
    #[error(
        "app `{app}` is locked by {} Marathon deployment(s) that may not be overridden; \
         waiting for them to finish",
        deployments.len()
    )]
    Locked {
        /// The app.
        app: AppId,
        /// The deployments holding the lock.
        deployments: Vec<DeploymentId>,
    },
    /// Marathon refused the write or did not answer; the picture has taken note (see the
    /// module documentation).
    #[error(transparent)]
    Marathon(Arc<Error>),
}

/// A deployable write Marathon accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The Marathon deployment the write started.
    pub deployment: DeploymentId,
    /// Whether the write overrode a lock (`force`).
    pub forced: bool,
}

/// The writes of one caller, fenced on its leadership; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Writes<'a> {
    snapshot: &'a MarathonSnapshot,
    fence: &'a Fence,
}

impl MarathonSnapshot {
    /// The writes to Marathon, each sent only while `fence` holds.
    pub fn writes<'a>(&'a self, fence: &'a Fence) -> Writes<'a> {
        Writes {
            snapshot: self,
            fence,
        }
    }
}

impl Writes<'_> {
    /// `POST /v2/apps`: creates `app`; the deployment Marathon started for it, if it said.
    pub async fn create(&self, app: &App) -> Result<Option<DeploymentId>, WriteError> {
        self.check(&app.id)?;
        let creating = Creating::begin(self.snapshot, &app.id);
        match self.snapshot.client.create_app(app).await {
            Ok(created) => {
                self.snapshot.metrics.marathon_write("create");
                creating.created(&created);
                Ok(created.deployment_id)
            }
            Err(error) => Err(self.failed(&app.id, error)),
        }
    }

    /// `PUT /v2/apps/{id}`: replaces the app's definition with `definition` (an update, or a
    /// rollback to an earlier revision's definition). A lock is overridden when
    /// `may_override` says its holders may be.
    pub async fn update(
        &self,
        definition: &App,
        may_override: impl Fn(&[DeploymentId]) -> bool,
    ) -> Result<Written, WriteError> {
        let id = &definition.id;
        let client = &self.snapshot.client;
        let (result, forced) = self
            .overriding_lock(id, may_override, |force| {
                client.update_app(id, definition, force)
            })
            .await?;
        self.snapshot.metrics.marathon_write("update");
        self.snapshot.record_updated(definition, &result);
        Ok(Written {
            deployment: result.deployment_id,
            forced,
        })
    }

    /// `PUT /v2/apps/{id}?partialUpdate=true` with only `instances`: scales the app without
    /// a restart. A lock is overridden when `may_override` says its holders may be.
    pub async fn scale(
        &self,
        id: &AppId,
        instances: u32,
        may_override: impl Fn(&[DeploymentId]) -> bool,
    ) -> Result<Written, WriteError> {
        let mut patch = App::new(id.clone());
        patch.instances = Some(instances);
        let client = &self.snapshot.client;
        let patch = &patch;
        let (result, forced) = self
            .overriding_lock(id, may_override, |force| client.patch_app(id, patch, force))
            .await?;
        self.snapshot.metrics.marathon_write("scale");
        self.snapshot.record_scaled(id, instances, &result);
        Ok(Written {
            deployment: result.deployment_id,
            forced,
        })
    }

    /// `DELETE /v2/apps/{id}` (Marathon's default `force=true`: a delete is never locked).
    /// An app Marathon no longer has counts as deleted.
    pub async fn delete(&self, id: &AppId) -> Result<(), WriteError> {
        self.check(id)?;
        match self.snapshot.client.delete_app(id, true).await {
            Ok(_) | Err(Error::NotFound { .. }) => {
                self.snapshot.metrics.marathon_write("delete");
                self.snapshot.record_deleted(id);
                Ok(())
            }
            Err(error) => Err(self.failed(id, error)),
        }
    }

    /// Sends `call` without `force`; when Marathon answers that deployments lock the app and
    /// `may_override` says they may be overridden, sends it again with `force`, once. What
    /// Marathon answered, and whether it took `force`.
    async fn overriding_lock<F, Fut>(
        &self,
        id: &AppId,
        may_override: impl Fn(&[DeploymentId]) -> bool,
        call: F,
    ) -> Result<(DeploymentResult, bool), WriteError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<DeploymentResult, Error>>,
    {
        let mut force = false;
        loop {
            self.check(id)?;
            match call(force).await {
                Ok(result) => return Ok((result, force)),
                Err(Error::Locked { deployments, .. }) if !force => {
                    if !may_override(&deployments) {
                        return Err(WriteError::Locked {
                            app: id.clone(),
                            deployments,
                        });
                    }
                    info!(
                        app = %id,
                        ?deployments,
                        "a newer write replaces a deployment in progress (force)"
                    );
                    force = true;
                }
                Err(error) => return Err(self.failed(id, error)),
            }
        }
    }

    fn check(&self, id: &AppId) -> Result<(), WriteError> {
        self.fence
            .check(id.as_str())
            .map_err(|source| WriteError::NotLeading {
                app: id.clone(),
                source,
            })
    }

    /// Takes what a failed write's error says into the picture.
    fn failed(&self, id: &AppId, error: Error) -> WriteError {
        let error = Arc::new(error);
        match *error {
            // Refused as asked, or never sent: Marathon did nothing.
            Error::Invalid { .. }
            | Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::Config { .. }
            | Error::CaFile { .. } => {}
            // Never reached Marathon, which did nothing; every reconcile waits for it now.
            Error::Connect { .. } => {
                self.snapshot.note_failure(&error);
            }
            // Marathon may or may not have acted, or its state is not what the picture says:
            // the app is re-read before anyone decides again.
            _ => {
                self.snapshot.mark_stale(id);
                self.snapshot.note_failure(&error);
            }
        }
        WriteError::Marathon(error)
    }
}

/// A create on its way: events about the app that come before its answer wait for it
/// ([`Parked`](super::picture::Parked)). Dropped without an answer (the create failed, or
/// was given up), the app is re-read if events about it came.
pub(super) struct Creating<'a> {
    snapshot: &'a MarathonSnapshot,
    id: AppId,
    answered: bool,
}

impl<'a> Creating<'a> {
    pub(super) fn begin(snapshot: &'a MarathonSnapshot, id: &AppId) -> Self {
        snapshot.state().creating.entry(id.clone()).or_default();
        Creating {
            snapshot,
            id: id.clone(),
            answered: false,
        }
    }

    /// Records Marathon's answer, then the events that came before it.
    pub(super) fn created(mut self, created: &AppCreated) {
        self.answered = true;
        self.snapshot.record_created(created);
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut state = self.snapshot.state();
        let waited = state
            .creating
            .remove(&self.id)
            .is_some_and(|parked| !parked.is_empty());
        if waited {
            self.snapshot.reread(&mut state, [self.id.clone()]);
        }
    }
}

/// How the answers to writes go into the picture.
impl MarathonSnapshot {
    /// Records an app the controller created, then applies the events about it that came
    /// before the answer (if it was created through [`Writes::create`]).
    pub(super) fn record_created(&self, created: &AppCreated) {
        let mut app = created.app.clone();
        if self.tracks_tasks() && app.tasks.is_none() {
            // A new app has no task yet; its first events can then be applied in place.
            app.tasks = Some(Vec::new());
        }
        if let Some(id) = &created.deployment_id {
            add_deployment(&mut app, id);
        }
        let id = app.id.clone();
        let version = app.version.clone();
        let mut state = self.state();
        let recorded = state.record_write(id.clone(), version, |_| Some(Some(app)));
        let parked = state.creating.remove(&id).unwrap_or_default();
        let mut reread = parked.overflowed;
        let (changed, rest) = self.apply_in_order(&mut state, &id, parked.events);
        reread |= rest.is_some();
        if reread {
            self.reread(&mut state, [id.clone()]);
        }
        drop(state);
        if recorded {
            self.publish(SnapshotChange::Written(id.clone()));
        }
        if changed {
            self.publish(SnapshotChange::Apps(vec![id]));
        }
    }

    /// Records that the controller replaced an app's definition with `definition` and
    /// Marathon started `result`'s deployment.
    pub(super) fn record_updated(&self, definition: &App, result: &DeploymentResult) {
        self.record(
            definition.id.clone(),
            Some(result.version.clone()),
            |previous| Some(Some(updated(previous, definition, result))),
        );
    }

    /// Records that the controller scaled an app to `instances`.
    pub(super) fn record_scaled(&self, id: &AppId, instances: u32, result: &DeploymentResult) {
        self.record(id.clone(), Some(result.version.clone()), |previous| {
            previous.map(|previous| Some(scaled(previous, instances, result)))
        });
    }

    /// Records that the controller deleted an app (Marathon removes it from its group at
    /// once, while the deployment stops its tasks).
    pub(super) fn record_deleted(&self, id: &AppId) {
        self.record(id.clone(), None, |_| Some(None));
    }

    /// Marks an app stale after a write whose outcome is unknown.
    pub(super) fn mark_stale(&self, id: &AppId) {
        self.state().mark_stale(id);
    }

    /// Records a write of app `id` that made `version`, as `build` makes it from what the
    /// picture holds ([`MarathonPicture::record_write`](super::picture::MarathonPicture::record_write)), and
    /// tells listeners if it was recorded.
    fn record(
        &self,
        id: AppId,
        version: Option<Version>,
        build: impl FnOnce(Option<&App>) -> Option<Option<App>>,
    ) {
        let recorded = self.state().record_write(id.clone(), version, build);
        if recorded {
            self.publish(SnapshotChange::Written(id));
        }
    }
}

/// What an update of `previous` to `definition` leaves: the new definition, with the tasks,
/// counts, last failure and deployments the picture held (the update changes none of them
/// by itself), and the update's version and deployment.
fn updated(previous: Option<&App>, definition: &App, result: &DeploymentResult) -> App {
    let mut app = definition.clone();
    if let Some(previous) = previous {
        app.tasks_staged = previous.tasks_staged;
        app.tasks_running = previous.tasks_running;
        app.tasks_healthy = previous.tasks_healthy;
        app.tasks_unhealthy = previous.tasks_unhealthy;
        app.tasks = previous.tasks.clone();
        app.last_task_failure = previous.last_task_failure.clone();
        app.deployments = previous.deployments.clone();
    }
    app.version = Some(result.version.clone());
    add_deployment(&mut app, &result.deployment_id);
    app
}

/// What scaling `previous` to `instances` leaves.
fn scaled(previous: &App, instances: u32, result: &DeploymentResult) -> App {
    let mut app = previous.clone();
    app.instances = Some(instances);
    app.version = Some(result.version.clone());
    add_deployment(&mut app, &result.deployment_id);
    app
}
