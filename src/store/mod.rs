//! The etcd store.
