//! A fake Kubernetes API server speaking the real wire protocol, loaded from YAML.
//! Used by the integration tests and by the sandbox; see `FakeCluster`. With
//! `Options::auth` it authenticates bearer tokens and authorizes with the RBAC objects
//! it holds (`auth`), over HTTPS (`tls`).

mod auth;
mod kubelet;
mod patch;
mod protobuf;
mod registry;
mod schema;
mod selector;
mod server;
mod store;
mod table;
mod tls;
mod velero_plugins;
mod velero_sim;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

pub use auth::{ADMIN_TOKEN, ADMIN_USER, TokenUser};
/// The request parsers (selectors, patch bodies), public for the property tests
/// (`tests/properties.rs`); the server is the only other user.
#[doc(hidden)]
pub mod parse {
    pub use crate::patch::apply as apply_patch;
    pub use crate::selector::{FieldSelector, LabelSelector};
}

pub use store::NamespaceTermination;
pub use velero_plugins::reset_metadata;
pub use velero_sim::{VeleroKind, VeleroOutcome};

/// How to start a `FakeCluster`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Directories whose `*.yaml` / `*.yml` files (multi-document, recursively) are loaded.
    pub manifest_dirs: Vec<PathBuf>,
    /// Directory of CRD YAML files (top level only); default [`velero_crd_dir`].
    /// Set to an empty path to load none.
    pub crd_dir: Option<PathBuf>,
    /// Plain-text replacements applied to every manifest before parsing (`from`, `to`).
    pub substitutions: Vec<(String, String)>,
    /// Run the simulated Velero controller (Backups/Restores move through their phases).
    pub simulate_velero: bool,
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    pub port: u16,
    /// What happens to deleted namespaces.
    pub namespace_termination: NamespaceTermination,
    /// Where to write the kubeconfig; default a private temporary directory.
    pub kubeconfig_path: Option<PathBuf>,
    /// How many changes watches can resume from (default 50,000); older resourceVersions
    /// get `410 Expired`, as after an etcd compaction.
    pub watch_history: Option<usize>,
    /// Time between the simulated Velero's phase changes (default 100 ms).
    pub velero_step: Option<Duration>,
    /// Run a fake kubelet: Pods whose first container's `command[0]` is a program on this
    /// machine (psql, pg_dump, sh…) run as local processes with env resolved from
    /// `secretKeyRef`/`configMapKeyRef`; logs, attach and exec work. Other Pods stay Pending.
    pub kubelet: bool,
    /// Host names that resolve only inside pods (`name`, `address`), like a database in a
    /// private network that cluster DNS knows and this machine does not. Pods run as local
    /// processes sharing this machine's resolver, so the fake kubelet plays cluster DNS:
    /// it replaces each name by its address in the env values and args it starts a pod
    /// process with. Everything outside pods (the binaries under test) sees the bare name.
    pub pod_hosts: Vec<(String, String)>,
    /// Velero's `--plugin-dir`: the simulated Velero runs restored items through the
    /// RestoreItemActions of the plugin binaries found there (`velero_plugins`).
    pub velero_plugin_dir: Option<PathBuf>,
    /// Auth mode: every request needs `Authorization: Bearer <token>` of one of these
    /// users (or of the admin, [`ADMIN_USER`], whom the default kubeconfig names and RBAC
    /// never restricts); others are authorized by the RBAC objects in the store
    /// (`FakeCluster::kubeconfig_for`, `FakeCluster::revoke_token`). The API is then
    /// served over HTTPS with a self-signed certificate the kubeconfigs trust (kubectl
    /// sends tokens only over TLS). `None`: plain HTTP, every request allowed.
    pub auth: Option<Vec<TokenUser>>,
}

/// A fault injected into request handling; see `FakeCluster::inject`.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer matching requests with this status code (a `metav1.Status` body).
    Status {
        /// HTTP method to match (`"PATCH"`), `None` for any.
        method: Option<String>,
        /// Substring of the request path to match ("" matches all).
        path_contains: String,
        /// Status code to answer, e.g. 500, 503, 429, 409, 403.
        code: u16,
        /// How many requests to fail; `None` for every one.
        times: Option<u32>,
    },
    /// Answer this fraction (0.0–1.0) of PATCH/PUT requests with 409 Conflict (seeded, deterministic).
    ConflictRate {
        /// Share of write requests that conflict.
        fraction: f64,
        /// Kinds (e.g. `"Secret"`) this applies to; empty for all.
        kinds: Vec<String>,
    },
    /// Close watch streams early.
    DropWatches {
        /// Close after this many events were sent.
        after_events: Option<u32>,
        /// Close after this many milliseconds.
        after_ms: Option<u64>,
        /// How many watches to drop; `None` for every one.
        times: Option<u32>,
    },
    /// Delay every request by this long.
    Latency(Duration),
    /// Delay every `every`-th request (1st, `every`+1-th, …) matching `path_contains` by
    /// `delay`: latency spikes on some requests, not all. Streaming pod requests
    /// (exec/attach/log) are delayed too.
    LatencySpikes {
        /// How long a spiked request waits.
        delay: Duration,
        /// One request in this many is delayed (0 or 1: every one).
        every: u32,
        /// Substring of the request path to match ("" matches all).
        path_contains: String,
        /// Matching requests seen so far (start at 0).
        seen: u32,
    },
    /// Answer matching requests with 429 Too Many Requests and `Retry-After`, as API
    /// priority and fairness does.
    Throttle {
        /// Substring of the request path to match ("" matches all).
        path_contains: String,
        /// The `Retry-After` header, in seconds.
        retry_after_secs: u64,
        /// How many requests to throttle; `None` for every one.
        times: Option<u32>,
    },
}

/// One handled request, as seen by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    /// Request `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Response status code.
    pub status: u16,
    /// Whether this was a watch.
    pub watch: bool,
    /// The authenticated user (auth mode only; `None` for 401s and without auth).
    pub user: Option<String>,
    /// What RBAC was asked to allow for it, as `verb resource[/sub][.group]` (auth mode;
    /// a websocket exec is `get` and `create`).
    pub authorized: Vec<String>,
}

/// One successful write through the API (not test setup, not the simulated controllers):
/// the object as the server stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiWrite {
    /// `POST`, `PUT` or `PATCH`.
    pub method: String,
    /// The stored object after the write.
    pub object: Value,
}

/// Errors starting the fake cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest or CRD file could not be parsed or loaded.
    #[error("{path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The server could not start.
    #[error("fake API server: {0}")]
    Server(String),
}

/// Maximum retained request records (oldest dropped first).
const REQUEST_LOG_CAP: usize = 20_000;

pub(crate) struct FaultState {
    pub faults: Vec<Fault>,
    pub rng: u64,
    /// Writes seen per object, for [`FaultState::draw_for`].
    pub draws: std::collections::HashMap<String, u64>,
}

impl FaultState {
    /// A number in [0, 1) for the next write to `object`, decided by the object and how
    /// many writes to it came before: not by the order in which concurrent writes to
    /// different objects arrive, so a run's faults do not depend on its timing.
    pub fn draw_for(&mut self, object: &str) -> f64 {
        let n = self.draws.entry(object.to_owned()).or_insert(0);
        *n += 1;
        // FNV-1a of the object, mixed with the write's number by SplitMix64's finaliser.
        let mut h = object.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        h ^= self.rng ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        (h >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub log: Mutex<VecDeque<RequestRecord>>,
    /// Every object written through the API, for audits of what clients created.
    pub writes: Mutex<Vec<ApiWrite>>,
    pub faults: Mutex<FaultState>,
    pub velero: Mutex<velero_sim::VeleroState>,
    pub kubelet: Mutex<kubelet::KubeletState>,
    pub url: String,
    /// Base URL of the simulated object store's download links: plain HTTP, as a bucket's
    /// presigned URLs are no API server's (the API's own URL without auth mode).
    pub download_url: String,
    /// The server certificate (PEM) kubeconfigs trust, in auth mode (HTTPS).
    pub ca_pem: Option<String>,
    /// Host names only pods resolve (`Options::pod_hosts`).
    pub pod_hosts: Vec<(String, String)>,
    /// Token users and revocations in auth mode (`Options::auth`).
    pub auth: Option<Mutex<auth::AuthState>>,
}

/// Locks a mutex, recovering from poisoning (a panicking test must not wedge others).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A check run when a [`FakeCluster`] is dropped: what is wrong, empty when all is well.
pub type DropCheck = Box<dyn FnOnce(&FakeCluster) -> Vec<String> + Send>;

/// A running fake API server; dropping it stops the server.
pub struct FakeCluster {
    shared: Arc<Shared>,
    drop_checks: Mutex<Vec<DropCheck>>,
    url: String,
    kubeconfig: PathBuf,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The Velero CRDs the project tests against: `crds/velero/` of this repository (copied
/// from upstream, see its `SOURCE.md`). The one lookup of that directory: the e2e harness,
/// the sandbox and the fake cluster's binary use it too.
pub fn velero_crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/fake-cluster is two levels below the repository root")
        .join("crds")
        .join("velero")
}

fn yaml_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                yaml_files(&p, true, out)?;
            }
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses a multi-document YAML file into objects (`List` kinds flattened).
fn parse_documents(path: &Path, text: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for doc in docs {
        if doc.is_null() {
            continue;
        }
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            out.extend(
                doc.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        } else {
            out.push(doc);
        }
    }
    Ok(out)
}

fn kubeconfig_text(url: &str, user: &str, token: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine as _;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: {user}\n    namespace: default\ncurrent-context: fake\nusers:\n- name: {user}\n  user:\n    token: {token}\npreferences: {{}}\n"
    )
}

impl FakeCluster {
    /// Loads CRDs and manifests, starts the server on its own thread, writes the kubeconfig.
    pub fn start(options: Options) -> Result<Self, Error> {
        let (notify, _) = tokio::sync::watch::channel(0u64);
        let mut st = store::Store::new(notify, options.namespace_termination);
        if let Some(n) = options.watch_history {
            st.set_event_cap(n.max(1));
        }

        let crd_dir = options.crd_dir.clone().unwrap_or_else(velero_crd_dir);
        if !crd_dir.as_os_str().is_empty() {
            let mut files = Vec::new();
            yaml_files(&crd_dir, false, &mut files)?;
            for path in files {
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                for doc in parse_documents(&path, &text)? {
                    if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                        continue;
                    }
                    st.apply(doc).map_err(|message| Error::Manifest {
                        path: path.clone(),
                        message,
                    })?;
                }
            }
        }

        let mut docs = Vec::new();
        for dir in &options.manifest_dirs {
            let mut files = Vec::new();
            yaml_files(dir, true, &mut files)?;
            for path in files {
                let mut text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                for (from, to) in &options.substitutions {
                    text = text.replace(from.as_str(), to);
                }
                for doc in parse_documents(&path, &text)? {
                    docs.push((path.clone(), doc));
                }
            }
        }
        // Namespaces and CRDs first, so objects in them can be created in any file order.
        let rank = |d: &Value| match d.get("kind").and_then(Value::as_str) {
            Some("Namespace") => 0,
            Some("CustomResourceDefinition") => 1,
            _ => 2,
        };
        docs.sort_by_key(|(_, d)| rank(d));
        for (path, doc) in docs {
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            st.apply(doc).map_err(|message| Error::Manifest {
                path: path.clone(),
                message: format!("{kind} {name}: {message}"),
            })?;
        }

        let listener =
            std::net::TcpListener::bind(("127.0.0.1", options.port)).map_err(|source| {
                Error::Io {
                    path: PathBuf::from(format!("127.0.0.1:{}", options.port)),
                    source,
                }
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Server(e.to_string()))?;
        let addr: SocketAddr = listener
            .local_addr()
            .map_err(|e| Error::Server(e.to_string()))?;
        // Auth mode serves HTTPS (kubectl sends tokens over TLS only) and the simulated
        // object store's download links on a second, plain listener.
        let (tls, downloads) = if options.auth.is_some() {
            let tls = tls::self_signed().map_err(Error::Server)?;
            let downloads = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| Error::Server(e.to_string()))?;
            (Some(tls), Some(downloads))
        } else {
            (None, None)
        };
        let url = if tls.is_some() {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        };
        let download_url = match &downloads {
            Some(l) => format!(
                "http://{}",
                l.local_addr().map_err(|e| Error::Server(e.to_string()))?
            ),
            None => url.clone(),
        };
        let ca_pem = tls.as_ref().map(|t| t.cert_pem.clone());

        let mut velero = velero_sim::VeleroState::default();
        velero.step = options.velero_step.unwrap_or(Duration::from_millis(100));
        velero.plugin_dir.clone_from(&options.velero_plugin_dir);
        velero.plugins = velero_sim::default_plugins();
        velero_sim::snapshot_existing(&st, &mut velero);
        let shared = Arc::new(Shared {
            velero: Mutex::new(velero),
            kubelet: Mutex::new(kubelet::KubeletState::default()),
            store: Mutex::new(st),
            log: Mutex::new(VecDeque::new()),
            writes: Mutex::new(Vec::new()),
            faults: Mutex::new(FaultState {
                faults: Vec::new(),
                rng: 0x9e37_79b9_7f4a_7c15,
                draws: Default::default(),
            }),
            url: url.clone(),
            download_url,
            ca_pem: ca_pem.clone(),
            pod_hosts: options.pod_hosts.clone(),
            auth: options
                .auth
                .clone()
                .map(|users| Mutex::new(auth::AuthState::new(users))),
        });

        let (dir, kubeconfig) = match &options.kubeconfig_path {
            Some(p) => (None, p.clone()),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("fake-cluster-")
                    .tempdir()
                    .map_err(|source| Error::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                let p = dir.path().join("kubeconfig");
                (Some(dir), p)
            }
        };
        std::fs::write(
            &kubeconfig,
            kubeconfig_text(&url, "fake", ADMIN_TOKEN, ca_pem.as_deref()),
        )
        .map_err(|source| Error::Io {
            path: kubeconfig.clone(),
            source,
        })?;

        let (tx, rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server_shared = shared.clone();
        let simulate_velero = options.simulate_velero;
        let run_kubelet = options.kubelet;
        let thread = std::thread::Builder::new()
            .name("fake-cluster".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(server::serve(
                    server_shared,
                    server::Listeners {
                        api: listener,
                        downloads,
                        tls: tls.map(|t| t.acceptor),
                    },
                    rx,
                    ready_tx,
                    simulate_velero,
                    run_kubelet,
                ));
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| Error::Server(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Server(e)),
            Err(_) => return Err(Error::Server("server thread exited".into())),
        }
        Ok(Self {
            shared,
            drop_checks: Mutex::new(Vec::new()),
            url,
            kubeconfig,
            _dir: dir,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The generated kubeconfig (context `fake`, the admin's token; https in auth mode).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes a kubeconfig beside the default one that authenticates as `user` (a token
    /// user of `Options::auth`, or one added with [`FakeCluster::add_user`]) and returns
    /// its path. Panics for a user the cluster does not know or without auth mode.
    pub fn kubeconfig_for(&self, user: &str) -> PathBuf {
        let auth = self
            .shared
            .auth
            .as_ref()
            .expect("kubeconfig_for needs Options::auth");
        let token = lock(auth)
            .users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.token.clone())
            .unwrap_or_else(|| panic!("no token user {user:?} in the fake cluster"));
        let path = self.kubeconfig.with_file_name(format!("kubeconfig-{user}"));
        std::fs::write(
            &path,
            kubeconfig_text(&self.url, user, &token, self.shared.ca_pem.as_deref()),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// Adds (or replaces) a token user at run time (auth mode only).
    pub fn add_user(&self, user: TokenUser) {
        let auth = self
            .shared
            .auth
            .as_ref()
            .expect("add_user needs Options::auth");
        let mut a = lock(auth);
        a.revoked.remove(&user.name);
        a.users.retain(|u| u.name != user.name);
        a.users.push(user);
    }

    /// Revokes `user`'s token: its requests get 401 from now on, as after a token
    /// was revoked or expired mid-run (auth mode only).
    pub fn revoke_token(&self, user: &str) {
        let auth = self
            .shared
            .auth
            .as_ref()
            .expect("revoke_token needs Options::auth");
        lock(auth).revoked.insert(user.to_owned());
    }

    /// Base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Handled requests, oldest first (at most the last 20,000).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Every object created, replaced or patched through the API since start, oldest
    /// first: what clients (the tool, kubectl) wrote, never test setup (`apply`) nor the
    /// simulated Velero. Unbounded, unlike [`FakeCluster::requests`]: audits need all.
    pub fn api_writes(&self) -> Vec<ApiWrite> {
        lock(&self.shared.writes).clone()
    }

    /// Makes an object look created `age` ago (`metadata.creationTimestamp`), as for
    /// an object a crashed run left behind hours before; false when it does not exist.
    pub fn set_age(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        age: Duration,
    ) -> bool {
        lock(&self.shared.store).set_age(api_version, kind, namespace.unwrap_or(""), name, age)
    }

    /// One object by apiVersion, kind, namespace (None for cluster-scoped) and name.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = lock(&self.shared.store);
        let t = st.find_kind(api_version, kind)?;
        st.get(t, namespace.unwrap_or(""), name)
            .map(|v| (*v).clone())
    }

    /// All objects of a kind (in one namespace, or all namespaces with None), sorted.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let st = lock(&self.shared.store);
        let Some(t) = st.find_kind(api_version, kind) else {
            return Vec::new();
        };
        st.all(t, namespace)
            .into_iter()
            .map(|v| (*v).clone())
            .collect()
    }

    /// Create-or-replace, as test setup: validated like API writes; creates a missing namespace.
    /// Panics with the API server's message when the object is rejected.
    pub fn apply(&self, value: Value) -> Value {
        match self.try_apply(value) {
            Ok(v) => v,
            Err(e) => panic!("fake cluster rejected object: {e}"),
        }
    }

    /// Like `apply`, returning the rejection message instead of panicking.
    pub fn try_apply(&self, value: Value) -> Result<Value, String> {
        lock(&self.shared.store).apply(value).map(|v| (*v).clone())
    }

    /// Deletes an object (with garbage collection of dependents); false when it did not exist.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let mut st = lock(&self.shared.store);
        let Some(t) = st.find_kind(api_version, kind) else {
            return false;
        };
        st.delete(t, namespace.unwrap_or(""), name, None, None, false)
            .is_ok()
    }

    /// Adds a fault; faults apply in the order added.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).faults.push(fault);
    }

    /// Seeds the draws of rate faults ([`Fault::ConflictRate`]): the same seed, the same
    /// writes fail.
    pub fn seed_faults(&self, seed: u64) {
        let mut fs = lock(&self.shared.faults);
        fs.rng = seed;
        fs.draws.clear();
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).faults.clear();
    }

    /// Puts a namespace into `Terminating` (deletionTimestamp set) without removing anything.
    pub fn set_namespace_terminating(&self, ns: &str) -> bool {
        lock(&self.shared.store).set_namespace_terminating(ns)
    }

    /// Removes a `Terminating` namespace and whatever is left in it.
    pub fn finish_namespace_termination(&self, ns: &str) {
        lock(&self.shared.store).finish_namespace(ns);
    }

    /// Queues what the simulated Velero does with the next Backup or Restore (FIFO per kind;
    /// `Completed` when the queue is empty). A missing, ReadOnly or Unavailable storage
    /// location fails a Backup's validation regardless.
    pub fn velero_set_outcome(&self, kind: VeleroKind, outcome: VeleroOutcome) {
        lock(&self.shared.velero).set_outcome(kind, outcome);
    }

    /// Makes the simulated Velero server stop (true) or resume (false) answering
    /// ServerStatusRequests, as a server that is not running (or crash-looping) would.
    pub fn velero_set_server_down(&self, down: bool) {
        lock(&self.shared.velero).server_down = down;
    }

    /// The plugins (`kind`, `name`) the simulated Velero server reports as loaded
    /// (default: the stock ones, see `velero_sim`).
    pub fn velero_set_plugins(&self, plugins: &[(&str, &str)]) {
        lock(&self.shared.velero).plugins = plugins
            .iter()
            .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
            .collect();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).resource_version()
    }
}

impl FakeCluster {
    /// Runs `check` when this cluster is dropped (unless the thread is already
    /// panicking); problems it returns fail the test with a panic, after the server stopped.
    pub fn check_on_drop(&self, check: impl FnOnce(&FakeCluster) -> Vec<String> + Send + 'static) {
        lock(&self.drop_checks).push(Box::new(check));
    }

    /// Forgets the checks registered with [`FakeCluster::check_on_drop`] (a test that
    /// leaves objects behind on purpose, e.g. after SIGKILL).
    pub fn skip_drop_checks(&self) {
        lock(&self.drop_checks).clear();
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        let checks = std::mem::take(&mut *lock(&self.drop_checks));
        let problems: Vec<String> = if std::thread::panicking() {
            Vec::new()
        } else {
            checks.into_iter().flat_map(|check| check(self)).collect()
        };
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        assert!(
            problems.is_empty(),
            "fake cluster {}: {}",
            self.url,
            problems.join("; ")
        );
    }
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCluster")
            .field("url", &self.url)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

pub(crate) fn record_write(shared: &Shared, method: &str, object: &Value) {
    lock(&shared.writes).push(ApiWrite {
        method: method.to_owned(),
        object: object.clone(),
    });
}

pub(crate) fn record(shared: &Shared, rec: RequestRecord) {
    let mut log = lock(&shared.log);
    if log.len() >= REQUEST_LOG_CAP {
        log.pop_front();
    }
    log.push_back(rec);
}
