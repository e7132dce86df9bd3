//! The controller runtime: what every reconciler runs on.
//!
//! - [`queue`]: the work queue (coalescing, one reconcile per key, per-key backoff, resync);
//! - [`runner`]: bounded workers draining the queue, with an error policy;
//! - [`metrics`]: the Prometheus registry and the `metric_label()` vocabulary;
//! - [`reflector`]: a local copy of an etcd prefix, kept by the store's resumable watch;
//! - [`leader`]: leader election over an etcd lease, and the lease keeper;
//! - [`fence`]: the fencing token every write goes through;
//! - [`health`]: the replica's role, as `/healthz` and `/readyz` report it;
//! - [`trigger`]: a source's stream of changes turned into keys of a work queue.

pub mod fence;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod reflector;
pub mod runner;
pub mod trigger;
pub mod write_batch;
