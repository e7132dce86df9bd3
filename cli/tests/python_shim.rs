//! The Python shim for old images, run with Python 3 inside real tasks: a real etcd,
//! localmarathon running the tasks as processes, the controller writing their records, and
//! `guestutils.py` / `watcher.py` as `theseus guest install-python` writes them, calling the
//! `theseus` binary built here.

mod task_harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use localmarathon::ExecutorKind;
use serde_json::{Value, json};
use task_harness::{DEADLINE, run, success};
use theseus::api::{DeploymentKey, Phase, TaskRecord};
use theseus::marathon::MarathonConfig;
use theseus::store::{EtcdConfig, KeyPath, Layout, Store};
use theseus_controllers::controller::{Controller, ControllerConfig};
use theseus_controllers::runtime::queue::Backoff;
use theseus_testkit::{EtcdServer, wait_until_async};

/// etcd, localmarathon (on a runtime of its own, as in production it shares no thread with
/// the controller) and the controller; everything stops when dropped, task processes too.
struct Stack {
    marathon: Option<Arc<localmarathon::Handle>>,
    runtime: Option<tokio::runtime::Runtime>,
    controller: Option<Controller>,
    store: Store,
    _etcd: EtcdServer,
}

impl Stack {
    async fn start() -> Stack {
        let etcd = EtcdServer::start();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("localmarathon")
            .enable_all()
            .build()
            .unwrap();
        let marathon = runtime
            .spawn(async {
                localmarathon::LocalMarathon::builder()
                    .executor(ExecutorKind::Process)
                    .start()
                    .await
            })
            .await
            .unwrap()
            .expect("localmarathon starts");
        let mut etcd_config = EtcdConfig::new(etcd.endpoints());
        etcd_config.request_timeout = Duration::from_secs(2);
        etcd_config.connect_timeout = Duration::from_secs(1);
        let store = Store::connect(etcd_config.clone(), Layout::new("").unwrap())
            .await
            .unwrap();
        let mut marathon_config = MarathonConfig::new(vec![marathon.url().parse().unwrap()]);
        marathon_config.connect_timeout = Duration::from_secs(1);
        marathon_config.request_timeout = Duration::from_secs(5);
        let mut config = ControllerConfig::new(etcd_config, marathon_config);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.workers = 4;
        config.lease_ttl = Duration::from_secs(2);
        config.drain = Duration::from_secs(5);
        config.backoff = Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_secs(1),
            jitter: true,
        };
        let controller = Controller::start(config).await.unwrap();
        Stack {
            marathon: Some(Arc::new(marathon)),
            runtime: Some(runtime),
            controller: Some(controller),
            store,
            _etcd: etcd,
        }
    }

    async fn put_spec(&self, key: &str, spec: Value) -> i64 {
        let key: DeploymentKey = key.parse().unwrap();
        self.store
            .put(&self.store.layout().desired(&key), spec.to_string())
            .await
            .unwrap()
    }

    /// The task records of `key`, by task id.
    async fn records(&self, key: &str) -> BTreeMap<String, TaskRecord> {
        let key: DeploymentKey = key.parse().unwrap();
        let layout = self.store.layout();
        self.store
            .list(&layout.tasks(&key))
            .await
            .unwrap()
            .entries
            .into_iter()
            .filter_map(|entry| match layout.parse(&entry.key) {
                Some(KeyPath::Task { task_id, .. }) => Some((task_id, entry.json().unwrap())),
                _ => None,
            })
            .collect()
    }

    /// Waits until `key` runs `instances` tasks at its latest revision, each with a record;
    /// returns the records.
    async fn wait_running(&self, key: &str, instances: usize) -> BTreeMap<String, TaskRecord> {
        let deployment: DeploymentKey = key.parse().unwrap();
        wait_until_async(DEADLINE, &format!("{key} runs {instances}"), || async {
            let status = self
                .store
                .get_json::<theseus::api::DeploymentStatus>(
                    &self.store.layout().status(&deployment),
                )
                .await
                .unwrap();
            let running = status.is_some_and(|(s, _)| {
                s.phase == Phase::Running && s.instances.running == instances as u32
            });
            running && self.records(key).await.len() == instances
        })
        .await;
        self.records(key).await
    }

    /// Where localmarathon keeps the sandbox (with `stdout` and `stderr`) of `task_id`.
    fn sandbox(&self, task_id: &str) -> Option<PathBuf> {
        let root = self.marathon.as_ref().unwrap().sandbox_root().to_owned();
        std::fs::read_dir(root)
            .ok()?
            .filter_map(|agent| Some(agent.ok()?.path().join(task_id)))
            .find(|dir| dir.is_dir())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        drop(self.controller.take());
        // The handle's own drop kills every task; then the runtime goes without blocking.
        drop(self.marathon.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The image's `guestutils/` directory: the shim written by `theseus guest install-python`.
fn install_shim(dir: &Path) -> PathBuf {
    let target = dir.join("guestutils");
    success(&run(
        &[],
        &["guest", "install-python", target.to_str().unwrap()],
    ));
    target
}

/// A start-up script of an old image: asks guestutils who it is, who its peers are and
/// where a given container listens, writes the answers to `$RESULTS/<container>.json`,
/// then keeps running.
const STARTUP: &str = r#"
import json, os, sys, time
import guestutils as g

def raised(call):
    try:
        call()
    except g.GuestError as error:
        return [error.kind, str(error)]
    return None

db = os.environ["DB_CONTAINER"]
answers = {
    "environment": g.get_environment_name(),
    "service": g.get_service_name(),
    "container": g.get_container_name(),
    "host": g.get_container_host_address(),
    "internal_address": g.get_container_internal_address(),
    "http": g.get_port("http"),
    "missing_port_default": g.get_port("nope", 1234),
    "missing_port_none": g.get_port("nope", None),
    "missing_port": raised(lambda: g.get_port("nope")),
    "peers": g.get_node_list("web", ports=["http", "admin"], minimum=2, wait=60),
    "eu_peers": g.get_node_list("web", ports=["http"], labels=["eu"], minimum=0),
    "too_few": raised(lambda: g.get_node_list("web", minimum=5)),
    "db_host": g.get_specific_host("db", db),
    "db_port": g.get_specific_port("db", db, "client"),
    "db_exposed_port": g.get_specific_exposed_port("db", db, "client"),
    "db_missing_port_default": g.get_specific_port("db", db, "nope", -1),
    "db_missing_exposed_port_default": g.get_specific_exposed_port("db", db, "nope", -1),
    "db_missing_port": raised(lambda: g.get_specific_port("db", db, "nope")),
    "db_missing_container": raised(lambda: g.get_specific_host("db", "nobody")),
}
path = os.path.join(os.environ["RESULTS"], g.get_container_name() + ".json")
with open(path + ".tmp", "w") as out:
    json.dump(answers, out)
os.rename(path + ".tmp", path)
while True:
    time.sleep(60)
"#;

/// A task that only keeps running.
fn sleeping(instances: u32, ports: Value) -> Value {
    json!({"cmd": "exec sleep 1000", "instances": instances, "cpus": 0.1, "mem": 16,
           "ports": ports})
}

/// `PATH` with the directory of the `theseus` built here first.
fn path_with_theseus() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_theseus")).parent().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guestutils_in_a_task_finds_its_peers_and_ports() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shim = install_shim(dir.path());
    std::fs::write(shim.join("startup.py"), STARTUP).unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir(&results).unwrap();

    stack
        .put_spec(
            "db/main",
            sleeping(1, json!({"client": 5432, "peer": 5433})),
        )
        .await;
    let db = stack.wait_running("db/main", 1).await;
    let (db_task, db_record) = db.into_iter().next().unwrap();

    stack
        .put_spec(
            "web/dev",
            json!({
                "cmd": "exec python3 \"$SHIM/startup.py\"",
                "instances": 2, "cpus": 0.1, "mem": 32,
                "ports": {"http": 8080, "admin": 9090},
                "labels": ["eu"],
                // theseus is found on PATH, as in an image that installs it.
                "environment": {"SHIM": shim.to_str().unwrap(), "RESULTS": results.to_str().unwrap(),
                                "DB_CONTAINER": db_task, "PATH": path_with_theseus()},
            }),
        )
        .await;
    let web = stack.wait_running("web/dev", 2).await;
    let answers: BTreeMap<String, Value> = {
        let files = |ids: Vec<String>| {
            ids.iter()
                .map(|id| results.join(format!("{id}.json")))
                .collect::<Vec<_>>()
        };
        let paths = files(web.keys().cloned().collect());
        wait_until_async(
            DEADLINE,
            "both start-up scripts wrote their answers",
            || {
                let done = paths.iter().all(|p| p.exists());
                async move { done }
            },
        )
        .await;
        web.keys()
            .zip(paths)
            .map(|(id, path)| {
                let text = std::fs::read_to_string(path).unwrap();
                (id.clone(), serde_json::from_str(&text).unwrap())
            })
            .collect()
    };

    let mut peers: Vec<String> = web
        .values()
        .map(|r| {
            format!(
                "{}:{}:{}",
                r.host, r.ports["http"].host, r.ports["admin"].host
            )
        })
        .collect();
    peers.sort();
    for (task_id, record) in &web {
        let a = &answers[task_id];
        assert_eq!(a["environment"], "default", "{a:#}");
        assert_eq!(a["service"], "web");
        assert_eq!(a["container"], task_id.as_str());
        assert_eq!(a["host"], record.host.as_str());
        assert!(
            record
                .ip_addresses
                .iter()
                .any(|ip| a["internal_address"] == ip.as_str()),
            "{a:#}: {record:?}"
        );
        assert_eq!(a["http"], record.ports["http"].container);
        assert_eq!(a["missing_port_default"], 1234);
        assert_eq!(a["missing_port_none"], Value::Null);
        assert_eq!(a["missing_port"][0], "no_such_port");
        assert!(
            a["missing_port"][1].as_str().unwrap().contains(&format!(
                "container `{task_id}` of service `web` has no port `nope`"
            )),
            "{a:#}"
        );
        assert_eq!(a["peers"], json!(peers));
        assert_eq!(a["eu_peers"].as_array().unwrap().len(), 2);
        assert_eq!(a["too_few"][0], "too_few_nodes");
        assert!(
            a["too_few"][1].as_str().unwrap().contains("5 wanted"),
            "{a:#}"
        );
        assert_eq!(a["db_host"], db_record.host.as_str());
        assert_eq!(a["db_port"], db_record.ports["client"].host);
        assert_eq!(a["db_exposed_port"], db_record.ports["client"].container);
        assert_eq!(a["db_missing_port_default"], -1);
        assert_eq!(a["db_missing_exposed_port_default"], -1);
        assert_eq!(a["db_missing_port"][0], "no_such_port");
        assert_eq!(a["db_missing_container"][0], "no_such_container");
        assert!(
            a["db_missing_container"][1]
                .as_str()
                .unwrap()
                .contains(&format!(
                    "no container `nobody`; its containers are: `{db_task}`"
                )),
            "{a:#}"
        );
    }
}

/// A watch_methods module of an old image: appends `service delta call-number` for every
/// call, and fails its first call, which must not stop the later ones. The call number
/// counts in the module, so it also shows that one process makes every call.
const WATCH_METHODS: &str = r#"
import os
calls = []

def service_change(service, delta):
    calls.append(delta)
    with open(os.environ["CHANGES"], "a") as out:
        out.write("%s %d %d\n" % (service, delta, len(calls)))
    if len(calls) == 1:
        raise RuntimeError("the first call fails on purpose")
"#;

/// The calls recorded so far: (service, delta, call number).
fn calls(changes: &Path) -> Vec<(String, i64, usize)> {
    std::fs::read_to_string(changes)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (
                fields[0].to_owned(),
                fields[1].parse().unwrap(),
                fields[2].parse().unwrap(),
            )
        })
        .collect()
}

/// Waits until the deltas of the calls add up to `count`; returns the calls made since
/// the first `seen`.
async fn wait_for_count(changes: &Path, seen: usize, count: i64) -> Vec<(String, i64, usize)> {
    wait_until_async(
        DEADLINE,
        &format!("the deltas of service_change add up to {count}"),
        || {
            let total: i64 = calls(changes).iter().map(|(_, delta, _)| delta).sum();
            async move { total == count }
        },
    )
    .await;
    calls(changes)[seen..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_py_calls_service_change_with_the_delta_of_every_scale() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shim = install_shim(dir.path());
    std::fs::write(shim.join("watch_methods.py"), WATCH_METHODS).unwrap();
    let changes = dir.path().join("changes");

    stack
        .put_spec(
            "watcher/main",
            json!({
                "cmd": "exec python3 \"$SHIM/watcher.py\" --debounce 50ms",
                "instances": 1, "cpus": 0.1, "mem": 32,
                // theseus is found through THESEUS_BIN.
                "environment": {"SHIM": shim.to_str().unwrap(), "CHANGES": changes.to_str().unwrap(),
                                "WATCHES": "web", "THESEUS_BIN": env!("CARGO_BIN_EXE_theseus")},
            }),
        )
        .await;
    let watcher = stack.wait_running("watcher/main", 1).await;
    let watcher_task = watcher.keys().next().unwrap().clone();

    // At start: web does not exist yet, and that first call raises.
    wait_until_async(DEADLINE, "the first call is made", || {
        let made = !calls(&changes).is_empty();
        async move { made }
    })
    .await;
    assert_eq!(calls(&changes), [("web".to_owned(), 0, 1)]);
    let stderr_file = stack.sandbox(&watcher_task).unwrap().join("stderr");
    wait_until_async(DEADLINE, "the failure is logged with its traceback", || {
        let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
        let logged = stderr.contains("watch_methods.service_change('web', 0) raised")
            && stderr.contains("Traceback (most recent call last)")
            && stderr.contains("RuntimeError: the first call fails on purpose");
        async move { logged }
    })
    .await;

    let mut seen = calls(&changes).len();
    for (instances, direction) in [(2_u32, 1_i64), (3, 1), (1, -1)] {
        stack
            .put_spec("web/dev", sleeping(instances, json!({"http": 8080})))
            .await;
        stack.wait_running("web/dev", instances as usize).await;
        let step = wait_for_count(&changes, seen, i64::from(instances)).await;
        assert!(!step.is_empty());
        for (service, delta, _) in &step {
            assert_eq!(service, "web");
            assert_eq!(
                delta.signum(),
                direction,
                "scaling to {instances}: {step:?}"
            );
        }
        seen += step.len();
    }
    let all = calls(&changes);
    assert_eq!(
        all.iter().map(|(_, _, n)| *n).collect::<Vec<_>>(),
        (1..=all.len()).collect::<Vec<_>>(),
        "one process made every call, in order: {all:?}"
    );
}
