//! `theseus rollout undo SERVICE/NAME [--to-revision R]`: writes an earlier revision's spec,
//! as the controller recorded it, back to `/desired` as a new revision: a user's write, like
//! `theseus apply`, never the controller's.
//!
//! What it promises (through [`theseus::edit`], the code the dashboard's undo uses too): the
//! write is one transaction that requires the `/desired` key to be at the revision that was
//! read, so a concurrent edit is never lost (the command then fails and writes nothing). The
//! new spec's `change_cause` says it is an undo, from which revision to which. Without
//! `--to-revision` it goes back to the most recent earlier revision that ran and whose spec
//! differs from the current one.

use clap::Args;
use theseus::edit::{self, Edit, EditError, Edited, Expected};

use super::super::{EtcdArgs, Failure};
use super::deployment_key;

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
    let desired_key = store.layout().desired(&key);
    let undo = Edit::Undo {
        to_revision: args.to_revision,
    };
    match edit::apply(&store, &key, &undo, Expected::Current).await {
        Ok(Edited::Written {
            revision, change, ..
        }) => {
            println!("{key}: {change} to {desired_key} as revision {revision}");
            Ok(())
        }
        Ok(Edited::Unchanged { reason, .. }) => {
            println!("{key}: {reason}; nothing was written");
            Ok(())
        }
        Err(EditError::Conflict { expected, .. }) => Err(Failure::problem(format!(
            "{desired_key} changed since it was read at revision {expected}; nothing was \
             written, look at `theseus rollout history {key}` and run the command again"
        ))),
        Err(error) => Err(error.into()),
    }
}
