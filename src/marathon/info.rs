//! What a Marathon instance says about itself (`GET /v2/info`) and who leads
//! (`GET /v2/leader`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// General information about a Marathon instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// The framework's name (`marathon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Marathon's version, e.g. `1.5.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The build's git reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildref: Option<String>,
    /// Whether this instance is the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elected: Option<bool>,
    /// The leader's `host:port`, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The Mesos framework id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<String>,
    /// Marathon's command-line configuration.
    #[serde(
        rename = "marathon_config",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub marathon_config: Option<Map<String, Value>>,
    /// ZooKeeper configuration.
    #[serde(
        rename = "zookeeper_config",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub zookeeper_config: Option<Map<String, Value>>,
    /// HTTP configuration.
    #[serde(
        rename = "http_config",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub http_config: Option<Map<String, Value>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The current leader (`GET /v2/leader`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    /// The leader's `host:port`.
    pub leader: String,
}
