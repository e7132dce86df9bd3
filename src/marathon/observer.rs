//! A hook told about every HTTP request the client makes, so callers can count Marathon calls
//! and their latencies (the controller's metrics) without this module knowing about metrics.
//!
//! The observer is called once per HTTP attempt: a call that fails over to a second URL, or
//! follows a redirect to the leader, reports each attempt. Routes are templates
//! (`/v2/apps/{app_id}`), never concrete paths, so they are safe as metric labels.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

/// The endpoint of a request, as a route template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/v2/apps`
    Apps,
    /// `/v2/apps/{app_id}`
    App,
    /// `/v2/apps/{app_id}/restart`
    AppRestart,
    /// `/v2/apps/{app_id}/versions`
    AppVersions,
    /// `/v2/apps/{app_id}/versions/{version}`
    AppVersion,
    /// `/v2/apps/{app_id}/tasks`
    AppTasks,
    /// `/v2/apps/{app_id}/tasks/{task_id}`
    AppTask,
    /// `/v2/tasks`
    Tasks,
    /// `/v2/deployments`
    Deployments,
    /// `/v2/deployments/{deployment_id}`
    Deployment,
    /// `/v2/events`
    Events,
    /// `/v2/queue`
    Queue,
    /// `/v2/info`
    Info,
    /// `/v2/leader`
    Leader,
    /// `/ping`
    Ping,
}

impl Route {
    /// The route template, e.g. `/v2/apps/{app_id}`.
    pub fn template(self) -> &'static str {
        match self {
            Self::Apps => "/v2/apps",
            Self::App => "/v2/apps/{app_id}",
            Self::AppRestart => "/v2/apps/{app_id}/restart",
            Self::AppVersions => "/v2/apps/{app_id}/versions",
            Self::AppVersion => "/v2/apps/{app_id}/versions/{version}",
            Self::AppTasks => "/v2/apps/{app_id}/tasks",
            Self::AppTask => "/v2/apps/{app_id}/tasks/{task_id}",
            Self::Tasks => "/v2/tasks",
            Self::Deployments => "/v2/deployments",
            Self::Deployment => "/v2/deployments/{deployment_id}",
            Self::Events => "/v2/events",
            Self::Queue => "/v2/queue",
            Self::Info => "/v2/info",
            Self::Leader => "/v2/leader",
            Self::Ping => "/ping",
        }
    }
}

/// One HTTP attempt, as reported to a [`RequestObserver`].
#[derive(Debug, Clone)]
pub struct ObservedRequest<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The endpoint.
    pub route: Route,
    /// The full URL asked.
    pub url: &'a Url,
    /// The status answered; `None` when no answer came (connection refused, timeout).
    pub status: Option<StatusCode>,
    /// Time until the answer's headers arrived, or until the attempt failed.
    pub duration: Duration,
}

/// Told about every HTTP attempt of a [`MarathonClient`](super::MarathonClient).
///
/// Called inline on the request's task: keep it cheap (increment counters, record a
/// histogram) and never block.
pub trait RequestObserver: Send + Sync {
    /// One attempt finished.
    fn observe(&self, request: &ObservedRequest<'_>);
}
