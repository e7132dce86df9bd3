//! What the Marathon snapshot's changes mean to each reconciler: the keys a change triggers.
//!
//! What it promises:
//! - The deployments reconciler looks again at every app that changed, except for its own
//!   writes (it made them, and knows), and at every key when Marathon's reachability changed
//!   or changes were missed: statuses say whether Marathon answers.
//! - The observed reconciler looks again at every app that changed, its own writes included
//!   (a deleted app's tasks go with it and the picture takes no more events about them; a
//!   new definition may name ports differently), and at every key when Marathon is
//!   reachable again (records held back while it was away are due) or changes were missed.
//!
//! What it does not do: read the snapshot, or trigger anything itself (that is
//! [`crate::runtime::trigger`]).

use theseus::api::DeploymentKey;
use theseus::mapping::ownership::Installation;

use crate::marathon_snapshot::{Reachability, SnapshotChange};
use crate::runtime::trigger::Triggered;

/// The keys of the deployments reconciler that `change` triggers.
pub fn deployments(
    installation: &Installation,
    change: SnapshotChange,
) -> Triggered<DeploymentKey> {
    match change {
        SnapshotChange::Apps(apps) => keys(installation, &apps),
        SnapshotChange::Written(_) => Triggered::Nothing,
        SnapshotChange::Reachability(_) | SnapshotChange::Missed => Triggered::Every,
    }
}

/// The keys of the observed reconciler that `change` triggers.
pub fn observed(installation: &Installation, change: SnapshotChange) -> Triggered<DeploymentKey> {
    match change {
        SnapshotChange::Apps(apps) => keys(installation, &apps),
        SnapshotChange::Written(app) => Triggered::key(installation.key_of(&app)),
        SnapshotChange::Reachability(Reachability::Reachable) | SnapshotChange::Missed => {
            Triggered::Every
        }
        SnapshotChange::Reachability(_) => Triggered::Nothing,
    }
}

fn keys(
    installation: &Installation,
    apps: &[theseus::marathon::AppId],
) -> Triggered<DeploymentKey> {
    Triggered::Keys(
        apps.iter()
            .filter_map(|app| installation.key_of(app))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use theseus::marathon::AppId;

    use super::*;

    fn installation() -> Installation {
        Installation::new(Some("/prod"), "").unwrap()
    }

    fn app(id: &str) -> AppId {
        AppId::parse(id).unwrap()
    }

    fn key(text: &str) -> DeploymentKey {
        text.parse().unwrap()
    }

    #[test]
    fn changed_apps_trigger_their_keys_in_both_and_apps_of_others_trigger_nothing() {
        let change = SnapshotChange::Apps(vec![app("/prod/web/dev"), app("/elsewhere/web/dev")]);
        for triggered in [
            deployments(&installation(), change.clone()),
            observed(&installation(), change),
        ] {
            assert_eq!(triggered, Triggered::Keys(vec![key("web/dev")]));
        }
    }

    #[test]
    fn an_own_write_triggers_only_the_observed_reconciler() {
        let written = SnapshotChange::Written(app("/prod/web/dev"));
        assert_eq!(
            deployments(&installation(), written.clone()),
            Triggered::Nothing
        );
        assert_eq!(
            observed(&installation(), written),
            Triggered::Keys(vec![key("web/dev")])
        );
    }

    #[test]
    fn reachability_and_missed_changes_trigger_every_key() {
        let refused = theseus::marathon::Error::Unavailable {
            url: "http://marathon/v2/apps".into(),
            status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
            message: "refused".into(),
        };
        let unreachable =
            SnapshotChange::Reachability(Reachability::Unreachable(Arc::new(refused)));
        assert_eq!(
            deployments(&installation(), unreachable.clone()),
            Triggered::Every
        );
        assert_eq!(observed(&installation(), unreachable), Triggered::Nothing);
        for change in [
            SnapshotChange::Reachability(Reachability::Reachable),
            SnapshotChange::Missed,
        ] {
            assert_eq!(
                deployments(&installation(), change.clone()),
                Triggered::Every
            );
            assert_eq!(observed(&installation(), change), Triggered::Every);
        }
    }
}
