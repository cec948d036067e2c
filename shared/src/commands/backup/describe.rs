//! `kubectl astro backup describe NAME` as text: like `velero backup describe`, with the
//! reasons from the results file.

use std::fmt::Write as _;

use crate::backup::describe::Description;
use crate::commands::error::Diagnose;
use crate::velero::{Backup, BackupStatus};

fn list_or(items: Option<&Vec<String>>, empty: &str) -> String {
    match items {
        Some(v) if !v.is_empty() => v.join(", "),
        _ => empty.to_owned(),
    }
}

/// Renders the description as text.
pub fn render(d: &Description) -> String {
    let b = &d.backup;
    let s = b.status.clone().unwrap_or_default();
    let mut out = String::new();
    header(&mut out, b);
    phase(&mut out, b, &s);
    scope(&mut out, b);
    times(&mut out, &s);
    results(&mut out, d);
    out
}

fn header(out: &mut String, b: &Backup) {
    let name = b.metadata.name.clone().unwrap_or_default();
    let _ = writeln!(out, "Name:         {name}");
    let namespace = b.metadata.namespace.clone().unwrap_or_default();
    let _ = writeln!(out, "Namespace:    {namespace}");
    let labels = b
        .metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>();
    let labels = if labels.is_empty() {
        "<none>".to_owned()
    } else {
        labels.join(",")
    };
    let _ = writeln!(out, "Labels:       {labels}");
}

fn phase(out: &mut String, b: &Backup, s: &BackupStatus) {
    let phase = match s.phase.as_ref().map(|p| p.as_str()) {
        _ if b.metadata.deletion_timestamp.is_some() => "Deleting",
        None | Some("") => "New",
        Some(p) => p,
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
}

fn scope(out: &mut String, b: &Backup) {
    let spec = &b.spec;
    let _ = writeln!(out, "\nNamespaces:");
    let included = list_or(spec.included_namespaces.as_ref(), "*");
    let _ = writeln!(out, "  Included:   {included}");
    let excluded = list_or(spec.excluded_namespaces.as_ref(), "<none>");
    let _ = writeln!(out, "  Excluded:   {excluded}");
    let policy = spec
        .resource_policy
        .as_ref()
        .map_or_else(|| "<none>".to_owned(), |p| format!("{}/{}", p.kind, p.name));
    let _ = writeln!(out, "\nResource policies: {policy}");
    let location = spec.storage_location.clone().unwrap_or_default();
    let _ = writeln!(out, "Storage location:  {location}");
    let snapshots = match spec.snapshot_volumes {
        None => "auto",
        Some(true) => "true",
        Some(false) => "false",
    };
    let _ = writeln!(out, "Velero-native snapshot PVs: {snapshots}");
    let ttl = spec.ttl.clone().unwrap_or_else(|| "0s".into());
    let _ = writeln!(out, "TTL:               {ttl}");
}

fn times(out: &mut String, s: &BackupStatus) {
    let or_na = |t: &Option<String>| t.clone().unwrap_or_else(|| "<n/a>".into());
    let _ = writeln!(out, "\nStarted:      {}", or_na(&s.start_timestamp));
    let _ = writeln!(out, "Completed:    {}", or_na(&s.completion_timestamp));
    let _ = writeln!(out, "Expiration:   {}", or_na(&s.expiration));
    if let Some(p) = &s.progress {
        let total = p.total_items.unwrap_or(0);
        let done = p.items_backed_up.unwrap_or(0);
        let _ = writeln!(out, "\nTotal items to be backed up:  {total}");
        let _ = writeln!(out, "Items backed up:              {done}");
    }
}

fn results(out: &mut String, d: &Description) {
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
            if let Some(step) = e.next_step() {
                let _ = writeln!(out, "  ({step})");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::describe::Description;
    use crate::velero::download::OperationResults;
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
