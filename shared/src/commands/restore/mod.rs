//! `kubectl astro restore`: bring one deployment back (Velero restore of its namespace,
//! then the Houston undelete), or only the undelete. More subcommands plug into [`Command`].

pub mod endpoint;
mod houston;
pub mod platform;
mod release;
mod undelete;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::clientpod;
use crate::commands::cli::GlobalArgs;
use crate::commands::error::{Error, Result};
use crate::commands::exit::ExitStatus;
use crate::output::{self, Confirmation, OutputFormat};
use crate::pgtunnel::{DbAccess, RelaySettings};
use crate::restore::RestoreError;
use crate::restore::plan::NamespaceMapping;
use crate::restore::preflight::ExistingPolicy;

/// `kubectl astro restore`.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-astro-restore",
    version,
    about = "Restore an Airflow deployment from a Velero backup and undelete it in Houston",
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A subcommand; without one, restores RELEASE.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `restore RELEASE` flags.
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// The subcommands of `kubectl astro restore`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Only clear `deletedAt` of a soft-deleted deployment in Houston (runbook step 7).
    Undelete(UndeleteArgs),
    /// Point the platform and every deployment at a new database endpoint (runbook step 12).
    Endpoint(endpoint::EndpointArgs),
    /// Restore the whole platform from a backup, then optionally move the endpoint (steps 9-12).
    Platform(platform::PlatformArgs),
}

/// Flags for steps that change something.
#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    /// Print what would be created and executed (Restore YAML, SQL), change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Output format of the result.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Where Houston's database is reached from.
#[derive(Debug, Clone, Args)]
pub struct HoustonAccessArgs {
    /// Connect to Houston's database from this machine instead of through a pod in the cluster.
    #[arg(long)]
    pub local: bool,
    /// Image of the pod that reaches the database from the cluster (needs bash and cat).
    #[arg(long, value_name = "IMAGE", default_value = clientpod::DEFAULT_IMAGE)]
    pub image: String,
    /// Seconds to wait for that pod to start.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub pod_timeout: u64,
}

impl HoustonAccessArgs {
    /// Where connections are made from, for this platform.
    pub fn access(&self, platform_namespace: &str, platform_release: &str) -> DbAccess {
        if self.local {
            return DbAccess::Local;
        }
        DbAccess::Cluster(RelaySettings {
            namespace: platform_namespace.to_owned(),
            platform_release: platform_release.to_owned(),
            image: self.image.clone(),
            start_timeout: Duration::from_secs(self.pod_timeout),
        })
    }
}

/// `kubectl astro restore RELEASE`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// Release name of the deployment, e.g. weightless-meteor-5042.
    #[arg(value_name = "RELEASE", required = true)]
    pub release: Option<String>,
    /// Restore from this Velero backup.
    #[arg(long, value_name = "BACKUP", conflicts_with = "from_schedule")]
    pub from_backup: Option<String>,
    /// Restore from the newest usable backup of this Velero schedule.
    #[arg(long, value_name = "SCHEDULE")]
    pub from_schedule: Option<String>,
    /// Also consider PartiallyFailed backups.
    #[arg(long)]
    pub allow_partially_failed: bool,
    /// List the candidate backups with their verdicts and exit.
    #[arg(long)]
    pub list_backups: bool,
    /// The deployment's namespace (namespace pools, single-namespace mode); default: Houston's
    /// namespace column, else <platform-namespace>-<release>.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Restore the namespace under another name (SRC:DST), e.g. for a drill.
    #[arg(long, value_name = "SRC:DST")]
    pub namespace_mapping: Option<NamespaceMapping>,
    /// What Velero does with objects that already exist.
    #[arg(long, value_name = "POLICY", value_parser = existing_policy_parser())]
    pub existing_resource_policy: Option<ExistingPolicy>,
    /// If the namespace is Terminating, wait until it is gone instead of refusing.
    #[arg(long)]
    pub wait_for_namespace: bool,
    /// Do not undelete the deployment in Houston after the restore.
    #[arg(long)]
    pub no_undelete: bool,
    /// Undelete even if its workspace or Airflow database is gone.
    #[arg(long)]
    pub force: bool,
    /// After a Completed restore, wait until the namespace's Deployments are Available.
    #[arg(long)]
    pub verify: bool,
    /// Stop waiting for the restore after this long (e.g. 30m); it keeps running.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<jiff::SignedDuration>,
    /// How long --verify and --wait-for-namespace wait.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub verify_timeout: jiff::SignedDuration,
    /// Houston access.
    #[command(flatten)]
    pub houston: HoustonAccessArgs,
    /// Change-step flags.
    #[command(flatten)]
    pub change: ChangeArgs,
}

impl RestoreArgs {
    /// Whether any flag of `restore RELEASE` was given (they do not apply to subcommands).
    pub fn has_restore_flags(&self) -> bool {
        self.from_backup.is_some()
            || self.from_schedule.is_some()
            || self.namespace.is_some()
            || self.namespace_mapping.is_some()
            || self.existing_resource_policy.is_some()
            || self.allow_partially_failed
            || self.list_backups
            || self.wait_for_namespace
            || self.no_undelete
            || self.verify
            || self.change.dry_run
            || self.change.yes
            || self.houston.local
    }
}

/// `kubectl astro restore undelete RELEASE`.
#[derive(Debug, Clone, Args)]
pub struct UndeleteArgs {
    /// Release name of the deployment.
    #[arg(value_name = "RELEASE")]
    pub release: String,
    /// Undelete even if its workspace or Airflow database is gone.
    #[arg(long)]
    pub force: bool,
    /// Houston access.
    #[command(flatten)]
    pub houston: HoustonAccessArgs,
    /// Change-step flags.
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<ExitStatus> {
    if cli.command.is_some() && cli.restore.has_restore_flags() {
        return Err(Error::usage(
            "flags of `restore RELEASE` were given before a subcommand",
            "put the subcommand's own flags after it, e.g. `kubectl astro restore undelete RELEASE --yes`",
        ));
    }
    match cli.command {
        Some(Command::Undelete(args)) => undelete::run(&cli.global, &args).await,
        Some(Command::Endpoint(args)) => endpoint::run(&cli.global, &args).await,
        Some(Command::Platform(args)) => platform::run(&cli.global, &args).await,
        None => release::run(&cli.global, &cli.restore).await,
    }
}

/// `--existing-resource-policy none|update` (clap lists the values in `--help`).
fn existing_policy_parser() -> impl clap::builder::TypedValueParser<Value = ExistingPolicy> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(ExistingPolicy::NAMES)
        .map(|name| ExistingPolicy::parse(&name).unwrap_or(ExistingPolicy::None))
}

fn to_std(d: jiff::SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Asks on a terminal; `--yes` skips; with no terminal, `refusal` is returned.
fn confirm(
    prompt: &str,
    yes: bool,
    refusal: impl FnOnce() -> RestoreError,
) -> Result<(), RestoreError> {
    match output::confirm(prompt, yes) {
        Confirmation::Yes => Ok(()),
        Confirmation::Declined => Err(RestoreError::Declined),
        Confirmation::NoTerminal => Err(refusal()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_restore_and_undelete() {
        let cli = Cli::try_parse_from([
            "kubectl-astro-restore",
            "celestial-zenith-1234",
            "--from-backup",
            "b1",
            "--yes",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            cli.restore.release.as_deref(),
            Some("celestial-zenith-1234")
        );
        let cli = Cli::try_parse_from([
            "kubectl-astro-restore",
            "undelete",
            "celestial-zenith-1234",
            "--dry-run",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Undelete(ref a)) if a.change.dry_run));
        assert!(Cli::try_parse_from(["kubectl-astro-restore"]).is_err());
        // Global flags may come before the subcommand, as kubectl users type them.
        let cli = Cli::try_parse_from([
            "kubectl-astro-restore",
            "--kubeconfig",
            "/k",
            "undelete",
            "celestial-zenith-1234",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Some(Command::Undelete(ref a)) if a.release == "celestial-zenith-1234")
        );
        // Restore flags do not mix with a subcommand.
        let cli = Cli::try_parse_from([
            "kubectl-astro-restore",
            "--from-backup",
            "b",
            "undelete",
            "x",
        ])
        .unwrap();
        assert!(cli.restore.has_restore_flags());
        assert!(
            Cli::try_parse_from([
                "kubectl-astro-restore",
                "x",
                "--from-backup",
                "a",
                "--from-schedule",
                "b"
            ])
            .is_err()
        );
    }
}
