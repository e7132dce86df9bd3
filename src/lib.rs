//! theseus deploys containerised services onto Mesos through Marathon.
//!
//! People write Deployment specs under `/desired` in etcd; the controller (package
//! `theseus-controllers`) makes Marathon match them and mirrors what runs into `/observed`;
//! code inside the containers reads `/observed` to find its peers.
//!
//! This crate holds the parts everyone shares: the [`api`] types and their validation,
//! the etcd [`store`], the Marathon [`marathon`] client, the in-container [`guest`] calls and
//! watcher, and the `theseus` command line.

pub mod api;
pub mod cli;
pub mod guest;
pub mod marathon;
pub mod store;
