//! `kubectl astro restore platform`: the whole-platform flow (runbook steps 9-12): check
//! the backup, set the storage location ReadOnly, restore everything, then optionally move
//! the database endpoint.

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::client::KubeError;
use crate::commands::cli::GlobalArgs;
use crate::commands::error::Error;
use crate::commands::exit::ExitStatus;
use crate::commands::restore::endpoint::{self, EndpointArgs};
use crate::endpoint::target_from;
use crate::output::{self, Confirmation, note};
use crate::restore::RestoreError;
use crate::restore::outcome::Outcome;
use crate::restore::platform::{
    PlatformRestoreError, check_backup, plan_read_only, restore_name, restore_object,
};
use crate::velero::{Backup, BackupStorageLocation, Restore};
use crate::wait::{WaitOptions, WaitOutcome, wait_for};

/// Flags of `restore platform`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlatformArgs {
    /// The Velero Backup to restore everything from.
    #[arg(long, value_name = "BACKUP")]
    pub from_backup: String,

    /// Leave the storage location read-write (by default it is set to ReadOnly first,
    /// so nothing overwrites the backups during the recovery).
    #[arg(long)]
    pub keep_read_write: bool,

    /// Name of the Restore (default: `platform-<backup>-<UTC timestamp>`).
    #[arg(long, value_name = "NAME")]
    pub restore_name: Option<String>,

    /// Optional endpoint move after the restore (same flags as `restore endpoint`).
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

/// What the cluster holds for the flow: the backup and its storage location.
struct Collected {
    backup: Backup,
    bsl_name: String,
    bsl: BackupStorageLocation,
}

/// What the flow will do.
struct PlatformPlan {
    bsl_name: String,
    /// The merge patch making the storage location ReadOnly (None: leave it).
    read_only: Option<Value>,
    restore_name: String,
    restore: Value,
}

/// The result, for `-o json|yaml`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    backup: String,
    restore: String,
    storage_location: String,
    storage_location_read_only: bool,
    outcome: Outcome,
}

/// Entry point of `kubectl astro restore platform`.
pub async fn run(global: &GlobalArgs, args: &PlatformArgs) -> Result<ExitStatus, Error> {
    if args.endpoint.wants_move() {
        // Bad endpoint flags are found before anything changes.
        target_from(&args.endpoint.request(), None)?;
    }
    let client = crate::commands::cli::client_from(global).await?;
    let needs = crate::commands::preflight::restore_platform(global, args.endpoint.wants_move());
    crate::commands::preflight::check(&client, &needs).await?;
    let now = jiff::Timestamp::now();
    let collected = collect(&client, global, &args.from_backup, now).await?;
    let plan = plan(global, args, &collected, now);
    if args.endpoint.dry_run {
        return dry_run(args, &collected, &plan);
    }
    confirm(args)?;
    let vns = global.velero_namespace.as_str();
    if let Some(patch) = &plan.read_only {
        set_read_only(&client, vns, &plan.bsl_name, patch).await?;
    }
    let outcome = restore_and_wait(&client, vns, &plan).await?;
    let text = format!(
        "restored backup {} (restore {} Completed){}\n",
        args.from_backup,
        plan.restore_name,
        read_only_hint(vns, &plan)
    );
    let report = Report {
        backup: args.from_backup.clone(),
        restore: plan.restore_name.clone(),
        storage_location: plan.bsl_name.clone(),
        storage_location_read_only: plan.read_only.is_some()
            || collected.bsl.spec.access_mode.as_ref().map(|m| m.as_str()) == Some("ReadOnly"),
        outcome,
    };
    output::emit(args.endpoint.output, &text, &report, "the restore report")?;
    if !args.endpoint.wants_move() {
        return Ok(ExitStatus::Success);
    }
    // The user confirmed the whole flow above.
    let mut endpoint_args = args.endpoint.clone();
    endpoint_args.yes = true;
    endpoint::move_endpoint(&client, global, &endpoint_args).await
}

/// Reads the backup and its storage location, refusing what cannot be restored from.
async fn collect(
    client: &kube::Client,
    global: &GlobalArgs,
    name: &str,
    now: jiff::Timestamp,
) -> Result<Collected, Error> {
    let vns = global.velero_namespace.as_str();
    let backups: Api<Backup> = Api::namespaced(client.clone(), vns);
    let backup = backups
        .get_opt(name)
        .await
        .map_err(|e| KubeError::api(format!("get backup {vns}/{name}"), e))?
        .ok_or_else(|| PlatformRestoreError::BackupMissing {
            namespace: vns.into(),
            name: name.to_owned(),
        })?;
    let bsl_name = check_backup(name, &backup, now)?;
    let bsls: Api<BackupStorageLocation> = Api::namespaced(client.clone(), vns);
    let bsl = bsls
        .get_opt(&bsl_name)
        .await
        .map_err(|e| KubeError::api(format!("get backupstoragelocation {vns}/{bsl_name}"), e))?;
    let bsl_error = |state: String| PlatformRestoreError::StorageLocation {
        namespace: vns.into(),
        name: bsl_name.clone(),
        backup: name.to_owned(),
        state,
    };
    let Some(bsl) = bsl else {
        return Err(bsl_error("missing".into()).into());
    };
    let phase = bsl
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if phase != "Available" {
        let state = if phase.is_empty() {
            "not validated yet".to_owned()
        } else {
            phase
        };
        return Err(bsl_error(state).into());
    }
    Ok(Collected {
        backup,
        bsl_name,
        bsl,
    })
}

fn plan(
    global: &GlobalArgs,
    args: &PlatformArgs,
    collected: &Collected,
    now: jiff::Timestamp,
) -> PlatformPlan {
    let name = &args.from_backup;
    let restore_name = args
        .restore_name
        .clone()
        .unwrap_or_else(|| restore_name(name, now));
    PlatformPlan {
        bsl_name: collected.bsl_name.clone(),
        read_only: (!args.keep_read_write)
            .then(|| plan_read_only(&collected.bsl))
            .flatten(),
        restore: restore_object(&restore_name, &global.velero_namespace, name),
        restore_name,
    }
}

/// Prints the objects that would be patched and created (an apply-able stream); the plan
/// in words on stderr.
fn dry_run(
    args: &PlatformArgs,
    collected: &Collected,
    plan: &PlatformPlan,
) -> Result<ExitStatus, Error> {
    let mut objects = Vec::new();
    if plan.read_only.is_some() {
        note(format!(
            "dry run: would set backupstoragelocation {} to ReadOnly",
            plan.bsl_name
        ));
        let mut bsl = collected.bsl.clone();
        bsl.status = None;
        bsl.metadata.managed_fields = None;
        bsl.spec.access_mode = Some(crate::velero::BackupStorageLocationAccessMode::ReadOnly);
        objects.push(
            serde_json::to_value(&bsl)
                .map_err(|e| Error::Internal(format!("BackupStorageLocation: {e}")))?,
        );
    }
    note(format!(
        "dry run: would create restore {} of every namespace in backup {}",
        plan.restore_name,
        collected
            .backup
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
    ));
    objects.push(plan.restore.clone());
    if args.endpoint.wants_move() {
        note(
            "dry run: then move the database endpoint; after the restore, `kubectl astro restore endpoint --dry-run` shows that diff",
        );
    }
    output::emit_objects(args.endpoint.output, &objects)?;
    Ok(ExitStatus::Success)
}

fn confirm(args: &PlatformArgs) -> Result<(), Error> {
    let prompt = format!(
        "Restore every namespace of backup {}{}?",
        args.from_backup,
        if args.endpoint.wants_move() {
            " and move the database endpoint"
        } else {
            ""
        }
    );
    match output::confirm(&prompt, args.endpoint.yes) {
        Confirmation::Yes => Ok(()),
        Confirmation::Declined => Err(RestoreError::Declined.into()),
        Confirmation::NoTerminal => Err(PlatformRestoreError::NotConfirmed.into()),
    }
}

async fn set_read_only(
    client: &kube::Client,
    vns: &str,
    bsl_name: &str,
    patch: &Value,
) -> Result<(), Error> {
    let bsls: Api<BackupStorageLocation> = Api::namespaced(client.clone(), vns);
    bsls.patch(bsl_name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| {
            KubeError::api(
                format!("set backupstoragelocation {vns}/{bsl_name} read-only"),
                e,
            )
        })?;
    note(format!(
        "backupstoragelocation {vns}/{bsl_name} is now ReadOnly"
    ));
    Ok(())
}

fn read_only_hint(vns: &str, plan: &PlatformPlan) -> String {
    if plan.read_only.is_none() {
        return String::new();
    }
    format!(
        "; backupstoragelocation {vns}/{} is ReadOnly; to allow backups again: \
         kubectl patch backupstoragelocation {} -n {vns} --type merge -p '{{\"spec\":{{\"accessMode\":\"ReadWrite\"}}}}'",
        plan.bsl_name, plan.bsl_name
    )
}

/// Creates the Restore and waits for its end; anything but Completed is an error.
async fn restore_and_wait(
    client: &kube::Client,
    vns: &str,
    plan: &PlatformPlan,
) -> Result<Outcome, Error> {
    let restores: Api<Restore> = Api::namespaced(client.clone(), vns);
    let object: Restore = serde_json::from_value(plan.restore.clone())
        .map_err(|e| Error::Internal(format!("Restore object: {e}")))?;
    let name = &plan.restore_name;
    restores
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| KubeError::api(format!("create restore {vns}/{name}"), e))?;
    note(format!(
        "created restore {vns}/{name}; waiting (Ctrl-C stops waiting, the restore keeps running)"
    ));
    let done = match wait_for(&restores, name, &WaitOptions::default()).await? {
        WaitOutcome::Finished { object, .. } => object,
        WaitOutcome::Interrupted { .. } | WaitOutcome::TimedOut { .. } => {
            return Err(PlatformRestoreError::StoppedWaiting {
                name: name.clone(),
                namespace: vns.to_owned(),
            }
            .into());
        }
    };
    let outcome = Outcome::of(&done);
    note(outcome.text().trim_end());
    match outcome.error() {
        Some(e) => Err(e.into()),
        None => Ok(outcome),
    }
}
