//! Audits any e2e test can run on a command: fixture secrets in what it prints, in the
//! command lines and environments of its processes and of the programs it starts, in
//! the objects it writes through the API; and the objects it leaves behind.
//!
//! - [`run_audited`] runs a command with every helper it may start (`kubectl`, `psql`,
//!   `pg_dump`, `pg_restore`) behind a recording shim on `PATH` (so no start is missed,
//!   however short), and samples `/proc` every few milliseconds for the command's
//!   process tree (`cmdline` and `environ`) and for the fake kubelet's processes of this
//!   cluster's pods (`cmdline` only: their env holds what `secretKeyRef` resolved).
//! - [`object_leaks`]: every object written through the API except Secrets must hold no
//!   fixture secret (a Pod's command, args and literal env values included).
//! - [`leftovers`]: Pods, Secrets, ConfigMaps, DownloadRequests and ServerStatusRequests
//!   created through the API that still exist. The harness checks it whenever a fixture
//!   cluster is dropped (see [`crate::ClusterBuilder::start`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fake_cluster::FakeCluster;
use serde_json::Value;

use crate::leaked_secrets;

/// The helpers the tool (or kubectl's plugin dispatch) may start.
pub const SHIMMED: &[&str] = &["kubectl", "psql", "pg_dump", "pg_restore"];

/// Kinds the tool creates for the length of a run (never its product).
pub const TEMPORARY_KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("velero.io/v1", "DownloadRequest"),
    ("velero.io/v1", "ServerStatusRequest"),
];

/// What an audited run printed and every place a fixture secret turned up.
#[derive(Debug)]
pub struct Audited {
    /// The command's exit status, stdout and stderr.
    pub output: Output,
    /// One line per leak: where, which secret (empty when clean).
    pub leaks: Vec<String>,
    /// The helper starts the shims saw (`program arg…`), in order.
    pub started: Vec<String>,
    /// How many `/proc` samples were taken while the command ran.
    pub samples: usize,
}

impl Audited {
    /// Panics listing every leak, with the command's output.
    pub fn assert_clean(&self) {
        assert!(
            self.leaks.is_empty(),
            "fixture secrets leaked:\n{}\n{}",
            self.leaks.join("\n"),
            crate::output_text(&self.output)
        );
    }
}

/// Recording wrappers for [`SHIMMED`] programs, first on `PATH`.
struct Shims {
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Shims {
    fn new(path: &std::ffi::OsStr) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("astro-audit-shims.")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("starts.log");
        for program in SHIMMED {
            let Some(real) = std::env::split_paths(path)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
            else {
                continue;
            };
            // argv NUL-separated, then the environment, then a record separator.
            let script = format!(
                "#!/bin/sh\n{{ printf 'argv\\0%s\\0' \"$0\"; for a in \"$@\"; do printf '%s\\0' \"$a\"; done; \
                 printf 'env\\0'; env -0; printf 'end\\0'; }} >> '{log}'\nexec '{real}' \"$@\"\n",
                log = log.display(),
                real = real.display()
            );
            let shim = dir.path().join(program);
            std::fs::write(&shim, script).expect("write shim");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))
                .expect("chmod shim");
        }
        Shims { dir, log }
    }

    /// `(argv, environ)` of every start.
    fn starts(&self) -> Vec<(Vec<String>, Vec<String>)> {
        let raw = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        let mut out = Vec::new();
        let mut fields = text.split('\0');
        while let Some(tag) = fields.next() {
            if tag != "argv" {
                continue;
            }
            let argv: Vec<String> = fields
                .by_ref()
                .take_while(|f| *f != "env")
                .map(str::to_owned)
                .collect();
            let env: Vec<String> = fields
                .by_ref()
                .take_while(|f| *f != "end")
                .map(str::to_owned)
                .collect();
            out.push((argv, env));
        }
        out
    }
}

/// One process as `/proc` shows it.
struct Proc {
    pid: u32,
    ppid: u32,
    cmdline: String,
}

fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        out.push(Proc { pid, ppid, cmdline });
    }
    out
}

/// `pid` and everything below it.
fn tree(procs: &[Proc], root: u32) -> BTreeSet<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if out.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    out
}

fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .split('\0')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the Pods created through `cluster`'s API.
pub fn created_pod_names(cluster: &FakeCluster) -> BTreeSet<String> {
    cluster
        .api_writes()
        .into_iter()
        .filter(|w| w.method == "POST" && w.object["kind"] == "Pod")
        .filter_map(|w| w.object["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Samples `/proc` until `done`: leaks in the tree of `root`, and in the command lines
/// of the kubelet's processes for `cluster`'s pods (found by their `HOSTNAME`).
fn sample(cluster: &FakeCluster, root: u32, done: &AtomicBool) -> (BTreeSet<String>, usize) {
    let me = std::process::id();
    let mut leaks = BTreeSet::new();
    let mut pods = BTreeSet::new();
    let mut foreign = BTreeSet::new();
    let mut samples = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        let procs = processes();
        let tool = tree(&procs, root);
        let ours = tree(&procs, me);
        for p in procs.iter().filter(|p| ours.contains(&p.pid)) {
            let report = |leaks: &mut BTreeSet<String>, what: &str, text: &str| {
                for s in leaked_secrets(text) {
                    leaks.insert(format!("{s:?} in {what} of pid {}: {}", p.pid, p.cmdline));
                }
            };
            if tool.contains(&p.pid) {
                report(&mut leaks, "/proc/cmdline", &p.cmdline);
                report(&mut leaks, "/proc/environ", &environ(p.pid).join("\n"));
                continue;
            }
            if p.pid == me || foreign.contains(&p.pid) {
                continue;
            }
            let Some(host) = environ(p.pid)
                .into_iter()
                .find_map(|v| v.strip_prefix("HOSTNAME=").map(str::to_owned))
            else {
                continue;
            };
            if !pods.contains(&host) {
                pods = created_pod_names(cluster);
            }
            if pods.contains(&host) {
                report(
                    &mut leaks,
                    &format!("/proc/cmdline (pod {host})"),
                    &p.cmdline,
                );
            } else {
                foreign.insert(p.pid);
            }
        }
        samples += 1;
        if finished {
            return (leaks, samples);
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// Runs `command` (e.g. from [`crate::command`]) against `cluster`, auditing as the
/// module says; also scans stdout and stderr.
pub fn run_audited(command: Command, cluster: &FakeCluster) -> Audited {
    run_audited_with(command, cluster, |_| {})
}

/// [`run_audited`], calling `during` with the child's pid once it runs (e.g. to send it
/// a signal once a pod exists); the audit goes on until the command has exited.
pub fn run_audited_with(
    mut command: Command,
    cluster: &FakeCluster,
    during: impl FnOnce(u32),
) -> Audited {
    let path = command
        .get_envs()
        .find(|(k, _)| *k == "PATH")
        .and_then(|(_, v)| v.map(std::ffi::OsStr::to_os_string))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let shims = Shims::new(&path);
    let mut paths = vec![shims.dir.path().to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    command
        .env("PATH", std::env::join_paths(paths).expect("PATH"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let pid = child.id();
    let done = AtomicBool::new(false);
    let (output, (mut leaks, samples)) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample(cluster, pid, &done));
        // A failing `during` must stop the command and the sampler before it fails the test.
        let during = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| during(pid)));
        if during.is_err() {
            let _ = child.kill();
        }
        let output = child.wait_with_output();
        done.store(true, Ordering::Release);
        let sampled = sampler.join().expect("sampler thread");
        if let Err(panic) = during {
            std::panic::resume_unwind(panic);
        }
        (output.expect("command output"), sampled)
    });
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        for s in leaked_secrets(&String::from_utf8_lossy(bytes)) {
            leaks.insert(format!("{s:?} in {stream}"));
        }
    }
    let mut started = Vec::new();
    for (argv, env) in shims.starts() {
        let line = argv.join(" ");
        for s in leaked_secrets(&line) {
            leaks.insert(format!("{s:?} in the arguments of {line}"));
        }
        for s in leaked_secrets(&env.join("\n")) {
            leaks.insert(format!("{s:?} in the environment of {line}"));
        }
        started.push(line);
    }
    leaks.extend(object_leaks(cluster));
    Audited {
        output,
        leaks: leaks.into_iter().collect(),
        started,
        samples,
    }
}

fn describe(object: &Value) -> String {
    let m = &object["metadata"];
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        m["namespace"].as_str().unwrap_or("-"),
        m["name"].as_str().unwrap_or("?")
    )
}

/// Fixture secrets in objects written through `cluster`'s API, Secrets aside (a Pod's
/// env may name a Secret through `secretKeyRef`, never hold a value).
pub fn object_leaks(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .api_writes()
        .iter()
        .filter(|w| w.object["kind"] != "Secret")
        .flat_map(|w| {
            let text = w.object.to_string();
            leaked_secrets(&text)
                .into_iter()
                .map(|s| format!("{s:?} in {} {}", w.method, describe(&w.object)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// ConfigMaps a Backup or Schedule names as its resource policy: the product of
/// `backup create` (Velero reads them at backup time), not a leftover.
fn resource_policies(cluster: &FakeCluster) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    // The tool's own policy is a standing object, made once and shared by every later
    // backup, even when the run that wrote it was stopped before its Backup existed.
    for ns in cluster.list("v1", "Namespace", None) {
        let ns = ns["metadata"]["name"].as_str().unwrap_or("").to_owned();
        out.insert((ns, astro::backup::plan::POLICY_CONFIGMAP.to_owned()));
    }
    for kind in ["Backup", "Schedule"] {
        for o in cluster.list("velero.io/v1", kind, None) {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
            for spec in [&o["spec"], &o["spec"]["template"]] {
                if let Some(name) = spec["resourcePolicy"]["name"].as_str() {
                    out.insert((ns.clone(), name.to_owned()));
                }
            }
        }
    }
    out
}

/// Objects of [`TEMPORARY_KINDS`] created through `cluster`'s API that still exist
/// (Redis volume policies that Backups reference aside), as `Kind ns/name`.
pub fn leftovers(cluster: &FakeCluster) -> Vec<String> {
    let created: BTreeSet<String> = cluster
        .api_writes()
        .into_iter()
        .filter(|w| w.method == "POST")
        .filter_map(|w| w.object["metadata"]["uid"].as_str().map(str::to_owned))
        .collect();
    let policies = resource_policies(cluster);
    let mut out = Vec::new();
    for (api_version, kind) in TEMPORARY_KINDS {
        for o in cluster.list(api_version, kind, None) {
            let uid = o["metadata"]["uid"].as_str().unwrap_or("");
            let key = (
                o["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
                o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            );
            if created.contains(uid) && !(*kind == "ConfigMap" && policies.contains(&key)) {
                out.push(describe(&o));
            }
        }
    }
    out
}

/// Waits up to `timeout` for [`leftovers`] to be empty (deletions of a command that was
/// just stopped may still be in flight); returns what is left.
pub fn leftovers_after(cluster: &FakeCluster, timeout: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = leftovers(cluster);
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `cluster` holds a Pod created through its API whose name starts with
/// `prefix`, and returns its name (panics after `timeout`).
pub fn wait_for_pod(cluster: &FakeCluster, prefix: &str, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let names = created_pod_names(cluster);
        if let Some(name) = cluster
            .list("v1", "Pod", None)
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .find(|n| n.starts_with(prefix) && names.contains(*n))
        {
            return name.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pod {prefix}* within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (e.g. `"INT"`, `"KILL"`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}
