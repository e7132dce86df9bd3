//! `theseus get [SERVICE[/NAME]]`: desired deployments beside their observed status.
//!
//! The table puts the desired side (instances asked for, the `/desired` revision, the phase of
//! that revision) beside the observed one (instances running and healthy, and `OBSERVED`: the
//! phase the controller last reported and the revision it reported it for).
//!
//! A value under `/desired` that is not a valid spec, or a status that does not decode, is
//! shown as such and named on stderr with its key; so is a key under `/desired` that names no
//! deployment (`/desired/UPPER/x`, `/desired/a/b/c`), listed below the table as not a valid
//! key. The command then exits non-zero, but still lists everything else.

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::output::{OutputFormat, Table, print_structured};
use super::{EtcdArgs, Failure};
use theseus::api::{
    ConditionKind, DeploymentKey, DeploymentSpec, DeploymentStatus, DnsLabel, KeyError, Phase,
    Reason, parse_spec,
};
use theseus::store::{Entry, KeyPath, Revision, Store};

/// Arguments of `theseus get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// `SERVICE` or `SERVICE/NAME`; every deployment when omitted.
    pub selector: Option<String>,
}

/// Which deployments to show.
enum Selector {
    All,
    Service(DnsLabel),
    One(DeploymentKey),
}

impl Selector {
    fn parse(text: Option<&str>) -> Result<Self, Failure> {
        match text {
            None => Ok(Selector::All),
            Some(text) if text.contains('/') => text
                .parse()
                .map(Selector::One)
                .map_err(|e| Failure::problem(e.to_string())),
            Some(text) => DnsLabel::parse("service", text)
                .map(Selector::Service)
                .map_err(|e| Failure::problem(e.to_string())),
        }
    }
}

/// One deployment as shown.
#[derive(Debug, Serialize)]
struct Row {
    deployment: String,
    /// mod_revision of the `/desired` key; absent when only a status remains.
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<Revision>,
    /// The stored spec, as stored.
    spec: Option<Value>,
    status: Option<DeploymentStatus>,
    /// Problems with the stored values, each naming its key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    #[serde(skip)]
    parsed: Option<DeploymentSpec>,
}

/// Runs `theseus get`.
pub async fn run(args: GetArgs, etcd: &EtcdArgs, output: OutputFormat) -> Result<(), Failure> {
    let selector = Selector::parse(args.selector.as_deref())?;
    let store = etcd.connect().await?;
    let (rows, invalid_keys) = read_rows(&store, &selector).await?;
    if let Selector::One(key) = &selector
        && rows.is_empty()
    {
        return Err(Failure::problem(format!(
            "no deployment {key}: {} does not exist",
            store.layout().desired(key)
        )));
    }
    match output {
        OutputFormat::Table => print_table(&rows, &invalid_keys)?,
        format => print_structured(format, &rows)?,
    }
    let errors: Vec<String> = rows
        .iter()
        .flat_map(|r| r.errors.iter().cloned())
        .chain(
            invalid_keys
                .iter()
                .map(|(key, error)| format!("{key}: not a deployment key: {error}")),
        )
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Problems(errors))
    }
}

/// The rows of the deployments `selector` names, and the keys under `/desired` among them
/// that name no deployment, with why.
async fn read_rows(
    store: &Store,
    selector: &Selector,
) -> Result<(Vec<Row>, Vec<(String, KeyError)>), Failure> {
    let layout = store.layout();
    let (desired, observed): (Vec<Entry>, Vec<Entry>) = match selector {
        Selector::One(key) => {
            let desired = store.get(&layout.desired(key)).await?;
            let status = store.get(&layout.status(key)).await?;
            (desired.into_iter().collect(), status.into_iter().collect())
        }
        Selector::Service(service) => (
            store.list(&layout.desired_service(service)).await?.entries,
            store.list(&layout.observed_service(service)).await?.entries,
        ),
        Selector::All => (
            store.list(&layout.desired_root()).await?.entries,
            store.list(&layout.observed_root()).await?.entries,
        ),
    };
    let mut desired_by_key = BTreeMap::new();
    let mut invalid_keys = Vec::new();
    for entry in desired {
        match layout.desired_key(&entry.key) {
            Some(Ok(key)) => {
                desired_by_key.insert(key, entry);
            }
            Some(Err(error)) => invalid_keys.push((entry.key, error)),
            None => {}
        }
    }
    let mut status_by_key = BTreeMap::new();
    for entry in observed {
        if let Some(KeyPath::Status(key)) = layout.parse(&entry.key) {
            status_by_key.insert(key, entry);
        }
    }
    let keys: BTreeSet<&DeploymentKey> =
        desired_by_key.keys().chain(status_by_key.keys()).collect();
    let rows = keys
        .into_iter()
        .map(|key| row(key, desired_by_key.get(key), status_by_key.get(key)))
        .collect();
    Ok((rows, invalid_keys))
}

fn row(key: &DeploymentKey, desired: Option<&Entry>, status: Option<&Entry>) -> Row {
    let mut errors = Vec::new();
    let spec = desired.map(|entry| {
        serde_json::from_slice::<Value>(&entry.value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&entry.value).into_owned()))
    });
    let parsed = desired.and_then(|entry| match parse_spec(&entry.value) {
        Ok(spec) => Some(spec),
        Err(problems) => {
            errors.push(format!("{}: not a valid spec: {problems}", entry.key));
            None
        }
    });
    let status = status.and_then(|entry| match entry.json::<DeploymentStatus>() {
        Ok(status) => Some(status),
        Err(error) => {
            errors.push(error.to_string());
            None
        }
    });
    Row {
        deployment: key.to_string(),
        revision: desired.map(|e| e.mod_revision),
        spec,
        status,
        errors,
        parsed,
    }
}

fn print_table(rows: &[Row], invalid_keys: &[(String, KeyError)]) -> std::io::Result<()> {
    let mut table = Table::new(&[
        "DEPLOYMENT",
        "DESIRED",
        "RUNNING",
        "HEALTHY",
        "PHASE",
        "REVISION",
        "OBSERVED",
        "RUNS",
    ]);
    for row in rows {
        let counts = row.status.as_ref().map(|s| s.instances);
        let desired = match (&row.parsed, &row.spec) {
            (Some(spec), _) => spec.instances.to_string(),
            (None, Some(_)) => "?".to_owned(),
            (None, None) => "-".to_owned(),
        };
        table.row(vec![
            row.deployment.clone(),
            desired,
            counts.map_or("-".to_owned(), |c| c.running.to_string()),
            counts.map_or("-".to_owned(), |c| c.healthy.to_string()),
            phase(row),
            row.revision.map_or("-".to_owned(), |r| r.to_string()),
            observed(row),
            row.parsed.as_ref().map_or("-".to_owned(), runs),
        ]);
    }
    if table.is_empty() {
        println!("no deployments");
    } else {
        table.print()?;
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|row| [failed(row), waiting(row), failure(row)])
        .flatten()
        .collect();
    if !failures.is_empty() {
        println!();
        for line in failures {
            println!("{line}");
        }
    }
    if !invalid_keys.is_empty() {
        let mut keys = Table::new(&["NOT A VALID KEY", "WHY"]);
        for (key, error) in invalid_keys {
            keys.row(vec![key.clone(), error.to_string()]);
        }
        println!();
        keys.print()?;
    }
    Ok(())
}

/// One line with the `Progressing` reason and message of a deployment whose current revision
/// failed (`DeadlineExceeded`, `CrashLooping`, `RolledBack`, ...), the words `rollout status`
/// shows.
fn failed(row: &Row) -> Option<String> {
    let status = row.status.as_ref()?;
    if status.phase != Phase::Failed || row.revision != Some(status.observed_revision) {
        return None;
    }
    let progressing = status.condition(ConditionKind::Progressing)?;
    Some(format!(
        "{}: revision {} failed ({}): {}",
        row.deployment, status.observed_revision, progressing.reason, progressing.message
    ))
}

/// One line with the `Progressing` reason and message of a deployment whose current revision
/// waits for something that keeps it from running (`WaitingForResources`,
/// `HealthChecksFailing`), the words `rollout status` shows.
fn waiting(row: &Row) -> Option<String> {
    let status = row.status.as_ref()?;
    if status.phase == Phase::Failed || row.revision != Some(status.observed_revision) {
        return None;
    }
    let progressing = status.condition(ConditionKind::Progressing)?;
    let waits = [Reason::WaitingForResources, Reason::HealthChecksFailing]
        .into_iter()
        .any(|reason| progressing.is(reason));
    waits.then(|| {
        format!(
            "{}: revision {} waits ({}): {}",
            row.deployment, status.observed_revision, progressing.reason, progressing.message
        )
    })
}

/// One line with the last task failure of a deployment short of running instances (the
/// usual reason it is: an image that cannot be pulled, a command that exits), as Mesos
/// reported it.
fn failure(row: &Row) -> Option<String> {
    let status = row.status.as_ref()?;
    let failure = status.last_task_failure.as_ref()?;
    (status.instances.running < status.instances.desired).then(|| {
        format!(
            "{}: last task failure: {} on {}: {}",
            row.deployment, failure.state, failure.host, failure.message
        )
    })
}

/// The phase to show: the status's when it describes the current spec, `Pending` while the
/// controller has not acted on it yet, `Invalid` for a spec that does not validate here.
fn phase(row: &Row) -> String {
    if row.spec.is_some() && row.parsed.is_none() {
        return Phase::Invalid.to_string();
    }
    match (&row.status, row.revision) {
        (None, Some(_)) => Phase::Pending.to_string(),
        (None, None) => "-".to_owned(),
        (Some(status), Some(revision)) if status.observed_revision != revision => {
            Phase::Pending.to_string()
        }
        (Some(status), _) => status.phase.to_string(),
    }
}

/// What the controller last reported, for comparison with the desired revision and phase:
/// `<phase>@<revision>` (`Running@41` beside a desired revision 42 means the change is not
/// acted on yet), `-` without a status.
fn observed(row: &Row) -> String {
    row.status.as_ref().map_or("-".to_owned(), |status| {
        format!("{}@{}", status.phase, status.observed_revision)
    })
}

/// What the deployment runs: its image, else its command, shortened for a table.
fn runs(spec: &DeploymentSpec) -> String {
    let text = spec
        .image
        .clone()
        .or_else(|| spec.cmd.clone())
        .unwrap_or_default();
    // A multi-line command would break the table: show it on one line.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > 48 {
        let short: String = text.chars().take(47).collect();
        format!("{short}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use theseus::api::{Condition, InstanceCounts};

    use super::*;

    fn row(revision: Revision, phase: Phase, progressing: Condition) -> Row {
        Row {
            deployment: "web/dev".into(),
            revision: Some(revision),
            spec: None,
            status: Some(DeploymentStatus {
                observed_revision: 7,
                phase,
                conditions: vec![progressing],
                instances: InstanceCounts::default(),
                app_id: Some("/web/dev".into()),
                app_version: None,
                deployment_ids: vec![],
                last_task_failure: None,
                revision_started_at: None,
                revision_running_at: None,
                revision_task_failures: 0,
                updated_at: chrono::DateTime::UNIX_EPOCH,
            }),
            errors: vec![],
            parsed: None,
        }
    }

    #[test]
    fn a_revision_waiting_for_resources_or_on_health_checks_gets_a_line_with_its_reason() {
        let short = Condition::fails(
            ConditionKind::Progressing,
            Reason::WaitingForResources,
            "1 of 1 instance(s) cannot be placed: not enough cpus",
        );
        assert_eq!(
            waiting(&row(7, Phase::Deploying, short.clone())).as_deref(),
            Some(
                "web/dev: revision 7 waits (WaitingForResources): 1 of 1 instance(s) cannot be \
                 placed: not enough cpus"
            )
        );
        assert_eq!(
            waiting(&row(8, Phase::Deploying, short)),
            None,
            "an older revision"
        );
        let failing = Condition::fails(
            ConditionKind::Progressing,
            Reason::HealthChecksFailing,
            "2 of 2 running task(s) fail health check 1 (HTTP port `http` path `/`)",
        );
        assert!(waiting(&row(7, Phase::Deploying, failing)).is_some());
        let deploying =
            Condition::holds(ConditionKind::Progressing, Reason::Deploying, "in progress");
        assert_eq!(waiting(&row(7, Phase::Deploying, deploying)), None);
    }
}
