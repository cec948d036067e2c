//! Checks before a restore changes anything: the backup's storage location, and what
//! the target namespace's state means (Terminating refuses; existing needs consent).

use crate::restore::RestoreError;
use crate::velero::BackupStorageLocation;

/// `--existing-resource-policy`, Velero's `spec.existingResourcePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingPolicy {
    /// Leave objects that already exist as they are (Velero's default).
    None,
    /// Patch objects that differ from the backup (PV data is never rewritten).
    Update,
}

impl ExistingPolicy {
    /// Every policy, as Velero spells them.
    pub const NAMES: [&'static str; 2] = ["none", "update"];

    /// The policy named `name` (Velero's spelling).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(ExistingPolicy::None),
            "update" => Some(ExistingPolicy::Update),
            _ => None,
        }
    }

    /// The value Velero expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ExistingPolicy::None => "none",
            ExistingPolicy::Update => "update",
        }
    }
}

/// A storage location that passed the check, with anything worth saying about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StorageLocationOk {
    /// BSL name.
    pub name: String,
    /// e.g. "read-only (fine for restores)".
    pub note: Option<String>,
}

/// Checks the backup's BSL (`None` when it does not exist): it must be
/// `Available`. `ReadOnly` is fine: Velero restores from read-only locations.
pub fn check_storage_location(
    backup: &str,
    name: &str,
    bsl: Option<&BackupStorageLocation>,
) -> Result<StorageLocationOk, RestoreError> {
    let unavailable =
        |state: &str, message: Option<String>| RestoreError::StorageLocationUnavailable {
            name: name.to_owned(),
            backup: backup.to_owned(),
            state: state.to_owned(),
            message,
        };
    let Some(bsl) = bsl else {
        return Err(unavailable("missing", None));
    };
    let status = bsl.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str())
        .unwrap_or("");
    if phase != "Available" {
        let message = status.and_then(|s| s.message.clone());
        let state = if phase.is_empty() {
            "Unknown (not validated yet)"
        } else {
            phase
        };
        return Err(unavailable(state, message));
    }
    let read_only = bsl.spec.access_mode.as_ref().map(|m| m.as_str()) == Some("ReadOnly");
    Ok(StorageLocationOk {
        name: name.to_owned(),
        note: read_only.then(|| "read-only (fine for restores)".to_owned()),
    })
}

/// What to do about the target namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", content = "note", rename_all = "camelCase")]
pub enum NamespaceAction {
    /// The namespace is absent: Velero creates it with its backed-up labels.
    Create,
    /// Wait for a Terminating namespace to go away first (`--wait-for-namespace`).
    WaitForDeletion,
    /// Restore into the existing namespace; the note says what happens to existing objects.
    IntoExisting(String),
    /// Restore into the existing namespace only if the user confirms; the note says why.
    ConfirmExisting(String),
}

/// Decides from the namespace's state and the flags.
pub fn plan_namespace(
    namespace: &str,
    state: &crate::restore::namespace::NamespaceState,
    policy: Option<ExistingPolicy>,
    wait_for_namespace: bool,
) -> Result<NamespaceAction, RestoreError> {
    use crate::restore::namespace::NamespaceState;
    match state {
        NamespaceState::Absent => Ok(NamespaceAction::Create),
        NamespaceState::Terminating if wait_for_namespace => Ok(NamespaceAction::WaitForDeletion),
        NamespaceState::Terminating => Err(RestoreError::NamespaceTerminating {
            namespace: namespace.to_owned(),
        }),
        NamespaceState::Active { .. } => Ok(match policy {
            Some(ExistingPolicy::Update) => NamespaceAction::IntoExisting(format!(
                "namespace {namespace} exists: objects that differ from the backup will be updated (PersistentVolume data is never rewritten)"
            )),
            Some(ExistingPolicy::None) => NamespaceAction::IntoExisting(format!(
                "namespace {namespace} exists: objects already in it are left as they are (--existing-resource-policy none)"
            )),
            None => NamespaceAction::ConfirmExisting(format!(
                "namespace {namespace} exists: objects already in it will be skipped, not overwritten (Velero only warns); --existing-resource-policy update overwrites them"
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::namespace::NamespaceState;
    use serde_json::json;

    fn bsl(v: serde_json::Value) -> BackupStorageLocation {
        let mut object = json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": "velero"},
            "spec": {"provider": "aws", "objectStorage": {"bucket": "b"}}});
        if let Some(mode) = v["spec"].get("accessMode") {
            object["spec"]["accessMode"] = mode.clone();
        }
        object["status"] = v["status"].clone();
        serde_json::from_value(object).expect("a valid BackupStorageLocation")
    }

    #[test]
    fn storage_location_states() {
        let ok = json!({"spec": {"accessMode": "ReadOnly"}, "status": {"phase": "Available"}});
        let r = check_storage_location("b", "default", Some(&bsl(ok))).unwrap();
        assert!(r.note.unwrap().contains("read-only"));
        let bad = json!({"status": {"phase": "Unavailable", "message": "NoCredentialProviders"}});
        let e = check_storage_location("b", "default", Some(&bsl(bad))).unwrap_err();
        assert!(
            e.to_string().contains("Unavailable: NoCredentialProviders"),
            "{e}"
        );
        let e = check_storage_location("b", "gone", None).unwrap_err();
        assert!(e.to_string().contains("missing"));
        let unknown = json!({"status": {}});
        assert!(check_storage_location("b", "d", Some(&bsl(unknown))).is_err());
    }

    #[test]
    fn namespace_states() {
        let active = NamespaceState::Active {
            labels: Default::default(),
        };
        assert_eq!(
            plan_namespace("n", &NamespaceState::Absent, None, false).unwrap(),
            NamespaceAction::Create
        );
        assert!(matches!(
            plan_namespace("n", &NamespaceState::Terminating, None, false),
            Err(RestoreError::NamespaceTerminating { .. })
        ));
        assert_eq!(
            plan_namespace("n", &NamespaceState::Terminating, None, true).unwrap(),
            NamespaceAction::WaitForDeletion
        );
        assert!(matches!(
            plan_namespace("n", &active, None, false).unwrap(),
            NamespaceAction::ConfirmExisting(_)
        ));
        assert!(matches!(
            plan_namespace("n", &active, Some(ExistingPolicy::Update), false).unwrap(),
            NamespaceAction::IntoExisting(_)
        ));
    }
}
