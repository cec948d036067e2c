//! Reading and rewriting the `[databases]` section of a `<release>-pgbouncer-config` ini.
//! Only the `host=` and `port=` tokens change; every other byte of the file stays as it was.

use std::ops::Range;

/// One entry of the `[databases]` section (`name = host=… dbname=… port=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseEntry {
    /// The logical database name on the left of `=` (e.g. `weightless-meteor-5042-metadata`).
    pub name: String,
    /// 1-based line number in the file.
    pub line: usize,
    /// The `host=` value, if the entry has one.
    pub host: Option<String>,
    /// The `port=` value as written, if the entry has one.
    pub port: Option<String>,
    /// The `dbname=` value, if the entry has one.
    pub dbname: Option<String>,
}

/// The result of [`rewrite_databases_endpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The rewritten file.
    pub text: String,
    /// 1-based numbers of the lines that changed.
    pub changed_lines: Vec<usize>,
    /// Entries with a `host=` but no `port=` token: pgbouncer then uses 5432. We do not
    /// add a token (that would change the line's shape); the caller decides what to report.
    pub missing_port: Vec<String>,
    /// Entries without a `host=` token (unix socket or `*` fallback); left alone.
    pub missing_host: Vec<String>,
}

/// A `key=value` token inside a `[databases]` entry, as byte ranges of the line.
struct Token {
    key: Range<usize>,
    value: Range<usize>,
}

/// Splits text into lines, each with its terminator (`\n` or `\r\n`) kept apart.
fn lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_inclusive('\n').map(|line| {
        let body_len = if line.ends_with("\r\n") {
            line.len() - 2
        } else if line.ends_with('\n') {
            line.len() - 1
        } else {
            line.len()
        };
        line.split_at(body_len)
    })
}

/// The section name if `line` is a `[section]` header.
fn section_header(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    let inner = trimmed.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(inner[..end].trim())
}

/// Where the connection string of a `[databases]` line starts, with the entry name;
/// `None` for blank lines and comments.
fn split_entry(line: &str) -> Option<(&str, usize)> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
        return None;
    }
    let eq = line.find('=')?;
    Some((line[..eq].trim(), eq + 1))
}

/// Tokenises a libpq-style `key=value key='quoted value'` string starting at `start`.
fn tokens(line: &str, start: usize) -> Vec<Token> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = start;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = key_start..i;
        if i >= bytes.len() || bytes[i] != b'=' {
            // A bare word without `=`: not a token we understand; skip it.
            continue;
        }
        i += 1;
        let value_start = i;
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(bytes.len());
            // Junk after the closing quote (invalid for pgbouncer) stays part of this
            // value, so a rewrite replaces it with the value instead of leaving it behind.
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
        }
        out.push(Token {
            key,
            value: value_start..i,
        });
    }
    out
}

/// A token value without its quotes.
fn unquote(value: &str) -> String {
    match value.strip_prefix('\'') {
        Some(rest) => rest
            .strip_suffix('\'')
            .unwrap_or(rest)
            .replace("\\'", "'")
            .replace("\\\\", "\\"),
        None => value.to_owned(),
    }
}

/// Writes a value as a token value, quoting it only when it needs quotes.
fn quote(value: &str) -> String {
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    } else {
        value.to_owned()
    }
}

/// Visits every `[databases]` entry line: (1-based line number, body without terminator).
fn database_lines(ini: &str) -> Vec<(usize, &str)> {
    let mut in_databases = false;
    let mut out = Vec::new();
    for (index, (body, _)) in lines(ini).enumerate() {
        if let Some(section) = section_header(body) {
            in_databases = section.eq_ignore_ascii_case("databases");
            continue;
        }
        if in_databases && split_entry(body).is_some() {
            out.push((index + 1, body));
        }
    }
    out
}

/// Reads host, port and dbname of every `[databases]` entry.
pub fn database_entries(ini: &str) -> Vec<DatabaseEntry> {
    database_lines(ini)
        .into_iter()
        .filter_map(|(line, body)| {
            let (name, start) = split_entry(body)?;
            let mut entry = DatabaseEntry {
                name: name.to_owned(),
                line,
                host: None,
                port: None,
                dbname: None,
            };
            for token in tokens(body, start) {
                let value = unquote(&body[token.value.clone()]);
                match &body[token.key.clone()] {
                    "host" => entry.host = Some(value),
                    "port" => entry.port = Some(value),
                    "dbname" => entry.dbname = Some(value),
                    _ => {}
                }
            }
            Some(entry)
        })
        .collect()
}

/// Points every `[databases]` entry that has a `host=` token at `host`/`port`.
///
/// Only the values of the `host=` and `port=` tokens change. Key order, spacing,
/// trailing spaces, extra options, comments, other sections and line endings
/// (`\n` or `\r\n`) are kept byte for byte. Rewriting is idempotent.
pub fn rewrite_databases_endpoint(ini: &str, host: &str, port: u16) -> Rewrite {
    let mut text = String::with_capacity(ini.len() + 32);
    let mut changed_lines = Vec::new();
    let mut missing_port = Vec::new();
    let mut missing_host = Vec::new();
    let new_host = quote(host);
    let new_port = port.to_string();
    let mut in_databases = false;
    for (index, (body, ending)) in lines(ini).enumerate() {
        if let Some(section) = section_header(body) {
            in_databases = section.eq_ignore_ascii_case("databases");
        }
        let entry = if in_databases && section_header(body).is_none() {
            split_entry(body)
        } else {
            None
        };
        let Some((name, start)) = entry else {
            text.push_str(body);
            text.push_str(ending);
            continue;
        };
        let toks = tokens(body, start);
        let with_key = |key: &'static str| {
            toks.iter()
                .filter(move |t| &body[t.key.clone()] == key)
                .map(|t| t.value.clone())
        };
        if with_key("host").next().is_none() {
            missing_host.push(name.to_owned());
            text.push_str(body);
            text.push_str(ending);
            continue;
        }
        if with_key("port").next().is_none() {
            missing_port.push(name.to_owned());
        }
        // Every `host=`/`port=` token (pgbouncer reads the last of each), and only those
        // not already at the endpoint, however quoted. Spliced from the end so earlier
        // ranges stay valid.
        let mut edits: Vec<(Range<usize>, &str)> = with_key("host")
            .filter(|v| unquote(&body[v.clone()]) != host)
            .map(|v| (v, new_host.as_str()))
            .chain(
                with_key("port")
                    .filter(|v| unquote(&body[v.clone()]) != new_port)
                    .map(|v| (v, new_port.as_str())),
            )
            .collect();
        edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
        let mut line = body.to_owned();
        for (range, value) in edits {
            line.replace_range(range, value);
        }
        if line != body {
            changed_lines.push(index + 1);
        }
        text.push_str(&line);
        text.push_str(ending);
    }
    Rewrite {
        text,
        changed_lines,
        missing_port,
        missing_host,
    }
}

/// Hides `password=` token values (pgbouncer allows them in `[databases]`) for display.
pub fn redact(ini: &str) -> String {
    let entry_lines: Vec<usize> = database_lines(ini).into_iter().map(|(l, _)| l).collect();
    let mut out = String::with_capacity(ini.len());
    for (index, (body, ending)) in lines(ini).enumerate() {
        let mut line = body.to_owned();
        if entry_lines.contains(&(index + 1))
            && let Some((_, start)) = split_entry(body)
        {
            let mut toks = tokens(body, start);
            toks.sort_by_key(|t| std::cmp::Reverse(t.value.start));
            for token in toks {
                if &body[token.key.clone()] == "password" {
                    line.replace_range(token.value, "***");
                }
            }
        }
        out.push_str(&line);
        out.push_str(ending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OLD_HOST: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";
    const NEW_HOST: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";

    /// Fixture §3.2, verbatim.
    const FIXTURE: &str = "[databases]
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

    #[test]
    fn fixture_rewrite_is_exact() {
        let r = rewrite_databases_endpoint(FIXTURE, NEW_HOST, 5433);
        let expected = FIXTURE.replace(
            &format!("host={OLD_HOST} dbname=weightless_meteor_5042_airflow port=5432"),
            &format!("host={NEW_HOST} dbname=weightless_meteor_5042_airflow port=5433"),
        );
        assert_eq!(r.text, expected);
        assert_eq!(r.changed_lines, vec![2, 3]);
        assert!(r.missing_port.is_empty() && r.missing_host.is_empty());
        // Byte-level: only the two [databases] lines differ.
        let before: Vec<&str> = FIXTURE.lines().collect();
        let after: Vec<&str> = r.text.lines().collect();
        assert_eq!(before.len(), after.len());
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            assert_eq!(a == b, i != 1 && i != 2, "line {}", i + 1);
        }
        assert_eq!(
            after[1],
            "weightless-meteor-5042-metadata = host=astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com dbname=weightless_meteor_5042_airflow port=5433 pool_size=3"
        );
    }

    #[test]
    fn extra_options_and_trailing_space_are_kept() {
        let ini = "[databases]\r\n\
            r-metadata = host=old.example dbname=r_airflow port=5432 pool_size=3 max_db_connections=10 reserve_pool=2\r\n\
            r-result-backend = host=old.example dbname=r_airflow port=5432 pool_size=2 \r\n\
            ; host=old.example in a comment stays\r\n\
            [pgbouncer]\r\nhost=old.example\r\n";
        let r = rewrite_databases_endpoint(ini, "new.example", 6432);
        assert_eq!(
            r.text,
            "[databases]\r\n\
            r-metadata = host=new.example dbname=r_airflow port=6432 pool_size=3 max_db_connections=10 reserve_pool=2\r\n\
            r-result-backend = host=new.example dbname=r_airflow port=6432 pool_size=2 \r\n\
            ; host=old.example in a comment stays\r\n\
            [pgbouncer]\r\nhost=old.example\r\n"
        );
        assert_eq!(r.changed_lines, vec![2, 3]);
    }

    #[test]
    fn missing_port_is_reported_not_added() {
        let ini = "[databases]\nr-metadata = host=old dbname=db pool_size=3\nfallback = dbname=x\n";
        let r = rewrite_databases_endpoint(ini, "new", 5433);
        assert_eq!(
            r.text,
            "[databases]\nr-metadata = host=new dbname=db pool_size=3\nfallback = dbname=x\n"
        );
        assert_eq!(r.missing_port, vec!["r-metadata"]);
        assert_eq!(r.missing_host, vec!["fallback"]);
    }

    #[test]
    fn reads_entries_and_quoted_values() {
        let ini = "[databases]\na = host='h 1' port=5432 dbname=x\nb = dbname=y\n";
        let entries = database_entries(ini);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].host.as_deref(), Some("h 1"));
        assert_eq!(entries[0].port.as_deref(), Some("5432"));
        assert_eq!(entries[1].host, None);
        let r = rewrite_databases_endpoint(ini, "h2", 1);
        assert!(r.text.contains("a = host=h2 port=1 dbname=x"));
    }

    #[test]
    fn every_host_and_port_token_moves_and_equal_ones_stay() {
        // Found by shared/tests/properties: pgbouncer reads the last `host=`, the rewrite
        // moved only the first; a quoted host already at the endpoint was rewritten; junk
        // after a closing quote was left behind.
        let ini = "[databases]\na = host=old port=5432 host=old2 port=5432\nb = host='new' port=6432\nc = host='x y''z port=1\n";
        let r = rewrite_databases_endpoint(ini, "new", 6432);
        assert_eq!(
            r.text,
            "[databases]\na = host=new port=6432 host=new port=6432\nb = host='new' port=6432\nc = host=new port=6432\n"
        );
        assert_eq!(r.changed_lines, vec![2, 4]);
        for entry in database_entries(&r.text) {
            assert_eq!(entry.host.as_deref(), Some("new"), "{}", entry.name);
        }
    }

    #[test]
    fn redacts_passwords() {
        let ini = "[databases]\na = host=h password=s3cret port=1\n[pgbouncer]\nx = 1\n";
        assert_eq!(
            redact(ini),
            "[databases]\na = host=h password=*** port=1\n[pgbouncer]\nx = 1\n"
        );
    }

    fn host() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,10}(\\.[a-z0-9]{1,6}){0,3}"
    }

    /// Generated ini files: one host/port shared by all entries, varied spacing,
    /// extra options, trailing spaces, comments, CRLF, other sections before and after.
    fn ini(old_host: String, old_port: u16) -> impl Strategy<Value = String> {
        let entry = (
            "[a-z][a-z0-9-]{0,12}",
            " {0,2}",
            " {1,3}",
            "[a-z_]{1,10}",
            prop::option::of("x[a-z_]{0,7}=[0-9]{1,3}"),
            prop::bool::ANY,
            prop::bool::ANY,
        );
        (
            prop::collection::vec(entry, 1..4),
            prop::bool::ANY,
            "[a-z_ =0-9;#.]{0,30}",
        )
            .prop_map(move |(entries, crlf, other)| {
                let nl = if crlf { "\r\n" } else { "\n" };
                let mut s = format!("; head\n[pgbouncer]{nl}{other}{nl}[databases]{nl}");
                for (name, pad, sep, db, extra, trailing, port_first) in entries {
                    let (a, b) = if port_first {
                        (format!("port={old_port}"), format!("host={old_host}"))
                    } else {
                        (format!("host={old_host}"), format!("port={old_port}"))
                    };
                    s.push_str(&format!("{name}{pad}={pad}{a}{sep}dbname={db}{sep}{b}"));
                    if let Some(extra) = extra {
                        s.push_str(&format!(" pool_size=3 {extra}"));
                    }
                    if trailing {
                        s.push(' ');
                    }
                    s.push_str(nl);
                    s.push_str(&format!("; comment host={old_host}{nl}"));
                }
                s.push_str(&format!("{nl}[pgbouncer]{nl}listen_port = 6543{nl}{other}"));
                s
            })
    }

    fn outside_databases(text: &str) -> Vec<String> {
        let entry_lines: Vec<usize> = database_lines(text).into_iter().map(|(l, _)| l).collect();
        text.split_inclusive('\n')
            .enumerate()
            .filter(|(i, _)| !entry_lines.contains(&(i + 1)))
            .map(|(_, l)| l.to_owned())
            .collect()
    }

    proptest! {
        #[test]
        fn rewrite_is_idempotent_and_reversible(
            (old_host, old_port, input) in (host(), 1u16..).prop_flat_map(|(h, p)| (Just(h.clone()), Just(p), ini(h, p))),
            new_host in host(),
            new_port in 1u16..,
        ) {
            let once = rewrite_databases_endpoint(&input, &new_host, new_port);
            let twice = rewrite_databases_endpoint(&once.text, &new_host, new_port);
            prop_assert_eq!(&twice.text, &once.text);
            prop_assert!(twice.changed_lines.is_empty());
            let back = rewrite_databases_endpoint(&once.text, &old_host, old_port);
            prop_assert_eq!(&back.text, &input);
            prop_assert_eq!(outside_databases(&once.text), outside_databases(&input));
            for entry in database_entries(&once.text) {
                prop_assert_eq!(entry.host.as_deref(), Some(new_host.as_str()));
                let port = new_port.to_string();
                prop_assert_eq!(entry.port.as_deref(), Some(port.as_str()));
            }
        }

        #[test]
        fn arbitrary_text_never_panics_and_keeps_non_database_lines(input in "(\\[?[a-z =;#'\\]]{0,20}\r?\n){0,8}") {
            let out = rewrite_databases_endpoint(&input, "h", 5);
            prop_assert_eq!(outside_databases(&out.text), outside_databases(&input));
        }
    }
}
