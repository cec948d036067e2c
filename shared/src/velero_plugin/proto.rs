//! Code generated at build time from `shared/proto/` (re-authored from the research
//! note's wire tables: same packages, services, rpc names and field numbers).

#![allow(missing_docs, clippy::all)]

/// Velero's package `generated` (PluginLister, RestoreItemAction v1, shared messages).
pub mod generated {
    tonic::include_proto!("generated");
}

/// go-plugin's internal package `plugin` (GRPCController, GRPCStdio, GRPCBroker).
pub mod plugin {
    tonic::include_proto!("plugin");
}
