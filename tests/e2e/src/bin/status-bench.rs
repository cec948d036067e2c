//! Benchmark of `kubectl astro status` on a big platform with injected API latency:
//! D deployment namespaces (default 500) and B backups (default 2,000), each backup of
//! one of 50 team shards (its `includedNamespaces` lists 1/50 of the namespaces), plus
//! one nightly of everything. Prints requests made, resource-list downloads, wall time,
//! and the bound requests × latency ÷ concurrency. Houston is not reachable here (its
//! checks are "cannot tell"); the Velero side is what scales.
//!
//! `cargo run -p e2e-tests --bin status-bench -- [--deployments D] [--backups B] [--latency-ms MS] [--concurrency C]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_cluster::{FakeCluster, Fault, Options};
use serde_json::{Value, json};

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

const SHARDS: u64 = 50;

fn main() {
    let deployments = arg("--deployments", 500).max(1);
    let backups = arg("--backups", 2000).max(2);
    let latency = Duration::from_millis(arg("--latency-ms", 20));
    let concurrency = arg("--concurrency", 8).max(1);
    let bin = e2e_tests::bin("kubectl-astro-status");

    let dir = tempfile::tempdir().expect("temp dir");
    let objects = e2e_tests::render_fixtures(&[], &[]);
    let ns = |i: u64| format!("astronomer-bench-{i:04}");
    let mut platform: Vec<Value> = Vec::new();
    for i in 0..deployments {
        platform.push(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns(i),
            "labels": {"platform-release": "astronomer", "platform": "astronomer"}}}),
        );
        platform.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "airflow", "namespace": ns(i)}, "data": {"x": "y"}}));
    }
    let now = jiff::Timestamp::now();
    let at =
        |i: u64| (now - jiff::SignedDuration::from_mins((backups - i) as i64 * 10)).to_string();
    let mut extra: Vec<Value> = (0..backups - 1)
        .map(|i| {
            let shard = i % SHARDS;
            let included: Vec<String> = (0..deployments)
                .filter(|d| d % SHARDS == shard)
                .map(ns)
                .collect();
            json!({"apiVersion": "velero.io/v1", "kind": "Backup",
                "metadata": {"name": format!("team-{i:05}"), "namespace": "velero"},
                "spec": {"includedNamespaces": included, "storageLocation": "default"},
                "status": {"phase": "Completed", "startTimestamp": at(i)}})
        })
        .collect();
    extra.push(json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "platform-nightly", "namespace": "velero"},
        "spec": {"includedNamespaces": ["astronomer"], "storageLocation": "default"},
        "status": {"phase": "Completed", "startTimestamp": at(backups - 1)}}));
    e2e_tests::write_manifests(&objects, dir.path());
    extra.extend(platform);
    e2e_tests::write_manifest_chunks(&extra, dir.path(), "b");
    let cluster = FakeCluster::start(Options {
        manifest_dirs: vec![dir.path().to_path_buf()],
        crd_dir: Some(e2e_tests::velero_crd_dir()),
        simulate_velero: true,
        velero_step: Some(Duration::from_millis(20)),
        ..Options::default()
    })
    .expect("fake cluster");
    cluster.clear_requests();
    cluster.inject(Fault::Latency(latency));

    let start = Instant::now();
    let out = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args([
            "-o",
            "json",
            "--local",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run status");
    let wall = start.elapsed();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}\n{}", String::from_utf8_lossy(&out.stderr));
    });
    let requests = cluster.requests().len();
    let downloads = report["stats"]["downloads"].as_u64().unwrap_or(0);
    let bound = latency.as_secs_f64() * requests as f64 / concurrency as f64;
    println!(
        "status-bench: {deployments} deployment namespaces, {backups} backups, latency {} ms, concurrency {concurrency}",
        latency.as_millis()
    );
    println!("  exit code:            {:?}", out.status.code());
    println!("  API requests:         {requests}");
    println!("  resource-list downloads: {downloads} (one per backup at most)");
    println!("  namespaces checked:   {}", report["stats"]["namespaces"]);
    println!("  wall time:            {:.2} s", wall.as_secs_f64());
    println!("  bound (requests x latency / concurrency): {bound:.2} s");
    drop::<FakeCluster>(cluster);
}
