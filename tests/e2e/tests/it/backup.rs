//! `kubectl-astro-backup` end to end: the real binary against the fake API server (CRD
//! validation of every Velero object, paging, watches with dropped connections), with the
//! Velero phases driven from the test, and `backup db --local` against real PostgreSQL.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fake_cluster::{FakeCluster, Fault, Options};
use serde_json::{Value, json};

const VELERO: &str = "velero.io/v1";
const DEPLOY_A: &str = "astronomer-weightless-meteor-5042";
const DEPLOY_B: &str = "astronomer-traditional-precession-8767";

fn bin() -> PathBuf {
    e2e_tests::bin("kubectl-astro-backup")
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn bsl(name: &str, access_mode: &str, phase: Option<&str>) -> Value {
    let mut v = json!({
        "apiVersion": VELERO,
        "kind": "BackupStorageLocation",
        "metadata": {"name": name, "namespace": "velero"},
        "spec": {"provider": "aws", "objectStorage": {"bucket": "astro-dr"}, "default": true, "accessMode": access_mode}
    });
    if let Some(p) = phase {
        v["status"] = json!({"phase": p});
    }
    v
}

/// The fixture platform's namespaces (labels as in astronomer-fixtures.md §1), including
/// the `astronomer-tools` trap, and an Available ReadWrite BSL.
fn cluster() -> FakeCluster {
    let c = FakeCluster::start(Options::default()).expect("start fake cluster");
    c.apply(namespace("astronomer", json!({"platform": "astronomer"})));
    for ns in [DEPLOY_A, DEPLOY_B] {
        c.apply(namespace(
            ns,
            json!({"platform-release": "astronomer", "platform": "astronomer", "workspace": "ckoy0b7yu000101l5h2x9c3qz"}),
        ));
    }
    c.apply(namespace("astronomer-tools", json!({})));
    c.apply(namespace("velero", json!({})));
    c.apply(namespace("kube-system", json!({})));
    c.apply(bsl("default", "ReadWrite", Some("Available")));
    c
}

fn command(c: &FakeCluster, args: &[&str]) -> Command {
    let mut cmd = e2e_tests::command(bin(), c);
    cmd.args(args);
    cmd
}

fn run(c: &FakeCluster, args: &[&str]) -> Output {
    command(c, args).output().expect("run kubectl-astro-backup")
}

fn spawn(c: &FakeCluster, args: &[&str]) -> Child {
    command(c, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl-astro-backup")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn writes(c: &FakeCluster) -> Vec<String> {
    c.requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        // The permission pre-flight's reviews are answered, never stored.
        .filter(|r| !r.path.ends_with("/selfsubjectaccessreviews"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn wait_for_object(c: &FakeCluster, kind: &str, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = c.get(VELERO, kind, Some("velero"), name) {
            return v;
        }
        assert!(Instant::now() < deadline, "{kind} {name} was never created");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Plays Velero's part: replaces the Backup's status.
fn set_status(c: &FakeCluster, name: &str, status: Value) {
    let mut b = c
        .get(VELERO, "Backup", Some("velero"), name)
        .expect("backup exists");
    b["status"] = status;
    c.apply(b);
}

fn yaml_docs(s: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(s).expect("valid multi-document YAML")
}

#[test]
fn dry_run_all_lists_exactly_platform_and_deployment_namespaces() {
    let c = cluster();
    c.clear_requests();
    let out = run(&c, &["create", "--all", "--dry-run", "-o", "yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(writes(&c).is_empty(), "dry run wrote: {:?}", writes(&c));
    let docs = yaml_docs(&text(&out.stdout));
    let backup = docs
        .iter()
        .find(|d| d["kind"] == "Backup")
        .expect("a Backup");
    assert_eq!(
        backup["spec"]["includedNamespaces"],
        json!(["astronomer", DEPLOY_B, DEPLOY_A]),
        "not astronomer-tools, not velero"
    );
    let name = backup["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("astro-all-") && name.len() <= 63, "{name}");
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the policy ConfigMap");
    assert_eq!(cm["data"].as_object().unwrap().len(), 1);
    // What the dry run prints is valid against the real CRD schema.
    c.try_apply(backup.clone())
        .expect("Backup validates against the CRD");
}

#[test]
fn release_namespace_prefix_is_the_platform_namespace_not_the_release() {
    // Platform release "prod" installed in namespace "astro-ns": Houston names deployment
    // namespaces `astro-ns-<release>` and labels them `platform-release=prod`.
    let c = cluster();
    c.apply(namespace("astro-ns", json!({"platform": "prod"})));
    for ns in [
        "astro-ns-weightless-meteor-5042",
        "prod-weightless-meteor-5042",
    ] {
        c.apply(namespace(ns, json!({"platform-release": "prod"})));
    }
    let out = run(
        &c,
        &[
            "create",
            "--release",
            "weightless-meteor-5042",
            "--platform-namespace",
            "astro-ns",
            "--platform-release",
            "prod",
            "--dry-run",
            "-o",
            "yaml",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs = yaml_docs(&text(&out.stdout));
    let backup = docs
        .iter()
        .find(|d| d["kind"] == "Backup")
        .expect("a Backup");
    assert_eq!(
        backup["spec"]["includedNamespaces"],
        json!(["astro-ns-weightless-meteor-5042"])
    );
}

#[test]
fn created_backup_equals_velero_cli_object_and_policy_is_idempotent() {
    let c = cluster();
    let out = run(
        &c,
        &[
            "create",
            "b1",
            "--release",
            "weightless-meteor-5042",
            "--ttl",
            "168h",
            "--storage-location",
            "default",
            "--snapshot-volumes=false",
            "--labels",
            "team=data",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored = c
        .get(VELERO, "Backup", Some("velero"), "b1")
        .expect("created");
    // velero backup create b1 --include-namespaces astronomer-weightless-meteor-5042 --ttl 168h
    //   --storage-location default --snapshot-volumes=false --labels team=data
    //   --resource-policies-configmap astro-backup-volume-policy
    let expected: Value = serde_saphyr::from_str(
        "apiVersion: velero.io/v1
kind: Backup
metadata:
  name: b1
  namespace: velero
  labels: {team: data}
spec:
  includedNamespaces: [astronomer-weightless-meteor-5042]
  storageLocation: default
  ttl: 168h0m0s
  snapshotVolumes: false
  resourcePolicy: {kind: configmap, name: astro-backup-volume-policy}
",
    )
    .unwrap();
    assert_eq!(stored["spec"], expected["spec"]);
    assert_eq!(stored["metadata"]["labels"], expected["metadata"]["labels"]);
    assert!(stored.get("status").is_none(), "status must never be sent");

    let cm = c
        .get(
            "v1",
            "ConfigMap",
            Some("velero"),
            "astro-backup-volume-policy",
        )
        .expect("policy");
    let data = cm["data"].as_object().unwrap();
    assert_eq!(data.len(), 1, "Velero needs exactly one data key");
    let policy: Value =
        serde_saphyr::from_str(data.values().next().unwrap().as_str().unwrap()).unwrap();
    assert_eq!(
        policy["volumePolicies"][0],
        json!({"conditions": {"pvcLabels": {"tier": "airflow", "component": "redis"}}, "action": {"type": "skip"}})
    );

    // A second backup leaves the ConfigMap alone; a drifted one is put back to one key.
    let rv = cm["metadata"]["resourceVersion"].clone();
    assert!(run(&c, &["create", "b2", "--platform"]).status.success());
    let again = c
        .get(
            "v1",
            "ConfigMap",
            Some("velero"),
            "astro-backup-volume-policy",
        )
        .unwrap();
    assert_eq!(again["metadata"]["resourceVersion"], rv);
    let mut drifted = again.clone();
    drifted["data"]["extra.yaml"] = json!("x: 1");
    c.apply(drifted);
    assert!(run(&c, &["create", "b3", "--platform"]).status.success());
    let fixed = c
        .get(
            "v1",
            "ConfigMap",
            Some("velero"),
            "astro-backup-volume-policy",
        )
        .unwrap();
    assert_eq!(fixed["data"].as_object().unwrap().len(), 1);

    // Same name again: refused, exit 3.
    let dup = run(&c, &["create", "b1", "--platform"]);
    assert_eq!(dup.status.code(), Some(3), "{}", text(&dup.stderr));
}

fn assert_refused(c: &FakeCluster, args: &[&str], reason: &str) {
    c.clear_requests();
    let out = run(c, args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
    assert!(
        stderr.contains(reason),
        "{args:?}: expected {reason:?} in {stderr}"
    );
    assert!(stderr.contains("next step"), "{stderr}");
    assert!(writes(c).is_empty(), "refusal wrote: {:?}", writes(c));
    assert!(c.list(VELERO, "Backup", Some("velero")).is_empty());
}

#[test]
fn preflight_refusals() {
    let c = cluster();
    c.apply(bsl("default", "ReadOnly", Some("Available")));
    assert_refused(&c, &["create", "--all"], "is ReadOnly");

    c.apply(bsl("default", "ReadWrite", Some("Unavailable")));
    assert_refused(&c, &["create", "--all"], "is Unavailable");

    c.apply(bsl("default", "ReadWrite", Some("Available")));
    assert_refused(
        &c,
        &["create", "--all", "--storage-location", "nope"],
        "nope does not exist",
    );

    assert_refused(
        &c,
        &["create", "--release", "ghost-1234"],
        "astronomer-ghost-1234",
    );
    // The trap has the prefix but not the labels.
    assert_refused(&c, &["create", "--release", "tools"], "astronomer-tools");
    assert_refused(
        &c,
        &[
            "create",
            "--platform",
            "--platform-namespace",
            "astro-missing",
        ],
        "namespace astro-missing does not exist",
    );
    c.set_namespace_terminating(DEPLOY_B);
    assert_refused(&c, &["create", "--all"], "is Terminating");
}

#[test]
fn bad_flags_are_usage_errors_without_requests() {
    let c = cluster();
    c.clear_requests();
    for args in [
        vec!["create", "--ttl", "3d"],
        vec!["create", "--labels", "oops"],
        vec!["create", &"x".repeat(64)],
        vec!["schedule", "create", "nightly", "--schedule", "0 0 * * 7"],
        vec!["schedule", "create", "nightly", "--schedule", "0 0 1 * * *"],
        vec!["create", "--all", "--platform"],
    ] {
        let out = run(&c, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(writes(&c).is_empty());
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("wait for binary")
}

fn drive_to(c: &FakeCluster, name: &str, terminal: Value) {
    wait_for_object(c, "Backup", name);
    for status in [
        json!({"phase": "New"}),
        json!({"phase": "Queued", "queuePosition": 1}),
        json!({"phase": "ReadyToStart"}),
        json!({"phase": "InProgress", "startTimestamp": "2026-11-25T01:00:00Z", "progress": {"totalItems": 100, "itemsBackedUp": 10}}),
        json!({"phase": "InProgress", "startTimestamp": "2026-11-25T01:00:00Z", "progress": {"totalItems": 100, "itemsBackedUp": 60}}),
        json!({"phase": "Finalizing", "startTimestamp": "2026-11-25T01:00:00Z", "progress": {"totalItems": 100, "itemsBackedUp": 100}}),
        terminal,
    ] {
        std::thread::sleep(Duration::from_millis(150));
        set_status(c, name, status);
    }
}

#[test]
fn wait_reports_each_terminal_phase_with_its_exit_code() {
    let c = cluster();
    let cases = [
        (
            "w-completed",
            json!({"phase": "Completed", "progress": {"totalItems": 100, "itemsBackedUp": 100}}),
            0,
            "Completed",
        ),
        (
            "w-failed",
            json!({"phase": "Failed", "failureReason": "found a backup with status \"InProgress\" during the server starting, mark it as \"Failed\""}),
            1,
            "during the server starting",
        ),
        (
            "w-invalid",
            json!({"phase": "FailedValidation", "validationErrors": ["backup storage location default is in Unavailable status"]}),
            1,
            "Unavailable status",
        ),
        (
            "w-partial",
            json!({"phase": "PartiallyFailed", "errors": 0, "warnings": 2}),
            1,
            "PartiallyFailed",
        ),
    ];
    for (name, terminal, code, expect) in cases {
        let child = spawn(&c, &["create", name, "--platform", "--wait"]);
        drive_to(&c, name, terminal);
        let out = finish(child);
        let all = text(&out.stdout) + &text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {all}");
        assert!(all.contains(expect), "{name}: expected {expect:?} in {all}");
        // Running phases were reported as running, not as errors.
        assert!(all.contains("InProgress"), "{name}: {all}");
    }
}

/// Serves one gzip'd results file over plain HTTP; returns its URL.
fn serve_results_once(body: &[u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body).unwrap();
    let gz = gz.finish().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                gz.len()
            );
            let _ = s.write_all(&gz);
        }
    });
    format!("http://127.0.0.1:{port}/bucket/backups/results.gz?X-Amz-Signature=s3cr3tsig")
}

/// Plays Velero's DownloadRequest controller once: signs the first request that appears.
fn sign_download_request(c: &FakeCluster, url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(mut dr) = c
            .list(VELERO, "DownloadRequest", Some("velero"))
            .into_iter()
            .next()
        {
            let request = dr.clone();
            dr["status"] = json!({"phase": "Processed", "downloadURL": url});
            c.apply(dr);
            return request;
        }
        assert!(Instant::now() < deadline, "no DownloadRequest was created");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn partially_failed_wait_and_describe_show_reasons_from_the_results_file() {
    let c = cluster();
    let results = br#"{"errors":{"namespaces":{"astronomer":["error executing hook: pod astronomer-houston-0 timed out"]}},"warnings":{}}"#;
    let child = spawn(&c, &["create", "pf", "--platform", "--wait"]);
    drive_to(&c, "pf", json!({"phase": "PartiallyFailed", "errors": 1}));
    let request = sign_download_request(&c, &serve_results_once(results));
    assert_eq!(
        request["spec"]["target"],
        json!({"kind": "BackupResults", "name": "pf"})
    );
    let out = finish(child);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pod astronomer-houston-0 timed out"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cr3tsig"),
        "the signed URL must not be printed"
    );
    // The DownloadRequest is cleaned up.
    assert!(c.list(VELERO, "DownloadRequest", Some("velero")).is_empty());

    let child = spawn(&c, &["describe", "pf"]);
    sign_download_request(&c, &serve_results_once(results));
    let out = finish(child);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("Phase:        PartiallyFailed"), "{stdout}");
    assert!(
        stdout.contains("namespace astronomer: error executing hook"),
        "{stdout}"
    );

    let missing = run(&c, &["describe", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("not found"));
}

#[test]
fn wait_survives_three_dropped_watches() {
    let c = cluster();
    c.inject(Fault::DropWatches {
        after_events: Some(1),
        after_ms: None,
        times: Some(3),
    });
    let child = spawn(&c, &["create", "dropped", "--platform", "--wait"]);
    drive_to(&c, "dropped", json!({"phase": "Completed"}));
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let watches = c
        .requests()
        .iter()
        .filter(|r| r.watch && r.path.ends_with("/backups"))
        .count();
    assert!(
        watches >= 4,
        "expected the watch to be re-established 3 times, saw {watches} watches"
    );
}

#[test]
fn ctrl_c_stops_waiting_and_says_the_backup_continues() {
    let c = cluster();
    let child = spawn(&c, &["create", "interrupted", "--platform", "--wait"]);
    wait_for_object(&c, "Backup", "interrupted");
    set_status(&c, "interrupted", json!({"phase": "InProgress"}));
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = finish(child);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("keeps running on the server"), "{stderr}");
    assert!(
        c.get(VELERO, "Backup", Some("velero"), "interrupted")
            .is_some()
    );
}

#[test]
fn schedule_create_list_pause_unpause() {
    let c = cluster();
    let out = run(
        &c,
        &[
            "schedule",
            "create",
            "nightly",
            "--schedule",
            "CRON_TZ=UTC 0 1 * * *",
            "--ttl",
            "720h",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("next runs (UTC):"), "{stdout}");
    assert_eq!(stdout.matches(" 01:00:00 UTC").count(), 3, "{stdout}");
    let s = c
        .get(VELERO, "Schedule", Some("velero"), "nightly")
        .expect("created (validated by the CRD schema)");
    assert_eq!(s["spec"]["schedule"], "CRON_TZ=UTC 0 1 * * *");
    assert_eq!(s["spec"]["useOwnerReferencesInBackup"], false);
    assert_eq!(s["spec"]["template"]["ttl"], "720h0m0s");
    assert_eq!(
        s["spec"]["template"]["resourcePolicy"],
        json!({"kind": "configmap", "name": "astro-backup-volume-policy"})
    );
    assert_eq!(
        s["spec"]["template"]["includedNamespaces"],
        json!(["astronomer", DEPLOY_B, DEPLOY_A])
    );

    let list = text(&run(&c, &["schedule", "list"]).stdout);
    assert!(list.starts_with("NAME"), "{list}");
    assert!(list.contains("nightly") && list.contains("false"), "{list}");

    // Someone else writing the Schedule meanwhile (409s): the pause is sent again.
    c.seed_faults(3);
    c.inject(Fault::ConflictRate {
        fraction: 0.6,
        kinds: vec!["Schedule".into()],
    });
    c.clear_requests();
    let paused = run(&c, &["schedule", "pause", "nightly"]);
    c.clear_faults();
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    let patches = c
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/schedules/nightly"))
        .count();
    assert!(
        patches > 1,
        "seed 3 makes the first patch conflict: {patches} patch(es)"
    );
    assert_eq!(
        c.get(VELERO, "Schedule", Some("velero"), "nightly")
            .unwrap()["spec"]["paused"],
        true
    );
    assert!(
        run(&c, &["schedule", "unpause", "nightly"])
            .status
            .success()
    );
    assert_eq!(
        c.get(VELERO, "Schedule", Some("velero"), "nightly")
            .unwrap()["spec"]["paused"],
        false
    );
    assert_eq!(
        run(&c, &["schedule", "pause", "nope"]).status.code(),
        Some(1)
    );

    let long = "s".repeat(49);
    assert_eq!(
        run(&c, &["schedule", "create", &long, "--schedule", "@daily"])
            .status
            .code(),
        Some(2)
    );
}

fn backup_object(name: &str, namespaces: &[&str], phase: &str) -> Value {
    json!({
        "apiVersion": VELERO,
        "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero"},
        "spec": {"includedNamespaces": namespaces, "storageLocation": "default", "ttl": "720h0m0s"},
        "status": {"phase": phase, "startTimestamp": "2026-11-20T01:00:00Z", "expiration": "2026-12-20T01:00:00Z"}
    })
}

#[test]
fn list_pages_and_filters_by_release() {
    let c = cluster();
    for i in 0..1_203 {
        let ns = if i % 3 == 0 { DEPLOY_A } else { DEPLOY_B };
        c.apply(backup_object(&format!("b-{i:05}"), &[ns], "Completed"));
    }
    c.apply(backup_object("queued-one", &["astronomer-*"], "Queued"));
    c.clear_requests();
    let out = run(&c, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("NAME"), "{stdout}");
    assert!(stdout.lines().next().unwrap().contains("NAMESPACES"));
    assert_eq!(stdout.lines().count(), 1 + 1_204);
    assert!(stdout.contains("Queued"));
    let lists: Vec<_> = c
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/namespaces/velero/backups") && !r.watch)
        .collect();
    assert_eq!(lists.len(), 3, "1204 backups in pages of 500: {lists:?}");
    assert!(
        lists.iter().all(|r| r.query.contains("limit=500")),
        "{lists:?}"
    );

    let filtered = text(&run(&c, &["list", "--release", "weightless-meteor-5042"]).stdout);
    // Every third backup plus the glob one.
    assert_eq!(
        filtered.lines().count(),
        1 + 401 + 1,
        "{}",
        &filtered[..200.min(filtered.len())]
    );

    let json_out = run(&c, &["list", "-o", "json"]);
    let v: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1_204);
}

/// Tests on the fixture platform (`tests/fixtures/platform`) with the simulated Velero.
mod fixture_platform {
    use super::*;

    fn backup_bin() -> PathBuf {
        bin()
    }

    #[test]
    fn dry_run_all_on_fixtures_lists_labelled_namespaces_only() {
        let c = e2e_tests::cluster();
        let out = e2e_tests::run(
            backup_bin(),
            ["create", "--all", "--dry-run", "-o", "yaml"],
            &c,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let docs = yaml_docs(&text(&out.stdout));
        let backup = docs
            .iter()
            .find(|d| d["kind"] == "Backup")
            .expect("a Backup");
        assert_eq!(
            backup["spec"]["includedNamespaces"],
            json!([
                "astronomer",
                "astronomer-quiet-nebula-3391",
                "astronomer-radiant-quasar-7720",
                "astronomer-traditional-precession-8767",
                "astronomer-weightless-meteor-5042"
            ])
        );
        assert!(c.try_apply(backup.clone()).is_ok());
        e2e_tests::assert_no_secrets(&out);
    }

    #[test]
    fn simulated_velero_outcomes_map_to_exit_codes() {
        use fake_cluster::{VeleroKind, VeleroOutcome};
        let c = e2e_tests::cluster();
        let cases = [
            ("sim-ok", VeleroOutcome::Completed, 0, "Completed"),
            (
                "sim-partial",
                VeleroOutcome::PartiallyFailed {
                    errors: vec!["error backing up item: redis-data timed out".into()],
                    warnings: vec![],
                },
                1,
                "redis-data timed out",
            ),
            (
                "sim-failed",
                VeleroOutcome::Failed {
                    reason: "velero pod restarted".into(),
                },
                1,
                "velero pod restarted",
            ),
            (
                "sim-invalid",
                VeleroOutcome::FailedValidation {
                    errors: vec!["bad namespace glob".into()],
                },
                1,
                "bad namespace glob",
            ),
        ];
        for (name, outcome, code, expect) in cases {
            c.velero_set_outcome(VeleroKind::Backup, outcome);
            let out = e2e_tests::run(backup_bin(), ["create", name, "--platform", "--wait"], &c);
            let all = text(&out.stdout) + &text(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{name}: {all}");
            assert!(all.contains(expect), "{name}: expected {expect:?} in {all}");
        }
        let described = e2e_tests::run(backup_bin(), ["describe", "sim-partial"], &c);
        assert!(
            text(&described.stdout).contains("redis-data timed out"),
            "{}",
            text(&described.stdout)
        );
        let listed = text(&e2e_tests::run(backup_bin(), ["list"], &c).stdout);
        assert!(
            listed.contains("astro-nightly-") && listed.contains("sim-failed"),
            "{listed}"
        );
    }

    /// Dumps the fixture Houston database with `args`, restores it into a new database
    /// with `pg_restore`, and compares the row count of every table.
    fn dump_restores_with_same_row_counts(extra: &[&str]) {
        let pg = e2e_tests::pg();
        let c = e2e_tests::cluster_builder()
            .options(|o| o.kubelet = true)
            .start();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("houston.dump");
        let mut args = vec!["db", "--out", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = e2e_tests::run(backup_bin(), &args, &c);
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "{all}");
        assert!(all.contains("pg_restore -l verified"), "{all}");
        e2e_tests::assert_no_secrets(&out);

        let target = format!(
            "astro_backup_restore_{}_{}",
            std::process::id(),
            extra.len()
        );
        pg.query("postgres", &format!("DROP DATABASE IF EXISTS \"{target}\""));
        pg.query("postgres", &format!("CREATE DATABASE \"{target}\""));
        let restore = Command::new("pg_restore")
            .env("PGHOST", &pg.host)
            .env("PGPORT", pg.port.to_string())
            .env("PGUSER", &pg.user)
            .env("PGPASSWORD", &pg.password)
            .args(["--no-owner", "--exit-on-error", "-d", &target])
            .arg(&file)
            .output()
            .unwrap();
        assert!(restore.status.success(), "{}", text(&restore.stderr));
        let tables = pg.query(
            "astronomer_houston",
            "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        );
        assert!(
            tables.len() >= 3,
            "the fixture Houston database has tables: {tables:?}"
        );
        for row in &tables {
            let table = row[0].clone().unwrap();
            let q = format!("SELECT count(*) FROM {table}");
            assert_eq!(
                pg.query_one("astronomer_houston", &q),
                pg.query_one(&target, &q),
                "{table}"
            );
        }
        let deployments = pg.query_one(
            &target,
            "SELECT count(*) FROM \"houston$default\".\"Deployment\"",
        );
        assert_ne!(deployments.as_deref(), Some("0"));
        pg.drop_database(&target);
        // The client pod and its Secret are gone (also with --local: none was made).
        let leftovers: Vec<Value> = c
            .list("v1", "Pod", Some("astronomer"))
            .into_iter()
            .chain(c.list("v1", "Secret", Some("astronomer")))
            .filter(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("astro-pgdump"))
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// `backup db --release`: the release's own role cannot read its sibling's schema
    /// (`celery` belongs to `<release>_celery`), so the dump is made as the platform's
    /// admin user (`astronomer-bootstrap`) and holds both schemas, through a client pod
    /// and with `--local`.
    #[test]
    fn db_of_a_release_holds_all_its_schemas() {
        let c = e2e_tests::cluster_builder()
            .options(|o| o.kubelet = true)
            .start();
        let dir = tempfile::tempdir().unwrap();
        for extra in [&[][..], &["--local"][..]] {
            let file = dir.path().join(format!("meteor{}.dump", extra.len()));
            let mut args = vec![
                "db",
                "--release",
                "weightless-meteor-5042",
                "--out",
                file.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let out = e2e_tests::run(backup_bin(), &args, &c);
            let all = text(&out.stdout) + &text(&out.stderr);
            assert!(out.status.success(), "{extra:?}: {all}");
            assert!(
                all.contains("astronomer-bootstrap"),
                "says whose user: {all}"
            );
            e2e_tests::assert_no_secrets(&out);
            let list = Command::new("pg_restore")
                .arg("-l")
                .arg(&file)
                .output()
                .unwrap();
            let listing = text(&list.stdout);
            for entry in [
                "TABLE DATA airflow dag",
                "TABLE DATA celery celery_taskmeta",
            ] {
                assert!(
                    listing.contains(entry),
                    "{extra:?}: no {entry:?} in\n{listing}"
                );
            }
        }
    }

    /// `backup db --local`: this machine's pg_dump, password only in its environment.
    #[test]
    fn db_local_dump_of_fixture_houston_restores_with_same_row_counts() {
        dump_restores_with_same_row_counts(&["--local"]);
    }

    /// `backup db`: pg_dump in a client pod (the fake kubelet runs it as a local process
    /// with the Secret's PG* values), streamed back over attach; Pod and Secret removed.
    #[test]
    fn db_through_client_pod_restores_with_same_row_counts() {
        dump_restores_with_same_row_counts(&[]);
    }
}
