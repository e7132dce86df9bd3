//! The environment contract between the controller and the code inside a task: the names of
//! the variables theseus sets in every task (the controller writes them into the Marathon
//! app, guestutils reads them back), and those Marathon or Mesos set that guestutils relies
//! on. One list, so the writer, the reader and spec validation cannot drift apart.
//!
//! It says nothing about values beyond their documented meaning; parsing them is the
//! reader's business (`theseus::guest`).

/// The service, the first label of the `/desired/<service>/<name>` key.
pub const SERVICE_NAME: &str = "SERVICE_NAME";
/// The deployment's name, the second label of the key.
pub const DEPLOYMENT_NAME: &str = "DEPLOYMENT_NAME";
/// The spec's labels, joined with commas.
pub const LABELS: &str = "LABELS";
/// The etcd endpoints tasks use, joined with commas.
pub const ETCD_ENDPOINTS: &str = "ETCD_ENDPOINTS";
/// The root prefix of the etcd layout (empty for none).
pub const THESEUS_PREFIX: &str = "THESEUS_PREFIX";
/// Set by Mesos: the task id, which guestutils calls the container name.
pub const MESOS_TASK_ID: &str = "MESOS_TASK_ID";
/// Set by Marathon: the agent's host name or address.
pub const HOST: &str = "HOST";

/// Environment variables a spec may not set: the ones theseus sets, and the ones Marathon or
/// Mesos set that guestutils reads.
pub const RESERVED_ENVIRONMENT: [&str; 7] = [
    SERVICE_NAME,
    DEPLOYMENT_NAME,
    LABELS,
    ETCD_ENDPOINTS,
    THESEUS_PREFIX,
    MESOS_TASK_ID,
    HOST,
];
