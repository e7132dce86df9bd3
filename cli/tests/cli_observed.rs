//! What the CLI shows of the controller's reports, through the binary against a real etcd:
//! `theseus get`'s desired-versus-observed columns, and `theseus rollout status`, which
//! follows the status as the controller writes it and says by its exit code how the rollout
//! ended.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use theseus_testkit::{EtcdServer, expect_success, wait_until};

/// A running `theseus rollout status`, killed if the test ends first.
struct Rollout {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Drop for Rollout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rollout {
    fn start(etcd: &EtcdServer, args: &[&str]) -> Rollout {
        let mut child = Command::new(env!("CARGO_BIN_EXE_theseus"))
            .args(["rollout", "status"])
            .args(args)
            .env("ETCD_ENDPOINTS", etcd.endpoint())
            .env_remove("THESEUS_PREFIX")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run theseus");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Rollout { child, lines }
    }

    /// The next line of output (blocks until it comes).
    fn line(&mut self) -> String {
        self.lines.next().expect("more output").unwrap()
    }

    /// Waits for the process to exit; its success and the rest of its output.
    fn finish(&mut self) -> (bool, String, String) {
        let mut status = None;
        wait_until(
            Duration::from_secs(60),
            "theseus rollout status exits",
            || {
                status = self.child.try_wait().unwrap();
                status.is_some()
            },
        );
        let rest: Vec<String> = self.lines.by_ref().map(Result::unwrap).collect();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status.unwrap().success(), rest.join("\n"), stderr)
    }
}

fn put(etcd: &EtcdServer, key: &str, value: &str) {
    expect_success(&etcd.etcdctl(&["put", key, value]), "put");
}

fn revision(etcd: &EtcdServer, key: &str) -> i64 {
    let out = expect_success(&etcd.etcdctl(&["get", key, "-w", "json"]), "get");
    serde_json::from_str::<Value>(&out).unwrap()["kvs"][0]["mod_revision"]
        .as_i64()
        .unwrap()
}

fn status(revision: i64, phase: &str, running: u32, conditions: Value) -> String {
    json!({
        "observed_revision": revision, "phase": phase, "conditions": conditions,
        "instances": {"desired": 2, "staged": 0, "running": running, "healthy": 0, "unhealthy": 0},
        "app_id": "/web/dev", "updated_at": "2026-11-25T10:00:00Z"
    })
    .to_string()
}

const STATUS: &str = "/observed/web/dev/status";

#[test]
fn rollout_status_follows_progress_and_succeeds_when_the_current_revision_runs() {
    let etcd = EtcdServer::start();
    put(
        &etcd,
        "/desired/web/dev",
        r#"{"cmd": "sleep 100", "instances": 2}"#,
    );
    let old = revision(&etcd, "/desired/web/dev");
    put(&etcd, STATUS, &status(old, "Running", 2, json!([])));
    put(
        &etcd,
        "/desired/web/dev",
        r#"{"cmd": "sleep 200", "instances": 2}"#,
    );
    let current = revision(&etcd, "/desired/web/dev");

    let mut rollout = Rollout::start(&etcd, &["web/dev", "--timeout", "60s"]);
    let first = rollout.line();
    assert!(
        first.contains(&format!(
            "waiting for the controller to act on revision {current}"
        )),
        "a Running status of the old revision is not success: {first}"
    );
    put(&etcd, STATUS, &status(current, "Deploying", 1, json!([])));
    assert_eq!(
        rollout.line(),
        "web/dev: Deploying: 1 of 2 instances running, 0 healthy, 0 staged"
    );
    put(&etcd, STATUS, &status(current, "Running", 2, json!([])));
    let (success, rest, stderr) = rollout.finish();
    assert!(success, "{stderr}");
    assert!(
        rest.contains(&format!("revision {current} rolled out")),
        "{rest}"
    );
}

#[test]
fn rollout_status_fails_on_an_invalid_current_revision_with_the_reason() {
    let etcd = EtcdServer::start();
    put(&etcd, "/desired/web/dev", r#"{"cmd": "x", "cpus": 0}"#);
    let current = revision(&etcd, "/desired/web/dev");
    let invalid = json!([{"type": "Valid", "status": false, "reason": "SpecInvalid",
        "message": "the spec is not valid, nothing was changed: /cpus: must be greater than 0, found the number 0"}]);
    put(&etcd, STATUS, &status(current, "Invalid", 0, invalid));
    let mut rollout = Rollout::start(&etcd, &["web/dev"]);
    let (success, _, stderr) = rollout.finish();
    assert!(!success);
    assert!(
        stderr.contains("is invalid") && stderr.contains("/cpus"),
        "{stderr}"
    );
}

#[test]
fn rollout_status_gives_up_after_the_timeout_saying_where_it_stood() {
    let etcd = EtcdServer::start();
    put(&etcd, "/desired/web/dev", r#"{"cmd": "x"}"#);
    let mut rollout = Rollout::start(&etcd, &["web/dev", "--timeout", "1s"]);
    let (success, _, stderr) = rollout.finish();
    assert!(!success);
    assert!(
        stderr.contains("timed out after 1s") && stderr.contains("waiting for the controller"),
        "{stderr}"
    );
}

#[test]
fn rollout_status_of_a_deployment_that_does_not_exist_fails() {
    let etcd = EtcdServer::start();
    let mut rollout = Rollout::start(&etcd, &["web/none"]);
    let (success, _, stderr) = rollout.finish();
    assert!(!success);
    assert!(stderr.contains("no deployment web/none"), "{stderr}");
}

#[test]
fn get_shows_the_desired_revision_beside_the_observed_phase_and_revision() {
    let etcd = EtcdServer::start();
    put(
        &etcd,
        "/desired/web/dev",
        r#"{"cmd": "sleep 100", "instances": 2}"#,
    );
    let old = revision(&etcd, "/desired/web/dev");
    put(&etcd, STATUS, &status(old, "Running", 2, json!([])));
    put(
        &etcd,
        "/desired/web/dev",
        r#"{"cmd": "sleep 100", "instances": 3}"#,
    );
    let current = revision(&etcd, "/desired/web/dev");

    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .arg("get")
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        .env_remove("THESEUS_PREFIX")
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "DEPLOYMENT",
            "DESIRED",
            "RUNNING",
            "HEALTHY",
            "PHASE",
            "REVISION",
            "OBSERVED",
            "RUNS"
        ]
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let current = current.to_string();
    let observed = format!("Running@{old}");
    assert_eq!(
        row[..7],
        [
            "web/dev",
            "3",
            "2",
            "0",
            "Pending",
            current.as_str(),
            observed.as_str()
        ],
        "{table}"
    );
}

#[test]
fn get_names_the_reason_the_current_revision_failed_in_the_words_of_rollout_status() {
    let etcd = EtcdServer::start();
    put(
        &etcd,
        "/desired/web/dev",
        r#"{"cmd": "exit 3", "instances": 2}"#,
    );
    let current = revision(&etcd, "/desired/web/dev");
    let rolled_back = json!([{"type": "Progressing", "status": false, "reason": "RolledBack",
        "message": "revision 7 failed (CrashLooping: 4 tasks failed); rolled back to revision 5"}]);
    put(&etcd, STATUS, &status(current, "Failed", 2, rolled_back));
    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .arg("get")
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        .env_remove("THESEUS_PREFIX")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!(
            "web/dev: revision {current} failed (RolledBack): revision 7 failed (CrashLooping"
        )),
        "{text}"
    );
    let mut rollout = Rollout::start(&etcd, &["web/dev"]);
    let (success, _, stderr) = rollout.finish();
    assert!(!success);
    assert!(stderr.contains("failed (RolledBack)"), "{stderr}");
}
