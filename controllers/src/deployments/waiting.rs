//! Why a revision being deployed waits, in the spec's words: instances no agent can take
//! (`WaitingForResources`, from Marathon's launch queue), tasks that run but fail a health
//! check (`HealthChecksFailing`, from their health results), and, for a revision that crash
//! loops, when Marathon launches its next task.
//!
//! What it promises: every function here is pure, and a message carries no count that grows
//! while nothing changes (offers declined so far, times), so a deployment that keeps waiting
//! for the same reason is not rewritten at every look. A queue entry or task whose shape is not
//! what Marathon documents gives no message (the status stays `Deploying`); nothing here ever
//! leads to a change of the app.
//!
//! What it does not do: read Marathon (the reconcile reads the queue, through
//! [`super::launch_queue`], only when [`unlaunched`] says instances wait).

use std::time::Duration;

use theseus::api::{
    Condition, ConditionKind, DeploymentSpec, DeploymentStatus, HealthCheckSpec, HealthProtocol,
};
use theseus::marathon::queue::{NoMatchReason, QueueEntry};
use theseus::marathon::{App, Task, TaskState};

/// Marathon's default launch backoff, for an app that does not say: 1 s, growing by 1.15 per
/// failure, at most an hour.
const DEFAULT_BACKOFF_SECONDS: f64 = 1.0;
const DEFAULT_BACKOFF_FACTOR: f64 = 1.15;
const DEFAULT_MAX_LAUNCH_DELAY_SECONDS: f64 = 3600.0;

/// The instances of the app's current version that have no task yet (or whose task ended):
/// those Marathon still has to launch. Zero when the app's tasks are not known.
pub fn unlaunched(app: &App) -> u32 {
    let Some(tasks) = &app.tasks else {
        return 0;
    };
    let launched = tasks
        .iter()
        .filter(|task| task.version.is_some() && task.version == app.version)
        .filter(|task| !task.state.is_terminal())
        .count();
    app.instances
        .unwrap_or_default()
        .saturating_sub(u32::try_from(launched).unwrap_or(u32::MAX))
}

/// The `WaitingForResources` message for `app` whose queue entry is `entry`: which instances
/// cannot be placed and what is short. `None` when the entry declined no offer yet, or its
/// launches are held back by the launch delay (a crash loop, not a lack of resources).
pub fn unplaced(app: &App, entry: &QueueEntry) -> Option<String> {
    if entry
        .delay
        .as_ref()
        .is_some_and(|delay| !delay.overdue && delay.time_left_seconds > 0)
    {
        return None;
    }
    let summary = entry.processed_offers_summary.as_ref()?;
    let declined = summary.declined();
    if declined.is_empty() {
        return None;
    }
    let per_agent = summary.last_offers().filter(|_| {
        summary
            .reject_summary_last_offers
            .iter()
            .flatten()
            .any(|step| step.declined > 0)
    });
    let short: Vec<String> = declined
        .iter()
        .map(|step| {
            let what = match &step.reason {
                NoMatchReason::UnfulfilledConstraint => "no agent meets its constraints".to_owned(),
                reason @ (NoMatchReason::InsufficientCpus
                | NoMatchReason::InsufficientMemory
                | NoMatchReason::InsufficientDisk
                | NoMatchReason::InsufficientGpus
                | NoMatchReason::InsufficientPorts) => {
                    format!("not enough {}", reason.shortage())
                }
                reason => format!("agents need {}", reason.shortage()),
            };
            match per_agent {
                Some(agents) => format!(
                    "{what} ({}: {} of {agents} agents)",
                    step.reason, step.declined
                ),
                None => format!("{what} ({})", step.reason),
            }
        })
        .collect();
    let mut needs = format!(
        "cpus {}, mem {} MiB, disk {} MiB",
        app.cpus.unwrap_or_default(),
        app.mem.unwrap_or_default(),
        app.disk.unwrap_or_default()
    );
    let ports = app
        .port_definitions
        .as_ref()
        .map(Vec::len)
        .or_else(|| {
            app.container
                .as_ref()
                .and_then(|c| c.port_mappings.as_ref())
                .map(Vec::len)
        })
        .unwrap_or_default();
    if ports > 0 {
        needs.push_str(&format!(", {ports} host port(s)"));
    }
    if let Some(constraints) = app.constraints.as_ref().filter(|c| !c.is_empty()) {
        let constraints: Vec<String> = constraints
            .iter()
            .map(|c| serde_json::to_string(c).unwrap_or_default())
            .collect();
        needs.push_str(&format!(", constraints {}", constraints.join(", ")));
    }
    Some(format!(
        "{} of {} instance(s) of Marathon app `{}` cannot be placed: {}; each needs {needs}",
        entry.count,
        app.instances.unwrap_or_default(),
        app.id,
        short.join(", ")
    ))
}

/// A check as the spec names it: protocol, port name, path or command.
fn named(check: &HealthCheckSpec) -> String {
    let mut name = check.protocol.as_str().to_owned();
    if let Some(port) = &check.port {
        name.push_str(&format!(" port `{port}`"));
    }
    if check.protocol.is_http() {
        name.push_str(&format!(" path `{}`", check.path.as_deref().unwrap_or("/")));
    }
    if check.protocol == HealthProtocol::Command
        && let Some(command) = &check.command
    {
        name.push_str(&format!(" command `{command}`"));
    }
    name
}

/// The `HealthChecksFailing` message for `app`, whose spec is `spec`: the check its running
/// tasks of the current version fail and the last result, and whether that result lacks the
/// details of a full read (a health event gives only the verdict). `None` when no such task
/// fails a check.
pub fn failing_checks(spec: &DeploymentSpec, app: &App) -> Option<(String, bool)> {
    if spec.health_checks.is_empty() {
        return None;
    }
    let mut running: Vec<&Task> = app
        .tasks
        .iter()
        .flatten()
        .filter(|task| task.version.is_some() && task.version == app.version)
        .filter(|task| task.state == TaskState::Running)
        .collect();
    running.sort_by(|a, b| a.id.cmp(&b.id));
    let failing: Vec<&Task> = running
        .iter()
        .copied()
        .filter(|task| task.healthy() == Some(false))
        .collect();
    let task = failing.first()?;
    let results = task.health_check_results.as_deref().unwrap_or_default();
    let (index, result) = results.iter().enumerate().find(|(_, r)| !r.alive)?;
    // Marathon lists one result per check, in the app's order, which is the spec's; a verdict
    // from an event is one result for all of them.
    let check = if results.len() == spec.health_checks.len() {
        format!(
            "health check {} ({})",
            index + 1,
            named(&spec.health_checks[index])
        )
    } else if spec.health_checks.len() == 1 {
        format!("health check 1 ({})", named(&spec.health_checks[0]))
    } else {
        let all: Vec<String> = spec.health_checks.iter().map(named).collect();
        format!("one of its health checks ({})", all.join("; "))
    };
    let mut last = "not alive".to_owned();
    if let Some(failures) = result.consecutive_failures {
        last.push_str(&format!(", {failures} consecutive failure(s)"));
    }
    if let Some(cause) = &result.last_failure_cause {
        last.push_str(&format!(", last failure cause: {cause}"));
    }
    let message = format!(
        "{} of {} running task(s) of version {} fail {check}; last result of task `{}` on {}: \
         {last}",
        failing.len(),
        running.len(),
        app.version
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        task.id,
        task.host,
    );
    Some((message, result.consecutive_failures.is_none()))
}

/// When Marathon launches the app's next task, for a revision whose tasks failed `failures`
/// times: the queue's launch delay if it holds launches back, else the app's backoff after
/// that many failures.
pub fn next_launch(app: &App, entry: Option<&QueueEntry>, failures: u32) -> String {
    if let Some(delay) = entry
        .and_then(|entry| entry.delay.as_ref())
        .filter(|delay| !delay.overdue && delay.time_left_seconds > 0)
    {
        return format!(
            "next launch in {} s (Marathon's launch delay)",
            delay.time_left_seconds
        );
    }
    let base = app
        .backoff_seconds
        .map_or(DEFAULT_BACKOFF_SECONDS, f64::from);
    let factor = app.backoff_factor.unwrap_or(DEFAULT_BACKOFF_FACTOR);
    let max = app
        .max_launch_delay_seconds
        .map_or(DEFAULT_MAX_LAUNCH_DELAY_SECONDS, f64::from);
    let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
    let delay = Duration::from_secs_f64((base * factor.powi(exponent)).clamp(0.0, max));
    format!(
        "next launch after a delay of {:.1} s (backoff_seconds {base} × backoff_factor {factor} \
         per failure, at most {max} s)",
        delay.as_secs_f64()
    )
}

/// Replaces the status's `Progressing` condition with `condition`.
pub fn set_progressing(status: &mut DeploymentStatus, condition: Condition) {
    match status
        .conditions
        .iter_mut()
        .find(|existing| existing.is_about(ConditionKind::Progressing))
    {
        Some(existing) => *existing = condition,
        None => status.conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use theseus::api::parse_spec;

    use super::*;

    fn app(value: serde_json::Value) -> App {
        let mut base = json!({"id": "/web/dev", "instances": 2, "version": "v2",
            "cpus": 500.0, "mem": 512.0, "disk": 0.0, "tasks": []});
        for (k, v) in value.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn task(id: &str, version: &str, state: &str, health: serde_json::Value) -> serde_json::Value {
        json!({"id": id, "appId": "/web/dev", "host": "127.0.0.11", "state": state,
               "version": version, "healthCheckResults": health})
    }

    fn entry(value: serde_json::Value) -> QueueEntry {
        serde_json::from_value(value).unwrap()
    }

    fn funnel(declined: &[(&str, u64)], offers: u64) -> serde_json::Value {
        let mut reaching = offers;
        let steps: Vec<serde_json::Value> = [
            "UnfulfilledRole",
            "UnfulfilledConstraint",
            "InsufficientCpus",
            "InsufficientMemory",
        ]
        .iter()
        .map(|reason| {
            let count = declined
                .iter()
                .find(|(r, _)| r == reason)
                .map_or(0, |(_, c)| *c);
            let step = json!({"reason": reason, "declined": count, "processed": reaching});
            reaching -= count;
            step
        })
        .collect();
        json!(steps)
    }

    #[test]
    fn instances_of_the_new_version_without_a_live_task_are_unlaunched() {
        let app = app(json!({"tasks": [
            task("old", "v1", "TASK_RUNNING", json!([])),
            task("new", "v2", "TASK_STAGING", json!([])),
            task("gone", "v2", "TASK_FAILED", json!([])),
        ]}));
        assert_eq!(unlaunched(&app), 1);
        let unknown: App =
            serde_json::from_value(json!({"id": "/web/dev", "instances": 2})).unwrap();
        assert_eq!(
            unlaunched(&unknown),
            0,
            "tasks not embedded: nothing to say"
        );
    }

    #[test]
    fn an_unplaced_instance_names_what_is_short_and_stays_the_same_as_offers_grow() {
        let app = app(json!({}));
        let queued = |seen: u64| {
            entry(json!({"app": {"id": "/web/dev"}, "count": 2,
                "delay": {"timeLeftSeconds": 0, "overdue": true},
                "processedOffersSummary": {"processedOffersCount": seen, "unusedOffersCount": seen,
                    "rejectSummaryLastOffers": funnel(&[("InsufficientCpus", 3)], 3),
                    "rejectSummaryLaunchAttempt": funnel(&[("InsufficientCpus", seen)], seen)}}))
        };
        let message = unplaced(&app, &queued(3)).unwrap();
        for part in [
            "2 of 2 instance(s)",
            "`/web/dev`",
            "not enough cpus (InsufficientCpus: 3 of 3 agents)",
            "cpus 500",
        ] {
            assert!(message.contains(part), "{part} missing from {message}");
        }
        assert_eq!(unplaced(&app, &queued(300)), Some(message));
    }

    #[test]
    fn a_constraint_is_named_and_a_queue_without_declines_says_nothing() {
        let app = app(json!({"cpus": 0.1, "constraints": [["hostname", "IS", "10.9.9.9"]]}));
        let constrained = entry(json!({"app": {"id": "/web/dev"}, "count": 1,
            "processedOffersSummary": {"processedOffersCount": 3, "unusedOffersCount": 3,
                "rejectSummaryLaunchAttempt": funnel(&[("UnfulfilledConstraint", 3)], 3)}}));
        let message = unplaced(&app, &constrained).unwrap();
        assert!(
            message.contains("no agent meets its constraints (UnfulfilledConstraint)"),
            "{message}"
        );
        assert!(
            message.contains(r#"["hostname","IS","10.9.9.9"]"#),
            "{message}"
        );
        let fresh = entry(json!({"app": {"id": "/web/dev"}, "count": 1,
            "processedOffersSummary": {"processedOffersCount": 0, "unusedOffersCount": 0}}));
        assert_eq!(unplaced(&app, &fresh), None);
        let held_back = entry(json!({"app": {"id": "/web/dev"}, "count": 1,
            "delay": {"timeLeftSeconds": 30, "overdue": false},
            "processedOffersSummary": {"processedOffersCount": 3, "unusedOffersCount": 3,
                "rejectSummaryLaunchAttempt": funnel(&[("InsufficientCpus", 3)], 3)}}));
        assert_eq!(unplaced(&app, &held_back), None, "a crash loop's backoff");
    }

    #[test]
    fn a_failing_check_is_named_as_the_spec_names_it_with_its_last_result() {
        let spec = parse_spec(
            br#"{"cmd": "serve", "ports": {"http": 8080}, "health_checks": [
                {"port": "http", "path": "/health"}, {"protocol": "COMMAND", "command": "test -f ok"}]}"#,
        )
        .unwrap();
        let deployed = app(json!({"tasks": [
            task("b", "v2", "TASK_RUNNING", json!([{"alive": true, "consecutiveFailures": 0},
                {"alive": false, "consecutiveFailures": 4, "lastFailureCause": "Command exited with exit status 1"}])),
            task("a", "v2", "TASK_RUNNING", json!([{"alive": true, "consecutiveFailures": 0},
                {"alive": true, "consecutiveFailures": 0}])),
            task("old", "v1", "TASK_RUNNING", json!([{"alive": false}])),
        ]}));
        let (message, lacking) = failing_checks(&spec, &deployed).unwrap();
        assert!(!lacking);
        for part in [
            "1 of 2 running task(s) of version v2",
            "health check 2 (COMMAND command `test -f ok`)",
            "task `b`",
            "4 consecutive failure(s)",
            "last failure cause: Command exited with exit status 1",
        ] {
            assert!(message.contains(part), "{part} missing from {message}");
        }

        let verdict_only = app_with_verdict();
        let (message, lacking) = failing_checks(&spec, &verdict_only).unwrap();
        assert!(lacking, "a verdict lacks the details");
        assert!(
            message.contains("one of its health checks (HTTP port `http` path `/health`; COMMAND"),
            "{message}"
        );
        let healthy =
            app(json!({"tasks": [task("a", "v2", "TASK_RUNNING", json!([{"alive": true}]))]}));
        assert_eq!(failing_checks(&spec, &healthy), None);
    }

    fn app_with_verdict() -> App {
        app(json!({"tasks": [task("a", "v2", "TASK_RUNNING", json!([{"alive": false}]))]}))
    }

    #[test]
    fn the_next_launch_is_the_queues_delay_or_the_apps_backoff() {
        let app =
            app(json!({"backoffSeconds": 2, "backoffFactor": 2.0, "maxLaunchDelaySeconds": 10}));
        let held = entry(json!({"app": {"id": "/web/dev"}, "count": 1,
            "delay": {"timeLeftSeconds": 7, "overdue": false}}));
        assert_eq!(
            next_launch(&app, Some(&held), 3),
            "next launch in 7 s (Marathon's launch delay)"
        );
        assert!(next_launch(&app, None, 3).starts_with("next launch after a delay of 8.0 s"));
        assert!(next_launch(&app, None, 9).starts_with("next launch after a delay of 10.0 s"));
        let defaults: App = serde_json::from_value(json!({"id": "/web/dev"})).unwrap();
        assert!(next_launch(&defaults, None, 1).starts_with("next launch after a delay of 1.0 s"));
    }
}
