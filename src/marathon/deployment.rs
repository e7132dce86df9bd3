//! Deployments: Marathon's record of a change in progress (`/v2/deployments`), the plans in
//! deployment events, and the `{deploymentId, version}` answer of every deployable call.
//!
//! A step is `{"actions": [{"action": …, "app": …}]}` as Marathon serialises it. Older
//! documentation shows a step as a bare action and an action's kind under `type`; both are
//! accepted and read into the same shape.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::AppId;
use super::app::Version;

opaque_id! {
    /// A deployment id (a UUID).
    DeploymentId
}

wire_enum! {
    /// What a deployment action does.
    pub enum DeploymentActionKind {
        /// Start an app that is not running.
        StartApplication => "StartApplication",
        /// Stop a running app.
        StopApplication => "StopApplication",
        /// Change the number of instances.
        ScaleApplication => "ScaleApplication",
        /// Replace the instances with a new version.
        RestartApplication => "RestartApplication",
        /// Resolve the app's artifacts.
        ResolveArtifacts => "ResolveArtifacts",
        /// Start a pod.
        StartPod => "StartPod",
        /// Stop a pod.
        StopPod => "StopPod",
        /// Scale a pod.
        ScalePod => "ScalePod",
        /// Restart a pod.
        RestartPod => "RestartPod",
    }
}

/// One action of a deployment step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentAction {
    /// What the action does (`type` in old documentation).
    #[serde(alias = "type")]
    pub action: DeploymentActionKind,
    /// The app it acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppId>,
    /// The pod it acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Readiness results of the action's tasks (in `currentActions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_check_results: Option<Vec<Value>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A step of a deployment: actions run together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentStep {
    /// The step's actions.
    pub actions: Vec<DeploymentAction>,
}

impl<'de> Deserialize<'de> for DeploymentStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as one struct rather than an untagged enum, which would buffer every step
        // before trying each form: deployment events carry a plan's steps several times.
        #[derive(Deserialize)]
        struct StepForm {
            #[serde(default)]
            actions: Option<Vec<DeploymentAction>>,
            // The bare-action form of old documentation examples: the action's own fields.
            #[serde(flatten)]
            action: Map<String, Value>,
        }
        let form = StepForm::deserialize(deserializer)?;
        let actions = match form.actions {
            Some(actions) => actions,
            None => vec![
                DeploymentAction::deserialize(Value::Object(form.action))
                    .map_err(serde::de::Error::custom)?,
            ],
        };
        Ok(Self { actions })
    }
}

/// A running deployment (`GET /v2/deployments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The deployment id.
    pub id: DeploymentId,
    /// The version of the target state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Apps the deployment changes.
    #[serde(default)]
    pub affected_apps: Vec<AppId>,
    /// Pods the deployment changes.
    #[serde(default)]
    pub affected_pods: Vec<String>,
    /// All steps.
    #[serde(default)]
    pub steps: Vec<DeploymentStep>,
    /// The actions of the step in progress.
    #[serde(default)]
    pub current_actions: Vec<DeploymentAction>,
    /// The step in progress, counting from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<u32>,
    /// The number of steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<u32>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A deployment plan, as carried by deployment events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPlan {
    /// The deployment id.
    pub id: DeploymentId,
    /// The steps.
    #[serde(default)]
    pub steps: Vec<DeploymentStep>,
    /// The version of the target state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Fields this client does not model (`original` and `target` group trees).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DeploymentPlan {
    /// The apps the plan's actions touch, in step order, without repeats.
    pub fn affected_apps(&self) -> Vec<&AppId> {
        let mut apps: Vec<&AppId> = Vec::new();
        for app in self
            .steps
            .iter()
            .flat_map(|s| &s.actions)
            .filter_map(|a| a.app.as_ref())
        {
            if !apps.contains(&app) {
                apps.push(app);
            }
        }
        apps
    }
}

/// The answer of a call that started a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentResult {
    /// The deployment started.
    pub deployment_id: DeploymentId,
    /// The version of the target state.
    pub version: Version,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(value: Value) -> Result<DeploymentStep, serde_json::Error> {
        serde_json::from_str(&value.to_string())
    }

    #[test]
    fn a_step_reads_its_actions_and_keeps_what_an_action_says_beyond_the_model() {
        let step = step(json!({
            "actions": [
                {"action": "StartApplication", "app": "/web/a", "startedAt": "now"},
                {"action": "ScaleApplication", "app": "/web/b"}
            ]
        }))
        .unwrap();
        assert_eq!(step.actions.len(), 2);
        assert_eq!(
            step.actions[0].action,
            DeploymentActionKind::StartApplication
        );
        assert_eq!(step.actions[0].extra["startedAt"], "now");
        assert_eq!(step.actions[1].app.as_ref().unwrap().as_str(), "/web/b");
    }

    #[test]
    fn a_bare_action_is_a_step_of_one_action() {
        let step = step(json!({"type": "RestartApplication", "app": "/web/a"})).unwrap();
        assert_eq!(step.actions.len(), 1);
        assert_eq!(
            step.actions[0].action,
            DeploymentActionKind::RestartApplication
        );
    }

    #[test]
    fn a_step_that_is_neither_form_is_an_error_naming_what_is_missing() {
        let error = step(json!({"app": "/web/a"})).unwrap_err();
        assert!(error.to_string().contains("action"), "{error}");
    }
}
