//! The patch formats of the API server: JSON merge patch, JSON patch, a strategic merge
//! patch covering the list-merge keys of pod templates, and server-side apply (as merge).

use serde_json::{Map, Value};

/// Lists that strategic merge patch merges by a key, with the key (Kubernetes'
/// `patchMergeKey`; `ports` is `containerPort` in a container and `port` in a Service).
const MERGE_KEYS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ephemeralContainers", &["name"]),
    ("env", &["name"]),
    ("volumes", &["name"]),
    ("volumeMounts", &["mountPath"]),
    ("ports", &["containerPort", "port"]),
    ("imagePullSecrets", &["name"]),
];

/// Applies a patch body of the given content type to `target`.
pub fn apply(content_type: &str, target: &Value, body: &[u8]) -> Result<Value, String> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/json-patch+json" => {
            let patch: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| format!("invalid JSON patch: {e}"))?;
            // On a copy that is dropped on error, so no undo: json-patch 4.2's undo panics
            // on some failed `move`s (e.g. moving /spec into itself after another op).
            let mut doc = target.clone();
            json_patch::patch_unsafe(&mut doc, &patch).map_err(|e| e.to_string())?;
            Ok(doc)
        }
        "application/merge-patch+json" => {
            let patch: Value = parse_json(body)?;
            let mut doc = target.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        "application/strategic-merge-patch+json" => {
            let patch: Value = parse_json(body)?;
            Ok(strategic(target, &patch, None))
        }
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            let patch: Value =
                serde_saphyr::from_slice(body).map_err(|e| format!("invalid apply patch: {e}"))?;
            let mut doc = target.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        other => Err(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
        )),
    }
}

/// Parses the patch body as JSON (the patch itself must be an object for merge patches).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
}

fn strategic(target: &Value, patch: &Value, key: Option<&str>) -> Value {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            let mut out: Map<String, Value> = t.clone();
            for (k, pv) in p {
                if k.starts_with("$") {
                    continue;
                }
                if pv.is_null() {
                    out.remove(k);
                } else if let Some(tv) = t.get(k) {
                    out.insert(k.clone(), strategic(tv, pv, Some(k)));
                } else {
                    out.insert(k.clone(), strip_nulls(pv));
                }
            }
            Value::Object(out)
        }
        (Value::Array(t), Value::Array(p)) if merge_keys(key).is_some() => {
            let keys = merge_keys(key).unwrap_or_default();
            let key_of = |v: &Value| {
                keys.iter().find_map(|k| {
                    v.get(k)
                        .filter(|id| !id.is_null())
                        .map(|id| (*k, id.clone()))
                })
            };
            let mut out = t.clone();
            for item in p {
                let id = key_of(item);
                let pos = id
                    .as_ref()
                    .and_then(|id| out.iter().position(|o| key_of(o).as_ref() == Some(id)));
                match pos {
                    Some(i) => {
                        let merged = strategic(&out[i], item, None);
                        out[i] = merged;
                    }
                    // An item without its merge key is added once: applying the same
                    // patch again must not add it again (patches are retried).
                    None => {
                        let item = strip_nulls(item);
                        if id.is_some() || !out.contains(&item) {
                            out.push(item);
                        }
                    }
                }
            }
            Value::Array(out)
        }
        (_, p) => strip_nulls(p),
    }
}

/// The merge keys of the list under `key`, if strategic merge patch merges it.
fn merge_keys(key: Option<&str>) -> Option<&'static [&'static str]> {
    MERGE_KEYS
        .iter()
        .find(|(list, _)| Some(*list) == key)
        .map(|(_, keys)| *keys)
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !v.is_null() && !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        // Items of a new list lose their nulls too, or a re-applied patch would not
        // find them again (`{"name": null}` vs `{}`).
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STRATEGIC: &str = "application/strategic-merge-patch+json";

    #[test]
    fn strategic_merges_containers_and_env_by_name() {
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "b", "image": "y"}
        ]}}, "replicas": 1}});
        let patch = json!({"spec": {"replicas": null, "template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
        ]}}}});
        let out = apply(
            "application/strategic-merge-patch+json",
            &target,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
                {"name": "b", "image": "y"}
            ]}}}})
        );
    }

    #[test]
    fn strategic_merge_keys_and_items_without_one() {
        // Found by tests/properties: an item without its merge key was appended again on
        // every retry of the same patch; volume mounts merge by mountPath, ports by port.
        let target = json!({"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/x"}],
            "ports": [{"containerPort": 80, "name": "http"}]}]});
        let patch = json!({"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/y"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}], "env": [{"value": "no name"}]}]});
        let body = patch.to_string();
        let once = apply(STRATEGIC, &target, body.as_bytes()).unwrap();
        assert_eq!(
            once,
            json!({"containers": [{"name": "a",
                "volumeMounts": [{"name": "v", "mountPath": "/x"}, {"name": "v", "mountPath": "/y"}],
                "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                "env": [{"value": "no name"}]}]})
        );
        assert_eq!(apply(STRATEGIC, &once, body.as_bytes()).unwrap(), once);
    }

    #[test]
    fn merge_and_json_patch() {
        let target = json!({"a": {"b": 1, "c": [1, 2]}});
        let m = apply(
            "application/merge-patch+json",
            &target,
            br#"{"a":{"b":null,"c":[3]}}"#,
        )
        .unwrap();
        assert_eq!(m, json!({"a": {"c": [3]}}));
        let j = apply(
            "application/json-patch+json",
            &target,
            br#"[{"op":"replace","path":"/a/b","value":5}]"#,
        )
        .unwrap();
        assert_eq!(j["a"]["b"], 5);
        assert!(
            apply(
                "application/json-patch+json",
                &target,
                br#"[{"op":"test","path":"/a/b","value":9}]"#
            )
            .is_err()
        );
        assert!(apply("text/plain", &target, b"{}").is_err());
        // Found by tests/properties: json-patch's undo panicked on this one.
        let bad_move =
            br#"[{"op":"add","path":"/x","value":1},{"op":"move","from":"/a","path":"/a/b"}]"#;
        assert!(apply("application/json-patch+json", &target, bad_move).is_err());
    }
}
