//! Deciding: the collected facts become checks, each with a verdict and the next step,
//! and a summary (serialised with stable camelCase names for `-o json|yaml`).

use jiff::SignedDuration;

use super::checks::{self, ServerAnswer};
use super::collect::{CollectStats, Facts};
use super::{Check, Section, Verdict};

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

/// Runs every check on the facts.
pub fn decide(f: &Facts, t: &Thresholds) -> Report {
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
    let mut must_cover: Vec<String> = vec![f.platform_namespace.clone()];
    must_cover.extend(f.namespaces.deployments.iter().cloned());
    // Live Houston deployments in namespaces without the platform labels (pools).
    if let Ok(rows) = &f.houston {
        for r in rows.iter().filter(|r| r.deleted_seconds_ago.is_none()) {
            let ns = f.namespace_of(r);
            if f.namespaces.existing.contains(&ns) && !must_cover.contains(&ns) {
                must_cover.push(ns);
            }
        }
    }
    out.extend(checks::check_coverage(&f.schedules, &must_cover));

    // Live deployments (Houston rows, else labelled namespaces) and the platform namespace.
    let release_of = |ns: &str| -> Option<String> {
        f.houston.as_ref().ok().and_then(|rows| {
            rows.iter()
                .find(|r| r.deleted_seconds_ago.is_none() && f.namespace_of(r) == ns)
                .map(|r| r.release.clone())
        })
    };
    let mut live: Vec<String> = vec![f.platform_namespace.clone()];
    match &f.houston {
        Ok(rows) => live.extend(
            rows.iter()
                .filter(|r| r.deleted_seconds_ago.is_none())
                .map(|r| f.namespace_of(r)),
        ),
        Err(_) => live.extend(f.namespaces.deployments.iter().cloned()),
    }
    for ns in &f.namespaces.deployments {
        if !live.contains(ns) {
            live.push(ns.clone());
        }
    }
    for ns in &live {
        let holding = match f.holdings.get(ns) {
            Some(Ok(b)) => Ok(b.as_ref()),
            Some(Err(e)) => Err(e.as_str()),
            None => Err("not looked up"),
        };
        let release = if *ns == f.platform_namespace {
            None
        } else {
            release_of(ns)
        };
        let mut c = checks::check_backup(ns, release.as_deref(), holding, f.now, t.max_age);
        if release.is_none() && *ns == f.platform_namespace {
            c.release = Some(f.platform_release.clone());
        }
        out.push(c);
    }

    let plugins = match &f.server {
        ServerAnswer::Answered { plugins, .. } => Some(plugins.as_slice()),
        _ => None,
    };
    out.push(checks::check_redis(
        f.policy_exists,
        &f.schedules,
        plugins,
        &f.velero_namespace,
    ));
    out.push(checks::check_houston_secret(
        &f.houston_secret_name,
        &f.houston_secret,
        &f.platform_namespace,
    ));
    match &f.houston {
        Ok(_) => {}
        Err(e) => out.push(
            Check::new(
                "database.houston",
                Section::Database,
                "houston",
                Verdict::Unknown,
                format!("cannot read Houston's Deployment rows: {e}"),
            )
            .next("`kubectl astro dbconn` to check the connection (or --local)"),
        ),
    }
    out.push(checks::check_dumps(f.dumps.as_ref(), f.now, t.max_age));

    if let Ok(rows) = &f.houston {
        for r in rows {
            let Some(ago) = r.deleted_seconds_ago else {
                continue;
            };
            let ns = f.namespace_of(r);
            let holding = match f.holdings.get(&ns) {
                Some(Ok(b)) => Ok(b.as_ref()),
                Some(Err(e)) => Err(e.as_str()),
                None => Err("not looked up"),
            };
            out.push(checks::check_soft_deleted(
                &r.release,
                &ns,
                ago,
                holding,
                t.cleanup_warn_days,
            ));
        }
    }
    if let Some(host) = &f.secrets_host {
        for h in &f.helm {
            out.push(checks::check_helm_values(
                &h.release,
                &h.namespace,
                h.revision,
                &h.hosts,
                host,
            ));
        }
    }
    out.sort_by_key(|c| c.section);
    let mut summary = Summary::default();
    for c in &out {
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
    Report {
        generated_at: f.now.to_string(),
        platform_release: f.platform_release.clone(),
        platform_namespace: f.platform_namespace.clone(),
        velero_namespace: f.velero_namespace.clone(),
        summary,
        checks: out,
        stats: f.stats.clone(),
    }
}
