//! The harness itself: the fixture cluster starts and serves the fixtures over the real
//! wire protocol, its DB secrets point at the test PostgreSQL and log in there, the
//! deleted namespaces come back through the simulated Velero, and `run` scrubs the env.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use e2e_tests::{FIXTURE_DB_HOST, assert_no_secrets, bin, cluster, cluster_with, pg, run};
use serde_json::{Value, json};

/// A plain HTTP GET against the fake API server (no kube client, no kubectl).
fn http_get(url: &str, path: &str) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer fake-token\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8(response).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

fn decode(secret: &Value, key: &str) -> String {
    let data = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{key}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn fixture_secrets_served_by_the_cluster_log_in_to_postgres() {
    let pg = pg();
    let cluster = cluster();
    let (status, secret) = http_get(
        cluster.url(),
        "/api/v1/namespaces/astronomer/secrets/astronomer-houston-backend",
    );
    assert_eq!(status, 200, "{secret}");
    let url = decode(&secret, "connection");
    let local = format!(
        "@{}:{}/astronomer_houston?schema=houston%24default",
        pg.host, pg.port
    );
    assert!(url.ends_with(&local), "{url}");
    assert!(!url.contains(FIXTURE_DB_HOST));

    // The URL's credentials (percent-decoded) log in and see the Houston fixture.
    let userinfo = url.split("://").nth(1).unwrap().split('@').next().unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    let password = percent_encoding::percent_decode_str(password)
        .decode_utf8()
        .unwrap();
    let client = pg
        .connect_as(user, &password, "astronomer_houston")
        .await
        .unwrap();
    let n: i64 = client
        .query_one("select count(*) from houston$default.\"Deployment\"", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 7);

    // pgbouncer.ini carries the local host and port as separate tokens.
    let (_, bouncer) = http_get(
        cluster.url(),
        "/api/v1/namespaces/astronomer-weightless-meteor-5042/secrets/weightless-meteor-5042-pgbouncer-config",
    );
    let ini = decode(&bouncer, "pgbouncer.ini");
    assert!(
        ini.contains(&format!(
            "host={} dbname=weightless_meteor_5042_airflow port={} pool_size=3\n",
            pg.host, pg.port
        )),
        "{ini}"
    );
    assert!(ini.contains("listen_port = 6543\n"));
}

#[test]
fn cluster_lists_labelled_namespaces_and_velero_objects() {
    let cluster = cluster();
    let (status, list) = http_get(
        cluster.url(),
        "/api/v1/namespaces?labelSelector=platform-release%3Dastronomer",
    );
    assert_eq!(status, 200);
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "astronomer-quiet-nebula-3391",
            "astronomer-radiant-quasar-7720",
            "astronomer-traditional-precession-8767",
            "astronomer-weightless-meteor-5042"
        ]
    );
    let backups = cluster.list("velero.io/v1", "Backup", Some("velero"));
    assert_eq!(backups.len(), 6);
    let bsl = cluster
        .get(
            "velero.io/v1",
            "BackupStorageLocation",
            Some("velero"),
            "default",
        )
        .unwrap();
    assert_eq!(bsl["status"]["phase"], "Available");
    // The deleted deployments' namespaces are gone, as after Commander deleted them.
    assert!(
        cluster
            .get("v1", "Namespace", None, "astronomer-celestial-zenith-1234")
            .is_none()
    );
    assert!(
        cluster
            .list("v1", "Secret", Some("astronomer-celestial-zenith-1234"))
            .is_empty()
    );
    // Start-up bookkeeping is not in the request log.
    assert!(cluster.requests().iter().all(|r| r.method == "GET"));
}

#[test]
fn variants_load_over_the_platform() {
    let cluster = cluster_with(&["variant-d", "renamed-release"]);
    assert!(
        cluster
            .get("v1", "Namespace", None, "data-team-prod")
            .is_some()
    );
    assert!(
        cluster
            .get("v1", "Secret", Some("astronomer"), "astro-houston-backend")
            .is_some()
    );
    assert!(
        cluster
            .get(
                "v1",
                "Secret",
                Some("astronomer"),
                "astronomer-houston-backend"
            )
            .is_none()
    );
    assert!(
        cluster
            .get("apps/v1", "Deployment", Some("astronomer"), "astro-houston")
            .is_some()
    );
}

#[test]
fn restoring_a_fixture_backup_brings_the_deleted_namespace_back() {
    let cluster = cluster();
    // The newest Completed backup holding celestial-zenith-1234 (3 days ago).
    let backup = cluster
        .list("velero.io/v1", "Backup", Some("velero"))
        .into_iter()
        .filter(|b| b["status"]["phase"] == "Completed")
        .filter(|b| {
            b["spec"]["includedNamespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "astronomer-celestial-zenith-1234")
        })
        .max_by_key(|b| b["status"]["startTimestamp"].as_str().unwrap().to_owned())
        .unwrap();
    let backup_name = backup["metadata"]["name"].as_str().unwrap().to_owned();
    cluster.apply(json!({
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {"name": "harness-restore", "namespace": "velero"},
        "spec": {
            "backupName": backup_name,
            "includedNamespaces": ["astronomer-celestial-zenith-1234"]
        }
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    let phase = loop {
        let restore = cluster
            .get("velero.io/v1", "Restore", Some("velero"), "harness-restore")
            .unwrap();
        let phase = restore["status"]["phase"].as_str().unwrap_or("").to_owned();
        if matches!(
            phase.as_str(),
            "Completed" | "PartiallyFailed" | "Failed" | "FailedValidation"
        ) {
            break phase;
        }
        assert!(Instant::now() < deadline, "restore stuck in {phase:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(phase, "Completed");
    let ns = cluster
        .get("v1", "Namespace", None, "astronomer-celestial-zenith-1234")
        .unwrap();
    assert_eq!(ns["metadata"]["labels"]["platform-release"], "astronomer");
    let secret = cluster
        .get(
            "v1",
            "Secret",
            Some("astronomer-celestial-zenith-1234"),
            "celestial-zenith-1234-pgbouncer-config",
        )
        .unwrap();
    assert!(
        !decode(&secret, "pgbouncer.ini").contains(FIXTURE_DB_HOST)
            || e2e_tests::try_pg().is_none()
    );
    // Nothing of the other namespaces was touched.
    assert!(
        cluster
            .get("v1", "Namespace", None, "astronomer-boreal-aphelion-0042")
            .is_none()
    );
}

#[test]
fn run_passes_the_kubeconfig_and_scrubs_the_environment() {
    let cluster = cluster();
    let out = run(bin("kubectl-astro-dbconn"), ["--help"], &cluster);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secrets(&out);
    // The prepared command holds only the variables the harness sets (env_clear).
    let cmd = e2e_tests::command(bin("kubectl-astro-dbconn"), &cluster);
    let vars: Vec<String> = cmd
        .get_envs()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    assert!(!vars.iter().any(|k| k == "KUBECONFIG"), "{vars:?}");
    assert!(vars.iter().any(|k| k == "HOME"));
    let args: Vec<_> = cmd.get_args().collect();
    assert_eq!(args[0], "--kubeconfig");
    assert_eq!(args[1], cluster.kubeconfig_path().as_os_str());
}

/// `.ci/run`'s second pass moves the clock with libfaketime and names the day it expects:
/// without this check a pass whose clock did not move would pass unnoticed.
#[test]
fn harness_today_is_the_day_ci_asked_for() {
    let Ok(expected) = std::env::var("ASTRO_EXPECT_TODAY") else {
        return;
    };
    assert_eq!(e2e_tests::harness_today().to_string(), expected);
    let fixture_day = e2e_tests::shift_dates("astro-nightly-20261124010000", 0);
    assert_ne!(
        e2e_tests::fixture_name("astro-nightly-20261124010000"),
        fixture_day,
        "the fixtures are rendered for another day than they are written for"
    );
}
