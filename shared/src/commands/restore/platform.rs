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
use crate::endpoint::target::Endpoint;
use crate::endpoint::target_from;
use crate::output::{self, Confirmation, note};
use crate::restore::RestoreError;
use crate::restore::collect::unfinished_restore;
use crate::restore::outcome::Outcome;
use crate::restore::platform::{
    PlatformRestoreError, check_backup, endpoint_in_backup, plan_read_only, plugin_config,
    restore_name, restore_object,
};
use crate::velero::download::{self, DEFAULT_TIMEOUT};
use crate::velero::server_status::{self, ServerAnswer};
use crate::velero::{Backup, BackupStorageLocation, DownloadRequestTargetKind, Restore};
use crate::velero_plugin::config::{CONFIGMAP_NAME, EndpointConfig};
use crate::velero_plugin::install;
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
    /// `restore_name` is an earlier run's restore, still running: wait for it.
    adopted: bool,
}

/// How the database endpoint moves with the restore.
enum EndpointRoute {
    /// No move asked for.
    NoMove,
    /// After the restore, by patching and restarting (no plugin).
    Afterwards,
    /// During the restore, by the Velero plugin; the move afterwards only verifies.
    Plugin {
        /// The ConfigMap's content.
        config: EndpointConfig,
    },
}

impl EndpointRoute {
    fn config(&self) -> Option<&EndpointConfig> {
        match self {
            EndpointRoute::Plugin { config } => Some(config),
            _ => None,
        }
    }
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
    let mut plan = plan(global, args, &collected, now);
    let everything = ["*".to_owned()];
    if let Some(earlier) = unfinished_restore(
        &client,
        &global.velero_namespace,
        &args.from_backup,
        &everything,
    )
    .await?
    {
        plan.restore_name = earlier;
        plan.adopted = true;
    }
    let route = endpoint_route(&client, global, args, &plan).await?;
    if args.endpoint.dry_run {
        return dry_run(args, &collected, &plan, &route);
    }
    confirm(args)?;
    let vns = global.velero_namespace.as_str();
    if let Some(patch) = &plan.read_only {
        set_read_only(&client, vns, &plan.bsl_name, patch).await?;
    }
    if let Some(config) = route.config() {
        install::write_config(&client, vns, config).await?;
        note(format!(
            "wrote ConfigMap {vns}/{CONFIGMAP_NAME}: the Velero plugin moves the database secrets \
             as restore {} creates them (that restore only)",
            plan.restore_name
        ));
    }
    let outcome = restore_and_wait(&client, vns, &plan).await;
    if route.config().is_some() {
        remove_plugin_config(&client, vns, &outcome).await;
    }
    let outcome = outcome?;
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
    let previous = match &route {
        EndpointRoute::Plugin { config } => {
            note(
                "checking what the plugin moved: anything it did not is patched now, and only the workloads reading it restart",
            );
            config.old.clone()
        }
        _ => None,
    };
    endpoint::move_endpoint(&client, global, &endpoint_args, previous).await
}

/// Whether the Velero plugin moves the endpoint during the restore: only when the Velero
/// server loaded it; then the backup tells the endpoint it brings back.
async fn endpoint_route(
    client: &kube::Client,
    global: &GlobalArgs,
    args: &PlatformArgs,
    plan: &PlatformPlan,
) -> Result<EndpointRoute, Error> {
    if !args.endpoint.wants_move() {
        return Ok(EndpointRoute::NoMove);
    }
    let vns = global.velero_namespace.as_str();
    let answer = server_status::ask(
        client,
        vns,
        "kubectl-astro-restore-",
        install::STATUS_TIMEOUT,
    )
    .await;
    if answer == ServerAnswer::Interrupted {
        return Err(PlatformRestoreError::Interrupted {
            step: "asking the Velero server which plugins it loaded".into(),
        }
        .into());
    }
    if !install::has_db_endpoint(&answer) {
        let why = answer
            .problem()
            .unwrap_or_else(|| "the Velero server has not loaded velero-plugin-astro".into());
        note(format!(
            "{why}: the restored platform starts on the old database endpoint, and the move \
             afterwards patches its secrets and restarts its workloads. Installing \
             velero-plugin-astro (README, \"The Velero plugin\") avoids that restart storm: \
             the restore then creates them on the new endpoint"
        ));
        return Ok(EndpointRoute::Afterwards);
    }
    let others = install::other_configs(client, vns).await?;
    if !others.is_empty() {
        return Err(PlatformRestoreError::OtherPluginConfig {
            namespace: vns.to_owned(),
            names: others,
        }
        .into());
    }
    let old = old_endpoint(client, global, &args.from_backup).await;
    let target = target_from(&args.endpoint.request(), old.as_ref().map(|e| e.port))?;
    if target.userinfo.is_some() {
        note(
            "the new user and password are set after the restore (credentials never go into a ConfigMap), so the platform's workloads restart once",
        );
    }
    let config = plugin_config(
        &target,
        old,
        &global.platform_namespace,
        global.platform_release.as_deref(),
        &plan.restore_name,
    );
    Ok(EndpointRoute::Plugin { config })
}

/// The endpoint the backup brings back, from its tarball; `None` (with a note) when it
/// cannot be read: the plugin then moves every connection it finds, and keys that name a
/// host directly (`kedaConnection`) are left to the move afterwards.
async fn old_endpoint(
    client: &kube::Client,
    global: &GlobalArgs,
    backup: &str,
) -> Option<Endpoint> {
    let vns = global.velero_namespace.as_str();
    let pns = global.platform_namespace.as_str();
    let kind = DownloadRequestTargetKind::BackupContents;
    let read = match download::download(client, vns, kind, backup, DEFAULT_TIMEOUT).await {
        Ok(bytes) => endpoint_in_backup(&bytes, pns).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match read {
        Ok(Some(old)) => {
            note(format!(
                "backup {backup} brings back database endpoint {old}"
            ));
            Some(old)
        }
        Ok(None) => {
            note(format!(
                "backup {backup} holds no usable secret {pns}/{}; keys naming the old host directly are moved after the restore",
                crate::endpoint::plan::BOOTSTRAP_SECRET
            ));
            None
        }
        Err(e) => {
            note(format!(
                "cannot read the old database endpoint from backup {backup} ({e}); keys naming the old host directly are moved after the restore"
            ));
            None
        }
    }
}

/// Removes the plugin's ConfigMap once the restore has ended. If we only stopped waiting,
/// it stays for the restore still running (it names that restore, so no other is touched).
async fn remove_plugin_config(client: &kube::Client, vns: &str, outcome: &Result<Outcome, Error>) {
    if let Err(Error::PlatformRestore(PlatformRestoreError::StoppedWaiting { name, .. })) = outcome
    {
        note(format!(
            "ConfigMap {vns}/{CONFIGMAP_NAME} stays while restore {name} runs (it applies to that restore only); \
             remove it afterwards: kubectl delete configmap {CONFIGMAP_NAME} -n {vns}"
        ));
        return;
    }
    if let Err(e) = install::delete_config(client, vns).await {
        note(format!(
            "warning: {e}; it applies only to the restore just made, remove it with: kubectl delete configmap {CONFIGMAP_NAME} -n {vns}"
        ));
    }
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
        adopted: false,
    }
}

/// Prints the objects that would be patched and created (an apply-able stream); the plan
/// in words on stderr.
fn dry_run(
    args: &PlatformArgs,
    collected: &Collected,
    plan: &PlatformPlan,
    route: &EndpointRoute,
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
    if let Some(config) = route.config() {
        let namespace = plan.restore["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        note(format!(
            "dry run: would write ConfigMap {namespace}/{CONFIGMAP_NAME} so the Velero plugin moves the database secrets during the restore, and remove it after"
        ));
        let mut cm = serde_json::to_value(config.configmap(namespace))
            .map_err(|e| Error::Internal(format!("ConfigMap: {e}")))?;
        cm["apiVersion"] = "v1".into();
        cm["kind"] = "ConfigMap".into();
        objects.push(cm);
    }
    objects.push(plan.restore.clone());
    match route {
        EndpointRoute::NoMove => {}
        EndpointRoute::Afterwards => note(
            "dry run: then move the database endpoint; after the restore, `kubectl astro restore endpoint --dry-run` shows that diff",
        ),
        EndpointRoute::Plugin { .. } => note(
            "dry run: then check the move (`kubectl astro restore endpoint --check` after the restore shows anything left)",
        ),
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
    // Sets one field outright: right to send again after a conflict.
    let (params, body) = (PatchParams::default(), Patch::Merge(patch));
    crate::client::retry_on_conflict(|| bsls.patch(bsl_name, &params, &body))
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

/// Creates the Restore (unless an earlier run's is still running: then waits for that)
/// and waits for its end; anything but Completed is an error.
async fn restore_and_wait(
    client: &kube::Client,
    vns: &str,
    plan: &PlatformPlan,
) -> Result<Outcome, Error> {
    let restores: Api<Restore> = Api::namespaced(client.clone(), vns);
    let object: Restore = serde_json::from_value(plan.restore.clone())
        .map_err(|e| Error::Internal(format!("Restore object: {e}")))?;
    let name = match plan.adopted {
        // An earlier run was stopped (killed) while waiting: wait for its restore rather
        // than restoring everything a second time.
        true => {
            note(format!(
                "restore {vns}/{} of backup {} from an earlier run is still running; waiting for it instead of creating another",
                plan.restore_name,
                object.spec.backup_name.as_deref().unwrap_or_default()
            ));
            &plan.restore_name
        }
        false => {
            let name = &plan.restore_name;
            restores
                .create(&PostParams::default(), &object)
                .await
                .map_err(|e| {
                    KubeError::api(
                        format!("create restore {vns}/{name} (no restore was started)"),
                        e,
                    )
                })?;
            note(format!(
                "created restore {vns}/{name}; waiting (Ctrl-C stops waiting, the restore keeps running)"
            ));
            name
        }
    };
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
