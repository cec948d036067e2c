//! `kubectl astro backup db`: resolve the database, dump it (through a client pod, or
//! `--local`), verify the archive, report.

use std::path::PathBuf;

use clap::Args;
use jiff::Timestamp;

use crate::backup::db::{default_out, dump_in_pod, dump_local, plan_dump_pod, verify};
use crate::commands::cli::GlobalArgs;
use crate::commands::error::Result;
use crate::commands::exit::ExitStatus;
use crate::output::{note, print_stdout};
use crate::platform::{self, Target};
use crate::release::ReleaseName;

/// `backup db` flags.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Dump this deployment's Airflow database instead of Houston's (every schema: as the
    /// platform's admin user from astronomer-bootstrap when that secret exists).
    #[arg(long, value_name = "RELEASE", value_parser = ReleaseName::parse)]
    pub release: Option<ReleaseName>,
    /// Output file (default: <database>-<UTC yyyymmddhhmmss>.dump).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Run pg_dump on this machine instead of in a client pod.
    #[arg(long)]
    pub local: bool,
    /// Client pod image (needs pg_dump of a version ≥ the server's).
    #[arg(long, value_name = "IMAGE", default_value = "postgres")]
    pub image: String,
}

/// Runs `backup db`.
pub async fn run(global: &GlobalArgs, args: DbArgs) -> Result<ExitStatus> {
    let client = crate::commands::cli::client_from(global).await?;
    let pod = (!args.local).then_some(global.platform_namespace.as_str());
    crate::commands::preflight::check(&client, &crate::commands::preflight::backup_db(global, pod))
        .await?;
    let release = platform::collect_platform_release(
        &client,
        &global.platform_namespace,
        global.platform_release.as_deref(),
    )
    .await?;
    let target = match &args.release {
        Some(r) => Target::Release {
            release: r.clone(),
            namespace: None,
        },
        None => Target::Houston,
    };
    let mut resolved =
        platform::collect_connection(&client, &global.platform_namespace, &release, &target)
            .await?;
    if args.release.is_some() {
        let bootstrap = platform::read_secret(
            &client,
            &global.platform_namespace,
            platform::BOOTSTRAP_SECRET,
        )
        .await?;
        resolved =
            platform::release_as_admin(&global.platform_namespace, resolved, bootstrap.as_ref());
    }
    for n in &resolved.notes {
        note(format!("note: {n}"));
    }
    let conn = resolved.connection;
    let database = conn.database().unwrap_or("postgres").to_owned();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&database, Timestamp::now()));
    note(format!(
        "dumping database {database} on {}:{} to {}",
        conn.host(),
        conn.port(),
        out.display()
    ));
    let bytes = if args.local {
        dump_local(&conn, &out).await?
    } else {
        let plan = plan_dump_pod(
            &conn,
            &global.platform_namespace,
            &release.name,
            &args.image,
        );
        dump_in_pod(&client, &plan, &out).await?
    };
    let entries = verify(&out).await?;
    print_stdout(&format!(
        "dumped database {database} to {} ({bytes} bytes, {entries} archive entries; pg_restore -l verified)\n",
        out.display()
    ))?;
    Ok(ExitStatus::Success)
}
