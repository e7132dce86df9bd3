//! The contract between a Deployment spec and the Marathon app that runs it, shared by the
//! controller (which writes apps) and `theseus diff` (which says what the controller would
//! write):
//!
//! - [`ownership`]: which apps belong to this installation and to which deployment: app ids,
//!   the ownership labels;
//! - [`spec_hash`]: the `THESEUS_SPEC_HASH` label, and which spec fields enter it;
//! - [`app`]: spec → Marathon app ([`Mapping::desired_app`]);
//! - [`drift`]: how an app in Marathon differs from its desired app: an update that restarts
//!   the tasks, a scale, or nothing.
//!
//! Everything here is pure: it reads neither etcd nor Marathon.

pub mod app;
pub mod drift;
pub mod ownership;
pub mod spec_hash;

pub use app::{DesiredApp, Mapping, MappingError};
pub use drift::{Drift, DriftedField, drift};
pub use ownership::{Installation, InstallationError, Ownership};
pub use spec_hash::{SpecHash, restarting_fields};
