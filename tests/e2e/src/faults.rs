//! The fault suite: the real binaries driven through API faults (5xx bursts, 429 with
//! Retry-After, conflicts, dropped watches, latency spikes, a revoked token), a PostgreSQL
//! restarted mid-command, the client pod killed mid-query, and SIGINT/SIGKILL at seeded
//! points. Each run is judged by what it left: data lost (per-command invariants),
//! leftovers (objects of the tool still there), leaked fixture secrets, and failure
//! messages that do not say what was done and what was not.
//!
//! Used by the `fault-report` binary (prints the table) and `tests/faults.rs` (asserts).
//! Seeded: the same seed injects the same faults at the same points.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fake_cluster::{FakeCluster, Fault};
use serde_json::Value;

use crate::{Pg, bin, cluster_builder, fixture_name, leaked_secrets};

/// The deployment the restore and undelete scenarios bring back (soft-deleted in Houston).
const RELEASE: &str = "celestial-zenith-1234";
const NEW_HOST: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";
const HOUSTON: &str = "astronomer_houston";
/// The longest a single run may take before it counts as hung (and is killed).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The commands under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `kubectl-astro-backup create NAME --platform --wait`.
    Backup,
    /// `kubectl-astro-restore RELEASE --yes`: Velero restore, then the Houston undelete.
    Restore,
    /// `kubectl-astro-restore undelete RELEASE --yes`.
    Undelete,
    /// `kubectl-astro-restore endpoint --db-host … --yes --save-to …`.
    Endpoint,
    /// `kubectl-astro-restore platform --from-backup … --db-host … --yes --save-to …`.
    Platform,
    /// `kubectl-astro-dbconn -c 'select count(*) …'` through a client pod.
    Dbconn,
    /// `kubectl-astro-status`.
    Status,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Backup => "backup create --wait",
            Target::Restore => "restore RELEASE",
            Target::Undelete => "restore undelete",
            Target::Endpoint => "restore endpoint",
            Target::Platform => "restore platform",
            Target::Dbconn => "dbconn -c",
            Target::Status => "status",
        }
    }

    /// Whether the command reads or writes Houston (through a client pod).
    fn uses_houston(self) -> bool {
        matches!(
            self,
            Target::Restore | Target::Undelete | Target::Dbconn | Target::Status
        )
    }
}

/// What is done to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disturbance {
    /// Nothing (the reference run).
    None,
    /// 4 answers 500, then 4 answers 503, from a seeded request on.
    Burst5xx,
    /// 3 answers 429 with `Retry-After: 1`.
    Throttle,
    /// 30 % of PATCH/PUT answered 409.
    Conflicts,
    /// Every watch closed after 1.5 s.
    DropWatches,
    /// One request in 6 delayed by 2 s.
    LatencySpikes,
    /// From a seeded request on, every request answered 401 (the token revoked).
    TokenRevoked,
    /// The PostgreSQL server restarted while the command runs.
    PgRestart,
    /// The client pod deleted while its query runs.
    PodKilled,
    /// SIGINT at a seeded request.
    Sigint,
    /// SIGKILL at a seeded request, then the command run again.
    Sigkill,
}

impl Disturbance {
    /// Every disturbance (the restore of a deployment goes through all of them).
    pub const ALL: [Disturbance; 11] = [
        Disturbance::None,
        Disturbance::Burst5xx,
        Disturbance::Throttle,
        Disturbance::Conflicts,
        Disturbance::DropWatches,
        Disturbance::LatencySpikes,
        Disturbance::TokenRevoked,
        Disturbance::PgRestart,
        Disturbance::PodKilled,
        Disturbance::Sigint,
        Disturbance::Sigkill,
    ];

    fn name(self) -> &'static str {
        match self {
            Disturbance::None => "none",
            Disturbance::Burst5xx => "500/503 burst",
            Disturbance::Throttle => "429 Retry-After",
            Disturbance::Conflicts => "409 conflicts 30%",
            Disturbance::DropWatches => "watches dropped",
            Disturbance::LatencySpikes => "2 s latency spikes",
            Disturbance::TokenRevoked => "token revoked (401)",
            Disturbance::PgRestart => "PostgreSQL restart",
            Disturbance::PodKilled => "client pod killed",
            Disturbance::Sigint => "SIGINT",
            Disturbance::Sigkill => "SIGKILL + rerun",
        }
    }

    /// Whether the command must still succeed (the fault is one a careful tool rides out).
    fn must_succeed(self) -> bool {
        matches!(
            self,
            Disturbance::None
                | Disturbance::Burst5xx
                | Disturbance::Throttle
                | Disturbance::Conflicts
                | Disturbance::DropWatches
                | Disturbance::LatencySpikes
                | Disturbance::Sigkill
        )
    }
}

/// The scenarios of the suite: (command, disturbance).
pub fn scenarios() -> Vec<(Target, Disturbance)> {
    use Disturbance::*;
    use Target::*;
    let mut out = Vec::new();
    for (target, list) in [
        (
            Backup,
            &[
                None,
                Burst5xx,
                Throttle,
                DropWatches,
                LatencySpikes,
                TokenRevoked,
                Sigint,
                Sigkill,
            ][..],
        ),
        (Restore, &Disturbance::ALL[..]),
        (
            Undelete,
            &[
                None,
                Burst5xx,
                Throttle,
                LatencySpikes,
                PgRestart,
                PodKilled,
                Sigint,
                Sigkill,
            ][..],
        ),
        (
            Endpoint,
            &[
                None,
                Burst5xx,
                Throttle,
                Conflicts,
                LatencySpikes,
                TokenRevoked,
                Sigint,
                Sigkill,
            ][..],
        ),
        (
            Platform,
            &[
                None,
                Burst5xx,
                Throttle,
                Conflicts,
                DropWatches,
                LatencySpikes,
                Sigint,
                Sigkill,
            ][..],
        ),
        (
            Dbconn,
            &[
                None,
                Burst5xx,
                Throttle,
                LatencySpikes,
                PgRestart,
                PodKilled,
            ][..],
        ),
        (
            Status,
            &[None, Burst5xx, Throttle, LatencySpikes, TokenRevoked][..],
        ),
    ] {
        out.extend(list.iter().map(|d| (target, *d)));
    }
    out
}

/// "command / disturbance", as the table names a scenario.
pub fn scenario_name(target: Target, disturbance: Disturbance) -> String {
    format!("{} / {}", target.name(), disturbance.name())
}

/// One line of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// "command / disturbance".
    pub scenario: String,
    /// Runs made.
    pub runs: u32,
    /// Runs that ended as they must (success where the fault is survivable).
    pub successes: u32,
    /// Runs that broke an invariant of the data (see [`Run::data_lost`]).
    pub data_lost: u32,
    /// Objects of the tool left behind, over all runs.
    pub leftovers: u32,
    /// Fixture secrets seen in stdout/stderr, over all runs.
    pub leaked: u32,
    /// Failed runs whose message does not say what was done and what was not.
    pub unclear: u32,
    /// Runs that should have succeeded and did not (a subset of `runs - successes`).
    pub unexpected_failures: u32,
    /// What went wrong, for the details below the table.
    pub notes: Vec<String>,
}

/// A small seeded generator (SplitMix64): the same seed gives the same faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A PostgreSQL server of the suite's own (it restarts it): `scripts/test-postgres` under
/// the name `faults-postgres`, stopped on drop.
#[derive(Debug)]
pub struct OwnPostgres {
    /// How to reach it.
    pub pg: Pg,
    bin: PathBuf,
    dir: PathBuf,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

fn script(action: &str) -> Command {
    let mut c = Command::new(
        crate::workspace_root()
            .join("scripts")
            .join("test-postgres"),
    );
    c.arg(action)
        .env("ASTRO_TEST_PG_NAME", "faults-postgres")
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null());
    c
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl OwnPostgres {
    /// Starts (or reuses) the suite's server with the fixtures loaded.
    pub fn start() -> Self {
        let out = script("start").output().expect("run scripts/test-postgres");
        assert!(
            out.status.success(),
            "scripts/test-postgres start (faults-postgres) failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(target_dir().join("faults-postgres.env"))
            .expect("faults-postgres.env");
        let vars: BTreeMap<&str, String> = env
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('\'').to_owned()))
            .collect();
        let var = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("{k} in env"));
        let socket = PathBuf::from(var("ASTRO_TEST_PG_SOCKET_DIR"));
        OwnPostgres {
            pg: Pg {
                host: var("ASTRO_TEST_PG_HOST"),
                port: var("ASTRO_TEST_PG_PORT").parse().expect("port"),
                user: var("ASTRO_TEST_PG_USER"),
                password: var("ASTRO_TEST_PG_PASSWORD"),
            },
            bin: PathBuf::from(var("ASTRO_TEST_PG_BIN")),
            dir: socket
                .parent()
                .expect("socket dir in the server dir")
                .to_owned(),
        }
    }

    /// Restarts the server (fast shutdown: open sessions are cut), waiting until it is up.
    pub fn restart(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            Command::new(pg_ctl)
        };
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-m", "fast", "-w", "-t", "60", "restart"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = c.status().expect("run pg_ctl restart");
        assert!(status.success(), "pg_ctl restart failed");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = script("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Kinds whose new objects after a run are leftovers of the tool: (apiVersion, kind).
const TOOL_KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("velero.io/v1", "DownloadRequest"),
    ("velero.io/v1", "ServerStatusRequest"),
];

fn key(o: &Value) -> String {
    format!(
        "{} {}/{}",
        o["kind"].as_str().unwrap_or_default(),
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The objects of [`TOOL_KINDS`] now in the cluster, outside `skip_namespaces`, and not
/// restored by Velero (those are the restore's product, not the tool's leftovers).
fn tool_objects(cluster: &FakeCluster, skip_namespaces: &BTreeSet<String>) -> BTreeSet<String> {
    TOOL_KINDS
        .iter()
        .flat_map(|(api, kind)| cluster.list(api, kind, None))
        .filter(|o| {
            o["metadata"]["labels"]["velero.io/restore-name"].is_null()
                && !skip_namespaces
                    .contains(o["metadata"]["namespace"].as_str().unwrap_or_default())
        })
        .map(|o| key(&o))
        .collect()
}

fn namespaces(cluster: &FakeCluster) -> BTreeSet<String> {
    cluster
        .list("v1", "Namespace", None)
        .iter()
        .map(|n| {
            n["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Secret data by "ns/name", decoded.
fn secrets(cluster: &FakeCluster) -> BTreeMap<String, BTreeMap<String, String>> {
    cluster
        .list("v1", "Secret", None)
        .iter()
        .map(|s| {
            let data = s["data"]
                .as_object()
                .map(|d| {
                    d.iter()
                        .map(|(k, v)| {
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(v.as_str().unwrap_or_default())
                                .unwrap_or_default();
                            (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                format!(
                    "{}/{}",
                    s["metadata"]["namespace"].as_str().unwrap_or_default(),
                    s["metadata"]["name"].as_str().unwrap_or_default()
                ),
                data,
            )
        })
        .collect()
}

fn names(cluster: &FakeCluster, kind: &str) -> BTreeSet<String> {
    cluster
        .list("velero.io/v1", kind, Some("velero"))
        .iter()
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// What a clean run of a command leads to, for judging disturbed runs against it.
#[derive(Debug, Clone, Default)]
struct Reference {
    /// Requests the clean run made (kill points are drawn below this).
    requests: usize,
    /// Secrets after the clean run (endpoint, platform).
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Exit code of the clean run (status: a check may fail on the fixtures).
    code: Option<i32>,
}

/// One fixture world for one run: the cluster, a private Houston copy, a scratch dir.
struct World<'a> {
    target: Target,
    pg: &'a Pg,
    cluster: FakeCluster,
    db: Option<String>,
    dir: tempfile::TempDir,
    before_objects: BTreeSet<String>,
    before_namespaces: BTreeSet<String>,
    before_secrets: BTreeMap<String, BTreeMap<String, String>>,
    before_backups: BTreeSet<String>,
    houston_before: Option<Houston>,
    backup_name: String,
}

/// What the scenarios check of Houston.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Houston {
    /// md5 of every Deployment row except the release's, and of every RoleBinding row.
    others: String,
    /// The release's row without deletedAt/updatedAt.
    row: String,
    /// The release's deletedAt.
    deleted_at: Option<String>,
}

fn houston(pg: &Pg, db: &str) -> Option<Houston> {
    // The server may be restarting: retry briefly.
    for _ in 0..50 {
        let pg2 = pg.clone();
        let db2 = db.to_owned();
        let r = std::thread::spawn(move || {
            pg2.query(
                &db2,
                &format!(
                    r#"SELECT
                     (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM "houston$default"."Deployment" t WHERE "releaseName" <> '{RELEASE}'),
                     (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM "houston$default"."RoleBinding" t),
                     (SELECT md5((to_jsonb(t) - 'deletedAt' - 'updatedAt')::text) FROM "houston$default"."Deployment" t WHERE "releaseName" = '{RELEASE}'),
                     (SELECT "deletedAt"::text FROM "houston$default"."Deployment" WHERE "releaseName" = '{RELEASE}')"#
                ),
            )
        })
        .join();
        if let Ok(rows) = r {
            let row = &rows[0];
            return Some(Houston {
                others: format!("{:?}{:?}", row[0], row[1]),
                row: row[2].clone().unwrap_or_default(),
                deleted_at: row[3].clone(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

impl<'a> World<'a> {
    fn new(target: Target, pg: &'a Pg, tag: &str) -> Self {
        let db = target.uses_houston().then(|| pg.clone_database(HOUSTON));
        // The suite counts leftovers itself, after the rerun and Velero's own expiry of
        // processed requests (what a revoked token cannot delete), so not on drop.
        let mut builder = cluster_builder()
            .without_drop_audit()
            .pg(pg.clone())
            .options(|o| o.velero_step = Some(Duration::from_millis(50)));
        if let Some(db) = &db {
            builder = builder
                .substitute(format!("/{HOUSTON}?"), format!("/{db}?"))
                .pods_only_db();
        }
        let cluster = builder.start();
        let before_namespaces = namespaces(&cluster);
        let houston_before = db.as_deref().and_then(|db| houston(pg, db));
        World {
            target,
            pg,
            before_objects: tool_objects(&cluster, &BTreeSet::new()),
            before_secrets: secrets(&cluster),
            before_backups: names(&cluster, "Backup"),
            before_namespaces,
            houston_before,
            cluster,
            db,
            dir: tempfile::tempdir().expect("temp dir"),
            backup_name: format!("fault-{tag}"),
        }
    }

    fn save_to(&self) -> PathBuf {
        self.dir.path().join("originals.json")
    }

    fn command(&self) -> Command {
        let from_backup = fixture_name("astro-nightly-20261124010000");
        let save_to = self.save_to().display().to_string();
        let (binary, args): (&str, Vec<String>) = match self.target {
            Target::Backup => (
                "kubectl-astro-backup",
                vec![
                    "create".into(),
                    self.backup_name.clone(),
                    "--platform".into(),
                    "--wait".into(),
                ],
            ),
            Target::Restore => (
                "kubectl-astro-restore",
                vec![RELEASE.into(), "--yes".into()],
            ),
            Target::Undelete => (
                "kubectl-astro-restore",
                vec!["undelete".into(), RELEASE.into(), "--yes".into()],
            ),
            Target::Endpoint => (
                "kubectl-astro-restore",
                [
                    "endpoint",
                    "--db-host",
                    NEW_HOST,
                    "--db-port",
                    "5433",
                    "--yes",
                    "--save-to",
                    &save_to,
                ]
                .map(String::from)
                .to_vec(),
            ),
            Target::Platform => (
                "kubectl-astro-restore",
                [
                    "platform",
                    "--from-backup",
                    &from_backup,
                    "--db-host",
                    NEW_HOST,
                    "--db-port",
                    "5433",
                    "--yes",
                    "--save-to",
                    &save_to,
                ]
                .map(String::from)
                .to_vec(),
            ),
            Target::Dbconn => (
                "kubectl-astro-dbconn",
                vec!["-c".into(), r#"select count(*) from "Deployment""#.into()],
            ),
            Target::Status => ("kubectl-astro-status", Vec::new()),
        };
        let mut c = crate::scrubbed_command(bin(binary));
        // After the arguments: the restore CLI reads a leading option as its RELEASE.
        c.args(args)
            .arg("--kubeconfig")
            .arg(self.cluster.kubeconfig_path());
        c
    }

    /// Starts the command with stdout/stderr to files of run `n`.
    fn spawn(&self, n: u32) -> Child {
        let out =
            std::fs::File::create(self.dir.path().join(format!("{n}.out"))).expect("out file");
        let err =
            std::fs::File::create(self.dir.path().join(format!("{n}.err"))).expect("err file");
        self.command()
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the binary")
    }

    fn output(&self, n: u32) -> (String, String) {
        let read = |ext: &str| {
            std::fs::read_to_string(self.dir.path().join(format!("{n}.{ext}"))).unwrap_or_default()
        };
        (read("out"), read("err"))
    }

    fn restores_of_release(&self) -> Vec<Value> {
        let ns = format!("astronomer-{RELEASE}");
        self.cluster
            .list("velero.io/v1", "Restore", Some("velero"))
            .into_iter()
            .filter(|r| {
                r["spec"]["includedNamespaces"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|n| n == ns.as_str()))
            })
            .collect()
    }

    fn restores_of_platform_backup(&self) -> Vec<Value> {
        let backup = fixture_name("astro-nightly-20261124010000");
        self.cluster
            .list("velero.io/v1", "Restore", Some("velero"))
            .into_iter()
            .filter(|r| r["spec"]["backupName"] == backup.as_str())
            .collect()
    }

    /// Broken invariants of the data, whatever the run came to.
    fn data_lost(&self, reference: &Reference) -> Vec<String> {
        let mut lost = Vec::new();
        let backups = names(&self.cluster, "Backup");
        for gone in self.before_backups.difference(&backups) {
            lost.push(format!("Backup {gone} deleted"));
        }
        match self.target {
            Target::Restore | Target::Undelete | Target::Dbconn | Target::Status => {
                let db = self.db.as_deref().expect("houston copy");
                let before = self.houston_before.as_ref().expect("houston before");
                match houston(self.pg, db) {
                    None => lost.push("Houston unreadable after the run".into()),
                    Some(now) => {
                        if now.others != before.others {
                            lost.push("other Houston rows changed".into());
                        }
                        if now.row != before.row {
                            lost.push(format!("{RELEASE} row half-updated"));
                        }
                        let undeleted = now.deleted_at.is_none();
                        if now.deleted_at != before.deleted_at && !undeleted {
                            lost.push(format!(
                                "{RELEASE} deletedAt changed to {:?}",
                                now.deleted_at
                            ));
                        }
                        let read_only = matches!(self.target, Target::Dbconn | Target::Status);
                        if read_only && now != *before {
                            lost.push("a read-only command changed Houston".into());
                        }
                        if self.target == Target::Restore {
                            let restores = self.restores_of_release();
                            if restores.len() > 1 {
                                lost.push(format!("{} Restores created", restores.len()));
                            }
                            let completed =
                                restores.iter().any(|r| r["status"]["phase"] == "Completed");
                            if undeleted && !completed {
                                lost.push(
                                    "undeleted in Houston without a completed Restore".into(),
                                );
                            }
                        }
                    }
                }
            }
            Target::Endpoint | Target::Platform => {
                let now = secrets(&self.cluster);
                let saved: Value = std::fs::read_to_string(self.save_to())
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null);
                for (id, data) in &now {
                    let old = self.before_secrets.get(id);
                    let new = reference.secrets.get(id);
                    if old == Some(data) {
                        continue;
                    }
                    if old.is_none() {
                        continue; // created by the run: judged as a leftover, if the tool's
                    }
                    if new != Some(data) {
                        lost.push(format!("Secret {id} neither old nor new"));
                        continue;
                    }
                    // Changed: the saved originals must allow the undo.
                    let originals = &saved["objects"][format!("Secret/{id}")]["values"];
                    let old = old.expect("checked above");
                    let undoable = data
                        .iter()
                        .filter(|(k, v)| old.get(*k) != Some(*v))
                        .all(|(k, _)| originals[k].as_str() == old.get(k).map(String::as_str));
                    if !undoable {
                        lost.push(format!("Secret {id} changed without its original saved"));
                    }
                }
                if self.target == Target::Platform {
                    let restores = self.restores_of_platform_backup();
                    if restores.len() > 1 {
                        lost.push(format!("{} platform Restores created", restores.len()));
                    }
                }
            }
            Target::Backup => {}
        }
        lost
    }

    /// Whether the run did what it is for (called after a zero exit).
    fn outcome_ok(
        &self,
        code: Option<i32>,
        stdout: &str,
        reference: &Reference,
        rerun: bool,
    ) -> bool {
        match self.target {
            Target::Status => code.is_some() && code == reference.code,
            // A rerun after SIGKILL finds the backup made: refused (3), and that is right.
            Target::Backup if rerun && code == Some(3) => self
                .cluster
                .get("velero.io/v1", "Backup", Some("velero"), &self.backup_name)
                .is_some(),
            _ if code != Some(0) => false,
            Target::Backup => self
                .cluster
                .get("velero.io/v1", "Backup", Some("velero"), &self.backup_name)
                .is_some_and(|b| b["status"]["phase"] == "Completed"),
            Target::Restore | Target::Undelete => self
                .db
                .as_deref()
                .and_then(|db| houston(self.pg, db))
                .is_some_and(|h| h.deleted_at.is_none()),
            Target::Endpoint | Target::Platform => secrets(&self.cluster) == reference.secrets,
            Target::Dbconn => {
                let db = self.db.as_deref().expect("houston copy");
                let count = self
                    .pg
                    .query_one(db, r#"select count(*) from houston$default."Deployment""#);
                count.is_some_and(|c| stdout.lines().any(|l| l.trim() == c))
            }
        }
    }

    /// Objects of the tool created by the run and still there.
    fn leftovers(&self) -> Vec<String> {
        let restored: BTreeSet<String> = namespaces(&self.cluster)
            .difference(&self.before_namespaces)
            .cloned()
            .collect();
        // The backups' resource policy ConfigMap is a standing object, shared by every
        // backup the tool makes (Velero reads it), not a leftover.
        let policies: BTreeSet<String> = self
            .cluster
            .list("velero.io/v1", "Backup", Some("velero"))
            .iter()
            .filter(|b| b["spec"]["resourcePolicy"]["kind"] == "configmap")
            .filter_map(|b| b["spec"]["resourcePolicy"]["name"].as_str())
            .chain([astro::backup::plan::POLICY_CONFIGMAP])
            .map(|name| format!("ConfigMap velero/{name}"))
            .collect();
        tool_objects(&self.cluster, &restored)
            .difference(&self.before_objects)
            .filter(|o| !policies.contains(*o))
            .cloned()
            .collect()
    }
}

impl Drop for World<'_> {
    fn drop(&mut self) {
        if let Some(db) = &self.db {
            self.pg.drop_database(db);
        }
    }
}

/// Phrases by which a failure message says what was done or not done (the binaries'
/// error report says "done before the error: …" for the cluster; the rest for the
/// database and the commands' own words).
const STATE_PHRASES: &[&str] = &[
    "done before the error",
    "nothing was",
    "nothing has",
    "nothing changed",
    "no change",
    "unchanged",
    "not changed",
    "was changed",
    "were changed",
    "was created",
    "were created",
    "not created",
    "was not",
    "were not",
    "keeps running",
    "left in place",
    "still ",
    "already",
    "patched",
    "undeleted",
    "saved",
    "deleted",
    "restored",
    "no restore",
    "not undeleted",
];

/// Whether a failed run's stderr says what was done and what was not.
pub fn says_what_was_done(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    STATE_PHRASES.iter().any(|p| lower.contains(p))
}

fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What Velero's DownloadRequest and ServerStatusRequest controllers do at expiry:
/// processed requests are deleted. A killed run (or one whose token was revoked) cannot
/// delete its own; Velero removes them (after 10 minutes and 1 minute; here at once).
fn velero_garbage_collection(cluster: &FakeCluster) {
    for kind in ["DownloadRequest", "ServerStatusRequest"] {
        for request in cluster.list("velero.io/v1", kind, Some("velero")) {
            if request["status"]["phase"] == "Processed" {
                let name = request["metadata"]["name"].as_str().unwrap_or_default();
                cluster.delete("velero.io/v1", kind, Some("velero"), name);
            }
        }
    }
}

/// Waits until the cluster has seen `n` requests (or the child ended); true when reached.
fn wait_for_requests(cluster: &FakeCluster, child: &mut Child, n: usize) -> bool {
    let deadline = Instant::now() + RUN_LIMIT;
    while cluster.requests().len() < n {
        if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// A running client pod of the tool, once one runs.
fn wait_for_client_pod(cluster: &FakeCluster, child: &mut Child) -> Option<(String, String)> {
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        let pod = cluster.list("v1", "Pod", None).into_iter().find(|p| {
            p["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl-astro"
                && p["status"]["phase"] == "Running"
        });
        if let Some(p) = pod {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            return Some((s(&p["metadata"]["namespace"]), s(&p["metadata"]["name"])));
        }
        if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Everything the suite needs: the seed, its PostgreSQL, and per-command references.
pub struct Suite {
    seed: u64,
    postgres: OwnPostgres,
    references: BTreeMap<Target, Reference>,
}

/// One run's verdict.
#[derive(Debug, Default)]
struct Verdict {
    success: bool,
    must_succeed: bool,
    data_lost: Vec<String>,
    leftovers: Vec<String>,
    leaked: Vec<&'static str>,
    unclear: Vec<String>,
    /// The judged run's exit code and last stderr lines, for a run that did not succeed.
    failure: Option<String>,
}

impl Suite {
    /// Starts the suite's PostgreSQL; `seed` decides every fault point.
    pub fn new(seed: u64) -> Self {
        Suite {
            seed,
            postgres: OwnPostgres::start(),
            references: BTreeMap::new(),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn reference(&mut self, target: Target) -> Reference {
        if let Some(r) = self.references.get(&target) {
            return r.clone();
        }
        let world = World::new(target, &self.postgres.pg, "reference");
        let mut child = world.spawn(0);
        let status = wait_with_limit(&mut child, RUN_LIMIT);
        let reference = Reference {
            requests: world.cluster.requests().len(),
            secrets: secrets(&world.cluster),
            code: status.and_then(|s| s.code()),
        };
        self.references.insert(target, reference.clone());
        reference
    }

    /// Runs one scenario `runs` times and sums the verdicts into a row.
    pub fn run(&mut self, target: Target, disturbance: Disturbance, runs: u32) -> Row {
        let reference = self.reference(target);
        let mut row = Row {
            scenario: scenario_name(target, disturbance),
            ..Row::default()
        };
        for i in 0..runs {
            // One stream per (scenario, run): the same seed gives the same points.
            let mut rng = Rng::new(
                self.seed ^ ((target as u64) << 40) ^ ((disturbance as u64) << 32) ^ u64::from(i),
            );
            let v = self.run_once(target, disturbance, &reference, &mut rng, i);
            row.runs += 1;
            row.successes += u32::from(v.success);
            if v.must_succeed && !v.success {
                row.unexpected_failures += 1;
                let why = v.failure.as_deref().unwrap_or("no output");
                row.notes.push(format!("run {i}: did not succeed: {why}"));
            }
            row.data_lost += u32::from(!v.data_lost.is_empty());
            row.leftovers += v.leftovers.len() as u32;
            row.leaked += v.leaked.len() as u32;
            row.unclear += v.unclear.len() as u32;
            for (what, list) in [
                ("data lost", v.data_lost),
                ("leftover", v.leftovers),
                ("unclear message", v.unclear),
            ] {
                row.notes
                    .extend(list.into_iter().map(|l| format!("run {i}: {what}: {l}")));
            }
            if !v.leaked.is_empty() {
                row.notes.push(format!("run {i}: leaked {:?}", v.leaked));
            }
        }
        row
    }

    fn run_once(
        &self,
        target: Target,
        disturbance: Disturbance,
        reference: &Reference,
        rng: &mut Rng,
        i: u32,
    ) -> Verdict {
        let tag = format!("{}-{i}", (disturbance as u8));
        let world = World::new(target, &self.postgres.pg, &tag);
        let cluster = &world.cluster;
        // A point inside the clean run's requests: faults and signals land mid-command.
        let max_point = (reference.requests * 2 / 3).max(3) as u64;
        let point = rng.range(2, max_point) as usize;
        match disturbance {
            Disturbance::Burst5xx => {}
            Disturbance::Throttle => cluster.inject(Fault::Throttle {
                path_contains: String::new(),
                retry_after_secs: 1,
                times: Some(3),
            }),
            Disturbance::Conflicts => {
                cluster.seed_faults(rng.next());
                cluster.inject(Fault::ConflictRate {
                    fraction: 0.3,
                    kinds: Vec::new(),
                });
            }
            Disturbance::DropWatches => cluster.inject(Fault::DropWatches {
                after_events: None,
                after_ms: Some(1500),
                times: None,
            }),
            Disturbance::LatencySpikes => cluster.inject(Fault::LatencySpikes {
                delay: Duration::from_secs(2),
                every: 6,
                path_contains: String::new(),
                seen: rng.range(0, 5) as u32,
            }),
            _ => {}
        }
        let mut child = world.spawn(0);
        // When the disturbance strikes: at the seeded request, or once a client pod runs.
        let pod = match disturbance {
            Disturbance::PgRestart | Disturbance::PodKilled => {
                wait_for_client_pod(cluster, &mut child)
            }
            _ => None,
        };
        let at_point = matches!(
            disturbance,
            Disturbance::Burst5xx
                | Disturbance::TokenRevoked
                | Disturbance::Sigint
                | Disturbance::Sigkill
        ) && wait_for_requests(cluster, &mut child, point);
        let mut killed = false;
        match (disturbance, pod) {
            (Disturbance::Burst5xx, _) if at_point => {
                for code in [500, 503] {
                    cluster.inject(Fault::Status {
                        method: None,
                        path_contains: String::new(),
                        code,
                        times: Some(4),
                    });
                }
            }
            // Until the rbac work lands a real token revocation: a 401 for every request.
            (Disturbance::TokenRevoked, _) if at_point => cluster.inject(Fault::Status {
                method: None,
                path_contains: String::new(),
                code: 401,
                times: None,
            }),
            (Disturbance::PgRestart, Some(_)) => self.postgres.restart(),
            (Disturbance::PodKilled, Some((ns, name))) => {
                cluster.delete("v1", "Pod", Some(&ns), &name);
            }
            (Disturbance::Sigint, _) if at_point => {
                let _ = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
            }
            (Disturbance::Sigkill, _) if at_point => {
                let _ = child.kill();
                killed = true;
            }
            _ => {}
        }
        let status = wait_with_limit(&mut child, RUN_LIMIT);
        let mut verdict = Verdict {
            must_succeed: disturbance.must_succeed(),
            ..Verdict::default()
        };
        if status.is_none() {
            verdict
                .unclear
                .push("hung: killed after the run limit".into());
        }
        let mut codes = vec![status.and_then(|s| s.code())];
        let revoked_and_failed = disturbance == Disturbance::TokenRevoked && codes[0] != Some(0);
        if killed || revoked_and_failed {
            // Invariants must hold right after the kill, then the rerun (with the token
            // back) must converge and leave nothing behind.
            verdict.data_lost.extend(
                world
                    .data_lost(reference)
                    .into_iter()
                    .map(|l| format!("after the {}: {l}", disturbance.name())),
            );
            cluster.clear_faults();
            velero_garbage_collection(cluster);
            let mut rerun = world.spawn(1);
            codes.push(wait_with_limit(&mut rerun, RUN_LIMIT).and_then(|s| s.code()));
        }
        cluster.clear_faults();
        // A SIGKILL is judged by the rerun; a revoked token by the run it hit.
        let judged_run = if killed { codes.len() - 1 } else { 0 };
        let (stdout, _) = world.output(judged_run as u32);
        verdict.success = world.outcome_ok(codes[judged_run], &stdout, reference, killed);
        if !verdict.success {
            let (out, err) = world.output(judged_run as u32);
            verdict.failure = Some(format!(
                "exit {:?}: {} || stdout: {}",
                codes[judged_run],
                last_lines(&err, 12),
                last_lines(&out, 10)
            ));
        }
        verdict.data_lost.extend(world.data_lost(reference));
        verdict.leftovers = world.leftovers();
        for (n, code) in codes.iter().enumerate() {
            let (out, err) = world.output(n as u32);
            verdict.leaked.extend(leaked_secrets(&out));
            verdict.leaked.extend(leaked_secrets(&err));
            let killed_here = killed && n == 0;
            let status_report = target == Target::Status && *code == reference.code;
            let failed = *code != Some(0) && !killed_here && !status_report;
            if failed && !says_what_was_done(&err) {
                let tail = last_lines(&err, 3);
                verdict
                    .unclear
                    .push(format!("run {n} exit {code:?}: {tail}"));
            }
        }
        verdict
    }
}

/// The last `n` non-blank lines of `text`, joined by " | ".
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The table, one row per scenario, and the totals.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let width = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    out.push_str(&format!(
        "{:width$}  {:>4}  {:>9}  {:>9}  {:>9}  {:>14}  {:>7}\n",
        "scenario", "runs", "successes", "data lost", "leftovers", "secrets leaked", "unclear"
    ));
    let mut total = Row {
        scenario: "total".into(),
        ..Row::default()
    };
    for r in rows {
        total.runs += r.runs;
        total.successes += r.successes;
        total.data_lost += r.data_lost;
        total.leftovers += r.leftovers;
        total.leaked += r.leaked;
        total.unclear += r.unclear;
    }
    for r in rows.iter().chain(std::iter::once(&total)) {
        out.push_str(&format!(
            "{:width$}  {:>4}  {:>9}  {:>9}  {:>9}  {:>14}  {:>7}\n",
            r.scenario, r.runs, r.successes, r.data_lost, r.leftovers, r.leaked, r.unclear
        ));
    }
    out
}

/// Whether the rows pass: no data lost, no leftovers, no leaks, no unclear failure
/// message, and every run that had to succeed did.
pub fn passed(rows: &[Row]) -> bool {
    rows.iter().all(|r| {
        r.data_lost == 0
            && r.leftovers == 0
            && r.leaked == 0
            && r.unclear == 0
            && r.unexpected_failures == 0
    })
}

/// A default seed from the clock (printed, so a run can be repeated with `--seed`).
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_points() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..5).map(|_| a.range(2, 40)).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.range(2, 40)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (2..=40).contains(x)));
        let mut c = Rng::new(43);
        assert_ne!(xs, (0..5).map(|_| c.range(2, 40)).collect::<Vec<_>>());
    }

    #[test]
    fn failure_messages_must_state_what_happened() {
        assert!(says_what_was_done(
            "error: patch secret a/b: 401 Unauthorized\nnothing was patched"
        ));
        assert!(!says_what_was_done(
            "error: get secret a/b: 401 Unauthorized"
        ));
    }
}
