//! `--state-dir`: app definitions and their versions survive a restart and are relaunched.

mod common;

use common::start_with;
use localmarathon::{ExecutorKind, LocalMarathon};
use serde_json::json;

#[tokio::test]
async fn apps_and_their_versions_survive_a_restart_and_are_relaunched() {
    let dir = tempfile::tempdir().unwrap();
    let builder = || {
        LocalMarathon::builder()
            .executor(ExecutorKind::Sim)
            .state_dir(dir.path())
    };
    let lm = start_with(builder()).await;
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/keep", "cmd": "sleep 100", "instances": 2}),
        )
        .await;
    assert_eq!(status, 201);
    lm.wait_running("/keep", 2).await;
    let (status, _) = lm
        .put("/v2/apps/keep", json!({"labels": {"rev": "2"}}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = lm
        .post("/v2/apps", json!({"id": "/gone", "cmd": "sleep 100"}))
        .await;
    assert_eq!(status, 201);
    lm.wait_running("/gone", 1).await;
    lm.wait_running("/keep", 2).await;
    let (status, _) = lm.delete("/v2/apps/gone").await;
    assert_eq!(status, 200);
    lm.wait_no_deployments().await;
    let (_, before) = lm.get("/v2/apps/keep").await;
    let (_, versions_before) = lm.get("/v2/apps/keep/versions").await;
    lm.handle.shutdown().await;

    let lm = start_with(builder()).await;
    let (_, list) = lm.get("/v2/apps").await;
    let ids: Vec<&str> = list["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["/keep"]);
    let tasks = lm.wait_running("/keep", 2).await;
    let (_, after) = lm.get("/v2/apps/keep").await;
    for key in [
        "version",
        "versionInfo",
        "labels",
        "portDefinitions",
        "instances",
        "cmd",
    ] {
        assert_eq!(after["app"][key], before["app"][key], "{key}");
    }
    let (_, versions_after) = lm.get("/v2/apps/keep/versions").await;
    assert_eq!(versions_after, versions_before);
    assert_eq!(tasks[0]["version"], before["app"]["version"]);
    lm.handle.shutdown().await;
}
