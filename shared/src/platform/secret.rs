//! Secrets as read from the API: base64 values kept raw so that a bad value becomes a
//! typed error, reads that say whether the namespace or the secret is missing.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};

use super::*;
use crate::client::KubeError;
use crate::connection::{ConnectionError, PgConnection};

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

/// Maps an API error: 401/403 become [`PlatformError::Forbidden`].
pub(super) fn api_error(action: String, source: kube::Error) -> PlatformError {
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

pub(super) fn secrets_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
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
pub(super) async fn missing(client: &Client, namespace: &str, name: &str) -> PlatformError {
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
