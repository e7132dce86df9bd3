//! `theseus apply --message`, `rollout history`, `undo`, `pause` and `resume` through the
//! binary, against a real etcd, localmarathon running real processes and the controller in
//! this process: what a user types to see and steer rollouts.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use localmarathon::{ExecutorKind, LocalMarathon};
use serde_json::{Value, json};
use theseus::api::{ConditionKind, DeploymentStatus, Phase, RevisionRecord};
use theseus::marathon::{AppId, MarathonClient, MarathonConfig};
use theseus::store::{EtcdConfig, Layout, Store};
use theseus_controllers::controller::{Controller, ControllerConfig};
use theseus_testkit::EtcdServer;

const KEY: &str = "web/dev";
const DEADLINE: Duration = Duration::from_secs(60);

fn theseus(etcd: &EtcdServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(args)
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        .env_remove("THESEUS_PREFIX")
        .output()
        .expect("run theseus")
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "theseus failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "theseus succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// etcd, localmarathon on a runtime of its own, the controller, and a store for the test.
struct Stack {
    etcd: EtcdServer,
    store: Store,
    marathon: MarathonClient,
    controller: Option<Controller>,
    _localmarathon: localmarathon::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Stack {
    async fn start() -> Stack {
        let etcd = EtcdServer::start();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime
            .spawn(async {
                LocalMarathon::builder()
                    .executor(ExecutorKind::Process)
                    .start()
                    .await
            })
            .await
            .unwrap()
            .expect("localmarathon starts");
        let mut etcd_config = EtcdConfig::new(etcd.endpoints());
        etcd_config.request_timeout = Duration::from_secs(2);
        let mut marathon_config = MarathonConfig::new(vec![handle.url().parse().unwrap()]);
        marathon_config.request_timeout = Duration::from_secs(5);
        let mut config = ControllerConfig::new(etcd_config.clone(), marathon_config.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.lease_ttl = Duration::from_secs(2);
        let controller = Controller::start(config).await.unwrap();
        let store = Store::connect(etcd_config, Layout::default())
            .await
            .unwrap();
        Stack {
            etcd,
            store,
            marathon: MarathonClient::new(marathon_config).unwrap(),
            controller: Some(controller),
            _localmarathon: handle,
            runtime: Some(runtime),
        }
    }

    async fn status(&self) -> Option<DeploymentStatus> {
        self.store
            .get_json::<DeploymentStatus>("/observed/web/dev/status")
            .await
            .unwrap()
            .map(|(status, _)| status)
    }

    async fn revision(&self) -> i64 {
        self.store
            .get("/desired/web/dev")
            .await
            .unwrap()
            .unwrap()
            .mod_revision
    }

    async fn desired(&self) -> Value {
        serde_json::from_slice(
            &self
                .store
                .get("/desired/web/dev")
                .await
                .unwrap()
                .unwrap()
                .value,
        )
        .unwrap()
    }

    /// Waits until the current revision of web/dev runs.
    async fn wait_running(&self) -> i64 {
        let revision = self.revision().await;
        theseus_testkit::wait_until_async(DEADLINE, "web/dev runs its revision", || async {
            self.status()
                .await
                .is_some_and(|s| s.observed_revision == revision && s.phase == Phase::Running)
        })
        .await;
        revision
    }

    async fn app_cmd(&self) -> Option<String> {
        self.marathon
            .get_app(&AppId::parse("/web/dev").unwrap(), &[])
            .await
            .unwrap()
            .cmd
    }

    async fn shutdown(mut self) {
        if let Some(controller) = self.controller.take() {
            controller.shutdown().await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn spec_file(dir: &Path, name: &str, cmd: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        json!({"service": "web", "name": "dev", "cmd": cmd, "instances": 1}).to_string(),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_each_revision_with_its_message_and_undo_brings_the_previous_spec_back() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first_file = spec_file(dir.path(), "first.json", "sleep 1000");
    let second_file = spec_file(dir.path(), "second.json", "sleep 2000");
    succeeded(&theseus(
        &stack.etcd,
        &["apply", "-f", &first_file, "--message", "first version"],
    ));
    let first = stack.wait_running().await;
    succeeded(&theseus(
        &stack.etcd,
        &["apply", "-f", &second_file, "-m", "more sleep"],
    ));
    let second = stack.wait_running().await;
    assert_eq!(stack.desired().await["change_cause"], "more sleep");

    let table = succeeded(&theseus(&stack.etcd, &["rollout", "history", KEY]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("REVISION"), "{table}");
    assert!(
        lines[1].starts_with(&first.to_string())
            && lines[1].contains("Superseded")
            && lines[1].ends_with("first version"),
        "{table}"
    );
    assert!(
        lines[2].starts_with(&second.to_string())
            && lines[2].contains("Running")
            && lines[2].ends_with("more sleep"),
        "{table}"
    );
    let records: Vec<RevisionRecord> = serde_json::from_str(&succeeded(&theseus(
        &stack.etcd,
        &["rollout", "history", KEY, "-o", "json"],
    )))
    .unwrap();
    assert_eq!(
        records.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [first, second]
    );

    let out = succeeded(&theseus(&stack.etcd, &["rollout", "undo", KEY]));
    assert!(
        out.contains(&format!("the spec of revision {first} written back")),
        "{out}"
    );
    let desired = stack.desired().await;
    assert_eq!(desired["cmd"], "sleep 1000");
    assert_eq!(
        desired["change_cause"],
        format!("undo: back to revision {first} from revision {second} (first version)")
    );
    stack.wait_running().await;
    assert_eq!(stack.app_cmd().await.as_deref(), Some("sleep 1000"));

    let error = failed(&theseus(
        &stack.etcd,
        &["rollout", "undo", KEY, "--to-revision", "999999"],
    ));
    assert!(
        error.contains("/observed/web/dev/history/999999"),
        "{error}"
    );
    let error = failed(&theseus(&stack.etcd, &["rollout", "undo", "web/none"]));
    assert!(error.contains("/desired/web/none"), "{error}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_changes_back_from_marathon_until_resume() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first_file = spec_file(dir.path(), "first.json", "sleep 1000");
    succeeded(&theseus(&stack.etcd, &["apply", "-f", &first_file]));
    stack.wait_running().await;

    let out = succeeded(&theseus(&stack.etcd, &["rollout", "pause", KEY]));
    assert!(out.starts_with("web/dev: paused"), "{out}");
    assert_eq!(stack.desired().await["paused"], true);
    let again = succeeded(&theseus(&stack.etcd, &["rollout", "pause", KEY]));
    assert!(again.contains("already paused"), "{again}");

    // A change written while paused, keeping `paused`, waits.
    let mut changed = stack.desired().await;
    changed["cmd"] = json!("sleep 2000");
    stack
        .store
        .put("/desired/web/dev", changed.to_string())
        .await
        .unwrap();
    let revision = stack.revision().await;
    theseus_testkit::wait_until_async(DEADLINE, "the status says paused", || async {
        stack.status().await.is_some_and(|s| {
            s.observed_revision == revision
                && s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| c.reason == "Paused")
        })
    })
    .await;
    assert_eq!(stack.app_cmd().await.as_deref(), Some("sleep 1000"));

    succeeded(&theseus(&stack.etcd, &["rollout", "resume", KEY]));
    assert!(stack.desired().await.get("paused").is_none());
    stack.wait_running().await;
    assert_eq!(stack.app_cmd().await.as_deref(), Some("sleep 2000"));
    stack.shutdown().await;
}
