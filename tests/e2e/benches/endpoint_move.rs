//! Benchmark: an endpoint move over many deployment namespaces (default 500) in the fake
//! cluster with injected latency per request (default 20 ms); prints wall time next to the
//! bound `requests × latency ÷ concurrency`. Run: `cargo bench --profile dev -p e2e-tests --bench endpoint_move`
//! (the dev profile builds in a fraction of the release time; the figures are dominated by
//! request latency, and the zero-latency run shows the CPU share).

use std::time::{Duration, Instant};

use astro::commands::cli::GlobalArgs;
use astro::endpoint::apply::{Outcome, apply_groups, collect};
use astro::endpoint::plan::{PlanContext, Target, plan_move};
use astro::endpoint::target::Endpoint;
use fake_cluster::{FakeCluster, Fault};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn populate(cluster: &FakeCluster, namespaces: usize) {
    for i in 0..namespaces {
        let release = format!("bench-orbit-{i:04}");
        let ns = format!("astronomer-{release}");
        let underscored = release.replace('-', "_");
        cluster.apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns,
            "labels": {"platform-release": "astronomer", "platform": "astronomer"}}}),
        );
        let ini = format!(
            "[databases]\n{release}-metadata = host=astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com dbname={underscored}_airflow port=5432 pool_size=3\n\
             {release}-result-backend = host=astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com dbname={underscored}_airflow port=5432 pool_size=2\n\n\
             [pgbouncer]\npool_mode = transaction\nlisten_port = 6543\n"
        );
        cluster.apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{release}-pgbouncer-config"), "namespace": ns},
            "stringData": {"pgbouncer.ini": ini, "users.txt": format!("\"{underscored}_airflow\" \"pw{i}\"\n")}}));
        cluster.apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{release}-airflow-metadata"), "namespace": ns},
            "stringData": {"connection": format!("postgresql://{underscored}_airflow:pw{i}@{release}-pgbouncer.{ns}:6543/{release}-metadata")}}));
        let labels = json!({"tier": "airflow", "component": "pgbouncer", "release": release});
        cluster.apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{release}-pgbouncer"), "namespace": ns, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "pgbouncer", "image": "registry.k8s.io/pause:3.9"}]}}}}));
    }
}

fn main() {
    let namespaces = env_or("ENDPOINT_BENCH_NAMESPACES", 500);
    let latency_ms = env_or("ENDPOINT_BENCH_LATENCY_MS", 20);
    let concurrency = env_or("ENDPOINT_BENCH_CONCURRENCY", 16);
    let cluster = e2e_tests::cluster_builder()
        .without_pg()
        .options(|o| o.simulate_velero = false)
        .start();
    populate(&cluster, namespaces);
    cluster.inject(Fault::Latency(Duration::from_millis(latency_ms as u64)));
    cluster.clear_requests();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (wall, phases, applied) = runtime.block_on(async {
        let global = GlobalArgs {
            kubeconfig: Some(cluster.kubeconfig_path().to_owned()),
            platform_namespace: "astronomer".into(),
            velero_namespace: "velero".into(),
            ..GlobalArgs::default()
        };
        let client = astro::commands::cli::client_from(&global)
            .await
            .expect("client");
        let started = Instant::now();
        let collected = collect(&client, "astronomer").await.expect("collect");
        let ctx = PlanContext {
            target: Target {
                endpoint: Some(Endpoint {
                    host: "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com".into(),
                    port: 5433,
                }),
                ..Target::default()
            },
            old: Some(Endpoint {
                host: "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com".into(),
                port: 5432,
            }),
            platform_namespace: "astronomer".into(),
            platform_release: "astronomer".into(),
            restart_stamp: "2026-01-01T00:00:00Z".into(),
        };
        let collected_at = started.elapsed();
        let plan = plan_move(&collected, &ctx).expect("plan");
        let planned_at = started.elapsed();
        let applied = apply_groups(&client, plan.groups, &ctx, concurrency, &|_| {}).await;
        (
            started.elapsed(),
            (collected_at, planned_at - collected_at),
            applied,
        )
    });
    let failed = applied
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Failed { .. }))
        .count();
    let requests = cluster.requests();
    let total = requests.len();
    let patches = requests.iter().filter(|r| r.method == "PATCH").count();
    let lists = total - patches;
    let bound = Duration::from_millis(latency_ms as u64) * total as u32 / concurrency as u32;
    println!(
        "endpoint move: {namespaces} deployment namespaces, {latency_ms} ms latency per request, concurrency {concurrency}"
    );
    println!(
        "requests: {total} ({patches} PATCH, {lists} list/get), changes applied: {}, failed: {failed}",
        applied.len()
    );
    println!(
        "wall time: {:.3} s   bound (requests x {latency_ms} ms / {concurrency}): {:.3} s   ratio: {:.2}",
        wall.as_secs_f64(),
        bound.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64()
    );
    println!(
        "phases: collect {:.3} s, plan {:.3} s, apply {:.3} s",
        phases.0.as_secs_f64(),
        phases.1.as_secs_f64(),
        (wall - phases.0 - phases.1).as_secs_f64()
    );
    assert_eq!(failed, 0, "some changes failed");
}
