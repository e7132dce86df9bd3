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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::{AgentIndex, Resources};
use crate::app::{AppDefinition, KillSelection, NetworkMode};
use crate::app_id::AppId;
use crate::deployment::{
    ActionKind, Deployment, Progress, RestartBounds, RollingView, rolling_step,
};
use crate::environment::task_env;
use crate::events::{self, IpAddressJson, MarathonEvent};
use crate::executor::docker::DockerRun;
use crate::executor::{Executor, ExecutorKind, ExecutorUpdate, LaunchSpec, TaskCommand};
use crate::health::{self, HealthRecord, ProbeResult, ProbeTarget, Verdict};
use crate::placement::{Demand, place};
use crate::state::{Effect, Goal, Instance, KillReason, Shared, State, TaskFailure, TaskRecord};
use crate::task::{InstanceId, TaskEvent, TaskState};
use crate::timestamp::Timestamp;

/// The loop's inputs.
pub struct Inputs {
    /// Executor reports.
    pub updates: mpsc::UnboundedReceiver<ExecutorUpdate>,
    /// Probe results.
    pub probes: mpsc::UnboundedReceiver<ProbeResult>,
    /// Where probe loops send results.
    pub probe_tx: mpsc::UnboundedSender<ProbeResult>,
}

/// Runs until `stop` is cancelled.
pub async fn run(
    shared: Arc<Shared>,
    executor: Arc<Executor>,
    mut inputs: Inputs,
    probes: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let (effects, deadline) = {
            let mut st = shared.lock();
            st.reconcile(&shared, Instant::now());
            (
                std::mem::take(&mut st.effects),
                st.next_deadline(Instant::now()),
            )
        };
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
            () = stop.cancelled() => return,
            Some(update) = inputs.updates.recv() => {
                let mut st = shared.lock();
                st.apply_update(&shared, update);
                while let Ok(more) = inputs.updates.try_recv() {
                    st.apply_update(&shared, more);
                }
            }
            Some(result) = inputs.probes.recv() => {
                let mut st = shared.lock();
                st.apply_probe(&shared, result);
                while let Ok(more) = inputs.probes.try_recv() {
                    st.apply_probe(&shared, more);
                }
            }
            () = shared.wake.notified() => {}
            () = sleep => {}
        }
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
    /// The earliest launch delay expiry among apps waiting on one.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.apps
            .values()
            .filter(|a| {
                a.instances
                    .values()
                    .any(|i| i.goal == Goal::Running && i.task.is_none())
            })
            .filter_map(|a| a.delay.blocked_until(now))
            .min()
    }

    /// One pass over the dirty apps (and apps whose launch delay expired).
    pub fn reconcile(&mut self, shared: &Shared, now: Instant) {
        let expired: Vec<AppId> = self
            .apps
            .iter()
            .filter(|(_, a)| {
                a.delay.current().is_some()
                    && a.delay.blocked_until(now).is_none()
                    && a.instances
                        .values()
                        .any(|i| i.goal == Goal::Running && i.task.is_none())
            })
            .map(|(id, _)| id.clone())
            .collect();
        self.dirty.extend(expired);
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

    fn finish_empty_deployments(&mut self, shared: &Shared) {
        let finished: Vec<Deployment> = {
            let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deployments)
                .into_iter()
                .partition(|d| !d.is_running());
            self.deployments = running;
            done
        };
        for d in finished {
            announce_success(shared, &d);
        }
    }

    fn reconcile_app(&mut self, shared: &Shared, app: &AppId, now: Instant) {
        // Drive the deployment until its current step cannot complete yet.
        while let Some(dep_id) = self.apps.get(app).and_then(|a| a.deployment.clone()) {
            let Some(pos) = self.deployments.iter().position(|d| d.plan.id == dep_id) else {
                break;
            };
            let Some(action) = self.deployments[pos].current_action().map(|a| a.action) else {
                break;
            };
            let complete = match action {
                ActionKind::StartApplication => true,
                ActionKind::ScaleApplication => self.drive_scale(app),
                ActionKind::RestartApplication => self.drive_restart(app, pos),
                ActionKind::StopApplication => self.drive_stop(app),
            };
            if !complete {
                break;
            }
            let d = &mut self.deployments[pos];
            match d.advance() {
                Some(Progress::NextStep { finished, started }) => {
                    let d = &self.deployments[pos];
                    shared
                        .bus
                        .publish_plan(|format| events::DeploymentStepSuccess {
                            plan: d.plan.event_json(format),
                            current_step: d.step_json(finished),
                            event_type: events::DeploymentStepSuccess::TYPE,
                            timestamp: now_ts(),
                        });
                    shared.bus.publish_plan(|format| events::DeploymentInfo {
                        plan: d.plan.event_json(format),
                        current_step: d.step_json(started),
                        event_type: events::DeploymentInfo::TYPE,
                        timestamp: now_ts(),
                    });
                }
                Some(Progress::Done { finished }) => {
                    let d = self.deployments.remove(pos);
                    shared
                        .bus
                        .publish_plan(|format| events::DeploymentStepSuccess {
                            plan: d.plan.event_json(format),
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
    fn drive_restart(&mut self, app: &AppId, pos: usize) -> bool {
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
        let bounds = *self.deployments[pos].restart.get_or_insert_with(|| {
            RestartBounds::compute(def.instances, def.upgrade_strategy, view.old_ready)
        });
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

    fn new_instance(&mut self, app: &AppId, def: Arc<AppDefinition>) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(record) = self.apps.get_mut(app) {
            let id = InstanceId::new(app);
            record.instances.insert(
                id.clone(),
                Instance {
                    id,
                    goal: Goal::Running,
                    def,
                    incarnation: 0,
                    task: None,
                    seq,
                },
            );
        }
    }

    /// Launches a task for every instance that should run and has none.
    fn launch_missing(&mut self, shared: &Shared, app: &AppId, now: Instant) {
        let Some(record) = self.apps.get(app) else {
            return;
        };
        if record.delay.blocked_until(now).is_some() {
            return;
        }
        let pending: Vec<InstanceId> = record
            .instances
            .values()
            .filter(|i| i.goal == Goal::Running && i.task.is_none())
            .map(|i| i.id.clone())
            .collect();
        self.waiting.remove(app);
        for instance in pending {
            if !self.launch(shared, app, &instance) {
                self.waiting.insert(app.clone());
                break;
            }
        }
    }

    /// Places and launches one task; false if no agent can take it.
    fn launch(&mut self, shared: &Shared, app: &AppId, instance: &InstanceId) -> bool {
        let Some(record) = self.apps.get(app) else {
            return true;
        };
        let def = record.def.clone();
        let placed: Vec<AgentIndex> = record
            .instances
            .values()
            .filter_map(|i| i.task.as_ref().map(|t| t.agent))
            .collect();
        let resources = Resources {
            cpus: def.cpus,
            mem: def.mem,
            disk: def.disk,
        };
        let fixed = def.require_ports && def.network_mode() == NetworkMode::Host;
        let ports: Vec<Option<u16>> = match def.network_mode() {
            NetworkMode::Host => def
                .port_definitions
                .iter()
                .flatten()
                .map(|p| fixed.then_some(p.port))
                .collect(),
            _ => def
                .container
                .iter()
                .flat_map(|c| c.port_mappings.iter().flatten())
                .filter_map(|m| m.host_port.map(|h| (h != 0).then_some(h)))
                .collect(),
        };
        let demand = Demand {
            resources,
            ports,
            constraints: &def.constraints,
        };
        let Some(placement) = place(&self.agents, &demand, &placed) else {
            return false;
        };
        let agent = &mut self.agents[placement.agent.0];
        agent.allocate(resources, &placement.ports);
        let host = agent.hostname.clone();
        let address = agent.spec.host;
        let agent_id = agent.id.clone();
        let Some(inst) = self
            .apps
            .get_mut(app)
            .and_then(|r| r.instances.get_mut(instance))
        else {
            return true;
        };
        inst.incarnation += 1;
        inst.def = def.clone();
        let task_id = inst.id.task(inst.incarnation);
        let sandbox = shared
            .settings
            .sandbox_root
            .join(&agent_id)
            .join(task_id.as_str());
        let env = task_env(&def, &task_id, &host, &placement.ports, &sandbox);
        let command = task_command(&def, &placement.ports);
        let staged_at = Timestamp::now();
        inst.task = Some(TaskRecord {
            id: task_id.clone(),
            state: TaskState::Staging,
            agent: placement.agent,
            ports: placement.ports.clone(),
            resources,
            staged_at,
            started_at: None,
            running_since: None,
            version: def.version,
            pid: None,
            sandbox: sandbox.clone(),
            env: env.clone(),
            health: vec![None; def.health_checks.len()],
            probes: None,
            kill_reason: None,
        });
        self.task_index
            .insert(task_id.clone(), (app.clone(), instance.clone()));
        shared.bus.publish(|| events::InstanceChangedEvent {
            instance_id: instance.as_str().to_string(),
            condition: "Provisioned",
            run_spec_id: app.clone(),
            agent_id: agent_id.clone(),
            host: host.clone(),
            run_spec_version: def.version,
            event_type: events::InstanceChangedEvent::TYPE,
            timestamp: staged_at,
        });
        self.effects.push(Effect::Launch(Box::new(LaunchSpec {
            task_id,
            app_id: app.clone(),
            command,
            env,
            sandbox,
            host: address,
            kill_grace: def.kill_grace(),
        })));
        true
    }

    /// Moves a task to TASK_KILLING as its kill is sent.
    pub fn mark_killing(&mut self, shared: &Shared, task: &crate::task::TaskId) {
        self.transition(shared, task, TaskEvent::KillRequested, String::new(), None);
    }

    /// Applies an executor report.
    pub fn apply_update(&mut self, shared: &Shared, update: ExecutorUpdate) {
        self.transition(
            shared,
            &update.task_id,
            update.event,
            update.message,
            update.pid,
        );
    }

    fn transition(
        &mut self,
        shared: &Shared,
        task_id: &crate::task::TaskId,
        event: TaskEvent,
        message: String,
        pid: Option<u32>,
    ) {
        let Some((app, instance)) = self.task_index.get(task_id).cloned() else {
            return;
        };
        let simulated = shared.settings.executor == ExecutorKind::Sim;
        let Some(record) = self.apps.get_mut(&app) else {
            return;
        };
        let Some(inst) = record.instances.get_mut(&instance) else {
            return;
        };
        let Some(task) = inst.task.as_mut() else {
            return;
        };
        if pid.is_some() && task.pid.is_none() {
            task.pid = pid;
        }
        let next = match task.state.on(&event) {
            Ok(next) => next,
            Err(e) => {
                tracing::debug!(task = %task_id, error = %e, "ignored task update");
                return;
            }
        };
        if next == task.state {
            return;
        }
        task.state = next;
        let now = Timestamp::now();
        let agent = &self.agents[task.agent.0];
        let (agent_id, host, address) = (agent.id.clone(), agent.hostname.clone(), agent.spec.host);
        if next == TaskState::Running {
            task.started_at = Some(now);
            task.running_since = Some(Instant::now());
            if !inst.def.health_checks.is_empty() {
                let token = CancellationToken::new();
                task.probes = Some(token.clone());
                self.effects.push(Effect::Probe(
                    Box::new(ProbeTarget {
                        task_id: task.id.clone(),
                        host: address,
                        ports: task.ports.clone(),
                        env: task.env.clone(),
                        sandbox: task.sandbox.clone(),
                        checks: inst.def.health_checks.clone(),
                        simulated,
                    }),
                    token,
                ));
            }
        }
        let version = task.version;
        let ports = task.ports.clone();
        shared.bus.publish(|| events::StatusUpdateEvent {
            slave_id: agent_id.clone(),
            task_id: task_id.as_str().to_string(),
            task_status: next.as_str(),
            message: message.clone(),
            app_id: app.clone(),
            host: host.clone(),
            ip_addresses: vec![IpAddressJson::of(address)],
            ports: ports.clone(),
            version,
            event_type: events::StatusUpdateEvent::TYPE,
            timestamp: now,
        });
        shared.bus.publish(|| events::InstanceChangedEvent {
            instance_id: instance.as_str().to_string(),
            condition: next.condition(),
            run_spec_id: app.clone(),
            agent_id: agent_id.clone(),
            host: host.clone(),
            run_spec_version: version,
            event_type: events::InstanceChangedEvent::TYPE,
            timestamp: now,
        });
        if next.is_terminal() {
            let task = inst.task.take().expect("task present");
            if let Some(p) = &task.probes {
                p.cancel();
            }
            self.task_index.remove(task_id);
            if next.is_failure() {
                record.last_failure = Some(TaskFailure {
                    app_id: app.clone(),
                    host,
                    message,
                    state: next.as_str(),
                    task_id: task_id.as_str().to_string(),
                    timestamp: now,
                    version,
                    slave_id: agent_id,
                });
            }
            // A task that ended by itself (failed or finished) or was killed for its health
            // delays the next launch; a requested kill does not.
            let ended_by_itself = task.kill_reason.is_none();
            if ended_by_itself || task.kill_reason == Some(KillReason::Unhealthy) {
                let def = record.def.clone();
                // A task that ran longer than the longest delay ends a streak of failures.
                let ran = task
                    .running_since
                    .map(|s| Instant::now().saturating_duration_since(s))
                    .unwrap_or_default();
                if ran > Duration::from_secs(u64::from(def.max_launch_delay_seconds)) {
                    record.delay.reset();
                }
                let wait = record.delay.on_failure(&def, Instant::now());
                tracing::info!(app = %app, task = %task_id, state = %next, delay = ?wait, "task ended; relaunch delayed");
            }
            if inst.goal == Goal::Decommissioned {
                record.instances.remove(&instance);
            }
            self.agents[task.agent.0].release(task.resources, &task.ports);
            // Freed resources may let waiting apps launch.
            let waiting = std::mem::take(&mut self.waiting);
            self.dirty.extend(waiting);
        }
        self.dirty.insert(app);
    }

    /// Applies a health probe result.
    pub fn apply_probe(&mut self, shared: &Shared, result: ProbeResult) {
        let Some((app, instance)) = self.task_index.get(&result.task_id).cloned() else {
            return;
        };
        let Some(inst) = self
            .apps
            .get_mut(&app)
            .and_then(|r| r.instances.get_mut(&instance))
        else {
            return;
        };
        let def = inst.def.clone();
        let Some(task) = inst.task.as_mut() else {
            return;
        };
        if task.state != TaskState::Running || task.kill_reason.is_some() {
            return;
        }
        let Some(check) = def.health_checks.get(result.check) else {
            return;
        };
        let was_healthy = healthy(&task.health);
        let running_for = task
            .running_since
            .map(|s| Instant::now().saturating_duration_since(s))
            .unwrap_or(Duration::ZERO);
        let Some(slot) = task.health.get_mut(result.check) else {
            return;
        };
        let now = Timestamp::now();
        let (verdict, alive_changed) =
            HealthRecord::record(slot, &instance, check, &result.outcome, running_for, now);
        let alive = slot.as_ref().is_some_and(|h| h.alive);
        let cause = slot
            .as_ref()
            .and_then(|h| h.last_failure_cause.clone())
            .unwrap_or_default();
        let is_healthy = healthy(&task.health);
        let task_id = task.id.clone();
        let agent = &self.agents[task.agent.0];
        let recorded_failure = result.outcome.is_err()
            && task.health[result.check]
                .as_ref()
                .is_some_and(|h| h.last_failure == Some(now));
        if recorded_failure {
            shared.bus.publish(|| events::FailedHealthCheckEvent {
                app_id: app.clone(),
                task_id: instance.as_str().to_string(),
                health_check: serde_json::to_value(check).unwrap_or_default(),
                event_type: events::FailedHealthCheckEvent::TYPE,
                timestamp: now,
            });
        }
        if alive_changed {
            shared.bus.publish(|| events::HealthStatusChangedEvent {
                app_id: app.clone(),
                instance_id: instance.as_str().to_string(),
                version: def.version,
                alive,
                event_type: events::HealthStatusChangedEvent::TYPE,
                timestamp: now,
            });
        }
        if was_healthy != is_healthy {
            shared.bus.publish(|| events::InstanceHealthChangedEvent {
                instance_id: instance.as_str().to_string(),
                run_spec_id: app.clone(),
                run_spec_version: def.version,
                healthy: is_healthy,
                event_type: events::InstanceHealthChangedEvent::TYPE,
                timestamp: now,
            });
        }
        if verdict == Verdict::Kill {
            let (host, slave_id) = (agent.hostname.clone(), agent.id.clone());
            shared.bus.publish(|| events::UnhealthyInstanceKillEvent {
                app_id: app.clone(),
                task_id: task_id.as_str().to_string(),
                instance_id: instance.as_str().to_string(),
                version: def.version,
                reason: cause.clone(),
                host,
                slave_id,
                event_type: events::UnhealthyInstanceKillEvent::TYPE,
                timestamp: now,
            });
            tracing::info!(app = %app, task = %task_id, reason = %cause, "killing unhealthy task");
            self.kill_instance_task(&app, &instance, KillReason::Unhealthy);
        }
        self.dirty.insert(app);
    }
}

/// Overall health: `None` before any result, else whether every check is alive.
fn healthy(health: &[Option<HealthRecord>]) -> Option<bool> {
    if health.iter().all(Option::is_none) {
        return None;
    }
    Some(health.iter().all(|h| h.as_ref().is_some_and(|h| h.alive)))
}

fn announce_success(shared: &Shared, d: &Deployment) {
    shared.bus.publish_plan(|format| events::DeploymentSuccess {
        id: d.plan.id.as_str().to_string(),
        plan: d.plan.event_json(format),
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
        shared.bus.publish_plan(|format| events::DeploymentInfo {
            plan: d.plan.event_json(format),
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

fn task_command(def: &AppDefinition, host_ports: &[u16]) -> TaskCommand {
    if let (Some(container), Some(image)) = (&def.container, def.docker_image()) {
        let mut host = host_ports.iter().copied();
        let ports = container
            .port_mappings
            .iter()
            .flatten()
            .filter_map(|m| {
                m.host_port?;
                let h = host.next()?;
                let c = if m.container_port == 0 {
                    h
                } else {
                    m.container_port
                };
                Some((h, c, m.protocol.clone()))
            })
            .collect();
        let docker = container.docker.as_ref();
        return TaskCommand::Docker(DockerRun {
            image: image.to_string(),
            cmd: def.cmd.clone(),
            args: def.args.clone(),
            network: def.network_mode(),
            ports,
            parameters: docker
                .map(|d| {
                    d.parameters
                        .iter()
                        .map(|p| (p.key.clone(), p.value.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            privileged: docker.is_some_and(|d| d.privileged),
            force_pull: docker.is_some_and(|d| d.force_pull_image),
        });
    }
    match &def.cmd {
        Some(cmd) => TaskCommand::Shell(cmd.clone()),
        None => TaskCommand::Argv(def.args.clone()),
    }
}
