//! The patch formats of the API server: JSON merge patch, JSON patch, a strategic merge
//! patch covering the list-merge keys of pod templates, and server-side apply (as merge).

use serde_json::{Map, Value};

/// Lists that strategic merge patch merges by their `name` field.
const MERGE_BY_NAME: &[&str] = &[
    "containers",
    "initContainers",
    "ephemeralContainers",
    "env",
    "volumes",
    "volumeMounts",
    "ports",
    "imagePullSecrets",
];

/// Applies a patch body of the given content type to `target`.
pub(crate) fn apply(content_type: &str, target: &Value, body: &[u8]) -> Result<Value, String> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/json-patch+json" => {
            let patch: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| format!("invalid JSON patch: {e}"))?;
            let mut doc = target.clone();
            json_patch::patch(&mut doc, &patch).map_err(|e| e.to_string())?;
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
        (Value::Array(t), Value::Array(p)) if key.is_some_and(|k| MERGE_BY_NAME.contains(&k)) => {
            let mut out = t.clone();
            for item in p {
                let name = item.get("name").and_then(Value::as_str);
                let pos = name.and_then(|n| {
                    out.iter()
                        .position(|o| o.get("name").and_then(Value::as_str) == Some(n))
                });
                match pos {
                    Some(i) => {
                        let merged = strategic(&out[i], item, None);
                        out[i] = merged;
                    }
                    None => out.push(strip_nulls(item)),
                }
            }
            Value::Array(out)
        }
        (_, p) => strip_nulls(p),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !v.is_null() && !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    }
}
