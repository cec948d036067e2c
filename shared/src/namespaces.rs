//! Finding the platform namespace and the Airflow deployment namespaces by their labels
//! (`platform-release=<release>` / `platform=<release>`), never by a name prefix.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::client::KubeError;
use crate::release::ReleaseName;

/// Label Houston puts on every deployment namespace (value: the platform release).
pub const PLATFORM_RELEASE_LABEL: &str = "platform-release";
/// Label Houston also puts on deployment namespaces; the platform labeller hook may
/// put it on the platform namespace too, so that one is excluded by name.
pub const PLATFORM_LABEL: &str = "platform";

/// Page size for namespace lists.
const PAGE: u32 = 500;

/// The namespaces of one platform, as found in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformNamespaces {
    /// The platform namespace (`--platform-namespace`), if it exists.
    pub platform: Option<String>,
    /// Every deployment namespace (labelled for this platform release), sorted.
    pub deployments: Vec<String>,
    /// Every namespace that exists, for existence checks.
    pub existing: BTreeSet<String>,
    /// Namespaces being deleted (`metadata.deletionTimestamp` set).
    pub terminating: BTreeSet<String>,
}

/// The namespace Houston creates for deployment `release`: `<platform namespace>-<release>`.
///
/// The prefix is the platform *namespace*, not the platform release name (Houston's
/// `getDeploymentNamespace`); pool or free-form namespaces need an explicit namespace.
pub fn default_deployment_namespace(platform_namespace: &str, release: &ReleaseName) -> String {
    format!("{platform_namespace}-{release}")
}

impl PlatformNamespaces {
    /// The deployment namespace of `release`
    /// ([`default_deployment_namespace`]) when that namespace carries the platform labels.
    pub fn deployment_of(&self, platform_namespace: &str, release: &ReleaseName) -> Option<&str> {
        let name = default_deployment_namespace(platform_namespace, release);
        self.deployments
            .iter()
            .find(|ns| **ns == name)
            .map(String::as_str)
    }
}

/// Whether a namespace is labelled as a deployment namespace of `platform_release`.
pub fn is_deployment_namespace(ns: &Namespace, platform_release: &str) -> bool {
    let Some(labels) = ns.metadata.labels.as_ref() else {
        return false;
    };
    [PLATFORM_RELEASE_LABEL, PLATFORM_LABEL]
        .iter()
        .any(|key| labels.get(*key).map(String::as_str) == Some(platform_release))
}

/// Sorts the namespaces into platform / deployments (pure; the I/O is [`collect_namespaces`]).
pub fn plan_platform_namespaces(
    all: &[Namespace],
    platform_namespace: &str,
    platform_release: &str,
) -> PlatformNamespaces {
    let mut existing = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    let mut deployments = Vec::new();
    let mut platform = None;
    for ns in all {
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        if ns.metadata.deletion_timestamp.is_some() {
            terminating.insert(name.clone());
        }
        if name == platform_namespace {
            platform = Some(name.clone());
        } else if is_deployment_namespace(ns, platform_release) {
            deployments.push(name.clone());
        }
        existing.insert(name);
    }
    deployments.sort();
    PlatformNamespaces {
        platform,
        deployments,
        existing,
        terminating,
    }
}

/// Lists every namespace, page by page.
pub async fn collect_namespaces(client: &Client) -> Result<Vec<Namespace>, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| KubeError::api("list namespaces", e))?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn fixture() -> Vec<Namespace> {
        vec![
            ns("astronomer", &[("platform", "astronomer")]),
            ns(
                "astronomer-weightless-meteor-5042",
                &[
                    ("platform-release", "astronomer"),
                    ("platform", "astronomer"),
                ],
            ),
            ns(
                "astronomer-traditional-precession-8767",
                &[("platform-release", "astronomer")],
            ),
            ns("astronomer-tools", &[]),
            ns("velero", &[]),
            ns("other-platform-x", &[("platform-release", "other")]),
        ]
    }

    #[test]
    fn label_match_never_name_prefix() {
        let found = plan_platform_namespaces(&fixture(), "astronomer", "astronomer");
        assert_eq!(found.platform.as_deref(), Some("astronomer"));
        assert_eq!(
            found.deployments,
            [
                "astronomer-traditional-precession-8767",
                "astronomer-weightless-meteor-5042"
            ]
        );
        assert!(found.existing.contains("astronomer-tools"));
        let r = ReleaseName::parse("weightless-meteor-5042").unwrap();
        assert_eq!(
            found.deployment_of("astronomer", &r),
            Some("astronomer-weightless-meteor-5042")
        );
        let tools = ReleaseName::parse("tools").unwrap();
        assert_eq!(found.deployment_of("astronomer", &tools), None);
    }

    #[test]
    fn default_namespace_prefix_is_the_platform_namespace() {
        let r = ReleaseName::parse("weightless-meteor-5042").unwrap();
        assert_eq!(
            default_deployment_namespace("astro-ns", &r),
            "astro-ns-weightless-meteor-5042"
        );
        // Platform release "prod" installed in namespace "astro-ns": Houston labels
        // with the release but names with the namespace.
        let all = vec![
            ns("astro-ns", &[("platform", "prod")]),
            ns(
                "astro-ns-weightless-meteor-5042",
                &[("platform-release", "prod")],
            ),
            ns(
                "prod-weightless-meteor-5042",
                &[("platform-release", "prod")],
            ),
        ];
        let found = plan_platform_namespaces(&all, "astro-ns", "prod");
        assert_eq!(
            found.deployment_of("astro-ns", &r),
            Some("astro-ns-weightless-meteor-5042")
        );
    }
}
