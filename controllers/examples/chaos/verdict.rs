//! What must hold once the faults are over and the controllers had time to converge: etcd's
//! `/desired` and `/observed` against Marathon's own apps and tasks, read directly from
//! localmarathon (not through the proxy).
//!
//! - Every valid `/desired` key has exactly one owned app (the ownership labels naming the
//!   key), with the spec's instances and spec hash, and that many running tasks.
//! - A key with an invalid spec has at most one owned app, left as a valid spec of the key
//!   made it (its hash is one of those the churn wrote there).
//! - No owned app exists without a key.
//! - The task records of every key are exactly its app's tasks in the states that have
//!   records, with the same state, host and host ports.
//! - Every key's status acted on the key's current revision (`observed_revision ==
//!   mod_revision`): `Running` for a valid spec, `Invalid` for an invalid one; no status or
//!   record remains for a key that is gone.

use std::collections::{BTreeMap, BTreeSet};

use theseus::api::parse_spec;
use theseus::api::{DeploymentKey, DeploymentStatus, Phase, TaskRecord};
use theseus::mapping::Mapping;
use theseus::mapping::ownership::{
    DEPLOYMENT_LABEL, MANAGED_SELECTOR, SERVICE_LABEL, SPEC_HASH_LABEL,
};
use theseus::marathon::{App, AppQuery, Embed, MarathonClient, TaskState};
use theseus::store::{KeyPath, Revision, Store};
use theseus_controllers::observed::record::has_record;

use super::churn::ChurnLog;

/// What one `/desired` key holds.
struct Desired {
    revision: Revision,
    /// The spec's instances and hash, or `None` for an invalid spec.
    valid: Option<(u32, String)>,
}

/// Everything under `/observed/<key>/`.
#[derive(Default)]
struct Observed {
    status: Option<Result<DeploymentStatus, String>>,
    records: BTreeMap<String, TaskRecord>,
    garbled: Vec<String>,
}

/// Reads everything and returns every violation found (none when converged), or why the
/// reading failed.
pub async fn violations(
    store: &Store,
    marathon: &MarathonClient,
    mapping: &Mapping,
    churn: &ChurnLog,
) -> Result<Vec<String>, String> {
    let layout = store.layout();
    let mut desired = BTreeMap::new();
    for entry in store
        .list(&layout.desired_root())
        .await
        .map_err(|e| e.to_string())?
        .entries
    {
        let Some(Ok(key)) = layout.desired_key(&entry.key) else {
            continue;
        };
        let valid = parse_spec(&entry.value).ok().map(|spec| {
            let app = mapping.desired_app(&key, &spec);
            (spec.instances, app.hash.to_string())
        });
        desired.insert(
            key,
            Desired {
                revision: entry.mod_revision,
                valid,
            },
        );
    }
    let mut observed: BTreeMap<DeploymentKey, Observed> = BTreeMap::new();
    for entry in store
        .list(&layout.observed_root())
        .await
        .map_err(|e| e.to_string())?
        .entries
    {
        match layout.parse(&entry.key) {
            Some(KeyPath::Status(key)) => {
                observed.entry(key).or_default().status =
                    Some(entry.json::<DeploymentStatus>().map_err(|e| e.to_string()));
            }
            Some(KeyPath::Task { key, task_id }) => {
                let slot = observed.entry(key).or_default();
                match entry.json::<TaskRecord>() {
                    Ok(record) => {
                        slot.records.insert(task_id, record);
                    }
                    Err(error) => slot.garbled.push(error.to_string()),
                }
            }
            _ => {}
        }
    }
    let query = AppQuery {
        label: Some(MANAGED_SELECTOR.to_owned()),
        embed: vec![Embed::Tasks],
        ..AppQuery::default()
    };
    let apps = marathon
        .list_apps(&query)
        .await
        .map_err(|e| e.to_string())?;
    let mut owned: BTreeMap<DeploymentKey, Vec<App>> = BTreeMap::new();
    let mut found = Vec::new();
    for app in apps {
        let labelled = match (app.label(SERVICE_LABEL), app.label(DEPLOYMENT_LABEL)) {
            (Some(service), Some(name)) => DeploymentKey::new(service, name).ok(),
            _ => None,
        };
        match labelled {
            Some(key) if mapping.app_id(&key) == app.id => owned.entry(key).or_default().push(app),
            _ => found.push(format!(
                "app {} carries the ownership label but names no deployment of its id",
                app.id
            )),
        }
    }

    for (key, want) in &desired {
        let apps = owned.remove(key).unwrap_or_default();
        let seen = observed.remove(key).unwrap_or_default();
        check_key(key, want, &apps, &seen, churn, &mut found);
    }
    for (key, apps) in owned {
        for app in apps {
            found.push(format!(
                "app {} is owned but {key} has no /desired key",
                app.id
            ));
        }
    }
    for (key, seen) in observed {
        if seen.status.is_some() {
            found.push(format!("{key} has a status but no /desired key"));
        }
        if !seen.records.is_empty() || !seen.garbled.is_empty() {
            found.push(format!(
                "{key} has {} task records but no /desired key",
                seen.records.len() + seen.garbled.len()
            ));
        }
    }
    Ok(found)
}

fn check_key(
    key: &DeploymentKey,
    want: &Desired,
    apps: &[App],
    seen: &Observed,
    churn: &ChurnLog,
    found: &mut Vec<String>,
) {
    if apps.len() > 1 {
        found.push(format!("{key} has {} owned apps", apps.len()));
    }
    let app = apps.first();
    let hash = app.and_then(|a| a.label(SPEC_HASH_LABEL));
    let phase = match &want.valid {
        Some((instances, expected)) => {
            match app {
                None => found.push(format!("{key} has a valid spec but no app")),
                Some(app) => {
                    if app.instances != Some(*instances) {
                        found.push(format!(
                            "{key}: app {} has {:?} instances, the spec asks for {instances}",
                            app.id, app.instances
                        ));
                    }
                    if hash != Some(expected.as_str()) {
                        found.push(format!(
                            "{key}: app {} has spec hash {hash:?}, the spec's is {expected}",
                            app.id
                        ));
                    }
                    let running = app
                        .tasks
                        .iter()
                        .flatten()
                        .filter(|t| t.state == TaskState::Running)
                        .count();
                    let all = app.tasks.as_ref().map_or(0, Vec::len);
                    if running != *instances as usize || all != running {
                        found.push(format!(
                            "{key}: app {} has {all} tasks, {running} running; the spec asks for {instances}",
                            app.id
                        ));
                    }
                }
            }
            Phase::Running
        }
        None => {
            if let Some(hash) = hash
                && !churn
                    .valid_hashes
                    .get(key)
                    .is_some_and(|hashes| hashes.contains(hash))
            {
                found.push(format!(
                    "{key}: the spec is invalid, yet app {} has spec hash {hash}, which no valid \
                     spec of the key had",
                    app.map_or_else(String::new, |a| a.id.to_string())
                ));
            }
            Phase::Invalid
        }
    };
    match &seen.status {
        None => found.push(format!("{key} has no status")),
        Some(Err(error)) => found.push(format!("{key}: the status does not decode: {error}")),
        Some(Ok(status)) => {
            if status.observed_revision != want.revision {
                found.push(format!(
                    "{key}: the status acted on revision {}, the key is at {}",
                    status.observed_revision, want.revision
                ));
            } else if status.phase != phase {
                found.push(format!(
                    "{key}: the status says {} at the current revision, expected {}",
                    status.phase.as_str(),
                    phase.as_str()
                ));
            }
        }
    }
    for error in &seen.garbled {
        found.push(format!("{key}: a task record does not decode: {error}"));
    }
    let tasks: BTreeMap<String, &theseus::marathon::Task> = app
        .and_then(|a| a.tasks.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| has_record(&t.state))
        .map(|t| (t.id.to_string(), t))
        .collect();
    let ids: BTreeSet<&String> = tasks.keys().chain(seen.records.keys()).collect();
    for id in ids {
        match (tasks.get(id), seen.records.get(id)) {
            (Some(_), None) => found.push(format!("{key}: task {id} has no record")),
            (None, Some(_)) => found.push(format!("{key}: record {id} names no task")),
            (Some(task), Some(record)) => {
                let mut ports: Vec<u16> = record.ports.values().map(|p| p.host).collect();
                let mut expected = task.ports.clone().unwrap_or_default();
                ports.sort_unstable();
                expected.sort_unstable();
                if record.state != task.state || record.host != task.host {
                    found.push(format!(
                        "{key}: record {id} says {} on {}, Marathon says {} on {}",
                        record.state,
                        record.host,
                        task.state.as_str(),
                        task.host
                    ));
                } else if ports != expected {
                    found.push(format!(
                        "{key}: record {id} has host ports {ports:?}, Marathon says {expected:?}"
                    ));
                }
            }
            (None, None) => {}
        }
    }
}
