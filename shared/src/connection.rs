//! PostgreSQL connection strings as the platform stores them (`postgres://…?schema=…`),
//! parsed into a typed [`PgConnection`] and re-emitted in forms psql/libpq/tokio-postgres accept.
//!
//! Houston's Prisma connection carries `?schema=houston%24default`, which libpq rejects
//! ("invalid URI query parameter"), so the schema becomes a `search_path` instead.
//! Passwords are percent-decoded on parse, re-encoded on output, and never shown by `Debug`.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Port libpq uses when the URI names none.
pub const DEFAULT_PORT: u16 = 5432;

/// What a redacted password is shown as.
pub const REDACTED: &str = "***";

/// Query parameters libpq understands in a connection URI (PostgreSQL 17/18 docs,
/// "Parameter Key Words"); anything else makes psql fail with "invalid URI query parameter".
const LIBPQ_PARAMS: &[&str] = &[
    "application_name",
    "channel_binding",
    "client_encoding",
    "connect_timeout",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "krbsrvname",
    "load_balance_hosts",
    "max_protocol_version",
    "min_protocol_version",
    "options",
    "passfile",
    "replication",
    "require_auth",
    "requirepeer",
    "requiressl",
    "service",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslkeylogfile",
    "sslnegotiation",
    "sslpassword",
    "sslrootcert",
    "sslsni",
    "target_session_attrs",
    "tcp_user_timeout",
];

/// Prisma-only parameters Houston's connection string may carry. They tune Prisma's own
/// pool and mean nothing to libpq, so they are dropped (and reported) rather than rejected.
const PRISMA_ONLY_PARAMS: &[&str] = &[
    "connection_limit",
    "pool_timeout",
    "socket_timeout",
    "statement_cache_size",
    "pgbouncer",
    "sslaccept",
    "sslidentity",
];

/// Environment variables libpq reads for the parameters we pass through (`PGOPTIONS` is
/// built separately because the search path joins it).
const PARAM_ENV: &[(&str, &str)] = &[
    ("application_name", "PGAPPNAME"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("client_encoding", "PGCLIENTENCODING"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("gssdelegation", "PGGSSDELEGATION"),
    ("gssencmode", "PGGSSENCMODE"),
    ("gsslib", "PGGSSLIB"),
    ("hostaddr", "PGHOSTADDR"),
    ("krbsrvname", "PGKRBSRVNAME"),
    ("load_balance_hosts", "PGLOADBALANCEHOSTS"),
    ("max_protocol_version", "PGMAXPROTOCOLVERSION"),
    ("min_protocol_version", "PGMINPROTOCOLVERSION"),
    ("passfile", "PGPASSFILE"),
    ("require_auth", "PGREQUIREAUTH"),
    ("requirepeer", "PGREQUIREPEER"),
    ("requiressl", "PGREQUIRESSL"),
    ("service", "PGSERVICE"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("sslcert", "PGSSLCERT"),
    ("sslcertmode", "PGSSLCERTMODE"),
    ("sslcompression", "PGSSLCOMPRESSION"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("sslkey", "PGSSLKEY"),
    ("sslnegotiation", "PGSSLNEGOTIATION"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslsni", "PGSSLSNI"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("tcp_user_timeout", "PGTCPUSERTIMEOUT"),
];

/// Bytes left as-is when percent-encoding a URI component: RFC 3986 "unreserved".
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// [`COMPONENT`], and the colons of an IPv6 address inside `[…]`.
const IPV6_HOST: &AsciiSet = &COMPONENT.remove(b':');

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS only if the server insists.
    Allow,
    /// TLS if the server offers it (libpq's default).
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, certificate signed by a trusted CA and matching the host name.
    VerifyFull,
}

impl SslMode {
    /// Every mode, in libpq's order.
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The libpq spelling (`verify-full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection in this mode must use TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConnectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SslMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ConnectionError::BadSslMode {
                value: s.to_owned(),
            })
    }
}

/// Which part of a connection URI an encoding problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriPart {
    /// The user name.
    User,
    /// The password.
    Password,
    /// The host.
    Host,
    /// The database name.
    Database,
    /// A query parameter name or value.
    Query,
}

impl fmt::Display for UriPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriPart::User => "user name",
            UriPart::Password => "password",
            UriPart::Host => "host",
            UriPart::Database => "database name",
            UriPart::Query => "query string",
        })
    }
}

/// Why a string is not a usable PostgreSQL connection URI.
///
/// Messages never repeat the input: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// Nothing (or only whitespace) was given.
    #[error("the connection string is empty")]
    Empty,
    /// Helm's random 5-character placeholder (`randAlphaNum 5`), not a URI.
    #[error(
        "the connection string is a 5-character placeholder, not a postgres:// URI: Helm writes a random placeholder into <release>-houston-backend on every `helm upgrade` (charts 0.23–1.x), and the houston-bootstrapper init container rewrites it the next time the Houston pod starts"
    )]
    Placeholder,
    /// No `scheme://` at all.
    #[error(
        "the connection string is not a URI (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
    )]
    NotAUri,
    /// A scheme other than `postgres`/`postgresql`.
    #[error(
        "unsupported scheme {scheme:?}: expected postgres:// or postgresql://{}",
        scheme_hint(scheme)
    )]
    WrongScheme {
        /// The scheme that was found (before `://`).
        scheme: String,
    },
    /// No host between `@` and the port/path.
    #[error("the connection string names no host")]
    MissingHost,
    /// libpq's multi-host form `h1:5432,h2:5432`, which this tool cannot target.
    #[error("the connection string names several hosts; kubectl-astro needs exactly one")]
    MultipleHosts,
    /// An IPv6 address without its closing bracket, or junk after it.
    #[error("the IPv6 host is malformed (expected [ADDRESS] or [ADDRESS]:PORT)")]
    BadIpv6,
    /// A port that is not a number in 1..=65535.
    #[error("{} is not a number between 1 and 65535", shown("port", port))]
    BadPort {
        /// The port text as found when it is all digits; `None` otherwise, since text in
        /// the port place is often a password whose `@` is missing.
        port: Option<String>,
    },
    /// A `%` not followed by two hex digits.
    #[error(
        "bad percent-encoding in the {part} (every % must be followed by two hex digits; encode a literal % as %25)"
    )]
    BadPercentEncoding {
        /// Where it was found.
        part: UriPart,
    },
    /// Percent-decoding gave bytes that are not UTF-8.
    #[error("the {part} is not valid UTF-8 after percent-decoding")]
    NotUtf8 {
        /// Where it was found.
        part: UriPart,
    },
    /// A NUL byte (`%00`), which libpq and environment variables cannot carry.
    #[error("the {part} contains a NUL byte (%00)")]
    NulByte {
        /// Where it was found.
        part: UriPart,
    },
    /// A query item without `=`.
    #[error(
        "{} has no value (expected name=value)",
        shown("query parameter", name)
    )]
    BadQuery {
        /// The item when it is a parameter name we know; `None` otherwise, since an item
        /// without `=` may be a password that lost its `password=`.
        name: Option<String>,
    },
    /// `sslmode` with a value libpq does not know.
    #[error(
        "sslmode {value:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
    )]
    BadSslMode {
        /// The value as found.
        value: String,
    },
    /// A query parameter neither libpq nor Prisma knows; psql would reject it.
    #[error(
        "unknown {}: psql would fail with \"invalid URI query parameter\"",
        shown("query parameter", name)
    )]
    UnknownParameter {
        /// The parameter name when it looks like one (`[a-z0-9_]`, at most 40); `None`
        /// otherwise, since a raw `?` or `&` in a password puts password text there.
        name: Option<String>,
    },
}

/// `what "value"` when the value may be shown, else `the what`.
fn shown(what: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{what} {v:?}"),
        None => format!("the {what}"),
    }
}

fn scheme_hint(scheme: &str) -> &'static str {
    let lower = scheme.to_ascii_lowercase();
    if lower == "db+postgresql" || lower == "db+postgres" {
        " (db+postgresql:// is Celery's result-backend form; read the metadata connection instead)"
    } else if lower.starts_with("postgresql+") || lower.starts_with("postgres+") {
        " (a SQLAlchemy driver URL; drop the +driver part)"
    } else {
        ""
    }
}

/// A PostgreSQL connection: one host, decoded credentials, database, search path and
/// the libpq parameters worth keeping.
///
/// `Debug` and [`PgConnection::to_redacted_uri`] hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConnection {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: u16,
    database: Option<String>,
    search_path: Option<String>,
    sslmode: Option<SslMode>,
    params: Vec<(String, String)>,
    dropped: Vec<DroppedParam>,
}

/// A query parameter removed while parsing, with the reason (shown to the user).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DroppedParam {
    /// The parameter name.
    pub name: String,
    /// Why it was removed.
    pub reason: &'static str,
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("search_path", &self.search_path)
            .field("sslmode", &self.sslmode)
            .field("params", &self.params)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl FromStr for PgConnection {
    type Err = ConnectionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PgConnection::parse(s)
    }
}

/// Whether `s` looks like Helm's `randAlphaNum 5` placeholder.
pub fn is_placeholder(s: &str) -> bool {
    s.len() == 5 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl PgConnection {
    /// Builds a connection from parts (no query parameters).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        PgConnection {
            user: None,
            password: None,
            host: host.into(),
            port,
            database: None,
            search_path: None,
            sslmode: None,
            params: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// Parses a `postgres://` or `postgresql://` URI (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, ConnectionError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ConnectionError::Empty);
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(if is_placeholder(input) {
                ConnectionError::Placeholder
            } else {
                ConnectionError::NotAUri
            });
        };
        if !matches!(
            scheme.to_ascii_lowercase().as_str(),
            "postgres" | "postgresql"
        ) {
            return Err(ConnectionError::WrongScheme {
                scheme: scheme.chars().take(40).collect(),
            });
        }

        // libpq: [userspec@][hostspec][/dbname][?paramspec]; the last '@' before the path
        // ends the user part (a raw '@' in a password is a common mistake we tolerate).
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority_end = find_authority_end(before_query);
        let (authority, path) = before_query.split_at(authority_end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };

        let mut conn = PgConnection::new(String::new(), DEFAULT_PORT);
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                conn.user = Some(decode(user, UriPart::User)?);
            }
            if let Some(p) = password {
                conn.password = Some(decode(p, UriPart::Password)?);
            }
        }
        let (host, port) = split_host_port(hostport)?;
        conn.host = host;
        if let Some(port) = port {
            conn.port = parse_port(&port)?;
        }
        let path = path.strip_prefix('/').unwrap_or(path);
        if !path.is_empty() {
            conn.database = Some(decode(path, UriPart::Database)?);
        }
        if let Some(query) = query {
            conn.apply_query(query)?;
        }
        if conn.host.is_empty() {
            return Err(ConnectionError::MissingHost);
        }
        Ok(conn)
    }

    fn apply_query(&mut self, query: &str) -> Result<(), ConnectionError> {
        for item in query.split('&').filter(|s| !s.is_empty()) {
            let Some((raw_name, raw_value)) = item.split_once('=') else {
                let known = |n: &str| {
                    [
                        "schema", "sslmode", "user", "password", "dbname", "port", "host",
                    ]
                    .contains(&n)
                        || LIBPQ_PARAMS.contains(&n)
                        || PRISMA_ONLY_PARAMS.contains(&n)
                };
                return Err(ConnectionError::BadQuery {
                    name: decode(item, UriPart::Query).ok().filter(|n| known(n)),
                });
            };
            let name = decode(raw_name, UriPart::Query)?;
            // Values may hold a password (`password=`), so errors below never quote them.
            let value = decode(raw_value, UriPart::Query)?;
            match name.as_str() {
                "schema" => self.search_path = Some(value),
                "sslmode" => self.sslmode = Some(value.parse()?),
                // Empty means libpq's default, as an empty user or path in the URI does.
                "user" => self.user = Some(value).filter(|v| !v.is_empty()),
                "password" => self.password = Some(value),
                "dbname" => self.database = Some(value).filter(|v| !v.is_empty()),
                "port" => self.port = parse_port(&value)?,
                "host" => {
                    if value.contains(',') {
                        return Err(ConnectionError::MultipleHosts);
                    }
                    self.host = value;
                }
                n if PRISMA_ONLY_PARAMS.contains(&n) => self.dropped.push(DroppedParam {
                    name,
                    reason: "Prisma-only setting; libpq and psql do not know it",
                }),
                n if LIBPQ_PARAMS.contains(&n) => {
                    self.params.retain(|(k, _)| k != n);
                    self.params.push((name, value));
                }
                _ => {
                    let plain = name.len() <= 40
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                    return Err(ConnectionError::UnknownParameter {
                        name: plain.then_some(name),
                    });
                }
            }
        }
        Ok(())
    }

    /// The user name, percent-decoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    /// The password, percent-decoded. Never print it without `--show-secrets`.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
    /// The host (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The port (5432 when the URI names none).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The database name, percent-decoded.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }
    /// The schema to search first (from Prisma's `schema` parameter).
    pub fn search_path(&self) -> Option<&str> {
        self.search_path.as_deref()
    }
    /// The `sslmode` parameter, if given.
    pub fn sslmode(&self) -> Option<SslMode> {
        self.sslmode
    }
    /// Other libpq parameters kept from the URI, in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }
    /// Parameters removed while parsing, with the reason.
    pub fn dropped(&self) -> &[DroppedParam] {
        &self.dropped
    }

    /// The same connection with another database.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }
    /// The same connection with another search path (`None` clears it).
    pub fn with_search_path(mut self, search_path: Option<String>) -> Self {
        self.search_path = search_path;
        self
    }
    /// The same connection with another `sslmode` (`None` clears it).
    pub fn with_sslmode(mut self, sslmode: Option<SslMode>) -> Self {
        self.sslmode = sslmode;
        self
    }
    /// The same connection with another user and password.
    pub fn with_credentials(mut self, user: impl Into<String>, password: Option<String>) -> Self {
        self.user = Some(user.into());
        self.password = password;
        self
    }
    /// A URI psql accepts: `postgresql://…`, components re-encoded, no `schema`; a search
    /// path travels as `options=-c search_path=…` so `psql "$URI"` lands in the right schema.
    pub fn to_uri(&self) -> String {
        self.render(self.password.as_deref().map(encode).as_deref())
    }

    /// [`PgConnection::to_uri`] with the password replaced by `***`.
    pub fn to_redacted_uri(&self) -> String {
        self.render(self.password.as_ref().map(|_| REDACTED))
    }

    fn render(&self, password: Option<&str>) -> String {
        let mut uri = String::from("postgresql://");
        if let Some(user) = &self.user {
            uri.push_str(&encode(user));
        }
        if let Some(password) = password {
            uri.push(':');
            uri.push_str(password);
        }
        if self.user.is_some() || password.is_some() {
            uri.push('@');
        }
        if self.host.contains(':') {
            // An IPv6 address keeps its colons; a zone (`fe80::1%eth0`) needs its `%` encoded.
            uri.push('[');
            uri.push_str(&utf8_percent_encode(&self.host, IPV6_HOST).to_string());
            uri.push(']');
        } else {
            uri.push_str(&encode(&self.host));
        }
        uri.push(':');
        uri.push_str(&self.port.to_string());
        if let Some(db) = &self.database {
            uri.push('/');
            uri.push_str(&encode(db));
        }
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(mode) = self.sslmode {
            query.push(("sslmode", mode.as_str().to_owned()));
        }
        for (k, v) in &self.params {
            if k != "options" {
                query.push((k, v.clone()));
            }
        }
        if let Some(options) = self.options() {
            query.push(("options", options));
        }
        for (i, (k, v)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(&encode(k));
            uri.push('=');
            uri.push_str(&encode(v));
        }
        uri
    }

    /// The libpq `options` value: any `options` from the URI, then `-c search_path=…`.
    pub fn options(&self) -> Option<String> {
        let given = self
            .params
            .iter()
            .find(|(k, _)| k == "options")
            .map(|(_, v)| v.clone());
        let search = self.search_path.as_deref().map(|s| {
            format!(
                "-c search_path={}",
                escape_option_value(&quote_search_path(s))
            )
        });
        match (given, search) {
            (Some(g), Some(s)) => Some(format!("{g} {s}")),
            (g, s) => g.or(s),
        }
    }

    /// libpq environment variables for this connection (`PGHOST`, …, `PGOPTIONS`), with
    /// `PGPASSWORD` only when `include_password` is set.
    pub fn libpq_env(&self, include_password: bool) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
        ];
        if let Some(user) = &self.user {
            env.push(("PGUSER", user.clone()));
        }
        if include_password && let Some(password) = &self.password {
            env.push(("PGPASSWORD", password.clone()));
        }
        if let Some(db) = &self.database {
            env.push(("PGDATABASE", db.clone()));
        }
        if let Some(mode) = self.sslmode {
            env.push(("PGSSLMODE", mode.as_str().to_owned()));
        }
        for (k, v) in &self.params {
            if let Some((_, var)) = PARAM_ENV.iter().find(|(p, _)| p == k) {
                env.push((var, v.clone()));
            }
        }
        if let Some(options) = self.options() {
            env.push(("PGOPTIONS", options));
        }
        env
    }

    /// A tokio-postgres configuration for this connection (search path via `options`).
    /// tokio-postgres knows `disable`/`prefer`/`require`; the verify modes map to `require`.
    pub fn tokio_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host(&self.host).port(self.port);
        if let Some(user) = &self.user {
            config.user(user);
        }
        if let Some(password) = &self.password {
            config.password(password);
        }
        if let Some(db) = &self.database {
            config.dbname(db);
        }
        if let Some(options) = self.options() {
            config.options(&options);
        }
        config.application_name("kubectl-astro");
        for (k, v) in &self.params {
            match k.as_str() {
                "application_name" => {
                    config.application_name(v);
                }
                "connect_timeout" => {
                    if let Ok(secs) = v.parse::<u64>() {
                        config.connect_timeout(std::time::Duration::from_secs(secs));
                    }
                }
                _ => {}
            }
        }
        config.ssl_mode(match self.sslmode {
            None | Some(SslMode::Prefer) | Some(SslMode::Allow) => {
                tokio_postgres::config::SslMode::Prefer
            }
            Some(SslMode::Disable) => tokio_postgres::config::SslMode::Disable,
            Some(SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => {
                tokio_postgres::config::SslMode::Require
            }
        });
        config
    }
}

/// Index where the authority (user@host:port) ends: the first '/' outside IPv6 brackets.
fn find_authority_end(s: &str) -> usize {
    let mut in_brackets = false;
    let mut last_at = None;
    // The user part may contain '/' in a sloppy password; only look after the last '@'.
    for (i, b) in s.bytes().enumerate() {
        if b == b'@' {
            last_at = Some(i);
        }
    }
    let start = last_at.map_or(0, |i| i + 1);
    for (i, b) in s.bytes().enumerate().skip(start) {
        match b {
            b'[' => in_brackets = true,
            b']' => in_brackets = false,
            b'/' if !in_brackets => return i,
            _ => {}
        }
    }
    s.len()
}

fn split_host_port(hostport: &str) -> Result<(String, Option<String>), ConnectionError> {
    if hostport.contains(',') {
        return Err(ConnectionError::MultipleHosts);
    }
    if let Some(rest) = hostport.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(ConnectionError::BadIpv6);
        };
        if addr.is_empty() || !addr.contains(':') {
            return Err(ConnectionError::BadIpv6);
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(ConnectionError::BadIpv6)?
                    .to_owned(),
            ),
        };
        return Ok((decode(addr, UriPart::Host)?, port));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.to_owned())),
        None => (hostport, None),
    };
    if host.contains(':') {
        // Bare IPv6 (`::1:5432`) is ambiguous; libpq needs brackets too.
        return Err(ConnectionError::BadIpv6);
    }
    Ok((decode(host, UriPart::Host)?, port))
}

fn parse_port(port: &str) -> Result<u16, ConnectionError> {
    if port.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(ConnectionError::BadPort {
            port: (port.len() <= 20 && port.bytes().all(|b| b.is_ascii_digit()))
                .then(|| port.to_owned()),
        }),
    }
}

/// Strict percent-decoding: every `%` needs two hex digits, result must be UTF-8 without NUL.
fn decode(s: &str, part: UriPart) -> Result<String, ConnectionError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(ConnectionError::BadPercentEncoding { part }),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(ConnectionError::NulByte { part });
    }
    String::from_utf8(out).map_err(|_| ConnectionError::NotUtf8 { part })
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A schema name as it must appear in `search_path`: bare when PostgreSQL would read it
/// unchanged (lowercase, `$` allowed after the first character), double-quoted otherwise.
pub fn quote_search_path(schema: &str) -> String {
    let mut chars = schema.chars();
    let bare = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        schema.to_owned()
    } else {
        format!("\"{}\"", schema.replace('"', "\"\""))
    }
}

/// Escapes a value inside libpq `options`: whitespace separates arguments there, and a
/// backslash keeps a space or backslash literal.
fn escape_option_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Quotes a value for a POSIX shell `export` line: single quotes, `'` as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::commands::error::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;

    const HOST: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";

    fn houston() -> String {
        format!(
            "postgres://astro_admin:Sup3r%21Secret@{HOST}:5432/astronomer_houston?schema=houston%24default"
        )
    }

    #[test]
    fn parses_the_houston_backend_form() {
        let c = PgConnection::parse(&houston()).unwrap();
        assert_eq!(c.user(), Some("astro_admin"));
        assert_eq!(c.password(), Some("Sup3r!Secret"));
        assert_eq!(c.host(), HOST);
        assert_eq!(c.port(), 5432);
        assert_eq!(c.database(), Some("astronomer_houston"));
        assert_eq!(c.search_path(), Some("houston$default"));
        assert_eq!(c.sslmode(), None);
        assert!(c.params().is_empty());
        assert_eq!(
            c.to_uri(),
            format!(
                "postgresql://astro_admin:Sup3r%21Secret@{HOST}:5432/astronomer_houston?options=-c%20search_path%3Dhouston%24default"
            )
        );
        assert!(!c.to_uri().contains("schema="));
    }

    #[test]
    fn parses_the_bootstrap_form_and_fills_defaults() {
        let c =
            PgConnection::parse(&format!("postgres://astro_admin:Sup3r%21Secret@{HOST}")).unwrap();
        assert_eq!(c.port(), 5432);
        assert_eq!(c.database(), None);
        let c = c.with_database("astronomer_houston");
        assert_eq!(
            c.to_uri(),
            format!("postgresql://astro_admin:Sup3r%21Secret@{HOST}:5432/astronomer_houston")
        );
    }

    #[test]
    fn keeps_sslmode_and_libpq_params() {
        let c = PgConnection::parse(&format!(
            "postgresql://u:p@{HOST}:5432/db?schema=houston%24default&sslmode=require&connect_timeout=5"
        ))
        .unwrap();
        assert_eq!(c.sslmode(), Some(SslMode::Require));
        assert_eq!(c.params(), &[("connect_timeout".into(), "5".into())]);
        let uri = c.to_uri();
        assert!(uri.contains("sslmode=require"), "{uri}");
        assert!(uri.contains("connect_timeout=5"), "{uri}");
        assert!(!uri.contains("schema="), "{uri}");
    }

    #[test]
    fn drops_prisma_params_with_a_reason() {
        let c =
            PgConnection::parse("postgres://u:p@h/db?connection_limit=5&pgbouncer=true").unwrap();
        let names: Vec<_> = c.dropped().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["connection_limit", "pgbouncer"]);
        assert_eq!(c.to_uri(), "postgresql://u:p@h:5432/db");
    }

    #[test]
    fn ipv6_hosts() {
        let c = PgConnection::parse("postgres://u:p@[2001:db8::1]:6543/db").unwrap();
        assert_eq!(c.host(), "2001:db8::1");
        assert_eq!(c.port(), 6543);
        assert_eq!(c.to_uri(), "postgresql://u:p@[2001:db8::1]:6543/db");
        let c = PgConnection::parse("postgres://[::1]/db").unwrap();
        assert_eq!((c.host(), c.port()), ("::1", 5432));
    }

    #[test]
    fn printed_uris_parse_back() {
        // Found by shared/tests/properties: an IPv6 zone lost its `%25`, and an empty
        // `user=`/`dbname=` printed as a URI that parsed without them.
        let c = PgConnection::parse("postgres://[fe80::1%25eth0]:5433/db").unwrap();
        assert_eq!(c.host(), "fe80::1%eth0");
        assert_eq!(c.to_uri(), "postgresql://[fe80::1%25eth0]:5433/db");
        assert_eq!(PgConnection::parse(&c.to_uri()).unwrap(), c);
        let c = PgConnection::parse("postgres://h?user=&dbname=").unwrap();
        assert_eq!((c.user(), c.database()), (None, None));
        assert_eq!(PgConnection::parse(&c.to_uri()).unwrap(), c);
    }

    #[test]
    fn query_overrides_and_odd_but_valid_forms() {
        let c = PgConnection::parse("postgresql://h/db?user=a&password=b%40c&port=6000").unwrap();
        assert_eq!(c.user(), Some("a"));
        assert_eq!(c.password(), Some("b@c"));
        assert_eq!(c.port(), 6000);
        // A raw '@' and '/' in the password: the last '@' ends the user part.
        let c = PgConnection::parse("postgres://u:p@ss/w@h:5/db").unwrap();
        assert_eq!((c.password(), c.host(), c.port()), (Some("p@ss/w"), "h", 5));
        // Surrounding newline from `--from-file`.
        assert!(PgConnection::parse(&format!("{}\n", houston())).is_ok());
        assert!(PgConnection::parse("POSTGRES://h").is_ok());
    }

    #[test]
    fn rejects_bad_inputs_with_typed_errors() {
        use ConnectionError as E;
        let cases: &[(&str, ConnectionError)] = &[
            ("", E::Empty),
            ("  \n", E::Empty),
            ("k3Zq9", E::Placeholder),
            ("not a uri", E::NotAUri),
            (
                "mysql://u:p@h/db",
                E::WrongScheme {
                    scheme: "mysql".into(),
                },
            ),
            (
                "db+postgresql://u:p@h/db",
                E::WrongScheme {
                    scheme: "db+postgresql".into(),
                },
            ),
            ("postgres://u:p@/db", E::MissingHost),
            ("postgres://", E::MissingHost),
            ("postgres://h1:5432,h2:5432/db", E::MultipleHosts),
            ("postgres://[::1/db", E::BadIpv6),
            ("postgres://::1:5432/db", E::BadIpv6),
            ("postgres://h:port/db", E::BadPort { port: None }),
            (
                "postgres://h:0/db",
                E::BadPort {
                    port: Some("0".into()),
                },
            ),
            (
                "postgres://h:70000/db",
                E::BadPort {
                    port: Some("70000".into()),
                },
            ),
            (
                "postgres://u:p%zz@h/db",
                E::BadPercentEncoding {
                    part: UriPart::Password,
                },
            ),
            (
                "postgres://u:p%4@h/db",
                E::BadPercentEncoding {
                    part: UriPart::Password,
                },
            ),
            (
                "postgres://u%ff@h/db",
                E::NotUtf8 {
                    part: UriPart::User,
                },
            ),
            (
                "postgres://h/d%00b",
                E::NulByte {
                    part: UriPart::Database,
                },
            ),
            (
                "postgres://h/db?sslmode=sometimes",
                E::BadSslMode {
                    value: "sometimes".into(),
                },
            ),
            (
                "postgres://h/db?frobnicate=1",
                E::UnknownParameter {
                    name: Some("frobnicate".into()),
                },
            ),
            (
                "postgres://u:?Sup3rSecret@h/db?schema=x",
                E::UnknownParameter { name: None },
            ),
            (
                "postgres://h/db?schema",
                E::BadQuery {
                    name: Some("schema".into()),
                },
            ),
            ("postgres://h/db?Sup3rSecret", E::BadQuery { name: None }),
        ];
        for (input, expected) in cases {
            assert_eq!(
                PgConnection::parse(input).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn errors_never_echo_the_password() {
        for input in [
            "mysql://u:Sup3rSecretPw@h/db",
            "postgres://u:Sup3rSecretPw%zz@h/db",
            "postgres://u:Sup3rSecretPw@h:x/db",
            "postgres://u:Sup3rSecretPw/db",
            "postgres://h/db?Sup3rSecretPw",
            "postgres://h/db?password=Sup3rSecretPw&sslmode=Sup3rSecretPw",
        ] {
            let err = PgConnection::parse(input).unwrap_err();
            let shown = format!("{err} {err:?} {}", err.next_step().unwrap_or_default());
            // BadSslMode quotes its value by design; a password there is not credible,
            // but the other cases must never repeat it.
            if !matches!(err, ConnectionError::BadSslMode { .. }) {
                assert!(!shown.contains("Sup3rSecretPw"), "{input}: {shown}");
            }
        }
    }

    #[test]
    fn result_backend_prefix_is_not_a_postgres_uri() {
        let uri = "db+postgresql://u:p@r-pgbouncer:6543/r-result-backend?sslmode=disable";
        assert!(PgConnection::parse(uri).is_err());
    }

    #[test]
    fn debug_and_redacted_uri_hide_the_password() {
        let c = PgConnection::parse(&houston()).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("Sup3r"), "{debug}");
        assert!(debug.contains("***"));
        let redacted = c.to_redacted_uri();
        assert!(!redacted.contains("Sup3r"), "{redacted}");
        assert!(redacted.starts_with("postgresql://astro_admin:***@"));
    }

    #[test]
    fn libpq_env_sets_search_path_and_withholds_password() {
        let c = PgConnection::parse(&format!("{}&sslmode=require", houston())).unwrap();
        let env = c.libpq_env(false);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGHOST"), Some(HOST));
        assert_eq!(get("PGPORT"), Some("5432"));
        assert_eq!(get("PGUSER"), Some("astro_admin"));
        assert_eq!(get("PGPASSWORD"), None);
        assert_eq!(get("PGDATABASE"), Some("astronomer_houston"));
        assert_eq!(get("PGSSLMODE"), Some("require"));
        assert_eq!(get("PGOPTIONS"), Some("-c search_path=houston$default"));
        let env = c.libpq_env(true);
        assert!(env.contains(&("PGPASSWORD", "Sup3r!Secret".into())));
    }

    #[test]
    fn search_path_quoting() {
        assert_eq!(quote_search_path("houston$default"), "houston$default");
        assert_eq!(quote_search_path("grafana"), "grafana");
        assert_eq!(quote_search_path("My Schema"), "\"My Schema\"");
        assert_eq!(quote_search_path("$x"), "\"$x\"");
        let c = PgConnection::parse("postgres://h/db?schema=My%20Schema").unwrap();
        assert_eq!(c.options().unwrap(), "-c search_path=\"My\\ Schema\"");
        assert_eq!(shell_quote("a'b$c"), "'a'\\''b$c'");
    }

    #[test]
    fn tokio_config_carries_everything() {
        let c = PgConnection::parse(&houston()).unwrap();
        let cfg = c.tokio_config();
        assert_eq!(cfg.get_user(), Some("astro_admin"));
        assert_eq!(cfg.get_password(), Some(&b"Sup3r!Secret"[..]));
        assert_eq!(cfg.get_dbname(), Some("astronomer_houston"));
        assert_eq!(cfg.get_ports(), &[5432]);
        assert_eq!(cfg.get_options(), Some("-c search_path=houston$default"));
    }

    #[test]
    fn builders_replace_parts() {
        let c = PgConnection::parse(&houston())
            .unwrap()
            .with_database("postgres")
            .with_search_path(None);
        assert_eq!(
            c.to_uri(),
            "postgresql://astro_admin:Sup3r%21Secret@astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com:5432/postgres"
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = PgConnection::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_uri_shapes(
            s in "(postgres|postgresql|db\\+postgresql)://[a-z%:@\\[\\]0-9/?=&.,]{0,60}"
        ) {
            let _ = PgConnection::parse(&s);
        }

        #[test]
        fn to_uri_round_trips(
            user in "[^\\x00]{1,20}",
            password in "[^\\x00]{0,20}",
            database in "[^\\x00]{1,20}",
            schema in proptest::option::of("[^\\x00]{1,12}"),
            port in 1u16..,
        ) {
            let c = PgConnection::new("db.example.com", port)
                .with_credentials(user.clone(), Some(password.clone()))
                .with_database(database.clone())
                .with_search_path(schema.clone());
            let back = PgConnection::parse(&c.to_uri()).unwrap();
            proptest::prop_assert_eq!(back.user(), Some(user.as_str()));
            proptest::prop_assert_eq!(back.password(), Some(password.as_str()));
            proptest::prop_assert_eq!(back.database(), Some(database.as_str()));
            proptest::prop_assert_eq!(back.port(), port);
            proptest::prop_assert_eq!(back.options(), c.options());
        }
    }
}
