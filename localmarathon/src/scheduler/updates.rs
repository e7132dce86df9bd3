//! Applying reports: executor updates move tasks through their lifecycle, probe results update
//! health records; both announce what changed on the event bus.
//!
//! A terminal task releases its agent's resources, records `lastTaskFailure` when it failed,
//! delays the app's next launch when it ended by itself or for its health, and removes its
//! instance when that was decommissioned.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::events::{self, IpAddressJson, MarathonEvent};
use crate::executor::{ExecutorKind, ExecutorUpdate};
use crate::health::{HealthRecord, ProbeResult, ProbeTarget, Verdict};
use crate::state::{Effect, Goal, KillReason, Shared, State, TaskFailure};
use crate::task::{TaskEvent, TaskState};
use crate::timestamp::Timestamp;

impl State {
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
                let now = Instant::now();
                let wait = record.delay.on_failure(&def, now);
                self.delay_ends.schedule(app.clone(), now + wait);
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
