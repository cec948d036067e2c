//! kubectl-astro: Astronomer Software disaster recovery as kubectl plugins (and a Velero
//! server plugin). Every piece of logic lives here; the binaries in `plugins/*` only call
//! a command's parser and `run`.
//!
//! Four layers; imports point down only (checked by `tests/layers.rs`, which also keeps
//! the domain modules' import graph free of circles):
//!
//! 1. **Velero types** ([`velero`]): typed `velero.io/v1` objects generated from the CRDs
//!    in `crds/velero/` (`scripts/gen-velero-types`), plus hand-written helpers there.
//! 2. **Domain**: modules named for what they hold, deciding on typed values, each with
//!    its own `thiserror` error, knowing nothing of clap, the terminal or exit codes:
//!    the permissions a command needs ([`access`]),
//!    connection strings ([`connection`]), Houston SQL ([`houston`]), `pgbouncer.ini`
//!    ([`pgbouncer_ini`]), the Cloud SQL proxy ([`sqlproxy`]), Helm records ([`helm`]),
//!    the platform's secrets and release ([`platform`]), namespaces ([`namespaces`]),
//!    backups ([`backup`]), restores and backup choice ([`restore`]), endpoint moves
//!    ([`endpoint`]), DR readiness ([`status`]), the Velero plugin's actions
//!    ([`velero_plugin`]); and the I/O they need: the API client ([`client`]), waits
//!    ([`wait`]), PostgreSQL from here ([`pg`], [`pg_tls`], passwords for local
//!    psql/pg_dump in [`pgpass`]) or through the cluster
//!    ([`pgtunnel`], [`clientpod`]), the terminal ([`terminal`]).
//! 3. **Output** ([`output`]): the one path to stdout and stderr: text, JSON, YAML,
//!    object streams for `--dry-run`, tables, notes, the confirmation prompt.
//! 4. **Commands** ([`commands`]): one module per binary owning its clap definitions and
//!    `run` (collect → plan → confirm → apply → report), the aggregate error and what
//!    each domain error means to the user (exit status, next step).

pub mod access;
pub mod backup;
pub mod client;
pub mod clientpod;
pub mod commands;
pub mod connection;
pub mod cron;
pub mod endpoint;
pub mod helm;
pub mod houston;
pub mod interrupt;
pub mod namespaces;
pub mod output;
pub mod pg;
pub mod pg_tls;
pub mod pgbouncer_ini;
pub mod pgpass;
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
