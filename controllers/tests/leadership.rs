//! Leader election and fencing against a real etcd: one replica acts at a time, a replica
//! whose lease goes stops at once, and a deposed term's writes change nothing.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{etcdctl, store, wait_until};
use theseus::store::Store;
use theseus_controllers::runtime::fence::{Fence, FenceError, FencedStore, LeaseDeadline};
use theseus_controllers::runtime::health::{ReplicaHealth, Role};
use theseus_controllers::runtime::leader::{ElectionConfig, Term, run_elections};
use theseus_controllers::runtime::metrics::Metrics;
use theseus_testkit::EtcdServer;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Who leads, as the replicas' terms record it.
#[derive(Default)]
struct Terms {
    /// Terms running now.
    now: AtomicUsize,
    /// The most that ever ran at once.
    most: AtomicUsize,
    /// Every term won, in order: (replica, term).
    won: Mutex<Vec<(usize, Term)>>,
}

/// Decrements `Terms::now` however the term ends, also when it is dropped.
struct Running(Arc<Terms>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Replica {
    stop: CancellationToken,
    health: Arc<ReplicaHealth>,
    task: JoinHandle<()>,
}

fn replica(store: &Store, index: usize, terms: &Arc<Terms>) -> Replica {
    let stop = CancellationToken::new();
    let health = Arc::new(ReplicaHealth::default());
    let config = ElectionConfig {
        name: "/theseus/leader/test".into(),
        identity: format!("replica-{index}"),
        lease_ttl: Duration::from_secs(1),
    };
    let terms = Arc::clone(terms);
    let task = tokio::spawn(run_elections(
        store.clone(),
        config,
        Arc::clone(&health),
        Arc::new(Metrics::new()),
        stop.clone(),
        move |term: Term| {
            let terms = Arc::clone(&terms);
            async move {
                let now = terms.now.fetch_add(1, Ordering::SeqCst) + 1;
                terms.most.fetch_max(now, Ordering::SeqCst);
                let _running = Running(Arc::clone(&terms));
                terms.won.lock().unwrap().push((index, term.clone()));
                // Act until asked to stop (or dropped when leadership goes).
                term.stop.cancelled().await;
            }
        },
    ));
    Replica { stop, health, task }
}

fn leader(terms: &Terms) -> Option<(usize, Term)> {
    terms.won.lock().unwrap().last().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_of_three_leads_and_another_takes_over_when_it_steps_down() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let terms = Arc::new(Terms::default());
    let replicas: Vec<Replica> = (0..3).map(|i| replica(&store, i, &terms)).collect();

    wait_until("a replica leads", || async {
        terms.now.load(Ordering::SeqCst) == 1
    })
    .await;
    let (first, _) = leader(&terms).unwrap();
    wait_until("the leader reports its role", || async {
        matches!(replicas[first].health.role(), Role::Leader { .. })
    })
    .await;
    for (i, replica) in replicas.iter().enumerate() {
        if i != first {
            assert_eq!(replica.health.role(), Role::Standby, "replica {i}");
        }
    }

    let stepping_down = Instant::now();
    replicas[first].stop.cancel();
    wait_until("another replica leads", || async {
        leader(&terms).is_some_and(|(i, _)| i != first) && terms.now.load(Ordering::SeqCst) == 1
    })
    .await;
    // Resigning revokes the lease: the next leader does not wait out the TTL. (Logged, not
    // asserted: timings belong in the benchmark.)
    eprintln!(
        "takeover after a clean step-down: {:?}",
        stepping_down.elapsed()
    );

    assert_eq!(
        terms.most.load(Ordering::SeqCst),
        1,
        "two replicas led at once"
    );
    let tokens: Vec<i64> = terms
        .won
        .lock()
        .unwrap()
        .iter()
        .map(|(_, term)| term.fence.token())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens grow: {tokens:?}"
    );
    for replica in &replicas {
        replica.stop.cancel();
    }
    for replica in replicas {
        replica.task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_lease_is_revoked_stops_acting_at_once_and_campaigns_again() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let terms = Arc::new(Terms::default());
    let replica = replica(&store, 0, &terms);
    wait_until("the replica leads", || async {
        terms.now.load(Ordering::SeqCst) == 1
    })
    .await;
    let (_, first_term) = leader(&terms).unwrap();

    // Revoke every lease behind the replica's back, as an expiry would.
    let leases = etcdctl(&etcd, &["lease", "list"]);
    for lease in leases
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
    {
        etcdctl(&etcd, &["lease", "revoke", lease]);
    }

    wait_until("the term ends", || async {
        first_term.fence.lost().is_cancelled()
    })
    .await;
    wait_until("the replica leads again in a new term", || async {
        terms.won.lock().unwrap().len() == 2 && terms.now.load(Ordering::SeqCst) == 1
    })
    .await;
    let (_, second_term) = leader(&terms).unwrap();
    assert!(second_term.fence.token() > first_term.fence.token());

    // The first term may not write any more, neither by its own account nor by etcd's.
    let fenced = FencedStore::new(
        store.clone(),
        first_term.fence.clone(),
        Arc::new(Metrics::new()),
    );
    assert!(matches!(
        fenced.put_json("/observed/a/b/status", &"late").await,
        Err(FenceError::LeadershipLost { .. })
    ));
    replica.stop.cancel();
    replica.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fenced_on_a_deposed_term_changes_nothing_and_ends_the_term() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let terms = Arc::new(Terms::default());
    let replica = replica(&store, 0, &terms);
    wait_until("the replica leads", || async {
        terms.now.load(Ordering::SeqCst) == 1
    })
    .await;
    let (_, term) = leader(&terms).unwrap();

    let metrics = Arc::new(Metrics::new());
    let current = FencedStore::new(store.clone(), term.fence.clone(), Arc::clone(&metrics));
    current
        .put_json("/observed/a/b/status", &"current")
        .await
        .unwrap();

    // A fence whose own clock and token say "leading", but whose token is not the leader
    // key's create revision any more: only etcd can tell.
    let lost = CancellationToken::new();
    let deposed = Fence::new(
        term.fence.leader_key(),
        term.fence.token() - 1,
        Arc::new(LeaseDeadline::new(Instant::now() + Duration::from_secs(60))),
        Duration::ZERO,
        lost.clone(),
    );
    let stale = FencedStore::new(store.clone(), deposed, Arc::clone(&metrics));
    let error = stale
        .put_json("/observed/a/b/status", &"stale")
        .await
        .unwrap_err();
    assert!(
        matches!(error, FenceError::LeadershipLost { .. }),
        "{error}"
    );
    assert!(lost.is_cancelled(), "a failed fence ends its term");
    let value = store.get("/observed/a/b/status").await.unwrap().unwrap();
    assert_eq!(value.value, b"\"current\"");
    assert!(
        metrics
            .encode()
            .contains("etcd_requests_total{operation=\"put\",result=\"fence_failed\"} 1")
    );
    replica.stop.cancel();
    replica.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_reach_etcd_stops_before_its_lease_can_expire() {
    let mut etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    let terms = Arc::new(Terms::default());
    let replica = replica(&store, 0, &terms);
    wait_until("the replica leads", || async {
        terms.now.load(Ordering::SeqCst) == 1
    })
    .await;
    let (_, term) = leader(&terms).unwrap();

    etcd.kill();
    wait_until("the term ends without etcd", || async {
        term.fence.lost().is_cancelled() && terms.now.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(term.fence.check("/x").is_err());

    etcd.restart();
    wait_until("the replica leads again once etcd is back", || async {
        terms.won.lock().unwrap().len() == 2 && terms.now.load(Ordering::SeqCst) == 1
    })
    .await;
    replica.stop.cancel();
    replica.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_right_after_a_term_began_is_recorded_as_a_shutdown() {
    let etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    // A term that ends as soon as it is asked to, as a term still building its caches does:
    // its end and the shutdown's signal arrive together, and the shutdown must win every time.
    for attempt in 0..8 {
        let stop = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let terms = Arc::new(Terms::default());
        let task = tokio::spawn(run_elections(
            store.clone(),
            ElectionConfig {
                name: "/theseus/leader/shutdown".into(),
                identity: format!("attempt-{attempt}"),
                lease_ttl: Duration::from_secs(1),
            },
            Arc::new(ReplicaHealth::default()),
            Arc::clone(&metrics),
            stop.clone(),
            {
                let terms = Arc::clone(&terms);
                move |term: Term| {
                    let terms = Arc::clone(&terms);
                    async move {
                        terms.now.fetch_add(1, Ordering::SeqCst);
                        term.stop.cancelled().await;
                    }
                }
            },
        ));
        wait_until("the replica leads", || async {
            terms.now.load(Ordering::SeqCst) == 1
        })
        .await;
        stop.cancel();
        task.await.unwrap();
        let text = metrics.encode();
        assert!(
            text.contains("leadership_losses_total{reason=\"shutdown\"} 1"),
            "attempt {attempt}: the term's end was not recorded as a shutdown:\n{text}"
        );
        assert!(
            !text.contains("leadership_losses_total{reason=\"error\"}"),
            "attempt {attempt}: a shutdown was recorded as the term ending by itself:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_reach_etcd_says_so_and_counts_the_failure_by_reason() {
    let mut etcd = EtcdServer::start();
    let store = store(&etcd, "").await;
    etcd.kill();
    let health = Arc::new(ReplicaHealth::default());
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();
    let config = ElectionConfig {
        name: "/theseus/leader/test".into(),
        identity: "replica-0".into(),
        lease_ttl: Duration::from_secs(1),
    };
    let task = tokio::spawn(run_elections(
        store.clone(),
        config,
        Arc::clone(&health),
        Arc::clone(&metrics),
        stop.clone(),
        |term: Term| async move { term.stop.cancelled().await },
    ));
    wait_until("the replica is degraded, naming etcd", || async {
        matches!(health.role(), Role::Degraded { reason } if reason.contains("cannot reach etcd"))
    })
    .await;
    let encoded = metrics.encode();
    assert!(
        encoded.contains("theseus_controller_election_failures_total{reason=\"etcd_unreachable\"}"),
        "{encoded}"
    );
    stop.cancel();
    task.await.unwrap();
}
