//! The simulated Velero: Backup/Restore phases, outcomes, validation failures,
//! DownloadRequest files, DeleteBackupRequests.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fake_cluster::{FakeCluster, Options, VeleroKind, VeleroOutcome};
use serde_json::{Value, json};

fn start() -> FakeCluster {
    FakeCluster::start(Options {
        manifest_dirs: vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/platform")],
        simulate_velero: true,
        velero_step: Some(Duration::from_millis(20)),
        ..Options::default()
    })
    .unwrap()
}

/// Polls until the object's `status.phase` is one of `phases`.
fn wait_phase(cluster: &FakeCluster, kind: &str, name: &str, phases: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(o) = cluster.get("velero.io/v1", kind, Some("velero"), name)
            && phases.contains(&o["status"]["phase"].as_str().unwrap_or(""))
        {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {name} never reached {phases:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn http_get(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = &buf[split + 4..];
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if len == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + len]);
            rest = &rest[nl + 2 + len + 2..];
        }
        out
    } else {
        body.to_vec()
    }
}

fn download(cluster: &FakeCluster, kind: &str, target: &str) -> Value {
    let name = format!("dl-{}-{target}", kind.to_ascii_lowercase());
    cluster.apply(
        json!({"apiVersion": "velero.io/v1", "kind": "DownloadRequest",
        "metadata": {"name": name, "namespace": "velero"},
        "spec": {"target": {"kind": kind, "name": target}}}),
    );
    let dr = wait_phase(cluster, "DownloadRequest", &name, &["Processed"]);
    let gz = http_get(dr["status"]["downloadURL"].as_str().unwrap());
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn backup(cluster: &FakeCluster, name: &str, spec: Value) {
    cluster.apply(json!({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero"}, "spec": spec}));
}

#[test]
fn backup_completes_with_progress_and_resource_list() {
    let cluster = start();
    backup(
        &cluster,
        "b1",
        json!({"includedNamespaces": ["astronomer-celestial-zenith-1234"]}),
    );
    let b = wait_phase(&cluster, "Backup", "b1", &["Completed"]);
    assert_eq!(b["status"]["progress"]["totalItems"], 3);
    assert_eq!(b["status"]["progress"]["itemsBackedUp"], 3);
    assert_eq!(
        b["metadata"]["labels"]["velero.io/storage-location"],
        "default"
    );
    assert!(b["status"]["completionTimestamp"].is_string());
    let list = download(&cluster, "BackupResourceList", "b1");
    assert_eq!(
        list["v1/Namespace"],
        json!(["astronomer-celestial-zenith-1234"])
    );
    assert_eq!(
        list["apps/v1/Deployment"],
        json!(["astronomer-celestial-zenith-1234/celestial-zenith-1234-scheduler"])
    );
    assert_eq!(
        download(&cluster, "BackupResults", "b1"),
        json!({"errors": {}, "warnings": {}})
    );
}

#[test]
fn outcomes_and_storage_location_validation() {
    let cluster = start();
    cluster.velero_set_outcome(
        VeleroKind::Backup,
        VeleroOutcome::PartiallyFailed {
            errors: vec!["pod volume backup failed".into()],
            warnings: vec![],
        },
    );
    cluster.velero_set_outcome(
        VeleroKind::Backup,
        VeleroOutcome::Failed {
            reason: "boom".into(),
        },
    );
    backup(
        &cluster,
        "partial",
        json!({"includedNamespaces": ["astronomer"]}),
    );
    let p = wait_phase(
        &cluster,
        "Backup",
        "partial",
        &["PartiallyFailed", "Completed", "Failed"],
    );
    assert_eq!(p["status"]["phase"], "PartiallyFailed");
    assert_eq!(p["status"]["errors"], 1);
    assert_eq!(
        download(&cluster, "BackupResults", "partial")["errors"]["velero"],
        json!(["pod volume backup failed"])
    );
    backup(
        &cluster,
        "failed",
        json!({"includedNamespaces": ["astronomer"]}),
    );
    let f = wait_phase(&cluster, "Backup", "failed", &["Failed", "Completed"]);
    assert_eq!(f["status"]["failureReason"], "boom");

    backup(&cluster, "nowhere", json!({"storageLocation": "missing"}));
    let v = wait_phase(
        &cluster,
        "Backup",
        "nowhere",
        &["FailedValidation", "Completed"],
    );
    assert!(
        v["status"]["validationErrors"][0]
            .as_str()
            .unwrap()
            .contains("\"missing\" not found")
    );

    let mut bsl = cluster
        .get(
            "velero.io/v1",
            "BackupStorageLocation",
            Some("velero"),
            "default",
        )
        .unwrap();
    bsl["spec"]["accessMode"] = json!("ReadOnly");
    cluster.apply(bsl);
    backup(&cluster, "readonly", json!({}));
    let r = wait_phase(
        &cluster,
        "Backup",
        "readonly",
        &["FailedValidation", "Completed"],
    );
    assert!(
        r["status"]["validationErrors"][0]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
}

#[test]
fn restore_brings_a_deleted_namespace_back_and_maps_namespaces() {
    let cluster = start();
    let ns = "astronomer-celestial-zenith-1234";
    backup(&cluster, "before", json!({"includedNamespaces": [ns]}));
    wait_phase(&cluster, "Backup", "before", &["Completed"]);
    assert!(cluster.delete("v1", "Namespace", None, ns));
    assert!(cluster.get("v1", "Namespace", None, ns).is_none());

    cluster.apply(json!({"apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": "r1", "namespace": "velero"}, "spec": {"backupName": "before"}}));
    let r = wait_phase(
        &cluster,
        "Restore",
        "r1",
        &["Completed", "PartiallyFailed", "Failed"],
    );
    assert_eq!(r["status"]["phase"], "Completed", "{r}");
    let d = cluster
        .get(
            "apps/v1",
            "Deployment",
            Some(ns),
            "celestial-zenith-1234-scheduler",
        )
        .expect("deployment restored");
    assert_eq!(d["metadata"]["labels"]["velero.io/restore-name"], "r1");
    assert!(
        cluster
            .get("v1", "Secret", Some(ns), "celestial-zenith-1234-metadata")
            .is_some()
    );

    // Again into the same namespace: everything exists, so warnings only.
    cluster.apply(json!({"apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": "r2", "namespace": "velero"}, "spec": {"backupName": "before"}}));
    let r2 = wait_phase(&cluster, "Restore", "r2", &["Completed", "PartiallyFailed"]);
    assert_eq!(r2["status"]["warnings"], 2);

    cluster.apply(json!({"apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": "r3", "namespace": "velero"},
        "spec": {"backupName": "before", "namespaceMapping": {ns: "copy"}}}));
    wait_phase(&cluster, "Restore", "r3", &["Completed"]);
    assert!(
        cluster
            .get(
                "apps/v1",
                "Deployment",
                Some("copy"),
                "celestial-zenith-1234-scheduler"
            )
            .is_some()
    );

    cluster.apply(json!({"apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": "r4", "namespace": "velero"}, "spec": {"backupName": "nope"}}));
    let r4 = wait_phase(
        &cluster,
        "Restore",
        "r4",
        &["FailedValidation", "Completed"],
    );
    assert_eq!(r4["status"]["phase"], "FailedValidation");

    // Fixture backups are restorable too (snapshotted at start).
    let list = download(&cluster, "BackupResourceList", "nightly-20261124");
    assert!(
        list["v1/Secret"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "astronomer/astronomer-bootstrap")
    );

    cluster.apply(
        json!({"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
        "metadata": {"name": "del", "namespace": "velero"}, "spec": {"backupName": "before"}}),
    );
    wait_phase(&cluster, "DeleteBackupRequest", "del", &["Processed"]);
    assert!(
        cluster
            .get("velero.io/v1", "Backup", Some("velero"), "before")
            .is_none()
    );
}
