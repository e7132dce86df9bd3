//! [`MarathonClient`]: one method per Marathon endpoint theseus uses, each returning typed
//! answers or a typed [`Error`].
//!
//! Every deployable call sends `force` explicitly, because Marathon's defaults differ:
//! `DELETE /v2/apps/{id}` defaults to `force=true`, every other write to `force=false`.
//! Failover and retries are described on [`MarathonClient`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Certificate, Method, Url};
use serde::Deserialize;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::app::{App, Version};
use super::app_id::AppId;
use super::deployment::{Deployment, DeploymentId, DeploymentResult};
use super::error::{self, Error, Target};
use super::event_stream::{EventBody, EventStream, transport_error};
use super::events::EventKind;
use super::failover::{Answer, Call, MarathonEndpoints};
use super::info::{Info, Leader};
use super::observer::{RequestObserver, Route};
use super::queue::{Queue, QueueEntry};
use super::task::{Task, TaskId};

/// The header in which Marathon names the deployment a write started.
const DEPLOYMENT_ID_HEADER: &str = "marathon-deployment-id";

/// How to reach Marathon.
#[derive(Clone)]
pub struct MarathonConfig {
    /// Marathon URLs, tried in order (e.g. every master). A path prefix is kept
    /// (`https://proxy/marathon/`). Credentials in a URL (`http://user:pass@host`) are used
    /// when `username` is not set, and never logged.
    pub urls: Vec<Url>,
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<String>,
    /// A PEM file with the CA certificates to trust for `https` URLs, instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on a whole request; for the event stream, on the wait for its headers.
    pub request_timeout: Duration,
}

impl MarathonConfig {
    /// Default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

    /// A configuration for `urls` without credentials or CA file, with default timeouts.
    pub fn new(urls: Vec<Url>) -> Self {
        Self {
            urls,
            username: None,
            password: None,
            ca_file: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl fmt::Debug for MarathonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| without_userinfo(u).into())
            .collect();
        f.debug_struct("MarathonConfig")
            .field("urls", &urls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Nested resources to embed in app answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embed {
    /// The app's tasks.
    Tasks,
    /// Task counts (`tasksStaged`, `tasksRunning`, …).
    Counts,
    /// Running deployments of the app.
    Deployments,
    /// Readiness check results.
    Readiness,
    /// The last task failure.
    LastTaskFailure,
    /// Task statistics.
    TaskStats,
}

impl Embed {
    fn name(self) -> &'static str {
        match self {
            Self::Tasks => "tasks",
            Self::Counts => "counts",
            Self::Deployments => "deployments",
            Self::Readiness => "readiness",
            Self::LastTaskFailure => "lastTaskFailure",
            Self::TaskStats => "taskStats",
        }
    }
}

/// Filters of `GET /v2/apps`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppQuery {
    /// Only apps whose id contains this string.
    pub id: Option<String>,
    /// A Marathon label selector, e.g. `THESEUS_MANAGED==true,tier!=frontend`.
    pub label: Option<String>,
    /// Nested resources to embed in each app.
    pub embed: Vec<Embed>,
}

/// How deployment events carry their plan (`plan-format` of `GET /v2/events`).
///
/// Marathon 1.6 and 1.7 put the whole root group before and after the change (`original`,
/// `target`) into the plan of every deployment event unless asked for `plan-format=light`;
/// Marathon 1.8+ only sends light plans and ignores the parameter, as does Marathon before 1.6,
/// which only sends full ones. Either form decodes into the same types (the group trees land in
/// [`DeploymentPlan::extra`](super::deployment::DeploymentPlan::extra)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PlanFormat {
    /// `plan-format=light`: plans are `{id, steps, version}`. The default, because the group
    /// trees grow with every app in Marathon and nothing in this client reads them.
    #[default]
    Light,
    /// No `plan-format` parameter: Marathon's own default (full plans before 1.8).
    Full,
}

/// What `GET /v2/events` streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events of these kinds (`event_type=` filters); every event when empty.
    pub kinds: Vec<EventKind>,
    /// How deployment events carry their plan (light unless set).
    pub plan_format: PlanFormat,
}

/// Which tasks `GET /v2/tasks` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatusFilter {
    /// Running tasks only.
    Running,
    /// Staging tasks only.
    Staging,
}

/// The answer of `POST /v2/apps`.
#[derive(Debug, Clone, PartialEq)]
pub struct AppCreated {
    /// The app as Marathon normalised it.
    pub app: App,
    /// The deployment that starts it (the `Marathon-Deployment-Id` header).
    pub deployment_id: Option<DeploymentId>,
}

/// The answer of a task kill.
#[derive(Debug, Clone, PartialEq)]
pub enum KillOutcome {
    /// Without `scale`: the tasks killed.
    Killed(Vec<Task>),
    /// With `scale`: the deployment that scales the app down.
    Scaled(DeploymentResult),
}

impl<'de> Deserialize<'de> for KillOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum KillAnswer {
            Many { tasks: Vec<Task> },
            One { task: Box<Task> },
            Scaled(DeploymentResult),
        }
        Ok(match KillAnswer::deserialize(deserializer)? {
            KillAnswer::Many { tasks } => Self::Killed(tasks),
            KillAnswer::One { task } => Self::Killed(vec![*task]),
            KillAnswer::Scaled(result) => Self::Scaled(result),
        })
    }
}

/// `{"apps": [...]}`, each app passed through `trim` and handed to `each` as soon as it is
/// read: a caller that keeps part of every app never holds every app whole (a full list at
/// 30,000 tasks is tens of megabytes of apps as Marathon sends them).
struct TrimmedAppList<F> {
    trim: fn(&mut App),
    each: F,
}

impl<'de, F: FnMut(App)> DeserializeSeed<'de> for TrimmedAppList<F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(App)> Visitor<'de> for TrimmedAppList<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with the list of apps")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut listed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "apps" && !listed {
                map.next_value_seed(TrimmedApps {
                    trim: self.trim,
                    each: &mut self.each,
                })?;
                listed = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if listed {
            Ok(())
        } else {
            Err(serde::de::Error::missing_field("apps"))
        }
    }
}

/// The `apps` array of a [`TrimmedAppList`].
struct TrimmedApps<'a, F> {
    trim: fn(&mut App),
    each: &'a mut F,
}

impl<'de, F: FnMut(App)> DeserializeSeed<'de> for TrimmedApps<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(App)> Visitor<'de> for TrimmedApps<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of apps")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some(mut app) = seq.next_element::<App>()? {
            (self.trim)(&mut app);
            (self.each)(app);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct AppSingle {
    app: App,
}

#[derive(Deserialize)]
struct TaskList {
    tasks: Vec<Task>,
}

#[derive(Deserialize)]
struct VersionList {
    versions: Vec<Version>,
}

/// A client of Marathon's REST API v2.
///
/// Cheap to clone; clones share connections, the preferred URL and the observer.
///
/// Failover: requests go first to the URL that answered last, then to the others in
/// configured order. What is retried on another URL, and why:
/// - any request that could not connect (nothing reached Marathon);
/// - reads (`GET`) after a timeout, a broken connection, or a 502/503 answer;
/// - writes after a 503 only (Marathon answers 503 without a leader, before acting).
///
/// A write that timed out, broke off, or got a 502 from a non-leader's proxy is never
/// repeated, since Marathon may have acted on it; the error is returned and the caller
/// re-reads Marathon's state before deciding again. Redirects of reads (the 302 a non-leader
/// answers on `/v2/events`) are followed with the credentials, and the `X-Marathon-Leader`
/// header makes the leader the preferred URL when it is one of the configured ones.
#[derive(Clone)]
pub struct MarathonClient {
    endpoints: Arc<MarathonEndpoints>,
}

impl fmt::Debug for MarathonClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<&str> = self.endpoints.urls.iter().map(Url::as_str).collect();
        f.debug_struct("MarathonClient")
            .field("urls", &urls)
            .finish_non_exhaustive()
    }
}

impl MarathonClient {
    /// Builds a client; fails if no URL is given, a URL is not `http(s)`, or the CA file
    /// cannot be used. Makes no request.
    pub fn new(config: MarathonConfig) -> Result<Self, Error> {
        if config.urls.is_empty() {
            return Err(Error::Config {
                message: "no Marathon URL given; give at least one, e.g. http://marathon:8080"
                    .into(),
            });
        }
        let mut credentials = config
            .username
            .clone()
            .map(|user| (user, config.password.clone()));
        let mut urls = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
                return Err(Error::Config {
                    message: format!(
                        "`{}` is not an http or https URL",
                        without_userinfo(url).as_str()
                    ),
                });
            }
            if credentials.is_none() && !url.username().is_empty() {
                credentials = Some((
                    percent_decode(url.username()),
                    url.password().map(percent_decode),
                ));
            }
            urls.push(without_userinfo(url));
        }

        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            // Redirects are followed in `failover`, which sends the credentials again
            // (reqwest drops them on a redirect to another host).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("theseus/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            builder = builder.tls_certs_only(read_ca_file(path)?);
        }
        let http = builder.build().map_err(|e| Error::Config {
            message: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self {
            endpoints: Arc::new(MarathonEndpoints {
                http,
                urls,
                preferred: AtomicUsize::new(0),
                credentials,
                request_timeout: config.request_timeout,
                observer: None,
                config,
            }),
        })
    }

    /// The same client with a connection pool of its own. A connection is driven by the
    /// runtime it was made on: a stream read on a runtime of its own needs connections made
    /// there, not one left idle by a request on another runtime.
    pub fn with_own_connections(&self) -> Result<Self, Error> {
        let mut client = Self::new(self.endpoints.config.clone())?;
        if let Some(observer) = &self.endpoints.observer {
            client = client.with_observer(Arc::clone(observer));
        }
        client.endpoints.preferred.store(
            self.endpoints
                .preferred
                .load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(client)
    }

    /// The same client, reporting every HTTP attempt to `observer`.
    pub fn with_observer(self, observer: Arc<dyn RequestObserver>) -> Self {
        let endpoints = &self.endpoints;
        Self {
            endpoints: Arc::new(MarathonEndpoints {
                http: endpoints.http.clone(),
                urls: endpoints.urls.clone(),
                preferred: AtomicUsize::new(
                    endpoints
                        .preferred
                        .load(std::sync::atomic::Ordering::Relaxed),
                ),
                credentials: endpoints.credentials.clone(),
                request_timeout: endpoints.request_timeout,
                observer: Some(observer),
                config: endpoints.config.clone(),
            }),
        }
    }

    /// The configured URLs, without credentials.
    pub fn urls(&self) -> &[Url] {
        &self.endpoints.urls
    }

    /// `GET /v2/apps`: the apps matching `query`.
    pub async fn list_apps(&self, query: &AppQuery) -> Result<Vec<App>, Error> {
        self.list_apps_trimmed(query, |_| {}).await
    }

    /// `GET /v2/apps` as [`MarathonClient::list_apps`], each app passed through `trim` as
    /// soon as it is read, before the next is: for a caller that keeps only part of each app
    /// (say, without the fields it does not model), the list is never held whole, neither as
    /// apps nor as text (it is decoded while it arrives). A body cut short is the transport's
    /// error; a body that is not a list of apps, a decode error naming the URL.
    pub async fn list_apps_trimmed(
        &self,
        query: &AppQuery,
        trim: fn(&mut App),
    ) -> Result<Vec<App>, Error> {
        let mut apps = Vec::new();
        self.list_apps_in_parts(query, trim, |part| apps.extend(part))
            .await?;
        Ok(apps)
    }

    /// `GET /v2/apps` as [`MarathonClient::list_apps_trimmed`], the apps handed to `part` a
    /// few at a time, in the list's order, as they are read: a caller that folds them into
    /// what it holds never holds the list beside it. On an error, `part` has seen the apps
    /// read before it.
    pub async fn list_apps_in_parts(
        &self,
        query: &AppQuery,
        trim: fn(&mut App),
        mut part: impl FnMut(Vec<App>),
    ) -> Result<(), Error> {
        let mut call = Call::new(Method::GET, Route::Apps, path(["v2", "apps"]));
        call.query.extend(query.id.clone().map(|id| ("id", id)));
        call.query
            .extend(query.label.clone().map(|label| ("label", label)));
        embed(&mut call, "apps", &query.embed);
        let (url, mut response) = self.answer(call, &Target::Other("app list")).await?;
        // The list is decoded on a blocking thread while it arrives: only the parts of the
        // text not yet read are held, never the whole (15 MB at 30,000 tasks), and the apps
        // come back a few at a time.
        let (parts, arriving) = tokio::sync::mpsc::channel(PARTS_IN_FLIGHT);
        let (decoded_apps, mut apps) = tokio::sync::mpsc::channel::<Vec<App>>(APP_PARTS_IN_FLIGHT);
        let decoding = tokio::task::spawn_blocking(move || {
            let body = std::io::BufReader::with_capacity(
                DECODE_BUFFER,
                Arriving {
                    parts: arriving,
                    part: None,
                    read: 0,
                },
            );
            let mut text = serde_json::Deserializer::from_reader(body);
            let mut read = Vec::with_capacity(APPS_PER_PART);
            let decoded = TrimmedAppList {
                trim,
                each: |app| {
                    read.push(app);
                    if read.len() == APPS_PER_PART {
                        let full = std::mem::replace(&mut read, Vec::with_capacity(APPS_PER_PART));
                        // A caller gone takes no more; the text is still read to its end.
                        let _ = decoded_apps.blocking_send(full);
                    }
                },
            }
            .deserialize(&mut text)
            .and_then(|()| text.end());
            if decoded.is_ok() && !read.is_empty() {
                let _ = decoded_apps.blocking_send(read);
            }
            decoded
        });
        let receive = {
            let url = url.clone();
            async move {
                loop {
                    match next_part(&mut response, &url).await {
                        // A decoder that stopped (the text is not a list) takes no more.
                        Ok(Some(text)) => {
                            if parts.send(text).await.is_err() {
                                return Ok(());
                            }
                        }
                        // Dropping `parts` ends the text: the decoder reads to there.
                        Ok(None) => return Ok(()),
                        Err(error) => return Err(error),
                    }
                }
            }
        };
        let hand_out = async {
            while let Some(read) = apps.recv().await {
                part(read);
            }
        };
        let (received, ()) = futures::join!(receive, hand_out);
        let decoded = match decoding.await {
            Ok(decoded) => decoded,
            Err(failed) => std::panic::resume_unwind(failed.into_panic()),
        };
        // A body cut short reads as truncated JSON: the transport's error says why.
        received?;
        decoded.map_err(|source| Error::Decode {
            what: "app list".to_owned(),
            url: url.to_string(),
            source,
        })
    }

    /// `GET /v2/apps/{id}`: one app, with the nested resources of `embed`.
    pub async fn get_app(&self, app: &AppId, embeds: &[Embed]) -> Result<App, Error> {
        let mut call = Call::new(Method::GET, Route::App, app_path(app, []));
        embed(&mut call, "app", embeds);
        let single: AppSingle = self.json(call, &app_target(app), "app").await?;
        Ok(single.app)
    }

    /// `POST /v2/apps`: creates `app` and starts its deployment.
    pub async fn create_app(&self, app: &App) -> Result<AppCreated, Error> {
        let mut call = Call::new(Method::POST, Route::Apps, path(["v2", "apps"]));
        call.body = Some(serde_json::to_vec(app).expect("an App always serialises"));
        let target = Target::App {
            app: app.id.clone(),
            creating: true,
        };
        let (url, headers, body) = self.fetch(call, &target).await?;
        let deployment_id = headers
            .get(DEPLOYMENT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(DeploymentId::from);
        Ok(AppCreated {
            app: decode(&url, &body, "created app")?,
            deployment_id,
        })
    }

    /// `PUT /v2/apps/{id}?partialUpdate=false`: replaces the definition of `app` with
    /// `definition` (fields left `None` take Marathon's defaults). With `force`, running
    /// deployments of the app are cancelled instead of answering [`Error::Locked`].
    pub async fn update_app(
        &self,
        app: &AppId,
        definition: &App,
        force: bool,
    ) -> Result<DeploymentResult, Error> {
        self.put_app(app, definition, force, false).await
    }

    /// `PUT /v2/apps/{id}?partialUpdate=true`: changes only the fields set in `patch`
    /// (its `id` is ignored by Marathon in favour of `app`), e.g. `instances` to scale.
    pub async fn patch_app(
        &self,
        app: &AppId,
        patch: &App,
        force: bool,
    ) -> Result<DeploymentResult, Error> {
        self.put_app(app, patch, force, true).await
    }

    async fn put_app(
        &self,
        app: &AppId,
        definition: &App,
        force: bool,
        partial: bool,
    ) -> Result<DeploymentResult, Error> {
        let mut call = Call::new(Method::PUT, Route::App, app_path(app, []));
        call.query.push(("force", force.to_string()));
        call.query.push(("partialUpdate", partial.to_string()));
        call.body = Some(serde_json::to_vec(definition).expect("an App always serialises"));
        self.json(call, &app_target(app), "deployment result").await
    }

    /// `DELETE /v2/apps/{id}`: removes the app. `force` is sent explicitly because Marathon
    /// defaults to `force=true` here.
    pub async fn delete_app(&self, app: &AppId, force: bool) -> Result<DeploymentResult, Error> {
        let mut call = Call::new(Method::DELETE, Route::App, app_path(app, []));
        call.query.push(("force", force.to_string()));
        self.json(call, &app_target(app), "deployment result").await
    }

    /// `POST /v2/apps/{id}/restart`: replaces every task of the app.
    pub async fn restart_app(&self, app: &AppId, force: bool) -> Result<DeploymentResult, Error> {
        let mut call = Call::new(Method::POST, Route::AppRestart, app_path(app, ["restart"]));
        call.query.push(("force", force.to_string()));
        self.json(call, &app_target(app), "deployment result").await
    }

    /// `GET /v2/apps/{id}/versions`: the app's versions, in the order Marathon's store lists
    /// them (undocumented, and not always sorted); sort them where order matters: versions of
    /// one Marathon are timestamps of one format, so their order is their age.
    pub async fn app_versions(&self, app: &AppId) -> Result<Vec<Version>, Error> {
        let call = Call::new(Method::GET, Route::AppVersions, app_path(app, ["versions"]));
        let list: VersionList = self.json(call, &app_target(app), "version list").await?;
        Ok(list.versions)
    }

    /// `GET /v2/apps/{id}/versions/{version}`: the app's definition at `version`.
    pub async fn app_version(&self, app: &AppId, version: &Version) -> Result<App, Error> {
        let call = Call::new(
            Method::GET,
            Route::AppVersion,
            app_path(app, ["versions", version.as_str()]),
        );
        let target = Target::AppVersion {
            app: app.clone(),
            version: version.to_string(),
        };
        self.json(call, &target, "app version").await
    }

    /// `GET /v2/apps/{id}/tasks`: the app's tasks.
    pub async fn app_tasks(&self, app: &AppId) -> Result<Vec<Task>, Error> {
        let call = Call::new(Method::GET, Route::AppTasks, app_path(app, ["tasks"]));
        let list: TaskList = self.json(call, &app_target(app), "task list").await?;
        Ok(list.tasks)
    }

    /// `DELETE /v2/apps/{id}/tasks`: kills the app's tasks (on `host` only, if given).
    /// With `scale` the app is scaled down by the number killed; with `wipe` their local
    /// volumes are destroyed.
    pub async fn kill_app_tasks(
        &self,
        app: &AppId,
        host: Option<&str>,
        scale: bool,
        wipe: bool,
    ) -> Result<KillOutcome, Error> {
        let mut call = Call::new(Method::DELETE, Route::AppTasks, app_path(app, ["tasks"]));
        call.query.extend(host.map(|h| ("host", h.to_owned())));
        call.query.push(("scale", scale.to_string()));
        call.query.push(("wipe", wipe.to_string()));
        self.json(call, &app_target(app), "kill answer").await
    }

    /// `DELETE /v2/apps/{id}/tasks/{task}`: kills one task; `scale` and `wipe` as in
    /// [`MarathonClient::kill_app_tasks`].
    pub async fn kill_task(
        &self,
        app: &AppId,
        task: &TaskId,
        scale: bool,
        wipe: bool,
    ) -> Result<KillOutcome, Error> {
        let mut call = Call::new(
            Method::DELETE,
            Route::AppTask,
            app_path(app, ["tasks", task.as_str()]),
        );
        call.query.push(("scale", scale.to_string()));
        call.query.push(("wipe", wipe.to_string()));
        let target = Target::Task {
            app: app.clone(),
            task: task.clone(),
        };
        self.json(call, &target, "kill answer").await
    }

    /// `GET /v2/tasks`: every task, or those in `status`.
    pub async fn tasks(&self, status: Option<TaskStatusFilter>) -> Result<Vec<Task>, Error> {
        let mut call = Call::new(Method::GET, Route::Tasks, path(["v2", "tasks"]));
        if let Some(status) = status {
            let value = match status {
                TaskStatusFilter::Running => "running",
                TaskStatusFilter::Staging => "staging",
            };
            call.query.push(("status", value.to_owned()));
        }
        let list: TaskList = self
            .json(call, &Target::Other("task list"), "task list")
            .await?;
        Ok(list.tasks)
    }

    /// `GET /v2/deployments`: the running deployments.
    pub async fn deployments(&self) -> Result<Vec<Deployment>, Error> {
        let call = Call::new(Method::GET, Route::Deployments, path(["v2", "deployments"]));
        self.json(call, &Target::Other("deployment list"), "deployment list")
            .await
    }

    /// `DELETE /v2/deployments/{id}`: cancels a deployment. Without `force`, Marathon starts
    /// a deployment that rolls the change back and returns it; with `force` it just stops
    /// (leaving a possibly mixed state) and `None` is returned.
    pub async fn cancel_deployment(
        &self,
        deployment: &DeploymentId,
        force: bool,
    ) -> Result<Option<DeploymentResult>, Error> {
        let mut call = Call::new(
            Method::DELETE,
            Route::Deployment,
            path(["v2", "deployments", deployment.as_str()]),
        );
        call.query.push(("force", force.to_string()));
        let (url, _, body) = self
            .fetch(call, &Target::Deployment(deployment.clone()))
            .await?;
        if body.is_empty() {
            return Ok(None);
        }
        decode(&url, &body, "deployment result").map(Some)
    }

    /// `GET /v2/queue`: the apps (and pods) with instances waiting to be launched, with
    /// their launch delays and why the offers Marathon processed for them did not fit.
    pub async fn queue(&self) -> Result<Vec<QueueEntry>, Error> {
        let call = Call::new(Method::GET, Route::Queue, path(["v2", "queue"]));
        let queue: Queue = self
            .json(call, &Target::Other("launch queue"), "launch queue")
            .await?;
        Ok(queue.queue)
    }

    /// `GET /v2/info`: what the answering Marathon says about itself.
    pub async fn info(&self) -> Result<Info, Error> {
        let call = Call::new(Method::GET, Route::Info, path(["v2", "info"]));
        self.json(call, &Target::Other("info"), "info").await
    }

    /// `GET /v2/leader`: the current leader; [`Error::Unavailable`] when none is elected.
    pub async fn leader(&self) -> Result<Leader, Error> {
        let call = Call::new(Method::GET, Route::Leader, path(["v2", "leader"]));
        self.json(call, &Target::Leader, "leader").await
    }

    /// `GET /ping`: whether a Marathon answers.
    pub async fn ping(&self) -> Result<(), Error> {
        let mut call = Call::new(Method::GET, Route::Ping, path(["ping"]));
        call.accept = "text/plain";
        self.fetch(call, &Target::Other("ping")).await.map(|_| ())
    }

    /// `GET /v2/events`: the event stream, limited to `kinds` (all events when empty), with
    /// light deployment plans; see [`MarathonClient::events_with`].
    pub async fn events(&self, kinds: &[EventKind]) -> Result<EventStream, Error> {
        self.events_with(&EventQuery {
            kinds: kinds.to_vec(),
            plan_format: PlanFormat::Light,
        })
        .await
    }

    /// `GET /v2/events`: the event stream as `query` asks for it.
    ///
    /// Returns once the stream's headers arrived. A non-leader's 302 to the leader is
    /// followed. The stream ends when the connection does; reconnecting, and relisting
    /// because Marathon does not replay missed events, is the caller's job. The stream has
    /// no idle timeout (Marathon may be silent for long); bound the wait for the next event
    /// yourself if a silent stream must be told from a dead one.
    pub async fn events_with(&self, query: &EventQuery) -> Result<EventStream, Error> {
        let (url, response) = self.open_events(query).await?;
        Ok(EventStream::new(url, response.bytes_stream()))
    }

    /// `GET /v2/events` limited to `kinds`, with light plans, as [`MarathonClient::events`],
    /// but undecoded: the body's parts as they arrive, for an [`EventDecoder`] elsewhere.
    ///
    /// [`EventDecoder`]: super::EventDecoder
    pub async fn event_body(&self, kinds: &[EventKind]) -> Result<EventBody, Error> {
        let query = EventQuery {
            kinds: kinds.to_vec(),
            plan_format: PlanFormat::Light,
        };
        let (url, response) = self.open_events(&query).await?;
        Ok(EventBody::new(url, response))
    }

    /// Asks for the event stream; the answer once its headers arrived, if it succeeded.
    async fn open_events(&self, query: &EventQuery) -> Result<(Url, reqwest::Response), Error> {
        let mut call = Call::new(Method::GET, Route::Events, path(["v2", "events"]));
        // Marathon's Jetty answers 405 unless Accept is exactly this.
        call.accept = "text/event-stream";
        call.streaming = true;
        call.query.extend(
            query
                .kinds
                .iter()
                .map(|k| ("event_type", k.as_str().to_owned())),
        );
        if query.plan_format == PlanFormat::Light {
            call.query.push(("plan-format", "light".to_owned()));
        }
        let Answer { url, response } = self.endpoints.send(&call).await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(error::from_status(
                &Target::Other("event stream"),
                &url,
                status,
                &body,
            ));
        }
        Ok((url, response))
    }

    /// Sends `call` and decodes a successful JSON answer.
    async fn json<T: DeserializeOwned>(
        &self,
        call: Call,
        target: &Target,
        what: &str,
    ) -> Result<T, Error> {
        let (url, _, body) = self.fetch(call, target).await?;
        decode(&url, &body, what)
    }

    /// Sends `call`; returns the answer's URL, headers and body if it succeeded, else the
    /// error the status means for `target`.
    async fn fetch(&self, call: Call, target: &Target) -> Result<(Url, HeaderMap, Vec<u8>), Error> {
        let Answer { url, response } = self.endpoints.send(&call).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response, &url).await?;
        if !status.is_success() {
            return Err(error::from_status(target, &url, status, &body));
        }
        Ok((url, headers, body))
    }

    /// Sends `call`; returns the answer's URL and the response, its body not read yet, if it
    /// succeeded, else the error the status means for `target`.
    async fn answer(&self, call: Call, target: &Target) -> Result<(Url, reqwest::Response), Error> {
        let Answer { url, response } = self.endpoints.send(&call).await?;
        let status = response.status();
        if !status.is_success() {
            let body = read_body(response, &url).await?;
            return Err(error::from_status(target, &url, status, &body));
        }
        Ok((url, response))
    }
}

/// Parts of a body handed from the connection to its decoder at once, at most.
const PARTS_IN_FLIGHT: usize = 8;
/// The decoder's read buffer.
const DECODE_BUFFER: usize = 64 * 1024;
/// Apps decoded from a list handed out together.
const APPS_PER_PART: usize = 64;
/// Parts of decoded apps waiting to be handed out, at most.
const APP_PARTS_IN_FLIGHT: usize = 2;

/// A body as it arrives, read on a blocking thread: each part is dropped once read.
struct Arriving<P> {
    parts: tokio::sync::mpsc::Receiver<P>,
    part: Option<P>,
    read: usize,
}

impl<P: AsRef<[u8]>> std::io::Read for Arriving<P> {
    fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(part) = &self.part {
                let rest = &part.as_ref()[self.read..];
                if !rest.is_empty() {
                    let n = rest.len().min(into.len());
                    into[..n].copy_from_slice(&rest[..n]);
                    self.read += n;
                    return Ok(n);
                }
            }
            // No more parts: the end of the body (or of what arrived of it).
            let Some(part) = self.parts.blocking_recv() else {
                return Ok(0);
            };
            self.part = Some(part);
            self.read = 0;
        }
    }
}

/// The most room taken up front for a body whose length Marathon announces; a longer body
/// still arrives whole, it just grows the buffer.
const BODY_ROOM_UP_FRONT: u64 = 64 << 20;

/// Reads `response`'s body into one buffer, each part dropped once copied: a full list at
/// 30,000 tasks is 15 MB, held once rather than as its parts, a copy and a second copy.
async fn read_body(mut response: reqwest::Response, url: &Url) -> Result<Vec<u8>, Error> {
    let room = response
        .content_length()
        .unwrap_or(0)
        .min(BODY_ROOM_UP_FRONT);
    let mut body = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    while let Some(part) = next_part(&mut response, url).await? {
        body.extend_from_slice(part.as_ref());
    }
    Ok(body)
}

/// The next part of `response`'s body; `None` at its end.
pub(super) async fn next_part(
    response: &mut reqwest::Response,
    url: &Url,
) -> Result<Option<impl AsRef<[u8]> + Send + 'static + use<>>, Error> {
    response
        .chunk()
        .await
        .map_err(|source| transport_error(url, source))
}

fn decode<T: DeserializeOwned>(url: &Url, body: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        what: what.to_owned(),
        url: url.to_string(),
        source,
    })
}

fn path<const N: usize>(segments: [&str; N]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

/// `v2/apps/<app segments>/<rest>`.
fn app_path<const N: usize>(app: &AppId, rest: [&str; N]) -> Vec<String> {
    ["v2", "apps"]
        .into_iter()
        .chain(app.segments())
        .chain(rest)
        .map(str::to_owned)
        .collect()
}

fn app_target(app: &AppId) -> Target {
    Target::App {
        app: app.clone(),
        creating: false,
    }
}

fn embed(call: &mut Call, prefix: &str, embeds: &[Embed]) {
    call.query.extend(
        embeds
            .iter()
            .map(|e| ("embed", format!("{prefix}.{}", e.name()))),
    );
}

fn without_userinfo(url: &Url) -> Url {
    let mut url = url.clone();
    // Only fails for URLs without a host, which `new` rejects anyway.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_ca_file(path: &PathBuf) -> Result<Vec<Certificate>, Error> {
    let ca_error = |message: String| Error::CaFile {
        path: path.clone(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let certificates = Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(ca_error("it holds no PEM certificate".into()));
    }
    Ok(certificates)
}
