//! `theseus apply -f FILE... [--message TEXT] [--dry-run]`: everything validated first, then
//! written in one etcd transaction, all of it or none of it. `--message` sets every spec's
//! `change_cause`, kept with the revision in its history.
//!
//! The transaction is fenced on the mod_revision of every key it writes, as read just before:
//! if someone changes one of them in between, nothing is written and the plan is made again
//! from fresh reads, so the report always says what the transaction did.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::output::{OutputFormat, print_structured};
use super::validate::{KeyArgs, read_files};
use super::{EtcdArgs, Failure};
use theseus::api::manifest::ManifestEntry;
use theseus::store::{Entry, Revision, Txn};

/// How often a plan is made again when keys change between reading and writing.
const ATTEMPTS: usize = 5;

/// Arguments of `theseus apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Deployment files (JSON or YAML; `-` reads stdin), as for `theseus validate`.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub key: KeyArgs,

    /// Why these specs change (at most 1024 characters): set as every spec's `change_cause`,
    /// shown by `theseus rollout history`.
    #[arg(short = 'm', long, value_parser = change_cause)]
    pub message: Option<String>,

    /// Print what would be written without writing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// The longest change cause a spec accepts (its schema's bound).
const MAX_CHANGE_CAUSE: usize = 1024;

/// Why `--message` is refused.
#[derive(Debug, thiserror::Error)]
enum ChangeCauseError {
    /// Longer than a spec accepts.
    #[error("a change cause has at most {limit} characters")]
    TooLong {
        /// The bound, in characters.
        limit: usize,
    },
}

fn change_cause(text: &str) -> Result<String, ChangeCauseError> {
    if text.chars().count() > MAX_CHANGE_CAUSE {
        return Err(ChangeCauseError::TooLong {
            limit: MAX_CHANGE_CAUSE,
        });
    }
    Ok(text.to_owned())
}

/// What apply does to one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    /// The key did not exist and is written.
    Created,
    /// The key held another spec and is overwritten.
    Changed,
    /// The key already holds this spec; nothing is written.
    Unchanged,
    /// The key is deleted.
    Removed,
    /// A removal of a key that does not exist; nothing is written.
    Absent,
}

impl ApplyAction {
    fn as_str(self) -> &'static str {
        match self {
            ApplyAction::Created => "created",
            ApplyAction::Changed => "changed",
            ApplyAction::Unchanged => "unchanged",
            ApplyAction::Removed => "removed",
            ApplyAction::Absent => "absent (nothing to remove)",
        }
    }
}

#[derive(Debug, Serialize)]
struct Planned {
    deployment: String,
    action: ApplyAction,
    file: String,
}

#[derive(Debug, Serialize)]
struct ApplyReport {
    dry_run: bool,
    /// The etcd revision the write created; absent on a dry run or when nothing changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<Revision>,
    results: Vec<Planned>,
}

/// Runs `theseus apply`.
pub async fn run(args: ApplyArgs, etcd: &EtcdArgs, output: OutputFormat) -> Result<(), Failure> {
    let mut read = read_files(&args.files, &args.key).map_err(Failure::Problems)?;
    if let Some(message) = &args.message {
        for (_, entry) in &mut read.entries {
            if let ManifestEntry::Deploy { document, spec, .. } = entry {
                // Validated as a document already; the bound is checked by the flag's parser.
                if let Some(fields) = document.as_object_mut() {
                    fields.insert("change_cause".to_owned(), Value::String(message.clone()));
                }
                spec.change_cause = Some(message.clone());
            }
        }
    }
    let store = etcd.connect().await?;
    let layout = store.layout().clone();
    for _ in 0..ATTEMPTS {
        let listing = store.list(&layout.desired_root()).await?;
        let current: BTreeMap<&str, &Entry> = listing
            .entries
            .iter()
            .map(|entry| (entry.key.as_str(), entry))
            .collect();
        let mut txn = Txn::new();
        let mut results = Vec::new();
        for (file, entry) in &read.entries {
            let path = layout.desired(entry.key());
            let existing = current.get(path.as_str()).copied();
            let action = match entry {
                ManifestEntry::Deploy { document, .. } => match existing {
                    None => ApplyAction::Created,
                    Some(existing) if holds(existing, document) => ApplyAction::Unchanged,
                    Some(_) => ApplyAction::Changed,
                },
                ManifestEntry::Remove { .. } if existing.is_some() => ApplyAction::Removed,
                ManifestEntry::Remove { .. } => ApplyAction::Absent,
            };
            let revision = existing.map_or(0, |e| e.mod_revision);
            match (action, entry) {
                (
                    ApplyAction::Created | ApplyAction::Changed,
                    ManifestEntry::Deploy { document, .. },
                ) => {
                    txn = txn
                        .require_mod_revision(&path, revision)
                        .put(&path, document.to_string());
                }
                (ApplyAction::Removed, _) => {
                    txn = txn.require_mod_revision(&path, revision).delete(&path);
                }
                _ => {}
            }
            results.push(Planned {
                deployment: entry.key().to_string(),
                action,
                file: file.clone(),
            });
        }
        let revision = if args.dry_run || txn.is_empty() {
            None
        } else {
            let outcome = store.txn(txn).await?;
            if !outcome.succeeded {
                // A key changed since it was read: plan again from what is there now.
                continue;
            }
            Some(outcome.revision)
        };
        let report = ApplyReport {
            dry_run: args.dry_run,
            revision,
            results,
        };
        return print_report(&report, output).map_err(Failure::from);
    }
    Err(Failure::problem(format!(
        "the deployments kept changing while being applied ({ATTEMPTS} attempts); nothing was written, try again"
    )))
}

/// Whether the stored value is this document (same fields and values, whatever the spacing).
fn holds(existing: &Entry, document: &Value) -> bool {
    serde_json::from_slice::<Value>(&existing.value).is_ok_and(|stored| &stored == document)
}

fn print_report(report: &ApplyReport, output: OutputFormat) -> std::io::Result<()> {
    if output != OutputFormat::Table {
        return print_structured(output, report);
    }
    let suffix = if report.dry_run { " (dry run)" } else { "" };
    for result in &report.results {
        println!("{} {}{suffix}", result.deployment, result.action.as_str());
    }
    Ok(())
}
