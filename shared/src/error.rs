//! The one error type every command returns, wrapping each module's typed error.
//! Each wrapped error knows its exit status and the next step to suggest.

use crate::exit::ExitStatus;

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
                match self {
                    $( Error::$variant(e) => e.exit_status(), )*
                    Error::Usage { .. } => ExitStatus::Usage,
                }
            }

            /// The next step to print under the error, if any.
            pub fn next_step(&self) -> Option<String> {
                match self {
                    $( Error::$variant(e) => e.next_step(), )*
                    Error::Usage { hint, .. } => hint.clone(),
                }
            }
        }
    };
}

module_errors! {
    /// Building the Kubernetes client or talking to the API server.
    Kube(crate::client::KubeError),
    /// `kubectl astro <cmd>` could not be dispatched.
    Dispatch(crate::dispatch::DispatchError),
    /// A release name that is not valid.
    Release(crate::release::ReleaseNameError),
    /// A PostgreSQL connection string that cannot be used.
    Connection(crate::connection::ConnectionError),
    /// Moving the platform to a new database endpoint.
    Endpoint(crate::endpoint::EndpointError),
    /// Restoring the whole platform from a backup.
    PlatformRestore(crate::platform_restore::PlatformRestoreError),
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
