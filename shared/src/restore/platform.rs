//! A whole-platform restore (runbook steps 9-12): which backup may be used, the patch that
//! makes its storage location read-only first, and the Restore of every namespace.

use serde_json::{Value, json};

use crate::endpoint::plan::{BOOTSTRAP_SECRET, Target};
use crate::endpoint::target::{Endpoint, uri_endpoint};
use crate::velero::contents::{self, ContentsError};
use crate::velero::{Backup, BackupStorageLocation};
use crate::velero_plugin::config::EndpointConfig;

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
    /// We stopped waiting (Ctrl-C); the Restore keeps running in Velero.
    #[error("stopped waiting; restore {namespace}/{name} keeps running in Velero")]
    StoppedWaiting {
        /// Restore name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// Ctrl-C before the Restore was created.
    #[error("interrupted (Ctrl-C) while {step}; no Restore was created")]
    Interrupted {
        /// What the command was doing.
        step: String,
    },
    /// No TTY and no `--yes`.
    #[error("refusing to restore the whole platform without confirmation (no terminal)")]
    NotConfirmed,
    /// Another ConfigMap configures the plugin: with two, it would rewrite nothing.
    #[error(
        "ConfigMap {} in namespace {namespace} already configures the Velero plugin's astronomer.io/db-endpoint action; with a second one it would move nothing",
        names.join(", ")
    )]
    OtherPluginConfig {
        /// Velero namespace.
        namespace: String,
        /// Their names.
        names: Vec<String>,
    },
}

/// Checks a Backup can be restored from; returns its storage location name.
pub fn check_backup(
    name: &str,
    backup: &Backup,
    now: jiff::Timestamp,
) -> Result<String, PlatformRestoreError> {
    let status = backup.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str())
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
    if backup.metadata.deletion_timestamp.is_some() {
        return Err(not_usable("it is being deleted".into()));
    }
    if let Some(expiry) = status.and_then(|s| s.expiration.as_deref())
        && let Ok(expiry) = expiry.parse::<jiff::Timestamp>()
        && expiry <= now
    {
        return Err(not_usable(format!(
            "it expired at {expiry}; Velero's garbage collection deletes it"
        )));
    }
    Ok(backup
        .spec
        .storage_location
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned())
}

/// The merge patch that makes a storage location read-only, or `None` if it already is.
pub fn plan_read_only(bsl: &BackupStorageLocation) -> Option<Value> {
    if bsl.spec.access_mode.as_ref().map(|m| m.as_str()) == Some("ReadOnly") {
        return None;
    }
    Some(json!({
        "metadata": {"resourceVersion": bsl.metadata.resource_version},
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

/// The database endpoint the backup brings back: the host and port of its bootstrap
/// secret's `connection` (`None` when the backup does not hold that secret or it is not
/// a URI). `tar_gz` is the backup tarball.
pub fn endpoint_in_backup(
    tar_gz: &[u8],
    platform_namespace: &str,
) -> Result<Option<Endpoint>, ContentsError> {
    let Some(secret) = contents::find_object(
        tar_gz,
        "secrets",
        Some(platform_namespace),
        BOOTSTRAP_SECRET,
    )?
    else {
        return Ok(None);
    };
    let connection = secret
        .pointer("/data/connection")
        .and_then(Value::as_str)
        .and_then(|b64| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok());
    Ok(connection.as_deref().and_then(uri_endpoint))
}

/// What the Velero plugin's endpoint action is told for this restore: the move of
/// `target` from `old` (read from the backup), for the Restore `restore` only.
/// Credentials (`--db-connection`'s user and password) never go into the ConfigMap.
pub fn plugin_config(
    target: &Target,
    old: Option<Endpoint>,
    platform_namespace: &str,
    platform_release: Option<&str>,
    restore: &str,
) -> EndpointConfig {
    EndpointConfig {
        platform_namespace: platform_namespace.to_owned(),
        new: target.endpoint.clone(),
        old,
        sqlproxy: target.sqlproxy.clone(),
        platform_release: platform_release.map(str::to_owned),
        restore: Some(restore.to_owned()),
    }
}

/// `platform-<backup>-<yyyymmddhhmmss>`, cut to the 63 characters of a label value.
pub fn restore_name(backup: &str, now: jiff::Timestamp) -> String {
    let stamp = now.strftime("%Y%m%d%H%M%S").to_string();
    let keep = 63 - stamp.len() - "platform--".len();
    let base: String = backup.chars().take(keep).collect();
    format!("platform-{}-{stamp}", base.trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Backup as the API returns it (metadata, spec, status from `v`).
    fn backup(v: Value) -> Backup {
        let mut object = json!({"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b", "namespace": "velero"}, "spec": {}});
        for field in ["metadata", "spec", "status"] {
            if let Some(x) = v.get(field) {
                object[field] = x.clone();
            }
        }
        serde_json::from_value(object).expect("a valid Backup")
    }

    fn bsl(v: Value) -> BackupStorageLocation {
        let mut object = json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": "velero"},
            "spec": {"provider": "aws", "objectStorage": {"bucket": "b"}}});
        object["metadata"]["resourceVersion"] = v["metadata"]["resourceVersion"].clone();
        object["spec"]["accessMode"] = v["spec"]["accessMode"].clone();
        serde_json::from_value(object).expect("a valid BackupStorageLocation")
    }

    fn now() -> jiff::Timestamp {
        "2026-09-15T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn backups_are_checked() {
        let ok = json!({"spec": {"storageLocation": "aws-east"}, "status": {"phase": "Completed", "expiration": "2026-10-01T00:00:00Z"}});
        assert_eq!(check_backup("b", &backup(ok), now()).unwrap(), "aws-east");
        let default_bsl = json!({"spec": {}, "status": {"phase": "Completed"}});
        assert_eq!(
            check_backup("b", &backup(default_bsl), now()).unwrap(),
            "default"
        );
        for bad in [
            json!({"status": {"phase": "PartiallyFailed"}}),
            json!({"status": {"phase": "InProgress"}}),
            json!({}),
            json!({"status": {"phase": "Completed", "expiration": "2026-09-01T00:00:00Z"}}),
            json!({"metadata": {"name": "b", "deletionTimestamp": "2026-09-14T00:00:00Z"}, "status": {"phase": "Completed"}}),
        ] {
            assert!(
                matches!(
                    check_backup("b", &backup(bad.clone()), now()),
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
            plan_read_only(&bsl(rw)).unwrap(),
            json!({"metadata": {"resourceVersion": "42"}, "spec": {"accessMode": "ReadOnly"}})
        );
        assert!(plan_read_only(&bsl(json!({"spec": {"accessMode": "ReadOnly"}}))).is_none());
    }

    fn tarball(files: &[(&str, Value)]) -> Vec<u8> {
        let texts: Vec<(&str, String)> = files.iter().map(|(p, v)| (*p, v.to_string())).collect();
        let files: Vec<(&str, &[u8])> = texts.iter().map(|(p, t)| (*p, t.as_bytes())).collect();
        crate::velero::contents::testing::tarball(&files)
    }

    #[test]
    fn old_endpoint_comes_from_the_backups_bootstrap_secret() {
        use base64::Engine as _;
        let uri = "postgres://astro_admin:Sup3r%21Secret@old-db.example.com:5433";
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": BOOTSTRAP_SECRET, "namespace": "astro"},
            "data": {"connection": base64::engine::general_purpose::STANDARD.encode(uri)}});
        let path = format!("resources/secrets/namespaces/astro/{BOOTSTRAP_SECRET}.json");
        let backup = tarball(&[(path.as_str(), secret.clone())]);
        assert_eq!(
            endpoint_in_backup(&backup, "astro").unwrap(),
            Some(Endpoint {
                host: "old-db.example.com".into(),
                port: 5433
            })
        );
        assert_eq!(
            endpoint_in_backup(&backup, "astronomer").unwrap(),
            None,
            "other namespace"
        );
        let mut placeholder = secret;
        placeholder["data"]["connection"] = json!("cGxhY2Vob2xkZXI=");
        let backup = tarball(&[(path.as_str(), placeholder)]);
        assert_eq!(
            endpoint_in_backup(&backup, "astro").unwrap(),
            None,
            "not a URI"
        );
        let target = Target {
            endpoint: Some(Endpoint {
                host: "new".into(),
                port: 5432,
            }),
            userinfo: Some("u:secret".into()),
            sqlproxy: None,
        };
        let config = plugin_config(&target, None, "astro", None, "platform-b-1");
        assert_eq!(config.restore.as_deref(), Some("platform-b-1"));
        assert!(
            !config.to_data().values().any(|v| v.contains("secret")),
            "no credentials in the ConfigMap"
        );
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
