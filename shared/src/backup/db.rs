//! Database dumps (`backup db`): a custom-format `pg_dump` of the Houston (or one Airflow)
//! database, streamed to a local file with byte progress and checked with `pg_restore -l`.
//!
//! `--local` runs this machine's `pg_dump` with PG* variables (the password only in the
//! child's environment, never in arguments). Otherwise `pg_dump` runs in a short-lived
//! client pod in the platform namespace (credentials through a Secret + `secretKeyRef`)
//! and its stdout is streamed back over an attach.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::BackupError;
use crate::clientpod::{self, ClientPodError, ClientPodPlan, with_client_pod};
use crate::connection::PgConnection;

/// Default output file: `<database>-<UTC stamp>.dump`.
pub fn default_out(database: &str, now: Timestamp) -> PathBuf {
    let safe: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("{safe}-{}.dump", now.strftime("%Y%m%d%H%M%S")))
}

fn dump_error(message: String, hint: &str) -> BackupError {
    BackupError::Dump {
        message,
        hint: hint.to_owned(),
    }
}

/// The next step after pg_dump failed with `why`: a user that may not read everything
/// needs another user, not a connection check.
fn failure_hint(why: &str, otherwise: &str) -> String {
    let denied = why.lines().find_map(|l| {
        l.split_once("permission denied for ")
            .map(|(_, what)| what.trim())
    });
    match denied {
        Some(what) => format!(
            "the database user may not read {what}: dump as a user that owns or may read \
             all of it (for --release the platform's admin user from secret \
             astronomer-bootstrap is used when that secret exists)"
        ),
        None => otherwise.to_owned(),
    }
}

/// The partial file written while dumping; renamed into place only when complete.
fn partial_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

/// Copies `reader` to `out` (via `out.partial`) with byte progress; returns bytes written.
async fn stream_to_file(mut reader: impl AsyncRead + Unpin, out: &Path) -> std::io::Result<u64> {
    let partial = partial_path(out);
    let mut file = tokio::fs::File::create(&partial).await?;
    let progress = ByteProgress::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let result: std::io::Result<()> = async {
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).await?;
            total += n as u64;
            progress.set(total);
        }
        file.flush().await?;
        file.sync_all().await
    }
    .await;
    progress.finish(total);
    match result {
        Ok(()) => Ok(total),
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

/// Runs the local `pg_dump -Fc`; the password reaches it only through an inherited
/// in-memory password file ([`crate::pgpass`]), never its arguments or environment.
pub async fn dump_local(conn: &PgConnection, out: &Path) -> Result<u64, BackupError> {
    let mut cmd = tokio::process::Command::new("pg_dump");
    cmd.args(["--format=custom", "--no-password"])
        .env_remove("PGPASSFILE")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in conn.libpq_env(false) {
        cmd.env(k, v);
    }
    // Lives until pg_dump has ended (this function returns after that).
    let pass = match conn.password() {
        Some(password) => Some(
            crate::pgpass::PassFile::new(password, "pg_dump").map_err(|e| {
                dump_error(
                    e.to_string(),
                    "retry, or drop --local to dump from a client pod",
                )
            })?,
        ),
        None => None,
    };
    for (k, v) in pass.iter().flat_map(|p| p.env()) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| {
        dump_error(
            format!("cannot run pg_dump: {e}"),
            "install the PostgreSQL client tools (pg_dump, pg_restore), or drop --local to dump from a client pod",
        )
    })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| dump_error("pg_dump has no stdout".into(), "retry"))?;
    let mut stderr = child.stderr.take();
    let err_text = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s).await;
        }
        s
    });
    let written = stream_to_file(stdout, out).await;
    let status = child.wait().await;
    let err_text = err_text.await.unwrap_or_default();
    let database = conn.database().unwrap_or("?").to_owned();
    match (written, status) {
        (Ok(bytes), Ok(s)) if s.success() => {
            finish_partial(out).await?;
            Ok(bytes)
        }
        (written, status) => {
            let _ = tokio::fs::remove_file(partial_path(out)).await;
            let why = match (written, status) {
                (Err(e), _) => format!("writing {}: {e}", out.display()),
                (_, Err(e)) => e.to_string(),
                (_, Ok(s)) => format!("{s}: {}", err_text.trim()),
            };
            Err(dump_error(
                format!("pg_dump of database {database} failed: {why}"),
                &failure_hint(
                    &why,
                    "check the connection with `kubectl astro dbconn --local -c 'select 1'`",
                ),
            ))
        }
    }
}

async fn finish_partial(out: &Path) -> Result<(), BackupError> {
    tokio::fs::rename(partial_path(out), out)
        .await
        .map_err(|e| {
            dump_error(
                format!("cannot move the dump into place at {}: {e}", out.display()),
                "check the directory permissions",
            )
        })
}

/// The client pod that runs `pg_dump -Fc`. It waits for one line on stdin before it
/// starts, so the attach is in place before the first byte of the dump.
pub fn plan_dump_pod(
    conn: &PgConnection,
    namespace: &str,
    platform_release: &str,
    image: &str,
) -> ClientPodPlan {
    ClientPodPlan {
        namespace: namespace.to_owned(),
        name: clientpod::unique_name("astro-pgdump"),
        image: image.to_owned(),
        labels: clientpod::network_policy_labels(platform_release),
        command: vec![
            "sh".into(),
            "-c".into(),
            "read -r _ && exec pg_dump --format=custom --no-password".into(),
        ],
        secret_env: conn
            .libpq_env(true)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        plain_env: Vec::new(),
        interactive: true,
        tty: false,
    }
}

/// Runs the dump pod, streams its stdout to `out`, and cleans up the Pod and Secret.
pub async fn dump_in_pod(
    client: &kube::Client,
    plan: &ClientPodPlan,
    out: &Path,
) -> Result<u64, BackupError> {
    let out = out.to_owned();
    let namespace = plan.namespace.clone();
    let name = plan.name.clone();
    with_client_pod(client, plan, async move |pod| -> Result<u64, BackupError> {
        pod.wait_started(Duration::from_secs(300)).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let params = AttachParams::default().stdin(true).stdout(true).stderr(true).tty(false);
        let mut attached = pods.attach(&name, &params).await.map_err(|e| {
            BackupError::from(ClientPodError::Attach {
                namespace: namespace.clone(),
                name: name.clone(),
                source: Box::new(e),
            })
        })?;
        let stdout = attached
            .stdout()
            .ok_or_else(|| dump_error("the client pod has no stdout stream".into(), "retry, or use --local"))?;
        let mut stderr = attached.stderr();
        if let Some(mut stdin) = attached.stdin() {
            let _ = stdin.write_all(b"go\n").await;
        }
        let err_text = tokio::spawn(async move {
            let mut s = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_string(&mut s).await;
            }
            s
        });
        let written = stream_to_file(stdout, &out).await;
        let finished = pod.wait_finished(Duration::from_secs(60)).await?;
        let err_text = err_text.await.unwrap_or_default();
        match (written, finished.exit_code) {
            (Ok(bytes), Some(0)) => {
                finish_partial(&out).await?;
                Ok(bytes)
            }
            (written, code) => {
                let _ = tokio::fs::remove_file(partial_path(&out)).await;
                let why = match written {
                    Err(e) => e.to_string(),
                    Ok(_) => err_text.trim().to_owned(),
                };
                Err(dump_error(
                    format!(
                        "pg_dump in pod {namespace}/{name} failed (exit {}): {why}",
                        code.map_or_else(|| "unknown".into(), |c| c.to_string()),
                    ),
                    &failure_hint(
                        &why,
                        "check the connection with `kubectl astro dbconn -c 'select 1'`, or try --local",
                    ),
                ))
            }
        }
    })
    .await
}

/// `pg_restore -l FILE`: the dump must be a readable custom-format archive.
/// Returns the number of table-of-contents entries.
pub async fn verify(file: &Path) -> Result<usize, BackupError> {
    let output = tokio::process::Command::new("pg_restore")
        .arg("--list")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            dump_error(
                format!("cannot run pg_restore to verify {}: {e}", file.display()),
                "install the PostgreSQL client tools to verify the dump",
            )
        })?;
    if !output.status.success() {
        return Err(dump_error(
            format!(
                "pg_restore -l rejects {}: {}",
                file.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            "the dump is incomplete or corrupt; run the command again",
        ));
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    Ok(listing
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count())
}

/// Bytes written so far: an indicatif spinner on a TTY, a line every 64 MiB otherwise.
struct ByteProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    next_line: std::cell::Cell<u64>,
}

const LINE_EVERY: u64 = 64 * 1024 * 1024;

impl ByteProgress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} dumping: {bytes} ({bytes_per_sec}, {elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        ByteProgress {
            bar,
            started: Instant::now(),
            next_line: std::cell::Cell::new(LINE_EVERY),
        }
    }

    fn set(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        } else if bytes >= self.next_line.get() {
            eprintln!(
                "dumped {} MiB ({}s)",
                bytes / (1024 * 1024),
                self.started.elapsed().as_secs()
            );
            self.next_line.set(bytes + LINE_EVERY);
        }
    }

    fn finish(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "dumped {bytes} bytes in {}s",
            self.started.elapsed().as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_points_at_the_user_not_the_connection() {
        let why = "pg_dump: error: query failed: ERROR:  permission denied for schema celery\n\
                   pg_dump: detail: Query was: LOCK TABLE celery.celery_taskmeta IN ACCESS SHARE MODE";
        let hint = failure_hint(why, "check the connection");
        assert!(
            hint.starts_with("the database user may not read schema celery:"),
            "{hint}"
        );
        assert_eq!(
            failure_hint("connection refused", "check the connection"),
            "check the connection"
        );
    }

    #[test]
    fn default_file_name_and_pod_plan_keep_secrets_out_of_args() {
        let now: Timestamp = "2026-11-25T16:40:05Z".parse().unwrap();
        assert_eq!(
            default_out("astronomer_houston", now),
            PathBuf::from("astronomer_houston-20261125164005.dump")
        );
        let conn = PgConnection::parse("postgres://u:s3cret@db:5432/astronomer_houston").unwrap();
        let plan = plan_dump_pod(&conn, "astronomer", "astronomer", "postgres");
        assert!(plan.command.iter().all(|a| !a.contains("s3cret")));
        assert!(
            plan.secret_env
                .iter()
                .any(|(k, v)| k == "PGPASSWORD" && v == "s3cret")
        );
        assert!(plan.plain_env.is_empty());
        assert_eq!(
            partial_path(Path::new("/tmp/x.dump")),
            PathBuf::from("/tmp/x.dump.partial")
        );
    }
}
