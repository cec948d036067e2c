//! `kubectl astro status` output: a table per section for people, Prometheus text
//! exposition for the node_exporter textfile collector, and the exit status.

use std::fmt::Write as _;

use crate::commands::exit::ExitStatus;
use crate::output;
use crate::status::decide::Report;
use crate::status::{Section, Verdict};

/// 0 all ok (warnings allowed), 1 any check failed, 3 something could not be told.
pub fn exit_status(r: &Report) -> ExitStatus {
    match r.summary.verdict {
        Some(Verdict::Fail) => ExitStatus::Failed,
        Some(Verdict::Unknown) => ExitStatus::Refused,
        _ => ExitStatus::Success,
    }
}

/// Columns of the text tables.
const HEADER: [&str; 4] = ["VERDICT", "SUBJECT", "FINDING", "NEXT STEP"];

/// Text: one table per section, `width` columns wide (the terminal's, when known).
pub fn text(r: &Report, width: Option<u16>) -> String {
    let mut out = String::new();
    let mut sections: Vec<Section> = r.checks.iter().map(|c| c.section).collect();
    sections.dedup();
    for s in sections {
        let rows = r.checks.iter().filter(|c| c.section == s).map(|c| {
            vec![
                c.verdict.as_str().to_uppercase(),
                c.subject.clone(),
                c.message.clone(),
                c.next_step.clone().unwrap_or_default(),
            ]
        });
        let table = output::table_with_width(&HEADER, rows, width);
        let _ = writeln!(out, "== {} ==\n{table}", s.title());
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
