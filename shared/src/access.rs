//! What a command needs the API server to allow, checked before it changes anything.
//!
//! Each command builds its [`Needs`] from the typed objects it reads and writes (group
//! and resource come from the Rust types, never from strings typed a second time), and
//! [`preflight`] asks the API server about all of them at once with
//! SelfSubjectAccessReviews, sent concurrently (one round trip of latency). Every
//! missing permission is reported together, before the first change, so an on-call user
//! with too little RBAC gets one clear list instead of a half-done run.

use std::fmt;

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client, Resource};

/// One permission: a verb on a resource (or subresource) in a namespace or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    /// The RBAC verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub verb: &'static str,
    /// The API group ("" for the core group).
    pub group: String,
    /// The resource's plural name (`restores`).
    pub resource: String,
    /// A subresource (`exec`, `attach`, `log`), if any.
    pub subresource: Option<String>,
    /// The namespace; `None` for cluster-scoped resources or every namespace.
    pub namespace: Option<String>,
}

impl Permission {
    /// `verb` on objects of type `K` in `namespace` (`None`: cluster-wide).
    pub fn on<K: Resource<DynamicType = ()>>(verb: &'static str, namespace: Option<&str>) -> Self {
        Permission {
            verb,
            group: K::group(&()).into_owned(),
            resource: K::plural(&()).into_owned(),
            subresource: None,
            namespace: namespace.map(str::to_owned),
        }
    }

    /// `verb` on the `subresource` of objects of type `K` (e.g. `pods/exec`).
    pub fn on_sub<K: Resource<DynamicType = ()>>(
        verb: &'static str,
        subresource: &str,
        namespace: Option<&str>,
    ) -> Self {
        Permission {
            subresource: Some(subresource.to_owned()),
            ..Self::on::<K>(verb, namespace)
        }
    }

    /// `restores.velero.io`, `pods/exec`: the resource as RBAC rules and kubectl name it.
    pub fn resource_name(&self) -> String {
        let mut r = self.resource.clone();
        if let Some(s) = &self.subresource {
            r = format!("{r}/{s}");
        }
        if self.group.is_empty() {
            r
        } else {
            format!("{r}.{}", self.group)
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.verb, self.resource_name())?;
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// What one command needs: who asks (for the message) and the permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The command as the user typed it (`kubectl astro restore`).
    pub command: String,
    /// The ClusterRole of `deploy/rbac.yaml` meant for it.
    pub role: String,
    /// The permissions, deduplicated and sorted by [`Needs::add`].
    pub permissions: Vec<Permission>,
}

impl Needs {
    /// No permissions yet.
    pub fn new(command: impl Into<String>, role: impl Into<String>) -> Self {
        Needs {
            command: command.into(),
            role: role.into(),
            permissions: Vec::new(),
        }
    }

    /// Adds permissions (duplicates are dropped).
    pub fn add(&mut self, permissions: impl IntoIterator<Item = Permission>) -> &mut Self {
        for p in permissions {
            if !self.permissions.contains(&p) {
                self.permissions.push(p);
            }
        }
        self.permissions.sort();
        self
    }

    /// Adds each of `verbs` on objects of type `K` in `namespace`.
    pub fn verbs<K: Resource<DynamicType = ()>>(
        &mut self,
        verbs: &[&'static str],
        namespace: Option<&str>,
    ) -> &mut Self {
        self.add(verbs.iter().map(|v| Permission::on::<K>(v, namespace)))
    }
}

/// Errors of the permission pre-flight.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The API server denies some of what the command needs; nothing was changed.
    #[error(
        "forbidden: {command} needs {} (ClusterRole {role} in deploy/rbac.yaml grants {}); nothing was changed",
        list(missing),
        if missing.len() == 1 { "it" } else { "them" }
    )]
    Missing {
        /// The command as typed.
        command: String,
        /// The ClusterRole of `deploy/rbac.yaml` that grants them.
        role: String,
        /// Each permission that was denied.
        missing: Vec<Permission>,
    },
}

fn list(missing: &[Permission]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asks the API server whether the current user may do everything in `needs`: one
/// SelfSubjectAccessReview per permission, all at once. A review the server does not
/// answer (an old server, a network error) counts as allowed: the request itself then
/// meets the real authorizer, and a 403 there reads the same way (`client::KubeError`).
pub async fn preflight(client: &Client, needs: &Needs) -> Result<(), AccessError> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let reviews = needs.permissions.iter().map(|p| {
        let api = api.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(p.verb.to_owned()),
                        group: Some(p.group.clone()),
                        resource: Some(p.resource.clone()),
                        subresource: p.subresource.clone(),
                        namespace: p.namespace.clone(),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let allowed = match api.create(&PostParams::default(), &review).await {
                Ok(answer) => answer.status.is_none_or(|s| s.allowed),
                Err(_) => true,
            };
            (p, allowed)
        }
    });
    let missing: Vec<Permission> = join_all(reviews)
        .await
        .into_iter()
        .filter(|(_, allowed)| !allowed)
        .map(|(p, _)| p.clone())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(AccessError::Missing {
        command: needs.command.clone(),
        role: needs.role.clone(),
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    use crate::velero::restore::Restore;

    #[test]
    fn permissions_name_resources_as_rbac_does() {
        let p = Permission::on::<Restore>("create", Some("velero"));
        assert_eq!(
            p.to_string(),
            "create on restores.velero.io in namespace velero"
        );
        let p = Permission::on_sub::<Pod>("create", "exec", Some("astronomer"));
        assert_eq!(p.to_string(), "create on pods/exec in namespace astronomer");
        assert_eq!(
            Permission::on::<k8s_openapi::api::core::v1::Namespace>("list", None).to_string(),
            "list on namespaces cluster-wide"
        );
    }

    #[test]
    fn needs_are_deduplicated_and_the_message_lists_every_missing_one() {
        let mut n = Needs::new("kubectl astro restore", "kubectl-astro-restore");
        n.verbs::<Restore>(&["create", "get"], Some("velero"))
            .verbs::<Restore>(&["get"], Some("velero"));
        assert_eq!(n.permissions.len(), 2);
        let e = AccessError::Missing {
            command: n.command.clone(),
            role: n.role.clone(),
            missing: n.permissions.clone(),
        };
        assert_eq!(
            e.to_string(),
            "forbidden: kubectl astro restore needs create on restores.velero.io in namespace velero, \
             get on restores.velero.io in namespace velero (ClusterRole kubectl-astro-restore in \
             deploy/rbac.yaml grants them); nothing was changed"
        );
    }
}
