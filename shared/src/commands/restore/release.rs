//! `kubectl astro restore RELEASE`: bring one deployment back (runbook steps 4-7): read
//! Houston, resolve the namespace, choose the backup that holds it, check, confirm, create
//! the Velero Restore, wait, confirm in the cluster that it came back, undelete in Houston.

use kube::Api;
use kube::api::PostParams;

use crate::commands::cli::GlobalArgs;
use crate::commands::error::{Error, Result};
use crate::commands::exit::ExitStatus;
use crate::houston::{self, DeploymentStatus, UndeletePlan};
use crate::output::{self, OutputFormat, note};
use crate::release::ReleaseName;
use crate::restore::choice::{self, BackupInfo, BackupSource, Choice, Containment};
use crate::restore::namespace::{self, ResolvedNamespace};
use crate::restore::outcome::Outcome;
use crate::restore::plan::{self, RestorePlan};
use crate::restore::preflight::{self, NamespaceAction};
use crate::restore::{RestoreError, collect, download, watch};
use crate::velero::Restore;

use super::houston::{HoustonView, describe_access, describe_status, houston_view, undelete_now};
use super::{RestoreArgs, confirm, to_std};

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
    restore: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    houston: Option<DeploymentStatus>,
    undeleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployments_available: Option<usize>,
}

/// What Houston says, and whether the undelete follows the restore.
struct HoustonSide {
    view: Option<HoustonView>,
    undelete: bool,
}

/// Everything decided before anything changes.
struct Prepared {
    backup: BackupInfo,
    plan: RestorePlan,
    target: String,
    action: NamespaceAction,
}

pub(super) async fn run(global: &GlobalArgs, args: &RestoreArgs) -> Result<ExitStatus> {
    let release = ReleaseName::parse(args.release.as_deref().unwrap_or_default())?;
    let kube = crate::commands::cli::client_from(global).await?;
    let namespace = args.namespace.clone().unwrap_or_else(|| {
        crate::namespaces::default_deployment_namespace(&global.platform_namespace, &release)
    });
    let needs = crate::commands::preflight::restore_release(
        global,
        &namespace,
        args.houston.local,
        !args.no_undelete,
    );
    crate::commands::preflight::check(&kube, &needs).await?;
    let mut report = RestoreReport {
        release: release.to_string(),
        ..RestoreReport::default()
    };
    // Houston first: it names the namespace and decides the undelete before anything changes.
    let houston = read_houston(&kube, global, args, &release).await?;
    report.houston = houston.view.as_ref().map(|v| v.status.clone());
    let resolved = resolve_namespace(global, args, &release, &houston)?;
    report.namespace = Some(resolved.clone());
    let choice = choose_backup(&kube, global, args, &resolved.name).await?;
    if args.list_backups {
        output::emit(
            args.change.output,
            &list_text(&choice),
            &choice,
            "the backups",
        )?;
        return Ok(ExitStatus::Success);
    }
    let prepared = prepare(&kube, global, args, &release, &resolved, &choice, &houston).await?;
    report.backup = Some(prepared.backup.name.clone());
    report.backup_reason = choice.reason.clone();
    if args.change.dry_run {
        return dry_run(args, &release, &prepared, &houston);
    }
    consent(args, &release, &resolved, &prepared, houston.undelete)?;
    if prepared.action == NamespaceAction::WaitForDeletion {
        wait_namespace_gone(&kube, args, &prepared.target).await?;
    }
    let mut prepared = prepared;
    let api: Api<Restore> = Api::namespaced(kube.clone(), &global.velero_namespace);
    create_restore(&api, &mut prepared.plan, &release).await?;
    note(format!(
        "created restore {}/{}",
        global.velero_namespace, prepared.plan.name
    ));
    report.restore = Some(prepared.plan.name.clone());
    let outcome = wait_outcome(&kube, global, args, &api, &prepared, &release, &houston).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err((o, e)) => {
            report.outcome = o;
            output::emit(args.change.output, "", &report, "the restore report").ok();
            return Err(e);
        }
    };
    report.outcome = Some(outcome);
    if houston.undelete {
        report.undeleted = undelete_after(&kube, args, &release, &houston).await?;
    }
    if args.verify {
        report.deployments_available = Some(verify(&kube, args, &prepared.target).await?);
    }
    let text = format!(
        "restored {release} into namespace {} from backup {} (restore {}){}\n",
        prepared.target,
        prepared.backup.name,
        prepared.plan.name,
        if report.undeleted {
            "; undeleted in Houston"
        } else {
            ""
        }
    );
    output::emit(args.change.output, &text, &report, "the restore report")?;
    Ok(ExitStatus::Success)
}

/// Reads Houston unless nothing needs it (`--no-undelete` with `--namespace`), and decides
/// whether the undelete follows. Houston errors only block what needs Houston.
async fn read_houston(
    kube: &kube::Client,
    global: &GlobalArgs,
    args: &RestoreArgs,
    release: &ReleaseName,
) -> Result<HoustonSide> {
    if args.no_undelete && args.namespace.is_some() {
        return Ok(HoustonSide {
            view: None,
            undelete: false,
        });
    }
    let view = match houston_view(kube, global, release, &args.houston).await {
        Ok(v) => v,
        Err(e) if args.no_undelete || args.list_backups => {
            note(format!(
                "warning: Houston not read ({e}); continuing without it"
            ));
            return Ok(HoustonSide {
                view: None,
                undelete: false,
            });
        }
        Err(e) => return Err(e),
    };
    note(describe_status(release, &view.status));
    let mut undelete = false;
    if !args.no_undelete && !args.list_backups {
        match houston::plan_undelete(release, &view.status, args.force)? {
            UndeletePlan::NothingToDo => note("houston: nothing to undelete"),
            UndeletePlan::Undelete { warnings, forced } => {
                for w in warnings.iter().chain(&forced) {
                    note(format!("warning: {w}"));
                }
                undelete = true;
            }
        }
    }
    Ok(HoustonSide {
        view: Some(view),
        undelete,
    })
}

fn resolve_namespace(
    global: &GlobalArgs,
    args: &RestoreArgs,
    release: &ReleaseName,
    houston: &HoustonSide,
) -> Result<ResolvedNamespace> {
    let resolved = namespace::resolve_namespace(
        release,
        &global.platform_namespace,
        args.namespace.as_deref(),
        houston.view.as_ref().and_then(|v| v.status.namespace()),
    );
    note(format!(
        "namespace: {} ({})",
        resolved.name,
        resolved.rule.describe()
    ));
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
    Ok(resolved)
}

/// The newest usable backup whose resource list holds the namespace.
async fn choose_backup(
    kube: &kube::Client,
    global: &GlobalArgs,
    args: &RestoreArgs,
    namespace: &str,
) -> Result<Choice> {
    let source = match (&args.from_backup, &args.from_schedule) {
        (Some(b), _) => BackupSource::Named(b.clone()),
        (None, Some(s)) => BackupSource::Schedule(s.clone()),
        (None, None) => BackupSource::Newest,
    };
    let vns = &global.velero_namespace;
    let backups = collect::collect_backups(kube, vns, &source).await?;
    match &source {
        BackupSource::Named(name) if backups.is_empty() => {
            return Err(RestoreError::BackupNotFound {
                name: name.clone(),
                velero_namespace: vns.clone(),
            }
            .into());
        }
        BackupSource::Schedule(name) if backups.is_empty() => {
            return Err(RestoreError::ScheduleEmpty {
                name: name.clone(),
                velero_namespace: vns.clone(),
            }
            .into());
        }
        _ => {}
    }
    let candidates =
        choice::plan_candidates(backups, &source, namespace, args.allow_partially_failed);
    let choice = choice::choose(candidates, namespace, async |backup: &str| {
        note(format!("backup {backup}: reading its resource list"));
        download::backup_resource_list(kube, vns, backup).await
    })
    .await?;
    if !args.list_backups && choice.chosen().is_none() {
        return Err(no_backup_error(&source, &choice, namespace).into());
    }
    Ok(choice)
}

/// Pre-flight: the storage location, the target namespace's state, the Restore to create.
async fn prepare(
    kube: &kube::Client,
    global: &GlobalArgs,
    args: &RestoreArgs,
    release: &ReleaseName,
    resolved: &ResolvedNamespace,
    choice: &Choice,
    houston: &HoustonSide,
) -> Result<Prepared> {
    let Some(chosen) = choice.chosen() else {
        return Err(Error::Internal("no backup chosen".into()));
    };
    let backup = chosen.backup.clone();
    note(format!(
        "backup: {} ({})",
        backup.name,
        choice.reason.as_deref().unwrap_or_default()
    ));
    let vns = &global.velero_namespace;
    let (bsl_name, bsl) =
        collect::collect_storage_location(kube, vns, backup.storage_location.as_deref()).await?;
    let bsl_ok = preflight::check_storage_location(&backup.name, &bsl_name, bsl.as_ref())?;
    note(format!(
        "storage location: {} Available{}",
        bsl_ok.name,
        bsl_ok.note.map(|n| format!(", {n}")).unwrap_or_default()
    ));
    let plan = RestorePlan {
        name: plan::restore_name(release, jiff::Timestamp::now()),
        velero_namespace: vns.clone(),
        backup: backup.name.clone(),
        namespace: resolved.name.clone(),
        mapping: args.namespace_mapping.clone(),
        policy: args.existing_resource_policy,
    };
    let target = plan.target_namespace().to_owned();
    let state = namespace::collect_namespace_state(kube, &target).await?;
    let platform_release = platform_release(kube, global, houston).await?;
    if let Some(w) = namespace::label_warning(resolved, &state, &platform_release) {
        note(format!("warning: {w}"));
    }
    let action = preflight::plan_namespace(
        &target,
        &state,
        args.existing_resource_policy,
        args.wait_for_namespace,
    )?;
    Ok(Prepared {
        backup,
        plan,
        target,
        action,
    })
}

/// The platform release Houston was read with, else detected.
async fn platform_release(
    kube: &kube::Client,
    global: &GlobalArgs,
    houston: &HoustonSide,
) -> Result<String> {
    if let Some(v) = &houston.view {
        return Ok(v.platform_release.clone());
    }
    let detected = crate::platform::collect_platform_release(
        kube,
        &global.platform_namespace,
        global.platform_release.as_deref(),
    )
    .await?;
    Ok(detected.name)
}

/// The Restore as an apply-able stream on stdout; the undelete SQL and how it would reach
/// Houston on stderr.
fn dry_run(
    args: &RestoreArgs,
    release: &ReleaseName,
    prepared: &Prepared,
    houston: &HoustonSide,
) -> Result<ExitStatus> {
    if let NamespaceAction::IntoExisting(n) | NamespaceAction::ConfirmExisting(n) = &prepared.action
    {
        note(format!("note: {n}"));
    }
    if let (true, Some(view)) = (houston.undelete, &houston.view) {
        note(format!(
            "dry run: after the restore, the undelete SQL would run {}",
            describe_access(view)
        ));
        for line in houston::DrySql(release).to_string().lines() {
            note(format!("# {line}"));
        }
    }
    let object = plan::restore_object(&prepared.plan);
    let format = match args.change.output {
        OutputFormat::Text => OutputFormat::Yaml,
        other => other,
    };
    output::emit_objects(format, &[object])?;
    Ok(ExitStatus::Success)
}

/// Asks before the first change (or refuses without a terminal and `--yes`).
fn consent(
    args: &RestoreArgs,
    release: &ReleaseName,
    resolved: &ResolvedNamespace,
    prepared: &Prepared,
    undelete: bool,
) -> Result<()> {
    let target = &prepared.target;
    let mut prompt = format!(
        "Create Velero restore {} of namespace {} from backup {}",
        prepared.plan.name, resolved.name, prepared.backup.name
    );
    if *target != resolved.name {
        prompt.push_str(&format!(" into namespace {target}"));
    }
    if undelete {
        prompt.push_str(&format!(", then undelete {release} in Houston"));
    }
    prompt.push('?');
    match &prepared.action {
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
    Ok(())
}

async fn wait_namespace_gone(kube: &kube::Client, args: &RestoreArgs, target: &str) -> Result<()> {
    note(format!(
        "namespace {target} is Terminating; waiting until it is gone"
    ));
    match watch::wait_namespace_gone(kube, target, to_std(args.verify_timeout)).await? {
        Ok(()) => {
            note(format!("namespace {target} is gone"));
            Ok(())
        }
        Err(_) => Err(RestoreError::NamespaceTerminating {
            namespace: target.to_owned(),
        }
        .into()),
    }
}

/// Waits for the Restore, reads its outcome (with the results file when it explains
/// something), and checks in the cluster that the namespace came back. On failure the
/// outcome seen so far comes with the error, for the report.
async fn wait_outcome(
    kube: &kube::Client,
    global: &GlobalArgs,
    args: &RestoreArgs,
    api: &Api<Restore>,
    prepared: &Prepared,
    release: &ReleaseName,
    houston: &HoustonSide,
) -> std::result::Result<Outcome, (Option<Outcome>, Error)> {
    let name = &prepared.plan.name;
    let finished = wait_finished(api, args, global, name, release)
        .await
        .map_err(|e| (None, e))?;
    let mut outcome = Outcome::of(&finished);
    if outcome.wants_results() {
        match download::restore_results(kube, &global.velero_namespace, &outcome.name).await {
            Ok(r) => outcome.results = Some(r),
            Err(e) => note(format!("warning: {e}")),
        }
    }
    note(outcome.text().trim_end());
    let not_undeleted = |why: &str| {
        if houston.undelete {
            note(format!("{release} was not undeleted in Houston: {why}"));
        }
    };
    if let Some(e) = outcome.error() {
        not_undeleted("the restore did not complete");
        return Err((Some(outcome), e.into()));
    }
    // Velero's Completed is not proof: the namespace must be there, holding objects.
    let found = namespace::collect_restored(kube, &prepared.target)
        .await
        .map_err(|e| (Some(outcome.clone()), e.into()))?;
    if let Err(what) = namespace::check_restored(&prepared.target, outcome.items_restored, &found) {
        not_undeleted("the restore brought nothing back");
        let e = RestoreError::NothingRestored {
            name: name.clone(),
            backup: prepared.backup.name.clone(),
            what,
        };
        return Err((Some(outcome), e.into()));
    }
    note(format!(
        "namespace {}: {}",
        prepared.target,
        found.describe()
    ));
    Ok(outcome)
}

/// Waits for the Restore to end; a dropped watch is checked with one GET.
async fn wait_finished(
    api: &Api<Restore>,
    args: &RestoreArgs,
    global: &GlobalArgs,
    name: &str,
    release: &ReleaseName,
) -> Result<Restore> {
    let opts = crate::wait::WaitOptions {
        timeout: args.timeout.map(to_std),
        ..crate::wait::WaitOptions::default()
    };
    match crate::wait::wait_for(api, name, &opts).await {
        Ok(crate::wait::WaitOutcome::Finished { object, .. }) => Ok(object),
        Ok(
            crate::wait::WaitOutcome::Interrupted { .. }
            | crate::wait::WaitOutcome::TimedOut { .. },
        ) => Err(RestoreError::StoppedWaiting {
            name: name.to_owned(),
            velero_namespace: global.velero_namespace.clone(),
            release: release.to_string(),
        }
        .into()),
        Err(e) => match api.get_opt(name).await {
            Ok(Some(r)) if crate::wait::classify(crate::wait::Waitable::phase(&r)).is_some() => {
                Ok(r)
            }
            _ => Err(e.into()),
        },
    }
}

/// The undelete in a new session: a long restore may have outlived the first; the row
/// may have changed meanwhile. Returns whether a row was changed.
async fn undelete_after(
    kube: &kube::Client,
    args: &RestoreArgs,
    release: &ReleaseName,
    houston: &HoustonSide,
) -> Result<bool> {
    let Some(view) = houston.view.as_ref() else {
        return Ok(false);
    };
    match undelete_now(kube, view, release, args.force).await {
        Ok(Some(done)) => {
            note(format!(
                "houston: undeleted {release} ({} row changed)",
                done.rows
            ));
            Ok(true)
        }
        Ok(None) => {
            note("houston: already undeleted meanwhile; nothing to do");
            Ok(false)
        }
        Err(e) => {
            note(format!(
                "the restore completed, but the undelete did not; fix the cause below and run `kubectl astro restore undelete {release}`"
            ));
            Err(e)
        }
    }
}

async fn verify(kube: &kube::Client, args: &RestoreArgs, target: &str) -> Result<usize> {
    note(format!(
        "waiting for Deployments in {target} to become Available"
    ));
    let n = watch::wait_deployments_available(kube, target, to_std(args.verify_timeout)).await?;
    note(format!("{n} Deployments Available in {target}"));
    Ok(n)
}

/// The candidates for `--list-backups`: `*` marks the chosen one.
fn list_text(choice: &Choice) -> String {
    let rows = choice.candidates.iter().enumerate().map(|(i, c)| {
        let started = c
            .backup
            .started
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into());
        let phase = if c.backup.phase.is_empty() {
            "New".to_owned()
        } else {
            c.backup.phase.clone()
        };
        let mark = if choice.chosen == Some(i) { "*" } else { "" };
        vec![
            mark.to_owned(),
            c.backup.name.clone(),
            phase,
            started,
            c.verdict(),
        ]
    });
    output::table(&["", "BACKUP", "PHASE", "STARTED", "VERDICT"], rows)
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
        let restore: Restore = serde_json::from_value(plan::restore_object(plan))
            .map_err(|e| Error::Internal(format!("Restore object: {e}")))?;
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
