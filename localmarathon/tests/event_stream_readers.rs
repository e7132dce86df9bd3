//! `/v2/events` and how far behind a reader may fall: one that keeps reading is never cut off,
//! however many events a rollout sends at once; one that stops reading is cut off, as Marathon
//! cuts a client 1,024 events behind.
//!
//! The readers are plain sockets on threads of their own, so that they read (or not) whatever
//! localmarathon's runtime is doing.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;

use common::{DEADLINE, Lm, start_with, wait_for};
use localmarathon::{AgentSpec, ExecutorKind, LocalMarathon};
use serde_json::json;

/// localmarathon with the simulated executor on one agent that every task fits on.
async fn start_big() -> Lm {
    start_with(
        LocalMarathon::builder()
            .executor(ExecutorKind::Sim)
            .agents([AgentSpec {
                cpus: 100_000.0,
                mem: 100_000_000.0,
                disk: 100_000_000.0,
                ..AgentSpec::new([127, 0, 0, 11].into())
            }]),
    )
    .await
}

/// An app of `instances` tasks that need no port.
fn app(id: &str, instances: usize) -> serde_json::Value {
    json!({"id": id, "cmd": "sleep 1000", "instances": instances, "cpus": 0.01, "mem": 1,
           "portDefinitions": []})
}

/// The events read from one `/v2/events` connection (HTTP/1.1, chunked), by type.
struct SseReader {
    socket: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    /// How much of `body` is split into events.
    split: usize,
    events: BTreeMap<String, usize>,
    ended: bool,
}

impl SseReader {
    /// Connects and reads the response head.
    fn open(addr: SocketAddr) -> SseReader {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        write!(
            socket,
            "GET /v2/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = SseReader {
            socket,
            raw: Vec::new(),
            body: Vec::new(),
            split: 0,
            events: BTreeMap::new(),
            ended: false,
        };
        let head_end = loop {
            if let Some(end) = reader.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(reader.fill(), "the stream closed before its head");
        };
        let head = String::from_utf8_lossy(&reader.raw[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        reader.raw.drain(..head_end);
        reader
    }

    /// Reads what the socket has; false at the end of the stream.
    fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        match self.socket.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("the event stream stalled: {e}"),
        }
    }

    /// Moves whole chunks into the body and whole events into the counts.
    fn decode(&mut self) {
        let mut at = 0;
        while let Some(line) = self.raw[at..].windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&self.raw[at..at + line]).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let data = at + line + 2;
            if self.raw.len() < data + size + 2 {
                break;
            }
            if size == 0 {
                self.ended = true;
            }
            self.body.extend_from_slice(&self.raw[data..data + size]);
            at = data + size + 2;
        }
        self.raw.drain(..at);
        while let Some(end) = self.body[self.split..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            let frame = std::str::from_utf8(&self.body[self.split..self.split + end]).unwrap();
            if let Some(kind) = frame.strip_prefix("event: ") {
                let kind = kind.split("\r\n").next().unwrap();
                *self.events.entry(kind.to_string()).or_default() += 1;
            }
            self.split += end + 4;
        }
        self.body.drain(..self.split);
        self.split = 0;
    }

    /// Reads until `done` holds for the counts (true) or the stream ends (false).
    fn read_until(&mut self, done: impl Fn(&BTreeMap<String, usize>) -> bool) -> bool {
        loop {
            self.decode();
            if done(&self.events) {
                return true;
            }
            if self.ended || !self.fill() {
                self.decode();
                return false;
            }
        }
    }

    fn count(&self, kind: &str) -> usize {
        self.events.get(kind).copied().unwrap_or(0)
    }
}

/// Starts `read` on a thread of its own; its answer is awaited on the runtime, which keeps
/// serving localmarathon meanwhile.
fn on_thread<T: Send + 'static>(
    read: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read());
    });
    async move { rx.await.expect("the reader thread panicked") }
}

#[tokio::test]
async fn a_reader_that_keeps_reading_is_never_cut_off_by_a_big_rollout() {
    // One scheduler pass launches all of them: thousands of events at once, then several for
    // each task as it starts.
    const TASKS: usize = 2_000;
    let lm = start_big().await;
    let addr = lm.handle.addr();
    let (attached_tx, attached) = mpsc::channel();
    let reading = on_thread(move || {
        let mut reader = SseReader::open(addr);
        assert!(reader.read_until(|e| e.contains_key("event_stream_attached")));
        attached_tx.send(()).unwrap();
        let finished = reader.read_until(|e| e.contains_key("deployment_success"));
        (finished, reader)
    });
    let ready = wait_for(DEADLINE, || async { attached.try_recv().ok() }).await;
    assert!(ready.is_some(), "the reader attached");

    let (status, _) = lm.post("/v2/apps", app("/wide", TASKS)).await;
    assert_eq!(status, 201);
    let (finished, reader) = reading.await;

    assert!(
        finished,
        "the stream ended before the deployment did, after {:?}",
        reader.events
    );
    assert_eq!(lm.handle.traffic().stream_cuts, 0);
    assert_eq!(reader.count("instance_changed_event"), 3 * TASKS);
    assert_eq!(reader.count("status_update_event"), 2 * TASKS);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_and_its_stream_ends() {
    // Far more than the connection's buffers and the 1,024 events a reader may lag hold.
    const TASKS: usize = 5_000;
    let lm = start_big().await;
    let addr = lm.handle.addr();
    let (attached_tx, attached) = mpsc::channel();
    let (resume, resumed) = mpsc::channel::<()>();
    let reading = on_thread(move || {
        let mut reader = SseReader::open(addr);
        assert!(reader.read_until(|e| e.contains_key("event_stream_attached")));
        attached_tx.send(()).unwrap();
        // Reads nothing until told to.
        resumed.recv().unwrap();
        let more = reader.read_until(|_| false);
        (more, reader)
    });
    let ready = wait_for(DEADLINE, || async { attached.try_recv().ok() }).await;
    assert!(ready.is_some(), "the reader attached");

    let (status, _) = lm.post("/v2/apps", app("/wider", TASKS)).await;
    assert_eq!(status, 201);
    lm.wait_no_deployments().await;
    // Its connection has not asked for events since its socket filled, so nothing has been
    // sent on it: the cut off is found when it is read again.
    assert_eq!(lm.handle.traffic().stream_cuts, 0);
    resume.send(()).unwrap();
    let (more, reader) = reading.await;

    assert!(!more);
    assert!(reader.ended, "the stream ends cleanly: {:?}", reader.events);
    assert!(
        reader.count("status_update_event") < 2 * TASKS,
        "it missed events: {:?}",
        reader.events
    );
    assert!(!reader.events.contains_key("deployment_success"));
    assert_eq!(lm.handle.traffic().stream_cuts, 1);
    lm.handle.shutdown().await;
}
