//! An unmodified Marathon client in another language, written against real Marathon: the
//! Python `marathon` package (thefactory/marathon-python) creates, lists, scales, restarts and
//! deletes apps, lists and kills tasks, lists deployments and follows the event stream.
//!
//! The package is installed from PyPI into a virtualenv under `target/`. If PyPI cannot be
//! reached the test fails and says so: it never skips silently.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::start;
use localmarathon::ExecutorKind;
use serde_json::Value;

const PACKAGE: &str = "marathon==0.13.0";

/// The python of a virtualenv with the client (built under `target/` the first time).
fn python() -> PathBuf {
    theseus_testkit::python::python_with("python-client-venv", PACKAGE, "import marathon")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marathon_python_creates_scales_restarts_and_deletes_apps_and_follows_events() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let lm = start(ExecutorKind::Process).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/marathon_client.py");
    let run = tokio::process::Command::new(python)
        .arg(&script)
        .arg(lm.handle.url())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("client script finished")
        .expect("client script ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client failed:\n{stdout}\n{stderr}"
    );
    let result: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(result["info_name"], "marathon");
    assert_eq!(result["leader"], lm.handle.addr().to_string());
    assert_eq!(result["created_id"], "/py/app");
    assert_eq!(result["created_instances"], 1);
    assert_eq!(result["listed"], serde_json::json!(["/py/app"]));
    assert_eq!(result["tasks_running"], 1);
    assert_eq!(result["scale_deployment"], true);
    assert_eq!(result["task_hosts"].as_array().unwrap().len(), 2);
    assert_eq!(result["all_tasks"], 2);
    assert_eq!(result["killed_task"], true);
    assert_eq!(result["restart_deployment"], true);
    assert!(result["versions"].as_u64().unwrap() >= 3);
    assert_eq!(result["version_app"], "/py/app");
    let events: Vec<&str> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Only what the script subscribed to (see its note on deployment events).
    assert!(
        events.iter().all(|e| !e.starts_with("deployment_")),
        "the event_type filter let through {events:?}"
    );
    for expected in [
        "event_stream_attached",
        "api_post_event",
        "status_update_event",
        "instance_changed_event",
        "app_terminated_event",
    ] {
        assert!(
            events.contains(&expected),
            "client did not see {expected}: {events:?}"
        );
    }
    lm.handle.shutdown().await;
}
