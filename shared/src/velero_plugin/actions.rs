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
use crate::endpoint::plan::{
    BOOTSTRAP_SECRET, Edit, Kind, PlanContext, RESTARTED_FOR, Role, Target, plan_secret,
    restart_fingerprint, restarted_by_move,
};
use crate::sqlproxy::{ElementChange, InstanceName, SQLPROXY_DEPLOYMENT, plan_sqlproxy};

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
                included_resources: vec!["secrets", "deployments.apps", "statefulsets.apps"],
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

    /// Unchanged, with why.
    fn left_alone(note: String) -> Self {
        Decision {
            outcome: Outcome::Unchanged,
            notes: vec![note],
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

/// What identifies an item, read without ever failing: each part is `""` when absent
/// or not a string. Displays as `namespace/name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// `apiVersion`.
    pub api_version: &'a str,
    /// `kind`.
    pub kind: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
}

impl<'a> Identity<'a> {
    /// The identity of `item`.
    pub fn of(item: &'a Value) -> Self {
        Identity {
            api_version: str_at(item, &["apiVersion"]),
            kind: str_at(item, &["kind"]),
            namespace: str_at(item, &["metadata", "namespace"]),
            name: str_at(item, &["metadata", "name"]),
        }
    }
}

impl std::fmt::Display for Identity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `astronomer.io/skip-redis-data`: an Airflow Redis PVC is skipped, anything else
/// (its StatefulSet and Service included) restored as is.
pub fn skip_redis_data(item: &Value) -> Decision {
    let id = Identity::of(item);
    let is_pvc = id.kind == "PersistentVolumeClaim" && id.api_version == "v1";
    let labels = item.pointer("/metadata/labels");
    if is_pvc
        && REDIS_PVC_LABELS
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v))
    {
        return Decision {
            outcome: Outcome::Skip,
            notes: vec![format!(
                "not restoring Redis PVC {id}: Redis starts empty (stale Celery state would conflict)"
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

/// The item as `T`, or the decision to leave it alone (`secret ns/n is not a valid Secret`).
fn decode<T: serde::de::DeserializeOwned>(item: &Value, id: &Identity) -> Result<T, Decision> {
    serde_json::from_value(item.clone()).map_err(|_| {
        Decision::left_alone(format!(
            "{} {id} is not a valid {}; left alone",
            id.kind.to_lowercase(),
            id.kind
        ))
    })
}

/// `astronomer.io/db-endpoint`: rewrites what `restore endpoint` would patch, with the
/// planner's own functions, so both give the same bytes.
pub fn db_endpoint(item: &Value, config: Option<&EndpointConfig>) -> Decision {
    let Some(config) = config else {
        return Decision::unchanged();
    };
    let id = Identity::of(item);
    match (id.api_version, id.kind) {
        ("v1", "Secret") => match secret_role(id.namespace, id.name, &config.platform_namespace) {
            Some(role) => move_secret(item, &id, role, config),
            None => Decision::unchanged(),
        },
        ("apps/v1", "Deployment")
            if id.namespace == config.platform_namespace && id.name == SQLPROXY_DEPLOYMENT =>
        {
            match &config.sqlproxy {
                Some((from, to)) => move_sqlproxy(item, &id, from.as_ref(), to),
                None => Decision::unchanged(),
            }
        }
        ("apps/v1", kind @ ("Deployment" | "StatefulSet")) => {
            let kind = if kind == "Deployment" {
                Kind::Deployment
            } else {
                Kind::StatefulSet
            };
            mark_reader(item, &id, kind, config)
        }
        _ => Decision::unchanged(),
    }
}

/// A workload `restore endpoint` restarts after a move: its pods start after the secrets
/// were restored already moved, so its template gets the fingerprint a restart would
/// leave, and the endpoint move that follows restarts nothing. Should a secret still need
/// a patch then, the move restarts its readers whatever the fingerprint says.
fn mark_reader(item: &Value, id: &Identity, kind: Kind, config: &EndpointConfig) -> Decision {
    let Some(new) = &config.new else {
        return Decision::unchanged();
    };
    let release = config.platform_release.as_deref();
    if !restarted_by_move(
        kind,
        id.namespace,
        id.name,
        &config.platform_namespace,
        release,
    ) {
        return Decision::unchanged();
    }
    let mut out = item.clone();
    let Some(template) = out
        .pointer_mut("/spec/template")
        .and_then(Value::as_object_mut)
    else {
        return Decision::left_alone(format!(
            "{} {id} has no pod template; left alone",
            id.kind.to_lowercase()
        ));
    };
    let metadata = template
        .entry("metadata")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(annotations) = metadata.as_object_mut().map(|m| {
        m.entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()))
    }) else {
        return Decision::left_alone(format!(
            "{} {id}: odd template metadata; left alone",
            id.kind.to_lowercase()
        ));
    };
    let Some(annotations) = annotations.as_object_mut() else {
        return Decision::left_alone(format!(
            "{} {id}: odd template annotations; left alone",
            id.kind.to_lowercase()
        ));
    };
    let fingerprint = restart_fingerprint(new);
    if annotations.get(RESTARTED_FOR).and_then(Value::as_str) == Some(fingerprint.as_str()) {
        return Decision::unchanged();
    }
    annotations.insert(RESTARTED_FOR.to_owned(), fingerprint.into());
    Decision {
        outcome: replace(&out),
        notes: vec![format!(
            "{} {id}: starts on the new endpoint (no restart needed after the restore)",
            id.kind.to_lowercase()
        )],
    }
}

/// A database Secret of `role`, planned as `restore endpoint` plans it.
fn move_secret(item: &Value, id: &Identity, role: Role, config: &EndpointConfig) -> Decision {
    let secret: Secret = match decode(item, id) {
        Ok(secret) => secret,
        Err(decision) => return decision,
    };
    let planned = plan_secret(&secret, role, &plan_context(config));
    let mut notes = planned.notes;
    let Some(change) = planned.change else {
        return Decision {
            outcome: Outcome::Unchanged,
            notes,
        };
    };
    let Some(out) = with_data(item, &change.edits) else {
        notes.push(format!("secret {id} has no object `data`; left alone"));
        return Decision {
            outcome: Outcome::Unchanged,
            notes,
        };
    };
    let keys: Vec<&str> = change.edits.iter().map(|e| e.key.as_str()).collect();
    notes.push(format!(
        "secret {id}: {} now name the new endpoint",
        keys.join(", ")
    ));
    Decision {
        outcome: replace(&out),
        notes,
    }
}

/// `item` with the edited `data` keys (base64), every other field as it came; `None`
/// when `data` is neither absent, null nor an object.
fn with_data(item: &Value, edits: &[Edit]) -> Option<Value> {
    let mut out = item.clone();
    let data = out.as_object_mut()?.entry("data").or_insert(Value::Null);
    if data.is_null() {
        *data = Value::Object(serde_json::Map::new());
    }
    let data = data.as_object_mut()?;
    for edit in edits {
        data.insert(edit.key.clone(), STANDARD.encode(&edit.new).into());
    }
    Some(out)
}

/// The Cloud SQL proxy Deployment, moved from `from` to `to`.
fn move_sqlproxy(
    item: &Value,
    id: &Identity,
    from: Option<&InstanceName>,
    to: &InstanceName,
) -> Decision {
    let deployment: Deployment = match decode(item, id) {
        Ok(deployment) => deployment,
        Err(decision) => return decision,
    };
    let changes = match plan_sqlproxy(&deployment, from, to) {
        Ok(c) => c,
        // Restoring the proxy unchanged beats failing the item: `restore
        // endpoint` reports the same problem afterwards.
        Err(e) => return Decision::left_alone(format!("deployment {id} left unchanged: {e}")),
    };
    if changes.is_empty() {
        return Decision::unchanged();
    }
    let Some(out) = with_elements(item, &changes) else {
        return Decision::left_alone(format!(
            "deployment {id}: a planned element is missing from the item; left alone"
        ));
    };
    Decision {
        outcome: replace(&out),
        notes: vec![format!(
            "deployment {id}: Cloud SQL proxy now serves {}",
            to.as_str()
        )],
    }
}

/// `item` with the planned `-instances=` elements replaced, every other field as it
/// came; `None` when one of them is not where the plan says.
fn with_elements(item: &Value, changes: &[ElementChange]) -> Option<Value> {
    let mut out = item.clone();
    for c in changes {
        let at = format!(
            "/spec/template/spec/containers/{}/{}/{}",
            c.container_index, c.field, c.index
        );
        *out.pointer_mut(&at)? = c.new.clone().into();
    }
    Some(out)
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

    /// A configuration that moves the database and the Cloud SQL proxy.
    fn config_with_sqlproxy() -> EndpointConfig {
        EndpointConfig::from_data(
            &[
                ("newHost", "new.example.com"),
                ("oldHost", "old.example.com"),
                ("newInstance", "proj:us-east1:new-pg"),
                ("oldInstance", "proj:us-east1:old-pg"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        )
        .unwrap()
    }

    /// Any JSON value, nested a few levels.
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[ -~]{0,24}".prop_map(Value::from),
            prop::sample::select(vec![
                "postgres://u:p@old.example.com:5432/db",
                "-instances=proj:us-east1:old-pg=tcp:5432",
                "[databases]\nr-metadata = host=old.example.com dbname=r port=5432\n",
            ])
            .prop_map(|s| Value::from(STANDARD.encode(s))),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map("[a-zA-Z.]{0,10}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A field that is usually one of the values the actions look for, else anything.
    fn usually<T: Into<Value> + Clone + std::fmt::Debug + 'static>(
        values: Vec<T>,
    ) -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => prop::sample::select(values).prop_map(Into::into),
            1 => arb_json(),
        ]
    }

    /// Arbitrary JSON objects shaped enough like the items the actions concern to reach
    /// every branch: any field may be missing, of the wrong type, or nested oddly.
    fn arb_any_object() -> impl Strategy<Value = Value> {
        let known = prop::sample::select(vec![
            ("v1", "Secret", "astronomer", BOOTSTRAP_SECRET),
            ("v1", "Secret", "astronomer", "astronomer-houston-backend"),
            ("v1", "Secret", "astronomer-r", "r-pgbouncer-config"),
            ("v1", "Secret", "astronomer-r", "r-metadata"),
            ("v1", "Secret", "astronomer-r", "r-result-backend"),
            ("apps/v1", "Deployment", "astronomer", SQLPROXY_DEPLOYMENT),
            (
                "v1",
                "PersistentVolumeClaim",
                "astronomer-r",
                "redis-db-r-redis-0",
            ),
            ("v1", "ConfigMap", "astronomer", "x"),
        ]);
        // Each part of a known identity is now and then replaced by any JSON.
        let odd = || prop_oneof![4 => Just(None), 1 => arb_json().prop_map(Some)];
        let identity =
            (known, odd(), odd(), odd(), odd()).prop_map(|((a, k, ns, n), oa, ok, ons, on)| {
                let pick = |odd: Option<Value>, known: &str| odd.unwrap_or_else(|| known.into());
                (pick(ok, k), pick(oa, a), pick(on, n), pick(ons, ns))
            });
        let labels = prop_oneof![
            Just(json!({"tier": "airflow", "component": "redis"})),
            arb_json(),
        ];
        let container = (arb_json(), arb_json(), usually(vec!["-instances=proj:us-east1:old-pg=tcp:5432"]))
            .prop_map(|(name, command, flag)| json!({"name": name, "command": command, "args": ["x", flag]}));
        let spec = prop_oneof![
            prop::collection::vec(container, 0..3)
                .prop_map(|c| json!({"template": {"spec": {"containers": c}}})),
            arb_json(),
        ];
        let data = prop_oneof![
            prop::collection::btree_map(
                usually(vec!["connection", "kedaConnection", "pgbouncer.ini"])
                    .prop_map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned)),
                arb_json(),
                0..4,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
            arb_json(),
        ];
        (
            (identity, labels),
            (
                spec,
                data,
                arb_json(),
                prop::collection::vec(prop::bool::weighted(0.9), 7),
            ),
        )
            .prop_map(
                |(((kind, api, name, ns), labels), (spec, data, extra, keep))| {
                    let mut metadata = serde_json::Map::new();
                    for (k, v, on) in [
                        ("name", name, keep[0]),
                        ("namespace", ns, keep[1]),
                        ("labels", labels, keep[2]),
                    ] {
                        if on {
                            metadata.insert(k.into(), v);
                        }
                    }
                    let mut item = serde_json::Map::new();
                    for (k, v, on) in [
                        ("kind", kind, true),
                        ("apiVersion", api, keep[3]),
                        ("metadata", Value::Object(metadata), keep[4]),
                        ("spec", spec, keep[5]),
                        ("data", data, keep[6]),
                        ("extra", extra, true),
                    ] {
                        if on {
                            item.insert(k.into(), v);
                        }
                    }
                    Value::Object(item)
                },
            )
    }

    proptest! {
        /// Arbitrary JSON objects through both actions, with and without a configuration:
        /// never a panic; an answer is JSON with the item's identity kept.
        #[test]
        fn arbitrary_objects_never_panic(item in arb_any_object()) {
            let bytes = serde_json::to_vec(&item).unwrap();
            let configs = [None, Some(config()), Some(config_with_sqlproxy())];
            for action in ACTIONS {
                for config in &configs {
                    let Ok(decision) = execute(action, &bytes, config.as_ref()) else {
                        continue;
                    };
                    if let Outcome::Replace(out) = decision.outcome {
                        let out: Value = serde_json::from_slice(&out).unwrap();
                        prop_assert_eq!(&out["apiVersion"], &item["apiVersion"]);
                        prop_assert_eq!(&out["kind"], &item["kind"]);
                        prop_assert_eq!(&out["metadata"], &item["metadata"]);
                    }
                }
            }
        }

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
