// Written by hand from crds/velero/velero.io_serverstatusrequests.yaml in the shape
// `scripts/gen-velero-types` (kopium) produces, since the kind has no spec fields.
//! `velero.io/v1` ServerStatusRequest: ask the Velero server to prove it is alive.

use serde::{Deserialize, Serialize};

/// ServerStatusRequestSpec is the specification for a ServerStatusRequest (empty).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServerStatusRequestSpec {}

/// ServerStatusRequestStatus is the current status of a ServerStatusRequest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatusRequestStatus {
    /// Phase is the current lifecycle phase of the ServerStatusRequest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ServerStatusRequestStatusPhase>,
    /// Plugins list information about the plugins running on the Velero server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<ServerStatusRequestPlugin>>,
    /// When the ServerStatusRequestController processed the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_timestamp: Option<String>,
    /// The Velero server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}

/// PluginInfo contains attributes of a Velero plugin.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServerStatusRequestPlugin {
    /// Plugin kind (e.g. `RestoreItemAction`).
    pub kind: String,
    /// Plugin name (e.g. `astronomer.io/skip-redis-data`).
    pub name: String,
}

/// Phase of a ServerStatusRequest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum ServerStatusRequestStatusPhase {
    /// Not processed yet.
    New,
    /// Answered by the server.
    Processed,
    /// A value this build does not know (newer Velero); kept verbatim.
    #[serde(untagged)]
    Unknown(String),
}

impl ServerStatusRequestStatusPhase {
    /// The value as Velero spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ServerStatusRequestStatusPhase::New => "New",
            ServerStatusRequestStatusPhase::Processed => "Processed",
            ServerStatusRequestStatusPhase::Unknown(other) => other,
        }
    }
}

velero_resource!(
    /// A Velero `ServerStatusRequest` (`velero.io/v1`, resource `serverstatusrequests`).
    ServerStatusRequest,
    ServerStatusRequestSpec,
    ServerStatusRequestStatus,
    "serverstatusrequests"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_answered_request() {
        let v = serde_json::json!({
            "apiVersion": "velero.io/v1", "kind": "ServerStatusRequest",
            "metadata": {"name": "s", "namespace": "velero"}, "spec": {},
            "status": {"phase": "Processed", "serverVersion": "v1.16.1",
                "processedTimestamp": "2026-11-25T00:00:00Z",
                "plugins": [{"kind": "RestoreItemAction", "name": "astronomer.io/skip-redis-data"}]}
        });
        let s: ServerStatusRequest = serde_json::from_value(v).unwrap();
        let st = s.status.unwrap();
        assert_eq!(st.phase, Some(ServerStatusRequestStatusPhase::Processed));
        assert_eq!(st.plugins.unwrap()[0].name, "astronomer.io/skip-redis-data");
        let out = serde_json::to_value(ServerStatusRequest::new(
            "x",
            "velero",
            ServerStatusRequestSpec {},
        ))
        .unwrap();
        assert_eq!(out["kind"], "ServerStatusRequest");
        assert_eq!(out["spec"], serde_json::json!({}));
    }
}
