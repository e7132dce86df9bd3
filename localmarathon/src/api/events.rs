//! `GET /v2/events`: the server-sent event stream, framed as Marathon's Jetty servlet does.
//!
//! Only a request with an `Accept` header of exactly `text/event-stream` gets the stream (Jetty's
//! `EventSourceServlet` compares each `Accept` value verbatim); anything else is Jetty's 405
//! page. The response is `text/event-stream;charset=UTF-8` with `Connection: close`. The first
//! event a client receives is its own `event_stream_attached` (published to every subscriber,
//! as in Marathon); `event_type` parameters filter what it gets; a CRLF heartbeat follows every
//! heartbeat period. `plan-format=light` is accepted and changes nothing: plans are always light,
//! as in Marathon 1.8+ (see [`crate::events`]). A client that falls too far behind is
//! disconnected (how far is measured against what its connection asks for, see
//! [`crate::event_bus`]), and streams end when the API stops.
//! Detaching publishes `event_stream_detached`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{ApiError, ApiState, Connection, QueryParams};
use crate::events::{self, EventBus, MarathonEvent, RecvError, SSE_HEARTBEAT};
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
    ConnectInfo(client): ConnectInfo<Connection>,
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
    let remote = client.remote.ip().to_string();
    let sub = bus.subscribe_to(filter, Some(Box::new(move || client.has_room())));
    bus.publish(|| events::EventStreamAttached {
        remote_address: remote.clone(),
        event_type: events::EventStreamAttached::TYPE,
        timestamp: Timestamp::now(),
    });
    let heartbeat = api.heartbeat;
    let feed = Feed {
        inbox: sub.rx,
        beat: tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat),
        stopped: Box::pin(api.stop.clone().cancelled_owned()),
        shared: Arc::clone(&api.shared),
        detach: Detach {
            bus: bus.clone(),
            remote,
        },
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream;charset=UTF-8"),
            (header::CONNECTION, "close"),
        ],
        Body::from_stream(feed),
    )
        .into_response())
}

/// One client's stream. Pull-driven: nothing is spawned, the connection polls it whenever it
/// has room for more, and dropping the response drops the subscription.
struct Feed {
    inbox: events::Inbox,
    beat: tokio::time::Interval,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    shared: Arc<Shared>,
    detach: Detach,
}

impl Feed {
    /// Ends the stream of a client `missed` events behind.
    fn cut(&self, missed: u64) -> Poll<Option<Result<Bytes, Infallible>>> {
        self.shared.traffic.stream_cut();
        tracing::warn!(
            remote = %self.detach.remote,
            missed,
            "event stream subscriber fell too far behind; disconnecting it"
        );
        Poll::Ready(None)
    }
}

impl Stream for Feed {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let feed = &mut *self;
        if feed.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        // What is already published goes in the same write, as Jetty buffers a servlet's
        // output: the stream is not one write per event.
        match feed.inbox.poll_frames(cx, WRITE_BYTES) {
            Poll::Ready(Ok(frames)) => return Poll::Ready(Some(Ok(frames))),
            // Marathon drops subscribers that cannot keep up; so do we.
            Poll::Ready(Err(RecvError::Lagged(missed))) => return feed.cut(missed),
            Poll::Pending => {}
        }
        if feed.beat.poll_tick(cx).is_ready() {
            feed.inbox.handed_other();
            return Poll::Ready(Some(Ok(Bytes::from_static(SSE_HEARTBEAT.as_bytes()))));
        }
        Poll::Pending
    }
}
