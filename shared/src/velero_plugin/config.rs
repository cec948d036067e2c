//! The `astronomer.io/db-endpoint` configuration: a ConfigMap in the Velero namespace
//! labelled by Velero's plugin-config convention (`velero.io/plugin-config` and
//! `<plugin name>: RestoreItemAction`), read by the plugin from the API server.
//! Velero passes no configuration over gRPC.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use super::actions::{DB_ENDPOINT, KIND};
use crate::endpoint::target::Endpoint;
use crate::sqlproxy::InstanceName;

/// Label every plugin ConfigMap carries (its value is ignored).
pub const PLUGIN_CONFIG_LABEL: &str = "velero.io/plugin-config";
/// Name `restore platform` gives the ConfigMap (any name works; the labels select it).
pub const CONFIGMAP_NAME: &str = "astro-db-endpoint";
/// Default platform namespace.
pub const DEFAULT_PLATFORM_NAMESPACE: &str = "astronomer";
/// How long the plugin waits for the API server: Velero's calls have no deadline.
pub const API_TIMEOUT: Duration = Duration::from_secs(15);

/// Data keys of the ConfigMap.
pub mod keys {
    /// New database host.
    pub const NEW_HOST: &str = "newHost";
    /// New port (default: `oldPort`, else 5432).
    pub const NEW_PORT: &str = "newPort";
    /// Old database host: direct-host keys (`kedaConnection`) move only if they name it.
    pub const OLD_HOST: &str = "oldHost";
    /// Old port (default 5432).
    pub const OLD_PORT: &str = "oldPort";
    /// New Cloud SQL instance `PROJECT:REGION:NAME`.
    pub const NEW_INSTANCE: &str = "newInstance";
    /// The instance it replaces when the proxy serves several.
    pub const OLD_INSTANCE: &str = "oldInstance";
    /// Namespace of the platform (default `astronomer`), as in the backup.
    pub const PLATFORM_NAMESPACE: &str = "platformNamespace";
    /// The platform's Helm release (its reader workloads are named after it).
    pub const PLATFORM_RELEASE: &str = "platformRelease";
    /// The only Restore this configuration is for (unset: every restore). `restore
    /// platform` sets it, so a ConfigMap left behind never rewrites a later restore.
    pub const RESTORE_NAME: &str = "restoreName";
}

/// What the ConfigMap says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Platform namespace (the item's namespace before any remap).
    pub platform_namespace: String,
    /// New endpoint, if the database moves.
    pub new: Option<Endpoint>,
    /// Old endpoint, if known.
    pub old: Option<Endpoint>,
    /// Cloud SQL instance move `(from, to)`.
    pub sqlproxy: Option<(Option<InstanceName>, InstanceName)>,
    /// The platform's Helm release, if known.
    pub platform_release: Option<String>,
    /// The only Restore it applies to, if set.
    pub restore: Option<String>,
}

/// Problems reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has a bad value.
    #[error("ConfigMap key {key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Neither a new host nor a new instance.
    #[error(
        "ConfigMap names neither {} nor {}",
        keys::NEW_HOST,
        keys::NEW_INSTANCE
    )]
    Empty,
    /// Velero's rule: more than one matching ConfigMap is an error.
    #[error("{count} ConfigMaps in namespace {namespace} match {selector}; keep one")]
    Ambiguous {
        /// How many.
        count: usize,
        /// Where.
        namespace: String,
        /// The selector.
        selector: String,
    },
    /// The API server said no.
    #[error("cannot {context}: {source}")]
    Kube {
        /// What we tried.
        context: String,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },
    /// No answer in time.
    #[error("no answer from the API server within {}s", API_TIMEOUT.as_secs())]
    Timeout,
}

fn host(key: &'static str, value: &str) -> Result<String, ConfigError> {
    // Same rule as `restore endpoint --db-host`.
    let bare = value.trim_start_matches('[').trim_end_matches(']');
    if !Endpoint::is_valid_host(bare) {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{value:?} is not a host name or IP address"),
        });
    }
    Ok(bare.to_owned())
}

fn port(key: &'static str, value: Option<&String>) -> Result<Option<u16>, ConfigError> {
    value
        .map(|v| {
            v.trim().parse::<u16>().map_err(|_| ConfigError::Invalid {
                key,
                reason: format!("{v:?} is not a port number"),
            })
        })
        .transpose()
}

fn instance(
    key: &'static str,
    value: Option<&String>,
) -> Result<Option<InstanceName>, ConfigError> {
    value
        .map(|v| {
            InstanceName::parse(v).map_err(|e| ConfigError::Invalid {
                key,
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// The endpoint at host `value` (if any) and `port` (default 5432).
fn endpoint(
    key: &'static str,
    value: Option<&String>,
    port: Option<u16>,
) -> Result<Option<Endpoint>, ConfigError> {
    value
        .map(|h| {
            Ok(Endpoint {
                host: host(key, h)?,
                port: port.unwrap_or(5432),
            })
        })
        .transpose()
}

impl EndpointConfig {
    /// Reads the ConfigMap's data.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let old_port = port(keys::OLD_PORT, data.get(keys::OLD_PORT))?;
        let old = endpoint(keys::OLD_HOST, data.get(keys::OLD_HOST), old_port)?;
        let new_port = port(keys::NEW_PORT, data.get(keys::NEW_PORT))?;
        let new = endpoint(
            keys::NEW_HOST,
            data.get(keys::NEW_HOST),
            new_port.or(old_port),
        )?;
        let sqlproxy = instance(keys::NEW_INSTANCE, data.get(keys::NEW_INSTANCE))?
            .map(|to| -> Result<_, ConfigError> {
                Ok((
                    instance(keys::OLD_INSTANCE, data.get(keys::OLD_INSTANCE))?,
                    to,
                ))
            })
            .transpose()?;
        if new.is_none() && sqlproxy.is_none() {
            return Err(ConfigError::Empty);
        }
        let text = |key: &str| data.get(key).filter(|v| !v.is_empty()).cloned();
        Ok(EndpointConfig {
            platform_namespace: text(keys::PLATFORM_NAMESPACE)
                .unwrap_or_else(|| DEFAULT_PLATFORM_NAMESPACE.to_owned()),
            new,
            old,
            sqlproxy,
            platform_release: text(keys::PLATFORM_RELEASE),
            restore: text(keys::RESTORE_NAME),
        })
    }

    /// Whether items of the Restore `name` are rewritten.
    pub fn applies_to_restore(&self, name: &str) -> bool {
        self.restore.as_deref().is_none_or(|only| only == name)
    }

    /// The data [`Self::from_data`] reads back.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        data.insert(
            keys::PLATFORM_NAMESPACE.to_owned(),
            self.platform_namespace.clone(),
        );
        for (h, p, e) in [
            (keys::NEW_HOST, keys::NEW_PORT, &self.new),
            (keys::OLD_HOST, keys::OLD_PORT, &self.old),
        ] {
            if let Some(e) = e {
                data.insert(h.to_owned(), e.host.clone());
                data.insert(p.to_owned(), e.port.to_string());
            }
        }
        for (key, value) in [
            (keys::PLATFORM_RELEASE, &self.platform_release),
            (keys::RESTORE_NAME, &self.restore),
        ] {
            if let Some(value) = value {
                data.insert(key.to_owned(), value.clone());
            }
        }
        if let Some((from, to)) = &self.sqlproxy {
            data.insert(keys::NEW_INSTANCE.to_owned(), to.as_str().to_owned());
            if let Some(from) = from {
                data.insert(keys::OLD_INSTANCE.to_owned(), from.as_str().to_owned());
            }
        }
        data
    }

    /// The ConfigMap (labelled for the plugin) that carries this configuration.
    pub fn configmap(&self, namespace: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(CONFIGMAP_NAME.to_owned());
        cm.metadata.namespace = Some(namespace.to_owned());
        cm.metadata.labels = Some(BTreeMap::from([
            (PLUGIN_CONFIG_LABEL.to_owned(), String::new()),
            (DB_ENDPOINT.to_owned(), KIND.to_owned()),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "kubectl-astro".to_owned(),
            ),
        ]));
        cm.data = Some(self.to_data());
        cm
    }
}

/// Velero's selector for a plugin's ConfigMap (`common.GetPluginConfig`).
pub fn label_selector(plugin: &str, kind: &str) -> String {
    format!("{PLUGIN_CONFIG_LABEL},{plugin}={kind}")
}

/// Picks the configuration from the matching ConfigMaps: none is no configuration.
pub fn pick(
    configmaps: &[ConfigMap],
    namespace: &str,
) -> Result<Option<EndpointConfig>, ConfigError> {
    match configmaps {
        [] => Ok(None),
        [one] => EndpointConfig::from_data(&one.data.clone().unwrap_or_default()).map(Some),
        more => Err(ConfigError::Ambiguous {
            count: more.len(),
            namespace: namespace.to_owned(),
            selector: label_selector(DB_ENDPOINT, KIND),
        }),
    }
}

/// The Velero namespace: `$VELERO_NAMESPACE` (set in the velero container), else the
/// service account's namespace, else `velero`.
pub fn velero_namespace() -> String {
    std::env::var("VELERO_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "velero".to_owned())
}

/// Reads the configuration from the API server (in-cluster config, or `KUBECONFIG`).
pub async fn load(namespace: &str) -> Result<Option<EndpointConfig>, ConfigError> {
    let selector = label_selector(DB_ENDPOINT, KIND);
    let work = async {
        let client = kube::Client::try_default()
            .await
            .map_err(|source| ConfigError::Kube {
                context: "build a Kubernetes client (in-cluster or KUBECONFIG)".into(),
                source,
            })?;
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| ConfigError::Kube {
                context: format!("list ConfigMaps in namespace {namespace} with labels {selector}"),
                source,
            })?;
        pick(&list.items, namespace)
    };
    tokio::time::timeout(API_TIMEOUT, work)
        .await
        .map_err(|_| ConfigError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_and_writes_the_same_data() {
        let c = EndpointConfig::from_data(&data(&[
            ("newHost", "new.example.com"),
            ("oldHost", "old.example.com"),
            ("oldPort", "5433"),
            ("newInstance", "p:r:i"),
            ("platformRelease", "astro"),
            ("restoreName", "platform-x"),
        ]))
        .unwrap();
        assert!(c.applies_to_restore("platform-x"));
        assert!(!c.applies_to_restore("platform-y"), "scoped to its restore");
        assert_eq!(
            c.new.as_ref().unwrap().port,
            5433,
            "new port defaults to the old one"
        );
        assert_eq!(c.platform_namespace, "astronomer");
        assert_eq!(EndpointConfig::from_data(&c.to_data()).unwrap(), c);
        let cm = c.configmap("velero");
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels[PLUGIN_CONFIG_LABEL], "");
        assert_eq!(labels[DB_ENDPOINT], "RestoreItemAction");
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            data(&[]),
            data(&[("newHost", "a/b")]),
            data(&[("newHost", "h"), ("newPort", "99999")]),
            data(&[("newInstance", "nocolons")]),
        ] {
            assert!(EndpointConfig::from_data(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn more_than_one_configmap_is_an_error() {
        let c = EndpointConfig::from_data(&data(&[("newHost", "h")])).unwrap();
        let cm = c.configmap("velero");
        assert_eq!(pick(&[], "velero").unwrap(), None);
        assert_eq!(pick(std::slice::from_ref(&cm), "velero").unwrap(), Some(c));
        assert!(matches!(
            pick(&[cm.clone(), cm], "velero"),
            Err(ConfigError::Ambiguous { count: 2, .. })
        ));
        assert_eq!(
            label_selector(DB_ENDPOINT, KIND),
            "velero.io/plugin-config,astronomer.io/db-endpoint=RestoreItemAction"
        );
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example is a configuration the plugin accepts, with the labels it selects.
    #[test]
    fn deploy_example_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/velero-plugin/configmap.yaml");
        let cm: ConfigMap =
            serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let labels = cm.metadata.labels.clone().unwrap();
        assert!(labels.contains_key(PLUGIN_CONFIG_LABEL));
        assert_eq!(labels[DB_ENDPOINT], KIND);
        let c = pick(&[cm], "velero").unwrap().unwrap();
        assert!(c.new.is_some() && c.old.is_some());
    }
}
