//! `CMD --dry-run -o yaml|json | kubectl create --dry-run=client -f -`: every command that
//! creates or patches objects prints a stream the real kubectl accepts, through the fake
//! cluster's kubeconfig (kubectl maps the kinds with the server's discovery and fetches
//! its OpenAPI documents, as against a real API server).
//!
//! No `--validate=false` is needed. kubectl asks for `/openapi/v3` to learn whether the
//! server validates fields itself; a real API server does (it serves v3), and kubectl then
//! skips client-side schema validation, which `--dry-run=client` never sends to the server
//! either. The fake serves no v3 and an empty v2 document, so kubectl has no schema to
//! check against: the same outcome. What kubectl does check is real: the stream parses,
//! every object has apiVersion, kind and a name, and every kind maps to a resource
//! through the server's discovery (so the Velero kinds must be served as CRDs).

use std::io::Write;
use std::process::{Command, Stdio};

use e2e_tests::{FakeCluster, bin, fixture_name};
use serde_json::Value;

use e2e_tests::output_text as text;

/// The objects of a stream as kubectl reads it: YAML documents, or a `v1 List` in JSON.
fn objects(stream: &str, json: bool) -> Vec<Value> {
    if json {
        let list: Value = serde_json::from_str(stream).unwrap_or_else(|e| panic!("{e}: {stream}"));
        assert_eq!(list["apiVersion"], "v1", "{stream}");
        assert_eq!(list["kind"], "List", "{stream}");
        list["items"].as_array().cloned().unwrap_or_default()
    } else {
        e2e_tests::parse_yaml_docs(stream).unwrap_or_else(|e| panic!("{e}: {stream}"))
    }
}

/// `kubectl create --dry-run=client -f - -o name` on `stream`: the `kind/name` it accepted.
fn kubectl_create(cluster: &FakeCluster, stream: &[u8]) -> Vec<String> {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["create", "--dry-run=client", "-f", "-", "-o", "name"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    child.stdin.take().unwrap().write_all(stream).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl create --dry-run=client rejected the stream:\n{}\n--- stream\n{}",
        text(&out),
        String::from_utf8_lossy(stream)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs `binary args… --dry-run -o FORMAT` for both formats and pipes stdout into kubectl;
/// checks that kubectl accepted exactly the objects of the stream.
fn accepted(cluster: &FakeCluster, binary: &str, args: &[&str]) -> Vec<Value> {
    let mut seen = Vec::new();
    for format in ["yaml", "json"] {
        let out = e2e_tests::run(
            bin(binary),
            args.iter().copied().chain(["--dry-run", "-o", format]),
            cluster,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{binary} {args:?} -o {format}: {}",
            text(&out)
        );
        e2e_tests::assert_no_secrets(&out);
        let stream = String::from_utf8_lossy(&out.stdout).into_owned();
        let objects = objects(&stream, format == "json");
        assert!(
            !objects.is_empty(),
            "{binary} {args:?}: no objects: {}",
            text(&out)
        );
        let names = kubectl_create(cluster, &out.stdout);
        let expected: Vec<String> = objects
            .iter()
            .map(|o| {
                let api_version = o["apiVersion"].as_str().unwrap_or_default();
                let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                let kind = o["kind"].as_str().unwrap_or_default().to_lowercase();
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                if group.is_empty() {
                    format!("{kind}/{name}")
                } else {
                    format!("{kind}.{group}/{name}")
                }
            })
            .collect();
        assert_eq!(names, expected, "{binary} {args:?} -o {format}:\n{stream}");
        // No cluster state changes: the command printed, kubectl created client-side only.
        // Transient helpers come and go: the relay pod (and its Secret) that reads Houston,
        // the DownloadRequests that read a backup's resource list; the permission
        // pre-flight's SelfSubjectAccessReviews are answered, never stored.
        let transient = [
            "/pods",
            "/downloadrequests",
            "/astro-dbrelay-",
            "/selfsubjectaccessreviews",
        ];
        let writes: Vec<String> = cluster
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && !transient.iter().any(|t| r.path.contains(t)))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(writes.is_empty(), "{binary} {args:?} wrote: {writes:?}");
        seen = objects;
    }
    seen
}

fn kinds(objects: &[Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn restore_release() {
    let cluster = e2e_tests::cluster_builder().pods_only_db().start();
    let objects = accepted(
        &cluster,
        "kubectl-astro-restore",
        &["celestial-zenith-1234"],
    );
    assert_eq!(kinds(&objects), ["Restore"]);
}

#[test]
fn restore_platform() {
    let cluster = e2e_tests::cluster_builder().without_pg().start();
    let backup = fixture_name("astro-nightly-20261124010000");
    let objects = accepted(
        &cluster,
        "kubectl-astro-restore",
        &["platform", "--from-backup", &backup],
    );
    assert_eq!(kinds(&objects), ["BackupStorageLocation", "Restore"]);
}

#[test]
fn restore_endpoint() {
    let cluster = e2e_tests::cluster_builder().without_pg().start();
    let objects = accepted(
        &cluster,
        "kubectl-astro-restore",
        &[
            "endpoint",
            "--db-host",
            "astro-dr.c9x8y7z6.us-west-2.rds.amazonaws.com",
        ],
    );
    assert!(kinds(&objects).contains(&"Secret"), "{objects:?}");
}

#[test]
fn backup_create() {
    let cluster = e2e_tests::cluster_builder().without_pg().start();
    let objects = accepted(&cluster, "kubectl-astro-backup", &["create"]);
    assert!(kinds(&objects).contains(&"Backup"), "{objects:?}");
}

#[test]
fn backup_schedule_create() {
    let cluster = e2e_tests::cluster_builder().without_pg().start();
    let objects = accepted(
        &cluster,
        "kubectl-astro-backup",
        &[
            "schedule",
            "create",
            "dr-nightly",
            "--schedule",
            "0 1 * * *",
        ],
    );
    assert!(kinds(&objects).contains(&"Schedule"), "{objects:?}");
}

#[test]
fn dbconn_command() {
    let cluster = e2e_tests::cluster_builder().pods_only_db().start();
    let objects = accepted(&cluster, "kubectl-astro-dbconn", &["-c", "select 1"]);
    assert_eq!(kinds(&objects), ["Pod", "Secret"]);
}
