//! `kubectl astro restore undelete RELEASE`: only clear `deletedAt` in Houston (runbook
//! step 7), with the checks and the one-row transaction of [`crate::houston`].

use crate::commands::cli::GlobalArgs;
use crate::commands::error::Result;
use crate::commands::exit::ExitStatus;
use crate::houston::{self, DeploymentStatus, UndeletePlan};
use crate::output::{self, OutputFormat, note};
use crate::release::ReleaseName;
use crate::restore::RestoreError;

use super::houston::{describe_access, describe_status, houston_view, undelete_now};
use super::{UndeleteArgs, confirm};

/// The result of `restore undelete`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct UndeleteReport {
    release: String,
    houston: DeploymentStatus,
    plan: UndeletePlan,
    rows_changed: u64,
    dry_run: bool,
}

pub(super) async fn run(global: &GlobalArgs, args: &UndeleteArgs) -> Result<ExitStatus> {
    let release = ReleaseName::parse(&args.release)?;
    let kube = crate::commands::cli::client_from(global).await?;
    let needs = crate::commands::preflight::restore_undelete(global, args.houston.local);
    crate::commands::preflight::check(&kube, &needs).await?;
    let view = houston_view(&kube, global, &release, &args.houston).await?;
    note(describe_status(&release, &view.status));
    let plan = houston::plan_undelete(&release, &view.status, args.force)?;
    let mut report = UndeleteReport {
        release: release.to_string(),
        houston: view.status.clone(),
        plan: plan.clone(),
        rows_changed: 0,
        dry_run: args.change.dry_run,
    };
    let UndeletePlan::Undelete { warnings, forced } = &plan else {
        let text = format!("{release} is not deleted in Houston; nothing to do\n");
        output::emit(args.change.output, &text, &report, "the undelete report")?;
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
        return dry_run(args.change.output, &sql, &describe_access(&view));
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
        output::emit(args.change.output, &text, &report, "the undelete report")?;
        return Ok(ExitStatus::Success);
    };
    report.rows_changed = done.rows;
    let text = format!(
        "undeleted {release} in Houston ({} row changed); it shows up again in its workspace\n",
        done.rows
    );
    output::emit(args.change.output, &text, &report, "the undelete report")?;
    Ok(ExitStatus::Success)
}

/// The SQL it would run: on stdout for people (text); with `-o json|yaml` stdout holds
/// the (empty) stream of Kubernetes objects it would keep, and the SQL goes to stderr.
pub(super) fn dry_run(format: OutputFormat, sql: &str, access: &str) -> Result<ExitStatus> {
    note(format!("dry run: the SQL would run {access}"));
    if format == OutputFormat::Text {
        output::print_stdout(sql)?;
    } else {
        for line in sql.lines() {
            note(format!("# {line}"));
        }
        output::emit_objects(format, &[])?;
    }
    Ok(ExitStatus::Success)
}
