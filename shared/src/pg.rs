//! Talking to PostgreSQL from this machine (`--local`): connecting with tokio-postgres from
//! a [`PgConnection`], running one SQL text, and printing results the way psql does.

use std::fmt::Write as _;

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::connection::PgConnection;

/// Errors connecting to or querying PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server could not be reached or refused the login.
    #[error("cannot connect to {target} from this machine: {source}")]
    Connect {
        /// The redacted URI we tried.
        target: String,
        /// The driver error.
        source: tokio_postgres::Error,
    },
    /// The TLS handshake failed or the server offers no TLS although sslmode demands it.
    #[error("TLS to {host} failed (sslmode={mode}): {cause}")]
    Tls {
        /// The server's host name.
        host: String,
        /// The sslmode in force (`prefer` when none was given).
        mode: crate::connection::SslMode,
        /// The handshake error with its causes (e.g. an unknown certificate issuer).
        cause: String,
    },
    /// TLS could not be set up locally (unreadable `sslrootcert`, no system roots).
    #[error("cannot set up TLS for {target}: {source}")]
    TlsSetup {
        /// The redacted URI.
        target: String,
        /// What went wrong.
        source: crate::pg_tls::TlsSetupError,
    },
    /// The statement failed.
    #[error("SQL failed: {}", describe_db_error(source))]
    Query {
        /// The driver error.
        source: tokio_postgres::Error,
    },
}

/// The server's message (with detail/hint) when there is one, else the driver's.
fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                let _ = write!(s, " (detail: {d})");
            }
            if let Some(h) = db.hint() {
                let _ = write!(s, " (hint: {h})");
            }
            s
        }
        None => e.to_string(),
    }
}

/// Connects from this machine with libpq's sslmode semantics (see [`crate::pg_tls`]);
/// the connection task runs on the current runtime.
pub async fn connect(conn: &PgConnection) -> Result<Client, PgError> {
    let check = crate::pg_tls::plan_cert_check(conn);
    let tls = crate::pg_tls::connector(&check).map_err(|source| PgError::TlsSetup {
        target: conn.to_redacted_uri(),
        source,
    })?;
    let config = conn.tokio_config();
    let client = match tls {
        Some(tls) => spawn_connection(config.connect(tls).await),
        None => spawn_connection(config.connect(NoTls).await),
    };
    client.map_err(|source| connect_error(conn, source))
}

/// Connects over an already open byte stream to the server (e.g. a relay in the cluster,
/// see [`crate::pgtunnel`]), with the same sslmode semantics as [`connect`]: TLS, when
/// asked for, runs end to end inside the stream. `keep` lives as long as the connection
/// (what carries the stream, e.g. the exec session).
pub async fn connect_over<S, K>(conn: &PgConnection, stream: S, keep: K) -> Result<Client, PgError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    K: Send + 'static,
{
    use tokio_postgres::tls::MakeTlsConnect;
    let check = crate::pg_tls::plan_cert_check(conn);
    let tls = crate::pg_tls::connector(&check).map_err(|source| PgError::TlsSetup {
        target: conn.to_redacted_uri(),
        source,
    })?;
    let config = conn.tokio_config();
    let connected =
        match tls {
            Some(mut make) => {
                let handshake = MakeTlsConnect::<S>::make_tls_connect(&mut make, conn.host())
                    .map_err(|e| PgError::Tls {
                        host: format!("{}:{}", conn.host(), conn.port()),
                        mode: conn.sslmode().unwrap_or(crate::connection::SslMode::Prefer),
                        cause: e.to_string(),
                    })?;
                spawn_keeping(config.connect_raw(stream, handshake).await, keep)
            }
            None => spawn_keeping(config.connect_raw(stream, NoTls).await, keep),
        };
    connected.map_err(|source| connect_error(conn, source))
}

/// [`spawn_connection`] with `keep` held by the connection task until it ends.
fn spawn_keeping<S, T, K>(
    connected: Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
    keep: K,
) -> Result<Client, tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    K: Send + 'static,
{
    let (client, connection) = connected?;
    tokio::spawn(async move {
        let _keep = keep;
        let _ = connection.await;
    });
    Ok(client)
}

/// Starts the connection task; its errors surface on the next query.
fn spawn_connection<S, T>(
    connected: Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
) -> Result<Client, tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    spawn_keeping(connected, ())
}

/// A TLS failure (our handshake error, or the driver's "server does not support TLS")
/// becomes [`PgError::Tls`] with the whole cause chain; anything else [`PgError::Connect`].
fn connect_error(conn: &PgConnection, source: tokio_postgres::Error) -> PgError {
    let mut causes = Vec::new();
    let mut handshake = false;
    let mut next = std::error::Error::source(&source);
    while let Some(e) = next {
        handshake |= e.is::<crate::pg_tls::HandshakeError>();
        let text = e.to_string();
        // HandshakeError displays its io::Error, which displays the rustls error: skip repeats.
        if causes.last() != Some(&text) {
            causes.push(text);
        }
        next = e.source();
    }
    let mode = conn.sslmode().unwrap_or(crate::connection::SslMode::Prefer);
    let no_server_tls = mode.requires_tls() && source.to_string().contains("TLS");
    if handshake || no_server_tls {
        PgError::Tls {
            host: format!("{}:{}", conn.host(), conn.port()),
            mode,
            cause: if causes.is_empty() {
                source.to_string()
            } else {
                causes.join(": ")
            },
        }
    } else {
        PgError::Connect {
            target: conn.to_redacted_uri(),
            source,
        }
    }
}

/// The result of one statement: its columns, its rows as text (NULL as `None`),
/// and how many rows it returned or changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueryResult {
    /// Column names (empty for statements that return no rows).
    pub columns: Vec<String>,
    /// Rows, values as PostgreSQL's text output.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows returned or affected.
    pub affected: u64,
}

/// Runs `sql` with the simple query protocol (text results, like psql), one result per
/// statement.
pub async fn run_sql(client: &Client, sql: &str) -> Result<Vec<QueryResult>, PgError> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|source| PgError::Query { source })?;
    Ok(collect_results(messages))
}

fn collect_results(messages: Vec<SimpleQueryMessage>) -> Vec<QueryResult> {
    let mut results = Vec::new();
    let mut current = QueryResult {
        columns: Vec::new(),
        rows: Vec::new(),
        affected: 0,
    };
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                current.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if current.columns.is_empty() {
                    current.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                current.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(n) => {
                current.affected = n;
                results.push(std::mem::replace(
                    &mut current,
                    QueryResult {
                        columns: Vec::new(),
                        rows: Vec::new(),
                        affected: 0,
                    },
                ));
            }
            _ => {}
        }
    }
    results
}

/// Renders a result like psql's aligned format: header, dashes, rows, `(N rows)`;
/// statements without columns print `OK (N rows affected)`.
pub fn format_table(result: &QueryResult) -> String {
    if result.columns.is_empty() {
        return format!(
            "OK ({} row{} affected)\n",
            result.affected,
            if result.affected == 1 { "" } else { "s" }
        );
    }
    let cell = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
    for row in &result.rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell(v).chars().count());
        }
    }
    let line = |values: Vec<String>| -> String {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!(" {v:<w$} "))
            .collect();
        format!("{}\n", parts.join("|").trim_end())
    };
    let mut out = line(
        result
            .columns
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:^w$}"))
            .collect(),
    );
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&dashes.join("+"));
    out.push('\n');
    for row in &result.rows {
        out.push_str(&line(row.iter().map(cell).collect()));
    }
    let n = result.rows.len();
    let _ = writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" });
    out
}

/// Parses psql's `--csv` output of one query (header line, then rows) into a result.
/// psql writes NULL and '' alike (an empty field) unless `\pset null` names a string: run
/// it with `-P null=<null_marker>` (something no value contains) so that NULL comes back as `None`.
pub fn parse_psql_csv(text: &str, null_marker: &str) -> QueryResult {
    let mut records: Vec<Vec<Option<String>>> = Vec::new();
    let mut record: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    let end_field = |field: &mut String, quoted: &mut bool, record: &mut Vec<Option<String>>| {
        let value = std::mem::take(field);
        record.push(if value == null_marker && !*quoted {
            None
        } else {
            Some(value)
        });
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                quoted = true;
                at_field_start = false;
            }
            ',' => {
                end_field(&mut field, &mut quoted, &mut record);
                at_field_start = true;
            }
            '\n' => {
                end_field(&mut field, &mut quoted, &mut record);
                records.push(std::mem::take(&mut record));
                at_field_start = true;
            }
            '\r' => {}
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if !field.is_empty() || quoted || !record.is_empty() {
        end_field(&mut field, &mut quoted, &mut record);
        records.push(record);
    }
    let mut records = records.into_iter();
    let columns = records
        .next()
        .map(|h| h.into_iter().map(Option::unwrap_or_default).collect())
        .unwrap_or_default();
    let rows: Vec<_> = records.collect();
    QueryResult {
        columns,
        affected: rows.len() as u64,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_psql_csv() {
        let marker = "\\N<null-x>";
        let r = parse_psql_csv(
            "releaseName,deletedAt,label\nweightless-meteor-5042,\\N<null-x>,\"ETL, \"\"prod\"\"\"\nx,2026-08-29 09:15:00,\n",
            marker,
        );
        assert_eq!(r.columns, ["releaseName", "deletedAt", "label"]);
        assert_eq!(
            r.rows,
            [
                vec![
                    Some("weightless-meteor-5042".into()),
                    None,
                    Some("ETL, \"prod\"".into())
                ],
                vec![
                    Some("x".into()),
                    Some("2026-08-29 09:15:00".into()),
                    Some(String::new())
                ],
            ]
        );
        assert_eq!(r.affected, 2);
        // A quoted marker is a value, not NULL.
        assert_eq!(
            parse_psql_csv("a\n\"\\N<null-x>\"\n", marker).rows,
            [vec![Some(marker.into())]]
        );
        let multiline = parse_psql_csv("a\n\"line1\nline2\"\n", marker);
        assert_eq!(multiline.rows, [vec![Some("line1\nline2".into())]]);
        assert!(parse_psql_csv("", marker).columns.is_empty());
    }

    #[test]
    fn formats_like_psql() {
        let r = QueryResult {
            columns: vec!["releaseName".into(), "deletedAt".into()],
            rows: vec![
                vec![Some("weightless-meteor-5042".into()), None],
                vec![Some("a".into()), Some("2026-08-29 09:15:00".into())],
            ],
            affected: 2,
        };
        assert_eq!(
            format_table(&r),
            "      releaseName       |      deletedAt\n\
             ------------------------+---------------------\n \
             weightless-meteor-5042 |\n \
             a                      | 2026-08-29 09:15:00\n\
             (2 rows)\n"
        );
        let none = QueryResult {
            columns: vec![],
            rows: vec![],
            affected: 1,
        };
        assert_eq!(format_table(&none), "OK (1 row affected)\n");
    }
}
