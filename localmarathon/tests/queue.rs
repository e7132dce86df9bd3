//! `GET /v2/queue` as Marathon 1.10 answers it: the apps with instances left to launch, their
//! launch delay, and why the offers of their launch attempt were declined, from the real
//! placement decisions against the agents.

mod common;

use std::collections::BTreeSet;

use common::{DEADLINE, Lm, fixture_json, start, wait_for};
use localmarathon::{ExecutorKind, ExitStatus};
use serde_json::{Value, json};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The queue entry of `app`, once its launch attempt has processed offers.
async fn entry_with_offers(lm: &Lm, app: &str) -> Value {
    wait_for(DEADLINE, || async {
        let (status, queue) = lm.get("/v2/queue").await;
        assert_eq!(status, 200);
        queue["queue"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["app"]["id"] == app)
            .filter(|e| {
                e["processedOffersSummary"]["processedOffersCount"]
                    .as_u64()
                    .unwrap()
                    > 0
            })
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("{app} is queued with processed offers"))
}

/// `(declined, processed)` of the step `reason` of a funnel.
fn step(steps: &Value, reason: &str) -> (u64, u64) {
    let step = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["reason"] == reason)
        .unwrap_or_else(|| panic!("no step {reason} in {steps:#}"));
    (
        step["declined"].as_u64().unwrap(),
        step["processed"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn an_app_no_agent_has_the_cpus_for_is_queued_with_its_offers_declined_for_cpus() {
    let lm = start(ExecutorKind::Sim).await;
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/big", "cmd": "sleep 100", "instances": 2, "cpus": 500}),
        )
        .await;
    assert_eq!(status, 201);
    let entry = entry_with_offers(&lm, "/big").await;

    // The shape of Marathon's own example, but for the offers embedded only on request.
    let example = &fixture_json("example-queue-get-response.json")["queue"][1];
    let mut expected = keys(example);
    expected.remove("lastUnusedOffers");
    assert_eq!(keys(&entry), expected);
    assert_eq!(keys(&entry["delay"]), keys(&example["delay"]));
    let summary = &entry["processedOffersSummary"];
    let mut summary_keys = keys(&example["processedOffersSummary"]);
    summary_keys.remove("lastUsedOfferAt"); // no offer was used
    assert_eq!(keys(summary), summary_keys);

    assert_eq!(entry["count"], 2);
    assert_eq!(entry["role"], "*");
    assert_eq!(
        entry["delay"],
        json!({"timeLeftSeconds": 0, "overdue": true})
    );
    assert!(entry["since"].as_str().unwrap().ends_with('Z'));
    // Three agents, each offer declined for too few cpus and nothing before that.
    let processed = summary["processedOffersCount"].as_u64().unwrap();
    assert!(processed >= 3 && processed % 3 == 0, "{summary:#}");
    assert_eq!(summary["unusedOffersCount"].as_u64(), Some(processed));
    let attempt = &summary["rejectSummaryLaunchAttempt"];
    assert_eq!(step(attempt, "UnfulfilledConstraint"), (0, processed));
    assert_eq!(step(attempt, "InsufficientCpus"), (processed, processed));
    assert_eq!(step(attempt, "InsufficientMemory"), (0, 0));
    let last = &summary["rejectSummaryLastOffers"];
    assert_eq!(
        step(last, "InsufficientCpus"),
        (3, 3),
        "one last offer per agent"
    );
    let reasons: Vec<&str> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    for reason in ["UnfulfilledRole", "AgentMaintenance", "InsufficientPorts"] {
        assert!(reasons.contains(&reason), "{reasons:?}");
    }

    // Scaled to nothing, nothing waits: the entry goes with its launch attempt.
    let (status, _) = lm
        .put("/v2/apps/big?force=true", json!({"instances": 0}))
        .await;
    assert_eq!(status, 200);
    let gone = wait_for(DEADLINE, || async {
        let (_, queue) = lm.get("/v2/queue").await;
        queue["queue"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the queue empties");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_constraint_no_agent_meets_declines_offers_for_the_constraint() {
    let lm = start(ExecutorKind::Sim).await;
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/pinned", "cmd": "sleep 100", "cpus": 0.1, "mem": 16,
                   "constraints": [["hostname", "IS", "10.9.9.9"]]}),
        )
        .await;
    assert_eq!(status, 201);
    let entry = entry_with_offers(&lm, "/pinned").await;
    let summary = &entry["processedOffersSummary"];
    let processed = summary["processedOffersCount"].as_u64().unwrap();
    let attempt = &summary["rejectSummaryLaunchAttempt"];
    assert_eq!(
        step(attempt, "UnfulfilledConstraint"),
        (processed, processed)
    );
    assert_eq!(step(attempt, "InsufficientCpus"), (0, 0));
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn an_app_that_fits_is_not_queued_and_one_held_back_says_for_how_long() {
    let lm = start(ExecutorKind::Sim).await;
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/flaky", "cmd": "sleep 100", "cpus": 0.1, "mem": 16,
                   "backoffSeconds": 3600, "maxLaunchDelaySeconds": 3600}),
        )
        .await;
    assert_eq!(status, 201);
    let tasks = lm.wait_running("/flaky", 1).await;
    let (_, queue) = lm.get("/v2/queue").await;
    assert_eq!(queue, json!({"queue": []}), "nothing waits");

    let id = tasks[0]["id"].as_str().unwrap();
    assert!(lm.handle.simulate_task_exit(id, ExitStatus::Code(2)));
    let entry = wait_for(DEADLINE, || async {
        let (_, queue) = lm.get("/v2/queue").await;
        queue["queue"].as_array().unwrap().first().cloned()
    })
    .await
    .expect("the replacement is queued");
    assert_eq!(entry["count"], 1);
    assert_eq!(
        entry["delay"]["overdue"], false,
        "held back, not waiting on offers"
    );
    let left = entry["delay"]["timeLeftSeconds"].as_u64().unwrap();
    assert!((3000..=3600).contains(&left), "{left}");
    assert_eq!(
        entry["processedOffersSummary"]["processedOffersCount"], 0,
        "no offer is weighed while launches are held back"
    );
    lm.handle.shutdown().await;
}
