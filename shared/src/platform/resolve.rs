//! Which connection a command uses: Houston (`<release>-houston-backend`, else the
//! bootstrap secret with Houston's database), Grafana, the bootstrap itself, or one
//! deployment's Airflow database; decided by pure functions, read by `collect_connection`.

use std::fmt;

use kube::Client;

use super::*;
use crate::connection::{PgConnection, is_placeholder};
use crate::release::ReleaseName;

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

/// A release's database as the platform's admin user, for a dump of all of it: each of a
/// release's roles owns one schema and cannot read the others' (`celery` belongs to
/// `<release>_celery`, not to the metadata role), so only `astronomer-bootstrap`'s user,
/// on the database the release's secret names, sees every schema. Without a usable
/// bootstrap secret: the release's own connection, and a note on what it may not read.
pub fn release_as_admin(
    platform_namespace: &str,
    release: Resolved,
    bootstrap: Option<&RawSecret>,
) -> Resolved {
    let database = release
        .connection
        .database()
        .unwrap_or("postgres")
        .to_owned();
    match resolve_bootstrap_based(platform_namespace, bootstrap, &database, None) {
        Ok(mut admin) => {
            admin.notes.push(format!(
                "dumping database {database} as the platform's admin user (secret \
                 {platform_namespace}/{BOOTSTRAP_SECRET}): the release's own role cannot read \
                 the schemas of its other roles (celery)"
            ));
            admin
        }
        Err(e) => {
            let mut own = release;
            own.notes.push(format!(
                "{e}: dumping as the release's own role, which cannot read the schemas of its \
                 other roles (celery, the Celery result backend)"
            ));
            own
        }
    }
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
        let note = format!(
            "{} points straight at the database server (no pgbouncer)",
            secret.name
        );
        return Ok(from_key(
            namespace,
            secret,
            CONNECTION_KEY,
            conn.clone(),
            note,
        ));
    }
    match &secrets.pgbouncer_config {
        Some(config) => behind_pgbouncer(namespace, release, config, metadata.as_ref()),
        None => without_pgbouncer_config(namespace, release, metadata),
    }
}

/// A connection read from one key of one secret.
fn from_key(
    namespace: &str,
    secret: &RawSecret,
    key: &str,
    connection: PgConnection,
    note: String,
) -> Resolved {
    Resolved {
        connection,
        sources: vec![SecretSource {
            namespace: namespace.to_owned(),
            name: secret.name.clone(),
            key: key.into(),
        }],
        notes: vec![note],
    }
}

/// The metadata URI points at pgbouncer and there is no `<R>-pgbouncer-config` to see
/// behind it: KEDA's direct URL when there is one, else the in-cluster URI.
fn without_pgbouncer_config(
    namespace: &str,
    release: &ReleaseName,
    metadata: Option<(&RawSecret, PgConnection)>,
) -> Result<Resolved, PlatformError> {
    let Some((secret, conn)) = metadata else {
        return Err(PlatformError::SecretMissing {
            namespace: namespace.to_owned(),
            name: format!("{release}-airflow-metadata or {release}-metadata"),
        });
    };
    // KEDA's direct URL (1.x chart, KEDA not via pgbouncer) bypasses pgbouncer too.
    if secret.data.contains_key("kedaConnection") {
        let connection = secret.connection("kedaConnection")?;
        let note = format!(
            "{} key connection points at pgbouncer (in-cluster only) and {release}-pgbouncer-config was not found; using its direct kedaConnection",
            secret.name
        );
        return Ok(from_key(
            namespace,
            secret,
            "kedaConnection",
            connection,
            note,
        ));
    }
    let note = format!(
        "{} points at pgbouncer and {release}-pgbouncer-config was not found: this endpoint is reachable only from inside the cluster",
        secret.name
    );
    Ok(from_key(namespace, secret, CONNECTION_KEY, conn, note))
}

/// The database server behind pgbouncer: `[databases]` of `pgbouncer.ini` (the entry of
/// `<R>-metadata`, else the first) and the user and password from `users.txt`.
fn behind_pgbouncer(
    namespace: &str,
    release: &ReleaseName,
    config: &RawSecret,
    metadata: Option<&(&RawSecret, PgConnection)>,
) -> Result<Resolved, PlatformError> {
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
        .and_then(|(_, c)| c.user().map(str::to_owned))
        .or_else(|| users.first().map(|(u, _)| u.clone()))
        .ok_or_else(|| bad("users.txt names no user".into()))?;
    let password = users
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| p.clone())
        .or_else(|| metadata.and_then(|(_, c)| c.password().map(str::to_owned)));
    let connection = PgConnection::new(host, entry.port.unwrap_or(5432))
        .with_credentials(user, password)
        .with_database(dbname)
        .with_sslmode(pgbouncer_server_sslmode(&ini));
    let source = |key: &str| SecretSource {
        namespace: namespace.to_owned(),
        name: config.name.clone(),
        key: key.into(),
    };
    let note = match metadata {
        Some((secret, _)) => format!(
            "{} points at pgbouncer (in-cluster only); using the database server behind it from {} [databases] {}",
            secret.name, config.name, entry.alias
        ),
        None => format!(
            "{release}-airflow-metadata or {release}-metadata not found; using the database server from {} [databases] {}",
            config.name, entry.alias
        ),
    };
    Ok(Resolved {
        connection,
        sources: vec![source("pgbouncer.ini"), source("users.txt")],
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
