//! `connection`: the PostgreSQL URI parser and printer.

use astro::connection::{ConnectionError, PgConnection, REDACTED, SslMode};
use fuzz_harness::check;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;

use super::{any_text, host, mutated};

const TARGET: &str = "connection";

/// Text percent-encoded as a careful writer does, or left raw as a sloppy one does.
fn component(raw: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (raw, any::<bool>()).prop_map(|(s, encode)| {
        if encode {
            utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string()
        } else {
            s
        }
    })
}

fn query_item() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("schema=houston%24default".to_owned()),
        Just("schema=My%20Schema".to_owned()),
        prop::sample::select(SslMode::ALL.to_vec()).prop_map(|m| format!("sslmode={m}")),
        Just("sslmode=sometimes".to_owned()),
        "connect_timeout=[0-9]{1,3}",
        Just("application_name=houston".to_owned()),
        Just("options=-c%20statement_timeout%3D5s".to_owned()),
        Just("connection_limit=5".to_owned()),
        Just("pgbouncer=true".to_owned()),
        host().prop_map(|h| format!("host={}", utf8_percent_encode(&h, NON_ALPHANUMERIC))),
        "port=[0-9]{0,6}",
        "user=[a-z_]{0,8}",
        component("[ -~]{0,12}".prop_map(String::from)).prop_map(|p| format!("password={p}")),
        "dbname=[a-z_]{0,10}",
        "[a-z_]{1,10}=[a-z0-9]{0,5}",
    ]
}

/// Connection strings of the shapes the platform's secrets hold (houston-backend,
/// bootstrap, Airflow metadata, Celery result backend), placeholders included.
fn realistic() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec![
        "postgres",
        "postgresql",
        "POSTGRES",
        "db+postgresql",
        "mysql",
    ]);
    let userinfo = prop::option::of((
        component("[a-z_][a-z0-9_.@-]{0,14}".prop_map(String::from)),
        prop::option::of(component(any_text(16))),
    ));
    let host = prop_oneof![
        4 => host().prop_map(|h| if h.contains(':') { format!("[{h}]") } else { h }),
        1 => Just("[fe80::1%25eth0]".to_owned()),
        1 => Just("h1:5432,h2".to_owned()),
        1 => Just(String::new()),
    ];
    let port = prop::option::of(prop_oneof![
        8 => (1u16..).prop_map(|p| p.to_string()),
        1 => "[0-9]{0,6}",
    ]);
    let database = prop::option::of(component("[a-z_$]{1,30}".prop_map(String::from)));
    let query = prop::collection::vec(query_item(), 0..5);
    let uri = (scheme, userinfo, host, port, database, query).prop_map(
        |(scheme, userinfo, host, port, database, query)| {
            let mut s = format!("{scheme}://");
            if let Some((user, password)) = userinfo {
                s.push_str(&user);
                if let Some(p) = password {
                    s.push(':');
                    s.push_str(&p);
                }
                s.push('@');
            }
            s.push_str(&host);
            if let Some(port) = port {
                s.push(':');
                s.push_str(&port);
            }
            if let Some(db) = database {
                s.push('/');
                s.push_str(&db);
            }
            for (i, item) in query.iter().enumerate() {
                s.push(if i == 0 { '?' } else { '&' });
                s.push_str(item);
            }
            s
        },
    );
    prop_oneof![
        8 => uri,
        1 => "[A-Za-z0-9]{5}",
        1 => "[ \n]{0,3}",
    ]
}

/// Any input: realistic, realistic with edits, or arbitrary text.
fn input() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => realistic(),
        3 => mutated(realistic(), 4),
        1 => any_text(80),
    ]
}

/// Everything a connection means, password included (`Debug` hides it).
fn meaning(c: &PgConnection) -> impl PartialEq + std::fmt::Debug {
    (
        c.user().map(str::to_owned),
        c.password().map(str::to_owned),
        c.host().to_owned(),
        c.port(),
        c.database().map(str::to_owned),
        c.sslmode(),
        c.options(),
        c.libpq_env(true),
    )
}

#[test]
fn parse_never_panics() {
    check(TARGET, "parse never panics", input(), |s| {
        let _ = PgConnection::parse(&s);
        Ok(())
    });
}

/// What parses prints as a URI that parses to the same connection, and printing that
/// again gives the same text (the print is a fixed point after one round).
#[test]
fn parse_print_parse_is_stable() {
    check(TARGET, "parse -> print -> parse stable", input(), |s| {
        let Ok(c) = PgConnection::parse(&s) else {
            return Ok(());
        };
        let uri = c.to_uri();
        let back = PgConnection::parse(&uri)
            .map_err(|e| TestCaseError::fail(format!("{uri:?} does not parse: {e}")))?;
        prop_assert_eq!(meaning(&back), meaning(&c), "{}", uri);
        prop_assert!(back.dropped().is_empty());
        prop_assert_eq!(back.to_uri(), uri);
        Ok(())
    });
}

/// The redacted URI parses to the same connection with the password `***`.
#[test]
fn redacted_uri_hides_only_the_password() {
    check(TARGET, "redacted URI hides the password", input(), |s| {
        let Ok(c) = PgConnection::parse(&s) else {
            return Ok(());
        };
        let redacted = PgConnection::parse(&c.to_redacted_uri())
            .map_err(|e| TestCaseError::fail(format!("redacted URI does not parse: {e}")))?;
        prop_assert_eq!(redacted.password(), c.password().map(|_| REDACTED));
        prop_assert_eq!(redacted.host(), c.host());
        prop_assert_eq!(redacted.user(), c.user());
        prop_assert_eq!(redacted.database(), c.database());
        let debug = format!("{c:?}");
        prop_assert!(
            c.password()
                .is_none_or(|p| p.len() < 8 || !debug.contains(p))
        );
        Ok(())
    });
}

/// Errors never repeat the input's password (the only value they may quote is sslmode's).
#[test]
fn errors_never_quote_the_password() {
    let secret = "Zq8sEcr3tPw";
    let with_password = (realistic(), 0usize..4).prop_map(move |(s, at)| {
        // Put the password where a password can be: userinfo or query.
        match at {
            0 => s.replacen("://", &format!("://u:{secret}@"), 1),
            1 => format!("{s}&password={secret}"),
            2 => format!("{s}?password={secret}"),
            _ => s.replacen('@', &format!(":{secret}@"), 1),
        }
    });
    check(
        TARGET,
        "errors never quote the password",
        mutated(with_password, 3),
        |s| {
            if let Err(e) = PgConnection::parse(&s)
                && !matches!(e, ConnectionError::BadSslMode { .. })
            {
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(secret), "{}", shown);
            }
            Ok(())
        },
    );
}
