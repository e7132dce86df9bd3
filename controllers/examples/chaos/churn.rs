//! Random churn under `/desired`, the way people change deployments: create, update, scale,
//! delete, invalid specs (which must leave a running app alone), and large specs of about
//! 10 kB. The seed fixes the sequence of operations; their timing against the faults is up
//! to the processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use theseus::api::DeploymentKey;
use theseus::api::parse_spec;
use theseus::mapping::Mapping;
use theseus::store::Store;
use tokio_util::sync::CancellationToken;

/// A kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// A new key with a valid spec.
    Create,
    /// Another valid spec (a new command or environment) at an existing key.
    Update,
    /// The same spec with other `instances`.
    Scale,
    /// The key deleted.
    Delete,
    /// A spec the controller must refuse, at a new or existing key.
    Invalid,
    /// A valid spec of about 10 kB (a large environment).
    Large,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Scale => "scale",
            Operation::Delete => "delete",
            Operation::Invalid => "invalid spec",
            Operation::Large => "large spec (~10 kB)",
        })
    }
}

/// What the churn did, and what the checks need to know about its past.
#[derive(Debug, Default)]
pub struct ChurnLog {
    /// Operations sent, by kind (whether etcd acknowledged them or not).
    pub operations: BTreeMap<Operation, usize>,
    /// Writes etcd did not acknowledge (they may or may not have happened).
    pub unacknowledged: usize,
    /// For every key, the spec hash of every valid spec ever written there: an app kept
    /// under an invalid spec must carry one of them.
    pub valid_hashes: BTreeMap<DeploymentKey, BTreeSet<String>>,
}

/// The churn's view of one key.
#[derive(Debug, Clone)]
struct KeyState {
    /// The last valid spec written, while the key exists with a valid spec.
    valid: Option<Value>,
    exists: bool,
}

/// Drives churn over `keys` until `stop`, one change every 50 to 400 ms.
pub struct Churn {
    rng: fastrand::Rng,
    store: Store,
    mapping: Mapping,
    keys: Vec<DeploymentKey>,
    states: Vec<KeyState>,
    generation: u64,
    log: ChurnLog,
}

impl Churn {
    /// A churn over `services` × `names` keys, seeded by `seed`.
    pub fn new(seed: u64, store: Store, mapping: Mapping, services: usize, names: usize) -> Churn {
        let keys: Vec<DeploymentKey> = (0..services)
            .flat_map(|s| (0..names).map(move |n| format!("svc{s}/d{n}")))
            .map(|text| text.parse().expect("svcN/dN is a deployment key"))
            .collect();
        let states = vec![
            KeyState {
                valid: None,
                exists: false,
            };
            keys.len()
        ];
        Churn {
            rng: fastrand::Rng::with_seed(seed),
            store,
            mapping,
            keys,
            states,
            generation: 0,
            log: ChurnLog::default(),
        }
    }

    /// Runs until `stop` is cancelled; returns what it did.
    pub async fn run(mut self, stop: CancellationToken) -> ChurnLog {
        loop {
            let pause = Duration::from_millis(self.rng.u64(50..400));
            tokio::select! {
                () = stop.cancelled() => return self.log,
                () = tokio::time::sleep(pause) => {}
            }
            self.step().await;
        }
    }

    /// One random change.
    async fn step(&mut self) {
        let index = self.rng.usize(..self.keys.len());
        let state = self.states[index].clone();
        let roll = self.rng.u32(0..100);
        let operation = match (state.exists, state.valid.is_some()) {
            (false, _) => match roll {
                0..80 => Operation::Create,
                80..90 => Operation::Large,
                _ => Operation::Invalid,
            },
            (true, valid) => match roll {
                0..25 => Operation::Update,
                25..55 if valid => Operation::Scale,
                25..55 => Operation::Update,
                55..75 => Operation::Delete,
                75..87 => Operation::Invalid,
                _ => Operation::Large,
            },
        };
        *self.log.operations.entry(operation).or_default() += 1;
        let key = self.keys[index].clone();
        let path = self.store.layout().desired(&key);
        let written = match operation {
            Operation::Delete => {
                self.states[index] = KeyState {
                    valid: None,
                    exists: false,
                };
                self.store.delete(&path).await.map(|_| ())
            }
            _ => {
                let text = match operation {
                    Operation::Create | Operation::Update => self.valid_spec(false).to_string(),
                    Operation::Large => self.valid_spec(true).to_string(),
                    Operation::Scale => {
                        let mut spec = state
                            .valid
                            .clone()
                            .unwrap_or_else(|| self.valid_spec(false));
                        spec["instances"] = json!(self.instances());
                        spec.to_string()
                    }
                    _ => self.invalid_spec(),
                };
                // Judged by the same validation the controller applies, not by intent.
                let valid = self.remember(&key, &text);
                self.states[index] = KeyState {
                    valid,
                    exists: true,
                };
                self.store.put(&path, text).await.map(|_| ())
            }
        };
        if written.is_err() {
            self.log.unacknowledged += 1;
        }
    }

    /// Records the hash of `text` if it is a valid spec; returns it parsed as JSON.
    fn remember(&mut self, key: &DeploymentKey, text: &str) -> Option<Value> {
        let spec = parse_spec(text.as_bytes()).ok()?;
        let hash = self.mapping.desired_app(key, &spec).hash.to_string();
        self.log
            .valid_hashes
            .entry(key.clone())
            .or_default()
            .insert(hash);
        serde_json::from_str(text).ok()
    }

    fn instances(&mut self) -> u32 {
        self.rng.u32(0..=3)
    }

    /// A valid spec, new in its command (so in its hash); with `large`, with an environment
    /// of about 10 kB.
    fn valid_spec(&mut self, large: bool) -> Value {
        self.generation += 1;
        let mut spec = json!({
            "cmd": format!("serve --generation {}", self.generation),
            "instances": self.instances(),
            "cpus": 0.1,
            "mem": 32,
        });
        if self.rng.bool() {
            spec["ports"] = json!({"http": 8080, "admin": 9090});
        }
        if self.rng.bool() {
            spec["labels"] = json!(["chaos", format!("g{}", self.generation % 7)]);
        }
        if large {
            let environment: BTreeMap<String, String> = (0..40)
                .map(|i| {
                    let value: String = (0..240).map(|_| self.rng.alphanumeric()).collect();
                    (format!("LARGE_{i:02}"), value)
                })
                .collect();
            spec["environment"] = json!(environment);
        } else {
            spec["environment"] = json!({"GENERATION": self.generation});
        }
        spec
    }

    /// Text the controller must refuse as a spec.
    fn invalid_spec(&mut self) -> String {
        match self.rng.u32(0..5) {
            0 => json!({"cmd": "serve", "instnaces": 2}).to_string(),
            1 => json!({"cmd": "serve", "instances": -1}).to_string(),
            2 => json!({"cmd": "serve", "cpus": 0}).to_string(),
            3 => json!({"instances": 1, "mem": 32}).to_string(),
            _ => r#"{"cmd": "serve", "instances": "#.to_owned(),
        }
    }
}
