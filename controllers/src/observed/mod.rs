//! The observed reconciler: the tasks of owned apps, as Marathon's own snapshot shows them,
//! mirrored to `/observed/<service>/<name>/tasks/<task-id>` for guestutils and watchers.
//!
//! - [`record`]: a task and the definition it was launched from → its `TaskRecord`;
//! - [`versions`]: the definitions of older versions some tasks still run, read once;
//! - [`tree`]: the task records in etcd, as one watch and the controller's writes show them;
//! - [`reconcile`]: one deployment's records against the snapshot.
//!
//! Marathon's event stream is only a trigger: the shared
//! [`MarathonSnapshot`](crate::marathon_snapshot::MarathonSnapshot) applies task events to
//! itself (or re-reads the app), is relisted at the start of every term, after every
//! reconnect of the stream and at every resync, and every change it reports queues the
//! deployment here. So after any outage of the controller, of the stream or of Marathon, the
//! tree is right again within one relist.

pub mod reconcile;
pub mod record;
pub mod tree;
pub mod versions;
