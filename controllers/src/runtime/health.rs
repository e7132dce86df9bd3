//! What this replica is doing, as `/healthz` and `/readyz` report it.
//!
//! What it promises: [`ReplicaHealth::readiness`] is ready for a standby replica that takes part in
//! the election (it can take over), and for a leader once its caches are synced (the reflector
//! listed `/desired`, the Marathon snapshot listed the apps, statuses are loaded). It is not
//! ready while starting, while a new leader syncs, after the election failed, or while
//! stopping. Liveness is not tracked here: `/healthz` answering at all means the runtime runs.

use std::fmt;
use std::sync::Mutex;

/// Where the replica stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Connecting to etcd, not yet campaigning.
    Starting,
    /// Campaigning; another replica leads (or none does yet).
    Standby,
    /// Leading; `synced` once the caches are filled and reconciles run.
    Leader {
        /// Whether the caches are synced.
        synced: bool,
    },
    /// The election cannot proceed (etcd unreachable); retrying.
    Degraded {
        /// Why, for `/readyz`.
        reason: String,
    },
    /// Shutting down.
    Stopping,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Starting => f.write_str("starting"),
            Role::Standby => f.write_str("standby"),
            Role::Leader { synced: true } => f.write_str("leader"),
            Role::Leader { synced: false } => f.write_str("leader, syncing caches"),
            Role::Degraded { reason } => write!(f, "degraded: {reason}"),
            Role::Stopping => f.write_str("stopping"),
        }
    }
}

/// Whether the replica is ready, with its role either way: what `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready (a standby, a synced leader).
    Ready(Role),
    /// Not ready, in this role.
    NotReady(Role),
}

/// The replica's role, shared by the election loop (writer) and the HTTP endpoints (readers).
#[derive(Debug)]
pub struct ReplicaHealth {
    role: Mutex<Role>,
}

impl Default for ReplicaHealth {
    fn default() -> Self {
        Self {
            role: Mutex::new(Role::Starting),
        }
    }
}

impl ReplicaHealth {
    /// Records the replica's role.
    pub fn set(&self, role: Role) {
        *self.role.lock().unwrap_or_else(|p| p.into_inner()) = role;
    }

    /// The replica's role.
    pub fn role(&self) -> Role {
        self.role.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the replica is ready, with the role either way.
    pub fn readiness(&self) -> Readiness {
        let role = self.role();
        match role {
            Role::Standby | Role::Leader { synced: true } => Readiness::Ready(role),
            _ => Readiness::NotReady(role),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_and_a_synced_leader_are_ready_nothing_else_is() {
        let health = ReplicaHealth::default();
        // What `/readyz` says: whether ready, and the role as text.
        let said = |readiness: Readiness| match readiness {
            Readiness::Ready(role) => Ok(role.to_string()),
            Readiness::NotReady(role) => Err(role.to_string()),
        };
        assert!(said(health.readiness()).is_err());
        health.set(Role::Standby);
        assert_eq!(said(health.readiness()), Ok("standby".into()));
        health.set(Role::Leader { synced: false });
        assert!(said(health.readiness()).is_err());
        health.set(Role::Leader { synced: true });
        assert_eq!(said(health.readiness()), Ok("leader".into()));
        health.set(Role::Degraded {
            reason: "etcd unreachable".into(),
        });
        assert_eq!(
            said(health.readiness()),
            Err("degraded: etcd unreachable".into())
        );
        health.set(Role::Stopping);
        assert!(said(health.readiness()).is_err());
    }
}
