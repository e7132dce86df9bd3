//! The status the deployments reconciler reports for one deployment, as a pure function of
//! what it found and did.
//!
//! What it promises: [`report`] gives the same report (in the sense of
//! [`DeploymentStatus::same_report`]) for the same inputs: messages carry no timestamps, so a
//! converged deployment's status is not rewritten. Conditions come in a fixed order:
//! - `Valid`: whether the spec validates (its message lists every error with its pointer);
//! - `Progressing`: whether Marathon is getting (or has got) the app to the spec, and if not,
//!   why (`AppNotOwned`, `MarathonRejected`, `WaitingForDeployment`, `MarathonUnavailable`,
//!   `Paused`);
//! - `Available`: whether every desired instance runs (and is healthy, with health checks).
//!
//! Phases: `Invalid` for an invalid spec, `Failed` when Marathon refuses or an unowned app
//! holds the id, `Deleting` after the spec was removed, else from the app: `Deploying` while
//! Marathon deployments run, `Running` when every instance runs (healthy), `Degraded`
//! otherwise, `Pending` while there is no app.

use chrono::Utc;
use theseus::api::{
    Condition, ConditionKind, DeploymentStatus, InstanceCounts, LastTaskFailure, Phase, Reason,
    ValidationErrors,
};
use theseus::marathon::{App, AppId, DeploymentId};

/// What the reconcile found and did, beyond the app itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Situation<'a> {
    /// The spec does not validate; nothing was done.
    Invalid(&'a ValidationErrors),
    /// An app theseus does not own holds the id; nothing was done.
    NotOwned(String),
    /// Marathon refused the change (invalid definition, no permission).
    Rejected(String),
    /// The app is locked by deployments theseus did not start for this spec.
    Locked(Vec<DeploymentId>),
    /// Marathon could not be reached; the app shown is as last seen.
    MarathonUnavailable(String),
    /// The app matches the spec, or Marathon accepted the change that makes it match.
    Applied,
    /// The spec was removed and the app is being deleted; with the error that keeps Marathon
    /// from deleting it, if any.
    Deleting(Option<String>),
    /// The spec says `paused`: nothing was pushed to Marathon. `waiting` when Marathon's app
    /// differs from the spec (or does not exist), so a change waits for the resume.
    Paused {
        /// Whether a change waits.
        waiting: bool,
    },
}

/// The deployment being reported on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The `/desired` mod_revision acted on; 0 once the key is deleted.
    pub revision: i64,
    /// The app id the deployment maps to.
    pub app_id: &'a AppId,
    /// The instances the spec asks for (`None` when the spec is invalid or deleted).
    pub desired_instances: Option<u32>,
    /// Whether the spec has health checks (then `Running` needs healthy instances).
    pub health_checked: bool,
}

/// The status to write for `subject`, given the app as the snapshot has it and the
/// situation.
pub fn report(
    subject: Subject<'_>,
    app: Option<&App>,
    situation: &Situation<'_>,
) -> DeploymentStatus {
    // A foreign app's numbers are not this deployment's.
    let app = match situation {
        Situation::NotOwned(_) => None,
        _ => app,
    };
    let desired = subject
        .desired_instances
        .or_else(|| app.and_then(|a| a.instances))
        .unwrap_or_default();
    let counts = InstanceCounts {
        desired,
        staged: app.and_then(|a| a.tasks_staged).unwrap_or_default(),
        running: app.and_then(|a| a.tasks_running).unwrap_or_default(),
        healthy: app.and_then(|a| a.tasks_healthy).unwrap_or_default(),
        unhealthy: app.and_then(|a| a.tasks_unhealthy).unwrap_or_default(),
    };

    let mut conditions = Vec::new();
    match situation {
        Situation::Invalid(errors) => conditions.push(Condition::fails(
            ConditionKind::Valid,
            Reason::SpecInvalid,
            format!("the spec is not valid, nothing was changed: {errors}"),
        )),
        Situation::Deleting(_) => {}
        _ => conditions.push(Condition::holds(
            ConditionKind::Valid,
            Reason::SpecValid,
            "the spec is valid",
        )),
    }
    let progressing = match situation {
        Situation::Invalid(_) => None,
        Situation::NotOwned(message) => Some(Condition::fails(
            ConditionKind::Progressing,
            Reason::AppNotOwned,
            message.clone(),
        )),
        Situation::Rejected(message) => Some(Condition::fails(
            ConditionKind::Progressing,
            Reason::MarathonRejected,
            message.clone(),
        )),
        Situation::Locked(deployments) => Some(Condition::fails(
            ConditionKind::Progressing,
            Reason::WaitingForDeployment,
            format!(
                "Marathon app `{}` is locked by deployment(s) [{}] that theseus did not start \
                 for this spec; waiting for them to finish",
                subject.app_id,
                join(deployments)
            ),
        )),
        Situation::MarathonUnavailable(message) => Some(Condition::fails(
            ConditionKind::Progressing,
            Reason::MarathonUnavailable,
            message.clone(),
        )),
        Situation::Deleting(None) => Some(Condition::holds(
            ConditionKind::Progressing,
            Reason::Deleting,
            format!(
                "the spec was removed; deleting Marathon app `{}`",
                subject.app_id
            ),
        )),
        Situation::Deleting(Some(message)) => Some(Condition::fails(
            ConditionKind::Progressing,
            Reason::MarathonUnavailable,
            format!(
                "the spec was removed but Marathon app `{}` cannot be deleted yet: {message}",
                subject.app_id
            ),
        )),
        Situation::Paused { waiting } => Some(Condition::fails(
            ConditionKind::Progressing,
            Reason::Paused,
            if *waiting {
                format!(
                    "the deployment is paused: this revision waits, and Marathon app `{}` is \
                     left as it is until `paused` is false",
                    subject.app_id
                )
            } else {
                format!(
                    "the deployment is paused: Marathon app `{}` matches this revision, and \
                     later changes wait until `paused` is false",
                    subject.app_id
                )
            },
        )),
        Situation::Applied => Some(match app {
            None => Condition::holds(
                ConditionKind::Progressing,
                Reason::Creating,
                format!("creating Marathon app `{}`", subject.app_id),
            ),
            Some(app) if app.deployment_ids().next().is_some() => Condition::holds(
                ConditionKind::Progressing,
                Reason::Deploying,
                format!(
                    "Marathon deployment(s) [{}] in progress",
                    join(&app.deployment_ids().cloned().collect::<Vec<_>>())
                ),
            ),
            Some(app) => Condition::holds(
                ConditionKind::Progressing,
                Reason::Deployed,
                match &app.version {
                    Some(version) => format!("version {version} is deployed"),
                    None => "the app is deployed".to_owned(),
                },
            ),
        }),
    };
    conditions.extend(progressing);
    if !matches!(situation, Situation::NotOwned(_) | Situation::Deleting(_)) {
        conditions.push(available(subject, app, &counts));
    }

    let phase = match situation {
        Situation::Invalid(_) => Phase::Invalid,
        Situation::NotOwned(_) | Situation::Rejected(_) => Phase::Failed,
        Situation::Deleting(_) => Phase::Deleting,
        Situation::Locked(_) => Phase::Deploying,
        Situation::MarathonUnavailable(_) | Situation::Applied | Situation::Paused { .. } => {
            match app {
                None => Phase::Pending,
                Some(app) => phase_of(app, &counts, subject.health_checked),
            }
        }
    };

    DeploymentStatus {
        observed_revision: subject.revision,
        phase,
        conditions,
        instances: counts,
        app_id: Some(subject.app_id.to_string()),
        app_version: app
            .and_then(|a| a.version.as_ref())
            .map(ToString::to_string),
        deployment_ids: app
            .map(|a| a.deployment_ids().map(ToString::to_string).collect())
            .unwrap_or_default(),
        last_task_failure: app
            .and_then(|a| a.last_task_failure.as_ref())
            .map(|failure| LastTaskFailure {
                task_id: failure.task_id.to_string(),
                state: failure
                    .state
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                message: failure.message.clone().unwrap_or_default(),
                host: failure.host.clone().unwrap_or_default(),
                timestamp: failure
                    .timestamp
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default(),
            }),
        revision_started_at: None,
        revision_running_at: None,
        revision_task_failures: 0,
        updated_at: Utc::now(),
    }
}

fn phase_of(app: &App, counts: &InstanceCounts, health_checked: bool) -> Phase {
    if app.deployment_ids().next().is_some() {
        Phase::Deploying
    } else if counts.running >= counts.desired
        && (!health_checked || counts.healthy >= counts.desired)
    {
        Phase::Running
    } else {
        Phase::Degraded
    }
}

fn available(subject: Subject<'_>, app: Option<&App>, counts: &InstanceCounts) -> Condition {
    if app.is_none() {
        return Condition::fails(
            ConditionKind::Available,
            Reason::AppMissing,
            format!("Marathon app `{}` does not exist yet", subject.app_id),
        );
    }
    let InstanceCounts {
        desired,
        running,
        healthy,
        ..
    } = *counts;
    if subject.health_checked {
        if healthy >= desired && running >= desired {
            Condition::holds(
                ConditionKind::Available,
                Reason::AllInstancesHealthy,
                format!("{healthy} of {desired} instances running and healthy"),
            )
        } else {
            Condition::fails(
                ConditionKind::Available,
                Reason::InstancesUnavailable,
                format!("{running} of {desired} instances running, {healthy} healthy"),
            )
        }
    } else if running >= desired {
        Condition::holds(
            ConditionKind::Available,
            Reason::AllInstancesRunning,
            format!("{running} of {desired} instances running"),
        )
    } else {
        Condition::fails(
            ConditionKind::Available,
            Reason::InstancesUnavailable,
            format!("{running} of {desired} instances running"),
        )
    }
}

fn join(ids: &[DeploymentId]) -> String {
    ids.iter()
        .map(DeploymentId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use theseus::api::validate_spec;

    use super::*;

    fn app(value: serde_json::Value) -> App {
        let mut base = json!({"id": "/web/dev", "instances": 2, "version": "2026-01-01T00:00:00.000Z",
            "tasksStaged": 0, "tasksRunning": 2, "tasksHealthy": 0, "tasksUnhealthy": 0, "deployments": []});
        for (k, v) in value.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn subject(id: &AppId) -> Subject<'_> {
        Subject {
            revision: 7,
            app_id: id,
            desired_instances: Some(2),
            health_checked: false,
        }
    }

    fn id() -> AppId {
        AppId::parse("/web/dev").unwrap()
    }

    #[test]
    fn a_converged_app_is_running_and_reports_the_same_every_time() {
        let id = id();
        let app = app(json!({}));
        let first = report(subject(&id), Some(&app), &Situation::Applied);
        assert_eq!(first.phase, Phase::Running);
        assert_eq!(first.observed_revision, 7);
        assert_eq!(
            first.app_version.as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        assert_eq!(first.instances.running, 2);
        let kinds: Vec<&str> = first.conditions.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, ["Valid", "Progressing", "Available"]);
        let again = report(subject(&id), Some(&app), &Situation::Applied);
        assert!(first.same_report(&again));
    }

    #[test]
    fn deployments_in_progress_mean_deploying_and_missing_instances_degraded() {
        let id = id();
        let deploying = app(json!({"deployments": [{"id": "d-1"}], "tasksRunning": 1}));
        let status = report(subject(&id), Some(&deploying), &Situation::Applied);
        assert_eq!(status.phase, Phase::Deploying);
        assert_eq!(status.deployment_ids, ["d-1"]);
        assert_eq!(
            status.condition(ConditionKind::Progressing).unwrap().reason,
            "Deploying"
        );

        let degraded = app(json!({"tasksRunning": 1, "lastTaskFailure": {
            "appId": "/web/dev", "taskId": "web_dev.1", "host": "127.0.0.2", "message": "exited 1",
            "state": "TASK_FAILED", "timestamp": "2026-01-01T00:00:01.000Z"}}));
        let status = report(subject(&id), Some(&degraded), &Situation::Applied);
        assert_eq!(status.phase, Phase::Degraded);
        assert!(!status.condition(ConditionKind::Available).unwrap().status);
        let failure = status.last_task_failure.unwrap();
        assert_eq!(
            (failure.state.as_str(), failure.message.as_str()),
            ("TASK_FAILED", "exited 1")
        );
    }

    #[test]
    fn health_checked_deployments_run_only_when_healthy() {
        let id = id();
        let mut checked = subject(&id);
        checked.health_checked = true;
        let unhealthy = app(json!({"tasksHealthy": 1}));
        assert_eq!(
            report(checked, Some(&unhealthy), &Situation::Applied).phase,
            Phase::Degraded
        );
        let healthy = app(json!({"tasksHealthy": 2}));
        assert_eq!(
            report(checked, Some(&healthy), &Situation::Applied).phase,
            Phase::Running
        );
    }

    #[test]
    fn an_invalid_spec_lists_every_error_and_keeps_showing_the_running_app() {
        let id = id();
        let errors = validate_spec(&json!({"cpus": 0, "colour": "red"})).unwrap_err();
        let running = app(json!({}));
        let mut invalid = subject(&id);
        invalid.desired_instances = None;
        let status = report(invalid, Some(&running), &Situation::Invalid(&errors));
        assert_eq!(status.phase, Phase::Invalid);
        let valid = status.condition(ConditionKind::Valid).unwrap();
        assert!(!valid.status);
        for pointer in ["/cpus", "/colour"] {
            assert!(valid.message.contains(pointer), "{}", valid.message);
        }
        assert_eq!(status.instances.desired, 2, "the running app's count");
        assert_eq!(status.instances.running, 2);
    }

    #[test]
    fn an_unowned_app_fails_the_deployment_without_its_numbers() {
        let id = id();
        let foreign = app(json!({"tasksRunning": 5}));
        let status = report(
            subject(&id),
            Some(&foreign),
            &Situation::NotOwned("not ours".into()),
        );
        assert_eq!(status.phase, Phase::Failed);
        assert_eq!(status.instances.running, 0);
        assert_eq!(
            status.condition(ConditionKind::Progressing).unwrap().reason,
            "AppNotOwned"
        );
        assert_eq!(status.app_id.as_deref(), Some("/web/dev"));
    }

    #[test]
    fn waiting_and_unreachable_say_why_in_progressing() {
        let id = id();
        let locked = report(
            subject(&id),
            Some(&app(json!({}))),
            &Situation::Locked(vec![DeploymentId::from("other")]),
        );
        assert_eq!(locked.phase, Phase::Deploying);
        let progressing = locked.condition(ConditionKind::Progressing).unwrap();
        assert_eq!(progressing.reason, "WaitingForDeployment");
        assert!(progressing.message.contains("other"));

        let down = report(
            subject(&id),
            None,
            &Situation::MarathonUnavailable("no answer".into()),
        );
        assert_eq!(down.phase, Phase::Pending);
        assert_eq!(
            down.condition(ConditionKind::Progressing).unwrap().reason,
            "MarathonUnavailable"
        );
    }
}
