//! The `theseus` command through its binary, against a real etcd: what a user types.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use theseus_testkit::{EtcdOptions, EtcdServer, expect_success};

/// The repository's top directory, where the examples and schemas are.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn theseus(etcd: &EtcdServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(args)
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        .env_remove("THESEUS_PREFIX")
        .current_dir(workspace_root())
        .output()
        .expect("run theseus")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "theseus failed: {}\nstdout: {}",
        stderr(output),
        stdout(output)
    );
    stdout(output)
}

fn etcd_get(etcd: &EtcdServer, key: &str) -> Option<Value> {
    let out = expect_success(
        &etcd.etcdctl(&["get", key, "--print-value-only"]),
        "etcdctl get",
    );
    let text = out.trim();
    (!text.is_empty()).then(|| serde_json::from_str(text).expect("stored values are JSON"))
}

fn etcd_keys(etcd: &EtcdServer, prefix: &str) -> Vec<String> {
    let out = expect_success(
        &etcd.etcdctl(&["get", prefix, "--prefix", "--keys-only"]),
        "etcdctl get",
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn apply_writes_the_old_systems_example_to_desired_ingestor_dev() {
    let etcd = EtcdServer::start();
    let out = succeeded(&theseus(&etcd, &["apply", "-f", "examples/ingestor.yaml"]));
    assert_eq!(out, "ingestor/dev created\n");
    let stored = etcd_get(&etcd, "/desired/ingestor/dev").expect("written");
    assert_eq!(
        stored,
        json!({
            "image": "54.189.193.228:5000/flask",
            "ports": {"ssh": 22, "api": 5000},
            "environment": {"APP_NAME": "Ingestor", "KEYSPACE_NAME": "flask_keyspace2",
                            "TABLE_NAME": "flask_table2"},
            "instances": 4, "cpus": 0.1, "mem": 128, "labels": ["dev"]
        })
    );
    let again = succeeded(&theseus(&etcd, &["apply", "-f", "examples/ingestor.yaml"]));
    assert_eq!(again, "ingestor/dev unchanged\n");
}

#[test]
fn apply_writes_nothing_when_any_file_has_an_error() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let good = write_file(dir.path(), "good.yaml", "deploy:\n  web: {cmd: serve}\n");
    let bad = write_file(
        dir.path(),
        "bad.json",
        r#"{"service": "api", "cmd": "x", "instnaces": 2}"#,
    );
    let out = theseus(&etcd, &["apply", "-f", arg(&good), arg(&bad)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.json: /instnaces: unknown field `instnaces`; did you mean `instances`?"),
        "{err}"
    );
    assert!(etcd_keys(&etcd, "/").is_empty(), "nothing may be written");
}

#[test]
fn apply_creates_changes_and_removes_in_one_transaction() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let first = write_file(
        dir.path(),
        "first.yaml",
        "deploy:\n  web:\n    - {cmd: serve, labels: [blue]}\n    - {cmd: serve, labels: [green]}\n",
    );
    succeeded(&theseus(&etcd, &["apply", "-f", arg(&first)]));
    let second = write_file(
        dir.path(),
        "second.yaml",
        "deploy:\n  web:\n    - {cmd: serve, labels: [blue], instances: 3}\n    - {cmd: serve, labels: [red]}\n\
         remove:\n  web: {labels: [green]}\n  old: {name: gone}\n",
    );
    let out = succeeded(&theseus(
        &etcd,
        &["-o", "json", "apply", "-f", arg(&second)],
    ));
    let report: Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<(String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["deployment"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("web/blue".to_owned(), "changed".to_owned()),
            ("web/red".to_owned(), "created".to_owned()),
            ("old/gone".to_owned(), "absent".to_owned()),
            ("web/green".to_owned(), "removed".to_owned()),
        ]
    );
    // One transaction: every key it wrote has the same mod_revision.
    let revision = report["revision"].as_i64().unwrap();
    for key in ["/desired/web/blue", "/desired/web/red"] {
        let out = expect_success(&etcd.etcdctl(&["get", key, "-w", "json"]), "get");
        let got: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            got["kvs"][0]["mod_revision"].as_i64(),
            Some(revision),
            "{key}"
        );
    }
    assert_eq!(
        etcd_get(&etcd, "/desired/web/blue").unwrap()["instances"],
        3
    );
    assert_eq!(etcd_get(&etcd, "/desired/web/green"), None);
}

#[test]
fn a_dry_run_reports_without_writing() {
    let etcd = EtcdServer::start();
    let out = succeeded(&theseus(
        &etcd,
        &["apply", "--dry-run", "-f", "examples/ingestor.yaml"],
    ));
    assert_eq!(out, "ingestor/dev created (dry run)\n");
    assert!(etcd_keys(&etcd, "/").is_empty());
}

#[test]
fn a_deployment_given_twice_is_refused() {
    let etcd = EtcdServer::start();
    let out = theseus(
        &etcd,
        &[
            "apply",
            "-f",
            "examples/ingestor.yaml",
            "examples/ingestor.yaml",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ingestor/dev is given more than once"),
        "{}",
        stderr(&out)
    );
    assert!(etcd_keys(&etcd, "/").is_empty());
}

#[test]
fn a_single_spec_reads_its_key_from_flags_or_stdin() {
    let etcd = EtcdServer::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(["apply", "--service", "web", "-f", "-"])
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"cmd\": \"serve\", \"labels\": [\"b\", \"a\"]}")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(succeeded(&out), "web/a-b created\n");
    assert_eq!(
        etcd_get(&etcd, "/desired/web/a-b"),
        Some(json!({"cmd": "serve", "labels": ["b", "a"]}))
    );
}

#[test]
fn the_prefix_moves_every_key() {
    let etcd = EtcdServer::start();
    succeeded(&theseus(
        &etcd,
        &["--prefix", "/team", "apply", "-f", "examples/ingestor.yaml"],
    ));
    assert_eq!(etcd_keys(&etcd, "/"), ["/team/desired/ingestor/dev"]);
    let out = succeeded(&theseus(&etcd, &["--prefix", "team", "get"]));
    assert!(out.contains("ingestor/dev"), "{out}");
    let out = succeeded(&theseus(&etcd, &["get"]));
    assert_eq!(out, "no deployments\n");
}

#[test]
fn get_shows_desired_beside_observed_status() {
    let etcd = EtcdServer::start();
    succeeded(&theseus(&etcd, &["apply", "-f", "examples/ingestor.yaml"]));
    let out = expect_success(
        &etcd.etcdctl(&["get", "/desired/ingestor/dev", "-w", "json"]),
        "get",
    );
    let revision = serde_json::from_str::<Value>(&out).unwrap()["kvs"][0]["mod_revision"]
        .as_i64()
        .unwrap();
    let status = json!({
        "observed_revision": revision, "phase": "Running", "conditions": [],
        "instances": {"desired": 4, "staged": 0, "running": 4, "healthy": 3, "unhealthy": 1},
        "app_id": "/ingestor/dev", "updated_at": "2026-11-25T10:00:00Z"
    });
    expect_success(
        &etcd.etcdctl(&["put", "/observed/ingestor/dev/status", &status.to_string()]),
        "put status",
    );
    let table = succeeded(&theseus(&etcd, &["get"]));
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["ingestor/dev", "4", "4", "3", "Running"],
        "{table}"
    );

    let json: Value = serde_json::from_str(&succeeded(&theseus(
        &etcd,
        &["-o", "json", "get", "ingestor"],
    )))
    .unwrap();
    assert_eq!(json[0]["status"]["phase"], "Running");
    assert_eq!(json[0]["spec"]["instances"], 4);
}

#[test]
fn get_shows_the_last_task_failure_of_a_deployment_short_of_instances_on_one_line() {
    let etcd = EtcdServer::start();
    succeeded(&theseus(&etcd, &["apply", "-f", "examples/ingestor.yaml"]));
    let message = "Failed to launch container: Failed to run 'docker pull 54.189.193.228:5000/flask': exited with status 1; stderr='Error response from daemon: no route'";
    let status = json!({
        "observed_revision": 1, "phase": "Deploying", "conditions": [],
        "instances": {"desired": 4, "staged": 0, "running": 0, "healthy": 0, "unhealthy": 0},
        "app_id": "/ingestor/dev", "updated_at": "2026-11-25T10:00:00Z",
        "last_task_failure": {"task_id": "ingestor_dev.1", "state": "TASK_FAILED",
            "message": message, "host": "127.0.0.11", "timestamp": "2026-11-25T10:00:00.000Z"}
    });
    expect_success(
        &etcd.etcdctl(&["put", "/observed/ingestor/dev/status", &status.to_string()]),
        "put status",
    );
    let table = succeeded(&theseus(&etcd, &["get"]));
    let expected = format!("ingestor/dev: last task failure: TASK_FAILED on 127.0.0.11: {message}");
    assert!(table.lines().any(|l| l == expected), "{table}");
}

#[test]
fn get_names_the_key_of_a_value_that_is_not_a_valid_spec() {
    let etcd = EtcdServer::start();
    succeeded(&theseus(&etcd, &["apply", "-f", "examples/ingestor.yaml"]));
    expect_success(
        &etcd.etcdctl(&["put", "/desired/web/blue", r#"{"cmd": "x", "mem": "lots"}"#]),
        "put",
    );
    expect_success(
        &etcd.etcdctl(&["put", "/desired/web/red", "not json"]),
        "put",
    );
    let out = theseus(&etcd, &["get"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("error: /desired/web/blue: not a valid spec: /mem: expected a number"),
        "{err}"
    );
    assert!(
        err.contains("error: /desired/web/red: not a valid spec: /: not valid JSON"),
        "{err}"
    );
    let table = stdout(&out);
    assert!(
        table.contains("ingestor/dev"),
        "valid rows are still listed:\n{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web/blue") && l.contains("Invalid"))
    );
}

#[test]
fn delete_removes_all_named_deployments_or_none() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "web.yaml",
        "deploy:\n  web:\n    - {cmd: serve, labels: [blue]}\n    - {cmd: serve, labels: [green]}\n",
    );
    succeeded(&theseus(&etcd, &["apply", "-f", arg(&file)]));
    let out = theseus(&etcd, &["delete", "web/blue", "web/nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no deployment web/nope"),
        "{}",
        stderr(&out)
    );
    assert_eq!(etcd_keys(&etcd, "/desired/").len(), 2, "nothing deleted");

    assert_eq!(
        succeeded(&theseus(&etcd, &["delete", "web/blue", "web/green"])),
        "web/blue deleted\nweb/green deleted\n"
    );
    assert!(etcd_keys(&etcd, "/desired/").is_empty());
}

#[test]
fn an_unreachable_etcd_is_one_line_naming_the_endpoints() {
    let dead = format!("http://127.0.0.1:{}", theseus_testkit::free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(["--etcd-endpoints", &dead, "--etcd-timeout", "1s", "get"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: etcd is unreachable"), "{err}");
    assert!(err.contains(&dead), "{err}");
}

#[test]
fn wrong_credentials_are_named_and_nothing_is_written() {
    let etcd = EtcdServer::start_with(EtcdOptions::new().with_root_password("s3cret"));
    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(["apply", "-f", "examples/ingestor.yaml"])
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        .env("ETCD_USERNAME", "root")
        .env("ETCD_PASSWORD", "wrong")
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("rejected user `root`"), "{err}");
    assert!(!err.contains("wrong"), "the password never appears: {err}");

    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(["apply", "-f", "examples/ingestor.yaml"])
        .env("ETCD_ENDPOINTS", etcd.endpoint())
        .env("ETCD_USERNAME", "root")
        .env("ETCD_PASSWORD", "s3cret")
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert_eq!(succeeded(&out), "ingestor/dev created\n");
}

#[test]
fn validate_reports_every_error_of_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_file(dir.path(), "a.yaml", "service: web\ncmd: x\ncpus: 0\n");
    let b = write_file(
        dir.path(),
        "b.yaml",
        "deploy:\n  api:\n    image: x\n    ports: {http: 80}\n    health_checks: [{port: htp}]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(["validate", "-f", arg(&a), arg(&b), "examples/ingestor.yaml"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("a.yaml: /cpus: must be greater than 0, found 0"),
        "{err}"
    );
    assert!(
        err.contains("b.yaml: deploy.api: /health_checks/0/port: `htp` is not a declared port; expected one of `http`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .args(["validate", "-f", "examples/ingestor.yaml"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(succeeded(&out).contains("ingestor/dev"));
}

#[test]
fn schema_prints_the_published_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_theseus"))
        .arg("schema")
        .output()
        .unwrap();
    let published =
        std::fs::read_to_string(workspace_root().join("schemas/deployment.schema.json")).unwrap();
    assert_eq!(succeeded(&out), published);
}

#[test]
fn get_lists_every_deployment_whatever_the_size_of_the_specs() {
    let etcd = EtcdServer::start();
    // 500 specs of about 10 kB each: one page of 500 keys would be more than gRPC's default
    // 4 MiB message.
    let environment: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("SETTING_{i:03}"), Value::String("v".repeat(96))))
        .collect();
    let store_put = |key: String, value: String| {
        expect_success(&etcd.etcdctl(&["put", &key, &value]), "etcdctl put");
    };
    for i in 0..500 {
        let spec = json!({"cmd": "sleep 1000", "environment": environment});
        store_put(format!("/desired/big/n{i:03}"), spec.to_string());
    }
    let out = succeeded(&theseus(&etcd, &["get", "big"]));
    let rows = out.lines().filter(|l| l.starts_with("big/")).count();
    assert_eq!(
        rows,
        500,
        "{}",
        out.lines().take(3).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn get_lists_keys_under_desired_that_name_no_deployment() {
    let etcd = EtcdServer::start();
    let spec = json!({"cmd": "sleep 1000"}).to_string();
    for key in [
        "/desired/web/dev",
        "/desired/UPPER/x",
        "/desired/a/b/c",
        "/desired/a",
    ] {
        expect_success(&etcd.etcdctl(&["put", key, &spec]), "etcdctl put");
    }
    let output = theseus(&etcd, &["get"]);
    assert!(
        !output.status.success(),
        "a key that names nothing is a problem"
    );
    let out = stdout(&output);
    assert!(out.contains("web/dev"), "{out}");
    assert!(out.contains("NOT A VALID KEY"), "{out}");
    let err = stderr(&output);
    for key in ["/desired/UPPER/x", "/desired/a/b/c", "/desired/a"] {
        assert!(out.contains(key), "{key} listed:\n{out}");
        assert!(err.contains(key), "{key} named on stderr:\n{err}");
    }
}

#[test]
fn scale_sets_instances_only_and_refuses_a_count_the_spec_does_not_allow() {
    let etcd = EtcdServer::start();
    expect_success(
        &etcd.etcdctl(&[
            "put",
            "/desired/web/dev",
            r#"{"cmd": "run", "labels": ["dev"]}"#,
        ]),
        "etcdctl put",
    );
    let out = succeeded(&theseus(&etcd, &["scale", "web/dev", "--instances", "3"]));
    assert!(
        out.starts_with("web/dev: instances 1 → 3 (revision "),
        "{out}"
    );
    assert_eq!(
        etcd_get(&etcd, "/desired/web/dev"),
        Some(json!({"cmd": "run", "labels": ["dev"], "instances": 3}))
    );
    let again = succeeded(&theseus(&etcd, &["scale", "web/dev", "--instances", "3"]));
    assert!(again.contains("nothing was written"), "{again}");

    let refused = theseus(&etcd, &["scale", "web/dev", "--instances", "20000"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("/instances"),
        "{}",
        stderr(&refused)
    );
    let missing = theseus(&etcd, &["scale", "web/gone", "--instances", "1"]);
    assert!(
        stderr(&missing).contains("no deployment web/gone"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(etcd_get(&etcd, "/desired/web/dev").unwrap()["instances"], 3);
}
