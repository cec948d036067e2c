//! `kubectl astro restore`: bring one deployment back (Velero restore of its namespace,
//! then the Houston undelete), or only the undelete. More subcommands plug into [`Command`].

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kube::Api;
use kube::api::PostParams;

use crate::cli::{GlobalArgs, OutputFormat, print_stdout};
use crate::clientpod;
use crate::error::{Error, Result};
use crate::exit::ExitStatus;
use crate::houston::{self, DeploymentColumns, DeploymentStatus, HoustonError, UndeletePlan};
use crate::pgtunnel::{self, DbAccess, RelaySettings};
use crate::release::ReleaseName;
use crate::restore::choice::{self, BackupSource, Choice, Containment};
use crate::restore::namespace::{self, ResolvedNamespace};
use crate::restore::outcome::Outcome;
use crate::restore::plan::{self, NamespaceMapping, RestorePlan};
use crate::restore::preflight::{self, ExistingPolicy, NamespaceAction};
use crate::restore::{RestoreError, collect, download, watch};
use crate::velero::Restore;

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
    Endpoint(crate::endpoint::EndpointArgs),
    /// Restore the whole platform from a backup, then optionally move the endpoint (steps 9-12).
    Platform(crate::platform_restore::PlatformArgs),
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
    #[arg(long, value_enum, value_name = "POLICY")]
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
        Some(Command::Undelete(args)) => run_undelete(&cli.global, &args).await,
        Some(Command::Endpoint(args)) => crate::endpoint::run(&cli.global, &args).await,
        Some(Command::Platform(args)) => crate::platform_restore::run(&cli.global, &args).await,
        None => run_restore(&cli.global, &cli.restore).await,
    }
}

fn note(line: impl AsRef<str>) {
    eprintln!("{}", line.as_ref());
}

fn to_std(d: jiff::SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Houston as seen for one release, and how to reach it again.
struct HoustonView {
    columns: DeploymentColumns,
    status: DeploymentStatus,
    connection: crate::connection::PgConnection,
    access: DbAccess,
    platform_release: String,
}

async fn houston_view(
    kube: &kube::Client,
    global: &GlobalArgs,
    release: &ReleaseName,
    reach: &HoustonAccessArgs,
) -> Result<HoustonView> {
    let platform = crate::platform::collect_platform_release(
        kube,
        &global.platform_namespace,
        global.platform_release.as_deref(),
    )
    .await?;
    let resolved = crate::platform::collect_connection(
        kube,
        &global.platform_namespace,
        &platform,
        &crate::platform::Target::Houston,
    )
    .await?;
    for n in &resolved.notes {
        note(format!("houston: {n}"));
    }
    let access = reach.access(&global.platform_namespace, &platform.name);
    if let DbAccess::Cluster(s) = &access {
        note(format!(
            "houston: reading through a pod in namespace {} (--local connects from this machine)",
            s.namespace
        ));
    }
    let (columns, status) =
        pgtunnel::with_connection(kube, &access, &resolved.connection, async |client| {
            let columns = houston::collect_columns(client).await?;
            let status = houston::collect_status(client, &columns, release).await?;
            Ok::<_, HoustonError>((columns, status))
        })
        .await?;
    Ok(HoustonView {
        columns,
        status,
        connection: resolved.connection,
        access,
        platform_release: platform.name,
    })
}

/// Re-reads the row (time passed since the view) and runs the checked one-row undelete,
/// in one session; `None` when someone undeleted it meanwhile.
async fn undelete_now(
    kube: &kube::Client,
    view: &HoustonView,
    release: &ReleaseName,
    force: bool,
) -> Result<Option<houston::Undeleted>> {
    let done = pgtunnel::with_connection(kube, &view.access, &view.connection, async |client| {
        let status = houston::collect_status(client, &view.columns, release).await?;
        match houston::plan_undelete(release, &status, force)? {
            UndeletePlan::NothingToDo => Ok::<_, HoustonError>(None),
            UndeletePlan::Undelete { .. } => Ok(Some(houston::undelete(client, release).await?)),
        }
    })
    .await?;
    Ok(done)
}

/// How the undelete would reach Houston, for `--dry-run`.
fn describe_access(view: &HoustonView) -> String {
    match &view.access {
        DbAccess::Local => "from this machine (--local)".to_owned(),
        DbAccess::Cluster(s) => {
            let pod = pgtunnel::plan_relay(s, &view.connection).pod();
            let yaml = serde_saphyr::to_string(&pod).unwrap_or_else(|e| format!("({e})\n"));
            let mut text = format!(
                "through a temporary relay pod in namespace {} (deleted afterwards; no Secret, the password stays in the protocol stream):\n",
                s.namespace
            );
            for line in yaml.lines() {
                text.push_str(&format!("#   {line}\n"));
            }
            text.push_str("# each connection execs in it: bash -c\n");
            for line in pgtunnel::RELAY_SCRIPT.lines() {
                text.push_str(&format!("#   {line}\n"));
            }
            text
        }
    }
}

fn describe_status(release: &ReleaseName, status: &DeploymentStatus) -> String {
    match status {
        DeploymentStatus::NotFound => format!("houston: {release} has no Deployment row"),
        DeploymentStatus::Active { .. } => format!("houston: {release} is live (not deleted)"),
        DeploymentStatus::SoftDeleted(s) => format!(
            "houston: {release} was soft-deleted at {} UTC ({} days ago); workspace {} {}, Airflow database {} {}",
            s.deleted_at,
            s.age_days(),
            s.workspace_id.as_deref().unwrap_or("(none)"),
            if s.workspace_exists {
                "exists"
            } else {
                "is gone"
            },
            release.airflow_database(),
            if s.airflow_db_exists {
                "exists"
            } else {
                "is gone"
            },
        ),
    }
}

/// Asks on a terminal; `--yes` skips; with no terminal, `refusal` is returned.
fn confirm(
    prompt: &str,
    yes: bool,
    refusal: impl FnOnce() -> RestoreError,
) -> Result<(), RestoreError> {
    if yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(refusal());
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
        .map_err(|_| refusal_fallback(prompt))?;
    if ok {
        Ok(())
    } else {
        Err(RestoreError::Declined)
    }
}

fn print_result<T: serde::Serialize>(
    format: OutputFormat,
    text: &str,
    value: &T,
) -> std::io::Result<()> {
    let out = match format {
        OutputFormat::Text => text.to_owned(),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
            s.push('\n');
            s
        }
        OutputFormat::Yaml => serde_saphyr::to_string(value).unwrap_or_default(),
    };
    print_stdout(&out)
}

/// The prompt could not be read (no usable terminal after all).
fn refusal_fallback(prompt: &str) -> RestoreError {
    RestoreError::NeedsConfirmation {
        what: prompt.trim_end_matches('?').to_owned(),
    }
}

fn output_error(e: std::io::Error) -> Error {
    Error::usage(
        format!("cannot write to stdout: {e}"),
        "check where the output goes",
    )
}

/// The result of `restore undelete`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct UndeleteReport {
    release: String,
    houston: DeploymentStatus,
    plan: UndeletePlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
    rows_changed: u64,
    dry_run: bool,
}

async fn run_undelete(global: &GlobalArgs, args: &UndeleteArgs) -> Result<ExitStatus> {
    let release = ReleaseName::parse(&args.release)?;
    let kube = crate::client::client_from(global).await?;
    let view = houston_view(&kube, global, &release, &args.houston).await?;
    note(describe_status(&release, &view.status));
    let plan = houston::plan_undelete(&release, &view.status, args.force)?;
    let mut report = UndeleteReport {
        release: release.to_string(),
        houston: view.status.clone(),
        plan: plan.clone(),
        sql: None,
        rows_changed: 0,
        dry_run: args.change.dry_run,
    };
    let UndeletePlan::Undelete { warnings, forced } = &plan else {
        let text = format!("{release} is not deleted in Houston; nothing to do\n");
        print_result(args.change.output, &text, &report).map_err(output_error)?;
        return Ok(ExitStatus::Success);
    };
    for w in warnings {
        note(format!("warning: {w}"));
    }
    for f in forced {
        note(format!("warning (--force): {f}"));
    }
    let sql = houston::DrySql(&release).to_string();
    if args.change.dry_run {
        note(format!(
            "dry run: the SQL would run {}",
            describe_access(&view)
        ));
        report.sql = Some(sql.clone());
        print_result(args.change.output, &sql, &report).map_err(output_error)?;
        return Ok(ExitStatus::Success);
    }
    confirm(
        &format!("Clear deletedAt of {release} in Houston?"),
        args.change.yes,
        || RestoreError::NeedsConfirmation {
            what: format!("undeleting {release} in Houston"),
        },
    )?;
    let Some(done) = undelete_now(&kube, &view, &release, args.force).await? else {
        let text = format!("{release} was undeleted meanwhile; nothing to do\n");
        print_result(args.change.output, &text, &report).map_err(output_error)?;
        return Ok(ExitStatus::Success);
    };
    report.rows_changed = done.rows;
    let text = format!(
        "undeleted {release} in Houston ({} row changed); it shows up again in its workspace\n",
        done.rows
    );
    print_result(args.change.output, &text, &report).map_err(output_error)?;
    Ok(ExitStatus::Success)
}

/// One line per candidate backup for `--list-backups`.
fn list_text(choice: &Choice) -> String {
    let mut out = String::new();
    for (i, c) in choice.candidates.iter().enumerate() {
        let mark = if choice.chosen == Some(i) { "*" } else { " " };
        let started = c
            .backup
            .started
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{mark} {:<40} {:<16} {started}  {}\n",
            c.backup.name,
            if c.backup.phase.is_empty() {
                "New"
            } else {
                &c.backup.phase
            },
            c.verdict()
        ));
    }
    out
}

/// The result of `restore RELEASE`.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RestoreReport {
    release: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<ResolvedNamespace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_object: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    houston: Option<DeploymentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    undelete_sql: Option<String>,
    undeleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployments_available: Option<usize>,
    dry_run: bool,
}

async fn run_restore(global: &GlobalArgs, args: &RestoreArgs) -> Result<ExitStatus> {
    let release = ReleaseName::parse(args.release.as_deref().unwrap_or_default())?;
    let kube = crate::client::client_from(global).await?;
    let mut report = RestoreReport {
        release: release.to_string(),
        dry_run: args.change.dry_run,
        ..RestoreReport::default()
    };

    // Houston first: it names the namespace and decides the undelete before anything changes.
    let skip_houston = args.no_undelete && args.namespace.is_some();
    // With --no-undelete and --namespace, Houston has nothing to tell us.
    let view = if skip_houston {
        None
    } else {
        match houston_view(&kube, global, &release, &args.houston).await {
            Ok(v) => Some(v),
            Err(e) if args.no_undelete || args.list_backups => {
                note(format!(
                    "warning: Houston not read ({e}); continuing without it"
                ));
                None
            }
            Err(e) => return Err(e),
        }
    };
    let mut undelete = false;
    if let Some(v) = &view {
        note(describe_status(&release, &v.status));
        report.houston = Some(v.status.clone());
        if !args.no_undelete && !args.list_backups {
            match houston::plan_undelete(&release, &v.status, args.force)? {
                UndeletePlan::NothingToDo => {
                    note("houston: nothing to undelete");
                }
                UndeletePlan::Undelete { warnings, forced } => {
                    for w in warnings.iter().chain(&forced) {
                        note(format!("warning: {w}"));
                    }
                    undelete = true;
                }
            }
        }
    }

    let resolved = namespace::resolve_namespace(
        &release,
        &global.platform_namespace,
        args.namespace.as_deref(),
        view.as_ref().and_then(|v| v.status.namespace()),
    );
    note(format!(
        "namespace: {} ({})",
        resolved.name,
        resolved.rule.describe()
    ));
    report.namespace = Some(resolved.clone());
    if let Some(m) = &args.namespace_mapping
        && m.from != resolved.name
    {
        return Err(Error::usage(
            format!(
                "--namespace-mapping maps {} but the deployment's namespace is {}",
                m.from, resolved.name
            ),
            format!("use --namespace-mapping {}:{}", resolved.name, m.to),
        ));
    }

    // Backup choice.
    let source = match (&args.from_backup, &args.from_schedule) {
        (Some(b), _) => BackupSource::Named(b.clone()),
        (None, Some(s)) => BackupSource::Schedule(s.clone()),
        (None, None) => BackupSource::Newest,
    };
    let backups = collect::collect_backups(&kube, &global.velero_namespace, &source).await?;
    match &source {
        BackupSource::Named(name) if backups.is_empty() => {
            return Err(RestoreError::BackupNotFound {
                name: name.clone(),
                velero_namespace: global.velero_namespace.clone(),
            }
            .into());
        }
        BackupSource::Schedule(name) if backups.is_empty() => {
            return Err(RestoreError::ScheduleEmpty {
                name: name.clone(),
                velero_namespace: global.velero_namespace.clone(),
            }
            .into());
        }
        _ => {}
    }
    let candidates = choice::plan_candidates(
        backups,
        &source,
        &resolved.name,
        args.allow_partially_failed,
    );
    let velero_ns = global.velero_namespace.clone();
    let choice = choice::choose(candidates, &resolved.name, async |backup: &str| {
        note(format!("backup {backup}: reading its resource list"));
        download::backup_resource_list(&kube, &velero_ns, backup).await
    })
    .await?;
    if args.list_backups {
        print_result(args.change.output, &list_text(&choice), &choice).map_err(output_error)?;
        return Ok(ExitStatus::Success);
    }
    let Some(chosen) = choice.chosen() else {
        return Err(no_backup_error(&source, &choice, &resolved.name).into());
    };
    let backup = chosen.backup.clone();
    let reason = choice.reason.clone().unwrap_or_default();
    note(format!("backup: {} ({reason})", backup.name));
    report.backup = Some(backup.name.clone());
    report.backup_reason = Some(reason);

    // Pre-flight.
    let (bsl_name, bsl) = collect::collect_storage_location(
        &kube,
        &global.velero_namespace,
        backup.storage_location.as_deref(),
    )
    .await?;
    let bsl_ok = preflight::check_storage_location(&backup.name, &bsl_name, bsl.as_ref())?;
    note(format!(
        "storage location: {} Available{}",
        bsl_ok.name,
        bsl_ok.note.map(|n| format!(", {n}")).unwrap_or_default()
    ));
    let restore_plan = RestorePlan {
        name: plan::restore_name(&release, jiff::Timestamp::now()),
        velero_namespace: global.velero_namespace.clone(),
        backup: backup.name.clone(),
        namespace: resolved.name.clone(),
        mapping: args.namespace_mapping.clone(),
        policy: args.existing_resource_policy,
    };
    let target = restore_plan.target_namespace().to_owned();
    let state = namespace::collect_namespace_state(&kube, &target).await?;
    let platform_release = match &view {
        Some(v) => v.platform_release.clone(),
        None => {
            crate::platform::collect_platform_release(
                &kube,
                &global.platform_namespace,
                global.platform_release.as_deref(),
            )
            .await?
            .name
        }
    };
    if let Some(w) = namespace::label_warning(&resolved, &state, &platform_release) {
        note(format!("warning: {w}"));
    }
    let action = preflight::plan_namespace(
        &target,
        &state,
        args.existing_resource_policy,
        args.wait_for_namespace,
    )?;
    let object = plan::restore_object(&restore_plan);
    report.restore_object = Some(object.clone());
    let sql = undelete.then(|| houston::DrySql(&release).to_string());
    report.undelete_sql = sql.clone();

    if args.change.dry_run {
        if let NamespaceAction::IntoExisting(n) | NamespaceAction::ConfirmExisting(n) = &action {
            note(format!("note: {n}"));
        }
        let mut text = serde_saphyr::to_string(&object).unwrap_or_default();
        if let (Some(_), Some(v)) = (&sql, &view) {
            note(format!(
                "dry run: after the restore, the undelete SQL would run {}",
                describe_access(v)
            ));
        }
        if let Some(sql) = &sql {
            text.push_str("---\n# then, in the Houston database:\n");
            for line in sql.lines() {
                text.push_str(&format!("# {line}\n"));
            }
        }
        print_result(args.change.output, &text, &report).map_err(output_error)?;
        return Ok(ExitStatus::Success);
    }

    // Consent.
    let mut prompt = format!(
        "Create Velero restore {} of namespace {} from backup {}",
        restore_plan.name, resolved.name, backup.name
    );
    if target != resolved.name {
        prompt.push_str(&format!(" into namespace {target}"));
    }
    if undelete {
        prompt.push_str(&format!(", then undelete {release} in Houston"));
    }
    prompt.push('?');
    match &action {
        NamespaceAction::ConfirmExisting(n) => {
            note(format!("warning: {n}"));
            confirm(&prompt, args.change.yes, || RestoreError::NamespaceExists {
                namespace: target.clone(),
            })?;
        }
        other => {
            if let NamespaceAction::IntoExisting(n) = other {
                note(format!("note: {n}"));
            }
            confirm(&prompt, args.change.yes, || {
                RestoreError::NeedsConfirmation {
                    what: format!("restoring {release}"),
                }
            })?;
        }
    }
    if action == NamespaceAction::WaitForDeletion {
        note(format!(
            "namespace {target} is Terminating; waiting until it is gone"
        ));
        match watch::wait_namespace_gone(&kube, &target, to_std(args.verify_timeout)).await? {
            Ok(()) => note(format!("namespace {target} is gone")),
            Err(_) => {
                return Err(RestoreError::NamespaceTerminating { namespace: target }.into());
            }
        }
    }

    // Create and wait.
    let api: Api<Restore> = Api::namespaced(kube.clone(), &global.velero_namespace);
    let mut restore_plan = restore_plan;
    create_restore(&api, &mut restore_plan, &release).await?;
    note(format!(
        "created restore {}/{}",
        global.velero_namespace, restore_plan.name
    ));
    let opts = crate::wait::WaitOptions {
        timeout: args.timeout.map(to_std),
        ..crate::wait::WaitOptions::default()
    };
    let finished = match crate::wait::wait_for(&api, &restore_plan.name, &opts).await {
        Ok(crate::wait::WaitOutcome::Finished { object, .. }) => object,
        Ok(
            crate::wait::WaitOutcome::Interrupted { .. }
            | crate::wait::WaitOutcome::TimedOut { .. },
        ) => {
            return Err(RestoreError::StoppedWaiting {
                name: restore_plan.name.clone(),
                velero_namespace: global.velero_namespace.clone(),
                release: release.to_string(),
            }
            .into());
        }
        Err(e) => {
            // The watch gave up: one GET still tells us if the restore finished.
            match api.get_opt(&restore_plan.name).await {
                Ok(Some(r))
                    if crate::wait::classify(crate::wait::Waitable::phase(&r)).is_some() =>
                {
                    r
                }
                _ => return Err(e.into()),
            }
        }
    };
    let mut outcome = Outcome::from_json(&serde_json::to_value(&finished).unwrap_or_default());
    if outcome.wants_results() {
        match download::restore_results(&kube, &global.velero_namespace, &outcome.name).await {
            Ok(r) => outcome.results = Some(r),
            Err(e) => note(format!("warning: {e}")),
        }
    }
    note(outcome.text().trim_end());
    let failed = outcome.error();
    report.outcome = Some(outcome);
    if let Some(e) = failed {
        if undelete {
            note(format!(
                "{release} was not undeleted in Houston because the restore did not complete"
            ));
        }
        print_result(args.change.output, "", &report).ok();
        return Err(e.into());
    }
    // Velero's Completed is not proof: the namespace must be there, holding objects.
    let restored = report
        .outcome
        .as_ref()
        .map(|o| o.items_restored)
        .unwrap_or_default();
    let found = namespace::collect_restored(&kube, &target).await?;
    if let Err(what) = namespace::check_restored(&target, restored, &found) {
        if undelete {
            note(format!(
                "{release} was not undeleted in Houston: the restore brought nothing back"
            ));
        }
        print_result(args.change.output, "", &report).ok();
        return Err(RestoreError::NothingRestored {
            name: restore_plan.name.clone(),
            backup: backup.name.clone(),
            what,
        }
        .into());
    }
    note(format!("namespace {target}: {}", found.describe()));

    // Undelete: re-read the row (time passed) and run the checked transaction.
    if undelete && let Some(v) = view.as_ref() {
        // A new session: a long restore may have outlived the first; the row may have changed.
        match undelete_now(&kube, v, &release, args.force).await {
            Ok(Some(done)) => {
                note(format!(
                    "houston: undeleted {release} ({} row changed)",
                    done.rows
                ));
                report.undeleted = true;
            }
            Ok(None) => note("houston: already undeleted meanwhile; nothing to do"),
            Err(e) => {
                note(format!(
                    "the restore completed, but the undelete did not; fix the cause below and run `kubectl astro restore undelete {release}`"
                ));
                return Err(e);
            }
        }
    }

    if args.verify {
        note(format!(
            "waiting for Deployments in {target} to become Available"
        ));
        let n =
            watch::wait_deployments_available(&kube, &target, to_std(args.verify_timeout)).await?;
        note(format!("{n} Deployments Available in {target}"));
        report.deployments_available = Some(n);
    }

    let text = format!(
        "restored {release} into namespace {target} from backup {} (restore {}){}\n",
        backup.name,
        restore_plan.name,
        if report.undeleted {
            "; undeleted in Houston"
        } else {
            ""
        }
    );
    print_result(args.change.output, &text, &report).map_err(output_error)?;
    Ok(ExitStatus::Success)
}

/// Creates the Restore; when another restore of the release took the name in the same
/// second (409), tries `<name>-1`, `<name>-2`… (the object is only created once).
async fn create_restore(
    api: &Api<Restore>,
    plan: &mut RestorePlan,
    release: &ReleaseName,
) -> Result<()> {
    let now = jiff::Timestamp::now();
    for attempt in 1..=10 {
        let restore: Restore = serde_json::from_value(plan::restore_object(plan)).map_err(|e| {
            Error::usage(format!("internal: Restore object: {e}"), "report this bug")
        })?;
        match api.create(&PostParams::default(), &restore).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 10 => {
                plan.name = plan::restore_name_attempt(release, now, attempt);
            }
            Err(e) => {
                return Err(crate::client::KubeError::api(
                    format!("create restore {}", plan.name),
                    e,
                )
                .into());
            }
        }
    }
    unreachable!("the last attempt returns")
}

fn no_backup_error(source: &BackupSource, choice: &Choice, namespace: &str) -> RestoreError {
    if let BackupSource::Named(name) = source {
        let c = &choice.candidates[0];
        if let Err(why) = &c.usable {
            return RestoreError::BackupNotUsable {
                name: name.clone(),
                why: why.clone(),
            };
        }
        let why = match (&c.containment, c.confirmed) {
            (_, Some(false)) => "its resource list does not list it".to_owned(),
            (Containment::No(r), _) => r.clone(),
            (c, _) => format!("{c:?}"),
        };
        return RestoreError::NamespaceNotInBackup {
            name: name.clone(),
            namespace: namespace.to_owned(),
            why,
        };
    }
    let unusable = choice
        .candidates
        .iter()
        .filter(|c| c.usable.is_err())
        .count();
    let without = choice.candidates.len() - unusable;
    RestoreError::NoBackupFound {
        namespace: namespace.to_owned(),
        considered: choice.candidates.len(),
        summary: format!("{unusable} not usable, {without} without the namespace"),
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
