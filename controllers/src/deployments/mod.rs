//! The deployments reconciler: `/desired/<service>/<name>` and Marathon's owned apps in,
//! created, updated, scaled and deleted apps and `/observed/<service>/<name>/status` out.
//!
//! - [`status`]: the report written to `/observed/<service>/<name>/status`;
//! - [`progress`]: a revision's progress deadline, kept in its status;
//! - [`statuses`]: the statuses written, and the only way they are written;
//! - [`started`]: which Marathon deployments this term started, for overriding locks;
//! - [`crash_loop`]: a revision whose tasks keep failing, counted in its status;
//! - [`waiting`]: why a revision being deployed waits (resources, health checks), in the
//!   spec's words;
//! - [`launch_queue`]: Marathon's launch queue, read only for waiting deployments, shared;
//! - [`history`]: the revision history as pure steps, and where a failed revision goes back to;
//! - [`journal`]: the decisions of one reconcile, for the deployment's journal;
//! - [`lists`]: the history and journal as etcd holds them, and the only way they are written;
//! - [`records`]: what one reconcile writes under `/observed`, in one transaction;
//! - [`reconcile`]: one key against Marathon.

pub mod crash_loop;
pub mod history;
pub mod journal;
pub mod launch_queue;
pub mod lists;
pub mod progress;
pub mod reconcile;
pub mod records;
pub mod started;
pub mod status;
pub mod statuses;
pub mod waiting;
