//! `kubectl astro restore endpoint`: point the platform and every deployment at a new
//! database endpoint (runbook step 12): collect, plan, confirm, save the originals, apply,
//! restart, report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use kube::Client;

use crate::commands::cli::GlobalArgs;
use crate::commands::error::Error;
use crate::commands::exit::ExitStatus;
use crate::endpoint::apply::{self, Applied, Outcome};
use crate::endpoint::originals::{self, Originals};
use crate::endpoint::plan::{self, BOOTSTRAP_SECRET, Plan, PlanContext, Role, secret_text};
use crate::endpoint::target::Endpoint;
use crate::endpoint::target::uri_endpoint;
use crate::endpoint::{EndpointError, EndpointRequest, diff, target_from};
use crate::output::{self, Confirmation, OutputFormat, note, print_stdout, say};

/// Flags of `restore endpoint` (also flattened into `restore platform`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EndpointArgs {
    /// New database host.
    #[arg(long, value_name = "HOST", conflicts_with = "db_connection")]
    pub db_host: Option<String>,

    /// New database port (default: the current port).
    #[arg(long, value_name = "PORT", requires = "db_host")]
    pub db_port: Option<u16>,

    /// New admin connection URI `postgres://USER:PASS@HOST:PORT`; its user and password
    /// replace those of the platform secrets. Prefer the environment variable: arguments
    /// are visible to every user of the machine.
    #[arg(
        long,
        value_name = "URI",
        env = "ASTRO_DB_CONNECTION",
        hide_env_values = true
    )]
    pub db_connection: Option<String>,

    /// New Cloud SQL instance for the `pg-sqlproxy-gcloud-sqlproxy` Deployment.
    #[arg(long, value_name = "PROJECT:REGION:INSTANCE")]
    pub sqlproxy_instance: Option<String>,

    /// The instance to replace when the proxy serves several.
    #[arg(
        long,
        value_name = "PROJECT:REGION:INSTANCE",
        requires = "sqlproxy_instance"
    )]
    pub from_instance: Option<String>,

    /// Only report what still points at the old endpoint (secrets, Helm values);
    /// exit 1 if anything does.
    #[arg(long)]
    pub check: bool,

    /// Print a diff of every change (secrets redacted) and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// How many namespaces are patched at the same time.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,

    /// File for the original values (mode 0600); a re-run adds to it, never overwrites.
    #[arg(long, value_name = "FILE", default_value = originals::DEFAULT_FILE)]
    pub save_to: PathBuf,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

impl EndpointArgs {
    /// The move asked for, as the domain takes it.
    pub fn request(&self) -> EndpointRequest {
        EndpointRequest {
            db_host: self.db_host.clone(),
            db_port: self.db_port,
            db_connection: self.db_connection.clone(),
            sqlproxy_instance: self.sqlproxy_instance.clone(),
            from_instance: self.from_instance.clone(),
        }
    }

    /// Whether any move was asked for.
    pub fn wants_move(&self) -> bool {
        self.request().wants_move()
    }
}

/// Entry point of `kubectl astro restore endpoint`.
pub async fn run(global: &GlobalArgs, args: &EndpointArgs) -> Result<ExitStatus, Error> {
    if !args.wants_move() {
        return Err(EndpointError::Target("no new endpoint given".into()).into());
    }
    // Validate the flags before talking to the cluster.
    target_from(&args.request(), None)?;
    let client = crate::commands::cli::client_from(global).await?;
    crate::commands::preflight::check(
        &client,
        &crate::commands::preflight::restore_endpoint(global),
    )
    .await?;
    move_endpoint(&client, global, args, None).await
}

/// The platform release: the flag, else the one `*-houston-backend` secret, else `astronomer`.
fn detect_release(global: &GlobalArgs, collected: &plan::Collected) -> String {
    if let Some(release) = &global.platform_release {
        return release.clone();
    }
    let found: Vec<&str> = collected
        .secrets
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(global.platform_namespace.as_str()))
        .filter_map(|s| s.metadata.name.as_deref()?.strip_suffix("-houston-backend"))
        .collect();
    match found.as_slice() {
        [one] => (*one).to_owned(),
        _ => crate::platform::DEFAULT_PLATFORM_RELEASE.to_owned(),
    }
}

/// A machine-readable account of a run (`-o json|yaml`).
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    old_endpoint: Option<String>,
    new_endpoint: Option<String>,
    sqlproxy_instance: Option<String>,
    saved_to: Option<String>,
    changes: Vec<ReportLine>,
    notes: Vec<String>,
    helm_values_naming_old_host: Vec<plan::HelmFinding>,
}

#[derive(Debug, serde::Serialize)]
struct ReportLine {
    object: String,
    role: Role,
    keys: Vec<String>,
    #[serde(flatten)]
    outcome: Option<Outcome>,
}

fn line_for(change: &plan::Change, outcome: Option<Outcome>) -> ReportLine {
    ReportLine {
        object: change.object.to_string(),
        role: change.role,
        keys: change.edits.iter().map(|e| e.key.clone()).collect(),
        outcome,
    }
}

fn describe(applied: &Applied) -> String {
    let c = &applied.change;
    let keys: Vec<&str> = c.edits.iter().map(|e| e.key.as_str()).collect();
    let what = if c.role == Role::Restart {
        format!("restart {}", c.object)
    } else {
        format!("patch {} [{}]", c.object, keys.join(", "))
    };
    match &applied.outcome {
        Outcome::Patched { attempts: 1 } => format!("done     {what}"),
        Outcome::Patched { attempts } => {
            format!("done     {what} (after {} conflicts)", attempts - 1)
        }
        Outcome::AlreadyDone => format!("skipped  {what}: already moved"),
        Outcome::Gone => format!("skipped  {what}: object disappeared"),
        Outcome::Failed { error } => format!("FAILED   {what}: {error}"),
    }
}

fn helm_lines(plan: &Plan, old: Option<&Endpoint>, new: Option<&Endpoint>) -> Vec<String> {
    let port_changed = matches!((old, new), (Some(o), Some(n)) if o.port != n.port);
    plan.helm
        .iter()
        .map(|f| {
            let mut sets = Vec::new();
            for path in f.paths.iter().filter(|p| p.ends_with(".host")) {
                sets.push(format!("--set {path}={}", new.map_or("NEW_HOST", |e| e.host.as_str())));
                if port_changed && let Some(n) = new {
                    sets.push(format!("--set {}.port={}", path.trim_end_matches(".host"), n.port));
                }
            }
            format!(
                "warning: Helm values of release {} (namespace {}, revision {}) still name the old host at {}; \
                 the next `helm upgrade` of that deployment would put it back. Update them, e.g. \
                 `helm upgrade {} <chart> -n {} --reuse-values {}`",
                f.release,
                f.namespace,
                f.revision,
                f.paths.join(", "),
                f.release,
                f.namespace,
                sets.join(" ")
            )
        })
        .collect()
}

/// The move as planned, with what the report starts from.
struct Planned {
    ctx: PlanContext,
    plan: Plan,
    saved: Originals,
    report: Report,
}

/// Plans and (unless `--check`/`--dry-run`) applies the move; shared with `restore platform`.
/// `previous`: the endpoint before the move when the cluster no longer shows it (the
/// Velero plugin restored the secrets already moved; `restore platform` read it from the
/// backup), for the report and the Helm check.
pub async fn move_endpoint(
    client: &Client,
    global: &GlobalArgs,
    args: &EndpointArgs,
    previous: Option<Endpoint>,
) -> Result<ExitStatus, Error> {
    let fmt = args.output;
    let mut planned = collect_and_plan(client, global, args, previous).await?;
    say_summary(fmt, &planned);
    if args.check || args.dry_run {
        return check_or_dry_run(args, planned);
    }
    if planned.plan.changes().next().is_none() {
        say(
            fmt,
            "nothing to change: everything already points at the new endpoint",
        );
        return finish(fmt, &planned, ExitStatus::Success);
    }
    let (patches, restarts) = planned.plan.counts();
    confirm(args, patches, restarts)?;
    planned.report.saved_to = Some(save_originals(args, &mut planned)?);
    let applied = apply_with_progress(client, args, &planned).await;
    let total = applied.len();
    let failed = applied
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Failed { .. }))
        .count();
    planned.report.changes = applied
        .iter()
        .map(|a| line_for(&a.change, Some(a.outcome.clone())))
        .collect();
    finish(fmt, &planned, ExitStatus::Success)?;
    if failed > 0 {
        return Err(EndpointError::Partial { failed, total }.into());
    }
    say(
        fmt,
        format!("moved: {patches} value patches, {restarts} restarts"),
    );
    Ok(ExitStatus::Success)
}

/// Reads the secrets, workloads and saved originals, and plans every change.
async fn collect_and_plan(
    client: &Client,
    global: &GlobalArgs,
    args: &EndpointArgs,
    previous: Option<Endpoint>,
) -> Result<Planned, Error> {
    let pns = global.platform_namespace.as_str();
    let collected = apply::collect(client, pns).await?;
    let release = detect_release(global, &collected);
    let saved = Originals::load(&args.save_to).map_err(EndpointError::from)?;
    let bootstrap_id = format!("Secret/{pns}/{BOOTSTRAP_SECRET}");
    // The true old endpoint: the saved original if a previous run got that far.
    let current_bootstrap = collected
        .secrets
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(pns)
                && s.metadata.name.as_deref() == Some(BOOTSTRAP_SECRET)
        })
        .and_then(|s| secret_text(s, "connection"));
    let old = saved
        .value(&bootstrap_id, "connection")
        .and_then(uri_endpoint)
        .or(previous)
        .or_else(|| current_bootstrap.as_deref().and_then(uri_endpoint));
    let target = target_from(&args.request(), old.as_ref().map(|e| e.port))?;
    let ctx = PlanContext {
        target,
        old: old.clone(),
        platform_namespace: pns.to_owned(),
        platform_release: release,
        restart_stamp: jiff::Timestamp::now().to_string(),
    };
    let plan = plan::plan_move(&collected, &ctx).map_err(EndpointError::from)?;
    let report = Report {
        old_endpoint: old.as_ref().map(ToString::to_string),
        new_endpoint: ctx.target.endpoint.as_ref().map(ToString::to_string),
        sqlproxy_instance: ctx.target.sqlproxy.as_ref().map(|(_, to)| to.to_string()),
        notes: plan.notes.clone(),
        helm_values_naming_old_host: plan.helm.clone(),
        ..Report::default()
    };
    Ok(Planned {
        ctx,
        plan,
        saved,
        report,
    })
}

fn say_summary(fmt: OutputFormat, planned: &Planned) {
    let report = &planned.report;
    if let Some(new) = &report.new_endpoint {
        let old = report.old_endpoint.as_deref().unwrap_or("(unknown)");
        say(fmt, format!("database endpoint: {old} -> {new}"));
    }
    if let Some(instance) = &report.sqlproxy_instance {
        say(fmt, format!("Cloud SQL proxy instance -> {instance}"));
    }
    let (patches, restarts) = planned.plan.counts();
    let namespaces = planned
        .plan
        .groups
        .iter()
        .filter(|g| !g.changes.is_empty())
        .count();
    say(
        fmt,
        format!("{patches} value patches and {restarts} restarts across {namespaces} namespaces"),
    );
}

/// `--check` lists what is pending (exit 1 if anything is); `--dry-run` shows each change
/// as a redacted diff (text) or the objects it would patch (`-o json|yaml`).
fn check_or_dry_run(args: &EndpointArgs, mut planned: Planned) -> Result<ExitStatus, Error> {
    let fmt = args.output;
    let lines: Vec<ReportLine> = planned.plan.changes().map(|c| line_for(c, None)).collect();
    planned.report.changes = lines;
    if args.dry_run {
        if fmt == OutputFormat::Text {
            for change in planned.plan.changes() {
                print_change_diff(change)?;
            }
        } else {
            output::emit_objects(fmt, &patched_objects(&planned.plan))?;
            return finish_notes(fmt, &planned).map(|()| ExitStatus::Success);
        }
    } else {
        for change in planned.plan.changes() {
            say(fmt, format!("pending  {}", describe_pending(change)));
        }
    }
    finish(fmt, &planned, ExitStatus::Success)?;
    let (patches, _) = planned.plan.counts();
    if args.check && (patches > 0 || !planned.plan.helm.is_empty()) {
        return Ok(ExitStatus::Failed);
    }
    Ok(ExitStatus::Success)
}

fn print_change_diff(change: &plan::Change) -> Result<(), Error> {
    if change.role == Role::Restart {
        print_stdout(&format!(
            "would restart {} (pod-template annotation {})\n",
            change.object,
            plan::RESTARTED_AT
        ))?;
    }
    for edit in &change.edits {
        let (a, b) = edit.redacted();
        let label = format!(
            "{}/{}/{}",
            change.object.namespace, change.object.name, edit.key
        );
        print_stdout(&diff::unified_diff(
            &format!("a/{label}"),
            &format!("b/{label}"),
            &a,
            &b,
        ))?;
    }
    Ok(())
}

/// The objects a move patches, as an apply-able stream (values redacted: the new ones
/// hold passwords): Secrets with the changed keys in `stringData`, workloads with the
/// restart annotation on their pod template.
fn patched_objects(plan: &Plan) -> Vec<serde_json::Value> {
    plan.changes()
        .map(|change| {
            let o = &change.object;
            let metadata = serde_json::json!({"name": o.name, "namespace": o.namespace});
            if change.role == Role::Restart {
                serde_json::json!({
                    "apiVersion": "apps/v1", "kind": o.kind, "metadata": metadata,
                    "spec": {"template": {"metadata": {"annotations": {plan::RESTARTED_AT: "<now>"}}}}
                })
            } else {
                let data: serde_json::Map<String, serde_json::Value> = change
                    .edits
                    .iter()
                    .map(|e| (e.key.clone(), serde_json::Value::from(e.redacted().1)))
                    .collect();
                serde_json::json!({"apiVersion": "v1", "kind": o.kind, "metadata": metadata, "stringData": data})
            }
        })
        .collect()
}

/// Originals first: no patch leaves without its previous value on disk.
fn save_originals(args: &EndpointArgs, planned: &mut Planned) -> Result<String, Error> {
    let now = jiff::Timestamp::now().to_string();
    let entries: Vec<(String, String, String)> = planned
        .plan
        .changes()
        .flat_map(|c| {
            c.edits
                .iter()
                .map(|e| (c.object.id(), e.key.clone(), e.old.clone()))
        })
        .collect();
    planned.saved.merge(
        entries
            .iter()
            .map(|(o, k, v)| (o.as_str(), k.as_str(), v.as_str())),
        &now,
    );
    planned
        .saved
        .save(&args.save_to)
        .map_err(EndpointError::from)?;
    let shown = std::fs::canonicalize(&args.save_to).unwrap_or_else(|_| args.save_to.clone());
    say(
        args.output,
        format!(
            "saved original values to {} (mode 0600; it holds passwords)",
            shown.display()
        ),
    );
    Ok(shown.display().to_string())
}

/// Applies the groups: on a terminal a bar counts the objects (failures still get their
/// line above it); otherwise (logs, pipes) one plain line per change.
async fn apply_with_progress(
    client: &Client,
    args: &EndpointArgs,
    planned: &Planned,
) -> Vec<Applied> {
    let fmt = args.output;
    let total_changes: usize = planned.plan.groups.iter().map(|g| g.changes.len()).sum();
    let bar = (fmt == OutputFormat::Text
        && std::io::stderr().is_terminal()
        && std::io::stdout().is_terminal())
    .then(|| {
        let bar = crate::wait::progress_bar(total_changes as u64, "objects");
        bar.set_message("moving");
        bar
    });
    let printer = Mutex::new(());
    let on_done = |applied: &Applied| {
        if let Some(bar) = &bar {
            bar.inc(1);
            if matches!(applied.outcome, Outcome::Failed { .. }) {
                bar.println(describe(applied));
            } else {
                bar.set_message(describe(applied));
            }
        } else {
            let _guard = printer.lock();
            say(fmt, describe(applied));
        }
    };
    let applied = apply::apply_groups(
        client,
        planned.plan.groups.clone(),
        &planned.ctx,
        args.concurrency,
        &on_done,
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    applied
}

/// The notes, then the report for `-o json|yaml`.
fn finish(fmt: OutputFormat, planned: &Planned, status: ExitStatus) -> Result<ExitStatus, Error> {
    finish_notes(fmt, planned)?;
    if fmt != OutputFormat::Text {
        output::emit(fmt, "", &planned.report, "the endpoint report")?;
    }
    Ok(status)
}

fn describe_pending(change: &plan::Change) -> String {
    if change.role == Role::Restart {
        format!("restart {}", change.object)
    } else {
        let keys: Vec<&str> = change.edits.iter().map(|e| e.key.as_str()).collect();
        format!("patch {} [{}]", change.object, keys.join(", "))
    }
}

/// Planner notes and Helm-values warnings: on stderr, in every output format.
fn finish_notes(_fmt: OutputFormat, planned: &Planned) -> Result<(), Error> {
    for n in &planned.plan.notes {
        note(format!("note: {n}"));
    }
    let (old, new) = (
        planned.ctx.old.as_ref(),
        planned.ctx.target.endpoint.as_ref(),
    );
    for line in helm_lines(&planned.plan, old, new) {
        note(line);
    }
    Ok(())
}

fn confirm(args: &EndpointArgs, patches: usize, restarts: usize) -> Result<(), EndpointError> {
    let prompt = format!("Patch {patches} values and restart {restarts} workloads?");
    match output::confirm(&prompt, args.yes) {
        Confirmation::Yes => Ok(()),
        Confirmation::Declined => Err(EndpointError::Declined),
        Confirmation::NoTerminal => Err(EndpointError::NotConfirmed),
    }
}
