//! Benchmark (not a test): `kubectl astro backup list` against a fake cluster holding
//! 10,000 Backups. Prints the requests made and the peak RSS of the plugin process
//! (`/usr/bin/time -v`), checks that every list request pages with `limit` ≤ 500, and
//! reports against the 64 MB target.
//!
//! `cargo build --workspace && target/debug/bench-backup-list [COUNT]`
//! (build with `--release` and run `target/release/bench-backup-list` to measure the
//! release binary).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use fake_cluster::{FakeCluster, Options};
use serde_json::json;

const TARGET_MB: f64 = 64.0;
const MAX_LIMIT: usize = 500;

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let path = exe.with_file_name(name);
    assert!(
        path.is_file(),
        "{} not found: build it first (cargo build --workspace)",
        path.display()
    );
    path
}

fn backup(i: usize) -> serde_json::Value {
    let day = 1 + i % 28;
    json!({
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {
            "name": format!("astro-nightly-202611{day:02}{:06}", i % 1_000_000),
            "namespace": "velero",
            "labels": {"velero.io/schedule-name": "astro-nightly", "velero.io/storage-location": "default"},
            "annotations": {"velero.io/source-cluster-k8s-gitversion": "v1.30.4", "velero.io/resource-timeout": "10m0s"}
        },
        "spec": {
            "includedNamespaces": ["astronomer", "astronomer-weightless-meteor-5042", "astronomer-traditional-precession-8767"],
            "storageLocation": "default",
            "ttl": "720h0m0s",
            "csiSnapshotTimeout": "10m0s",
            "itemOperationTimeout": "4h0m0s",
            "resourcePolicy": {"kind": "configmap", "name": "astro-backup-volume-policy"},
            "excludedResources": ["volumesnapshots.snapshot.storage.k8s.io", "volumesnapshotcontents.snapshot.storage.k8s.io"],
            "volumeSnapshotLocations": ["default"]
        },
        "status": {
            "phase": if i % 50 == 0 { "PartiallyFailed" } else { "Completed" },
            "startTimestamp": format!("2026-11-{day:02}T01:00:00Z"),
            "completionTimestamp": format!("2026-11-{day:02}T01:07:00Z"),
            "expiration": format!("2026-12-{day:02}T01:00:00Z"),
            "formatVersion": "1.1.0",
            "version": 1,
            "errors": if i % 50 == 0 { 1 } else { 0 },
            "warnings": i % 3,
            "progress": {"totalItems": 1800 + i % 100, "itemsBackedUp": 1800 + i % 100}
        }
    })
}

fn main() -> ExitCode {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let plugin = sibling("kubectl-astro-backup");
    let cluster = FakeCluster::start(Options::default()).expect("start fake cluster");
    cluster.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}));
    let started = Instant::now();
    for i in 0..count {
        cluster.apply(backup(i));
    }
    eprintln!(
        "loaded {count} Backups in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    cluster.clear_requests();

    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(&plugin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .arg("list")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time -v kubectl-astro-backup list (apt-get install time)");
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    let peak_kb: f64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .expect("/usr/bin/time -v reports the maximum resident set size");
    let peak_mb = peak_kb / 1024.0;

    let requests = cluster.requests();
    let lists: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/backups") && !r.watch)
        .collect();
    let limits: Vec<Option<usize>> = lists
        .iter()
        .map(|r| {
            r.query
                .split('&')
                .find_map(|kv| kv.strip_prefix("limit="))
                .and_then(|v| v.parse().ok())
        })
        .collect();
    let paged = !limits.is_empty() && limits.iter().all(|l| l.is_some_and(|l| l <= MAX_LIMIT));

    println!("backup list benchmark ({})", plugin.display());
    println!("  backups in cluster:    {count}");
    println!("  rows printed:          {rows}");
    println!("  exit status:           {}", out.status);
    println!("  wall time:             {:.2}s", wall.as_secs_f64());
    println!(
        "  requests made:         {} ({} Backup list pages)",
        requests.len(),
        lists.len()
    );
    for r in &requests {
        println!("    {} {} {} -> {}", r.method, r.path, r.query, r.status);
    }
    println!(
        "  paging:                limit per page {:?} (max allowed {MAX_LIMIT}): {}",
        limits.iter().flatten().max(),
        if paged { "ok" } else { "NOT PAGED" }
    );
    println!(
        "  peak RSS:              {peak_mb:.1} MB (target < {TARGET_MB} MB): {}",
        if peak_mb < TARGET_MB {
            "ok"
        } else {
            "OVER TARGET"
        }
    );
    if out.status.success() && rows == count && paged && peak_mb < TARGET_MB {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
