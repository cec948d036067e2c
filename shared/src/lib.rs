//! kubectl-astro: Astronomer Software disaster recovery as kubectl plugins.
//! Every piece of logic lives here; the `kubectl-astro*` binaries only parse and print.

pub mod backup;
pub mod cli;
pub mod client;
pub mod clientpod;
pub mod commands;
pub mod completion;
pub mod connection;
pub mod cron;
pub mod dispatch;
pub mod endpoint;
pub mod error;
pub mod exit;
pub mod houston;
pub mod namespaces;
pub mod pg;
pub mod pg_tls;
pub mod pgbouncer_ini;
pub mod pgtunnel;
pub mod platform;
pub mod platform_restore;
pub mod release;
pub mod restore;
pub mod sqlproxy;
pub mod status;
pub mod terminal;
pub mod velero;
pub mod wait;
