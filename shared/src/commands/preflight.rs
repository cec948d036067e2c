//! The permissions each command needs ([`crate::access::Needs`]), from the typed objects
//! it reads and writes with the flags given, and the check every `run` makes right after
//! connecting, before its first request that changes anything. `deploy/rbac.yaml` holds
//! one ClusterRole per binary granting exactly these (proven by `tests/e2e/tests/it/rbac.rs`).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::Client;

use crate::access::{Needs, Permission, preflight};
use crate::commands::cli::GlobalArgs;
use crate::velero::{
    Backup, BackupStorageLocation, DownloadRequest, Restore, Schedule, ServerStatusRequest,
};

const READ: &[&str] = &["get", "list"];

/// Starts the needs of `kubectl astro <command> <sub>`; the ClusterRole meant for it is
/// `kubectl-astro-<command>` in `deploy/rbac.yaml`.
pub fn needs(command: &str, sub: &str) -> Needs {
    let typed = if sub.is_empty() {
        format!("kubectl astro {command}")
    } else {
        format!("kubectl astro {command} {sub}")
    };
    Needs::new(typed, format!("kubectl-astro-{command}"))
}

/// What a client pod of `clientpod` is for, which decides what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodUse {
    /// It runs one command (psql -c) and its log is the result (`dbconn -c`).
    Command,
    /// A session is attached to it (`dbconn --shell`, `backup db`).
    Attach,
    /// The relay of `pgtunnel`: exec sessions, and no Secret (the password stays here).
    Relay,
}

/// A client pod in `namespace`: created, watched until it runs (a watch starts with a
/// list), deleted; with its short-lived credentials Secret unless it is the relay; and the
/// stream it is used through. Websocket streams (attach, exec) need `get` and, since
/// Kubernetes 1.35, `create` on the subresource.
pub fn client_pod(needs: &mut Needs, namespace: &str, used: PodUse) {
    let ns = Some(namespace);
    needs.verbs::<Pod>(&["create", "get", "list", "watch", "delete"], ns);
    if used != PodUse::Relay {
        needs.verbs::<Secret>(&["create", "delete"], ns);
    }
    let stream = match used {
        PodUse::Command => {
            needs.add([Permission::on_sub::<Pod>("get", "log", ns)]);
            return;
        }
        PodUse::Attach => "attach",
        PodUse::Relay => "exec",
    };
    needs.add([
        Permission::on_sub::<Pod>("get", stream, ns),
        Permission::on_sub::<Pod>("create", stream, ns),
    ]);
}

/// Reading the platform's database secrets: the named ones and Helm's release records
/// (`owner=helm`, to detect the platform release), and the namespace for clear errors.
pub fn platform_secrets(needs: &mut Needs, global: &GlobalArgs) {
    let ns = Some(global.platform_namespace.as_str());
    needs
        .verbs::<Secret>(READ, ns)
        .verbs::<Namespace>(&["get"], ns);
}

/// Fetching a Velero file through a DownloadRequest (created, watched until answered,
/// which starts with a list, and deleted).
pub fn download(needs: &mut Needs, global: &GlobalArgs) {
    needs.verbs::<DownloadRequest>(
        &["create", "get", "list", "watch", "delete"],
        Some(&global.velero_namespace),
    );
}

/// Checks `needs` with the API server; every missing permission in one error.
pub async fn check(client: &Client, needs: &Needs) -> Result<(), crate::commands::error::Error> {
    preflight(client, needs).await.map_err(Into::into)
}

/// `kubectl astro dbconn`.
pub fn dbconn(global: &GlobalArgs, pod: Option<(&str, PodUse)>) -> Needs {
    let mut n = needs("dbconn", "");
    platform_secrets(&mut n, global);
    if let Some((ns, used)) = pod {
        client_pod(&mut n, ns, used);
    }
    n
}

/// `kubectl astro backup create` and `schedule create`: namespaces to scope, the storage
/// location to check, the Redis volume-policy ConfigMap, the object itself.
pub fn backup_create(global: &GlobalArgs, schedule: bool, wait: bool) -> Needs {
    let v = Some(global.velero_namespace.as_str());
    let mut n = needs(
        "backup",
        if schedule {
            "schedule create"
        } else {
            "create"
        },
    );
    n.verbs::<Namespace>(READ, None)
        .verbs::<BackupStorageLocation>(READ, v)
        .verbs::<ConfigMap>(&["get", "create", "update"], v);
    if schedule {
        n.verbs::<Schedule>(&["get", "create"], v);
    } else {
        n.verbs::<Backup>(&["get", "create"], v);
    }
    if wait {
        n.verbs::<Backup>(&["list", "watch"], v);
    }
    n
}

/// `kubectl astro backup schedule pause|unpause`.
pub fn schedule_pause(global: &GlobalArgs) -> Needs {
    let mut n = needs("backup", "schedule pause");
    n.verbs::<Schedule>(&["get", "patch"], Some(&global.velero_namespace));
    n
}

/// `kubectl astro backup list`, `schedule list`.
pub fn backup_list(global: &GlobalArgs, schedules: bool) -> Needs {
    let mut n = needs("backup", "list");
    let v = Some(global.velero_namespace.as_str());
    if schedules {
        n.verbs::<Schedule>(&["list"], v);
    } else {
        n.verbs::<Backup>(&["list"], v);
    }
    n
}

/// `kubectl astro backup describe`: the Backup and its results file.
pub fn backup_describe(global: &GlobalArgs) -> Needs {
    let mut n = needs("backup", "describe");
    n.verbs::<Backup>(&["get"], Some(&global.velero_namespace));
    download(&mut n, global);
    n
}

/// `kubectl astro backup db`: pg_dump through an attached client pod.
pub fn backup_db(global: &GlobalArgs, pod_namespace: Option<&str>) -> Needs {
    let mut n = needs("backup", "db");
    platform_secrets(&mut n, global);
    if let Some(ns) = pod_namespace {
        client_pod(&mut n, ns, PodUse::Attach);
        // pg_dump's messages are read from the pod's log once it ends.
        n.add([Permission::on_sub::<Pod>("get", "log", Some(ns))]);
    }
    n
}

/// The Houston undelete through the relay pod (or from here with `--local`).
fn houston(n: &mut Needs, global: &GlobalArgs, local: bool) {
    platform_secrets(n, global);
    if !local {
        client_pod(n, &global.platform_namespace, PodUse::Relay);
    }
}

/// `kubectl astro restore RELEASE`: backups and their resource lists, the namespace
/// (watched until it is back), the Restore, the Deployments it brings back, then the
/// Houston undelete.
pub fn restore_release(
    global: &GlobalArgs,
    deployment_namespace: &str,
    local: bool,
    undelete: bool,
) -> Needs {
    let v = Some(global.velero_namespace.as_str());
    let mut n = needs("restore", "");
    n.verbs::<Namespace>(&["get", "list", "watch"], None)
        .verbs::<Backup>(READ, v)
        .verbs::<BackupStorageLocation>(READ, v)
        .verbs::<Restore>(&["create", "get", "list", "watch"], v)
        .verbs::<Deployment>(&["list", "watch"], Some(deployment_namespace));
    download(&mut n, global);
    if undelete {
        houston(&mut n, global, local);
    }
    n
}

/// `kubectl astro restore undelete`.
pub fn restore_undelete(global: &GlobalArgs, local: bool) -> Needs {
    let mut n = needs("restore", "undelete");
    houston(&mut n, global, local);
    n
}

/// `kubectl astro restore endpoint`: every secret and workload naming the database
/// endpoint, patched in place, and the readers restarted.
pub fn restore_endpoint(global: &GlobalArgs) -> Needs {
    let mut n = needs("restore", "endpoint");
    endpoint(&mut n, global);
    n
}

fn endpoint(n: &mut Needs, global: &GlobalArgs) {
    let p = Some(global.platform_namespace.as_str());
    n.verbs::<Secret>(&["get", "list", "patch"], None)
        .verbs::<Deployment>(&["get", "list", "patch"], None)
        .verbs::<StatefulSet>(&["get", "list", "patch"], p);
}

/// Asking the Velero server what it runs: a ServerStatusRequest created, watched until
/// answered (a watch starts with a list), and deleted.
fn server_status(needs: &mut Needs, global: &GlobalArgs) {
    needs.verbs::<ServerStatusRequest>(
        &["create", "get", "list", "watch", "delete"],
        Some(&global.velero_namespace),
    );
}

/// `kubectl astro restore platform`: the storage location set ReadOnly, the full
/// Restore watched to its end, then (with a target) the endpoint move. With a target it
/// first asks Velero whether velero-plugin-astro is loaded and, if so, reads the old
/// endpoint from the backup's contents and writes the plugin's ConfigMap (other ones are
/// listed to refuse a clash), removed after the restore. Whether the plugin is loaded is
/// only known from that answer, so its ConfigMap permissions are asked for up front.
pub fn restore_platform(global: &GlobalArgs, moves_endpoint: bool) -> Needs {
    let v = Some(global.velero_namespace.as_str());
    let mut n = needs("restore", "platform");
    n.verbs::<Backup>(&["get"], v)
        .verbs::<BackupStorageLocation>(&["get", "patch"], v)
        .verbs::<Restore>(&["create", "get", "list", "watch"], v);
    if moves_endpoint {
        server_status(&mut n, global);
        download(&mut n, global);
        n.verbs::<ConfigMap>(&["get", "list", "create", "update", "delete"], v);
        endpoint(&mut n, global);
    }
    n
}

/// `kubectl astro status`: read-only but for the ServerStatusRequest, DownloadRequests
/// and (unless `--local`) the relay pod it creates and deletes again.
pub fn status(global: &GlobalArgs, local: bool) -> Needs {
    let v = Some(global.velero_namespace.as_str());
    let mut n = needs("status", "");
    n.verbs::<Namespace>(READ, None)
        .verbs::<Backup>(READ, v)
        .verbs::<Schedule>(READ, v)
        .verbs::<BackupStorageLocation>(READ, v)
        .verbs::<ConfigMap>(&["get"], v);
    server_status(&mut n, global);
    download(&mut n, global);
    platform_secrets(&mut n, global);
    if !local {
        client_pod(&mut n, &global.platform_namespace, PodUse::Relay);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global() -> GlobalArgs {
        GlobalArgs {
            platform_namespace: "astronomer".into(),
            velero_namespace: "velero".into(),
            ..GlobalArgs::default()
        }
    }

    fn shown(n: &Needs) -> Vec<String> {
        n.permissions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn printing_a_connection_needs_only_to_read_the_platform_secrets() {
        let n = dbconn(&global(), None);
        assert_eq!(n.command, "kubectl astro dbconn");
        assert_eq!(n.role, "kubectl-astro-dbconn");
        assert_eq!(
            shown(&n),
            [
                "get on namespaces in namespace astronomer",
                "get on secrets in namespace astronomer",
                "list on secrets in namespace astronomer",
            ]
        );
    }

    #[test]
    fn client_pods_need_what_their_use_needs() {
        let g = global();
        let command = shown(&dbconn(&g, Some(("astronomer", PodUse::Command))));
        assert!(command.contains(&"get on pods/log in namespace astronomer".to_string()));
        assert!(command.contains(&"create on secrets in namespace astronomer".to_string()));
        assert!(
            !command
                .iter()
                .any(|p| p.contains("pods/attach") || p.contains("pods/exec"))
        );
        let shell = shown(&dbconn(&g, Some(("astronomer", PodUse::Attach))));
        assert!(shell.contains(&"get on pods/attach in namespace astronomer".to_string()));
        assert!(shell.contains(&"create on pods/attach in namespace astronomer".to_string()));
        // The relay carries no Secret: the password never enters the cluster.
        let relay = shown(&restore_undelete(&g, false));
        assert!(relay.contains(&"create on pods/exec in namespace astronomer".to_string()));
        assert!(
            !relay
                .iter()
                .any(|p| p.contains("on secrets") && p.starts_with("create"))
        );
        // --local starts no pod.
        assert!(
            !shown(&restore_undelete(&g, true))
                .iter()
                .any(|p| p.contains("pods"))
        );
        assert!(!shown(&status(&g, true)).iter().any(|p| p.contains("pods")));
    }

    #[test]
    fn the_endpoint_move_is_asked_for_only_when_platform_moves_it() {
        let g = global();
        let plain = shown(&restore_platform(&g, false));
        assert!(plain.contains(
            &"patch on backupstoragelocations.velero.io in namespace velero".to_string()
        ));
        assert!(
            !plain
                .iter()
                .any(|p| p.contains("secrets") || p.contains("configmaps"))
        );
        let moving = shown(&restore_platform(&g, true));
        assert!(moving.contains(&"patch on secrets cluster-wide".to_string()));
        assert!(moving.contains(&"create on configmaps in namespace velero".to_string()));
        assert!(
            moving.contains(
                &"create on serverstatusrequests.velero.io in namespace velero".to_string()
            )
        );
    }
}
