//! Snapshots (insta) of what people read: `--help` of every binary and subcommand, and the
//! main text outputs against the fake cluster. The `.snap` files are in `snapshots/`.
//!
//! A changed output fails the test. Review and accept changes with `cargo insta review`
//! (or `INSTA_UPDATE=always cargo test …` and read the diff); by default insta writes
//! `.snap.new` files beside them and fails, and with `CI=true` (or `INSTA_UPDATE=no`) it
//! writes nothing. Everything that depends on the date, the clock, the machine or the run
//! (timestamps, ages, generated names, ports, temp paths) is replaced by a filter, so the
//! snapshots hold on any day, including the CI run with the clock 40 days later.

use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use e2e_tests::{FakeCluster, bin, fixture_name};

/// Fixed terminal width for clap's wrapping (`wrap_help` reads `COLUMNS`).
const COLUMNS: &str = "100";

use e2e_tests::output_text as text;

/// `binary args…` with no cluster: environment cleared, fixed width, no colour.
fn help_of(binary: &str, args: &[&str]) -> String {
    let out = e2e_tests::output({
        let mut command = Command::new(bin(binary));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("COLUMNS", COLUMNS)
            .stdin(Stdio::null());
        command
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{binary} {args:?}: {}",
        text(&out)
    );
    assert!(out.stderr.is_empty(), "{binary} {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// Every subcommand path of `command` (without clap's `help`), depth first.
fn subcommand_paths(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        out.push(path.clone());
        subcommand_paths(sub, &path, out);
    }
}

/// `--help` of every binary and every subcommand, read from the clap definitions so a new
/// subcommand gets its snapshot (and a missing one fails the review).
#[test]
fn help_of_every_binary_and_subcommand() {
    let plugins = [
        (
            "kubectl-astro-restore",
            astro::commands::restore::Cli::command(),
        ),
        (
            "kubectl-astro-backup",
            astro::commands::backup::Cli::command(),
        ),
        (
            "kubectl-astro-dbconn",
            astro::commands::dbconn::Cli::command(),
        ),
        (
            "kubectl-astro-status",
            astro::commands::status::Cli::command(),
        ),
    ];
    let mut cases: Vec<(String, Vec<String>)> = vec![("kubectl-astro".into(), Vec::new())];
    for (binary, command) in &plugins {
        let mut paths = vec![Vec::new()];
        subcommand_paths(command, &[], &mut paths);
        cases.extend(paths.into_iter().map(|p| ((*binary).to_owned(), p)));
    }
    for (binary, path) in &cases {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = help_of(binary, &args);
        let name = std::iter::once(binary.as_str())
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-");
        insta::with_settings!({
            description => format!("{binary} {}", args.join(" ")),
            omit_expression => true,
            prepend_module_to_snapshot => false,
            filters => vec![(r"/tmp/[^\s\]]+", "[TMP]")],
        }, {
            insta::assert_snapshot!(format!("help__{name}"), help);
        });
    }
}

/// Filters for outputs against the fake cluster: every value that depends on the day, the
/// clock, the run or the machine.
fn output_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        // RFC 3339 and `date time` timestamps (with optional zone).
        (
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z| ?[+-]\d{2}:?\d{2})?( UTC)?",
            "[TIME]",
        ),
        // The 14-digit stamps of backup and restore names (shifted fixture dates, now).
        (r"\b20\d{12}\b", "[STAMP]"),
        (r"\b\d{4}-\d{2}-\d{2}\b", "[DATE]"),
        // Ages and durations since/until now (`3d`, `5h12m`, `40s`, `2d4h`).
        (r"\b\d+(\.\d+)?(y|d|h|m|s|ms)(\d+(h|m|s))*\b", "[AGE]"),
        (r"\b\d+ (seconds?|minutes?|hours?|days?) ago\b", "[AGE] ago"),
        (r"\b\d+ days? left\b", "[N] days left"),
        // Generated pod names.
        (r"\b(astro-db[a-z]+)-[a-z0-9]{4,}\b", "$1-[ID]"),
        // The test PostgreSQL's port.
        (r"(127\.0\.0\.1|localhost|\.invalid):\d+", "$1:[PORT]"),
        (r"(?i)\b(port(=|: +| ))\d{4,5}\b", "${1}[PORT]"),
        // Temp directories (HOME, kubeconfig, fixtures).
        (r"/tmp/[^\s\]'\x22]+", "[TMP]"),
        // Column padding follows the widest cell, which the filters above change.
        (r"(\S) {2,}", "$1  "),
        (r"(?m) +$", ""),
    ]
}

fn run(cluster: &FakeCluster, binary: &str, args: &[&str]) -> Output {
    let mut command = e2e_tests::command(bin(binary), cluster);
    command.args(args).env("COLUMNS", COLUMNS);
    let out = e2e_tests::output(command);
    e2e_tests::assert_no_secrets(&out);
    out
}

/// Snapshots stdout of `binary args…` (exit code and stderr, when not empty, too);
/// `described` is the command line as written (fixture names unshifted).
fn snapshot_output(
    cluster: &FakeCluster,
    name: &str,
    binary: &str,
    args: &[&str],
    described: &str,
) {
    let out = run(cluster, binary, args);
    let mut shown = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() != Some(0) {
        shown.push_str(&format!("--- exit {:?}\n", out.status.code()));
    }
    if !out.stderr.is_empty() {
        shown.push_str("--- stderr\n");
        shown.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    insta::with_settings!({
        description => described.to_owned(),
        omit_expression => true,
        prepend_module_to_snapshot => false,
        filters => output_filters(),
    }, {
        insta::assert_snapshot!(name, shown);
    });
}

#[test]
fn restore_list_backups_table() {
    let cluster = e2e_tests::cluster_builder().pods_only_db().start();
    snapshot_output(
        &cluster,
        "restore_list_backups",
        "kubectl-astro-restore",
        &["celestial-zenith-1234", "--list-backups"],
        "kubectl astro restore celestial-zenith-1234 --list-backups",
    );
}

#[test]
fn backup_list_and_describe() {
    let cluster = e2e_tests::cluster_builder().without_pg().start();
    snapshot_output(
        &cluster,
        "backup_list",
        "kubectl-astro-backup",
        &["list"],
        "kubectl astro backup list",
    );
    snapshot_output(
        &cluster,
        "backup_describe",
        "kubectl-astro-backup",
        &["describe", &fixture_name("astro-nightly-20261124010000")],
        "kubectl astro backup describe astro-nightly-20261124010000",
    );
}

#[test]
fn dbconn_summary() {
    let cluster = e2e_tests::cluster_builder().pods_only_db().start();
    snapshot_output(
        &cluster,
        "dbconn_summary",
        "kubectl-astro-dbconn",
        &[],
        "kubectl astro dbconn",
    );
}

#[test]
fn status_text() {
    let cluster = e2e_tests::cluster_builder().pods_only_db().start();
    // The fixtures' newest backup ran yesterday at 01:00, so its age and whether today's
    // 01:00 run counts as missed depend on the time of day. A run of the nightly schedule
    // made now (the simulated Velero completes it) makes every verdict the same at any
    // hour: nothing missed, the newest backup minutes old.
    let out = run(
        &cluster,
        "kubectl-astro-backup",
        &[
            "create",
            "--all",
            "--labels",
            "velero.io/schedule-name=astro-nightly",
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    snapshot_output(
        &cluster,
        "status",
        "kubectl-astro-status",
        &[],
        "kubectl astro status (after a nightly run now)",
    );
}
