//! `meta.k8s.io/v1` Table rendering, what `kubectl get` asks for to print columns.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Human age like kubectl's: `45s`, `12m`, `5h`, `3d`.
fn age(created: Option<&str>) -> String {
    let Some(ts) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - ts.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Reads a simple `.a.b` JSONPath.
fn read_path(obj: &Value, path: &str) -> Value {
    let pointer = format!("/{}", path.trim_start_matches('.').replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
        Some(Value::Null) | None => Value::Null,
        Some(other) => Value::String(other.to_string()),
    }
}

fn columns(t: &ResourceType) -> Vec<(String, String)> {
    let mut cols = vec![("Name".to_string(), ".metadata.name".to_string())];
    match (t.group.as_str(), t.kind.as_str()) {
        ("", "Namespace" | "Pod" | "PersistentVolumeClaim" | "PersistentVolume") => {
            cols.push(("Status".into(), ".status.phase".into()));
        }
        ("", "Secret") => cols.push(("Type".into(), ".type".into())),
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") => {
            cols.push(("Replicas".into(), ".spec.replicas".into()));
        }
        _ => {}
    }
    for (name, path) in &t.printer_columns {
        if name != "Age" && name != "Name" {
            cols.push((name.clone(), path.clone()));
        }
    }
    cols.push(("Age".into(), ".metadata.creationTimestamp".into()));
    cols
}

/// A Table of `items`; row objects follow `includeObject` (default PartialObjectMetadata).
pub(crate) fn table(
    t: &ResourceType,
    items: &[Arc<Value>],
    continue_token: Option<&str>,
    rv: u64,
    query: &HashMap<String, String>,
) -> Value {
    let cols = columns(t);
    let include = query
        .get("includeObject")
        .map(String::as_str)
        .unwrap_or("Metadata");
    let defs: Vec<Value> = cols
        .iter()
        .map(|(name, _)| {
            json!({"name": name, "type": "string", "format": if name == "Name" { "name" } else { "" },
                "description": name, "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = cols
                .iter()
                .map(|(name, path)| {
                    if name == "Age" {
                        Value::String(age(obj
                            .pointer("/metadata/creationTimestamp")
                            .and_then(Value::as_str)))
                    } else {
                        read_path(obj, path)
                    }
                })
                .collect();
            let object = match include {
                "None" => Value::Null,
                "Object" => (**obj).clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_default()}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}
