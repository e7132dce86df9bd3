//! Faults at random moments, and their repair: a controller replica killed with SIGKILL
//! (started again as a new process) or stopped with SIGSTOP (and continued), an etcd member
//! killed (and restarted), localmarathon stopped or crashed (and restarted on its state), and
//! etcd's history compacted. At most one fault per target is outstanding, so two of the three
//! etcd members always run; everything else may be down at once.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use theseus::store::Store;
use theseus_testkit::EtcdCluster;

use super::proxy::RecordingProxy;
use super::stack::{ControllerProcess, ControllerSettings, MarathonProcess, StackError};
use super::terms::{self, LeaderHistory};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A replica killed with SIGKILL.
    KillController,
    /// A replica stopped with SIGSTOP for a while.
    PauseController,
    /// An etcd member killed with SIGKILL.
    KillEtcdMember,
    /// localmarathon stopped with SIGTERM.
    StopMarathon,
    /// localmarathon killed with SIGKILL.
    CrashMarathon,
    /// etcd's history compacted up to the current revision.
    Compaction,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::KillController => "controller kill -9 (restarted)",
            Fault::PauseController => "controller SIGSTOP / SIGCONT",
            Fault::KillEtcdMember => "etcd member kill -9 (restarted)",
            Fault::StopMarathon => "Marathon SIGTERM (restarted)",
            Fault::CrashMarathon => "Marathon kill -9 (restarted)",
            Fault::Compaction => "etcd compaction",
        })
    }
}

/// The repair of an outstanding fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    RestartController(usize),
    ResumeController(usize),
    RestartEtcdMember(usize),
    RestartMarathon,
}

/// Why the chaos could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// A process could not be started again.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The proxy could not give a new replica a listener.
    #[error(transparent)]
    Proxy(#[from] super::proxy::ProxyError),
    /// An etcd member did not come back.
    #[error("etcd member {member} did not come back: {reason}")]
    EtcdMember {
        /// The member's index.
        member: usize,
        /// The panic message of the restart.
        reason: String,
    },
}

/// A replica slot and the process that currently fills it.
struct Replica {
    slot: char,
    incarnations: u32,
    process: Option<ControllerProcess>,
}

/// What the faults did.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// Faults injected, by kind.
    pub injected: BTreeMap<Fault, usize>,
    /// Compactions left out because the leadership watch did not catch up in time.
    pub compactions_skipped: usize,
    /// The longest a replica was stopped.
    pub longest_pause: Duration,
    /// When the last fault was injected.
    pub last_injected: Option<Instant>,
}

/// Every process of the run, and the faults done to them.
pub struct Chaos {
    rng: fastrand::Rng,
    /// The etcd cluster (restarts block, so they run on a blocking thread).
    pub etcd: Arc<Mutex<EtcdCluster>>,
    /// localmarathon.
    pub marathon: MarathonProcess,
    /// The recording proxy in front of it.
    pub proxy: RecordingProxy,
    replicas: Vec<Replica>,
    settings: ControllerSettings,
    store: Store,
    history: Arc<Mutex<LeaderHistory>>,
    pending: Vec<(Instant, Repair)>,
    etcd_down: Option<usize>,
    /// What was done so far.
    pub log: FaultLog,
}

impl Chaos {
    /// Starts `replicas` controller replicas against the proxy; faults come from `seed`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        seed: u64,
        etcd: Arc<Mutex<EtcdCluster>>,
        marathon: MarathonProcess,
        proxy: RecordingProxy,
        settings: ControllerSettings,
        store: Store,
        history: Arc<Mutex<LeaderHistory>>,
        replicas: usize,
    ) -> Result<Chaos, ChaosError> {
        let mut chaos = Chaos {
            rng: fastrand::Rng::with_seed(seed),
            etcd,
            marathon,
            proxy,
            replicas: (0..replicas)
                .map(|i| Replica {
                    slot: char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)),
                    incarnations: 0,
                    process: None,
                })
                .collect(),
            settings,
            store,
            history,
            pending: Vec::new(),
            etcd_down: None,
            log: FaultLog::default(),
        };
        for slot in 0..replicas {
            chaos.start_replica(slot).await?;
        }
        Ok(chaos)
    }

    /// Injects faults at random moments (one every 1 to 5 s) until `until`, repairing each
    /// after a random while.
    pub async fn run(&mut self, until: Instant) -> Result<(), ChaosError> {
        loop {
            let next = Instant::now() + Duration::from_millis(self.rng.u64(1_000..5_000));
            if next >= until {
                self.repair_due(until).await?;
                return Ok(());
            }
            self.repair_due(next).await?;
            self.inject().await?;
        }
    }

    /// Repairs every outstanding fault now; afterwards every process runs.
    pub async fn heal(&mut self) -> Result<(), ChaosError> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|(at, _)| *at);
        for (_, repair) in pending {
            self.repair(repair).await?;
        }
        Ok(())
    }

    /// Every replica's identity, past and present.
    pub fn identities(&self) -> Vec<String> {
        self.replicas
            .iter()
            .flat_map(|r| (1..=r.incarnations).map(move |i| identity(r.slot, i)))
            .collect()
    }

    /// Waits until `deadline`, repairing what falls due meanwhile.
    async fn repair_due(&mut self, deadline: Instant) -> Result<(), ChaosError> {
        loop {
            self.pending.sort_by_key(|(at, _)| *at);
            match self.pending.first() {
                Some(&(at, repair)) if at <= deadline => {
                    tokio::time::sleep_until(at.into()).await;
                    self.pending.remove(0);
                    self.repair(repair).await?;
                }
                _ => {
                    tokio::time::sleep_until(deadline.into()).await;
                    return Ok(());
                }
            }
        }
    }

    fn after(&mut self, range: std::ops::Range<u64>, repair: Repair) {
        let at = Instant::now() + Duration::from_millis(self.rng.u64(range));
        self.pending.push((at, repair));
    }

    /// A replica that runs and is not stopped, the leader two times in three.
    fn running_replica(&mut self) -> Option<usize> {
        let running: Vec<usize> = (0..self.replicas.len())
            .filter(|&i| {
                self.replicas[i]
                    .process
                    .as_ref()
                    .is_some_and(|p| !p.is_paused())
            })
            .collect();
        let leader = self
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .leader()
            .map(str::to_owned);
        let leading = running.iter().copied().find(|&i| {
            self.replicas[i]
                .process
                .as_ref()
                .map(|p| p.identity.as_str())
                == leader.as_deref()
        });
        match leading {
            Some(i) if self.rng.u32(0..3) < 2 => Some(i),
            _ if running.is_empty() => None,
            _ => Some(running[self.rng.usize(..running.len())]),
        }
    }

    async fn inject(&mut self) -> Result<(), ChaosError> {
        // Draw until a fault applies (its target is not already down).
        for _ in 0..10 {
            let fault = match self.rng.u32(0..100) {
                0..22 => Fault::KillController,
                22..44 => Fault::PauseController,
                44..64 => Fault::KillEtcdMember,
                64..74 => Fault::StopMarathon,
                74..84 => Fault::CrashMarathon,
                _ => Fault::Compaction,
            };
            let applied = match fault {
                Fault::KillController => match self.running_replica() {
                    Some(i) => {
                        if let Some(process) = self.replicas[i].process.as_mut() {
                            process.kill();
                        }
                        self.replicas[i].process = None;
                        self.after(0..2_000, Repair::RestartController(i));
                        true
                    }
                    None => false,
                },
                Fault::PauseController => match self.running_replica() {
                    Some(i) => {
                        if let Some(process) = self.replicas[i].process.as_mut() {
                            process.pause();
                        }
                        // From well inside the lease to several times past it.
                        let ttl = u64::try_from(self.settings.lease_ttl.as_millis()).unwrap_or(0);
                        let pause = self.rng.u64(200..200 + 3 * ttl);
                        self.log.longest_pause =
                            self.log.longest_pause.max(Duration::from_millis(pause));
                        self.after(pause..pause + 1, Repair::ResumeController(i));
                        true
                    }
                    None => false,
                },
                Fault::KillEtcdMember => match self.etcd_down {
                    Some(_) => false,
                    None => {
                        let member = self.rng.usize(0..3);
                        self.etcd
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .kill_member(member);
                        self.etcd_down = Some(member);
                        self.after(1_000..4_000, Repair::RestartEtcdMember(member));
                        true
                    }
                },
                Fault::StopMarathon | Fault::CrashMarathon => {
                    if self.marathon.is_running() {
                        self.marathon.stop(fault == Fault::CrashMarathon).await;
                        self.after(1_000..6_000, Repair::RestartMarathon);
                        true
                    } else {
                        false
                    }
                }
                Fault::Compaction => {
                    if !self.compact().await {
                        self.log.compactions_skipped += 1;
                    }
                    true
                }
            };
            if applied {
                *self.log.injected.entry(fault).or_default() += 1;
                self.log.last_injected = Some(Instant::now());
                return Ok(());
            }
        }
        Ok(())
    }

    /// Compacts etcd up to a marker the leadership watch has seen, so that the watch never
    /// needs history the compaction removed (a missed term would blame a legitimate write).
    async fn compact(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        match terms::catch_up(&self.store, &self.history, "compaction", deadline).await {
            Some(revision) => self.store.compact(revision).await.is_ok(),
            None => false,
        }
    }

    async fn repair(&mut self, repair: Repair) -> Result<(), ChaosError> {
        match repair {
            Repair::RestartController(slot) => self.start_replica(slot).await,
            Repair::ResumeController(slot) => {
                if let Some(process) = self.replicas[slot].process.as_mut() {
                    process.resume();
                }
                Ok(())
            }
            Repair::RestartEtcdMember(member) => {
                let etcd = Arc::clone(&self.etcd);
                // The testkit starts etcd from a thread of its own, so a blocking thread may
                // ask for the restart.
                let restarted = tokio::task::spawn_blocking(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        etcd.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .restart_member(member);
                    }))
                })
                .await;
                self.etcd_down = None;
                match restarted {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(panic)) => Err(ChaosError::EtcdMember {
                        member,
                        reason: panic_message(panic),
                    }),
                    Err(error) => Err(ChaosError::EtcdMember {
                        member,
                        reason: error.to_string(),
                    }),
                }
            }
            Repair::RestartMarathon => Ok(self.marathon.launch().await?),
        }
    }

    async fn start_replica(&mut self, slot: usize) -> Result<(), ChaosError> {
        let replica = &mut self.replicas[slot];
        replica.incarnations += 1;
        let identity = identity(replica.slot, replica.incarnations);
        let url = self.proxy.listen(&identity).await?;
        let process = ControllerProcess::start(&self.settings, identity, &url).await?;
        self.replicas[slot].process = Some(process);
        Ok(())
    }
}

fn identity(slot: char, incarnation: u32) -> String {
    format!("chaos-{slot}-{incarnation}")
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "it panicked".to_owned())
}
