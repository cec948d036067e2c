//! Typed `velero.io/v1` objects (Backup, Schedule, Restore, BackupStorageLocation,
//! DeleteBackupRequest, DownloadRequest, ServerStatusRequest), generated from Velero's CRDs by `scripts/gen-velero-types`.
//!
//! The generated files keep every optional field an `Option`, ignore unknown fields, and
//! give every string enum an `Unknown(String)` fallback, so objects from newer Velero
//! servers (more phases, more fields) still deserialize. `kube::Api<Backup>` etc. work
//! through the [`k8s_openapi::Resource`] impls written by [`velero_resource!`].

/// Declares the top-level object of a Velero kind (`metadata` + `spec` + optional
/// `status`) with `k8s_openapi::Resource`/`Metadata` impls, so `kube::Api<$kind>` works.
/// Serialization always writes `apiVersion` and `kind` first, as `kubectl` does.
macro_rules! velero_resource {
    ($(#[$doc:meta])* $kind:ident, $spec:ty, $status:ty, $plural:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
        pub struct $kind {
            /// Standard object metadata.
            #[serde(default)]
            pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            /// What the user asked for.
            #[serde(default)]
            pub spec: $spec,
            /// What the Velero server reports; never sent on create.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl $kind {
            /// A new object named `name` in `namespace` (the Velero namespace) with `spec`.
            pub fn new(name: &str, namespace: &str, spec: $spec) -> Self {
                $kind {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        ..Default::default()
                    },
                    spec,
                    status: None,
                }
            }
        }

        impl k8s_openapi::Resource for $kind {
            const API_VERSION: &'static str = "velero.io/v1";
            const GROUP: &'static str = "velero.io";
            const KIND: &'static str = stringify!($kind);
            const VERSION: &'static str = "v1";
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $kind {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }

        impl serde::Serialize for $kind {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[derive(serde::Serialize)]
                #[serde(rename_all = "camelCase")]
                struct Wire<'a> {
                    api_version: &'static str,
                    kind: &'static str,
                    metadata: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                    spec: &'a $spec,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    status: &'a Option<$status>,
                }
                Wire {
                    api_version: <$kind as k8s_openapi::Resource>::API_VERSION,
                    kind: <$kind as k8s_openapi::Resource>::KIND,
                    metadata: &self.metadata,
                    spec: &self.spec,
                    status: &self.status,
                }
                .serialize(serializer)
            }
        }
    };
}

pub mod backup;
pub mod backupstoragelocation;
pub mod contents;
pub mod deletebackuprequest;
pub mod download;
pub mod downloadrequest;
mod phase;
pub mod restore;
pub mod schedule;
pub mod server_status;
pub mod serverstatusrequest;

pub use backup::{Backup, BackupSpec, BackupStatus, BackupStatusPhase};
pub use backupstoragelocation::{
    BackupStorageLocation, BackupStorageLocationAccessMode, BackupStorageLocationSpec,
    BackupStorageLocationStatus, BackupStorageLocationStatusPhase,
};
pub use deletebackuprequest::{DeleteBackupRequest, DeleteBackupRequestSpec};
pub use downloadrequest::{
    DownloadRequest, DownloadRequestSpec, DownloadRequestStatus, DownloadRequestTarget,
    DownloadRequestTargetKind,
};
pub use phase::Terminal;
pub use restore::{Restore, RestoreSpec, RestoreStatus, RestoreStatusPhase};
pub use schedule::{Schedule, ScheduleSpec, ScheduleStatus, ScheduleStatusPhase};
pub use serverstatusrequest::{
    ServerStatusRequest, ServerStatusRequestSpec, ServerStatusRequestStatus,
    ServerStatusRequestStatusPhase,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_phases_parse() {
        let json = serde_json::json!({
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "velero"},
            "spec": {"includedNamespaces": ["a"], "someFutureField": {"x": 1}},
            "status": {"phase": "SomeFuturePhase", "progress": {"itemsBackedUp": 3, "totalItems": 9}}
        });
        let b: Backup = serde_json::from_value(json).unwrap();
        let phase = b.status.as_ref().unwrap().phase.as_ref().unwrap();
        assert_eq!(phase, &BackupStatusPhase::Unknown("SomeFuturePhase".into()));
        assert_eq!(phase.as_str(), "SomeFuturePhase");
        let queued: BackupStatusPhase = serde_json::from_value("Queued".into()).unwrap();
        assert_eq!(queued, BackupStatusPhase::Queued);
        let empty: BackupStatusPhase = serde_json::from_value("".into()).unwrap();
        assert_eq!(empty.as_str(), "");
    }

    #[test]
    fn serializes_type_meta_and_no_status() {
        let spec = BackupSpec {
            included_namespaces: Some(vec!["ns1".into()]),
            storage_location: Some("default".into()),
            ttl: Some("168h0m0s".into()),
            ..Default::default()
        };
        let b = Backup::new("b1", "velero", spec);
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "velero.io/v1",
                "kind": "Backup",
                "metadata": {"name": "b1", "namespace": "velero"},
                "spec": {"includedNamespaces": ["ns1"], "storageLocation": "default", "ttl": "168h0m0s"}
            })
        );
        let kind = DownloadRequestTargetKind::CsiBackupVolumeSnapshots;
        assert_eq!(
            serde_json::to_value(&kind).unwrap(),
            serde_json::json!("CSIBackupVolumeSnapshots")
        );
        assert_eq!(kind.as_str(), "CSIBackupVolumeSnapshots");
    }
}
