//! `theseus rollout pause|resume SERVICE/NAME`: sets or clears the spec's `paused` field in
//! `/desired`, a user's write like `theseus apply`.
//!
//! What it promises (through [`theseus::edit`], the code the dashboard's pause and resume
//! use too): only `paused` changes; the write requires the key to be at the revision read,
//! and is made again from a fresh read if someone changed the key in between, so no
//! concurrent edit is lost. A deployment already in the asked state is left alone.

use clap::Args;
use theseus::edit::Edit;

use super::super::scale::edit_current;
use super::super::{EtcdArgs, Failure};
use super::deployment_key;

/// Arguments of `theseus rollout pause` and `resume`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The deployment, as `SERVICE/NAME`.
    deployment: String,
}

/// Runs `theseus rollout pause` (`paused`) or `resume` (not `paused`).
pub async fn run(args: PauseArgs, etcd: &EtcdArgs, paused: bool) -> Result<(), Failure> {
    let key = deployment_key(&args.deployment)?;
    let store = etcd.connect().await?;
    let edit = if paused { Edit::Pause } else { Edit::Resume };
    edit_current(&store, &key, &edit).await
}
