//! Marathon's launch queue (`GET /v2/queue`): the apps with instances waiting to be launched,
//! how long their launches are held back, and why the offers Marathon saw did not fit.
//!
//! What it promises: the RAML `Queue` as liberal types. Every field Marathon may leave out is
//! optional; a reason Marathon declines offers for that this client does not know is kept
//! ([`NoMatchReason::Other`]); a pod's entry (which has `pod` instead of `app`) decodes too,
//! with `app` empty.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppId;
use super::app::App;

wire_enum! {
    /// Why Marathon did not use an offer for an instance (a step of its matching funnel, in
    /// the order Marathon checks them).
    pub enum NoMatchReason {
        /// The offer's resources are of a role the app does not accept.
        UnfulfilledRole => "UnfulfilledRole",
        /// A placement constraint rejects the agent.
        UnfulfilledConstraint => "UnfulfilledConstraint",
        /// A resident app found no reservation of its own on the agent.
        NoCorrespondingReservationFound => "NoCorrespondingReservationFound",
        /// The agent is in maintenance.
        AgentMaintenance => "AgentMaintenance",
        /// Not enough CPUs.
        InsufficientCpus => "InsufficientCpus",
        /// Not enough memory.
        InsufficientMemory => "InsufficientMemory",
        /// Not enough disk.
        InsufficientDisk => "InsufficientDisk",
        /// Not enough GPUs.
        InsufficientGpus => "InsufficientGpus",
        /// Not enough (or not the required) host ports.
        InsufficientPorts => "InsufficientPorts",
        /// A GPU agent kept for apps that need GPUs.
        DeclinedScarceResources => "DeclinedScarceResources",
    }
}

impl NoMatchReason {
    /// What is short, in a spec's words: `cpus`, `mem`, `disk`, `gpus`, `ports`, `a
    /// constraint`, …
    pub fn shortage(&self) -> &str {
        match self {
            Self::UnfulfilledRole => "an accepted resource role",
            Self::UnfulfilledConstraint => "a constraint",
            Self::NoCorrespondingReservationFound => "a reservation",
            Self::AgentMaintenance => "an agent out of maintenance",
            Self::InsufficientCpus => "cpus",
            Self::InsufficientMemory => "mem",
            Self::InsufficientDisk => "disk",
            Self::InsufficientGpus => "gpus",
            Self::InsufficientPorts => "ports",
            Self::DeclinedScarceResources => "an agent without scarce resources",
            Self::Other(other) => other,
        }
    }
}

/// The entries of `GET /v2/queue`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Queue {
    /// One entry per app (or pod) with instances left to launch; absent when none.
    #[serde(default)]
    pub queue: Vec<QueueEntry>,
}

/// One app (or pod) with instances left to launch (the RAML `QueueApp` / `QueuePod`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntry {
    /// The app, for an app's entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    /// Instances left to launch.
    #[serde(default)]
    pub count: u32,
    /// The Mesos role of the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// How long launches are held back (the launch backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<QueueDelay>,
    /// Since when Marathon tries to launch them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// What became of the offers Marathon processed for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_offers_summary: Option<ProcessedOffersSummary>,
    /// The last offers not used, with why (only with `embed=lastUnusedOffers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_unused_offers: Option<Vec<Value>>,
    /// Fields this client does not model (a pod's `pod`, say).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl QueueEntry {
    /// The id of the app the entry is about, if it is an app's.
    pub fn app_id(&self) -> Option<&AppId> {
        self.app.as_ref().map(|app| &app.id)
    }
}

/// The launch backoff of a queue entry (the RAML `QueueDelay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueDelay {
    /// Seconds until the next launch attempt.
    #[serde(default)]
    pub time_left_seconds: u64,
    /// `true`: the instances wait for offers; `false`: launches are held back for
    /// `timeLeftSeconds`.
    #[serde(default)]
    pub overdue: bool,
}

/// What became of the offers processed for a queue entry (the RAML
/// `ProcessedOffersSummary`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessedOffersSummary {
    /// Offers processed in this launch attempt.
    #[serde(default)]
    pub processed_offers_count: u64,
    /// Offers of them that were not used.
    #[serde(default)]
    pub unused_offers_count: u64,
    /// When the last unused offer was processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_unused_offer_at: Option<DateTime<Utc>>,
    /// When the last used offer was processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_offer_at: Option<DateTime<Utc>>,
    /// The matching funnel over the last offer of every agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_summary_last_offers: Option<Vec<DeclinedOfferStep>>,
    /// The matching funnel over every offer since the launch attempt began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_summary_launch_attempt: Option<Vec<DeclinedOfferStep>>,
}

impl ProcessedOffersSummary {
    /// The steps that declined offers, in Marathon's funnel order: the last offers' when they
    /// declined any, else the whole launch attempt's. Empty when no offer was declined.
    pub fn declined(&self) -> Vec<&DeclinedOfferStep> {
        let last = declining(&self.reject_summary_last_offers);
        if last.is_empty() {
            declining(&self.reject_summary_launch_attempt)
        } else {
            last
        }
    }

    /// How many last offers (one per agent) the summary counts: what reached its first step.
    pub fn last_offers(&self) -> Option<u64> {
        self.reject_summary_last_offers
            .as_ref()?
            .first()
            .map(|step| step.processed)
    }
}

/// The steps of a funnel that declined offers.
fn declining(steps: &Option<Vec<DeclinedOfferStep>>) -> Vec<&DeclinedOfferStep> {
    steps
        .iter()
        .flatten()
        .filter(|step| step.declined > 0)
        .collect()
}

/// One step of Marathon's offer matching funnel (the RAML `DeclinedOfferStep`): of the offers
/// that reached it, how many it declined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclinedOfferStep {
    /// The check.
    pub reason: NoMatchReason,
    /// Offers declined by it.
    #[serde(default)]
    pub declined: u64,
    /// Offers that reached it.
    #[serde(default)]
    pub processed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_decodes_with_its_declining_steps_in_funnel_order() {
        let queue: Queue = serde_json::from_str(include_str!(
            "../../tests/fixtures/marathon/example-queue-get-response.json"
        ))
        .unwrap();
        assert_eq!(queue.queue.len(), 2);
        let waiting = &queue.queue[1];
        assert_eq!(waiting.app_id().map(AppId::as_str), Some("/foo"));
        assert_eq!(waiting.count, 2);
        assert_eq!(
            waiting.delay,
            Some(QueueDelay {
                time_left_seconds: 0,
                overdue: true
            })
        );
        let summary = waiting.processed_offers_summary.as_ref().unwrap();
        let declined: Vec<(&str, u64)> = summary
            .declined()
            .iter()
            .map(|step| (step.reason.shortage(), step.declined))
            .collect();
        assert_eq!(declined, [("cpus", 75), ("mem", 15), ("disk", 10)]);
        assert_eq!(summary.last_offers(), Some(123));
        assert_eq!(waiting.last_unused_offers.as_ref().map(Vec::len), Some(1));
        let offered = &queue.queue[0];
        assert!(
            offered
                .processed_offers_summary
                .as_ref()
                .unwrap()
                .declined()
                .is_empty()
        );
    }

    #[test]
    fn an_empty_queue_and_unknown_reasons_are_read() {
        let queue: Queue = serde_json::from_str("{}").unwrap();
        assert!(queue.queue.is_empty());
        let step: DeclinedOfferStep = serde_json::from_str(
            r#"{"reason": "InsufficientQuantumFlux", "declined": 2, "processed": 3}"#,
        )
        .unwrap();
        assert_eq!(step.reason.shortage(), "InsufficientQuantumFlux");
    }
}
