//! Which Marathon deployments this controller started, by deployment key, for one leadership
//! term: what decides whether a newer spec may override a lock (`force`).
//!
//! What it promises: [`StartedMarathonDeployments::all_mine`] is true only when every deployment
//! holding a lock was started by this term for the same key; an empty list (Marathon did not
//! say who holds the lock) is never "mine". Entries go once Marathon no longer lists the
//! deployment on the app ([`StartedMarathonDeployments::forget_finished`]) or the key is deleted.
//!
//! What it does not do: survive a failover. A new leader starts empty and waits out locks
//! held by its predecessor's deployments instead of overriding them.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use theseus::api::DeploymentKey;
use theseus::marathon::{App, DeploymentId};

/// The deployments started by this term, by key (a key has one or two at a time: a list
/// holds them in less room than a set).
#[derive(Debug, Default)]
pub struct StartedMarathonDeployments {
    by_key: Mutex<HashMap<DeploymentKey, Vec<DeploymentId>>>,
}

impl StartedMarathonDeployments {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeploymentKey, Vec<DeploymentId>>> {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that this term started `deployment` for `key`.
    pub fn started(&self, key: &DeploymentKey, deployment: DeploymentId) {
        let mut by_key = self.lock();
        let mine = by_key.entry(key.clone()).or_default();
        if !mine.contains(&deployment) {
            mine.push(deployment);
        }
    }

    /// Whether every one of `deployments` was started by this term for `key`.
    pub fn all_mine(&self, key: &DeploymentKey, deployments: &[DeploymentId]) -> bool {
        let by_key = self.lock();
        let Some(mine) = by_key.get(key) else {
            return false;
        };
        !deployments.is_empty() && deployments.iter().all(|d| mine.contains(d))
    }

    /// Forgets the deployments of `key` that `app` (as Marathon shows it) no longer lists.
    pub fn forget_finished(&self, key: &DeploymentKey, app: Option<&App>) {
        let mut by_key = self.lock();
        let Some(mine) = by_key.get_mut(key) else {
            return;
        };
        let running: HashSet<&DeploymentId> = app
            .map(|a| a.deployment_ids().collect())
            .unwrap_or_default();
        mine.retain(|d| running.contains(d));
        mine.shrink_to_fit();
        if mine.is_empty() {
            by_key.remove(key);
        }
    }

    /// Forgets everything about `key` (it was deleted).
    pub fn forget(&self, key: &DeploymentKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> DeploymentKey {
        text.parse().unwrap()
    }

    fn app_with(deployments: &[&str]) -> App {
        serde_json::from_value(serde_json::json!({
            "id": "/web/dev",
            "deployments": deployments.iter().map(|d| serde_json::json!({"id": d})).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    #[test]
    fn only_locks_held_entirely_by_this_keys_deployments_are_mine() {
        let started = StartedMarathonDeployments::default();
        started.started(&key("web/dev"), DeploymentId::from("a"));
        started.started(&key("web/dev"), DeploymentId::from("b"));
        started.started(&key("web/prod"), DeploymentId::from("c"));
        let ids = |ids: &[&str]| {
            ids.iter()
                .map(|i| DeploymentId::from(*i))
                .collect::<Vec<_>>()
        };
        assert!(started.all_mine(&key("web/dev"), &ids(&["a", "b"])));
        assert!(!started.all_mine(&key("web/dev"), &ids(&["a", "x"])));
        assert!(
            !started.all_mine(&key("web/dev"), &ids(&["c"])),
            "another key's"
        );
        assert!(
            !started.all_mine(&key("web/dev"), &[]),
            "nobody knows whose"
        );
        assert!(!started.all_mine(&key("web/new"), &ids(&["a"])));
    }

    #[test]
    fn finished_and_deleted_deployments_are_forgotten() {
        let started = StartedMarathonDeployments::default();
        let dev = key("web/dev");
        started.started(&dev, DeploymentId::from("a"));
        started.started(&dev, DeploymentId::from("b"));
        started.forget_finished(&dev, Some(&app_with(&["b"])));
        assert!(!started.all_mine(&dev, &[DeploymentId::from("a")]));
        assert!(started.all_mine(&dev, &[DeploymentId::from("b")]));
        started.forget(&dev);
        assert!(!started.all_mine(&dev, &[DeploymentId::from("b")]));
    }
}
