//! A node: one serving task of a service as its peers see it, and the `host:port1:port2`
//! line the old `get_node_list` printed for it.
//!
//! A node carries the *host* side of every port (what a peer connects to) beside the
//! container side, the deployment it belongs to and that deployment's labels. Nodes sort by
//! host, then task id, so every listing of the same state is in the same order.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Error;
use crate::api::{PortBinding, TaskRecord};

/// One serving task of a service.
///
/// As JSON (the watcher's `added`, `removed` and `nodes`, and `node-list --json`):
///
/// ```json
/// {"task_id": "ingestor_dev.4f2c", "deployment": "dev", "host": "10.0.0.5",
///  "ip_addresses": ["172.17.0.3"],
///  "ports": {"api": {"host": 31005, "container": 5000, "protocol": "tcp"}},
///  "labels": ["dev", "eu"]}
/// ```
///
/// `ip_addresses` is left out when Mesos reports none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The Mesos task id (the old guestutils' container name).
    pub task_id: String,
    /// The deployment the task belongs to (`/desired/<service>/<deployment>`).
    pub deployment: String,
    /// The agent's address, which peers connect to.
    pub host: String,
    /// The task's own addresses, where Mesos reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// Ports by name: the host port peers connect to and the container port the process
    /// listens on.
    pub ports: BTreeMap<String, PortBinding>,
    /// The deployment's labels.
    #[serde(default)]
    pub labels: Vec<String>,
}

impl From<&TaskRecord> for Node {
    fn from(record: &TaskRecord) -> Node {
        Node {
            task_id: record.task_id.clone(),
            deployment: record.deployment.clone(),
            host: record.host.clone(),
            ip_addresses: record.ip_addresses.clone(),
            ports: record.ports.clone(),
            labels: record.labels.clone(),
        }
    }
}

impl Ord for Node {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.host, &self.task_id)
            .cmp(&(&other.host, &other.task_id))
            // Equal host and id with different contents: any fixed order will do.
            .then_with(|| self.deployment.cmp(&other.deployment))
            .then_with(|| self.ip_addresses.cmp(&other.ip_addresses))
            .then_with(|| {
                let ports = |node: &Node| {
                    node.ports
                        .iter()
                        .map(|(name, port)| {
                            (
                                name.clone(),
                                port.host,
                                port.container,
                                port.protocol.clone(),
                            )
                        })
                        .collect::<Vec<_>>()
                };
                ports(self).cmp(&ports(other))
            })
            .then_with(|| self.labels.cmp(&other.labels))
    }
}

impl PartialOrd for Node {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Node {
    /// `host:port1:port2`: the host followed by the host port of each of `ports`, in the
    /// order given; just the host when `ports` is empty. A port the task does not have is
    /// an error naming the service, the task and the ports it has.
    pub fn address<S: AsRef<str>>(&self, service: &str, ports: &[S]) -> Result<String, Error> {
        let mut line = self.host.clone();
        for name in ports {
            let binding = self.port(service, name.as_ref())?;
            line.push(':');
            line.push_str(&binding.host.to_string());
        }
        Ok(line)
    }

    /// The named port, or an error naming the service, the task and the ports it has.
    pub fn port(&self, service: &str, name: &str) -> Result<&PortBinding, Error> {
        self.ports.get(name).ok_or_else(|| Error::NoSuchPort {
            service: service.to_owned(),
            container: self.task_id.clone(),
            port: name.to_owned(),
            known: self.ports.keys().cloned().collect(),
        })
    }
}

/// One line of a node list with the node it stands for (`node-list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedNode {
    /// `host:port1:port2`, as printed.
    pub address: String,
    /// The node.
    #[serde(flatten)]
    pub node: Node,
}

/// What `node_list` asks for: which host ports to print, which labels the tasks must carry,
/// and how many serving tasks there must be at least.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeQuery {
    /// Port names whose host ports follow the host in each line, in this order.
    pub ports: Vec<String>,
    /// Labels every listed task must carry (a subset of its deployment's labels).
    pub labels: Vec<String>,
    /// Fewer serving tasks than this is an error ([`Error::TooFewNodes`]).
    pub minimum: usize,
}

impl Default for NodeQuery {
    /// No ports, no labels, at least one task: the old `get_node_list(service)`.
    fn default() -> Self {
        NodeQuery {
            ports: Vec::new(),
            labels: Vec::new(),
            minimum: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, task_id: &str) -> Node {
        Node {
            task_id: task_id.into(),
            deployment: "dev".into(),
            host: host.into(),
            ip_addresses: vec![],
            ports: BTreeMap::from([
                (
                    "api".to_owned(),
                    PortBinding {
                        host: 31005,
                        container: 5000,
                        protocol: "tcp".into(),
                    },
                ),
                (
                    "ssh".to_owned(),
                    PortBinding {
                        host: 31006,
                        container: 22,
                        protocol: "tcp".into(),
                    },
                ),
            ]),
            labels: vec![],
        }
    }

    #[test]
    fn an_address_lists_host_ports_in_the_order_asked() {
        let node = node("10.0.0.5", "t.1");
        assert_eq!(node.address::<&str>("svc", &[]).unwrap(), "10.0.0.5");
        assert_eq!(
            node.address("svc", &["ssh", "api"]).unwrap(),
            "10.0.0.5:31006:31005"
        );
    }

    #[test]
    fn an_address_with_an_unknown_port_names_the_known_ones() {
        let error = node("10.0.0.5", "t.1")
            .address("svc", &["api", "web"])
            .unwrap_err();
        assert!(
            matches!(&error, Error::NoSuchPort { service, container, port, known }
                if service == "svc" && container == "t.1" && port == "web" && known == &["api", "ssh"]),
            "{error}"
        );
    }

    #[test]
    fn nodes_sort_by_host_then_task_id() {
        let mut nodes = [
            node("10.0.0.6", "a"),
            node("10.0.0.5", "b"),
            node("10.0.0.5", "a"),
        ];
        nodes.sort();
        let order: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n.host.as_str(), n.task_id.as_str()))
            .collect();
        assert_eq!(
            order,
            [("10.0.0.5", "a"), ("10.0.0.5", "b"), ("10.0.0.6", "a")]
        );
    }

    #[test]
    fn node_json_has_ports_by_name_with_both_sides() {
        let json = serde_json::to_value(node("10.0.0.5", "t.1")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "task_id": "t.1", "deployment": "dev", "host": "10.0.0.5",
                "ports": {
                    "api": {"host": 31005, "container": 5000, "protocol": "tcp"},
                    "ssh": {"host": 31006, "container": 22, "protocol": "tcp"}
                },
                "labels": []
            })
        );
    }
}
