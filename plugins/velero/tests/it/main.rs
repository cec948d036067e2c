//! Integration tests of the `velero-plugin-astro` binary through a host that does what
//! Velero's go-plugin client does (`astro::velero_plugin::host`).

mod e2e;
mod protocol;
mod rewrite;
mod sim;
mod support;
