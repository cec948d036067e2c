//! One module per `kubectl astro <cmd>`: its clap `Cli` and its `run`.
//! The binaries in `plugins/*` only call `Cli` parsing and `run`.

pub mod backup;
pub mod cli;
pub mod completion;
pub mod dbconn;
pub mod dispatch;
pub mod error;
pub mod exit;
pub mod preflight;
pub mod restore;
pub mod status;
