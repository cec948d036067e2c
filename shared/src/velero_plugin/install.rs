//! What a kubectl command needs to use the plugin: whether the Velero server loaded it
//! (the plugins of a ServerStatusRequest's answer, [`crate::velero::server_status`]), and
//! writing or removing the `astronomer.io/db-endpoint` ConfigMap.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::actions::{DB_ENDPOINT, KIND};
use super::config::{CONFIGMAP_NAME, EndpointConfig, label_selector};
use crate::client::KubeError;
use crate::velero::server_status::ServerAnswer;

/// How long Velero gets to process a ServerStatusRequest.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether the Velero server loaded the endpoint action.
pub fn has_db_endpoint(answer: &ServerAnswer) -> bool {
    answer.has_plugin(KIND, DB_ENDPOINT)
}

/// ConfigMaps other than ours that configure the endpoint action: with one of them
/// present the plugin would see two and rewrite nothing (Velero's rule).
pub async fn other_configs(
    client: &Client,
    velero_namespace: &str,
) -> Result<Vec<String>, KubeError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), velero_namespace);
    let selector = label_selector(DB_ENDPOINT, KIND);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            KubeError::api(
                format!("list ConfigMaps in namespace {velero_namespace} with labels {selector}"),
                e,
            )
        })?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .filter(|name| name != CONFIGMAP_NAME)
        .collect())
}

/// Creates (or replaces) the ConfigMap the endpoint action reads.
pub async fn write_config(
    client: &Client,
    velero_namespace: &str,
    config: &EndpointConfig,
) -> Result<(), KubeError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), velero_namespace);
    let context = format!("write ConfigMap {velero_namespace}/{CONFIGMAP_NAME}");
    // Read, then write under that resourceVersion; a conflict reads again.
    crate::client::retry_on_conflict(|| async {
        let mut cm = config.configmap(velero_namespace);
        match api.get_opt(CONFIGMAP_NAME).await? {
            // Ours from an earlier run (scoped to its own restore): replaced.
            Some(existing) => {
                cm.metadata.resource_version = existing.metadata.resource_version;
                api.replace(CONFIGMAP_NAME, &PostParams::default(), &cm)
                    .await
            }
            None => api.create(&PostParams::default(), &cm).await,
        }
    })
    .await
    .map(drop)
    .map_err(|e| KubeError::api(context, e))
}

/// Removes that ConfigMap (after the restore, so later restores are not rewritten).
pub async fn delete_config(client: &Client, velero_namespace: &str) -> Result<(), KubeError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), velero_namespace);
    match api.delete(CONFIGMAP_NAME, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(KubeError::api(
            format!("delete ConfigMap {velero_namespace}/{CONFIGMAP_NAME}"),
            e,
        )),
    }
}
