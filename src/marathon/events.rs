//! Marathon's events (`GET /v2/events`) as types.
//!
//! What it promises: decoding an event never fails and never drops it. An event type this
//! client does not know, and a known type whose data does not have the expected shape, both
//! become [`Event::Unknown`] with the raw data (and, for the latter, the decode error).
//! Payload fields this client does not model are kept in each payload's `extra`.
//!
//! Field names follow Marathon's serializer (`Events.scala`); where its documentation shows
//! older shapes (`clientIp` on stream events, `type` in deployment actions, bare actions as
//! steps), those are accepted too.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppId;
use super::app::{App, Version};
use super::deployment::{DeploymentId, DeploymentPlan, DeploymentStep};
use super::health::HealthCheck;
use super::task::{InstanceId, IpAddress, TaskId, TaskState};

/// The key of an event's type inside its JSON data.
const EVENT_TYPE_KEY: &str = "eventType";

/// Declares [`EventKind`] with its wire names.
macro_rules! event_kinds {
    ($( $(#[$meta:meta])* $variant:ident => $wire:literal, )+) => {
        /// The type of an event, as used in `event_type=` filters.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $( $(#[$meta])* $variant, )+
        }

        impl EventKind {
            /// Every type this client knows.
            pub const ALL: &'static [EventKind] = &[$( EventKind::$variant, )+];

            /// The type's wire name, e.g. `status_update_event`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }
        }

        impl FromStr for EventKind {
            type Err = UnknownEventKind;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $( $wire => Ok(Self::$variant), )+
                    other => Err(UnknownEventKind(other.to_owned())),
                }
            }
        }
    };
}

event_kinds! {
    /// A task changed state.
    StatusUpdate => "status_update_event",
    /// An instance changed condition.
    InstanceChanged => "instance_changed_event",
    /// A task's health changed.
    HealthStatusChanged => "health_status_changed_event",
    /// An instance's health changed.
    InstanceHealthChanged => "instance_health_changed_event",
    /// A health check failed.
    FailedHealthCheck => "failed_health_check_event",
    /// An unhealthy task was killed.
    UnhealthyTaskKill => "unhealthy_task_kill_event",
    /// An unhealthy instance was killed.
    UnhealthyInstanceKill => "unhealthy_instance_kill_event",
    /// A deployment started.
    DeploymentInfo => "deployment_info",
    /// A deployment step succeeded.
    DeploymentStepSuccess => "deployment_step_success",
    /// A deployment step failed.
    DeploymentStepFailure => "deployment_step_failure",
    /// A deployment finished.
    DeploymentSuccess => "deployment_success",
    /// A deployment failed.
    DeploymentFailed => "deployment_failed",
    /// The REST API changed an app.
    ApiPost => "api_post_event",
    /// An app was removed and its last task ended.
    AppTerminated => "app_terminated_event",
    /// A client attached to the event stream.
    EventStreamAttached => "event_stream_attached",
    /// A client detached from the event stream.
    EventStreamDetached => "event_stream_detached",
    /// An HTTP callback subscriber was added.
    Subscribe => "subscribe_event",
    /// An HTTP callback subscriber was removed.
    Unsubscribe => "unsubscribe_event",
    /// A group change was applied.
    GroupChangeSuccess => "group_change_success",
    /// A group change failed.
    GroupChangeFailed => "group_change_failed",
    /// A health check was added.
    AddHealthCheck => "add_health_check_event",
    /// A health check was removed.
    RemoveHealthCheck => "remove_health_check_event",
    /// An executor sent a framework message.
    FrameworkMessage => "framework_message_event",
    /// A pod was created.
    PodCreated => "pod_created_event",
    /// A pod was updated.
    PodUpdated => "pod_updated_event",
    /// A pod was deleted.
    PodDeleted => "pod_deleted_event",
    /// Mesos reported an instance Marathon does not know, which ended.
    UnknownInstanceTerminated => "unknown_instance_terminated_event",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type name this client does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Marathon event type this client knows; known types: see EventKind::ALL")]
pub struct UnknownEventKind(pub String);

/// A Marathon event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `status_update_event`
    StatusUpdate(StatusUpdate),
    /// `instance_changed_event`
    InstanceChanged(InstanceChanged),
    /// `health_status_changed_event`
    HealthStatusChanged(HealthStatusChanged),
    /// `instance_health_changed_event`
    InstanceHealthChanged(InstanceHealthChanged),
    /// `failed_health_check_event`
    FailedHealthCheck(FailedHealthCheck),
    /// `unhealthy_task_kill_event`
    UnhealthyTaskKill(UnhealthyKill),
    /// `unhealthy_instance_kill_event`
    UnhealthyInstanceKill(UnhealthyKill),
    /// `deployment_info`
    DeploymentInfo(DeploymentStepEvent),
    /// `deployment_step_success`
    DeploymentStepSuccess(DeploymentStepEvent),
    /// `deployment_step_failure`
    DeploymentStepFailure(DeploymentStepEvent),
    /// `deployment_success`
    DeploymentSuccess(DeploymentOutcome),
    /// `deployment_failed`
    DeploymentFailed(DeploymentOutcome),
    /// `api_post_event`
    ApiPost(ApiPost),
    /// `app_terminated_event`
    AppTerminated(AppTerminated),
    /// `event_stream_attached`
    EventStreamAttached(EventStreamClient),
    /// `event_stream_detached`
    EventStreamDetached(EventStreamClient),
    /// `subscribe_event`
    Subscribe(Subscription),
    /// `unsubscribe_event`
    Unsubscribe(Subscription),
    /// `group_change_success`
    GroupChangeSuccess(GroupChange),
    /// `group_change_failed`
    GroupChangeFailed(GroupChange),
    /// `add_health_check_event`
    AddHealthCheck(HealthCheckChange),
    /// `remove_health_check_event`
    RemoveHealthCheck(HealthCheckChange),
    /// `framework_message_event`
    FrameworkMessage(FrameworkMessage),
    /// `pod_created_event`
    PodCreated(PodChange),
    /// `pod_updated_event`
    PodUpdated(PodChange),
    /// `pod_deleted_event`
    PodDeleted(PodChange),
    /// `unknown_instance_terminated_event`
    UnknownInstanceTerminated(UnknownInstanceTerminated),
    /// An event of a type this client does not know, or whose data did not decode.
    Unknown {
        /// The event's type as sent.
        event_type: String,
        /// The event's data; a JSON string holding the raw text if it was not JSON.
        data: Value,
        /// Why a known type did not decode; `None` for an unknown type.
        error: Option<String>,
    },
}

impl Event {
    /// Decodes an SSE event: `name` is its `event:` field (`message` or empty when absent,
    /// then the data's `eventType` is used), `data` its `data:` text.
    pub fn from_sse(name: &str, data: &str) -> Self {
        // Marathon names every event: its data decodes straight into the payload, without a
        // JSON tree in between. Anything else takes the general way below.
        if let Ok(kind) = EventKind::from_str(name) {
            let mut text = serde_json::Deserializer::from_str(data);
            if let Ok(mut event) = Self::typed(kind, &mut text)
                && text.end().is_ok()
            {
                if let Some(extra) = event.extra_mut() {
                    extra.remove(EVENT_TYPE_KEY);
                }
                return event;
            }
        }
        match serde_json::from_str::<Value>(data) {
            Ok(value) => {
                let named = !name.is_empty() && name != "message";
                let event_type = if named {
                    name.to_owned()
                } else {
                    value
                        .get(EVENT_TYPE_KEY)
                        .and_then(Value::as_str)
                        .unwrap_or(name)
                        .to_owned()
                };
                Self::decode(&event_type, value)
            }
            Err(error) => Self::Unknown {
                event_type: name.to_owned(),
                data: Value::String(data.to_owned()),
                error: Some(format!("data is not JSON: {error}")),
            },
        }
    }

    /// Decodes an event from its JSON data, taking the type from its `eventType` field.
    pub fn from_json(data: Value) -> Self {
        let event_type = data
            .get(EVENT_TYPE_KEY)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Self::decode(&event_type, data)
    }

    /// Decodes the data of an event of type `event_type`.
    pub fn decode(event_type: &str, mut data: Value) -> Self {
        let Ok(kind) = EventKind::from_str(event_type) else {
            return Self::Unknown {
                event_type: event_type.to_owned(),
                data,
                error: None,
            };
        };
        // The type is the variant; keep it out of the payloads' `extra`.
        let removed = data
            .as_object_mut()
            .and_then(|object| object.remove(EVENT_TYPE_KEY));
        match Self::typed(kind, &data) {
            Ok(event) => event,
            Err(error) => {
                if let (Some(object), Some(removed)) = (data.as_object_mut(), removed) {
                    object.insert(EVENT_TYPE_KEY.to_owned(), removed);
                }
                Self::Unknown {
                    event_type: event_type.to_owned(),
                    data,
                    error: Some(error.to_string()),
                }
            }
        }
    }

    /// The event of `kind` whose payload `data` holds.
    fn typed<'de, D>(kind: EventKind, data: D) -> Result<Self, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        fn payload<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
            data: D,
        ) -> Result<T, D::Error> {
            T::deserialize(data)
        }
        use EventKind as K;
        Ok(match kind {
            K::StatusUpdate => Self::StatusUpdate(payload(data)?),
            K::InstanceChanged => Self::InstanceChanged(payload(data)?),
            K::HealthStatusChanged => Self::HealthStatusChanged(payload(data)?),
            K::InstanceHealthChanged => Self::InstanceHealthChanged(payload(data)?),
            K::FailedHealthCheck => Self::FailedHealthCheck(payload(data)?),
            K::UnhealthyTaskKill => Self::UnhealthyTaskKill(payload(data)?),
            K::UnhealthyInstanceKill => Self::UnhealthyInstanceKill(payload(data)?),
            K::DeploymentInfo => Self::DeploymentInfo(payload(data)?),
            K::DeploymentStepSuccess => Self::DeploymentStepSuccess(payload(data)?),
            K::DeploymentStepFailure => Self::DeploymentStepFailure(payload(data)?),
            K::DeploymentSuccess => Self::DeploymentSuccess(payload(data)?),
            K::DeploymentFailed => Self::DeploymentFailed(payload(data)?),
            K::ApiPost => Self::ApiPost(payload(data)?),
            K::AppTerminated => Self::AppTerminated(payload(data)?),
            K::EventStreamAttached => Self::EventStreamAttached(payload(data)?),
            K::EventStreamDetached => Self::EventStreamDetached(payload(data)?),
            K::Subscribe => Self::Subscribe(payload(data)?),
            K::Unsubscribe => Self::Unsubscribe(payload(data)?),
            K::GroupChangeSuccess => Self::GroupChangeSuccess(payload(data)?),
            K::GroupChangeFailed => Self::GroupChangeFailed(payload(data)?),
            K::AddHealthCheck => Self::AddHealthCheck(payload(data)?),
            K::RemoveHealthCheck => Self::RemoveHealthCheck(payload(data)?),
            K::FrameworkMessage => Self::FrameworkMessage(payload(data)?),
            K::PodCreated => Self::PodCreated(payload(data)?),
            K::PodUpdated => Self::PodUpdated(payload(data)?),
            K::PodDeleted => Self::PodDeleted(payload(data)?),
            K::UnknownInstanceTerminated => Self::UnknownInstanceTerminated(payload(data)?),
        })
    }

    /// The fields of the event's payload this client does not model; `None` for
    /// [`Event::Unknown`].
    fn extra_mut(&mut self) -> Option<&mut Map<String, Value>> {
        Some(match self {
            Self::StatusUpdate(e) => &mut e.extra,
            Self::InstanceChanged(e) => &mut e.extra,
            Self::HealthStatusChanged(e) => &mut e.extra,
            Self::InstanceHealthChanged(e) => &mut e.extra,
            Self::FailedHealthCheck(e) => &mut e.extra,
            Self::UnhealthyTaskKill(e) | Self::UnhealthyInstanceKill(e) => &mut e.extra,
            Self::DeploymentInfo(e)
            | Self::DeploymentStepSuccess(e)
            | Self::DeploymentStepFailure(e) => &mut e.extra,
            Self::DeploymentSuccess(e) | Self::DeploymentFailed(e) => &mut e.extra,
            Self::ApiPost(e) => &mut e.extra,
            Self::AppTerminated(e) => &mut e.extra,
            Self::EventStreamAttached(e) | Self::EventStreamDetached(e) => &mut e.extra,
            Self::Subscribe(e) | Self::Unsubscribe(e) => &mut e.extra,
            Self::GroupChangeSuccess(e) | Self::GroupChangeFailed(e) => &mut e.extra,
            Self::AddHealthCheck(e) | Self::RemoveHealthCheck(e) => &mut e.extra,
            Self::FrameworkMessage(e) => &mut e.extra,
            Self::PodCreated(e) | Self::PodUpdated(e) | Self::PodDeleted(e) => &mut e.extra,
            Self::UnknownInstanceTerminated(e) => &mut e.extra,
            Self::Unknown { .. } => return None,
        })
    }

    /// The event's kind; `None` for [`Event::Unknown`].
    pub fn kind(&self) -> Option<EventKind> {
        use EventKind as K;
        Some(match self {
            Self::StatusUpdate(_) => K::StatusUpdate,
            Self::InstanceChanged(_) => K::InstanceChanged,
            Self::HealthStatusChanged(_) => K::HealthStatusChanged,
            Self::InstanceHealthChanged(_) => K::InstanceHealthChanged,
            Self::FailedHealthCheck(_) => K::FailedHealthCheck,
            Self::UnhealthyTaskKill(_) => K::UnhealthyTaskKill,
            Self::UnhealthyInstanceKill(_) => K::UnhealthyInstanceKill,
            Self::DeploymentInfo(_) => K::DeploymentInfo,
            Self::DeploymentStepSuccess(_) => K::DeploymentStepSuccess,
            Self::DeploymentStepFailure(_) => K::DeploymentStepFailure,
            Self::DeploymentSuccess(_) => K::DeploymentSuccess,
            Self::DeploymentFailed(_) => K::DeploymentFailed,
            Self::ApiPost(_) => K::ApiPost,
            Self::AppTerminated(_) => K::AppTerminated,
            Self::EventStreamAttached(_) => K::EventStreamAttached,
            Self::EventStreamDetached(_) => K::EventStreamDetached,
            Self::Subscribe(_) => K::Subscribe,
            Self::Unsubscribe(_) => K::Unsubscribe,
            Self::GroupChangeSuccess(_) => K::GroupChangeSuccess,
            Self::GroupChangeFailed(_) => K::GroupChangeFailed,
            Self::AddHealthCheck(_) => K::AddHealthCheck,
            Self::RemoveHealthCheck(_) => K::RemoveHealthCheck,
            Self::FrameworkMessage(_) => K::FrameworkMessage,
            Self::PodCreated(_) => K::PodCreated,
            Self::PodUpdated(_) => K::PodUpdated,
            Self::PodDeleted(_) => K::PodDeleted,
            Self::UnknownInstanceTerminated(_) => K::UnknownInstanceTerminated,
            Self::Unknown { .. } => return None,
        })
    }

    /// The event's type name as Marathon sent it.
    pub fn event_type(&self) -> &str {
        match self {
            Self::Unknown { event_type, .. } => event_type,
            known => known.kind().map(EventKind::as_str).unwrap_or_default(),
        }
    }

    /// The app (or other run spec) the event is about, when it names exactly one.
    /// Deployment events can touch several apps: see [`Event::affected_apps`].
    pub fn app_id(&self) -> Option<&AppId> {
        match self {
            Self::StatusUpdate(e) => Some(&e.app_id),
            Self::InstanceChanged(e) => Some(&e.run_spec_id),
            Self::HealthStatusChanged(e) => Some(&e.app_id),
            Self::InstanceHealthChanged(e) => Some(&e.run_spec_id),
            Self::FailedHealthCheck(e) => Some(&e.app_id),
            Self::UnhealthyTaskKill(e) | Self::UnhealthyInstanceKill(e) => Some(&e.app_id),
            Self::ApiPost(e) => e.app_definition.as_ref().map(|app| &app.id),
            Self::AppTerminated(e) => Some(&e.app_id),
            Self::AddHealthCheck(e) | Self::RemoveHealthCheck(e) => Some(&e.app_id),
            Self::UnknownInstanceTerminated(e) => Some(&e.run_spec_id),
            _ => None,
        }
    }

    /// Every app the event is about: the one of [`Event::app_id`], or the apps a deployment
    /// event's plan touches.
    pub fn affected_apps(&self) -> Vec<&AppId> {
        match self {
            Self::DeploymentInfo(e)
            | Self::DeploymentStepSuccess(e)
            | Self::DeploymentStepFailure(e) => e.plan.affected_apps(),
            Self::DeploymentSuccess(e) | Self::DeploymentFailed(e) => e
                .plan
                .as_ref()
                .map(DeploymentPlan::affected_apps)
                .unwrap_or_default(),
            other => other.app_id().into_iter().collect(),
        }
    }

    /// The task the event is about (opaque; for health events of Marathon 1.4+ it may hold
    /// an instance id).
    pub fn task_id(&self) -> Option<&TaskId> {
        match self {
            Self::StatusUpdate(e) => Some(&e.task_id),
            Self::FailedHealthCheck(e) => e.task_id.as_ref(),
            Self::HealthStatusChanged(e) => e.task_id.as_ref(),
            Self::UnhealthyTaskKill(e) | Self::UnhealthyInstanceKill(e) => e.task_id.as_ref(),
            _ => None,
        }
    }

    /// The instance the event is about.
    pub fn instance_id(&self) -> Option<&InstanceId> {
        match self {
            Self::InstanceChanged(e) => Some(&e.instance_id),
            Self::InstanceHealthChanged(e) => Some(&e.instance_id),
            Self::UnknownInstanceTerminated(e) => Some(&e.instance_id),
            Self::HealthStatusChanged(e) => e.instance_id.as_ref(),
            Self::FailedHealthCheck(e) => e.instance_id.as_ref(),
            Self::UnhealthyTaskKill(e) | Self::UnhealthyInstanceKill(e) => e.instance_id.as_ref(),
            _ => None,
        }
    }

    /// The deployment the event is about.
    pub fn deployment_id(&self) -> Option<&DeploymentId> {
        match self {
            Self::DeploymentInfo(e)
            | Self::DeploymentStepSuccess(e)
            | Self::DeploymentStepFailure(e) => Some(&e.plan.id),
            Self::DeploymentSuccess(e) | Self::DeploymentFailed(e) => Some(&e.id),
            _ => None,
        }
    }

    /// When Marathon emitted the event, if it said.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::StatusUpdate(e) => e.timestamp,
            Self::InstanceChanged(e) => e.timestamp,
            Self::HealthStatusChanged(e) => e.timestamp,
            Self::InstanceHealthChanged(e) => e.timestamp,
            Self::FailedHealthCheck(e) => e.timestamp,
            Self::UnhealthyTaskKill(e) | Self::UnhealthyInstanceKill(e) => e.timestamp,
            Self::DeploymentInfo(e)
            | Self::DeploymentStepSuccess(e)
            | Self::DeploymentStepFailure(e) => e.timestamp,
            Self::DeploymentSuccess(e) | Self::DeploymentFailed(e) => e.timestamp,
            Self::ApiPost(e) => e.timestamp,
            Self::AppTerminated(e) => e.timestamp,
            Self::EventStreamAttached(e) | Self::EventStreamDetached(e) => e.timestamp,
            Self::Subscribe(e) | Self::Unsubscribe(e) => e.timestamp,
            Self::GroupChangeSuccess(e) | Self::GroupChangeFailed(e) => e.timestamp,
            Self::AddHealthCheck(e) | Self::RemoveHealthCheck(e) => e.timestamp,
            Self::FrameworkMessage(e) => e.timestamp,
            Self::PodCreated(e) | Self::PodUpdated(e) | Self::PodDeleted(e) => e.timestamp,
            Self::UnknownInstanceTerminated(e) => e.timestamp,
            Self::Unknown { data, .. } => data
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok()),
        }
    }
}

/// `status_update_event`: a Mesos status update of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    /// The task (opaque id).
    pub task_id: TaskId,
    /// The app.
    pub app_id: AppId,
    /// The new state.
    pub task_status: TaskState,
    /// Mesos' message, e.g. why a launch failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The agent's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The Mesos agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_id: Option<String>,
    /// Host ports of the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// IP addresses of the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<Vec<IpAddress>>,
    /// The app version the task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `instance_changed_event`: an instance changed condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceChanged {
    /// The instance.
    pub instance_id: InstanceId,
    /// The app (or pod).
    pub run_spec_id: AppId,
    /// The new condition, e.g. `Running`.
    pub condition: String,
    /// The Mesos agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The agent's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The app version the instance runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_spec_version: Option<Version>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `health_status_changed_event`: a task's health changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatusChanged {
    /// The app.
    pub app_id: AppId,
    /// Whether the task is now healthy.
    pub alive: bool,
    /// The instance (Marathon 1.4+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The task (before Marathon 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The app version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `instance_health_changed_event`: an instance's health changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceHealthChanged {
    /// The instance.
    pub instance_id: InstanceId,
    /// The app (or pod).
    pub run_spec_id: AppId,
    /// Whether the instance is healthy (`None`: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// The app version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_spec_version: Option<Version>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `failed_health_check_event`: one health check failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedHealthCheck {
    /// The app.
    pub app_id: AppId,
    /// The task (Marathon's serializer puts the instance id here since 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The instance, where sent separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The check that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `unhealthy_task_kill_event` and `unhealthy_instance_kill_event`: Marathon killed an
/// unhealthy task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyKill {
    /// The app.
    pub app_id: AppId,
    /// The task killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The instance killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The app version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Why, e.g. the failing check's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The agent's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The Mesos agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_id: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `deployment_info`, `deployment_step_success`, `deployment_step_failure`: a deployment
/// reached a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStepEvent {
    /// The deployment's plan.
    pub plan: DeploymentPlan,
    /// The step concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<DeploymentStep>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `deployment_success` and `deployment_failed`: a deployment ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentOutcome {
    /// The deployment.
    pub id: DeploymentId,
    /// Its plan (sent by Marathon's serializer, missing from its documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<DeploymentPlan>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `api_post_event`: an app was changed through the REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiPost {
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The URI called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The app definition after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_definition: Option<Box<App>>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `app_terminated_event`: an app is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppTerminated {
    /// The app.
    pub app_id: AppId,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `event_stream_attached` and `event_stream_detached`: an SSE client came or went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventStreamClient {
    /// The client's address, as Marathon's serializer sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    /// The client's address, as Marathon's documentation shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `subscribe_event` and `unsubscribe_event`: an HTTP callback subscriber came or went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The callback URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `group_change_success` and `group_change_failed`: a group change was applied or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupChange {
    /// The group's path (may be the root, `/`).
    pub group_id: String,
    /// The version of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `add_health_check_event` and `remove_health_check_event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckChange {
    /// The app.
    pub app_id: AppId,
    /// The check (Marathon's serializer omits it on removal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// The app version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `framework_message_event`: an executor sent a message to Marathon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkMessage {
    /// The Mesos agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_id: Option<String>,
    /// The executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<String>,
    /// The message, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `pod_created_event`, `pod_updated_event`, `pod_deleted_event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodChange {
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The URI called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `unknown_instance_terminated_event`: an instance Marathon did not know ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnknownInstanceTerminated {
    /// The instance.
    pub instance_id: InstanceId,
    /// The app (or pod).
    pub run_spec_id: AppId,
    /// The instance's condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// When Marathon emitted the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_keep_their_data() {
        let event = Event::from_sse(
            "scheduler_registered_event",
            r#"{"frameworkId":"f","eventType":"scheduler_registered_event"}"#,
        );
        match event {
            Event::Unknown {
                event_type,
                data,
                error,
            } => {
                assert_eq!(event_type, "scheduler_registered_event");
                assert_eq!(data["frameworkId"], "f");
                assert_eq!(error, None);
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
    }

    #[test]
    fn a_known_type_that_does_not_decode_is_kept_with_the_error() {
        let raw = r#"{"eventType":"status_update_event","taskId":"t"}"#;
        match Event::from_sse("status_update_event", raw) {
            Event::Unknown {
                event_type,
                data,
                error,
            } => {
                assert_eq!(event_type, "status_update_event");
                assert_eq!(data, serde_json::from_str::<Value>(raw).unwrap());
                assert!(error.unwrap().contains("appId"));
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
    }

    #[test]
    fn data_that_is_not_json_is_kept_as_text() {
        match Event::from_sse("status_update_event", "not json") {
            Event::Unknown { data, error, .. } => {
                assert_eq!(data, Value::String("not json".into()));
                assert!(error.is_some());
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
    }

    #[test]
    fn an_unnamed_sse_event_takes_its_type_from_the_data() {
        let event = Event::from_sse(
            "message",
            r#"{"eventType":"app_terminated_event","appId":"/a"}"#,
        );
        assert_eq!(event.kind(), Some(EventKind::AppTerminated));
        assert_eq!(event.app_id().map(AppId::as_str), Some("/a"));
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(*kind));
        }
    }

    #[test]
    fn a_named_event_decodes_as_its_json_tree_does() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/marathon");
        let mut seen = 0;
        for file in std::fs::read_dir(fixtures).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(event_type) = name
                .strip_prefix("event-")
                .and_then(|rest| rest.strip_suffix(".json"))
                .and_then(|rest| rest.split('.').next())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let tree: Value = serde_json::from_str(&text).unwrap();
            let event = Event::from_sse(event_type, &text);
            assert_eq!(event, Event::from_json(tree), "{name}");
            assert!(
                event.kind().is_some(),
                "{name} decodes as a known event: {event:?}"
            );
            seen += 1;
        }
        assert!(seen >= 20, "only {seen} event fixtures");
    }

    #[test]
    fn payloads_do_not_keep_the_type_as_an_extra_field() {
        let event = Event::from_json(serde_json::json!({
            "eventType": "app_terminated_event", "appId": "/a", "timestamp": "2014-03-01T23:29:30.158Z"
        }));
        let Event::AppTerminated(payload) = event else {
            panic!("expected AppTerminated");
        };
        assert!(payload.extra.is_empty(), "{:?}", payload.extra);
    }
}
