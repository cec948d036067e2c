//! `kubectl astro backup`: Velero backups and schedules of the platform and its Airflow
//! deployments (with the Redis volume policy), listing, describing, and database dumps.

pub mod create;
pub mod db;
pub mod describe;
pub mod list;
pub mod plan;
pub mod schedule;

/// Why a backup command refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] crate::client::KubeError),
    /// The platform could not be read.
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
    /// Waiting for the backup failed.
    #[error(transparent)]
    Wait(#[from] crate::wait::WaitError),
    /// The schedule's cron expression.
    #[error(transparent)]
    Cron(#[from] crate::cron::CronError),
    /// The dump's client pod.
    #[error(transparent)]
    ClientPod(#[from] crate::clientpod::ClientPodError),
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

impl BackupError {
    /// A usage error with a hint.
    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        BackupError::Invalid {
            message: message.into(),
            hint: hint.into(),
        }
    }
}
