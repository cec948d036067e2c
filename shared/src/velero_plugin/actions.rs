//! The two RestoreItemActions as pure functions on the item's JSON: what Velero should
//! do with one restored object. No gRPC here; `server` only moves bytes.
//!
//! "Unchanged" always means the caller echoes the input bytes, so objects an action
//! does not concern come back byte for byte.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use super::config::EndpointConfig;
use crate::endpoint::plan::{BOOTSTRAP_SECRET, PlanContext, Role, Target, plan_secret};
use crate::sqlproxy::{SQLPROXY_DEPLOYMENT, plan_sqlproxy};

/// Registered name of the Redis action.
pub const SKIP_REDIS_DATA: &str = "astronomer.io/skip-redis-data";
/// Registered name of the endpoint action.
pub const DB_ENDPOINT: &str = "astronomer.io/db-endpoint";
/// The Velero plugin kind both are (v1: Velero 1.18 adapts it, and it needs 2 RPCs).
pub const KIND: &str = "RestoreItemAction";

/// The Redis PVC labels, as the backup volume policy's `pvcLabels` (astronomer.md §3.1).
pub const REDIS_PVC_LABELS: [(&str, &str); 2] = [("tier", "airflow"), ("component", "redis")];

/// One of this binary's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Airflow Redis PVCs are not restored.
    SkipRedisData,
    /// Database secrets and the Cloud SQL proxy move to the new endpoint.
    DbEndpoint,
}

/// Every action, in the order `ListPlugins` reports them (by name, as Go's framework does).
pub const ACTIONS: [Action; 2] = [Action::DbEndpoint, Action::SkipRedisData];

impl Action {
    /// Its registered name.
    pub fn name(self) -> &'static str {
        match self {
            Action::SkipRedisData => SKIP_REDIS_DATA,
            Action::DbEndpoint => DB_ENDPOINT,
        }
    }

    /// The action a request names.
    pub fn from_name(name: &str) -> Result<Self, ActionError> {
        ACTIONS
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| ActionError::UnknownPlugin(name.to_owned()))
    }

    /// What Velero should send it (narrow: an empty selector means every item).
    pub fn applies_to(self) -> Selector {
        match self {
            Action::SkipRedisData => Selector {
                included_resources: vec!["persistentvolumeclaims"],
                label_selector: REDIS_PVC_LABELS
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            },
            // No namespace filter: pool namespaces carry no prefix (variant D).
            Action::DbEndpoint => Selector {
                included_resources: vec!["secrets", "deployments.apps"],
                label_selector: String::new(),
            },
        }
    }
}

/// A Velero `ResourceSelector`, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Plural resources (`deployments.apps`).
    pub included_resources: Vec<&'static str>,
    /// Label selector (`labels.Parse` syntax), empty for none.
    pub label_selector: String,
}

/// Errors returned to Velero as gRPC statuses (the item then fails, never the server).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A name this binary does not serve (Go's framework wording).
    #[error("RestoreItemAction plugin: {0} was not found or has an invalid name format")]
    UnknownPlugin(String),
    /// The item bytes are not JSON.
    #[error("item is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object with a `kind`, so not a Kubernetes object.
    #[error("item is not a Kubernetes object (a JSON object with a non-empty string kind)")]
    NotObject,
}

/// What Velero does with the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Restore it as it came (the caller echoes the input bytes).
    Unchanged,
    /// Restore these bytes instead.
    Replace(Vec<u8>),
    /// Do not restore it (`skipRestore`).
    Skip,
}

/// An outcome and what to log about it (names and keys only, never values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happens.
    pub outcome: Outcome,
    /// What to log at info level.
    pub notes: Vec<String>,
}

impl Decision {
    fn unchanged() -> Self {
        Decision {
            outcome: Outcome::Unchanged,
            notes: Vec::new(),
        }
    }
}

/// Parses an item as Velero's Unstructured decode would accept it.
pub fn parse_item(bytes: &[u8]) -> Result<Value, ActionError> {
    let value: Value = serde_json::from_slice(bytes).map_err(ActionError::NotJson)?;
    match value.get("kind").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() && value.is_object() => Ok(value),
        _ => Err(ActionError::NotObject),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `astronomer.io/skip-redis-data`: an Airflow Redis PVC is skipped, anything else
/// (its StatefulSet and Service included) restored as is.
pub fn skip_redis_data(item: &Value) -> Decision {
    let is_pvc =
        str_at(item, &["kind"]) == "PersistentVolumeClaim" && str_at(item, &["apiVersion"]) == "v1";
    let labels = &item["metadata"]["labels"];
    if is_pvc
        && REDIS_PVC_LABELS
            .iter()
            .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v))
    {
        return Decision {
            outcome: Outcome::Skip,
            notes: vec![format!(
                "not restoring Redis PVC {}/{}: Redis starts empty (stale Celery state would conflict)",
                str_at(item, &["metadata", "namespace"]),
                str_at(item, &["metadata", "name"])
            )],
        };
    }
    Decision::unchanged()
}

/// The role a Secret plays in an endpoint move, by the names `restore endpoint` uses.
pub fn secret_role(namespace: &str, name: &str, platform_namespace: &str) -> Option<Role> {
    if namespace == platform_namespace
        && (name == BOOTSTRAP_SECRET
            || name.ends_with("-houston-backend")
            || name.ends_with("-grafana-backend"))
    {
        return Some(if name == BOOTSTRAP_SECRET {
            Role::Bootstrap
        } else {
            Role::Backend
        });
    }
    if name.ends_with("-pgbouncer-config") {
        return Some(Role::PgbouncerConfig);
    }
    if name.ends_with("-metadata") || name.ends_with("-result-backend") {
        return Some(Role::DirectUri);
    }
    None
}

fn plan_context(config: &EndpointConfig) -> PlanContext {
    PlanContext {
        target: Target {
            endpoint: config.new.clone(),
            // Credentials never travel through a ConfigMap.
            userinfo: None,
            sqlproxy: config.sqlproxy.clone(),
        },
        old: config.old.clone(),
        platform_namespace: config.platform_namespace.clone(),
        // Only restarts use these; a restore has nothing to restart.
        platform_release: String::new(),
        restart_stamp: String::new(),
    }
}

fn replace(item: &Value) -> Outcome {
    Outcome::Replace(serde_json::to_vec(item).unwrap_or_default())
}

/// `astronomer.io/db-endpoint`: rewrites what `restore endpoint` would patch, with the
/// planner's own functions, so both give the same bytes.
pub fn db_endpoint(item: &Value, config: Option<&EndpointConfig>) -> Decision {
    let Some(config) = config else {
        return Decision::unchanged();
    };
    let (api, kind) = (str_at(item, &["apiVersion"]), str_at(item, &["kind"]));
    let ns = str_at(item, &["metadata", "namespace"]);
    let name = str_at(item, &["metadata", "name"]);
    match (api, kind) {
        ("v1", "Secret") => {
            let Some(role) = secret_role(ns, name, &config.platform_namespace) else {
                return Decision::unchanged();
            };
            let Ok(secret) = serde_json::from_value::<Secret>(item.clone()) else {
                return Decision {
                    outcome: Outcome::Unchanged,
                    notes: vec![format!(
                        "secret {ns}/{name} is not a valid Secret; left alone"
                    )],
                };
            };
            let planned = plan_secret(&secret, role, &plan_context(config));
            let mut notes = planned.notes;
            let Some(change) = planned.change else {
                return Decision {
                    outcome: Outcome::Unchanged,
                    notes,
                };
            };
            let mut out = item.clone();
            for edit in &change.edits {
                out["data"][edit.key.as_str()] = STANDARD.encode(&edit.new).into();
            }
            let keys: Vec<&str> = change.edits.iter().map(|e| e.key.as_str()).collect();
            notes.push(format!(
                "secret {ns}/{name}: {} now name the new endpoint",
                keys.join(", ")
            ));
            Decision {
                outcome: replace(&out),
                notes,
            }
        }
        ("apps/v1", "Deployment")
            if ns == config.platform_namespace && name == SQLPROXY_DEPLOYMENT =>
        {
            let Some((from, to)) = &config.sqlproxy else {
                return Decision::unchanged();
            };
            let Ok(deployment) = serde_json::from_value::<Deployment>(item.clone()) else {
                return Decision {
                    outcome: Outcome::Unchanged,
                    notes: vec![format!(
                        "deployment {ns}/{name} is not a valid Deployment; left alone"
                    )],
                };
            };
            let changes = match plan_sqlproxy(&deployment, from.as_ref(), to) {
                Ok(c) => c,
                // Restoring the proxy unchanged beats failing the item: `restore
                // endpoint` reports the same problem afterwards.
                Err(e) => {
                    return Decision {
                        outcome: Outcome::Unchanged,
                        notes: vec![format!("deployment {ns}/{name} left unchanged: {e}")],
                    };
                }
            };
            if changes.is_empty() {
                return Decision::unchanged();
            }
            // Only the `-instances=` elements change; every other field stays as restored.
            let mut out = item.clone();
            for c in &changes {
                out["spec"]["template"]["spec"]["containers"][c.container_index]
                    [c.field.to_string()][c.index] = c.new.clone().into();
            }
            Decision {
                outcome: replace(&out),
                notes: vec![format!(
                    "deployment {ns}/{name}: Cloud SQL proxy now serves {}",
                    to.as_str()
                )],
            }
        }
        _ => Decision::unchanged(),
    }
}

/// Runs one action on one item's bytes.
pub fn execute(
    action: Action,
    item: &[u8],
    config: Option<&EndpointConfig>,
) -> Result<Decision, ActionError> {
    let value = parse_item(item)?;
    Ok(match action {
        Action::SkipRedisData => skip_redis_data(&value),
        Action::DbEndpoint => db_endpoint(&value, config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn config() -> EndpointConfig {
        EndpointConfig::from_data(
            &[
                ("newHost", "new.example.com"),
                ("newPort", "6432"),
                ("oldHost", "old.example.com"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        )
        .unwrap()
    }

    fn pvc(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "redis-db-r-redis-0", "namespace": "astronomer-r", "labels": labels}})
    }

    #[test]
    fn only_redis_pvcs_are_skipped() {
        let redis = pvc(json!({"tier": "airflow", "component": "redis", "release": "r"}));
        assert_eq!(skip_redis_data(&redis).outcome, Outcome::Skip);
        let worker = pvc(json!({"tier": "airflow", "component": "worker", "release": "r"}));
        assert_eq!(skip_redis_data(&worker).outcome, Outcome::Unchanged);
        let mut sts = redis.clone();
        sts["kind"] = "StatefulSet".into();
        sts["apiVersion"] = "apps/v1".into();
        assert_eq!(skip_redis_data(&sts).outcome, Outcome::Unchanged);
    }

    #[test]
    fn names_and_errors() {
        assert_eq!(Action::from_name(DB_ENDPOINT).unwrap(), Action::DbEndpoint);
        assert!(matches!(
            Action::from_name("astronomer.io/nope"),
            Err(ActionError::UnknownPlugin(_))
        ));
        assert!(matches!(
            execute(Action::SkipRedisData, b"not json", None),
            Err(ActionError::NotJson(_))
        ));
        assert!(matches!(
            execute(Action::DbEndpoint, b"[1]", None),
            Err(ActionError::NotObject)
        ));
        assert!(matches!(
            execute(Action::DbEndpoint, br#"{"kind":""}"#, None),
            Err(ActionError::NotObject)
        ));
    }

    #[test]
    fn secret_is_rewritten_keeping_identity() {
        let uri = "postgres://u:p%40ss@old.example.com:5432/db?sslmode=require";
        let item = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": BOOTSTRAP_SECRET, "namespace": "astronomer", "labels": {"a": "b"}},
            "data": {"connection": STANDARD.encode(uri), "other": "eA=="}});
        let Outcome::Replace(bytes) = db_endpoint(&item, Some(&config())).outcome else {
            panic!("not rewritten")
        };
        let out: Value = serde_json::from_slice(&bytes).unwrap();
        for p in ["/apiVersion", "/kind", "/metadata", "/type", "/data/other"] {
            assert_eq!(out.pointer(p), item.pointer(p), "{p}");
        }
        let new = STANDARD
            .decode(out["data"]["connection"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(new).unwrap(),
            "postgres://u:p%40ss@new.example.com:6432/db?sslmode=require"
        );
        assert_eq!(db_endpoint(&item, None).outcome, Outcome::Unchanged);
    }

    fn arb_object() -> impl Strategy<Value = Value> {
        let kinds = prop::sample::select(vec![
            ("v1", "Secret"),
            ("v1", "ConfigMap"),
            ("v1", "PersistentVolumeClaim"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("v1", "Service"),
        ]);
        let names = prop::sample::select(vec![
            "astronomer-bootstrap",
            "astronomer-houston-backend",
            "r-pgbouncer-config",
            "r-airflow-metadata",
            "r-broker-url",
            "pg-sqlproxy-gcloud-sqlproxy",
            "redis-db-r-redis-0",
            "x",
        ]);
        let namespaces = prop::sample::select(vec!["astronomer", "astronomer-r", "kube-system"]);
        let text = "[ -~]{0,40}";
        (
            kinds,
            names,
            namespaces,
            prop::collection::btree_map("[a-z.]{1,12}", text, 0..4),
            prop::collection::btree_map("[a-z]{1,8}", text, 0..3),
        )
            .prop_map(|((api, kind), name, ns, data, labels)| {
                let data: serde_json::Map<String, Value> = data
                    .into_iter()
                    .map(|(k, v)| (k, STANDARD.encode(v).into()))
                    .collect();
                json!({"apiVersion": api, "kind": kind,
                       "metadata": {"name": name, "namespace": ns, "labels": labels},
                       "data": data})
            })
    }

    proptest! {
        /// Whatever the item, both actions keep its identity, and everything outside
        /// `data`/`spec` stays as it came.
        #[test]
        fn identity_is_kept(item in arb_object(), connection in "[ -~]{0,60}") {
            let mut item = item;
            if item["kind"] == "Secret" {
                item["data"]["connection"] = STANDARD.encode(format!("postgres://u:p@old.example.com:5432/{connection}")).into();
            }
            let bytes = serde_json::to_vec(&item).unwrap();
            for action in ACTIONS {
                let decision = execute(action, &bytes, Some(&config())).unwrap();
                match decision.outcome {
                    Outcome::Replace(out) => {
                        let out: Value = serde_json::from_slice(&out).unwrap();
                        prop_assert_eq!(&out["apiVersion"], &item["apiVersion"]);
                        prop_assert_eq!(&out["kind"], &item["kind"]);
                        prop_assert_eq!(&out["metadata"], &item["metadata"]);
                        prop_assert_eq!(item["kind"].as_str(), Some("Secret"));
                    }
                    Outcome::Skip => {
                        prop_assert_eq!(action, Action::SkipRedisData);
                        prop_assert_eq!(item["kind"].as_str(), Some("PersistentVolumeClaim"));
                    }
                    Outcome::Unchanged => {}
                }
            }
        }

        /// Without a configuration the endpoint action never changes anything.
        #[test]
        fn no_config_no_change(item in arb_object()) {
            let bytes = serde_json::to_vec(&item).unwrap();
            prop_assert_eq!(execute(Action::DbEndpoint, &bytes, None).unwrap().outcome, Outcome::Unchanged);
        }

        /// Random bytes give an error or a decision, never a panic.
        #[test]
        fn junk_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            for action in ACTIONS {
                let _ = execute(action, &bytes, Some(&config()));
            }
        }
    }
}
