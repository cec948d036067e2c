//! `kubectl astro restore endpoint` end to end: the real binary against the fake cluster
//! loaded with the fixture platform (exact rewrites, sqlproxy, conflicts, SIGKILL, re-runs).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e_tests::fixture_name;
use fake_cluster::{FakeCluster, Fault};
use serde_json::Value;

const OLD_HOST: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";
const NEW_HOST: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";
const NEW_INSTANCE: &str = "acme-data-prod:us-east1:astro-pg-02";
const WM: &str = "astronomer-weightless-meteor-5042";

fn start(variants: &[&str], faults: Vec<Fault>) -> FakeCluster {
    let cluster = e2e_tests::cluster_builder()
        .variants(variants)
        .without_pg()
        .start();
    for fault in faults {
        cluster.inject(fault);
    }
    cluster
}

/// `kubectl-astro-restore SUBCOMMAND args… --kubeconfig …` with a scrubbed environment.
/// (The harness puts `--kubeconfig` before the subcommand, which the restore CLI's
/// `args_conflicts_with_subcommands` reads as a RELEASE argument.)
fn subcommand(cluster: &FakeCluster, sub: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(e2e_tests::bin("kubectl-astro-restore"));
    cmd.arg(sub)
        .args(args)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .env_clear()
        .envs(e2e_tests::fake_clock_env())
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

fn command(cluster: &FakeCluster, args: &[&str]) -> Command {
    subcommand(cluster, "endpoint", args)
}

fn run(cluster: &FakeCluster, args: &[&str]) -> Output {
    command(cluster, args)
        .output()
        .expect("run kubectl-astro-restore")
}

use e2e_tests::output_text as text;

fn move_args(save_to: &Path) -> Vec<String> {
    vec![
        "--db-host".into(),
        NEW_HOST.into(),
        "--db-port".into(),
        "5433".into(),
        "--yes".into(),
        "--save-to".into(),
        save_to.display().to_string(),
    ]
}

fn run_move(cluster: &FakeCluster, save_to: &Path, extra: &[&str]) -> Output {
    let mut args = move_args(save_to);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(cluster, &refs)
}

/// Decoded value of a secret key.
fn secret_value(cluster: &FakeCluster, ns: &str, name: &str, key: &str) -> String {
    let secret = cluster
        .get("v1", "Secret", Some(ns), name)
        .unwrap_or_else(|| panic!("secret {ns}/{name}"));
    decode(&secret["data"][key])
}

fn decode(v: &Value) -> String {
    String::from_utf8(STANDARD.decode(v.as_str().unwrap_or_default()).unwrap()).unwrap()
}

/// Everything a move may touch, normalised: secret data, and pod templates with the
/// restart timestamp blanked (it differs between runs by design).
fn snapshot(cluster: &FakeCluster) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for s in cluster.list("v1", "Secret", None) {
        let key = format!(
            "Secret/{}/{}",
            s["metadata"]["namespace"].as_str().unwrap(),
            s["metadata"]["name"].as_str().unwrap()
        );
        out.insert(key, s["data"].clone());
    }
    for (api, kind) in [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet")] {
        for mut d in cluster.list(api, kind, None) {
            let key = format!(
                "{kind}/{}/{}",
                d["metadata"]["namespace"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            );
            if let Some(a) = d.pointer_mut(
                "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt",
            ) {
                *a = Value::String("<restarted>".into());
            }
            out.insert(key, d["spec"]["template"].clone());
        }
    }
    out
}

fn successful_patches(cluster: &FakeCluster) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in cluster.requests() {
        if r.method == "PATCH" && (200..300).contains(&r.status) {
            *out.entry(r.path.clone()).or_insert(0) += 1;
        }
    }
    out
}

fn patch_count(cluster: &FakeCluster) -> usize {
    cluster
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count()
}

fn saved(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("originals file")).unwrap()
}

fn assert_no_leaks(out: &Output) {
    e2e_tests::assert_no_secrets(out);
}

#[test]
fn moves_the_fixture_platform_exactly() {
    let cluster = start(&[], vec![]);
    let before = snapshot(&cluster);
    let ini_before = secret_value(
        &cluster,
        WM,
        "weightless-meteor-5042-pgbouncer-config",
        "pgbouncer.ini",
    );
    let users_before = secret_value(
        &cluster,
        WM,
        "weightless-meteor-5042-pgbouncer-config",
        "users.txt",
    );
    let dir = tempfile::tempdir().unwrap();
    let save_to = dir.path().join("originals.json");
    let out = run_move(&cluster, &save_to, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_leaks(&out);

    // Fixture §3.2: only the host= and port= tokens of the two [databases] lines change.
    let ini = secret_value(
        &cluster,
        WM,
        "weightless-meteor-5042-pgbouncer-config",
        "pgbouncer.ini",
    );
    let expected = ini_before.replace(
        &format!("host={OLD_HOST} dbname=weightless_meteor_5042_airflow port=5432"),
        &format!("host={NEW_HOST} dbname=weightless_meteor_5042_airflow port=5433"),
    );
    assert_ne!(expected, ini_before);
    assert_eq!(ini, expected);
    assert_eq!(
        ini.lines().nth(1).unwrap(),
        format!(
            "weightless-meteor-5042-metadata = host={NEW_HOST} dbname=weightless_meteor_5042_airflow port=5433 pool_size=3"
        )
    );
    assert_eq!(
        secret_value(
            &cluster,
            WM,
            "weightless-meteor-5042-pgbouncer-config",
            "users.txt"
        ),
        users_before
    );

    // Platform secrets keep credentials, database path and query.
    assert_eq!(
        secret_value(&cluster, "astronomer", "astronomer-bootstrap", "connection"),
        format!("postgres://astro_admin:Sup3r%21Secret@{NEW_HOST}:5433")
    );
    assert_eq!(
        secret_value(
            &cluster,
            "astronomer",
            "astronomer-houston-backend",
            "connection"
        ),
        format!(
            "postgres://astro_admin:Sup3r%21Secret@{NEW_HOST}:5433/astronomer_houston?schema=houston%24default"
        )
    );
    assert!(
        secret_value(
            &cluster,
            "astronomer",
            "astronomer-grafana-backend",
            "connection"
        )
        .contains(&format!("@{NEW_HOST}:5433/astronomer_grafana"))
    );

    // Direct-host keys move; pgbouncer-routed ones stay.
    let nebula = secret_value(
        &cluster,
        "astronomer-quiet-nebula-3391",
        "quiet-nebula-3391-airflow-metadata",
        "connection",
    );
    assert_eq!(
        nebula,
        format!(
            "postgresql://quiet_nebula_3391_airflow:qN3b%40l%3Aa%2F5%25x%23y%3Fz@{NEW_HOST}:5433/quiet_nebula_3391_airflow?sslmode=prefer"
        )
    );
    let keda = secret_value(
        &cluster,
        "astronomer-radiant-quasar-7720",
        "radiant-quasar-7720-airflow-metadata",
        "kedaConnection",
    );
    assert!(
        keda.contains(&format!("@{NEW_HOST}:5433/radiant_quasar_7720_airflow")),
        "{keda}"
    );

    // Nothing else changed among secrets: every changed secret is one we meant to change.
    let after = snapshot(&cluster);
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| k.starts_with("Secret/") && before.get(*k) != after.get(*k))
        .collect();
    for key in &changed {
        assert!(
            key.ends_with("-bootstrap")
                || key.ends_with("-houston-backend")
                || key.ends_with("-grafana-backend")
                || key.ends_with("-pgbouncer-config")
                || key.ends_with("-airflow-metadata"),
            "unexpected change to {key}"
        );
    }
    assert!(
        changed
            .iter()
            .any(|k| k.ends_with("radiant-quasar-7720-pgbouncer-config"))
    );

    // Readers restarted (pod-template annotation), missing ones skipped with a note.
    let houston = cluster
        .get(
            "apps/v1",
            "Deployment",
            Some("astronomer"),
            "astronomer-houston",
        )
        .unwrap();
    assert!(
        houston
            .pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
            .is_some()
    );
    let pgb = cluster
        .get(
            "apps/v1",
            "Deployment",
            Some(WM),
            "weightless-meteor-5042-pgbouncer",
        )
        .unwrap();
    assert!(
        pgb.pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
            .is_some()
    );

    // Originals saved, 0600, decoded true values.
    let file = saved(&save_to);
    assert_eq!(
        file["objects"][format!("Secret/{WM}/weightless-meteor-5042-pgbouncer-config")]["values"]["pgbouncer.ini"],
        Value::String(ini_before)
    );
    assert_eq!(
        file["objects"]["Secret/astronomer/astronomer-bootstrap"]["values"]["connection"],
        format!("postgres://astro_admin:Sup3r%21Secret@{OLD_HOST}:5432")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&save_to).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // §1.6: Helm values still name the old host; reported.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Helm values of release weightless-meteor-5042"),
        "{stderr}"
    );

    // A second run changes nothing.
    cluster.clear_requests();
    let again = run_move(&cluster, &save_to, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(patch_count(&cluster), 0, "{}", text(&again));
    assert_eq!(snapshot(&cluster), after);
    assert_eq!(
        saved(&save_to),
        file,
        "the second run must not touch the originals"
    );
    // --check now reports only the Helm values (exit 1), and changes nothing.
    let check = run(
        &cluster,
        &[
            "--db-host",
            NEW_HOST,
            "--db-port",
            "5433",
            "--check",
            "--save-to",
            save_to.to_str().unwrap(),
        ],
    );
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("0 value patches"),
        "{}",
        text(&check)
    );
    assert_eq!(patch_count(&cluster), 0);
}

#[test]
fn dry_run_prints_redacted_diffs_and_changes_nothing() {
    let cluster = start(&[], vec![]);
    let before = snapshot(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let save_to = dir.path().join("o.json");
    let out = run_move(&cluster, &save_to, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("-weightless-meteor-5042-metadata = host={OLD_HOST} dbname=weightless_meteor_5042_airflow port=5432 pool_size=3")), "{stdout}");
    assert!(stdout.contains(&format!("+weightless-meteor-5042-metadata = host={NEW_HOST} dbname=weightless_meteor_5042_airflow port=5433 pool_size=3")), "{stdout}");
    assert!(stdout.contains(&format!("+postgres://astro_admin:***@{NEW_HOST}:5433/astronomer_houston?schema=houston%24default")), "{stdout}");
    assert!(
        stdout.contains("would restart Deployment astronomer/astronomer-houston"),
        "{stdout}"
    );
    assert_no_leaks(&out);
    assert!(!stdout.contains("Sup3r"));
    assert_eq!(patch_count(&cluster), 0);
    assert_eq!(snapshot(&cluster), before);
    assert!(!save_to.exists());
}

#[test]
fn refuses_without_tty_or_yes() {
    let cluster = start(&[], vec![]);
    let out = run(
        &cluster,
        &["--db-host", NEW_HOST, "--save-to", "/nonexistent/x.json"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "{}",
        text(&out)
    );
    assert_eq!(patch_count(&cluster), 0);
}

#[test]
fn sqlproxy_variant_b_changes_only_the_instances_element() {
    let cluster = start(&["variant-b"], vec![]);
    let before = snapshot(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let save_to = dir.path().join("o.json");
    let out = run(
        &cluster,
        &[
            "--sqlproxy-instance",
            NEW_INSTANCE,
            "--yes",
            "--save-to",
            save_to.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = snapshot(&cluster);
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert_eq!(
        changed,
        vec!["Deployment/astronomer/pg-sqlproxy-gcloud-sqlproxy"]
    );
    let d = cluster
        .get(
            "apps/v1",
            "Deployment",
            Some("astronomer"),
            "pg-sqlproxy-gcloud-sqlproxy",
        )
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!([
            "/cloud_sql_proxy",
            "--dir=/cloudsql",
            "-instances=acme-data-prod:us-east1:astro-pg-02=tcp:0.0.0.0:5432,",
            "-credential_file=/secrets/cloudsql/credentials.json"
        ])
    );
    assert_eq!(
        saved(&save_to)["objects"]["Deployment/astronomer/pg-sqlproxy-gcloud-sqlproxy"]["values"]["sqlproxy.command[2]"],
        "-instances=acme-data-prod:us-east1:astro-pg-01=tcp:0.0.0.0:5432,"
    );
    cluster.clear_requests();
    let again = run(
        &cluster,
        &[
            "--sqlproxy-instance",
            NEW_INSTANCE,
            "--yes",
            "--save-to",
            save_to.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(patch_count(&cluster), 0);
}

/// The state after one clean, uninterrupted run on a fresh cluster.
fn reference() -> (
    BTreeMap<String, Value>,
    BTreeMap<String, Value>,
    BTreeMap<String, usize>,
) {
    let cluster = start(&[], vec![]);
    let initial = snapshot(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let out = run_move(&cluster, &dir.path().join("o.json"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (initial, snapshot(&cluster), successful_patches(&cluster))
}

#[test]
fn conflicts_are_replanned_and_each_object_is_patched_once() {
    let (_, expected, clean_patches) = reference();
    let cluster = start(
        &[],
        vec![Fault::ConflictRate {
            fraction: 0.3,
            kinds: vec![],
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_move(&cluster, &dir.path().join("o.json"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let conflicts = cluster
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.status == 409)
        .count();
    assert!(conflicts > 0, "the fault should have produced conflicts");
    let patched = successful_patches(&cluster);
    assert_eq!(
        patched, clean_patches,
        "every object patched exactly once, the same ones as a clean run"
    );
    assert!(patched.values().all(|&n| n == 1));
    assert_eq!(snapshot(&cluster), expected);
}

#[test]
fn sigkill_at_ten_points_then_rerun_converges() {
    let (initial, expected, clean_patches) = reference();
    assert!(
        clean_patches.len() >= 11,
        "the move should have more than 10 patches: {clean_patches:?}"
    );
    for k in 1..=10 {
        let cluster = start(&[], vec![Fault::Latency(Duration::from_millis(40))]);
        let dir = tempfile::tempdir().unwrap();
        let save_to = dir.path().join("o.json");
        let args = move_args(&save_to);
        let mut child = command(
            &cluster,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .args(["--concurrency", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while patch_count(&cluster) < k {
            assert!(Instant::now() < deadline, "no {k}th PATCH seen");
            assert!(
                child.try_wait().unwrap().is_none(),
                "k={k}: the run ended before it was killed"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "k={k}: the run ended before it was killed"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_ne!(
            snapshot(&cluster),
            expected,
            "k={k}: the killed run must have left work undone"
        );
        cluster.clear_faults();
        let out = run_move(&cluster, &save_to, &[]);
        assert_eq!(out.status.code(), Some(0), "k={k}: {}", text(&out));
        assert_eq!(
            snapshot(&cluster),
            expected,
            "k={k}: end state differs from an uninterrupted run"
        );
        // The saved file holds the true originals (the fixture values), never moved ones.
        let file = saved(&save_to);
        let objects = file["objects"].as_object().unwrap();
        assert!(
            objects.contains_key("Secret/astronomer/astronomer-bootstrap"),
            "k={k}"
        );
        for (id, object) in objects {
            let Some(secret_key) = id.strip_prefix("Secret/") else {
                continue;
            };
            let original = &initial[&format!("Secret/{secret_key}")];
            for (key, value) in object["values"].as_object().unwrap() {
                assert_eq!(
                    decode(&original[key]),
                    value.as_str().unwrap(),
                    "k={k}: {id} {key}"
                );
            }
        }
        for path in clean_patches.keys().filter(|p| p.contains("/secrets/")) {
            let (ns, name) = secret_of(path);
            assert!(
                objects.contains_key(&format!("Secret/{ns}/{name}")),
                "k={k}: {path} not saved"
            );
        }
    }
}

fn secret_of(path: &str) -> (String, String) {
    // /api/v1/namespaces/NS/secrets/NAME
    let parts: Vec<&str> = path.split('/').collect();
    (parts[4].to_owned(), parts[6].to_owned())
}

fn start_with_velero() -> FakeCluster {
    e2e_tests::cluster_builder().without_pg().start()
}

fn run_platform(cluster: &FakeCluster, args: &[&str]) -> Output {
    subcommand(cluster, "platform", args)
        .output()
        .expect("run kubectl-astro-restore platform")
}

fn bsl_access_mode(cluster: &FakeCluster) -> String {
    let bsl = cluster
        .get(
            "velero.io/v1",
            "BackupStorageLocation",
            Some("velero"),
            "default",
        )
        .unwrap();
    bsl["spec"]["accessMode"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn platform_restore_sets_read_only_restores_everything_then_moves() {
    let cluster = start_with_velero();
    let dir = tempfile::tempdir().unwrap();
    let save_to = dir.path().join("o.json");
    let out = run_platform(
        &cluster,
        &[
            "--from-backup",
            &fixture_name("astro-nightly-20261124010000"),
            "--db-host",
            NEW_HOST,
            "--db-port",
            "5433",
            "--yes",
            "--save-to",
            save_to.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_leaks(&out);
    assert_eq!(bsl_access_mode(&cluster), "ReadOnly");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"accessMode\":\"ReadWrite\""),
        "prints how to set it back: {stdout}"
    );
    let restores = cluster.list("velero.io/v1", "Restore", Some("velero"));
    let ours: Vec<&Value> = restores
        .iter()
        .filter(|r| {
            r["spec"]["backupName"] == fixture_name("astro-nightly-20261124010000").as_str()
        })
        .collect();
    assert_eq!(ours.len(), 1, "{restores:?}");
    assert_eq!(
        ours[0]["spec"]["includedNamespaces"],
        serde_json::json!(["*"])
    );
    assert_eq!(ours[0]["status"]["phase"], "Completed");
    assert_eq!(
        secret_value(&cluster, "astronomer", "astronomer-bootstrap", "connection"),
        format!("postgres://astro_admin:Sup3r%21Secret@{NEW_HOST}:5433")
    );
    // The BSL was made read-only before the Restore was created.
    let requests = cluster.requests();
    let bsl_patch = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.path.contains("backupstoragelocations/default"));
    let restore_post = requests
        .iter()
        .position(|r| r.method == "POST" && r.path.ends_with("/restores"));
    assert!(
        bsl_patch.is_some() && bsl_patch < restore_post,
        "{bsl_patch:?} {restore_post:?}"
    );
}

#[test]
fn platform_restore_refuses_unusable_backup_and_keeps_read_write_on_request() {
    let cluster = start_with_velero();
    let out = run_platform(
        &cluster,
        &[
            "--from-backup",
            &fixture_name("astro-manual-20261122050000"),
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not usable"),
        "{}",
        text(&out)
    );
    let missing = run_platform(&cluster, &["--from-backup", "no-such-backup", "--yes"]);
    assert_eq!(missing.status.code(), Some(3), "{}", text(&missing));
    assert_eq!(bsl_access_mode(&cluster), "ReadWrite");
    assert!(
        cluster
            .list("velero.io/v1", "Restore", Some("velero"))
            .is_empty()
    );

    let kept = run_platform(
        &cluster,
        &[
            "--from-backup",
            &fixture_name("astro-nightly-20261124010000"),
            "--keep-read-write",
            "--yes",
        ],
    );
    assert_eq!(kept.status.code(), Some(0), "{}", text(&kept));
    assert_eq!(bsl_access_mode(&cluster), "ReadWrite");
    assert_eq!(
        cluster
            .list("velero.io/v1", "Restore", Some("velero"))
            .len(),
        1
    );
}

#[test]
fn renamed_platform_release_is_detected() {
    let cluster = start(&["renamed-release"], vec![]);
    let dir = tempfile::tempdir().unwrap();
    let out = run_move(&cluster, &dir.path().join("o.json"), &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value =
        serde_json::from_slice(&out.stdout).expect("-o json prints one JSON document");
    assert_eq!(report["new_endpoint"], format!("{NEW_HOST}:5433"));
    assert!(
        secret_value(
            &cluster,
            "astronomer",
            "astro-houston-backend",
            "connection"
        )
        .contains(&format!("@{NEW_HOST}:5433/astro_houston")),
    );
    let restarted: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "restart" && c["outcome"] == "patched")
        .filter_map(|c| c["object"].as_str())
        .collect();
    assert!(
        restarted.contains(&"Deployment astronomer/astro-houston"),
        "{restarted:?}"
    );
    assert!(
        restarted.contains(&"StatefulSet astronomer/astro-prometheus"),
        "{restarted:?}"
    );
}

#[test]
fn placeholder_houston_backend_is_left_for_the_bootstrapper() {
    let cluster = start(&["placeholder"], vec![]);
    let dir = tempfile::tempdir().unwrap();
    let out = run_move(&cluster, &dir.path().join("o.json"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        secret_value(
            &cluster,
            "astronomer",
            "astronomer-houston-backend",
            "connection"
        ),
        "k3Zq9"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("placeholder"),
        "{}",
        text(&out)
    );
    assert!(
        secret_value(&cluster, "astronomer", "astronomer-bootstrap", "connection")
            .contains(&format!("@{NEW_HOST}:5433"))
    );
}
