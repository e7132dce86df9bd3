//! The Deployment API: the spec people write under `/desired`, the status and task
//! records the controller writes under `/observed`, and their validation.

mod key;

pub use key::{DeploymentKey, DnsLabel, KeyError, MAX_LABEL_LEN};
