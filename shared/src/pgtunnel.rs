//! Reaching PostgreSQL from inside the cluster, as the runbook's `pgclient` pod does.
//!
//! On real installations the platform database (RDS, Cloud SQL, Azure) sits in a private
//! network that pods reach and the operator's machine does not. A relay pod (the client
//! image, idle) gets one exec session per connection in which bash opens the TCP
//! connection to the database with `/dev/tcp`, and tokio-postgres speaks the protocol
//! through the session's stdin/stdout. So:
//! - the typed Houston logic (pre-checks, the one-row undelete transaction) runs here,
//!   unchanged, whichever way the database is reached;
//! - the password never enters the cluster: no Secret, no env, no args; it travels only
//!   inside the protocol stream, and TLS (sslmode) runs end to end through the relay;
//! - the pod carries the NetworkPolicy labels `dbconn` uses and is deleted on success,
//!   error and Ctrl-C (`clientpod::with_client_pod`);
//! - exec, not attach: the container runtime logs a container's own output, never an exec
//!   session's, so no database bytes land in the node's logs.
//!
//! A port-forward would need a listening relay (socat) in the image; exec needs only
//! bash and cat, which the default `postgres` image has.

use std::time::Duration;

use tokio_postgres::Client;

use crate::clientpod::{self, ClientPod, ClientPodError, ClientPodPlan};
use crate::connection::PgConnection;
use crate::pg::PgError;

/// What each exec session runs: connect, then copy both ways until either side ends.
/// Host and port come from the pod's plain env (they are not secret); nothing reaches
/// stdout but the database's bytes, and bash's connect error goes to stderr.
/// The session ends when the database closes the connection (a server restart), so the
/// client sees the end instead of waiting forever: the copy towards the database runs in
/// the background (on the session's stdin, saved as fd 4: background jobs get
/// /dev/null) and is stopped once the database side has ended.
pub const RELAY_SCRIPT: &str = r#"exec 3<>"/dev/tcp/${ASTRO_DB_HOST}/${ASTRO_DB_PORT}" || exit 2
exec 4<&0
cat <&4 >&3 2>/dev/null &
cat <&3
kill $! 2>/dev/null"#;

/// The relay container's own command: stay idle until deleted (or the pod's deadline).
pub fn relay_idle_command() -> Vec<String> {
    vec!["sleep".into(), clientpod::MAX_POD_SECONDS.to_string()]
}

/// Where database connections are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAccess {
    /// From this machine (`--local`).
    Local,
    /// From a relay pod in the cluster (the default).
    Cluster(RelaySettings),
}

/// How to start relay pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Namespace of the pod (the platform namespace, which the DB NetworkPolicy admits).
    pub namespace: String,
    /// The platform release (NetworkPolicy labels).
    pub platform_release: String,
    /// Image with bash and cat (default `postgres`).
    pub image: String,
    /// How long the pod may take to start.
    pub start_timeout: Duration,
}

/// Errors reaching the database through the cluster.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// Starting or exec'ing into the relay pod failed.
    #[error(transparent)]
    Pod(#[from] ClientPodError),
    /// The relay pod could not open the TCP connection (DNS, routing, NetworkPolicy).
    #[error(
        "cannot connect to {target} from pod {namespace}/{pod} in the cluster: {}",
        if detail.is_empty() { "the relay ended without saying why" } else { detail.as_str() }
    )]
    Unreachable {
        /// `host:port`.
        target: String,
        /// Namespace of the relay pod.
        namespace: String,
        /// The relay pod.
        pod: String,
        /// What the relay printed on stderr (bash's connect error).
        detail: String,
    },
    /// The database answered, but login or TLS failed (through the relay).
    #[error("through pod {namespace}/{pod} in the cluster: {source}")]
    Pg {
        /// Namespace of the relay pod.
        namespace: String,
        /// The relay pod.
        pod: String,
        /// The driver error.
        source: Box<PgError>,
    },
}

/// The relay pod for `conn`: idle, host and port as plain env, no Secret.
pub fn plan_relay(settings: &RelaySettings, conn: &PgConnection) -> ClientPodPlan {
    ClientPodPlan {
        namespace: settings.namespace.clone(),
        name: clientpod::unique_name("astro-dbrelay"),
        image: settings.image.clone(),
        labels: clientpod::network_policy_labels(&settings.platform_release),
        command: relay_idle_command(),
        secret_env: Vec::new(),
        plain_env: vec![
            ("ASTRO_DB_HOST".into(), conn.host().to_owned()),
            ("ASTRO_DB_PORT".into(), conn.port().to_string()),
        ],
        interactive: false,
        tty: false,
    }
}

/// Connects to `conn` through a started relay pod. The connection lives as long as the
/// pod; the caller deletes the pod (use [`with_connection`]).
pub async fn connect_through(
    pod: &ClientPod,
    conn: &PgConnection,
    start_timeout: Duration,
) -> Result<Client, TunnelError> {
    pod.wait_started(start_timeout).await?;
    let mut session = pod.exec_streams(&["bash", "-c", RELAY_SCRIPT]).await?;
    let (Some(to_db), Some(from_db), Some(mut errors)) =
        (session.stdin(), session.stdout(), session.stderr())
    else {
        unreachable!("exec_streams asks for stdin, stdout and stderr");
    };
    // bash's messages, read alongside (an unread pipe would stall the session).
    let stderr = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut errors, &mut text).await;
        String::from_utf8_lossy(&text).trim().to_owned()
    });
    let stream = tokio::io::join(from_db, to_db);
    match crate::pg::connect_over(conn, stream, session).await {
        Ok(client) => Ok(client),
        // No answer from a server: the relay could not connect (bash said why, and ended).
        Err(PgError::Connect { source, .. }) if source.as_db_error().is_none() => {
            let detail = tokio::time::timeout(Duration::from_secs(5), stderr).await;
            Err(TunnelError::Unreachable {
                target: format!("{}:{}", conn.host(), conn.port()),
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                detail: match detail {
                    Ok(Ok(text)) if !text.is_empty() => text,
                    _ => source.to_string(),
                },
            })
        }
        Err(source) => Err(TunnelError::Pg {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            source: Box::new(source),
        }),
    }
}

/// Connection attempts through the relay when the database drops them unanswered.
const CONNECT_ATTEMPTS: u64 = 4;

/// [`connect_through`], again after a pause (1 s, 2 s, 3 s) while the connection is cut
/// before the server answers, as during a database restart or failover. Nothing has been
/// sent to the database then, so a repeat is safe; login errors are not repeated.
async fn connect_retrying(
    pod: &ClientPod,
    conn: &PgConnection,
    start_timeout: Duration,
) -> Result<Client, TunnelError> {
    let mut attempt = 1;
    loop {
        match connect_through(pod, conn, start_timeout).await {
            Err(e) if attempt < CONNECT_ATTEMPTS && e.is_transient() => {
                tokio::time::sleep(Duration::from_secs(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl TunnelError {
    /// The connection was cut before the server answered (nothing was done there).
    fn is_transient(&self) -> bool {
        match self {
            TunnelError::Unreachable { .. } => true,
            TunnelError::Pg { source, .. } => match source.as_ref() {
                PgError::Tls { .. } => true,
                PgError::Connect { source, .. } => source.as_db_error().is_none(),
                _ => false,
            },
            TunnelError::Pod(_) => false,
        }
    }
}

/// Errors of [`with_connection`]: reaching the database, or what `body` returned.
#[derive(Debug, thiserror::Error)]
pub enum SessionError<E> {
    /// From this machine.
    #[error(transparent)]
    Local(PgError),
    /// Through the cluster.
    #[error(transparent)]
    Tunnel(TunnelError),
    /// The body's own error.
    #[error(transparent)]
    Body(E),
}

impl<E> From<ClientPodError> for SessionError<E> {
    fn from(e: ClientPodError) -> Self {
        SessionError::Tunnel(TunnelError::Pod(e))
    }
}

/// Connects as `access` says, runs `body` with the client, and removes the relay pod
/// afterwards (success, error, Ctrl-C).
pub async fn with_connection<T, E>(
    kube: &kube::Client,
    access: &DbAccess,
    conn: &PgConnection,
    body: impl AsyncFnOnce(&mut Client) -> Result<T, E>,
) -> Result<T, SessionError<E>> {
    match access {
        DbAccess::Local => {
            let mut client = crate::pg::connect(conn)
                .await
                .map_err(SessionError::Local)?;
            body(&mut client).await.map_err(SessionError::Body)
        }
        DbAccess::Cluster(settings) => {
            let plan = plan_relay(settings, conn);
            clientpod::with_client_pod(kube, &plan, async |pod: &ClientPod| {
                let mut client = connect_retrying(pod, conn, settings.start_timeout)
                    .await
                    .map_err(SessionError::Tunnel)?;
                body(&mut client).await.map_err(SessionError::Body)
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RelaySettings {
        RelaySettings {
            namespace: "astronomer".into(),
            platform_release: "astronomer".into(),
            image: "postgres".into(),
            start_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn relay_pod_carries_no_credentials() {
        let conn = PgConnection::parse(
            "postgres://astro_admin:Sup3r%21Secret@db.internal:6543/astronomer_houston?schema=houston%24default",
        )
        .unwrap();
        let plan = plan_relay(&settings(), &conn);
        let pod = serde_json::to_string(&plan.pod()).unwrap();
        assert!(!pod.contains("Sup3r"), "{pod}");
        assert!(!pod.contains("astro_admin"), "{pod}");
        assert!(plan.secret_env.is_empty());
        assert_eq!(
            plan.plain_env,
            [
                ("ASTRO_DB_HOST".to_owned(), "db.internal".to_owned()),
                ("ASTRO_DB_PORT".to_owned(), "6543".to_owned())
            ]
        );
        assert_eq!(plan.labels["release"], "astronomer");
        assert_eq!(plan.labels["tier"], "astronomer");
        assert!(plan.name.starts_with("astro-dbrelay-"));
    }
}
