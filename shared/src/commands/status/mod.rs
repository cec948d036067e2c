//! `kubectl astro status`: could we recover right now? Collect (read-only) → decide →
//! report, with the exit status 0 all ok, 1 a check failed, 3 cannot tell.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::commands::cli::GlobalArgs;
use crate::commands::error::{Error, Result};
use crate::commands::exit::ExitStatus;
use crate::commands::restore::HoustonAccessArgs;
use crate::output::print_stdout;
use crate::status::collect::{self, CollectOptions};
use crate::status::decide::{self, Thresholds};

mod report;

/// Output formats of `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Tables per section.
    #[default]
    Text,
    /// JSON (stable camelCase field names).
    Json,
    /// YAML (same fields).
    Yaml,
    /// Prometheus text exposition format (node_exporter textfile collector).
    Prometheus,
}

/// `kubectl astro status`.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-astro-status",
    version,
    about = "Could we recover right now? Velero, schedules, per-deployment backups, Redis policy, database, soft-deleted deployments, endpoint durability (read-only)"
)]
pub struct Cli {
    /// Newest holding backup older than this fails (e.g. 26h, 48h).
    #[arg(long, value_name = "DURATION", default_value = "26h")]
    pub max_age: jiff::SignedDuration,
    /// Soft-deleted deployments with fewer days left before the 14-day cleanup warn.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub cleanup_warn_days: i64,
    /// Directory holding `kubectl astro backup db` dumps; the newest is checked.
    #[arg(long, value_name = "DIR")]
    pub dumps: Option<PathBuf>,
    /// Seconds the Velero server gets to answer a ServerStatusRequest.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub velero_timeout: u64,
    /// Most resource-list downloads at a time.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = StatusFormat::Text)]
    pub output: StatusFormat,
    /// Houston access.
    #[command(flatten)]
    pub houston: HoustonAccessArgs,
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// A progress bar on stderr, shown only on a terminal and only after a second.
fn progress() -> Option<collect::Progress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    bar.set_message("reading backup resource lists");
    let shown = bar.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !shown.is_finished() {
            shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    });
    Some(Arc::new(move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if done >= total {
            bar.finish_and_clear();
        }
    }))
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<ExitStatus> {
    if cli.concurrency == 0 {
        return Err(Error::usage(
            "--concurrency must be at least 1",
            "e.g. --concurrency 8",
        ));
    }
    let kube = crate::commands::cli::client_from(&cli.global).await?;
    let needs = crate::commands::preflight::status(&cli.global, cli.houston.local);
    crate::commands::preflight::check(&kube, &needs).await?;
    let platform = crate::platform::collect_platform_release(
        &kube,
        &cli.global.platform_namespace,
        cli.global.platform_release.as_deref(),
    )
    .await?;
    let access = cli
        .houston
        .access(&cli.global.platform_namespace, &platform.name);
    let opts = CollectOptions {
        velero_namespace: cli.global.velero_namespace.clone(),
        platform_namespace: cli.global.platform_namespace.clone(),
        platform,
        access,
        server_timeout: Duration::from_secs(cli.velero_timeout),
        concurrency: cli.concurrency,
        dumps: cli.dumps.clone(),
    };
    let facts = collect::collect(&kube, &opts, progress()).await?;
    let report = decide::decide(
        &facts,
        &Thresholds {
            max_age: cli.max_age,
            cleanup_warn_days: cli.cleanup_warn_days,
        },
    );
    let out = match cli.output {
        StatusFormat::Text => report::text(&report, crate::terminal::size().map(|s| s.width)),
        StatusFormat::Json => {
            let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
            s.push('\n');
            s
        }
        StatusFormat::Yaml => serde_saphyr::to_string(&report).unwrap_or_default(),
        StatusFormat::Prometheus => report::prometheus(&report),
    };
    print_stdout(&out).map_err(|e| {
        Error::usage(
            format!("cannot write to stdout: {e}"),
            "check where the output goes",
        )
    })?;
    Ok(report::exit_status(&report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "kubectl-astro-status",
            "-o",
            "prometheus",
            "--max-age",
            "48h",
            "--local",
        ])
        .unwrap();
        assert_eq!(cli.output, StatusFormat::Prometheus);
        assert!(cli.houston.local);
    }
}
