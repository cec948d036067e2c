//! End-to-end tests, one module per command.

mod fixtures;
mod fixtures_pg;
mod krew;
mod restore;
