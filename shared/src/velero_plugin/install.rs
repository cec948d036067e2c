//! What a kubectl command needs to use the plugin: whether the Velero server loaded it
//! (Velero lists its plugins in a ServerStatusRequest's status, as `velero plugin get`
//! reads them), and writing or removing the `astronomer.io/db-endpoint` ConfigMap.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::actions::{DB_ENDPOINT, KIND};
use super::config::{CONFIGMAP_NAME, EndpointConfig};

/// How long Velero gets to process a ServerStatusRequest.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(20);

/// Errors talking to the cluster about the plugin.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The API server said no.
    #[error("cannot {context}: {source}")]
    Kube {
        /// What we tried.
        context: String,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },
    /// Velero did not answer (not running, or an older server).
    #[error("Velero did not process ServerStatusRequest {namespace}/{name} within {}s", STATUS_TIMEOUT.as_secs())]
    NoAnswer {
        /// Velero namespace.
        namespace: String,
        /// The request.
        name: String,
    },
}

fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> InstallError {
    let context = context.into();
    move |source| InstallError::Kube { context, source }
}

/// `(kind, name)` of every plugin in a processed ServerStatusRequest.
pub fn plugins_of(status_request: &Value) -> Vec<(String, String)> {
    status_request
        .pointer("/status/plugins")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|p| {
                    let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                    (s("kind"), s("name"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the endpoint action is among them.
pub fn has_db_endpoint(plugins: &[(String, String)]) -> bool {
    plugins
        .iter()
        .any(|(kind, name)| name == DB_ENDPOINT && kind.starts_with(KIND))
}

/// Asks the Velero server which plugins it loaded (a ServerStatusRequest, deleted after).
pub async fn loaded_plugins(
    client: &Client,
    velero_namespace: &str,
) -> Result<Vec<(String, String)>, InstallError> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "velero.io",
        "v1",
        "ServerStatusRequest",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), velero_namespace, &resource);
    let request: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1",
        "kind": "ServerStatusRequest",
        "metadata": {"generateName": "kubectl-astro-", "namespace": velero_namespace},
    }))
    .map_err(|e| kube("build a ServerStatusRequest")(kube::Error::SerdeError(e)))?;
    let created = api
        .create(&PostParams::default(), &request)
        .await
        .map_err(kube(format!(
            "create a ServerStatusRequest in {velero_namespace}"
        )))?;
    let name = created.name_any();
    let deadline = tokio::time::Instant::now() + STATUS_TIMEOUT;
    let result = loop {
        let current = api.get(&name).await.map_err(kube(format!(
            "get ServerStatusRequest {velero_namespace}/{name}"
        )))?;
        let value = serde_json::to_value(&current).unwrap_or_default();
        if value.pointer("/status/phase").and_then(Value::as_str) == Some("Processed") {
            break Ok(plugins_of(&value));
        }
        if tokio::time::Instant::now() >= deadline {
            break Err(InstallError::NoAnswer {
                namespace: velero_namespace.to_owned(),
                name: name.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Velero removes processed requests after a minute anyway; tidy up now.
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}

/// Creates (or replaces) the ConfigMap the endpoint action reads.
pub async fn write_config(
    client: &Client,
    velero_namespace: &str,
    config: &EndpointConfig,
) -> Result<(), InstallError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), velero_namespace);
    let mut cm = config.configmap(velero_namespace);
    let context = format!("write ConfigMap {velero_namespace}/{CONFIGMAP_NAME}");
    match api.get_opt(CONFIGMAP_NAME).await.map_err(kube(&context))? {
        Some(existing) => {
            cm.metadata.resource_version = existing.metadata.resource_version;
            api.replace(CONFIGMAP_NAME, &PostParams::default(), &cm)
                .await
                .map_err(kube(&context))?;
        }
        None => {
            api.create(&PostParams::default(), &cm)
                .await
                .map_err(kube(&context))?;
        }
    }
    Ok(())
}

/// Removes that ConfigMap (after the restore, so later restores are not rewritten).
pub async fn delete_config(client: &Client, velero_namespace: &str) -> Result<(), InstallError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), velero_namespace);
    match api.delete(CONFIGMAP_NAME, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(kube(format!(
            "delete ConfigMap {velero_namespace}/{CONFIGMAP_NAME}"
        ))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_velero_plugin_get_output() {
        let ssr = json!({"status": {"phase": "Processed", "plugins": [
            {"kind": "RestoreItemAction", "name": "velero.io/pod"},
            {"kind": "RestoreItemAction", "name": DB_ENDPOINT},
        ]}});
        let plugins = plugins_of(&ssr);
        assert!(has_db_endpoint(&plugins));
        assert!(!has_db_endpoint(&plugins[..1]));
        assert!(plugins_of(&json!({})).is_empty());
    }
}
