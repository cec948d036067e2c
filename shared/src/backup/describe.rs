//! `backup describe NAME`: phase, validation errors, failure reason, progress, and the
//! error/warning messages from the backup's results file (through a DownloadRequest).

use std::fmt::Write as _;

use kube::{Api, Client};

use super::BackupError;
use crate::client::KubeError;
use crate::velero::download::{self, DownloadError, OperationResults};
use crate::velero::{Backup, DownloadRequestTargetKind};

/// A backup and, when it has errors or warnings, what its results file says.
#[derive(Debug)]
pub struct Description {
    /// The Backup object.
    pub backup: Backup,
    /// The results file, when fetched.
    pub results: Option<Result<OperationResults, DownloadError>>,
}

/// Reads the backup and, if it reports errors or warnings, its results file.
pub async fn collect(
    client: &Client,
    velero_namespace: &str,
    name: &str,
) -> crate::commands::error::Result<Description> {
    let api: Api<Backup> = Api::namespaced(client.clone(), velero_namespace);
    let backup = api
        .get_opt(name)
        .await
        .map_err(|e| KubeError::api(format!("get backup {velero_namespace}/{name}"), e))?
        .ok_or_else(|| BackupError::NotFound {
            kind: "backup",
            namespace: velero_namespace.to_owned(),
            name: name.to_owned(),
        })?;
    let status = backup.status.as_ref();
    let noisy = status.is_some_and(|s| s.errors.unwrap_or(0) > 0 || s.warnings.unwrap_or(0) > 0);
    let results = if noisy {
        Some(
            download::results(
                client,
                velero_namespace,
                DownloadRequestTargetKind::BackupResults,
                name,
            )
            .await,
        )
    } else {
        None
    };
    Ok(Description { backup, results })
}

fn list_or(items: Option<&Vec<String>>, empty: &str) -> String {
    match items {
        Some(v) if !v.is_empty() => v.join(", "),
        _ => empty.to_owned(),
    }
}

/// Renders the description as text (pure).
pub fn render(d: &Description) -> String {
    let b = &d.backup;
    let s = b.status.clone().unwrap_or_default();
    let mut out = String::new();
    let name = b.metadata.name.clone().unwrap_or_default();
    let _ = writeln!(out, "Name:         {name}");
    let _ = writeln!(
        out,
        "Namespace:    {}",
        b.metadata.namespace.clone().unwrap_or_default()
    );
    let labels = b
        .metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>();
    let _ = writeln!(
        out,
        "Labels:       {}",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(",")
        }
    );
    let phase = match s.phase.as_ref().map(|p| p.as_str()) {
        None | Some("") => "New",
        Some(p) => p,
    };
    let phase = if b.metadata.deletion_timestamp.is_some() {
        "Deleting"
    } else {
        phase
    };
    let _ = writeln!(out, "\nPhase:        {phase}");
    if let Some(pos) = s.queue_position.filter(|p| *p > 0) {
        let _ = writeln!(out, "Queue position: {pos}");
    }
    if let Some(errs) = s.validation_errors.as_ref().filter(|v| !v.is_empty()) {
        let _ = writeln!(out, "\nValidation errors:");
        for e in errs {
            let _ = writeln!(out, "  {e}");
        }
    }
    if let Some(reason) = s.failure_reason.as_ref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "\nFailure reason: {reason}");
    }
    let _ = writeln!(out, "\nErrors:       {}", s.errors.unwrap_or(0));
    let _ = writeln!(out, "Warnings:     {}", s.warnings.unwrap_or(0));
    let _ = writeln!(out, "\nNamespaces:");
    let _ = writeln!(
        out,
        "  Included:   {}",
        list_or(b.spec.included_namespaces.as_ref(), "*")
    );
    let _ = writeln!(
        out,
        "  Excluded:   {}",
        list_or(b.spec.excluded_namespaces.as_ref(), "<none>")
    );
    let policy = b
        .spec
        .resource_policy
        .as_ref()
        .map_or_else(|| "<none>".to_owned(), |p| format!("{}/{}", p.kind, p.name));
    let _ = writeln!(out, "\nResource policies: {policy}");
    let _ = writeln!(
        out,
        "Storage location:  {}",
        b.spec.storage_location.clone().unwrap_or_default()
    );
    let snapshots = match b.spec.snapshot_volumes {
        None => "auto",
        Some(true) => "true",
        Some(false) => "false",
    };
    let _ = writeln!(out, "Velero-native snapshot PVs: {snapshots}");
    let _ = writeln!(
        out,
        "TTL:               {}",
        b.spec.ttl.clone().unwrap_or_else(|| "0s".into())
    );
    let _ = writeln!(
        out,
        "\nStarted:      {}",
        s.start_timestamp.clone().unwrap_or_else(|| "<n/a>".into())
    );
    let _ = writeln!(
        out,
        "Completed:    {}",
        s.completion_timestamp
            .clone()
            .unwrap_or_else(|| "<n/a>".into())
    );
    let _ = writeln!(
        out,
        "Expiration:   {}",
        s.expiration.clone().unwrap_or_else(|| "<n/a>".into())
    );
    if let Some(p) = &s.progress {
        let _ = writeln!(
            out,
            "\nTotal items to be backed up:  {}",
            p.total_items.unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "Items backed up:              {}",
            p.items_backed_up.unwrap_or(0)
        );
    }
    match &d.results {
        None => {}
        Some(Ok(r)) => {
            for (title, messages) in [("Errors", &r.errors), ("Warnings", &r.warnings)] {
                if !messages.is_empty() {
                    let _ = writeln!(out, "\n{title}:");
                    for line in messages.lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
            }
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "\nResults file not available: {e}");
            if let Some(step) = crate::commands::error::Diagnose::next_step(e) {
                let _ = writeln!(out, "  ({step})");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::velero::download::ResultMessages;
    use crate::velero::{BackupSpec, BackupStatus, BackupStatusPhase};

    #[test]
    fn renders_reasons() {
        let mut b = Backup::new(
            "b1",
            "velero",
            BackupSpec {
                included_namespaces: Some(vec!["astronomer".into()]),
                ..BackupSpec::default()
            },
        );
        b.status = Some(BackupStatus {
            phase: Some(BackupStatusPhase::PartiallyFailed),
            errors: Some(1),
            validation_errors: Some(vec!["bad glob".into()]),
            failure_reason: Some("boom".into()),
            ..BackupStatus::default()
        });
        let results = OperationResults {
            errors: ResultMessages {
                namespaces: [("astronomer".to_owned(), vec!["pod x: timeout".to_owned()])].into(),
                ..ResultMessages::default()
            },
            ..OperationResults::default()
        };
        let text = render(&Description {
            backup: b,
            results: Some(Ok(results)),
        });
        assert!(text.contains("Phase:        PartiallyFailed"), "{text}");
        assert!(text.contains("  bad glob"));
        assert!(text.contains("Failure reason: boom"));
        assert!(text.contains("namespace astronomer: pod x: timeout"));
        assert!(text.contains("Included:   astronomer"));
    }
}
