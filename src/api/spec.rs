//! The Deployment spec: what people write under `/desired/<service>/<name>`.
//!
//! The field names and meanings are those of the old deploy format (snake_case), so an old
//! `deploy:` entry is a valid spec as it stands. Every type here derives its JSON schema; the
//! published `schemas/deployment.schema.json` is generated from them, and unknown fields are
//! rejected (`deny_unknown_fields` becomes `additionalProperties: false`) so that a typo never
//! deploys silently. Rules a schema cannot express live in [`super::validate`].
//!
//! A part of the spec that Marathon has a wire type for is named after it with a `Spec`
//! suffix (`HealthCheckSpec` becomes a `marathon::health::HealthCheck`), so the two are never
//! confused; its definition in the published schema keeps the name the schema has always
//! given it. Doc comments here become the schema's descriptions.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Instances when the spec does not say (the old system's default).
pub const DEFAULT_INSTANCES: u32 = 1;
/// CPU shares per instance when the spec does not say (the old system's default).
pub const DEFAULT_CPUS: f64 = 0.3;
/// Memory per instance, in MiB, when the spec does not say (the old system's default).
pub const DEFAULT_MEM: f64 = 512.0;

/// A desired deployment of one service: what to run, how many, with which resources.
///
/// Either `image` or `cmd` (or both) must be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Deployment",
    extend("$id" = "https://theseus.dev/schemas/deployment.schema.json")
)]
pub struct DeploymentSpec {
    /// Docker image to run, e.g. `registry.local:5000/flask`. Without it, `cmd` runs as a plain
    /// process on the agent with host networking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Shell command to run (`sh -c`). With an image, it replaces the image's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub cmd: Option<String>,

    /// Arguments passed to the image's entrypoint, without a shell. Not together with `cmd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// Named ports: name → the port the process listens on inside the container. Each gets a
    /// host port from Marathon; guestutils find both by name. For a command app (no image) the
    /// process must listen on `$PORT_<NAME>`; the number documents the port it would use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(
        extend("propertyNames" = {"pattern": PORT_NAME_PATTERN, "maxLength": 63}),
        extend("additionalProperties" = {"type": "integer", "minimum": 1, "maximum": 65535})
    )]
    pub ports: BTreeMap<String, u16>,

    /// Environment variables for the process. Numbers and booleans are passed as their text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": ENV_NAME_PATTERN}))]
    pub environment: BTreeMap<String, EnvValueSpec>,

    /// Number of instances (tasks) to run. `0` keeps the deployment but runs nothing.
    #[serde(default = "default_instances")]
    #[schemars(range(max = 10000))]
    pub instances: u32,

    /// CPU shares per instance.
    #[serde(default = "default_cpus")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub cpus: f64,

    /// Memory per instance, in MiB.
    #[serde(default = "default_mem")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub mem: f64,

    /// Disk space per instance, in MiB.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub disk: f64,

    /// Labels of this deployment: guestutils' `node_list` matches them as a subset. In the
    /// old multi-service format they also name the deployment (sorted, joined by `-`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = LABEL_PATTERN), length(max = 63)))]
    pub labels: Vec<String>,

    /// Marathon placement constraints, `[field, OPERATOR]` or `[field, OPERATOR, value]`, e.g.
    /// `["hostname", "UNIQUE"]`. Operators: UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<ConstraintSpec>,

    /// Host directories mounted into the container: `host_path:container_path[:ro|:rw]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = VOLUME_PATTERN)))]
    pub volumes: Vec<String>,

    /// Health checks. A task is healthy when all of them pass; an unhealthy task is replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckSpec>,

    /// How a changed deployment replaces its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_strategy: Option<UpgradeStrategySpec>,

    /// Seconds between asking a task to stop (SIGTERM) and killing it (SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 86400))]
    pub kill_grace_period_seconds: Option<u32>,

    /// Seconds a new revision of this spec may take to reach `Running`; after that it has
    /// failed.
    #[serde(
        default = "default_progress_deadline",
        skip_serializing_if = "is_default_progress_deadline"
    )]
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: u32,

    /// Whether a revision that failed is rolled back to the last one that reached `Running`.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub auto_rollback: bool,

    /// While true, the controller pushes no change of this deployment to Marathon (the app
    /// keeps running as it is) and its status says so.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,

    /// How many revisions of this deployment the controller remembers.
    #[serde(
        default = "default_revision_history_limit",
        skip_serializing_if = "is_default_revision_history_limit"
    )]
    #[schemars(range(max = 1000))]
    pub revision_history_limit: u32,

    /// How many tasks of a new revision may fail before it runs, or within its progress
    /// deadline (a task may run for a moment before it exits): one more and the revision has
    /// failed (it crash-loops), without waiting for its deadline.
    #[serde(
        default = "default_crash_loop_limit",
        skip_serializing_if = "is_default_crash_loop_limit"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub crash_loop_limit: u32,

    /// Why this revision was made, in the words of whoever made it (`theseus apply
    /// --message`); kept with the revision in its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub change_cause: Option<String>,
}

/// Seconds a revision may take to reach `Running` when the spec does not say.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: u32 = 600;
/// Task failures of a new revision tolerated when the spec does not say: with the default
/// restart backoff of Marathon (1 s, growing by 1.15), the fourth failure comes within about
/// 4 s of the first.
pub const DEFAULT_CRASH_LOOP_LIMIT: u32 = 3;
/// Revisions remembered when the spec does not say.
pub const DEFAULT_REVISION_HISTORY_LIMIT: u32 = 10;

/// The spec fields that steer how the controller rolls a revision out, not what runs: a
/// change of them alone changes nothing in Marathon.
pub const ROLLOUT_FIELDS: &[&str] = &[
    "progress_deadline_seconds",
    "auto_rollback",
    "paused",
    "revision_history_limit",
    "crash_loop_limit",
    "change_cause",
];

fn default_progress_deadline() -> u32 {
    DEFAULT_PROGRESS_DEADLINE_SECONDS
}

fn is_default_progress_deadline(value: &u32) -> bool {
    *value == DEFAULT_PROGRESS_DEADLINE_SECONDS
}

fn default_crash_loop_limit() -> u32 {
    DEFAULT_CRASH_LOOP_LIMIT
}

fn is_default_crash_loop_limit(value: &u32) -> bool {
    *value == DEFAULT_CRASH_LOOP_LIMIT
}

fn default_revision_history_limit() -> u32 {
    DEFAULT_REVISION_HISTORY_LIMIT
}

fn is_default_revision_history_limit(value: &u32) -> bool {
    *value == DEFAULT_REVISION_HISTORY_LIMIT
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Port names: Marathon's port-name rule (a DNS label).
pub const PORT_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Environment variable names.
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// Labels: DNS labels, so that joined labels can name a deployment.
pub const LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Volumes: two absolute paths and an optional mode.
pub const VOLUME_PATTERN: &str = "^/[^:]*:/[^:]*(:(ro|rw))?$";

fn default_instances() -> u32 {
    DEFAULT_INSTANCES
}

fn default_cpus() -> f64 {
    DEFAULT_CPUS
}

fn default_mem() -> f64 {
    DEFAULT_MEM
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

impl DeploymentSpec {
    /// Container ports in a fixed order (by name), the order of Marathon's port mappings.
    pub fn ports_by_name(&self) -> impl Iterator<Item = (&str, u16)> {
        self.ports.iter().map(|(name, port)| (name.as_str(), *port))
    }

    /// The environment with every value as text.
    pub fn environment_text(&self) -> BTreeMap<String, String> {
        self.environment
            .iter()
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect()
    }

    /// The volumes, parsed. Call after validation; a malformed entry is skipped.
    pub fn volume_mounts(&self) -> Vec<VolumeMount> {
        self.volumes
            .iter()
            .filter_map(|volume| VolumeMount::parse(volume))
            .collect()
    }

    /// The upgrade strategy, with Marathon's defaults where the spec gives none.
    pub fn upgrade_strategy_or_default(&self) -> UpgradeStrategySpec {
        self.upgrade_strategy.clone().unwrap_or_default()
    }
}

/// An environment value: text, or a number or boolean passed as its text (YAML files often
/// write `WORKERS: 4`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "EnvValue")]
pub enum EnvValueSpec {
    /// A string.
    Text(String),
    /// A number, passed as written (`4`, `0.5`).
    Number(serde_json::Number),
    /// A boolean, passed as `true` or `false`.
    Bool(bool),
}

impl fmt::Display for EnvValueSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvValueSpec::Text(text) => f.write_str(text),
            EnvValueSpec::Number(number) => write!(f, "{number}"),
            EnvValueSpec::Bool(value) => write!(f, "{value}"),
        }
    }
}

impl From<&str> for EnvValueSpec {
    fn from(value: &str) -> Self {
        EnvValueSpec::Text(value.to_owned())
    }
}

/// A Marathon constraint: `[field, OPERATOR]` or `[field, OPERATOR, value]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(rename = "Constraint")]
pub struct ConstraintSpec(#[schemars(length(min = 2, max = 3))] pub Vec<String>);

/// Constraint operators Marathon knows.
pub const CONSTRAINT_OPERATORS: [&str; 7] = [
    "UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
];

impl ConstraintSpec {
    /// The attribute constrained (`hostname`, or an agent attribute).
    pub fn field(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or_default()
    }

    /// The operator, e.g. `UNIQUE`.
    pub fn operator(&self) -> &str {
        self.0.get(1).map(String::as_str).unwrap_or_default()
    }

    /// The operator's argument, when it has one.
    pub fn value(&self) -> Option<&str> {
        self.0.get(2).map(String::as_str)
    }
}

/// A host directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// Path on the agent.
    pub host_path: String,
    /// Path inside the container.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl VolumeMount {
    /// Parses `host:container[:ro|:rw]`; `None` when it is not of that form.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let host_path = parts.next()?;
        let container_path = parts.next()?;
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(_) => return None,
        };
        if parts.next().is_some() || !host_path.starts_with('/') || !container_path.starts_with('/')
        {
            return None;
        }
        Some(Self {
            host_path: host_path.to_owned(),
            container_path: container_path.to_owned(),
            read_only,
        })
    }
}

/// A health check of one named port (or a command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HealthCheck")]
pub struct HealthCheckSpec {
    /// How to check.
    #[serde(default)]
    pub protocol: HealthProtocol,
    /// Name of the port to check, one of `ports`. Not used by COMMAND checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// HTTP path to request (HTTP and HTTPS checks), default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^/"))]
    pub path: Option<String>,
    /// Shell command whose exit status 0 means healthy (COMMAND checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub command: Option<String>,
    /// Seconds after a task starts during which failures are ignored.
    #[serde(default = "default_grace_period_seconds")]
    #[schemars(range(max = 86400))]
    pub grace_period_seconds: u32,
    /// Seconds between checks.
    #[serde(default = "default_interval_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub interval_seconds: u32,
    /// Seconds after which a check that has not answered has failed.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: u32,
    /// Consecutive failures after which the task is killed and replaced; 0 never kills.
    #[serde(default = "default_max_consecutive_failures")]
    #[schemars(range(max = 1000))]
    pub max_consecutive_failures: u32,
}

fn default_grace_period_seconds() -> u32 {
    300
}

fn default_interval_seconds() -> u32 {
    60
}

fn default_timeout_seconds() -> u32 {
    20
}

fn default_max_consecutive_failures() -> u32 {
    3
}

/// Health-check protocols, Marathon's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthProtocol {
    /// An HTTP GET that answers 2xx or 3xx, made by Marathon.
    #[default]
    Http,
    /// The same over TLS.
    Https,
    /// A TCP connection that opens, made by Marathon.
    Tcp,
    /// A shell command in the task's sandbox, exit status 0.
    Command,
    /// HTTP, made by the Mesos agent.
    MesosHttp,
    /// HTTPS, made by the Mesos agent.
    MesosHttps,
    /// TCP, made by the Mesos agent.
    MesosTcp,
}

impl HealthProtocol {
    /// Marathon's name of the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthProtocol::Http => "HTTP",
            HealthProtocol::Https => "HTTPS",
            HealthProtocol::Tcp => "TCP",
            HealthProtocol::Command => "COMMAND",
            HealthProtocol::MesosHttp => "MESOS_HTTP",
            HealthProtocol::MesosHttps => "MESOS_HTTPS",
            HealthProtocol::MesosTcp => "MESOS_TCP",
        }
    }

    /// Whether the check sends an HTTP request (and so uses `path`).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            HealthProtocol::Http
                | HealthProtocol::Https
                | HealthProtocol::MesosHttp
                | HealthProtocol::MesosHttps
        )
    }
}

/// How a changed deployment replaces its tasks (Marathon's `upgradeStrategy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UpgradeStrategy")]
pub struct UpgradeStrategySpec {
    /// Fraction of `instances` that must stay healthy during the change (0 to 1).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1))]
    pub minimum_health_capacity: f64,
    /// Fraction of `instances` that may run on top of them during the change (0 to 1).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1))]
    pub maximum_over_capacity: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for UpgradeStrategySpec {
    fn default() -> Self {
        Self {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_takes_the_old_systems_defaults() {
        let spec: DeploymentSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.instances, 1);
        assert_eq!(spec.cpus, 0.3);
        assert_eq!(spec.mem, 512.0);
        assert_eq!(spec.disk, 0.0);
        assert_eq!(
            spec.upgrade_strategy_or_default(),
            UpgradeStrategySpec::default()
        );
    }

    #[test]
    fn environment_values_are_passed_as_text() {
        let spec: DeploymentSpec =
            serde_json::from_str(r#"{"environment": {"A": "x", "B": 4, "C": 0.5, "D": true}}"#)
                .unwrap();
        let env = spec.environment_text();
        assert_eq!(env["A"], "x");
        assert_eq!(env["B"], "4");
        assert_eq!(env["C"], "0.5");
        assert_eq!(env["D"], "true");
    }

    #[test]
    fn volumes_parse_with_an_optional_mode() {
        assert_eq!(
            VolumeMount::parse("/srv/data:/data:ro"),
            Some(VolumeMount {
                host_path: "/srv/data".into(),
                container_path: "/data".into(),
                read_only: true
            })
        );
        assert!(!VolumeMount::parse("/a:/b").unwrap().read_only);
        assert!(!VolumeMount::parse("/a:/b:rw").unwrap().read_only);
        for bad in ["a:/b", "/a:b", "/a", "/a:/b:x", "/a:/b:ro:ro"] {
            assert_eq!(VolumeMount::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn serialising_leaves_out_what_was_not_given() {
        let spec: DeploymentSpec = serde_json::from_str(r#"{"cmd": "sleep 1"}"#).unwrap();
        let value = serde_json::to_value(&spec).unwrap();
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["cmd", "cpus", "instances", "mem"]);
    }
}
