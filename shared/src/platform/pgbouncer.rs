//! What a deployment's `pgbouncer.ini` and `users.txt` say about its database: the
//! `[databases]` entries (read with `pgbouncer_ini`'s tokenizer) and the users.

use crate::connection::SslMode;

/// One `[databases]` entry of `pgbouncer.ini`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgbouncerDatabase {
    /// Left-hand alias (e.g. `<release>-metadata`).
    pub alias: String,
    /// `host=`.
    pub host: Option<String>,
    /// `port=`.
    pub port: Option<u16>,
    /// `dbname=`.
    pub dbname: Option<String>,
}

/// The `[databases]` entries of a `pgbouncer.ini`, read with the same tokenizer that
/// rewrites them ([`crate::pgbouncer_ini::database_entries`]).
pub fn parse_pgbouncer_ini(ini: &str) -> Vec<PgbouncerDatabase> {
    crate::pgbouncer_ini::database_entries(ini)
        .into_iter()
        .map(|e| PgbouncerDatabase {
            alias: e.name,
            host: e.host,
            port: e.port.and_then(|p| p.parse().ok()),
            dbname: e.dbname,
        })
        .collect()
}

/// `[pgbouncer]` `server_tls_sslmode`, if it is a libpq `sslmode`.
pub fn pgbouncer_server_sslmode(ini: &str) -> Option<SslMode> {
    let mut in_section = false;
    for line in ini.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line.eq_ignore_ascii_case("[pgbouncer]");
            continue;
        }
        if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "server_tls_sslmode"
        {
            return v.trim().parse().ok();
        }
    }
    None
}

/// `users.txt` lines: `"user" "password"`, a `""` inside quotes standing for one `"`.
pub fn parse_users_txt(text: &str) -> Vec<(String, String)> {
    fn quoted(s: &str) -> Option<(String, &str)> {
        let s = s.trim_start().strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|(_, c)| *c) == Some('"') {
                    out.push('"');
                    chars.next();
                } else {
                    return Some((out, &s[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    }
    text.lines()
        .filter_map(|line| {
            let (user, rest) = quoted(line)?;
            let (password, _) = quoted(rest)?;
            Some((user, password))
        })
        .collect()
}
