//! `backup list`: Backups page by page (limit ≤ 500), as `velero backup get` shows them
//! plus the namespaces each one names; optionally only those holding one release.

use std::cmp::Ordering;

use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::client::KubeError;
use crate::restore::choice::glob_match;
use crate::velero::Backup;

/// Page size for Backup lists (the API server's limit is advisory; we never ask more).
pub const PAGE_LIMIT: u32 = 500;

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// Backup name.
    pub name: String,
    /// Phase (`New` when empty, `Deleting` when being deleted).
    pub status: String,
    /// `status.errors`.
    pub errors: i64,
    /// `status.warnings`.
    pub warnings: i64,
    /// `status.startTimestamp` as Velero prints it.
    pub created: String,
    /// Humanized expiry (`29d`, `3d ago`, `n/a`).
    pub expires: String,
    /// `spec.storageLocation`.
    pub storage_location: String,
    /// `status.queuePosition` (1.18 queue), empty when not queued.
    pub queue_position: String,
    /// `spec.labelSelector`, `<none>` when unset.
    pub selector: String,
    /// `spec.includedNamespaces` (`*` when empty).
    pub namespaces: String,
}

/// Builds a row (pure).
pub fn row(b: &Backup, now: Timestamp) -> Row {
    let status = b.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let phase = if b.metadata.deletion_timestamp.is_some() {
        "Deleting".to_owned()
    } else if phase.is_empty() {
        "New".to_owned()
    } else {
        phase
    };
    let created = status
        .and_then(|s| s.start_timestamp.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default();
    let expires = status
        .and_then(|s| s.expiration.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map_or_else(|| "n/a".to_owned(), |e| humanize_until(e, now));
    let queue_position = status
        .and_then(|s| s.queue_position)
        .filter(|p| *p > 0)
        .map(|p| p.to_string())
        .unwrap_or_default();
    let selector = b
        .spec
        .label_selector
        .as_ref()
        .map(|s| {
            let mut parts: Vec<String> = s
                .match_labels
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.extend(s.match_expressions.iter().flatten().map(|e| {
                format!(
                    "{} {} ({})",
                    e.key,
                    e.operator.to_lowercase(),
                    e.values.clone().unwrap_or_default().join(",")
                )
            }));
            parts.join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".to_owned());
    let namespaces = match b.spec.included_namespaces.as_deref() {
        None | Some([]) => "*".to_owned(),
        Some(list) => list.join(","),
    };
    Row {
        name: b.metadata.name.clone().unwrap_or_default(),
        status: phase,
        errors: status.and_then(|s| s.errors).unwrap_or(0),
        warnings: status.and_then(|s| s.warnings).unwrap_or(0),
        created,
        expires,
        storage_location: b.spec.storage_location.clone().unwrap_or_default(),
        queue_position,
        selector,
        namespaces,
    }
}

/// `29d`, `5h`, `12m`, `40s`, or `3d ago` once past (like Velero's printer).
pub fn humanize_until(t: Timestamp, now: Timestamp) -> String {
    let secs = t.as_second() - now.as_second();
    let (abs, past) = (secs.unsigned_abs(), secs < 0);
    let text = if abs >= 2 * 86_400 {
        format!("{}d", abs / 86_400)
    } else if abs >= 2 * 3_600 {
        format!("{}h", abs / 3_600)
    } else if abs >= 2 * 60 {
        format!("{}m", abs / 60)
    } else {
        format!("{abs}s")
    };
    if past { format!("{text} ago") } else { text }
}

/// Splits `<schedule>-<14 digits>` names so scheduled backups sort newest first.
fn schedule_stamp(name: &str) -> Option<(&str, &str)> {
    let (prefix, stamp) = name.rsplit_once('-')?;
    (stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit())).then_some((prefix, stamp))
}

/// Velero's order: by name, except that backups of one schedule are newest first.
pub fn compare_names(a: &str, b: &str) -> Ordering {
    match (schedule_stamp(a), schedule_stamp(b)) {
        (Some((pa, sa)), Some((pb, sb))) if pa == pb => sb.cmp(sa),
        _ => a.cmp(b),
    }
}

/// Whether the backup's spec names `namespace` (globs included, excludes win).
pub fn holds_namespace(b: &Backup, namespace: &str) -> bool {
    let excluded = b
        .spec
        .excluded_namespaces
        .iter()
        .flatten()
        .any(|p| glob_match(p, namespace));
    let included = match b.spec.included_namespaces.as_deref() {
        None | Some([]) => true,
        Some(list) => list.iter().any(|p| glob_match(p, namespace)),
    };
    included && !excluded
}

/// Lists every Backup page by page, handing each to `each`; returns the pages fetched.
pub async fn for_each_backup(
    client: &Client,
    velero_namespace: &str,
    mut each: impl FnMut(Backup),
) -> Result<usize, KubeError> {
    let api: Api<Backup> = Api::namespaced(client.clone(), velero_namespace);
    let mut params = ListParams::default().limit(PAGE_LIMIT);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.map_err(|e| {
            KubeError::api(format!("list backups in namespace {velero_namespace}"), e)
        })?;
        pages += 1;
        page.items.into_iter().for_each(&mut each);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(pages),
        }
    }
}

/// Table rows, sorted, optionally only backups naming `namespace`.
pub async fn collect_rows(
    client: &Client,
    velero_namespace: &str,
    namespace: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Row>, KubeError> {
    let mut rows = Vec::new();
    // Rows only: whole objects are dropped page by page, so memory stays flat.
    for_each_backup(client, velero_namespace, |b| {
        if namespace.is_none_or(|ns| holds_namespace(&b, ns)) {
            rows.push(row(&b, now));
        }
    })
    .await?;
    rows.sort_by(|a, b| compare_names(&a.name, &b.name));
    Ok(rows)
}

/// Whole objects (for `-o json|yaml`), sorted like the table.
pub async fn collect_backups(
    client: &Client,
    velero_namespace: &str,
    namespace: Option<&str>,
) -> Result<Vec<Backup>, KubeError> {
    let mut out = Vec::new();
    for_each_backup(client, velero_namespace, |b| {
        if namespace.is_none_or(|ns| holds_namespace(&b, ns)) {
            out.push(b);
        }
    })
    .await?;
    out.sort_by(|a, b| {
        compare_names(
            a.metadata.name.as_deref().unwrap_or_default(),
            b.metadata.name.as_deref().unwrap_or_default(),
        )
    });
    Ok(out)
}

/// The columns of `backup list`, as `velero backup get` prints them.
pub const HEADER: [&str; 10] = [
    "NAME",
    "STATUS",
    "ERRORS",
    "WARNINGS",
    "CREATED",
    "EXPIRES",
    "STORAGE LOCATION",
    "QUEUE POSITION",
    "SELECTOR",
    "NAMESPACES",
];

impl Row {
    /// The row's cells, in [`HEADER`] order.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.status.clone(),
            self.errors.to_string(),
            self.warnings.to_string(),
            self.created.clone(),
            self.expires.clone(),
            self.storage_location.clone(),
            self.queue_position.clone(),
            self.selector.clone(),
            self.namespaces.clone(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::velero::{BackupSpec, BackupStatus, BackupStatusPhase};

    fn backup(name: &str, phase: Option<BackupStatusPhase>, ns: &[&str]) -> Backup {
        let mut b = Backup::new(
            name,
            "velero",
            BackupSpec {
                included_namespaces: Some(ns.iter().map(|s| (*s).to_owned()).collect()),
                storage_location: Some("default".into()),
                ..BackupSpec::default()
            },
        );
        b.status = Some(BackupStatus {
            phase,
            start_timestamp: Some("2026-11-01T01:00:00Z".into()),
            expiration: Some("2026-12-01T01:00:00Z".into()),
            errors: Some(2),
            ..BackupStatus::default()
        });
        b
    }

    #[test]
    fn rows_like_velero_backup_get() {
        let now: Timestamp = "2026-11-25T01:00:00Z".parse().unwrap();
        let r = row(
            &backup("b1", Some(BackupStatusPhase::Queued), &["a", "b"]),
            now,
        );
        assert_eq!(r.status, "Queued");
        assert_eq!(r.created, "2026-11-01 01:00:00 +0000 UTC");
        assert_eq!(r.expires, "6d");
        assert_eq!(r.namespaces, "a,b");
        assert_eq!(r.selector, "<none>");
        assert_eq!(r.errors, 2);
        let new = row(&backup("b2", None, &[]), now);
        assert_eq!(new.status, "New");
        assert_eq!(new.namespaces, "*");
        let later: Timestamp = "2026-12-04T01:00:00Z".parse().unwrap();
        assert_eq!(row(&backup("b3", None, &[]), later).expires, "3d ago");
        assert_eq!(r.cells().len(), HEADER.len());
    }

    #[test]
    fn scheduled_backups_newest_first() {
        let mut names = vec![
            "nightly-20261101010000",
            "adhoc",
            "nightly-20261103010000",
            "nightly-20261102010000",
            "zeta",
        ];
        names.sort_by(|a, b| compare_names(a, b));
        assert_eq!(
            names,
            [
                "adhoc",
                "nightly-20261103010000",
                "nightly-20261102010000",
                "nightly-20261101010000",
                "zeta"
            ]
        );
    }

    #[test]
    fn namespace_filter_uses_globs_and_excludes() {
        let b = backup("b", None, &["astronomer-*"]);
        assert!(holds_namespace(&b, "astronomer-x-1"));
        assert!(!holds_namespace(&b, "velero"));
        let mut all = backup("c", None, &[]);
        all.spec.excluded_namespaces = Some(vec!["astronomer-x-1".into()]);
        assert!(!holds_namespace(&all, "astronomer-x-1"));
        assert!(holds_namespace(&all, "astronomer-y-2"));
    }
}
