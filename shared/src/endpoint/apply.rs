//! The I/O half of an endpoint move: collecting objects from the API server, and applying
//! planned patches with resourceVersion preconditions, conflict re-plans and bounded fan-out.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::plan::{
    Change, Collected, Group, Kind, PlanContext, Role, plan_restart, plan_secret,
    plan_sqlproxy_deployment,
};
use crate::client::KubeError;

/// How often one object is patched before giving up on conflicts or transient errors.
pub const MAX_ATTEMPTS: u32 = crate::client::CONFLICT_ATTEMPTS;
const PAGE: u32 = 500;

async fn list_all<K>(api: Api<K>, what: &str) -> Result<Vec<K>, KubeError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api
            .list(&params)
            .await
            .map_err(|e| KubeError::api(format!("list {what}"), e))?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(out),
        }
    }
}

/// Reads every Secret and Deployment of the cluster and the platform StatefulSets.
/// Secrets are listed cluster-wide because deployment namespaces from pools carry no labels.
pub async fn collect(client: &Client, platform_namespace: &str) -> Result<Collected, KubeError> {
    let sts_what = format!("statefulsets in {platform_namespace}");
    let (secrets, deployments, statefulsets) = futures::try_join!(
        list_all(
            Api::<Secret>::all(client.clone()),
            "secrets in all namespaces"
        ),
        list_all(
            Api::<Deployment>::all(client.clone()),
            "deployments in all namespaces"
        ),
        list_all(
            Api::<StatefulSet>::namespaced(client.clone(), platform_namespace),
            &sts_what
        ),
    )?;
    Ok(Collected {
        secrets,
        deployments,
        statefulsets,
    })
}

/// What happened to one planned change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Patched (after this many attempts).
    Patched {
        /// Attempts, 1 without conflicts.
        attempts: u32,
    },
    /// On re-reading after a conflict the object needed no change any more.
    AlreadyDone,
    /// The object disappeared.
    Gone,
    /// Patching failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// A change and its outcome.
#[derive(Debug, Clone)]
pub struct Applied {
    /// What was planned (the last re-plan after conflicts).
    pub change: Change,
    /// What happened.
    pub outcome: Outcome,
}

async fn patch(client: &Client, change: &Change) -> Result<(), kube::Error> {
    let params = PatchParams::default();
    let body = Patch::Merge(&change.patch);
    let (ns, name) = (&change.object.namespace, &change.object.name);
    match change.object.kind {
        Kind::Secret => Api::<Secret>::namespaced(client.clone(), ns)
            .patch(name, &params, &body)
            .await
            .map(drop),
        Kind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .patch(name, &params, &body)
            .await
            .map(drop),
        Kind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .patch(name, &params, &body)
            .await
            .map(drop),
    }
}

/// Re-reads the object of `change` and plans it again (after a 409).
/// `Ok(None)`: nothing to do any more (or the object is gone).
async fn replan(
    client: &Client,
    change: &Change,
    ctx: &PlanContext,
) -> Result<Option<Change>, kube::Error> {
    let (ns, name) = (&change.object.namespace, &change.object.name);
    Ok(match (change.object.kind, change.role) {
        (Kind::Secret, role) => {
            let Some(secret) = Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
            else {
                return Ok(None);
            };
            plan_secret(&secret, role, ctx).change
        }
        (Kind::Deployment, Role::SqlProxy) => {
            let Some(d) = Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
            else {
                return Ok(None);
            };
            plan_sqlproxy_deployment(&d, ctx).ok().flatten()
        }
        (Kind::Deployment, _) => {
            let Some(d) = Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
            else {
                return Ok(None);
            };
            plan_restart(
                Kind::Deployment,
                &d.metadata,
                &d.spec.map(|s| s.template).unwrap_or_default(),
                ctx,
                // It was planned, so it is needed: a conflict does not change that.
                true,
            )
        }
        (Kind::StatefulSet, _) => {
            let Some(s) = Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await?
            else {
                return Ok(None);
            };
            plan_restart(
                Kind::StatefulSet,
                &s.metadata,
                &s.spec.map(|s| s.template).unwrap_or_default(),
                ctx,
                true,
            )
        }
    })
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Applies one change: on 409 re-read, re-plan and retry; on 429/5xx back off and retry.
pub async fn apply_change(client: &Client, change: Change, ctx: &PlanContext) -> Applied {
    let mut current = change;
    for attempt in 1..=MAX_ATTEMPTS {
        let error = match patch(client, &current).await {
            Ok(()) => {
                return Applied {
                    change: current,
                    outcome: Outcome::Patched { attempts: attempt },
                };
            }
            Err(e) => e,
        };
        match status_code(&error) {
            Some(404) => {
                return Applied {
                    change: current,
                    outcome: Outcome::Gone,
                };
            }
            Some(409) => match replan(client, &current, ctx).await {
                Ok(Some(next)) => current = next,
                Ok(None) => {
                    return Applied {
                        change: current,
                        outcome: Outcome::AlreadyDone,
                    };
                }
                Err(e) if attempt < MAX_ATTEMPTS && retryable(&e) => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    return Applied {
                        change: current,
                        outcome: Outcome::Failed {
                            error: format!("re-reading after a conflict: {e}"),
                        },
                    };
                }
            },
            _ if retryable(&error) && attempt < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt)).await;
            }
            _ => {
                return Applied {
                    change: current,
                    outcome: Outcome::Failed {
                        error: error.to_string(),
                    },
                };
            }
        }
    }
    Applied {
        change: current,
        outcome: Outcome::Failed {
            error: format!(
                "still conflicting after {MAX_ATTEMPTS} attempts; someone else keeps changing it"
            ),
        },
    }
}

fn retryable(e: &kube::Error) -> bool {
    match status_code(e) {
        Some(code) => code == 429 || code >= 500,
        None => matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_)),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * u64::from(attempt))
}

/// Applies the groups, up to `concurrency` namespaces at a time; within a namespace the
/// changes run in order, and a failed secret patch stops that namespace's restarts.
pub async fn apply_groups(
    client: &Client,
    groups: Vec<Group>,
    ctx: &PlanContext,
    concurrency: usize,
    on_done: &(dyn Fn(&Applied) + Sync),
) -> Vec<Applied> {
    let results: Vec<Vec<Applied>> = futures::stream::iter(groups)
        .map(|group| async move {
            let mut out = Vec::with_capacity(group.changes.len());
            let mut failed = false;
            for change in group.changes {
                if failed && change.role == Role::Restart {
                    let applied = Applied {
                        change,
                        outcome: Outcome::Failed {
                            error: "not restarted: a patch in this namespace failed".into(),
                        },
                    };
                    on_done(&applied);
                    out.push(applied);
                    continue;
                }
                let applied = apply_change(client, change, ctx).await;
                failed |= matches!(applied.outcome, Outcome::Failed { .. });
                on_done(&applied);
                out.push(applied);
            }
            out
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().flatten().collect()
}
