//! `kubectl astro restore endpoint`: point the platform and every deployment at a new
//! database endpoint (or Cloud SQL instance), saving originals first; safe to re-run.

pub mod apply;
pub mod diff;
pub mod helm;
pub mod originals;
pub mod plan;
pub mod target;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use kube::Client;

use self::apply::{Applied, Outcome};
use self::originals::{Originals, OriginalsError};
use self::plan::{BOOTSTRAP_SECRET, Plan, PlanContext, PlanError, Role, Target, secret_text};
use self::target::{Endpoint, uri_endpoint, uri_userinfo};
use crate::commands::cli::{GlobalArgs, OutputFormat, print_stdout};
use crate::commands::error::Error;
use crate::commands::exit::ExitStatus;
use crate::sqlproxy::InstanceName;

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
    /// Whether any move was asked for.
    pub fn wants_move(&self) -> bool {
        self.db_host.is_some() || self.db_connection.is_some() || self.sqlproxy_instance.is_some()
    }
}

/// Errors of an endpoint move.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Bad flags.
    #[error("{0}")]
    Target(String),
    /// The cluster is not in a state we can plan from.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The originals file.
    #[error(transparent)]
    Originals(#[from] OriginalsError),
    /// No TTY and no `--yes`.
    #[error("refusing to change the database endpoint without confirmation (no terminal)")]
    NotConfirmed,
    /// The user said no.
    #[error("cancelled; nothing was changed")]
    Declined,
    /// Some patches failed.
    #[error("{failed} of {total} changes failed")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
}

/// Builds the target from the flags; `current_port` fills in a missing `--db-port`.
pub fn target_from(
    args: &EndpointArgs,
    current_port: Option<u16>,
) -> Result<Target, EndpointError> {
    let mut target = Target::default();
    if let Some(host) = &args.db_host {
        if host.is_empty() || host.contains(['/', '@', ' ', '?']) {
            return Err(EndpointError::Target(format!(
                "--db-host {host:?} is not a host name or IP address"
            )));
        }
        target.endpoint = Some(Endpoint {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: args.db_port.or(current_port).unwrap_or(5432),
        });
    }
    if let Some(uri) = &args.db_connection {
        let parsed = crate::connection::PgConnection::parse(uri)
            .map_err(|e| EndpointError::Target(format!("--db-connection: {e}")))?;
        target.endpoint = Some(Endpoint {
            host: parsed.host().to_owned(),
            port: uri_endpoint(uri).map_or(parsed.port(), |e| e.port),
        });
        target.userinfo = uri_userinfo(uri).map(str::to_owned);
    }
    if let Some(to) = &args.sqlproxy_instance {
        let to = InstanceName::parse(to).map_err(|e| EndpointError::Target(e.to_string()))?;
        let from = args
            .from_instance
            .as_deref()
            .map(InstanceName::parse)
            .transpose()
            .map_err(|e| EndpointError::Target(e.to_string()))?;
        target.sqlproxy = Some((from, to));
    }
    if target.endpoint.is_none() && target.sqlproxy.is_none() {
        return Err(EndpointError::Target("no new endpoint given".into()));
    }
    Ok(target)
}

/// Entry point of `kubectl astro restore endpoint`.
pub async fn run(global: &GlobalArgs, args: &EndpointArgs) -> Result<ExitStatus, Error> {
    if !args.wants_move() {
        return Err(EndpointError::Target("no new endpoint given".into()).into());
    }
    // Validate the flags before talking to the cluster.
    target_from(args, None)?;
    let client = crate::client::client_from(global).await?;
    move_endpoint(&client, global, args).await
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
        _ => crate::commands::cli::DEFAULT_PLATFORM_RELEASE.to_owned(),
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

fn emit(format: OutputFormat, report: &Report) -> std::io::Result<()> {
    match format {
        OutputFormat::Text => Ok(()),
        OutputFormat::Json => {
            print_stdout(&(serde_json::to_string_pretty(report).unwrap_or_default() + "\n"))
        }
        OutputFormat::Yaml => print_stdout(&serde_saphyr::to_string(report).unwrap_or_default()),
    }
}

fn say(format: OutputFormat, line: &str) {
    if format == OutputFormat::Text {
        let _ = print_stdout(&format!("{line}\n"));
    }
}

/// Plans and (unless `--check`/`--dry-run`) applies the move; shared with `restore platform`.
pub async fn move_endpoint(
    client: &Client,
    global: &GlobalArgs,
    args: &EndpointArgs,
) -> Result<ExitStatus, Error> {
    let fmt = args.output;
    let pns = global.platform_namespace.as_str();
    let collected = apply::collect(client, pns).await?;
    let release = detect_release(global, &collected);
    let mut saved = Originals::load(&args.save_to).map_err(EndpointError::from)?;
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
        .or_else(|| current_bootstrap.as_deref().and_then(uri_endpoint));
    let target = target_from(args, old.as_ref().map(|e| e.port))?;
    let ctx = PlanContext {
        target,
        old: old.clone(),
        platform_namespace: pns.to_owned(),
        platform_release: release,
        restart_stamp: jiff::Timestamp::now().to_string(),
    };
    let plan = plan::plan_move(&collected, &ctx).map_err(EndpointError::from)?;
    let (patches, restarts) = plan.counts();
    let mut report = Report {
        old_endpoint: old.as_ref().map(ToString::to_string),
        new_endpoint: ctx.target.endpoint.as_ref().map(ToString::to_string),
        sqlproxy_instance: ctx.target.sqlproxy.as_ref().map(|(_, to)| to.to_string()),
        notes: plan.notes.clone(),
        helm_values_naming_old_host: plan.helm.clone(),
        ..Report::default()
    };
    if let Some(new) = &report.new_endpoint {
        say(
            fmt,
            &format!(
                "database endpoint: {} -> {new}",
                report.old_endpoint.as_deref().unwrap_or("(unknown)")
            ),
        );
    }
    if let Some(instance) = &report.sqlproxy_instance {
        say(fmt, &format!("Cloud SQL proxy instance -> {instance}"));
    }
    say(
        fmt,
        &format!(
            "{patches} value patches and {restarts} restarts across {} namespaces",
            plan.groups.iter().filter(|g| !g.changes.is_empty()).count()
        ),
    );

    if args.check || args.dry_run {
        for change in plan.changes() {
            report.changes.push(line_for(change, None));
            if args.dry_run && fmt == OutputFormat::Text {
                if change.role == Role::Restart {
                    say(
                        fmt,
                        &format!(
                            "would restart {} (pod-template annotation {})",
                            change.object,
                            plan::RESTARTED_AT
                        ),
                    );
                }
                for edit in &change.edits {
                    let (a, b) = edit.redacted();
                    let label = format!(
                        "{}/{}/{}",
                        change.object.namespace, change.object.name, edit.key
                    );
                    let _ = print_stdout(&diff::unified_diff(
                        &format!("a/{label}"),
                        &format!("b/{label}"),
                        &a,
                        &b,
                    ));
                }
            } else if args.check {
                say(fmt, &format!("pending  {}", describe_pending(change)));
            }
        }
        finish_notes(fmt, &plan, ctx.old.as_ref(), ctx.target.endpoint.as_ref());
        emit(fmt, &report).ok();
        if args.check && (patches > 0 || !plan.helm.is_empty()) {
            return Ok(ExitStatus::Failed);
        }
        return Ok(ExitStatus::Success);
    }

    if plan.changes().next().is_none() {
        say(
            fmt,
            "nothing to change: everything already points at the new endpoint",
        );
        finish_notes(fmt, &plan, ctx.old.as_ref(), ctx.target.endpoint.as_ref());
        emit(fmt, &report).ok();
        return Ok(ExitStatus::Success);
    }

    confirm(args, patches, restarts)?;

    // Originals first: no patch leaves without its previous value on disk.
    let now = jiff::Timestamp::now().to_string();
    let entries: Vec<(String, String, String)> = plan
        .changes()
        .flat_map(|c| {
            c.edits
                .iter()
                .map(|e| (c.object.id(), e.key.clone(), e.old.clone()))
        })
        .collect();
    saved.merge(
        entries
            .iter()
            .map(|(o, k, v)| (o.as_str(), k.as_str(), v.as_str())),
        &now,
    );
    saved.save(&args.save_to).map_err(EndpointError::from)?;
    let shown = std::fs::canonicalize(&args.save_to).unwrap_or_else(|_| args.save_to.clone());
    say(
        fmt,
        &format!(
            "saved original values to {} (mode 0600; it holds passwords)",
            shown.display()
        ),
    );
    report.saved_to = Some(shown.display().to_string());

    // On a terminal a bar counts the objects (failures still get their line above it);
    // otherwise (logs, pipes) one plain line per change, as the wait helpers do.
    let total_changes: usize = plan.groups.iter().map(|g| g.changes.len()).sum();
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
        } else if fmt == OutputFormat::Text {
            let _guard = printer.lock();
            let _ = print_stdout(&format!("{}\n", describe(applied)));
        }
    };
    let applied = apply::apply_groups(
        client,
        plan.groups.clone(),
        &ctx,
        args.concurrency,
        &on_done,
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let total = applied.len();
    let failed = applied
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Failed { .. }))
        .count();
    report.changes = applied
        .iter()
        .map(|a| line_for(&a.change, Some(a.outcome.clone())))
        .collect();
    finish_notes(fmt, &plan, ctx.old.as_ref(), ctx.target.endpoint.as_ref());
    emit(fmt, &report).ok();
    if failed > 0 {
        return Err(EndpointError::Partial { failed, total }.into());
    }
    say(
        fmt,
        &format!("moved: {patches} value patches, {restarts} restarts"),
    );
    Ok(ExitStatus::Success)
}

fn describe_pending(change: &plan::Change) -> String {
    if change.role == Role::Restart {
        format!("restart {}", change.object)
    } else {
        let keys: Vec<&str> = change.edits.iter().map(|e| e.key.as_str()).collect();
        format!("patch {} [{}]", change.object, keys.join(", "))
    }
}

fn finish_notes(fmt: OutputFormat, plan: &Plan, old: Option<&Endpoint>, new: Option<&Endpoint>) {
    if fmt != OutputFormat::Text {
        return;
    }
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    for line in helm_lines(plan, old, new) {
        eprintln!("{line}");
    }
}

fn confirm(args: &EndpointArgs, patches: usize, restarts: usize) -> Result<(), EndpointError> {
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(EndpointError::NotConfirmed);
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(format!(
            "Patch {patches} values and restart {restarts} workloads?"
        ))
        .default(false)
        .interact()
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(EndpointError::Declined)
    }
}
