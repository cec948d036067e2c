//! Finding the platform's database connections in the cluster: the platform Helm release,
//! the `*-houston-backend` / `astronomer-bootstrap` / `*-grafana-backend` secrets, and a
//! deployment's Airflow database (direct endpoint from `<R>-pgbouncer-config`).
//!
//! I/O (`collect_*`, [`read_secret`]) is kept apart from the decisions (`resolve_*`,
//! [`parse_pgbouncer_ini`], [`parse_users_txt`]), which are pure and unit-tested.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use crate::client::KubeError;
use crate::connection::{ConnectionError, PgConnection, SslMode, is_placeholder};
use crate::release::ReleaseName;

/// Default Helm release name of the Astronomer platform.
pub const DEFAULT_PLATFORM_RELEASE: &str = "astronomer";

/// Where the platform and Velero live in a cluster (the global flags, as domain code
/// takes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Namespace of the Astronomer platform.
    pub platform_namespace: String,
    /// The platform's Helm release, when given (else detected).
    pub platform_release: Option<String>,
    /// Namespace of the Velero server.
    pub velero_namespace: String,
}

/// Fixed name of the secret holding the platform's root database connection.
pub const BOOTSTRAP_SECRET: &str = "astronomer-bootstrap";
/// Key holding the connection URI in the platform secrets.
pub const CONNECTION_KEY: &str = "connection";
/// Schema of the Houston tables (Prisma 1 legacy: service `houston`, stage `default`).
pub const HOUSTON_SCHEMA: &str = "houston$default";
/// Chart name of the platform's Helm release.
pub const PLATFORM_CHART: &str = "astronomer";

/// A Secret as read from the API, with `data` values still base64 so that a value
/// that is not base64 becomes our typed error rather than a deserialisation failure.
#[derive(Clone, PartialEq, Eq)]
pub struct RawSecret {
    /// Namespace of the secret.
    pub namespace: String,
    /// Name of the secret.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its `data`, values base64 as on the wire.
    pub data: BTreeMap<String, String>,
}

impl fmt::Debug for RawSecret {
    // Values are secrets: show only which keys exist.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RawSecret {
    /// Builds one from an API object (a `v1/Secret` as JSON).
    pub fn from_json(namespace: &str, value: &serde_json::Value) -> Self {
        let meta = &value["metadata"];
        let strings = |v: &serde_json::Value| -> BTreeMap<String, String> {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        };
        RawSecret {
            namespace: meta["namespace"].as_str().unwrap_or(namespace).to_owned(),
            name: meta["name"].as_str().unwrap_or_default().to_owned(),
            labels: strings(&meta["labels"]),
            data: strings(&value["data"]),
        }
    }

    /// Builds one from decoded values (tests, dry runs).
    pub fn from_strings(namespace: &str, name: &str, values: &[(&str, &str)]) -> Self {
        RawSecret {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            labels: BTreeMap::new(),
            data: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), BASE64.encode(v)))
                .collect(),
        }
    }

    /// The decoded bytes of `key`.
    pub fn bytes(&self, key: &str) -> Result<Vec<u8>, PlatformError> {
        let raw = self
            .data
            .get(key)
            .ok_or_else(|| PlatformError::KeyMissing {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                key: key.to_owned(),
                keys: self.data.keys().cloned().collect(),
            })?;
        BASE64
            .decode(raw.trim())
            .map_err(|_| PlatformError::NotBase64 {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                key: key.to_owned(),
            })
    }

    /// The decoded UTF-8 text of `key`.
    pub fn text(&self, key: &str) -> Result<String, PlatformError> {
        String::from_utf8(self.bytes(key)?).map_err(|_| PlatformError::NotUtf8 {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            key: key.to_owned(),
        })
    }

    /// `key` parsed as a connection URI (errors name this secret and key).
    pub fn connection(&self, key: &str) -> Result<PgConnection, PlatformError> {
        PgConnection::parse(&self.text(key)?).map_err(|source| self.bad_connection(key, source))
    }

    fn bad_connection(&self, key: &str, source: ConnectionError) -> PlatformError {
        PlatformError::BadConnection {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            key: key.to_owned(),
            source,
        }
    }
}

/// Errors finding or reading the platform's database secrets.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The secret does not exist.
    #[error("secret {namespace}/{name} not found")]
    SecretMissing {
        /// Namespace searched.
        namespace: String,
        /// Secret name (or names tried, joined with " or ").
        name: String,
    },
    /// The namespace does not exist.
    #[error("namespace {namespace:?} not found")]
    NamespaceMissing {
        /// The namespace.
        namespace: String,
    },
    /// The secret exists but lacks the key.
    #[error("secret {namespace}/{name} has no key {key:?} (keys: {})", if keys.is_empty() { "none".to_owned() } else { keys.join(", ") })]
    KeyMissing {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key we needed.
        key: String,
        /// The keys it has.
        keys: Vec<String>,
    },
    /// The value is not base64.
    #[error("secret {namespace}/{name} key {key:?} is not valid base64")]
    NotBase64 {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// The value is not UTF-8 text.
    #[error("secret {namespace}/{name} key {key:?} is not UTF-8 text")]
    NotUtf8 {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// The value is not a usable connection URI.
    #[error("secret {namespace}/{name} key {key:?}: {source}")]
    BadConnection {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// Why the URI was rejected.
        source: ConnectionError,
    },
    /// Neither the Houston secret nor the bootstrap fallback gave a connection.
    #[error(
        "cannot find the Houston database connection: {houston_reason}; the fallback failed too: {fallback}"
    )]
    HoustonUnresolved {
        /// Why the Houston secret was not used.
        houston_reason: String,
        /// Why the bootstrap fallback failed.
        #[source]
        fallback: Box<PlatformError>,
    },
    /// `<R>-pgbouncer-config` exists but does not describe the metadata database.
    #[error("secret {namespace}/{name}: {reason}")]
    BadPgbouncerConfig {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Several Helm releases of chart `astronomer` in the platform namespace.
    #[error("several platform releases (chart astronomer) in namespace {namespace:?}: {}", releases.join(", "))]
    AmbiguousRelease {
        /// Namespace searched.
        namespace: String,
        /// Release names found.
        releases: Vec<String>,
    },
    /// The API refused with 401/403.
    #[error("not allowed to {action} (HTTP {code})")]
    Forbidden {
        /// What we tried, e.g. "get secrets in namespace astronomer".
        action: String,
        /// 401 or 403.
        code: u16,
    },
    /// Any other API failure.
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// Maps an API error: 401/403 become [`PlatformError::Forbidden`].
fn api_error(action: String, source: kube::Error) -> PlatformError {
    match &source {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            PlatformError::Forbidden {
                action,
                code: status.code,
            }
        }
        _ => PlatformError::Kube(KubeError::api(action, source)),
    }
}

fn secrets_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<Secret>(&()),
    )
}

/// Reads a secret; `Ok(None)` when it does not exist.
pub async fn read_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<RawSecret>, PlatformError> {
    let api = secrets_api(client, namespace);
    // DynamicObject keeps `data` as raw JSON, so bad base64 is ours to report.
    match api.get_opt(name).await {
        Ok(Some(obj)) => {
            let mut value = obj.data;
            value["metadata"] = serde_json::to_value(&obj.metadata).unwrap_or_default();
            Ok(Some(RawSecret::from_json(namespace, &value)))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(api_error(
            format!("get secret {name} in namespace {namespace}"),
            e,
        )),
    }
}

/// Reads a secret that must exist; a missing one is reported with its namespace checked.
pub async fn require_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<RawSecret, PlatformError> {
    match read_secret(client, namespace, name).await? {
        Some(s) => Ok(s),
        None => Err(missing(client, namespace, name).await),
    }
}

/// The error for a missing secret: says so for the namespace when that is missing too.
async fn missing(client: &Client, namespace: &str, name: &str) -> PlatformError {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(namespace).await {
        Ok(None) => PlatformError::NamespaceMissing {
            namespace: namespace.to_owned(),
        },
        _ => PlatformError::SecretMissing {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Platform release detection

/// Where the platform release name came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum ReleaseOrigin {
    /// `--platform-release`.
    Flag,
    /// A Helm release secret of chart `astronomer`.
    Detected {
        /// The Helm release secret it was read from.
        secret: String,
    },
    /// Nothing found; the default `astronomer`.
    Default {
        /// Why detection did not give a name.
        reason: String,
    },
}

/// The platform's Helm release name and how we know it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlatformRelease {
    /// The release name (e.g. `astronomer`).
    pub name: String,
    /// How it was found.
    pub origin: ReleaseOrigin,
}

impl PlatformRelease {
    /// The name with `-` replaced by `_`, as in database names.
    pub fn underscored(&self) -> String {
        self.name.replace('-', "_")
    }
    /// `<release>-houston-backend`.
    pub fn houston_secret(&self) -> String {
        format!("{}-houston-backend", self.name)
    }
    /// `<release>-grafana-backend`.
    pub fn grafana_secret(&self) -> String {
        format!("{}-grafana-backend", self.name)
    }
    /// `<release_underscored>_houston`.
    pub fn houston_database(&self) -> String {
        format!("{}_houston", self.underscored())
    }
}

/// One Helm release secret, as far as detection cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmRecord {
    /// The secret's name (`sh.helm.release.v1.<release>.v<N>`).
    pub secret: String,
    /// The release name (label `name`, else from the secret name).
    pub release: String,
    /// Revision (label `version`, else from the secret name).
    pub version: u64,
    /// Label `status` (`deployed`, `superseded`, …).
    pub status: Option<String>,
    /// `chart.metadata.name` when the payload could be decoded.
    pub chart: Option<String>,
}

/// Reads the parts of a Helm release secret that detection needs.
pub fn helm_record(secret: &RawSecret) -> Option<HelmRecord> {
    let rest = secret
        .name
        .strip_prefix(crate::helm::RELEASE_SECRET_PREFIX)?;
    let (name_from_secret, version_from_secret) = rest.rsplit_once(".v")?;
    let release = secret
        .labels
        .get("name")
        .cloned()
        .unwrap_or_else(|| name_from_secret.to_owned());
    let version = secret
        .labels
        .get("version")
        .and_then(|v| v.parse().ok())
        .or_else(|| version_from_secret.parse().ok())
        .unwrap_or(0);
    let chart = secret
        .bytes("release")
        .ok()
        .and_then(|b| crate::helm::decode_release(&b))
        .and_then(|release| crate::helm::chart_name(&release));
    Some(HelmRecord {
        secret: secret.name.clone(),
        release,
        version,
        status: secret.labels.get("status").cloned(),
        chart,
    })
}

/// Picks the platform release among Helm records: the releases of chart `astronomer`;
/// when no payload could be decoded, the only release present (labels alone cannot tell
/// the chart, so two unknown releases fall back to the default).
pub fn choose_platform_release(
    namespace: &str,
    records: &[HelmRecord],
) -> Result<PlatformRelease, PlatformError> {
    let newest = |release: &str| {
        records
            .iter()
            .filter(|r| r.release == release)
            .max_by_key(|r| (r.status.as_deref() == Some("deployed"), r.version))
            .map(|r| r.secret.clone())
            .unwrap_or_default()
    };
    let mut astronomer: Vec<&str> = records
        .iter()
        .filter(|r| r.chart.as_deref() == Some(PLATFORM_CHART))
        .map(|r| r.release.as_str())
        .collect();
    astronomer.sort_unstable();
    astronomer.dedup();
    match astronomer.as_slice() {
        [one] => {
            return Ok(PlatformRelease {
                name: (*one).to_owned(),
                origin: ReleaseOrigin::Detected {
                    secret: newest(one),
                },
            });
        }
        [] => {}
        many => {
            return Err(PlatformError::AmbiguousRelease {
                namespace: namespace.to_owned(),
                releases: many.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
    }
    let mut undecoded: Vec<&str> = records
        .iter()
        .filter(|r| r.chart.is_none())
        .map(|r| r.release.as_str())
        .collect();
    undecoded.sort_unstable();
    undecoded.dedup();
    let reason = match undecoded.as_slice() {
        [one] if records.iter().all(|r| r.chart.is_none()) => {
            return Ok(PlatformRelease {
                name: (*one).to_owned(),
                origin: ReleaseOrigin::Detected {
                    secret: newest(one),
                },
            });
        }
        _ if records.is_empty() => {
            format!("no Helm release secrets (label owner=helm) in namespace {namespace}")
        }
        _ => format!("no Helm release of chart astronomer in namespace {namespace}"),
    };
    Ok(PlatformRelease {
        name: DEFAULT_PLATFORM_RELEASE.to_owned(),
        origin: ReleaseOrigin::Default { reason },
    })
}

/// The platform release: `--platform-release` if given, else detected from the Helm
/// release secrets in the platform namespace, else `astronomer` (with the reason).
pub async fn collect_platform_release(
    client: &Client,
    namespace: &str,
    given: Option<&str>,
) -> Result<PlatformRelease, PlatformError> {
    if let Some(name) = given {
        return Ok(PlatformRelease {
            name: name.to_owned(),
            origin: ReleaseOrigin::Flag,
        });
    }
    let api = secrets_api(client, namespace);
    let list = match api.list(&ListParams::default().labels("owner=helm")).await {
        Ok(list) => list,
        Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403) => {
            return Ok(PlatformRelease {
                name: DEFAULT_PLATFORM_RELEASE.to_owned(),
                origin: ReleaseOrigin::Default {
                    reason: format!(
                        "not allowed to list Helm release secrets in namespace {namespace} (HTTP {}); pass --platform-release to be sure",
                        status.code
                    ),
                },
            });
        }
        Err(e) => {
            return Err(api_error(
                format!("list Helm release secrets in namespace {namespace}"),
                e,
            ));
        }
    };
    let records: Vec<HelmRecord> = list
        .items
        .iter()
        .filter_map(|obj| {
            let mut value = obj.data.clone();
            value["metadata"] = serde_json::to_value(&obj.metadata).ok()?;
            helm_record(&RawSecret::from_json(namespace, &value))
        })
        .collect();
    choose_platform_release(namespace, &records)
}

// ---------------------------------------------------------------------------------------
// Connection resolution

/// Which database `dbconn` and friends should reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Houston's database (default).
    Houston,
    /// The bootstrap (root) connection itself, database `postgres`.
    Bootstrap,
    /// Grafana's database.
    Grafana,
    /// One deployment's Airflow database.
    Release {
        /// The deployment's release name.
        release: ReleaseName,
        /// Its namespace when not `<platform ns>-<release>`.
        namespace: Option<String>,
    },
}

/// Where a connection came from: the secret and key read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretSource {
    /// Namespace of the secret.
    pub namespace: String,
    /// Name of the secret.
    pub name: String,
    /// Key within it.
    pub key: String,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secret {}/{} key {}",
            self.namespace, self.name, self.key
        )
    }
}

/// A connection plus where it came from and why that source was chosen.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The connection to use.
    pub connection: PgConnection,
    /// The secrets (and keys) it was built from, main source first.
    pub sources: Vec<SecretSource>,
    /// Why this source was used (fallbacks, pgbouncer bypass); shown to the user.
    pub notes: Vec<String>,
}

/// Houston's connection: `<release>-houston-backend` when it holds a usable URI, else
/// `astronomer-bootstrap` + `<release_underscored>_houston` with schema `houston$default`.
pub fn resolve_houston(
    platform_namespace: &str,
    release: &PlatformRelease,
    houston: Option<&RawSecret>,
    bootstrap: Option<&RawSecret>,
) -> Result<Resolved, PlatformError> {
    let houston_name = release.houston_secret();
    let reason = match houston {
        None => format!("secret {platform_namespace}/{houston_name} not found"),
        Some(secret) => match secret.text(CONNECTION_KEY) {
            Err(e) => e.to_string(),
            Ok(text) if text.trim().is_empty() => format!(
                "secret {platform_namespace}/{houston_name} key connection is empty (chart 0.16 renders it empty until the bootstrapper runs)"
            ),
            Ok(text) if is_placeholder(text.trim()) => format!(
                "secret {platform_namespace}/{houston_name} holds Helm's 5-character placeholder (written on every `helm upgrade`; the houston-bootstrapper rewrites it when Houston restarts)"
            ),
            Ok(text) => match PgConnection::parse(&text) {
                Ok(connection) => {
                    let mut notes = Vec::new();
                    for d in connection.dropped() {
                        notes.push(format!("dropped query parameter {}: {}", d.name, d.reason));
                    }
                    return Ok(Resolved {
                        connection,
                        sources: vec![SecretSource {
                            namespace: platform_namespace.to_owned(),
                            name: houston_name,
                            key: CONNECTION_KEY.into(),
                        }],
                        notes,
                    });
                }
                Err(e) => format!("secret {platform_namespace}/{houston_name} key connection: {e}"),
            },
        },
    };
    let fallback = resolve_bootstrap_based(
        platform_namespace,
        bootstrap,
        &release.houston_database(),
        Some(HOUSTON_SCHEMA),
    )
    .map_err(|e| PlatformError::HoustonUnresolved {
        houston_reason: reason.clone(),
        fallback: Box::new(e),
    })?;
    let mut resolved = fallback;
    resolved.notes.insert(
        0,
        format!(
            "fell back to {BOOTSTRAP_SECRET} + database {}: {reason}",
            release.houston_database()
        ),
    );
    Ok(resolved)
}

/// The bootstrap connection with `database` (and schema) swapped in.
pub fn resolve_bootstrap_based(
    platform_namespace: &str,
    bootstrap: Option<&RawSecret>,
    database: &str,
    schema: Option<&str>,
) -> Result<Resolved, PlatformError> {
    let secret = bootstrap.ok_or_else(|| PlatformError::SecretMissing {
        namespace: platform_namespace.to_owned(),
        name: BOOTSTRAP_SECRET.to_owned(),
    })?;
    let connection = secret
        .connection(CONNECTION_KEY)?
        .with_database(database)
        .with_search_path(schema.map(str::to_owned));
    Ok(Resolved {
        connection,
        sources: vec![SecretSource {
            namespace: platform_namespace.to_owned(),
            name: BOOTSTRAP_SECRET.to_owned(),
            key: CONNECTION_KEY.into(),
        }],
        notes: Vec::new(),
    })
}

/// A `<platform>-*-backend` style secret that must hold a usable URI.
pub fn resolve_secret_connection(
    platform_namespace: &str,
    name: &str,
    secret: Option<&RawSecret>,
) -> Result<Resolved, PlatformError> {
    let secret = secret.ok_or_else(|| PlatformError::SecretMissing {
        namespace: platform_namespace.to_owned(),
        name: name.to_owned(),
    })?;
    let connection = secret.connection(CONNECTION_KEY)?;
    let notes = connection
        .dropped()
        .iter()
        .map(|d| format!("dropped query parameter {}: {}", d.name, d.reason))
        .collect();
    Ok(Resolved {
        connection,
        sources: vec![SecretSource {
            namespace: secret.namespace.clone(),
            name: secret.name.clone(),
            key: CONNECTION_KEY.into(),
        }],
        notes,
    })
}

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

/// The secrets that describe a deployment's Airflow database.
#[derive(Debug, Clone, Default)]
pub struct ReleaseSecrets {
    /// `<R>-airflow-metadata` or `<R>-metadata`, whichever exists.
    pub metadata: Option<RawSecret>,
    /// `<R>-pgbouncer-config`.
    pub pgbouncer_config: Option<RawSecret>,
}

/// A deployment's Airflow database. Its `*-metadata` secret points at the in-cluster
/// pgbouncer (`<R>-pgbouncer:6543`, database alias `<R>-metadata`), which only pods in
/// that namespace reach; so when pgbouncer is in the way, the direct server endpoint is
/// built from `<R>-pgbouncer-config` (host/port/dbname) with the metadata user's password.
pub fn resolve_release(
    namespace: &str,
    release: &ReleaseName,
    secrets: &ReleaseSecrets,
) -> Result<Resolved, PlatformError> {
    let metadata_names = format!("{release}-airflow-metadata or {release}-metadata");
    let metadata = secrets
        .metadata
        .as_ref()
        .map(|s| s.connection(CONNECTION_KEY).map(|c| (s, c)))
        .transpose()?;
    let via_pgbouncer = metadata
        .as_ref()
        .is_some_and(|(_, c)| c.host().contains("pgbouncer") || c.port() == 6543);

    if let Some((secret, conn)) = &metadata
        && !via_pgbouncer
    {
        return Ok(Resolved {
            connection: conn.clone(),
            sources: vec![SecretSource {
                namespace: namespace.to_owned(),
                name: secret.name.clone(),
                key: CONNECTION_KEY.into(),
            }],
            notes: vec![format!(
                "{} points straight at the database server (no pgbouncer)",
                secret.name
            )],
        });
    }

    let Some(config) = &secrets.pgbouncer_config else {
        // KEDA's direct URL (1.x chart, KEDA not via pgbouncer) bypasses pgbouncer too.
        if let Some((secret, _)) = &metadata
            && secret.data.contains_key("kedaConnection")
        {
            let connection = secret.connection("kedaConnection")?;
            return Ok(Resolved {
                connection,
                sources: vec![SecretSource {
                    namespace: namespace.to_owned(),
                    name: secret.name.clone(),
                    key: "kedaConnection".into(),
                }],
                notes: vec![format!(
                    "{} key connection points at pgbouncer (in-cluster only) and {release}-pgbouncer-config was not found; using its direct kedaConnection",
                    secret.name
                )],
            });
        }
        return match metadata {
            // Pgbouncer host but no config to bypass it: the in-cluster URI is all we have.
            Some((secret, conn)) => Ok(Resolved {
                connection: conn,
                sources: vec![SecretSource {
                    namespace: namespace.to_owned(),
                    name: secret.name.clone(),
                    key: CONNECTION_KEY.into(),
                }],
                notes: vec![format!(
                    "{} points at pgbouncer and {release}-pgbouncer-config was not found: this endpoint is reachable only from inside the cluster",
                    secret.name
                )],
            }),
            None => Err(PlatformError::SecretMissing {
                namespace: namespace.to_owned(),
                name: metadata_names,
            }),
        };
    };

    let bad = |reason: String| PlatformError::BadPgbouncerConfig {
        namespace: namespace.to_owned(),
        name: config.name.clone(),
        reason,
    };
    let ini = config.text("pgbouncer.ini")?;
    let alias = format!("{release}-metadata");
    let databases = parse_pgbouncer_ini(&ini);
    let entry = databases
        .iter()
        .find(|d| d.alias == alias)
        .or_else(|| databases.first())
        .ok_or_else(|| bad("pgbouncer.ini has no [databases] entry".into()))?;
    let host = entry
        .host
        .clone()
        .ok_or_else(|| bad(format!("[databases] {} has no host=", entry.alias)))?;
    let dbname = entry
        .dbname
        .clone()
        .unwrap_or_else(|| release.airflow_database());
    let users = parse_users_txt(&config.text("users.txt")?);
    let user = metadata
        .as_ref()
        .and_then(|(_, c)| c.user().map(str::to_owned))
        .or_else(|| users.first().map(|(u, _)| u.clone()))
        .ok_or_else(|| bad("users.txt names no user".into()))?;
    let password = users
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| p.clone())
        .or_else(|| {
            metadata
                .as_ref()
                .and_then(|(_, c)| c.password().map(str::to_owned))
        });
    let connection = PgConnection::new(host, entry.port.unwrap_or(5432))
        .with_credentials(user, password)
        .with_database(dbname)
        .with_sslmode(pgbouncer_server_sslmode(&ini));
    let mut sources = vec![SecretSource {
        namespace: namespace.to_owned(),
        name: config.name.clone(),
        key: "pgbouncer.ini".into(),
    }];
    sources.push(SecretSource {
        namespace: namespace.to_owned(),
        name: config.name.clone(),
        key: "users.txt".into(),
    });
    let note = match &metadata {
        Some((secret, _)) => format!(
            "{} points at pgbouncer (in-cluster only); using the database server behind it from {} [databases] {}",
            secret.name, config.name, entry.alias
        ),
        None => format!(
            "{metadata_names} not found; using the database server from {} [databases] {}",
            config.name, entry.alias
        ),
    };
    Ok(Resolved {
        connection,
        sources,
        notes: vec![note],
    })
}

/// Resolves the connection for `target` from the cluster.
pub async fn collect_connection(
    client: &Client,
    platform_namespace: &str,
    release: &PlatformRelease,
    target: &Target,
) -> Result<Resolved, PlatformError> {
    match target {
        Target::Houston => {
            let houston =
                read_secret(client, platform_namespace, &release.houston_secret()).await?;
            let bootstrap = read_secret(client, platform_namespace, BOOTSTRAP_SECRET).await?;
            if houston.is_none() && bootstrap.is_none() {
                // Say "namespace missing" rather than "secret missing" when that is the cause.
                return Err(missing(client, platform_namespace, BOOTSTRAP_SECRET).await).map_err(
                    |e| match e {
                        e @ PlatformError::NamespaceMissing { .. } => e,
                        e => PlatformError::HoustonUnresolved {
                            houston_reason: format!(
                                "secret {platform_namespace}/{} not found",
                                release.houston_secret()
                            ),
                            fallback: Box::new(e),
                        },
                    },
                );
            }
            resolve_houston(
                platform_namespace,
                release,
                houston.as_ref(),
                bootstrap.as_ref(),
            )
        }
        Target::Bootstrap => {
            let bootstrap = require_secret(client, platform_namespace, BOOTSTRAP_SECRET).await?;
            let mut resolved =
                resolve_bootstrap_based(platform_namespace, Some(&bootstrap), "postgres", None)?;
            resolved.notes.push(
                "bootstrap connection (database postgres): the root credentials Houston uses to create databases".into(),
            );
            Ok(resolved)
        }
        Target::Grafana => {
            let name = release.grafana_secret();
            let secret = require_secret(client, platform_namespace, &name).await?;
            resolve_secret_connection(platform_namespace, &name, Some(&secret))
        }
        Target::Release {
            release: r,
            namespace,
        } => {
            let ns = namespace.clone().unwrap_or_else(|| {
                crate::namespaces::default_deployment_namespace(platform_namespace, r)
            });
            let mut secrets = ReleaseSecrets {
                metadata: read_secret(client, &ns, &format!("{r}-airflow-metadata")).await?,
                pgbouncer_config: read_secret(client, &ns, &format!("{r}-pgbouncer-config"))
                    .await?,
            };
            if secrets.metadata.is_none() {
                secrets.metadata = read_secret(client, &ns, &format!("{r}-metadata")).await?;
            }
            if secrets.metadata.is_none() && secrets.pgbouncer_config.is_none() {
                return Err(missing(
                    client,
                    &ns,
                    &format!("{r}-airflow-metadata or {r}-metadata"),
                )
                .await);
            }
            resolve_release(&ns, r, &secrets)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::commands::error::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    use std::io::Write;

    const HOST: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";
    const NS: &str = "astronomer";

    fn bootstrap() -> RawSecret {
        RawSecret::from_strings(
            NS,
            BOOTSTRAP_SECRET,
            &[(
                "connection",
                &format!("postgres://astro_admin:Sup3r%21Secret@{HOST}:5432"),
            )],
        )
    }

    fn houston(value: &str) -> RawSecret {
        RawSecret::from_strings(NS, "astronomer-houston-backend", &[("connection", value)])
    }

    fn release(name: &str) -> PlatformRelease {
        PlatformRelease {
            name: name.into(),
            origin: ReleaseOrigin::Flag,
        }
    }

    #[test]
    fn houston_secret_used_when_valid() {
        let value = format!(
            "postgres://astro_admin:Sup3r%21Secret@{HOST}:5432/astronomer_houston?schema=houston%24default"
        );
        let r = resolve_houston(NS, &release("astronomer"), Some(&houston(&value)), None).unwrap();
        assert_eq!(r.sources[0].name, "astronomer-houston-backend");
        assert!(r.notes.is_empty());
        assert_eq!(r.connection.search_path(), Some(HOUSTON_SCHEMA));
    }

    #[test]
    fn placeholder_falls_back_to_bootstrap_and_says_why() {
        let r = resolve_houston(
            NS,
            &release("astronomer"),
            Some(&houston("k3Zq9")),
            Some(&bootstrap()),
        )
        .unwrap();
        assert_eq!(r.sources[0].name, BOOTSTRAP_SECRET);
        assert_eq!(r.connection.database(), Some("astronomer_houston"));
        assert_eq!(r.connection.search_path(), Some(HOUSTON_SCHEMA));
        assert_eq!(r.connection.password(), Some("Sup3r!Secret"));
        assert!(r.notes[0].contains("placeholder"), "{:?}", r.notes);
    }

    #[test]
    fn renamed_release_missing_secret_falls_back_with_underscored_db() {
        let r = resolve_houston(NS, &release("my-astro"), None, Some(&bootstrap())).unwrap();
        assert_eq!(r.connection.database(), Some("my_astro_houston"));
        assert!(r.notes[0].contains("my-astro-houston-backend not found"));
    }

    #[test]
    fn placeholder_without_bootstrap_is_an_error_naming_both() {
        let e =
            resolve_houston(NS, &release("astronomer"), Some(&houston("k3Zq9")), None).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("placeholder") && text.contains(BOOTSTRAP_SECRET),
            "{text}"
        );
        assert_eq!(e.exit_status(), ExitStatus::Usage);
    }

    #[test]
    fn secret_value_errors() {
        let mut s = houston("x");
        s.data.insert("connection".into(), "%%%not base64".into());
        assert!(matches!(
            s.text("connection"),
            Err(PlatformError::NotBase64 { .. })
        ));
        s.data
            .insert("connection".into(), BASE64.encode([0xff, 0xfe]));
        assert!(matches!(
            s.text("connection"),
            Err(PlatformError::NotUtf8 { .. })
        ));
        assert!(matches!(
            s.text("nope"),
            Err(PlatformError::KeyMissing { .. })
        ));
        let dbg = format!("{:?}", bootstrap());
        assert!(!dbg.contains("Sup3r") && !dbg.contains(&BASE64.encode("postgres")[..8]));
    }

    fn helm_secret(release: &str, version: u64, chart: &str, status: &str) -> RawSecret {
        let json = serde_json::json!({"name": release, "chart": {"metadata": {"name": chart}}});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json.to_string().as_bytes()).unwrap();
        let payload = BASE64.encode(gz.finish().unwrap());
        let mut s = RawSecret::from_strings(
            NS,
            &format!("sh.helm.release.v1.{release}.v{version}"),
            &[("release", &payload)],
        );
        s.labels = [
            ("owner", "helm"),
            ("name", release),
            ("status", status),
            ("version", &version.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        s
    }

    #[test]
    fn detects_the_astronomer_chart_release() {
        let records: Vec<_> = [
            helm_secret("astro", 1, "astronomer", "superseded"),
            helm_secret("astro", 2, "astronomer", "deployed"),
            helm_secret("nginx-extra", 1, "ingress-nginx", "deployed"),
        ]
        .iter()
        .filter_map(helm_record)
        .collect();
        let r = choose_platform_release(NS, &records).unwrap();
        assert_eq!(r.name, "astro");
        assert_eq!(
            r.origin,
            ReleaseOrigin::Detected {
                secret: "sh.helm.release.v1.astro.v2".into()
            }
        );
    }

    #[test]
    fn detection_falls_back_to_labels_then_default() {
        let mut s = helm_secret("astro", 1, "astronomer", "deployed");
        s.data.insert("release".into(), BASE64.encode("garbage"));
        let one = vec![helm_record(&s).unwrap()];
        assert_eq!(one[0].chart, None);
        assert_eq!(choose_platform_release(NS, &one).unwrap().name, "astro");

        let none = choose_platform_release(NS, &[]).unwrap();
        assert_eq!(none.name, "astronomer");
        assert!(matches!(none.origin, ReleaseOrigin::Default { .. }));

        let other: Vec<_> = [helm_secret("x", 1, "other", "deployed")]
            .iter()
            .filter_map(helm_record)
            .collect();
        assert_eq!(
            choose_platform_release(NS, &other).unwrap().name,
            "astronomer"
        );

        let two: Vec<_> = [
            helm_secret("a", 1, "astronomer", "deployed"),
            helm_secret("b", 1, "astronomer", "deployed"),
        ]
        .iter()
        .filter_map(helm_record)
        .collect();
        assert!(matches!(
            choose_platform_release(NS, &two),
            Err(PlatformError::AmbiguousRelease { .. })
        ));
    }

    const INI: &str = "[databases]\nweightless-meteor-5042-metadata = host=astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com dbname=weightless_meteor_5042_airflow port=5432 pool_size=3\nweightless-meteor-5042-result-backend = host=astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com dbname=weightless_meteor_5042_airflow port=5432 pool_size=2 \n\n[pgbouncer]\npool_mode = transaction\nlisten_port = 6543\nserver_tls_sslmode = prefer\n";
    const USERS: &str = "\"weightless_meteor_5042_airflow\" \"mT4hQ9vZr2LwX8cN1bK6pS3dF7gJ0yEu\"\n\"weightless_meteor_5042_celery\" \"Pp2sW8nRk5YtA1zQ9xC4vB7mL3hJ6dGf\"\n";

    #[test]
    fn parses_pgbouncer_files() {
        let dbs = parse_pgbouncer_ini(INI);
        assert_eq!(dbs.len(), 2);
        assert_eq!(dbs[0].host.as_deref(), Some(HOST));
        assert_eq!(dbs[0].port, Some(5432));
        assert_eq!(pgbouncer_server_sslmode(INI), Some(SslMode::Prefer));
        let users = parse_users_txt(USERS);
        assert_eq!(users[1].0, "weightless_meteor_5042_celery");
        assert_eq!(
            parse_users_txt("\"a\"\"b\" \"p w\"\n"),
            [("a\"b".into(), "p w".into())]
        );
    }

    #[test]
    fn release_via_pgbouncer_uses_the_direct_endpoint() {
        let ns = "astronomer-weightless-meteor-5042";
        let r = ReleaseName::parse("weightless-meteor-5042").unwrap();
        let secrets = ReleaseSecrets {
            metadata: Some(RawSecret::from_strings(
                ns,
                "weightless-meteor-5042-airflow-metadata",
                &[(
                    "connection",
                    "postgresql://weightless_meteor_5042_airflow:mT4hQ9vZr2LwX8cN1bK6pS3dF7gJ0yEu@weightless-meteor-5042-pgbouncer.astronomer-weightless-meteor-5042.svc.cluster.local:6543/weightless-meteor-5042-metadata?sslmode=disable",
                )],
            )),
            pgbouncer_config: Some(RawSecret::from_strings(
                ns,
                "weightless-meteor-5042-pgbouncer-config",
                &[("pgbouncer.ini", INI), ("users.txt", USERS)],
            )),
        };
        let res = resolve_release(ns, &r, &secrets).unwrap();
        let c = &res.connection;
        assert_eq!((c.host(), c.port()), (HOST, 5432));
        assert_eq!(c.database(), Some("weightless_meteor_5042_airflow"));
        assert_eq!(c.user(), Some("weightless_meteor_5042_airflow"));
        assert_eq!(c.password(), Some("mT4hQ9vZr2LwX8cN1bK6pS3dF7gJ0yEu"));
        assert_eq!(c.sslmode(), Some(SslMode::Prefer));
        assert!(res.notes[0].contains("pgbouncer"), "{:?}", res.notes);

        // Without pgbouncer the metadata secret is used as it is.
        let direct = ReleaseSecrets {
            metadata: Some(RawSecret::from_strings(
                ns,
                "x-metadata",
                &[(
                    "connection",
                    &format!("postgresql://u:p@{HOST}:5432/x_airflow?sslmode=disable"),
                )],
            )),
            pgbouncer_config: None,
        };
        let res = resolve_release(ns, &r, &direct).unwrap();
        assert_eq!(res.connection.database(), Some("x_airflow"));
        // Pgbouncer host, no pgbouncer-config, but a direct kedaConnection.
        let keda = ReleaseSecrets {
            metadata: Some(RawSecret::from_strings(
                ns,
                "x-airflow-metadata",
                &[
                    (
                        "connection",
                        "postgresql://u:p@x-pgbouncer.ns:6543/x-metadata?sslmode=disable",
                    ),
                    (
                        "kedaConnection",
                        &format!("postgresql://u:p@{HOST}:5432/x_airflow?sslmode=disable"),
                    ),
                ],
            )),
            pgbouncer_config: None,
        };
        let res = resolve_release(ns, &r, &keda).unwrap();
        assert_eq!(
            (res.connection.host(), res.sources[0].key.as_str()),
            (HOST, "kedaConnection")
        );
        assert!(matches!(
            resolve_release(ns, &r, &ReleaseSecrets::default()),
            Err(PlatformError::SecretMissing { .. })
        ));
    }
}
