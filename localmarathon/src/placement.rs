//! Placement: which agent a new task goes to, honouring resources, ports and constraints.
//!
//! Constraints follow Marathon's semantics for the `hostname` field (`UNIQUE`, `CLUSTER`,
//! `GROUP_BY`, `LIKE`, `UNLIKE`, `MAX_PER`, `IS`), counted over the app's active tasks,
//! including the ones placed earlier in the same round. Agents carry no other attributes, so a
//! constraint on any other field matches no agent and the task waits, as it would on a Mesos
//! cluster whose agents lack that attribute. An app that fits nowhere stays waiting, and every
//! agent it does not fit is named with Marathon's reasons (for `/v2/queue`).

use std::collections::BTreeMap;

use regex::Regex;
use serde::Serialize;

use crate::agent::{Agent, AgentIndex, Resources};
use crate::offers::NoMatchReason;
use crate::validation::Violations;

/// A constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// At most one task per value.
    Unique,
    /// All tasks on one value (the given one, or the first used).
    Cluster,
    /// Spread evenly over values.
    GroupBy,
    /// Value matches the regex.
    Like,
    /// Value does not match the regex.
    Unlike,
    /// At most N tasks per value.
    MaxPer,
    /// Value equals the given one.
    Is,
}

impl Operator {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "UNIQUE" => Operator::Unique,
            "CLUSTER" => Operator::Cluster,
            "GROUP_BY" => Operator::GroupBy,
            "LIKE" => Operator::Like,
            "UNLIKE" => Operator::Unlike,
            "MAX_PER" => Operator::MaxPer,
            "IS" => Operator::Is,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Operator::Unique => "UNIQUE",
            Operator::Cluster => "CLUSTER",
            Operator::GroupBy => "GROUP_BY",
            Operator::Like => "LIKE",
            Operator::Unlike => "UNLIKE",
            Operator::MaxPer => "MAX_PER",
            Operator::Is => "IS",
        }
    }
}

/// A placement constraint `[field, operator, value?]`.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// Agent field (`hostname`, or an attribute name).
    pub field: String,
    /// Operator.
    pub operator: Operator,
    /// Operand.
    pub value: Option<String>,
    regex: Option<Regex>,
}

impl PartialEq for Constraint {
    fn eq(&self, other: &Self) -> bool {
        self.field == other.field && self.operator == other.operator && self.value == other.value
    }
}

impl Serialize for Constraint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut items = vec![self.field.as_str(), self.operator.as_str()];
        if let Some(v) = &self.value {
            items.push(v);
        }
        items.serialize(s)
    }
}

impl Constraint {
    /// Parses `[field, OP, value?]`, recording violations under `path`.
    pub fn parse(items: &[String], path: &str, errors: &mut Violations) -> Option<Constraint> {
        if !(2..=3).contains(&items.len()) {
            errors.add(
                path,
                "Each constraint must have either 2 or 3 fields: [field, operator, value?]",
            );
            return None;
        }
        let Some(operator) = Operator::parse(&items[1]) else {
            errors.add(
                path,
                format!(
                    "Constraint operator must be one of the following: [UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS], not '{}'",
                    items[1]
                ),
            );
            return None;
        };
        let value = items.get(2).cloned();
        let mut regex = None;
        match operator {
            Operator::Like | Operator::Unlike => match &value {
                Some(v) => match Regex::new(&format!("^(?:{v})$")) {
                    Ok(r) => regex = Some(r),
                    Err(_) => {
                        errors.add(path, format!("'{v}' is not a valid regular expression"));
                        return None;
                    }
                },
                None => {
                    errors.add(path, "A regular expression value must be provided");
                    return None;
                }
            },
            Operator::MaxPer => {
                if value
                    .as_deref()
                    .and_then(|v| v.parse::<u32>().ok())
                    .is_none()
                {
                    errors.add(path, "Value was not a valid integer");
                    return None;
                }
            }
            Operator::GroupBy => {
                if let Some(v) = &value
                    && !v.is_empty()
                    && v.parse::<u32>().is_err()
                {
                    errors.add(path, "Value was not a valid integer");
                    return None;
                }
            }
            Operator::Is => {
                if value.is_none() {
                    errors.add(path, "IS requires a value");
                    return None;
                }
            }
            Operator::Unique | Operator::Cluster => {}
        }
        Some(Constraint {
            field: items[0].clone(),
            operator,
            value,
            regex,
        })
    }

    /// Whether a task may go to an agent whose field value is `offered`, given the values of
    /// the app's tasks already placed.
    pub fn accepts(&self, offered: Option<&str>, placed: &[&str]) -> bool {
        let Some(offered) = offered else {
            // The agent lacks the attribute: Marathon declines such offers.
            return false;
        };
        let on_value = placed.iter().filter(|p| **p == offered).count();
        match self.operator {
            Operator::Unique => on_value == 0,
            Operator::Cluster => match self.value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => offered == v,
                None => placed.iter().all(|p| *p == offered),
            },
            Operator::Is => self.value.as_deref() == Some(offered),
            Operator::Like => self.regex.as_ref().is_some_and(|r| r.is_match(offered)),
            Operator::Unlike => self.regex.as_ref().is_some_and(|r| !r.is_match(offered)),
            Operator::MaxPer => {
                let max = self
                    .value
                    .as_deref()
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(1);
                on_value < max
            }
            Operator::GroupBy => {
                let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
                for p in placed {
                    *groups.entry(p).or_default() += 1;
                }
                let expected = self
                    .value
                    .as_deref()
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(1);
                if !groups.contains_key(offered) && groups.len() < expected {
                    return true;
                }
                let min = groups.values().copied().min().unwrap_or(0);
                on_value <= min
            }
        }
    }
}

/// What a new task needs from an agent.
#[derive(Debug, Clone)]
pub struct Demand<'a> {
    /// Resources per task.
    pub resources: Resources,
    /// One entry per host port: `Some(port)` when fixed (`requirePorts`), `None` when dynamic.
    pub ports: Vec<Option<u16>>,
    /// The app's constraints.
    pub constraints: &'a [Constraint],
    /// Skip host ports something else on the machine listens on (real processes only).
    pub probe_ports: bool,
}

/// Where a task goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The chosen agent.
    pub agent: AgentIndex,
    /// Host ports reserved on it.
    pub ports: Vec<u16>,
}

fn field_value<'a>(agent: &'a Agent, field: &str) -> Option<&'a str> {
    match field {
        "hostname" | "@hostname" => Some(agent.hostname.as_str()),
        _ => None,
    }
}

/// What weighing every agent for one task found.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// Where the task goes, if anywhere.
    pub placement: Option<Placement>,
    /// The agents it cannot go to, each with every reason why.
    pub declined: Vec<(AgentIndex, Vec<NoMatchReason>)>,
}

/// Why a task cannot go to `agent` (empty: it can, on `ports`).
fn reasons(
    agents: &[Agent],
    agent: &Agent,
    demand: &Demand<'_>,
    placed: &[AgentIndex],
) -> (Vec<NoMatchReason>, Option<Vec<u16>>) {
    let mut reasons = Vec::new();
    let constrained = !demand.constraints.iter().all(|c| {
        let placed_values: Vec<&str> = placed
            .iter()
            .filter_map(|a| agents.get(a.0))
            .filter_map(|a| field_value(a, &c.field))
            .collect();
        c.accepts(field_value(agent, &c.field), &placed_values)
    });
    if constrained {
        reasons.push(NoMatchReason::UnfulfilledConstraint);
    }
    let short = agent.shortfall(demand.resources);
    for (lacking, reason) in [
        (short.cpus, NoMatchReason::InsufficientCpus),
        (short.mem, NoMatchReason::InsufficientMemory),
        (short.disk, NoMatchReason::InsufficientDisk),
    ] {
        if lacking {
            reasons.push(reason);
        }
    }
    // Ports are picked (and probed) only for an agent that can otherwise take the task.
    if !reasons.is_empty() {
        return (reasons, None);
    }
    match agent.pick_ports(&demand.ports, demand.probe_ports) {
        Some(ports) => (reasons, Some(ports)),
        None => (vec![NoMatchReason::InsufficientPorts], None),
    }
}

/// Chooses an agent for one task. `placed` lists the agents of the app's active tasks. Among the
/// agents that fit, the one with the fewest tasks of this app wins (then the lowest index), which
/// spreads an app the way Mesos offer cycling tends to. Every agent that does not fit is named
/// with why.
pub fn place(agents: &[Agent], demand: &Demand<'_>, placed: &[AgentIndex]) -> Matching {
    let mut best: Option<(usize, Placement)> = None;
    let mut declined = Vec::new();
    let mut loads = vec![0usize; agents.len()];
    for a in placed {
        if let Some(load) = loads.get_mut(a.0) {
            *load += 1;
        }
    }
    for (i, agent) in agents.iter().enumerate() {
        let (why, ports) = reasons(agents, agent, demand, placed);
        let Some(ports) = ports else {
            declined.push((AgentIndex(i), why));
            continue;
        };
        let load = loads[i];
        if best.as_ref().is_none_or(|(l, _)| load < *l) {
            best = Some((
                load,
                Placement {
                    agent: AgentIndex(i),
                    ports,
                },
            ));
        }
    }
    Matching {
        placement: best.map(|(_, p)| p),
        declined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentSpec;

    fn constraint(items: &[&str]) -> Constraint {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        let mut errors = Violations::default();
        let c = Constraint::parse(&items, "/constraints(0)", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        c.unwrap()
    }

    fn agents() -> Vec<Agent> {
        AgentSpec::defaults()
            .into_iter()
            .enumerate()
            .map(|(i, s)| Agent::new("c", i, s))
            .collect()
    }

    fn demand(constraints: &[Constraint]) -> Demand<'_> {
        Demand {
            resources: Resources {
                cpus: 0.1,
                mem: 16.0,
                disk: 0.0,
            },
            ports: vec![None],
            constraints,
            probe_ports: false,
        }
    }

    fn place_n(n: usize, constraints: &[Constraint]) -> Vec<Option<usize>> {
        let mut agents = agents();
        let mut placed = Vec::new();
        let mut out = Vec::new();
        for _ in 0..n {
            let d = demand(constraints);
            match place(&agents, &d, &placed).placement {
                Some(p) => {
                    agents[p.agent.0].allocate(d.resources, &p.ports);
                    placed.push(p.agent);
                    out.push(Some(p.agent.0));
                }
                None => out.push(None),
            }
        }
        out
    }

    #[test]
    fn unique_puts_at_most_one_task_per_host() {
        let c = [constraint(&["hostname", "UNIQUE"])];
        assert_eq!(place_n(4, &c), [Some(0), Some(1), Some(2), None]);
    }

    #[test]
    fn cluster_keeps_tasks_on_the_named_host() {
        let c = [constraint(&["hostname", "CLUSTER", "127.0.0.12"])];
        assert_eq!(place_n(3, &c), [Some(1), Some(1), Some(1)]);
    }

    #[test]
    fn like_and_unlike_match_the_whole_hostname() {
        let like = [constraint(&["hostname", "LIKE", "127\\.0\\.0\\.1[23]"])];
        assert!(place_n(4, &like).iter().all(|p| matches!(p, Some(1 | 2))));
        let unlike = [constraint(&["hostname", "UNLIKE", "127\\.0\\.0\\.1[12]"])];
        assert!(place_n(3, &unlike).iter().all(|p| *p == Some(2)));
        let partial = [constraint(&["hostname", "LIKE", "127"])];
        assert_eq!(place_n(1, &partial), [None]);
    }

    #[test]
    fn max_per_and_group_by_spread_tasks() {
        let c = [constraint(&["hostname", "MAX_PER", "2"])];
        let placed = place_n(7, &c);
        assert_eq!(placed.iter().filter(|p| p.is_none()).count(), 1);
        for a in 0..3 {
            assert_eq!(placed.iter().filter(|p| **p == Some(a)).count(), 2);
        }
        let g = [constraint(&["hostname", "GROUP_BY", "3"])];
        let placed = place_n(6, &g);
        for a in 0..3 {
            assert_eq!(placed.iter().filter(|p| **p == Some(a)).count(), 2);
        }
    }

    #[test]
    fn every_agent_a_task_does_not_fit_is_named_with_each_reason() {
        let agents = agents();
        let c = [constraint(&["hostname", "IS", "127.0.0.12"])];
        let mut d = demand(&c);
        d.resources.cpus = 500.0;
        let matching = place(&agents, &d, &[]);
        assert_eq!(matching.placement, None);
        use NoMatchReason::*;
        assert_eq!(
            matching.declined,
            [
                (AgentIndex(0), vec![UnfulfilledConstraint, InsufficientCpus]),
                (AgentIndex(1), vec![InsufficientCpus]),
                (AgentIndex(2), vec![UnfulfilledConstraint, InsufficientCpus]),
            ]
        );
        let fixed = Demand {
            ports: vec![Some(1)],
            ..demand(&[])
        };
        assert!(
            place(&agents, &fixed, &[])
                .declined
                .iter()
                .all(|(_, why)| *why == [InsufficientPorts])
        );
    }

    #[test]
    fn constraints_on_unknown_fields_match_nothing() {
        let c = [constraint(&["rack", "UNIQUE"])];
        assert_eq!(place_n(1, &c), [None]);
    }

    #[test]
    fn bad_constraints_are_violations() {
        let mut errors = Violations::default();
        let bad = |items: &[&str], errors: &mut Violations| {
            let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            Constraint::parse(&items, "/constraints(0)", errors)
        };
        assert!(bad(&["hostname", "NEAR"], &mut errors).is_none());
        assert!(bad(&["hostname", "LIKE", "("], &mut errors).is_none());
        assert!(bad(&["hostname", "MAX_PER", "x"], &mut errors).is_none());
        assert!(bad(&["hostname"], &mut errors).is_none());
        assert_eq!(errors.into_details()[0].errors.len(), 4);
    }
}
