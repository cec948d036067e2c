//! `pgbouncer_ini`: reading and rewriting the `[databases]` section.

use astro::pgbouncer_ini::{database_entries, redact, rewrite_databases_endpoint};
use fuzz_harness::check;
use proptest::prelude::*;

use super::{any_text, host, mutated};

const TARGET: &str = "pgbouncer.ini";

/// A `host=` value as written: bare, or quoted (a quoted value may hold spaces).
fn host_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => host(),
        1 => host().prop_map(|h| format!("'{h}'")),
        1 => Just("'h 1'".to_owned()),
        1 => Just(r"'it\'s'".to_owned()),
        1 => Just("/var/run/postgresql".to_owned()),
    ]
}

/// One `[databases]` entry: host and port tokens in any order or missing, extra
/// options, odd spacing, trailing spaces, `password=`.
fn entry() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        host_value().prop_map(|h| format!("host={h}")),
        "port=[0-9]{0,5}",
        "dbname=[a-z_]{1,20}",
        "pool_size=[0-9]{1,2}",
        "password=[ -~&&[^ ']]{1,10}",
        "user=[a-z_]{1,8}",
        Just("auth_user=pgbouncer".to_owned()),
        Just("max_db_connections=10".to_owned()),
    ];
    (
        "[a-z*][a-z0-9-]{0,24}",
        "[ \t]{0,2}",
        "[ \t]{0,2}",
        prop::collection::vec((token, "[ \t]{1,3}"), 0..7),
        "[ \t]{0,2}",
    )
        .prop_map(|(name, a, b, tokens, trailing)| {
            let mut line = format!("{name}{a}={b}");
            for (token, sep) in tokens {
                line.push_str(&token);
                line.push_str(&sep);
            }
            line.truncate(line.trim_end_matches([' ', '\t']).len());
            line.push_str(&trailing);
            line
        })
}

/// Whole files: `[databases]` and `[pgbouncer]` sections in any order, comments
/// (`;`, `#`, mentioning `host=`), blank lines, `\n` or `\r\n`, no final newline.
pub fn ini() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        6 => entry(),
        1 => Just("[databases]".to_owned()),
        1 => Just(" [ Databases ] ; again".to_owned()),
        1 => Just("[pgbouncer]".to_owned()),
        1 => Just("listen_port = 6543".to_owned()),
        1 => Just("; host=old.example in a comment".to_owned()),
        1 => Just("  # port=5432".to_owned()),
        1 => Just(String::new()),
    ];
    (
        prop::collection::vec(line, 0..14),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(lines, nl, final_newline)| {
            let mut text = format!("[databases]{nl}{}", lines.join(nl));
            if final_newline {
                text.push_str(nl);
            }
            text
        })
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ini(),
        3 => mutated(ini(), 6),
        1 => any_text(200),
        1 => any_text(40).prop_map(|s| format!("[databases]\n{s}")),
    ]
}

/// A new host as `restore endpoint` and the plugin's ConfigMap let it through
/// (`Endpoint::is_valid_host`).
fn new_host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => host(),
        1 => "[A-Za-z0-9._:-]{1,20}",
    ]
}

/// The lines of `text` that are not `[databases]` entries with a `host=` token: what the
/// rewriter does not own.
fn not_owned(text: &str) -> Vec<String> {
    let owned: Vec<usize> = database_entries(text)
        .into_iter()
        .filter(|e| e.host.is_some())
        .map(|e| e.line)
        .collect();
    text.split_inclusive('\n')
        .enumerate()
        .filter(|(i, _)| !owned.contains(&(i + 1)))
        .map(|(_, l)| l.to_owned())
        .collect()
}

#[test]
fn never_panics() {
    check(
        TARGET,
        "never panics",
        (input(), new_host(), any::<u16>()),
        |(ini, host, port)| {
            let _ = database_entries(&ini);
            let _ = redact(&ini);
            let _ = rewrite_databases_endpoint(&ini, &host, port);
            Ok(())
        },
    );
}

#[test]
fn rewrite_is_idempotent() {
    check(
        TARGET,
        "rewrite idempotent",
        (input(), new_host(), any::<u16>()),
        |(ini, host, port)| {
            let once = rewrite_databases_endpoint(&ini, &host, port);
            let twice = rewrite_databases_endpoint(&once.text, &host, port);
            prop_assert_eq!(&twice.text, &once.text);
            prop_assert!(twice.changed_lines.is_empty());
            prop_assert_eq!(twice.missing_port, once.missing_port);
            prop_assert_eq!(twice.missing_host, once.missing_host);
            Ok(())
        },
    );
}

/// Every byte outside the `host=`/`port=` values stays: the other lines exactly, and on
/// an entry line everything before, between and after those values.
#[test]
fn rewrite_keeps_every_byte_it_does_not_own() {
    check(
        TARGET,
        "rewrite keeps unowned bytes",
        (input(), new_host(), any::<u16>()),
        |(ini, host, port)| {
            let out = rewrite_databases_endpoint(&ini, &host, port);
            prop_assert_eq!(not_owned(&out.text), not_owned(&ini));
            prop_assert_eq!(
                out.text.split_inclusive('\n').count(),
                ini.split_inclusive('\n').count()
            );
            let before = database_entries(&ini);
            let after = database_entries(&out.text);
            prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(&after) {
                prop_assert_eq!(&a.name, &b.name);
                prop_assert_eq!(&a.dbname, &b.dbname);
                prop_assert_eq!(a.line, b.line);
                if b.host.is_some() {
                    // What pgbouncer reads after the rewrite is the new endpoint.
                    prop_assert_eq!(a.host.as_deref(), Some(host.as_str()));
                    let port = port.to_string();
                    prop_assert_eq!(a.port.as_deref(), b.port.as_ref().map(|_| port.as_str()));
                } else {
                    prop_assert_eq!(&a.host, &b.host);
                    prop_assert_eq!(&a.port, &b.port);
                }
            }
            prop_assert_eq!(
                redact(&out.text).lines().count(),
                redact(&ini).lines().count()
            );
            Ok(())
        },
    );
}

/// Pointing a file at the endpoint it already names changes nothing, however its
/// host values are quoted.
#[test]
fn rewrite_to_the_same_endpoint_is_the_identity() {
    let same = (host(), 1u16..).prop_flat_map(|(host, port)| {
        let line = prop_oneof![
            Just(format!(
                "r-metadata = host={host} dbname=r_airflow port={port} pool_size=3"
            )),
            Just(format!(
                "r-result-backend =  port={port}\thost='{host}'  dbname=r "
            )),
            Just(format!("r-x = host={host}")),
            Just("fallback = dbname=x".to_owned()),
            Just("; host=old.example".to_owned()),
            Just("[pgbouncer]".to_owned()),
            Just("[databases]".to_owned()),
            Just(String::new()),
        ];
        (prop::collection::vec(line, 0..8), Just(host), Just(port))
    });
    check(
        TARGET,
        "same endpoint is identity",
        same,
        |(lines, host, port)| {
            let ini = format!("[databases]\n{}\n", lines.join("\n"));
            let out = rewrite_databases_endpoint(&ini, &host, port);
            prop_assert_eq!(&out.text, &ini);
            prop_assert!(out.changed_lines.is_empty());
            Ok(())
        },
    );
}

/// `password=` values never survive `redact`, whatever else the line holds.
#[test]
fn redact_hides_passwords() {
    let with_password = (ini(), "[A-Za-z0-9]{12}").prop_map(|(ini, pw)| {
        let ini = format!("[databases]\nr-metadata = host=h password={pw} port=1\n{ini}");
        (ini, pw)
    });
    check(
        TARGET,
        "redact hides passwords",
        with_password,
        |(ini, pw)| {
            prop_assert!(!redact(&ini).contains(&pw));
            Ok(())
        },
    );
}
