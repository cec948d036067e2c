//! End-to-end tests, one module per command.
mod krew;
