//! `theseus rollout undo SERVICE/NAME [--to-revision R]`: writes an earlier revision's spec,
//! as the controller recorded it, back to `/desired` as a new revision: a user's write, like
//! `theseus apply`, never the controller's.
//!
//! What it promises: the write is one transaction that requires the `/desired` key to be at
//! the revision that was read, so a concurrent edit is never lost (the command then fails and
//! writes nothing). The new spec's `change_cause` says it is an undo, from which revision to
//! which. Without `--to-revision` it goes back to the most recent earlier revision that ran
//! and whose spec differs from the current one.

use clap::Args;
use serde_json::Value;
use theseus::api::{RevisionRecord, parse_spec};
use theseus::store::Txn;

use super::super::{EtcdArgs, Failure};
use super::history::read_history;
use super::{deployment_key, desired_entry};

/// Arguments of `theseus rollout undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The deployment, as `SERVICE/NAME`.
    deployment: String,
    /// The revision to go back to (`theseus rollout history` lists them); default: the most
    /// recent earlier revision that ran with another spec.
    #[arg(long)]
    to_revision: Option<i64>,
}

/// Runs `theseus rollout undo`.
pub async fn run(args: UndoArgs, etcd: &EtcdArgs) -> Result<(), Failure> {
    let key = deployment_key(&args.deployment)?;
    let store = etcd.connect().await?;
    let layout = store.layout().clone();
    let desired_key = layout.desired(&key);
    let current = desired_entry(&store, &key).await?;
    let current_spec: Value = serde_json::from_slice(&current.value).unwrap_or(Value::Null);
    let (records, _) = read_history(&store, &key).await?;
    let target = match args.to_revision {
        Some(revision) => records
            .iter()
            .find(|record| record.revision == revision)
            .ok_or_else(|| {
                Failure::problem(format!(
                    "revision {revision} of {key} is not in its history ({}); `theseus rollout \
                     history {key}` lists the revisions recorded",
                    layout.history_record(&key, revision)
                ))
            })?,
        None => previous(&records, current.mod_revision, &current_spec).ok_or_else(|| {
            Failure::problem(format!(
                "{key} has no earlier revision that ran with another spec in its history ({}); \
                 name one with --to-revision",
                layout.history(&key)
            ))
        })?,
    };
    let Value::Object(mut spec) = target.spec.clone() else {
        return Err(Failure::problem(format!(
            "revision {} of {key} was recorded without its spec (too large to keep), so it \
             cannot be written back",
            target.revision
        )));
    };
    spec.insert(
        "change_cause".to_owned(),
        Value::String(undo_cause(target, current.mod_revision)),
    );
    let text = Value::Object(spec).to_string();
    if let Err(errors) = parse_spec(text.as_bytes()) {
        return Err(Failure::problem(format!(
            "revision {} of {key} is not a valid spec any more, nothing was written: {errors}",
            target.revision
        )));
    }
    let outcome = store
        .txn(
            Txn::new()
                .require_mod_revision(&desired_key, current.mod_revision)
                .put(&desired_key, text),
        )
        .await?;
    if !outcome.succeeded {
        return Err(Failure::problem(format!(
            "{desired_key} changed since it was read at revision {}; nothing was written, \
             look at `theseus rollout history {key}` and run the command again",
            current.mod_revision
        )));
    }
    println!(
        "{key}: the spec of revision {} written back to {desired_key} as revision {}",
        target.revision, outcome.revision
    );
    Ok(())
}

/// The most recent revision before `current` that ran and whose spec (its change cause
/// aside) differs from `current_spec`.
fn previous<'a>(
    records: &'a [RevisionRecord],
    current: i64,
    current_spec: &Value,
) -> Option<&'a RevisionRecord> {
    let without_cause = |spec: &Value| {
        let mut spec = spec.clone();
        if let Some(fields) = spec.as_object_mut() {
            fields.remove("change_cause");
        }
        spec
    };
    let current_spec = without_cause(current_spec);
    records.iter().rev().find(|record| {
        record.revision < current
            && record.reached_running()
            && record.spec.is_object()
            && without_cause(&record.spec) != current_spec
    })
}

fn undo_cause(target: &RevisionRecord, current: i64) -> String {
    let mut cause = format!(
        "undo: back to revision {} from revision {current}",
        target.revision
    );
    if let Some(original) = &target.change_cause {
        cause.push_str(&format!(" ({original})"));
    }
    // The spec's bound on a change cause.
    cause.chars().take(1024).collect()
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;
    use theseus::api::RevisionOutcome;

    use super::*;

    fn record(revision: i64, cmd: &str, ran: bool) -> RevisionRecord {
        RevisionRecord {
            revision,
            spec: json!({"cmd": cmd, "change_cause": format!("r{revision}")}),
            spec_hash: cmd.into(),
            change_cause: Some(format!("r{revision}")),
            outcome: RevisionOutcome::Superseded,
            failure_reason: None,
            failure_message: None,
            rolled_back_to: None,
            app_version: None,
            started_at: DateTime::UNIX_EPOCH,
            running_at: ran.then_some(DateTime::UNIX_EPOCH),
            ended_at: None,
        }
    }

    #[test]
    fn undo_goes_back_to_the_latest_earlier_spec_that_ran_and_differs() {
        let records = [
            record(3, "a", true),
            record(5, "b", true),
            record(6, "c", false),
            record(7, "d", true),
        ];
        let current = json!({"cmd": "d", "change_cause": "other words"});
        assert_eq!(previous(&records, 7, &current).unwrap().revision, 5);
        let same_as_b = json!({"cmd": "b"});
        assert_eq!(previous(&records, 7, &same_as_b).unwrap().revision, 3);
        assert!(previous(&records, 3, &current).is_none());
    }

    #[test]
    fn the_change_cause_says_it_is_an_undo() {
        assert_eq!(
            undo_cause(&record(5, "b", true), 9),
            "undo: back to revision 5 from revision 9 (r5)"
        );
    }
}
