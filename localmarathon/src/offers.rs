//! Offer statistics of an app's launch attempt, as `/v2/queue` reports them
//! (`processedOffersSummary`).
//!
//! localmarathon has no Mesos offers: every agent the scheduler weighs for a task counts as
//! one offer of that agent. An agent the task cannot go to is an unused offer, declined for
//! every reason it fails ([`NoMatchReason`]); the agent chosen is a used one; an agent that
//! could have taken the task but was not chosen makes no offer. A launch attempt begins when
//! an app first has instances waiting for a task and ends once none waits; its statistics go
//! with it.
//!
//! The summaries follow Marathon 1.10: each declined offer counts once, for the first of its
//! reasons in Marathon's matching funnel (the order of [`NoMatchReason::FUNNEL`]), and each
//! step of the funnel says how many offers reached it (`processed`) and how many it declined.
//! `rejectSummaryLaunchAttempt` counts every offer since the attempt began,
//! `rejectSummaryLastOffers` only the last offer of each agent.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::agent::AgentIndex;
use crate::timestamp::Timestamp;

/// Why an offer was not used, in Marathon's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum NoMatchReason {
    /// The app does not accept the offer's resource role.
    UnfulfilledRole,
    /// A placement constraint rejects the agent.
    UnfulfilledConstraint,
    /// A resident app found no reservation of its own.
    NoCorrespondingReservationFound,
    /// The agent is in maintenance.
    AgentMaintenance,
    /// Too few CPUs left on the agent.
    InsufficientCpus,
    /// Too little memory left on the agent.
    InsufficientMemory,
    /// Too little disk left on the agent.
    InsufficientDisk,
    /// Too few GPUs left on the agent.
    InsufficientGpus,
    /// Not the host ports the task needs.
    InsufficientPorts,
    /// A GPU agent kept for GPU apps.
    DeclinedScarceResources,
}

impl NoMatchReason {
    /// Marathon's matching funnel: the order in which it checks an offer.
    pub const FUNNEL: [NoMatchReason; 10] = [
        NoMatchReason::UnfulfilledRole,
        NoMatchReason::UnfulfilledConstraint,
        NoMatchReason::NoCorrespondingReservationFound,
        NoMatchReason::AgentMaintenance,
        NoMatchReason::InsufficientCpus,
        NoMatchReason::InsufficientMemory,
        NoMatchReason::InsufficientDisk,
        NoMatchReason::InsufficientGpus,
        NoMatchReason::InsufficientPorts,
        NoMatchReason::DeclinedScarceResources,
    ];

    /// The reason as Marathon spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            NoMatchReason::UnfulfilledRole => "UnfulfilledRole",
            NoMatchReason::UnfulfilledConstraint => "UnfulfilledConstraint",
            NoMatchReason::NoCorrespondingReservationFound => "NoCorrespondingReservationFound",
            NoMatchReason::AgentMaintenance => "AgentMaintenance",
            NoMatchReason::InsufficientCpus => "InsufficientCpus",
            NoMatchReason::InsufficientMemory => "InsufficientMemory",
            NoMatchReason::InsufficientDisk => "InsufficientDisk",
            NoMatchReason::InsufficientGpus => "InsufficientGpus",
            NoMatchReason::InsufficientPorts => "InsufficientPorts",
            NoMatchReason::DeclinedScarceResources => "DeclinedScarceResources",
        }
    }

    /// The reason an offer declined for several counts for: the first in the funnel.
    fn first(reasons: &[NoMatchReason]) -> Option<NoMatchReason> {
        reasons.iter().copied().min()
    }
}

/// The offers of one launch attempt of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferStatistics {
    /// When the attempt began (the queue entry's `since`).
    pub since: Timestamp,
    processed: u64,
    unused: u64,
    last_unused_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    /// Declined offers of the attempt, by the reason each counts for.
    declined: BTreeMap<NoMatchReason, u64>,
    /// The last offer of each agent: the reason it was declined for, `None` if used.
    last_offers: BTreeMap<AgentIndex, Option<NoMatchReason>>,
}

impl OfferStatistics {
    /// An attempt beginning at `since`, with no offer yet.
    pub fn new(since: Timestamp) -> Self {
        OfferStatistics {
            since,
            processed: 0,
            unused: 0,
            last_unused_at: None,
            last_used_at: None,
            declined: BTreeMap::new(),
            last_offers: BTreeMap::new(),
        }
    }

    /// Records an offer of `agent` at `at`: declined for `reasons`, or used when there are
    /// none.
    pub fn record(&mut self, agent: AgentIndex, reasons: &[NoMatchReason], at: Timestamp) {
        self.processed += 1;
        let first = NoMatchReason::first(reasons);
        match first {
            Some(reason) => {
                self.unused += 1;
                self.last_unused_at = Some(at);
                *self.declined.entry(reason).or_default() += 1;
            }
            None => self.last_used_at = Some(at),
        }
        self.last_offers.insert(agent, first);
    }

    /// Marathon's `processedOffersSummary`.
    pub fn summary(&self) -> Value {
        let mut last: BTreeMap<NoMatchReason, u64> = BTreeMap::new();
        for reason in self.last_offers.values().flatten() {
            *last.entry(*reason).or_default() += 1;
        }
        let mut summary = json!({
            "processedOffersCount": self.processed,
            "unusedOffersCount": self.unused,
            "rejectSummaryLastOffers": funnel(self.last_offers.len() as u64, &last),
            "rejectSummaryLaunchAttempt": funnel(self.processed, &self.declined),
        });
        if let Some(at) = self.last_unused_at {
            summary["lastUnusedOfferAt"] = json!(at);
        }
        if let Some(at) = self.last_used_at {
            summary["lastUsedOfferAt"] = json!(at);
        }
        summary
    }
}

/// The funnel's steps over `offers` offers, `declined` of them for each reason.
fn funnel(offers: u64, declined: &BTreeMap<NoMatchReason, u64>) -> Value {
    let mut reaching = offers;
    let steps: Vec<Value> = NoMatchReason::FUNNEL
        .iter()
        .map(|reason| {
            let count = declined.get(reason).copied().unwrap_or(0);
            let step = json!({"reason": reason.as_str(), "declined": count, "processed": reaching});
            reaching = reaching.saturating_sub(count);
            step
        })
        .collect();
    Value::Array(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(summary: &Value, list: &str, reason: &str) -> (u64, u64) {
        let step = summary[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["reason"] == reason)
            .unwrap();
        (
            step["declined"].as_u64().unwrap(),
            step["processed"].as_u64().unwrap(),
        )
    }

    #[test]
    fn a_declined_offer_counts_for_the_first_of_its_reasons_in_the_funnel() {
        let mut stats = OfferStatistics::new(Timestamp::from_millis(0));
        let at = Timestamp::from_millis(1000);
        use NoMatchReason::*;
        stats.record(AgentIndex(0), &[InsufficientMemory, InsufficientCpus], at);
        stats.record(AgentIndex(1), &[InsufficientCpus], at);
        stats.record(AgentIndex(2), &[InsufficientMemory], at);
        stats.record(AgentIndex(0), &[InsufficientCpus], at);
        let summary = stats.summary();
        assert_eq!(summary["processedOffersCount"], 4);
        assert_eq!(summary["unusedOffersCount"], 4);
        let attempt = "rejectSummaryLaunchAttempt";
        assert_eq!(step(&summary, attempt, "UnfulfilledConstraint"), (0, 4));
        assert_eq!(step(&summary, attempt, "InsufficientCpus"), (3, 4));
        assert_eq!(step(&summary, attempt, "InsufficientMemory"), (1, 1));
        assert_eq!(step(&summary, attempt, "InsufficientDisk"), (0, 0));
        let last = "rejectSummaryLastOffers";
        assert_eq!(step(&summary, last, "InsufficientCpus"), (2, 3));
        assert_eq!(step(&summary, last, "InsufficientMemory"), (1, 1));
        assert!(summary.get("lastUsedOfferAt").is_none());
        assert_eq!(summary["lastUnusedOfferAt"], "1970-01-01T00:00:01.000Z");
    }

    #[test]
    fn a_used_offer_declines_nothing() {
        let mut stats = OfferStatistics::new(Timestamp::from_millis(0));
        stats.record(AgentIndex(0), &[], Timestamp::from_millis(5));
        let summary = stats.summary();
        assert_eq!(
            (
                summary["processedOffersCount"].as_u64(),
                summary["unusedOffersCount"].as_u64()
            ),
            (Some(1), Some(0))
        );
        for list in ["rejectSummaryLastOffers", "rejectSummaryLaunchAttempt"] {
            let steps = summary[list].as_array().unwrap();
            assert_eq!(steps.len(), NoMatchReason::FUNNEL.len());
            assert!(
                steps
                    .iter()
                    .all(|s| s["declined"] == 0 && s["processed"] == 1)
            );
        }
    }
}
