//! The dashboard's HTTP surface: the pages, their assets, a JSON snapshot of each view, and
//! one server-sent event stream per open page.
//!
//! Every route here only reads: there is no handler for any method but GET (the write path,
//! when enabled, is [`crate::actions`]). A request is answered from the feed's model in
//! memory; none of them reaches etcd or Marathon.
//!
//! The event stream of a page starts with a `snapshot` of its view, then sends `rows` (the
//! fleet's changed and removed rows), a new `snapshot` (other views, and every view after a
//! relist or when it fell behind) and `connection` (the feed's state) as things change.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use theseus::api::DeploymentKey;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::demand::Demand;
use crate::diff::DiffLine;
use crate::feed::{Connection, EtcdProbe, Picture, Update};
use crate::view::{self, Campaigner, DeploymentView, FleetRow, ServiceView};
use crate::{Fact, HostReport};

const PAGE: &str = include_str!("../assets/page.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// How often the controller page's facts from the hosting process are sent again.
const FACTS_INTERVAL: Duration = Duration::from_secs(2);

/// What every handler reads: the router's state.
#[derive(Clone)]
struct Site {
    picture: Arc<Picture>,
    demand: Arc<Demand>,
    host: Option<Arc<dyn HostReport>>,
    actions: Actions,
    stop: CancellationToken,
}

/// The dashboard's routes over `picture`, with facts from `host` on the controller page;
/// `actions` says whether deployment pages offer their actions. Each event stream is a
/// viewer of `demand` while it is open. Event streams end when `stop` is cancelled.
pub fn router(
    picture: Arc<Picture>,
    demand: Arc<Demand>,
    host: Option<Arc<dyn HostReport>>,
    actions: Actions,
    stop: CancellationToken,
) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/services", get(page))
        .route("/controller", get(page))
        .route("/deployments/{service}/{name}", get(page))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
        .route("/api/fleet", get(fleet))
        .route("/api/services", get(services))
        .route("/api/controller", get(controller))
        .route("/api/deployments/{service}/{name}", get(deployment))
        .route("/api/deployments/{service}/{name}/diff", get(diff))
        .route("/api/events", get(events))
        .with_state(Site {
            picture,
            demand,
            host,
            actions,
            stop,
        })
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// Which view a page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ViewName {
    Fleet,
    Services,
    Controller,
    Deployment(DeploymentKey),
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    view: String,
    id: Option<String>,
}

impl ViewName {
    fn parse(query: &EventsQuery) -> Option<ViewName> {
        Some(match (query.view.as_str(), &query.id) {
            ("fleet", _) => ViewName::Fleet,
            ("services", _) => ViewName::Services,
            ("controller", _) => ViewName::Controller,
            ("deployment", Some(id)) => ViewName::Deployment(id.parse().ok()?),
            _ => return None,
        })
    }
}

/// A whole view, as its page's `snapshot` event and its `/api/` route send it. Serialised
/// straight from the rows (never through a `serde_json::Value` tree: with 10,000
/// deployments that tree costs more time and memory than the text it becomes).
#[derive(Serialize)]
#[serde(untagged)]
enum Snapshot {
    Fleet {
        connection: Connection,
        rows: Vec<FleetRow>,
    },
    Services {
        connection: Connection,
        services: Vec<ServiceView>,
    },
    Controller {
        connection: Connection,
        replicas: Vec<Campaigner>,
        /// What the hosting process reports; empty for `theseus dashboard`.
        facts: Vec<Fact>,
        /// Whether a controller replica serves the page (else `theseus dashboard` does).
        controller: bool,
        /// The feed's last question for etcd's revision.
        etcd: Option<EtcdProbe>,
        prefix: String,
    },
    Deployment {
        connection: Connection,
        deployment: Box<DeploymentView>,
        /// Whether the page offers scale, pause, resume and undo.
        actions: bool,
    },
}

/// The fleet rows that changed and the ids of those that no longer exist.
#[derive(Serialize)]
struct Rows {
    connection: Connection,
    upsert: Vec<FleetRow>,
    remove: Vec<String>,
}

impl Site {
    fn snapshot(&self, view: &ViewName) -> Snapshot {
        // The connection first: a picture swapped in between the two reads is then shown as
        // not current (until the next event), never an old one as current.
        let connection = self.picture.connection();
        let model = self.picture.model();
        match view {
            ViewName::Fleet => Snapshot::Fleet {
                connection,
                rows: view::fleet(&model),
            },
            ViewName::Services => Snapshot::Services {
                connection,
                services: view::services(&model),
            },
            ViewName::Controller => Snapshot::Controller {
                connection,
                replicas: view::replicas(&model),
                facts: self.host.as_ref().map(|h| h.facts()).unwrap_or_default(),
                controller: self.host.is_some(),
                etcd: self.picture.probe(),
                prefix: model.layout().prefix().to_owned(),
            },
            ViewName::Deployment(key) => Snapshot::Deployment {
                connection,
                deployment: Box::new(view::deployment(&model, key)),
                actions: self.actions == Actions::Enabled,
            },
        }
    }

    /// The fleet rows of `keys` that exist, and the ids of those that no longer do.
    fn rows(&self, keys: &std::collections::BTreeSet<DeploymentKey>) -> Rows {
        let connection = self.picture.connection();
        let model = self.picture.model();
        let mut upsert = Vec::new();
        let mut remove = Vec::new();
        for key in keys {
            match model.deployments().get(key) {
                Some(records) => upsert.push(view::fleet_row(key, records)),
                None => remove.push(key.to_string()),
            }
        }
        Rows {
            connection,
            upsert,
            remove,
        }
    }
}

fn json_response(value: impl Serialize) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(value)).into_response()
}

async fn fleet(State(app): State<Site>) -> Response {
    json_response(app.snapshot(&ViewName::Fleet))
}

async fn services(State(app): State<Site>) -> Response {
    json_response(app.snapshot(&ViewName::Services))
}

async fn controller(State(app): State<Site>) -> Response {
    json_response(app.snapshot(&ViewName::Controller))
}

async fn deployment(
    State(app): State<Site>,
    Path((service, name)): Path<(String, String)>,
) -> Response {
    match DeploymentKey::new(&service, &name) {
        Ok(key) => json_response(app.snapshot(&ViewName::Deployment(key))),
        Err(error) => (StatusCode::NOT_FOUND, error.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    from: String,
    to: String,
}

/// The line diff of two revisions' specs.
#[derive(Serialize)]
struct DiffAnswer {
    from: String,
    to: String,
    lines: Vec<DiffLine>,
}

async fn diff(
    State(app): State<Site>,
    Path((service, name)): Path<(String, String)>,
    Query(query): Query<DiffQuery>,
) -> Response {
    let key = match DeploymentKey::new(&service, &name) {
        Ok(key) => key,
        Err(error) => return (StatusCode::NOT_FOUND, error.to_string()).into_response(),
    };
    let model = app.picture.model();
    match view::revision_diff(&model, &key, &query.from, &query.to) {
        Ok(lines) => json_response(DiffAnswer {
            from: query.from,
            to: query.to,
            lines,
        }),
        Err(why) => (StatusCode::NOT_FOUND, why.to_string()).into_response(),
    }
}

async fn events(State(app): State<Site>, Query(query): Query<EventsQuery>) -> Response {
    let Some(view) = ViewName::parse(&query) else {
        return (StatusCode::BAD_REQUEST, "unknown view").into_response();
    };
    Sse::new(event_stream(app, view))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What one page is sent; see the module documentation.
fn event_stream(app: Site, view: ViewName) -> impl Stream<Item = Result<Event, Infallible>> {
    let stop = app.stop.clone().cancelled_owned();
    // Held by the stream: dropped when the page goes (its connection closes).
    let viewer = app.demand.viewer();
    let updates = app.picture.subscribe();
    let first = event("snapshot", &app.snapshot(&view));
    let mut ticks = tokio::time::interval(FACTS_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (app, view, updates, Some(first), ticks, viewer);
    futures::stream::unfold(
        state,
        |(app, view, mut updates, first, mut ticks, viewer)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (app, view, updates, None, ticks, viewer)));
            }
            let update = if view == ViewName::Controller {
                tokio::select! {
                    update = updates.recv() => update,
                    _ = ticks.tick() => Ok(Update::Replaced),
                }
            } else {
                updates.recv().await
            };
            let sent = match update {
                Err(RecvError::Closed) => return None,
                // Fell behind: whatever was missed, the whole view is current.
                Err(RecvError::Lagged(_)) | Ok(Update::Replaced) => {
                    event("snapshot", &app.snapshot(&view))
                }
                Ok(Update::Connection) => event("connection", &app.picture.connection()),
                Ok(Update::Changed {
                    deployments,
                    leader,
                }) => match &view {
                    ViewName::Fleet => event("rows", &app.rows(&deployments)),
                    ViewName::Services => event("snapshot", &app.snapshot(&view)),
                    ViewName::Controller if leader => event("snapshot", &app.snapshot(&view)),
                    ViewName::Deployment(key) if deployments.contains(key) => {
                        event("snapshot", &app.snapshot(&view))
                    }
                    _ => event("connection", &app.picture.connection()),
                },
            };
            Some((Ok(sent), (app, view, updates, None, ticks, viewer)))
        },
    )
    .take_until(stop)
}

fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|error| Event::default().event("error").data(error.to_string()))
}
