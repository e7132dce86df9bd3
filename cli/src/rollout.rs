//! `theseus rollout ...`: follow a rollout, list a deployment's revisions, go back to one,
//! pause and resume.
//!
//! - `status SERVICE/NAME [--timeout D]` (here): follows a deployment's status until the
//!   controller reports it running the current spec;
//! - [`history`]: the revisions the controller recorded;
//! - [`undo`]: an earlier revision's spec written back to `/desired`;
//! - [`pause`]: `paused` set or cleared in the spec.
//!
//! `status` watches the `/desired` key and the status key (no polling), prints a line each time
//! the progress changes, and exits 0 once the status is `Running` at the desired key's current
//! revision; non-zero, with the `Progressing` reason, when that revision is `Invalid` or
//! `Failed` (a rolled-back revision is `Failed` with the reason `RolledBack`), when the
//! deployment is deleted, or when the timeout passes first.

use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use futures::stream::select;

use super::output::OutputFormat;
use super::{EtcdArgs, Failure};
use theseus::api::{ConditionKind, DeploymentKey, DeploymentStatus, Phase};
use theseus::store::{Entry, WatchEvent};

pub(crate) mod history;
mod pause;
mod undo;

/// Arguments of `theseus rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Follow a deployment until it runs its current spec (exit 0), or is invalid, fails, is
    /// rolled back or times out (non-zero).
    Status(StatusArgs),
    /// List the revisions the controller recorded for a deployment, with their outcome.
    History(history::HistoryArgs),
    /// Write an earlier revision's spec back to /desired, as a new revision.
    Undo(undo::UndoArgs),
    /// Set `paused`: the controller pushes no change of the deployment to Marathon.
    Pause(pause::PauseArgs),
    /// Clear `paused`: changes that waited go to Marathon.
    Resume(pause::PauseArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The deployment, as `SERVICE/NAME`.
    deployment: String,
    /// Give up after this long (e.g. `90s`, `5m`); wait indefinitely when omitted.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

/// Where a rollout stands, judged from the desired key and the status.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Not there yet; the line says how far it got.
    Progressing(String),
    /// Running the current revision.
    RolledOut(String),
    /// It will not get there without a change.
    Failed(String),
}

/// Runs `theseus rollout`.
pub async fn run(args: RolloutArgs, etcd: &EtcdArgs, output: OutputFormat) -> Result<(), Failure> {
    match args.command {
        RolloutCommand::Status(args) => status(args, etcd).await,
        RolloutCommand::History(args) => history::run(args, etcd, output).await,
        RolloutCommand::Undo(args) => undo::run(args, etcd).await,
        RolloutCommand::Pause(args) => pause::run(args, etcd, true).await,
        RolloutCommand::Resume(args) => pause::run(args, etcd, false).await,
    }
}

/// The deployment a `SERVICE/NAME` argument names.
pub(crate) fn deployment_key(text: &str) -> Result<DeploymentKey, Failure> {
    text.parse()
        .map_err(|e: theseus::api::KeyError| Failure::problem(e.to_string()))
}

async fn status(args: StatusArgs, etcd: &EtcdArgs) -> Result<(), Failure> {
    let key = deployment_key(&args.deployment)?;
    let store = etcd.connect().await?;
    let layout = store.layout().clone();
    let desired_key = layout.desired(&key);
    let status_key = layout.status(&key);

    // Watching a key as a prefix also sees longer keys (`/desired/a/b2`); those are skipped.
    let desired_events = store.watch(&desired_key).map(|e| (true, e));
    let status_events = store.watch(&status_key).map(|e| (false, e));
    let mut events = select(desired_events, status_events);

    let mut desired: Option<Entry> = None;
    let mut status: Option<DeploymentStatus> = None;
    let mut synced = (false, false);
    let mut last_line = String::new();
    let follow = async {
        while let Some((is_desired, event)) = events.next().await {
            let (wanted, synced_flag) = if is_desired {
                (&desired_key, &mut synced.0)
            } else {
                (&status_key, &mut synced.1)
            };
            match event.map_err(Failure::from)? {
                WatchEvent::Synced { .. } => *synced_flag = true,
                WatchEvent::Put { entry, .. } if &entry.key == wanted => {
                    if is_desired {
                        desired = Some(entry);
                    } else {
                        // A status that does not decode is reported, then waited past.
                        status = match entry.json::<DeploymentStatus>() {
                            Ok(status) => Some(status),
                            Err(error) => {
                                eprintln!("warning: {error}");
                                None
                            }
                        };
                    }
                }
                WatchEvent::Delete { key, .. } if &key == wanted => {
                    if is_desired {
                        desired = None;
                    } else {
                        status = None;
                    }
                }
                _ => continue,
            }
            if !(synced.0 && synced.1) {
                continue;
            }
            match judge(&key, &desired_key, desired.as_ref(), status.as_ref()) {
                Verdict::Progressing(line) => {
                    if line != last_line {
                        println!("{line}");
                        last_line = line;
                    }
                }
                Verdict::RolledOut(line) => {
                    println!("{line}");
                    return Ok(());
                }
                Verdict::Failed(line) => return Err(Failure::problem(line)),
            }
        }
        Err(Failure::problem(format!(
            "the watch of {key} ended unexpectedly"
        )))
    };
    let Some(timeout) = args.timeout else {
        return follow.await;
    };
    let outcome = tokio::time::timeout(timeout, follow).await;
    match outcome {
        Ok(result) => result,
        Err(_) => Err(Failure::problem(format!(
            "timed out after {} waiting for {key} to roll out{}",
            humantime::format_duration(timeout),
            if last_line.is_empty() {
                String::new()
            } else {
                format!("; last seen: {last_line}")
            }
        ))),
    }
}

/// How the rollout of `key` stands.
fn judge(
    key: &DeploymentKey,
    desired_key: &str,
    desired: Option<&Entry>,
    status: Option<&DeploymentStatus>,
) -> Verdict {
    let Some(desired) = desired else {
        return Verdict::Failed(format!(
            "no deployment {key}: {desired_key} does not exist (deleted?)"
        ));
    };
    let revision = desired.mod_revision;
    let Some(status) = status else {
        return Verdict::Progressing(format!(
            "{key}: waiting for the controller to act on revision {revision}"
        ));
    };
    if status.observed_revision != revision {
        return Verdict::Progressing(format!(
            "{key}: waiting for the controller to act on revision {revision} (it reports {} for revision {})",
            status.phase, status.observed_revision
        ));
    }
    let counts = status.instances;
    let reason = |kind: ConditionKind| {
        status
            .condition(kind)
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "no reason given".to_owned())
    };
    match status.phase {
        Phase::Running => Verdict::RolledOut(format!(
            "{key}: revision {revision} rolled out: {} of {} instances running",
            counts.running, counts.desired
        )),
        Phase::Invalid => Verdict::Failed(format!(
            "{key}: revision {revision} is invalid: {}",
            reason(ConditionKind::Valid)
        )),
        Phase::Failed => Verdict::Failed(format!(
            "{key}: revision {revision} failed ({}): {}",
            status
                .condition(ConditionKind::Progressing)
                .map_or("no reason given", |c| c.reason.as_str()),
            reason(ConditionKind::Progressing)
        )),
        phase => {
            let blocked: Vec<String> = status
                .conditions
                .iter()
                .filter(|c| !c.status && !c.is_about(ConditionKind::Available))
                .map(|c| format!("{}: {}", c.reason, c.message))
                .collect();
            let mut line = format!(
                "{key}: {phase}: {} of {} instances running, {} healthy, {} staged",
                counts.running, counts.desired, counts.healthy, counts.staged
            );
            if !blocked.is_empty() {
                line.push_str(&format!(" ({})", blocked.join("; ")));
            }
            // Tasks that keep failing are the usual reason a rollout does not finish.
            if counts.running < counts.desired
                && let Some(failure) = &status.last_task_failure
            {
                line.push_str(&format!(
                    "; last task failure: {} on {}: {}",
                    failure.state, failure.host, failure.message
                ));
            }
            Verdict::Progressing(line)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use theseus::api::{Condition, InstanceCounts, Reason};

    fn key() -> DeploymentKey {
        "web/dev".parse().unwrap()
    }

    fn desired(revision: i64) -> Entry {
        Entry {
            key: "/desired/web/dev".into(),
            value: b"{}".to_vec(),
            create_revision: 1,
            mod_revision: revision,
            version: 1,
            lease: 0,
        }
    }

    fn status(revision: i64, phase: Phase, conditions: Vec<Condition>) -> DeploymentStatus {
        DeploymentStatus {
            observed_revision: revision,
            phase,
            conditions,
            instances: InstanceCounts {
                desired: 3,
                running: 1,
                ..Default::default()
            },
            app_id: Some("/web/dev".into()),
            app_version: None,
            deployment_ids: vec![],
            last_task_failure: None,
            revision_started_at: None,
            revision_running_at: None,
            revision_task_failures: 0,
            updated_at: Utc::now(),
        }
    }

    fn judged(desired_revision: Option<i64>, status: Option<DeploymentStatus>) -> Verdict {
        judge(
            &key(),
            "/desired/web/dev",
            desired_revision.map(desired).as_ref(),
            status.as_ref(),
        )
    }

    #[test]
    fn only_running_at_the_current_revision_is_rolled_out() {
        assert!(matches!(
            judged(Some(5), Some(status(5, Phase::Running, vec![]))),
            Verdict::RolledOut(_)
        ));
        assert!(matches!(
            judged(Some(6), Some(status(5, Phase::Running, vec![]))),
            Verdict::Progressing(line) if line.contains("revision 6")
        ));
        assert!(matches!(judged(Some(6), None), Verdict::Progressing(_)));
    }

    #[test]
    fn invalid_and_failed_at_the_current_revision_end_with_the_reason() {
        let invalid = status(
            5,
            Phase::Invalid,
            vec![Condition::fails(
                ConditionKind::Valid,
                Reason::SpecInvalid,
                "/cpus: must be greater than 0",
            )],
        );
        assert_eq!(
            judged(Some(5), Some(invalid.clone())),
            Verdict::Failed("web/dev: revision 5 is invalid: /cpus: must be greater than 0".into())
        );
        assert!(matches!(
            judged(Some(6), Some(invalid)),
            Verdict::Progressing(_)
        ));
        let failed = status(
            5,
            Phase::Failed,
            vec![Condition::fails(
                ConditionKind::Progressing,
                Reason::AppNotOwned,
                "not ours",
            )],
        );
        assert!(matches!(
            judged(Some(5), Some(failed)),
            Verdict::Failed(line) if line.ends_with("failed (AppNotOwned): not ours")
        ));
        assert!(matches!(judged(None, None), Verdict::Failed(_)));
    }

    #[test]
    fn progress_names_counts_and_what_blocks() {
        let waiting = status(
            5,
            Phase::Deploying,
            vec![
                Condition::fails(
                    ConditionKind::Progressing,
                    Reason::WaitingForDeployment,
                    "locked by d1",
                ),
                Condition::fails(
                    ConditionKind::Available,
                    Reason::InstancesUnavailable,
                    "1 of 3",
                ),
            ],
        );
        assert_eq!(
            judged(Some(5), Some(waiting)),
            Verdict::Progressing(
                "web/dev: Deploying: 1 of 3 instances running, 0 healthy, 0 staged \
                 (WaitingForDeployment: locked by d1)"
                    .into()
            )
        );
    }

    #[test]
    fn progress_says_why_tasks_keep_failing() {
        let mut failing = status(5, Phase::Deploying, vec![]);
        failing.last_task_failure = Some(theseus::api::LastTaskFailure {
            task_id: "web_dev.instance-1._app.3".into(),
            state: "TASK_FAILED".into(),
            message: "image registry.local/web needs a Docker engine".into(),
            host: "127.0.0.12".into(),
            timestamp: "2026-11-25T10:00:00.000Z".into(),
        });
        assert!(matches!(
            judged(Some(5), Some(failing)),
            Verdict::Progressing(line) if line.ends_with(
                "; last task failure: TASK_FAILED on 127.0.0.12: image registry.local/web needs a Docker engine"
            )
        ));
    }
}
