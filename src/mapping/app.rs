//! From a validated Deployment spec to the Marathon app that runs it (DESIGN.md, "Mapping to
//! Marathon"). Which app belongs to which deployment is [`super::ownership`]'s to say, and the
//! spec hash is [`super::spec_hash`]'s; the mapping writes the labels they read.
//!
//! What it promises:
//! - The mapping is deterministic: the same spec and [`Mapping`] give the same [`App`], with
//!   ports (and so `portIndex`es) in the order of their names.
//! - The app id is the [`Installation`]'s: `/<group>/<service>/<name>`.
//! - Every mapped app carries the ownership labels `THESEUS_MANAGED`, `THESEUS_SERVICE`,
//!   `THESEUS_DEPLOYMENT` and `THESEUS_SPEC_HASH`.

use crate::api::{DeploymentKey, DeploymentSpec, HealthProtocol, environment};
use crate::marathon::app::{
    Constraint, ConstraintOperator, EnvValueRef, Environment, Labels, UpgradeStrategy,
};
use crate::marathon::container::{
    Container, Network, NetworkMode, PortDefinition, PortMapping, PortProtocol, Volume, VolumeMode,
};
use crate::marathon::health::{CommandCheck, HealthCheck, HealthCheckProtocol};
use crate::marathon::{App, AppId};

use super::ownership::{
    DEPLOYMENT_LABEL, Installation, InstallationError, MANAGED_LABEL, MANAGED_VALUE, Ownership,
    SERVICE_LABEL, SPEC_HASH_LABEL,
};
use super::spec_hash::SpecHash;

/// Why a mapping cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Where its apps live cannot be set up.
    #[error(transparent)]
    Installation(#[from] InstallationError),
}

/// The inputs of the mapping besides the spec: where apps live in Marathon's group tree and
/// what every task is told about etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    installation: Installation,
    etcd_endpoints: Vec<String>,
}

/// The app a spec maps to, with its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredApp {
    /// The full definition to create, or to replace the running one with.
    pub app: App,
    /// The spec hash (also in the app's labels).
    pub hash: SpecHash,
}

impl DesiredApp {
    /// The app's id.
    pub fn id(&self) -> &AppId {
        &self.app.id
    }

    /// The instances the spec asks for.
    pub fn instances(&self) -> u32 {
        self.app.instances.unwrap_or_default()
    }
}

impl Mapping {
    /// A mapping placing apps under `group` (`None` or empty: the root group), telling tasks
    /// `etcd_endpoints` and `prefix`.
    pub fn new(
        group: Option<&str>,
        etcd_endpoints: Vec<String>,
        prefix: &str,
    ) -> Result<Self, MappingError> {
        Ok(Self {
            installation: Installation::new(group, prefix)?,
            etcd_endpoints,
        })
    }

    /// The installation the mapped apps belong to.
    pub fn installation(&self) -> &Installation {
        &self.installation
    }

    /// The app id of `key`; see [`Installation::app_id`].
    pub fn app_id(&self, key: &DeploymentKey) -> AppId {
        self.installation.app_id(key)
    }

    /// The deployment of app id `app`; see [`Installation::key_of`].
    pub fn key_of(&self, app: &AppId) -> Option<DeploymentKey> {
        self.installation.key_of(app)
    }

    /// Whether `app` belongs to `key`; see [`Installation::ownership`].
    pub fn ownership(&self, key: &DeploymentKey, app: &App) -> Ownership {
        self.installation.ownership(key, app)
    }

    /// The spec hash of `spec` deployed as `key`; see [`super::spec_hash`].
    pub fn spec_hash(&self, key: &DeploymentKey, spec: &DeploymentSpec) -> SpecHash {
        SpecHash::of(
            &self.app_id(key),
            &self.etcd_endpoints,
            self.installation.prefix(),
            spec,
        )
    }

    /// The app `spec` maps to when deployed as `key`.
    pub fn desired_app(&self, key: &DeploymentKey, spec: &DeploymentSpec) -> DesiredApp {
        let hash = self.spec_hash(key, spec);
        let port_names: Vec<&str> = spec.ports_by_name().map(|(name, _)| name).collect();
        let mut app = App::new(self.app_id(key));
        app.cmd = spec.cmd.clone();
        app.args = (!spec.args.is_empty()).then(|| spec.args.clone());
        app.instances = Some(spec.instances);
        app.cpus = Some(spec.cpus);
        app.mem = Some(spec.mem);
        app.disk = Some(spec.disk);
        app.env = Some(self.environment(key, spec));
        app.labels = Some(Labels::from([
            (MANAGED_LABEL, MANAGED_VALUE),
            (SERVICE_LABEL, key.service.as_str()),
            (DEPLOYMENT_LABEL, key.name.as_str()),
            (SPEC_HASH_LABEL, hash.as_str()),
        ]));
        app.constraints = Some(
            spec.constraints
                .iter()
                .map(|constraint| Constraint {
                    field: constraint.field().to_owned(),
                    operator: ConstraintOperator::from(constraint.operator()),
                    value: constraint.value().map(str::to_owned),
                })
                .collect(),
        );
        match &spec.image {
            Some(image) => {
                let mut container = Container::docker(image.clone());
                container.port_mappings = Some(
                    spec.ports_by_name()
                        .map(|(name, port)| PortMapping {
                            container_port: Some(port),
                            host_port: Some(0),
                            name: Some(name.to_owned()),
                            protocol: Some(PortProtocol::Tcp),
                            ..Default::default()
                        })
                        .collect(),
                );
                let volumes: Vec<Volume> = spec
                    .volume_mounts()
                    .into_iter()
                    .map(|mount| Volume {
                        container_path: Some(mount.container_path),
                        host_path: Some(mount.host_path),
                        mode: Some(if mount.read_only {
                            VolumeMode::Ro
                        } else {
                            VolumeMode::Rw
                        }),
                        ..Default::default()
                    })
                    .collect();
                container.volumes = (!volumes.is_empty()).then_some(volumes);
                app.container = Some(Box::new(container));
                app.networks = Some(vec![network(NetworkMode::ContainerBridge)]);
            }
            None => {
                // Without a port list Marathon gives a host-networked app one unnamed port;
                // an explicit (possibly empty) list gives exactly the named ones.
                app.port_definitions = Some(
                    spec.ports_by_name()
                        .map(|(name, _)| PortDefinition {
                            port: Some(0),
                            name: Some(name.to_owned()),
                            protocol: Some(PortProtocol::Tcp),
                            ..Default::default()
                        })
                        .collect(),
                );
                app.networks = Some(vec![network(NetworkMode::Host)]);
            }
        }
        app.health_checks = Some(
            spec.health_checks
                .iter()
                .map(|check| {
                    let port_index = check
                        .port
                        .as_deref()
                        .and_then(|name| port_names.iter().position(|p| *p == name))
                        .map(|index| u32::try_from(index).expect("fewer than 2^32 ports"));
                    let command = (check.protocol == HealthProtocol::Command)
                        .then(|| check.command.clone())
                        .flatten()
                        .map(|value| CommandCheck { value });
                    HealthCheck {
                        protocol: Some(HealthCheckProtocol::from(check.protocol.as_str())),
                        path: check
                            .protocol
                            .is_http()
                            .then(|| check.path.clone().unwrap_or_else(|| "/".to_owned())),
                        port_index: if command.is_some() { None } else { port_index },
                        command,
                        grace_period_seconds: Some(check.grace_period_seconds),
                        interval_seconds: Some(check.interval_seconds),
                        timeout_seconds: Some(check.timeout_seconds),
                        max_consecutive_failures: Some(check.max_consecutive_failures),
                        ..Default::default()
                    }
                })
                .collect(),
        );
        let strategy = spec.upgrade_strategy_or_default();
        app.upgrade_strategy = Some(Box::new(UpgradeStrategy {
            minimum_health_capacity: Some(strategy.minimum_health_capacity),
            maximum_over_capacity: Some(strategy.maximum_over_capacity),
            ..Default::default()
        }));
        app.task_kill_grace_period_seconds = spec.kill_grace_period_seconds;
        DesiredApp { app, hash }
    }

    /// The user's environment plus what theseus tells every task.
    fn environment(&self, key: &DeploymentKey, spec: &DeploymentSpec) -> Environment {
        let users = spec.environment_text();
        let theseus = [
            (environment::SERVICE_NAME, key.service.to_string()),
            (environment::DEPLOYMENT_NAME, key.name.to_string()),
            (environment::LABELS, spec.labels.join(",")),
            (environment::ETCD_ENDPOINTS, self.etcd_endpoints.join(",")),
            (
                environment::THESEUS_PREFIX,
                self.installation.prefix().to_owned(),
            ),
        ];
        // Theseus's variables come last: where a name is in both, theirs is kept.
        users
            .iter()
            .map(|(name, value)| (name.as_str(), EnvValueRef::Value(value)))
            .chain(
                theseus
                    .iter()
                    .map(|(name, value)| (*name, EnvValueRef::Value(value))),
            )
            .collect()
    }
}

fn network(mode: NetworkMode) -> Network {
    Network {
        mode: Some(mode),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::validate_spec;

    fn key() -> DeploymentKey {
        "ingestor/dev".parse().unwrap()
    }

    fn mapping() -> Mapping {
        Mapping::new(None, vec!["http://10.0.0.1:2379".into()], "").unwrap()
    }

    fn spec(value: Value) -> DeploymentSpec {
        validate_spec(&value).unwrap()
    }

    fn ingestor() -> DeploymentSpec {
        spec(json!({
            "image": "registry.local:5000/flask",
            "ports": {"ssh": 22, "api": 5000},
            "environment": {"APP_NAME": "Ingestor"},
            "instances": 4, "cpus": 0.1, "mem": 128, "labels": ["dev", "eu"],
            "health_checks": [{"port": "ssh", "protocol": "TCP"}, {"port": "api", "path": "/health"}],
            "volumes": ["/srv/data:/data:ro"],
            "constraints": [["hostname", "UNIQUE"]],
            "upgrade_strategy": {"minimum_health_capacity": 0.5},
            "kill_grace_period_seconds": 30
        }))
    }

    #[test]
    fn a_docker_spec_maps_to_a_bridged_container_with_ports_in_name_order() {
        let desired = mapping().desired_app(&key(), &ingestor());
        let app = serde_json::to_value(&desired.app).unwrap();
        assert_eq!(app["id"], "/ingestor/dev");
        assert_eq!(app["instances"], 4);
        assert_eq!(app["cpus"], 0.1);
        assert_eq!(app["mem"], 128.0);
        assert_eq!(
            app["container"],
            json!({
                "type": "DOCKER",
                "docker": {"image": "registry.local:5000/flask"},
                "portMappings": [
                    {"containerPort": 5000, "hostPort": 0, "name": "api", "protocol": "tcp"},
                    {"containerPort": 22, "hostPort": 0, "name": "ssh", "protocol": "tcp"}
                ],
                "volumes": [{"containerPath": "/data", "hostPath": "/srv/data", "mode": "RO"}]
            })
        );
        assert_eq!(app["networks"], json!([{"mode": "container/bridge"}]));
        assert!(app.get("portDefinitions").is_none());
        assert_eq!(
            app["healthChecks"][0]["portIndex"], 1,
            "ssh is the second port by name"
        );
        assert_eq!(app["healthChecks"][0]["protocol"], "TCP");
        assert!(app["healthChecks"][0].get("path").is_none());
        assert_eq!(app["healthChecks"][1]["portIndex"], 0);
        assert_eq!(app["healthChecks"][1]["path"], "/health");
        assert_eq!(app["constraints"], json!([["hostname", "UNIQUE"]]));
        assert_eq!(
            app["upgradeStrategy"],
            json!({"minimumHealthCapacity": 0.5, "maximumOverCapacity": 1.0})
        );
        assert_eq!(app["taskKillGracePeriodSeconds"], 30);
        assert_eq!(
            app["env"],
            json!({
                "APP_NAME": "Ingestor",
                "SERVICE_NAME": "ingestor",
                "DEPLOYMENT_NAME": "dev",
                "LABELS": "dev,eu",
                "ETCD_ENDPOINTS": "http://10.0.0.1:2379",
                "THESEUS_PREFIX": ""
            })
        );
        assert_eq!(
            app["labels"],
            json!({
                "THESEUS_MANAGED": "true",
                "THESEUS_SERVICE": "ingestor",
                "THESEUS_DEPLOYMENT": "dev",
                "THESEUS_SPEC_HASH": desired.hash.as_str()
            })
        );
    }

    #[test]
    fn a_command_spec_maps_to_named_host_ports() {
        let command = spec(json!({
            "cmd": "python3 -m http.server $PORT_WEB",
            "ports": {"web": 8000, "admin": 9000},
            "health_checks": [{"protocol": "COMMAND", "command": "true"}]
        }));
        let app = serde_json::to_value(mapping().desired_app(&key(), &command).app).unwrap();
        assert_eq!(app["cmd"], "python3 -m http.server $PORT_WEB");
        assert!(app.get("container").is_none());
        assert_eq!(app["networks"], json!([{"mode": "host"}]));
        assert_eq!(
            app["portDefinitions"],
            json!([
                {"port": 0, "name": "admin", "protocol": "tcp"},
                {"port": 0, "name": "web", "protocol": "tcp"}
            ])
        );
        assert_eq!(
            app["healthChecks"][0],
            json!({
                "protocol": "COMMAND", "command": {"value": "true"},
                "gracePeriodSeconds": 300, "intervalSeconds": 60, "timeoutSeconds": 20,
                "maxConsecutiveFailures": 3
            })
        );
        let portless = spec(json!({"cmd": "sleep 1000"}));
        let app = serde_json::to_value(mapping().desired_app(&key(), &portless).app).unwrap();
        assert_eq!(
            app["portDefinitions"],
            json!([]),
            "no port means none, not Marathon's one"
        );
    }

    #[test]
    fn mapped_apps_satisfy_marathons_app_definition_schema() {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/marathon/app-definition.schema.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&schema)
            .unwrap();
        let specs = [
            ingestor(),
            spec(json!({"cmd": "sleep 1000", "ports": {"web": 8000}})),
            spec(json!({"image": "busybox", "args": ["sleep", "1000"]})),
        ];
        for spec in specs {
            let app = serde_json::to_value(mapping().desired_app(&key(), &spec).app).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&app)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{app}\n{errors:#?}");
        }
    }
}
