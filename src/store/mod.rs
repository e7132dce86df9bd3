//! The etcd store: the key layout of the design under a root prefix, typed reads and
//! writes, compare-and-swap transactions on revisions, and a watch that survives etcd.
//!
//! What it promises:
//! - every key is built by [`Layout`] and parsed back by [`Layout::parse`];
//! - every call is tried on each configured endpoint before it fails, and the error names
//!   every endpoint and why it failed ([`Error::Unreachable`]); bad credentials, a value that
//!   does not decode and a refused request name the endpoint or key;
//! - a [`Txn`] whose compares fail writes nothing;
//! - a [`WatchStream`] starts with a consistent list at a revision R, continues from R + 1,
//!   and survives broken streams, etcd restarts, dead members and compactions without losing
//!   or repeating a change;
//! - a [`Cache`] that follows a watch holds what it keeps of every entry once, in revision
//!   order, and hands out its changes after it holds them.
//!
//! What it does not: keep leases alive or run elections (use [`Store::client`]), validate
//! what it stores (that is [`crate::api`]'s job), or cache reads nobody asked a cache for.

mod cache;
mod config;
mod entry;
mod error;
mod kv;
mod layout;
mod members;
mod txn;
mod watch;

pub use cache::{Cache, CacheChange, CacheRead, CacheState, ChangeOf, Changes, Contents};
pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEP_ALIVE_INTERVAL, DEFAULT_REQUEST_TIMEOUT, EtcdConfig,
};
pub use entry::{Entry, Listing, Revision};
pub use error::{Attempt, Attempts, Error};
pub use kv::Store;
pub use layout::{KeyPath, Layout};
pub use txn::{Txn, TxnOutcome};
pub use watch::{WatchEvent, WatchStream};
