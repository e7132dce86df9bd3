//! What localmarathon knows: apps with their versions and instances, tasks, deployments, agents.
//!
//! All of it sits behind one mutex in [`Shared`]; API handlers and the scheduler loop hold it
//! briefly and never across an `await`. Changes requested through the API are applied at once
//! (see `changes.rs`: the app definition changes immediately and a deployment is recorded, as in
//! Marathon); the work they imply (launching, killing) is done by the scheduler loop, woken through
//! [`Shared::wake`]. Side effects that leave the process (starting or signalling tasks, starting
//! probes) are queued as [`Effect`]s and run by the loop outside the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentIndex, Resources};
use crate::app::AppDefinition;
use crate::app_id::AppId;
use crate::changes::ChangeError;
use crate::deployment::DeploymentId;
use crate::deployments::Deployments;
use crate::events::EventBus;
use crate::executor::{ExecutorKind, LaunchSpec};
use crate::group::GroupSnapshot;
use crate::health::{HealthRecord, ProbeTarget};
use crate::launch_delay::{DelayEnds, LaunchDelay};
use crate::offers::OfferStatistics;
use crate::task::{InstanceId, TaskId, TaskState};
use crate::timestamp::{Timestamp, VersionClock};

/// What an instance is meant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Keep a task running.
    Running,
    /// End its task and go away.
    Decommissioned,
}

/// Why a task is being killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// API, scaling, upgrade or deletion.
    Requested,
    /// Failed its health checks (counts as a failure for backoff).
    Unhealthy,
}

/// One run of an instance.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// Task id.
    pub id: TaskId,
    /// Lifecycle state.
    pub state: TaskState,
    /// Agent it runs on.
    pub agent: AgentIndex,
    /// Host ports.
    pub ports: Vec<u16>,
    /// Resources booked.
    pub resources: Resources,
    /// When it was launched.
    pub staged_at: Timestamp,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// Monotonic start of running (for health grace periods).
    pub running_since: Option<Instant>,
    /// App version it runs.
    pub version: Timestamp,
    /// Main process id.
    pub pid: Option<u32>,
    /// Sandbox directory.
    pub sandbox: PathBuf,
    /// Environment (kept for COMMAND health checks; shared with the launch).
    pub env: Arc<[(String, String)]>,
    /// One record per health check.
    pub health: Vec<Option<HealthRecord>>,
    /// Stops the probes.
    pub probes: Option<CancellationToken>,
    /// Set once a kill was requested.
    pub kill_reason: Option<KillReason>,
}

/// A slot of an app.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Instance id.
    pub id: InstanceId,
    /// What it should do.
    pub goal: Goal,
    /// Definition of its current (or next) task.
    pub def: Arc<AppDefinition>,
    /// Number of tasks launched so far.
    pub incarnation: u32,
    /// The current task, if launched and not yet ended.
    pub task: Option<TaskRecord>,
    /// Creation order.
    pub seq: u64,
}

impl Instance {
    /// Running, and healthy on every check if the app has checks.
    pub fn is_ready(&self) -> bool {
        let Some(task) = &self.task else {
            return false;
        };
        task.state == TaskState::Running
            && task.kill_reason.is_none()
            && (self.def.health_checks.is_empty()
                || task
                    .health
                    .iter()
                    .all(|h| h.as_ref().is_some_and(|h| h.alive)))
    }
}

/// `lastTaskFailure`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    /// App id.
    pub app_id: AppId,
    /// Agent hostname.
    pub host: String,
    /// Mesos message.
    pub message: String,
    /// Terminal state.
    pub state: &'static str,
    /// Task id.
    pub task_id: String,
    /// When.
    pub timestamp: Timestamp,
    /// App version of the task.
    pub version: Timestamp,
    /// Agent id.
    pub slave_id: String,
}

/// An app and everything about it.
#[derive(Debug, Clone)]
pub struct AppRecord {
    /// Current definition.
    pub def: Arc<AppDefinition>,
    /// Past definitions by version.
    pub versions: BTreeMap<Timestamp, Arc<AppDefinition>>,
    /// Instances by id.
    pub instances: BTreeMap<InstanceId, Instance>,
    /// Launch backoff.
    pub delay: LaunchDelay,
    /// The offers of the current launch attempt, while instances wait for a task.
    pub offers: Option<OfferStatistics>,
    /// Last failed task.
    pub last_failure: Option<TaskFailure>,
    /// Running deployment.
    pub deployment: Option<DeploymentId>,
    /// Deleted: gone from the API at once (as Marathon removes it from its group tree) while
    /// its tasks are being killed.
    pub deleted: bool,
}

/// Side effects the scheduler loop performs outside the lock.
#[derive(Debug)]
pub enum Effect {
    /// Start a task.
    Launch(Box<LaunchSpec>),
    /// Signal a task to end.
    Kill(TaskId),
    /// Start health probes.
    Probe(Box<ProbeTarget>, CancellationToken),
}

/// Fixed settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mesos-style cluster id, prefix of agent ids.
    pub cluster_id: String,
    /// Where sandboxes go.
    pub sandbox_root: PathBuf,
    /// Which executor runs tasks.
    pub executor: ExecutorKind,
}

/// The whole mutable state.
#[derive(Debug)]
pub struct State {
    /// Apps by id.
    pub apps: BTreeMap<AppId, AppRecord>,
    /// Running deployments, oldest first, by id.
    pub deployments: Deployments,
    /// Agents.
    pub agents: Vec<Agent>,
    /// Task id → owner.
    pub task_index: HashMap<TaskId, (AppId, InstanceId)>,
    /// Service ports in use.
    pub service_ports: BTreeSet<u16>,
    /// Root group version.
    pub root_version: Timestamp,
    /// Apps the loop must look at.
    pub dirty: BTreeSet<AppId>,
    /// Apps with instances that found no agent.
    pub waiting: BTreeSet<AppId>,
    /// When apps' launch delays end.
    pub delay_ends: DelayEnds,
    /// Queued side effects.
    pub effects: Vec<Effect>,
    /// Instance creation counter.
    pub seq: u64,
    /// App definitions changed since they were last saved to the state directory.
    pub unsaved: bool,
}

/// State plus what is shared with it.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// Event bus.
    pub bus: EventBus,
    /// What clients asked for, counted.
    pub traffic: crate::api::Traffic,
    /// Version timestamps.
    pub clock: VersionClock,
    /// Wakes the scheduler loop.
    pub wake: Notify,
    /// Fixed settings.
    pub settings: Settings,
}

impl Shared {
    /// Shared state over `agents`.
    pub fn new(settings: Settings, agents: Vec<Agent>) -> Self {
        Shared {
            state: Mutex::new(State {
                apps: BTreeMap::new(),
                deployments: Deployments::default(),
                agents,
                task_index: HashMap::new(),
                service_ports: BTreeSet::new(),
                root_version: Timestamp::now(),
                dirty: BTreeSet::new(),
                waiting: BTreeSet::new(),
                delay_ends: DelayEnds::default(),
                effects: Vec::new(),
                seq: 0,
                unsaved: false,
            }),
            bus: EventBus::new(),
            traffic: crate::api::Traffic::default(),
            clock: VersionClock::default(),
            wake: Notify::new(),
            settings,
        }
    }

    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// All apps now, for plans and group views.
    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            apps: self.visible_apps().map(|a| a.def.clone()).collect(),
            version: self.root_version,
        }
    }

    /// An app as the API sees it: apps being deleted are already gone.
    pub fn app(&self, id: &AppId) -> Option<&AppRecord> {
        self.apps.get(id).filter(|a| !a.deleted)
    }

    /// Every app the API sees.
    pub fn visible_apps(&self) -> impl Iterator<Item = &AppRecord> {
        self.apps.values().filter(|a| !a.deleted)
    }

    /// The current definition of an app the API sees.
    pub(crate) fn current(&self, id: &AppId) -> Result<Arc<AppDefinition>, ChangeError> {
        self.app(id)
            .map(|a| a.def.clone())
            .ok_or_else(|| ChangeError::AppNotFound(id.clone()))
    }

    /// Every visible app's versions, oldest first (what the state directory keeps).
    pub fn saved_apps(&self) -> Vec<Vec<Arc<AppDefinition>>> {
        self.visible_apps()
            .map(|a| a.versions.values().cloned().collect())
            .collect()
    }

    /// Marks an instance for removal and kills its task.
    pub fn decommission(&mut self, app: &AppId, instance: &InstanceId, reason: KillReason) {
        let Some(record) = self.apps.get_mut(app) else {
            return;
        };
        let Some(inst) = record.instances.get_mut(instance) else {
            return;
        };
        inst.goal = Goal::Decommissioned;
        if inst.task.is_none() {
            record.instances.remove(instance);
        } else {
            self.kill_instance_task(app, instance, reason);
        }
        self.dirty.insert(app.clone());
    }

    /// Kills the current task of an instance (the instance itself stays unless decommissioned).
    pub fn kill_instance_task(&mut self, app: &AppId, instance: &InstanceId, reason: KillReason) {
        let Some(inst) = self
            .apps
            .get_mut(app)
            .and_then(|r| r.instances.get_mut(instance))
        else {
            return;
        };
        let Some(task) = inst.task.as_mut() else {
            return;
        };
        if task.kill_reason.is_some() || task.state.is_terminal() {
            return;
        }
        task.kill_reason = Some(reason);
        self.effects.push(Effect::Kill(task.id.clone()));
    }

    /// Finds an active task of `app`.
    pub fn find_task(&self, app: &AppId, task: &str) -> Option<(&Instance, &TaskRecord)> {
        let (owner, instance) = self.task_index.get(&TaskId::from_raw(task))?;
        if owner != app {
            return None;
        }
        let inst = self.apps.get(owner)?.instances.get(instance)?;
        Some((inst, inst.task.as_ref()?))
    }
}
