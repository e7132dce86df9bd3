//! Changes requested through the API, applied to the state at once.
//!
//! Each accepted change installs the new app definition (Marathon's group tree changes
//! immediately), computes the deployment plan from before and after, and records the
//! deployment; the scheduler loop then does the work. A change to an app held by a running
//! deployment is refused with the deployment's id unless forced, which cancels that deployment
//! first. Service ports are assigned here, since only the whole state knows which are free.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::app::AppDefinition;
use crate::app::NetworkMode;
use crate::app_id::AppId;
use crate::app_update::{AppBodyError, AppUpdate};
use crate::deployment::{Deployment, DeploymentId, Plan};
use crate::events::{self, EventBus, MarathonEvent};
use crate::launch_delay::LaunchDelay;
use crate::state::{AppRecord, KillReason, Shared, State};
use crate::task::InstanceId;
use crate::timestamp::Timestamp;

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
        let d = self.deployments.cancel(id)?;
        if let Some(app) = self.apps.get_mut(&d.plan.app)
            && app.deployment.as_ref() == Some(id)
        {
            app.deployment = None;
        }
        bus.publish(|| events::DeploymentFailed {
            id: d.plan.id.as_str().to_string(),
            plan: d.plan.event_json(),
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
        self.deployments.insert(deployment);
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
        self.root_version = version;
        self.unsaved = true;
        self.apps.insert(
            id.clone(),
            AppRecord {
                def: def.clone(),
                versions: BTreeMap::from([(version, def.clone())]),
                instances: dying,
                delay: LaunchDelay::default(),
                offers: None,
                last_failure: None,
                deployment: None,
                deleted: false,
            },
        );
        let plan = Plan::between(id, None, Some(def.clone()), false, version);
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
        self.root_version = version;
        self.unsaved = true;
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

    /// Brings back an app saved in the state directory (`versions` oldest first, the last one
    /// current) and starts a deployment that launches its instances.
    pub fn restore_saved(
        &mut self,
        shared: &Shared,
        versions: Vec<AppDefinition>,
    ) -> Result<Accepted, ChangeError> {
        let mut versions = versions;
        let Some(mut def) = versions.pop() else {
            return Err(ChangeError::Body(AppBodyError::Invalid(Default::default())));
        };
        let id = def.id.clone();
        if self.apps.contains_key(&id) {
            return Err(ChangeError::AppExists(id));
        }
        // Saved service ports are non-zero, so they are kept (and reserved).
        self.assign_service_ports(&mut def, None)?;
        let def = Arc::new(def);
        let mut history: BTreeMap<Timestamp, Arc<AppDefinition>> = versions
            .into_iter()
            .map(|d| (d.version, Arc::new(d)))
            .collect();
        history.insert(def.version, def.clone());
        let version = shared.clock.next();
        self.root_version = version;
        self.apps.insert(
            id.clone(),
            AppRecord {
                def: def.clone(),
                versions: history,
                instances: BTreeMap::new(),
                delay: LaunchDelay::default(),
                offers: None,
                last_failure: None,
                deployment: None,
                deleted: false,
            },
        );
        let plan = Plan::between(id, None, Some(def.clone()), false, version);
        let deployment = self.start_deployment(shared, plan);
        Ok(Accepted {
            app: Some(def),
            deployment,
            version,
        })
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
        self.root_version = version;
        self.unsaved = true;
        if let Some(record) = self.apps.get_mut(id) {
            record.deleted = true;
        }
        let plan = Plan::between(id.clone(), Some(current), None, false, version);
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
}
