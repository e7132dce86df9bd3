//! Placement over the API: hostname constraints and per-agent resource accounting.

mod common;

use std::collections::BTreeMap;

use common::{DEADLINE, start, start_with, wait_for};
use localmarathon::{AgentSpec, ExecutorKind, LocalMarathon};
use serde_json::{Value, json};

fn hosts(tasks: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks {
        *out.entry(t["host"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

#[tokio::test]
async fn unique_spreads_one_task_per_agent_and_the_rest_waits() {
    let lm = start(ExecutorKind::Sim).await;
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/uniq", "cmd": "sleep 100", "instances": 4, "cpus": 0.1,
            "constraints": [["hostname", "UNIQUE"]]}),
        )
        .await;
    assert_eq!(status, 201);
    let placed = wait_for(DEADLINE, || async {
        let (_, app) = lm.get("/v2/apps/uniq").await;
        (app["app"]["tasksRunning"] == 3).then(|| app["app"]["tasks"].as_array().unwrap().clone())
    })
    .await
    .expect("three tasks placed");
    assert!(
        hosts(&placed).values().all(|n| *n == 1),
        "{:?}",
        hosts(&placed)
    );
    let (_, queue) = lm.get("/v2/queue").await;
    assert_eq!(queue["queue"][0]["count"], 1, "the fourth instance waits");
    let (_, deployments) = lm.get("/v2/deployments").await;
    assert_eq!(deployments.as_array().unwrap().len(), 1);
    // Scaling down to what fits lets the deployment finish.
    let (status, _) = lm
        .put("/v2/apps/uniq?force=true", json!({"instances": 3}))
        .await;
    assert_eq!(status, 200);
    lm.wait_running("/uniq", 3).await;
    lm.wait_no_deployments().await;
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn like_unlike_cluster_and_max_per_choose_hosts() {
    let lm = start(ExecutorKind::Sim).await;
    let cases = [
        (
            "/like",
            json!([["hostname", "LIKE", "127\\.0\\.0\\.1[23]"]]),
            4,
        ),
        (
            "/unlike",
            json!([["hostname", "UNLIKE", "127\\.0\\.0\\.11"]]),
            4,
        ),
        (
            "/cluster",
            json!([["hostname", "CLUSTER", "127.0.0.13"]]),
            3,
        ),
        ("/maxper", json!([["hostname", "MAX_PER", "2"]]), 6),
        ("/groupby", json!([["hostname", "GROUP_BY", "3"]]), 6),
    ];
    for (id, constraints, n) in &cases {
        let (status, body) = lm
            .post(
                "/v2/apps",
                json!({"id": id, "cmd": "sleep 100", "instances": n, "cpus": 0.1, "mem": 8,
                "constraints": constraints}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let like = hosts(&lm.wait_running("/like", 4).await);
    assert!(
        like.keys().all(|h| h == "127.0.0.12" || h == "127.0.0.13"),
        "{like:?}"
    );
    let unlike = hosts(&lm.wait_running("/unlike", 4).await);
    assert!(!unlike.contains_key("127.0.0.11"), "{unlike:?}");
    let cluster = hosts(&lm.wait_running("/cluster", 3).await);
    assert_eq!(cluster, BTreeMap::from([("127.0.0.13".to_string(), 3)]));
    let maxper = hosts(&lm.wait_running("/maxper", 6).await);
    assert!(maxper.values().all(|n| *n == 2), "{maxper:?}");
    let groupby = hosts(&lm.wait_running("/groupby", 6).await);
    assert_eq!(groupby.len(), 3);
    assert!(groupby.values().all(|n| *n == 2), "{groupby:?}");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn an_app_that_fits_nowhere_waits_until_resources_free_up() {
    let agent: AgentSpec = "host=127.0.0.21,cpus=1,mem=256,ports=32000-32009"
        .parse()
        .unwrap();
    let lm = start_with(
        LocalMarathon::builder()
            .executor(ExecutorKind::Sim)
            .agents([agent]),
    )
    .await;
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/big", "cmd": "sleep 100", "instances": 3, "cpus": 0.4, "mem": 64}),
        )
        .await;
    assert_eq!(status, 201);
    let two = wait_for(DEADLINE, || async {
        let (_, app) = lm.get("/v2/apps/big").await;
        (app["app"]["tasksRunning"] == 2).then_some(())
    })
    .await;
    assert!(two.is_some(), "two of three fit");
    let (_, queue) = lm.get("/v2/queue").await;
    assert_eq!(queue["queue"][0]["count"], 1);
    let agents = lm.handle.agents();
    assert!((agents[0].used_cpus - 0.8).abs() < 1e-9);
    assert_eq!(agents[0].used_ports.len(), 2);
    // Another app that does not fit either; deleting the first frees room for it.
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/later", "cpus": 0.5, "mem": 64, "cmd": "sleep 100"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = lm.delete("/v2/apps/big").await;
    assert_eq!(status, 200);
    lm.wait_running("/later", 1).await;
    let agents = lm.handle.agents();
    assert!((agents[0].used_cpus - 0.5).abs() < 1e-9);
    lm.handle.shutdown().await;
}
