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
    /// An API call failed.
    #[error("{action}: {source}")]
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
