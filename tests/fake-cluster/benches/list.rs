//! Prints how fast the fake API server stores, lists (paginated and not) and watches many
//! Velero Backups. `FAKE_BENCH_N` sets the count (default 2000; the backup benchmark
//! of the product lists 10,000). Run: `cargo bench -p fake-cluster --bench list`.

use std::time::Instant;

use fake_cluster::{FakeCluster, Options};
use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams,
};
use serde_json::json;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("FAKE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let cluster = FakeCluster::start(Options::default()).expect("start");
    cluster.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}));
    let rss0 = rss_kib();
    let t = Instant::now();
    for i in 0..n {
        cluster.apply(json!({
            "apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": format!("backup-{i:06}"), "namespace": "velero",
                "labels": {"velero.io/storage-location": "default", "velero.io/schedule-name": "nightly"}},
            "spec": {"includedNamespaces": ["astronomer", format!("astronomer-release-{i}")], "ttl": "720h0m0s",
                "storageLocation": "default"},
            "status": {"phase": "Completed", "startTimestamp": "2026-11-24T02:00:00Z",
                "completionTimestamp": "2026-11-24T02:03:00Z", "progress": {"totalItems": 120, "itemsBackedUp": 120}}
        }));
    }
    let store = t.elapsed();
    println!(
        "store {n} backups (validated): {:>8.1} ms ({:.1} µs each), RSS +{} KiB",
        store.as_secs_f64() * 1e3,
        store.as_secs_f64() * 1e6 / n as f64,
        rss_kib().saturating_sub(rss0)
    );

    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("velero.io", "v1", "Backup"));
    let api: Api<DynamicObject> = Api::namespaced_with(client, "velero", &ar);

    for limit in [0u32, 500, 100] {
        let t = Instant::now();
        let mut lp = if limit > 0 {
            ListParams::default().limit(limit)
        } else {
            ListParams::default()
        };
        let (mut items, mut pages) = (0, 0);
        loop {
            let page = api.list(&lp).await.unwrap();
            items += page.items.len();
            pages += 1;
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
                _ => break,
            }
        }
        assert_eq!(items, n);
        println!(
            "list via kube-rs, limit {limit:>4}: {pages:>4} pages, {:>8.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }

    let t = Instant::now();
    let sel = api
        .list(
            &ListParams::default()
                .labels("velero.io/schedule-name=nightly,velero.io/storage-location in (default)"),
        )
        .await
        .unwrap();
    assert_eq!(sel.items.len(), n);
    println!(
        "list with label selector: {:>8.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let t = Instant::now();
    let mut stream = Box::pin(
        api.watch(&WatchParams::default().timeout(5), "0")
            .await
            .unwrap(),
    );
    let mut added = 0;
    while added < n {
        if let Some(Ok(WatchEvent::Added(_))) = stream.next().await {
            added += 1;
        }
    }
    println!(
        "watch from 0 ({n} initial ADDED events): {:>8.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("process RSS at end: {} KiB", rss_kib());
}
