//! Launching: placing an instance's next task on an agent and handing it to the executor.
//!
//! A launch books the agent's resources and host ports, builds the task's environment (shared
//! by the task record and the executor call; none for simulated tasks) and command, records
//! the task in TASK_STAGING and queues the executor call; it reports `false` when no agent can
//! take the task, which leaves the app waiting for resources. Every agent weighed is an offer
//! in the app's launch attempt statistics (see [`crate::offers`]). The agents of an app's tasks
//! are gathered once per round of launches, not once per task.

use std::sync::Arc;

use tokio::time::Instant;

use crate::agent::{AgentIndex, Resources};
use crate::app::{AppDefinition, NetworkMode};
use crate::app_id::AppId;
use crate::environment::task_env;
use crate::events::{self, MarathonEvent};
use crate::executor::docker::DockerRun;
use crate::executor::{ExecutorKind, LaunchSpec, TaskCommand};
use crate::offers::OfferStatistics;
use crate::placement::{Demand, place};
use crate::state::{Effect, Goal, Instance, Shared, State, TaskRecord};
use crate::task::{InstanceId, TaskState};
use crate::timestamp::Timestamp;

impl State {
    pub(super) fn new_instance(&mut self, app: &AppId, def: Arc<AppDefinition>) {
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
    pub(super) fn launch_missing(&mut self, shared: &Shared, app: &AppId, now: Instant) {
        let Some(record) = self.apps.get_mut(app) else {
            return;
        };
        let pending: Vec<InstanceId> = record
            .instances
            .values()
            .filter(|i| i.goal == Goal::Running && i.task.is_none())
            .map(|i| i.id.clone())
            .collect();
        // A launch attempt lasts while instances wait for a task, held back or not.
        if pending.is_empty() {
            record.offers = None;
        } else if record.offers.is_none() {
            record.offers = Some(OfferStatistics::new(Timestamp::now()));
        }
        if record.delay.blocked_until(now).is_some() {
            return;
        }
        self.waiting.remove(app);
        // The agents of the app's tasks, for constraints and spreading; each launch adds one.
        let mut placed: Vec<AgentIndex> = record
            .instances
            .values()
            .filter_map(|i| i.task.as_ref().map(|t| t.agent))
            .collect();
        let mut launched = 0;
        for instance in &pending {
            if !self.launch(shared, app, instance, &mut placed) {
                self.waiting.insert(app.clone());
                break;
            }
            launched += 1;
        }
        if launched == pending.len()
            && let Some(record) = self.apps.get_mut(app)
        {
            record.offers = None;
        }
    }

    /// Places and launches one task, adding its agent to `placed` (the agents of the app's
    /// tasks); false if no agent can take it.
    fn launch(
        &mut self,
        shared: &Shared,
        app: &AppId,
        instance: &InstanceId,
        placed: &mut Vec<AgentIndex>,
    ) -> bool {
        let Some(record) = self.apps.get(app) else {
            return true;
        };
        let def = record.def.clone();
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
            probe_ports: shared.settings.executor == ExecutorKind::Process,
        };
        let matching = place(&self.agents, &demand, placed);
        if let Some(offers) = self
            .apps
            .get_mut(app)
            .and_then(|record| record.offers.as_mut())
        {
            let at = Timestamp::now();
            for (agent, reasons) in &matching.declined {
                offers.record(*agent, reasons, at);
            }
            if let Some(placement) = &matching.placement {
                offers.record(placement.agent, &[], at);
            }
        }
        let Some(placement) = matching.placement else {
            return false;
        };
        placed.push(placement.agent);
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
        // A simulated task runs nothing and its health checks pass unprobed: nothing would
        // read its environment.
        let env: Arc<[(String, String)]> = match shared.settings.executor {
            ExecutorKind::Sim => Arc::new([]),
            ExecutorKind::Process => {
                task_env(&def, &task_id, &host, &placement.ports, &sandbox).into()
            }
        };
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
