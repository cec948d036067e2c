//! Which namespace a deployment lives in: `--namespace`, Houston's `namespace` column, or
//! `<platform-namespace>-<release>`, and what the cluster says about that namespace now.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::client::KubeError;
use crate::release::ReleaseName;

/// Which rule gave the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NamespaceRule {
    /// `--namespace` on the command line (namespace pools, single-namespace mode).
    Explicit,
    /// The `namespace` column of the Houston Deployment row.
    Houston,
    /// `<platform-namespace>-<release>`, Houston's default naming.
    PlatformPrefix,
}

impl NamespaceRule {
    /// A phrase for "namespace X (from …)".
    pub fn describe(self) -> &'static str {
        match self {
            NamespaceRule::Explicit => "given with --namespace",
            NamespaceRule::Houston => "from the Houston Deployment row's namespace column",
            NamespaceRule::PlatformPrefix => "platform namespace + '-' + release name",
        }
    }
}

/// The namespace to restore and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedNamespace {
    /// The namespace name.
    pub name: String,
    /// The rule used.
    pub rule: NamespaceRule,
}

/// Picks the namespace: explicit beats Houston's column beats the platform prefix.
pub fn resolve_namespace(
    release: &ReleaseName,
    platform_namespace: &str,
    explicit: Option<&str>,
    houston: Option<&str>,
) -> ResolvedNamespace {
    if let Some(ns) = explicit {
        return ResolvedNamespace {
            name: ns.to_owned(),
            rule: NamespaceRule::Explicit,
        };
    }
    if let Some(ns) = houston.filter(|ns| !ns.is_empty()) {
        return ResolvedNamespace {
            name: ns.to_owned(),
            rule: NamespaceRule::Houston,
        };
    }
    ResolvedNamespace {
        name: crate::namespaces::default_deployment_namespace(platform_namespace, release),
        rule: NamespaceRule::PlatformPrefix,
    }
}

/// The namespace as the cluster has it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum NamespaceState {
    /// Not in the cluster (the usual case after a delete).
    Absent,
    /// Exists and is not being deleted.
    Active {
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
    /// Has a `deletionTimestamp` (phase Terminating).
    Terminating,
}

/// Reads the namespace's state.
pub async fn collect_namespace_state(
    client: &kube::Client,
    name: &str,
) -> Result<NamespaceState, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = api
        .get_opt(name)
        .await
        .map_err(|e| KubeError::api(format!("get namespace {name}"), e))?;
    Ok(state_of(ns.as_ref()))
}

/// The state of a fetched namespace (`None` = not found).
pub fn state_of(ns: Option<&Namespace>) -> NamespaceState {
    let Some(ns) = ns else {
        return NamespaceState::Absent;
    };
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Terminating");
    if terminating {
        NamespaceState::Terminating
    } else {
        NamespaceState::Active {
            labels: ns.metadata.labels.clone().unwrap_or_default(),
        }
    }
}

/// A warning when an existing namespace found by a naming rule does not carry the labels
/// Houston puts on deployment namespaces (`platform-release`, `platform`): it may be a
/// different namespace that happens to share the name (e.g. `astronomer-tools`).
pub fn label_warning(
    resolved: &ResolvedNamespace,
    state: &NamespaceState,
    platform_release: &str,
) -> Option<String> {
    let NamespaceState::Active { labels } = state else {
        return None;
    };
    if resolved.rule == NamespaceRule::Explicit {
        return None;
    }
    let ok = ["platform-release", "platform"]
        .iter()
        .any(|k| labels.get(*k).is_some_and(|v| v == platform_release));
    (!ok).then(|| {
        format!(
            "namespace {} exists but has neither label platform-release={platform_release} nor platform={platform_release}; it may not be this deployment's namespace (use --namespace to be explicit)",
            resolved.name
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> ReleaseName {
        ReleaseName::parse(s).unwrap()
    }

    #[test]
    fn explicit_beats_houston_beats_prefix() {
        let r = rel("dt-prod");
        let a = resolve_namespace(&r, "astronomer", Some("data-team-prod"), Some("x"));
        assert_eq!(
            (a.name.as_str(), a.rule),
            ("data-team-prod", NamespaceRule::Explicit)
        );
        let b = resolve_namespace(&r, "astronomer", None, Some("data-team-prod"));
        assert_eq!(b.rule, NamespaceRule::Houston);
        let c = resolve_namespace(&r, "astro", None, Some(""));
        assert_eq!(
            (c.name.as_str(), c.rule),
            ("astro-dt-prod", NamespaceRule::PlatformPrefix)
        );
    }

    #[test]
    fn terminating_and_labels() {
        let mut ns = Namespace::default();
        assert_eq!(state_of(None), NamespaceState::Absent);
        ns.metadata.labels = Some(BTreeMap::from([(
            "platform-release".to_string(),
            "astronomer".to_string(),
        )]));
        let state = state_of(Some(&ns));
        let resolved = ResolvedNamespace {
            name: "astronomer-weightless-meteor-5042".into(),
            rule: NamespaceRule::PlatformPrefix,
        };
        assert_eq!(label_warning(&resolved, &state, "astronomer"), None);
        assert!(label_warning(&resolved, &state, "astro2").is_some());
        ns.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert_eq!(state_of(Some(&ns)), NamespaceState::Terminating);
    }
}

/// What a restored namespace holds, as far as the restore check looks: its state and its
/// workloads (every Airflow deployment namespace has Deployments or StatefulSets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredContents {
    /// The namespace's state now.
    pub state: NamespaceState,
    /// Deployments in it.
    pub deployments: usize,
    /// StatefulSets in it.
    pub statefulsets: usize,
}

impl RestoredContents {
    /// E.g. "Active, 4 Deployments, 2 StatefulSets".
    pub fn describe(&self) -> String {
        let state = match self.state {
            NamespaceState::Absent => "absent",
            NamespaceState::Terminating => "Terminating",
            NamespaceState::Active { .. } => "Active",
        };
        format!(
            "{state}, {} Deployments, {} StatefulSets",
            self.deployments, self.statefulsets
        )
    }
}

/// Reads the namespace and counts its workloads.
pub async fn collect_restored(
    client: &kube::Client,
    name: &str,
) -> Result<RestoredContents, KubeError> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    let state = collect_namespace_state(client, name).await?;
    if state == NamespaceState::Absent {
        return Ok(RestoredContents {
            state,
            deployments: 0,
            statefulsets: 0,
        });
    }
    let params = kube::api::ListParams::default();
    let deployments = Api::<Deployment>::namespaced(client.clone(), name)
        .list(&params)
        .await
        .map_err(|e| KubeError::api(format!("list deployments in namespace {name}"), e))?;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), name)
        .list(&params)
        .await
        .map_err(|e| KubeError::api(format!("list statefulsets in namespace {name}"), e))?;
    Ok(RestoredContents {
        state,
        deployments: deployments.items.len(),
        statefulsets: statefulsets.items.len(),
    })
}

/// Whether a `Completed` restore really brought the namespace back: it exists, is not
/// being deleted, and holds workloads when Velero says it restored more than the
/// namespace itself. `Err` says what is missing.
pub fn check_restored(
    namespace: &str,
    items_restored: i64,
    found: &RestoredContents,
) -> Result<(), String> {
    match found.state {
        NamespaceState::Absent => {
            return Err(format!(
                "namespace {namespace} does not exist ({items_restored} items restored)"
            ));
        }
        NamespaceState::Terminating => {
            return Err(format!("namespace {namespace} is Terminating"));
        }
        NamespaceState::Active { .. } => {}
    }
    if items_restored <= 1 {
        return Err(format!(
            "it restored {items_restored} items: namespace {namespace} holds nothing from the backup"
        ));
    }
    if found.deployments + found.statefulsets == 0 {
        return Err(format!(
            "namespace {namespace} holds no Deployments or StatefulSets although {items_restored} items were restored"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod restored_tests {
    use super::*;

    fn found(state: NamespaceState, deployments: usize) -> RestoredContents {
        RestoredContents {
            state,
            deployments,
            statefulsets: 0,
        }
    }

    #[test]
    fn completed_is_not_proof() {
        let active = NamespaceState::Active {
            labels: BTreeMap::new(),
        };
        assert!(check_restored("ns", 40, &found(active.clone(), 3)).is_ok());
        let absent = check_restored("ns", 0, &found(NamespaceState::Absent, 0)).unwrap_err();
        assert!(absent.contains("does not exist"), "{absent}");
        assert!(check_restored("ns", 1, &found(active.clone(), 0)).is_err());
        assert!(check_restored("ns", 40, &found(active, 0)).is_err());
        assert!(check_restored("ns", 40, &found(NamespaceState::Terminating, 3)).is_err());
    }
}
