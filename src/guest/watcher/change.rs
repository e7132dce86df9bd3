//! What a hook is told: a service's serving endpoints at a revision, and the change from
//! the endpoints the hook was told about last.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::guest::Node;
use crate::store::Revision;

/// A service's serving endpoints (filtered by the watcher's labels) as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The etcd revision the endpoints are current at.
    pub revision: Revision,
    /// The endpoints, sorted.
    pub nodes: Vec<Node>,
}

/// The document a hook reads on stdin (one JSON object and a newline).
///
/// `delta` is `THESEUS_DELTA`: the new count minus the old one. A node whose record changed
/// (same task id, other ports or labels) is both in `removed` (as it was) and in `added` (as
/// it is). The first run after the watcher starts has every node in `added` and `delta`
/// equal to the count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The service.
    pub service: String,
    /// The etcd revision the state is at.
    pub revision: Revision,
    /// Number of endpoints now minus number before.
    pub delta: i64,
    /// Endpoints that were not there before.
    pub added: Vec<Node>,
    /// Endpoints that are gone.
    pub removed: Vec<Node>,
    /// Every endpoint now.
    pub nodes: Vec<Node>,
}

impl Change {
    /// The change from `before` (none: nothing was delivered yet) to `now`.
    pub fn between(service: &str, before: Option<&[Node]>, now: &Endpoints) -> Change {
        let before: BTreeSet<&Node> = before.unwrap_or_default().iter().collect();
        let after: BTreeSet<&Node> = now.nodes.iter().collect();
        Change {
            service: service.to_owned(),
            revision: now.revision,
            delta: after.len() as i64 - before.len() as i64,
            added: after.difference(&before).map(|n| (*n).clone()).collect(),
            removed: before.difference(&after).map(|n| (*n).clone()).collect(),
            nodes: now.nodes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::PortBinding;

    fn node(task_id: &str, port: u16) -> Node {
        Node {
            task_id: task_id.into(),
            deployment: "dev".into(),
            host: "10.0.0.1".into(),
            ip_addresses: vec![],
            ports: BTreeMap::from([(
                "api".to_owned(),
                PortBinding {
                    host: port,
                    container: 5000,
                    protocol: "tcp".into(),
                },
            )]),
            labels: vec![],
        }
    }

    fn ids(nodes: &[Node]) -> Vec<&str> {
        nodes.iter().map(|n| n.task_id.as_str()).collect()
    }

    #[test]
    fn the_first_change_adds_everything_with_delta_equal_to_the_count() {
        let now = Endpoints {
            revision: 9,
            nodes: vec![node("a", 1), node("b", 2)],
        };
        let change = Change::between("svc", None, &now);
        assert_eq!(change.delta, 2);
        assert_eq!(ids(&change.added), ["a", "b"]);
        assert!(change.removed.is_empty());
        assert_eq!(change.revision, 9);
    }

    #[test]
    fn a_change_lists_what_came_and_went_and_the_count_difference() {
        let before = vec![node("a", 1), node("b", 2), node("c", 3)];
        let now = Endpoints {
            revision: 12,
            nodes: vec![node("a", 1), node("b", 20), node("d", 4)],
        };
        let change = Change::between("svc", Some(&before), &now);
        assert_eq!(change.delta, 0);
        assert_eq!(ids(&change.added), ["b", "d"]);
        assert_eq!(ids(&change.removed), ["b", "c"]);
        assert_eq!(change.removed[0].ports["api"].host, 2, "b as it was");
        assert_eq!(ids(&change.nodes), ["a", "b", "d"]);
    }

    #[test]
    fn the_document_has_the_promised_fields() {
        let now = Endpoints {
            revision: 3,
            nodes: vec![node("a", 1)],
        };
        let json = serde_json::to_value(Change::between("svc", Some(&[]), &now)).unwrap();
        let keys: BTreeSet<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["added", "delta", "nodes", "removed", "revision", "service"])
        );
        assert_eq!(json["delta"], 1);
        assert_eq!(json["added"][0]["ports"]["api"]["host"], 1);
    }
}
