//! The two Velero files a restore reads, through [`crate::velero::download`]: a backup's
//! resource list (does it hold the namespace?) and a restore's results (why it failed).

use std::collections::BTreeMap;

use crate::restore::RestoreError;
use crate::velero::DownloadRequestTargetKind;
use crate::velero::download::{self, DownloadError, OperationResults};

/// A restore's warnings and errors with their reasons.
pub type Results = OperationResults;

fn restore_error(e: DownloadError, what: &str, target: &str) -> RestoreError {
    RestoreError::Download {
        what: what.to_owned(),
        target: target.to_owned(),
        reason: e.to_string(),
    }
}

/// Downloads and parses a backup's resource list
/// (`{"v1/Namespace": ["a"], "apps/v1/Deployment": ["a/web"]}`).
pub async fn backup_resource_list(
    client: &kube::Client,
    velero_namespace: &str,
    backup: &str,
) -> Result<BTreeMap<String, Vec<String>>, RestoreError> {
    let what = "BackupResourceList";
    let bytes = download::download(
        client,
        velero_namespace,
        DownloadRequestTargetKind::BackupResourceList,
        backup,
        download::DEFAULT_TIMEOUT,
    )
    .await
    .map_err(|e| restore_error(e, what, backup))?;
    serde_json::from_slice(&bytes).map_err(|e| RestoreError::Download {
        what: what.into(),
        target: backup.into(),
        reason: format!("not a resource list: {e}"),
    })
}

/// Downloads and parses a restore's results file.
pub async fn restore_results(
    client: &kube::Client,
    velero_namespace: &str,
    restore: &str,
) -> Result<Results, RestoreError> {
    download::results(
        client,
        velero_namespace,
        DownloadRequestTargetKind::RestoreResults,
        restore,
    )
    .await
    .map_err(|e| restore_error(e, "RestoreResults", restore))
}
