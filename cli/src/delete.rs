//! `theseus delete SERVICE/NAME...`: removes deployments from `/desired`, all or none.
//!
//! The controller then deletes the apps it owns; their status stays until it has.

use clap::Args;

use super::{EtcdArgs, Failure};
use theseus::api::DeploymentKey;
use theseus::store::Txn;

/// Arguments of `theseus delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Deployments to delete, as `SERVICE/NAME`.
    #[arg(required = true, num_args = 1..)]
    pub deployments: Vec<String>,
}

/// Runs `theseus delete`.
pub async fn run(args: DeleteArgs, etcd: &EtcdArgs) -> Result<(), Failure> {
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for text in &args.deployments {
        match text.parse::<DeploymentKey>() {
            Ok(key) => keys.push(key),
            Err(error) => problems.push(error.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Problems(problems));
    }
    let store = etcd.connect().await?;
    let layout = store.layout().clone();
    let mut txn = Txn::new();
    for key in &keys {
        let path = layout.desired(key);
        match store.get(&path).await? {
            Some(entry) => {
                txn = txn
                    .require_mod_revision(&path, entry.mod_revision)
                    .delete(&path)
            }
            None => problems.push(format!("no deployment {key}: {path} does not exist")),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Problems(problems));
    }
    let outcome = store.txn(txn).await?;
    if !outcome.succeeded {
        return Err(Failure::problem(
            "a deployment changed while being deleted; nothing was deleted, try again",
        ));
    }
    for key in &keys {
        println!("{key} deleted");
    }
    Ok(())
}
