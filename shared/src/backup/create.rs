//! `backup create`: collect namespaces and the storage location, run the pre-flight
//! checks, apply the Redis volume policy and the Backup, and optionally wait for it.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

use super::BackupError;
use super::plan::{self, BackupOptions, MAX_BACKUP_NAME, POLICY_CONFIGMAP, PolicyAction, Scope};
use crate::client::KubeError;
use crate::namespaces;
use crate::platform::Site;
use crate::velero::download::{self, OperationResults};
use crate::velero::{Backup, BackupStorageLocation, DownloadRequestTargetKind, Terminal};
use crate::wait::{self, WaitOptions, WaitOutcome};

/// The namespaces and storage location a backup or schedule will use, pre-flight checked.
#[derive(Debug, Clone)]
pub struct Scoped {
    /// Platform release used for the deployment label match.
    pub platform_release: String,
    /// Namespaces to back up (platform first).
    pub namespaces: Vec<String>,
    /// The storage location the server will write to.
    pub storage_location: String,
}

/// Resolves `scope` against the cluster and checks: every namespace exists and is not
/// Terminating; the storage location exists, is Available and not ReadOnly.
pub async fn collect_scope(
    client: &Client,
    globals: &Site,
    scope: &Scope,
    storage_location: Option<&str>,
) -> Result<Scoped, BackupError> {
    let release = crate::platform::collect_platform_release(
        client,
        &globals.platform_namespace,
        globals.platform_release.as_deref(),
    )
    .await?;
    let all = namespaces::collect_namespaces(client).await?;
    let found =
        namespaces::plan_platform_namespaces(&all, &globals.platform_namespace, &release.name);
    let selected =
        plan::resolve_namespaces(scope, &found, &globals.platform_namespace, &release.name)?;
    plan::check_namespaces(&selected, &found)?;

    let bsls = collect_storage_locations(client, &globals.velero_namespace).await?;
    let location = plan::choose_storage_location(storage_location, &bsls);
    let bsl = bsls
        .iter()
        .find(|b| b.metadata.name.as_deref() == Some(location.as_str()));
    plan::check_storage_location(&location, bsl, &globals.velero_namespace)?;
    Ok(Scoped {
        platform_release: release.name,
        namespaces: selected,
        storage_location: location,
    })
}

/// Every BackupStorageLocation in the Velero namespace (none if the CRD is missing).
pub async fn collect_storage_locations(
    client: &Client,
    velero_namespace: &str,
) -> Result<Vec<BackupStorageLocation>, KubeError> {
    let api: Api<BackupStorageLocation> = Api::namespaced(client.clone(), velero_namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(KubeError::api(
            format!("list backupstoragelocations in namespace {velero_namespace}"),
            e,
        )),
    }
}

/// Everything `backup create` would do, decided.
#[derive(Debug, Clone)]
pub struct CreatePlan {
    /// The checked scope.
    pub scoped: Scoped,
    /// What to do with the volume-policy ConfigMap.
    pub policy: PolicyAction,
    /// The Backup to create.
    pub backup: Backup,
}

impl CreatePlan {
    /// The objects that would be created or changed, as JSON values, in order.
    pub fn objects(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        let mut out = Vec::new();
        match &self.policy {
            PolicyAction::Create(cm) | PolicyAction::Update(cm) => {
                out.push(serde_json::to_value(cm)?);
            }
            PolicyAction::Unchanged => {}
        }
        out.push(serde_json::to_value(&self.backup)?);
        Ok(out)
    }
}

/// Reads the cluster and decides (no changes): pre-flight checks, name, policy, Backup.
pub async fn prepare(
    client: &Client,
    globals: &Site,
    scope: &Scope,
    name: Option<&str>,
    opts: &BackupOptions,
) -> Result<CreatePlan, BackupError> {
    let name = match name {
        Some(n) => n.to_owned(),
        None => plan::default_name(&scope.label(), Timestamp::now()),
    };
    plan::validate_name(&name, MAX_BACKUP_NAME, "backup")?;
    let scoped = collect_scope(client, globals, scope, opts.storage_location.as_deref()).await?;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &globals.velero_namespace);
    let existing = backups.get_opt(&name).await.map_err(|e| {
        KubeError::api(format!("get backup {}/{name}", globals.velero_namespace), e)
    })?;
    if existing.is_some() {
        return Err(BackupError::AlreadyExists {
            kind: "backup",
            namespace: globals.velero_namespace.clone(),
            name,
        });
    }
    let policy = collect_policy(client, &globals.velero_namespace).await?;
    let backup = plan::plan_backup(&name, &globals.velero_namespace, &scoped.namespaces, opts);
    Ok(CreatePlan {
        scoped,
        policy,
        backup,
    })
}

/// Reads the policy ConfigMap and decides what to do with it.
pub async fn collect_policy(
    client: &Client,
    velero_namespace: &str,
) -> Result<PolicyAction, KubeError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), velero_namespace);
    let existing = api.get_opt(POLICY_CONFIGMAP).await.map_err(|e| {
        KubeError::api(
            format!("get configmap {velero_namespace}/{POLICY_CONFIGMAP}"),
            e,
        )
    })?;
    Ok(plan::plan_policy(existing.as_ref(), velero_namespace))
}

/// Creates or updates the policy ConfigMap; on a conflict (someone else changed it
/// meanwhile) it re-reads and tries again.
pub async fn apply_policy(
    client: &Client,
    velero_namespace: &str,
    action: PolicyAction,
) -> Result<(), BackupError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), velero_namespace);
    let mut action = action;
    for _ in 0..5 {
        let result = match &action {
            PolicyAction::Unchanged => return Ok(()),
            PolicyAction::Create(cm) => api.create(&PostParams::default(), cm).await.map(drop),
            PolicyAction::Update(cm) => api
                .replace(POLICY_CONFIGMAP, &PostParams::default(), cm)
                .await
                .map(drop),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                action = collect_policy(client, velero_namespace).await?;
            }
            Err(e) => {
                return Err(KubeError::api(
                    format!("write configmap {velero_namespace}/{POLICY_CONFIGMAP}"),
                    e,
                )
                .into());
            }
        }
    }
    Err(BackupError::Conflict {
        object: format!("configmap {velero_namespace}/{POLICY_CONFIGMAP}"),
    })
}

/// Applies the plan: policy first (the Backup references it), then the Backup.
pub async fn apply(client: &Client, plan: &CreatePlan) -> Result<Backup, BackupError> {
    let namespace = plan.backup.metadata.namespace.clone().unwrap_or_default();
    apply_policy(client, &namespace, plan.policy.clone()).await?;
    let api: Api<Backup> = Api::namespaced(client.clone(), &namespace);
    let name = plan.backup.metadata.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), &plan.backup).await {
        Ok(b) => Ok(b),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(BackupError::AlreadyExists {
            kind: "backup",
            namespace,
            name,
        }),
        Err(e) => Err(KubeError::api(format!("create backup {namespace}/{name}"), e).into()),
    }
}

/// Why a finished backup is not a success: validation errors, failure reason, and
/// (for errors) the messages of its results file.
pub async fn reasons(client: &Client, velero_namespace: &str, backup: &Backup) -> Vec<String> {
    let mut out = Vec::new();
    let Some(status) = &backup.status else {
        return out;
    };
    out.extend(
        status
            .validation_errors
            .iter()
            .flatten()
            .map(|e| format!("validation: {e}")),
    );
    if let Some(reason) = status.failure_reason.as_ref().filter(|r| !r.is_empty()) {
        out.push(format!("failure reason: {reason}"));
    }
    if status.errors.unwrap_or(0) > 0 {
        let name = backup.metadata.name.clone().unwrap_or_default();
        match download::results(
            client,
            velero_namespace,
            DownloadRequestTargetKind::BackupResults,
            &name,
        )
        .await
        {
            Ok(OperationResults { errors, .. }) => {
                out.extend(errors.lines().into_iter().map(|l| format!("error: {l}")))
            }
            Err(e) => out.push(format!(
                "{} errors; the results file could not be read ({e})",
                status.errors.unwrap_or(0)
            )),
        }
    }
    out
}

/// Waits for `name` and turns the outcome into success or [`BackupError`].
pub async fn wait_and_report(
    client: &Client,
    velero_namespace: &str,
    name: &str,
    opts: &WaitOptions,
) -> Result<Backup, BackupError> {
    let api: Api<Backup> = Api::namespaced(client.clone(), velero_namespace);
    match wait::wait_for(&api, name, opts).await? {
        WaitOutcome::Finished {
            phase: Terminal::Completed,
            object,
        } => Ok(object),
        WaitOutcome::Finished { phase, object } => Err(BackupError::Ended {
            name: name.to_owned(),
            phase: phase.to_string(),
            reasons: reasons(client, velero_namespace, &object).await,
        }),
        WaitOutcome::Interrupted { .. } | WaitOutcome::TimedOut { .. } => {
            Err(BackupError::StoppedWaiting {
                name: name.to_owned(),
            })
        }
    }
}
