//! `backup describe NAME`: phase, validation errors, failure reason, progress, and the
//! error/warning messages from the backup's results file (through a DownloadRequest).

use kube::{Api, Client};

use super::BackupError;
use crate::client::KubeError;
use crate::velero::download::{self, DownloadError, OperationResults};
use crate::velero::{Backup, DownloadRequestTargetKind};

/// A backup and, when it has errors or warnings, what its results file says.
#[derive(Debug)]
pub struct Description {
    /// The Backup object.
    pub backup: Backup,
    /// The results file, when fetched.
    pub results: Option<Result<OperationResults, DownloadError>>,
}

/// Reads the backup and, if it reports errors or warnings, its results file.
pub async fn collect(
    client: &Client,
    velero_namespace: &str,
    name: &str,
) -> Result<Description, BackupError> {
    let api: Api<Backup> = Api::namespaced(client.clone(), velero_namespace);
    let backup = api
        .get_opt(name)
        .await
        .map_err(|e| KubeError::api(format!("get backup {velero_namespace}/{name}"), e))?
        .ok_or_else(|| BackupError::NotFound {
            kind: "backup",
            namespace: velero_namespace.to_owned(),
            name: name.to_owned(),
        })?;
    let status = backup.status.as_ref();
    let noisy = status.is_some_and(|s| s.errors.unwrap_or(0) > 0 || s.warnings.unwrap_or(0) > 0);
    let results = if noisy {
        Some(
            download::results(
                client,
                velero_namespace,
                DownloadRequestTargetKind::BackupResults,
                name,
            )
            .await,
        )
    } else {
        None
    };
    Ok(Description { backup, results })
}
