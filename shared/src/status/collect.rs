//! The read-only collect step: everything the checks need, from the API server, Velero
//! and Houston. It creates only a ServerStatusRequest and DownloadRequests, and deletes
//! them. Lists are paged; resource lists are downloaded at most once per backup, with
//! bounded concurrency.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

use super::StatusError;
use super::checks::{DumpFacts, HoustonSecret, LocationFacts, ScheduleFacts, ServerAnswer};
use crate::client::KubeError;
use crate::houston::{self, DeploymentRow, HoustonError};
use crate::namespaces::{self, PlatformNamespaces};
use crate::pgtunnel::{self, DbAccess};
use crate::platform::{self, PlatformRelease};
use crate::restore::choice::{self, BackupInfo, BackupSource};
use crate::restore::{collect as restore_collect, download};
use crate::velero::{BackupStorageLocation, Schedule};

/// Page size for lists.
const PAGE: u32 = 500;

/// What the collect step is told.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Velero's namespace.
    pub velero_namespace: String,
    /// The platform namespace.
    pub platform_namespace: String,
    /// The platform release (resolved by the caller).
    pub platform: PlatformRelease,
    /// How Houston's database is reached.
    pub access: DbAccess,
    /// How long the Velero server gets to answer the ServerStatusRequest.
    pub server_timeout: Duration,
    /// Most resource-list downloads (and Helm reads) at a time.
    pub concurrency: usize,
    /// Directory of `backup db` dumps, if given.
    pub dumps: Option<PathBuf>,
}

/// One deployment's newest Helm release record, reduced to the database hosts it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmFacts {
    /// Helm release name.
    pub release: String,
    /// Its namespace.
    pub namespace: String,
    /// Newest revision.
    pub revision: u32,
    /// `(value path, host)`.
    pub hosts: Vec<(String, String)>,
}

/// Counters for the benchmark and `-o json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectStats {
    /// Backups listed.
    pub backups: usize,
    /// Resource lists downloaded (each backup at most once).
    pub downloads: usize,
    /// Namespaces whose holding backup was looked for.
    pub namespaces: usize,
}

/// Everything the checks look at.
#[derive(Debug, Clone)]
pub struct Facts {
    /// When the facts were read.
    pub now: Timestamp,
    /// Velero's namespace.
    pub velero_namespace: String,
    /// The platform namespace.
    pub platform_namespace: String,
    /// The platform release name.
    pub platform_release: String,
    /// The ServerStatusRequest's answer.
    pub server: ServerAnswer,
    /// Storage locations.
    pub locations: Vec<LocationFacts>,
    /// Schedules.
    pub schedules: Vec<ScheduleFacts>,
    /// Whether the Redis volume-policy ConfigMap exists.
    pub policy_exists: bool,
    /// Namespaces of the platform in the cluster.
    pub namespaces: PlatformNamespaces,
    /// Houston's Deployment rows, or why they could not be read.
    pub houston: Result<Vec<DeploymentRow>, String>,
    /// `<release>-houston-backend` name.
    pub houston_secret_name: String,
    /// What it holds.
    pub houston_secret: HoustonSecret,
    /// The database host the secrets use (Houston's resolved connection).
    pub secrets_host: Option<String>,
    /// Newest dump under `--dumps` (`None` when not given).
    pub dumps: Option<Option<DumpFacts>>,
    /// Per namespace: the newest usable backup holding it, as `restore` chooses.
    pub holdings: BTreeMap<String, Result<Option<BackupInfo>, String>>,
    /// Helm values per deployment.
    pub helm: Vec<HelmFacts>,
    /// Counters.
    pub stats: CollectStats,
}

impl Facts {
    /// The namespace of a Houston row: its column, else `<platform ns>-<release>`.
    pub fn namespace_of(&self, row: &DeploymentRow) -> String {
        row.namespace
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.platform_namespace, row.release))
    }
}

/// Progress callback: `(done, total)` namespaces.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

fn ts(v: &Value, p: &str) -> Option<Timestamp> {
    v.pointer(p)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn text(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn strs(v: &Value, p: &str) -> Vec<String> {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn list_all<K>(api: &Api<K>, what: &str) -> Result<Vec<K>, KubeError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = ListParams::default().limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| KubeError::api(format!("list {what}"), e))?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

/// Storage locations as facts.
pub fn location_facts(b: &BackupStorageLocation) -> LocationFacts {
    let v = serde_json::to_value(b).unwrap_or_default();
    LocationFacts {
        name: text(&v, "/metadata/name"),
        default: v.pointer("/spec/default").and_then(Value::as_bool) == Some(true),
        phase: text(&v, "/status/phase"),
        access_mode: Some(text(&v, "/spec/accessMode"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "ReadWrite".into()),
        last_validation: ts(&v, "/status/lastValidationTime"),
        message: v
            .pointer("/status/message")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// A schedule as facts; `newest` is the start of its newest labelled backup.
pub fn schedule_facts(s: &Schedule, newest: Option<Timestamp>) -> ScheduleFacts {
    let v = serde_json::to_value(s).unwrap_or_default();
    let last = ts(&v, "/status/lastBackup");
    let policy = (text(&v, "/spec/template/resourcePolicy/kind").eq_ignore_ascii_case("configmap"))
        .then(|| text(&v, "/spec/template/resourcePolicy/name"));
    ScheduleFacts {
        name: text(&v, "/metadata/name"),
        cron: text(&v, "/spec/schedule"),
        paused: v.pointer("/spec/paused").and_then(Value::as_bool) == Some(true),
        phase: text(&v, "/status/phase"),
        validation_errors: strs(&v, "/status/validationErrors"),
        last_backup: last.max(newest),
        created: ts(&v, "/metadata/creationTimestamp"),
        included: strs(&v, "/spec/template/includedNamespaces"),
        excluded: strs(&v, "/spec/template/excludedNamespaces"),
        storage_location: v
            .pointer("/spec/template/storageLocation")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_policy: policy,
    }
}

/// A backup's resource list (`"v1/Namespace": ["a"]`).
type ResourceList = BTreeMap<String, Vec<String>>;
/// One backup's download, done once and shared by every namespace that asks.
type ListCell = Arc<OnceCell<Result<Arc<ResourceList>, String>>>;

/// Resource lists, downloaded at most once per backup, `limit` at a time.
pub struct ResourceLists {
    cells: Mutex<HashMap<String, ListCell>>,
    permits: Semaphore,
    downloads: AtomicUsize,
}

impl ResourceLists {
    /// An empty cache allowing `limit` concurrent downloads.
    pub fn new(limit: usize) -> Self {
        ResourceLists {
            cells: Mutex::new(HashMap::new()),
            permits: Semaphore::new(limit.max(1)),
            downloads: AtomicUsize::new(0),
        }
    }

    /// How many downloads were made.
    pub fn downloads(&self) -> usize {
        self.downloads.load(Ordering::Relaxed)
    }

    /// The list of `backup`, from the cache or downloaded through `fetch`.
    pub async fn get<F, Fut>(
        &self,
        backup: &str,
        fetch: F,
    ) -> Result<BTreeMap<String, Vec<String>>, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<BTreeMap<String, Vec<String>>, String>>,
    {
        let cell = {
            let mut cells = self
                .cells
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cells.entry(backup.to_owned()).or_default().clone()
        };
        let result = cell
            .get_or_init(|| async {
                let _permit = self.permits.acquire().await;
                self.downloads.fetch_add(1, Ordering::Relaxed);
                fetch().await.map(Arc::new)
            })
            .await;
        result.as_ref().map(|l| (**l).clone()).map_err(Clone::clone)
    }
}

/// The usable backups, newest first, indexed by the namespaces their spec names, so
/// each namespace's candidates are found without walking every backup.
struct BackupIndex {
    /// Usable backups, newest first.
    newest_first: Vec<BackupInfo>,
    /// Namespace → positions of the backups naming it (and nothing but plain names).
    named: HashMap<String, Vec<usize>>,
    /// Positions of the backups with `*`, globs, exclusions or no includes.
    wild: Vec<usize>,
}

impl BackupIndex {
    fn new(backups: &[BackupInfo]) -> Self {
        let mut newest_first: Vec<BackupInfo> = backups
            .iter()
            .filter(|b| choice::usability(b, false).is_ok())
            .cloned()
            .collect();
        choice::sort_newest_first(&mut newest_first);
        let mut named: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wild = Vec::new();
        for (i, b) in newest_first.iter().enumerate() {
            let plain = !b.included.is_empty()
                && b.excluded.is_empty()
                && b.included
                    .iter()
                    .all(|p| p != "*" && !p.contains(['*', '?', '[']));
            if plain {
                for ns in b.included.iter().collect::<BTreeSet<_>>() {
                    named.entry(ns.clone()).or_default().push(i);
                }
            } else {
                wild.push(i);
            }
        }
        BackupIndex {
            newest_first,
            named,
            wild,
        }
    }

    /// The usable backups whose spec does not rule out `ns`, newest first: all that
    /// `choice::choose` would not skip.
    fn possible(&self, ns: &str) -> Vec<BackupInfo> {
        let mut at: Vec<usize> = self.named.get(ns).cloned().unwrap_or_default();
        at.extend(&self.wild);
        at.sort_unstable();
        at.into_iter()
            .map(|i| &self.newest_first[i])
            .filter(|b| choice::may_hold(b, ns))
            .cloned()
            .collect()
    }
}

/// The newest usable backup holding each namespace, chosen exactly as `restore` chooses
/// (spec rules out, resource list proves), namespaces `concurrency` at a time.
pub async fn collect_holdings(
    client: &Client,
    velero_namespace: &str,
    backups: &[BackupInfo],
    namespaces: &[String],
    concurrency: usize,
    progress: Option<Progress>,
) -> (BTreeMap<String, Result<Option<BackupInfo>, String>>, usize) {
    let cache = ResourceLists::new(concurrency);
    let index = &BackupIndex::new(backups);
    let done = AtomicUsize::new(0);
    let total = namespaces.len();
    let results: Vec<(String, Result<Option<BackupInfo>, String>)> =
        futures::stream::iter(namespaces)
            .map(|ns| {
                let cache = &cache;
                let done = &done;
                let progress = progress.clone();
                async move {
                    // Only backups the spec and phase do not rule out, newest first: the
                    // rest `choose` would skip anyway, and the list is walked per namespace.
                    let possible = index.possible(ns);
                    let candidates =
                        choice::plan_candidates(possible, &BackupSource::Newest, ns, false);
                    let chosen = choice::choose(candidates, ns, async |backup: &str| {
                        cache
                            .get(backup, || async {
                                download::backup_resource_list(client, velero_namespace, backup)
                                    .await
                                    .map_err(|e| e.to_string())
                            })
                            .await
                    })
                    .await
                    .map(|c| c.chosen().map(|c| c.backup.clone()));
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(p) = &progress {
                        p(n, total);
                    }
                    (ns.clone(), chosen)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    (results.into_iter().collect(), cache.downloads())
}

/// The newest file in `dir` (a `backup db` dump), if any.
pub fn collect_dumps(dir: &Path) -> Result<Option<DumpFacts>, StatusError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StatusError::BadInput {
        what: format!("--dumps {}", dir.display()),
        reason: e.to_string(),
    })?;
    let mut newest: Option<DumpFacts> = None;
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let Some(modified) = meta
            .modified()
            .ok()
            .and_then(|m| Timestamp::try_from(m).ok())
        else {
            continue;
        };
        if newest.as_ref().is_none_or(|n| modified > n.modified) {
            newest = Some(DumpFacts {
                name: e.file_name().to_string_lossy().into_owned(),
                modified,
                size: meta.len(),
            });
        }
    }
    Ok(newest)
}

/// The newest Helm release record of each release in `namespace`.
async fn collect_helm(client: &Client, namespace: &str) -> Result<Vec<HelmFacts>, KubeError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .map_err(|e| KubeError::api(format!("list Helm release secrets in {namespace}"), e))?;
    Ok(crate::helm::newest_records(&list.items)
        .into_iter()
        .map(|record| HelmFacts {
            hosts: super::checks::helm_value_hosts(&record.value),
            release: record.release,
            namespace: namespace.to_owned(),
            revision: record.revision,
        })
        .collect())
}

/// What is listed from the API server and Velero before anything else.
struct Lists {
    locations: Vec<BackupStorageLocation>,
    schedules: Vec<Schedule>,
    backups: Vec<BackupInfo>,
    all_ns: Vec<Namespace>,
    policy_exists: bool,
}

/// Storage locations, schedules, backups, namespaces and the Redis policy ConfigMap.
async fn collect_lists(client: &Client, vns: &str) -> Result<Lists, KubeError> {
    let locations = list_all(
        &Api::<BackupStorageLocation>::namespaced(client.clone(), vns),
        &format!("backup storage locations in {vns}"),
    )
    .await?;
    let schedules = list_all(
        &Api::<Schedule>::namespaced(client.clone(), vns),
        &format!("schedules in {vns}"),
    )
    .await?;
    let backups = restore_collect::collect_backups(client, vns, &BackupSource::Newest).await?;
    let all_ns = namespaces::collect_namespaces(client).await?;
    let policy = crate::backup::plan::POLICY_CONFIGMAP;
    let policy_exists = Api::<ConfigMap>::namespaced(client.clone(), vns)
        .get_opt(policy)
        .await
        .map_err(|e| KubeError::api(format!("get ConfigMap {vns}/{policy}"), e))?
        .is_some();
    Ok(Lists {
        locations,
        schedules,
        backups,
        all_ns,
        policy_exists,
    })
}

/// Each schedule as facts, its last backup at least the start of its newest labelled backup.
fn schedules_facts(schedules: &[Schedule], backups: &[BackupInfo]) -> Vec<ScheduleFacts> {
    let mut newest_by_schedule: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for b in backups {
        if let (Some(s), Some(t)) = (b.schedule.as_deref(), b.started) {
            let e = newest_by_schedule.entry(s).or_insert(t);
            *e = (*e).max(t);
        }
    }
    schedules
        .iter()
        .map(|s| {
            let name = s.metadata.name.as_deref().unwrap_or("");
            schedule_facts(s, newest_by_schedule.get(name).copied())
        })
        .collect()
}

/// Houston's side: its secret, the database host the secrets use, and its rows.
struct HoustonFacts {
    secret_name: String,
    secret: HoustonSecret,
    secrets_host: Option<String>,
    rows: Result<Vec<DeploymentRow>, String>,
}

/// What Houston's backend secret holds in its `connection` key.
fn houston_secret_of(raw: Option<&platform::RawSecret>, pns: &str, name: &str) -> HoustonSecret {
    match raw.map(|s| s.text(platform::CONNECTION_KEY)) {
        None => HoustonSecret::Unusable(format!("secret {pns}/{name} not found")),
        Some(Err(e)) => HoustonSecret::Unusable(e.to_string()),
        Some(Ok(t)) if crate::connection::is_placeholder(t.trim()) => HoustonSecret::Placeholder,
        Some(Ok(t)) => match crate::connection::PgConnection::parse(&t) {
            Ok(c) => HoustonSecret::Url {
                host: c.host().to_owned(),
            },
            Err(e) => HoustonSecret::Unusable(format!("key connection is not a Postgres URL: {e}")),
        },
    }
}

/// Houston: the secret, then the rows through the cluster (or `--local`).
async fn collect_houston(
    client: &Client,
    opts: &CollectOptions,
) -> Result<HoustonFacts, StatusError> {
    let pns = opts.platform_namespace.as_str();
    let secret_name = opts.platform.houston_secret();
    let raw = platform::read_secret(client, pns, &secret_name)
        .await
        .map_err(|e| StatusError::BadInput {
            what: format!("secret {pns}/{secret_name}"),
            reason: e.to_string(),
        })?;
    let secret = houston_secret_of(raw.as_ref(), pns, &secret_name);
    let bootstrap = platform::read_secret(client, pns, platform::BOOTSTRAP_SECRET)
        .await
        .ok()
        .flatten();
    let resolved = platform::resolve_houston(pns, &opts.platform, raw.as_ref(), bootstrap.as_ref());
    let secrets_host = resolved
        .as_ref()
        .ok()
        .map(|r| r.connection.host().to_owned());
    let rows = match &resolved {
        Err(e) => Err(e.to_string()),
        Ok(r) => pgtunnel::with_connection(client, &opts.access, &r.connection, async |c| {
            let columns = houston::collect_columns(c).await?;
            houston::collect_rows(c, &columns).await
        })
        .await
        .map_err(|e: pgtunnel::SessionError<HoustonError>| e.to_string()),
    };
    Ok(HoustonFacts {
        secret_name,
        secret,
        secrets_host,
        rows,
    })
}

/// The namespaces that need a holding backup: the platform's, the labelled deployment
/// namespaces and every Houston deployment's, sorted.
fn wanted_namespaces(
    namespaces: &PlatformNamespaces,
    pns: &str,
    houston: &Result<Vec<DeploymentRow>, String>,
) -> Vec<String> {
    let mut wanted: BTreeSet<String> = namespaces.deployments.iter().cloned().collect();
    wanted.insert(pns.to_owned());
    for r in houston.iter().flatten() {
        wanted.insert(
            r.namespace
                .clone()
                .unwrap_or_else(|| format!("{pns}-{}", r.release)),
        );
    }
    wanted.into_iter().collect()
}

/// Every namespace's holding backup, or (when the server does not answer) why not.
async fn holdings_if_answered(
    client: &Client,
    opts: &CollectOptions,
    server: &ServerAnswer,
    backups: &[BackupInfo],
    wanted: &[String],
    progress: Option<Progress>,
) -> (BTreeMap<String, Result<Option<BackupInfo>, String>>, usize) {
    if server.answered() {
        return collect_holdings(
            client,
            &opts.velero_namespace,
            backups,
            wanted,
            opts.concurrency,
            progress,
        )
        .await;
    }
    let why = "the Velero server does not answer, so backup resource lists cannot be read";
    let holdings = wanted
        .iter()
        .map(|n| (n.clone(), Err(why.to_owned())))
        .collect();
    (holdings, 0)
}

/// The Helm facts of every deployment namespace, `concurrency` namespaces at a time, in
/// namespace order (`buffered`): the report is the same on every run, so it diffs.
async fn collect_all_helm(
    client: &Client,
    deployments: &[String],
    concurrency: usize,
) -> Result<Vec<HelmFacts>, KubeError> {
    let per_namespace = futures::stream::iter(deployments)
        .map(|ns| collect_helm(client, ns))
        .buffered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let per_namespace = per_namespace
        .into_iter()
        .collect::<Result<Vec<Vec<HelmFacts>>, KubeError>>()?;
    Ok(per_namespace.into_iter().flatten().collect())
}

/// Reads everything. Parts that cannot be read become `unknown` verdicts later; only
/// failures of the API server itself end the command.
pub async fn collect(
    client: &Client,
    opts: &CollectOptions,
    progress: Option<Progress>,
) -> Result<Facts, StatusError> {
    let vns = opts.velero_namespace.as_str();
    let pns = opts.platform_namespace.as_str();
    let now = Timestamp::now();

    // The server check runs while the lists are read.
    let (server, lists) = tokio::join!(
        crate::velero::server_status::ask(
            client,
            vns,
            "kubectl-astro-status-",
            opts.server_timeout
        ),
        collect_lists(client, vns)
    );
    let lists = lists?;
    let schedules = schedules_facts(&lists.schedules, &lists.backups);
    let namespaces = namespaces::plan_platform_namespaces(&lists.all_ns, pns, &opts.platform.name);
    let houston = collect_houston(client, opts).await?;
    let wanted = wanted_namespaces(&namespaces, pns, &houston.rows);
    let (holdings, downloads) =
        holdings_if_answered(client, opts, &server, &lists.backups, &wanted, progress).await;
    let helm = collect_all_helm(client, &namespaces.deployments, opts.concurrency).await?;
    let dumps = match &opts.dumps {
        Some(d) => Some(collect_dumps(d)?),
        None => None,
    };
    Ok(Facts {
        now,
        velero_namespace: vns.to_owned(),
        platform_namespace: pns.to_owned(),
        platform_release: opts.platform.name.clone(),
        server,
        locations: lists.locations.iter().map(location_facts).collect(),
        schedules,
        policy_exists: lists.policy_exists,
        namespaces,
        houston: houston.rows,
        houston_secret_name: houston.secret_name,
        houston_secret: houston.secret,
        secrets_host: houston.secrets_host,
        dumps,
        holdings,
        helm,
        stats: CollectStats {
            backups: lists.backups.len(),
            downloads,
            namespaces: wanted.len(),
        },
    })
}
