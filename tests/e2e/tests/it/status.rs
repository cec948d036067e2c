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

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

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

/// Fixes every finding of the fixture: a fresh backup of the nightly schedule, the Redis
/// policy referenced by it, Helm values naming the secrets' host.
fn fix(cluster: &FakeCluster) {
    let mut schedule = cluster
        .get("velero.io/v1", "Schedule", Some("velero"), "astro-nightly")
        .unwrap();
    schedule["spec"]["template"]["resourcePolicy"] =
        json!({"kind": "configmap", "name": astro::backup::plan::POLICY_CONFIGMAP});
    // The pool namespace of dt-prod (variant-d) was created after the schedule.
    schedule["spec"]["template"]["includedNamespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!("data-team-prod"));
    let included = schedule["spec"]["template"]["includedNamespaces"].clone();
    cluster.apply(schedule);
    cluster
        .apply(serde_json::to_value(astro::backup::plan::plan_policy_configmap("velero")).unwrap());
    cluster.apply(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "astro-nightly-fresh", "namespace": "velero",
            "labels": {"velero.io/schedule-name": "astro-nightly"}},
        "spec": {"includedNamespaces": included, "storageLocation": "default"}
    }));
    wait_backup(cluster, "astro-nightly-fresh");
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

fn dumps() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("houston.dump");
    std::fs::write(&path, b"PGDMP fixture").unwrap();
    // Written now by this process's clock (a faked one too: scripts/test-later-date).
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
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
fn velero_not_answering_exits_3() {
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
}

#[test]
fn a_namespace_created_after_the_schedule_is_flagged_then_covered() {
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
fn placeholder_houston_backend_warns() {
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
}

#[test]
fn soft_deleted_deployment_nearing_the_cleanup_warns() {
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
    let c = one(&after, "softdeleted.restorable", "celestial-zenith-1234");
    pg.drop_database(&db);
    assert_eq!(c["verdict"], "warn", "{c}");
    assert_eq!(c["daysLeft"], 1);
    assert!(c["message"].as_str().unwrap().contains("nearing"), "{c}");
}

/// One parsed sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A validator of the Prometheus text exposition format (0.0.4): HELP/TYPE comments,
/// `name{label="value",...} number` samples with escaped label values, TYPE before samples.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for (i, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(n), Some(t)) => {
                    if !name_ok(n)
                        || !["gauge", "counter", "untyped", "summary", "histogram"].contains(&t)
                    {
                        return Err(err("bad TYPE"));
                    }
                    if !typed.insert(n.to_owned()) {
                        return Err(err("TYPE twice"));
                    }
                }
                (Some("HELP"), Some(n), _) if name_ok(n) => {}
                _ => return Err(err("bad comment")),
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(p) => line.split_at(p),
            None => return Err(err("no value")),
        };
        if !name_ok(name) || !typed.contains(name) {
            return Err(err("bad or untyped metric name"));
        }
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            // name="value" pairs separated by commas, up to the closing brace.
            let mut it = body.char_indices();
            let close = loop {
                let mut lname = String::new();
                let mut c = it.next().ok_or_else(|| err("unterminated labels"))?;
                if c.1 == '}' && labels.is_empty() {
                    break c.0;
                }
                while c.1 != '=' {
                    lname.push(c.1);
                    c = it.next().ok_or_else(|| err("label without value"))?;
                }
                if !name_ok(&lname) || it.next().map(|c| c.1) != Some('"') {
                    return Err(err("bad label"));
                }
                let mut value = String::new();
                loop {
                    match it.next().ok_or_else(|| err("unterminated label value"))?.1 {
                        '\\' => match it.next().map(|c| c.1) {
                            Some('n') => value.push('\n'),
                            Some(e @ ('\\' | '"')) => value.push(e),
                            _ => return Err(err("bad escape")),
                        },
                        '"' => break,
                        ch => value.push(ch),
                    }
                }
                labels.push((lname, value));
                match it.next() {
                    Some((_, ',')) => {}
                    Some((p, '}')) => break p,
                    _ => return Err(err("expected , or }")),
                }
            };
            rest = &body[close + 1..];
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before value"))?;
        let value: f64 = value
            .split(' ')
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| err("bad value"))?;
        samples.push((name.to_owned(), labels, value));
    }
    Ok(samples)
}

#[test]
fn prometheus_output_parses() {
    let cluster = start();
    let out = run(&cluster, &["-o", "prometheus"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let body = String::from_utf8_lossy(&out.stdout);
    let samples = parse_prometheus(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    let age = samples
        .iter()
        .find(|(n, l, _)| {
            n == "astro_dr_last_backup_age_seconds"
                && l.contains(&("release".into(), "weightless-meteor-5042".into()))
        })
        .unwrap_or_else(|| panic!("{body}"));
    assert!(age.2 > 0.0);
    assert!(samples.iter().any(|(n, l, v)| n == "astro_dr_check_ok"
        && l.contains(&("check".into(), "redis.policy".into()))
        && *v == 1.0));
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "astro_dr_soft_deleted_days_left"
                && l.contains(&("release".into(), "celestial-zenith-1234".into())))
    );
    assert!(parse_prometheus("astro_x 1\n").is_err());
    assert!(parse_prometheus("# TYPE a gauge\na{b=\"c} 1\n").is_err());
}
