//! The real `kubectl` (`$KUBECTL`, else `kubectl` on PATH; also `$KUBECTL_LEGACY`, e.g.
//! Debian's 1.20) against the fake API server through the generated kubeconfig.

use std::path::PathBuf;
use std::process::Command;

use fake_cluster::{FakeCluster, Options};

fn kubectls() -> Vec<String> {
    let mut out = vec![std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())];
    if let Ok(extra) = std::env::var("KUBECTL_LEGACY") {
        out.push(extra);
    }
    out
}

fn kubectl(bin: &str, cluster: &FakeCluster, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", cluster.kubeconfig_path().parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin} (install kubectl or set $KUBECTL): {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kubectl_gets_and_lists() {
    let cluster = FakeCluster::start(Options {
        manifest_dirs: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/platform")],
        substitutions: vec![("DBHOST".into(), "127.0.0.1:5432".into())],
        ..Options::default()
    })
    .unwrap();
    for (i, bin) in kubectls().into_iter().enumerate() {
        let ns = kubectl(&bin, &cluster, &["get", "ns"]);
        assert!(ns.lines().next().unwrap().starts_with("NAME"), "{ns}");
        assert!(
            ns.lines()
                .any(|l| l.starts_with("velero ") && l.contains("Active")),
            "{ns}"
        );
        let secrets = kubectl(&bin, &cluster, &["get", "secrets", "-n", "astronomer"]);
        assert!(secrets.contains("astronomer-bootstrap"), "{secrets}");
        let deploys = kubectl(
            &bin,
            &cluster,
            &["get", "deploy", "-A", "-l", "tier=airflow"],
        );
        assert!(
            deploys.contains("astronomer-celestial-zenith-1234")
                && deploys.contains("celestial-zenith-1234-scheduler")
        );
        assert!(!deploys.contains("houston"), "{deploys}");
        let backups = kubectl(
            &bin,
            &cluster,
            &["get", "backups.velero.io", "-n", "velero", "-o", "json"],
        );
        let v: serde_json::Value = serde_json::from_str(&backups).unwrap();
        assert_eq!(v["items"][0]["metadata"]["name"], "nightly-20261124");
        assert_eq!(v["items"][0]["status"]["phase"], "Completed");
        let conn = kubectl(
            &bin,
            &cluster,
            &[
                "get",
                "secret",
                "astronomer-bootstrap",
                "-n",
                "astronomer",
                "-o",
                "jsonpath={.data.connection}",
            ],
        );
        assert_eq!(
            conn,
            "cG9zdGdyZXM6Ly9hc3Ryb19hZG1pbjpTdXAzciFTZWNyZXRAMTI3LjAuMC4xOjU0MzIvcG9zdGdyZXM="
        );
        kubectl(
            &bin,
            &cluster,
            &[
                "-n",
                "astronomer",
                "scale",
                "deploy",
                "astronomer-houston",
                "--replicas=0",
            ],
        );
        assert_eq!(
            cluster
                .get(
                    "apps/v1",
                    "Deployment",
                    Some("astronomer"),
                    "astronomer-houston"
                )
                .unwrap()["spec"]["replicas"],
            0
        );
        cluster.apply(serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "astronomer-houston", "namespace": "astronomer"}, "spec": {"replicas": 2}}));
        // kubectl 1.32's typed clients send these as protobuf, 1.20's as JSON.
        let ns = format!("made-by-kubectl-{i}");
        kubectl(&bin, &cluster, &["create", "namespace", &ns]);
        kubectl(
            &bin,
            &cluster,
            &[
                "-n",
                &ns,
                "create",
                "secret",
                "generic",
                "s1",
                "--from-literal=pw=Sup3r!Secret",
            ],
        );
        kubectl(
            &bin,
            &cluster,
            &["-n", &ns, "create", "configmap", "c1", "--from-literal=x=y"],
        );
        let secret = cluster.get("v1", "Secret", Some(&ns), "s1").unwrap();
        assert_eq!(secret["data"]["pw"], "U3VwM3IhU2VjcmV0");
        assert_eq!(secret["type"], "Opaque");
        assert!(secret["metadata"].get("generateName").is_none());
        assert_eq!(
            cluster.get("v1", "ConfigMap", Some(&ns), "c1").unwrap()["data"]["x"],
            "y"
        );
        kubectl(
            &bin,
            &cluster,
            &["label", "ns", "velero", "checked=yes", "--overwrite"],
        );
        assert_eq!(
            cluster.get("v1", "Namespace", None, "velero").unwrap()["metadata"]["labels"]["checked"],
            "yes"
        );
    }
}
