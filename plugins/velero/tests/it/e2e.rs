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
