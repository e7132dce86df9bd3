//! What localmarathon knows: apps with their versions and instances, tasks, deployments, agents.
//!
//! All of it sits behind one mutex in [`Shared`]; API handlers and the scheduler loop hold it
//! briefly and never across an `await`. Changes requested through the API are applied here at
//! once (the app definition changes immediately and a deployment is recorded, as in Marathon);
//! the work they imply (launching, killing) is done by the scheduler loop, woken through
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
use crate::app::{AppDefinition, NetworkMode};
use crate::app_id::AppId;
use crate::app_update::{AppBodyError, AppUpdate};
use crate::deployment::{Deployment, DeploymentId, Plan};
use crate::events::{self, EventBus, MarathonEvent};
use crate::executor::{ExecutorKind, LaunchSpec};
use crate::group::GroupSnapshot;
use crate::health::{HealthRecord, ProbeTarget};
use crate::launch_delay::LaunchDelay;
use crate::task::{InstanceId, TaskId, TaskState};
use crate::timestamp::{Timestamp, VersionClock};

/// Service ports Marathon hands out (`--local_port_min`/`--local_port_max`).
pub const SERVICE_PORTS: std::ops::RangeInclusive<u16> = 10000..=20000;
/// Versions kept per app (`--zk_max_versions`).
pub const MAX_VERSIONS: usize = 50;

/// Why a requested change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    /// No such app.
    #[error("App '{0}' does not exist")]
    AppNotFound(AppId),
    /// The app exists already.
    #[error("An app with id [{0}] already exists.")]
    AppExists(AppId),
    /// A deployment holds the app.
    #[error(
        "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'."
    )]
    Locked {
        /// The deployments holding it.
        deployments: Vec<DeploymentId>,
    },
    /// The body is not a valid app.
    #[error("{0}")]
    Body(AppBodyError),
    /// No such task.
    #[error("Task '{0}' does not exist")]
    TaskNotFound(String),
    /// No such deployment.
    #[error("DeploymentPlan {0} does not exist")]
    DeploymentNotFound(String),
    /// No such version of an app.
    #[error("App '{app}' does not exist in version {version}")]
    VersionNotFound {
        /// The app.
        app: AppId,
        /// The version asked for.
        version: String,
    },
    /// No service port left.
    #[error(
        "no free service port left in 10000-20000 for app '{0}': delete apps or use fixed ports"
    )]
    ServicePortsExhausted(AppId),
}

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
    /// Environment (kept for COMMAND health checks).
    pub env: Vec<(String, String)>,
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
    /// Running deployments, oldest first.
    pub deployments: Vec<Deployment>,
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
    /// Queued side effects.
    pub effects: Vec<Effect>,
    /// Instance creation counter.
    pub seq: u64,
}

/// State plus what is shared with it.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// Event bus.
    pub bus: EventBus,
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
                deployments: Vec::new(),
                agents,
                task_index: HashMap::new(),
                service_ports: BTreeSet::new(),
                root_version: Timestamp::now(),
                dirty: BTreeSet::new(),
                waiting: BTreeSet::new(),
                effects: Vec::new(),
                seq: 0,
            }),
            bus: EventBus::new(),
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

/// The result of an accepted change.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The app after the change (absent when deleted).
    pub app: Option<Arc<AppDefinition>>,
    /// The deployment started.
    pub deployment: DeploymentId,
    /// Its version.
    pub version: Timestamp,
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

    fn current(&self, id: &AppId) -> Result<Arc<AppDefinition>, ChangeError> {
        self.app(id)
            .map(|a| a.def.clone())
            .ok_or_else(|| ChangeError::AppNotFound(id.clone()))
    }

    fn check_lock(&mut self, bus: &EventBus, app: &AppId, force: bool) -> Result<(), ChangeError> {
        let Some(held) = self.apps.get(app).and_then(|a| a.deployment.clone()) else {
            return Ok(());
        };
        if !force {
            return Err(ChangeError::Locked {
                deployments: vec![held],
            });
        }
        self.cancel_deployment(bus, &held, "Cancelled by a forced update");
        Ok(())
    }

    /// Cancels a running deployment, leaving its effects as they are.
    pub fn cancel_deployment(
        &mut self,
        bus: &EventBus,
        id: &DeploymentId,
        reason: &str,
    ) -> Option<Deployment> {
        let pos = self.deployments.iter().position(|d| &d.plan.id == id)?;
        let mut d = self.deployments.remove(pos);
        d.cancel();
        if let Some(app) = self.apps.get_mut(&d.plan.app)
            && app.deployment.as_ref() == Some(id)
        {
            app.deployment = None;
        }
        bus.publish_plan(|format| events::DeploymentFailed {
            id: d.plan.id.as_str().to_string(),
            plan: d.plan.event_json(format),
            reason: reason.to_string(),
            event_type: events::DeploymentFailed::TYPE,
            timestamp: Timestamp::now(),
        });
        self.dirty.insert(d.plan.app.clone());
        Some(d)
    }

    /// Gives `def` service ports: declared non-zero ports stay, zeros reuse `previous`'s port at
    /// the same index or take the lowest free one.
    fn assign_service_ports(
        &mut self,
        def: &mut AppDefinition,
        previous: Option<&AppDefinition>,
    ) -> Result<(), ChangeError> {
        let old: Vec<u16> = previous.map(|p| p.service_ports()).unwrap_or_default();
        for p in &old {
            self.service_ports.remove(p);
        }
        let mut wanted: Vec<u16> = def.service_ports();
        for (i, port) in wanted.iter_mut().enumerate() {
            if *port == 0
                && let Some(prev) = old.get(i).copied().filter(|p| *p != 0)
                && !self.service_ports.contains(&prev)
            {
                *port = prev;
            }
            if *port == 0 {
                let free = SERVICE_PORTS
                    .clone()
                    .find(|p| !self.service_ports.contains(p))
                    .ok_or_else(|| ChangeError::ServicePortsExhausted(def.id.clone()))?;
                *port = free;
            }
            self.service_ports.insert(*port);
        }
        match def.network_mode() {
            NetworkMode::Host => {
                for (d, p) in def.port_definitions.iter_mut().flatten().zip(&wanted) {
                    d.port = *p;
                }
            }
            _ => {
                if let Some(mappings) = def
                    .container
                    .as_mut()
                    .and_then(|c| c.port_mappings.as_mut())
                {
                    for (m, p) in mappings.iter_mut().zip(&wanted) {
                        m.service_port = *p;
                    }
                }
            }
        }
        Ok(())
    }

    fn start_deployment(&mut self, shared: &Shared, plan: Plan) -> DeploymentId {
        let id = plan.id.clone();
        let app = plan.app.clone();
        let deployment = Deployment::new(plan);
        if deployment.is_running()
            && let Some(record) = self.apps.get_mut(&app)
        {
            record.deployment = Some(id.clone());
        }
        // A plan without steps is finished the moment it exists; the loop announces it.
        crate::scheduler::announce_start(shared, &deployment);
        self.deployments.push(deployment);
        self.dirty.insert(app);
        id
    }

    /// `POST /v2/apps`.
    pub fn create_app(
        &mut self,
        shared: &Shared,
        update: AppUpdate,
        id: AppId,
        force: bool,
    ) -> Result<Accepted, ChangeError> {
        if self.app(&id).is_some() {
            return Err(ChangeError::AppExists(id));
        }
        // The same id is still being stopped: locked, unless forced to take over.
        let mut dying = BTreeMap::new();
        if let Some(old) = self.apps.get(&id) {
            if let Some(held) = old.deployment.clone() {
                if !force {
                    return Err(ChangeError::Locked {
                        deployments: vec![held],
                    });
                }
                self.cancel_deployment(&shared.bus, &held, "Cancelled by a forced update");
            }
            if let Some(old) = self.apps.remove(&id) {
                for p in old.def.service_ports() {
                    self.service_ports.remove(&p);
                }
                dying = old.instances;
            }
        }
        let version = shared.clock.next();
        let mut def = update
            .apply(None, id.clone(), version)
            .map_err(ChangeError::Body)?;
        self.assign_service_ports(&mut def, None)?;
        let def = Arc::new(def);
        let original = self.snapshot();
        self.root_version = version;
        self.apps.insert(
            id.clone(),
            AppRecord {
                def: def.clone(),
                versions: BTreeMap::from([(version, def.clone())]),
                instances: dying,
                delay: LaunchDelay::default(),
                last_failure: None,
                deployment: None,
                deleted: false,
            },
        );
        let plan = Plan::between(
            id,
            None,
            Some(def.clone()),
            false,
            version,
            original,
            self.snapshot(),
        );
        let deployment = self.start_deployment(shared, plan);
        Ok(Accepted {
            app: Some(def),
            deployment,
            version,
        })
    }

    /// Installs `def` as the new definition of an existing app and starts a deployment.
    fn replace_definition(
        &mut self,
        shared: &Shared,
        id: &AppId,
        def: AppDefinition,
        restart: bool,
    ) -> Result<Accepted, ChangeError> {
        let version = def.version;
        self.install_definition(shared, id, def, restart, version)
    }

    /// Installs `def` (whatever its version) and starts a deployment of version `version`.
    fn install_definition(
        &mut self,
        shared: &Shared,
        id: &AppId,
        def: AppDefinition,
        restart: bool,
        version: Timestamp,
    ) -> Result<Accepted, ChangeError> {
        let previous = self.current(id)?;
        let mut def = def;
        self.assign_service_ports(&mut def, Some(&previous))?;
        let def = Arc::new(def);
        let original = self.snapshot();
        self.root_version = version;
        let record = self
            .apps
            .get_mut(id)
            .ok_or_else(|| ChangeError::AppNotFound(id.clone()))?;
        if restart || previous.is_upgrade(&def) {
            record.delay.reset();
        }
        record.def = def.clone();
        record.versions.insert(def.version, def.clone());
        while record.versions.len() > MAX_VERSIONS {
            record.versions.pop_first();
        }
        let plan = Plan::between(
            id.clone(),
            Some(previous),
            Some(def.clone()),
            restart,
            version,
            original,
            self.snapshot(),
        );
        let deployment = self.start_deployment(shared, plan);
        Ok(Accepted {
            app: Some(def),
            deployment,
            version,
        })
    }

    /// `PUT`/`PATCH /v2/apps/{id}`: creates the app if missing (PUT only), else updates it.
    /// `partial` merges onto the current definition; a body with `version` rolls back.
    pub fn update_app(
        &mut self,
        shared: &Shared,
        id: AppId,
        update: AppUpdate,
        partial: bool,
        force: bool,
        create_missing: bool,
    ) -> Result<(Accepted, bool), ChangeError> {
        let Some(current) = self.app(&id).map(|a| a.def.clone()) else {
            if !create_missing {
                return Err(ChangeError::AppNotFound(id));
            }
            return self
                .create_app(shared, update, id, force)
                .map(|a| (a, true));
        };
        self.check_lock(&shared.bus, &id, force)?;
        let version = shared.clock.next();
        let def = if let Some(raw) = update.version.clone() {
            let target = Timestamp::parse(&raw)
                .ok()
                .and_then(|v| self.apps.get(&id).and_then(|a| a.versions.get(&v).cloned()));
            let Some(target) = target else {
                return Err(ChangeError::VersionNotFound {
                    app: id,
                    version: raw,
                });
            };
            let mut def = (*target).clone();
            def.version = version;
            def.version_info.last_scaling_at = version;
            if current.is_upgrade(&def) {
                def.version_info.last_config_change_at = version;
            } else {
                def.version_info.last_config_change_at = current.version_info.last_config_change_at;
            }
            def
        } else {
            let base = partial.then_some(&*current);
            let mut def = update
                .apply(base, id.clone(), version)
                .map_err(ChangeError::Body)?;
            if !partial && !current.is_upgrade(&def) {
                def.version_info.last_config_change_at = current.version_info.last_config_change_at;
            }
            // A full replace that leaves ports at 0 keeps the assigned service ports.
            def
        };
        self.replace_definition(shared, &id, def, false)
            .map(|a| (a, false))
    }

    /// Rolls an app back to `original` as it was, version included (the revert of a cancelled
    /// deployment): instances of that configuration stay, the others are replaced.
    pub fn restore_app(
        &mut self,
        shared: &Shared,
        id: &AppId,
        original: &AppDefinition,
    ) -> Result<Accepted, ChangeError> {
        let version = shared.clock.next();
        self.install_definition(shared, id, original.clone(), false, version)
    }

    /// `POST /v2/apps/{id}/restart`.
    pub fn restart_app(
        &mut self,
        shared: &Shared,
        id: &AppId,
        force: bool,
    ) -> Result<Accepted, ChangeError> {
        let current = self.current(id)?;
        self.check_lock(&shared.bus, id, force)?;
        let version = shared.clock.next();
        let mut def = (*current).clone();
        def.version = version;
        def.version_info.last_scaling_at = version;
        def.version_info.last_config_change_at = version;
        self.replace_definition(shared, id, def, true)
    }

    /// `DELETE /v2/apps/{id}`: the app stays visible until its tasks are gone.
    pub fn delete_app(
        &mut self,
        shared: &Shared,
        id: &AppId,
        force: bool,
    ) -> Result<Accepted, ChangeError> {
        let current = self.current(id)?;
        self.check_lock(&shared.bus, id, force)?;
        let version = shared.clock.next();
        let original = self.snapshot();
        self.root_version = version;
        if let Some(record) = self.apps.get_mut(id) {
            record.deleted = true;
        }
        let target = self.snapshot();
        let plan = Plan::between(
            id.clone(),
            Some(current),
            None,
            false,
            version,
            original,
            target,
        );
        let deployment = self.start_deployment(shared, plan);
        Ok(Accepted {
            app: None,
            deployment,
            version,
        })
    }

    /// Scales an app to `instances` with `sentenced` instances killed first (`scale=true` kills).
    pub fn scale_down_killing(
        &mut self,
        shared: &Shared,
        id: &AppId,
        sentenced: &[InstanceId],
        force: bool,
    ) -> Result<Accepted, ChangeError> {
        let current = self.current(id)?;
        self.check_lock(&shared.bus, id, force)?;
        let version = shared.clock.next();
        let mut def = (*current).clone();
        def.instances = current.instances.saturating_sub(sentenced.len() as u32);
        def.version = version;
        def.version_info.last_scaling_at = version;
        for instance in sentenced {
            self.decommission(id, instance, KillReason::Requested);
        }
        self.replace_definition(shared, id, def, false)
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
