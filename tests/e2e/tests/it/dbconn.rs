//! `kubectl astro dbconn` end to end: the real binary against the fake cluster loaded with
//! the fixture platform, and the real PostgreSQL (connections checked with the real psql).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{FIXTURE_SECRETS, bin, cluster, cluster_builder, cluster_with, command, pg, run};
use fake_cluster::{FakeCluster, Fault};
use serde_json::{Value, json};

const NS: &str = "astronomer";

fn dbconn() -> PathBuf {
    bin("kubectl-astro-dbconn")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs dbconn against `cluster`.
fn dbc(cluster: &FakeCluster, args: &[&str]) -> Output {
    run(dbconn(), args, cluster)
}

/// Runs dbconn and insists it succeeded.
fn ok(cluster: &FakeCluster, args: &[&str]) -> String {
    let out = dbc(cluster, args);
    assert!(
        out.status.success(),
        "dbconn {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs the real psql on `uri` (with `PGPASSWORD` if given) and returns its output.
fn psql(uri: &str, password: Option<&str>, sql: &str) -> Output {
    let mut cmd = Command::new("psql");
    cmd.env_clear()
        .envs(e2e_tests::fake_clock_env())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGCONNECT_TIMEOUT", "5")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(uri)
        .stdin(Stdio::null());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    cmd.output()
        .expect("psql not found: install postgresql-client")
}

fn psql_ok(uri: &str, password: Option<&str>, sql: &str) -> String {
    let out = psql(uri, password, sql);
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        stderr(&out)
    );
    stdout(&out).trim().to_owned()
}

/// Puts a secret with `stringData` into the fake cluster.
fn put_secret(cluster: &FakeCluster, namespace: &str, name: &str, data: Value) {
    cluster.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }));
}

/// Puts a secret with raw `data` (values as given, normally base64).
fn put_raw_secret(cluster: &FakeCluster, namespace: &str, name: &str, data: Value) {
    cluster.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": data,
    }));
}

/// The Houston connection as the fixtures write it, pointed at the test server.
fn houston_uri(query: &str) -> String {
    let pg = pg();
    format!(
        "postgres://astro_admin:Sup3r%21Secret@{}:{}/astronomer_houston{query}",
        pg.host, pg.port
    )
}

/// Rows in the Houston fixture's Deployment table, read straight from the server.
fn fixture_deployment_count(database: &str) -> i64 {
    pg().query_one(
        database,
        r#"select count(*) from houston$default."Deployment""#,
    )
    .expect("a count")
    .parse()
    .unwrap()
}

/// The fixture cluster with the fake kubelet: client pods really run (psql as a local process).
fn cluster_with_kubelet() -> FakeCluster {
    cluster_builder().options(|o| o.kubelet = true).start()
}

fn assert_no_fixture_secret(what: &str, text: &str) {
    for secret in FIXTURE_SECRETS {
        assert!(
            !text.contains(secret),
            "{what} leaks fixture secret {secret:?}:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// --uri accepted by the real psql

#[test]
fn uri_of_schema_form_connects_with_search_path() {
    let cluster = cluster();
    let uri = ok(&cluster, &["--uri", "--show-secrets"]);
    let uri = uri.trim();
    assert!(!uri.contains("schema="), "{uri}");
    // No schema qualification: the search_path from the URI must find the table.
    let count = psql_ok(uri, None, r#"select count(*) from "Deployment""#);
    assert_eq!(
        count,
        fixture_deployment_count("astronomer_houston").to_string()
    );
    assert_eq!(psql_ok(uri, None, "show search_path"), "houston$default");

    // Without --show-secrets the URI has no password at all and still works with PGPASSWORD.
    let out = dbc(&cluster, &["--uri"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bare = stdout(&out);
    assert!(!bare.contains("Sup3r"), "{bare}");
    assert!(stderr(&out).contains("--show-secrets"));
    assert_eq!(
        psql_ok(bare.trim(), Some(&pg().password), "select current_user"),
        "astro_admin"
    );
    // And psql really needs that password (the server checks it).
    assert!(!psql(bare.trim(), None, "select 1").status.success());
}

#[test]
fn uri_of_placeholder_falls_back_to_bootstrap() {
    let cluster = cluster_with(&["placeholder"]);
    let out = dbc(&cluster, &["--platform-namespace", NS]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains("astronomer-bootstrap"), "{summary}");
    assert!(summary.contains("placeholder"), "{summary}");
    assert!(summary.contains("astronomer_houston"), "{summary}");

    let uri = ok(&cluster, &["--uri", "--show-secrets"]);
    assert_eq!(
        psql_ok(
            uri.trim(),
            None,
            r#"select current_database() || ' ' || count(*) from "Deployment""#
        ),
        format!(
            "astronomer_houston {}",
            fixture_deployment_count("astronomer_houston")
        )
    );
}

#[test]
fn uri_of_postgresql_scheme() {
    let cluster = cluster();
    let value =
        houston_uri("?schema=houston%24default").replacen("postgres://", "postgresql://", 1);
    put_secret(
        &cluster,
        NS,
        "astronomer-houston-backend",
        json!({"connection": value}),
    );
    let uri = ok(&cluster, &["--uri", "--show-secrets"]);
    assert!(uri.starts_with("postgresql://"), "{uri}");
    assert_eq!(
        psql_ok(uri.trim(), None, "show search_path"),
        "houston$default"
    );
}

#[test]
fn uri_keeps_sslmode_require() {
    let cluster = cluster();
    put_secret(
        &cluster,
        NS,
        "astronomer-houston-backend",
        json!({"connection": houston_uri("?schema=houston%24default&sslmode=require")}),
    );
    let uri = ok(&cluster, &["--uri", "--show-secrets"]);
    let uri = uri.trim();
    assert!(uri.contains("sslmode=require"), "{uri}");
    assert!(!uri.contains("schema="), "{uri}");
    // The test server has TLS (scripts/test-postgres): the real psql takes the URI as is
    // and really encrypts; sslmode=disable on the same endpoint does not.
    let ssl = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    assert_eq!(psql_ok(uri, None, ssl), "t");
    assert_eq!(
        psql_ok(
            &uri.replace("sslmode=require", "sslmode=disable"),
            None,
            ssl
        ),
        "f"
    );
}

#[test]
fn uri_with_percent_encoded_password() {
    // quiet-nebula-3391's password is `qN3b@l:a/5%x#y?z`; its metadata secret is direct.
    let cluster = cluster();
    let out = dbc(
        &cluster,
        &["--release", "quiet-nebula-3391", "--uri", "--show-secrets"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let uri = stdout(&out);
    assert!(uri.contains("qN3b%40l%3Aa%2F5%25x%23y%3Fz"), "{uri}");
    assert_eq!(
        psql_ok(uri.trim(), None, "select current_user"),
        "quiet_nebula_3391_airflow"
    );
    // Also for the Houston secret: a password with every URI delimiter in it.
    let env = ok(
        &cluster,
        &["--release", "quiet-nebula-3391", "--env", "--show-secrets"],
    );
    assert!(
        env.contains("export PGPASSWORD='qN3b@l:a/5%x#y?z'"),
        "{env}"
    );
}

#[test]
fn uri_of_variant_c_without_query() {
    let cluster = cluster_with(&["variant-c"]);
    let uri = ok(&cluster, &["--uri", "--show-secrets"]);
    assert!(!uri.contains('?'), "{uri}");
    assert_eq!(
        psql_ok(uri.trim(), None, "select current_database()"),
        "legacy_houston"
    );
}

#[test]
fn uri_of_renamed_platform_release() {
    let cluster = cluster_with(&["renamed-release"]);
    let summary = ok(&cluster, &[]);
    assert!(summary.contains("release astro "), "{summary}");
    assert!(summary.contains("astro-houston-backend"), "{summary}");
    let uri = ok(&cluster, &["--uri", "--show-secrets"]);
    assert_eq!(
        psql_ok(
            uri.trim(),
            None,
            r#"select current_database() || ' ' || count(*) from "Deployment""#
        ),
        format!(
            "astro_houston {}",
            fixture_deployment_count("astro_houston")
        )
    );
    // With the Houston secret gone the fallback uses the renamed database too.
    cluster.delete("v1", "Secret", Some(NS), "astro-houston-backend");
    let uri = ok(&cluster, &["--uri", "--show-secrets"]);
    assert!(uri.contains("/astro_houston?"), "{uri}");
    assert_eq!(
        psql_ok(uri.trim(), None, "show search_path"),
        "houston$default"
    );
}

#[test]
fn release_behind_pgbouncer_connects_directly() {
    let cluster = cluster();
    let pg = pg();
    // Point the pgbouncer-config's [databases] at the test server (its port token too).
    let ini = format!(
        "[databases]\nweightless-meteor-5042-metadata = host={} dbname=weightless_meteor_5042_airflow port={} pool_size=3\nweightless-meteor-5042-result-backend = host={} dbname=weightless_meteor_5042_airflow port={} pool_size=2\n\n[pgbouncer]\nlisten_port = 6543\nserver_tls_sslmode = prefer\n",
        pg.host, pg.port, pg.host, pg.port
    );
    let users = "\"weightless_meteor_5042_airflow\" \"mT4hQ9vZr2LwX8cN1bK6pS3dF7gJ0yEu\"\n\"weightless_meteor_5042_celery\" \"Pp2sW8nRk5YtA1zQ9xC4vB7mL3hJ6dGf\"\n";
    put_secret(
        &cluster,
        "astronomer-weightless-meteor-5042",
        "weightless-meteor-5042-pgbouncer-config",
        json!({"pgbouncer.ini": ini, "users.txt": users}),
    );
    let summary = ok(&cluster, &["--release", "weightless-meteor-5042"]);
    assert!(summary.contains("pgbouncer"), "{summary}");
    let out = ok(
        &cluster,
        &[
            "--release",
            "weightless-meteor-5042",
            "-c",
            "select current_user, current_database()",
            "--local",
        ],
    );
    assert!(
        out.contains("weightless_meteor_5042_airflow | weightless_meteor_5042_airflow"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// -c

#[test]
fn command_local_returns_the_fixture_count() {
    let cluster = cluster();
    let out = ok(
        &cluster,
        &["-c", r#"select count(*) from "Deployment""#, "--local"],
    );
    let expected = fixture_deployment_count("astronomer_houston");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["count", "-------", &expected.to_string(), "(1 row)"],
        "{out}"
    );

    let json: Value = serde_json::from_str(&ok(
        &cluster,
        &[
            "-c",
            r#"select count(*) from "Deployment""#,
            "--local",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(json[0]["rows"][0][0], expected.to_string());

    // A failing statement: psql-like message, exit 1, nothing leaked.
    let out = dbc(&cluster, &["-c", "select * from no_such_table", "--local"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no_such_table"), "{}", stderr(&out));
}

/// Feeds psql a one-line script on stdin, waits, and checks it landed in the Houston
/// database with the `houston$default` search path and saw every fixture deployment.
fn feed_houston_probe(mut child: std::process::Child) -> std::process::Output {
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"select current_database() || ' ' || current_setting('search_path') || ' ' || count(*) from \"Deployment\";\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!(
        "astronomer_houston houston$default {}",
        fixture_deployment_count("astronomer_houston")
    );
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
    out
}

#[test]
fn local_shell_runs_the_local_psql_with_credentials_in_its_environment() {
    let cluster = cluster();
    let child = command(dbconn(), &cluster)
        // A stale PG* setting of the caller must not win over the resolved connection.
        .env("PGDATABASE", "postgres")
        .args(["--local", "--shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = feed_houston_probe(child);
    assert_no_fixture_secret("local shell", &format!("{}{}", stdout(&out), stderr(&out)));
}

// ---------------------------------------------------------------------------------------
// Client pod lifecycle (fake cluster store; the pods do not run here)

fn client_pods(cluster: &FakeCluster) -> Vec<Value> {
    cluster
        .list("v1", "Pod", Some(NS))
        .into_iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("astro-dbconn-"))
        })
        .collect()
}

fn client_secrets(cluster: &FakeCluster) -> Vec<Value> {
    cluster
        .list("v1", "Secret", Some(NS))
        .into_iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("astro-dbconn-"))
        })
        .collect()
}

fn created_and_deleted(cluster: &FakeCluster, resource: &str) -> (usize, usize) {
    let requests = cluster.requests();
    let count = |method: &str| {
        requests
            .iter()
            .filter(|r| {
                r.method == method
                    && r.path.contains(&format!("/{resource}"))
                    && (method == "POST" || r.path.contains("astro-dbconn-"))
            })
            .count()
    };
    (count("POST"), count("DELETE"))
}

#[test]
fn shell_dry_run_prints_pod_and_secret_without_password_in_command() {
    let cluster = cluster();
    let out = ok(&cluster, &["--shell", "--dry-run", "-o", "yaml"]);
    let docs: Vec<Value> = out
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "{out}");
    let (pod, secret) = (&docs[0], &docs[1]);
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["labels"]["release"], "astronomer");
    assert_eq!(pod["metadata"]["labels"]["tier"], "astronomer");
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], "postgres");
    let literal = serde_json::to_string(&[&container["command"], &container["args"]]).unwrap();
    assert_no_fixture_secret("pod command/args", &literal);
    for env in container["env"].as_array().unwrap() {
        if env["name"].as_str().unwrap().starts_with("PG") {
            assert!(env.get("value").is_none(), "{env}");
            assert_eq!(
                env["valueFrom"]["secretKeyRef"]["name"],
                pod["metadata"]["name"]
            );
        }
    }
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["stringData"]["PGPASSWORD"], "<redacted>");
    assert_eq!(
        secret["stringData"]["PGOPTIONS"],
        "-c search_path=houston$default"
    );
    assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "Pod");
    assert_no_fixture_secret("dry run", &out);
    // Nothing was created.
    assert!(client_pods(&cluster).is_empty() && client_secrets(&cluster).is_empty());
    assert_eq!(created_and_deleted(&cluster, "pods").0, 0);

    let shown = ok(
        &cluster,
        &["--shell", "--dry-run", "-o", "yaml", "--show-secrets"],
    );
    assert!(shown.contains("Sup3r!Secret"), "{shown}");
}

#[test]
fn client_pod_and_secret_are_deleted_after_a_start_timeout() {
    let cluster = cluster();
    cluster.clear_requests();
    // No kubelet runs the pod in this cluster, so starting times out: an error path.
    let out = dbc(&cluster, &["-c", "select 1", "--pod-timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not start within 2s"),
        "{}",
        stderr(&out)
    );
    assert_eq!(created_and_deleted(&cluster, "pods"), (1, 1));
    assert_eq!(created_and_deleted(&cluster, "secrets"), (1, 1));
    assert!(client_pods(&cluster).is_empty());
    assert!(client_secrets(&cluster).is_empty());
}

#[test]
fn client_pod_and_secret_are_deleted_after_sigint() {
    deleted_after_signal("INT");
}

#[test]
fn client_pod_and_secret_are_deleted_after_sigterm() {
    deleted_after_signal("TERM");
}

fn deleted_after_signal(signal: &str) {
    let cluster = cluster();
    let mut child = command(dbconn(), &cluster)
        .args(["--shell", "--pod-timeout", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (pod, secret) = loop {
        if let (Some(p), Some(s)) = (client_pods(&cluster).pop(), client_secrets(&cluster).pop()) {
            break (p, s);
        }
        assert!(
            Instant::now() < deadline,
            "client pod/secret never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The Secret is owned by the Pod, and the Pod reads it only through secretKeyRef.
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        pod["metadata"]["uid"]
    );
    assert_no_fixture_secret("created pod", &pod.to_string());
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "dbconn did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_no_fixture_secret("sigint stderr", &stderr(&out));
    assert!(client_pods(&cluster).is_empty());
    assert!(client_secrets(&cluster).is_empty());
}

/// Asserts the run created exactly one client Pod and Secret and deleted both.
fn assert_created_then_deleted(cluster: &FakeCluster) {
    assert_eq!(
        created_and_deleted(cluster, "pods"),
        (1, 1),
        "pod create/delete requests"
    );
    assert_eq!(
        created_and_deleted(cluster, "secrets"),
        (1, 1),
        "secret create/delete requests"
    );
    assert!(client_pods(cluster).is_empty(), "client pod left behind");
    assert!(
        client_secrets(cluster).is_empty(),
        "client secret left behind"
    );
}

#[test]
fn command_in_client_pod_succeeds_and_cleans_up() {
    let cluster = cluster_with_kubelet();
    let out = dbc(&cluster, &["-c", r#"select count(*) from "Deployment""#]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = fixture_deployment_count("astronomer_houston");
    let text = stdout(&out);
    // psql's own table (it ends with a blank line).
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines,
        ["count", "-------", &expected.to_string(), "(1 row)"],
        "{text}"
    );
    assert_no_fixture_secret("-c via pod", &format!("{}{}", stdout(&out), stderr(&out)));
    assert_created_then_deleted(&cluster);

    // -o json through the pod: psql's CSV parsed back into rows, NULL kept apart from "".
    cluster.clear_requests();
    let json: Value = serde_json::from_str(&ok(
        &cluster,
        &[
            "-c",
            r#"select "releaseName", "deletedAt", '' as empty from "Deployment" order by 1 limit 1"#,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        json[0]["columns"],
        json!(["releaseName", "deletedAt", "empty"])
    );
    assert_eq!(
        json[0]["rows"],
        json!([["boreal-aphelion-0042", json[0]["rows"][0][1], ""]])
    );
    assert!(json[0]["rows"][0][1].is_string(), "{json}");
    let null: Value = serde_json::from_str(&ok(
        &cluster,
        &["-c", "select null::text as n", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(null[0]["rows"], json!([[Value::Null]]), "{null}");
    assert_eq!(created_and_deleted(&cluster, "pods"), (2, 2));
}

#[test]
fn command_in_client_pod_fails_and_cleans_up() {
    let cluster = cluster_with_kubelet();
    let out = dbc(&cluster, &["-c", "select * from no_such_table"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no_such_table"), "{err}");
    assert!(
        err.contains("psql in client pod astronomer/astro-dbconn-"),
        "{err}"
    );
    assert!(err.contains("failed (exit code 1)"), "{err}");
    assert_created_then_deleted(&cluster);
}

#[test]
fn shell_in_client_pod_attaches_and_cleans_up() {
    let cluster = cluster_with_kubelet();
    let child = command(dbconn(), &cluster)
        .arg("--shell")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not a TTY: psql reads the script from the attached stdin and exits at EOF.
    let out = feed_houston_probe(child);
    assert_no_fixture_secret(
        "--shell via pod",
        &format!("{}{}", stdout(&out), stderr(&out)),
    );
    assert_created_then_deleted(&cluster);
}

#[test]
fn running_client_pod_is_deleted_after_sigint() {
    let cluster = cluster_with_kubelet();
    let child = command(dbconn(), &cluster)
        .args(["-c", "select pg_sleep(60)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running = client_pods(&cluster)
            .iter()
            .any(|p| p["status"]["phase"] == "Running");
        if running {
            break;
        }
        assert!(Instant::now() < deadline, "client pod never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "did not stop promptly"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_created_then_deleted(&cluster);
}

// ---------------------------------------------------------------------------------------
// Bad inputs

struct Case {
    name: &'static str,
    setup: fn(&FakeCluster),
    args: &'static [&'static str],
    code: i32,
    message: &'static str,
}

fn set_grafana(cluster: &FakeCluster, value: &str) {
    put_secret(
        cluster,
        NS,
        "astronomer-grafana-backend",
        json!({"connection": value}),
    );
}

fn nothing(_: &FakeCluster) {}

#[test]
fn bad_inputs_give_clear_errors_and_exit_codes() {
    let cases = [
        Case {
            name: "wrong scheme",
            setup: |c| set_grafana(c, "mysql://astro_admin:Sup3r%21Secret@h:3306/db"),
            args: &["--grafana"],
            code: 2,
            message: "unsupported scheme \"mysql\"",
        },
        Case {
            name: "celery scheme",
            setup: |c| set_grafana(c, "db+postgresql://astro_admin:Sup3r%21Secret@h/db"),
            args: &["--grafana"],
            code: 2,
            message: "Celery",
        },
        Case {
            name: "bad percent-encoding",
            setup: |c| set_grafana(c, "postgres://astro_admin:Sup3r%zzSecret@h/db"),
            args: &["--grafana"],
            code: 2,
            message: "bad percent-encoding in the password",
        },
        Case {
            name: "bad port",
            setup: |c| set_grafana(c, "postgres://astro_admin:Sup3r%21Secret@h:99999/db"),
            args: &["--grafana"],
            code: 2,
            message: "port \"99999\"",
        },
        Case {
            name: "no host",
            setup: |c| set_grafana(c, "postgres://astro_admin:Sup3r%21Secret@/db"),
            args: &["--grafana"],
            code: 2,
            message: "names no host",
        },
        Case {
            name: "unknown parameter",
            setup: |c| set_grafana(c, "postgres://astro_admin:Sup3r%21Secret@h/db?frobnicate=1"),
            args: &["--grafana"],
            code: 2,
            message: "unknown query parameter \"frobnicate\"",
        },
        Case {
            name: "bad sslmode",
            setup: |c| {
                set_grafana(
                    c,
                    "postgres://astro_admin:Sup3r%21Secret@h/db?sslmode=sometimes",
                )
            },
            args: &["--grafana"],
            code: 2,
            message: "sslmode \"sometimes\"",
        },
        Case {
            name: "broken IPv6",
            setup: |c| set_grafana(c, "postgres://astro_admin:Sup3r%21Secret@[::1/db"),
            args: &["--grafana"],
            code: 2,
            message: "IPv6",
        },
        Case {
            name: "several hosts",
            setup: |c| {
                set_grafana(
                    c,
                    "postgres://astro_admin:Sup3r%21Secret@h1:5432,h2:5432/db",
                )
            },
            args: &["--grafana"],
            code: 2,
            message: "several hosts",
        },
        Case {
            name: "empty value",
            setup: |c| set_grafana(c, ""),
            args: &["--grafana"],
            code: 2,
            message: "empty",
        },
        Case {
            name: "missing secret",
            setup: |c| {
                c.delete("v1", "Secret", Some(NS), "astronomer-grafana-backend");
            },
            args: &["--grafana"],
            code: 2,
            message: "secret astronomer/astronomer-grafana-backend not found",
        },
        Case {
            name: "missing key",
            setup: |c| put_secret(c, NS, "astronomer-grafana-backend", json!({"uri": "x"})),
            args: &["--grafana"],
            code: 2,
            message: "has no key \"connection\" (keys: uri)",
        },
        Case {
            name: "not base64",
            setup: |c| {
                put_raw_secret(
                    c,
                    NS,
                    "astronomer-grafana-backend",
                    json!({"connection": "%%% not base64 %%%"}),
                )
            },
            args: &["--grafana"],
            code: 2,
            message: "is not valid base64",
        },
        Case {
            name: "not UTF-8",
            setup: |c| {
                put_raw_secret(
                    c,
                    NS,
                    "astronomer-grafana-backend",
                    json!({"connection": "//79"}),
                )
            },
            args: &["--grafana"],
            code: 2,
            message: "is not UTF-8",
        },
        Case {
            name: "unknown context",
            setup: nothing,
            args: &["--context", "no-such-context"],
            code: 2,
            message: "no-such-context",
        },
        Case {
            name: "wrong platform namespace",
            setup: nothing,
            args: &["--platform-namespace", "astronomr"],
            code: 2,
            message: "namespace \"astronomr\" not found",
        },
        Case {
            name: "placeholder without bootstrap",
            setup: |c| {
                put_secret(
                    c,
                    NS,
                    "astronomer-houston-backend",
                    json!({"connection": "k3Zq9"}),
                );
                c.delete("v1", "Secret", Some(NS), "astronomer-bootstrap");
            },
            args: &[],
            code: 2,
            message: "placeholder",
        },
        Case {
            name: "both Houston secrets unusable",
            setup: |c| {
                put_secret(
                    c,
                    NS,
                    "astronomer-houston-backend",
                    json!({"connection": "garbage"}),
                );
                put_secret(
                    c,
                    NS,
                    "astronomer-bootstrap",
                    json!({"connection": "mysql://x@y"}),
                );
            },
            args: &[],
            code: 2,
            message: "the fallback failed too",
        },
        Case {
            name: "unknown release",
            setup: nothing,
            args: &["--release", "no-such-release-0000"],
            code: 2,
            message: "namespace \"astronomer-no-such-release-0000\" not found",
        },
        Case {
            name: "release in wrong namespace",
            setup: nothing,
            args: &[
                "--release",
                "weightless-meteor-5042",
                "--namespace",
                "astronomer",
            ],
            code: 2,
            message: "weightless-meteor-5042-airflow-metadata or weightless-meteor-5042-metadata",
        },
        Case {
            name: "invalid release name",
            setup: nothing,
            args: &["--release", "Bad_Name"],
            code: 2,
            message: "not valid",
        },
        Case {
            name: "broken pgbouncer config",
            setup: |c| {
                put_secret(
                    c,
                    "astronomer-weightless-meteor-5042",
                    "weightless-meteor-5042-pgbouncer-config",
                    json!({"pgbouncer.ini": "[pgbouncer]\n", "users.txt": ""}),
                )
            },
            args: &["--release", "weightless-meteor-5042"],
            code: 2,
            message: "no [databases] entry",
        },
        Case {
            name: "dry-run without pod",
            setup: nothing,
            args: &["--dry-run"],
            code: 2,
            message: "--dry-run only applies",
        },
        Case {
            name: "local without command",
            setup: nothing,
            args: &["--local"],
            code: 2,
            message: "--local only applies",
        },
        Case {
            name: "two modes",
            setup: nothing,
            args: &["--uri", "--env"],
            code: 2,
            message: "cannot be used with",
        },
        Case {
            name: "RBAC forbidden",
            setup: |c| {
                c.inject(Fault::Status {
                    method: Some("GET".into()),
                    path_contains: "/secrets/".into(),
                    code: 403,
                    times: None,
                })
            },
            args: &[],
            code: 3,
            message: "not allowed to get secret",
        },
        Case {
            name: "TLS verify-full of the self-signed test certificate",
            setup: |c| {
                put_secret(
                    c,
                    NS,
                    "astronomer-houston-backend",
                    json!({"connection": houston_uri("?sslmode=verify-full")}),
                )
            },
            args: &["-c", "select 1", "--local"],
            code: 1,
            message: "(sslmode=verify-full): invalid peer certificate",
        },
    ];
    assert!(cases.len() >= 15);
    for case in &cases {
        let cluster = cluster();
        (case.setup)(&cluster);
        let out = dbc(&cluster, case.args);
        let (so, se) = (stdout(&out), stderr(&out));
        assert_eq!(
            out.status.code(),
            Some(case.code),
            "{}: exit code\nstdout: {so}\nstderr: {se}",
            case.name
        );
        assert!(
            se.contains(case.message),
            "{}: expected {:?} in stderr:\n{se}",
            case.name,
            case.message
        );
        assert!(!se.contains("panicked"), "{}: panicked\n{se}", case.name);
        assert!(
            se.contains("next step:") || se.contains("--help"),
            "{}: no next step\n{se}",
            case.name
        );
        assert_no_fixture_secret(case.name, &format!("{so}{se}"));
    }
}

// ---------------------------------------------------------------------------------------
// Secrets never leak without --show-secrets

#[test]
fn no_fixture_secret_is_printed_without_show_secrets() {
    let cluster = cluster();
    let modes: &[&[&str]] = &[
        &[],
        &["-o", "json"],
        &["-o", "yaml"],
        &["--uri"],
        &["--env"],
        &["--bootstrap"],
        &["--bootstrap", "--uri"],
        &["--bootstrap", "--env"],
        &["--grafana", "-o", "json"],
        &["--release", "weightless-meteor-5042", "-o", "yaml"],
        &["--release", "weightless-meteor-5042", "--env"],
        &["--release", "traditional-precession-8767"],
        &["--release", "quiet-nebula-3391", "--uri"],
        &["--release", "radiant-quasar-7720", "-o", "json"],
        &["-c", "select 1", "--local"],
        &["-c", "select 1", "--local", "-o", "json"],
        &["-c", "select 1", "--dry-run"],
        &["-c", "select 1", "--dry-run", "-o", "json"],
        &["--shell", "--dry-run", "-o", "yaml"],
        &["--shell", "--dry-run", "-o", "json"],
        &["--release", "quiet-nebula-3391", "--shell", "--dry-run"],
    ];
    for args in modes {
        let out = dbc(&cluster, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_no_fixture_secret(
            &format!("dbconn {args:?}"),
            &format!("{}{}", stdout(&out), stderr(&out)),
        );
    }
    // With --show-secrets they do appear: the scan above can find them.
    let shown = |args: &[&str]| {
        let out = dbc(&cluster, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    assert!(shown(&["--show-secrets"]).contains("Sup3r!Secret"));
    assert!(shown(&["--env", "--show-secrets"]).contains("Sup3r!Secret"));
    assert!(shown(&["--uri", "--show-secrets"]).contains("Sup3r%21Secret"));
    assert!(
        shown(&[
            "--release",
            "weightless-meteor-5042",
            "-o",
            "json",
            "--show-secrets"
        ])
        .contains("mT4hQ9vZr2LwX8cN1bK6pS3dF7gJ0yEu")
    );
    assert!(
        shown(&[
            "--release",
            "quiet-nebula-3391",
            "--shell",
            "--dry-run",
            "--show-secrets"
        ])
        .contains("qN3b@l:a/5%x#y?z")
    );
}
