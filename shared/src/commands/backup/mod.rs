//! `kubectl astro backup`: create, schedule, list and describe Velero backups of the
//! platform and its Airflow deployments, and dump the Houston or an Airflow database.

// `Error` is the crate's edge error; commands return it once per run.
#![allow(clippy::result_large_err)]

use crate::commands::preflight;
use clap::{Args, CommandFactory, Parser, Subcommand};
use jiff::Timestamp;

use crate::backup::plan::{self, BackupOptions, POLICY_CONFIGMAP, PolicyAction, Scope};
mod db;
mod describe;

use crate::backup::{create, list, schedule};
use crate::commands::cli::GlobalArgs;
use crate::commands::cli::client_from;
use crate::commands::error::{Error, Result};
use crate::commands::exit::ExitStatus;
use crate::output::{OutputFormat, print_stdout};
use crate::release::ReleaseName;
use crate::wait::WaitOptions;

/// Velero backups of the Astronomer platform, done right.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kubectl-astro-backup",
    version,
    about = "Velero backups and schedules of the Astronomer platform and its deployments; database dumps",
    after_help = "Examples:\n  \
        kubectl astro backup create --wait\n  \
        kubectl astro backup create --release weightless-meteor-5042 --ttl 168h\n  \
        kubectl astro backup create --all --dry-run -o yaml\n  \
        kubectl astro backup schedule create nightly --schedule '0 1 * * *'\n  \
        kubectl astro backup list --release weightless-meteor-5042\n  \
        kubectl astro backup describe astro-all-20261125010000\n  \
        kubectl astro backup db --out houston.dump"
)]
pub struct Cli {
    /// Shared options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `backup` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Create a Velero Backup of the platform and/or deployment namespaces.
    Create(CreateArgs),
    /// Velero Schedules (create, list, pause, unpause).
    Schedule {
        /// What to do with schedules.
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// List backups like `velero backup get`, plus the namespaces each one names.
    List(ListArgs),
    /// Show a backup: phase, errors with their reasons, progress.
    Describe(DescribeArgs),
    /// pg_dump the Houston database (or one deployment's Airflow database) to a local file.
    Db(db::DbArgs),
    /// Print a shell completion script.
    Completion {
        /// bash, zsh or fish.
        shell: clap_complete::Shell,
    },
}

/// Which namespaces to back up (default: all).
#[derive(Debug, Clone, Default, Args)]
pub struct ScopeArgs {
    /// Back up this deployment's namespace (repeatable), e.g. weightless-meteor-5042.
    #[arg(long = "release", value_name = "RELEASE", value_parser = ReleaseName::parse)]
    pub releases: Vec<ReleaseName>,
    /// Back up the platform namespace.
    #[arg(long)]
    pub platform: bool,
    /// The platform namespace and every deployment namespace (the default).
    #[arg(long)]
    pub all: bool,
}

/// Flags that shape the Backup spec (the same as `velero backup create`).
#[derive(Debug, Clone, Default, Args)]
pub struct BackupFlags {
    /// How long Velero keeps the backup (Go duration, e.g. 168h; default: the server's, 720h).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Backup storage location (default: the one marked default).
    #[arg(long, value_name = "NAME")]
    pub storage_location: Option<String>,
    /// Take native volume snapshots (`--snapshot-volumes=false` to skip; default: server's).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub snapshot_volumes: Option<bool>,
    /// Labels for the Backup/Schedule (key=value,key2=value2).
    #[arg(long, value_name = "LABELS")]
    pub labels: Option<String>,
}

impl BackupFlags {
    fn options(&self) -> Result<BackupOptions> {
        Ok(BackupOptions {
            ttl: self.ttl.as_deref().map(plan::parse_ttl).transpose()?,
            storage_location: self.storage_location.clone(),
            snapshot_volumes: self.snapshot_volumes,
            labels: match &self.labels {
                Some(l) => plan::parse_labels(l)?,
                None => Default::default(),
            },
        })
    }
}

/// `backup create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Backup name (default: astro-<scope>-<UTC yyyymmddhhmmss>); at most 63 characters.
    pub name: Option<String>,
    /// Scope.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Spec flags.
    #[command(flatten)]
    pub flags: BackupFlags,
    /// Wait until the backup finishes; exit non-zero unless it is Completed.
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// Print what would be created (after the pre-flight checks) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `backup schedule …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ScheduleCommand {
    /// Create a Velero Schedule (same scoping and Redis policy as `backup create`).
    Create(ScheduleCreateArgs),
    /// List schedules like `velero schedule get`.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Pause a schedule (no backups until unpaused).
    Pause {
        /// Schedule name.
        name: String,
    },
    /// Unpause a schedule.
    Unpause {
        /// Schedule name.
        name: String,
    },
}

/// `backup schedule create`.
#[derive(Debug, Clone, Args)]
pub struct ScheduleCreateArgs {
    /// Schedule name (at most 48 characters: backups are named <schedule>-<14 digits>).
    pub name: String,
    /// Cron expression (5 fields, UTC unless prefixed by CRON_TZ=<zone>), a descriptor
    /// such as @daily, or `@every 6h`.
    #[arg(long, value_name = "CRON")]
    pub schedule: String,
    /// Scope.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Spec flags for the backups it creates.
    #[command(flatten)]
    pub flags: BackupFlags,
    /// Print what would be created and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `backup list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only backups whose spec names this deployment's namespace.
    #[arg(long, value_name = "RELEASE", value_parser = ReleaseName::parse)]
    pub release: Option<ReleaseName>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `backup describe`.
#[derive(Debug, Clone, Args)]
pub struct DescribeArgs {
    /// Backup name.
    pub name: String,
    /// Output format (json/yaml print the Backup object).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Renders results for `-o json|yaml` (one object as itself, as `kubectl get -o json`,
/// several as a `List`) or as YAML documents for text. Dry runs use [`print_dry_run`].
pub fn render_objects(values: &[serde_json::Value], output: OutputFormat) -> Result<String> {
    Ok(match (output, values) {
        (OutputFormat::Json, [one]) => crate::output::to_json(one, "the object")?,
        _ => crate::output::render_objects(output, values)?,
    })
}

/// `--dry-run`: the objects as the apply-able stream of every command (YAML documents, or
/// a `v1 List` with `-o json` even for one object), for `kubectl create -f -`.
fn print_dry_run(values: &[serde_json::Value], output: OutputFormat) -> Result<()> {
    let format = match output {
        OutputFormat::Text => OutputFormat::Yaml,
        other => other,
    };
    Ok(crate::output::emit_objects(format, values)?)
}

fn print(text: &str) -> Result<()> {
    Ok(print_stdout(text)?)
}

/// A typed Velero object as JSON, for printing.
fn velero_value<T: serde::Serialize>(object: &T) -> Result<serde_json::Value> {
    serde_json::to_value(object).map_err(|e| Error::Internal(format!("Velero object: {e}")))
}

fn scope_of(args: &ScopeArgs) -> Result<Scope> {
    Ok(Scope::from_flags(
        args.all,
        args.platform,
        args.releases.clone(),
    )?)
}

fn policy_word(action: &PolicyAction) -> &'static str {
    match action {
        PolicyAction::Create(_) => "created",
        PolicyAction::Update(_) => "updated",
        PolicyAction::Unchanged => "unchanged",
    }
}

/// Runs `kubectl astro backup`.
pub async fn run(cli: Cli) -> Result<ExitStatus> {
    let global = cli.global;
    match cli.command {
        Command::Completion { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(
                shell,
                &mut command,
                "kubectl-astro-backup",
                &mut std::io::stdout(),
            );
            Ok(ExitStatus::Success)
        }
        Command::Create(args) => run_create(&global, args).await,
        Command::Schedule { command } => run_schedule(&global, command).await,
        Command::List(args) => run_list(&global, args).await,
        Command::Describe(args) => {
            let client = client_from(&global).await?;
            preflight::check(&client, &preflight::backup_describe(&global)).await?;
            let d = crate::backup::describe::collect(&client, &global.velero_namespace, &args.name)
                .await?;
            match args.output {
                OutputFormat::Text => print(&describe::render(&d))?,
                other => print(&render_objects(&[velero_value(&d.backup)?], other)?)?,
            }
            Ok(ExitStatus::Success)
        }
        Command::Db(args) => db::run(&global, args).await,
    }
}

async fn run_create(global: &GlobalArgs, args: CreateArgs) -> Result<ExitStatus> {
    let scope = scope_of(&args.scope)?;
    let opts = args.flags.options()?;
    if args.dry_run && args.wait {
        return Err(Error::usage(
            "--dry-run and --wait cannot be combined",
            "drop one of them",
        ));
    }
    let client = client_from(global).await?;
    preflight::check(&client, &preflight::backup_create(global, false, args.wait)).await?;
    let plan =
        create::prepare(&client, &global.site(), &scope, args.name.as_deref(), &opts).await?;
    if args.dry_run {
        print_dry_run(
            &plan
                .objects()
                .map_err(|e| Error::Internal(format!("objects: {e}")))?,
            args.output,
        )?;
        return Ok(ExitStatus::Success);
    }
    let name = plan.backup.metadata.name.clone().unwrap_or_default();
    let created = create::apply(&client, &plan).await?;
    if args.output == OutputFormat::Text {
        let ns = &global.velero_namespace;
        print(&format!(
            "backup {ns}/{name} created\n  namespaces: {}\n  storage location: {}\n  Redis volume data skipped by configmap {ns}/{POLICY_CONFIGMAP} ({})\n",
            plan.scoped.namespaces.join(", "),
            plan.scoped.storage_location,
            policy_word(&plan.policy),
        ))?;
    }
    if !args.wait {
        if args.output == OutputFormat::Text {
            print(&format!(
                "follow it with: kubectl astro backup describe {name}\n"
            ))?;
        } else {
            print(&render_objects(&[velero_value(&created)?], args.output)?)?;
        }
        return Ok(ExitStatus::Success);
    }
    let done = create::wait_and_report(
        &client,
        &global.velero_namespace,
        &name,
        &WaitOptions::default(),
    )
    .await?;
    if args.output == OutputFormat::Text {
        let status = done.status.clone().unwrap_or_default();
        let progress = status.progress.clone().unwrap_or_default();
        print(&format!(
            "backup {name} Completed: {}/{} items, {} warnings\n",
            progress.items_backed_up.unwrap_or(0),
            progress.total_items.unwrap_or(0),
            status.warnings.unwrap_or(0)
        ))?;
    } else {
        print(&render_objects(&[velero_value(&done)?], args.output)?)?;
    }
    Ok(ExitStatus::Success)
}

async fn run_schedule(global: &GlobalArgs, command: ScheduleCommand) -> Result<ExitStatus> {
    match command {
        ScheduleCommand::Create(args) => {
            let scope = scope_of(&args.scope)?;
            let opts = args.flags.options()?;
            // Check the expression before touching the cluster: a typo is a usage error.
            crate::cron::parse(&args.schedule)?;
            let client = client_from(global).await?;
            preflight::check(&client, &preflight::backup_create(global, true, false)).await?;
            let plan = schedule::prepare(
                &client,
                &global.site(),
                &args.name,
                &args.schedule,
                &scope,
                &opts,
            )
            .await?;
            let next = schedule::describe_next_runs(&plan.cron, Timestamp::now()).join("\n") + "\n";
            if args.dry_run {
                print_dry_run(
                    &plan
                        .objects()
                        .map_err(|e| Error::Internal(format!("objects: {e}")))?,
                    args.output,
                )?;
                eprint!("{next}");
                return Ok(ExitStatus::Success);
            }
            let created = schedule::apply(&client, &plan).await?;
            if args.output == OutputFormat::Text {
                print(&format!(
                    "schedule {}/{} created (Redis volume data skipped by configmap {}/{POLICY_CONFIGMAP}, {})\n{next}",
                    global.velero_namespace,
                    args.name,
                    global.velero_namespace,
                    policy_word(&plan.policy)
                ))?;
            } else {
                print(&render_objects(&[velero_value(&created)?], args.output)?)?;
                eprint!("{next}");
            }
            Ok(ExitStatus::Success)
        }
        ScheduleCommand::List { output } => {
            let client = client_from(global).await?;
            preflight::check(&client, &preflight::backup_list(global, true)).await?;
            let schedules = schedule::collect_schedules(&client, &global.velero_namespace).await?;
            match output {
                OutputFormat::Text => {
                    let now = Timestamp::now();
                    let rows = schedules.iter().map(|s| schedule::row(s, now));
                    print(&crate::output::table(&schedule::HEADER, rows))?
                }
                other => {
                    let v = serde_json::json!({"apiVersion": "velero.io/v1", "kind": "ScheduleList", "items": schedules});
                    print(&render_objects(&[v], other)?)?;
                }
            }
            Ok(ExitStatus::Success)
        }
        ScheduleCommand::Pause { name } => set_paused(global, &name, true).await,
        ScheduleCommand::Unpause { name } => set_paused(global, &name, false).await,
    }
}

async fn set_paused(global: &GlobalArgs, name: &str, paused: bool) -> Result<ExitStatus> {
    let client = client_from(global).await?;
    preflight::check(&client, &preflight::schedule_pause(global)).await?;
    schedule::set_paused(&client, &global.velero_namespace, name, paused).await?;
    let word = if paused { "paused" } else { "unpaused" };
    print(&format!(
        "schedule {}/{name} {word}\n",
        global.velero_namespace
    ))?;
    Ok(ExitStatus::Success)
}

async fn run_list(global: &GlobalArgs, args: ListArgs) -> Result<ExitStatus> {
    let client = client_from(global).await?;
    preflight::check(&client, &preflight::backup_list(global, false)).await?;
    let namespace = args
        .release
        .as_ref()
        .map(|r| crate::namespaces::default_deployment_namespace(&global.platform_namespace, r));
    match args.output {
        OutputFormat::Text => {
            let rows = list::collect_rows(
                &client,
                &global.velero_namespace,
                namespace.as_deref(),
                Timestamp::now(),
            )
            .await?;
            print(&crate::output::table(
                &list::HEADER,
                rows.iter().map(list::Row::cells),
            ))?;
        }
        other => {
            let items =
                list::collect_backups(&client, &global.velero_namespace, namespace.as_deref())
                    .await?;
            let v = serde_json::json!({"apiVersion": "velero.io/v1", "kind": "BackupList", "items": items});
            print(&render_objects(&[v], other)?)?;
        }
    }
    Ok(ExitStatus::Success)
}

/// The clap definition, for the dispatcher's completion tree.
pub fn command() -> clap::Command {
    Cli::command()
}
