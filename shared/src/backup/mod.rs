//! `kubectl astro backup`: Velero backups and schedules of the platform and its Airflow
//! deployments (with the Redis volume policy), listing, describing, and database dumps.

pub mod create;
pub mod db;
pub mod describe;
pub mod list;
pub mod plan;
pub mod schedule;

use crate::error::Diagnose;
use crate::exit::ExitStatus;

/// Why a backup command refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The storage location does not exist.
    #[error("backup storage location {name} does not exist in namespace {velero_namespace}")]
    StorageLocationMissing {
        /// BSL name.
        name: String,
        /// Velero namespace.
        velero_namespace: String,
    },
    /// The storage location is not `Available`: Velero would fail the backup validation.
    #[error("backup storage location {name} is {phase}{}: Velero would fail the backup (FailedValidation)", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    StorageLocationUnavailable {
        /// BSL name.
        name: String,
        /// Its phase (`Unavailable`, or `Unknown` when unset).
        phase: String,
        /// Velero's validation message, if any.
        message: Option<String>,
    },
    /// The storage location is read-only (e.g. during a restore).
    #[error("backup storage location {name} is ReadOnly: Velero refuses new backups to it")]
    StorageLocationReadOnly {
        /// BSL name.
        name: String,
    },
    /// A namespace to back up does not exist (Velero would report Completed for it).
    #[error(
        "namespace {namespace} does not exist; Velero would report a Completed backup with nothing in it"
    )]
    NamespaceMissing {
        /// The namespace.
        namespace: String,
    },
    /// A namespace to back up is being deleted.
    #[error(
        "namespace {namespace} is Terminating; a backup now would capture a half-deleted namespace"
    )]
    NamespaceTerminating {
        /// The namespace.
        namespace: String,
    },
    /// No deployment namespace is labelled for this release.
    #[error(
        "no deployment namespace for release {release}: expected namespace {expected} labelled platform-release={platform_release}"
    )]
    ReleaseNamespaceMissing {
        /// The release asked for.
        release: String,
        /// The namespace we looked for.
        expected: String,
        /// The platform release.
        platform_release: String,
    },
    /// Bad flag values.
    #[error("{message}")]
    Invalid {
        /// What was wrong.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// The object already exists.
    #[error("{kind} {namespace}/{name} already exists")]
    AlreadyExists {
        /// Kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The object does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A waited backup ended in a phase other than Completed.
    #[error("backup {name} ended {phase}{}", if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) })]
    Ended {
        /// Backup name.
        name: String,
        /// Terminal phase.
        phase: String,
        /// Validation errors, failure reason or result messages.
        reasons: Vec<String>,
    },
    /// Ctrl-C or timeout while waiting; the backup continues.
    #[error("stopped waiting for backup {name}; it keeps running on the server")]
    StoppedWaiting {
        /// Backup name.
        name: String,
    },
    /// An object kept changing under us.
    #[error("{object} kept changing while we updated it (conflicts)")]
    Conflict {
        /// The object.
        object: String,
    },
    /// pg_dump / pg_restore failed.
    #[error("{message}")]
    Dump {
        /// What failed, naming the database.
        message: String,
        /// What to do next.
        hint: String,
    },
}

impl Diagnose for BackupError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            BackupError::StorageLocationMissing { .. }
            | BackupError::StorageLocationUnavailable { .. }
            | BackupError::StorageLocationReadOnly { .. }
            | BackupError::NamespaceMissing { .. }
            | BackupError::NamespaceTerminating { .. }
            | BackupError::ReleaseNamespaceMissing { .. }
            | BackupError::AlreadyExists { .. } => ExitStatus::Refused,
            BackupError::Invalid { .. } => ExitStatus::Usage,
            BackupError::NotFound { .. }
            | BackupError::Ended { .. }
            | BackupError::StoppedWaiting { .. }
            | BackupError::Conflict { .. }
            | BackupError::Dump { .. } => ExitStatus::Failed,
        }
    }

    fn next_step(&self) -> Option<String> {
        Some(match self {
            BackupError::StorageLocationMissing { velero_namespace, .. } => format!(
                "list storage locations with `kubectl get backupstoragelocations -n {velero_namespace}` and pass --storage-location"
            ),
            BackupError::StorageLocationUnavailable { name, .. } => format!(
                "fix the storage location first (credentials, bucket): `kubectl describe backupstoragelocation {name} -n velero`"
            ),
            BackupError::StorageLocationReadOnly { name } => format!(
                "if no restore is running, set it back: `kubectl patch backupstoragelocation {name} -n velero --type merge -p '{{\"spec\":{{\"accessMode\":\"ReadWrite\"}}}}'`"
            ),
            BackupError::NamespaceMissing { .. } => {
                "check the name with `kubectl get ns`; to back up a deleted deployment's namespace there is nothing left to back up".into()
            }
            BackupError::NamespaceTerminating { namespace } => {
                format!("wait until {namespace} is gone, or leave it out with --release/--platform")
            }
            BackupError::ReleaseNamespaceMissing { platform_release, .. } => format!(
                "list deployment namespaces with `kubectl get ns -l platform-release={platform_release}`"
            ),
            BackupError::Invalid { hint, .. } => hint.clone(),
            BackupError::AlreadyExists { name, .. } => {
                format!("pick another name, or look at it with `kubectl astro backup describe {name}`")
            }
            BackupError::NotFound { .. } => "list backups with `kubectl astro backup list`".into(),
            BackupError::Ended { name, .. } => format!(
                "see `kubectl astro backup describe {name}` and `velero backup logs {name}`"
            ),
            BackupError::StoppedWaiting { name } => {
                format!("follow it with `kubectl astro backup describe {name}`")
            }
            BackupError::Conflict { .. } => "re-run the command; it only writes what differs".into(),
            BackupError::Dump { hint, .. } => hint.clone(),
        })
    }
}

impl BackupError {
    /// A usage error with a hint.
    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        BackupError::Invalid {
            message: message.into(),
            hint: hint.into(),
        }
    }
}
