//! Deployment and API events applied to the snapshot in place when they tell it nothing it
//! cannot take itself, so that a deployment the picture already knows of costs no re-read.
//!
//! What it promises, for an app the picture holds (and embeds deployments of):
//! - `api_post_event` whose app version is the one the picture holds (the controller's own
//!   write, recorded from Marathon's answer) changes nothing.
//! - `deployment_info` and `deployment_step_success` of a deployment the picture already
//!   lists for the app change nothing: what the deployment does to tasks comes as task
//!   events.
//! - `deployment_success` removes the deployment from the app's deployments (nothing else in
//!   the app changes when one ends). The end is marked with the snapshot's clock when the
//!   event was read from the stream: a read that began earlier, and a write recorded later,
//!   do not bring the deployment back ([`drop_ended`]).
//! - Anything else (an app the picture does not hold, a deployment it does not know, a
//!   failed step or deployment, another client's change) asks for the app to be re-read.

use std::sync::Arc;

use theseus::marathon::{App, AppId, DeploymentId, Event};

use super::MarathonPicture;
use super::task_events::Applied;
use crate::small_map::SmallMap;

/// What `event`, read from the stream at clock `received`, does to `app`'s picture; `None`
/// if the event is not a deployment or API event.
pub(super) fn apply(
    state: &mut MarathonPicture,
    app: &AppId,
    event: &Event,
    received: u64,
) -> Option<Applied> {
    Some(match event {
        Event::ApiPost(e) => {
            let version = e.app_definition.as_ref().and_then(|d| d.version.as_ref());
            match (held(state, app), version) {
                (Some(held), Some(version)) if held.version.as_ref() == Some(version) => {
                    Applied::Unchanged
                }
                _ => Applied::Reread(app.clone()),
            }
        }
        Event::DeploymentInfo(e) | Event::DeploymentStepSuccess(e) => match held(state, app) {
            Some(held) if held.deployment_ids().any(|d| *d == e.plan.id) => Applied::Unchanged,
            _ => Applied::Reread(app.clone()),
        },
        Event::DeploymentSuccess(e) => deployment_ended(state, app, &e.id, received),
        Event::DeploymentStepFailure(_) | Event::DeploymentFailed(_) | Event::AppTerminated(_) => {
            Applied::Reread(app.clone())
        }
        _ => return None,
    })
}

/// The app as the picture holds it, if it does.
fn held<'a>(state: &'a MarathonPicture, app: &AppId) -> Option<&'a App> {
    state.entries.get(app)?.app.as_deref()
}

fn deployment_ended(
    state: &mut MarathonPicture,
    app: &AppId,
    deployment: &DeploymentId,
    received: u64,
) -> Applied {
    let Some(entry) = state.entries.get_mut(app) else {
        return Applied::Reread(app.clone());
    };
    entry.ended.insert(deployment.clone(), received);
    let Some(held) = entry.app.as_mut() else {
        // Deleted as far as the picture knows: the deletion's deployment ended.
        return Applied::Unchanged;
    };
    if !held.deployment_ids().any(|d| d == deployment) {
        return Applied::Unchanged;
    }
    let held = Arc::make_mut(held);
    if let Some(deployments) = held.deployments.as_mut() {
        deployments.retain(|d| d.id != *deployment);
    }
    Applied::Changed(app.clone())
}

/// Removes from `app` the deployments that ended since `began` (a read that began before
/// they ended, or a write whose answer came after); forgets ends older than `began`.
pub(super) fn drop_ended(app: &mut App, ended: &mut SmallMap<DeploymentId, u64>, began: u64) {
    ended.retain(|_, stamp| *stamp > began);
    if ended.is_empty() {
        return;
    }
    if let Some(deployments) = app.deployments.as_mut() {
        deployments.retain(|d| !ended.contains_key(&d.id));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::KnownApp;
    use super::*;

    /// Applies `event` as if read from the stream now.
    fn apply_now(state: &mut MarathonPicture, app: &AppId, event: &Event) -> Option<Applied> {
        let received = state.tick();
        apply(state, app, event, received)
    }

    fn id(text: &str) -> AppId {
        AppId::parse(text).unwrap()
    }

    fn state_with(app: Value) -> MarathonPicture {
        let app: App = serde_json::from_value(app).unwrap();
        let mut state = MarathonPicture::default();
        state
            .entries
            .insert(app.id.clone(), KnownApp::fresh(Some(Arc::new(app)), 0));
        state
    }

    fn deploying() -> Value {
        json!({"id": "/a/x", "version": "2026-01-01T00:00:01.000Z", "deployments": [{"id": "d1"}]})
    }

    fn deployment_event(kind: &str, deployment: &str) -> Event {
        let plan = json!({"id": deployment, "version": "2026-01-01T00:00:01.000Z",
            "steps": [{"actions": [{"action": "ScaleApplication", "app": "/a/x"}]}]});
        Event::from_json(match kind {
            "deployment_success" | "deployment_failed" => {
                json!({"eventType": kind, "id": deployment, "plan": plan})
            }
            _ => json!({"eventType": kind, "plan": plan,
                "currentStep": {"actions": [{"action": "ScaleApplication", "app": "/a/x"}]}}),
        })
    }

    #[test]
    fn a_known_deployments_progress_changes_nothing() {
        let mut state = state_with(deploying());
        for kind in ["deployment_info", "deployment_step_success"] {
            assert_eq!(
                apply_now(&mut state, &id("/a/x"), &deployment_event(kind, "d1")),
                Some(Applied::Unchanged),
                "{kind}"
            );
            assert_eq!(
                apply_now(&mut state, &id("/a/x"), &deployment_event(kind, "d2")),
                Some(Applied::Reread(id("/a/x"))),
                "{kind} of an unknown deployment"
            );
        }
    }

    #[test]
    fn a_deployments_success_removes_it_and_a_later_record_does_not_bring_it_back() {
        let mut state = state_with(deploying());
        assert_eq!(
            apply_now(
                &mut state,
                &id("/a/x"),
                &deployment_event("deployment_success", "d1")
            ),
            Some(Applied::Changed(id("/a/x")))
        );
        let entry = &state.entries[&id("/a/x")];
        assert_eq!(entry.app.as_ref().unwrap().deployment_ids().count(), 0);

        // A read that began before the end still lists it.
        let mut read: App = serde_json::from_value(deploying()).unwrap();
        let mut ended = entry.ended.clone();
        drop_ended(&mut read, &mut ended, 0);
        assert_eq!(read.deployment_ids().count(), 0);
        // One that began after forgets the end.
        drop_ended(&mut read, &mut ended, u64::MAX);
        assert!(ended.is_empty());
    }

    #[test]
    fn failures_and_unknown_apps_are_re_read() {
        let mut state = state_with(deploying());
        assert_eq!(
            apply_now(
                &mut state,
                &id("/a/x"),
                &deployment_event("deployment_failed", "d1")
            ),
            Some(Applied::Reread(id("/a/x")))
        );
        let mut empty = MarathonPicture::default();
        assert_eq!(
            apply_now(
                &mut empty,
                &id("/a/x"),
                &deployment_event("deployment_success", "d1")
            ),
            Some(Applied::Reread(id("/a/x")))
        );
    }

    #[test]
    fn the_echo_of_a_recorded_write_changes_nothing() {
        let mut state = state_with(deploying());
        let post = |version: &str| {
            Event::from_json(
                json!({"eventType": "api_post_event", "clientIp": "127.0.0.1",
                "uri": "/v2/apps/a/x", "appDefinition": {"id": "/a/x", "version": version}}),
            )
        };
        assert_eq!(
            apply_now(&mut state, &id("/a/x"), &post("2026-01-01T00:00:01.000Z")),
            Some(Applied::Unchanged)
        );
        assert_eq!(
            apply_now(&mut state, &id("/a/x"), &post("2026-01-01T00:00:02.000Z")),
            Some(Applied::Reread(id("/a/x")))
        );
    }
}
