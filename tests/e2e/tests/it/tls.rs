//! TLS for `dbconn -c --local`: the real binary through a houston-backend secret carrying
//! `sslmode`, against the test server (`ssl = on`, self-signed certificate for `localhost`).
//! A failed verification exits 1 (the connection failed) with a `TLS to HOST failed` error.

use std::process::Output;

use e2e_tests::{FIXTURE_SECRETS, bin, cluster, pg, run};
use fake_cluster::FakeCluster;
use serde_json::json;

const SSL_SQL: &str = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

/// The public copy of the test server's certificate (written by scripts/test-postgres).
fn server_cert() -> String {
    std::env::var("ASTRO_TEST_PG_SSL_CERT").expect(
        "ASTRO_TEST_PG_SSL_CERT unset: restart the test server with TLS \
         (scripts/test-postgres stop && scripts/test-postgres start; source target/test-postgres.env)",
    )
}

/// Points the Houston backend secret at the test server as `host` with `query`.
fn set_houston(cluster: &FakeCluster, host: &str, query: &str) {
    let pg = pg();
    cluster.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "astronomer-houston-backend", "namespace": "astronomer"},
        "type": "Opaque",
        "stringData": {"connection": format!(
            "postgres://astro_admin:Sup3r%21Secret@{host}:{}/astronomer_houston{query}",
            pg.port
        )},
    }));
}

fn ssl_in_use(host: &str, query: &str) -> Output {
    let cluster = cluster();
    set_houston(&cluster, host, query);
    let out = run(
        bin("kubectl-astro-dbconn"),
        ["-c", SSL_SQL, "--local"],
        &cluster,
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in FIXTURE_SECRETS {
        assert!(!all.contains(secret), "{query}: leaks {secret:?}:\n{all}");
    }
    out
}

/// The single value of the psql-style table dbconn prints (`ssl / --- / t / (1 row)`).
fn ssl_value(host: &str, query: &str) -> String {
    let out = ssl_in_use(host, query);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{query}: exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 4, "{query}: {stdout}");
    assert_eq!(lines[0], "ssl", "{stdout}");
    lines[2].to_owned()
}

/// Runs and insists on a TLS failure: exit 1, host and sslmode named, a cause, a next step.
fn tls_failure(host: &str, query: &str, mode: &str, cause: &str) {
    let out = ssl_in_use(host, query);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{query}: {stderr}");
    let port = pg().port;
    assert!(
        stderr.contains(&format!("TLS to {host}:{port} failed (sslmode={mode})")),
        "{query}: {stderr}"
    );
    assert!(
        stderr.contains(cause),
        "{query}: expected {cause:?} in {stderr}"
    );
    assert!(stderr.contains("next step:"), "{query}: {stderr}");
    assert!(out.stdout.is_empty(), "{query}: printed a result");
}

#[test]
fn sslmode_require_encrypts_and_disable_does_not() {
    let host = pg().host;
    assert_eq!(ssl_value(&host, "?sslmode=require"), "t");
    assert_eq!(ssl_value(&host, "?sslmode=disable"), "f");
    // Houston's own form of the URI (schema + sslmode) and the default (prefer) both use TLS.
    assert_eq!(
        ssl_value(&host, "?schema=houston%24default&sslmode=require"),
        "t"
    );
    assert_eq!(ssl_value(&host, ""), "t");
    assert_eq!(ssl_value(&host, "?sslmode=allow"), "t");
}

#[test]
fn verify_full_refuses_the_self_signed_certificate() {
    let host = pg().host;
    // The exact cause depends on the machine's store (UnknownIssuer, or BadSignature when
    // some other `CN=localhost` certificate sits there); the verdict does not.
    let cause = "invalid peer certificate";
    tls_failure(&host, "?sslmode=verify-full", "verify-full", cause);
    tls_failure(&host, "?sslmode=verify-ca", "verify-ca", cause);
}

#[test]
fn verify_ca_with_sslrootcert_checks_the_chain_but_not_the_name() {
    let host = pg().host;
    let root = server_cert();
    // The certificate names only `localhost`: verify-ca ignores that, verify-full does not.
    assert_eq!(
        ssl_value(&host, &format!("?sslmode=verify-ca&sslrootcert={root}")),
        "t"
    );
    // libpq: require with a root certificate verifies the chain too.
    assert_eq!(
        ssl_value(&host, &format!("?sslmode=require&sslrootcert={root}")),
        "t"
    );
    tls_failure(
        &host,
        &format!("?sslmode=verify-full&sslrootcert={root}"),
        "verify-full",
        "certificate not valid for name \"127.0.0.1\"",
    );
    assert_eq!(
        ssl_value(
            "localhost",
            &format!("?sslmode=verify-full&sslrootcert={root}")
        ),
        "t"
    );
}

#[test]
fn unreadable_sslrootcert_is_bad_input() {
    let out = ssl_in_use(
        &pg().host,
        "?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
    assert!(stderr.contains("next step:"), "{stderr}");
}
