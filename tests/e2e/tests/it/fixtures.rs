//! The fixture platform itself: every YAML parses into valid-looking Kubernetes objects,
//! Velero objects satisfy the real CRD schemas, variants render, and the values the
//! other tests rely on (pgbouncer.ini bytes, Helm release payload, secrets list) hold.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use base64::Engine;
use e2e_tests::{
    FIXTURE_DB_HOST, FIXTURE_SECRETS, db_substitutions, fixtures_dir, load_dir, object_key,
    removals, render_fixtures, render_fixtures_shifted, velero_crd_dir, yaml_files,
};
use serde_json::Value;

const VARIANTS: &[&str] = &[
    "variant-b",
    "variant-c",
    "variant-d",
    "renamed-release",
    "placeholder",
];

/// §3.2 of research/astronomer-fixtures.md, byte for byte.
const WEIGHTLESS_METEOR_INI: &str = "[databases]
weightless-meteor-5042-metadata = host=astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com dbname=weightless_meteor_5042_airflow port=5432 pool_size=3
weightless-meteor-5042-result-backend = host=astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com dbname=weightless_meteor_5042_airflow port=5432 pool_size=2

[pgbouncer]
pool_mode = transaction
listen_port = 6543
server_tls_sslmode = prefer
listen_addr = *
auth_type = md5
auth_file = /etc/pgbouncer/users.txt
stats_users = weightless_meteor_5042_airflow
ignore_startup_parameters = extra_float_digits
max_client_conn = 100
verbose = 0
log_disconnections = 0
log_connections = 0
";

fn all_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !yaml_files(p).is_empty())
        .collect();
    dirs.sort();
    dirs
}

fn keep(text: &str) -> String {
    text.to_owned()
}

use astro::restore::plan::is_dns_label;

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

fn cluster_scoped(kind: &str) -> bool {
    matches!(kind, "Namespace" | "PersistentVolume")
}

fn secret_values(secret: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(map) = secret["stringData"].as_object() {
        for (k, v) in map {
            out.push((k.clone(), v.as_str().expect("stringData value").to_owned()));
        }
    }
    if let Some(map) = secret["data"].as_object() {
        for (k, v) in map {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().expect("data value"))
                .unwrap_or_else(|e| panic!("data.{k} is not base64: {e}"));
            out.push((k.clone(), String::from_utf8(bytes).expect("utf-8 secret")));
        }
    }
    out
}

fn find<'a>(objects: &'a [Value], kind: &str, ns: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["namespace"].as_str().unwrap_or("") == ns
                && o["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no {kind} {ns}/{name}"))
}

fn value(secret: &Value, key: &str) -> String {
    secret_values(secret)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("secret has no key {key}"))
        .1
}

#[test]
fn every_fixture_object_is_well_formed() {
    let mut count = 0;
    for dir in all_dirs() {
        let mut seen = BTreeSet::new();
        for doc in load_dir(&dir, &keep) {
            let o = &doc.object;
            let at = format!("{} ({:?})", doc.file.display(), object_key(o));
            count += 1;
            assert!(seen.insert(object_key(o)), "duplicate object {at}");
            let kind = o["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("no kind: {at}"));
            assert!(o["apiVersion"].is_string(), "no apiVersion: {at}");
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("no name: {at}"));
            assert!(is_dns_subdomain(name), "bad name: {at}");
            match o["metadata"]["namespace"].as_str() {
                Some(ns) => {
                    assert!(!cluster_scoped(kind), "cluster-scoped with namespace: {at}");
                    assert!(is_dns_label(ns), "bad namespace: {at}");
                }
                None => assert!(cluster_scoped(kind), "namespaced without namespace: {at}"),
            }
            if kind == "Namespace" {
                assert!(is_dns_label(name), "bad namespace name: {at}");
                assert_eq!(
                    o["metadata"]["labels"]["kubernetes.io/metadata.name"], name,
                    "namespace without its automatic label: {at}"
                );
            }
            if let Some(labels) = o["metadata"]["labels"].as_object() {
                for (k, v) in labels {
                    let v = v
                        .as_str()
                        .unwrap_or_else(|| panic!("non-string label {k}: {at}"));
                    assert!(
                        is_label_key(k) && is_label_value(v),
                        "bad label {k}={v}: {at}"
                    );
                }
            }
            match kind {
                "Secret" => {
                    assert!(o["type"].is_string(), "secret without type: {at}");
                    assert!(!secret_values(o).is_empty(), "empty secret: {at}");
                }
                "Deployment" | "StatefulSet" => {
                    let selector = o["spec"]["selector"]["matchLabels"].as_object().unwrap();
                    let pod = &o["spec"]["template"]["metadata"]["labels"];
                    for (k, v) in selector {
                        assert_eq!(&pod[k], v, "selector {k} not on the pod template: {at}");
                    }
                    let containers = o["spec"]["template"]["spec"]["containers"]
                        .as_array()
                        .unwrap();
                    assert!(!containers.is_empty(), "no containers: {at}");
                    for c in containers {
                        assert!(
                            c["name"].is_string() && c["image"].is_string(),
                            "container: {at}"
                        );
                    }
                }
                _ => {}
            }
        }
    }
    assert!(count > 150, "only {count} fixture objects found");
}

/// Every Velero object validates against the openAPIV3Schema of its real CRD.
#[test]
fn velero_objects_match_the_crd_schemas() {
    let crd_dir = velero_crd_dir();
    let mut schemas = std::collections::BTreeMap::new();
    for file in yaml_files(&crd_dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        for crd in e2e_tests::parse_yaml_docs(&text).unwrap() {
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                let api = format!("velero.io/{}", version["name"].as_str().unwrap());
                schemas.insert(
                    (api, kind.clone()),
                    version["schema"]["openAPIV3Schema"].clone(),
                );
            }
        }
    }
    assert!(
        schemas.len() >= 8,
        "CRDs not found in {}",
        crd_dir.display()
    );
    let mut checked = 0;
    for dir in all_dirs() {
        for doc in load_dir(&dir, &keep) {
            let o = &doc.object;
            let api = o["apiVersion"].as_str().unwrap();
            if !api.starts_with("velero.io/") {
                continue;
            }
            let kind = o["kind"].as_str().unwrap();
            let schema = schemas
                .get(&(api.to_owned(), kind.to_owned()))
                .unwrap_or_else(|| panic!("no CRD for {api} {kind}"));
            let validator = jsonschema::validator_for(schema).expect("CRD schema compiles");
            let errors: Vec<String> = validator.iter_errors(o).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{} {kind} invalid: {errors:?}",
                doc.file.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} Velero objects checked");
}

#[test]
fn platform_and_every_variant_render_with_consistent_namespaces() {
    for variants in std::iter::once(&[][..]).chain(VARIANTS.iter().map(std::slice::from_ref)) {
        let objects = render_fixtures(variants, &db_substitutions("127.0.0.1", 15432));
        let namespaces: BTreeSet<&str> = objects
            .iter()
            .filter(|o| o["kind"] == "Namespace")
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        for o in &objects {
            if let Some(ns) = o["metadata"]["namespace"].as_str() {
                assert!(
                    namespaces.contains(ns),
                    "{variants:?}: {:?} in missing namespace",
                    object_key(o)
                );
            }
            let text = o.to_string();
            assert!(
                !text.contains(FIXTURE_DB_HOST),
                "{variants:?}: unsubstituted host in {:?}",
                object_key(o)
            );
        }
        assert!(namespaces.contains("astronomer") && namespaces.contains("velero"));
    }
}

#[test]
fn deleted_deployments_have_no_namespace_but_backup_contents() {
    let objects = render_fixtures(&[], &[]);
    let names: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    for gone in [
        "celestial-zenith-1234",
        "boreal-aphelion-0042",
        "gusty-perihelion-7311",
    ] {
        assert!(
            !names.contains(format!("astronomer-{gone}").as_str()),
            "{gone}"
        );
    }
    // The trap namespace is there, without platform labels.
    let tools = find(&objects, "Namespace", "", "astronomer-tools");
    assert!(tools["metadata"]["labels"].get("platform").is_none());
    assert!(
        tools["metadata"]["labels"]
            .get("platform-release")
            .is_none()
    );
    // The saved contents of the deleted namespaces exist for the simulated Velero.
    let saved = load_dir(&fixtures_dir().join("velero-backups"), &keep);
    assert!(saved.iter().any(|d| d.object["kind"] == "Namespace"
        && d.object["metadata"]["name"] == "astronomer-celestial-zenith-1234"));
}

#[test]
fn backups_include_the_deleted_namespace_only_before_its_deletion() {
    let objects = render_fixtures_shifted(&[], &[], 0);
    let mut backups: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Backup").collect();
    backups.sort_by_key(|b| b["status"]["startTimestamp"].as_str().unwrap().to_owned());
    let holds = |b: &Value, ns: &str| {
        b["spec"]["includedNamespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == ns)
    };
    let newest_usable = backups
        .iter()
        .rev()
        .find(|b| {
            b["status"]["phase"] == "Completed" && holds(b, "astronomer-celestial-zenith-1234")
        })
        .unwrap();
    assert_eq!(
        newest_usable["metadata"]["name"],
        "astro-nightly-20261122010000"
    );
    let newest_any = backups
        .iter()
        .rev()
        .find(|b| holds(b, "astronomer-celestial-zenith-1234"))
        .unwrap();
    assert_eq!(newest_any["status"]["phase"], "Failed");
    let bsl = find(&objects, "BackupStorageLocation", "velero", "default");
    assert_eq!(bsl["status"]["phase"], "Available");
    assert_eq!(bsl["spec"]["accessMode"], "ReadWrite");
}

#[test]
fn dates_shift_to_today() {
    let objects = render_fixtures(&[], &[]);
    let newest = objects
        .iter()
        .filter(|o| o["kind"] == "Backup")
        .map(|b| b["status"]["startTimestamp"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    let yesterday = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .yesterday()
        .unwrap();
    assert!(
        newest.starts_with(&yesterday.to_string()),
        "{newest} vs {yesterday}"
    );
    // Names follow their timestamps.
    let stamp = yesterday.strftime("%Y%m%d").to_string();
    assert!(
        objects
            .iter()
            .any(|o| o["kind"] == "Backup"
                && o["metadata"]["name"].as_str().unwrap().contains(&stamp))
    );
}

#[test]
fn pgbouncer_ini_is_byte_exact_and_substitutes() {
    let raw = render_fixtures_shifted(&[], &[], 0);
    let secret = find(
        &raw,
        "Secret",
        "astronomer-weightless-meteor-5042",
        "weightless-meteor-5042-pgbouncer-config",
    );
    assert_eq!(value(secret, "pgbouncer.ini"), WEIGHTLESS_METEOR_INI);
    assert_eq!(
        value(secret, "users.txt"),
        "\"weightless_meteor_5042_airflow\" \"mT4hQ9vZr2LwX8cN1bK6pS3dF7gJ0yEu\"\n\"weightless_meteor_5042_celery\" \"Pp2sW8nRk5YtA1zQ9xC4vB7mL3hJ6dGf\"\n"
    );

    let quasar = find(
        &raw,
        "Secret",
        "astronomer-radiant-quasar-7720",
        "radiant-quasar-7720-pgbouncer-config",
    );
    let ini = value(quasar, "pgbouncer.ini");
    let lines: Vec<&str> = ini.lines().collect();
    assert!(
        lines[1].ends_with("pool_size=10 reserve_pool_size=5 max_db_connections=20"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with("pool_size=5 "),
        "trailing space kept: {:?}",
        lines[2]
    );

    let local = render_fixtures_shifted(&[], &db_substitutions("127.0.0.1", 15432), 0);
    let secret = find(
        &local,
        "Secret",
        "astronomer-weightless-meteor-5042",
        "weightless-meteor-5042-pgbouncer-config",
    );
    let expected = WEIGHTLESS_METEOR_INI
        .replace(&format!("host={FIXTURE_DB_HOST} "), "host=127.0.0.1 ")
        .replace("port=5432 ", "port=15432 ");
    assert_eq!(value(secret, "pgbouncer.ini"), expected);
    assert!(expected.contains("listen_port = 6543"));
}

fn helm_release(secret: &Value) -> Value {
    // stringData holds Helm's own base64(gzip(json)); the API server adds one more base64.
    let inner = value(secret, "release");
    let gz = base64::engine::general_purpose::STANDARD
        .decode(inner.trim())
        .unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

#[test]
fn helm_release_secrets_decode_to_their_charts() {
    let objects = render_fixtures(&[], &[]);
    let platform = find(
        &objects,
        "Secret",
        "astronomer",
        "sh.helm.release.v1.astronomer.v1",
    );
    assert_eq!(platform["type"], "helm.sh/release.v1");
    for (k, v) in [
        ("owner", "helm"),
        ("name", "astronomer"),
        ("status", "deployed"),
    ] {
        assert_eq!(platform["metadata"]["labels"][k], v);
    }
    let release = helm_release(platform);
    assert_eq!(release["chart"]["metadata"]["name"], "astronomer");
    assert_eq!(release["name"], "astronomer");
    assert_eq!(release["info"]["status"], "deployed");

    let airflow = find(
        &objects,
        "Secret",
        "astronomer-weightless-meteor-5042",
        "sh.helm.release.v1.weightless-meteor-5042.v3",
    );
    let release = helm_release(airflow);
    assert_eq!(release["chart"]["metadata"]["name"], "airflow");
    assert_eq!(
        release["config"]["data"]["metadataConnection"]["host"],
        FIXTURE_DB_HOST
    );

    let renamed = render_fixtures(&["renamed-release"], &[]);
    let astro = find(
        &renamed,
        "Secret",
        "astronomer",
        "sh.helm.release.v1.astro.v1",
    );
    assert_eq!(
        helm_release(astro)["chart"]["metadata"]["name"],
        "astronomer"
    );
    assert!(
        renamed
            .iter()
            .all(|o| o["metadata"]["name"] != "sh.helm.release.v1.astronomer.v1")
    );
    assert!(
        renamed
            .iter()
            .all(|o| o["metadata"]["name"] != "astronomer-houston-backend")
    );
    find(&renamed, "Secret", "astronomer", "astro-houston-backend");
}

#[test]
fn variants_replace_what_they_say() {
    let b = render_fixtures(&["variant-b"], &[]);
    let boot = find(&b, "Secret", "astronomer", "astronomer-bootstrap");
    assert_eq!(
        value(boot, "connection"),
        "postgres://airflow:gcpPassw0rd@pg-sqlproxy-gcloud-sqlproxy.astronomer:5432"
    );
    let proxy = find(
        &b,
        "Deployment",
        "astronomer",
        "pg-sqlproxy-gcloud-sqlproxy",
    );
    assert_eq!(
        proxy["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!([
            "/cloud_sql_proxy",
            "--dir=/cloudsql",
            "-instances=acme-data-prod:us-east1:astro-pg-01=tcp:0.0.0.0:5432,",
            "-credential_file=/secrets/cloudsql/credentials.json"
        ])
    );
    find(&b, "Service", "astronomer", "pg-sqlproxy-gcloud-sqlproxy");

    let c = render_fixtures(&["variant-c"], &[]);
    let hb = value(
        find(&c, "Secret", "astronomer", "astronomer-houston-backend"),
        "connection",
    );
    assert!(!hb.contains('?') && hb.ends_with("/legacy_houston"), "{hb}");

    let d = render_fixtures(&["variant-d"], &[]);
    let ns = find(&d, "Namespace", "", "data-team-prod");
    assert_eq!(ns["metadata"]["labels"].as_object().unwrap().len(), 1);
    find(&d, "Secret", "data-team-prod", "dt-prod-pgbouncer-config");

    let p = render_fixtures(&["placeholder"], &[]);
    let hb = value(
        find(&p, "Secret", "astronomer", "astronomer-houston-backend"),
        "connection",
    );
    assert_eq!(hb, "k3Zq9");

    for variant in VARIANTS {
        let dir = fixtures_dir().join(variant);
        assert!(dir.join("../README.md").exists());
        let _ = removals(&dir);
    }
}

/// Passwords of the URLs and users.txt files, and of the SQL roles.
fn passwords_in_fixtures() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut dirs = all_dirs();
    dirs.push(fixtures_dir().join("velero-backups"));
    for dir in dirs {
        for doc in load_dir(&dir, &keep) {
            if doc.object["kind"] != "Secret" {
                continue;
            }
            for (key, v) in secret_values(&doc.object) {
                if key == "users.txt" {
                    for line in v.lines() {
                        let fields: Vec<&str> = line.split('"').collect();
                        found.insert(fields[3].to_owned());
                    }
                } else if key == "connection" || key == "kedaConnection" {
                    if let Some((scheme_user, _)) = v.split_once('@') {
                        let (_, password) = scheme_user.rsplit_once(':').expect("user:password");
                        found.insert(password.to_owned());
                    }
                } else if !matches!(
                    key.as_str(),
                    "release" | "credentials.json" | ".dockerconfigjson" | "FOO" | "pgbouncer.ini"
                ) && !key.starts_with("AIRFLOW")
                {
                    found.insert(v.trim().to_owned());
                }
            }
        }
    }
    let sql = std::fs::read_to_string(fixtures_dir().join("sql/roles-and-databases.sql")).unwrap();
    for part in sql.split("PASSWORD '").skip(1) {
        found.insert(part.split('\'').next().unwrap().to_owned());
    }
    found
}

#[test]
fn fixture_secrets_lists_every_password() {
    let found = passwords_in_fixtures();
    assert!(found.len() >= 20, "{found:?}");
    let missing: Vec<&String> = found
        .iter()
        .filter(|p| !FIXTURE_SECRETS.contains(&p.as_str()))
        .collect();
    assert!(missing.is_empty(), "add to FIXTURE_SECRETS: {missing:?}");
    // One deployment password needs percent-encoding.
    assert!(found.iter().any(|p| p.contains('%') && p.contains("%40")));
}

#[test]
fn remove_lists_name_existing_objects() {
    // render_fixtures asserts every removal hits an object; renamed-release has some.
    let dir = fixtures_dir().join("renamed-release");
    assert!(!removals(&dir).is_empty());
    render_fixtures(&["renamed-release"], &[]);
}
