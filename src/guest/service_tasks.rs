//! The task records of one service as read at one revision, and the answers guestutils give
//! from them: the serving nodes, the node list, and one container's host and ports.
//!
//! A service spans all its deployments (`/observed/<service>/*/tasks/*`). Only serving tasks
//! ([`TaskRecord::is_serving`]: running, and healthy where the app has health checks) are
//! nodes; the `specific_*` answers look at every recorded task, serving or not, because a
//! peer asking for one container by name wants that container's ports whatever its state.

use super::Error;
use super::node::{ListedNode, Node, NodeQuery};
use crate::api::{DnsLabel, TaskRecord};
use crate::store::Revision;

/// Every task record of one service, as of one etcd revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTasks {
    /// The service.
    pub service: DnsLabel,
    /// The etcd prefix the records were read from (`<p>/observed/<service>/`).
    pub key: String,
    /// The revision the records are current at.
    pub revision: Revision,
    /// The records, ordered by task id.
    pub records: Vec<TaskRecord>,
}

impl ServiceTasks {
    /// The records of `service` read from `key` at `revision`.
    pub fn new(
        service: DnsLabel,
        key: String,
        revision: Revision,
        mut records: Vec<TaskRecord>,
    ) -> ServiceTasks {
        records.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        ServiceTasks {
            service,
            key,
            revision,
            records,
        }
    }

    /// The serving tasks that carry every one of `labels`, as nodes, sorted.
    pub fn serving<S: AsRef<str>>(&self, labels: &[S]) -> Vec<Node> {
        let mut nodes: Vec<Node> = self
            .records
            .iter()
            .filter(|record| record.is_serving() && record.has_labels(labels))
            .map(Node::from)
            .collect();
        nodes.sort();
        nodes
    }

    /// The old `get_node_list`: one `host:port1:port2` line per serving task carrying the
    /// query's labels, sorted by line; fewer than `query.minimum` is
    /// [`Error::TooFewNodes`], and a serving task without one of the ports is
    /// [`Error::NoSuchPort`].
    pub fn node_list(&self, query: &NodeQuery) -> Result<Vec<ListedNode>, Error> {
        let nodes = self.serving(&query.labels);
        if nodes.len() < query.minimum {
            return Err(Error::TooFewNodes {
                service: self.service.to_string(),
                found: nodes.len(),
                wanted: query.minimum,
                recorded: self.records.len(),
                labels: query.labels.clone(),
                waited: None,
            });
        }
        let mut listed = nodes
            .into_iter()
            .map(|node| {
                Ok(ListedNode {
                    address: node.address(self.service.as_str(), &query.ports)?,
                    node,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        listed.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| a.node.cmp(&b.node)));
        Ok(listed)
    }

    /// The record of the task `container` (its Mesos task id), serving or not.
    pub fn task(&self, container: &str) -> Result<&TaskRecord, Error> {
        if self.records.is_empty() {
            return Err(Error::NoSuchService {
                service: self.service.to_string(),
                key: self.key.clone(),
            });
        }
        self.records
            .iter()
            .find(|record| record.task_id == container)
            .ok_or_else(|| Error::NoSuchContainer {
                service: self.service.to_string(),
                container: container.to_owned(),
                known: self.records.iter().map(|r| r.task_id.clone()).collect(),
            })
    }

    /// The old `get_specific_host`: the address of the agent `container` runs on.
    pub fn specific_host(&self, container: &str) -> Result<&str, Error> {
        Ok(&self.task(container)?.host)
    }

    /// The old `get_specific_port`: the host (external) port of `container`'s port `port`.
    pub fn specific_port(&self, container: &str, port: &str) -> Result<u16, Error> {
        Ok(self.binding(container, port)?.host)
    }

    /// The old `get_specific_exposed_port`: the container (internal) port of `container`'s
    /// port `port`.
    pub fn specific_exposed_port(&self, container: &str, port: &str) -> Result<u16, Error> {
        Ok(self.binding(container, port)?.container)
    }

    fn binding(&self, container: &str, port: &str) -> Result<&crate::api::PortBinding, Error> {
        let record = self.task(container)?;
        record.ports.get(port).ok_or_else(|| Error::NoSuchPort {
            service: self.service.to_string(),
            container: container.to_owned(),
            port: port.to_owned(),
            known: record.ports.keys().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{Health, PortBinding};
    use crate::marathon::task::TaskState;

    fn record(task_id: &str, host: &str, api: u16, labels: &[&str]) -> TaskRecord {
        TaskRecord {
            service: "ingestor".into(),
            deployment: "dev".into(),
            task_id: task_id.into(),
            app_id: "/ingestor/dev".into(),
            host: host.into(),
            agent_id: None,
            ip_addresses: vec![],
            ports: BTreeMap::from([
                (
                    "api".to_owned(),
                    PortBinding {
                        host: api,
                        container: 5000,
                        protocol: "tcp".into(),
                    },
                ),
                (
                    "ssh".to_owned(),
                    PortBinding {
                        host: api + 1,
                        container: 22,
                        protocol: "tcp".into(),
                    },
                ),
            ]),
            state: TaskState::Running,
            health: Health::Unknown,
            health_checked: false,
            staged_at: None,
            started_at: None,
            version: None,
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn tasks(records: Vec<TaskRecord>) -> ServiceTasks {
        ServiceTasks::new(
            DnsLabel::parse("service", "ingestor").unwrap(),
            "/observed/ingestor/".into(),
            7,
            records,
        )
    }

    fn query(ports: &[&str], labels: &[&str], minimum: usize) -> NodeQuery {
        NodeQuery {
            ports: ports.iter().map(|p| p.to_string()).collect(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            minimum,
        }
    }

    fn lines(listed: &[ListedNode]) -> Vec<&str> {
        listed.iter().map(|l| l.address.as_str()).collect()
    }

    #[test]
    fn node_list_has_one_sorted_line_per_serving_task_with_host_ports() {
        let mut staging = record("c", "10.0.0.1", 31020, &["dev"]);
        staging.state = TaskState::Staging;
        let mut unhealthy = record("d", "10.0.0.1", 31030, &["dev"]);
        unhealthy.health_checked = true;
        unhealthy.health = Health::Unhealthy;
        let mut healthy = record("e", "10.0.0.3", 31040, &["dev"]);
        healthy.health_checked = true;
        healthy.health = Health::Healthy;
        let tasks = tasks(vec![
            record("a", "10.0.0.2", 31000, &["dev"]),
            record("b", "10.0.0.1", 31010, &["dev"]),
            staging,
            unhealthy,
            healthy,
        ]);
        let listed = tasks.node_list(&query(&["api", "ssh"], &[], 1)).unwrap();
        assert_eq!(
            lines(&listed),
            [
                "10.0.0.1:31010:31011",
                "10.0.0.2:31000:31001",
                "10.0.0.3:31040:31041"
            ]
        );
        assert_eq!(listed[0].node.task_id, "b");
        let hosts_only = tasks.node_list(&query(&[], &[], 1)).unwrap();
        assert_eq!(lines(&hosts_only), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    }

    #[test]
    fn node_list_matches_labels_as_a_subset() {
        let tasks = tasks(vec![
            record("a", "10.0.0.1", 31000, &["dev", "eu"]),
            record("b", "10.0.0.2", 31010, &["dev"]),
            record("c", "10.0.0.3", 31020, &["prod", "eu"]),
        ]);
        let eu = tasks.node_list(&query(&["api"], &["eu"], 0)).unwrap();
        assert_eq!(lines(&eu), ["10.0.0.1:31000", "10.0.0.3:31020"]);
        let dev_eu = tasks
            .node_list(&query(&["api"], &["eu", "dev"], 0))
            .unwrap();
        assert_eq!(lines(&dev_eu), ["10.0.0.1:31000"]);
        let none = tasks.node_list(&query(&["api"], &["us"], 0)).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn fewer_serving_tasks_than_the_minimum_is_an_error_with_the_counts() {
        let mut stopped = record("b", "10.0.0.2", 31010, &["dev"]);
        stopped.state = TaskState::Killed;
        let tasks = tasks(vec![record("a", "10.0.0.1", 31000, &["dev"]), stopped]);
        assert_eq!(tasks.node_list(&query(&[], &["dev"], 1)).unwrap().len(), 1);
        let error = tasks.node_list(&query(&[], &["dev"], 2)).unwrap_err();
        assert!(
            matches!(&error, Error::TooFewNodes { service, found: 1, wanted: 2, recorded: 2, labels, waited: None }
                if service == "ingestor" && labels == &["dev"]),
            "{error}"
        );
    }

    #[test]
    fn a_serving_task_without_a_requested_port_is_an_error() {
        let mut no_ssh = record("b", "10.0.0.2", 31010, &[]);
        no_ssh.ports.remove("ssh");
        let tasks = tasks(vec![record("a", "10.0.0.1", 31000, &[]), no_ssh]);
        let error = tasks
            .node_list(&query(&["api", "ssh"], &[], 1))
            .unwrap_err();
        assert!(
            matches!(&error, Error::NoSuchPort { container, port, known, .. }
                if container == "b" && port == "ssh" && known == &["api"]),
            "{error}"
        );
    }

    #[test]
    fn specific_calls_answer_for_any_recorded_task_and_name_what_is_missing() {
        let mut staging = record("b", "10.0.0.2", 31010, &[]);
        staging.state = TaskState::Staging;
        let tasks = tasks(vec![record("a", "10.0.0.1", 31000, &[]), staging]);
        assert_eq!(tasks.specific_host("b").unwrap(), "10.0.0.2");
        assert_eq!(tasks.specific_port("a", "api").unwrap(), 31000);
        assert_eq!(tasks.specific_exposed_port("a", "ssh").unwrap(), 22);
        assert!(matches!(
            tasks.specific_host("z"),
            Err(Error::NoSuchContainer { known, .. }) if known == ["a", "b"]
        ));
        assert!(matches!(
            tasks.specific_port("a", "web"),
            Err(Error::NoSuchPort { port, .. }) if port == "web"
        ));
        assert!(matches!(
            self::tasks(vec![]).specific_host("a"),
            Err(Error::NoSuchService { key, .. }) if key == "/observed/ingestor/"
        ));
    }
}
