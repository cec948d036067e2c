//! CRD openAPIV3Schema handling: translation of Kubernetes structural schemas to JSON Schema,
//! validation messages like the API server's, and pruning of unknown fields.

use serde_json::{Map, Value, json};

/// Compiles a CRD's `openAPIV3Schema` into a validator.
pub(crate) fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    let translated = translate(schema);
    jsonschema::draft4::options()
        .should_validate_formats(false)
        .build(&translated)
        .map_err(|e| format!("invalid openAPIV3Schema: {e}"))
}

/// Turns OpenAPI v3 / Kubernetes extensions into plain draft-4 JSON Schema.
fn translate(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let nullable = map.get("nullable") == Some(&Value::Bool(true));
    for (k, v) in map {
        if k.starts_with("x-kubernetes-") || k == "nullable" || k == "format" {
            continue;
        }
        let v = match k.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                v.as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(pk, pv)| (pk.clone(), translate(pv)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" | "not" if v.is_object() => translate(v),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                v.as_array()
                    .map(|a| a.iter().map(translate).collect())
                    .unwrap_or_default(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    if int_or_string {
        out.remove("type");
        if !out.contains_key("anyOf") {
            out.insert(
                "anyOf".into(),
                json!([{"type": "integer"}, {"type": "string"}]),
            );
        }
    }
    if nullable {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// Validates `obj`; returns `(field, message)` pairs like the API server's causes.
pub(crate) fn validate(validator: &jsonschema::Validator, obj: &Value) -> Vec<(String, String)> {
    validator
        .iter_errors(obj)
        .map(|e| {
            let path = e.instance_path().to_string();
            let field = path
                .trim_start_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(".");
            (field, e.to_string())
        })
        .collect()
}

/// Drops fields the schema does not know, as the API server does for structural schemas.
pub(crate) fn prune(schema: &Value, value: &mut Value, root: bool) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
    {
        return;
    }
    match value {
        Value::Object(obj) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve =
                schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            let keys: Vec<String> = obj.keys().cloned().collect();
            for key in keys {
                if root && (key == "apiVersion" || key == "kind" || key == "metadata") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&key)).or(additional);
                match sub {
                    Some(sub) => {
                        if let Some(child) = obj.get_mut(&key) {
                            prune(sub, child, false);
                        }
                    }
                    None if preserve || (props.is_none() && additional.is_none()) => {}
                    None => {
                        obj.remove(&key);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for item in items {
                    prune(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_and_int_or_string_are_translated() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "c": {"type": "integer", "format": "int64"}
            }
        });
        let v = compile(&schema).unwrap();
        assert!(validate(&v, &json!({"a": null, "b": 3, "c": 5})).is_empty());
        assert!(validate(&v, &json!({"b": "x"})).is_empty());
        let errs = validate(&v, &json!({"c": "no"}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "c");
    }

    #[test]
    fn prune_drops_unknown_fields_only() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {"x": {"type": "string"}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        });
        let mut v = json!({"kind": "K", "spec": {"x": "1", "y": 2}, "status": {"z": 1}, "junk": 1});
        prune(&schema, &mut v, true);
        assert_eq!(
            v,
            json!({"kind": "K", "spec": {"x": "1"}, "status": {"z": 1}})
        );
    }
}
