//! Building the Kubernetes client from the kubectl-style global flags,
//! and the typed error for API calls (what we were doing, on which object).

pub mod retry;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Errors from loading the kubeconfig or calling the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be read or does not have the requested context.
    #[error("cannot load the kubeconfig{}: {source}", context.as_deref().map(|c| format!(" (context {c:?})")).unwrap_or_default())]
    Config {
        /// The context that was asked for, if any.
        context: Option<String>,
        /// The underlying error.
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built from the configuration.
    #[error("cannot create a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// An API call failed (a 403 reads "forbidden: … needs <verb> on <resource>").
    #[error("{}", api_message(action, source))]
    Api {
        /// What we were doing, naming the object (e.g. "get secret astronomer/astronomer-bootstrap").
        action: String,
        /// The API error.
        source: kube::Error,
    },
}

impl KubeError {
    /// Wraps an API error with the action that failed.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        KubeError::Api {
            action: action.into(),
            source,
        }
    }

    /// The HTTP status code of an API error, if the server answered with one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

/// What a 403 from the API server says the user lacks, e.g. `create on restores.velero.io
/// in namespace velero`, read from the API server's fixed wording (`User "u" cannot
/// VERB resource "R" in API group "G" in the namespace "N"` / `at the cluster scope`).
pub fn forbidden_need(message: &str) -> Option<String> {
    let quoted = |after: &str| -> Option<String> {
        let rest = &message[message.find(after)? + after.len()..];
        let rest = rest.strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_owned())
    };
    let verb = {
        let rest = &message[message.find("\" cannot ")? + 9..];
        rest.split_whitespace().next()?.to_owned()
    };
    let resource = quoted("resource ")?;
    let group = quoted("in API group ").unwrap_or_default();
    let resource = if group.is_empty() {
        resource
    } else {
        format!("{resource}.{group}")
    };
    let scope = match quoted("in the namespace ") {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide".to_owned(),
    };
    Some(format!("{verb} on {resource} {scope}"))
}

fn api_message(action: &str, source: &kube::Error) -> String {
    if let kube::Error::Api(status) = source
        && status.code == 403
        && let Some(need) = forbidden_need(&status.message)
    {
        return format!(
            "forbidden: {action} needs {need} (the API server refused: {})",
            status.message
        );
    }
    match source {
        // The API server's own words, not kube's debug dump of the whole Status.
        kube::Error::Api(status) => format!(
            "{action}: {} ({}, HTTP {})",
            status.message.trim_end_matches('.'),
            if status.reason.is_empty() {
                "no reason"
            } else {
                &status.reason
            },
            status.code
        ),
        other => format!("{action}: {other}"),
    }
}

/// How often [`retry_on_conflict`] sends a write.
pub const CONFLICT_ATTEMPTS: u32 = 10;

/// Runs `write` again while the API server answers 409 Conflict (someone else changed
/// the object between our read and our write), up to [`CONFLICT_ATTEMPTS`] times with a
/// short, growing pause: for writes that re-read what they need or set fields outright,
/// so that sending them again is right.
pub async fn retry_on_conflict<T, F, Fut>(mut write: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Builds a client from `--kubeconfig`/`KUBECONFIG`/`~/.kube/config` and `--context`.
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<Client, KubeError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config_error = |source| KubeError::Config {
        context: context.map(str::to_owned),
        source,
    };
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(config_error)?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(config_error)?
        }
        None => Config::from_kubeconfig(&options)
            .await
            .map_err(config_error)?,
    };
    with_retries(config, retry::Policy::default())
}

/// A client for `config` whose calls are repeated under `policy` where that is safe
/// ([`retry`]).
pub fn with_retries(config: Config, policy: retry::Policy) -> Result<Client, KubeError> {
    let builder = ClientBuilder::try_from(config).map_err(KubeError::Client)?;
    // Retry needs a service it can clone per attempt: a buffer in front of kube's stack.
    let buffered = builder.with_layer(&tower::buffer::BufferLayer::new(256));
    Ok(buffered.with_layer(&retry::RetryLayer::new(policy)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    // Real pauses (2.4 s in all): tokio's paused clock would need its test-util feature,
    // and with it a second build of everything above tokio.
    #[tokio::test]
    async fn conflicts_are_retried_up_to_the_limit_and_nothing_else_is() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let count = || calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let ok = retry_on_conflict(|| async {
            match count() {
                n if n < 3 => Err(status(409, "Conflict", "the object has been modified")),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(ok.unwrap(), 3);

        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let always = retry_on_conflict(|| async {
            count();
            Err::<(), _>(status(409, "Conflict", "modified"))
        })
        .await;
        assert!(always.is_err());
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            CONFLICT_ATTEMPTS
        );

        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let other = retry_on_conflict(|| async {
            count();
            Err::<(), _>(status(422, "Invalid", "bad"))
        })
        .await;
        assert!(other.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn api_errors_read_as_the_server_wrote_them() {
        let e = KubeError::api(
            "set backupstoragelocation velero/default read-only",
            status(
                409,
                "Conflict",
                "Operation cannot be fulfilled on backupstoragelocations.velero.io \"default\": the object has been modified.",
            ),
        );
        assert_eq!(
            e.to_string(),
            "set backupstoragelocation velero/default read-only: Operation cannot be fulfilled on backupstoragelocations.velero.io \"default\": the object has been modified (Conflict, HTTP 409)"
        );
    }

    #[test]
    fn forbidden_messages_name_the_missing_permission() {
        assert_eq!(
            forbidden_need(
                r#"restores.velero.io is forbidden: User "oncall" cannot create resource "restores" in API group "velero.io" in the namespace "velero""#
            )
            .as_deref(),
            Some("create on restores.velero.io in namespace velero")
        );
        assert_eq!(
            forbidden_need(
                r#"pods "p" is forbidden: User "u" cannot create resource "pods/exec" in API group "" in the namespace "astronomer""#
            )
            .as_deref(),
            Some("create on pods/exec in namespace astronomer")
        );
        assert_eq!(
            forbidden_need(
                r#"namespaces is forbidden: User "u" cannot list resource "namespaces" in API group "" at the cluster scope"#
            )
            .as_deref(),
            Some("list on namespaces cluster-wide")
        );
        assert_eq!(
            forbidden_need("injected fault: 403 for GET /api/v1/x"),
            None
        );
    }
}
