//! The normalised app definition localmarathon owns, serialised as Marathon 1.10 writes it.
//!
//! Every field holds its Marathon default once an [`AppDefinition`] exists (see
//! `app_update.rs` for how request bodies become one); serialisation follows the RAML `App`
//! type: optional fields are absent rather than null, and the `omitEmpty` fields (`env`,
//! `constraints`, `healthChecks`, ...) are left out when empty. Fields localmarathon does not act
//! on (`fetch`, `secrets`, `readinessChecks`, volumes, ...) are kept verbatim and echoed back.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::app_id::AppId;
use crate::placement::Constraint;
use crate::timestamp::Timestamp;
use crate::validation::serialize_number;

/// Marathon's default `--mesos_role`, the role every app gets here.
pub const DEFAULT_ROLE: &str = "*";

/// An app as Marathon stores and returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDefinition {
    /// Canonical app id.
    pub id: AppId,
    /// Roles whose offers may be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_resource_roles: Option<Vec<String>>,
    /// Command as an argument vector (exclusive with `cmd`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Launch delay growth factor after failures.
    #[serde(serialize_with = "serialize_number")]
    pub backoff_factor: f64,
    /// Initial launch delay after a failure.
    pub backoff_seconds: u32,
    /// Shell command, run as `sh -c cmd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Placement constraints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Container settings (Docker image, port mappings, volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// CPU shares per instance.
    #[serde(serialize_with = "serialize_number")]
    pub cpus: f64,
    /// Apps this one depends on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Disk in MB per instance.
    #[serde(serialize_with = "serialize_number")]
    pub disk: f64,
    /// The app's environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Mesos executor (`""` is the default command executor).
    pub executor: String,
    /// Artifacts to fetch (kept, not fetched).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fetch: Vec<Value>,
    /// Health checks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    /// Desired number of instances.
    pub instances: u32,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Upper bound of the launch delay.
    pub max_launch_delay_seconds: u32,
    /// Memory in MB per instance.
    #[serde(serialize_with = "serialize_number")]
    pub mem: f64,
    /// GPUs per instance.
    pub gpus: u32,
    /// Deprecated per-task IP request, kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<Value>,
    /// Networks the task joins.
    pub networks: Vec<Network>,
    /// Host ports (host networking only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_definitions: Option<Vec<PortDefinition>>,
    /// Readiness checks (kept, not run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readiness_checks: Vec<Value>,
    /// Deprecated residency settings, kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency: Option<Value>,
    /// Use the declared ports as host ports.
    pub require_ports: bool,
    /// Secret declarations (kept verbatim).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Value>,
    /// Seconds between SIGTERM and SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<u32>,
    /// How deployments replace instances.
    pub upgrade_strategy: UpgradeStrategy,
    /// Unix user for the task (kept; tasks run as localmarathon's user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Version of this definition.
    pub version: Timestamp,
    /// When it last scaled and last changed configuration.
    pub version_info: VersionInfo,
    /// Which instances go first when scaling down.
    pub kill_selection: KillSelection,
    /// Handling of unreachable instances.
    pub unreachable_strategy: UnreachableStrategy,
    /// Whether a TTY is requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Mesos role.
    pub role: String,
}

/// An environment variable value: plain, or a reference to a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// A literal value.
    Plain(String),
    /// `{"secret": "name"}`.
    Secret {
        /// Name of the referenced secret.
        secret: String,
    },
}

/// `versionInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Last change of any kind, scaling included.
    pub last_scaling_at: Timestamp,
    /// Last change that needs a restart of tasks.
    pub last_config_change_at: Timestamp,
}

/// `upgradeStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Share of `instances` that may run on top during an upgrade.
    #[serde(serialize_with = "serialize_number")]
    pub maximum_over_capacity: f64,
    /// Share of `instances` that must stay healthy during an upgrade.
    #[serde(serialize_with = "serialize_number")]
    pub minimum_health_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        UpgradeStrategy {
            maximum_over_capacity: 1.0,
            minimum_health_capacity: 1.0,
        }
    }
}

/// `killSelection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillSelection {
    /// Kill the most recently started instances first.
    #[default]
    YoungestFirst,
    /// Kill the oldest instances first.
    OldestFirst,
}

/// `unreachableStrategy`: the string `"disabled"` or the two timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum UnreachableStrategy {
    /// Timeouts before an unreachable instance is replaced and expunged.
    #[serde(rename_all = "camelCase")]
    Enabled {
        /// Seconds until the instance counts as inactive.
        inactive_after_seconds: u64,
        /// Seconds until it is expunged.
        expunge_after_seconds: u64,
    },
    /// `"disabled"`.
    Disabled(Disabled),
}

/// The literal `"disabled"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disabled {
    /// `"disabled"`.
    Disabled,
}

impl Default for UnreachableStrategy {
    fn default() -> Self {
        UnreachableStrategy::Enabled {
            inactive_after_seconds: 0,
            expunge_after_seconds: 0,
        }
    }
}

/// A network the task joins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    /// Name of a container network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Networking mode.
    pub mode: NetworkMode,
    /// Labels for the network.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `networks[].mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NetworkMode {
    /// Share the agent's network namespace.
    #[serde(rename = "host")]
    Host,
    /// Docker-style bridge with port mappings.
    #[serde(rename = "container/bridge")]
    ContainerBridge,
    /// A named container network.
    #[serde(rename = "container")]
    Container,
}

/// A host port definition (host networking).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortDefinition {
    /// Service port (assigned from 10000-20000 when declared as 0), or the host port itself
    /// with `requirePorts`.
    pub port: u16,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `container`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// `DOCKER` or `MESOS`.
    #[serde(rename = "type")]
    pub kind: ContainerKind,
    /// Docker image settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Volumes, kept verbatim.
    pub volumes: Vec<Value>,
    /// Port mappings (bridge and container networking).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// Linux settings, kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_info: Option<Value>,
}

/// `container.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ContainerKind {
    /// Docker containerizer.
    #[serde(rename = "DOCKER")]
    Docker,
    /// Mesos containerizer.
    #[serde(rename = "MESOS")]
    Mesos,
}

/// `container.docker`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Docker {
    /// Deprecated credentials, kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<Value>,
    /// Always pull the image.
    pub force_pull_image: bool,
    /// The image.
    pub image: String,
    /// Extra `docker run` parameters.
    pub parameters: Vec<DockerParameter>,
    /// Run privileged.
    pub privileged: bool,
    /// Pull config secret, kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_config: Option<Value>,
}

/// A `docker run --key=value` parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DockerParameter {
    /// Parameter name.
    pub key: String,
    /// Parameter value.
    pub value: String,
}

/// A container port mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port inside the container (0: same as the host port).
    pub container_port: u16,
    /// Host port (0: dynamic; absent: none allocated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Protocol.
    pub protocol: String,
    /// Service port.
    pub service_port: u16,
    /// Container networks this mapping applies to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_names: Vec<String>,
}

/// A health check as the app declares it, with Marathon's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Command for `COMMAND` checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Failures are ignored this long after start, until the first success.
    pub grace_period_seconds: u32,
    /// Ignore 1xx answers (HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_http1xx: Option<bool>,
    /// Seconds between checks.
    pub interval_seconds: u32,
    /// Consecutive failures after which the task is killed (0: never).
    pub max_consecutive_failures: u32,
    /// HTTP path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the task's ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// Fixed port instead of an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Check kind.
    pub protocol: HealthProtocol,
    /// `IPv4` or `IPv6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_protocol: Option<String>,
    /// Seconds after which one check counts as failed.
    pub timeout_seconds: u32,
    /// Seconds before the first Mesos-side check.
    pub delay_seconds: u32,
}

/// `healthChecks[].command`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandCheck {
    /// Shell command; exit status 0 means healthy.
    pub value: String,
}

/// `healthChecks[].protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthProtocol {
    /// Marathon-side HTTP GET.
    Http,
    /// Marathon-side HTTPS GET.
    Https,
    /// Marathon-side TCP connect.
    Tcp,
    /// Command run next to the task.
    Command,
    /// Agent-side HTTP GET.
    MesosHttp,
    /// Agent-side HTTPS GET.
    MesosHttps,
    /// Agent-side TCP connect.
    MesosTcp,
}

impl AppDefinition {
    /// The networking mode of the first network (Marathon apps use one mode).
    pub fn network_mode(&self) -> NetworkMode {
        self.networks
            .first()
            .map(|n| n.mode)
            .unwrap_or(NetworkMode::Host)
    }

    /// The Docker image, when the app runs one.
    pub fn docker_image(&self) -> Option<&str> {
        self.container
            .as_ref()
            .and_then(|c| c.docker.as_ref())
            .map(|d| d.image.as_str())
    }

    /// How many host ports each task needs.
    pub fn host_port_count(&self) -> usize {
        match self.network_mode() {
            NetworkMode::Host => self.port_definitions.as_ref().map_or(0, Vec::len),
            _ => self
                .container
                .as_ref()
                .and_then(|c| c.port_mappings.as_ref())
                .map_or(0, |m| m.iter().filter(|p| p.host_port.is_some()).count()),
        }
    }

    /// Service ports in declaration order (what tasks report as `servicePorts`).
    pub fn service_ports(&self) -> Vec<u16> {
        match self.network_mode() {
            NetworkMode::Host => self
                .port_definitions
                .iter()
                .flatten()
                .map(|p| p.port)
                .collect(),
            _ => self
                .container
                .iter()
                .flat_map(|c| c.port_mappings.iter().flatten())
                .map(|p| p.service_port)
                .collect(),
        }
    }

    /// Whether moving from `self` to `to` needs new tasks (anything but a scale change).
    pub fn is_upgrade(&self, to: &AppDefinition) -> bool {
        let mut a = self.clone();
        let b = to;
        a.instances = b.instances;
        a.version = b.version;
        a.version_info = b.version_info;
        a != *b
    }

    /// The kill grace period Mesos uses when the app sets none.
    pub fn kill_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.task_kill_grace_period_seconds.unwrap_or(3)))
    }
}
