//! `theseus describe SERVICE/NAME`: everything etcd holds about one deployment, in one place:
//! the spec in summary, the status and its conditions, the task records, the revision history
//! and the journal of the controller's decisions; `-o json|yaml` prints all of it.
//!
//! What it promises: environment values whose names look secret (`PASSWORD`, `SECRET`,
//! `TOKEN`, `KEY`) are masked in the spec and in every recorded revision's spec, whatever the
//! output format, the same way the dashboard masks them. A deployment with neither a
//! `/desired` key nor anything under `/observed` is an error naming it. A record that does not
//! decode is named on stderr and left out; the exit status is then non-zero.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use theseus::api::{
    DeploymentKey, DeploymentSpec, DeploymentStatus, JournalEntry, RevisionRecord, SpecText,
    TaskRecord, parse_spec,
};
use theseus::store::{KeyPath, Revision, Store};
use theseus_dashboard::mask::mask_spec;

use super::output::{OutputFormat, Table, print_structured};
use super::rollout::deployment_key;
use super::rollout::history::{read_history, read_journal, table as history_table};
use super::{EtcdArgs, Failure};

/// Arguments of `theseus describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The deployment, as `SERVICE/NAME`.
    deployment: String,
}

/// The spec as `/desired` holds it.
#[derive(Debug, Serialize)]
struct StoredSpec {
    key: String,
    revision: Revision,
    /// The stored value, secret-looking environment values masked (a JSON string holding the
    /// text when it is not JSON).
    spec: Value,
    /// Why it is not a valid spec, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid: Option<String>,
    #[serde(skip)]
    parsed: Option<DeploymentSpec>,
}

/// Everything about one deployment.
#[derive(Debug, Serialize)]
struct Description {
    deployment: String,
    desired: Option<StoredSpec>,
    status: Option<DeploymentStatus>,
    tasks: Vec<TaskRecord>,
    history: Vec<RevisionRecord>,
    journal: Vec<JournalEntry>,
}

/// Runs `theseus describe`.
pub async fn run(args: DescribeArgs, etcd: &EtcdArgs, output: OutputFormat) -> Result<(), Failure> {
    let key = deployment_key(&args.deployment)?;
    let store = etcd.connect().await?;
    let (description, problems) = read(&store, &key).await?;
    if description.desired.is_none()
        && description.status.is_none()
        && description.tasks.is_empty()
        && description.history.is_empty()
        && description.journal.is_empty()
        && problems.is_empty()
    {
        return Err(Failure::problem(format!(
            "no deployment {key}: {} does not exist and nothing is recorded under {} \
             (`theseus get` lists the deployments)",
            store.layout().desired(&key),
            store.layout().observed(&key)
        )));
    }
    if output == OutputFormat::Table {
        print!("{}", render(&description, Utc::now()));
    } else {
        print_structured(output, &description)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Problems(problems))
    }
}

/// Reads the deployment's keys; the values that do not decode are named in the second part.
async fn read(store: &Store, key: &DeploymentKey) -> Result<(Description, Vec<String>), Failure> {
    let layout = store.layout();
    let mut problems = Vec::new();
    let desired = store.get(&layout.desired(key)).await?.map(|entry| {
        let raw = serde_json::from_slice(&entry.value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&entry.value).into()));
        let parsed = parse_spec(&entry.value);
        StoredSpec {
            key: entry.key,
            revision: entry.mod_revision,
            spec: mask_spec(raw),
            invalid: parsed.as_ref().err().map(ToString::to_string),
            parsed: parsed.ok(),
        }
    });
    let status = match store.get(&layout.status(key)).await? {
        None => None,
        Some(entry) => match entry.json::<DeploymentStatus>() {
            Ok(status) => Some(status),
            Err(error) => {
                problems.push(format!("{}: {error}", entry.key));
                None
            }
        },
    };
    let mut tasks = Vec::new();
    for entry in store.list(&layout.tasks(key)).await?.entries {
        if !matches!(layout.parse(&entry.key), Some(KeyPath::Task { .. })) {
            continue;
        }
        match entry.json::<TaskRecord>() {
            Ok(task) => tasks.push(task),
            Err(error) => problems.push(format!("{}: {error}", entry.key)),
        }
    }
    tasks.sort_by(|a, b| (&a.host, &a.task_id).cmp(&(&b.host, &b.task_id)));
    let (mut history, history_problems) = read_history(store, key).await?;
    history.retain_mut(|record| match masked(&record.spec) {
        Ok(spec) => {
            record.spec = spec;
            true
        }
        Err(error) => {
            problems.push(format!(
                "{}: its spec cannot be read to mask its secrets: {error}",
                layout.history_record(key, record.revision)
            ));
            false
        }
    });
    let (journal, journal_problems) = read_journal(store, key).await?;
    problems.extend(history_problems);
    problems.extend(journal_problems);
    let description = Description {
        deployment: key.to_string(),
        desired,
        status,
        tasks,
        history,
        journal,
    };
    Ok((description, problems))
}

/// A recorded spec with its secret-looking environment values masked.
fn masked(spec: &SpecText) -> Result<SpecText, serde_json::Error> {
    SpecText::from_value(&mask_spec(spec.to_value()?))
}

/// The description for people, `now` giving the tasks' ages.
fn render(description: &Description, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        out.push_str(&format!("{:<20}{value}\n", format!("{name}:")));
    };
    field("Deployment", description.deployment.clone());
    match &description.desired {
        None => field("Desired", "none (the key was deleted)".to_owned()),
        Some(desired) => {
            field(
                "Desired",
                format!("{} at revision {}", desired.key, desired.revision),
            );
            match (&desired.parsed, &desired.invalid) {
                (Some(spec), _) => summary(spec, &desired.spec, &mut field),
                (None, invalid) => {
                    field(
                        "Invalid",
                        invalid.clone().unwrap_or_else(|| "not a spec".to_owned()),
                    );
                    field("Spec", desired.spec.to_string());
                }
            }
        }
    }
    out.push('\n');
    match &description.status {
        None => out.push_str("Status: none yet (the controller has not reported on it)\n"),
        Some(status) => out.push_str(&status_text(status, now)),
    }
    out.push('\n');
    if description.tasks.is_empty() {
        out.push_str("Tasks: none recorded\n");
    } else {
        out.push_str("Tasks:\n");
        out.push_str(&indent(&tasks_table(&description.tasks, now).render()));
    }
    if let Some(failure) = description
        .status
        .as_ref()
        .and_then(|status| status.last_task_failure.as_ref())
    {
        out.push_str(&format!(
            "Last task failure: {} {} on {} at {}: {}\n",
            failure.task_id, failure.state, failure.host, failure.timestamp, failure.message
        ));
    }
    out.push('\n');
    if description.history.is_empty() {
        out.push_str("History: no revision recorded\n");
    } else {
        out.push_str("History:\n");
        out.push_str(&indent(&history_table(&description.history).render()));
    }
    out.push('\n');
    if description.journal.is_empty() {
        out.push_str("Journal: no decision recorded\n");
    } else {
        out.push_str("Journal:\n");
        let mut table = Table::new(&["AT", "REVISION", "DECISION", "MESSAGE"]);
        for entry in &description.journal {
            table.row(vec![
                entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                entry.revision.to_string(),
                entry.decision.to_string(),
                entry.message.clone(),
            ]);
        }
        out.push_str(&indent(&table.render()));
    }
    out
}

/// The spec's fields in summary, `masked` giving the environment's values as shown.
fn summary(spec: &DeploymentSpec, masked: &Value, field: &mut impl FnMut(&str, String)) {
    if let Some(image) = &spec.image {
        field("Image", image.clone());
    }
    if let Some(cmd) = &spec.cmd {
        field("Command", cmd.clone());
    }
    if !spec.args.is_empty() {
        field("Arguments", spec.args.join(" "));
    }
    field("Instances", spec.instances.to_string());
    field(
        "Resources",
        format!(
            "cpus {}, mem {} MiB, disk {} MiB",
            spec.cpus, spec.mem, spec.disk
        ),
    );
    field(
        "Ports",
        list(spec.ports_by_name().map(|(n, p)| format!("{n} {p}"))),
    );
    field("Labels", list(spec.labels.iter().cloned()));
    let environment: BTreeMap<String, String> = masked
        .get("environment")
        .and_then(Value::as_object)
        .map(|environment| {
            environment
                .iter()
                .map(|(name, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (name.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    field(
        "Environment",
        list(environment.iter().map(|(n, v)| format!("{n}={v}"))),
    );
    if !spec.constraints.is_empty() {
        field(
            "Constraints",
            list(spec.constraints.iter().map(|c| {
                [Some(c.field()), Some(c.operator()), c.value()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
            })),
        );
    }
    if !spec.volumes.is_empty() {
        field("Volumes", list(spec.volumes.iter().cloned()));
    }
    if !spec.health_checks.is_empty() {
        field(
            "Health checks",
            list(spec.health_checks.iter().map(|check| {
                let target = check
                    .port
                    .clone()
                    .or_else(|| check.command.clone())
                    .unwrap_or_default();
                format!("{} {target}", check.protocol.as_str())
            })),
        );
    }
    let strategy = spec.upgrade_strategy_or_default();
    field(
        "Upgrade strategy",
        format!(
            "minimum health capacity {}, maximum over capacity {}",
            strategy.minimum_health_capacity, strategy.maximum_over_capacity
        ),
    );
    field(
        "Rollout",
        format!(
            "progress deadline {}s, crash loop limit {}, auto rollback {}, paused {}, \
             history limit {}",
            spec.progress_deadline_seconds,
            spec.crash_loop_limit,
            yes_no(spec.auto_rollback),
            yes_no(spec.paused),
            spec.revision_history_limit
        ),
    );
    if let Some(cause) = &spec.change_cause {
        field("Change cause", cause.clone());
    }
}

fn status_text(status: &DeploymentStatus, now: DateTime<Utc>) -> String {
    let mut out = format!(
        "{:<20}{} at revision {} (reported {} ago)\n",
        "Status:",
        status.phase,
        status.observed_revision,
        age(now, status.updated_at)
    );
    if let Some(app_id) = &status.app_id {
        let version = status
            .app_version
            .as_deref()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default();
        out.push_str(&format!("{:<20}{app_id}{version}\n", "App:"));
    }
    let counts = status.instances;
    out.push_str(&format!(
        "{:<20}desired {}, staged {}, running {}, healthy {}, unhealthy {}\n",
        "Instances:",
        counts.desired,
        counts.staged,
        counts.running,
        counts.healthy,
        counts.unhealthy
    ));
    if !status.deployment_ids.is_empty() {
        out.push_str(&format!(
            "{:<20}{}\n",
            "Marathon deployments:",
            status.deployment_ids.join(", ")
        ));
    }
    if status.conditions.is_empty() {
        return out;
    }
    out.push_str("Conditions:\n");
    let mut table = Table::new(&["TYPE", "STATUS", "REASON", "MESSAGE"]);
    for condition in &status.conditions {
        table.row(vec![
            condition.kind.clone(),
            condition.status.to_string(),
            condition.reason.clone(),
            condition.message.clone(),
        ]);
    }
    out.push_str(&indent(&table.render()));
    out
}

fn tasks_table(tasks: &[TaskRecord], now: DateTime<Utc>) -> Table {
    let mut table = Table::new(&["TASK", "HOST", "PORTS", "STATE", "HEALTH", "AGE"]);
    for task in tasks {
        let ports = list(
            task.ports
                .iter()
                .map(|(name, binding)| format!("{name} {}→{}", binding.host, binding.container)),
        );
        let since = task.started_at.as_deref().or(task.staged_at.as_deref());
        let age = since
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map_or_else(|| "-".to_owned(), |at| age(now, at.with_timezone(&Utc)));
        table.row(vec![
            task.task_id.clone(),
            task.host.clone(),
            ports,
            task.state.to_string(),
            task.health.to_string(),
            age,
        ]);
    }
    table
}

/// How long ago `then` was, in its largest unit: `45s`, `12m`, `3h`, `2d`.
fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_given_in_their_largest_unit() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ago = |seconds: i64| age(now, now - chrono::Duration::seconds(seconds));
        assert_eq!(ago(45), "45s");
        assert_eq!(ago(12 * 60 + 5), "12m");
        assert_eq!(ago(3 * 3600), "3h");
        assert_eq!(ago(2 * 86400 + 7), "2d");
        assert_eq!(ago(-5), "0s", "a clock ahead of ours is not a negative age");
    }
}
