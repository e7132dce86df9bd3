//! `/v2/events` on the wire: Jetty's SSE framing byte for byte, CRLF heartbeats, the attached
//! event first, `event_type` filters, and event payloads with the fixtures' fields.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{DEADLINE, fixture_json, start, start_with};
use localmarathon::{ExecutorKind, LocalMarathon};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw HTTP/1.1 event-stream connection; yields the decoded body bytes.
struct RawStream {
    socket: TcpStream,
    buffer: Vec<u8>,
    chunked: bool,
    pub head: String,
    body: Vec<u8>,
}

impl RawStream {
    async fn open(addr: std::net::SocketAddr, query: &str) -> RawStream {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /v2/events{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut s = RawStream {
            socket,
            buffer: Vec::new(),
            chunked: false,
            head: String::new(),
            body: Vec::new(),
        };
        while !s.buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            s.fill().await;
        }
        let end = s.buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        s.head = String::from_utf8_lossy(&s.buffer[..end]).to_string();
        s.buffer.drain(..end);
        s.chunked = s
            .head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        s
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(DEADLINE, self.socket.read(&mut chunk))
            .await
            .expect("stream stalled")
            .unwrap();
        assert!(n > 0, "stream closed");
        self.buffer.extend_from_slice(&chunk[..n]);
    }

    /// Moves decoded body bytes from the buffer into `body`.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.buffer);
            return;
        }
        loop {
            let Some(line_end) = self.buffer.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.buffer[..line_end])
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            if self.buffer.len() < line_end + 2 + size + 2 {
                return;
            }
            let start = line_end + 2;
            self.body
                .extend_from_slice(&self.buffer[start..start + size]);
            self.buffer.drain(..start + size + 2);
        }
    }

    /// Reads until the body holds at least `n` bytes past `from`.
    async fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        loop {
            self.decode();
            if pred(&self.body) {
                return self.body.clone();
            }
            self.fill().await;
        }
    }
}

fn frames(body: &[u8]) -> usize {
    body.windows(4).filter(|w| *w == b"\r\n\r\n").count()
}

#[tokio::test]
async fn events_are_framed_with_crlf_exactly_as_jetty_does() {
    let lm = start(ExecutorKind::Sim).await;
    let mut raw = RawStream::open(lm.handle.addr(), "").await;
    assert!(raw.head.starts_with("HTTP/1.1 200"), "{}", raw.head);
    let head = raw.head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/event-stream;charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("connection: close"), "{head}");

    let body = raw.read_until(|b| frames(b) >= 1).await;
    let text = String::from_utf8(body).unwrap();
    let prefix = "event: event_stream_attached\r\ndata: {\"remoteAddress\":\"127.0.0.1\",\"eventType\":\"event_stream_attached\",\"timestamp\":\"";
    assert!(text.starts_with(prefix), "{text:?}");
    assert!(text.ends_with("Z\"}\r\n\r\n"), "{text:?}");
    // One data line, no LF-only line ends.
    assert_eq!(text.matches("\r\n").count(), 3);
    assert_eq!(text.matches('\n').count(), 3);
    // Fields in the order of the SSE fixture.
    let data: Value = serde_json::from_str(
        text.lines()
            .nth(1)
            .unwrap()
            .strip_prefix("data: ")
            .unwrap()
            .trim_end(),
    )
    .unwrap();
    let fixture = fixture_json("event-event_stream_attached.sse.json");
    let order = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        order(&data).into_iter().collect::<BTreeSet<_>>(),
        order(&fixture).into_iter().collect::<BTreeSet<_>>()
    );
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn heartbeats_are_bare_crlf_and_filters_select_event_types() {
    let lm = start_with(
        LocalMarathon::builder()
            .executor(ExecutorKind::Sim)
            .event_heartbeat(Duration::from_millis(100)),
    )
    .await;
    let mut raw = RawStream::open(lm.handle.addr(), "?event_type=app_terminated_event").await;
    // Nothing but heartbeats until an app terminates: the attached event is filtered too.
    let body = raw.read_until(|b| b.len() >= 4).await;
    assert_eq!(&body[..4], b"\r\n\r\n", "two heartbeats, no event");
    let (status, _) = lm
        .post("/v2/apps", json!({"id": "/short", "cmd": "sleep 1"}))
        .await;
    assert_eq!(status, 201);
    lm.wait_running("/short", 1).await;
    let (status, _) = lm.delete("/v2/apps/short").await;
    assert_eq!(status, 200);
    let body = raw
        .read_until(|b| b.windows(5).any(|w| w == b"data:") && b.ends_with(b"}\r\n\r\n"))
        .await;
    let text = String::from_utf8(body).unwrap();
    let events: Vec<&str> = text.lines().filter(|l| l.starts_with("event: ")).collect();
    assert_eq!(events, ["event: app_terminated_event"]);
    assert!(text.trim_start_matches("\r\n").starts_with("event: app_terminated_event\r\ndata: {\"appId\":\"/short\",\"eventType\":\"app_terminated_event\",\"timestamp\":\""));
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn event_payloads_carry_the_fields_of_marathons_events() {
    let lm = start(ExecutorKind::Sim).await;
    let events = lm.events().await;
    let (status, _) = lm
        .post(
            "/v2/apps",
            json!({"id": "/evt", "cmd": "sleep 100", "healthChecks": [{"protocol": "TCP"}]}),
        )
        .await;
    assert_eq!(status, 201);
    lm.wait_running("/evt", 1).await;
    events
        .wait("deployment_success", |t, _| t == "deployment_success")
        .await;
    events
        .wait("health", |t, _| t == "health_status_changed_event")
        .await;
    lm.delete("/v2/apps/evt").await;
    events
        .wait("terminated", |t, _| t == "app_terminated_event")
        .await;

    let log = events.snapshot();
    let first = |kind: &str| -> Value {
        log.iter()
            .find(|(t, _)| t == kind)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let fixture_keys = |name: &str| keys(&fixture_json(name));

    // status_update_event: the fixture's fields plus message and ipAddresses (Marathon 1.x).
    let running = log
        .iter()
        .find(|(t, d)| t == "status_update_event" && d["taskStatus"] == "TASK_RUNNING")
        .unwrap()
        .1
        .clone();
    let mut expected = fixture_keys("event-status_update_event.json");
    expected.extend(["message".to_string(), "ipAddresses".to_string()]);
    assert_eq!(keys(&running), expected);
    assert_eq!(running["ipAddresses"][0]["protocol"], "IPv4");

    assert_eq!(
        keys(&first("instance_changed_event")),
        fixture_keys("event-instance_changed_event.json")
    );
    assert_eq!(
        keys(&first("health_status_changed_event")),
        fixture_keys("event-health_status_changed_event.json")
    );
    assert_eq!(
        keys(&first("app_terminated_event")),
        fixture_keys("event-app_terminated_event.json")
    );
    let post = first("api_post_event");
    assert_eq!(keys(&post), fixture_keys("event-api_post_event.json"));
    assert_eq!(post["appDefinition"]["id"], "/evt");
    assert_eq!(post["uri"], "/v2/apps");

    // Deployment events: the serializer's shape (plan with steps of actions), which the docs'
    // examples predate.
    let info = first("deployment_info");
    assert_eq!(keys(&info), fixture_keys("event-deployment_info.json"));
    // Marathon 1.8+ sends only light plans, without the root groups.
    assert_eq!(
        keys(&info["plan"]),
        BTreeSet::from(["id", "steps", "version"].map(String::from))
    );
    assert_eq!(
        info["plan"]["steps"][0]["actions"][0]["action"],
        "StartApplication"
    );
    assert_eq!(info["currentStep"]["actions"][0]["app"], "/evt");
    let step = first("deployment_step_success");
    assert_eq!(
        keys(&step),
        fixture_keys("event-deployment_step_success.json")
    );
    let success = first("deployment_success");
    let mut expected = fixture_keys("event-deployment_success.json");
    expected.insert("plan".into());
    assert_eq!(keys(&success), expected);
    assert_eq!(success["plan"]["id"], info["plan"]["id"]);
    assert_eq!(success["plan"]["steps"][0]["actions"][0]["app"], "/evt");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn deployment_plans_are_light_whether_or_not_plan_format_asks_for_it() {
    // `plan-format=light` made Marathon 1.6 and 1.7 leave the root groups out of plans; 1.8+
    // always does, and ignores the parameter.
    let lm = start(ExecutorKind::Sim).await;
    let plain = lm.events().await;
    let light = lm.events_with("?plan-format=light").await;
    let (status, _) = lm
        .post("/v2/apps", json!({"id": "/plans", "cmd": "sleep 100"}))
        .await;
    assert_eq!(status, 201);
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let p = plain
        .wait("deployment_success", |t, _| t == "deployment_success")
        .await;
    let l = light
        .wait("light deployment_success", |t, _| t == "deployment_success")
        .await;
    for plan in [&p["plan"], &l["plan"]] {
        assert_eq!(
            keys(plan),
            BTreeSet::from(["id", "steps", "version"].map(String::from))
        );
    }
    assert_eq!(p, l);
    lm.handle.shutdown().await;
}
