//! Test harness for the end-to-end tests: locating the built binaries, rendering the
//! fixture platform, starting the fake cluster, and reaching the throwaway PostgreSQL.
//!
//! The fixtures (`tests/fixtures/`, see its README) are rendered before the fake cluster
//! loads them: variant directories are merged over `platform/` (same object → replaced,
//! `remove.txt` → deleted), the fixture DB host is substituted with the local PostgreSQL,
//! and fixture dates are shifted so that the fixture's "today" is the real current day.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod audit;
mod cluster;
pub mod faults;
pub use cluster::{
    ClusterBuilder, audit_on_drop, bin, cluster, cluster_builder, cluster_with, command,
    command_with_kubeconfig, remove_saved, run, saved_objects, scrubbed_command,
};
pub use fake_cluster::{FakeCluster, velero_crd_dir};

/// The DB host every fixture secret names (RDS-style), without the port.
pub const FIXTURE_DB_HOST: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";
/// A database host name that only pods of the fake cluster resolve (its kubelet maps it to
/// the test PostgreSQL): the platform database in a private network, as on real
/// installations. `.invalid` never resolves anywhere else (RFC 6761).
pub const PODS_ONLY_DB_HOST: &str = "houston-db.private.invalid";

/// The DB port every fixture secret names.
pub const FIXTURE_DB_PORT: u16 = 5432;
/// The day the fixture timestamps are written for; rendering shifts them to today.
pub const FIXTURE_TODAY: jiff::civil::Date = jiff::civil::date(2026, 11, 25);

/// Every password, key and secret value in the fixtures (YAML and SQL), in every form
/// they take there (plain and percent-encoded). Output of a command run without
/// `--show-secrets` must contain none of them.
pub const FIXTURE_SECRETS: &[&str] = &[
    // Platform DB user astro_admin (plain and percent-encoded as in the URLs).
    "Sup3r!Secret",
    "Sup3r%21Secret",
    // Variant B bootstrap user `airflow`.
    "gcpPassw0rd",
    // Per-deployment database roles.
    "mT4hQ9vZr2LwX8cN1bK6pS3dF7gJ0yEu",
    "Pp2sW8nRk5YtA1zQ9xC4vB7mL3hJ6dGf",
    "Tq7Rv2Nw9Lx4Hc8Ks1Jd6Mf3Bg5Zp0Ya",
    "qN3b@l:a/5%x#y?z",
    "qN3b%40l%3Aa%2F5%25x%23y%3Fz",
    "Rq8Vw2Kx5Nc9Ty3Lm6Hb1Jf4Gd7Ps0Ae",
    "Cz4Xn8Bv2Mq6Wr0Ty5Ui9Op3As7Df1Gh",
    "Cs5Zn1Th8Kq3Wv6Xb9Ly2Mr4Pj7Df0Ga",
    "Cc7Ze3Nh1Tq9Kw5Vb2Xy8Lm4Rp6Jd0Fs",
    "Ba2Ph7Ln4Xk9Qw1Er6Ty3Ui8Op5As0Df",
    "Dt9Pr0dXq4Wm7Zk2Lc5Vn8Bh1Jg3Fs6A",
    "Dc1Pr0dWq8Xm3Zk6Lv9Nb2Hj5Gf7Sd4A",
    // Redis passwords.
    "r3disFake99",
    "r3disQuasar42",
    "r3disZenith12",
    "r3disDataTeam7",
    // Fernet keys.
    "Zml4dHVyZS1mZXJuZXQta2V5LW5vdC1mb3ItdXNlISE=",
    "dHJhZGl0aW9uYWwtZmVybmV0LWZpeHR1cmUtb25seSE=",
    "cXVpZXQtbmVidWxhLWZlcm5ldC1maXh0dXJlLW9ubHkhIQ==",
    "cmFkaWFudC1xdWFzYXItZmVybmV0LWZpeHR1cmUtb25seSE=",
    "ZHQtcHJvZC1mZXJuZXQta2V5LWZpeHR1cmUtb25seSEhISE=",
    "Y2VsZXN0aWFsLXplbml0aC1mZXJuZXQtZml4dHVyZSEhISE=",
    "Ym9yZWFsLWFwaGVsaW9uLWZlcm5ldC1maXh0dXJlISEhISE=",
    // Registry credentials (plain and as the docker config's `auth`), the Cloud SQL
    // proxy's service-account key, Houston's hashes.
    "R3gistryFake11",
    "cmVnaXN0cnk6UjNnaXN0cnlGYWtlMTE=",
    "RklYVFVSRS1OT1QtQS1SRUFMLUtFWQ==",
    "$2a$10$fixtureFixtureFixtureFiOq8m1Vq9x2oQ5yG7rT3uW4eR6tY8i",
    "$2a$10$fixtureFixtureFixtureFiZr2Lw8cN1bK6pS3dF7gJ0yEuHc9",
    // The houston-backend placeholder left by `helm upgrade` (placeholder/ variant).
    "k3Zq9",
];

/// Fixture secrets found in `text` (empty when none leaked), plain or base64-encoded
/// anywhere inside a base64 text (as in a printed Secret's `data`).
pub fn leaked_secrets(text: &str) -> Vec<&'static str> {
    FIXTURE_SECRETS
        .iter()
        .copied()
        .filter(|s| text.contains(s) || base64_forms(s).iter().any(|f| text.contains(f.as_str())))
        .collect()
}

/// What `secret` looks like inside base64 at each of the three byte alignments: the
/// characters of the groups it fills alone. Forms shorter than 8 characters would
/// match by chance and are left out.
fn base64_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    let bytes = secret.as_bytes();
    (0..3)
        .filter_map(|skip| {
            let whole = &bytes[skip.min(bytes.len())..];
            let whole = &whole[..whole.len() / 3 * 3];
            (whole.len() >= 6).then(|| base64::engine::general_purpose::STANDARD.encode(whole))
        })
        .collect()
}

/// Panics naming every fixture secret in the process's stdout or stderr.
pub fn assert_no_secrets(output: &Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let leaked = leaked_secrets(&text);
        assert!(
            leaked.is_empty(),
            "{stream} leaks fixture secrets {leaked:?}:\n{text}"
        );
    }
}

/// The workspace root (the checkout).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/e2e is two levels below the workspace root")
        .to_path_buf()
}

/// `tests/fixtures/` of this checkout.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures")
}

/// Substitutions that point every fixture DB reference at `host:port`: the
/// `host:5432` form of the URLs, and the separate `host=` / `port=` tokens of
/// `pgbouncer.ini` (each followed by a space in every fixture line).
pub fn db_substitutions(host: &str, port: u16) -> Vec<(String, String)> {
    vec![
        (
            format!("{FIXTURE_DB_HOST}:{FIXTURE_DB_PORT}"),
            format!("{host}:{port}"),
        ),
        (format!("host={FIXTURE_DB_HOST} "), format!("host={host} ")),
        (format!("port={FIXTURE_DB_PORT} "), format!("port={port} ")),
    ]
}

/// One parsed fixture document and the file it came from.
#[derive(Debug, Clone)]
pub struct FixtureDoc {
    /// The YAML file.
    pub file: PathBuf,
    /// The object.
    pub object: Value,
}

/// Identity of an object: apiVersion, kind, namespace ("" when cluster-scoped), name.
pub type ObjectKey = (String, String, String, String);

/// The identity of a Kubernetes object.
pub fn object_key(object: &Value) -> ObjectKey {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&object["apiVersion"]),
        s(&object["kind"]),
        s(&object["metadata"]["namespace"]),
        s(&object["metadata"]["name"]),
    )
}

/// The `*.yaml` files of a directory, sorted by name.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read fixture dir {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable dir entry").path())
        .filter(|p| p.extension() == Some(OsStr::new("yaml")))
        .collect();
    files.sort();
    files
}

/// Parses a multi-document YAML text into objects, skipping empty documents.
pub fn parse_yaml_docs(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Reads and parses every `*.yaml` of `dir` after applying `edit` to each file's text.
pub fn load_dir(dir: &Path, edit: &dyn Fn(&str) -> String) -> Vec<FixtureDoc> {
    let mut out = Vec::new();
    for file in yaml_files(dir) {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let docs = parse_yaml_docs(&edit(&text))
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", file.display()));
        out.extend(docs.into_iter().map(|object| FixtureDoc {
            file: file.clone(),
            object,
        }));
    }
    out
}

/// The objects a variant's `remove.txt` deletes from the layers below it
/// (lines `apiVersion kind namespace name`, `-` for no namespace, `#` comments).
pub fn removals(dir: &Path) -> Vec<ObjectKey> {
    let Ok(text) = std::fs::read_to_string(dir.join("remove.txt")) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(
                f.len(),
                4,
                "bad remove.txt line in {}: {line}",
                dir.display()
            );
            let ns = if f[2] == "-" { "" } else { f[2] };
            (f[0].into(), f[1].into(), ns.into(), f[3].into())
        })
        .collect()
}

/// The day the harness renders the fixtures for: `$ASTRO_TEST_TODAY` (`YYYY-MM-DD`) when
/// set, else today's UTC date. `.ci/run` runs the suite a second time with the clock 40
/// days after [`FIXTURE_TODAY`] (libfaketime), so a test that names a fixture date
/// literally fails at once rather than next week; the variable moves only the fixture
/// dates (the binaries under test keep the real clock), for trying a date by hand.
pub fn harness_today() -> jiff::civil::Date {
    if let Some(day) = std::env::var("ASTRO_TEST_TODAY")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return day
            .parse()
            .unwrap_or_else(|e| panic!("ASTRO_TEST_TODAY={day:?} is not a YYYY-MM-DD date: {e}"));
    }
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// Days to add to fixture dates so that [`FIXTURE_TODAY`] becomes [`harness_today`].
pub fn days_since_fixture_today() -> i32 {
    let span = harness_today()
        .since(FIXTURE_TODAY)
        .expect("date difference");
    span.get_days()
}

/// The variables of a faked clock (`scripts/test-later-date`: libfaketime), to pass on to
/// the binaries under test when a test clears their environment, so that they see the same
/// day as the test.
pub fn fake_clock_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k == "LD_PRELOAD" || k == "NO_FAKE_STAT" || k.starts_with("FAKETIME"))
        .collect()
}

/// A fixture name or timestamp as the cluster holds it after rendering, e.g.
/// `fixture_name("astro-nightly-20261124010000")`: tests must name shifted fixture objects
/// through this, never literally.
pub fn fixture_name(written: &str) -> String {
    shift_dates(written, days_since_fixture_today())
}

/// Shifts every fixture date in `text` by `days`: `YYYY-MM-DD` (as in RFC 3339
/// timestamps) and the 14-digit `YYYYMMDDhhmmss` stamps in Velero backup names.
/// Only years 2025–2027 are touched, so unrelated numbers stay as they are.
pub fn shift_dates(text: &str, days: i32) -> String {
    if days == 0 {
        return text.to_owned();
    }
    let shift = |y: i16, m: i8, d: i8| -> Option<jiff::civil::Date> {
        if !(2025..=2027).contains(&y) {
            return None;
        }
        let date = jiff::civil::Date::new(y, m, d).ok()?;
        date.checked_add(jiff::Span::new().days(days)).ok()
    };
    let bytes = text.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let num = |s: &[u8]| -> i32 { std::str::from_utf8(s).unwrap().parse().unwrap() };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let boundary_before = i == 0 || !bytes[i - 1].is_ascii_digit();
        // YYYY-MM-DD
        if boundary_before
            && i + 10 <= bytes.len()
            && digits(&bytes[i..i + 4])
            && bytes[i + 4] == b'-'
            && digits(&bytes[i + 5..i + 7])
            && bytes[i + 7] == b'-'
            && digits(&bytes[i + 8..i + 10])
            && bytes.get(i + 10).is_none_or(|b| !b.is_ascii_digit())
        {
            let (y, m, d) = (
                num(&bytes[i..i + 4]),
                num(&bytes[i + 5..i + 7]),
                num(&bytes[i + 8..i + 10]),
            );
            if let Some(new) = shift(y as i16, m as i8, d as i8) {
                out.push_str(&text[copied..i]);
                out.push_str(&new.strftime("%Y-%m-%d").to_string());
                i += 10;
                copied = i;
                continue;
            }
        }
        // YYYYMMDDhhmmss
        if boundary_before
            && i + 14 <= bytes.len()
            && digits(&bytes[i..i + 14])
            && bytes.get(i + 14).is_none_or(|b| !b.is_ascii_digit())
        {
            let (y, m, d) = (
                num(&bytes[i..i + 4]),
                num(&bytes[i + 4..i + 6]),
                num(&bytes[i + 6..i + 8]),
            );
            if let Some(new) = shift(y as i16, m as i8, d as i8) {
                out.push_str(&text[copied..i]);
                out.push_str(&new.strftime("%Y%m%d").to_string());
                i += 8;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Renders `platform/` plus the given variant directories (in order) into the list of
/// objects the fake cluster should hold: later layers replace objects with the same
/// identity, `remove.txt` deletes, `substitutions` are applied to the YAML text in
/// order, and dates are shifted to today.
pub fn render_fixtures(variants: &[&str], substitutions: &[(String, String)]) -> Vec<Value> {
    render_fixtures_shifted(variants, substitutions, days_since_fixture_today())
}

/// [`render_fixtures`] with an explicit date shift (0 keeps the written dates).
pub fn render_fixtures_shifted(
    variants: &[&str],
    substitutions: &[(String, String)],
    days: i32,
) -> Vec<Value> {
    let edit = |text: &str| {
        let mut text = text.to_owned();
        for (from, to) in substitutions {
            text = text.replace(from, to);
        }
        shift_dates(&text, days)
    };
    let mut order: Vec<ObjectKey> = Vec::new();
    let mut objects: BTreeMap<ObjectKey, Value> = BTreeMap::new();
    let layers = std::iter::once("platform").chain(variants.iter().copied());
    for layer in layers {
        let dir = fixtures_dir().join(layer);
        assert!(
            dir.is_dir(),
            "no fixture variant {layer:?} (expected {})",
            dir.display()
        );
        for key in removals(&dir) {
            assert!(
                objects.remove(&key).is_some(),
                "{}/remove.txt: {key:?} is not in the layers below",
                dir.display()
            );
            order.retain(|k| k != &key);
        }
        for doc in load_dir(&dir, &edit) {
            let key = object_key(&doc.object);
            if objects.insert(key.clone(), doc.object).is_none() {
                order.push(key);
            }
        }
    }
    order
        .into_iter()
        .map(|k| objects.remove(&k).expect("ordered key present"))
        .collect()
}

/// Writes objects as one multi-document YAML file (each document in JSON form, which
/// is YAML) into `dir`, returning the file.
pub fn write_manifests(objects: &[Value], dir: &Path) -> PathBuf {
    let file = dir.join("fixtures.yaml");
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(object).expect("JSON value serialises"));
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    file
}

/// Writes many objects as numbered sub-directories of `dir`, 500 a file (the YAML reader
/// caps documents per file), for the fake cluster to load with the rest of `dir`.
pub fn write_manifest_chunks(objects: &[Value], dir: &Path, prefix: &str) {
    for (i, chunk) in objects.chunks(500).enumerate() {
        let sub = dir.join(format!("{prefix}{i:03}"));
        std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("create {}: {e}", sub.display()));
        write_manifests(chunk, &sub);
    }
}

/// Connection details of the throwaway PostgreSQL (`scripts/test-postgres`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pg {
    /// Host (127.0.0.1).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The platform admin user (`astro_admin`).
    pub user: String,
    /// Its password (`Sup3r!Secret`).
    pub password: String,
}

/// The throwaway PostgreSQL from the `ASTRO_TEST_PG_*` variables, if they are set.
pub fn try_pg() -> Option<Pg> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(Pg {
        host: var("ASTRO_TEST_PG_HOST")?,
        port: var("ASTRO_TEST_PG_PORT")?
            .parse()
            .expect("ASTRO_TEST_PG_PORT is a port number"),
        user: var("ASTRO_TEST_PG_USER")?,
        password: var("ASTRO_TEST_PG_PASSWORD")?,
    })
}

/// The throwaway PostgreSQL; panics with how to start it when it is not configured.
pub fn pg() -> Pg {
    try_pg().unwrap_or_else(|| {
        panic!(
            "the test PostgreSQL is not configured (ASTRO_TEST_PG_* unset): run the tests with \
             scripts/test, or: scripts/test-postgres start && source target/test-postgres.env"
        )
    })
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Pg {
    /// `postgres://` URL for `user`/`password` and `database` on this server.
    pub fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            percent(user),
            percent(password),
            self.host,
            self.port,
            percent(database)
        )
    }

    /// `postgres://` URL of `database` as the admin user.
    pub fn url(&self, database: &str) -> String {
        self.url_as(&self.user, &self.password, database)
    }

    /// The tokio-postgres configuration for `user`/`password` on `database`.
    pub fn config_as(&self, user: &str, password: &str, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(database)
            .connect_timeout(std::time::Duration::from_secs(10));
        config
    }

    /// Connects as the admin user to `database` (the connection runs on a spawned task).
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        self.connect_as(&self.user, &self.password, database)
            .await
            .unwrap_or_else(|e| panic!("connect to {database} on {}:{}: {e}", self.host, self.port))
    }

    /// Connects as `user` with `password`; the error is returned (for auth tests).
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self
            .config_as(user, password, database)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs `sql` (simple-query protocol, several statements allowed) as the admin user
    /// on `database` and returns the rows (of all statements) as text. Blocking; usable
    /// from sync and async tests alike (it runs on its own thread and runtime).
    pub fn query(&self, database: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        let pg = self.clone();
        let (database, sql) = (database.to_owned(), sql.to_owned());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let client = pg.connect(&database).await;
                let messages = client.simple_query(&sql).await.unwrap_or_else(|e| {
                    let detail = e.as_db_error().map(|d| d.message().to_owned());
                    panic!("{sql} on {database}: {e}: {}", detail.unwrap_or_default())
                });
                let mut rows = Vec::new();
                for message in messages {
                    if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                        rows.push(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_owned))
                                .collect(),
                        );
                    }
                }
                rows
            })
        })
        .join()
        .expect("query thread")
    }

    /// The single value of a one-row, one-column query (NULL → `None`).
    pub fn query_one(&self, database: &str, sql: &str) -> Option<String> {
        let rows = self.query(database, sql);
        assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
        rows[0][0].clone()
    }

    /// A private copy of `template` (e.g. `astronomer_houston`) for a test that changes
    /// data; returns the new database's name. Drop it with [`Pg::drop_database`].
    ///
    /// It copies `<template>_pristine` when the fixtures made one (nobody connects to it),
    /// since `CREATE DATABASE … TEMPLATE` fails while another session uses the template.
    pub fn clone_database(&self, template: &str) -> String {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{template}_t{}_{n}", std::process::id());
        let pristine = format!("{template}_pristine");
        let exists = self.query_one(
            "postgres",
            &format!("select count(*) from pg_database where datname = '{pristine}'"),
        );
        let source = if exists.as_deref() == Some("1") {
            pristine.as_str()
        } else {
            template
        };
        // Without a pristine copy other tests may be reading the template: retried.
        self.execute_while_in_use(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{source}\" OWNER \"{}\"",
            self.user
        ));
        name
    }

    /// Runs `sql` on `postgres`, retrying for up to a minute while PostgreSQL says an
    /// object is in use (a template being read; sessions that take a while to end on a
    /// loaded machine).
    fn execute_while_in_use(&self, sql: &str) {
        for attempt in 0.. {
            let pg = self.clone();
            let statement = sql.to_owned();
            let result = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let client = pg.connect("postgres").await;
                    client.batch_execute(&statement).await.map_err(|e| {
                        // FORCE cannot end another role's session (no superuser here): that
                        // session (a command's relay, just finishing) ends shortly too.
                        let in_use = e.code()
                            == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                            || e.code()
                                == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
                        let detail = e.as_db_error().map(|d| d.message().to_owned());
                        (in_use, format!("{e}: {}", detail.unwrap_or_default()))
                    })
                })
            })
            .join()
            .expect("statement thread");
            match result {
                Ok(()) => return,
                Err((true, _)) if attempt < 600 => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err((_, e)) => panic!("{sql}: {e}"),
            }
        }
    }

    /// Drops a database made by [`Pg::clone_database`] (other sessions are terminated).
    pub fn drop_database(&self, name: &str) {
        self.execute_while_in_use(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
    }
}

/// A command's exit code, stdout and stderr as one text, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a prepared command and returns its output (helper for [`run`]).
pub fn output(mut command: Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_iso_dates_and_backup_stamps() {
        let text = "start: \"2026-11-22T01:00:00Z\" name: astro-nightly-20261122010000 port=5432 id 1234567890123456";
        let shifted = shift_dates(text, 10);
        assert_eq!(
            shifted,
            "start: \"2026-12-02T01:00:00Z\" name: astro-nightly-20261202010000 port=5432 id 1234567890123456"
        );
        assert_eq!(shift_dates(&shifted, -10), text);
    }

    #[test]
    fn leaves_non_dates_alone() {
        let text = "2026-13-01 99999999999999 1999-01-01 2026-11-2 12026-11-25";
        assert_eq!(shift_dates(text, 3), text);
    }

    #[test]
    fn db_substitutions_cover_url_and_ini_tokens() {
        let subs = db_substitutions("127.0.0.1", 40000);
        let mut ini = format!(
            "x = host={FIXTURE_DB_HOST} dbname=d port=5432 pool_size=3\nu postgres://a:b@{FIXTURE_DB_HOST}:5432/db"
        );
        for (from, to) in &subs {
            ini = ini.replace(from, to);
        }
        assert_eq!(
            ini,
            "x = host=127.0.0.1 dbname=d port=40000 pool_size=3\nu postgres://a:b@127.0.0.1:40000/db"
        );
    }

    #[test]
    fn leak_scan_finds_secrets() {
        assert_eq!(leaked_secrets("pw=Sup3r!Secret ok"), vec!["Sup3r!Secret"]);
        assert!(leaked_secrets("password: <redacted>").is_empty());
    }

    #[test]
    fn leak_scan_finds_secrets_inside_base64_at_any_offset() {
        use base64::Engine as _;
        for prefix in ["", "a", "ab", "postgres://astro_admin:"] {
            let data = base64::engine::general_purpose::STANDARD
                .encode(format!("{prefix}gcpPassw0rd@db:5432/x"));
            assert_eq!(
                leaked_secrets(&format!("data: {data}")),
                vec!["gcpPassw0rd"],
                "{prefix:?}"
            );
        }
        let other = base64::engine::general_purpose::STANDARD.encode("postgres://u:other@db/x");
        assert!(leaked_secrets(&other).is_empty());
    }
}
