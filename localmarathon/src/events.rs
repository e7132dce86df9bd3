//! Marathon's events and their wire form.
//!
//! Every event is serialised once, when it is published, as the SSE frame Marathon sends: the
//! `event:` line and the one-line JSON of its `data:` line. Subscribers share that frame (see
//! [`crate::event_bus`], which also says when a subscriber is cut off for falling
//! [`BUS_CAPACITY`] events behind). Nothing is built when no one listens (events are passed as
//! closures).
//!
//! Deployment events carry the plan as `{id, steps, version}`, the only form Marathon 1.8+ sends
//! (the root groups before and after, `original` and `target`, were dropped with the
//! `api_heavy_events` feature; `plan-format=light` asked 1.6 and 1.7 for this form).
//!
//! Framing follows Jetty's `EventSourceServlet`, which Marathon's `/v2/events` uses: `event:` and
//! `data:` lines end in CRLF, an event ends with an empty CRLF line, and the heartbeat is a bare
//! CRLF every 10 seconds.

use std::sync::Arc;

use axum::body::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::app_id::AppId;
use crate::timestamp::Timestamp;

pub use crate::event_bus::{BUS_CAPACITY, EventBus, Inbox, RecvError, Subscription};

/// One event ready to be sent: its type and its SSE frame, built once for every subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    /// `eventType`, also the SSE `event:` name.
    pub event_type: &'static str,
    frame: Bytes,
}

impl BusEvent {
    /// Frames `event`: `event: <type>` CRLF `data: <one-line JSON>` CRLF CRLF.
    pub fn framed<E: MarathonEvent>(event: &E) -> serde_json::Result<Self> {
        let mut frame = Vec::with_capacity(512);
        frame.extend_from_slice(b"event: ");
        frame.extend_from_slice(E::TYPE.as_bytes());
        frame.extend_from_slice(b"\r\ndata: ");
        serde_json::to_writer(&mut frame, event)?;
        frame.extend_from_slice(b"\r\n\r\n");
        Ok(BusEvent {
            event_type: E::TYPE,
            frame: Bytes::from(frame),
        })
    }

    /// The SSE bytes for this event.
    pub fn sse_frame(&self) -> &Bytes {
        &self.frame
    }
}

/// Pre-serialised JSON embedded as is (deployment plans, shared by all events of a deployment).
#[derive(Debug, Clone)]
pub struct RawJson(Arc<serde_json::value::RawValue>);

impl RawJson {
    /// Serialises `value` once.
    pub fn of<T: Serialize>(value: &T) -> Self {
        let raw = serde_json::value::to_raw_value(value).unwrap_or_else(|e| {
            tracing::error!(error = %e, "value could not be serialised; sending null");
            serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
        });
        RawJson(Arc::from(raw))
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The SSE heartbeat Jetty writes.
pub const SSE_HEARTBEAT: &str = "\r\n";

/// Something that can go on the bus.
pub trait MarathonEvent: Serialize {
    /// The `eventType`.
    const TYPE: &'static str;
}

macro_rules! event {
    ($(#[$doc:meta])* $name:ident = $ty:literal { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $fty,)*
            /// Always the type name.
            pub event_type: &'static str,
            /// When it happened.
            pub timestamp: Timestamp,
        }
        impl MarathonEvent for $name {
            const TYPE: &'static str = $ty;
        }
    };
}

event!(
    /// A client attached to `/v2/events`.
    EventStreamAttached = "event_stream_attached" {
        /// The client's address.
        remote_address: String,
    }
);

event!(
    /// A client detached from `/v2/events`.
    EventStreamDetached = "event_stream_detached" {
        /// The client's address.
        remote_address: String,
    }
);

event!(
    /// An app was created or updated through the API.
    ApiPostEvent = "api_post_event" {
        /// The caller's address.
        client_ip: String,
        /// The request path.
        uri: String,
        /// The normalised app.
        app_definition: Value,
    }
);

event!(
    /// A Mesos task status update.
    StatusUpdateEvent = "status_update_event" {
        /// Agent id.
        slave_id: String,
        /// Task id.
        task_id: String,
        /// New state.
        task_status: &'static str,
        /// Mesos message (may be empty).
        message: String,
        /// App id.
        app_id: AppId,
        /// Agent hostname.
        host: String,
        /// Task addresses.
        ip_addresses: Vec<IpAddressJson>,
        /// Host ports.
        ports: Vec<u16>,
        /// App version the task runs.
        version: Timestamp,
    }
);

event!(
    /// An instance changed condition.
    InstanceChangedEvent = "instance_changed_event" {
        /// Instance id.
        instance_id: String,
        /// New condition.
        condition: &'static str,
        /// App id.
        run_spec_id: AppId,
        /// Agent id.
        agent_id: String,
        /// Agent hostname.
        host: String,
        /// App version.
        run_spec_version: Timestamp,
    }
);

event!(
    /// A task's health changed.
    HealthStatusChangedEvent = "health_status_changed_event" {
        /// App id.
        app_id: AppId,
        /// Instance id.
        instance_id: String,
        /// App version.
        version: Timestamp,
        /// Now healthy?
        alive: bool,
    }
);

event!(
    /// An instance's overall health changed.
    InstanceHealthChangedEvent = "instance_health_changed_event" {
        /// Instance id.
        instance_id: String,
        /// App id.
        run_spec_id: AppId,
        /// App version.
        run_spec_version: Timestamp,
        /// Now healthy?
        healthy: Option<bool>,
    }
);

event!(
    /// One health check failed.
    FailedHealthCheckEvent = "failed_health_check_event" {
        /// App id.
        app_id: AppId,
        /// The instance id (Marathon puts it under `taskId`).
        task_id: String,
        /// The check.
        health_check: Value,
    }
);

event!(
    /// A task was killed for failing its health checks.
    UnhealthyInstanceKillEvent = "unhealthy_instance_kill_event" {
        /// App id.
        app_id: AppId,
        /// Task id.
        task_id: String,
        /// Instance id.
        instance_id: String,
        /// App version.
        version: Timestamp,
        /// Last failure cause.
        reason: String,
        /// Agent hostname.
        host: String,
        /// Agent id.
        slave_id: String,
    }
);

event!(
    /// A deployment step started.
    DeploymentInfo = "deployment_info" {
        /// The plan.
        plan: RawJson,
        /// The step now running.
        current_step: Value,
    }
);

event!(
    /// A deployment step finished.
    DeploymentStepSuccess = "deployment_step_success" {
        /// The plan.
        plan: RawJson,
        /// The step that finished.
        current_step: Value,
    }
);

event!(
    /// A deployment finished.
    DeploymentSuccess = "deployment_success" {
        /// Deployment id.
        id: String,
        /// The plan.
        plan: RawJson,
    }
);

event!(
    /// A deployment was cancelled or failed.
    DeploymentFailed = "deployment_failed" {
        /// Deployment id.
        id: String,
        /// The plan.
        plan: RawJson,
        /// Why.
        reason: String,
    }
);

event!(
    /// A group change finished.
    GroupChangeSuccess = "group_change_success" {
        /// Group id.
        group_id: String,
        /// New group version.
        version: Timestamp,
    }
);

event!(
    /// An app is gone.
    AppTerminatedEvent = "app_terminated_event" {
        /// App id.
        app_id: AppId,
    }
);

/// `{ipAddress, protocol}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddressJson {
    /// The address.
    pub ip_address: String,
    /// `IPv4` or `IPv6`.
    pub protocol: &'static str,
}

impl IpAddressJson {
    /// The address of an agent.
    pub fn of(ip: std::net::IpAddr) -> Self {
        IpAddressJson {
            ip_address: ip.to_string(),
            protocol: if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_framed_like_jetty_and_only_built_for_listeners() {
        let bus = EventBus::new();
        bus.publish(|| -> AppTerminatedEvent { panic!("built without listeners") });
        let mut sub = bus.subscribe();
        bus.publish(|| AppTerminatedEvent {
            app_id: AppId::parse("/a").unwrap(),
            event_type: AppTerminatedEvent::TYPE,
            timestamp: Timestamp::from_millis(0),
        });
        let e = sub.rx.recv().await.unwrap();
        assert_eq!(
            e.sse_frame(),
            "event: app_terminated_event\r\ndata: {\"appId\":\"/a\",\"eventType\":\"app_terminated_event\",\"timestamp\":\"1970-01-01T00:00:00.000Z\"}\r\n\r\n"
        );
    }
}
