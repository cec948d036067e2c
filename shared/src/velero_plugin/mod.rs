//! `velero-plugin-astro`: a Velero server plugin (go-plugin gRPC) with two
//! RestoreItemActions that fix objects as Velero restores them, instead of after the fact.
//!
//! Layers: [`handshake`], [`log`], [`config`] and [`actions`] are pure or nearly so and
//! know nothing of gRPC; `server` (the go-plugin server) and `host` (what Velero's
//! go-plugin client does, for tests and the fake cluster) need feature `velero-plugin`.
//! The rewrites are the `restore endpoint` planner's own functions, so the plugin and
//! the command can never disagree.

pub mod actions;
pub mod config;
pub mod handshake;
pub mod install;
pub mod log;

#[cfg(feature = "velero-plugin")]
pub mod host;
#[cfg(feature = "velero-plugin")]
pub mod proto;
#[cfg(feature = "velero-plugin")]
pub mod server;

#[cfg(test)]
mod fixture_tests;
