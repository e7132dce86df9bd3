//! theseus deploys containerised services onto Mesos through Marathon.
//!
//! People write Deployment specs under `/desired` in etcd; the controller (package
//! `theseus-controllers`) makes Marathon match them and mirrors what runs into `/observed`;
//! code inside the containers reads `/observed` to find its peers.
//!
//! This crate holds the parts everyone shares: the [`api`] types and their validation,
//! the etcd [`store`], people's [`edit`]s of `/desired`, the Marathon [`marathon`] client,
//! the spec → Marathon app [`mapping`] the controller applies, and the in-container [`guest`]
//! calls and watcher. The `theseus` command (package `theseus-cli`), the controller and the
//! dashboard are built on it; it knows none of them.

pub mod api;
pub mod edit;
pub mod guest;
pub mod mapping;
pub mod marathon;
pub mod store;
