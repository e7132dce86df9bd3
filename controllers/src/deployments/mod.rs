//! The deployments reconciler: `/desired/<service>/<name>` and Marathon's owned apps in,
//! created, updated, scaled and deleted apps and `/observed/<service>/<name>/status` out.
//!
//! - [`mapping`]: spec → Marathon app, the spec hash, ownership;
//! - [`drift`]: whether an owned app matches its spec, and how to put it back;
//! - [`status`]: the report written to `/observed/<service>/<name>/status`.

pub mod drift;
pub mod mapping;
pub mod status;
