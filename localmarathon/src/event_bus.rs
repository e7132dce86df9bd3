//! The fan-out of published events to event stream subscribers, and when a subscriber is too
//! far behind to keep.
//!
//! Each event is framed once when it is published (see [`crate::events`]) and the frame is
//! shared by every subscriber that wants its type. A subscriber's frames wait in its own inbox
//! until its connection takes them; publishing never waits for a subscriber.
//!
//! A subscriber is cut off when it falls [`BUS_CAPACITY`] events behind, as Marathon cuts slow
//! SSE clients. Behind is measured against what its connection asks for, not against what
//! localmarathon has got round to writing:
//!
//! * A connection asks when it has room for more (the HTTP server polls the response body).
//!   From then on, what is published is owed to it and does not count, however long
//!   localmarathon's own work (a long scheduler pass, handlers waiting on the state lock)
//!   keeps its writer from running.
//! * Handed frames, it writes them and asks again at once if its socket takes them. An event
//!   published while it has not asked again counts only if its socket is full (the kernel
//!   takes no more bytes; see [`crate::api::connection`]): its reader is not reading. If the
//!   socket has room, the writer has simply not run yet. The [`BUS_CAPACITY`]+1st event that
//!   counts cuts it off. Every event counts, also those its `event_type` filter leaves out.
//!
//! So a reader that keeps reading is not cut off, and one that stops is, [`BUS_CAPACITY`]
//! events after its connection's buffers filled. Not bounded: what is owed to a connection
//! whose writer does not run, which is what localmarathon publishes meanwhile.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use axum::body::Bytes;

use crate::events::{BusEvent, MarathonEvent};

/// How many events a subscriber may fall behind before it is cut off.
pub const BUS_CAPACITY: usize = 1024;

/// Why a subscriber gets no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// It fell this many events behind and was cut off.
    #[error("the subscriber fell {0} events behind and was cut off")]
    Lagged(u64),
}

/// One subscriber's events not yet taken, and how far behind it is.
#[derive(Debug)]
struct Queue {
    frames: VecDeque<BusEvent>,
    /// The connection asked for events and has been handed none since.
    asking: bool,
    /// Events published since the connection last asked.
    behind: usize,
    /// Set when cut off: how far behind it was.
    cut: Option<u64>,
    /// Wakes the connection, while it asks.
    waker: Option<Waker>,
}

/// Whether a subscriber's connection would take more bytes now (its socket has room).
pub type RoomCheck = Box<dyn Fn() -> bool + Send + Sync>;

struct Subscriber {
    /// Event types it wants (all when empty).
    filter: Vec<String>,
    /// Asks its connection's socket; without one, a connection handed frames has no room.
    room: Option<RoomCheck>,
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("filter", &self.filter)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wants(&self, event_type: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|f| f == event_type)
    }

    /// Queues `event` (if wanted) and counts it; false once the subscriber is cut off.
    fn offer(&self, event: &BusEvent) -> bool {
        let waker = {
            let mut q = self.queue();
            if q.cut.is_some() {
                return false;
            }
            // Not asking, yet its socket has room: its writer has not run since it was handed
            // frames, which is localmarathon's doing, not the reader's.
            if !q.asking && !self.room.as_ref().is_some_and(|room| room()) {
                q.behind += 1;
                if q.behind > BUS_CAPACITY {
                    q.cut = Some(q.behind as u64);
                    q.frames = VecDeque::new();
                    return false;
                }
            }
            if !self.wants(event.event_type) {
                return true;
            }
            q.frames.push_back(event.clone());
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }
}

#[derive(Debug, Default)]
struct Fanout {
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    /// How many subscribers there are, read without the lock.
    count: AtomicUsize,
}

impl Fanout {
    fn subscribers(&self) -> MutexGuard<'_, Vec<Arc<Subscriber>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Fan-out of events to subscribers.
#[derive(Debug, Clone, Default)]
pub struct EventBus {
    fanout: Arc<Fanout>,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether anyone listens (events are only built then).
    pub fn has_subscribers(&self) -> bool {
        self.fanout.count.load(Ordering::Acquire) > 0
    }

    /// Publishes the event `make` builds, if anyone listens.
    pub fn publish<E: MarathonEvent>(&self, make: impl FnOnce() -> E) {
        if !self.has_subscribers() {
            return;
        }
        match BusEvent::framed(&make()) {
            Ok(event) => self.send(event),
            Err(e) => {
                tracing::error!(event_type = E::TYPE, error = %e, "event could not be serialised");
            }
        }
    }

    /// Hands a framed event to every subscriber; those it puts too far behind are cut off.
    fn send(&self, event: BusEvent) {
        let mut subscribers = self.fanout.subscribers();
        let before = subscribers.len();
        subscribers.retain(|s| s.offer(&event));
        if subscribers.len() != before {
            self.fanout
                .count
                .store(subscribers.len(), Ordering::Release);
        }
    }

    /// A new subscription to every event, starting with the next one.
    pub fn subscribe(&self) -> Subscription {
        self.subscribe_to(Vec::new(), None)
    }

    /// A new subscription to the events of the types in `filter` (all when empty), starting
    /// with the next one, for a connection whose socket `room` asks.
    pub fn subscribe_to(&self, filter: Vec<String>, room: Option<RoomCheck>) -> Subscription {
        let subscriber = Arc::new(Subscriber {
            filter,
            room,
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                // Nothing handed yet: what comes before the connection first asks is owed.
                asking: true,
                behind: 0,
                cut: None,
                waker: None,
            }),
        });
        let mut subscribers = self.fanout.subscribers();
        subscribers.push(Arc::clone(&subscriber));
        self.fanout
            .count
            .store(subscribers.len(), Ordering::Release);
        Subscription {
            rx: Inbox {
                subscriber,
                fanout: Arc::clone(&self.fanout),
            },
        }
    }
}

/// A subscription to the bus.
#[derive(Debug)]
pub struct Subscription {
    /// Its events.
    pub rx: Inbox,
}

/// The events published for one subscriber and not yet taken by its connection. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Inbox {
    subscriber: Arc<Subscriber>,
    fanout: Arc<Fanout>,
}

impl Inbox {
    /// The connection asks for events. It has room, so it is behind on nothing: the queue is
    /// handed over when it holds a frame, else the connection waits (and is woken) for one.
    fn ask(&self, cx: &mut Context<'_>) -> Poll<Result<MutexGuard<'_, Queue>, RecvError>> {
        let mut q = self.subscriber.queue();
        q.behind = 0;
        if let Some(missed) = q.cut {
            return Poll::Ready(Err(RecvError::Lagged(missed)));
        }
        if q.frames.is_empty() {
            q.asking = true;
            if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                q.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        q.asking = false;
        q.waker = None;
        Poll::Ready(Ok(q))
    }

    /// The frames waiting, joined into one write of about `max_bytes` (at least one frame),
    /// or `Pending` until one comes.
    pub fn poll_frames(
        &mut self,
        cx: &mut Context<'_>,
        max_bytes: usize,
    ) -> Poll<Result<Bytes, RecvError>> {
        let mut q = match ready!(self.ask(cx)) {
            Ok(q) => q,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let (mut count, mut len) = (0, 0);
        for frame in q.frames.iter().map(BusEvent::sse_frame) {
            if count > 0 && len + frame.len() > max_bytes {
                break;
            }
            count += 1;
            len += frame.len();
        }
        if count == 1 {
            let only = q.frames.pop_front().map(|e| e.sse_frame().clone());
            return Poll::Ready(Ok(only.unwrap_or_default()));
        }
        let mut joined = Vec::with_capacity(len);
        for event in q.frames.drain(..count) {
            joined.extend_from_slice(event.sse_frame());
        }
        Poll::Ready(Ok(Bytes::from(joined)))
    }

    /// The next event.
    pub async fn recv(&mut self) -> Result<BusEvent, RecvError> {
        poll_fn(|cx| {
            self.ask(cx)
                .map_ok(|mut q| q.frames.pop_front().expect("a frame is waiting"))
        })
        .await
    }

    /// The connection was handed something else (a heartbeat): it is busy with that until it
    /// asks again.
    pub fn handed_other(&mut self) {
        let mut q = self.subscriber.queue();
        q.asking = false;
        q.waker = None;
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut subscribers = self.fanout.subscribers();
        subscribers.retain(|s| !Arc::ptr_eq(s, &self.subscriber));
        self.fanout
            .count
            .store(subscribers.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::app_id::AppId;
    use crate::events::AppTerminatedEvent;
    use crate::timestamp::Timestamp;

    fn publish(bus: &EventBus, n: usize) {
        for _ in 0..n {
            bus.publish(|| AppTerminatedEvent {
                app_id: AppId::parse("/a").unwrap(),
                event_type: AppTerminatedEvent::TYPE,
                timestamp: Timestamp::from_millis(0),
            });
        }
    }

    fn frame_len() -> usize {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        publish(&bus, 1);
        take(&mut sub.rx, usize::MAX).unwrap().unwrap().len()
    }

    /// One poll of the connection's side: `None` while it waits.
    fn take(rx: &mut Inbox, max_bytes: usize) -> Option<Result<Bytes, RecvError>> {
        match rx.poll_frames(&mut Context::from_waker(Waker::noop()), max_bytes) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    /// Takes everything waiting; the number of frames taken.
    fn drain(rx: &mut Inbox) -> usize {
        let one = frame_len();
        let mut frames = 0;
        while let Some(taken) = take(rx, 64 * 1024) {
            let bytes = taken.expect("not cut off");
            assert_eq!(bytes.len() % one, 0, "whole frames only");
            frames += bytes.len() / one;
        }
        frames
    }

    #[test]
    fn a_connection_that_asked_is_owed_every_event_however_late_it_comes_to_take_them() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        assert!(take(&mut sub.rx, 64 * 1024).is_none(), "asks, nothing yet");
        // localmarathon publishes ten times the capacity before the connection runs again.
        publish(&bus, 10 * BUS_CAPACITY);
        assert!(bus.has_subscribers());
        assert_eq!(drain(&mut sub.rx), 10 * BUS_CAPACITY);
    }

    #[test]
    fn a_connection_handed_frames_is_cut_when_capacity_events_pass_before_it_asks_again() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        publish(&bus, 1);
        assert!(take(&mut sub.rx, 64 * 1024).is_some(), "handed a frame");
        // It is busy with that frame (its socket is full) while events keep coming.
        publish(&bus, BUS_CAPACITY);
        assert!(bus.has_subscribers(), "exactly the capacity behind: kept");
        publish(&bus, 1);
        assert!(!bus.has_subscribers(), "one more: cut off");
        assert_eq!(
            take(&mut sub.rx, 64 * 1024),
            Some(Err(RecvError::Lagged(BUS_CAPACITY as u64 + 1)))
        );
        publish(&bus, 1);
        assert_eq!(
            take(&mut sub.rx, 64 * 1024),
            Some(Err(RecvError::Lagged(BUS_CAPACITY as u64 + 1))),
            "stays cut off"
        );
    }

    #[test]
    fn a_connection_handed_frames_whose_socket_has_room_is_not_behind() {
        let room = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let bus = EventBus::new();
        let check = Arc::clone(&room);
        let mut sub = bus.subscribe_to(
            Vec::new(),
            Some(Box::new(move || check.load(Ordering::SeqCst))),
        );
        publish(&bus, 1);
        assert!(take(&mut sub.rx, 64 * 1024).is_some(), "handed a frame");
        // Its socket takes more: the writer has not run, which is no fault of the reader.
        publish(&bus, 10 * BUS_CAPACITY);
        assert!(bus.has_subscribers());
        // Its socket fills: from now on events count.
        room.store(false, Ordering::SeqCst);
        publish(&bus, BUS_CAPACITY);
        assert!(bus.has_subscribers());
        publish(&bus, 1);
        assert!(!bus.has_subscribers());
    }

    #[test]
    fn asking_again_starts_the_count_afresh() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        for _ in 0..5 {
            publish(&bus, 1);
            assert!(take(&mut sub.rx, 64 * 1024).is_some());
            publish(&bus, BUS_CAPACITY);
            assert_eq!(drain(&mut sub.rx), BUS_CAPACITY);
        }
        assert!(bus.has_subscribers());
    }

    #[test]
    fn a_heartbeat_hands_the_connection_something_and_events_filtered_out_count() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe_to(vec!["deployment_info".to_string()], None);
        assert!(take(&mut sub.rx, 64 * 1024).is_none());
        // Events it does not want are not queued while it asks...
        publish(&bus, 2 * BUS_CAPACITY);
        assert!(take(&mut sub.rx, 64 * 1024).is_none());
        // ...but once it is busy writing a heartbeat, they count.
        sub.rx.handed_other();
        publish(&bus, BUS_CAPACITY + 1);
        assert!(!bus.has_subscribers());
    }

    #[test]
    fn frames_are_joined_into_writes_of_whole_frames_up_to_the_limit() {
        let one = frame_len();
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        publish(&bus, 10);
        let first = take(&mut sub.rx, 3 * one + one / 2).unwrap().unwrap();
        assert_eq!(first.len(), 3 * one);
        let small = take(&mut sub.rx, 1).unwrap().unwrap();
        assert_eq!(small.len(), one, "at least one frame");
        assert_eq!(drain(&mut sub.rx), 6);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_is_woken_and_a_dropped_one_unsubscribes() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        let waiting = tokio::spawn(async move { sub.rx.recv().await.map(|e| e.event_type) });
        tokio::task::yield_now().await;
        publish(&bus, 1);
        assert_eq!(waiting.await.unwrap(), Ok(AppTerminatedEvent::TYPE));
        assert!(
            !bus.has_subscribers(),
            "the subscription went with its task"
        );
    }
}
