//! A throwaway Postgres client pod (psql, pg_dump) with its credentials in a temporary
//! Secret read through `secretKeyRef`; both are deleted on success, error and Ctrl-C.
//!
//! The Secret carries an ownerReference to the Pod, so deleting the Pod (or a crash that
//! leaves only the Pod for someone to remove) never leaves a password behind. No secret
//! value ever appears in the Pod's command, args or literal env.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;

use crate::client::KubeError;

/// Label marking every object this tool creates for a client pod.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-astro");
/// Name of the container in the client pod.
pub const CONTAINER: &str = "psql";
/// Default client image (has psql and pg_dump).
pub const DEFAULT_IMAGE: &str = "postgres";
/// How long a client pod may live at most, whatever happens to us (kubelet kills it).
pub const MAX_POD_SECONDS: i64 = 4 * 60 * 60;
/// How long after its container ended a pod of ours counts as abandoned: the run that
/// started it read its logs long before.
pub const FINISHED_GRACE_SECONDS: i64 = 10 * 60;
/// The `component` label of every client and relay pod (and client Secret).
pub const COMPONENT: &str = "astro-dbclient";

/// Errors creating, running or cleaning up a client pod.
#[derive(Debug, thiserror::Error)]
pub enum ClientPodError {
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The pod did not start in time.
    #[error("client pod {namespace}/{name} did not start within {seconds}s{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    StartTimeout {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// Seconds waited.
        seconds: u64,
        /// Last waiting reason seen, if any.
        detail: Option<String>,
    },
    /// The image cannot be pulled.
    #[error("client pod {namespace}/{name} cannot pull image {image:?}: {reason}")]
    ImagePull {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// The image.
        image: String,
        /// Kubelet's reason.
        reason: String,
    },
    /// Ctrl-C (or SIGTERM/SIGHUP): the pod and Secret were removed.
    #[error("interrupted; client pod {namespace}/{name} and its Secret were deleted")]
    Interrupted {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
    /// The command in the pod ended with a non-zero exit code.
    #[error("{command} in client pod {namespace}/{name} failed (exit code {})", code.map_or_else(|| "unknown".to_owned(), |c| c.to_string()))]
    CommandFailed {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// The program (e.g. psql).
        command: String,
        /// Its exit code, if known.
        code: Option<i32>,
    },
    /// The pod was deleted (by someone else, or with its node) before it ended.
    #[error(
        "client pod {namespace}/{name} was deleted while its command ran: its output is lost and whether the command completed is unknown"
    )]
    Vanished {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
    /// Attaching to the pod failed.
    #[error("cannot attach to client pod {namespace}/{name}: {source}")]
    Attach {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// The error.
        source: Box<kube::Error>,
    },
    /// The local terminal could not be set up.
    #[error("cannot set up the terminal: {0}")]
    Terminal(#[source] std::io::Error),
}

/// What to run in a client pod. Build it, print it (`--dry-run`), or start it.
#[derive(Clone)]
pub struct ClientPodPlan {
    /// Namespace (the platform namespace, where the DB NetworkPolicy admits clients).
    pub namespace: String,
    /// Name of both the Pod and the Secret.
    pub name: String,
    /// Container image.
    pub image: String,
    /// Pod labels (include `release=<platform release>, tier=astronomer` for the NetworkPolicy).
    pub labels: BTreeMap<String, String>,
    /// Container command (no secrets here).
    pub command: Vec<String>,
    /// Variables stored in the Secret and read through `secretKeyRef` (PG* values).
    pub secret_env: Vec<(String, String)>,
    /// Plain, non-secret variables.
    pub plain_env: Vec<(String, String)>,
    /// Keep stdin open and allocate a TTY for an interactive session.
    pub interactive: bool,
    /// Allocate a TTY (only when the local side is a terminal).
    pub tty: bool,
}

impl std::fmt::Debug for ClientPodPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPodPlan")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("image", &self.image)
            .field("command", &self.command)
            .field(
                "secret_env",
                &self.secret_env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A name unique enough for a short-lived pod: `<prefix>-<5 base36 chars>`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = nanos ^ (u128::from(std::process::id()) << 64);
    let mut suffix = String::new();
    for _ in 0..5 {
        let d = (n % 36) as u32;
        suffix.push(std::char::from_digit(d, 36).unwrap_or('x'));
        n /= 36;
    }
    format!("{prefix}-{suffix}")
}

/// Labels the platform's Postgres NetworkPolicy admits, plus our marker.
pub fn network_policy_labels(platform_release: &str) -> BTreeMap<String, String> {
    [
        ("release", platform_release),
        ("tier", "astronomer"),
        ("component", COMPONENT),
        MANAGED_BY,
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl ClientPodPlan {
    /// The Pod: one container, env from the Secret by `secretKeyRef`, restricted security.
    pub fn pod(&self) -> Pod {
        let mut env: Vec<EnvVar> = self
            .plain_env
            .iter()
            .map(|(k, v)| EnvVar {
                name: k.clone(),
                value: Some(v.clone()),
                value_from: None,
            })
            .collect();
        env.extend(self.secret_env.iter().map(|(k, _)| EnvVar {
            name: k.clone(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: self.name.clone(),
                    key: k.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        }));
        let quantity = |s: &str| Quantity(s.to_owned());
        Pod {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels.clone()),
                annotations: Some(BTreeMap::from([(
                    "kubectl-astro/purpose".to_owned(),
                    "temporary database client; safe to delete".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                active_deadline_seconds: Some(MAX_POD_SECONDS),
                automount_service_account_token: Some(false),
                termination_grace_period_seconds: Some(1),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    // The postgres image's own user.
                    run_as_user: Some(999),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..PodSecurityContext::default()
                }),
                containers: vec![Container {
                    name: CONTAINER.into(),
                    image: Some(self.image.clone()),
                    command: Some(self.command.clone()),
                    env: Some(env),
                    stdin: Some(self.interactive),
                    stdin_once: Some(self.interactive),
                    tty: Some(self.tty),
                    security_context: Some(SecurityContext {
                        allow_privilege_escalation: Some(false),
                        capabilities: Some(Capabilities {
                            drop: Some(vec!["ALL".into()]),
                            add: None,
                        }),
                        ..SecurityContext::default()
                    }),
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([
                            ("cpu".to_owned(), quantity("50m")),
                            ("memory".to_owned(), quantity("64Mi")),
                        ])),
                        limits: Some(BTreeMap::from([("memory".to_owned(), quantity("512Mi"))])),
                        ..ResourceRequirements::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    /// The Secret holding [`ClientPodPlan::secret_env`], owned by `owner` when given
    /// (the created Pod, which has a uid). `redact` replaces values for printing.
    pub fn secret(&self, owner: Option<&Pod>, redact: bool) -> Secret {
        let owner_references = owner.and_then(|pod| {
            Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod.metadata.name.clone()?,
                uid: pod.metadata.uid.clone()?,
                controller: Some(false),
                block_owner_deletion: Some(false),
            }])
        });
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                    ("component".to_owned(), COMPONENT.to_owned()),
                ])),
                owner_references,
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            immutable: Some(true),
            string_data: Some(
                self.secret_env
                    .iter()
                    .map(|(k, v)| {
                        let shown = if redact && k == "PGPASSWORD" {
                            "<redacted>".to_owned()
                        } else {
                            v.clone()
                        };
                        (k.clone(), shown)
                    })
                    .collect(),
            ),
            ..Secret::default()
        }
    }
}

/// A client pod that exists in the cluster (with its Secret).
pub struct ClientPod {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    /// Namespace.
    pub namespace: String,
    /// Name of the Pod and of the Secret.
    pub name: String,
    image: String,
}

/// How a client pod's container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The container's exit code (None when the pod failed before running it).
    pub exit_code: Option<i32>,
    /// What the container printed (stdout and stderr, as the logs API returns them).
    pub logs: String,
}

impl ClientPod {
    /// Creates the Pod, then the Secret owned by it. If the Secret cannot be created,
    /// the Pod is deleted again before the error is returned.
    pub async fn create(client: &Client, plan: &ClientPodPlan) -> Result<Self, ClientPodError> {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &plan.namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &plan.namespace);
        let this = ClientPod {
            pods: pods.clone(),
            secrets: secrets.clone(),
            namespace: plan.namespace.clone(),
            name: plan.name.clone(),
            image: plan.image.clone(),
        };
        // Pod first: the Secret needs its uid for the ownerReference. The kubelet retries
        // the container until the referenced Secret exists.
        let mut object = plan.pod();
        if let Some(owner) = ProcessId::current() {
            object
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(OWNER_ANNOTATION.to_owned(), owner.to_string());
        }
        let pod = pods
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| {
                KubeError::api(
                    format!("create pod {} in namespace {}", plan.name, plan.namespace),
                    e,
                )
            })?;
        // A pod that needs no credentials in the cluster (the relay of `pgtunnel`) gets no Secret.
        if plan.secret_env.is_empty() {
            return Ok(this);
        }
        if let Err(e) = secrets
            .create(&PostParams::default(), &plan.secret(Some(&pod), false))
            .await
        {
            this.delete().await;
            return Err(KubeError::api(
                format!(
                    "create secret {} in namespace {}",
                    plan.name, plan.namespace
                ),
                e,
            )
            .into());
        }
        Ok(this)
    }

    /// Waits until the container runs (or already ended), failing fast on image errors.
    pub async fn wait_started(&self, timeout: Duration) -> Result<(), ClientPodError> {
        let image = self.image.clone();
        // A pod deleted under us ends the wait (it would never start otherwise).
        let cond = |pod: Option<&Pod>| pod.is_none_or(|p| started(p) || image_error(p).is_some());
        let waited = tokio::time::timeout(
            timeout,
            await_condition(self.pods.clone(), &self.name, cond),
        )
        .await;
        let pod = match waited {
            Ok(Ok(pod)) => pod,
            Ok(Err(e)) => {
                return Err(KubeError::api(
                    format!("watch pod {} in namespace {}", self.name, self.namespace),
                    kube::Error::Service(Box::new(e)),
                )
                .into());
            }
            Err(_) => {
                let last = self.pods.get_opt(&self.name).await.ok().flatten();
                return Err(ClientPodError::StartTimeout {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    seconds: timeout.as_secs(),
                    detail: last.as_ref().and_then(waiting_reason),
                });
            }
        };
        let Some(pod) = pod else {
            return Err(ClientPodError::Vanished {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            });
        };
        if let Some(reason) = image_error(&pod) {
            return Err(ClientPodError::ImagePull {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                image,
                reason,
            });
        }
        Ok(())
    }

    /// Waits for the container to end and returns its exit code and logs.
    pub async fn wait_finished(&self, timeout: Duration) -> Result<Finished, ClientPodError> {
        self.wait_started(timeout).await?;
        // A pod deleted under us ends the wait too (it would never finish otherwise).
        let pod = await_condition(self.pods.clone(), &self.name, |p: Option<&Pod>| {
            p.is_none_or(|p| {
                terminated_code(p).is_some()
                    || phase(p).is_some_and(|ph| ph == "Failed" || ph == "Succeeded")
            })
        })
        .await
        .map_err(|e| {
            KubeError::api(
                format!("watch pod {} in namespace {}", self.name, self.namespace),
                kube::Error::Service(Box::new(e)),
            )
        })?;
        if pod.is_none() {
            return Err(ClientPodError::Vanished {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            });
        }
        let logs = self
            .pods
            .logs(
                &self.name,
                &LogParams {
                    container: Some(CONTAINER.into()),
                    ..LogParams::default()
                },
            )
            .await
            .map_err(|e| {
                KubeError::api(
                    format!(
                        "read logs of pod {} in namespace {}",
                        self.name, self.namespace
                    ),
                    e,
                )
            })?;
        Ok(Finished {
            exit_code: pod.as_ref().and_then(terminated_code),
            logs,
        })
    }

    /// Attaches this terminal (stdin, stdout, and stderr unless a TTY merges them) to the
    /// container, until it ends. Returns the remote exit code when the server reports one.
    pub async fn attach(&self, tty: bool) -> Result<Option<i32>, ClientPodError> {
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(true)
            .stdout(true)
            .stderr(!tty)
            .tty(tty);
        let attach_error = |source| ClientPodError::Attach {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source: Box::new(source),
        };
        let mut attached = self
            .pods
            .attach(&self.name, &params)
            .await
            .map_err(attach_error)?;
        let _raw = if tty {
            Some(crate::terminal::RawMode::enable().map_err(ClientPodError::Terminal)?)
        } else {
            None
        };
        if tty && let Some(mut sizes) = attached.terminal_size() {
            if let Some(size) = crate::terminal::size() {
                let _ = futures::SinkExt::send(&mut sizes, size).await;
            }
        }
        let remote_in = attached.stdin();
        let remote_out = attached.stdout();
        let remote_err = attached.stderr();
        let status = attached.take_status();
        let input = tokio::spawn(pump_stdin(remote_in));
        pump_output(remote_out, remote_err).await;
        input.abort();
        let code = match status {
            Some(status) => status.await.map(|s| exit_code_of(&s)),
            None => None,
        };
        let _ = attached.join().await;
        Ok(code)
    }

    /// Runs `command` in the container (exec) with stdin, stdout and stderr as byte streams
    /// (no TTY), for a program that speaks a protocol over them (see [`crate::pgtunnel`]).
    /// Unlike the container's own output, an exec session's output is not kept in the
    /// pod's logs.
    pub async fn exec_streams(
        &self,
        command: &[&str],
    ) -> Result<kube::api::AttachedProcess, ClientPodError> {
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .tty(false);
        self.pods
            .exec(&self.name, command.to_vec(), &params)
            .await
            .map_err(|source| ClientPodError::Attach {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source: Box::new(source),
            })
    }

    /// Deletes the Pod and the Secret (each even if the other fails; a missing one is fine).
    pub async fn delete(&self) {
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        let _ = self.secrets.delete(&self.name, &now).await;
        let _ = self.pods.delete(&self.name, &now).await;
    }
}

/// This terminal's stdin into the pod until either ends. Reading runs on a plain thread:
/// a blocked read must not keep the runtime alive at exit.
async fn pump_stdin(remote: Option<impl tokio::io::AsyncWrite + Unpin>) {
    use tokio::io::AsyncWriteExt;
    let Some(mut remote) = remote else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    while let Some(chunk) = rx.recv().await {
        if remote.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = remote.shutdown().await;
}

/// The pod's stdout and stderr onto ours, until both end.
async fn pump_output(
    remote_out: Option<impl tokio::io::AsyncRead + Unpin>,
    remote_err: Option<impl tokio::io::AsyncRead + Unpin>,
) {
    let out = async {
        if let Some(mut r) = remote_out {
            let _ = tokio::io::copy(&mut r, &mut tokio::io::stdout()).await;
        }
    };
    let err = async {
        if let Some(mut r) = remote_err {
            let _ = tokio::io::copy(&mut r, &mut tokio::io::stderr()).await;
        }
    };
    tokio::join!(out, err);
}

/// Annotation naming the process that created a client or relay pod.
pub const OWNER_ANNOTATION: &str = "kubectl-astro.io/owner";

/// A process on a machine: `<host>/<pid>/<start time in clock ticks since boot>`. The
/// start time tells a pid reused by another process from the one that made the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start: u64,
}

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.host, self.pid, self.start)
    }
}

impl ProcessId {
    /// Parses [`Display`](std::fmt::Display)'s form.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(3, '/');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next().filter(|h| !h.is_empty())?.to_owned();
        Some(ProcessId { host, pid, start })
    }

    /// This process (`None` where `/proc` does not tell: then only deadlines apply).
    pub fn current() -> Option<Self> {
        Self::of(std::process::id())
    }

    /// Process `pid` on this machine, if it runs.
    fn of(pid: u32) -> Option<Self> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(ProcessId {
            host: host.trim().to_owned(),
            pid,
            start: start_time(&stat)?,
        })
    }

    /// Whether this process is gone, as far as this machine can tell: it ran here and no
    /// process with its pid and start time runs now. Another machine's: `false`.
    pub fn gone_from_here(&self) -> bool {
        let Some(me) = Self::current() else {
            return false;
        };
        me.host == self.host && Self::of(self.pid).as_ref() != Some(self)
    }
}

/// Field 22 (starttime) of a `/proc/<pid>/stat` line; the command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn start_time(stat: &str) -> Option<u64> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether `pod`, one of ours by its labels, was abandoned by a run that was killed
/// (SIGKILL, a lost machine) at `now`, so that removing it cannot hurt a run still going:
/// the process that made it ran on this machine and is gone, it outlived its
/// `activeDeadlineSeconds` (the kubelet has stopped its container), or its container
/// ended more than [`FINISHED_GRACE_SECONDS`] ago. Never someone else's pod.
pub fn abandoned(pod: &Pod, now: jiff::Timestamp) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    if label(MANAGED_BY.0) != Some(MANAGED_BY.1) || label("component") != Some(COMPONENT) {
        return false;
    }
    let seconds_since = |t: jiff::Timestamp| now.duration_since(t).as_secs();
    let deadline = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .unwrap_or(MAX_POD_SECONDS);
    let expired = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .is_some_and(|t| seconds_since(t.0) > deadline);
    let finished_long_ago = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .any(|t| seconds_since(t.0) > FINISHED_GRACE_SECONDS);
    let owner_gone = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
        .and_then(|o| ProcessId::parse(o))
        .is_some_and(|o| o.gone_from_here());
    expired || finished_long_ago || owner_gone
}

/// Deletes the client and relay pods (and their Secrets) that killed runs abandoned in
/// `namespace` (see [`abandoned`]); returns their names. Once per namespace and process,
/// before the first pod of a run is created.
pub async fn remove_abandoned(client: &Client, namespace: &str) -> Result<Vec<String>, KubeError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}={},component={COMPONENT}", MANAGED_BY.0, MANAGED_BY.1);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| KubeError::api(format!("list client pods in namespace {namespace}"), e))?;
    let now = jiff::Timestamp::now();
    let mut removed = Vec::new();
    for pod in list.items.iter().filter(|p| abandoned(p, now)) {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        // Only that very pod (uid precondition), and its Secret should GC not run.
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod
                .metadata
                .uid
                .clone()
                .map(|uid| kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
            ..DeleteParams::default()
        };
        match pods.delete(&name, &params).await {
            Ok(_) => {
                let _ = secrets.delete(&name, &DeleteParams::default()).await;
                removed.push(name);
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                return Err(KubeError::api(
                    format!("delete abandoned client pod {name} in namespace {namespace}"),
                    e,
                ));
            }
        }
    }
    Ok(removed)
}

/// Whether this is the first call with `key` in this process: cleanups of what killed
/// runs left run once per run, not before every pod or download.
pub fn first_in_process(key: &str) -> bool {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    SEEN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_owned())
}

/// [`remove_abandoned`] at most once per namespace in this process, best effort: a
/// failure here (e.g. no `list` permission) must not stop the run it precedes.
async fn remove_abandoned_once(client: &Client, namespace: &str) {
    if first_in_process(&format!("pods/{namespace}")) {
        let _ = remove_abandoned(client, namespace).await;
    }
}

/// Creates the client pod, runs `body` with it, and deletes Pod and Secret afterwards,
/// whether `body` succeeded, failed, or Ctrl-C/SIGTERM/SIGHUP arrived (then
/// [`ClientPodError::Interrupted`]).
pub async fn with_client_pod<T, E, F>(
    client: &Client,
    plan: &ClientPodPlan,
    body: F,
) -> Result<T, E>
where
    F: AsyncFnOnce(&ClientPod) -> Result<T, E>,
    E: From<ClientPodError>,
{
    let interrupted = || ClientPodError::Interrupted {
        namespace: plan.namespace.clone(),
        name: plan.name.clone(),
    };
    // Ctrl-C while creating: the create call finishes, then cleanup runs.
    // Handlers are installed here, before anything exists to clean up, so a signal that
    // arrives while the Pod is being created is caught rather than killing the process.
    let mut signals = StopSignals::install();
    let ctrl_c = signals.recv();
    tokio::pin!(ctrl_c);
    remove_abandoned_once(client, &plan.namespace).await;
    let pod = tokio::select! {
        pod = ClientPod::create(client, plan) => pod?,
        _ = &mut ctrl_c => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &plan.namespace);
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &plan.namespace);
            let _ = secrets.delete(&plan.name, &DeleteParams::default()).await;
            let _ = pods.delete(&plan.name, &DeleteParams::default()).await;
            return Err(interrupted().into());
        }
    };
    let outcome = tokio::select! {
        result = body(&pod) => Some(result),
        _ = &mut ctrl_c => None,
    };
    pod.delete().await;
    match outcome {
        Some(result) => result,
        None => Err(interrupted().into()),
    }
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP (terminal closed), each of which must clean up.
struct StopSignals {
    signals: Vec<tokio::signal::unix::Signal>,
    _handled: crate::interrupt::Handled,
}

impl StopSignals {
    /// Installs the handlers now (creating a `Signal` registers it synchronously).
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ]
        .into_iter()
        .filter_map(|kind| signal(kind).ok())
        .collect();
        StopSignals {
            signals,
            _handled: crate::interrupt::handled_here(),
        }
    }

    /// Resolves when any of the signals arrives, or at once when Ctrl-C came before the
    /// handlers were installed (another part of the command saw it).
    async fn recv(&mut self) {
        let signals = async {
            if self.signals.is_empty() {
                std::future::pending::<()>().await;
            }
            let waits = self.signals.iter_mut().map(|s| Box::pin(s.recv()));
            futures::future::select_all(waits).await;
        };
        tokio::select! {
            () = signals => {}
            () = crate::interrupt::ctrl_c() => {}
        }
    }
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn started(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Running" | "Succeeded" | "Failed"))
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let w = s.state.as_ref()?.waiting.as_ref()?;
        Some(match &w.message {
            Some(m) => format!("{}: {m}", w.reason.as_deref().unwrap_or("Waiting")),
            None => w.reason.clone().unwrap_or_else(|| "Waiting".into()),
        })
    })
}

fn image_error(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let w = s.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        matches!(
            reason,
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
        )
        .then(|| match &w.message {
            Some(m) => format!("{reason}: {m}"),
            None => reason.to_owned(),
        })
    })
}

fn terminated_code(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find_map(|s| Some(s.state.as_ref()?.terminated.as_ref()?.exit_code))
}

/// Exit code from the attach status (`NonZeroExitCode` carries it as a cause).
fn exit_code_of(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_ref()?.parse().ok())
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ClientPodPlan {
        ClientPodPlan {
            namespace: "astronomer".into(),
            name: unique_name("astro-dbconn"),
            image: DEFAULT_IMAGE.into(),
            labels: network_policy_labels("astronomer"),
            command: vec!["psql".into()],
            secret_env: vec![
                ("PGHOST".into(), "db".into()),
                ("PGPASSWORD".into(), "Sup3r!Secret".into()),
            ],
            plain_env: vec![("HOME".into(), "/tmp".into())],
            interactive: true,
            tty: false,
        }
    }

    #[test]
    fn pod_reads_credentials_only_through_secret_key_refs() {
        let p = plan();
        let pod = p.pod();
        let json = serde_json::to_string(&pod).unwrap();
        assert!(!json.contains("Sup3r!Secret"), "{json}");
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let env = c.env.as_ref().unwrap();
        let pw = env.iter().find(|e| e.name == "PGPASSWORD").unwrap();
        assert!(pw.value.is_none());
        let r = pw
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (r.name.as_str(), r.key.as_str()),
            (p.name.as_str(), "PGPASSWORD")
        );
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["release"], "astronomer");
        assert_eq!(labels["tier"], "astronomer");
    }

    #[test]
    fn secret_is_owned_by_the_pod_and_redactable() {
        let p = plan();
        let mut pod = p.pod();
        pod.metadata.uid = Some("uid-1".into());
        let s = p.secret(Some(&pod), false);
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Pod", "uid-1"));
        assert_eq!(
            s.string_data.as_ref().unwrap()["PGPASSWORD"],
            "Sup3r!Secret"
        );
        let red = p.secret(None, true);
        assert_eq!(
            red.string_data.as_ref().unwrap()["PGPASSWORD"],
            "<redacted>"
        );
        assert_eq!(red.string_data.as_ref().unwrap()["PGHOST"], "db");
    }

    #[test]
    fn owner_processes_are_told_apart() {
        let me = ProcessId::current().expect("/proc on Linux");
        assert_eq!(ProcessId::parse(&me.to_string()), Some(me.clone()));
        assert!(!me.gone_from_here(), "this process runs");
        let reused = ProcessId {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(reused.gone_from_here(), "same pid, another start time");
        let elsewhere = ProcessId {
            host: "other-laptop".into(),
            pid: 1,
            start: 1,
        };
        assert!(
            !elsewhere.gone_from_here(),
            "another machine's run: deadlines only"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let alive = ProcessId::of(pid);
        child.wait().unwrap();
        if let Some(dead) = alive {
            assert!(dead.gone_from_here(), "a finished process");
        }
        assert_eq!(
            start_time("1 (a) b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 x"),
            Some(424242)
        );
        assert_eq!(ProcessId::parse("host/12"), None);
        assert_eq!(
            ProcessId::parse("a/b/12/34").map(|p| p.host),
            Some("a/b".into())
        );
    }

    #[test]
    fn only_our_expired_or_long_finished_pods_count_as_abandoned() {
        use k8s_openapi::api::core::v1::{
            ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
        };
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let now = jiff::Timestamp::now();
        let ago = |secs: i64| Time(now - jiff::SignedDuration::from_secs(secs));
        let created = |secs: i64| {
            let mut pod = plan().pod();
            pod.metadata.creation_timestamp = Some(ago(secs));
            pod
        };
        let finished = |secs: i64| {
            let mut pod = created(secs + 5);
            pod.status = Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            finished_at: Some(ago(secs)),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            });
            pod
        };
        assert!(!abandoned(&created(60), now), "a running run's pod");
        assert!(!abandoned(&created(MAX_POD_SECONDS - 60), now));
        assert!(abandoned(&created(MAX_POD_SECONDS + 60), now));
        assert!(
            !abandoned(&finished(60), now),
            "its run may still read the logs"
        );
        assert!(abandoned(&finished(FINISHED_GRACE_SECONDS + 60), now));
        let mut foreign = created(MAX_POD_SECONDS * 10);
        foreign.metadata.labels = Some(BTreeMap::from([(
            "component".to_owned(),
            COMPONENT.to_owned(),
        )]));
        assert!(
            !abandoned(&foreign, now),
            "not ours without the managed-by label"
        );
        foreign.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY.0.to_owned(),
            MANAGED_BY.1.to_owned(),
        )]));
        assert!(!abandoned(&foreign, now), "ours, but not a client pod");
    }

    #[test]
    fn unique_names_are_valid_dns_labels() {
        let n = unique_name("astro-dbconn");
        assert!(n.len() <= 63);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
    }
}
