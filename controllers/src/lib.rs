//! The theseus controller: makes Marathon match the Deployment specs under `/desired` in etcd
//! and reports what it did under `/observed`.
//!
//! Built the way kube-runtime builds Kubernetes controllers: a [`runtime`] of reflectors over
//! etcd, a work queue with per-key backoff, a bounded runner, leader election with fenced
//! writes, and metrics; and reconcilers on top of it: [`deployments`] (specs to Marathon
//! apps) and [`observed`] (Marathon's tasks to `/observed`), each triggered by the changes
//! [`triggers`] maps to its keys. The
//! `theseus-controller` binary is a thin command line over
//! [`controller::Controller`].

#![warn(missing_docs)]

pub mod controller;
pub mod deployments;
pub mod http;
pub mod marathon_snapshot;
pub mod observed;
pub mod runtime;
pub(crate) mod small_map;
pub mod triggers;
