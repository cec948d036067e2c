//! The one error type every command returns, wrapping each domain module's typed error,
//! and what each of those errors means to the user: its exit status and the next step.
//!
//! Domain modules keep their own `thiserror` errors and know nothing of exit codes; only
//! `commands/` aggregates them here (the kube-rs / uv habit), so no domain module can
//! return a usage error or depend on this layer.

use crate::commands::exit::ExitStatus;

/// What every module error tells the edge: how to exit and what to try next.
pub trait Diagnose: std::error::Error {
    /// The exit status this error maps to (SPEC "Conventions").
    fn exit_status(&self) -> ExitStatus;
    /// A sentence telling the on-call engineer what to do next, if there is one.
    fn next_step(&self) -> Option<String> {
        None
    }
}

/// Declares [`Error`] with one transparent variant per module error.
/// Adding a module error is one line here.
macro_rules! module_errors {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty), )*) => {
        /// Any error a command can end with.
        #[derive(Debug, thiserror::Error)]
        pub enum Error {
            $( $(#[$doc])* #[error(transparent)] $variant(#[from] $ty), )*
            /// Bad input found at the edge (flags, arguments).
            /// Output could not be produced.
            #[error(transparent)]
            Output(#[from] crate::output::OutputError),
            /// A fault of this tool, not of the input or the cluster.
            #[error("internal error: {0}")]
            Internal(String),
            #[error("{message}")]
            Usage {
                /// What was wrong.
                message: String,
                /// What to do instead.
                hint: Option<String>,
            },
        }

        impl Error {
            /// The exit status of this error.
            pub fn exit_status(&self) -> ExitStatus {
                // A permission the API server refused, however deep in the causes.
                if self.forbidden_need().is_some() {
                    return ExitStatus::Refused;
                }
                match self {
                    $( Error::$variant(e) => e.exit_status(), )*
                    Error::Output(_) | Error::Internal(_) => ExitStatus::Failed,
                    Error::Usage { .. } => ExitStatus::Usage,
                }
            }

            /// The next step to print under the error, if any.
            pub fn next_step(&self) -> Option<String> {
                if let Some(need) = self.forbidden_need() {
                    return Some(format!(
                        "forbidden: this needs {need}; ask a cluster admin to bind your user to the command's ClusterRole in deploy/rbac.yaml (what was done before this step is reported above; nothing after it was)"
                    ));
                }
                match self {
                    $( Error::$variant(e) => e.next_step(), )*
                    Error::Output(crate::output::OutputError::Write(_)) => {
                        Some("check where the output goes (a full disk, a closed terminal)".into())
                    }
                    Error::Output(_) | Error::Internal(_) => Some(
                        "this is a bug in kubectl-astro: please report it with the command you ran"
                            .into(),
                    ),
                    Error::Usage { hint, .. } => hint.clone(),
                }
            }
        }
    };
}

module_errors! {
    /// The user lacks RBAC permissions a command needs (found before any change).
    Access(crate::access::AccessError),
    /// Building the Kubernetes client or talking to the API server.
    Kube(crate::client::KubeError),
    /// `kubectl astro <cmd>` could not be dispatched.
    Dispatch(crate::commands::dispatch::DispatchError),
    /// A release name that is not valid.
    Release(crate::release::ReleaseNameError),
    /// A PostgreSQL connection string that cannot be used.
    Connection(crate::connection::ConnectionError),
    /// Moving the platform to a new database endpoint.
    Endpoint(crate::endpoint::EndpointError),
    /// Restoring the whole platform from a backup.
    PlatformRestore(crate::restore::platform::PlatformRestoreError),
    /// Reading or changing the Houston database (undelete).
    Houston(crate::houston::HoustonError),
    /// Finding or reading the platform's database secrets.
    Platform(crate::platform::PlatformError),
    /// Connecting to or querying PostgreSQL from this machine.
    Pg(crate::pg::PgError),
    Tunnel(crate::pgtunnel::TunnelError),
    /// A temporary database client pod.
    ClientPod(crate::clientpod::ClientPodError),
    /// Restoring a deployment (backup choice, pre-flight, outcome).
    Restore(crate::restore::RestoreError),
    /// A schedule expression Velero would reject.
    Cron(crate::cron::CronError),
    /// Waiting for a Velero Backup or Restore failed.
    Wait(crate::wait::WaitError),
    /// Creating, listing, describing or scheduling backups.
    Backup(crate::backup::BackupError),
    /// Fetching a Velero file (results, logs) through a DownloadRequest.
    Download(crate::velero::download::DownloadError),
    /// Gathering DR readiness (`kubectl astro status`).
    Status(crate::status::StatusError),
}

impl Error {
    /// The permission a 403 of the API server among this error's causes names, e.g.
    /// `create on restores.velero.io in namespace velero`.
    pub fn forbidden_need(&self) -> Option<String> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(kube::Error::Api(status)) = e.downcast_ref::<kube::Error>()
                && status.code == 403
            {
                return crate::client::forbidden_need(&status.message);
            }
            cause = e.source();
        }
        None
    }

    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl<E: Into<Error>> From<crate::pgtunnel::SessionError<E>> for Error {
    fn from(e: crate::pgtunnel::SessionError<E>) -> Self {
        match e {
            crate::pgtunnel::SessionError::Local(e) => Error::Pg(e),
            crate::pgtunnel::SessionError::Tunnel(e) => Error::Tunnel(e),
            crate::pgtunnel::SessionError::Body(e) => e.into(),
        }
    }
}

mod sqlproxy {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::sqlproxy::*;

    impl Diagnose for SqlProxyError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                SqlProxyError::BadInstanceName { .. } => ExitStatus::Usage,
                _ => ExitStatus::Refused,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
            SqlProxyError::BadInstanceName { .. } => {
                "pass the connection name shown by `gcloud sql instances describe NAME --format='value(connectionName)'`".into()
            }
            SqlProxyError::NoInstancesFlag { .. } | SqlProxyError::V2Proxy { .. } => {
                "edit the proxy Deployment by hand (`kubectl edit deploy pg-sqlproxy-gcloud-sqlproxy -n astronomer`)".into()
            }
            SqlProxyError::Ambiguous { .. } | SqlProxyError::FromNotFound { .. } => {
                "pass --from-instance PROJECT:REGION:INSTANCE naming the instance to replace".into()
            }
        })
        }
    }
}

mod houston {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::houston::*;

    impl Diagnose for HoustonError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                HoustonError::Query { .. } | HoustonError::RowCount { .. } => ExitStatus::Failed,
                HoustonError::NotHouston
                | HoustonError::HardDeleted { .. }
                | HoustonError::WorkspaceGone { .. }
                | HoustonError::AirflowDatabaseMissing { .. }
                | HoustonError::NamespaceTaken { .. } => ExitStatus::Refused,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
            HoustonError::Query { action, .. } if action.starts_with("commit") => {
                "whether the undelete was committed is unknown: look at the row with `kubectl astro restore undelete RELEASE --dry-run`, then re-run (the undelete is safe to repeat)".into()
            }
            HoustonError::Query { .. } => {
                "Houston was not changed (the undelete runs in one transaction, rolled back on error); check the connection with `kubectl astro dbconn`, then re-run (the undelete is safe to repeat)".into()
            }
            HoustonError::NotHouston => {
                "check which database `kubectl astro dbconn` resolves to (it should be <release>_houston)".into()
            }
            HoustonError::HardDeleted { .. } => {
                "only a database restore brings it back: restore the Houston database (and the Airflow database) from your provider's snapshot or a `kubectl astro backup db` dump with `pg_restore`, then run `kubectl astro restore undelete` again".into()
            }
            HoustonError::WorkspaceGone { .. } => {
                "re-create the workspace or move the row to another workspace first; --force undeletes anyway".into()
            }
            HoustonError::AirflowDatabaseMissing { .. } => {
                "restore the Airflow database with `pg_restore` first; --force undeletes anyway".into()
            }
            HoustonError::NamespaceTaken { .. } => {
                "restore into another namespace (--namespace, --namespace-mapping); --force undeletes anyway".into()
            }
            HoustonError::RowCount { .. } => {
                "look at the row with `kubectl astro dbconn -c 'SELECT \"releaseName\", \"deletedAt\" FROM \"Deployment\"'` and re-run".into()
            }
        })
        }
    }
}

mod cron {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::cron::*;

    impl Diagnose for CronError {
        fn exit_status(&self) -> ExitStatus {
            ExitStatus::Usage
        }
        fn next_step(&self) -> Option<String> {
            Some(
            "use five fields `minute hour day-of-month month day-of-week` (e.g. \"0 1 * * *\"), \
             a descriptor such as @daily or `@every 6h`, optionally prefixed by `CRON_TZ=<IANA zone> `"
                .into(),
        )
        }
    }
}

mod wait {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    use crate::wait::api_code;
    #[allow(unused_imports)]
    use crate::wait::*;

    impl Diagnose for WaitError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                WaitError::Gone { .. } => ExitStatus::Failed,
                WaitError::Watch { source, .. } => match api_code(source) {
                    Some(401 | 403) => ExitStatus::Refused,
                    _ => ExitStatus::Failed,
                },
            }
        }

        fn next_step(&self) -> Option<String> {
            match self {
                WaitError::Gone {
                    noun, namespace, ..
                } => Some(format!(
                    "list what exists with `kubectl get {noun}s -n {namespace}`"
                )),
                WaitError::Watch {
                    noun,
                    namespace,
                    name,
                    ..
                } => Some(format!(
                    "the {noun} keeps running on the server; check it with `kubectl get {noun} {name} -n {namespace} -o yaml`"
                )),
            }
        }
    }
}

mod client {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::client::*;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;

    impl Diagnose for KubeError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                KubeError::Config { .. } => ExitStatus::Usage,
                KubeError::Client(_) => ExitStatus::Usage,
                KubeError::Api { .. } => match self.status_code() {
                    Some(401 | 403) => ExitStatus::Refused,
                    _ => ExitStatus::Failed,
                },
            }
        }

        fn next_step(&self) -> Option<String> {
            match self {
            KubeError::Config { .. } => Some(
                "check --kubeconfig/KUBECONFIG and --context (`kubectl config get-contexts` lists them)".into(),
            ),
            KubeError::Client(_) => Some("check the cluster entry of your kubeconfig".into()),
            KubeError::Api { .. } => match self.status_code() {
                Some(401) => Some("your credentials were rejected; log in again (`kubectl get ns` should work)".into()),
                Some(403) => Some("your user lacks RBAC for this: bind it to the command's ClusterRole in deploy/rbac.yaml, then re-run".into()),
                Some(409) => Some("someone else kept changing the object meanwhile: re-run the command (it only writes what differs)".into()),
                _ => Some("check that the cluster is reachable: `kubectl get ns`".into()),
            },
        }
        }
    }
}

mod access {
    use super::Diagnose;
    use crate::access::AccessError;
    use crate::commands::exit::ExitStatus;

    impl Diagnose for AccessError {
        fn exit_status(&self) -> ExitStatus {
            ExitStatus::Refused
        }

        fn next_step(&self) -> Option<String> {
            match self {
                AccessError::Missing { role, .. } => Some(format!(
                    "ask a cluster admin to bind your user to ClusterRole {role} (`kubectl apply -f deploy/rbac.yaml`, then a ClusterRoleBinding); `kubectl auth can-i --list` shows what you may do now"
                )),
            }
        }
    }
}

mod velero_download {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::velero::download::*;

    impl Diagnose for DownloadError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                DownloadError::Kube(e) => e.exit_status(),
                _ => ExitStatus::Failed,
            }
        }
        fn next_step(&self) -> Option<String> {
            match self {
            DownloadError::Kube(e) => e.next_step(),
            DownloadError::Timeout { .. } => Some(
                "check that the Velero server runs (`kubectl get pods -n velero`) and its storage location is Available".into(),
            ),
            DownloadError::Http { .. } | DownloadError::Transport { .. } => Some(
                "this machine must reach the object store URL Velero hands out; try from a host with access, or read `velero backup logs`".into(),
            ),
            DownloadError::Decode { .. } | DownloadError::Interrupted { .. } => None,
        }
        }
    }
}

mod connection {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::connection::*;

    impl Diagnose for ConnectionError {
        fn exit_status(&self) -> ExitStatus {
            ExitStatus::Usage
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
            ConnectionError::Placeholder => {
                "restart Houston (`kubectl rollout restart deploy/<release>-houston -n <platform ns>`) so the bootstrapper rewrites it, or use `kubectl astro dbconn --bootstrap`".into()
            }
            ConnectionError::BadPercentEncoding { .. } | ConnectionError::NotUtf8 { .. } => {
                "percent-encode special characters of the user and password (e.g. ! as %21, @ as %40, % as %25)".into()
            }
            _ => "fix the secret value to postgres://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters)".into(),
        })
        }
    }
}

mod dispatch {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::dispatch::*;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;

    impl Diagnose for DispatchError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                DispatchError::Unknown { .. } => ExitStatus::Usage,
                DispatchError::NotInstalled { .. } | DispatchError::Exec { .. } => {
                    ExitStatus::Failed
                }
            }
        }

        fn next_step(&self) -> Option<String> {
            match self {
            DispatchError::Unknown { .. } => Some("run `kubectl astro` to list the commands".into()),
            DispatchError::NotInstalled { .. } => Some(
                "reinstall the plugin (`kubectl krew reinstall astro`); every kubectl-astro-* binary must sit beside kubectl-astro".into(),
            ),
            DispatchError::Exec { .. } => Some("check that the file is executable (`chmod +x`)".into()),
        }
        }
    }
}

mod pg {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::pg::*;

    impl Diagnose for PgError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                PgError::TlsSetup { .. } => ExitStatus::Usage,
                _ => ExitStatus::Failed,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
            PgError::Connect { .. } => "check that this machine reaches the database host (VPN, security groups), or drop --local to run from a pod in the cluster".into(),
            PgError::Tls { mode, .. } if mode.requires_tls() && *mode != crate::connection::SslMode::Require => "the server certificate did not verify: pass the CA that signed it with sslrootcert=/path/ca.pem in the connection (RDS: the region's global-bundle.pem), check the host name matches the certificate, or use sslmode=require to encrypt without verifying".into(),
            PgError::Tls { .. } => "check that the server accepts TLS on this port (ssl = on), or drop --local to run from a client pod in the cluster".into(),
            PgError::TlsSetup { .. } => "point sslrootcert at a readable PEM file with the CA certificate, or install the system CA bundle (ca-certificates)".into(),
            PgError::Query { .. } => "check the SQL; Houston tables are case-sensitive and need double quotes, e.g. \"Deployment\"".into(),
        })
        }
    }
}

mod release {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::release::*;

    impl Diagnose for ReleaseNameError {
        fn exit_status(&self) -> ExitStatus {
            ExitStatus::Usage
        }
        fn next_step(&self) -> Option<String> {
            Some("list deployments with `kubectl get ns -l platform-release` or in the Houston UI, and pass the release name exactly".into())
        }
    }
}

mod clientpod {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::clientpod::*;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;

    impl Diagnose for ClientPodError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                ClientPodError::Kube(e) => e.exit_status(),
                _ => ExitStatus::Failed,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
                ClientPodError::Kube(e) => return e.next_step(),
                ClientPodError::StartTimeout { namespace, .. } => format!(
                    "check scheduling and quotas with `kubectl get events -n {namespace}`; or use --local"
                ),
                ClientPodError::ImagePull { .. } => {
                    "pass an image the cluster can pull with --image (it needs psql)".into()
                }
                ClientPodError::Interrupted { .. } => return None,
                ClientPodError::CommandFailed { command, .. } => {
                    format!("see {command}'s message above; the pod and its Secret were deleted")
                }
                ClientPodError::Vanished { namespace, .. } => format!(
                    "see why with `kubectl get events -n {namespace}`, then re-run (a statement that writes: check first whether it was applied)"
                ),
                ClientPodError::Attach { .. } => {
                    "check that your user may create pods/attach (RBAC), or use --local".into()
                }
                ClientPodError::Terminal(_) => "run without a terminal, or use --local".into(),
            })
        }
    }
}

mod endpoint {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    use crate::endpoint::plan::PlanError;
    #[allow(unused_imports)]
    use crate::endpoint::*;

    impl Diagnose for EndpointError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                EndpointError::Target(_) => ExitStatus::Usage,
                EndpointError::Plan(PlanError::SqlProxy(e)) => e.exit_status(),
                EndpointError::Plan(_) | EndpointError::NotConfirmed | EndpointError::Declined => {
                    ExitStatus::Refused
                }
                EndpointError::Originals(_) | EndpointError::Partial { .. } => ExitStatus::Failed,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
            EndpointError::Target(_) => {
                "pass --db-host HOST [--db-port PORT], --db-connection URI (or ASTRO_DB_CONNECTION), or --sqlproxy-instance PROJECT:REGION:INSTANCE".into()
            }
            EndpointError::Plan(PlanError::SqlProxy(e)) => return e.next_step(),
            EndpointError::Plan(_) => {
                "check --platform-namespace; the platform must be restored before its endpoint can move".into()
            }
            EndpointError::Originals(_) => "fix the file or pass --save-to with another path; nothing was patched".into(),
            EndpointError::NotConfirmed => "re-run with --yes (see --dry-run for what would change)".into(),
            EndpointError::Declined => return None,
            EndpointError::Partial { .. } => {
                "re-run the same command: objects already moved are skipped, and the saved originals are kept".into()
            }
        })
        }
    }
}

mod platform_restore {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::restore::platform::*;

    impl Diagnose for PlatformRestoreError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                PlatformRestoreError::StoppedWaiting { .. }
                | PlatformRestoreError::Interrupted { .. } => ExitStatus::Failed,
                _ => ExitStatus::Refused,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
            PlatformRestoreError::BackupMissing { .. } => {
                "list backups with `kubectl astro backup list` (is Velero pointed at the old bucket, and has it synced?)".into()
            }
            PlatformRestoreError::BackupNotUsable { .. } => "pick another backup (`kubectl astro backup list`)".into(),
            PlatformRestoreError::StorageLocation { .. } => {
                "check `kubectl get backupstoragelocations -n velero` and the Velero logs; the location must be Available".into()
            }
            PlatformRestoreError::StoppedWaiting { name, namespace } => format!(
                "check it with `kubectl get restore {name} -n {namespace} -o yaml`; when it is Completed, `kubectl astro restore endpoint` moves the database endpoint"
            ),
            PlatformRestoreError::Interrupted { .. } => "re-run the command when you are ready".into(),
            PlatformRestoreError::NotConfirmed => "re-run with --yes (see --dry-run for what would happen)".into(),
            PlatformRestoreError::OtherPluginConfig { namespace, names } => format!(
                "restore platform writes its own, scoped to its restore: remove the other with `kubectl delete configmap {} -n {namespace}` (save it first with `kubectl get configmap -o yaml` if you still need it), then re-run",
                names.join(" ")
            ),
        })
        }
    }
}

mod restore {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::restore::*;

    impl Diagnose for RestoreError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                RestoreError::BackupNotFound { .. } | RestoreError::ScheduleEmpty { .. } => {
                    ExitStatus::Usage
                }
                RestoreError::RestoreFailed { .. }
                | RestoreError::StoppedWaiting { .. }
                | RestoreError::NothingRestored { .. }
                | RestoreError::NotAvailable { .. }
                | RestoreError::Download { .. } => ExitStatus::Failed,
                _ => ExitStatus::Refused,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
            RestoreError::BackupNotFound { .. } => "list backups with `kubectl astro restore RELEASE --list-backups` (or `kubectl astro backup list`) and pass one of them".into(),
            RestoreError::ScheduleEmpty { .. } => "check the schedule name with `kubectl get schedules.velero.io -n velero`, or use --from-backup".into(),
            RestoreError::BackupNotUsable { .. } => "pick another backup (`--list-backups` shows which are usable); --allow-partially-failed accepts PartiallyFailed ones".into(),
            RestoreError::NamespaceNotInBackup { .. } => "pick a backup that holds the namespace (`--list-backups`), or check the namespace with --namespace".into(),
            RestoreError::NoBackupFound { .. } => "check the namespace (--namespace) and the backups with `--list-backups`; --allow-partially-failed also considers PartiallyFailed backups".into(),
            RestoreError::StorageLocationUnavailable { .. } => "fix the storage location first (`kubectl get backupstoragelocations -n velero`; credentials, bucket); Velero rejects restores from an unavailable location".into(),
            RestoreError::NamespaceTerminating { .. } => "wait until the namespace is gone (`--wait-for-namespace` does that), or remove what blocks its finalizers".into(),
            RestoreError::NamespaceExists { .. } => "re-run with --existing-resource-policy update to overwrite objects that differ, with --yes to restore anyway, or restore side by side with --namespace-mapping".into(),
            RestoreError::NeedsConfirmation { .. } => "re-run with --yes, or in a terminal to answer the prompt".into(),
            RestoreError::Declined => return None,
            RestoreError::RestoreFailed { name, .. } => format!("see `velero restore describe {name} --details` and `velero restore logs {name}`"),
            RestoreError::StoppedWaiting { name, velero_namespace, release } => format!(
                "check it with `kubectl get restore {name} -n {velero_namespace} -o yaml`; once Completed, run `kubectl astro restore undelete {release}`"
            ),
            RestoreError::NothingRestored { name, backup, .. } => format!(
                "see `velero restore describe {name} --details`; check that backup {backup} holds the namespace (`kubectl astro restore RELEASE --list-backups`) and pick one that does"
            ),
            RestoreError::NotAvailable { namespace, .. } => format!("look at `kubectl get pods -n {namespace}` and the events of the pending Deployments"),
            RestoreError::Download { .. } => "check that this machine can reach the object store URL Velero hands out, and that you may create downloadrequests.velero.io".into(),
        })
        }
    }
}

mod backup {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::backup::*;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;

    impl Diagnose for BackupError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                BackupError::Kube(e) => e.exit_status(),
                BackupError::Platform(e) => e.exit_status(),
                BackupError::Wait(e) => e.exit_status(),
                BackupError::Cron(e) => e.exit_status(),
                BackupError::ClientPod(e) => e.exit_status(),
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
            BackupError::Kube(e) => return e.next_step(),
            BackupError::Platform(e) => return e.next_step(),
            BackupError::Wait(e) => return e.next_step(),
            BackupError::Cron(e) => return e.next_step(),
            BackupError::ClientPod(e) => return e.next_step(),
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
}

mod pgtunnel {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::pgtunnel::*;

    impl Diagnose for TunnelError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                TunnelError::Pod(e) => e.exit_status(),
                TunnelError::Unreachable { .. } => ExitStatus::Failed,
                TunnelError::Pg { source, .. } => source.exit_status(),
            }
        }

        fn next_step(&self) -> Option<String> {
            match self {
                TunnelError::Pod(e) => e.next_step(),
                TunnelError::Unreachable { namespace, .. } => Some(format!(
                    "check the host in the houston-backend secret, and that pods in namespace {namespace} may reach the database (NetworkPolicy, security groups); --local connects from this machine instead"
                )),
                TunnelError::Pg { source, .. } => source.next_step(),
            }
        }
    }
}

mod platform {
    use super::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    #[allow(unused_imports)]
    use crate::platform::*;

    impl Diagnose for PlatformError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                PlatformError::Forbidden { .. } => ExitStatus::Refused,
                PlatformError::Kube(e) => e.exit_status(),
                PlatformError::HoustonUnresolved { fallback, .. } => fallback.exit_status(),
                _ => ExitStatus::Usage,
            }
        }

        fn next_step(&self) -> Option<String> {
            Some(match self {
                PlatformError::SecretMissing { namespace, .. } => format!(
                    "list the secrets with `kubectl get secret -n {namespace}`; check --platform-namespace, --platform-release, --release and --namespace"
                ),
                PlatformError::NamespaceMissing { namespace } => format!(
                    "namespace {namespace} does not exist: `kubectl get ns` lists them; pass --platform-namespace, or --namespace for a deployment in a pre-created namespace"
                ),
                PlatformError::KeyMissing {
                    namespace, name, ..
                }
                | PlatformError::NotBase64 {
                    namespace, name, ..
                }
                | PlatformError::NotUtf8 {
                    namespace, name, ..
                } => format!(
                    "inspect it with `kubectl get secret {name} -n {namespace} -o yaml` and fix the value"
                ),
                PlatformError::BadConnection {
                    source,
                    namespace,
                    name,
                    ..
                } => match source.next_step() {
                    Some(step) => format!("{step} (secret {namespace}/{name})"),
                    None => return None,
                },
                PlatformError::HoustonUnresolved { fallback, .. } => return fallback.next_step(),
                PlatformError::BadPgbouncerConfig {
                    namespace, name, ..
                } => format!(
                    "inspect it with `kubectl get secret {name} -n {namespace} -o jsonpath='{{.data.pgbouncer\\.ini}}' | base64 -d`"
                ),
                PlatformError::AmbiguousRelease { .. } => {
                    "pass the one you mean with --platform-release".into()
                }
                PlatformError::Forbidden { action, .. } => format!(
                    "your kubeconfig user needs RBAC to {action}; check with `kubectl auth can-i` or ask a cluster admin"
                ),
                PlatformError::Kube(e) => return e.next_step(),
            })
        }
    }
}

mod status {
    use super::Diagnose;
    use crate::commands::exit::ExitStatus;
    use crate::status::StatusError;

    impl Diagnose for StatusError {
        fn exit_status(&self) -> ExitStatus {
            match self {
                StatusError::Kube(e) => e.exit_status(),
                StatusError::BadInput { .. } => ExitStatus::Usage,
            }
        }

        fn next_step(&self) -> Option<String> {
            match self {
                StatusError::Kube(e) => e.next_step(),
                StatusError::BadInput { .. } => Some("see `kubectl astro status --help`".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_deep_in_the_causes_is_refused_and_named() {
        let status = kube::core::Status {
            code: 403,
            message: r#"downloadrequests.velero.io is forbidden: User "u" cannot list resource "downloadrequests" in API group "velero.io" in the namespace "velero""#.into(),
            reason: "Forbidden".into(),
            ..kube::core::Status::default()
        };
        let kube = crate::client::KubeError::api(
            "watch DownloadRequest x",
            kube::Error::Api(Box::new(status)),
        );
        let err = Error::Download(crate::velero::download::DownloadError::Kube(kube));
        assert_eq!(err.exit_status(), ExitStatus::Refused);
        assert_eq!(
            err.forbidden_need().as_deref(),
            Some("list on downloadrequests.velero.io in namespace velero")
        );
        assert!(err.next_step().unwrap().starts_with(
            "forbidden: this needs list on downloadrequests.velero.io in namespace velero;"
        ));
        assert_eq!(Error::Internal("x".into()).forbidden_need(), None);

        // Through a watch that failed its initial list (kube's waits box their errors).
        let status = kube::core::Status {
            code: 403,
            message: r#"pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace "astronomer""#.into(),
            ..kube::core::Status::default()
        };
        let watch =
            kube::runtime::watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)));
        let kube = crate::client::KubeError::api(
            "watch pod p",
            kube::Error::Service(Box::new(kube::runtime::wait::Error::ProbeFailed(watch))),
        );
        let err = Error::Kube(kube);
        assert_eq!(
            err.forbidden_need().as_deref(),
            Some("list on pods in namespace astronomer")
        );
    }
}
