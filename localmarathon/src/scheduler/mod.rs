//! The scheduler loop: drives deployments, launches and relaunches tasks, applies executor and
//! health reports, and announces everything on the event bus.
//!
//! The loop is level-triggered. Each pass looks at the apps marked dirty (by the API, by task
//! updates, by freed resources or by an expired launch delay) and moves each towards what its
//! definition and running deployment ask for:
//!
//! * without a deployment, instances whose task ended are relaunched (after the launch delay);
//! * `ScaleApplication` creates or decommissions instances (per `killSelection`) and completes
//!   when the target count is ready;
//! * `RestartApplication` replaces old-configuration instances within the upgrade strategy's
//!   bounds (see `deployment.rs`) and completes when only ready new instances remain;
//! * `StopApplication` decommissions everything and removes the app when its tasks are gone.
//!
//! Ready means running, and healthy on every health check when the app has some.
//!
//! A pass costs time in proportion to the apps it looks at and the reports it applies, not to
//! everything localmarathon runs: an app's deployment is found by id (`deployments.rs`), and
//! the loop wakes for launch delays from a queue of their ends (`launch_delay.rs`) instead of
//! scanning apps for them.
//!
//! Executor and health reports are applied at most [`REPORTS_PER_PASS`] at a time, and the
//! loop yields between such batches: Marathon handles status updates one by one while its event
//! streams are written, so a burst of reports never reaches a subscriber all at once.

mod launch;
mod updates;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::KillSelection;
use crate::app_id::AppId;
use crate::deployment::{
    ActionKind, Deployment, DeploymentId, RestartBounds, RollingView, rolling_step,
};
use crate::deployments::Advanced;
use crate::events::{self, MarathonEvent};
use crate::executor::{Executor, ExecutorUpdate};
use crate::health::{self, ProbeResult};
use crate::persistence::StateDir;
use crate::state::{Effect, Goal, Instance, KillReason, Shared, State};
use crate::task::{InstanceId, TaskState};
use crate::timestamp::Timestamp;

/// The most executor (or health) reports applied in one pass, each announced by about two
/// events: well under the events a subscriber may lag ([`events::BUS_CAPACITY`]).
const REPORTS_PER_PASS: usize = 128;

/// The loop's inputs.
pub struct Inputs {
    /// Executor reports.
    pub updates: mpsc::UnboundedReceiver<ExecutorUpdate>,
    /// Probe results.
    pub probes: mpsc::UnboundedReceiver<ProbeResult>,
    /// Where probe loops send results.
    pub probe_tx: mpsc::UnboundedSender<ProbeResult>,
    /// Where app definitions are saved, if anywhere.
    pub state_dir: Option<StateDir>,
}

/// Saves at most this often; changes in between are written together.
const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Writes the app definitions if they changed (and `now` is past the last write's interval).
async fn save(shared: &Shared, dir: &StateDir) {
    let apps = {
        let mut st = shared.lock();
        if !st.unsaved {
            return;
        }
        st.unsaved = false;
        st.saved_apps()
    };
    let dir = dir.clone();
    let written = tokio::task::spawn_blocking(move || dir.save(&apps)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "app definitions were not saved");
            shared.lock().unsaved = true;
        }
        Err(e) => tracing::error!(error = %e, "saving app definitions panicked"),
    }
}

/// Runs until `stop` is cancelled.
pub async fn run(
    shared: Arc<Shared>,
    executor: Arc<Executor>,
    mut inputs: Inputs,
    probes: TaskTracker,
    stop: CancellationToken,
) {
    let mut next_save = Instant::now();
    loop {
        let (effects, mut deadline, unsaved) = {
            let mut st = shared.lock();
            st.reconcile(&shared, Instant::now());
            (
                std::mem::take(&mut st.effects),
                st.next_deadline(),
                st.unsaved,
            )
        };
        if let Some(dir) = &inputs.state_dir
            && unsaved
        {
            if Instant::now() >= next_save {
                save(&shared, dir).await;
                next_save = Instant::now() + SAVE_INTERVAL;
            } else {
                deadline = Some(deadline.map_or(next_save, |d| d.min(next_save)));
            }
        }
        perform(
            &shared,
            &executor,
            effects,
            &probes,
            &inputs.probe_tx,
            &stop,
        );
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => {
                if let Some(dir) = &inputs.state_dir {
                    save(&shared, dir).await;
                }
                return;
            }
            Some(update) = inputs.updates.recv() => {
                let mut st = shared.lock();
                st.apply_update(&shared, update);
                for _ in 1..REPORTS_PER_PASS {
                    let Ok(more) = inputs.updates.try_recv() else { break };
                    st.apply_update(&shared, more);
                }
            }
            Some(result) = inputs.probes.recv() => {
                let mut st = shared.lock();
                st.apply_probe(&shared, result);
                for _ in 1..REPORTS_PER_PASS {
                    let Ok(more) = inputs.probes.try_recv() else { break };
                    st.apply_probe(&shared, more);
                }
            }
            () = shared.wake.notified() => {}
            () = sleep => {}
        }
        // Let the event streams write what this pass announced before the next pass.
        tokio::task::yield_now().await;
    }
}

fn perform(
    shared: &Shared,
    executor: &Executor,
    effects: Vec<Effect>,
    probes: &TaskTracker,
    probe_tx: &mpsc::UnboundedSender<ProbeResult>,
    stop: &CancellationToken,
) {
    for effect in effects {
        match effect {
            Effect::Launch(spec) => executor.launch(*spec),
            Effect::Kill(task) => {
                shared.lock().mark_killing(shared, &task);
                executor.kill(&task);
            }
            Effect::Probe(target, token) => {
                let tx = probe_tx.clone();
                let stop = stop.clone();
                probes.spawn(async move {
                    tokio::select! {
                        () = health::probe_task(*target, tx, token) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        }
    }
}

fn now_ts() -> Timestamp {
    Timestamp::now()
}

impl State {
    /// When the next launch delay ends.
    fn next_deadline(&self) -> Option<Instant> {
        self.delay_ends.next()
    }

    /// One pass over the dirty apps (and apps whose launch delay ended).
    pub fn reconcile(&mut self, shared: &Shared, now: Instant) {
        let ended = self.delay_ends.take_ended(now);
        self.dirty.extend(ended);
        self.finish_empty_deployments(shared);
        // A pass may settle what the previous one started (an instance removed without a task
        // to wait for); a few passes finish that. Apps still dirty after them are waiting on
        // something (a kill in flight) that will come back as a task update.
        for _ in 0..3 {
            let batch = std::mem::take(&mut self.dirty);
            if batch.is_empty() {
                break;
            }
            for app in batch {
                self.reconcile_app(shared, &app, now);
            }
        }
    }

    /// Announces the deployments whose plan had no step (finished the moment they were made).
    fn finish_empty_deployments(&mut self, shared: &Shared) {
        for d in self.deployments.take_finished() {
            announce_success(shared, &d);
        }
    }

    fn reconcile_app(&mut self, shared: &Shared, app: &AppId, now: Instant) {
        // Drive the deployment until its current step cannot complete yet.
        while let Some(dep_id) = self.apps.get(app).and_then(|a| a.deployment.clone()) {
            let Some(action) = self
                .deployments
                .get(&dep_id)
                .and_then(|d| d.current_action())
                .map(|a| a.action)
            else {
                break;
            };
            let complete = match action {
                ActionKind::StartApplication => true,
                ActionKind::ScaleApplication => self.drive_scale(app),
                ActionKind::RestartApplication => self.drive_restart(app, &dep_id),
                ActionKind::StopApplication => self.drive_stop(app),
            };
            if !complete {
                break;
            }
            match self.deployments.advance(&dep_id) {
                Some(Advanced::NextStep {
                    finished,
                    started,
                    deployment: d,
                }) => {
                    shared.bus.publish(|| events::DeploymentStepSuccess {
                        plan: d.plan.event_json(),
                        current_step: d.step_json(finished),
                        event_type: events::DeploymentStepSuccess::TYPE,
                        timestamp: now_ts(),
                    });
                    shared.bus.publish(|| events::DeploymentInfo {
                        plan: d.plan.event_json(),
                        current_step: d.step_json(started),
                        event_type: events::DeploymentInfo::TYPE,
                        timestamp: now_ts(),
                    });
                }
                Some(Advanced::Done {
                    finished,
                    deployment: d,
                }) => {
                    shared.bus.publish(|| events::DeploymentStepSuccess {
                        plan: d.plan.event_json(),
                        current_step: d.step_json(finished),
                        event_type: events::DeploymentStepSuccess::TYPE,
                        timestamp: now_ts(),
                    });
                    announce_success(shared, &d);
                    if let Some(record) = self.apps.get_mut(app) {
                        record.deployment = None;
                    }
                    if action == ActionKind::StopApplication {
                        self.remove_app(shared, app);
                        return;
                    }
                }
                None => break,
            }
        }
        self.launch_missing(shared, app, now);
    }

    /// Scale step: reach `instances` instances and wait until all are ready.
    fn drive_scale(&mut self, app: &AppId) -> bool {
        let Some(record) = self.apps.get(app) else {
            return true;
        };
        let target = record.def.instances as usize;
        let active: Vec<&Instance> = record
            .instances
            .values()
            .filter(|i| i.goal == Goal::Running)
            .collect();
        if active.len() < target {
            let def = record.def.clone();
            for _ in active.len()..target {
                self.new_instance(app, def.clone());
            }
        } else if active.len() > target {
            let victims = pick_victims(&active, active.len() - target, record.def.kill_selection);
            for v in victims {
                self.decommission(app, &v, KillReason::Requested);
            }
        }
        let Some(record) = self.apps.get(app) else {
            return true;
        };
        record
            .instances
            .values()
            .all(|i| i.goal == Goal::Running && i.is_ready())
            && record.instances.len() == target
    }

    /// Restart step: rolling replacement within the upgrade strategy.
    fn drive_restart(&mut self, app: &AppId, deployment: &DeploymentId) -> bool {
        let Some(record) = self.apps.get(app) else {
            return true;
        };
        let def = record.def.clone();
        let config = def.version_info.last_config_change_at;
        let is_new = |i: &Instance| i.def.version_info.last_config_change_at == config;
        let old: Vec<&Instance> = record
            .instances
            .values()
            .filter(|i| i.goal == Goal::Running && !is_new(i))
            .collect();
        let new: Vec<&Instance> = record
            .instances
            .values()
            .filter(|i| i.goal == Goal::Running && is_new(i))
            .collect();
        let view = RollingView {
            old_ready: old.iter().filter(|i| i.is_ready()).count(),
            old_unready: old.iter().filter(|i| !i.is_ready()).count(),
            new_total: new.len(),
            new_ready: new.iter().filter(|i| i.is_ready()).count(),
            dying: record
                .instances
                .values()
                .filter(|i| i.goal == Goal::Decommissioned)
                .count(),
        };
        let Some(bounds) = self.deployments.restart_bounds(deployment, || {
            RestartBounds::compute(def.instances, def.upgrade_strategy, view.old_ready)
        }) else {
            return true;
        };
        let decision = rolling_step(bounds, def.instances as usize, view);
        if decision.done {
            return true;
        }
        let unready: Vec<&Instance> = old.iter().copied().filter(|i| !i.is_ready()).collect();
        let ready: Vec<&Instance> = old.iter().copied().filter(|i| i.is_ready()).collect();
        let mut victims = pick_victims(&unready, decision.kill_old_unready, def.kill_selection);
        victims.extend(pick_victims(
            &ready,
            decision.kill_old_ready,
            def.kill_selection,
        ));
        for v in victims {
            self.decommission(app, &v, KillReason::Requested);
        }
        for _ in 0..decision.start_new {
            self.new_instance(app, def.clone());
        }
        false
    }

    /// Stop step: everything goes.
    fn drive_stop(&mut self, app: &AppId) -> bool {
        let Some(record) = self.apps.get(app) else {
            return true;
        };
        let all: Vec<InstanceId> = record.instances.keys().cloned().collect();
        for i in all {
            self.decommission(app, &i, KillReason::Requested);
        }
        self.apps.get(app).is_none_or(|r| r.instances.is_empty())
    }

    fn remove_app(&mut self, shared: &Shared, app: &AppId) {
        if let Some(record) = self.apps.remove(app) {
            for p in record.def.service_ports() {
                self.service_ports.remove(&p);
            }
        }
        self.waiting.remove(app);
        shared.bus.publish(|| events::AppTerminatedEvent {
            app_id: app.clone(),
            event_type: events::AppTerminatedEvent::TYPE,
            timestamp: now_ts(),
        });
    }
}

fn announce_success(shared: &Shared, d: &Deployment) {
    shared.bus.publish(|| events::DeploymentSuccess {
        id: d.plan.id.as_str().to_string(),
        plan: d.plan.event_json(),
        event_type: events::DeploymentSuccess::TYPE,
        timestamp: now_ts(),
    });
    shared.bus.publish(|| events::GroupChangeSuccess {
        group_id: "/".to_string(),
        version: d.plan.version,
        event_type: events::GroupChangeSuccess::TYPE,
        timestamp: now_ts(),
    });
}

/// Announces the first step of a new deployment.
pub fn announce_start(shared: &Shared, d: &Deployment) {
    if d.is_running() {
        shared.bus.publish(|| events::DeploymentInfo {
            plan: d.plan.event_json(),
            current_step: d.step_json(0),
            event_type: events::DeploymentInfo::TYPE,
            timestamp: now_ts(),
        });
    }
}

/// Chooses `count` instances to kill: those without a task first, then those not yet running,
/// then by `killSelection` on launch order.
fn pick_victims(
    candidates: &[&Instance],
    count: usize,
    selection: KillSelection,
) -> Vec<InstanceId> {
    let mut sorted: Vec<&&Instance> = candidates.iter().collect();
    sorted.sort_by_key(|i| {
        let rank = match &i.task {
            None => 0,
            Some(t) if t.state != TaskState::Running => 1,
            Some(_) => 2,
        };
        let age = match selection {
            KillSelection::YoungestFirst => u64::MAX - i.seq,
            KillSelection::OldestFirst => i.seq,
        };
        (rank, age)
    });
    sorted
        .into_iter()
        .take(count)
        .map(|i| i.id.clone())
        .collect()
}
