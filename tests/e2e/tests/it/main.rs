//! End-to-end tests, one module per command.

mod backup;
mod dbconn;
mod dry_run;
mod endpoint;
mod fixtures;
mod fixtures_pg;
mod harness;
mod hygiene;
mod krew;
mod rbac;
mod restore;
mod sandbox;
mod snapshot;
mod status;
mod tls;
