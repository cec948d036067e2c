//! Finding the platform's database connections in the cluster: the platform Helm release,
//! the `*-houston-backend` / `astronomer-bootstrap` / `*-grafana-backend` secrets, and a
//! deployment's Airflow database (direct endpoint from `<R>-pgbouncer-config`).
//!
//! Four parts: Secret I/O (`secret`), platform release detection (`release`),
//! connection resolution (`resolve`: pure `resolve_*` decisions and the collecting
//! [`collect_connection`]), and pgbouncer.ini / users.txt parsing (`pgbouncer`).

mod pgbouncer;
mod release;
mod resolve;
mod secret;

pub use pgbouncer::*;
pub use release::*;
pub use resolve::*;
pub use secret::*;

use crate::client::KubeError;
use crate::connection::ConnectionError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;

    #[allow(unused_imports)]
    use crate::commands::error::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;
    use crate::connection::SslMode;
    use crate::release::ReleaseName;
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
    fn release_dump_as_admin_on_the_release_database() {
        let own = Resolved {
            connection: crate::connection::PgConnection::parse(
                "postgresql://weightless_meteor_5042_airflow:mT4h@10.0.0.7:5432/weightless_meteor_5042_airflow?sslmode=disable",
            )
            .unwrap(),
            sources: Vec::new(),
            notes: vec!["pgbouncer bypassed".into()],
        };
        let admin = release_as_admin(NS, own.clone(), Some(&bootstrap()));
        assert_eq!(admin.connection.host(), HOST);
        assert_eq!(admin.connection.user(), Some("astro_admin"));
        assert_eq!(
            admin.connection.database(),
            Some("weightless_meteor_5042_airflow")
        );
        assert_eq!(admin.sources[0].name, BOOTSTRAP_SECRET);
        assert!(admin.notes[0].contains("admin user"), "{:?}", admin.notes);

        let fallback = release_as_admin(NS, own.clone(), None);
        assert_eq!(fallback.connection, own.connection);
        assert_eq!(fallback.notes[0], "pgbouncer bypassed");
        assert!(
            fallback.notes[1].contains("astronomer-bootstrap")
                && fallback.notes[1].contains("celery"),
            "{:?}",
            fallback.notes
        );
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
