//! The kinds the fake API server knows: built-in Kubernetes kinds and CRD-defined kinds.
//! Discovery documents and URL routing are both derived from this table.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::schema;

/// One served resource (group/version/plural) and how to treat it.
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Writes to the main resource keep the stored `status` (status subresource enabled).
    pub status_subresource: bool,
    /// Extra subresources listed in discovery (e.g. `log`, `exec`).
    pub extra_subresources: Vec<&'static str>,
    /// Structural schema validator for CRD kinds.
    pub validator: Option<Arc<jsonschema::Validator>>,
    /// The raw `openAPIV3Schema`, used for pruning unknown fields.
    pub schema: Option<Arc<Value>>,
    /// `additionalPrinterColumns` of a CRD version: (name, jsonPath).
    pub printer_columns: Vec<(String, String)>,
}

impl ResourceType {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `backups.velero.io` style name used in messages, `pods` for the core group.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The APIResource entry of this type for discovery.
    pub fn discovery(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": self.short_names,
            "categories": self.categories,
            "storageVersionHash": "fake",
        })];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for sub in &self.extra_subresources {
            if *sub == "scale" {
                out.push(json!({
                    "name": format!("{}/scale", self.plural),
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }));
                continue;
            }
            out.push(json!({
                "name": format!("{}/{}", self.plural, sub),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": if *sub == "log" { "Pod" } else { "PodExecOptions" },
                "verbs": ["create", "get"],
            }));
        }
        out
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
}

#[allow(clippy::too_many_arguments)] // a row constructor keeps the table below readable
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        all,
        status,
    }
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        false,
        true,
    ),
    b("", "v1", "Secret", "secrets", true, &[], false, false),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
    ),
    b("", "v1", "Pod", "pods", true, &["po"], true, true),
    b("", "v1", "Service", "services", true, &["svc"], true, true),
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        false,
        true,
    ),
    b(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
        false,
        true,
    ),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
    ),
    b("", "v1", "Event", "events", true, &["ev"], false, false),
    b(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        true,
    ),
    b("batch", "v1", "Job", "jobs", true, &[], true, true),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        false,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        false,
        true,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
    ),
    // Answered by the server (`server::self_subject_access_review`), never stored.
    b(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        &[],
        false,
        false,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        false,
        true,
    ),
];

/// The built-in kinds, in a stable order.
pub(crate) fn builtins() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| ResourceType {
            group: b.group.into(),
            version: b.version.into(),
            kind: b.kind.into(),
            plural: b.plural.into(),
            singular: b.kind.to_ascii_lowercase(),
            namespaced: b.namespaced,
            short_names: b.short.iter().map(|s| (*s).to_string()).collect(),
            categories: if b.all { vec!["all".into()] } else { vec![] },
            status_subresource: b.status,
            extra_subresources: match b.kind {
                "Pod" => vec!["log", "exec", "attach"],
                "Deployment" | "StatefulSet" | "ReplicaSet" => vec!["scale"],
                _ => vec![],
            },
            validator: None,
            schema: None,
            printer_columns: vec![],
        })
        .collect()
}

/// The served versions of a CRD object as resource types (validator compiled).
pub(crate) fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().ok_or("CRD without spec.group")?;
    let names = &spec["names"];
    let kind = names["kind"]
        .as_str()
        .ok_or("CRD without spec.names.kind")?;
    let plural = names["plural"]
        .as_str()
        .ok_or("CRD without spec.names.plural")?;
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let str_list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"].as_bool() == Some(false) {
            continue;
        }
        let Some(vname) = version["name"].as_str() else {
            continue;
        };
        let validator = match version.pointer("/schema/openAPIV3Schema") {
            Some(s) => Some(Arc::new(
                schema::compile(s).map_err(|e| format!("{kind}.{group}/{vname}: {e}"))?,
            )),
            None => None,
        };
        let printer_columns = version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c["name"].as_str()?.to_string(),
                    c["jsonPath"].as_str()?.to_string(),
                ))
            })
            .collect();
        out.push(ResourceType {
            group: group.into(),
            version: vname.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: str_list(&names["shortNames"]),
            categories: str_list(&names["categories"]),
            status_subresource: version.pointer("/subresources/status").is_some(),
            extra_subresources: vec![],
            validator,
            schema: version
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .map(Arc::new),
            printer_columns,
        });
    }
    Ok(out)
}
