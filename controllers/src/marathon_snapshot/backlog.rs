//! Events read from Marathon's stream and not applied to the snapshot yet, held by app, so
//! that the task reading the stream never waits on the one applying it and a backlog costs
//! memory per app, not per event.
//!
//! What it promises:
//! - [`Backlog::push`] takes a short lock of its own and never waits on the snapshot's: a
//!   reader that only pushes keeps up with Marathon however slowly the picture is updated,
//!   so Marathon never cuts it off for falling behind.
//! - The events of one app are handed out in the order they were pushed.
//! - At most [`MAX_EVENTS`] events are held in all, and at most [`MAX_EVENTS_PER_APP`] per
//!   app. Past either bound the app's events are replaced by one mark, "re-read this app":
//!   the re-read begins after every one of them was read from the stream, so it shows at
//!   least what they said, and later events of the app join the mark until it is taken.
//! - What is taken is taken whole ([`Backlog::take`]): the applier works on a batch while
//!   the reader fills the next one.
//!
//! It does not decide what an event means: that is the applier's business.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use theseus::marathon::{AppId, DeploymentId, Event};
use tokio::sync::Notify;

/// The most events held in all before apps are turned into re-read marks.
pub(super) const MAX_EVENTS: usize = 8192;
/// The most events held for one app before it is turned into a re-read mark.
pub(super) const MAX_EVENTS_PER_APP: usize = 64;

/// What waits to be applied for one app.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AppBacklog {
    /// Events to apply in this order, each with the snapshot's clock when it was read from
    /// the stream: a read of the app that began later already shows what it says.
    Events(Vec<(u64, Event)>),
    /// Too much to hold: re-read the app instead.
    Reread,
}

/// One batch taken by the applier.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// By app, what waits.
    pub(super) apps: HashMap<AppId, AppBacklog>,
    /// Deployment events that name no app: the apps they are about are found in the picture.
    pub(super) deployments: Vec<DeploymentId>,
    /// The stream (re)connected: events in between may be lost, the picture must be relisted.
    pub(super) relist: bool,
    /// Events held in `apps`.
    events: usize,
}

impl Batch {
    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.deployments.is_empty() && !self.relist
    }
}

/// The backlog between the stream's reader and its applier; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    batch: Mutex<Batch>,
    /// The most events held at once since the backlog was made.
    peak: Mutex<usize>,
    ready: Notify,
}

impl Backlog {
    fn batch(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event` of `app`, read from the stream at clock `received`, behind the app's
    /// earlier events, or joins it to the app's re-read mark.
    pub(super) fn push(&self, app: &AppId, received: u64, event: Event) {
        let held = {
            let mut batch = self.batch();
            let full = batch.events >= MAX_EVENTS;
            let mut freed = 0;
            let mut added = 0;
            match batch.apps.get_mut(app) {
                Some(AppBacklog::Reread) => {}
                Some(AppBacklog::Events(events)) if full || events.len() >= MAX_EVENTS_PER_APP => {
                    freed = events.len();
                    batch.apps.insert(app.clone(), AppBacklog::Reread);
                }
                Some(AppBacklog::Events(events)) => {
                    events.push((received, event));
                    added = 1;
                }
                None if full => {
                    batch.apps.insert(app.clone(), AppBacklog::Reread);
                }
                None => {
                    batch
                        .apps
                        .insert(app.clone(), AppBacklog::Events(vec![(received, event)]));
                    added = 1;
                }
            }
            batch.events = batch.events + added - freed;
            batch.events
        };
        self.note_held(held);
        self.ready.notify_one();
    }

    /// Queues a deployment event that names no app.
    pub(super) fn push_deployment(&self, deployment: DeploymentId) {
        self.batch().deployments.push(deployment);
        self.ready.notify_one();
    }

    /// Asks for a relist: the stream (re)connected.
    pub(super) fn relist(&self) {
        self.batch().relist = true;
        self.ready.notify_one();
    }

    /// Everything pushed so far, leaving the backlog empty.
    pub(super) fn take(&self) -> Batch {
        std::mem::take(&mut *self.batch())
    }

    /// Waits until something was pushed since the last [`Backlog::take`] began (at once if
    /// something was pushed meanwhile).
    pub(super) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// The most events held at once so far.
    pub(super) fn peak(&self) -> usize {
        *self.peak.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_held(&self, held: usize) {
        let mut peak = self.peak.lock().unwrap_or_else(|p| p.into_inner());
        *peak = (*peak).max(held);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(text: &str) -> AppId {
        AppId::parse(text).unwrap()
    }

    fn running(app: &str, task: &str) -> Event {
        Event::from_json(json!({
            "eventType": "status_update_event", "appId": app, "taskId": task,
            "taskStatus": "TASK_RUNNING"
        }))
    }

    #[test]
    fn an_apps_events_come_out_in_the_order_they_went_in() {
        let backlog = Backlog::default();
        backlog.push(&id("/a/x"), 1, running("/a/x", "1"));
        backlog.push(&id("/a/y"), 2, running("/a/y", "2"));
        backlog.push(&id("/a/x"), 3, running("/a/x", "3"));
        let batch = backlog.take();
        assert_eq!(
            batch.apps[&id("/a/x")],
            AppBacklog::Events(vec![(1, running("/a/x", "1")), (3, running("/a/x", "3"))])
        );
        assert_eq!(batch.apps.len(), 2);
        assert!(backlog.take().is_empty(), "taken whole");
    }

    #[test]
    fn too_many_events_of_one_app_become_one_reread() {
        let backlog = Backlog::default();
        for i in 0..=MAX_EVENTS_PER_APP + 10 {
            backlog.push(&id("/a/x"), 0, running("/a/x", &i.to_string()));
        }
        backlog.push(&id("/a/y"), 0, running("/a/y", "y"));
        let batch = backlog.take();
        assert_eq!(batch.apps[&id("/a/x")], AppBacklog::Reread);
        assert_eq!(batch.events, 1, "only /a/y's event is held");
        assert!(backlog.peak() <= MAX_EVENTS_PER_APP);
    }

    #[test]
    fn a_backlog_past_its_bound_holds_one_mark_per_app_not_one_event_per_event() {
        let backlog = Backlog::default();
        let apps = MAX_EVENTS / 4 + 100;
        for round in 0..8 {
            for app in 0..apps {
                let app = format!("/s/a{app}");
                backlog.push(&id(&app), 0, running(&app, &round.to_string()));
            }
        }
        assert!(backlog.peak() <= MAX_EVENTS, "peak {}", backlog.peak());
        let batch = backlog.take();
        assert_eq!(batch.apps.len(), apps, "no app is forgotten");
        assert!(batch.events <= MAX_EVENTS);
        assert!(
            batch
                .apps
                .values()
                .any(|pending| *pending == AppBacklog::Reread)
        );
    }
}
