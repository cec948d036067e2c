//! `kubectl astro restore platform --from-backup B`: runbook steps 9–12 in one command:
//! storage location read-only, full Velero restore with progress, then the endpoint move.

use std::io::IsTerminal;

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::client::KubeError;
use crate::commands::cli::{GlobalArgs, OutputFormat, print_stdout};
use crate::commands::error::Error;
use crate::commands::exit::ExitStatus;
use crate::endpoint::{self, EndpointArgs};
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

/// Errors of a whole-platform restore.
#[derive(Debug, thiserror::Error)]
pub enum PlatformRestoreError {
    /// The backup does not exist.
    #[error("backup {namespace}/{name} not found")]
    BackupMissing {
        /// Velero namespace.
        namespace: String,
        /// Backup name.
        name: String,
    },
    /// The backup cannot be restored from.
    #[error("backup {name} is not usable: {reason}")]
    BackupNotUsable {
        /// Backup name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The storage location is missing or not Available.
    #[error("backup storage location {namespace}/{name} of backup {backup} is {state}")]
    StorageLocation {
        /// Velero namespace.
        namespace: String,
        /// BSL name.
        name: String,
        /// Backup name.
        backup: String,
        /// Its state.
        state: String,
    },
    /// The restore ended badly.
    #[error("restore {name} ended {phase}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    RestoreFailed {
        /// Restore name.
        name: String,
        /// Final phase.
        phase: String,
        /// Reason, when Velero gives one.
        detail: Option<String>,
    },
    /// No TTY and no `--yes`.
    #[error("refusing to restore the whole platform without confirmation (no terminal)")]
    NotConfirmed,
}

/// Checks a Backup (as JSON) can be restored from; returns its storage location name.
pub fn check_backup(
    name: &str,
    backup: &Value,
    now: jiff::Timestamp,
) -> Result<String, PlatformRestoreError> {
    let phase = backup
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    let not_usable = |reason: String| PlatformRestoreError::BackupNotUsable {
        name: name.to_owned(),
        reason,
    };
    if phase != "Completed" {
        return Err(not_usable(format!(
            "its phase is {}, not Completed",
            if phase.is_empty() { "empty" } else { phase }
        )));
    }
    if backup.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(not_usable("it is being deleted".into()));
    }
    if let Some(expiry) = backup.pointer("/status/expiration").and_then(Value::as_str)
        && let Ok(expiry) = expiry.parse::<jiff::Timestamp>()
        && expiry <= now
    {
        return Err(not_usable(format!(
            "it expired at {expiry}; Velero's garbage collection deletes it"
        )));
    }
    Ok(backup
        .pointer("/spec/storageLocation")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned())
}

/// The merge patch that makes a storage location read-only, or `None` if it already is.
pub fn plan_read_only(bsl: &Value) -> Option<Value> {
    if bsl.pointer("/spec/accessMode").and_then(Value::as_str) == Some("ReadOnly") {
        return None;
    }
    Some(json!({
        "metadata": {"resourceVersion": bsl.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)},
        "spec": {"accessMode": "ReadOnly"},
    }))
}

/// The full Restore: every namespace in the backup, like `velero restore create --from-backup`.
pub fn restore_object(name: &str, velero_namespace: &str, backup: &str) -> Value {
    json!({
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {
            "name": name,
            "namespace": velero_namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubectl-astro"},
        },
        "spec": {"backupName": backup, "includedNamespaces": ["*"]},
    })
}

/// `platform-<backup>-<yyyymmddhhmmss>`, cut to the 63 characters of a label value.
pub fn restore_name(backup: &str, now: jiff::Timestamp) -> String {
    let stamp = now.strftime("%Y%m%d%H%M%S").to_string();
    let keep = 63 - stamp.len() - "platform--".len();
    let base: String = backup.chars().take(keep).collect();
    format!("platform-{}-{stamp}", base.trim_end_matches(['-', '.']))
}

fn say(fmt: OutputFormat, line: &str) {
    if fmt == OutputFormat::Text {
        let _ = print_stdout(&format!("{line}\n"));
    } else {
        eprintln!("{line}");
    }
}

/// Entry point of `kubectl astro restore platform`.
pub async fn run(global: &GlobalArgs, args: &PlatformArgs) -> Result<ExitStatus, Error> {
    if args.endpoint.wants_move() {
        // Bad endpoint flags are found before anything changes.
        endpoint::target_from(&args.endpoint, None)?;
    }
    let fmt = args.endpoint.output;
    let client = crate::client::client_from(global).await?;
    let vns = global.velero_namespace.as_str();
    let backups: Api<Backup> = Api::namespaced(client.clone(), vns);
    let bsls: Api<BackupStorageLocation> = Api::namespaced(client.clone(), vns);
    let restores: Api<Restore> = Api::namespaced(client.clone(), vns);
    let name = &args.from_backup;

    let backup = backups
        .get_opt(name)
        .await
        .map_err(|e| KubeError::api(format!("get backup {vns}/{name}"), e))?
        .ok_or_else(|| PlatformRestoreError::BackupMissing {
            namespace: vns.into(),
            name: name.clone(),
        })?;
    let backup = serde_json::to_value(&backup).unwrap_or_default();
    let now = jiff::Timestamp::now();
    let bsl_name = check_backup(name, &backup, now)?;
    let bsl = bsls
        .get_opt(&bsl_name)
        .await
        .map_err(|e| KubeError::api(format!("get backupstoragelocation {vns}/{bsl_name}"), e))?
        .map(|b| serde_json::to_value(&b).unwrap_or_default());
    let bsl_error = |state: String| PlatformRestoreError::StorageLocation {
        namespace: vns.into(),
        name: bsl_name.clone(),
        backup: name.clone(),
        state,
    };
    let Some(bsl) = bsl else {
        return Err(bsl_error("missing".into()).into());
    };
    let phase = bsl
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase != "Available" {
        return Err(bsl_error(if phase.is_empty() {
            "not validated yet".into()
        } else {
            phase.into()
        })
        .into());
    }
    let read_only = if args.keep_read_write {
        None
    } else {
        plan_read_only(&bsl)
    };
    let restore_name = args
        .restore_name
        .clone()
        .unwrap_or_else(|| restore_name(name, now));
    let restore = restore_object(&restore_name, vns, name);

    if args.endpoint.dry_run {
        if read_only.is_some() {
            say(
                fmt,
                &format!(
                    "would patch backupstoragelocation {vns}/{bsl_name}: spec.accessMode=ReadOnly"
                ),
            );
        }
        say(fmt, "would create:");
        let _ = print_stdout(&serde_saphyr::to_string(&restore).unwrap_or_default());
        if args.endpoint.wants_move() {
            say(
                fmt,
                "then move the database endpoint; after the restore, `kubectl astro restore endpoint --dry-run` shows that diff",
            );
        }
        return Ok(ExitStatus::Success);
    }
    if !args.endpoint.yes {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(PlatformRestoreError::NotConfirmed.into());
        }
        let ok = dialoguer::Confirm::new()
            .with_prompt(format!(
                "Restore every namespace of backup {name}{}?",
                if args.endpoint.wants_move() {
                    " and move the database endpoint"
                } else {
                    ""
                }
            ))
            .default(false)
            .interact()
            .unwrap_or(false);
        if !ok {
            say(fmt, "cancelled; nothing was changed");
            return Ok(ExitStatus::Refused);
        }
    }

    if let Some(patch) = read_only {
        bsls.patch(&bsl_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                KubeError::api(
                    format!("set backupstoragelocation {vns}/{bsl_name} read-only"),
                    e,
                )
            })?;
        say(
            fmt,
            &format!(
                "backupstoragelocation {vns}/{bsl_name} is now ReadOnly; to allow backups again: \
            kubectl patch backupstoragelocation {bsl_name} -n {vns} --type merge -p '{{\"spec\":{{\"accessMode\":\"ReadWrite\"}}}}'"
            ),
        );
    }

    let object: Restore = serde_json::from_value(restore)
        .map_err(|e| Error::usage(e.to_string(), "report this bug"))?;
    restores
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| KubeError::api(format!("create restore {vns}/{restore_name}"), e))?;
    say(
        fmt,
        &format!(
            "created restore {vns}/{restore_name} from backup {name}; waiting (Ctrl-C stops waiting, the restore keeps running)"
        ),
    );

    let done = match wait_for(&restores, &restore_name, &WaitOptions::default()).await? {
        WaitOutcome::Finished { object, .. } => object,
        WaitOutcome::Interrupted { .. } | WaitOutcome::TimedOut { .. } => {
            say(
                fmt,
                &format!(
                    "stopped waiting; restore {vns}/{restore_name} keeps running. When it is Completed, run `kubectl astro restore endpoint` for the database endpoint"
                ),
            );
            return Ok(ExitStatus::Failed);
        }
    };
    let data = serde_json::to_value(&done).unwrap_or_default();
    let phase = data
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if phase != "Completed" {
        let detail = data
            .pointer("/status/failureReason")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                data.pointer("/status/validationErrors")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
            })
            .or_else(|| {
                data.pointer("/status/errors")
                    .and_then(Value::as_i64)
                    .map(|n| format!("{n} errors"))
            })
            .filter(|d| !d.is_empty());
        return Err(PlatformRestoreError::RestoreFailed {
            name: restore_name,
            phase,
            detail,
        }
        .into());
    }
    say(fmt, &format!("restore {restore_name} Completed"));
    if !args.endpoint.wants_move() {
        return Ok(ExitStatus::Success);
    }
    // The user confirmed the whole flow above.
    let mut endpoint_args = args.endpoint.clone();
    endpoint_args.yes = true;
    endpoint::move_endpoint(&client, global, &endpoint_args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-09-15T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn backups_are_checked() {
        let ok = json!({"spec": {"storageLocation": "aws-east"}, "status": {"phase": "Completed", "expiration": "2026-10-01T00:00:00Z"}});
        assert_eq!(check_backup("b", &ok, now()).unwrap(), "aws-east");
        let default_bsl = json!({"spec": {}, "status": {"phase": "Completed"}});
        assert_eq!(check_backup("b", &default_bsl, now()).unwrap(), "default");
        for bad in [
            json!({"status": {"phase": "PartiallyFailed"}}),
            json!({"status": {"phase": "InProgress"}}),
            json!({}),
            json!({"status": {"phase": "Completed", "expiration": "2026-09-01T00:00:00Z"}}),
            json!({"metadata": {"deletionTimestamp": "2026-09-14T00:00:00Z"}, "status": {"phase": "Completed"}}),
        ] {
            assert!(
                matches!(
                    check_backup("b", &bad, now()),
                    Err(PlatformRestoreError::BackupNotUsable { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn read_only_patch_carries_precondition() {
        let rw =
            json!({"metadata": {"resourceVersion": "42"}, "spec": {"accessMode": "ReadWrite"}});
        assert_eq!(
            plan_read_only(&rw).unwrap(),
            json!({"metadata": {"resourceVersion": "42"}, "spec": {"accessMode": "ReadOnly"}})
        );
        assert!(plan_read_only(&json!({"spec": {"accessMode": "ReadOnly"}})).is_none());
    }

    #[test]
    fn restore_covers_every_namespace() {
        let r = restore_object("platform-b-1", "velero", "b");
        assert_eq!(
            r["spec"],
            json!({"backupName": "b", "includedNamespaces": ["*"]})
        );
        let name = restore_name(&"x".repeat(80), now());
        assert!(name.len() <= 63, "{name}");
        assert_eq!(
            restore_name("nightly-20260914", now()),
            "platform-nightly-20260914-20260915000000"
        );
    }
}
