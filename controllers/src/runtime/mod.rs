//! The controller runtime: what every reconciler runs on.
//!
//! - [`queue`]: the work queue (coalescing, one reconcile per key, per-key backoff, resync);
//! - [`runner`]: bounded workers draining the queue, with an error policy;
//! - [`metrics`]: the Prometheus registry and the `metric_label()` vocabulary;
//! - [`health`]: the replica's role, as `/healthz` and `/readyz` report it.

pub mod health;
pub mod metrics;
pub mod queue;
pub mod runner;
