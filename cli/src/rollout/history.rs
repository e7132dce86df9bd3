//! `theseus rollout history SERVICE/NAME`: the revisions the controller recorded for a
//! deployment, newest last, with their outcome, when they started and ran, and why they were
//! made; `-o json|yaml` prints the records themselves.
//!
//! A record that does not decode is named on stderr and left out; the exit status is then
//! non-zero.
//!
//! The readers of a deployment's history and journal, and the history's table, are also what
//! `theseus describe` shows.

use clap::Args;
use theseus::api::{DeploymentKey, JournalEntry, RevisionRecord};
use theseus::store::{KeyPath, Store};

use super::super::output::{OutputFormat, Table, print_structured};
use super::super::{EtcdArgs, Failure};
use super::deployment_key;

/// Arguments of `theseus rollout history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The deployment, as `SERVICE/NAME`.
    deployment: String,
}

/// Runs `theseus rollout history`.
pub async fn run(args: HistoryArgs, etcd: &EtcdArgs, output: OutputFormat) -> Result<(), Failure> {
    let key = deployment_key(&args.deployment)?;
    let store = etcd.connect().await?;
    let (records, problems) = read_history(&store, &key).await?;
    if output == OutputFormat::Table {
        if records.is_empty() && problems.is_empty() {
            println!(
                "{key}: no revision recorded under {} (the controller records each revision it acts on)",
                store.layout().history(&key)
            );
        } else {
            table(&records).print()?;
        }
    } else {
        print_structured(output, &records)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Problems(problems))
    }
}

/// The history of `key`, oldest first, and the records that do not decode, named.
pub(crate) async fn read_history(
    store: &Store,
    key: &DeploymentKey,
) -> Result<(Vec<RevisionRecord>, Vec<String>), Failure> {
    let theseus::edit::History {
        records,
        unreadable,
    } = theseus::edit::history(store, key).await?;
    Ok((records, unreadable))
}

/// The journal of `key`, oldest first, and the entries that do not decode, named.
pub(crate) async fn read_journal(
    store: &Store,
    key: &DeploymentKey,
) -> Result<(Vec<JournalEntry>, Vec<String>), Failure> {
    let layout = store.layout();
    let listing = store.list(&layout.journal(key)).await?;
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    // Sequences are written in ten digits, so the keys' order is the journal's.
    for entry in listing.entries {
        if !matches!(layout.parse(&entry.key), Some(KeyPath::Journal { .. })) {
            continue;
        }
        match entry.json::<JournalEntry>() {
            Ok(journal_entry) => entries.push(journal_entry),
            Err(error) => problems.push(format!("{}: {error}", entry.key)),
        }
    }
    Ok((entries, problems))
}

/// The history as a table: revision, outcome, when it started and ran, change cause, and for
/// a failed revision the reason and where it was rolled back to.
pub(crate) fn table(records: &[RevisionRecord]) -> Table {
    let mut table = Table::new(&["REVISION", "OUTCOME", "STARTED", "RAN", "CHANGE-CAUSE"]);
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(
            || "-".to_owned(),
            |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    };
    for record in records {
        let mut cause = record.change_cause.clone().unwrap_or_default();
        if let Some(reason) = &record.failure_reason {
            let to = record
                .rolled_back_to
                .map(|to| format!(", rolled back to {to}"))
                .unwrap_or_default();
            let detail = format!("[{reason}{to}]");
            cause = if cause.is_empty() {
                detail
            } else {
                format!("{cause} {detail}")
            };
        }
        table.row(vec![
            record.revision.to_string(),
            record.outcome.to_string(),
            time(Some(record.started_at)),
            time(record.running_at),
            cause,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use theseus::api::{RevisionOutcome, SpecText};

    use super::*;

    fn record(revision: i64, outcome: RevisionOutcome) -> RevisionRecord {
        RevisionRecord {
            revision,
            spec: SpecText::from_value(&serde_json::json!({"cmd": "x"})).unwrap(),
            spec_hash: "h".into(),
            change_cause: Some("more memory".into()),
            outcome,
            failure_reason: None,
            failure_message: None,
            rolled_back_to: None,
            app_version: None,
            started_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            running_at: None,
            ended_at: None,
        }
    }

    #[test]
    fn the_table_says_how_each_revision_ended_and_why_it_was_made() {
        let mut failed = record(12, RevisionOutcome::RolledBack);
        failed.failure_reason = Some("CrashLooping".into());
        failed.rolled_back_to = Some(9);
        let text = table(&[record(9, RevisionOutcome::Superseded), failed]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REVISION"));
        assert!(lines[1].starts_with("9 ") && lines[1].contains("Superseded"));
        assert!(
            lines[2].ends_with("more memory [CrashLooping, rolled back to 9]"),
            "{text}"
        );
    }
}
