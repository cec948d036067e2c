//! `kubectl astro dbconn`: find the platform's database connection and show it (redacted),
//! print it as a psql URI or PG* exports, run one SQL statement, or open a psql shell.

// `Error` is the crate's edge error (one variant per module, some large); commands return
// it once per run, so its size does not matter here.
#![allow(clippy::result_large_err)]

use crate::commands::preflight::{self, PodUse};
use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use crate::clientpod::{self, ClientPodPlan, with_client_pod};
use crate::commands::cli::GlobalArgs;
use crate::commands::error::Error;
use crate::commands::exit::ExitStatus;
use crate::connection::{PgConnection, SslMode, shell_quote};
use crate::output::{OutputFormat, note, print_stdout};
use crate::platform::{self, PlatformRelease, ReleaseOrigin, Resolved, SecretSource, Target};
use crate::release::ReleaseName;

/// What a redacted password is printed as.
const REDACTED: &str = "<redacted>";

/// Decode and use the platform database connection (Houston by default).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kubectl-astro-dbconn",
    version,
    about = "Decode and use the platform database connection (Houston by default)",
    long_about = "Decode and use the platform database connection.\n\n\
        Reads <platform-release>-houston-backend (falling back to astronomer-bootstrap + \
        <release>_houston when it holds Helm's placeholder), or the bootstrap, Grafana or a \
        deployment's Airflow database. Passwords are shown only with --show-secrets.",
    after_help = "Examples:\n  \
        kubectl astro dbconn\n  \
        psql \"$(kubectl astro dbconn --uri --show-secrets)\"\n  \
        eval \"$(kubectl astro dbconn --env --show-secrets)\"; psql\n  \
        kubectl astro dbconn -c 'select count(*) from \"Deployment\"'\n  \
        kubectl astro dbconn --release weightless-meteor-5042 --shell"
)]
pub struct Cli {
    /// Use the bootstrap (root) connection itself, database `postgres`.
    #[arg(long, conflicts_with_all = ["grafana", "release"])]
    pub bootstrap: bool,

    /// Use Grafana's database (`<platform-release>-grafana-backend`).
    #[arg(long, conflicts_with = "release")]
    pub grafana: bool,

    /// Use this Airflow deployment's database (e.g. weightless-meteor-5042).
    #[arg(long, value_name = "RELEASE", value_parser = ReleaseName::parse)]
    pub release: Option<ReleaseName>,

    /// Namespace of the deployment given with --release (default: <platform-namespace>-<release>).
    #[arg(short = 'n', long, value_name = "NS", requires = "release")]
    pub namespace: Option<String>,

    /// Print a psql-ready URI (password only with --show-secrets).
    #[arg(long, group = "mode")]
    pub uri: bool,

    /// Print `export PG…=…` lines for `eval` (PGPASSWORD only with --show-secrets).
    #[arg(long, group = "mode")]
    pub env: bool,

    /// Run one SQL statement and print the result.
    #[arg(short = 'c', long = "command", value_name = "SQL", group = "mode")]
    pub command: Option<String>,

    /// Open an interactive psql (in a client pod; with --local, the local psql).
    #[arg(long, group = "mode")]
    pub shell: bool,

    /// Connect from this machine instead of from a client pod in the cluster.
    #[arg(long)]
    pub local: bool,

    /// Show passwords (in the summary, --uri, --env, -o json/yaml, and --dry-run Secrets).
    #[arg(long)]
    pub show_secrets: bool,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Print the client Pod and Secret (and SQL) that would be created; create nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Client pod image (needs psql).
    #[arg(long, value_name = "IMAGE", default_value = clientpod::DEFAULT_IMAGE)]
    pub image: String,

    /// Seconds to wait for the client pod to start.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub pod_timeout: u64,

    // Last: its "Global options" heading would otherwise swallow the flags after it.
    #[command(flatten)]
    #[allow(missing_docs)]
    pub global: GlobalArgs,
}

impl Cli {
    fn target(&self) -> Target {
        if self.bootstrap {
            Target::Bootstrap
        } else if self.grafana {
            Target::Grafana
        } else if let Some(release) = &self.release {
            Target::Release {
                release: release.clone(),
                namespace: self.namespace.clone(),
            }
        } else {
            Target::Houston
        }
    }

    fn uses_pod(&self) -> bool {
        (self.shell || self.command.is_some()) && !self.local
    }

    /// Flag combinations clap cannot express.
    fn validate(&self) -> Result<(), Error> {
        if self.dry_run && !self.uses_pod() {
            return Err(Error::usage(
                "--dry-run only applies to the client pod of --shell or -c",
                "drop --dry-run, or use it with --shell / -c SQL (without --local)",
            ));
        }
        if self.local && !(self.shell || self.command.is_some()) {
            return Err(Error::usage(
                "--local only applies to --shell or -c SQL",
                "add --shell or -c 'select 1'",
            ));
        }
        if (self.uri || self.env) && self.output != OutputFormat::Text {
            return Err(Error::usage(
                "-o json/yaml cannot be combined with --uri or --env",
                "use -o json alone for a structured summary",
            ));
        }
        Ok(())
    }
}

/// The connection as printed by the summary and `-o json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// houston, bootstrap, grafana or release.
    pub target: String,
    /// The deployment release for `--release`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Platform namespace.
    pub platform_namespace: String,
    /// Platform release and how it was found.
    pub platform_release: PlatformRelease,
    /// Secrets read, main one first.
    pub sources: Vec<SecretSource>,
    /// Why these sources (fallbacks, pgbouncer bypass).
    pub notes: Vec<String>,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Password, or `<redacted>` without --show-secrets.
    pub password: Option<String>,
    /// Search path (schema).
    pub search_path: Option<String>,
    /// sslmode, when the connection sets one.
    pub sslmode: Option<SslMode>,
    /// Other libpq parameters.
    pub params: BTreeMap<String, String>,
    /// psql URI (password only with --show-secrets).
    pub uri: String,
}

/// Builds the summary; the password is redacted unless `show_secrets`.
pub fn summarize(
    target: &Target,
    platform_namespace: &str,
    release: &PlatformRelease,
    resolved: &Resolved,
    show_secrets: bool,
) -> Summary {
    let c = &resolved.connection;
    let (kind, rel) = match target {
        Target::Houston => ("houston", None),
        Target::Bootstrap => ("bootstrap", None),
        Target::Grafana => ("grafana", None),
        Target::Release { release, .. } => ("release", Some(release.to_string())),
    };
    Summary {
        target: kind.into(),
        release: rel,
        platform_namespace: platform_namespace.into(),
        platform_release: release.clone(),
        sources: resolved.sources.clone(),
        notes: resolved.notes.clone(),
        host: c.host().into(),
        port: c.port(),
        database: c.database().map(Into::into),
        user: c.user().map(Into::into),
        password: c.password().map(|p| {
            if show_secrets {
                p.to_owned()
            } else {
                REDACTED.to_owned()
            }
        }),
        search_path: c.search_path().map(Into::into),
        sslmode: c.sslmode(),
        params: c.params().iter().cloned().collect(),
        uri: uri_for(c, show_secrets),
    }
}

/// The psql URI; without `show_secrets` the password is left out entirely, so the URI
/// still works with `PGPASSWORD`/`~/.pgpass` rather than carrying a fake password.
pub fn uri_for(c: &PgConnection, show_secrets: bool) -> String {
    if show_secrets {
        c.to_uri()
    } else {
        let user = c.user().map(str::to_owned);
        c.clone()
            .with_credentials(user.unwrap_or_default(), None)
            .to_uri()
            .replacen("postgresql://@", "postgresql://", 1)
    }
}

/// The human summary.
pub fn render_text(s: &Summary) -> String {
    let mut out = String::new();
    let mut row = |k: &str, v: &str| out.push_str(&format!("{k:<14}{v}\n"));
    let what = match (s.target.as_str(), &s.release) {
        ("houston", _) => "Houston database".to_owned(),
        ("bootstrap", _) => "bootstrap (root) connection".to_owned(),
        ("grafana", _) => "Grafana database".to_owned(),
        (_, Some(r)) => format!("Airflow database of deployment {r}"),
        (t, None) => t.to_owned(),
    };
    row("Target:", &what);
    let origin = match &s.platform_release.origin {
        ReleaseOrigin::Flag => "from --platform-release".to_owned(),
        ReleaseOrigin::Detected { secret } => format!("detected from Helm secret {secret}"),
        ReleaseOrigin::Default { reason } => format!("default; {reason}"),
    };
    row(
        "Platform:",
        &format!(
            "release {} in namespace {} ({origin})",
            s.platform_release.name, s.platform_namespace
        ),
    );
    for (i, src) in s.sources.iter().enumerate() {
        row(if i == 0 { "Source:" } else { "" }, &src.to_string());
    }
    row("Host:", &s.host);
    row("Port:", &s.port.to_string());
    row(
        "Database:",
        s.database.as_deref().unwrap_or("(none: server default)"),
    );
    row("User:", s.user.as_deref().unwrap_or("(none)"));
    let password = match s.password.as_deref() {
        Some(REDACTED) => format!("{REDACTED} (--show-secrets to show)"),
        Some(p) => p.to_owned(),
        None => "(none)".to_owned(),
    };
    row("Password:", &password);
    row(
        "Search path:",
        s.search_path.as_deref().unwrap_or("(server default)"),
    );
    let ssl = s.sslmode.map_or_else(
        || "(not set: libpq default prefer)".to_owned(),
        |m| m.to_string(),
    );
    row("SSL mode:", &ssl);
    for (k, v) in &s.params {
        row(&format!("{k}:"), v);
    }
    for (i, note) in s.notes.iter().enumerate() {
        row(if i == 0 { "Note:" } else { "" }, note);
    }
    out
}

/// `export` lines for `eval`; PGPASSWORD only with `show_secrets`.
pub fn render_env(c: &PgConnection, show_secrets: bool) -> String {
    let mut out = String::new();
    for (k, v) in c.libpq_env(show_secrets) {
        out.push_str(&format!("export {k}={}\n", shell_quote(&v)));
    }
    if !show_secrets && c.password().is_some() {
        out.push_str("# PGPASSWORD withheld; add --show-secrets to include it\n");
    }
    out
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    Ok(crate::output::to_json(value, "the result")?)
}

fn to_yaml<T: Serialize>(value: &T) -> Result<String, Error> {
    Ok(crate::output::to_yaml(value, "the result")?)
}

fn print(text: &str) -> Result<(), Error> {
    Ok(print_stdout(text)?)
}

/// Runs `kubectl astro dbconn`.
pub async fn run(cli: Cli) -> Result<ExitStatus, Error> {
    cli.validate()?;
    let client = crate::commands::cli::client_from(&cli.global).await?;
    let namespace = cli.global.platform_namespace.clone();
    let pod = match (&cli.command, cli.shell) {
        _ if cli.local || cli.dry_run => None,
        (Some(_), _) => Some(PodUse::Command),
        (None, true) => Some(PodUse::Attach),
        (None, false) => None,
    };
    preflight::check(
        &client,
        &preflight::dbconn(&cli.global, pod.map(|u| (namespace.as_str(), u))),
    )
    .await?;
    let release = platform::collect_platform_release(
        &client,
        &namespace,
        cli.global.platform_release.as_deref(),
    )
    .await?;
    let target = cli.target();
    let resolved = platform::collect_connection(&client, &namespace, &release, &target).await?;
    let conn = &resolved.connection;

    // Where the connection came from (e.g. the placeholder fallback) changes what the user
    // gets: on stderr in every mode, except the text summary, which lists it itself.
    let text_summary = !(cli.shell || cli.command.is_some() || cli.uri || cli.env)
        && cli.output == OutputFormat::Text;
    if !text_summary {
        for n in &resolved.notes {
            note(format!("note: {n}"));
        }
    }

    if cli.uri {
        if !cli.show_secrets && conn.password().is_some() {
            note(
                "note: password withheld from the URI; add --show-secrets, or set PGPASSWORD (`eval \"$(kubectl astro dbconn --env --show-secrets)\"`)",
            );
        }
        print(&format!("{}\n", uri_for(conn, cli.show_secrets)))?;
        return Ok(ExitStatus::Success);
    }
    if cli.env {
        print(&render_env(conn, cli.show_secrets))?;
        return Ok(ExitStatus::Success);
    }
    if let Some(sql) = &cli.command {
        return if cli.local {
            run_local_sql(conn, sql, cli.output).await
        } else {
            run_pod_sql(&cli, &client, &release, conn, sql).await
        };
    }
    if cli.shell {
        return if cli.local {
            run_local_psql(conn)
        } else {
            run_pod_shell(&cli, &client, &release, conn).await
        };
    }

    let summary = summarize(&target, &namespace, &release, &resolved, cli.show_secrets);
    match cli.output {
        OutputFormat::Text => print(&render_text(&summary))?,
        OutputFormat::Json => print(&to_json(&summary)?)?,
        OutputFormat::Yaml => print(&to_yaml(&summary)?)?,
    }
    Ok(ExitStatus::Success)
}

async fn run_local_sql(
    conn: &PgConnection,
    sql: &str,
    output: OutputFormat,
) -> Result<ExitStatus, Error> {
    let client = crate::pg::connect(conn).await?;
    let results = crate::pg::run_sql(&client, sql).await?;
    match output {
        OutputFormat::Text => {
            let text: Vec<String> = results.iter().map(crate::pg::format_table).collect();
            print(&text.join("\n"))?;
        }
        OutputFormat::Json => print(&to_json(&results)?)?,
        OutputFormat::Yaml => print(&to_yaml(&results)?)?,
    }
    Ok(ExitStatus::Success)
}

/// The client pod for `conn`: every PG* value in the Secret, the command given.
pub fn plan_pod(
    platform_namespace: &str,
    release: &PlatformRelease,
    conn: &PgConnection,
    image: &str,
    command: Vec<String>,
    interactive: bool,
    tty: bool,
) -> ClientPodPlan {
    ClientPodPlan {
        namespace: platform_namespace.to_owned(),
        name: clientpod::unique_name("astro-dbconn"),
        image: image.to_owned(),
        labels: clientpod::network_policy_labels(&release.name),
        command,
        secret_env: conn
            .libpq_env(true)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        plain_env: vec![
            // psql keeps history and reads ~/.psqlrc under HOME; the image user has none.
            ("HOME".into(), "/tmp".into()),
            ("PSQL_HISTORY".into(), "/dev/null".into()),
        ],
        interactive,
        tty,
    }
}

fn print_dry_run(cli: &Cli, plan: &ClientPodPlan, sql: Option<&str>) -> Result<(), Error> {
    let pod = plan.pod();
    // The real uid exists only once the Pod is created; show where the ownerReference goes.
    let mut owner = pod.clone();
    owner.metadata.uid = Some("<uid of the created Pod>".into());
    let secret = plan.secret(Some(&owner), !cli.show_secrets);
    // stdout: the objects, apply-able; the SQL that would run in the pod on stderr.
    if let Some(sql) = sql {
        for line in sql.lines() {
            note(format!("# SQL: {line}"));
        }
    }
    let objects = [pod_json(&pod)?, secret_json(&secret)?];
    crate::output::emit_objects(cli.output, &objects)?;
    note(format!(
        "dry run: would create Pod and Secret {}/{} (Secret owned by the Pod), then delete both",
        plan.namespace, plan.name
    ));
    Ok(())
}

fn pod_json(pod: &k8s_openapi::api::core::v1::Pod) -> Result<serde_json::Value, Error> {
    Ok(crate::output::object_value(pod, "v1", "Pod")?)
}

fn secret_json(secret: &k8s_openapi::api::core::v1::Secret) -> Result<serde_json::Value, Error> {
    Ok(crate::output::object_value(secret, "v1", "Secret")?)
}

async fn run_pod_sql(
    cli: &Cli,
    client: &kube::Client,
    release: &PlatformRelease,
    conn: &PgConnection,
    sql: &str,
) -> Result<ExitStatus, Error> {
    // psql prints NULL like '' in CSV unless told a NULL string; make one no value holds.
    let null_marker = format!("\\N<{}>", clientpod::unique_name("null"));
    let structured = cli.output != OutputFormat::Text;
    let command = psql_command(structured.then_some(null_marker.as_str()), sql);
    let plan = plan_pod(
        &cli.global.platform_namespace,
        release,
        conn,
        &cli.image,
        command,
        false,
        false,
    );
    if cli.dry_run {
        print_dry_run(cli, &plan, Some(sql))?;
        return Ok(ExitStatus::Success);
    }
    let timeout = Duration::from_secs(cli.pod_timeout);
    let finished = with_client_pod(client, &plan, async |pod| {
        pod.wait_finished(timeout).await.map_err(Error::from)
    })
    .await?;
    if finished.exit_code != Some(0) {
        eprint!("{}", finished.logs);
        return Err(crate::clientpod::ClientPodError::CommandFailed {
            namespace: plan.namespace.clone(),
            name: plan.name.clone(),
            command: "psql".into(),
            code: finished.exit_code,
        }
        .into());
    }
    match cli.output {
        OutputFormat::Text => print(&finished.logs)?,
        OutputFormat::Json => print(&to_json(&[crate::pg::parse_psql_csv(
            &finished.logs,
            &null_marker,
        )])?)?,
        OutputFormat::Yaml => print(&to_yaml(&[crate::pg::parse_psql_csv(
            &finished.logs,
            &null_marker,
        )])?)?,
    }
    Ok(ExitStatus::Success)
}

/// psql running one statement; with `csv_null`, as CSV (parsed back into rows) with that
/// NULL marker and notices silenced (they would mix into the log).
fn psql_command(csv_null: Option<&str>, sql: &str) -> Vec<String> {
    let mut command: Vec<String> = ["psql", "-X", "-v", "ON_ERROR_STOP=1"]
        .map(String::from)
        .into();
    if let Some(marker) = csv_null {
        let null = format!("null={marker}");
        command.extend(
            [
                "-q",
                "--csv",
                "-P",
                &null,
                "-c",
                "SET client_min_messages TO warning",
            ]
            .map(String::from),
        );
    }
    command.extend(["-c".into(), sql.to_owned()]);
    command
}

async fn run_pod_shell(
    cli: &Cli,
    client: &kube::Client,
    release: &PlatformRelease,
    conn: &PgConnection,
) -> Result<ExitStatus, Error> {
    let tty = crate::terminal::is_interactive() && !cli.dry_run;
    let plan = plan_pod(
        &cli.global.platform_namespace,
        release,
        conn,
        &cli.image,
        vec!["psql".into(), "-X".into()],
        true,
        tty,
    );
    if cli.dry_run {
        print_dry_run(cli, &plan, None)?;
        return Ok(ExitStatus::Success);
    }
    let timeout = Duration::from_secs(cli.pod_timeout);
    eprintln!(
        "starting client pod {}/{} (image {}); it is deleted when psql exits",
        plan.namespace, plan.name, plan.image
    );
    let code = with_client_pod(client, &plan, async |pod| {
        pod.wait_started(timeout).await?;
        pod.attach(tty).await.map_err(Error::from)
    })
    .await?;
    Ok(match code {
        Some(0) | None => ExitStatus::Success,
        Some(_) => ExitStatus::Failed,
    })
}

/// `--local --shell`: the local psql; the password only through an inherited in-memory
/// password file ([`crate::pgpass`]), never in its arguments or environment.
fn run_local_psql(conn: &PgConnection) -> Result<ExitStatus, Error> {
    let mut command = std::process::Command::new("psql");
    // Drop the caller's PG* settings so only ours apply.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            command.env_remove(key);
        }
    }
    command.envs(conn.libpq_env(false));
    // Lives until psql has ended (`status` waits).
    let pass = conn
        .password()
        .map(|password| crate::pgpass::PassFile::new(password, "psql"))
        .transpose()
        .map_err(|e| Error::usage(e.to_string(), "retry, or drop --local to use a client pod"))?;
    command.envs(pass.iter().flat_map(|p| p.env()));
    match command.status() {
        Ok(status) if status.success() => Ok(ExitStatus::Success),
        Ok(_) => Ok(ExitStatus::Failed),
        Err(e) => Err(Error::usage(
            format!("cannot run the local psql: {e}"),
            "install the PostgreSQL client (Debian: postgresql-client), or drop --local to use a client pod",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::ReleaseOrigin;

    fn resolved() -> Resolved {
        Resolved {
            connection: PgConnection::parse(
                "postgres://astro_admin:Sup3r%21Secret@db.example.com:5432/astronomer_houston?schema=houston%24default&sslmode=require",
            )
            .unwrap(),
            sources: vec![SecretSource {
                namespace: "astronomer".into(),
                name: "astronomer-houston-backend".into(),
                key: "connection".into(),
            }],
            notes: vec![],
        }
    }

    fn release() -> PlatformRelease {
        PlatformRelease {
            name: "astronomer".into(),
            origin: ReleaseOrigin::Flag,
        }
    }

    #[test]
    fn summary_redacts_unless_asked() {
        let s = summarize(
            &Target::Houston,
            "astronomer",
            &release(),
            &resolved(),
            false,
        );
        let text = render_text(&s);
        let json = to_json(&s).unwrap();
        for shown in [&text, &json] {
            assert!(!shown.contains("Sup3r"), "{shown}");
        }
        assert!(text.contains("Password:     <redacted>"), "{text}");
        assert!(text.contains("Search path:  houston$default"), "{text}");
        assert_eq!(
            s.uri,
            "postgresql://astro_admin@db.example.com:5432/astronomer_houston?sslmode=require&options=-c%20search_path%3Dhouston%24default"
        );
        let s = summarize(
            &Target::Houston,
            "astronomer",
            &release(),
            &resolved(),
            true,
        );
        assert_eq!(s.password.as_deref(), Some("Sup3r!Secret"));
    }

    #[test]
    fn env_lines_withhold_the_password() {
        let c = resolved().connection;
        let env = render_env(&c, false);
        assert!(!env.contains("Sup3r"), "{env}");
        assert!(
            env.contains("export PGOPTIONS='-c search_path=houston$default'\n"),
            "{env}"
        );
        assert!(env.contains("# PGPASSWORD withheld"));
        assert!(render_env(&c, true).contains("export PGPASSWORD='Sup3r!Secret'\n"));
    }

    #[test]
    fn flag_rules() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("kubectl-astro-dbconn").chain(args.iter().copied()))
        };
        assert!(parse(&["--uri", "--env"]).is_err());
        assert!(parse(&["--bootstrap", "--grafana"]).is_err());
        assert!(parse(&["--namespace", "x"]).is_err());
        assert!(parse(&["--release", "Bad_Name"]).is_err());
        assert!(parse(&["--dry-run"]).unwrap().validate().is_err());
        assert!(parse(&["--local"]).unwrap().validate().is_err());
        assert!(
            parse(&["--shell", "--dry-run", "-o", "yaml"])
                .unwrap()
                .validate()
                .is_ok()
        );
        assert!(
            parse(&["-c", "select 1", "--local"])
                .unwrap()
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn dry_run_pod_has_no_password_in_command_args_or_env_values() {
        let plan = plan_pod(
            "astronomer",
            &release(),
            &resolved().connection,
            "postgres",
            vec!["psql".into(), "-c".into(), "select 1".into()],
            false,
            false,
        );
        let pod = serde_json::to_string(&plan.pod()).unwrap();
        assert!(!pod.contains("Sup3r"), "{pod}");
        let secret = serde_json::to_string(&plan.secret(None, true)).unwrap();
        assert!(!secret.contains("Sup3r"), "{secret}");
        assert!(secret.contains("PGOPTIONS"));
    }
}
