//! `theseus rollout pause|resume SERVICE/NAME`: sets or clears the spec's `paused` field in
//! `/desired`, a user's write like `theseus apply`.
//!
//! What it promises: only `paused` changes; the write requires the key to be at the revision
//! read, and is made again from a fresh read if someone changed the key in between, so no
//! concurrent edit is lost. A deployment already in the asked state is left alone.

use clap::Args;
use serde_json::Value;
use theseus::store::Txn;

use super::super::{EtcdArgs, Failure};
use super::{deployment_key, desired_entry};

/// How often the write is made again when the key changes between reading and writing.
const ATTEMPTS: usize = 5;

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
    let desired_key = store.layout().desired(&key);
    let verb = if paused { "paused" } else { "resumed" };
    for _ in 0..ATTEMPTS {
        let current = desired_entry(&store, &key).await?;
        let Ok(Value::Object(mut spec)) = serde_json::from_slice::<Value>(&current.value) else {
            return Err(Failure::problem(format!(
                "{desired_key} does not hold a JSON object; fix the spec (`theseus get {key}`) \
                 before pausing or resuming it"
            )));
        };
        let was_paused = spec.get("paused") == Some(&Value::Bool(true));
        if was_paused == paused {
            println!("{key}: already {verb}; nothing was written");
            return Ok(());
        }
        if paused {
            spec.insert("paused".to_owned(), Value::Bool(true));
        } else {
            spec.remove("paused");
        }
        let outcome = store
            .txn(
                Txn::new()
                    .require_mod_revision(&desired_key, current.mod_revision)
                    .put(&desired_key, Value::Object(spec).to_string()),
            )
            .await?;
        if outcome.succeeded {
            println!("{key}: {verb} (revision {})", outcome.revision);
            return Ok(());
        }
    }
    Err(Failure::problem(format!(
        "{desired_key} kept changing ({ATTEMPTS} attempts); nothing was written, try again"
    )))
}
