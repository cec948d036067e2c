//! `kubectl astro status`: the real binary against the fixture platform, with the
//! database reachable only from pods. Each check's verdict on the fixture, and flipped
//! when the fixture is fixed; exit codes 0/1/3; read-only; Prometheus output parses.

use std::process::Output;

use base64::Engine;
use e2e_tests::{FakeCluster, cluster_builder, fixture_name};
use serde_json::{Value, json};

fn run(cluster: &FakeCluster, args: &[&str]) -> Output {
    let out = e2e_tests::run(e2e_tests::bin("kubectl-astro-status"), args, cluster);
    e2e_tests::assert_no_secrets(&out);
    out
}

use e2e_tests::output_text as text;

/// Runs `-o json` and returns the exit code and the report.
fn report(cluster: &FakeCluster, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["-o", "json"];
    if !extra.contains(&"--velero-timeout") {
        args.extend(["--velero-timeout", "5"]);
    }
    args.extend_from_slice(extra);
    let out = run(cluster, &args);
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", text(&out)));
    (out.status.code(), v)
}

/// The checks with this id (and subject, when given).
fn checks<'a>(r: &'a Value, check: &str, subject: Option<&str>) -> Vec<&'a Value> {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == check && subject.is_none_or(|s| c["subject"] == s))
        .collect()
}

fn one<'a>(r: &'a Value, check: &str, subject: &str) -> &'a Value {
    let found = checks(r, check, Some(subject));
    assert_eq!(found.len(), 1, "{check} {subject}: {found:?}\n{r:#}");
    found[0]
}

fn verdict(r: &Value, check: &str, subject: &str) -> String {
    one(r, check, subject)["verdict"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn start() -> FakeCluster {
    cluster_builder().pods_only_db().start()
}

/// The fixture platform with the namespace pool of variant-d (Houston's live `dt-prod`
/// row lives in `data-team-prod`), which `fix` can make whole.
fn start_fixable() -> FakeCluster {
    cluster_builder()
        .pods_only_db()
        .variants(&["variant-d"])
        .start()
}

/// Waits until the simulated Velero finished a backup.
fn wait_backup(cluster: &FakeCluster, name: &str) {
    for _ in 0..200 {
        let b = cluster.get("velero.io/v1", "Backup", Some("velero"), name);
        if b.as_ref()
            .is_some_and(|b| b["status"]["phase"] == "Completed")
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("backup {name} did not complete");
}

/// Changes the Velero object `kind`/`name` in namespace velero with `edit`.
fn edit_velero(cluster: &FakeCluster, kind: &str, name: &str, edit: impl FnOnce(&mut Value)) {
    let mut o = cluster
        .get("velero.io/v1", kind, Some("velero"), name)
        .unwrap_or_else(|| panic!("{kind} {name}"));
    edit(&mut o);
    cluster.apply(o);
}

/// The nightly schedule also backs up the pool namespace of dt-prod (variant-d), which
/// was created after the schedule.
fn include_pool_namespace(cluster: &FakeCluster) {
    edit_velero(cluster, "Schedule", "astro-nightly", |s| {
        s["spec"]["template"]["includedNamespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!("data-team-prod"));
    });
}

/// The Redis policy ConfigMap, referenced by the nightly schedule.
fn reference_redis_policy(cluster: &FakeCluster) {
    edit_velero(cluster, "Schedule", "astro-nightly", |s| {
        s["spec"]["template"]["resourcePolicy"] =
            json!({"kind": "configmap", "name": astro::backup::plan::POLICY_CONFIGMAP});
    });
    cluster
        .apply(serde_json::to_value(astro::backup::plan::plan_policy_configmap("velero")).unwrap());
}

/// A backup of the nightly schedule taken now (what the schedule includes), completed.
fn fresh_backup(cluster: &FakeCluster) {
    let included = cluster
        .get("velero.io/v1", "Schedule", Some("velero"), "astro-nightly")
        .unwrap()["spec"]["template"]["includedNamespaces"]
        .clone();
    cluster.apply(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "astro-nightly-fresh", "namespace": "velero",
            "labels": {"velero.io/schedule-name": "astro-nightly"}},
        "spec": {"includedNamespaces": included, "storageLocation": "default"}
    }));
    wait_backup(cluster, "astro-nightly-fresh");
}

/// The deployments' Helm values name the secrets' (pods-only) database host.
fn fix_helm_values(cluster: &FakeCluster) {
    let host = e2e_tests::PODS_ONLY_DB_HOST;
    for ns in cluster.list("v1", "Namespace", None) {
        let ns = ns["metadata"]["name"].as_str().unwrap().to_owned();
        for s in cluster.list("v1", "Secret", Some(&ns)) {
            let name = s["metadata"]["name"].as_str().unwrap_or("");
            if !name.starts_with("sh.helm.release.v1.") || ns == "astronomer" {
                continue;
            }
            let outer = base64::engine::general_purpose::STANDARD
                .decode(s["data"]["release"].as_str().unwrap())
                .unwrap();
            let record = astro::helm::decode_release(&outer).unwrap();
            let fixed: Value = serde_json::from_str(
                &record
                    .to_string()
                    .replace("astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com", host),
            )
            .unwrap();
            let mut s = s.clone();
            s["data"] = json!({});
            s["stringData"] = json!({"release": astro::helm::encode_release(&fixed)});
            cluster.apply(s);
        }
    }
}

/// Fixes every finding of the fixture: a fresh backup of the nightly schedule (which now
/// includes the pool namespace), the Redis policy referenced by it, Helm values naming
/// the secrets' host.
fn fix(cluster: &FakeCluster) {
    include_pool_namespace(cluster);
    reference_redis_policy(cluster);
    fresh_backup(cluster);
    fix_helm_values(cluster);
}

fn dumps() -> tempfile::TempDir {
    dumps_aged(std::time::Duration::ZERO)
}

/// A `--dumps` directory whose one dump was written `ago` before now.
fn dumps_aged(ago: std::time::Duration) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("houston.dump");
    std::fs::write(&path, b"PGDMP fixture").unwrap();
    // Written now by this process's clock (a faked one too: scripts/test-later-date).
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - ago))
        .unwrap();
    dir
}

/// Velero objects status leaves behind (must be none).
fn leftovers(cluster: &FakeCluster) -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["ServerStatusRequest", "DownloadRequest"] {
        for o in cluster.list("velero.io/v1", kind, Some("velero")) {
            out.push(format!("{kind} {}", o["metadata"]["name"]));
        }
    }
    for o in cluster.list("v1", "Pod", Some("astronomer")) {
        if o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl-astro" {
            out.push(format!("Pod {}", o["metadata"]["name"]));
        }
    }
    out
}

#[test]
fn fixture_report_names_holding_backups_and_each_finding() {
    let cluster = start();
    cluster.clear_requests();
    let (code, r) = report(&cluster, &[]);
    assert_eq!(code, Some(1), "{r:#}");
    // Newest backup that holds each live deployment's namespace (as restore decides).
    let newest = fixture_name("astro-nightly-20261124010000");
    for ns in [
        "astronomer",
        "astronomer-weightless-meteor-5042",
        "astronomer-traditional-precession-8767",
        "astronomer-quiet-nebula-3391",
        "astronomer-radiant-quasar-7720",
    ] {
        assert_eq!(one(&r, "backup.age", ns)["backup"], newest.as_str(), "{ns}");
    }
    assert_eq!(
        one(&r, "backup.age", "astronomer-weightless-meteor-5042")["release"],
        "weightless-meteor-5042"
    );
    // Soft-deleted: celestial-zenith's newest holding backup, days left.
    let cz = one(&r, "softdeleted.restorable", "celestial-zenith-1234");
    assert_eq!(
        cz["backup"],
        fixture_name("astro-nightly-20261122010000").as_str(),
        "{cz}"
    );
    let left = cz["daysLeft"].as_i64().unwrap();
    assert!((10..=11).contains(&left), "{cz}");
    assert_eq!(cz["verdict"], "ok");
    // Boreal-aphelion is past the window.
    assert_eq!(
        verdict(&r, "softdeleted.restorable", "boreal-aphelion-0042"),
        "warn"
    );
    // Endpoint: the Helm values still name the RDS host; the secrets name the pods-only host.
    let helm = one(&r, "endpoint.helm", "weightless-meteor-5042");
    assert_eq!(helm["verdict"], "warn");
    assert!(
        helm["message"].as_str().unwrap().contains(
            "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com at data.metadataConnection.host"
        ),
        "{helm}"
    );
    assert_eq!(
        verdict(&r, "redis.policy", astro::backup::plan::POLICY_CONFIGMAP),
        "warn"
    );
    assert_eq!(
        verdict(&r, "database.secret", "astronomer-houston-backend"),
        "ok"
    );
    assert_eq!(verdict(&r, "database.dump", "houston"), "warn");
    assert_eq!(verdict(&r, "velero.server", "server"), "ok");
    assert_eq!(verdict(&r, "velero.location", "default"), "ok");
    assert_eq!(verdict(&r, "schedule.coverage", "(all)"), "ok");
    // Houston's live dt-prod has no namespace here (variant-d is not loaded): nothing holds it.
    assert_eq!(verdict(&r, "backup.age", "data-team-prod"), "fail");
    // Read-only: nothing left behind, and the only writes are the requests and the relay pod.
    assert_eq!(leftovers(&cluster), Vec::<String>::new());
    let writes: Vec<String> = cluster
        .requests()
        .into_iter()
        .filter(|q| !matches!(q.method.as_str(), "GET" | "HEAD"))
        .map(|q| format!("{} {}", q.method, q.path))
        .filter(|w| {
            !(w.contains("/velero/serverstatusrequests")
                // The permission pre-flight (answered, never stored).
                || w.ends_with("/selfsubjectaccessreviews")
                || w.contains("/velero/downloadrequests")
                || w.contains("/namespaces/astronomer/pods/astro-dbrelay-")
                || w == "POST /api/v1/namespaces/astronomer/pods"
                // The relay pod's cleanup also removes a Secret it never needed (404).
                || w.contains("/namespaces/astronomer/secrets/astro-dbrelay-"))
        })
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    let downloads = cluster
        .requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path.ends_with("/downloadrequests"))
        .count();
    assert_eq!(downloads as u64, r["stats"]["downloads"].as_u64().unwrap());
}

#[test]
fn fixed_platform_exits_0_and_each_verdict_flips() {
    let cluster = start_fixable();
    fix(&cluster);
    let dir = dumps();
    let (code, r) = report(&cluster, &["--dumps", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(
        one(&r, "backup.age", "astronomer-weightless-meteor-5042")["backup"],
        "astro-nightly-fresh"
    );
    assert_eq!(
        verdict(&r, "backup.age", "astronomer-weightless-meteor-5042"),
        "ok"
    );
    assert_eq!(verdict(&r, "schedule.runs", "astro-nightly"), "ok");
    assert_eq!(
        verdict(&r, "redis.policy", astro::backup::plan::POLICY_CONFIGMAP),
        "ok"
    );
    assert_eq!(verdict(&r, "endpoint.helm", "weightless-meteor-5042"), "ok");
    assert_eq!(verdict(&r, "database.dump", "houston"), "ok");
    // The text report names the sections and the overall verdict.
    let out = run(&cluster, &["--dumps", dir.path().to_str().unwrap()]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("== Velero ==") && t.contains("overall: WARN"),
        "{}",
        text(&out)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn velero_server_not_answering_exits_3_then_answering_is_ok() {
    let cluster = start_fixable();
    fix(&cluster);
    cluster.velero_set_server_down(true);
    let dir = dumps();
    let (code, r) = report(
        &cluster,
        &[
            "--dumps",
            dir.path().to_str().unwrap(),
            "--velero-timeout",
            "2",
        ],
    );
    assert_eq!(code, Some(3), "{r:#}");
    assert_eq!(verdict(&r, "velero.server", "server"), "unknown");
    assert_eq!(
        verdict(&r, "backup.age", "astronomer-weightless-meteor-5042"),
        "unknown"
    );
    assert_eq!(leftovers(&cluster), Vec::<String>::new());
    cluster.velero_set_server_down(false);
    let (code, r) = report(&cluster, &["--dumps", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(verdict(&r, "velero.server", "server"), "ok");
    assert_eq!(
        verdict(&r, "backup.age", "astronomer-weightless-meteor-5042"),
        "ok"
    );
}

#[test]
fn velero_location_unavailable_or_read_only_fails_then_available_is_ok() {
    let cluster = start_fixable();
    fix(&cluster);
    let dir = dumps();
    let dumps = ["--dumps", dir.path().to_str().unwrap()];
    edit_velero(&cluster, "BackupStorageLocation", "default", |l| {
        l["status"]["phase"] = json!("Unavailable");
        l["status"]["message"] =
            json!("BackupStorageLocation \"default\" is unavailable: NoSuchBucket");
    });
    let (code, r) = report(&cluster, &dumps);
    assert_eq!(code, Some(1), "{r:#}");
    let c = one(&r, "velero.location", "default");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(
        c["message"].as_str().unwrap().contains("NoSuchBucket"),
        "{c}"
    );
    edit_velero(&cluster, "BackupStorageLocation", "default", |l| {
        l["status"]["phase"] = json!("Available");
        l["status"].as_object_mut().unwrap().remove("message");
        l["spec"]["accessMode"] = json!("ReadOnly");
    });
    let (code, r) = report(&cluster, &dumps);
    assert_eq!(code, Some(1), "{r:#}");
    let c = one(&r, "velero.location", "default");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(c["message"].as_str().unwrap().contains("ReadOnly"), "{c}");
    assert!(c["nextStep"].as_str().unwrap().contains("ReadWrite"), "{c}");
    edit_velero(&cluster, "BackupStorageLocation", "default", |l| {
        l["spec"]["accessMode"] = json!("ReadWrite");
    });
    let (code, r) = report(&cluster, &dumps);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(verdict(&r, "velero.location", "default"), "ok");
}

#[test]
fn schedule_runs_paused_or_failed_validation_then_enabled_is_ok() {
    let cluster = start_fixable();
    fix(&cluster);
    let dir = dumps();
    let dumps = ["--dumps", dir.path().to_str().unwrap()];
    edit_velero(&cluster, "Schedule", "astro-nightly", |s| {
        s["spec"]["paused"] = json!(true);
    });
    let (_, r) = report(&cluster, &dumps);
    let c = one(&r, "schedule.runs", "astro-nightly");
    assert_eq!(c["verdict"], "warn", "{c}");
    assert!(c["message"].as_str().unwrap().contains("paused"), "{c}");
    edit_velero(&cluster, "Schedule", "astro-nightly", |s| {
        s["spec"]["paused"] = json!(false);
        s["status"]["phase"] = json!("FailedValidation");
        s["status"]["validationErrors"] = json!(["invalid schedule: 0 1 * *"]);
    });
    let (code, r) = report(&cluster, &dumps);
    assert_eq!(code, Some(1), "{r:#}");
    let c = one(&r, "schedule.runs", "astro-nightly");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("FailedValidation: invalid schedule"),
        "{c}"
    );
    edit_velero(&cluster, "Schedule", "astro-nightly", |s| {
        s["status"] = json!({"phase": "Enabled"});
    });
    let (code, r) = report(&cluster, &dumps);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(verdict(&r, "schedule.runs", "astro-nightly"), "ok");
}

#[test]
fn schedule_runs_missed_fails_then_a_recent_run_is_ok() {
    let cluster = start_fixable();
    // Hourly: the fixture's newest run (yesterday 01:00) is a missed run ago at any time of day.
    edit_velero(&cluster, "Schedule", "astro-nightly", |s| {
        s["spec"]["schedule"] = json!("0 * * * *");
    });
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "schedule.runs", "astro-nightly");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(c["message"].as_str().unwrap().contains("missed"), "{c}");
    fresh_backup(&cluster);
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "schedule.runs", "astro-nightly");
    assert_eq!(c["verdict"], "ok", "{c}");
}

#[test]
fn backup_age_none_or_too_old_fails_then_a_fresh_backup_is_ok() {
    let cluster = start_fixable();
    let args = ["--max-age", "2h"];
    let (_, r) = report(&cluster, &args);
    // The newest fixture backup is from yesterday 01:00; the pool namespace is in none.
    let old = one(&r, "backup.age", "astronomer-weightless-meteor-5042");
    assert_eq!(old["verdict"], "fail", "{old}");
    assert_eq!(
        old["backup"],
        fixture_name("astro-nightly-20261124010000").as_str()
    );
    assert_eq!(verdict(&r, "backup.age", "data-team-prod"), "fail");
    include_pool_namespace(&cluster);
    fresh_backup(&cluster);
    let (_, r) = report(&cluster, &args);
    for ns in [
        "astronomer",
        "astronomer-weightless-meteor-5042",
        "data-team-prod",
    ] {
        let c = one(&r, "backup.age", ns);
        assert_eq!(c["verdict"], "ok", "{c}");
        assert_eq!(c["backup"], "astro-nightly-fresh", "{c}");
    }
}

#[test]
fn redis_policy_missing_warns_then_the_policy_or_the_velero_plugin_is_ok() {
    let cluster = start_fixable();
    let policy = astro::backup::plan::POLICY_CONFIGMAP;
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "redis.policy", policy);
    assert_eq!(c["verdict"], "warn", "{c}");
    assert!(c["message"].as_str().unwrap().contains("missing"), "{c}");
    // The alternative: the Velero plugin that skips Redis data, as the server reports it.
    let plugin = astro::status::checks::REDIS_PLUGIN;
    cluster.velero_set_plugins(&[
        ("ObjectStore", "velero.io/aws"),
        ("RestoreItemAction", plugin),
    ]);
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "redis.policy", policy);
    assert_eq!(c["verdict"], "ok", "{c}");
    assert!(c["message"].as_str().unwrap().contains(plugin), "{c}");
    cluster.velero_set_plugins(&[("ObjectStore", "velero.io/aws")]);
    // The ConfigMap alone is not enough: the schedule must reference it.
    cluster
        .apply(serde_json::to_value(astro::backup::plan::plan_policy_configmap("velero")).unwrap());
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "redis.policy", policy);
    assert_eq!(c["verdict"], "warn", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("does not reference"),
        "{c}"
    );
    reference_redis_policy(&cluster);
    let (_, r) = report(&cluster, &[]);
    assert_eq!(verdict(&r, "redis.policy", policy), "ok");
}

#[test]
fn database_dump_missing_or_too_old_warns_then_a_fresh_dump_is_ok() {
    let cluster = start();
    let (_, r) = report(&cluster, &[]);
    assert_eq!(verdict(&r, "database.dump", "houston"), "warn");
    let empty = tempfile::tempdir().unwrap();
    let (_, r) = report(&cluster, &["--dumps", empty.path().to_str().unwrap()]);
    let c = one(&r, "database.dump", "houston");
    assert_eq!(c["verdict"], "warn", "{c}");
    assert!(c["message"].as_str().unwrap().contains("no dump"), "{c}");
    let old = dumps_aged(std::time::Duration::from_secs(3 * 86400));
    let (_, r) = report(&cluster, &["--dumps", old.path().to_str().unwrap()]);
    let c = one(&r, "database.dump", "houston");
    assert_eq!(c["verdict"], "warn", "{c}");
    assert!(c["message"].as_str().unwrap().contains("old"), "{c}");
    let fresh = dumps();
    let (_, r) = report(&cluster, &["--dumps", fresh.path().to_str().unwrap()]);
    let c = one(&r, "database.dump", "houston");
    assert_eq!(c["verdict"], "ok", "{c}");
}

#[test]
fn endpoint_helm_naming_another_host_warns_then_the_secrets_host_is_ok() {
    let cluster = start_fixable();
    let (_, r) = report(&cluster, &[]);
    assert_eq!(
        verdict(&r, "endpoint.helm", "weightless-meteor-5042"),
        "warn"
    );
    fix_helm_values(&cluster);
    let (_, r) = report(&cluster, &[]);
    let helm = checks(&r, "endpoint.helm", None);
    assert!(!helm.is_empty(), "{r:#}");
    for c in helm {
        assert_eq!(c["verdict"], "ok", "{c}");
    }
}

#[test]
fn schedule_coverage_flags_a_namespace_created_after_the_schedule_then_covers_it() {
    let cluster = start_fixable();
    fix(&cluster);
    cluster.apply(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "astronomer-nova-star-0001",
        "labels": {"platform-release": "astronomer", "platform": "astronomer"}}}),
    );
    let (code, r) = report(&cluster, &[]);
    assert_eq!(code, Some(1));
    let c = one(&r, "schedule.coverage", "astro-nightly");
    assert_eq!(c["verdict"], "fail");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("astronomer-nova-star-0001"),
        "{c}"
    );
    let mut s = cluster
        .get("velero.io/v1", "Schedule", Some("velero"), "astro-nightly")
        .unwrap();
    s["spec"]["template"]["includedNamespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!("astronomer-nova-star-0001"));
    cluster.apply(s);
    let (_, r) = report(&cluster, &[]);
    assert_eq!(verdict(&r, "schedule.coverage", "(all)"), "ok");
}

#[test]
fn database_secret_placeholder_warns_then_a_postgres_url_is_ok() {
    let cluster = cluster_builder()
        .pods_only_db()
        .variants(&["placeholder"])
        .start();
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "database.secret", "astronomer-houston-backend");
    assert_eq!(c["verdict"], "warn", "{c}");
    assert!(c["message"].as_str().unwrap().contains("placeholder"));
    // Houston is still read, through astronomer-bootstrap.
    assert!(
        !checks(&r, "softdeleted.restorable", None).is_empty(),
        "{r:#}"
    );
    // The bootstrapper's rewrite: the bootstrap server's URL with Houston's database.
    let bootstrap = cluster
        .get("v1", "Secret", Some("astronomer"), "astronomer-bootstrap")
        .unwrap();
    let server = base64::engine::general_purpose::STANDARD
        .decode(bootstrap["data"]["connection"].as_str().unwrap())
        .unwrap();
    let url = format!(
        "{}/astronomer_houston?schema=houston%24default",
        String::from_utf8(server).unwrap()
    );
    let mut secret = cluster
        .get(
            "v1",
            "Secret",
            Some("astronomer"),
            "astronomer-houston-backend",
        )
        .unwrap();
    secret["data"] = json!({});
    secret["stringData"] = json!({"connection": url});
    cluster.apply(secret);
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "database.secret", "astronomer-houston-backend");
    assert_eq!(c["verdict"], "ok", "{c}");
}

#[test]
fn softdeleted_restorable_nearing_the_cleanup_warns_then_a_recent_deletion_is_ok() {
    let pg = e2e_tests::pg();
    let db = pg.clone_database("astronomer_houston");
    let cluster = cluster_builder()
        .pods_only_db()
        .substitute("/astronomer_houston?", format!("/{db}?"))
        .start();
    let (_, before) = report(&cluster, &[]);
    assert_eq!(
        verdict(&before, "softdeleted.restorable", "celestial-zenith-1234"),
        "ok"
    );
    pg.query(
        &db,
        r#"UPDATE "houston$default"."Deployment" SET "deletedAt" = (now() AT TIME ZONE 'UTC') - interval '12 days 1 hour' WHERE "releaseName" = 'celestial-zenith-1234'"#,
    );
    let (_, after) = report(&cluster, &[]);
    let c = one(&after, "softdeleted.restorable", "celestial-zenith-1234").clone();
    pg.query(
        &db,
        r#"UPDATE "houston$default"."Deployment" SET "deletedAt" = (now() AT TIME ZONE 'UTC') - interval '1 day 1 hour' WHERE "releaseName" = 'celestial-zenith-1234'"#,
    );
    let (_, fixed) = report(&cluster, &[]);
    pg.drop_database(&db);
    assert_eq!(c["verdict"], "warn", "{c}");
    assert_eq!(c["daysLeft"], 1);
    assert!(c["message"].as_str().unwrap().contains("nearing"), "{c}");
    let c = one(&fixed, "softdeleted.restorable", "celestial-zenith-1234");
    assert_eq!(c["verdict"], "ok", "{c}");
    assert_eq!(c["daysLeft"], 12, "{c}");
}

#[test]
fn prometheus_output_parses() {
    use prometheus_parse::{LineInfo, Scrape, Value as Prom};
    let cluster = start();
    let out = run(&cluster, &["-o", "prometheus"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    // The parser skips what it cannot read: every line must be one it recognises.
    for line in body.lines() {
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored),
            "unparsable line {line:?}\n{body}"
        );
    }
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sample_lines = body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "{body}");
    let gauge = |s: &prometheus_parse::Sample| match s.value {
        Prom::Gauge(v) => v,
        ref other => panic!("{} is not a gauge: {other:?}\n{body}", s.metric),
    };
    for name in [
        "astro_dr_check_ok",
        "astro_dr_last_backup_age_seconds",
        "astro_dr_soft_deleted_days_left",
        "astro_dr_checks",
        "astro_dr_status_timestamp_seconds",
    ] {
        assert!(scrape.docs.contains_key(name), "no HELP for {name}\n{body}");
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "no {name}\n{body}"
        );
    }
    let named = |metric: &str, label: &str, value: &str| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric && s.labels.get(label) == Some(value))
            .map(gauge)
            .collect::<Vec<f64>>()
    };
    let age = named(
        "astro_dr_last_backup_age_seconds",
        "release",
        "weightless-meteor-5042",
    );
    assert_eq!(age.len(), 1, "{body}");
    assert!(age[0] > 0.0, "{body}");
    // One astro_dr_check_ok per check of the JSON report, 1 for ok or warn, else 0.
    let (_, r) = report(&cluster, &[]);
    let all = r["checks"].as_array().unwrap();
    let check_ok: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "astro_dr_check_ok")
        .collect();
    assert_eq!(check_ok.len(), all.len(), "{body}");
    for s in &check_ok {
        let v = gauge(s);
        assert!(v == 0.0 || v == 1.0, "{s:?}");
        let verdict = s.labels.get("verdict").unwrap();
        assert_eq!(v == 1.0, matches!(verdict, "ok" | "warn"), "{s:?}");
        assert!(
            all.iter()
                .any(|c| c["check"] == s.labels.get("check").unwrap()
                    && c["subject"] == s.labels.get("subject").unwrap()
                    && c["verdict"] == verdict),
            "{s:?} not in the JSON report"
        );
    }
    assert_eq!(
        named("astro_dr_check_ok", "check", "redis.policy"),
        vec![1.0]
    );
    let fails = named("astro_dr_checks", "verdict", "fail");
    assert_eq!(
        fails,
        vec![r["summary"]["fail"].as_f64().unwrap()],
        "{body}"
    );
    let left = named(
        "astro_dr_soft_deleted_days_left",
        "release",
        "celestial-zenith-1234",
    );
    assert_eq!(left.len(), 1, "{body}");
    assert!((10.0..=11.0).contains(&left[0]), "{body}");
}

#[test]
fn database_houston_unreadable_is_unknown_then_readable_rows_are_checked() {
    // houston-backend names a database that does not exist.
    let cluster = cluster_builder()
        .pods_only_db()
        .substitute("/astronomer_houston?", "/astronomer_houston_gone?")
        .start();
    let (_, r) = report(&cluster, &[]);
    let c = one(&r, "database.houston", "houston");
    assert_eq!(c["verdict"], "unknown", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("cannot read Houston"),
        "{c}"
    );
    assert!(checks(&r, "softdeleted.restorable", None).is_empty());

    // Point it back at Houston's database: the rows are read and checked.
    let mut secret = cluster
        .get(
            "v1",
            "Secret",
            Some("astronomer"),
            "astronomer-houston-backend",
        )
        .unwrap();
    let url = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["connection"].as_str().unwrap())
        .unwrap();
    let url = String::from_utf8(url)
        .unwrap()
        .replace("/astronomer_houston_gone?", "/astronomer_houston?");
    secret["data"] = json!({});
    secret["stringData"] = json!({"connection": url});
    cluster.apply(secret);
    let (_, r) = report(&cluster, &[]);
    assert!(checks(&r, "database.houston", None).is_empty(), "{r:#}");
    assert!(
        !checks(&r, "softdeleted.restorable", None).is_empty(),
        "{r:#}"
    );
}
