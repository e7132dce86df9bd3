//! Normalisation and validation: a request body merged into a complete app definition.
//!
//! Follows Marathon's `AppNormalization` and `AppValidation`: fields the body leaves out come
//! from the current definition (partial update) or Marathon's defaults; legacy forms become
//! current ones (`ports` and `uris` were read as `portDefinitions` and `fetch`,
//! `container.docker.network` becomes `networks`, `container.docker.portMappings` becomes
//! `container.portMappings`); host-networking apps without ports get the default port
//! definition and bridge apps the default port mapping; `versionInfo` keeps
//! `lastConfigChangeAt` on scale-only changes. Rules that involve several fields are checked last.

use std::collections::BTreeMap;

use crate::app::{
    AppDefinition, DEFAULT_ROLE, KillSelection, Network, NetworkMode, PortDefinition, PortMapping,
    UnreachableStrategy, UpgradeStrategy, VersionInfo,
};
use crate::app_id::AppId;
use crate::app_update::{AppBodyError, AppUpdate};
use crate::timestamp::Timestamp;
use crate::validation::Violations;

impl AppUpdate {
    /// Merges onto `base` (or Marathon's defaults when `None`), normalises and validates.
    /// `id` is the canonical id the result gets; `version` its new version.
    pub fn apply(
        self,
        base: Option<&AppDefinition>,
        id: AppId,
        version: Timestamp,
    ) -> Result<AppDefinition, AppBodyError> {
        let mut rules = Violations::default();
        let u = self;
        let networks = u
            .networks
            .or_else(|| {
                u.legacy_docker_network.as_deref().map(|n| {
                    vec![Network {
                        name: None,
                        mode: match n {
                            "BRIDGE" => NetworkMode::ContainerBridge,
                            "USER" => NetworkMode::Container,
                            _ => NetworkMode::Host,
                        },
                        labels: BTreeMap::new(),
                    }]
                })
            })
            .or_else(|| base.map(|b| b.networks.clone()))
            .unwrap_or_else(|| {
                vec![Network {
                    name: None,
                    mode: NetworkMode::Host,
                    labels: BTreeMap::new(),
                }]
            });
        let mode = networks
            .first()
            .map(|n| n.mode)
            .unwrap_or(NetworkMode::Host);
        let mut container = u
            .container
            .or_else(|| base.and_then(|b| b.container.clone()));
        let port_definitions = if mode == NetworkMode::Host {
            Some(
                u.port_definitions
                    .or_else(|| base.and_then(|b| b.port_definitions.clone()))
                    .unwrap_or_else(|| {
                        vec![PortDefinition {
                            port: 0,
                            protocol: "tcp".to_string(),
                            name: Some("default".to_string()),
                            labels: BTreeMap::new(),
                        }]
                    }),
            )
        } else {
            None
        };
        match (&mut container, mode) {
            (Some(c), NetworkMode::Host) => c.port_mappings = None,
            (Some(c), _) => {
                if c.port_mappings.is_none() {
                    c.port_mappings = Some(vec![PortMapping {
                        container_port: 0,
                        host_port: (mode == NetworkMode::ContainerBridge).then_some(0),
                        labels: BTreeMap::new(),
                        name: Some("default".to_string()),
                        protocol: "tcp".to_string(),
                        service_port: 0,
                        network_names: Vec::new(),
                    }]);
                }
                if mode == NetworkMode::ContainerBridge
                    && let Some(mappings) = &mut c.port_mappings
                {
                    for m in mappings.iter_mut() {
                        m.host_port.get_or_insert(0);
                    }
                }
            }
            (None, NetworkMode::Host) => {}
            (None, _) => rules.add(
                "/container",
                "container networking requires a container (DOCKER or MESOS)",
            ),
        }

        let (cmd, args) = match (&u.cmd, &u.args) {
            // A body that sets one of cmd/args replaces the other.
            (Some(_), _) | (_, Some(_)) => (u.cmd.clone(), u.args.clone().unwrap_or_default()),
            _ => (
                base.and_then(|b| b.cmd.clone()),
                base.map(|b| b.args.clone()).unwrap_or_default(),
            ),
        };
        let instances = pick(base, u.instances, |b| b.instances, 1);
        let app = AppDefinition {
            id,
            accepted_resource_roles: u
                .accepted_resource_roles
                .or_else(|| base.and_then(|b| b.accepted_resource_roles.clone())),
            args,
            backoff_factor: pick(base, u.backoff_factor, |b| b.backoff_factor, 1.15),
            backoff_seconds: pick(base, u.backoff_seconds, |b| b.backoff_seconds, 1),
            cmd,
            constraints: u
                .constraints
                .or_else(|| base.map(|b| b.constraints.clone()))
                .unwrap_or_default(),
            container,
            cpus: pick(base, u.cpus, |b| b.cpus, 1.0),
            dependencies: u
                .dependencies
                .or_else(|| base.map(|b| b.dependencies.clone()))
                .unwrap_or_default(),
            disk: pick(base, u.disk, |b| b.disk, 0.0),
            env: u
                .env
                .or_else(|| base.map(|b| b.env.clone()))
                .unwrap_or_default(),
            executor: u
                .executor
                .or_else(|| base.map(|b| b.executor.clone()))
                .unwrap_or_default(),
            fetch: u
                .fetch
                .or_else(|| base.map(|b| b.fetch.clone()))
                .unwrap_or_default(),
            health_checks: u
                .health_checks
                .or_else(|| base.map(|b| b.health_checks.clone()))
                .unwrap_or_default(),
            instances,
            labels: u
                .labels
                .or_else(|| base.map(|b| b.labels.clone()))
                .unwrap_or_default(),
            max_launch_delay_seconds: pick(
                base,
                u.max_launch_delay_seconds,
                |b| b.max_launch_delay_seconds,
                300,
            ),
            mem: pick(base, u.mem, |b| b.mem, 128.0),
            gpus: pick(base, u.gpus, |b| b.gpus, 0),
            ip_address: u
                .ip_address
                .or_else(|| base.and_then(|b| b.ip_address.clone())),
            networks,
            port_definitions,
            readiness_checks: u
                .readiness_checks
                .or_else(|| base.map(|b| b.readiness_checks.clone()))
                .unwrap_or_default(),
            residency: u
                .residency
                .or_else(|| base.and_then(|b| b.residency.clone())),
            require_ports: pick(base, u.require_ports, |b| b.require_ports, false),
            secrets: u
                .secrets
                .or_else(|| base.map(|b| b.secrets.clone()))
                .unwrap_or_default(),
            task_kill_grace_period_seconds: u
                .task_kill_grace_period_seconds
                .or_else(|| base.and_then(|b| b.task_kill_grace_period_seconds)),
            upgrade_strategy: pick(
                base,
                u.upgrade_strategy,
                |b| b.upgrade_strategy,
                UpgradeStrategy::default(),
            ),
            user: u.user.or_else(|| base.and_then(|b| b.user.clone())),
            version,
            version_info: VersionInfo {
                last_scaling_at: version,
                last_config_change_at: version,
            },
            kill_selection: pick(
                base,
                u.kill_selection,
                |b| b.kill_selection,
                KillSelection::default(),
            ),
            unreachable_strategy: pick(
                base,
                u.unreachable_strategy,
                |b| b.unreachable_strategy,
                UnreachableStrategy::default(),
            ),
            tty: u.tty.or_else(|| base.and_then(|b| b.tty)),
            role: u
                .role
                .or_else(|| base.map(|b| b.role.clone()))
                .unwrap_or_else(|| DEFAULT_ROLE.to_string()),
        };
        let app = match base {
            Some(b) if !b.is_upgrade(&app) => AppDefinition {
                version_info: VersionInfo {
                    last_scaling_at: version,
                    last_config_change_at: b.version_info.last_config_change_at,
                },
                ..app
            },
            _ => app,
        };
        validate(&app, &mut rules);
        if rules.is_empty() {
            Ok(app)
        } else {
            Err(AppBodyError::Invalid(rules))
        }
    }
}

/// The body's value, else the base's, else the default.
fn pick<T>(
    base: Option<&AppDefinition>,
    new: Option<T>,
    old: impl Fn(&AppDefinition) -> T,
    default: T,
) -> T {
    new.or_else(|| base.map(old)).unwrap_or(default)
}

/// Rules that involve more than one field.
fn validate(app: &AppDefinition, rules: &mut Violations) {
    let has_cmd = app.cmd.is_some();
    let has_args = !app.args.is_empty();
    if (has_cmd && has_args) || (!has_cmd && !has_args && app.container.is_none()) {
        rules.add(
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
        );
    }
    let port_count = match app.network_mode() {
        NetworkMode::Host => app.port_definitions.as_ref().map_or(0, Vec::len),
        _ => app
            .container
            .as_ref()
            .and_then(|c| c.port_mappings.as_ref())
            .map_or(0, Vec::len),
    };
    let names: Vec<&str> = match app.network_mode() {
        NetworkMode::Host => app
            .port_definitions
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .collect(),
        _ => app
            .container
            .iter()
            .flat_map(|c| c.port_mappings.iter().flatten())
            .filter_map(|p| p.name.as_deref())
            .collect(),
    };
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        if !seen.insert(*name) {
            rules.add(
                "/portDefinitions",
                format!("Port names must be unique: '{name}' is used twice"),
            );
        }
    }
    if app.require_ports
        && app.network_mode() == NetworkMode::Host
        && app.port_definitions.iter().flatten().any(|p| p.port == 0)
    {
        rules.add(
            "/portDefinitions",
            "requirePorts needs every port definition to name a non-zero port",
        );
    }
    for (i, hc) in app.health_checks.iter().enumerate() {
        if let Some(index) = hc.port_index
            && index as usize >= port_count
        {
            rules.add(
                format!("/healthChecks({i})"),
                "Health check port indices must address an element of the ports array or container port mappings.",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_update::create_id;
    use serde_json::Value;
    use serde_json::json;

    fn create(body: Value) -> Result<AppDefinition, AppBodyError> {
        let u = AppUpdate::from_value(&body)?;
        let id = create_id(&u)?;
        u.apply(None, id, Timestamp::from_millis(1_000))
    }

    #[test]
    fn a_minimal_app_gets_marathons_defaults() {
        let app = create(json!({"id": "foo", "cmd": "sleep 100"})).unwrap();
        let v = serde_json::to_value(&app).unwrap();
        assert_eq!(v["id"], "/foo");
        assert_eq!(v["instances"], 1);
        assert_eq!(v["cpus"], 1);
        assert_eq!(v["mem"], 128);
        assert_eq!(v["disk"], 0);
        assert_eq!(v["gpus"], 0);
        assert_eq!(v["backoffSeconds"], 1);
        assert_eq!(v["backoffFactor"], 1.15);
        assert_eq!(v["maxLaunchDelaySeconds"], 300);
        assert_eq!(
            v["upgradeStrategy"],
            json!({"maximumOverCapacity": 1, "minimumHealthCapacity": 1})
        );
        assert_eq!(
            v["portDefinitions"],
            json!([{"port": 0, "protocol": "tcp", "name": "default"}])
        );
        assert_eq!(v["requirePorts"], false);
        assert_eq!(v["killSelection"], "YOUNGEST_FIRST");
        assert_eq!(
            v["unreachableStrategy"],
            json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0})
        );
        assert_eq!(v["networks"], json!([{"mode": "host"}]));
        assert_eq!(v["labels"], json!({}));
        assert_eq!(v["executor"], "");
        assert_eq!(v["role"], "*");
        assert_eq!(v["version"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["versionInfo"]["lastConfigChangeAt"], v["version"]);
        assert!(v.get("env").is_none() && v.get("constraints").is_none());
    }

    #[test]
    fn what_the_readers_reject_is_invalid_json_and_rule_breaks_are_invalid_objects() {
        match create(json!({"id": "/a", "cmd": "x", "cpus": "lots"})) {
            Err(AppBodyError::InvalidJson(v)) => {
                assert_eq!(v.into_details()[0].path, "/cpus")
            }
            other => panic!("{other:?}"),
        }
        match create(
            json!({"id": "/a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 2}}),
        ) {
            Err(AppBodyError::InvalidJson(v)) => {
                let d = v.into_details();
                assert_eq!(d[0].path, "/upgradeStrategy/minimumHealthCapacity");
                assert_eq!(d[0].errors, ["error.max"]);
            }
            other => panic!("{other:?}"),
        }
        match create(json!({"id": "/Bad_Id", "cmd": "x"})) {
            Err(AppBodyError::InvalidJson(v)) => {
                let d = v.into_details();
                assert_eq!(
                    (d[0].path.as_str(), d[0].errors.as_slice()),
                    ("/id", &["error.pattern".to_string()][..])
                );
            }
            other => panic!("{other:?}"),
        }
        match create(json!({"id": "/a"})) {
            Err(AppBodyError::Invalid(v)) => assert_eq!(v.into_details()[0].path, "/"),
            other => panic!("{other:?}"),
        }
        assert!(create(json!({"id": "/a", "cmd": "x", "args": ["y"]})).is_err());
        assert!(create(json!({"id": "/a", "cmd": "x", "instances": -1})).is_err());
    }

    #[test]
    fn partial_updates_keep_unnamed_fields_and_scaling_keeps_the_config_version() {
        let base =
            create(json!({"id": "/a", "cmd": "x", "mem": 64, "labels": {"k": "v"}})).unwrap();
        let scaled = AppUpdate::scale(5)
            .apply(Some(&base), base.id.clone(), Timestamp::from_millis(2_000))
            .unwrap();
        assert_eq!(scaled.instances, 5);
        assert_eq!(scaled.mem, 64.0);
        assert_eq!(scaled.version_info.last_config_change_at, base.version);
        assert_eq!(scaled.version_info.last_scaling_at, scaled.version);
        assert!(!base.is_upgrade(&scaled));
        let changed = AppUpdate::from_value(&json!({"cmd": "y"}))
            .unwrap()
            .apply(Some(&base), base.id.clone(), Timestamp::from_millis(3_000))
            .unwrap();
        assert_eq!(changed.labels.get("k").map(String::as_str), Some("v"));
        assert!(base.is_upgrade(&changed));
        assert_eq!(changed.version_info.last_config_change_at, changed.version);
    }

    #[test]
    fn legacy_docker_bridge_apps_are_normalised() {
        let app = create(json!({
            "id": "/web", "container": {"type": "DOCKER", "docker": {
                "image": "nginx", "network": "BRIDGE",
                "portMappings": [{"containerPort": 80, "name": "http"}]}}
        }))
        .unwrap();
        assert_eq!(app.network_mode(), NetworkMode::ContainerBridge);
        assert!(app.port_definitions.is_none());
        let m = &app
            .container
            .as_ref()
            .unwrap()
            .port_mappings
            .as_ref()
            .unwrap()[0];
        assert_eq!((m.container_port, m.host_port), (80, Some(0)));
        assert_eq!(app.docker_image(), Some("nginx"));
    }

    #[test]
    fn health_checks_get_defaults_and_port_indices_are_checked() {
        let app = create(json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "HTTP"}]}))
            .unwrap();
        let hc = &app.health_checks[0];
        assert_eq!(hc.path.as_deref(), Some("/"));
        assert_eq!(hc.port_index, Some(0));
        assert_eq!(hc.grace_period_seconds, 300);
        assert_eq!(hc.interval_seconds, 60);
        assert_eq!(hc.max_consecutive_failures, 3);
        assert!(
            create(json!({"id": "/a", "cmd": "x", "healthChecks": [{"portIndex": 1}]})).is_err()
        );
        assert!(
            create(json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND"}]}))
                .is_err()
        );
    }
}
