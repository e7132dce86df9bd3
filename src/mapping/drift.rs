//! Whether an owned Marathon app matches what its spec maps to, and if not, how to put it
//! back: a full update (Marathon rolls the tasks) or a scale (no restart).
//!
//! What it promises: [`drift`] is a pure function of the desired app and the app as Marathon
//! reports it. An app whose spec-hash label differs from the desired hash, or whose fields
//! that people edit by hand in Marathon's UI (command, arguments, image, resources,
//! environment) differ from the mapped ones, needs an update; otherwise an app whose
//! `instances` differ needs a scale; otherwise it is in sync. Fields Marathon fills in with
//! its own defaults are not compared, so an app Marathon normalised is never seen as drifted.

use std::fmt;

use crate::marathon::App;

use super::app::DesiredApp;
use super::ownership::SPEC_HASH_LABEL;

/// A field that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftedField {
    /// The `THESEUS_SPEC_HASH` label: the spec (or the mapping) changed.
    SpecHash,
    /// `cmd`.
    Command,
    /// `args`.
    Arguments,
    /// The Docker image.
    Image,
    /// `cpus`.
    Cpus,
    /// `mem`.
    Memory,
    /// `disk`.
    Disk,
    /// `env`.
    Environment,
}

impl fmt::Display for DriftedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriftedField::SpecHash => "spec hash",
            DriftedField::Command => "cmd",
            DriftedField::Arguments => "args",
            DriftedField::Image => "image",
            DriftedField::Cpus => "cpus",
            DriftedField::Memory => "mem",
            DriftedField::Disk => "disk",
            DriftedField::Environment => "env",
        })
    }
}

/// How an owned app differs from its desired definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Nothing to do.
    InSync,
    /// Only the instance count differs: scale, without restarting tasks.
    Scale {
        /// Instances in Marathon.
        from: u32,
        /// Instances desired.
        to: u32,
    },
    /// The definition differs: replace it (Marathon rolls the tasks).
    Update {
        /// What differs, in a fixed order.
        fields: Vec<DriftedField>,
    },
}

/// How `actual` differs from `desired`; see the module documentation.
pub fn drift(desired: &DesiredApp, actual: &App) -> Drift {
    let want = &desired.app;
    let mut fields = Vec::new();
    if actual.label(SPEC_HASH_LABEL) != Some(desired.hash.as_str()) {
        fields.push(DriftedField::SpecHash);
    }
    if actual.cmd != want.cmd {
        fields.push(DriftedField::Command);
    }
    if none_if_empty(&actual.args) != none_if_empty(&want.args) {
        fields.push(DriftedField::Arguments);
    }
    if image(actual) != image(want) {
        fields.push(DriftedField::Image);
    }
    if actual.cpus != want.cpus {
        fields.push(DriftedField::Cpus);
    }
    if actual.mem != want.mem {
        fields.push(DriftedField::Memory);
    }
    if actual.disk.unwrap_or_default() != want.disk.unwrap_or_default() {
        fields.push(DriftedField::Disk);
    }
    if !same_environment(actual, want) {
        fields.push(DriftedField::Environment);
    }
    if !fields.is_empty() {
        return Drift::Update { fields };
    }
    let from = actual.instances.unwrap_or_default();
    let to = desired.instances();
    if from != to {
        return Drift::Scale { from, to };
    }
    Drift::InSync
}

/// Whether two apps have the same environment; no environment and an empty one are the same.
fn same_environment(a: &App, b: &App) -> bool {
    match (&a.env, &b.env) {
        (Some(a), Some(b)) => a == b,
        (Some(env), None) | (None, Some(env)) => env.is_empty(),
        (None, None) => true,
    }
}

fn image(app: &App) -> Option<&str> {
    Some(app.container.as_ref()?.docker.as_ref()?.image.as_str())
}

fn none_if_empty(list: &Option<Vec<String>>) -> Option<&[String]> {
    list.as_deref().filter(|items| !items.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DeploymentKey, validate_spec};
    use crate::mapping::Mapping;
    use serde_json::json;

    fn desired(spec: serde_json::Value) -> DesiredApp {
        let key: DeploymentKey = "web/dev".parse().unwrap();
        let mapping = Mapping::new(None, vec!["http://127.0.0.1:2379".into()], "").unwrap();
        mapping.desired_app(&key, &validate_spec(&spec).unwrap())
    }

    /// The desired app as Marathon would report it: with status fields and defaults added.
    fn as_marathon_reports(desired: &DesiredApp) -> App {
        let mut value = serde_json::to_value(&desired.app).unwrap();
        let extra = json!({
            "version": "2026-01-01T00:00:00.000Z",
            "tasksRunning": 2, "tasksStaged": 0, "tasksHealthy": 0, "tasksUnhealthy": 0,
            "deployments": [], "backoffSeconds": 1, "backoffFactor": 1.15,
            "requirePorts": false, "executor": "", "user": null,
            "killSelection": "YOUNGEST_FIRST", "unreachableStrategy": {"inactiveAfterSeconds": 0}
        });
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn an_app_as_marathon_normalised_it_is_in_sync() {
        let want = desired(json!({"image": "busybox", "cmd": "sleep 1", "instances": 2}));
        assert_eq!(drift(&want, &as_marathon_reports(&want)), Drift::InSync);
    }

    #[test]
    fn an_instance_change_is_a_scale_and_nothing_more() {
        let before = desired(json!({"cmd": "sleep 1", "instances": 2}));
        let after = desired(json!({"cmd": "sleep 1", "instances": 5}));
        assert_eq!(
            drift(&after, &as_marathon_reports(&before)),
            Drift::Scale { from: 2, to: 5 }
        );
        let mut scaled_by_hand = as_marathon_reports(&before);
        scaled_by_hand.instances = Some(0);
        assert_eq!(
            drift(&before, &scaled_by_hand),
            Drift::Scale { from: 0, to: 2 }
        );
    }

    #[test]
    fn a_spec_change_is_an_update_even_with_a_scale() {
        let before = desired(json!({"cmd": "sleep 1", "instances": 2}));
        let after = desired(json!({"cmd": "sleep 2", "instances": 3}));
        assert_eq!(
            drift(&after, &as_marathon_reports(&before)),
            Drift::Update {
                fields: vec![DriftedField::SpecHash, DriftedField::Command]
            }
        );
    }

    #[test]
    fn hand_edits_behind_an_unchanged_hash_are_drift() {
        let want = desired(json!({"image": "busybox", "environment": {"A": "1"}}));
        type HandEdit = fn(&mut App);
        let edits: [(HandEdit, DriftedField); 5] = [
            (|app| app.cmd = Some("sh".into()), DriftedField::Command),
            (
                |app| {
                    app.container
                        .as_mut()
                        .unwrap()
                        .docker
                        .as_mut()
                        .unwrap()
                        .image = "evil".into()
                },
                DriftedField::Image,
            ),
            (|app| app.cpus = Some(4.0), DriftedField::Cpus),
            (|app| app.mem = Some(1.0), DriftedField::Memory),
            (
                |app| {
                    app.env.as_mut().unwrap().insert("A", "2");
                },
                DriftedField::Environment,
            ),
        ];
        for (edit, field) in edits {
            let mut app = as_marathon_reports(&want);
            edit(&mut app);
            assert_eq!(
                drift(&want, &app),
                Drift::Update {
                    fields: vec![field]
                }
            );
        }
    }

    #[test]
    fn an_app_without_the_hash_label_needs_an_update() {
        let want = desired(json!({"cmd": "sleep 1"}));
        let mut app = as_marathon_reports(&want);
        app.labels.as_mut().unwrap().remove(SPEC_HASH_LABEL);
        assert_eq!(
            drift(&want, &app),
            Drift::Update {
                fields: vec![DriftedField::SpecHash]
            }
        );
    }
}
