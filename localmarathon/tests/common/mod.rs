//! Shared test harness: a localmarathon per test, an HTTP client, SSE capture and waiting on
//! conditions with a deadline.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use localmarathon::{ExecutorKind, Handle, LocalMarathon};
use serde_json::Value;

/// Generous deadline for conditions on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Path of a Marathon fixture in the repository.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/marathon")
        .join(name)
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A started localmarathon with a client.
pub struct Lm {
    pub handle: Handle,
    pub http: reqwest::Client,
    pub base: String,
}

pub async fn start(executor: ExecutorKind) -> Lm {
    start_with(LocalMarathon::builder().executor(executor)).await
}

pub async fn start_with(builder: localmarathon::Builder) -> Lm {
    let handle = builder.start().await.expect("localmarathon starts");
    let base = handle.url();
    Lm {
        handle,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base,
    }
}

impl Lm {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// The app's tasks.
    pub async fn tasks(&self, app: &str) -> Vec<Value> {
        let (_, body) = self.get(&format!("/v2/apps{app}/tasks")).await;
        body["tasks"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the app has `n` running tasks and no deployment; returns them.
    pub async fn wait_running(&self, app: &str, n: usize) -> Vec<Value> {
        let found = wait_for(DEADLINE, || async {
            let (_, body) = self.get(&format!("/v2/apps{app}")).await;
            let a = &body["app"];
            let ok = a["tasksRunning"] == n
                && a["deployments"].as_array().is_some_and(|d| d.is_empty())
                && a["tasks"].as_array().is_some_and(|t| t.len() == n);
            ok.then(|| a["tasks"].as_array().cloned().unwrap_or_default())
        })
        .await;
        match found {
            Some(tasks) => tasks,
            None => {
                let (_, last) = self.get(&format!("/v2/apps{app}")).await;
                panic!("{app} did not reach {n} running tasks: {last:#}")
            }
        }
    }

    /// Waits until no deployment runs.
    pub async fn wait_no_deployments(&self) {
        let ok = wait_for(DEADLINE, || async {
            let (_, body) = self.get("/v2/deployments").await;
            body.as_array().is_some_and(|d| d.is_empty()).then_some(())
        })
        .await;
        assert!(ok.is_some(), "deployments did not finish");
    }

    /// Subscribes to `/v2/events` and collects parsed events in the background.
    pub async fn events(&self) -> EventLog {
        self.events_with("").await
    }

    /// Like [`Lm::events`] with a query string (`?event_type=...`).
    pub async fn events_with(&self, query: &str) -> EventLog {
        let response = self
            .http
            .get(self.url(&format!("/v2/events{query}")))
            .header("Accept", "text/event-stream")
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .expect("event stream");
        assert_eq!(response.status(), 200);
        let log = EventLog::default();
        let sink = log.clone();
        let task = tokio::spawn(async move {
            let mut stream = eventsource_stream::EventStream::new(response.bytes_stream());
            while let Some(Ok(event)) = stream.next().await {
                if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
                    sink.events.lock().unwrap().push((event.event, data));
                }
            }
        });
        *log.task.lock().unwrap() = Some(task);
        let attached = wait_for(DEADLINE, || async {
            log.find(|t, _| t == "event_stream_attached").then_some(())
        })
        .await;
        assert!(attached.is_some(), "no event_stream_attached");
        log
    }
}

/// Events received so far.
#[derive(Clone, Default)]
pub struct EventLog {
    pub events: Arc<Mutex<Vec<(String, Value)>>>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl EventLog {
    pub fn snapshot(&self) -> Vec<(String, Value)> {
        self.events.lock().unwrap().clone()
    }

    pub fn find(&self, f: impl Fn(&str, &Value) -> bool) -> bool {
        self.events.lock().unwrap().iter().any(|(t, d)| f(t, d))
    }

    pub async fn wait(&self, what: &str, f: impl Fn(&str, &Value) -> bool) -> Value {
        let found = wait_for(DEADLINE, || async {
            self.events
                .lock()
                .unwrap()
                .iter()
                .find(|(t, d)| f(t, d))
                .map(|(_, d)| d.clone())
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no event: {what}; got {:#?}",
                self.snapshot()
                    .iter()
                    .map(|(t, _)| t.clone())
                    .collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1
            && let Some(t) = self.task.lock().unwrap().take()
        {
            t.abort();
        }
    }
}

/// Polls `check` until it yields `Some` or `deadline` passes.
pub async fn wait_for<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Whether a Docker engine answers on this machine.
pub fn docker_engine_present() -> bool {
    theseus_testkit::image::DockerEngine::probe().is_ok()
}
