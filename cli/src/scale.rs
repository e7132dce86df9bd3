//! `theseus scale SERVICE/NAME --instances N`: sets the spec's `instances` in `/desired`, a
//! user's write like `theseus apply`; and the write from a fresh read that `scale`, `rollout
//! pause` and `rollout resume` share.
//!
//! What it promises (through [`theseus::edit`], the code the dashboard's actions use too):
//! only the edited field changes; the write requires the key to be at the revision read, and
//! is made again from a fresh read if someone changed the key in between, so no concurrent
//! edit is lost. A deployment already as asked is left alone.

use clap::Args;
use theseus::api::DeploymentKey;
use theseus::edit::{self, Edit, EditError, Edited, Expected};
use theseus::store::Store;

use super::{EtcdArgs, Failure};

/// How often the write is made again when the key changes between reading and writing.
const ATTEMPTS: usize = 5;

/// Arguments of `theseus scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The deployment, as `SERVICE/NAME`.
    deployment: String,
    /// The instances to run (0 keeps the deployment and runs nothing).
    #[arg(long)]
    instances: u32,
}

/// Runs `theseus scale`.
pub async fn run(args: ScaleArgs, etcd: &EtcdArgs) -> Result<(), Failure> {
    let key: DeploymentKey = args
        .deployment
        .parse()
        .map_err(|e: theseus::api::KeyError| Failure::problem(e.to_string()))?;
    let store = etcd.connect().await?;
    let scale = Edit::Scale {
        instances: args.instances,
    };
    edit_current(&store, &key, &scale).await
}

/// Makes `edit` on the current spec of `key`, again from a fresh read while someone else
/// changes the key in between, and prints what it did.
pub async fn edit_current(store: &Store, key: &DeploymentKey, edit: &Edit) -> Result<(), Failure> {
    for _ in 0..ATTEMPTS {
        match edit::apply(store, key, edit, Expected::Current).await {
            Ok(Edited::Written {
                revision, change, ..
            }) => {
                println!("{key}: {change} (revision {revision})");
                return Ok(());
            }
            Ok(Edited::Unchanged { reason, .. }) => {
                println!("{key}: {reason}; nothing was written");
                return Ok(());
            }
            Err(EditError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Failure::problem(format!(
        "{} kept changing ({ATTEMPTS} attempts); nothing was written, try again",
        store.layout().desired(key)
    )))
}
