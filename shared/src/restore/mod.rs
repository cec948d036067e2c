//! Restoring one Airflow deployment: namespace resolution, backup choice, pre-flight checks,
//! the Velero Restore object, and reading its outcome (runbook steps 4–7).

pub mod choice;
pub mod collect;
pub mod download;
pub mod namespace;
pub mod outcome;
pub mod plan;
pub mod platform;
pub mod preflight;
pub mod watch;

/// Why a restore was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// `--from-backup` names a Backup that does not exist.
    #[error("backup {name} not found in namespace {velero_namespace}")]
    BackupNotFound {
        /// The backup asked for.
        name: String,
        /// Where we looked.
        velero_namespace: String,
    },
    /// `--from-schedule` names a schedule with no backups.
    #[error("schedule {name} has no backups in namespace {velero_namespace}")]
    ScheduleEmpty {
        /// The schedule asked for.
        name: String,
        /// Where we looked.
        velero_namespace: String,
    },
    /// The named backup cannot be restored from (Failed, InProgress, PartiallyFailed…).
    #[error("backup {name} cannot be restored from: it is {why}")]
    BackupNotUsable {
        /// The backup.
        name: String,
        /// Its phase and why that matters.
        why: String,
    },
    /// The named backup does not hold the namespace.
    #[error("backup {name} does not contain namespace {namespace}: {why}")]
    NamespaceNotInBackup {
        /// The backup.
        name: String,
        /// The namespace.
        namespace: String,
        /// How we know.
        why: String,
    },
    /// No backup is usable and holds the namespace.
    #[error(
        "no usable backup contains namespace {namespace} ({considered} backups considered: {summary})"
    )]
    NoBackupFound {
        /// The namespace.
        namespace: String,
        /// How many backups were looked at.
        considered: usize,
        /// Counts by reason.
        summary: String,
    },
    /// The backup's storage location is missing or not Available.
    #[error("backup storage location {name} of backup {backup} is {state}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    StorageLocationUnavailable {
        /// The BSL.
        name: String,
        /// The backup that lives there.
        backup: String,
        /// `Unavailable`, `Unknown`, `missing`.
        state: String,
        /// The BSL's status message.
        message: Option<String>,
    },
    /// The namespace is being deleted.
    #[error(
        "namespace {namespace} is Terminating; Velero would wait 10 minutes per item and then fail"
    )]
    NamespaceTerminating {
        /// The namespace.
        namespace: String,
    },
    /// The namespace exists and the user did not accept that existing objects stay as they are.
    #[error(
        "namespace {namespace} already exists: objects already in it are skipped by the restore, not overwritten"
    )]
    NamespaceExists {
        /// The namespace.
        namespace: String,
    },
    /// A confirmation was needed but there is no terminal to ask on.
    #[error("{what} needs confirmation, and there is no terminal to ask on")]
    NeedsConfirmation {
        /// What we would do.
        what: String,
    },
    /// The user answered no.
    #[error("cancelled; nothing was changed")]
    Declined,
    /// The restore ended in a phase other than Completed.
    #[error("restore {name} ended {phase}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    RestoreFailed {
        /// The Restore.
        name: String,
        /// Its terminal phase.
        phase: String,
        /// Failure reason or validation errors.
        detail: Option<String>,
    },
    /// `--verify`: Deployments did not become Available in time.
    #[error(
        "restore completed, but Deployments in {namespace} are not Available after {seconds}s: {pending}"
    )]
    NotAvailable {
        /// The namespace.
        namespace: String,
        /// How long we waited.
        seconds: u64,
        /// Deployments still not Available.
        pending: String,
    },
    /// We stopped waiting (Ctrl-C, --timeout); the Restore keeps running in Velero.
    #[error(
        "stopped waiting; restore {name} keeps running in Velero and {release} was not undeleted in Houston"
    )]
    StoppedWaiting {
        /// The Restore.
        name: String,
        /// Its namespace.
        velero_namespace: String,
        /// The release.
        release: String,
    },
    /// Velero said Completed, but the cluster does not show what it restored.
    #[error("restore {name} ended Completed, but {what}; Houston was left unchanged")]
    NothingRestored {
        /// The Restore.
        name: String,
        /// The backup it read.
        backup: String,
        /// What is missing, e.g. "namespace X does not exist".
        what: String,
    },
    /// Downloading a file Velero serves (resource list, results) failed.
    #[error("cannot download the {what} of {target}: {reason}")]
    Download {
        /// `BackupResourceList`, `RestoreResults`…
        what: String,
        /// The Backup or Restore name.
        target: String,
        /// Why.
        reason: String,
    },
}
