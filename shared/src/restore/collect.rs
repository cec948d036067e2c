//! Reading what a restore decision needs from the API: Backups (paged), one Backup,
//! and the storage location a backup lives in.

use kube::Api;
use kube::api::ListParams;

use crate::client::KubeError;
use crate::restore::choice::{BackupInfo, BackupSource};
use crate::velero::{Backup, BackupStorageLocation};

/// Page size for Backup lists (the API server caps pages; 500 keeps memory flat).
pub const PAGE_SIZE: u32 = 500;

/// Reads the backups `source` can choose from: one GET for a named backup (`Ok(vec![])`
/// when it does not exist), otherwise a paged list (label-selected for a schedule).
pub async fn collect_backups(
    client: &kube::Client,
    velero_namespace: &str,
    source: &BackupSource,
) -> Result<Vec<BackupInfo>, KubeError> {
    let api: Api<Backup> = Api::namespaced(client.clone(), velero_namespace);
    if let BackupSource::Named(name) = source {
        let backup = api
            .get_opt(name)
            .await
            .map_err(|e| KubeError::api(format!("get backup {velero_namespace}/{name}"), e))?;
        return Ok(backup.iter().filter_map(info).collect());
    }
    let mut params = ListParams::default().limit(PAGE_SIZE);
    if let BackupSource::Schedule(s) = source {
        params = params.labels(&format!("velero.io/schedule-name={s}"));
    }
    let mut out = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| KubeError::api(format!("list backups in {velero_namespace}"), e))?;
        out.extend(page.items.iter().filter_map(info));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

fn info(b: &Backup) -> Option<BackupInfo> {
    BackupInfo::of(b)
}

/// The storage location a backup lives in: `spec.storageLocation`, else the location
/// marked default. `(name, None)` when it does not exist.
pub async fn collect_storage_location(
    client: &kube::Client,
    velero_namespace: &str,
    name: Option<&str>,
) -> Result<(String, Option<BackupStorageLocation>), KubeError> {
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), velero_namespace);
    let err = |e| {
        KubeError::api(
            format!("read backup storage locations in {velero_namespace}"),
            e,
        )
    };
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        let bsl = api.get_opt(name).await.map_err(err)?;
        return Ok((name.to_owned(), bsl));
    }
    let all = api.list(&ListParams::default()).await.map_err(err)?;
    let default = all.items.into_iter().find(|b| b.spec.default == Some(true));
    let name = default
        .as_ref()
        .and_then(|b| b.metadata.name.clone())
        .unwrap_or_else(|| "default".to_owned());
    Ok((name, default))
}

/// Whether `restore` is still running a restore of `backup` covering exactly `namespaces`
/// (`["*"]` for everything): an earlier run's, stopped or killed while it waited. A rerun
/// waits for it instead of restoring the same objects a second time.
pub fn is_unfinished_restore_of(
    restore: &crate::velero::Restore,
    backup: &str,
    namespaces: &[String],
) -> bool {
    let phase = restore
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    matches!(phase.as_str(), "" | "New" | "InProgress")
        && restore.metadata.deletion_timestamp.is_none()
        && restore.spec.backup_name.as_deref() == Some(backup)
        && restore.spec.included_namespaces.as_deref() == Some(namespaces)
}

/// The name of such an unfinished restore in `velero_namespace`, if any.
pub async fn unfinished_restore(
    client: &kube::Client,
    velero_namespace: &str,
    backup: &str,
    namespaces: &[String],
) -> Result<Option<String>, KubeError> {
    let api: Api<crate::velero::Restore> = Api::namespaced(client.clone(), velero_namespace);
    let list = api.list(&ListParams::default()).await.map_err(|e| {
        KubeError::api(
            format!("list restores in {velero_namespace} (no restore was started)"),
            e,
        )
    })?;
    Ok(list
        .items
        .into_iter()
        .find(|r| is_unfinished_restore_of(r, backup, namespaces))
        .and_then(|r| r.metadata.name))
}

#[cfg(test)]
mod unfinished_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_an_unfinished_restore_of_the_same_backup_and_namespaces() {
        let restore = |phase: &str, backup: &str, ns: &[&str]| -> crate::velero::Restore {
            let mut v = json!({"apiVersion": "velero.io/v1", "kind": "Restore",
                "metadata": {"name": "r", "namespace": "velero"},
                "spec": {"backupName": backup, "includedNamespaces": ns}});
            if !phase.is_empty() {
                v["status"] = json!({"phase": phase});
            }
            serde_json::from_value(v).unwrap()
        };
        let ns = vec!["astronomer-a".to_owned()];
        assert!(is_unfinished_restore_of(
            &restore("", "b", &["astronomer-a"]),
            "b",
            &ns
        ));
        assert!(is_unfinished_restore_of(
            &restore("InProgress", "b", &["astronomer-a"]),
            "b",
            &ns
        ));
        for done in ["Completed", "PartiallyFailed", "Failed", "FailedValidation"] {
            assert!(
                !is_unfinished_restore_of(&restore(done, "b", &["astronomer-a"]), "b", &ns),
                "{done}"
            );
        }
        assert!(!is_unfinished_restore_of(
            &restore("New", "other", &["astronomer-a"]),
            "b",
            &ns
        ));
        assert!(!is_unfinished_restore_of(
            &restore("New", "b", &["*"]),
            "b",
            &ns
        ));
    }
}
