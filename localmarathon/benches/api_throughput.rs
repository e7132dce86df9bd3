//! API throughput with the simulated executor: app creations per second over HTTP, and the
//! latency of `GET /v2/apps?embed=apps.tasks` with 1,000 apps x 3 tasks.
//!
//! `cargo bench -p localmarathon --bench api_throughput` prints a table. Numbers, not
//! assertions: targets are at least 1,000 creations/s and at most 50 ms for the list.

use std::sync::Arc;
use std::time::{Duration, Instant};

use localmarathon::{AgentSpec, ExecutorKind, LocalMarathon, TaskState};
use serde_json::json;

const APPS: usize = 1000;
const INSTANCES: usize = 3;
const CONCURRENCY: usize = 16;
const LIST_SAMPLES: usize = 50;
/// Apps created while an event-stream subscriber listens.
const WATCHED_APPS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Creates `count` apps named `{prefix}-{i}` with `CONCURRENCY` clients; returns apps/s.
async fn create_apps(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    count: usize,
    instances: usize,
) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let http = http.clone();
        let next = next.clone();
        let url = format!("{base}/v2/apps");
        let prefix = prefix.to_string();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let body = json!({
                    "id": format!("{prefix}/group-{}/app-{i}", i % 20),
                    "cmd": "sleep 1000",
                    "instances": instances,
                    "cpus": 0.01,
                    "mem": 8,
                    "labels": {"bench": "true"},
                });
                let status = http.post(&url).json(&body).send().await.unwrap().status();
                assert_eq!(status, 201);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    count as f64 / start.elapsed().as_secs_f64()
}

/// Subscribes to `/v2/events` and drains it in the background; returns bytes read.
async fn subscribe(
    http: &reqwest::Client,
    base: &str,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use futures::StreamExt;
    let bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = bytes.clone();
    let response = http
        .get(format!("{base}/v2/events"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    (task, bytes)
}

async fn latency(http: &reqwest::Client, url: &str, samples: usize) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(samples);
    let mut size = 0;
    for _ in 0..samples {
        let start = Instant::now();
        let body = http.get(url).send().await.unwrap().bytes().await.unwrap();
        times.push(start.elapsed());
        size = body.len();
    }
    times.sort();
    (times, size)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let agents: Vec<AgentSpec> = (11..=13)
        .map(|i| {
            format!("host=127.0.0.{i},cpus=1000,mem=1000000,ports=31000-32999")
                .parse()
                .unwrap()
        })
        .collect();
    let handle = LocalMarathon::builder()
        .executor(ExecutorKind::Sim)
        .agents(agents)
        .start()
        .await
        .expect("localmarathon starts");
    let base = handle.url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();

    // Creations: CONCURRENCY clients posting apps until APPS exist.
    let create_rate = create_apps(&http, &base, "/bench", APPS, INSTANCES).await;

    // Wait until every task runs (no fixed sleep: poll with a deadline).
    let deadline = Instant::now() + Duration::from_secs(120);
    let settle = Instant::now();
    loop {
        let running = handle
            .tasks()
            .iter()
            .filter(|t| t.state == TaskState::Running)
            .count();
        if running == APPS * INSTANCES {
            break;
        }
        assert!(Instant::now() < deadline, "only {running} tasks running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settle_elapsed = settle.elapsed();

    let (list, list_size) = latency(
        &http,
        &format!("{base}/v2/apps?embed=apps.tasks"),
        LIST_SAMPLES,
    )
    .await;
    let (plain, plain_size) = latency(&http, &format!("{base}/v2/apps"), LIST_SAMPLES).await;
    let (tasks, tasks_size) = latency(&http, &format!("{base}/v2/tasks"), LIST_SAMPLES).await;
    let (one, _) = latency(&http, &format!("{base}/v2/apps/bench/group-3/app-503"), 200).await;

    println!();
    println!(
        "localmarathon API benchmark (executor: sim, {APPS} apps x {INSTANCES} tasks, {CONCURRENCY} concurrent clients)"
    );
    println!();
    println!("| measurement                                  | result            | target      |");
    println!("|----------------------------------------------|-------------------|-------------|");
    println!(
        "| app creations (POST /v2/apps, 201)           | {:>10.0} apps/s | >= 1000/s   |",
        create_rate
    );
    println!(
        "| time until all {:>4} tasks TASK_RUNNING       | {:>17} |             |",
        APPS * INSTANCES,
        ms(settle_elapsed)
    );
    for (name, times, size, target) in [
        (
            "GET /v2/apps?embed=apps.tasks p50",
            &list,
            list_size,
            "<= 50 ms",
        ),
        (
            "GET /v2/apps?embed=apps.tasks p95",
            &list,
            list_size,
            "<= 50 ms",
        ),
        (
            "GET /v2/apps (counts, deployments) p50",
            &plain,
            plain_size,
            "",
        ),
        ("GET /v2/tasks p50", &tasks, tasks_size, ""),
    ] {
        let p = if name.ends_with("p95") { 0.95 } else { 0.5 };
        println!(
            "| {:<44} | {:>17} | {:<11} |",
            format!("{name} ({} KiB)", size / 1024),
            ms(percentile(times, p)),
            target
        );
    }
    println!(
        "| {:<44} | {:>17} | {:<11} |",
        "GET /v2/apps/{id} p50",
        ms(percentile(&one, 0.5)),
        ""
    );
    println!(
        "| {:<44} | {:>17} | {:<11} |",
        "GET /v2/apps?embed=apps.tasks max",
        ms(*list.last().unwrap()),
        ""
    );

    // Creation rate while an event-stream subscriber reads every event.
    let (reader, bytes) = subscribe(&http, &base).await;
    let rate = create_apps(&http, &base, "/watched", WATCHED_APPS, 1).await;
    reader.abort();
    println!(
        "| {:<44} | {:>10.0} apps/s | {:<11} |",
        "creations with an SSE subscriber",
        rate,
        format!(
            "{} KiB",
            bytes.load(std::sync::atomic::Ordering::Relaxed) / (1 << 10)
        )
    );
    println!();
    handle.shutdown().await;
}
