//! `kubectl astro restore RELEASE` on the fake cluster whose simulated Velero has this
//! plugin installed: the real kubectl-astro-restore binary, the real plugin binary.

use serde_json::Value;

use crate::support::installed;

#[test]
fn restore_release_brings_redis_back_empty() {
    // The current build's binary (the harness builds the workspace's binaries).
    let bin = e2e_tests::bin("kubectl-astro-restore");
    let plugin = installed();
    // Without the plugin the same restore brings the Redis PVC back: the test can tell.
    for with_plugin in [false, true] {
        let dir = with_plugin.then(|| plugin.path.parent().unwrap().to_path_buf());
        check(&bin, dir, with_plugin);
    }
}

fn check(bin: &std::path::Path, plugin_dir: Option<std::path::PathBuf>, with_plugin: bool) {
    let cluster = e2e_tests::cluster_builder()
        .without_pg()
        .options(|o| o.velero_plugin_dir = plugin_dir)
        .start();
    let ns = "astronomer-celestial-zenith-1234";
    let out = e2e_tests::run(
        bin,
        [
            "celestial-zenith-1234",
            "--namespace",
            ns,
            "--no-undelete",
            "--yes",
        ],
        &cluster,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let get = |api: &str, kind: &str, name: &str| -> Option<Value> {
        cluster.get(api, kind, Some(ns), name)
    };
    let pvc = get(
        "v1",
        "PersistentVolumeClaim",
        "redis-db-celestial-zenith-1234-redis-0",
    );
    assert_eq!(
        pvc.is_none(),
        with_plugin,
        "the Redis PVC comes back only without the plugin"
    );
    assert!(get("apps/v1", "StatefulSet", "celestial-zenith-1234-redis").is_some());
    assert!(get("v1", "Service", "celestial-zenith-1234-redis").is_some());
    assert!(get("v1", "Secret", "celestial-zenith-1234-pgbouncer-config").is_some());
}

const NEW_HOST: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";
const OLD_HOST: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";
/// The namespaces of the fixture backup `astro-nightly-20261124010000`.
const BACKED_UP: [&str; 5] = [
    "astronomer",
    "astronomer-weightless-meteor-5042",
    "astronomer-traditional-precession-8767",
    "astronomer-quiet-nebula-3391",
    "astronomer-radiant-quasar-7720",
];

/// `restore platform --from-backup <the fixture backup> --db-host NEW` with `extra`.
fn run_platform(
    bin: &std::path::Path,
    cluster: &fake_cluster::FakeCluster,
    extra: &[&str],
) -> std::process::Output {
    let backup = e2e_tests::fixture_name("astro-nightly-20261124010000");
    let mut args = vec!["platform", "--from-backup", &backup, "--db-host", NEW_HOST];
    args.extend_from_slice(extra);
    e2e_tests::run(bin, args, cluster)
}

fn decoded(secret: &Value, key: &str) -> String {
    use base64::Engine as _;
    let b64 = secret["data"][key].as_str().unwrap_or_default();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// `restore platform --db-host NEW` into a cluster that lost the platform (a new cluster):
/// with the plugin, the restore creates the database secrets already on NEW and the move
/// afterwards patches and restarts nothing; without it, the move patches and restarts.
#[test]
fn restore_platform_with_db_host_starts_on_the_new_database() {
    let bin = e2e_tests::bin("kubectl-astro-restore");
    let plugin = installed();
    for with_plugin in [true, false] {
        let dir = with_plugin.then(|| plugin.path.parent().unwrap().to_path_buf());
        platform_restore(&bin, dir, with_plugin);
    }
}

fn platform_restore(
    bin: &std::path::Path,
    plugin_dir: Option<std::path::PathBuf>,
    with_plugin: bool,
) {
    let cluster = e2e_tests::cluster_builder()
        .without_pg()
        .options(|o| o.velero_plugin_dir = plugin_dir)
        .start();
    for ns in BACKED_UP {
        assert!(cluster.delete("v1", "Namespace", None, ns), "{ns}");
    }
    cluster.clear_requests();
    let saved = tempfile::tempdir().unwrap();
    let save_to = saved.path().join("originals.json");
    let out = run_platform(
        bin,
        &cluster,
        &["--yes", "--save-to", save_to.to_str().unwrap()],
    );
    let text = e2e_tests::output_text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "with_plugin={with_plugin}: {text}"
    );
    e2e_tests::assert_no_secrets(&out);

    // Every database secret names the new host, whichever way it got there.
    let secret = |ns: &str, name: &str| {
        cluster
            .get("v1", "Secret", Some(ns), name)
            .unwrap_or_else(|| panic!("{ns}/{name} missing"))
    };
    for name in [
        "astronomer-bootstrap",
        "astronomer-houston-backend",
        "astronomer-grafana-backend",
    ] {
        let connection = decoded(&secret("astronomer", name), "connection");
        assert!(connection.contains(NEW_HOST), "{name}: {connection}");
    }
    let ini = decoded(
        &secret(
            "astronomer-weightless-meteor-5042",
            "weightless-meteor-5042-pgbouncer-config",
        ),
        "pgbouncer.ini",
    );
    assert!(ini.contains(NEW_HOST) && !ini.contains(OLD_HOST), "{ini}");

    let requests = cluster.requests();
    let writes = |what: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|r| matches!(r.method.as_str(), "PATCH" | "PUT") && r.path.contains(what))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    };
    let secret_writes = writes("/secrets/");
    let restarts: Vec<String> = [writes("/deployments/"), writes("/statefulsets/")].concat();
    let configmap_posts = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/namespaces/velero/configmaps"))
        .count();
    if with_plugin {
        // Created already moved: no later patch of any secret, no restart.
        assert!(secret_writes.is_empty(), "{secret_writes:?}\n{text}");
        assert!(restarts.is_empty(), "{restarts:?}\n{text}");
        assert_eq!(configmap_posts, 1, "the plugin's ConfigMap, written once");
        assert!(text.contains("nothing to change"), "{text}");
        assert!(
            text.contains(&format!("brings back database endpoint {OLD_HOST}:5432")),
            "{text}"
        );
        let houston = cluster
            .get(
                "apps/v1",
                "Deployment",
                Some("astronomer"),
                "astronomer-houston",
            )
            .unwrap();
        assert_eq!(
            houston["spec"]["template"]["metadata"]["annotations"]["kubectl-astro.io/db-endpoint"],
            format!("{NEW_HOST}:5432"),
            "marked as started on the new endpoint"
        );
    } else {
        assert!(
            !secret_writes.is_empty(),
            "without the plugin the move patches: {text}"
        );
        assert!(!restarts.is_empty(), "and restarts: {text}");
        assert_eq!(configmap_posts, 0);
        assert!(
            text.contains("velero-plugin-astro"),
            "says how to avoid the restarts: {text}"
        );
    }
    // The ConfigMap is gone after the restore.
    assert!(
        cluster
            .get("v1", "ConfigMap", Some("velero"), "astro-db-endpoint")
            .is_none()
    );

    // Redis comes back empty only with the plugin; its StatefulSet always.
    let ns = "astronomer-weightless-meteor-5042";
    let pvc = cluster.get(
        "v1",
        "PersistentVolumeClaim",
        Some(ns),
        "redis-db-weightless-meteor-5042-redis-0",
    );
    assert_eq!(
        pvc.is_none(),
        with_plugin,
        "Redis PVC restored only without the plugin"
    );
    assert!(
        cluster
            .get(
                "apps/v1",
                "StatefulSet",
                Some(ns),
                "weightless-meteor-5042-redis"
            )
            .is_some()
    );
}

/// `--dry-run` shows the ConfigMap the plugin would get with the Restore, and creates
/// neither (the ServerStatusRequest and DownloadRequest it reads with are removed).
#[test]
fn restore_platform_dry_run_shows_the_plugin_configmap() {
    let bin = e2e_tests::bin("kubectl-astro-restore");
    let plugin = installed();
    let cluster = e2e_tests::cluster_builder()
        .without_pg()
        .options(|o| o.velero_plugin_dir = plugin.path.parent().map(std::path::Path::to_path_buf))
        .start();
    let out = run_platform(&bin, &cluster, &["--dry-run", "-o", "json"]);
    let text = e2e_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let stream: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = stream["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![stream.clone()]);
    let cm = items
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .unwrap_or_else(|| panic!("no ConfigMap in {stream}"));
    assert_eq!(cm["metadata"]["name"], "astro-db-endpoint");
    assert_eq!(cm["data"]["newHost"], NEW_HOST);
    assert_eq!(cm["data"]["oldHost"], OLD_HOST, "read from the backup");
    let restore = items.iter().find(|o| o["kind"] == "Restore").unwrap();
    assert_eq!(cm["data"]["restoreName"], restore["metadata"]["name"]);
    for (api, kind) in [
        ("v1", "ConfigMap"),
        ("velero.io/v1", "Restore"),
        ("velero.io/v1", "ServerStatusRequest"),
        ("velero.io/v1", "DownloadRequest"),
    ] {
        let left: Vec<Value> = cluster
            .list(api, kind, Some("velero"))
            .into_iter()
            .filter(|o| kind != "ConfigMap" || o["metadata"]["name"] == "astro-db-endpoint")
            .collect();
        assert!(left.is_empty(), "{kind}: {left:?}");
    }
}
