//! Building the Kubernetes client from the kubectl-style global flags,
//! and the typed error for API calls (what we were doing, on which object).

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
    format!("{action}: {source}")
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
    Client::try_from(config).map_err(KubeError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

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
