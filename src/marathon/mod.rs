//! The Marathon REST API v2 client: typed requests and responses, typed errors, and the
//! event stream.
//!
//! What it promises:
//! - Every request goes to one of several Marathon URLs; the client fails over between them
//!   and follows the leader (see [`MarathonClient`] for exactly what is retried and why).
//! - Marathon's answers become types: wire types in [`app`], [`task`], [`deployment`],
//!   [`info`], [`queue`]; refusals become [`Error`] variants carrying what Marathon said (the app id,
//!   the deployments holding a lock, the paths of invalid fields).
//! - Wire types are liberal: optional fields are `Option`, unknown fields are kept in an
//!   `extra` map, so an app read and written back loses nothing. Requests are serialised
//!   without `null`s for absent fields.
//! - [`MarathonClient::events`] and [`MarathonClient::events_with`] turn `GET /v2/events`
//!   into a stream of typed [`Event`]s (deployment plans light unless asked otherwise, see
//!   [`PlanFormat`]); event types this client does not know arrive as [`Event::Unknown`],
//!   never dropped.
//!
//! What it does not do: reconnect the event stream (Marathon has no replay, so after a
//! reconnect the caller must relist), or know about groups and pods beyond what apps need.

#![warn(missing_docs)]

/// Declares a string enum of Marathon's wire vocabulary with an `Other` variant, so a value a
/// newer Marathon sends is kept instead of failing the whole response.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know, kept as Marathon sent it.
            Other(String),
        }

        impl $name {
            /// The value as Marathon spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok(Self::from(value.as_ref()))
            }
        }
    };
}

/// Declares an opaque identifier that Marathon hands out: kept exactly as sent, compared as a
/// string, never parsed.
macro_rules! opaque_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier as Marathon spells it.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The identifier as Marathon spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub mod app;
mod app_id;
mod client;
pub mod container;
pub mod deployment;
mod error;
mod event_stream;
pub mod events;
mod failover;
pub mod health;
pub mod info;
mod names;
mod observer;
pub mod queue;
mod sse;
pub mod task;

pub use app::{App, Version};
pub use app_id::{AppId, AppIdError};
pub use client::{
    AppCreated, AppQuery, Embed, EventQuery, KillOutcome, MarathonClient, MarathonConfig,
    PlanFormat, TaskStatusFilter,
};
pub use deployment::{Deployment, DeploymentId, DeploymentResult};
pub use error::{Error, ErrorDetail};
pub use event_stream::{EventBody, EventDecoder, EventStream};
pub use events::{Event, EventKind};
pub use info::{Info, Leader};
pub use observer::{ObservedRequest, RequestObserver, Route};
pub use queue::{Queue, QueueEntry};
pub use task::{Task, TaskFailure, TaskId, TaskState};
