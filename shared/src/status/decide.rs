//! Deciding: the collected facts become checks, each with a verdict and the next step,
//! and a summary (serialised with stable camelCase names for `-o json|yaml`).

use jiff::SignedDuration;

use super::checks::{self, ServerAnswer};
use super::collect::{CollectStats, Facts};
use super::{Check, Section, Verdict};
use crate::houston::DeploymentRow;
use crate::restore::choice::BackupInfo;

/// Thresholds of the decide step.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Newest holding backup (and dump) older than this fails (`--max-age`).
    pub max_age: SignedDuration,
    /// Soft-deleted deployments with fewer days left warn (`--cleanup-warn-days`).
    pub cleanup_warn_days: i64,
}

/// Counts per verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The overall verdict: fail if any failed, else unknown if any could not tell, else warn/ok.
    pub verdict: Option<Verdict>,
    /// Checks ok.
    pub ok: usize,
    /// Checks warning.
    pub warn: usize,
    /// Checks failed.
    pub fail: usize,
    /// Checks that could not tell.
    pub unknown: usize,
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// When the facts were read (RFC 3339).
    pub generated_at: String,
    /// Platform release.
    pub platform_release: String,
    /// Platform namespace.
    pub platform_namespace: String,
    /// Velero namespace.
    pub velero_namespace: String,
    /// Counts and overall verdict.
    pub summary: Summary,
    /// Every check, in section order.
    pub checks: Vec<Check>,
    /// What was read.
    pub stats: CollectStats,
}

/// Runs every check on the facts: collect → decide → report, each check pure.
pub fn decide(f: &Facts, t: &Thresholds) -> Report {
    let mut out = velero_checks(f);
    out.extend(checks::check_coverage(&f.schedules, &must_cover(f)));
    out.extend(backup_checks(f, t));
    out.extend(database_checks(f, t));
    out.extend(soft_deleted_checks(f, t));
    out.extend(endpoint_checks(f));
    out.sort_by_key(|c| c.section);
    Report {
        generated_at: f.now.to_string(),
        platform_release: f.platform_release.clone(),
        platform_namespace: f.platform_namespace.clone(),
        velero_namespace: f.velero_namespace.clone(),
        summary: summarize(&out),
        checks: out,
        stats: f.stats.clone(),
    }
}

/// The Velero server, its storage locations (and which schedules use them), each schedule.
fn velero_checks(f: &Facts) -> Vec<Check> {
    let mut out = vec![checks::check_server(&f.server, &f.velero_namespace)];
    let used: Vec<String> = f
        .schedules
        .iter()
        .filter_map(|s| s.storage_location.clone())
        .collect();
    out.extend(checks::check_locations(
        &f.locations,
        &used,
        f.now,
        &f.velero_namespace,
    ));
    for s in &f.schedules {
        out.push(checks::check_schedule(s, f.now, &f.velero_namespace));
    }
    out
}

/// Houston's rows of live (not soft-deleted) deployments; none when Houston was not read.
fn live_rows(f: &Facts) -> impl Iterator<Item = &DeploymentRow> {
    f.houston
        .as_ref()
        .ok()
        .into_iter()
        .flatten()
        .filter(|r| r.deleted_seconds_ago.is_none())
}

/// Namespaces the schedules must cover: the platform's, the labelled deployment
/// namespaces, and live Houston deployments in namespaces without the labels (pools).
fn must_cover(f: &Facts) -> Vec<String> {
    let mut must_cover: Vec<String> = vec![f.platform_namespace.clone()];
    must_cover.extend(f.namespaces.deployments.iter().cloned());
    for r in live_rows(f) {
        let ns = f.namespace_of(r);
        if f.namespaces.existing.contains(&ns) && !must_cover.contains(&ns) {
            must_cover.push(ns);
        }
    }
    must_cover
}

/// The platform namespace, then live deployments (Houston rows, else labelled
/// namespaces), then labelled namespaces Houston does not know.
fn live_namespaces(f: &Facts) -> Vec<String> {
    let mut live: Vec<String> = vec![f.platform_namespace.clone()];
    match &f.houston {
        Ok(_) => live.extend(live_rows(f).map(|r| f.namespace_of(r))),
        Err(_) => live.extend(f.namespaces.deployments.iter().cloned()),
    }
    for ns in &f.namespaces.deployments {
        if !live.contains(ns) {
            live.push(ns.clone());
        }
    }
    live
}

/// The release of the live Houston deployment in `ns`, if any.
fn release_of(f: &Facts, ns: &str) -> Option<String> {
    live_rows(f)
        .find(|r| f.namespace_of(r) == ns)
        .map(|r| r.release.clone())
}

/// The newest usable backup holding `ns`, or why it is not known.
fn holding_of<'f>(f: &'f Facts, ns: &str) -> Result<Option<&'f BackupInfo>, &'f str> {
    match f.holdings.get(ns) {
        Some(Ok(b)) => Ok(b.as_ref()),
        Some(Err(e)) => Err(e.as_str()),
        None => Err("not looked up"),
    }
}

/// Per live namespace: its newest holding backup and how old it is.
fn backup_checks(f: &Facts, t: &Thresholds) -> Vec<Check> {
    live_namespaces(f)
        .iter()
        .map(|ns| {
            let release = if *ns == f.platform_namespace {
                None
            } else {
                release_of(f, ns)
            };
            let mut c =
                checks::check_backup(ns, release.as_deref(), holding_of(f, ns), f.now, t.max_age);
            if release.is_none() && *ns == f.platform_namespace {
                c.release = Some(f.platform_release.clone());
            }
            c
        })
        .collect()
}

/// The Redis volume policy, Houston's secret and rows, and the newest dump.
fn database_checks(f: &Facts, t: &Thresholds) -> Vec<Check> {
    let plugins = match &f.server {
        ServerAnswer::Answered { plugins, .. } => Some(plugins.as_slice()),
        _ => None,
    };
    let mut out = vec![
        checks::check_redis(f.policy_exists, &f.schedules, plugins, &f.velero_namespace),
        checks::check_houston_secret(
            &f.houston_secret_name,
            &f.houston_secret,
            &f.platform_namespace,
        ),
    ];
    if let Err(e) = &f.houston {
        out.push(
            Check::new(
                "database.houston",
                Section::Database,
                "houston",
                Verdict::Unknown,
                format!("cannot read Houston's Deployment rows: {e}"),
            )
            .next("`kubectl astro dbconn` to check the connection (or --local)"),
        );
    }
    out.push(checks::check_dumps(f.dumps.as_ref(), f.now, t.max_age));
    out
}

/// Soft-deleted Houston deployments: still restorable, and for how long.
fn soft_deleted_checks(f: &Facts, t: &Thresholds) -> Vec<Check> {
    let Ok(rows) = &f.houston else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|r| {
            let ago = r.deleted_seconds_ago?;
            let ns = f.namespace_of(r);
            Some(checks::check_soft_deleted(
                &r.release,
                &ns,
                ago,
                holding_of(f, &ns),
                t.cleanup_warn_days,
            ))
        })
        .collect()
}

/// Helm values naming a database host other than the secrets' (would undo an endpoint move).
fn endpoint_checks(f: &Facts) -> Vec<Check> {
    let Some(host) = &f.secrets_host else {
        return Vec::new();
    };
    f.helm
        .iter()
        .map(|h| checks::check_helm_values(&h.release, &h.namespace, h.revision, &h.hosts, host))
        .collect()
}

/// Counts per verdict, and the overall verdict: fail, else unknown, else warn, else ok.
fn summarize(checks: &[Check]) -> Summary {
    let mut summary = Summary::default();
    for c in checks {
        match c.verdict {
            Verdict::Ok => summary.ok += 1,
            Verdict::Warn => summary.warn += 1,
            Verdict::Fail => summary.fail += 1,
            Verdict::Unknown => summary.unknown += 1,
        }
    }
    summary.verdict = Some(if summary.fail > 0 {
        Verdict::Fail
    } else if summary.unknown > 0 {
        Verdict::Unknown
    } else if summary.warn > 0 {
        Verdict::Warn
    } else {
        Verdict::Ok
    });
    summary
}
