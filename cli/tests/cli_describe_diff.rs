//! `theseus diff` and `theseus describe` through the binary, against a real etcd: what a
//! change would do before it is applied, and everything recorded about a deployment. The
//! `/observed` records are written here in the controller's own types, as it writes them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use theseus::api::{
    Condition, ConditionKind, Decision, DeploymentStatus, Health, InstanceCounts, JournalEntry,
    LastTaskFailure, Phase, PortBinding, Reason, RevisionOutcome, RevisionRecord, SpecText,
    TaskRecord,
};
use theseus::marathon::task::TaskState;
use theseus_testkit::{EtcdServer, expect_success, free_port};

fn theseus(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(args)
        .env("ETCD_ENDPOINTS", endpoint)
        .env_remove("THESEUS_PREFIX")
        .env_remove("THESEUS_MARATHON_GROUP")
        .output()
        .expect("run theseus")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code, with the output in the message when the assertion fails.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

fn put(etcd: &EtcdServer, key: &str, value: &str) {
    expect_success(&etcd.etcdctl(&["put", key, value]), "put");
}

/// etcd's current revision: it moves with every write, whatever the key.
fn etcd_revision(etcd: &EtcdServer) -> i64 {
    let out = expect_success(&etcd.etcdctl(&["get", "/", "-w", "json"]), "get");
    serde_json::from_str::<Value>(&out).unwrap()["header"]["revision"]
        .as_i64()
        .unwrap()
}

fn mod_revision(etcd: &EtcdServer, key: &str) -> i64 {
    let out = expect_success(&etcd.etcdctl(&["get", key, "-w", "json"]), "get");
    serde_json::from_str::<Value>(&out).unwrap()["kvs"][0]["mod_revision"]
        .as_i64()
        .unwrap()
}

/// A file in `dir` holding `spec` for `web/dev`.
fn spec_file(dir: &Path, name: &str, spec: Value) -> PathBuf {
    let mut document = spec;
    document["service"] = json!("web");
    document["name"] = json!("dev");
    let path = dir.join(name);
    std::fs::write(&path, document.to_string()).unwrap();
    path
}

fn diff_json(etcd: &EtcdServer, file: &Path) -> (Output, Value) {
    let output = theseus(
        &etcd.endpoint(),
        &["diff", "-o", "json", "-f", file.to_str().unwrap()],
    );
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, report)
}

const WEB_V1: &str =
    r#"{"image": "registry.local/web:1", "ports": {"http": 8080}, "instances": 2}"#;

#[test]
fn diff_of_an_unchanged_spec_exits_0_and_writes_nothing() {
    let etcd = EtcdServer::start();
    put(&etcd, "/desired/web/dev", WEB_V1);
    let dir = tempfile::tempdir().unwrap();
    // The same fields in another order and spacing are the same spec.
    let file = spec_file(
        dir.path(),
        "web.json",
        json!({"instances": 2, "ports": {"http": 8080}, "image": "registry.local/web:1"}),
    );
    let before = etcd_revision(&etcd);
    let output = theseus(&etcd.endpoint(), &["diff", "-f", file.to_str().unwrap()]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("web/dev") && text.contains("unchanged in /desired; Marathon: nothing"),
        "{text}"
    );
    assert!(
        !text.contains("@@"),
        "no diff for an unchanged spec: {text}"
    );
    let (output, report) = diff_json(&etcd, &file);
    assert_exit(&output, 0);
    assert_eq!(report["changes"], false);
    assert_eq!(report["deployments"][0]["spec"], "unchanged");
    assert_eq!(report["deployments"][0]["marathon"]["action"], "nothing");
    assert_eq!(etcd_revision(&etcd), before, "diff wrote to etcd");
}

#[test]
fn diff_of_a_changed_image_reports_an_update_with_a_restart_and_exits_1() {
    let etcd = EtcdServer::start();
    put(&etcd, "/desired/web/dev", WEB_V1);
    let revision = mod_revision(&etcd, "/desired/web/dev");
    let dir = tempfile::tempdir().unwrap();
    let file = spec_file(
        dir.path(),
        "web.json",
        json!({"image": "registry.local/web:2", "ports": {"http": 8080}, "instances": 2}),
    );
    let output = theseus(&etcd.endpoint(), &["diff", "-f", file.to_str().unwrap()]);
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(
        text.contains("changed in /desired; Marathon: update app /web/dev with a restart of its tasks (image changed)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("--- /desired/web/dev (revision {revision})")),
        "{text}"
    );
    assert!(
        text.contains("-  \"image\": \"registry.local/web:1\",")
            && text.contains("+  \"image\": \"registry.local/web:2\","),
        "{text}"
    );
    let (output, report) = diff_json(&etcd, &file);
    assert_exit(&output, 1);
    assert_eq!(report["changes"], true);
    let marathon = &report["deployments"][0]["marathon"];
    assert_eq!(marathon["action"], "update", "{report}");
    assert_eq!(marathon["restart_fields"], json!(["image"]));
    assert_eq!(report["deployments"][0]["revision"], revision);
}

#[test]
fn diff_of_a_changed_instance_count_reports_a_scale_only() {
    let etcd = EtcdServer::start();
    put(&etcd, "/desired/web/dev", WEB_V1);
    let dir = tempfile::tempdir().unwrap();
    let file = spec_file(
        dir.path(),
        "web.json",
        json!({"image": "registry.local/web:1", "ports": {"http": 8080}, "instances": 5}),
    );
    let output = theseus(&etcd.endpoint(), &["diff", "-f", file.to_str().unwrap()]);
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(
        text.contains("Marathon: scale app /web/dev from 2 to 5 instances, no restart"),
        "{text}"
    );
    let (_, report) = diff_json(&etcd, &file);
    assert_eq!(
        report["deployments"][0]["marathon"],
        json!({"action": "scale", "app_id": "/web/dev", "from": 2, "to": 5})
    );
}

#[test]
fn diff_of_a_new_spec_reports_a_create() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = spec_file(
        dir.path(),
        "web.json",
        serde_json::from_str(WEB_V1).unwrap(),
    );
    let output = theseus(&etcd.endpoint(), &["diff", "-f", file.to_str().unwrap()]);
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(
        text.contains("new in /desired; Marathon: create app /web/dev with 2 instances"),
        "{text}"
    );
    assert!(text.contains("--- /desired/web/dev (new)"), "{text}");
    let (_, report) = diff_json(&etcd, &file);
    assert_eq!(report["deployments"][0]["spec"], "new");
    assert_eq!(
        report["deployments"][0]["marathon"],
        json!({"action": "create", "app_id": "/web/dev", "instances": 2})
    );
}

#[test]
fn diff_of_an_invalid_file_exits_2_naming_the_file_and_the_field() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = spec_file(
        dir.path(),
        "typo.json",
        json!({"image": "registry.local/web:1", "instnaces": 2}),
    );
    let output = theseus(&etcd.endpoint(), &["diff", "-f", file.to_str().unwrap()]);
    assert_exit(&output, 2);
    let message = stderr(&output);
    assert!(
        message.contains("typo.json") && message.contains("instnaces"),
        "{message}"
    );
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
}

#[test]
fn diff_exits_2_when_etcd_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let file = spec_file(
        dir.path(),
        "web.json",
        serde_json::from_str(WEB_V1).unwrap(),
    );
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let output = theseus(
        &nobody,
        &["diff", "--etcd-timeout", "1s", "-f", file.to_str().unwrap()],
    );
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("127.0.0.1"), "{}", stderr(&output));
}

#[test]
fn diff_writes_nothing_to_etcd_whatever_it_reports() {
    let etcd = EtcdServer::start();
    put(&etcd, "/desired/web/dev", WEB_V1);
    put(&etcd, "/desired/old/gone", r#"{"cmd": "sleep 100"}"#);
    let dir = tempfile::tempdir().unwrap();
    let changed = spec_file(
        dir.path(),
        "web.json",
        json!({"image": "registry.local/web:2", "instances": 3}),
    );
    let multi = dir.path().join("multi.yaml");
    std::fs::write(
        &multi,
        "deploy:\n  api:\n    cmd: serve\n    labels: [eu]\nremove:\n  old: {name: gone}\n",
    )
    .unwrap();
    let before = etcd_revision(&etcd);
    let output = theseus(
        &etcd.endpoint(),
        &[
            "diff",
            "-f",
            changed.to_str().unwrap(),
            "-f",
            multi.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 1);
    let text = stdout(&output);
    assert!(
        text.contains("web/dev (") && text.contains("update app /web/dev"),
        "{text}"
    );
    assert!(
        text.contains("api/eu (") && text.contains("create app /api/eu"),
        "{text}"
    );
    assert!(
        text.contains("old/gone (")
            && text.contains("removed from /desired; Marathon: delete app /old/gone"),
        "{text}"
    );
    assert_eq!(etcd_revision(&etcd), before, "diff wrote to etcd");
    let desired = expect_success(
        &etcd.etcdctl(&["get", "/desired/web/dev", "--print-value-only"]),
        "get",
    );
    assert_eq!(
        serde_json::from_str::<Value>(desired.trim()).unwrap(),
        serde_json::from_str::<Value>(WEB_V1).unwrap()
    );
}

fn at(seconds_ago: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::seconds(seconds_ago)
}

/// Writes a deployment with a status, two tasks, two revisions and a journal, as the
/// controller writes them; returns the `/desired` revision.
fn seed_deployment(etcd: &EtcdServer) -> i64 {
    let first = json!({"image": "registry.local/web:1", "ports": {"http": 8080}, "instances": 2,
        "environment": {"DB_PASSWORD": "hunter2", "APP_NAME": "web", "api_token": "t0k3n"}});
    put(etcd, "/desired/web/dev", &first.to_string());
    let old = mod_revision(etcd, "/desired/web/dev");
    let mut second = first.clone();
    second["image"] = json!("registry.local/web:2");
    second["change_cause"] = json!("new release");
    second["labels"] = json!(["blue"]);
    put(etcd, "/desired/web/dev", &second.to_string());
    let current = mod_revision(etcd, "/desired/web/dev");

    let status = DeploymentStatus {
        observed_revision: current,
        phase: Phase::Deploying,
        conditions: vec![
            Condition::holds(ConditionKind::Valid, Reason::SpecValid, "the spec is valid"),
            Condition::fails(
                ConditionKind::Progressing,
                Reason::CrashLooping,
                "the tasks of revision keep failing: exited with status 3",
            ),
        ],
        instances: InstanceCounts {
            desired: 2,
            running: 1,
            healthy: 1,
            ..Default::default()
        },
        app_id: Some("/web/dev".into()),
        app_version: Some("2026-11-30T10:00:00.000Z".into()),
        deployment_ids: vec![],
        last_task_failure: Some(LastTaskFailure {
            task_id: "web_dev.instance-2._app.1".into(),
            state: "TASK_FAILED".into(),
            message: "exited with status 3".into(),
            host: "127.0.0.12".into(),
            timestamp: "2026-11-30T10:01:00.000Z".into(),
        }),
        revision_started_at: Some(at(300)),
        revision_running_at: None,
        revision_task_failures: 2,
        updated_at: at(5),
    };
    put(
        etcd,
        "/observed/web/dev/status",
        &serde_json::to_string(&status).unwrap(),
    );
    for (host, port, id) in [
        ("127.0.0.11", 31005, "web_dev.instance-1._app.1"),
        ("127.0.0.13", 31777, "web_dev.instance-3._app.1"),
    ] {
        let task = TaskRecord {
            service: "web".into(),
            deployment: "dev".into(),
            task_id: id.into(),
            app_id: "/web/dev".into(),
            host: host.into(),
            agent_id: None,
            ip_addresses: vec![],
            ports: [(
                "http".to_owned(),
                PortBinding {
                    host: port,
                    container: 8080,
                    protocol: "tcp".into(),
                },
            )]
            .into(),
            state: TaskState::Running,
            health: Health::Healthy,
            health_checked: true,
            staged_at: Some(at(130).to_rfc3339()),
            started_at: Some(at(125).to_rfc3339()),
            version: Some("2026-11-30T10:00:00.000Z".into()),
            labels: vec!["blue".into()],
        };
        put(
            etcd,
            &format!("/observed/web/dev/tasks/{id}"),
            &serde_json::to_string(&task).unwrap(),
        );
    }
    for (revision, spec, outcome) in [
        (old, &first, RevisionOutcome::Superseded),
        (current, &second, RevisionOutcome::Deploying),
    ] {
        let record = RevisionRecord {
            revision,
            spec: SpecText::from_value(spec).unwrap(),
            spec_hash: "0f".repeat(32),
            change_cause: spec
                .get("change_cause")
                .and_then(Value::as_str)
                .map(str::to_owned),
            outcome,
            failure_reason: None,
            failure_message: None,
            rolled_back_to: None,
            app_version: None,
            started_at: at(600),
            running_at: None,
            ended_at: None,
        };
        put(
            etcd,
            &format!("/observed/web/dev/history/{revision}"),
            &serde_json::to_string(&record).unwrap(),
        );
    }
    for (sequence, revision, decision, message) in [
        (
            1,
            old,
            Decision::AppCreated,
            "created app /web/dev with 2 instances",
        ),
        (2, current, Decision::RevisionStarted, "started revision"),
        (
            3,
            current,
            Decision::AppUpdated,
            "updated app /web/dev: image changed",
        ),
    ] {
        let entry = JournalEntry {
            at: at(100 - sequence),
            revision,
            decision,
            message: message.into(),
        };
        put(
            etcd,
            &format!("/observed/web/dev/journal/{sequence:010}"),
            &serde_json::to_string(&entry).unwrap(),
        );
    }
    current
}

#[test]
fn describe_shows_the_spec_status_tasks_history_and_journal() {
    let etcd = EtcdServer::start();
    let current = seed_deployment(&etcd);
    let output = theseus(&etcd.endpoint(), &["describe", "web/dev"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    for expected in [
        &format!("/desired/web/dev at revision {current}") as &str,
        "Image:              registry.local/web:2",
        "Instances:          2",
        "Labels:             blue",
        "Change cause:       new release",
        "auto rollback yes, paused no",
        &format!("Deploying at revision {current}"),
        "CrashLooping",
        "the tasks of revision keep failing: exited with status 3",
        "web_dev.instance-1._app.1",
        "127.0.0.13",
        "http 31777→8080",
        "TASK_RUNNING",
        "healthy",
        "2m",
        "Last task failure: web_dev.instance-2._app.1 TASK_FAILED on 127.0.0.12",
        "Superseded",
        "new release",
        "AppCreated",
        "updated app /web/dev: image changed",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let journal = text.split("Journal:").nth(1).expect("a journal section");
    let created = journal.find("AppCreated").unwrap();
    let updated = journal.find("AppUpdated").unwrap();
    assert!(created < updated, "the journal is in order: {journal}");

    let output = theseus(&etcd.endpoint(), &["describe", "-o", "json", "web/dev"]);
    assert_exit(&output, 0);
    let all: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(all["deployment"], "web/dev");
    assert_eq!(all["desired"]["revision"], current);
    assert_eq!(all["status"]["phase"], "Deploying");
    assert_eq!(all["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(all["history"].as_array().unwrap().len(), 2);
    assert_eq!(all["history"][1]["revision"], current);
    assert_eq!(all["journal"].as_array().unwrap().len(), 3);
    assert_eq!(all["journal"][2]["decision"], "AppUpdated");
}

#[test]
fn describe_masks_secret_environment_values_in_every_format() {
    let etcd = EtcdServer::start();
    seed_deployment(&etcd);
    for format in ["table", "json", "yaml"] {
        let output = theseus(&etcd.endpoint(), &["describe", "-o", format, "web/dev"]);
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert!(
            !text.contains("hunter2") && !text.contains("t0k3n"),
            "a secret leaked in {format}:\n{text}"
        );
        assert!(
            text.contains("DB_PASSWORD") && text.contains("api_token") && text.contains("web"),
            "{format}: {text}"
        );
    }
    let output = theseus(&etcd.endpoint(), &["describe", "-o", "json", "web/dev"]);
    let all: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(all["desired"]["spec"]["environment"]["APP_NAME"], "web");
    assert_ne!(
        all["desired"]["spec"]["environment"]["DB_PASSWORD"],
        "hunter2"
    );
    assert_ne!(
        all["history"][0]["spec"]["environment"]["DB_PASSWORD"],
        "hunter2"
    );
}

#[test]
fn describe_of_a_missing_deployment_fails_naming_it() {
    let etcd = EtcdServer::start();
    put(&etcd, "/desired/web/dev", WEB_V1);
    let output = theseus(&etcd.endpoint(), &["describe", "web/prod"]);
    assert!(!output.status.success(), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(
        message.contains("no deployment web/prod") && message.contains("/desired/web/prod"),
        "{message}"
    );
    assert!(stdout(&output).is_empty());
}
