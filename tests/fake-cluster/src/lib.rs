//! A fake Kubernetes API server speaking the real wire protocol, loaded from YAML.
//! Used by the integration tests and by the sandbox; see `FakeCluster`.

mod kubelet;
mod patch;
mod protobuf;
mod registry;
mod schema;
mod selector;
mod server;
mod store;
mod table;
mod velero_plugins;
mod velero_sim;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

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
}

impl FaultState {
    /// Deterministic xorshift in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub log: Mutex<VecDeque<RequestRecord>>,
    pub faults: Mutex<FaultState>,
    pub velero: Mutex<velero_sim::VeleroState>,
    pub kubelet: Mutex<kubelet::KubeletState>,
    pub url: String,
    /// Host names only pods resolve (`Options::pod_hosts`).
    pub pod_hosts: Vec<(String, String)>,
}

/// Locks a mutex, recovering from poisoning (a panicking test must not wedge others).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake API server; dropping it stops the server.
pub struct FakeCluster {
    shared: Arc<Shared>,
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

fn kubeconfig_text(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\npreferences: {{}}\n"
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
        let url = format!("http://{addr}");

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
            faults: Mutex::new(FaultState {
                faults: Vec::new(),
                rng: 0x9e37_79b9_7f4a_7c15,
            }),
            url: url.clone(),
            pod_hosts: options.pod_hosts.clone(),
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
        std::fs::write(&kubeconfig, kubeconfig_text(&url)).map_err(|source| Error::Io {
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
                    listener,
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
            url,
            kubeconfig,
            _dir: dir,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The generated kubeconfig (context `fake`, token user, plain http).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
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

impl Drop for FakeCluster {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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

pub(crate) fn record(shared: &Shared, rec: RequestRecord) {
    let mut log = lock(&shared.log);
    if log.len() >= REQUEST_LOG_CAP {
        log.pop_front();
    }
    log.push_back(rec);
}
