//! The Deployment API: the spec people write under `/desired`, the status and task
//! records the controller writes under `/observed`, and their validation.

pub mod document;
pub mod environment;
mod key;
pub mod manifest;
mod reason;
mod rollout;
mod schema;
mod spec;
mod status;
mod task;
mod validate;

pub use environment::RESERVED_ENVIRONMENT;
pub use key::{DeploymentKey, DnsLabel, KeyError, MAX_LABEL_LEN};
pub use reason::Reason;
pub use rollout::{Decision, JournalEntry, RevisionOutcome, RevisionRecord, SpecText};
pub use schema::{SCHEMA_PATH, deployment_schema, deployment_schema_text};
pub use spec::*;
pub use status::{
    Condition, ConditionKind, DeploymentStatus, InstanceCounts, LastTaskFailure, Phase,
};
pub use task::{Health, PortBinding, TaskRecord};
pub use validate::{FieldError, ValidationErrors, parse_spec, validate_spec};
