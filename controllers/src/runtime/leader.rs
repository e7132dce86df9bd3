//! Leader election through an etcd lease: the lease keeper, the election state machine, and
//! the fencing token of each term.
//!
//! What it promises:
//! - Any number of replicas may run [`run_elections`]; at most one acts at a time. A replica
//!   acts only inside a *term*: after etcd's election named it leader, while its lease lives.
//! - The lease is never 0 (a campaign with lease 0 would create a session nobody renews) and
//!   is kept alive here, every third of its TTL, re-opening the keep-alive stream on a live
//!   member when one breaks. When renewals stop succeeding, the term ends shortly *before*
//!   the lease can expire by the local clock, so this replica has stopped acting before
//!   another can be elected; and every etcd write is fenced on the leader key's create
//!   revision ([`Fence`]) in case a pause outlived the lease anyway.
//! - A term ends at once (the `lead` future is dropped, abandoning whatever it was doing) when
//!   the lease is lost or a fenced write fails; on shutdown the term is asked to stop
//!   (`Term::stop`) and may drain. Either way the lease is then revoked, so the leader key
//!   disappears and another replica takes over without waiting for the TTL; a replica that
//!   was killed is replaced once its lease expires, within about one TTL.
//!
//! The states, and the one function that moves between them ([`Election::step`]):
//! `NoLease → Candidate → Leader → Resigning → NoLease | Stopped`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use theseus::store::Store;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::fence::{Fence, LeaseDeadline};
use super::health::{ReplicaHealth, Role};
use super::metrics::Metrics;

/// Longest a revoke on resignation may take before the lease is left to expire.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before campaigning again after a term or a failure.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// Why a step of taking part in the election failed; the election retries after each.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// No etcd member answered.
    #[error("cannot reach etcd: {0}")]
    Unreachable(#[source] theseus::store::Error),
    /// etcd refused to grant a lease.
    #[error("etcd refused a lease of {ttl_secs} s: {source}")]
    LeaseRefused {
        /// The TTL asked for.
        ttl_secs: i64,
        /// What etcd said.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd granted a lease that cannot protect a term.
    #[error("etcd granted lease {id:x} with TTL {ttl}; refusing to campaign without a live lease")]
    DeadLease {
        /// The lease.
        id: i64,
        /// Its TTL in seconds.
        ttl: i64,
    },
    /// The campaign call failed.
    #[error("the campaign failed: {0}")]
    Campaign(#[source] etcd_client::Error),
    /// etcd answered the campaign without naming the leader key.
    #[error("etcd answered the campaign without a leader key")]
    NoLeaderKey,
    /// The leader key etcd named is not UTF-8.
    #[error("the leader key etcd named is not UTF-8")]
    LeaderKeyNotUtf8,
    /// The lease could not be revoked (it will expire instead).
    #[error("cannot revoke lease {id:x}: {source}")]
    Revoke {
        /// The lease.
        id: i64,
        /// What etcd said.
        #[source]
        source: etcd_client::Error,
    },
    /// A keep-alive stream for the lease could not be opened.
    #[error("cannot open a keep-alive stream for lease {id:x}: {source}")]
    KeepAlive {
        /// The lease.
        id: i64,
        /// What etcd said.
        #[source]
        source: etcd_client::Error,
    },
}

impl ElectionError {
    /// The label of `theseus_controller_election_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ElectionError::Unreachable(_) => "etcd_unreachable",
            ElectionError::LeaseRefused { .. } => "lease_refused",
            ElectionError::DeadLease { .. } => "dead_lease",
            ElectionError::Campaign(_) => "campaign",
            ElectionError::NoLeaderKey | ElectionError::LeaderKeyNotUtf8 => "leader_key",
            ElectionError::KeepAlive { .. } => "keep_alive",
            ElectionError::Revoke { .. } => "revoke",
        }
    }
}

/// What the election needs to know.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// The election's name (a key prefix), e.g. `/theseus/leader/controller`.
    pub name: String,
    /// This replica's identity, stored as the leader key's value (for people and logs).
    pub identity: String,
    /// The lease TTL; the longest a dead leader keeps the others waiting.
    pub lease_ttl: Duration,
}

/// One term of leadership, handed to the `lead` function.
#[derive(Debug, Clone)]
pub struct Term {
    /// The fencing token; every write of the term goes through it.
    pub fence: Fence,
    /// Cancelled when the replica shuts down: stop taking work and drain.
    pub stop: CancellationToken,
}

/// Why a term ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// The lease could not be renewed in time, or etcd said it expired.
    LeaseLost,
    /// A fenced write found another leader key.
    FenceFailed,
    /// The term's work ended by itself (an error it could not recover from).
    Ended,
    /// The replica is shutting down.
    Shutdown,
}

impl Loss {
    fn label(self) -> &'static str {
        match self {
            Loss::LeaseLost => "lease_lost",
            Loss::FenceFailed => "fence_failed",
            Loss::Ended => "error",
            Loss::Shutdown => "shutdown",
        }
    }
}

/// A granted lease and the task keeping it alive (aborted with the lease).
struct Lease {
    id: i64,
    ttl: Duration,
    deadline: Arc<LeaseDeadline>,
    /// Cancelled by the keeper when the lease cannot be renewed in time.
    lost: CancellationToken,
    keeper: JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lease({:x}, ttl {:?})", self.id, self.ttl)
    }
}

/// Where the election stands.
#[derive(Debug)]
enum ElectionState {
    /// No lease: grant one.
    NoLease,
    /// Holding a lease: campaign with it.
    Candidate(Lease),
    /// Elected: act through the fence until the term ends.
    Leader(Lease, Fence),
    /// Give the lease up (revoke it), then campaign again or stop.
    Resigning(Lease, Loss),
    /// Done.
    Stopped,
}

/// Runs elections until `stop` is cancelled, calling `lead` for every term this replica wins;
/// see the module documentation.
pub async fn run_elections<F, Fut>(
    store: Store,
    config: ElectionConfig,
    health: Arc<ReplicaHealth>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    lead: F,
) where
    F: FnMut(Term) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut election = Election {
        store,
        config,
        health,
        metrics,
        stop,
        lead,
    };
    let mut state = ElectionState::NoLease;
    loop {
        state = election.step(state).await;
        if matches!(state, ElectionState::Stopped) {
            return;
        }
    }
}

struct Election<F> {
    store: Store,
    config: ElectionConfig,
    health: Arc<ReplicaHealth>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    lead: F,
}

impl<F, Fut> Election<F>
where
    F: FnMut(Term) -> Fut,
    Fut: Future<Output = ()>,
{
    /// The one transition function.
    async fn step(&mut self, state: ElectionState) -> ElectionState {
        match state {
            // Shutdown before a lease exists: nothing to give up.
            ElectionState::NoLease if self.stop.is_cancelled() => ElectionState::Stopped,
            ElectionState::NoLease => match self.grant().await {
                Ok(lease) => {
                    self.health.set(Role::Standby);
                    ElectionState::Candidate(lease)
                }
                Err(error) => {
                    warn!(%error, "cannot take part in the leader election; retrying");
                    self.metrics.election_failed(error.metric_label());
                    self.health.set(Role::Degraded {
                        reason: error.to_string(),
                    });
                    self.pause().await;
                    ElectionState::NoLease
                }
            },
            ElectionState::Candidate(lease) => self.campaign(lease).await,
            ElectionState::Leader(lease, fence) => {
                let loss = self.lead_term(&lease, fence).await;
                self.metrics.not_leading(loss.label());
                ElectionState::Resigning(lease, loss)
            }
            ElectionState::Resigning(lease, loss) => {
                self.revoke(&lease).await;
                drop(lease);
                if loss == Loss::Shutdown || self.stop.is_cancelled() {
                    self.health.set(Role::Stopping);
                    ElectionState::Stopped
                } else {
                    self.health.set(Role::Standby);
                    self.pause().await;
                    ElectionState::NoLease
                }
            }
            ElectionState::Stopped => ElectionState::Stopped,
        }
    }

    async fn pause(&self) {
        tokio::select! {
            () = self.stop.cancelled() => {}
            () = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }

    /// Grants a lease of the configured TTL and starts keeping it alive.
    async fn grant(&self) -> Result<Lease, ElectionError> {
        let ttl_secs = i64::try_from(self.config.lease_ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut client = self
            .store
            .live_client()
            .await
            .map_err(ElectionError::Unreachable)?;
        let sent = Instant::now();
        let granted = client
            .lease_grant(ttl_secs, None)
            .await
            .map_err(|source| ElectionError::LeaseRefused { ttl_secs, source })?;
        if granted.id() == 0 || granted.ttl() <= 0 {
            return Err(ElectionError::DeadLease {
                id: granted.id(),
                ttl: granted.ttl(),
            });
        }
        let ttl = Duration::from_secs(granted.ttl().unsigned_abs());
        let deadline = Arc::new(LeaseDeadline::new(sent + ttl));
        let lost = CancellationToken::new();
        let keeper = tokio::spawn(keep_alive(
            self.store.clone(),
            granted.id(),
            ttl,
            Arc::clone(&deadline),
            lost.clone(),
        ));
        debug!(lease = format!("{:x}", granted.id()), ?ttl, "lease granted");
        Ok(Lease {
            id: granted.id(),
            ttl,
            deadline,
            lost,
            keeper,
        })
    }

    /// Campaigns until elected, the lease is lost, or shutdown.
    async fn campaign(&self, lease: Lease) -> ElectionState {
        let mut client = match self.store.live_client().await {
            Ok(client) => client,
            Err(error) => {
                let error = ElectionError::Unreachable(error);
                warn!(%error, "cannot campaign");
                self.metrics.election_failed(error.metric_label());
                self.pause().await;
                return ElectionState::Resigning(lease, Loss::Ended);
            }
        };
        let name = self.config.name.clone();
        let identity = self.config.identity.clone();
        let campaign = client.campaign(name, identity, lease.id);
        let won = tokio::select! {
            () = self.stop.cancelled() => return ElectionState::Resigning(lease, Loss::Shutdown),
            () = lease.lost.cancelled() => return ElectionState::Resigning(lease, Loss::LeaseLost),
            won = campaign => won,
        };
        let elected = won.map_err(ElectionError::Campaign).and_then(|response| {
            let leader = response
                .leader()
                .cloned()
                .ok_or(ElectionError::NoLeaderKey)?;
            let key = leader
                .key_str()
                .map(str::to_owned)
                .map_err(|_| ElectionError::LeaderKeyNotUtf8)?;
            Ok((leader, key))
        });
        let (leader, key) = match elected {
            Ok(elected) => elected,
            Err(error) => {
                warn!(%error, "campaigning again with a new lease");
                self.metrics.election_failed(error.metric_label());
                self.pause().await;
                return ElectionState::Resigning(lease, Loss::Ended);
            }
        };
        let fence = Fence::new(
            &key,
            leader.rev(),
            Arc::clone(&lease.deadline),
            safety_margin(lease.ttl),
            lease.lost.child_token(),
        );
        info!(
            leader_key = key,
            token = leader.rev(),
            identity = self.config.identity,
            "elected leader"
        );
        self.metrics.leading();
        self.health.set(Role::Leader { synced: false });
        ElectionState::Leader(lease, fence)
    }

    /// Runs one term; returns why it ended.
    async fn lead_term(&mut self, lease: &Lease, fence: Fence) -> Loss {
        let term_stop = self.stop.child_token();
        let lost = fence.lost().clone();
        let work = (self.lead)(Term {
            fence,
            stop: term_stop.clone(),
        });
        tokio::pin!(work);
        // Biased, stop first: a shutdown also cancels the term's own stop token, so the work
        // may end in the same instant; that end is the shutdown's doing, not the term's.
        let loss = tokio::select! {
            biased;
            () = self.stop.cancelled() => {
                // Let the term drain, unless leadership goes meanwhile.
                self.health.set(Role::Stopping);
                tokio::select! {
                    () = &mut work => Loss::Shutdown,
                    () = lost.cancelled() => Loss::from_lease(lease),
                }
            }
            () = lost.cancelled() => Loss::from_lease(lease),
            () = &mut work => {
                if self.stop.is_cancelled() {
                    Loss::Shutdown
                } else {
                    Loss::Ended
                }
            }
        };
        // Whatever ended the term, nothing of it may act any more.
        lost.cancel();
        term_stop.cancel();
        match loss {
            Loss::LeaseLost | Loss::FenceFailed => {
                warn!(reason = loss.label(), "leadership lost; stopped acting")
            }
            Loss::Ended => warn!("the term ended by itself; campaigning again"),
            Loss::Shutdown => info!("stepped down for shutdown"),
        }
        loss
    }

    /// Revokes the lease so its keys (the leader key) go at once; on failure the lease simply
    /// expires.
    async fn revoke(&self, lease: &Lease) {
        lease.keeper.abort();
        let revoke = async {
            let mut client: Client = self
                .store
                .live_client()
                .await
                .map_err(ElectionError::Unreachable)?;
            client
                .lease_revoke(lease.id)
                .await
                .map_err(|source| ElectionError::Revoke {
                    id: lease.id,
                    source,
                })
        };
        match tokio::time::timeout(REVOKE_TIMEOUT, revoke).await {
            Ok(Ok(_)) => debug!(lease = format!("{:x}", lease.id), "lease revoked"),
            Ok(Err(error)) => debug!(%error, "cannot revoke the lease; it will expire"),
            Err(_) => debug!("revoking the lease timed out; it will expire"),
        }
    }
}

impl Loss {
    /// A fence's term ended: because the lease went, or because a fenced write failed.
    fn from_lease(lease: &Lease) -> Loss {
        if lease.lost.is_cancelled() {
            Loss::LeaseLost
        } else {
            Loss::FenceFailed
        }
    }
}

/// How long before the lease's deadline the term stops acting: a fifth of the TTL, at most
/// two seconds, to absorb scheduling delays between checking and acting.
fn safety_margin(ttl: Duration) -> Duration {
    (ttl / 5).min(Duration::from_secs(2))
}

/// Keeps lease `id` alive every third of its TTL until aborted; cancels `lost` when a
/// renewal cannot succeed before the deadline (by the local clock, minus the safety margin)
/// or etcd says the lease is gone.
async fn keep_alive(
    store: Store,
    id: i64,
    ttl: Duration,
    deadline: Arc<LeaseDeadline>,
    lost: CancellationToken,
) {
    let interval = ttl / 3;
    let margin = safety_margin(ttl);
    let expired = |deadline: &LeaseDeadline| deadline.get() - margin;
    loop {
        // (Re)open a keep-alive stream on a member that answers.
        let opened = tokio::select! {
            () = tokio::time::sleep_until(expired(&deadline)) => {
                warn!(lease = format!("{id:x}"), "cannot reach etcd to renew the lease in time");
                lost.cancel();
                return;
            }
            opened = open_keep_alive(&store, id) => opened,
        };
        let (mut keeper, mut responses) = match opened {
            Ok(pair) => pair,
            Err(error) => {
                debug!(%error, "cannot open a lease keep-alive stream; retrying");
                tokio::time::sleep(Duration::from_millis(50).min(interval)).await;
                continue;
            }
        };
        loop {
            let sent = Instant::now();
            let renewed = tokio::select! {
                () = tokio::time::sleep_until(expired(&deadline)) => {
                    warn!(lease = format!("{id:x}"), "the lease was not renewed in time");
                    lost.cancel();
                    return;
                }
                renewed = async {
                    keeper.keep_alive().await?;
                    responses.message().await
                } => renewed,
            };
            match renewed {
                Ok(Some(response)) if response.ttl() > 0 => {
                    deadline.extend(sent + Duration::from_secs(response.ttl().unsigned_abs()));
                }
                Ok(Some(_)) => {
                    warn!(lease = format!("{id:x}"), "etcd says the lease expired");
                    lost.cancel();
                    return;
                }
                Ok(None) | Err(_) => {
                    debug!("the lease keep-alive stream broke; reopening");
                    break;
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

async fn open_keep_alive(
    store: &Store,
    id: i64,
) -> Result<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream), ElectionError> {
    let mut client = store
        .live_client()
        .await
        .map_err(ElectionError::Unreachable)?;
    client
        .lease_keep_alive(id)
        .await
        .map_err(|source| ElectionError::KeepAlive { id, source })
}
