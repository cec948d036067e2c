//! Velero plugins for the simulated Velero: binaries in a plugins directory, found,
//! launched and spoken to through the library's go-plugin host (what Velero's server
//! does), and every restored item run through the RestoreItemActions whose `AppliesTo`
//! matches it, before namespace mapping, as Velero orders it.

use std::path::Path;

use astro::velero_plugin::host::{LaunchOptions, PluginProcess, discover};
use serde_json::Value;

/// What the actions made of a restore's items.
#[derive(Debug, Default)]
pub(crate) struct Processed {
    /// Items to restore (replaced where an action returned a new item).
    pub items: Vec<Value>,
    /// Errors in Velero's wording (the item is then not restored).
    pub errors: Vec<String>,
}

/// One RestoreItemAction and its selector.
struct Action {
    process: usize,
    name: String,
    resources: Vec<String>,
    namespaces: Vec<String>,
    labels: Vec<(String, Option<String>)>,
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}

impl Action {
    /// Velero's `ShouldUse`: resources by `plural` or `plural.group`, namespaces by glob,
    /// then the label selector (equality and existence terms, what plugins use).
    fn applies(&self, item: &Value, plural: &str, group: &str) -> bool {
        let resource_ok = self.resources.is_empty()
            || self.resources.iter().any(|r| {
                r == "*" || *r == plural || (!group.is_empty() && *r == format!("{plural}.{group}"))
            });
        let ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
        let ns_ok = self.namespaces.is_empty()
            || (!ns.is_empty() && self.namespaces.iter().any(|p| glob(p, ns)));
        let labels = &item["metadata"]["labels"];
        let labels_ok = self.labels.iter().all(|(k, v)| match v {
            Some(v) => labels.get(k).and_then(Value::as_str) == Some(v),
            None => labels.get(k).is_some(),
        });
        resource_ok && ns_ok && labels_ok
    }
}

fn parse_labels(selector: &str) -> Vec<(String, Option<String>)> {
    selector
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (
                k.trim().trim_end_matches('=').to_owned(),
                Some(v.trim().to_owned()),
            ),
            None => (t.trim().to_owned(), None),
        })
        .collect()
}

/// The item as Velero hands it to actions (`resetMetadata`, status removed).
pub fn reset_metadata(mut item: Value) -> Value {
    if let Some(m) = item["metadata"].as_object_mut() {
        for k in [
            "generateName",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    if let Some(o) = item.as_object_mut() {
        o.remove("status");
    }
    item
}

/// Runs `items` (with their `(plural, group)`) through the plugins of `dir`: one process
/// per binary for the whole restore, killed at the end. `env` goes to the processes
/// (the kubeconfig standing in for the in-cluster config, `VELERO_NAMESPACE`).
pub(crate) async fn restore_items(
    dir: &Path,
    items: Vec<(Value, String, String)>,
    restore: &Value,
    env: &[(String, String)],
) -> Processed {
    let mut out = Processed::default();
    let binaries = match discover(dir) {
        Ok(b) => b,
        Err(e) => {
            out.errors
                .push(format!("reading plugin dir {}: {e}", dir.display()));
            return out;
        }
    };
    let options = LaunchOptions {
        env: env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        ..LaunchOptions::default()
    };
    let mut processes = Vec::new();
    let mut actions = Vec::new();
    for path in binaries {
        let p = match PluginProcess::launch(&path, &options).await {
            Ok(p) => p,
            Err(f) => {
                out.errors
                    .push(format!("starting plugin {}: {}", path.display(), f.error));
                return out;
            }
        };
        let listed = match p.list_plugins().await {
            Ok(l) => l,
            Err(e) => {
                out.errors
                    .push(format!("listing plugins of {}: {e}", path.display()));
                return out;
            }
        };
        for id in listed.into_iter().filter(|i| i.kind == "RestoreItemAction") {
            // An AppliesTo error fails the whole restore.
            let selector = match p.applies_to(&id.name).await {
                Ok(s) => s.unwrap_or_default(),
                Err(e) => {
                    out.errors.push(format!("AppliesTo of {}: {e}", id.name));
                    return out;
                }
            };
            actions.push(Action {
                process: processes.len(),
                name: id.name,
                resources: selector.included_resources,
                namespaces: selector.included_namespaces,
                labels: parse_labels(&selector.selector),
            });
        }
        processes.push(p);
    }
    let restore_bytes = serde_json::to_vec(restore).unwrap_or_default();
    'items: for (item, plural, group) in items {
        let mut item = reset_metadata(item);
        for action in &actions {
            // Checked on the item as the previous actions left it, as Velero does.
            if !action.applies(&item, &plural, &group) {
                continue;
            }
            let bytes = serde_json::to_vec(&item).unwrap_or_default();
            match processes[action.process]
                .execute(&action.name, &bytes, &restore_bytes)
                .await
            {
                Ok(answer) if answer.skip_restore => continue 'items,
                Ok(answer) => match serde_json::from_slice(&answer.item) {
                    Ok(v) => item = v,
                    Err(e) => {
                        out.errors.push(format!("{}: bad item: {e}", action.name));
                        continue 'items;
                    }
                },
                Err(e) => {
                    let id = format!(
                        "{}/{}",
                        item["metadata"]["namespace"].as_str().unwrap_or_default(),
                        item["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    out.errors
                        .push(format!("error preparing {plural}/{id}: {e}"));
                    continue 'items;
                }
            }
        }
        out.items.push(item);
    }
    for p in processes {
        p.kill().await;
    }
    out
}

/// The simulated restore's hook: `None` without a plugin dir, else the items after the
/// actions, and errors for the restore's results.
pub(crate) async fn for_restore(
    shared: &crate::Shared,
    ns: &str,
    name: &str,
    selected: &[&Value],
) -> (Option<Vec<Value>>, Vec<String>) {
    let Some(dir) = crate::lock(&shared.velero).plugin_dir.clone() else {
        return (None, Vec::new());
    };
    let (items, restore) = {
        let st = crate::lock(&shared.store);
        let items = selected
            .iter()
            .map(|o| {
                let t = st.find_kind(
                    o["apiVersion"].as_str().unwrap_or_default(),
                    o["kind"].as_str().unwrap_or_default(),
                );
                let (plural, group) = t
                    .map(|t| (st.types[t].plural.clone(), st.types[t].group.clone()))
                    .unwrap_or_default();
                ((*o).clone(), plural, group)
            })
            .collect();
        let restore = st
            .find_kind("velero.io/v1", "Restore")
            .and_then(|t| st.get(t, ns, name))
            .map(|r| (*r).clone())
            .unwrap_or_default();
        (items, restore)
    };
    // The plugins reach the API server as from inside the velero pod.
    let Ok(tmp) = tempfile::tempdir() else {
        return (
            Some(Vec::new()),
            vec!["cannot create a temporary directory".into()],
        );
    };
    let kubeconfig = tmp.path().join("kubeconfig");
    if let Err(e) = std::fs::write(
        &kubeconfig,
        crate::kubeconfig_text(
            &shared.url,
            "velero",
            crate::ADMIN_TOKEN,
            shared.ca_pem.as_deref(),
        ),
    ) {
        return (
            Some(Vec::new()),
            vec![format!("cannot write kubeconfig: {e}")],
        );
    }
    let env = [
        (
            "KUBECONFIG".to_owned(),
            kubeconfig.to_string_lossy().into_owned(),
        ),
        ("VELERO_NAMESPACE".to_owned(), ns.to_owned()),
    ];
    let processed = restore_items(&dir, items, &restore, &env).await;
    (Some(processed.items), processed.errors)
}

/// Velero's own item actions `velero plugin get` lists among others (a sample: enough
/// for a client to see the difference between built-ins and an added plugin).
const BUILT_IN: [(&str, &str); 4] = [
    ("RestoreItemAction", "velero.io/pod"),
    ("RestoreItemAction", "velero.io/secret"),
    ("RestoreItemAction", "velero.io/service"),
    ("BackupItemAction", "velero.io/pod"),
];

/// What the server's registry holds: built-ins, then every binary of the plugins dir
/// (launched, `ListPlugins`, killed, as at Velero's start-up).
pub(crate) async fn registered(dir: Option<&Path>) -> Vec<Value> {
    let mut out: Vec<Value> = BUILT_IN
        .iter()
        .map(|(kind, name)| serde_json::json!({"kind": kind, "name": name}))
        .collect();
    let Some(dir) = dir else {
        return out;
    };
    for path in discover(dir).unwrap_or_default() {
        if let Ok(p) = PluginProcess::launch(&path, &LaunchOptions::default()).await {
            for id in p.list_plugins().await.unwrap_or_default() {
                out.push(serde_json::json!({"kind": id.kind, "name": id.name}));
            }
            p.kill().await;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_like_velero() {
        let a = Action {
            process: 0,
            name: "x/y".into(),
            resources: vec!["persistentvolumeclaims".into(), "deployments.apps".into()],
            namespaces: vec!["astronomer-*".into()],
            labels: parse_labels("tier=airflow,component=redis"),
        };
        let pvc = json!({"metadata": {"namespace": "astronomer-r", "labels": {"tier": "airflow", "component": "redis"}}});
        assert!(a.applies(&pvc, "persistentvolumeclaims", ""));
        assert!(!a.applies(&pvc, "secrets", ""));
        assert!(a.applies(&pvc, "deployments", "apps"));
        let other = json!({"metadata": {"namespace": "kube-system", "labels": {"tier": "airflow", "component": "redis"}}});
        assert!(!a.applies(&other, "persistentvolumeclaims", ""));
    }
}
