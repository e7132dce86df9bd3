//! People's edits of a deployment's spec in `/desired`: scale, pause, resume, and undo to a
//! recorded revision. `theseus scale`, `theseus rollout pause|resume|undo` and the
//! dashboard's actions all write through [`apply`].
//!
//! What it promises:
//!
//! - An edit reads the key, changes the spec, and writes it back in one transaction that
//!   requires the key's mod revision to be the one read. A concurrent write is never
//!   overwritten: the edit then fails with [`EditError::Conflict`], having written nothing.
//! - With [`Expected::Revision`] the caller says which revision it based the edit on (what a
//!   page showed); a key at any other revision is a conflict before anything is computed.
//! - Only the edited field changes (an undo writes the recorded spec, with a `change_cause`
//!   saying it is an undo); the result must be a valid spec, or nothing is written.
//! - An edit that would change nothing writes nothing ([`Edited::Unchanged`]).
//!
//! What it does not: retry. A caller that may base the edit on a fresh read (the command
//! line's pause, resume and scale) calls again after a conflict; one that showed a revision
//! to a person (the dashboard) reports the conflict instead.

use serde_json::{Map, Value};

use crate::api::{DeploymentKey, RevisionRecord, parse_spec};
use crate::store::{self, KeyPath, Revision, Store, Txn};

/// The bound the spec puts on a `change_cause`, in characters.
const CHANGE_CAUSE_LIMIT: usize = 1024;

/// One edit of a deployment's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Set `instances`.
    Scale {
        /// The instances to run.
        instances: u32,
    },
    /// Set `paused`: the controller pushes no change of the deployment to Marathon.
    Pause,
    /// Remove `paused`: changes that waited go to Marathon.
    Resume,
    /// Write a recorded revision's spec back as a new revision.
    Undo {
        /// The revision to go back to; `None`: the most recent earlier revision that ran
        /// with another spec.
        to_revision: Option<Revision>,
    },
}

impl Edit {
    /// The edit's name, as the dashboard's requests and the messages spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Edit::Scale { .. } => "scale",
            Edit::Pause => "pause",
            Edit::Resume => "resume",
            Edit::Undo { .. } => "undo",
        }
    }
}

/// Which revision of the key an edit is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Whatever the key holds when it is read.
    Current,
    /// Exactly this mod revision; any other is a conflict.
    Revision(Revision),
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// The spec was written at `revision`, replacing the one at `previous`.
    Written {
        /// The key's new mod revision.
        revision: Revision,
        /// The mod revision it replaced.
        previous: Revision,
        /// What changed, in words (`instances 2 → 3`).
        change: String,
    },
    /// The spec already was as asked; nothing was written.
    Unchanged {
        /// The key's mod revision.
        revision: Revision,
        /// Why nothing changed, in words.
        reason: String,
    },
}

/// Why an edit wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The key does not exist.
    #[error("no deployment {key}: {path} does not exist (`theseus get` lists them)")]
    NoDeployment {
        /// The deployment.
        key: DeploymentKey,
        /// Its `/desired` key.
        path: String,
    },
    /// The key changed since the revision the edit was based on.
    #[error(
        "{path} changed since revision {expected} (it is {}); nothing was written: look at \
         the current spec and try again",
        .found.map_or_else(|| "deleted".to_owned(), |found| format!("at revision {found} now"))
    )]
    Conflict {
        /// The `/desired` key.
        path: String,
        /// The revision the edit was based on.
        expected: Revision,
        /// The key's mod revision now (`None`: deleted).
        found: Option<Revision>,
    },
    /// The key does not hold a JSON object, so no field of it can be changed.
    #[error("{path} does not hold a JSON object; fix the spec (`theseus get {key}`) first")]
    NotAnObject {
        /// The deployment.
        key: DeploymentKey,
        /// Its `/desired` key.
        path: String,
    },
    /// The edited spec does not validate.
    #[error("the {edit} of {key} would not be a valid spec, nothing was written: {errors}")]
    Invalid {
        /// The deployment.
        key: DeploymentKey,
        /// The edit's name.
        edit: &'static str,
        /// Every error, with its JSON pointer.
        errors: String,
    },
    /// The revision asked for is not in the history.
    #[error(
        "revision {revision} of {key} is not in its history ({path}); `theseus rollout \
         history {key}` lists the revisions recorded"
    )]
    NotRecorded {
        /// The deployment.
        key: DeploymentKey,
        /// The revision asked for.
        revision: Revision,
        /// Its history record's key.
        path: String,
    },
    /// Undo without a revision found none to go back to.
    #[error(
        "{key} has no earlier revision that ran with another spec in its history ({path}); \
         name one with --to-revision"
    )]
    NothingToUndo {
        /// The deployment.
        key: DeploymentKey,
        /// Its history prefix.
        path: String,
    },
    /// The revision was recorded without its spec.
    #[error(
        "revision {revision} of {key} was recorded without its spec (too large to keep), so \
         it cannot be written back"
    )]
    SpecNotKept {
        /// The deployment.
        key: DeploymentKey,
        /// The revision.
        revision: Revision,
    },
    /// The revision's recorded spec does not read back as a JSON tree.
    #[error(
        "the spec recorded for revision {revision} of {key} does not read back ({error}), so \
         it cannot be written back"
    )]
    SpecUnreadable {
        /// The deployment.
        key: DeploymentKey,
        /// The revision.
        revision: Revision,
        /// Why.
        #[source]
        error: serde_json::Error,
    },
    /// etcd failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl EditError {
    /// A short, stable name of the error for logs and answers (`conflict`, `invalid`, …).
    pub fn metric_label(&self) -> &'static str {
        match self {
            EditError::NoDeployment { .. } => "no_deployment",
            EditError::Conflict { .. } => "conflict",
            EditError::NotAnObject { .. } => "not_an_object",
            EditError::Invalid { .. } => "invalid",
            EditError::NotRecorded { .. } => "not_recorded",
            EditError::NothingToUndo { .. } => "nothing_to_undo",
            EditError::SpecNotKept { .. } => "spec_not_kept",
            EditError::SpecUnreadable { .. } => "spec_unreadable",
            EditError::Store(_) => "store",
        }
    }
}

/// A deployment's recorded revisions, oldest first, and the keys of records that do not
/// decode, each with why.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The records that decode, by revision.
    pub records: Vec<RevisionRecord>,
    /// `<key>: <why>` of each record that does not decode.
    pub unreadable: Vec<String>,
}

/// Reads the revisions the controller recorded for `key`.
pub async fn history(store: &Store, key: &DeploymentKey) -> Result<History, store::Error> {
    let layout = store.layout();
    let listing = store.list(&layout.history(key)).await?;
    let mut history = History::default();
    for entry in listing.entries {
        if !matches!(layout.parse(&entry.key), Some(KeyPath::History { .. })) {
            continue;
        }
        match entry.json::<RevisionRecord>() {
            Ok(record) => history.records.push(record),
            Err(error) => history.unreadable.push(format!("{}: {error}", entry.key)),
        }
    }
    // Keys sort as text (`10` before `9`): order by revision.
    history.records.sort_by_key(|record| record.revision);
    Ok(history)
}

/// Applies `edit` to the spec of `key`, based on `expected`; see the module documentation.
pub async fn apply(
    store: &Store,
    key: &DeploymentKey,
    edit: &Edit,
    expected: Expected,
) -> Result<Edited, EditError> {
    let path = store.layout().desired(key);
    let current = store.get(&path).await?.ok_or_else(|| match expected {
        Expected::Current => EditError::NoDeployment {
            key: key.clone(),
            path: path.clone(),
        },
        Expected::Revision(expected) => EditError::Conflict {
            path: path.clone(),
            expected,
            found: None,
        },
    })?;
    if let Expected::Revision(expected) = expected
        && current.mod_revision != expected
    {
        return Err(EditError::Conflict {
            path,
            expected,
            found: Some(current.mod_revision),
        });
    }
    let Ok(Value::Object(spec)) = serde_json::from_slice::<Value>(&current.value) else {
        return Err(EditError::NotAnObject {
            key: key.clone(),
            path,
        });
    };
    let (spec, change) = match edited(store, key, edit, spec, current.mod_revision).await? {
        Rewrite::To { spec, change } => (spec, change),
        Rewrite::None { reason } => {
            return Ok(Edited::Unchanged {
                revision: current.mod_revision,
                reason,
            });
        }
    };
    let text = Value::Object(spec).to_string();
    if let Err(errors) = parse_spec(text.as_bytes()) {
        return Err(EditError::Invalid {
            key: key.clone(),
            edit: edit.name(),
            errors: errors.to_string(),
        });
    }
    let outcome = store
        .txn(
            Txn::new()
                .require_mod_revision(&path, current.mod_revision)
                .put(&path, text.clone()),
        )
        .await?;
    if outcome.succeeded {
        return Ok(Edited::Written {
            revision: outcome.revision,
            previous: current.mod_revision,
            change,
        });
    }
    // A transaction retried on another member after its first attempt was applied fails
    // its compare the second time: the key then holds exactly what this edit wrote.
    let now = store.get(&path).await?;
    match now {
        Some(now) if now.value == text.as_bytes() && now.version == current.version + 1 => {
            Ok(Edited::Written {
                revision: now.mod_revision,
                previous: current.mod_revision,
                change,
            })
        }
        now => Err(EditError::Conflict {
            path,
            expected: current.mod_revision,
            found: now.map(|now| now.mod_revision),
        }),
    }
}

/// The spec an edit rewrites to, or why the edit changes nothing.
enum Rewrite {
    To {
        spec: Map<String, Value>,
        change: String,
    },
    None {
        reason: String,
    },
}

/// `spec` (at `revision`) with `edit` made.
async fn edited(
    store: &Store,
    key: &DeploymentKey,
    edit: &Edit,
    mut spec: Map<String, Value>,
    revision: Revision,
) -> Result<Rewrite, EditError> {
    Ok(match edit {
        Edit::Scale { instances } => {
            // An absent field is the default, one instance.
            let before = spec.get("instances").cloned().unwrap_or(Value::from(1));
            if before == *instances {
                return Ok(Rewrite::None {
                    reason: format!("already asks for {instances} instances"),
                });
            }
            spec.insert("instances".to_owned(), Value::from(*instances));
            Rewrite::To {
                spec,
                change: format!("instances {before} → {instances}"),
            }
        }
        Edit::Pause | Edit::Resume => {
            let pause = *edit == Edit::Pause;
            let was_paused = spec.get("paused") == Some(&Value::Bool(true));
            if was_paused == pause {
                let state = if pause { "paused" } else { "resumed" };
                return Ok(Rewrite::None {
                    reason: format!("already {state}"),
                });
            }
            if pause {
                spec.insert("paused".to_owned(), Value::Bool(true));
            } else {
                spec.remove("paused");
            }
            let change = if pause { "paused" } else { "resumed" };
            Rewrite::To {
                spec,
                change: change.to_owned(),
            }
        }
        Edit::Undo { to_revision } => {
            let history = history(store, key).await?;
            let layout = store.layout();
            let target = match to_revision {
                Some(wanted) => history
                    .records
                    .iter()
                    .find(|record| record.revision == *wanted)
                    .ok_or_else(|| EditError::NotRecorded {
                        key: key.clone(),
                        revision: *wanted,
                        path: layout.history_record(key, *wanted),
                    })?,
                None => previous(&history.records, revision, &Value::Object(spec.clone()))
                    .ok_or_else(|| EditError::NothingToUndo {
                        key: key.clone(),
                        path: layout.history(key),
                    })?,
            };
            let kept = target
                .spec
                .to_value()
                .map_err(|error| EditError::SpecUnreadable {
                    key: key.clone(),
                    revision: target.revision,
                    error,
                })?;
            let Value::Object(mut spec) = kept else {
                return Err(EditError::SpecNotKept {
                    key: key.clone(),
                    revision: target.revision,
                });
            };
            spec.insert(
                "change_cause".to_owned(),
                Value::String(undo_cause(target, revision)),
            );
            Rewrite::To {
                spec,
                change: format!("the spec of revision {} written back", target.revision),
            }
        }
    })
}

/// The most recent revision before `current` that ran and whose spec (its change cause
/// aside) differs from `current_spec`.
pub fn previous<'a>(
    records: &'a [RevisionRecord],
    current: Revision,
    current_spec: &Value,
) -> Option<&'a RevisionRecord> {
    let without_cause = |mut spec: Value| {
        if let Some(fields) = spec.as_object_mut() {
            fields.remove("change_cause");
        }
        spec
    };
    let current_spec = without_cause(current_spec.clone());
    records.iter().rev().find(|record| {
        record.revision < current
            && record.reached_running()
            && record.spec.is_kept()
            && record
                .spec
                .to_value()
                .is_ok_and(|spec| without_cause(spec) != current_spec)
    })
}

/// The change cause of an undo from `current` to `target`.
fn undo_cause(target: &RevisionRecord, current: Revision) -> String {
    let mut cause = format!(
        "undo: back to revision {} from revision {current}",
        target.revision
    );
    if let Some(original) = &target.change_cause {
        cause.push_str(&format!(" ({original})"));
    }
    cause.chars().take(CHANGE_CAUSE_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::api::{RevisionOutcome, SpecText};

    fn record(revision: i64, cmd: &str, ran: bool) -> RevisionRecord {
        RevisionRecord {
            revision,
            spec: SpecText::from_value(
                &json!({"cmd": cmd, "change_cause": format!("r{revision}")}),
            )
            .unwrap(),
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
    fn the_change_cause_of_an_undo_says_from_where_to_where() {
        assert_eq!(
            undo_cause(&record(5, "b", true), 9),
            "undo: back to revision 5 from revision 9 (r5)"
        );
    }
}
