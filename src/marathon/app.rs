//! Marathon's app definition (the RAML `App`, and `AppInfo`'s read-only status fields) as one
//! liberal type.
//!
//! Every field but `id` is optional: absent on the wire means `None`, and `None` is not
//! serialised, so a request carries only what the caller set (which matters for
//! `PUT ?partialUpdate=true`, where an absent field keeps its old value). Fields this client
//! does not model live in `extra` on each struct and are written back as they came, so an app
//! read from Marathon and sent back loses nothing.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::AppId;
use super::container::{Container, Network, PortDefinition};
use super::deployment::DeploymentId;
use super::health::{HealthCheck, ReadinessCheck};
pub use super::names::{EnvValueRef, Environment, Labels};
use super::task::{Task, TaskFailure};

/// A version of an app definition: the timestamp Marathon gives each change, e.g.
/// `2015-09-25T15:13:48.343Z`.
///
/// Kept exactly as Marathon sent it, because it is also an identifier
/// (`GET /v2/apps/{id}/versions/{version}`); two versions are equal only if their strings are.
///
/// Shared when cloned: every task of an app carries the version it was launched from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(Arc<str>);

impl Version {
    /// Wraps a version string as Marathon spells it.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The version as Marathon spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Version {
    fn from(value: &str) -> Self {
        Self(Arc::from(value))
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Version::new)
    }
}

/// A Marathon app: its definition plus, when read back, the status Marathon adds.
///
/// The parts most apps lack or that are large (container, upgrade strategy, version info,
/// last task failure) are boxed: the controller holds one `App` per app it knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// The app's path, e.g. `/ingestor/dev`.
    pub id: AppId,
    /// Shell command, run as `/bin/sh -c cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Command as an argument vector (instead of `cmd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Number of instances to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// CPU shares per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory per instance, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<f64>,
    /// Disk per instance, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<f64>,
    /// GPUs per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Environment variables: plain values or secret references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Environment>,
    /// Marathon labels (the theseus ownership labels live here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Placement constraints, `[field, OPERATOR(, value)]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    /// Only offers with these roles are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_resource_roles: Option<Vec<String>>,
    /// Container (Docker image, port mappings, volumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Box<Container>>,
    /// Host ports of a host-networked app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_definitions: Option<Vec<PortDefinition>>,
    /// Deprecated list of service ports (Marathon before 1.0 and its echoes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Networks the app joins (Marathon 1.5 networking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Network>>,
    /// Use the declared host ports instead of dynamic ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_ports: Option<bool>,
    /// Health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    /// Readiness checks consulted during deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_checks: Option<Vec<ReadinessCheck>>,
    /// Apps or groups this app depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<AppId>>,
    /// How a deployment replaces instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_strategy: Option<Box<UpgradeStrategy>>,
    /// Initial delay before relaunching a failed task, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_seconds: Option<u32>,
    /// Factor the relaunch delay grows by after each failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_factor: Option<f64>,
    /// Upper bound of the relaunch delay, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_launch_delay_seconds: Option<u32>,
    /// Seconds between SIGTERM and SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<u32>,
    /// Artifacts fetched into the sandbox before start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Vec<Artifact>>,
    /// Deprecated list of URIs to fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uris: Option<Vec<String>>,
    /// The executor (`//cmd` or empty for the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// The user the tasks run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The version of this definition (set by Marathon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// When the app was last scaled and last changed otherwise (set by Marathon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_info: Option<Box<VersionInfo>>,

    /// Read-only: tasks without a status yet or in `TASK_STAGING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_staged: Option<u32>,
    /// Read-only: tasks in `TASK_RUNNING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_running: Option<u32>,
    /// Read-only: tasks whose every health check is alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_healthy: Option<u32>,
    /// Read-only: tasks with a failing health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_unhealthy: Option<u32>,
    /// Read-only: deployments currently changing this app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployments: Option<Vec<DeploymentRef>>,
    /// Read-only: the app's tasks (with `embed=apps.tasks` / `app.tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Task>>,
    /// Read-only: the last task that failed (with `embed=…lastTaskFailure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_task_failure: Option<Box<TaskFailure>>,

    /// Fields this client does not model, kept as Marathon sent them.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The fields of an app that only Marathon sets and reports; see [`App::into_definition`].
const STATUS_FIELDS: [&str; 2] = ["readinessCheckResults", "tasksStats"];

impl App {
    /// An app with only its id set; fill the rest with struct update syntax.
    pub fn new(id: AppId) -> Self {
        Self {
            id,
            cmd: None,
            args: None,
            instances: None,
            cpus: None,
            mem: None,
            disk: None,
            gpus: None,
            env: None,
            labels: None,
            constraints: None,
            accepted_resource_roles: None,
            container: None,
            port_definitions: None,
            ports: None,
            networks: None,
            require_ports: None,
            health_checks: None,
            readiness_checks: None,
            dependencies: None,
            upgrade_strategy: None,
            backoff_seconds: None,
            backoff_factor: None,
            max_launch_delay_seconds: None,
            task_kill_grace_period_seconds: None,
            fetch: None,
            uris: None,
            executor: None,
            user: None,
            version: None,
            version_info: None,
            tasks_staged: None,
            tasks_running: None,
            tasks_healthy: None,
            tasks_unhealthy: None,
            deployments: None,
            tasks: None,
            last_task_failure: None,
            extra: Map::new(),
        }
    }

    /// The definition without what Marathon reports about the running app (task counts,
    /// tasks, deployments, last failure, readiness results, task statistics, version and
    /// version info): what to send back when changing an app read from Marathon.
    pub fn into_definition(mut self) -> Self {
        self.version = None;
        self.version_info = None;
        self.tasks_staged = None;
        self.tasks_running = None;
        self.tasks_healthy = None;
        self.tasks_unhealthy = None;
        self.deployments = None;
        self.tasks = None;
        self.last_task_failure = None;
        for field in STATUS_FIELDS {
            self.extra.remove(field);
        }
        self
    }

    /// The value of Marathon label `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key)
    }

    /// The ids of the deployments currently changing this app (empty when none are reported).
    pub fn deployment_ids(&self) -> impl Iterator<Item = &DeploymentId> {
        self.deployments.iter().flatten().map(|d| &d.id)
    }
}

/// The value of an environment variable: a string, or a reference to a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// A plain value.
    Value(String),
    /// `{"secret": "<name>"}`: the value of the app's secret of that name.
    Secret {
        /// Name of the secret in the app's `secrets`.
        secret: String,
    },
}

impl From<&str> for EnvValue {
    fn from(value: &str) -> Self {
        Self::Value(value.to_owned())
    }
}

impl From<String> for EnvValue {
    fn from(value: String) -> Self {
        Self::Value(value)
    }
}

wire_enum! {
    /// The operator of a placement constraint.
    pub enum ConstraintOperator {
        /// Every instance on a different value of the field.
        Unique => "UNIQUE",
        /// Every instance on the same value.
        Cluster => "CLUSTER",
        /// Spread evenly over the field's values.
        GroupBy => "GROUP_BY",
        /// The field matches a regular expression.
        Like => "LIKE",
        /// The field does not match a regular expression.
        Unlike => "UNLIKE",
        /// At most N instances per value.
        MaxPer => "MAX_PER",
        /// The field equals the value.
        Is => "IS",
    }
}

/// A placement constraint, on the wire a 2- or 3-element array `[field, OPERATOR(, value)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// The agent attribute or `hostname`.
    pub field: String,
    /// The operator.
    pub operator: ConstraintOperator,
    /// The operand; `None` for the 2-element form. `Some("")` is kept as a third element.
    pub value: Option<String>,
}

impl Serialize for Constraint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut parts = vec![self.field.as_str(), self.operator.as_str()];
        if let Some(value) = &self.value {
            parts.push(value);
        }
        parts.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Be liberal: a numeric operand (`["hostname", "MAX_PER", 2]`) is read as its text.
        let parts = Vec::<Value>::deserialize(deserializer)?;
        let text = |value: &Value| match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match parts.as_slice() {
            [field, operator] => Ok(Self {
                field: text(field),
                operator: ConstraintOperator::from(text(operator).as_str()),
                value: None,
            }),
            [field, operator, value] => Ok(Self {
                field: text(field),
                operator: ConstraintOperator::from(text(operator).as_str()),
                value: Some(text(value)),
            }),
            other => Err(serde::de::Error::invalid_length(
                other.len(),
                &"a constraint of 2 or 3 elements: [field, OPERATOR, value]",
            )),
        }
    }
}

/// How a deployment replaces an app's instances.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Fraction of instances that must stay healthy during the upgrade (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_health_capacity: Option<f64>,
    /// Fraction of extra instances that may be started during the upgrade (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_over_capacity: Option<f64>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// When an app was last scaled and last changed otherwise.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The version of the last change of any kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scaling_at: Option<Version>,
    /// The version of the last change other than scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_config_change_at: Option<Version>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A URI the Mesos fetcher downloads into the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// What to fetch.
    pub uri: String,
    /// Unpack archives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<bool>,
    /// Mark the file executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<bool>,
    /// Use the fetcher cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// File name in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A reference to a deployment, as in an app's `deployments` and a 409 lock answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRef {
    /// The deployment's id.
    pub id: DeploymentId,
}
