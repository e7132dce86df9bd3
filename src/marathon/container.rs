//! How an app's tasks are packaged and reached: the container (Docker image, port mappings,
//! volumes), host port definitions and networks.
//!
//! Both networking APIs are accepted: Marathon 1.5+ (`networks`, `container.portMappings`)
//! and the older one (`container.docker.network`, `container.docker.portMappings`). A task's
//! `ports[i]` belongs to `portDefinitions[i]` or `portMappings[i]`, whichever the app uses;
//! [`Container::port_mappings`] finds the mappings under either API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

wire_enum! {
    /// The containerizer.
    pub enum ContainerType {
        /// Docker containerizer.
        Docker => "DOCKER",
        /// Mesos (universal) containerizer.
        Mesos => "MESOS",
    }
}

wire_enum! {
    /// Docker networking of the pre-1.5 API (`container.docker.network`).
    pub enum DockerNetwork {
        /// Bridged, ports mapped.
        Bridge => "BRIDGE",
        /// The host's network.
        Host => "HOST",
        /// No network.
        None => "NONE",
        /// A user-defined (IP-per-container) network.
        User => "USER",
    }
}

wire_enum! {
    /// The mode of an entry in `networks`.
    pub enum NetworkMode {
        /// A named container network.
        Container => "container",
        /// The bridge, with port mappings.
        ContainerBridge => "container/bridge",
        /// The host's network.
        Host => "host",
    }
}

wire_enum! {
    /// The protocol of a port.
    pub enum PortProtocol {
        /// TCP.
        Tcp => "tcp",
        /// UDP.
        Udp => "udp",
        /// Both.
        UdpTcp => "udp,tcp",
    }
}

wire_enum! {
    /// Whether a volume is mounted read-only or read-write.
    pub enum VolumeMode {
        /// Read-only.
        Ro => "RO",
        /// Read-write.
        Rw => "RW",
    }
}

/// An app's container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The containerizer (`DOCKER` or `MESOS`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ContainerType>,
    /// The Docker image and its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerContainer>,
    /// Port mappings (Marathon 1.5+ networking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Container {
    /// A Docker container running `image`, nothing else set.
    pub fn docker(image: impl Into<String>) -> Self {
        Self {
            kind: Some(ContainerType::Docker),
            docker: Some(DockerContainer::new(image)),
            port_mappings: None,
            volumes: None,
            extra: Map::new(),
        }
    }

    /// The port mappings, from `container.portMappings` or, for the pre-1.5 API,
    /// `container.docker.portMappings`.
    pub fn port_mappings(&self) -> Option<&[PortMapping]> {
        self.port_mappings
            .as_deref()
            .or_else(|| self.docker.as_ref()?.port_mappings.as_deref())
    }
}

/// The Docker part of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerContainer {
    /// The image, e.g. `registry.local:5000/flask`.
    pub image: String,
    /// Networking of the pre-1.5 API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DockerNetwork>,
    /// Port mappings of the pre-1.5 API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// Run privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Extra `docker run` parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<DockerParameter>>,
    /// Pull the image even if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull_image: Option<bool>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DockerContainer {
    /// Docker settings with only the image set.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            network: None,
            port_mappings: None,
            privileged: None,
            parameters: None,
            force_pull_image: None,
            extra: Map::new(),
        }
    }
}

/// A `docker run` parameter, `--key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerParameter {
    /// The option name without dashes.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// A container port and how it is exposed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// The host port; 0 asks Marathon for a dynamic one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// The service port for load balancers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
    /// The port's name (becomes `PORT_<NAME>` in the task's environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<PortProtocol>,
    /// Labels of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Container networks the mapping applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_names: Option<Vec<String>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A volume mounted into the container.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// The path inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// The path on the agent (host volumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// Read-only or read-write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<VolumeMode>,
    /// Fields this client does not model (`persistent`, `external`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A host port of a host-networked app.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDefinition {
    /// The port; 0 asks Marathon for a dynamic one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<PortProtocol>,
    /// The port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A network the app joins.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// The mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<NetworkMode>,
    /// The name of a container network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels of the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
