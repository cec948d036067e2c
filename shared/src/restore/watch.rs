//! Watches around a restore: a Terminating namespace going away (`--wait-for-namespace`)
//! and the restored Deployments becoming Available (`--verify`).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, wait::await_condition, wait::conditions};

use crate::client::KubeError;
use crate::restore::RestoreError;

/// Why a watch stopped early.
#[derive(Debug)]
pub enum WatchStop {
    /// Ctrl-C.
    Interrupted,
    /// The timeout passed.
    TimedOut,
}

async fn ctrl_c() {
    let _handled = crate::interrupt::handled_here();
    crate::interrupt::ctrl_c().await;
}

/// Waits until the namespace no longer exists.
pub async fn wait_namespace_gone(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
) -> Result<Result<(), WatchStop>, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let uid = match api
        .get_opt(name)
        .await
        .map_err(|e| KubeError::api(format!("get namespace {name}"), e))?
    {
        None => return Ok(Ok(())),
        Some(ns) => ns.metadata.uid.unwrap_or_default(),
    };
    tokio::select! {
        r = await_condition(api, name, conditions::is_deleted(&uid)) => {
            r.map_err(|e| KubeError::api(format!("watch namespace {name}"), kube::Error::Service(Box::new(e))))?;
            Ok(Ok(()))
        }
        () = tokio::time::sleep(timeout) => Ok(Err(WatchStop::TimedOut)),
        () = ctrl_c() => Ok(Err(WatchStop::Interrupted)),
    }
}

fn available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        })
}

/// Waits until every Deployment in `namespace` is Available; returns how many there are.
pub async fn wait_deployments_available(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<usize, RestoreError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    let mut init: BTreeMap<String, bool> = BTreeMap::new();
    let mut listed = false;
    let pending = |state: &BTreeMap<String, bool>| {
        state
            .iter()
            .filter(|(_, ok)| !**ok)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let deadline = tokio::time::sleep(timeout);
    futures::pin_mut!(deadline);
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { break };
                match ev {
                    Ok(Event::Init) => init.clear(),
                    Ok(Event::InitApply(d)) => { init.insert(d.metadata.name.clone().unwrap_or_default(), available(&d)); }
                    Ok(Event::InitDone) => { state = std::mem::take(&mut init); listed = true; }
                    Ok(Event::Apply(d)) => { state.insert(d.metadata.name.clone().unwrap_or_default(), available(&d)); }
                    Ok(Event::Delete(d)) => { state.remove(d.metadata.name.as_deref().unwrap_or_default()); }
                    // Retried with backoff by the stream.
                    Err(_) => continue,
                }
                if listed && state.values().all(|ok| *ok) {
                    return Ok(state.len());
                }
            }
            () = &mut deadline => {
                return Err(RestoreError::NotAvailable {
                    namespace: namespace.to_owned(),
                    seconds: timeout.as_secs(),
                    pending: if listed { pending(&state) } else { "the Deployments could not be listed".into() },
                });
            }
            () = ctrl_c() => {
                return Err(RestoreError::NotAvailable {
                    namespace: namespace.to_owned(),
                    seconds: 0,
                    pending: format!("interrupted while waiting for {}", pending(&state)),
                });
            }
        }
    }
    Err(RestoreError::NotAvailable {
        namespace: namespace.to_owned(),
        seconds: timeout.as_secs(),
        pending: "the watch ended".into(),
    })
}
