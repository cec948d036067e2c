//! `endpoint::target`: byte-preserving endpoint edits of connection URIs, which must
//! agree with the connection parser on where the host is.

use astro::connection::PgConnection;
use astro::endpoint::target::{Endpoint, redact_uri, rewrite_uri, uri_endpoint, uri_userinfo};
use fuzz_harness::check;
use proptest::prelude::*;

use super::{any_text, host, mutated};

const TARGET: &str = "endpoint URI";

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (host(), 1u16..).prop_map(|(host, port)| Endpoint { host, port })
}

/// URIs as the platform's secrets hold them, with sloppy passwords (raw `@`, `/`, `?`, `#`).
pub fn uri() -> impl Strategy<Value = String> {
    let password = prop_oneof![
        Just("Sup3r%21Secret".to_owned()),
        "[A-Za-z0-9]{1,12}",
        "[A-Za-z0-9@/?#:%]{1,12}",
    ];
    (
        prop::sample::select(vec!["postgres", "postgresql", "db+postgresql"]),
        prop::option::of(("[a-z_]{1,10}", prop::option::of(password))),
        endpoint(),
        any::<bool>(),
        prop::sample::select(vec![
            "",
            "/astronomer_houston?schema=houston%24default",
            "/r_airflow?sslmode=require",
            "/db",
            "?sslmode=disable",
            "/d#frag",
        ]),
    )
        .prop_map(|(scheme, userinfo, ep, with_port, rest)| {
            let auth = match userinfo {
                Some((u, Some(p))) => format!("{u}:{p}@"),
                Some((u, None)) => format!("{u}@"),
                None => String::new(),
            };
            let hostport = if with_port {
                ep.authority()
            } else if ep.host.contains(':') {
                format!("[{}]", ep.host)
            } else {
                ep.host.clone()
            };
            format!("{scheme}://{auth}{hostport}{rest}")
        })
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![3 => uri(), 3 => mutated(uri(), 4), 1 => any_text(60)]
}

#[test]
fn rewrite_is_idempotent_and_points_at_the_endpoint() {
    check(
        TARGET,
        "rewrite idempotent",
        (input(), endpoint()),
        |(uri, ep)| {
            let _ = redact_uri(&uri);
            let Some(once) = rewrite_uri(&uri, &ep, None) else {
                prop_assert_eq!(uri_endpoint(&uri), None);
                return Ok(());
            };
            prop_assert_eq!(rewrite_uri(&once, &ep, None), Some(once.clone()));
            prop_assert_eq!(uri_endpoint(&once), Some(ep.clone()));
            prop_assert_eq!(uri_userinfo(&once), uri_userinfo(&uri));
            Ok(())
        },
    );
}

/// Only the `host:port` changes: the output is the input with one span (the old
/// `host:port`) replaced by the endpoint's authority, and a URI already at the endpoint
/// (port written) is left as is.
#[test]
fn rewrite_keeps_every_byte_it_does_not_own() {
    check(
        TARGET,
        "rewrite keeps unowned bytes",
        (input(), endpoint()),
        |(uri, ep)| {
            let (Some(once), Some(old)) = (rewrite_uri(&uri, &ep, None), uri_endpoint(&uri)) else {
                return Ok(());
            };
            let new = ep.authority();
            let spliced = (0..=uri.len())
                .filter(|&i| uri.is_char_boundary(i))
                .any(|i| {
                    let Some(kept_tail) = (once.len()).checked_sub(i + new.len()) else {
                        return false;
                    };
                    let j = uri.len().saturating_sub(kept_tail);
                    j >= i
                        && uri.is_char_boundary(j)
                        && once.get(..i) == Some(&uri[..i])
                        && once.get(i..i + new.len()) == Some(new.as_str())
                        && once.get(i + new.len()..) == Some(&uri[j..])
                        && uri[i..j].contains(old.host.as_str())
                });
            prop_assert!(spliced, "{:?} -> {:?}", uri, once);
            if uri.contains(&old.authority()) {
                prop_assert_eq!(rewrite_uri(&uri, &old, None), Some(uri.clone()));
            }
            Ok(())
        },
    );
}

/// Where the connection parser reads the host, the rewriter writes it: after a rewrite,
/// a URI that parsed names the new endpoint and keeps user, password, database.
#[test]
fn rewrite_agrees_with_the_connection_parser() {
    check(
        TARGET,
        "rewrite agrees with parser",
        (input(), endpoint()),
        |(uri, ep)| {
            let Ok(before) = PgConnection::parse(&uri) else {
                return Ok(());
            };
            let once = rewrite_uri(&uri, &ep, None).ok_or_else(|| {
                TestCaseError::fail("the parser reads a URI the rewriter does not")
            })?;
            let after = PgConnection::parse(&once)
                .map_err(|e| TestCaseError::fail(format!("{once:?} no longer parses: {e}")))?;
            prop_assert_eq!(after.host(), ep.host.as_str());
            prop_assert_eq!(after.port(), ep.port);
            prop_assert_eq!(after.user(), before.user());
            prop_assert_eq!(after.password(), before.password());
            prop_assert_eq!(after.database(), before.database());
            prop_assert_eq!(after.search_path(), before.search_path());
            let redacted = redact_uri(&once);
            if let Some(p) = before.password().filter(|p| p.len() > 3) {
                prop_assert!(!redacted.contains(p) || once.replacen(p, "", 1).contains(p));
            }
            Ok(())
        },
    );
}

/// A host the edges accept (`--db-host`, `--db-connection`, the plugin's ConfigMap) is
/// written intact into URIs and `pgbouncer.ini`, and read back as the same host.
#[test]
fn valid_hosts_can_be_written_everywhere() {
    let candidate = prop_oneof![host(), "[A-Za-z0-9._:-]{1,20}", any_text(12)];
    check(
        TARGET,
        "valid hosts survive every writer",
        (candidate, 1u16..),
        |(h, port)| {
            if !Endpoint::is_valid_host(&h) {
                return Ok(());
            }
            let ep = Endpoint {
                host: h.clone(),
                port,
            };
            let uri = rewrite_uri(
                "postgres://u:p@old.example:5432/db?sslmode=require",
                &ep,
                None,
            )
            .unwrap();
            prop_assert_eq!(uri_endpoint(&uri), Some(ep.clone()));
            // `[::]:` forms and the like: the parser's stricter IPv6 rules may refuse them,
            // but never read another host.
            if let Ok(c) = PgConnection::parse(&uri) {
                prop_assert_eq!(c.host(), h.as_str());
            }
            let ini = "[databases]\nr = host=old.example port=5432 dbname=r\n";
            let out = astro::pgbouncer_ini::rewrite_databases_endpoint(ini, &h, port);
            let entries = astro::pgbouncer_ini::database_entries(&out.text);
            prop_assert_eq!(entries.len(), 1);
            prop_assert_eq!(entries[0].host.as_deref(), Some(h.as_str()));
            Ok(())
        },
    );
}
