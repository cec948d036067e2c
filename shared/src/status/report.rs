//! Deciding (facts → checks) and reporting: text tables, JSON/YAML with stable camelCase
//! names, and the Prometheus text exposition format for the node_exporter textfile collector.

use std::fmt::Write as _;

use jiff::SignedDuration;

use super::checks::{self, ServerAnswer};
use super::collect::{CollectStats, Facts};
use super::{Check, Section, Verdict};
use crate::exit::ExitStatus;

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

impl Report {
    /// Exit status: 1 any fail, 3 cannot tell, else 0.
    pub fn exit_status(&self) -> ExitStatus {
        match self.summary.verdict {
            Some(Verdict::Fail) => ExitStatus::Failed,
            Some(Verdict::Unknown) => ExitStatus::Refused,
            _ => ExitStatus::Success,
        }
    }
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

/// Text: one table per section, `width` columns wide (the terminal's, when known).
pub fn text(r: &Report, width: Option<u16>) -> String {
    let mut out = String::new();
    let mut sections: Vec<Section> = r.checks.iter().map(|c| c.section).collect();
    sections.dedup();
    for s in sections {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        if let Some(w) = width {
            table.set_width(w);
        }
        table.set_header(vec!["VERDICT", "SUBJECT", "FINDING", "NEXT STEP"]);
        for c in r.checks.iter().filter(|c| c.section == s) {
            table.add_row(vec![
                c.verdict.as_str().to_uppercase(),
                c.subject.clone(),
                c.message.clone(),
                c.next_step.clone().unwrap_or_default(),
            ]);
        }
        let _ = writeln!(out, "== {} ==\n{table}\n", s.title());
    }
    let v = r.summary.verdict.unwrap_or(Verdict::Ok);
    let _ = writeln!(
        out,
        "overall: {} ({} ok, {} warn, {} fail, {} cannot tell)",
        v.as_str().to_uppercase(),
        r.summary.ok,
        r.summary.warn,
        r.summary.fail,
        r.summary.unknown
    );
    out
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition format (textfile collector).
pub fn prometheus(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP astro_dr_check_ok Whether a DR readiness check passed (1 ok or warn, 0 fail or cannot tell)."
    );
    let _ = writeln!(out, "# TYPE astro_dr_check_ok gauge");
    for c in &r.checks {
        let ok = u8::from(matches!(c.verdict, Verdict::Ok | Verdict::Warn));
        let _ = writeln!(
            out,
            "astro_dr_check_ok{{check=\"{}\",subject=\"{}\",verdict=\"{}\"}} {ok}",
            label(&c.check),
            label(&c.subject),
            c.verdict.as_str()
        );
    }
    let _ = writeln!(
        out,
        "# HELP astro_dr_last_backup_age_seconds Age of the newest usable backup holding the namespace."
    );
    let _ = writeln!(out, "# TYPE astro_dr_last_backup_age_seconds gauge");
    for c in r.checks.iter().filter(|c| c.check == "backup.age") {
        if let Some(a) = c.age_seconds {
            let _ = writeln!(
                out,
                "astro_dr_last_backup_age_seconds{{namespace=\"{}\",release=\"{}\",backup=\"{}\"}} {a}",
                label(&c.subject),
                label(c.release.as_deref().unwrap_or("")),
                label(c.backup.as_deref().unwrap_or(""))
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP astro_dr_soft_deleted_days_left Days before Houston's 14-day cleanup removes a soft-deleted deployment."
    );
    let _ = writeln!(out, "# TYPE astro_dr_soft_deleted_days_left gauge");
    for c in r
        .checks
        .iter()
        .filter(|c| c.section == Section::SoftDeleted)
    {
        if let Some(d) = c.days_left {
            let _ = writeln!(
                out,
                "astro_dr_soft_deleted_days_left{{release=\"{}\"}} {d}",
                label(&c.subject)
            );
        }
    }
    let _ = writeln!(out, "# HELP astro_dr_checks Number of checks per verdict.");
    let _ = writeln!(out, "# TYPE astro_dr_checks gauge");
    for (v, n) in [
        ("ok", r.summary.ok),
        ("warn", r.summary.warn),
        ("fail", r.summary.fail),
        ("unknown", r.summary.unknown),
    ] {
        let _ = writeln!(out, "astro_dr_checks{{verdict=\"{v}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP astro_dr_status_timestamp_seconds When this status was taken."
    );
    let _ = writeln!(out, "# TYPE astro_dr_status_timestamp_seconds gauge");
    let secs = r
        .generated_at
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .unwrap_or(0);
    let _ = writeln!(out, "astro_dr_status_timestamp_seconds {secs}");
    out
}
