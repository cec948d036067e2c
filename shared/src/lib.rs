//! kubectl-astro: Astronomer Software disaster recovery as kubectl plugins.
//! Every piece of logic lives here; the `kubectl-astro*` binaries only parse and print.

pub mod backup;
pub mod client;
pub mod clientpod;
pub mod commands;
pub mod connection;
pub mod cron;
pub mod endpoint;
pub mod helm;
pub mod houston;
pub mod namespaces;
pub mod output;
pub mod pg;
pub mod pg_tls;
pub mod pgbouncer_ini;
pub mod pgtunnel;
pub mod platform;
pub mod release;
pub mod restore;
pub mod sqlproxy;
pub mod status;
pub mod terminal;
pub mod velero;
pub mod velero_plugin;
pub mod wait;

/// The async runtime every binary runs on: two worker threads (the commands and the
/// Velero plugin wait on the network, never on the CPU), timers and I/O enabled.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
