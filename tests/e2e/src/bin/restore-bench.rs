//! Benchmark of `kubectl astro restore`, in two parts, with injected API latency:
//! 1. the backup choice: requests made and wall time from process start to the Restore
//!    being created, against a fake cluster holding N backups (default 2,000; the newest
//!    three do not hold the namespace: one ruled out by its spec, two by their resource
//!    lists), plus `--misses K` newer backups that name the namespace in
//!    `includedNamespaces` but whose resource lists lack it (a schedule made while the
//!    deployment existed): each costs one DownloadRequest more;
//! 2. Houston through the cluster (needs `ASTRO_TEST_PG_*`, e.g. under scripts/test's
//!    PostgreSQL): `restore undelete --dry-run` against a database only pods reach, i.e.
//!    one relay pod's lifecycle (create, watch until Running, exec, delete) and the reads.
//!
//! `cargo run -p e2e-tests --bin restore-bench -- [--backups N] [--latency-ms MS] [--misses K]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_cluster::{FakeCluster, Fault, Options};
use serde_json::{Value, json};

const NS: &str = "astronomer-bench-restore-0001";
const RELEASE: &str = "bench-restore-0001";

fn backup(name: &str, started: &str, included: &[&str]) -> Value {
    json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero"},
        "spec": {"includedNamespaces": included, "storageLocation": "default"},
        "status": {"phase": "Completed", "startTimestamp": started}
    })
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn main() {
    let backups = arg("--backups", 2000).max(4);
    let misses = arg("--misses", 0);
    let latency = Duration::from_millis(arg("--latency-ms", 20));
    let bin = e2e_tests::bin("kubectl-astro-restore");

    // State: the fixture platform (its BSL `default`), the namespace (so backups taken
    // while it existed hold it), and N-3 backups; the newest three are added later.
    let dir = tempfile::tempdir().expect("temp dir");
    let base = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 90);
    let at = |i: u64| (base + jiff::SignedDuration::from_mins(i as i64)).to_string();
    let mut objects = e2e_tests::render_fixtures(&[], &[]);
    objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    // A workload, so the restored namespace passes the "brought something back" check.
    objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "scheduler", "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "s"}},
                 "template": {"metadata": {"labels": {"app": "s"}},
                              "spec": {"containers": [{"name": "s", "image": "airflow"}]}}}}));
    e2e_tests::write_manifests(&objects, dir.path());
    let older: Vec<Value> = (0..backups - 4)
        .map(|i| {
            let inc = if i % 2 == 0 { "astronomer" } else { NS };
            backup(&format!("bench-{i:05}"), &at(i), &[inc])
        })
        .chain(std::iter::once(backup(
            "bench-all-hit",
            &at(backups - 4),
            &["*"],
        )))
        .collect();
    e2e_tests::write_manifest_chunks(&older, dir.path(), "b");
    let cluster = FakeCluster::start(Options {
        manifest_dirs: vec![dir.path().to_path_buf()],
        crd_dir: Some(e2e_tests::velero_crd_dir()),
        simulate_velero: true,
        velero_step: Some(Duration::from_millis(20)),
        ..Options::default()
    })
    .expect("fake cluster");
    cluster.apply(backup("bench-other", &at(backups - 3), &["astronomer"]));
    cluster.apply(backup(
        "bench-glob-miss",
        &at(backups - 2),
        &["astronomer-*"],
    ));
    cluster.apply(backup("bench-all-miss", &at(backups - 1), &["*"]));
    for k in 0..misses {
        cluster.apply(backup(
            &format!("bench-named-miss-{k:03}"),
            &at(backups + k),
            &["astronomer", NS],
        ));
    }
    cluster.delete("v1", "Namespace", None, NS);
    cluster.inject(Fault::Latency(latency));
    cluster.clear_requests();

    let start = Instant::now();
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args([RELEASE, "--no-undelete", "--namespace", NS, "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl-astro-restore");
    let created = loop {
        if !cluster
            .list("velero.io/v1", "Restore", Some("velero"))
            .is_empty()
        {
            break start.elapsed();
        }
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "restore exited {status} before creating a Restore:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let requests = cluster.requests();
    let status = child.wait().expect("wait");
    let total = start.elapsed();
    let until_create = requests
        .iter()
        .position(|r| r.method == "POST" && r.path.ends_with("/restores"))
        .map_or(requests.len(), |i| i + 1);
    let before = &requests[..until_create];
    let pages = before
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/backups") && !r.watch)
        .count();
    let downloads = before
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/downloadrequests"))
        .count();
    let watches = before.iter().filter(|r| r.watch).count();
    println!("== backup choice");
    println!("backups in cluster:              {}", backups + misses);
    println!("newest backups naming the namespace without holding it: {misses}");
    println!(
        "injected latency per request:    {} ms",
        latency.as_millis()
    );
    println!("requests until Restore created:  {until_create}");
    println!("  backup list pages (limit 500): {pages}");
    println!("  DownloadRequests created:      {downloads}");
    println!("  watches opened:                {watches}");
    println!(
        "serial latency bound:            {} ms (requests x latency)",
        until_create as u128 * latency.as_millis()
    );
    println!(
        "wall time to Restore created:    {} ms",
        created.as_millis()
    );
    println!(
        "wall time to restore finished:   {} ms (exit {status})",
        total.as_millis()
    );
    houston_through_the_cluster(&bin, latency);
}

/// Part 2: `restore undelete --dry-run` with Houston reachable only from pods.
fn houston_through_the_cluster(bin: &std::path::Path, latency: Duration) {
    println!("== Houston through the cluster");
    if e2e_tests::try_pg().is_none() {
        println!("skipped: ASTRO_TEST_PG_* unset (run under scripts/test-postgres)");
        return;
    }
    let cluster = e2e_tests::cluster_builder().pods_only_db().start();
    cluster.inject(Fault::Latency(latency));
    cluster.clear_requests();
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["undelete", "celestial-zenith-1234", "--dry-run"])
        .output()
        .expect("run kubectl-astro-restore undelete");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "undelete --dry-run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = cluster.requests();
    let pod_requests = requests.iter().filter(|r| r.path.contains("/pods")).count();
    println!("requests in all:                 {}", requests.len());
    println!("  relay pod lifecycle (create, watch, exec, delete): {pod_requests}");
    println!(
        "serial latency bound:            {} ms (requests x latency)",
        requests.len() as u128 * latency.as_millis()
    );
    println!("wall time (reads through the pod): {} ms", wall.as_millis());
}
