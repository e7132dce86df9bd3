//! `theseus diff -f FILE...`: what applying the files would change, written nowhere.
//!
//! For each deployment in the files it says how `/desired` would change (a unified diff of
//! the spec as JSON, `new` when the key does not exist) and what the controller would then
//! ask Marathon to do: create the app, update it with a restart (naming the spec fields that
//! cause the restart), scale it only, delete it, or nothing. The answer comes from the
//! controller's own mapping code ([`theseus::mapping`]): the file's spec and the spec now in
//! `/desired` are both mapped to Marathon apps and compared as the controller compares an
//! app with its desired definition.
//!
//! What it does not promise: Marathon itself is not asked (the command reaches only etcd).
//! The comparison is with the app the current `/desired` spec maps to, which is what Marathon
//! runs once the controller has acted on it; when the status says the controller has not
//! (yet) done so, the report says that too.
//!
//! Exit status, as `diff` and `kubectl diff`: 0 when nothing would change, 1 when something
//! would, 2 on an error (a file that is not valid, etcd unreachable).

mod unified;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use serde_json::Value;
use theseus::api::manifest::ManifestEntry;
use theseus::api::{DeploymentKey, DeploymentSpec, DeploymentStatus, Phase, parse_spec};
use theseus::mapping::{Drift, Mapping, drift, restarting_fields};
use theseus::store::{Entry, Revision, Store};
use theseus_dashboard::mask::{MASK, looks_secret};

use super::output::{OutputFormat, print_structured};
use super::validate::{KeyArgs, read_files};
use super::{EtcdArgs, Failure};

/// Arguments of `theseus diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "Marathon is not asked: the file's spec is compared with the app the \
    spec now in /desired maps to, which is what Marathon runs once the controller has acted \
    on it (the report says when it has not). Exit status: 0 when nothing would change, 1 when \
    something would, 2 on an error."
)]
pub struct DiffArgs {
    /// Deployment files (JSON or YAML; `-` reads stdin), as for `theseus apply`.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub key: KeyArgs,

    /// The Marathon group the controller puts apps under (its `--marathon-group`), for the
    /// app ids shown.
    #[arg(long, env = "THESEUS_MARATHON_GROUP")]
    pub marathon_group: Option<String>,
}

/// Whether applying the files would change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Nothing would change.
    Same,
    /// Something would.
    Differs,
}

/// How `/desired` would change for one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum SpecChange {
    /// The key does not exist: the spec is new.
    New,
    /// The key holds another spec.
    Changed,
    /// The key holds this spec.
    Unchanged,
    /// The key would be deleted.
    Removed,
    /// A removal of a key that does not exist.
    Absent,
}

/// What the controller would ask Marathon to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum MarathonChange {
    /// Create the app.
    Create { app_id: String, instances: u32 },
    /// Replace the app's definition: Marathon restarts every task.
    Update {
        app_id: String,
        /// The spec fields whose change causes the restart.
        restart_fields: Vec<String>,
        instances_from: u32,
        instances_to: u32,
    },
    /// Change the instance count only: no task restarts.
    Scale { app_id: String, from: u32, to: u32 },
    /// Delete the app (the key is removed).
    Delete { app_id: String },
    /// Nothing.
    Nothing,
    /// Cannot be told from `/desired`; the reason says why.
    Unknown { reason: String },
}

/// One deployment's difference.
#[derive(Debug, Serialize)]
struct Difference {
    deployment: String,
    file: String,
    /// The `/desired` key.
    key: String,
    /// Its mod revision, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<Revision>,
    spec: SpecChange,
    /// The unified diff of the spec as JSON, secret-looking environment values masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
    marathon: MarathonChange,
    /// The new spec is paused: the controller would hold the Marathon change until resumed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    paused: bool,
    /// Why Marathon may not run the current spec yet (the controller has not acted on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct DiffReport {
    /// Whether anything would change.
    changes: bool,
    deployments: Vec<Difference>,
}

/// Runs `theseus diff`.
pub async fn run(
    args: DiffArgs,
    etcd: &EtcdArgs,
    output: OutputFormat,
) -> Result<DiffOutcome, Failure> {
    let read = read_files(&args.files, &args.key).map_err(Failure::Problems)?;
    let mapping = Mapping::new(
        args.marathon_group.as_deref(),
        etcd.etcd_endpoints.clone(),
        &etcd.prefix,
    )
    .map_err(|error| Failure::problem(error.to_string()))?;
    let store = etcd.connect().await?;
    let layout = store.layout().clone();
    let listing = store.list(&layout.desired_root()).await?;
    let current: BTreeMap<&str, &Entry> = listing
        .entries
        .iter()
        .map(|entry| (entry.key.as_str(), entry))
        .collect();
    let mut deployments = Vec::new();
    for (file, entry) in &read.entries {
        let key = entry.key();
        let path = layout.desired(key);
        let existing = current.get(path.as_str()).copied();
        let mut difference = match entry {
            ManifestEntry::Deploy { document, spec, .. } => {
                deploy(&mapping, key, file, &path, existing, document, spec)
            }
            ManifestEntry::Remove { .. } => remove(&mapping, key, file, &path, existing),
        };
        if difference.spec != SpecChange::Unchanged && existing.is_some() {
            difference.note = lagging(&store, key, existing).await?;
        }
        deployments.push(difference);
    }
    let changes = deployments
        .iter()
        .any(|d| !matches!(d.spec, SpecChange::Unchanged | SpecChange::Absent));
    let report = DiffReport {
        changes,
        deployments,
    };
    if output == OutputFormat::Table {
        print!("{}", render(&report));
    } else {
        print_structured(output, &report)?;
    }
    Ok(if changes {
        DiffOutcome::Differs
    } else {
        DiffOutcome::Same
    })
}

/// The difference a spec in a file makes.
fn deploy(
    mapping: &Mapping,
    key: &DeploymentKey,
    file: &str,
    path: &str,
    existing: Option<&Entry>,
    document: &Value,
    spec: &DeploymentSpec,
) -> Difference {
    let app_id = mapping.app_id(key).to_string();
    let wanted = mapping.desired_app(key, spec);
    let stored: Option<Value> = existing.map(|entry| {
        serde_json::from_slice(&entry.value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&entry.value).into()))
    });
    let spec_change = match &stored {
        None => SpecChange::New,
        Some(stored) if stored == document => SpecChange::Unchanged,
        Some(_) => SpecChange::Changed,
    };
    let marathon = match (spec_change, existing) {
        (SpecChange::Unchanged, _) => MarathonChange::Nothing,
        (_, None) => MarathonChange::Create {
            app_id,
            instances: wanted.instances(),
        },
        (_, Some(entry)) => match parse_spec(&entry.value) {
            Err(errors) => MarathonChange::Unknown {
                reason: format!(
                    "the spec in {path} is not valid ({errors}), so the app Marathon runs \
                     cannot be told from it"
                ),
            },
            Ok(current) => {
                let running = mapping.desired_app(key, &current).app;
                match drift(&wanted, &running) {
                    Drift::InSync => MarathonChange::Nothing,
                    Drift::Scale { from, to } => MarathonChange::Scale { app_id, from, to },
                    Drift::Update { fields } => {
                        let mut restart_fields = restarting_fields(&current, spec);
                        if restart_fields.is_empty() {
                            restart_fields = fields.iter().map(ToString::to_string).collect();
                        }
                        MarathonChange::Update {
                            app_id,
                            restart_fields,
                            instances_from: current.instances,
                            instances_to: spec.instances,
                        }
                    }
                }
            }
        },
    };
    let diff = match spec_change {
        SpecChange::Unchanged => None,
        _ => {
            let (before, after) = masked_pair(stored.as_ref(), Some(document));
            let before_name = match existing {
                Some(entry) => format!("{path} (revision {})", entry.mod_revision),
                None => format!("{path} (new)"),
            };
            unified::unified(&before_name, &before, &format!("{file}: {key}"), &after)
        }
    };
    Difference {
        deployment: key.to_string(),
        file: file.to_owned(),
        key: path.to_owned(),
        revision: existing.map(|entry| entry.mod_revision),
        spec: spec_change,
        diff,
        paused: spec.paused && marathon != MarathonChange::Nothing,
        marathon,
        note: None,
    }
}

/// The difference a `remove:` entry makes.
fn remove(
    mapping: &Mapping,
    key: &DeploymentKey,
    file: &str,
    path: &str,
    existing: Option<&Entry>,
) -> Difference {
    let (spec, marathon, diff) = match existing {
        None => (SpecChange::Absent, MarathonChange::Nothing, None),
        Some(entry) => {
            let stored = serde_json::from_slice(&entry.value)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&entry.value).into()));
            let (before, after) = masked_pair(Some(&stored), None);
            let diff = unified::unified(
                &format!("{path} (revision {})", entry.mod_revision),
                &before,
                &format!("{file}: {key} (removed)"),
                &after,
            );
            let app_id = mapping.app_id(key).to_string();
            (SpecChange::Removed, MarathonChange::Delete { app_id }, diff)
        }
    };
    Difference {
        deployment: key.to_string(),
        file: file.to_owned(),
        key: path.to_owned(),
        revision: existing.map(|entry| entry.mod_revision),
        spec,
        diff,
        marathon,
        paused: false,
        note: None,
    }
}

/// Why Marathon may not run the current spec of `key` yet, from its status: the controller
/// has not acted on its revision, or has not finished.
async fn lagging(
    store: &Store,
    key: &DeploymentKey,
    existing: Option<&Entry>,
) -> Result<Option<String>, Failure> {
    let Some(entry) = existing else {
        return Ok(None);
    };
    let status = store.get(&store.layout().status(key)).await?;
    let status = status.and_then(|entry| entry.json::<DeploymentStatus>().ok());
    Ok(match status {
        None => Some(format!(
            "the controller has reported nothing on revision {} yet: Marathon may not run it",
            entry.mod_revision
        )),
        Some(status) if status.observed_revision != entry.mod_revision => Some(format!(
            "the controller has not acted on revision {} yet (it reports {} for revision {}): \
             Marathon may still run an earlier spec",
            entry.mod_revision, status.phase, status.observed_revision
        )),
        Some(status) if status.phase != Phase::Running => Some(format!(
            "revision {} is {} in Marathon, not Running: what Marathon runs may differ",
            entry.mod_revision, status.phase
        )),
        Some(_) => None,
    })
}

/// Both specs as pretty JSON with their secret-looking environment values masked; a value
/// that differs between the two is masked as `(before)` and `(after)`, so the change shows
/// without the secret.
fn masked_pair(before: Option<&Value>, after: Option<&Value>) -> (String, String) {
    let environment = |spec: Option<&Value>| {
        spec.and_then(|spec| spec.get("environment"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (old_env, new_env) = (environment(before), environment(after));
    let mask = |spec: Option<&Value>,
                own: &serde_json::Map<String, Value>,
                other: &serde_json::Map<String, Value>,
                side: &str| {
        let Some(mut spec) = spec.cloned() else {
            return String::new();
        };
        if let Some(environment) = spec.get_mut("environment").and_then(Value::as_object_mut) {
            for (name, value) in environment.iter_mut() {
                if looks_secret(name) {
                    let changed = other.contains_key(name) && other.get(name) != own.get(name);
                    let shown = if changed {
                        format!("{MASK} ({side})")
                    } else {
                        MASK.to_owned()
                    };
                    *value = Value::String(shown);
                }
            }
        }
        let mut text = serde_json::to_string_pretty(&spec).expect("JSON serialises");
        text.push('\n');
        text
    };
    (
        mask(before, &old_env, &new_env, "before"),
        mask(after, &new_env, &old_env, "after"),
    )
}

/// The report for people: per deployment, one line saying what would happen, then the diff.
fn render(report: &DiffReport) -> String {
    let mut out = String::new();
    for difference in &report.deployments {
        let key = &difference.deployment;
        let source = &difference.file;
        let spec = match difference.spec {
            SpecChange::New => "new in /desired".to_owned(),
            SpecChange::Changed => "changed in /desired".to_owned(),
            SpecChange::Unchanged => "unchanged in /desired".to_owned(),
            SpecChange::Removed => "removed from /desired".to_owned(),
            SpecChange::Absent => "absent from /desired (nothing to remove)".to_owned(),
        };
        let marathon = match &difference.marathon {
            MarathonChange::Create { app_id, instances } => {
                format!("create app {app_id} with {instances} instances")
            }
            MarathonChange::Update {
                app_id,
                restart_fields,
                instances_from,
                instances_to,
            } => {
                let mut line = format!(
                    "update app {app_id} with a restart of its tasks ({} changed)",
                    restart_fields.join(", ")
                );
                if instances_from != instances_to {
                    line.push_str(&format!(", instances {instances_from} → {instances_to}"));
                }
                line
            }
            MarathonChange::Scale { app_id, from, to } => {
                format!("scale app {app_id} from {from} to {to} instances, no restart")
            }
            MarathonChange::Delete { app_id } => format!("delete app {app_id}"),
            MarathonChange::Nothing => "nothing".to_owned(),
            MarathonChange::Unknown { reason } => format!("cannot tell: {reason}"),
        };
        out.push_str(&format!("{key} ({source}): {spec}; Marathon: {marathon}\n"));
        if difference.paused {
            out.push_str(&format!(
                "  paused: the controller holds this change until `theseus rollout resume {key}`\n"
            ));
        }
        if let Some(note) = &difference.note {
            out.push_str(&format!("  note: {note}\n"));
        }
        if let Some(diff) = &difference.diff {
            out.push_str(diff);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(value: &Value) -> Entry {
        Entry {
            key: "/desired/web/dev".into(),
            value: value.to_string().into_bytes(),
            create_revision: 3,
            mod_revision: 7,
            version: 1,
            lease: 0,
        }
    }

    fn differ(current: Option<Value>, file: Value) -> Difference {
        let mapping = Mapping::new(None, vec!["http://127.0.0.1:2379".into()], "").unwrap();
        let key: DeploymentKey = "web/dev".parse().unwrap();
        let spec = theseus::api::validate_spec(&file).unwrap();
        let existing = current.as_ref().map(entry);
        deploy(
            &mapping,
            &key,
            "web.json",
            "/desired/web/dev",
            existing.as_ref(),
            &file,
            &spec,
        )
    }

    #[test]
    fn an_instance_change_alone_is_a_scale() {
        let d = differ(
            Some(json!({"cmd": "serve", "instances": 2})),
            json!({"cmd": "serve", "instances": 5}),
        );
        assert_eq!(d.spec, SpecChange::Changed);
        assert_eq!(
            d.marathon,
            MarathonChange::Scale {
                app_id: "/web/dev".into(),
                from: 2,
                to: 5
            }
        );
    }

    #[test]
    fn a_rollout_field_alone_changes_the_spec_but_nothing_in_marathon() {
        let d = differ(
            Some(json!({"cmd": "serve"})),
            json!({"cmd": "serve", "change_cause": "note"}),
        );
        assert_eq!(d.spec, SpecChange::Changed);
        assert_eq!(d.marathon, MarathonChange::Nothing);
    }

    #[test]
    fn an_invalid_current_spec_makes_the_marathon_change_unknown() {
        let d = differ(
            Some(json!({"cmd": "serve", "cpus": 0})),
            json!({"cmd": "serve"}),
        );
        assert!(
            matches!(&d.marathon, MarathonChange::Unknown { reason } if reason.contains("/cpus")),
            "{:?}",
            d.marathon
        );
    }

    #[test]
    fn secret_values_are_masked_in_the_diff_and_their_change_still_shows() {
        let d = differ(
            Some(json!({"cmd": "serve", "environment": {"DB_PASSWORD": "old", "A": "1"}})),
            json!({"cmd": "serve", "environment": {"DB_PASSWORD": "new", "A": "1"}}),
        );
        let diff = d.diff.unwrap();
        assert!(!diff.contains("old") && !diff.contains("\"new\""), "{diff}");
        assert!(
            diff.contains(&format!("-    \"DB_PASSWORD\": \"{MASK} (before)\"")),
            "{diff}"
        );
        assert!(
            diff.contains(&format!("+    \"DB_PASSWORD\": \"{MASK} (after)\"")),
            "{diff}"
        );
        assert_eq!(
            d.marathon,
            MarathonChange::Update {
                app_id: "/web/dev".into(),
                restart_fields: vec!["environment".into()],
                instances_from: 1,
                instances_to: 1
            }
        );
    }
}
