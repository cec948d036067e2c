//! Asking the Velero server about itself: a ServerStatusRequest, answered by the server
//! with its version and the plugins it loaded (what `velero plugin get` reads), deleted
//! afterwards. `status` reports it; `restore platform` checks for the db-endpoint plugin.

use std::time::Duration;

use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};

use super::{ServerStatusRequest, ServerStatusRequestSpec, ServerStatusRequestStatusPhase};
use crate::client::KubeError;

/// The answer to the ServerStatusRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAnswer {
    /// Processed by the server.
    Answered {
        /// `status.serverVersion`.
        version: String,
        /// `(kind, name)` of the loaded plugins.
        plugins: Vec<(String, String)>,
    },
    /// No answer within the timeout.
    NoAnswer {
        /// Seconds waited.
        waited_secs: u64,
    },
    /// The request could not even be created (RBAC, CRD missing).
    Error(String),
    /// Ctrl-C while waiting for the answer (the request was deleted).
    Interrupted,
}

impl ServerAnswer {
    /// Whether the server answered.
    pub fn answered(&self) -> bool {
        matches!(self, ServerAnswer::Answered { .. })
    }

    /// Whether the server loaded a plugin of `kind` named `name`.
    pub fn has_plugin(&self, kind: &str, name: &str) -> bool {
        match self {
            ServerAnswer::Answered { plugins, .. } => plugins
                .iter()
                .any(|(k, n)| n == name && k.starts_with(kind)),
            _ => false,
        }
    }

    /// Why there is no answer, in words (`None` when answered).
    pub fn problem(&self) -> Option<String> {
        match self {
            ServerAnswer::Answered { .. } => None,
            ServerAnswer::NoAnswer { waited_secs } => Some(format!(
                "the Velero server did not answer a ServerStatusRequest within {waited_secs}s"
            )),
            ServerAnswer::Error(e) => Some(e.clone()),
            ServerAnswer::Interrupted => Some(
                "interrupted (Ctrl-C) while waiting for the Velero server's answer to a ServerStatusRequest".into(),
            ),
        }
    }
}

/// Asks the Velero server in `velero_namespace`; the request (named `<prefix>…`) is
/// deleted afterwards, answered or not.
pub async fn ask(
    client: &Client,
    velero_namespace: &str,
    prefix: &str,
    timeout: Duration,
) -> ServerAnswer {
    let api: Api<ServerStatusRequest> = Api::namespaced(client.clone(), velero_namespace);
    // From before the create: Ctrl-C while it is in flight still deletes the request (the
    // runner waits for this part).
    let _handled = crate::interrupt::handled_here();
    let mut request = ServerStatusRequest::new("", velero_namespace, ServerStatusRequestSpec {});
    // A fixed name, not generateName, so that the create may be repeated (client::retry).
    request.metadata.name = Some(crate::clientpod::unique_name(prefix.trim_end_matches('-')));
    let created = match api.create(&PostParams::default(), &request).await {
        Ok(c) => c,
        Err(e) => {
            return ServerAnswer::Error(
                KubeError::api(
                    format!("create a ServerStatusRequest in {velero_namespace}"),
                    e,
                )
                .to_string(),
            );
        }
    };
    let name = created.metadata.name.clone().unwrap_or_default();
    let processed = |o: Option<&ServerStatusRequest>| {
        o.and_then(|o| o.status.as_ref())
            .and_then(|s| s.phase.as_ref())
            .is_some_and(|p| *p == ServerStatusRequestStatusPhase::Processed)
    };
    let answered = tokio::time::timeout(timeout, await_condition(api.clone(), &name, processed));
    let answer = tokio::select! {
        answered = answered => match answered {
            Err(_) => ServerAnswer::NoAnswer {
                waited_secs: timeout.as_secs(),
            },
            Ok(Err(e)) => ServerAnswer::Error(format!("watch ServerStatusRequest {name}: {e}")),
            Ok(Ok(o)) => {
                let status = o.and_then(|o| o.status).unwrap_or_default();
                ServerAnswer::Answered {
                    version: status.server_version.unwrap_or_default(),
                    plugins: status
                        .plugins
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| (p.kind, p.name))
                        .collect(),
                }
            }
        },
        () = crate::interrupt::ctrl_c() => ServerAnswer::Interrupted,
    };
    // Velero removes processed requests after a minute anyway; tidy up now.
    let _ = api.delete(&name, &DeleteParams::default()).await;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_by_kind_and_name() {
        let answer = ServerAnswer::Answered {
            version: "v1.18.1".into(),
            plugins: vec![
                ("RestoreItemAction".into(), "velero.io/pod".into()),
                (
                    "RestoreItemActionV2".into(),
                    "astronomer.io/db-endpoint".into(),
                ),
            ],
        };
        assert!(answer.has_plugin("RestoreItemAction", "astronomer.io/db-endpoint"));
        assert!(!answer.has_plugin("BackupItemAction", "velero.io/pod"));
        assert!(!answer.has_plugin("RestoreItemAction", "astronomer.io/skip-redis-data"));
        assert!(answer.problem().is_none());
        let none = ServerAnswer::NoAnswer { waited_secs: 5 };
        assert!(!none.has_plugin("RestoreItemAction", "velero.io/pod"));
        assert!(none.problem().unwrap().contains("5s"));
    }
}
