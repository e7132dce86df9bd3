//! localmarathon: a Marathon-API-compatible scheduler that really runs tasks on one machine.
//!
//! It speaks Marathon's REST API v2 and event stream closely enough for unmodified Marathon
//! clients, and runs command apps as child processes on simulated agents (each an address in
//! 127.0.0.0/8 with resources and a port range), with Mesos task states, restarts with backoff,
//! rolling deployments, health checks, placement constraints and Marathon's error bodies.
//!
//! ```no_run
//! # async fn demo() -> Result<(), localmarathon::Error> {
//! use localmarathon::{LocalMarathon, ExecutorKind};
//! let handle = LocalMarathon::builder()
//!     .executor(ExecutorKind::Process)
//!     .listen("127.0.0.1:0")
//!     .start()
//!     .await?;
//! println!("Marathon API at {}", handle.url());
//! handle.shutdown().await; // every task process is gone when this returns
//! # Ok(()) }
//! ```
//!
//! The handle can stop and restart the HTTP API on the same address while tasks keep running
//! ([`Handle::stop_api`], [`Handle::start_api`]), the way a Marathon outage looks to clients
//! while Mesos keeps the tasks.

#![warn(missing_docs)]

pub mod agent;
pub mod api;
pub mod app;
pub mod app_id;
pub mod app_normalization;
pub mod app_update;
pub mod changes;
pub mod deployment;
pub mod deployments;
pub mod environment;
pub mod event_bus;
pub mod events;
pub mod executor;
pub mod group;
pub mod health;
pub mod launch_delay;
pub mod offers;
pub mod persistence;
pub mod placement;
pub mod scheduler;
pub mod state;
pub mod task;
pub mod timestamp;
pub mod validation;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::ServiceExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer;

pub use agent::{AgentInfo, AgentSpec};
pub use app_id::AppId;
pub use executor::ExecutorKind;
pub use task::{ExitStatus, TaskState};

use executor::Executor;
use executor::docker::DockerConfig;
use state::{Settings, Shared};

/// Errors of starting and running a localmarathon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; pick a free port (or port 0)")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox root could not be created.
    #[error("cannot create the sandbox directory {path}: {source}; pass a writable --work-dir")]
    Sandbox {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The executor could not start.
    #[error(transparent)]
    Executor(#[from] executor::Error),
    /// `start_api` while the API is already serving.
    #[error("the API already listens on {0}")]
    ApiRunning(SocketAddr),
    /// No agent configured.
    #[error("no agents configured: pass at least one --agent host=IP")]
    NoAgents,
    /// The state directory could not be used.
    #[error(transparent)]
    State(#[from] persistence::PersistError),
    /// A saved app could not be brought back.
    #[error("saved app could not be restored: {0}")]
    Restore(String),
}

impl Error {
    /// A label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Bind { .. } => "bind",
            Error::Sandbox { .. } => "sandbox",
            Error::Executor(_) => "executor",
            Error::ApiRunning(_) => "api_running",
            Error::NoAgents => "no_agents",
            Error::State(e) => e.metric_label(),
            Error::Restore(_) => "restore",
        }
    }
}

/// Entry point.
pub struct LocalMarathon;

impl LocalMarathon {
    /// A builder with three default agents, the process executor, `127.0.0.1:0` and a
    /// temporary sandbox directory.
    pub fn builder() -> Builder {
        Builder {
            agents: AgentSpec::defaults(),
            executor: ExecutorKind::Process,
            listen: "127.0.0.1:0".to_string(),
            sandbox_root: None,
            heartbeat: Duration::from_secs(10),
            state_dir: None,
            docker: DockerConfig::default(),
        }
    }
}

/// Configures a localmarathon.
#[derive(Debug, Clone)]
pub struct Builder {
    agents: Vec<AgentSpec>,
    executor: ExecutorKind,
    listen: String,
    sandbox_root: Option<PathBuf>,
    heartbeat: Duration,
    state_dir: Option<PathBuf>,
    docker: DockerConfig,
}

impl Builder {
    /// Keeps app definitions in `dir` across restarts (as Marathon keeps them in ZooKeeper);
    /// saved apps are restored and relaunched on start.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Replaces the agents.
    pub fn agents(mut self, agents: impl IntoIterator<Item = AgentSpec>) -> Self {
        self.agents = agents.into_iter().collect();
        self
    }

    /// Chooses the executor.
    pub fn executor(mut self, executor: ExecutorKind) -> Self {
        self.executor = executor;
        self
    }

    /// The Docker engine Docker-image tasks run on (`DOCKER_HOST` syntax, e.g.
    /// `unix:///var/run/docker.sock`); by default the one the `docker` CLI reaches.
    pub fn docker_host(mut self, host: impl Into<String>) -> Self {
        self.docker.host = Some(host.into());
        self
    }

    /// The Docker network `container/bridge` tasks join (default: Docker's `bridge`). A
    /// network made for the tasks lets a service on the host listen on its gateway address
    /// only, reachable from those containers (how the local stack offers them etcd).
    pub fn docker_bridge_network(mut self, network: impl Into<String>) -> Self {
        self.docker.bridge_network = network.into();
        self
    }

    /// Whether Docker images missing from the engine are pulled (default: never, so nothing
    /// reaches a registry; tasks of a missing image fail naming it).
    pub fn docker_pull(mut self, policy: executor::docker::PullPolicy) -> Self {
        self.docker.pull = policy;
        self
    }

    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// Where task sandboxes go (default: a temporary directory removed at shutdown).
    pub fn sandbox_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.sandbox_root = Some(path.into());
        self
    }

    /// The SSE heartbeat period (Marathon's is 10 s).
    pub fn event_heartbeat(mut self, period: Duration) -> Self {
        self.heartbeat = period;
        self
    }

    /// Starts the scheduler, the executor and the HTTP API.
    pub async fn start(self) -> Result<Handle, Error> {
        if self.agents.is_empty() {
            return Err(Error::NoAgents);
        }
        let (sandbox_root, temp) = match self.sandbox_root {
            Some(p) => {
                std::fs::create_dir_all(&p).map_err(|source| Error::Sandbox {
                    path: p.clone(),
                    source,
                })?;
                (p, None)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("localmarathon-")
                    .tempdir()
                    .map_err(|source| Error::Sandbox {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let listener = tokio::net::TcpListener::bind(&self.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: self.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: self.listen.clone(),
            source,
        })?;
        let cluster_id = uuid::Uuid::new_v4().to_string();
        let agents = self
            .agents
            .into_iter()
            .enumerate()
            .map(|(i, spec)| agent::Agent::new(&cluster_id, i, spec))
            .collect();
        let shared = Arc::new(Shared::new(
            Settings {
                cluster_id,
                sandbox_root: sandbox_root.clone(),
                executor: self.executor,
            },
            agents,
        ));
        let state_dir = match &self.state_dir {
            Some(dir) => Some(persistence::StateDir::open(dir)?),
            None => None,
        };
        if let Some(dir) = &state_dir {
            let saved = dir.load()?;
            let mut st = shared.lock();
            for versions in saved {
                st.restore_saved(&shared, versions)
                    .map_err(|e| Error::Restore(e.to_string()))?;
            }
            st.unsaved = false;
        }
        let (update_tx, update_rx) = mpsc::unbounded_channel();
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let executor = Arc::new(Executor::start(
            self.executor,
            self.docker.clone(),
            update_tx,
        )?);
        let stop = CancellationToken::new();
        let probes = TaskTracker::new();
        let scheduler = tokio::spawn(scheduler::run(
            shared.clone(),
            executor.clone(),
            scheduler::Inputs {
                updates: update_rx,
                probes: probe_rx,
                probe_tx,
                state_dir,
            },
            probes.clone(),
            stop.clone(),
        ));
        let handle = Handle {
            shared,
            executor,
            addr,
            heartbeat: self.heartbeat,
            stop,
            probes,
            scheduler: Mutex::new(Some(scheduler)),
            api: Mutex::new(None),
            sandbox_root,
            _temp: temp,
        };
        handle.serve(listener);
        Ok(handle)
    }
}

struct ApiServer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A running localmarathon.
pub struct Handle {
    shared: Arc<Shared>,
    executor: Arc<Executor>,
    addr: SocketAddr,
    heartbeat: Duration,
    stop: CancellationToken,
    probes: TaskTracker,
    scheduler: Mutex<Option<JoinHandle<()>>>,
    api: Mutex<Option<ApiServer>>,
    sandbox_root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// What a test or tool may want to know about a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSnapshot {
    /// Task id.
    pub id: String,
    /// App id.
    pub app_id: AppId,
    /// Lifecycle state.
    pub state: TaskState,
    /// Agent hostname.
    pub host: String,
    /// Host ports.
    pub ports: Vec<u16>,
    /// Main process id (process executor, once started).
    pub pid: Option<u32>,
    /// Sandbox directory.
    pub sandbox: PathBuf,
}

impl Handle {
    fn serve(&self, listener: tokio::net::TcpListener) {
        let stop = CancellationToken::new();
        let router = api::router(api::ApiState {
            shared: self.shared.clone(),
            heartbeat: self.heartbeat,
            stop: stop.clone(),
            leader: self.addr,
        });
        let service = tower::util::MapRequestLayer::new(api::normalise_path).layer(router);
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let make = ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                api::Connection,
            >(service);
            if let Err(e) = axum::serve(listener, make)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "HTTP API stopped with an error");
            }
        });
        *self.api.lock().unwrap_or_else(|e| e.into_inner()) = Some(ApiServer { stop, task });
    }

    /// The API's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where sandboxes are.
    pub fn sandbox_root(&self) -> &Path {
        &self.sandbox_root
    }

    /// The agents and what is in use on them.
    pub fn agents(&self) -> Vec<AgentInfo> {
        self.shared.lock().agents.iter().map(|a| a.info()).collect()
    }

    /// How often clients listed apps, read single apps, and had their event stream cut
    /// because they fell behind.
    pub fn traffic(&self) -> api::TrafficCounts {
        self.shared.traffic.counts()
    }

    /// Every active task.
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        let st = self.shared.lock();
        st.apps
            .values()
            .flat_map(|r| r.instances.values())
            .filter_map(|i| {
                let t = i.task.as_ref()?;
                Some(TaskSnapshot {
                    id: t.id.to_string(),
                    app_id: i.def.id.clone(),
                    state: t.state,
                    host: st.agents[t.agent.0].hostname.clone(),
                    ports: t.ports.clone(),
                    pid: t.pid,
                    sandbox: t.sandbox.clone(),
                })
            })
            .collect()
    }

    /// The process id of a task's main process, once it runs.
    pub fn task_pid(&self, task_id: &str) -> Option<u32> {
        self.tasks()
            .into_iter()
            .find(|t| t.id == task_id)
            .and_then(|t| t.pid)
    }

    /// Ends a simulated task as if its process had exited with `status` (sim executor only;
    /// with real processes, signal the pid instead). False if no such running task.
    pub fn simulate_task_exit(&self, task_id: &str, status: ExitStatus) -> bool {
        self.executor
            .simulate_exit(&task::TaskId::from_raw(task_id), status)
    }

    /// Stops the HTTP API (closing connections and event streams); tasks keep running.
    pub async fn stop_api(&self) {
        let server = self.api.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(server) = server {
            server.stop.cancel();
            let _ = server.task.await;
        }
    }

    /// Serves the API again on the same address, with the state it had.
    pub async fn start_api(&self) -> Result<(), Error> {
        if self.api.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return Err(Error::ApiRunning(self.addr));
        }
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: self.addr.to_string(),
                source,
            })?;
        self.serve(listener);
        Ok(())
    }

    /// Stops everything; when this returns no task process is left running.
    pub async fn shutdown(self) {
        self.stop_api().await;
        self.stop.cancel();
        let scheduler = self
            .scheduler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = scheduler {
            let _ = s.await;
        }
        self.probes.close();
        self.probes.wait().await;
        self.executor.shutdown().await;
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A handle dropped without shutdown (a panicking test) still leaves nothing running.
        self.stop.cancel();
        if let Some(server) = self.api.lock().unwrap_or_else(|e| e.into_inner()).take() {
            server.stop.cancel();
            server.task.abort();
        }
        self.executor.kill_all_now();
    }
}
