//! Deployment plans, their step-by-step progress, and the rolling-upgrade arithmetic.
//!
//! A plan is computed when a change is accepted, from the app before and after, as Marathon
//! does: a new app is `[StartApplication] → [ScaleApplication]`, a scale-only change
//! `[ScaleApplication]`, a configuration change (or restart) `[RestartApplication]`, a delete
//! `[StopApplication]`, no change no step. A [`Deployment`] moves through its steps with one
//! function, [`Deployment::advance`]: `Step(i)` → `Step(i+1)` → … → `Succeeded`, or
//! `Cancelled` when a forced change or `DELETE /v2/deployments` takes over.
//!
//! [`RestartBounds`] and [`rolling_step`] implement `upgradeStrategy`: at any time at least
//! `ceil(instances × minimumHealthCapacity)` instances are ready, and at most
//! `floor(instances × (1 + maximumOverCapacity))` exist.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::app::{AppDefinition, UpgradeStrategy};
use crate::app_id::AppId;
use crate::timestamp::Timestamp;

/// A deployment id (a UUID). Clones share the string: an app's record, the deployment index
/// and every lookup the scheduler makes hold the same id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeploymentId(Arc<str>);

impl DeploymentId {
    /// A fresh id.
    pub fn new() -> Self {
        DeploymentId(uuid::Uuid::new_v4().to_string().into())
    }

    /// Wraps an id from a request.
    pub fn from_raw(raw: &str) -> Self {
        DeploymentId(raw.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for DeploymentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Default for DeploymentId {
    fn default() -> Self {
        Self::new()
    }
}

/// What one action does to its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ActionKind {
    /// Register the app (with no instances yet).
    StartApplication,
    /// Reach the target instance count.
    ScaleApplication,
    /// Replace all instances with ones of the new configuration.
    RestartApplication,
    /// Kill all instances and remove the app.
    StopApplication,
}

/// One action of a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// What.
    pub action: ActionKind,
    /// On which app.
    pub app: AppId,
}

/// The plan of a deployment.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Deployment id.
    pub id: DeploymentId,
    /// When it was made (the new root group version).
    pub version: Timestamp,
    /// Steps, each one action here (one app per deployment).
    pub steps: Vec<Action>,
    /// The app this plan changes.
    pub app: AppId,
    /// The app before the change (`None` if it is created).
    pub original_app: Option<Arc<AppDefinition>>,
    /// The app after the change (`None` if it is deleted).
    pub target_app: Option<Arc<AppDefinition>>,
    /// The event form, built once: every event of a deployment carries the same plan.
    event_json: std::sync::OnceLock<crate::events::RawJson>,
}

impl Plan {
    /// Computes the plan from the app before and after.
    pub fn between(
        app: AppId,
        before: Option<Arc<AppDefinition>>,
        after: Option<Arc<AppDefinition>>,
        restart: bool,
        version: Timestamp,
    ) -> Plan {
        use ActionKind::*;
        let kinds: Vec<ActionKind> = match (&before, &after) {
            (None, Some(_)) => vec![StartApplication, ScaleApplication],
            (Some(_), None) => vec![StopApplication],
            (Some(b), Some(a)) if restart || b.is_upgrade(a) => vec![RestartApplication],
            (Some(b), Some(a)) if b.instances != a.instances => vec![ScaleApplication],
            _ => vec![],
        };
        Plan {
            id: DeploymentId::new(),
            version,
            steps: kinds
                .into_iter()
                .map(|action| Action {
                    action,
                    app: app.clone(),
                })
                .collect(),
            app,
            original_app: before,
            target_app: after,
            event_json: std::sync::OnceLock::new(),
        }
    }

    fn steps_json(&self) -> Value {
        Value::Array(
            self.steps
                .iter()
                .map(|a| json!({ "actions": [a] }))
                .collect(),
        )
    }

    /// The plan as deployment events carry it: `{id, steps, version}`. Marathon 1.8+ sends
    /// only this light form (the root groups before and after, `original` and `target`, went
    /// with the `api_heavy_events` feature, hard-removed in 1.8.0).
    pub fn event_json(&self) -> crate::events::RawJson {
        self.event_json
            .get_or_init(|| {
                crate::events::RawJson::of(&json!({
                    "id": self.id,
                    "steps": self.steps_json(),
                    "version": self.version,
                }))
            })
            .clone()
    }
}

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Running step `i` (0-based).
    Step(usize),
    /// All steps done.
    Succeeded,
    /// Replaced or cancelled.
    Cancelled,
}

/// A deployment and its progress.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The plan.
    pub plan: Plan,
    /// Where it is.
    pub phase: Phase,
    /// Rolling-upgrade bounds, fixed when a restart step starts.
    pub restart: Option<RestartBounds>,
}

/// What moving a deployment forward did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Step `finished` is done and step `started` begins.
    NextStep {
        /// The finished step.
        finished: usize,
        /// The step now running.
        started: usize,
    },
    /// The last step is done.
    Done {
        /// The finished step.
        finished: usize,
    },
}

impl Deployment {
    /// A deployment starting at its first step (or done at once if it has none).
    pub fn new(plan: Plan) -> Self {
        let phase = if plan.steps.is_empty() {
            Phase::Succeeded
        } else {
            Phase::Step(0)
        };
        Deployment {
            plan,
            phase,
            restart: None,
        }
    }

    /// The action now running.
    pub fn current_action(&self) -> Option<&Action> {
        match self.phase {
            Phase::Step(i) => self.plan.steps.get(i),
            _ => None,
        }
    }

    /// The state machine's one transition: the current step is complete.
    pub fn advance(&mut self) -> Option<Progress> {
        let Phase::Step(i) = self.phase else {
            return None;
        };
        self.restart = None;
        if i + 1 < self.plan.steps.len() {
            self.phase = Phase::Step(i + 1);
            Some(Progress::NextStep {
                finished: i,
                started: i + 1,
            })
        } else {
            self.phase = Phase::Succeeded;
            Some(Progress::Done { finished: i })
        }
    }

    /// Cancels the deployment (forced change or `DELETE /v2/deployments`).
    pub fn cancel(&mut self) {
        self.phase = Phase::Cancelled;
    }

    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Step(_))
    }

    /// The `/v2/deployments` entry.
    pub fn info_json(&self) -> Value {
        let current = match self.phase {
            Phase::Step(i) => i + 1,
            _ => self.plan.steps.len(),
        };
        let current_actions: Vec<Value> = self
            .current_action()
            .map(|a| {
                vec![json!({
                    "action": a.action,
                    "app": a.app,
                    "readinessCheckResults": [],
                })]
            })
            .unwrap_or_default();
        json!({
            "id": self.plan.id,
            "version": self.plan.version,
            "affectedApps": [self.plan.app],
            "affectedPods": [],
            "steps": self.plan.steps_json(),
            "currentActions": current_actions,
            "currentStep": current,
            "totalSteps": self.plan.steps.len(),
        })
    }

    /// `currentStep` of a step event.
    pub fn step_json(&self, step: usize) -> Value {
        json!({ "actions": self.plan.steps.get(step).map(|a| vec![a]).unwrap_or_default() })
    }
}

/// Bounds of a rolling upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBounds {
    /// Ready instances that must remain.
    pub min_healthy: usize,
    /// Instances (old, new and dying) that may exist.
    pub max_capacity: usize,
}

impl RestartBounds {
    /// Marathon's `computeRestartStrategy`: `old_ready` is how many old instances are ready
    /// when the step starts.
    pub fn compute(instances: u32, strategy: UpgradeStrategy, old_ready: usize) -> Self {
        let n = f64::from(instances);
        let min_healthy = (n * strategy.minimum_health_capacity - 1e-9)
            .ceil()
            .max(0.0) as usize;
        let mut max_capacity = (n * (1.0 + strategy.maximum_over_capacity) + 1e-9).floor() as usize;
        // Marathon's escape from a deadlock: with no room over capacity and no instance to
        // spare, allow one extra instance.
        if min_healthy == max_capacity && max_capacity <= old_ready {
            max_capacity += 1;
        }
        RestartBounds {
            min_healthy,
            max_capacity,
        }
    }
}

/// Counts a rolling-upgrade decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollingView {
    /// Old instances that are ready (running, healthy if checked).
    pub old_ready: usize,
    /// Old instances that are not ready.
    pub old_unready: usize,
    /// New instances, launched or waiting to be.
    pub new_total: usize,
    /// New instances that are ready.
    pub new_ready: usize,
    /// Instances being killed whose tasks have not ended yet.
    pub dying: usize,
}

/// What to do next in a rolling upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollingDecision {
    /// Old unready instances to kill.
    pub kill_old_unready: usize,
    /// Old ready instances to kill.
    pub kill_old_ready: usize,
    /// New instances to create.
    pub start_new: usize,
    /// The upgrade is complete.
    pub done: bool,
}

/// One decision of a rolling upgrade towards `target` instances.
pub fn rolling_step(bounds: RestartBounds, target: usize, v: RollingView) -> RollingDecision {
    if v.old_ready + v.old_unready == 0
        && v.dying == 0
        && v.new_ready >= target
        && v.new_total == target
    {
        return RollingDecision {
            done: true,
            ..RollingDecision::default()
        };
    }
    // Old instances that are not ready do not count towards health: replace them at once.
    let kill_old_unready = v.old_unready;
    // Ready old instances go as long as enough ready instances remain.
    let ready = v.old_ready + v.new_ready;
    let kill_old_ready = ready.saturating_sub(bounds.min_healthy).min(v.old_ready);
    // Old instances being killed still take room until their tasks end.
    let existing = v.old_ready + v.old_unready + v.new_total + v.dying;
    let start_new = target
        .saturating_sub(v.new_total)
        .min(bounds.max_capacity.saturating_sub(existing));
    RollingDecision {
        kill_old_unready,
        kill_old_ready,
        start_new,
        done: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(min: f64, over: f64) -> UpgradeStrategy {
        UpgradeStrategy {
            minimum_health_capacity: min,
            maximum_over_capacity: over,
        }
    }

    #[test]
    fn bounds_follow_marathon_including_the_extra_instance_escape() {
        assert_eq!(
            RestartBounds::compute(4, strategy(0.5, 0.25), 4),
            RestartBounds {
                min_healthy: 2,
                max_capacity: 5
            }
        );
        assert_eq!(
            RestartBounds::compute(1, strategy(1.0, 0.0), 1),
            RestartBounds {
                min_healthy: 1,
                max_capacity: 2
            }
        );
        assert_eq!(
            RestartBounds::compute(3, strategy(1.0, 1.0), 3),
            RestartBounds {
                min_healthy: 3,
                max_capacity: 6
            }
        );
    }

    /// Simulates an upgrade where every started instance becomes ready before the next decision
    /// and every kill completes, checking the bounds after every decision.
    fn simulate(n: usize, s: UpgradeStrategy) -> usize {
        let bounds = RestartBounds::compute(n as u32, s, n);
        let mut v = RollingView {
            old_ready: n,
            ..RollingView::default()
        };
        for round in 0..100 {
            let d = rolling_step(bounds, n, v);
            if d.done {
                return round;
            }
            v.old_ready -= d.kill_old_ready;
            v.old_unready -= d.kill_old_unready;
            v.dying += d.kill_old_ready + d.kill_old_unready;
            v.new_total += d.start_new;
            assert!(
                v.old_ready + v.new_ready >= bounds.min_healthy.min(n),
                "{v:?}"
            );
            assert!(
                v.old_ready + v.old_unready + v.new_total + v.dying <= bounds.max_capacity,
                "{v:?}"
            );
            // Time passes: kills finish, new instances become ready.
            v.dying = 0;
            v.new_ready = v.new_total;
        }
        panic!("upgrade did not finish");
    }

    #[test]
    fn rolling_upgrades_finish_within_their_bounds() {
        for n in [0, 1, 2, 3, 5] {
            for (min, over) in [
                (1.0, 1.0),
                (1.0, 0.0),
                (0.5, 0.0),
                (0.0, 0.0),
                (0.5, 0.25),
                (0.0, 1.0),
            ] {
                simulate(n, strategy(min, over));
            }
        }
    }

    #[test]
    fn deployments_walk_their_steps_in_order() {
        let app = AppId::parse("/a").unwrap();
        let def = Arc::new(
            crate::app_update::AppUpdate::from_value(&json!({"cmd": "x"}))
                .unwrap()
                .apply(None, app.clone(), Timestamp::from_millis(0))
                .unwrap(),
        );
        let plan = Plan::between(app, None, Some(def), false, Timestamp::from_millis(0));
        let mut d = Deployment::new(plan);
        assert_eq!(
            d.current_action().unwrap().action,
            ActionKind::StartApplication
        );
        assert_eq!(d.info_json()["currentStep"], 1);
        assert_eq!(d.info_json()["totalSteps"], 2);
        assert_eq!(
            d.advance(),
            Some(Progress::NextStep {
                finished: 0,
                started: 1
            })
        );
        assert_eq!(
            d.current_action().unwrap().action,
            ActionKind::ScaleApplication
        );
        assert_eq!(d.advance(), Some(Progress::Done { finished: 1 }));
        assert!(!d.is_running());
        assert_eq!(d.advance(), None);
    }
}
