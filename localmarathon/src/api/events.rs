//! `GET /v2/events`: the server-sent event stream, framed as Marathon's Jetty servlet does.
//!
//! Only a request with an `Accept` header of exactly `text/event-stream` gets the stream (Jetty's
//! `EventSourceServlet` compares each `Accept` value verbatim); anything else is Jetty's 405
//! page. The response is `text/event-stream;charset=UTF-8` with `Connection: close`. The first
//! event a client receives is its own `event_stream_attached` (published to every subscriber,
//! as in Marathon); `event_type` parameters filter what it gets; a CRLF heartbeat follows every
//! heartbeat period. `plan-format=light` is accepted and changes nothing: plans are always light,
//! as in Marathon 1.8+ (see [`crate::events`]). A client that falls too far behind is
//! disconnected, and streams end when the API stops.
//! Detaching publishes `event_stream_detached`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{ApiError, ApiState, QueryParams};
use crate::events::{self, EventBus, MarathonEvent, SSE_HEARTBEAT};
use crate::state::Shared;
use crate::timestamp::Timestamp;

/// The most bytes of events sent in one write.
const WRITE_BYTES: usize = 64 * 1024;

/// Publishes `event_stream_detached` when the stream is dropped.
struct Detach {
    bus: EventBus,
    remote: String,
}

impl Drop for Detach {
    fn drop(&mut self) {
        let remote = self.remote.clone();
        self.bus.publish(|| events::EventStreamDetached {
            remote_address: remote,
            event_type: events::EventStreamDetached::TYPE,
            timestamp: Timestamp::now(),
        });
    }
}

/// `GET /v2/events`.
pub async fn stream(
    State(api): State<ApiState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let accepts = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v == "text/event-stream");
    if !accepts {
        return Err(ApiError::EventStreamNeedsAccept);
    }
    let q = QueryParams::parse(q.as_deref());
    let filter: Vec<String> = q.all("event_type");
    let bus = api.shared.bus.clone();
    let sub = bus.subscribe();
    let remote = client.ip().to_string();
    bus.publish(|| events::EventStreamAttached {
        remote_address: remote.clone(),
        event_type: events::EventStreamAttached::TYPE,
        timestamp: Timestamp::now(),
    });
    let stop = api.stop.clone();
    let heartbeat = api.heartbeat;
    let detach = Detach {
        bus: bus.clone(),
        remote,
    };
    struct Feed {
        sub: events::Subscription,
        beat: tokio::time::Interval,
        stop: tokio_util::sync::CancellationToken,
        filter: Vec<String>,
        shared: Arc<Shared>,
        _detach: Detach,
    }
    impl Feed {
        /// Whether the client's `event_type` filter lets `event` through.
        fn wants(&self, event: &events::BusEvent) -> bool {
            self.filter.is_empty() || self.filter.iter().any(|f| f == event.event_type)
        }

        /// Ends the stream of a client `missed` events behind.
        fn cut<T>(&self, missed: u64) -> Option<T> {
            self.shared.traffic.stream_cut();
            tracing::warn!(
                remote = %self._detach.remote,
                missed,
                "event stream subscriber fell too far behind; disconnecting it"
            );
            None
        }
    }
    let feed = Feed {
        sub,
        beat: tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat),
        stop,
        filter,
        shared: Arc::clone(&api.shared),
        _detach: detach,
    };
    // Pull-driven: nothing is spawned, and dropping the response drops the subscription.
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        loop {
            let chunk = tokio::select! {
                () = feed.stop.cancelled() => return None,
                _ = feed.beat.tick() => Bytes::from_static(SSE_HEARTBEAT.as_bytes()),
                received = feed.sub.rx.recv() => match received {
                    Ok(event) => {
                        // What else is already published goes in the same write, as Jetty
                        // buffers a servlet's output: the stream is not one write per event.
                        let mut frames = String::new();
                        let mut next = Some(event);
                        while let Some(event) = next.take() {
                            if feed.wants(&event) {
                                frames.push_str(&event.sse_frame());
                            }
                            if frames.len() >= WRITE_BYTES {
                                break;
                            }
                            match feed.sub.rx.try_recv() {
                                Ok(event) => next = Some(event),
                                Err(TryRecvError::Lagged(missed)) => return feed.cut(missed),
                                Err(TryRecvError::Empty | TryRecvError::Closed) => {}
                            }
                        }
                        if frames.is_empty() {
                            continue;
                        }
                        Bytes::from(frames)
                    }
                    // Marathon drops subscribers that cannot keep up; so do we.
                    Err(RecvError::Lagged(missed)) => return feed.cut(missed),
                    Err(RecvError::Closed) => return None,
                },
            };
            return Some((Ok::<Bytes, Infallible>(chunk), feed));
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream;charset=UTF-8"),
            (header::CONNECTION, "close"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
