//! What the controller's integration tests share: a real etcd (testkit), localmarathon in
//! process (real task processes, or its simulated executor for scale), the controller in
//! process through the library or as the real binary (where a test must kill it), and waits
//! with a deadline. Everything started here stops when its handle drops, also when a test
//! fails; spawned controllers also die with the test process (`PR_SET_PDEATHSIG`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use localmarathon::{AgentSpec, ExecutorKind, LocalMarathon, TaskSnapshot, TaskState};
use serde_json::Value;
use theseus::api::{
    DeploymentKey, DeploymentStatus, JournalEntry, Phase, RevisionRecord, TaskRecord,
};
use theseus::marathon::{self, App, AppId, AppQuery, MarathonClient, MarathonConfig};
use theseus::store::{EtcdConfig, KeyPath, Layout, Revision, Store};
use theseus_controllers::controller::{Controller, ControllerConfig};
use theseus_controllers::runtime::queue::Backoff;
use theseus_testkit::EtcdServer;

/// How long a test waits for something that should happen before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Connects to `etcd` under `prefix`.
pub async fn store(etcd: &EtcdServer, prefix: &str) -> Store {
    Store::connect(etcd_config(etcd), Layout::new(prefix).unwrap())
        .await
        .unwrap()
}

fn etcd_config(etcd: &EtcdServer) -> EtcdConfig {
    let mut config = EtcdConfig::new(etcd.endpoints());
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    config
}

/// Awaits `condition()` until it yields `true`; panics naming `what` after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    theseus_testkit::wait_until_async(DEADLINE, what, condition).await;
}

/// Runs `etcdctl` against `etcd` and returns its standard output; panics if it fails.
pub fn etcdctl(etcd: &EtcdServer, args: &[&str]) -> String {
    theseus_testkit::expect_success(&etcd.etcdctl(args), &args.join(" "))
}

/// localmarathon on a runtime of its own, so that its scheduler's work never delays the
/// controller under test (which shares no thread with it, as in production).
pub struct Marathon {
    handle: Option<Arc<localmarathon::Handle>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Marathon {
    async fn start(builder: localmarathon::Builder) -> Marathon {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("localmarathon")
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime
            .spawn(async move { builder.start().await })
            .await
            .unwrap()
            .expect("localmarathon starts");
        Marathon {
            handle: Some(Arc::new(handle)),
            runtime: Some(runtime),
        }
    }

    fn handle(&self) -> &Arc<localmarathon::Handle> {
        self.handle.as_ref().unwrap()
    }

    /// The API's base URL.
    pub fn url(&self) -> String {
        self.handle().url()
    }

    /// Every active task.
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        self.handle().tasks()
    }

    /// How often clients listed apps, read single apps, and had their event stream cut.
    pub fn traffic(&self) -> localmarathon::api::TrafficCounts {
        self.handle().traffic()
    }

    /// The tasks of app `id` in `state`.
    pub fn tasks_of(&self, id: &str, state: TaskState) -> Vec<TaskSnapshot> {
        self.tasks()
            .into_iter()
            .filter(|t| t.app_id.as_str() == id && t.state == state)
            .collect()
    }

    /// Stops the HTTP API (tasks keep running), as a Marathon outage looks to clients.
    pub async fn stop_api(&self) {
        let handle = Arc::clone(self.handle());
        let runtime = self.runtime.as_ref().unwrap();
        runtime
            .spawn(async move { handle.stop_api().await })
            .await
            .unwrap();
    }

    /// Serves the API again on the same address.
    pub async fn start_api(&self) -> Result<(), localmarathon::Error> {
        let handle = Arc::clone(self.handle());
        let runtime = self.runtime.as_ref().unwrap();
        runtime
            .spawn(async move { handle.start_api().await })
            .await
            .unwrap()
    }
}

impl Drop for Marathon {
    fn drop(&mut self) {
        // The handle's own drop kills every task; then the runtime goes without blocking.
        drop(self.handle.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// etcd, localmarathon and a store and Marathon client for the test's own reads and writes.
pub struct Cluster {
    pub etcd: EtcdServer,
    pub marathon: Marathon,
    /// The user's view of etcd (unfenced).
    pub store: Store,
    /// The user's view of Marathon.
    pub client: MarathonClient,
}

impl Cluster {
    /// etcd and a localmarathon running real processes.
    pub async fn start() -> Cluster {
        Cluster::start_with(ExecutorKind::Process).await
    }

    /// etcd and a localmarathon with `executor`.
    pub async fn start_with(executor: ExecutorKind) -> Cluster {
        let etcd = EtcdServer::start();
        let mut builder = LocalMarathon::builder().executor(executor);
        if executor == ExecutorKind::Sim {
            // Simulated tasks cost nothing: agents big enough that placement never limits
            // a scale test (the default three agents hold 48 tasks of the spec defaults).
            builder = builder.agents((11..=14).map(|i| AgentSpec {
                cpus: 100_000.0,
                mem: 100_000_000.0,
                disk: 100_000_000.0,
                ..AgentSpec::new([127, 0, 0, i].into())
            }));
        }
        let marathon = Marathon::start(builder).await;
        let store = store(&etcd, "").await;
        let client = MarathonClient::new(marathon_config(&marathon)).unwrap();
        Cluster {
            etcd,
            marathon,
            store,
            client,
        }
    }

    /// `etcd` and a localmarathon built by `builder`.
    pub async fn start_on(etcd: EtcdServer, builder: localmarathon::Builder) -> Cluster {
        let marathon = Marathon::start(builder).await;
        let store = store(&etcd, "").await;
        let client = MarathonClient::new(marathon_config(&marathon)).unwrap();
        Cluster {
            etcd,
            marathon,
            store,
            client,
        }
    }

    /// A controller configuration for this cluster: any free port, a 2 s lease, quick
    /// backoff, and no periodic resync (tests that want one set it), so that convergence
    /// proves the event-driven path.
    pub fn config(&self) -> ControllerConfig {
        let mut config =
            ControllerConfig::new(etcd_config(&self.etcd), marathon_config(&self.marathon));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.workers = 8;
        config.resync = Duration::from_secs(3600);
        config.lease_ttl = Duration::from_secs(2);
        config.drain = Duration::from_secs(5);
        config.backoff = Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_secs(1),
            jitter: true,
        };
        config.identity = "in-process".into();
        config
    }

    /// Starts a controller in this process with [`Cluster::config`].
    pub async fn controller(&self) -> Controller {
        Controller::start(self.config()).await.unwrap()
    }

    /// Starts the `theseus-controller` binary against this cluster, with extra environment
    /// and a 2 s lease.
    pub fn spawn_controller(&self, name: &str, env: &[(&str, &str)]) -> ControllerProcess {
        ControllerProcess::spawn(self, name, env, "2s")
    }

    /// Starts the `theseus-controller` binary with a lease of `lease_ttl` (e.g. `120s`).
    pub fn spawn_controller_with_lease(&self, name: &str, lease_ttl: &str) -> ControllerProcess {
        ControllerProcess::spawn(self, name, &[], lease_ttl)
    }

    /// The key of `text` (`service/name`).
    pub fn key(text: &str) -> DeploymentKey {
        text.parse().unwrap()
    }

    /// Writes `spec` at `/desired/<key>`; returns the revision of the write.
    pub async fn put_spec(&self, key: &str, spec: &Value) -> Revision {
        self.store
            .put(
                &self.store.layout().desired(&Cluster::key(key)),
                spec.to_string(),
            )
            .await
            .unwrap()
    }

    /// Writes `spec` with `etcdctl put`, the way people do; returns the key's revision.
    pub fn etcdctl_put(&self, key: &str, spec: &Value) -> Revision {
        let path = self.store.layout().desired(&Cluster::key(key));
        etcdctl(&self.etcd, &["put", &path, &spec.to_string()]);
        let out = etcdctl(&self.etcd, &["get", &path, "-w", "json"]);
        serde_json::from_str::<Value>(&out).unwrap()["kvs"][0]["mod_revision"]
            .as_i64()
            .unwrap()
    }

    /// Deletes `/desired/<key>`.
    pub async fn delete_spec(&self, key: &str) {
        self.store
            .delete(&self.store.layout().desired(&Cluster::key(key)))
            .await
            .unwrap();
    }

    /// The status at `/observed/<key>/status`.
    pub async fn status(&self, key: &str) -> Option<DeploymentStatus> {
        self.store
            .get_json::<DeploymentStatus>(&self.store.layout().status(&Cluster::key(key)))
            .await
            .unwrap()
            .map(|(status, _)| status)
    }

    /// Waits until the status of `key` satisfies `done`; returns it.
    pub async fn wait_status(
        &self,
        key: &str,
        what: &str,
        done: impl Fn(&DeploymentStatus) -> bool,
    ) -> DeploymentStatus {
        let mut last = None;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let status = self.status(key).await;
            if status.as_ref().is_some_and(&done) {
                return status.unwrap();
            }
            last = status.or(last);
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {key} {what}; last status: {last:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `key` is `Running` at `revision`.
    pub async fn wait_running(&self, key: &str, revision: Revision) -> DeploymentStatus {
        self.wait_status(key, &format!("runs revision {revision}"), |s| {
            s.observed_revision == revision && s.phase == Phase::Running
        })
        .await
    }

    /// The history of `key` (`service/name`), by revision.
    pub async fn history(&self, key: &str) -> BTreeMap<Revision, RevisionRecord> {
        let key = Cluster::key(key);
        let layout = self.store.layout();
        let listing = self.store.list(&layout.history(&key)).await.unwrap();
        listing
            .entries
            .iter()
            .map(|entry| match layout.parse(&entry.key) {
                Some(KeyPath::History { revision, .. }) => (revision, entry.json().unwrap()),
                other => panic!("{} under the history is {other:?}", entry.key),
            })
            .collect()
    }

    /// The journal of `key` (`service/name`), in order.
    pub async fn journal(&self, key: &str) -> Vec<JournalEntry> {
        let key = Cluster::key(key);
        let listing = self
            .store
            .list(&self.store.layout().journal(&key))
            .await
            .unwrap();
        listing
            .entries
            .iter()
            .map(|entry| entry.json().unwrap())
            .collect()
    }

    /// The task records under `/observed/<key>/tasks/`, by task id. A record that does not
    /// decode fails the test: the controller only writes valid ones.
    pub async fn records(&self, key: &str) -> BTreeMap<String, TaskRecord> {
        let layout = self.store.layout();
        self.store
            .list(&layout.tasks(&Cluster::key(key)))
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|entry| match layout.parse(&entry.key) {
                Some(KeyPath::Task { task_id, .. }) => (task_id, entry.json().unwrap()),
                _ => panic!("`{}` is not a task record's key", entry.key),
            })
            .collect()
    }

    /// Waits until the records of `key` are exactly the tasks of its app in localmarathon,
    /// `running` of them, all running, each with its task's host and host ports; returns them.
    pub async fn wait_tree_matches(
        &self,
        key: &str,
        running: usize,
    ) -> BTreeMap<String, TaskRecord> {
        let app = format!("/{key}");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let records = self.records(key).await;
            let tasks: Vec<TaskSnapshot> = self
                .marathon
                .tasks()
                .into_iter()
                .filter(|t| t.app_id.as_str() == app)
                .collect();
            let matches = tasks.len() == running
                && records.len() == running
                && tasks.iter().all(|task| {
                    task.state == TaskState::Running
                        && records.get(&task.id).is_some_and(|record| {
                            let mut ports: Vec<u16> =
                                record.ports.values().map(|p| p.host).collect();
                            let mut expected = task.ports.clone();
                            ports.sort_unstable();
                            expected.sort_unstable();
                            record.is_running() && record.host == task.host && ports == expected
                        })
                });
            if matches {
                return records;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until the records of {key} are its {running} running tasks;\n\
                 records: {records:#?}\ntasks: {tasks:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The app `id` as Marathon reports it, or `None`.
    pub async fn app(&self, id: &str) -> Option<App> {
        match self.client.get_app(&AppId::parse(id).unwrap(), &[]).await {
            Ok(app) => Some(app),
            Err(marathon::Error::NotFound { .. }) => None,
            Err(error) => panic!("cannot read app {id}: {error}"),
        }
    }

    /// Every app in Marathon.
    pub async fn apps(&self) -> Vec<App> {
        self.client.list_apps(&AppQuery::default()).await.unwrap()
    }

    /// The running tasks of app `id`.
    pub fn running_tasks(&self, id: &str) -> Vec<TaskSnapshot> {
        self.marathon
            .tasks()
            .into_iter()
            .filter(|t| t.app_id.as_str() == id && t.state == TaskState::Running)
            .collect()
    }
}

fn marathon_config(marathon: &Marathon) -> MarathonConfig {
    let mut config = MarathonConfig::new(vec![marathon.url().parse().unwrap()]);
    config.connect_timeout = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(5);
    config
}

/// The `theseus-controller` binary, killed with SIGKILL when dropped.
pub struct ControllerProcess {
    child: Child,
    pub name: String,
    pub http: String,
}

impl ControllerProcess {
    fn spawn(
        cluster: &Cluster,
        name: &str,
        env: &[(&str, &str)],
        lease_ttl: &str,
    ) -> ControllerProcess {
        let port = theseus_testkit::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_theseus-controller"));
        command
            .args(["--etcd-endpoints", &cluster.etcd.endpoint()])
            .args(["--marathon", &cluster.marathon.url()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--lease-ttl",
                lease_ttl,
                "--workers",
                "8",
                "--identity",
                name,
            ])
            .env_remove("THESEUS_PREFIX")
            .env("RUST_LOG", "info,theseus_controllers=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        // SAFETY: between fork and exec only the async-signal-safe prctl(2) runs. It makes
        // the kernel kill the controller if the test process dies without dropping this.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command.spawn().expect("start theseus-controller");
        ControllerProcess {
            child,
            name: name.to_owned(),
            http: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Asks the process to stop (SIGTERM) and waits until it has.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap()
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `/metrics` text, or `None` while it does not answer.
    pub async fn metrics(&self) -> Option<String> {
        let response = reqwest::get(format!("{}/metrics", self.http)).await.ok()?;
        response.text().await.ok()
    }

    /// The value of the metric line starting with `series` (name and labels), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric(&self.metrics().await?, series)
    }

    /// Whether it says it leads.
    pub async fn leads(&self) -> bool {
        self.metric("theseus_controller_leader").await == Some(1.0)
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the first line of Prometheus `text` that starts with `series ` (a metric
/// name with its labels, as printed).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The sum of every series of metric `name` whose labels contain `labels` (e.g.
/// `action="create"`).
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reconciles the deployments reconciler of `controller` has run.
pub fn deployment_reconciles(controller: &Controller) -> f64 {
    metric_sum(
        &controller.metrics().encode(),
        "theseus_controller_reconciles_total",
        "controller=\"deployments\"",
    )
}
