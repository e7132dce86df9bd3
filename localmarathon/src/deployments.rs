//! The deployments localmarathon knows: in the order they were made, and found by id.
//!
//! `/v2/deployments` lists running deployments oldest first; the scheduler looks up the
//! deployment holding an app each time it reconciles that app, and API changes cancel one by
//! id. [`Deployments`] keeps both views of the same set, so a lookup, a step forward or a
//! removal costs O(log n) however many deployments run, and a scheduler pass never walks the
//! deployments it does not touch.
//!
//! It holds the running deployments, plus those whose plan had no step (finished the moment they
//! were made) until the scheduler announces them ([`Deployments::take_finished`]). A deployment
//! leaves only when it finishes its last step ([`Deployments::advance`]) or is cancelled
//! ([`Deployments::cancel`]); it never moves otherwise, so its place in the listing is the
//! order of creation.

use std::collections::{BTreeMap, HashMap};

use crate::deployment::{Deployment, DeploymentId, Progress, RestartBounds};

/// Deployments in creation order, indexed by id.
#[derive(Debug, Default)]
pub struct Deployments {
    /// Creation number → deployment: the listing order.
    by_creation: BTreeMap<u64, Deployment>,
    /// Id → creation number.
    by_id: HashMap<DeploymentId, u64>,
    /// Made finished (no step) and not yet announced, oldest first.
    finished: Vec<DeploymentId>,
    /// Deployments made so far.
    made: u64,
}

/// What stepping a deployment forward did.
#[derive(Debug)]
pub enum Advanced<'a> {
    /// Step `finished` is done and step `started` begins; the deployment stays.
    NextStep {
        /// The finished step.
        finished: usize,
        /// The step now running.
        started: usize,
        /// The deployment.
        deployment: &'a Deployment,
    },
    /// The last step is done; the deployment has left the index.
    Done {
        /// The finished step.
        finished: usize,
        /// The deployment.
        deployment: Deployment,
    },
}

impl Deployments {
    /// Adds a deployment made now, after every other.
    pub fn insert(&mut self, deployment: Deployment) {
        let id = deployment.plan.id.clone();
        if !deployment.is_running() {
            self.finished.push(id.clone());
        }
        self.made += 1;
        let previous = self.by_id.insert(id, self.made);
        debug_assert!(previous.is_none(), "deployment ids are fresh");
        self.by_creation.insert(self.made, deployment);
    }

    /// The deployment with this id.
    pub fn get(&self, id: &DeploymentId) -> Option<&Deployment> {
        self.by_creation.get(self.by_id.get(id)?)
    }

    /// Every deployment, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Deployment> {
        self.by_creation.values()
    }

    /// The rolling-upgrade bounds of a deployment's restart step, fixed by `compute` the first
    /// time they are asked for.
    pub fn restart_bounds(
        &mut self,
        id: &DeploymentId,
        compute: impl FnOnce() -> RestartBounds,
    ) -> Option<RestartBounds> {
        let d = self.by_creation.get_mut(self.by_id.get(id)?)?;
        Some(*d.restart.get_or_insert_with(compute))
    }

    /// Completes the current step of a deployment; one that finishes its last step leaves.
    pub fn advance(&mut self, id: &DeploymentId) -> Option<Advanced<'_>> {
        let seq = *self.by_id.get(id)?;
        match self.by_creation.get_mut(&seq)?.advance()? {
            Progress::NextStep { finished, started } => Some(Advanced::NextStep {
                finished,
                started,
                deployment: self.by_creation.get(&seq)?,
            }),
            Progress::Done { finished } => Some(Advanced::Done {
                finished,
                deployment: self.remove(id)?,
            }),
        }
    }

    /// Cancels a deployment (finished or not) and takes it out.
    pub fn cancel(&mut self, id: &DeploymentId) -> Option<Deployment> {
        let mut d = self.remove(id)?;
        d.cancel();
        Some(d)
    }

    /// Takes out the deployments made finished since the last call, oldest first, for the
    /// scheduler to announce.
    pub fn take_finished(&mut self) -> Vec<Deployment> {
        std::mem::take(&mut self.finished)
            .iter()
            .filter_map(|id| self.remove(id))
            .collect()
    }

    fn remove(&mut self, id: &DeploymentId) -> Option<Deployment> {
        let seq = self.by_id.remove(id)?;
        self.by_creation.remove(&seq)
    }

    /// Both views hold the same deployments under the right keys.
    #[cfg(test)]
    fn assert_consistent(&self) {
        assert_eq!(self.by_id.len(), self.by_creation.len());
        for (id, seq) in &self.by_id {
            assert_eq!(&self.by_creation[seq].plan.id, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::app::AppDefinition;
    use crate::app_id::AppId;
    use crate::app_update::AppUpdate;
    use crate::deployment::{ActionKind, Plan};
    use crate::timestamp::Timestamp;

    fn app(id: &str, instances: u32) -> Arc<AppDefinition> {
        Arc::new(
            AppUpdate::from_value(&json!({"cmd": "x", "instances": instances}))
                .unwrap()
                .apply(None, AppId::parse(id).unwrap(), Timestamp::from_millis(0))
                .unwrap(),
        )
    }

    /// A create (two steps), a scale (one step) or no change (no step).
    fn deployment(before: Option<u32>, after: u32) -> Deployment {
        let id = AppId::parse("/a").unwrap();
        Deployment::new(Plan::between(
            id,
            before.map(|n| app("/a", n)),
            Some(app("/a", after)),
            false,
            Timestamp::from_millis(0),
        ))
    }

    fn ids(d: &Deployments) -> Vec<DeploymentId> {
        d.iter().map(|d| d.plan.id.clone()).collect()
    }

    #[test]
    fn deployments_are_listed_in_creation_order_and_found_by_id() {
        let mut index = Deployments::default();
        let made: Vec<Deployment> = (0..5).map(|_| deployment(None, 1)).collect();
        let expected: Vec<DeploymentId> = made.iter().map(|d| d.plan.id.clone()).collect();
        for d in made {
            index.insert(d);
        }
        index.assert_consistent();
        assert_eq!(ids(&index), expected);
        for id in &expected {
            assert_eq!(&index.get(id).unwrap().plan.id, id);
        }
        assert!(index.get(&DeploymentId::new()).is_none());
    }

    #[test]
    fn the_index_stays_consistent_through_advance_cancel_and_completion() {
        let mut index = Deployments::default();
        let create = deployment(None, 2);
        let scale = deployment(Some(2), 3);
        let other = deployment(None, 1);
        let (create_id, scale_id, other_id) = (
            create.plan.id.clone(),
            scale.plan.id.clone(),
            other.plan.id.clone(),
        );
        index.insert(create);
        index.insert(scale);
        index.insert(other);

        // A step forward keeps the deployment where it was.
        match index.advance(&create_id) {
            Some(Advanced::NextStep {
                finished: 0,
                started: 1,
                deployment,
            }) => assert_eq!(
                deployment.current_action().unwrap().action,
                ActionKind::ScaleApplication
            ),
            other => panic!("{other:?}"),
        }
        index.assert_consistent();
        assert_eq!(
            ids(&index),
            [create_id.clone(), scale_id.clone(), other_id.clone()]
        );

        // Cancelling one in the middle leaves the others in order.
        let cancelled = index.cancel(&scale_id).unwrap();
        assert!(!cancelled.is_running());
        assert!(index.cancel(&scale_id).is_none());
        index.assert_consistent();
        assert_eq!(ids(&index), [create_id.clone(), other_id.clone()]);

        // Its last step done, a deployment leaves.
        match index.advance(&create_id) {
            Some(Advanced::Done {
                finished: 1,
                deployment,
            }) => assert_eq!(deployment.plan.id, create_id),
            other => panic!("{other:?}"),
        }
        index.assert_consistent();
        assert!(index.get(&create_id).is_none());
        assert!(index.advance(&create_id).is_none());
        assert_eq!(ids(&index), std::slice::from_ref(&other_id));

        // Made after removals, a deployment still comes last.
        let later = deployment(None, 1);
        let later_id = later.plan.id.clone();
        index.insert(later);
        index.assert_consistent();
        assert_eq!(ids(&index), [other_id, later_id]);
    }

    #[test]
    fn deployments_made_finished_are_taken_once_in_order_unless_cancelled_first() {
        let mut index = Deployments::default();
        let first = deployment(Some(1), 1);
        let running = deployment(None, 1);
        let second = deployment(Some(2), 2);
        let third = deployment(Some(3), 3);
        let (first_id, running_id, second_id, third_id) = (
            first.plan.id.clone(),
            running.plan.id.clone(),
            second.plan.id.clone(),
            third.plan.id.clone(),
        );
        assert!(!first.is_running() && running.is_running());
        index.insert(first);
        index.insert(running);
        index.insert(second);
        index.insert(third);
        assert!(index.cancel(&second_id).is_some());

        let taken: Vec<DeploymentId> = index
            .take_finished()
            .into_iter()
            .map(|d| d.plan.id)
            .collect();
        assert_eq!(taken, [first_id, third_id]);
        assert!(index.take_finished().is_empty());
        index.assert_consistent();
        assert_eq!(ids(&index), [running_id]);
    }

    #[test]
    fn restart_bounds_are_fixed_the_first_time_they_are_asked_for() {
        let mut index = Deployments::default();
        let d = deployment(None, 1);
        let id = d.plan.id.clone();
        index.insert(d);
        let first = RestartBounds {
            min_healthy: 1,
            max_capacity: 2,
        };
        assert_eq!(index.restart_bounds(&id, || first), Some(first));
        let again = index.restart_bounds(&id, || panic!("computed twice"));
        assert_eq!(again, Some(first));
        assert_eq!(index.restart_bounds(&DeploymentId::new(), || first), None);
    }
}
