//! A simulated Velero server: Backups, Restores, DownloadRequests, DeleteBackupRequests
//! and ServerStatusRequests
//! move through their phases as Velero moves them, with test-chosen outcomes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::store::{Store, now};
use crate::{Shared, lock};

/// Which kind of Velero operation an outcome applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VeleroKind {
    /// `velero.io/v1` Backup.
    Backup,
    /// `velero.io/v1` Restore.
    Restore,
}

/// What the simulated Velero does with the next Backup or Restore of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VeleroOutcome {
    /// Completes without errors or warnings (the default).
    Completed,
    /// Completes with these warnings (phase `Completed`, `status.warnings` counted).
    CompletedWithWarnings(Vec<String>),
    /// Ends `PartiallyFailed` with these errors and warnings in its results.
    PartiallyFailed {
        /// Error messages (reported under `velero` in the results file).
        errors: Vec<String>,
        /// Warning messages.
        warnings: Vec<String>,
    },
    /// Ends `Failed` with this `status.failureReason`.
    Failed {
        /// The failure reason.
        reason: String,
    },
    /// Ends `FailedValidation` with these `status.validationErrors`.
    FailedValidation {
        /// The validation errors.
        errors: Vec<String>,
    },
    /// Stays `InProgress` forever (for timeout and Ctrl-C tests).
    Stuck,
    /// Completes having restored nothing (phase `Completed`, 0 items), as Velero does for a
    /// backup that names the namespace but holds nothing of it.
    CompletedEmpty,
}

/// Simulator state shared with the HTTP server (download files) and the test API.
#[derive(Default)]
pub(crate) struct VeleroState {
    outcomes: HashMap<VeleroKind, VecDeque<VeleroOutcome>>,
    /// Backed-up objects per backup (`ns/name`), what a restore brings back.
    snapshots: HashMap<String, Arc<Vec<Value>>>,
    /// Results files (`{"errors":…,"warnings":…}`) per `Backup/ns/name` or `Restore/ns/name`.
    results: HashMap<String, Value>,
    /// Resource lists per `Backup/ns/name` or `Restore/ns/name`.
    resource_lists: HashMap<String, Value>,
    /// Gzipped download files by token.
    downloads: HashMap<String, Vec<u8>>,
    download_order: VecDeque<String>,
    pub step: Duration,
    /// Where plugin binaries are (`Options::velero_plugin_dir`).
    pub plugin_dir: Option<std::path::PathBuf>,
    /// Whether ServerStatusRequests are answered (false: a server that does not run).
    pub server_down: bool,
    /// Plugins the server reports (`kind`, `name`) in answers to ServerStatusRequests.
    pub plugins: Vec<(String, String)>,
}

/// The plugins a stock Velero server with the AWS plugin reports.
pub(crate) fn default_plugins() -> Vec<(String, String)> {
    [
        ("BackupItemAction", "velero.io/pod"),
        ("BackupItemAction", "velero.io/pv"),
        ("BackupItemAction", "velero.io/service-account"),
        ("ObjectStore", "velero.io/aws"),
        ("RestoreItemAction", "velero.io/pod"),
        ("VolumeSnapshotter", "velero.io/aws"),
    ]
    .iter()
    .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
    .collect()
}

const DOWNLOAD_CAP: usize = 1000;

impl VeleroState {
    pub fn set_outcome(&mut self, kind: VeleroKind, outcome: VeleroOutcome) {
        self.outcomes.entry(kind).or_default().push_back(outcome);
    }

    fn next_outcome(&mut self, kind: VeleroKind) -> VeleroOutcome {
        self.outcomes
            .get_mut(&kind)
            .and_then(VecDeque::pop_front)
            .unwrap_or(VeleroOutcome::Completed)
    }

    /// A download file by token.
    pub fn download(&self, token: &str) -> Option<Vec<u8>> {
        self.downloads.get(token).cloned()
    }

    fn store_download(&mut self, token: String, data: Vec<u8>) {
        if self.download_order.len() >= DOWNLOAD_CAP
            && let Some(old) = self.download_order.pop_front()
        {
            self.downloads.remove(&old);
        }
        self.download_order.push_back(token.clone());
        self.downloads.insert(token, data);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a namespace is selected by include/exclude lists (`*` or empty includes all).
fn namespace_selected(spec: &Value, ns: &str) -> bool {
    let included = strings(&spec["includedNamespaces"]);
    let excluded = strings(&spec["excludedNamespaces"]);
    (included.is_empty() || included.iter().any(|n| n == "*" || n == ns))
        && !excluded.iter().any(|n| n == ns)
}

fn labels_selected(spec: &Value, obj: &Value) -> bool {
    let Some(want) = spec
        .pointer("/labelSelector/matchLabels")
        .and_then(Value::as_object)
    else {
        return true;
    };
    want.iter()
        .all(|(k, v)| obj.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
}

/// Objects a Backup with `spec` takes from the store right now.
fn collect_backup(st: &Store, spec: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (t, ty) in st.types.iter().enumerate() {
        if ty.group == "velero.io" || ty.kind == "Event" || ty.group == "apiextensions.k8s.io" {
            continue;
        }
        if ty.namespaced {
            for obj in st.all(t, None) {
                if namespace_selected(spec, meta(&obj, "namespace")) && labels_selected(spec, &obj)
                {
                    out.push((*obj).clone());
                }
            }
        } else if ty.kind == "Namespace" {
            for obj in st.all(t, None) {
                if namespace_selected(spec, meta(&obj, "name")) {
                    out.push((*obj).clone());
                }
            }
        } else if spec["includeClusterResources"] == json!(true) {
            out.extend(st.all(t, None).into_iter().map(|o| (*o).clone()));
        }
    }
    out
}

/// Velero's resource list: `{"apps/v1/Deployment": ["ns/name"], "v1/Namespace": ["ns"]}`.
fn resource_list(objects: &[Value]) -> Value {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in objects {
        let key = format!(
            "{}/{}",
            o["apiVersion"].as_str().unwrap_or(""),
            o["kind"].as_str().unwrap_or("")
        );
        let ns = meta(o, "namespace");
        let name = meta(o, "name");
        map.entry(key).or_default().push(if ns.is_empty() {
            name.to_string()
        } else {
            format!("{ns}/{name}")
        });
    }
    json!(map)
}

fn result_map(messages: &[String]) -> Value {
    if messages.is_empty() {
        json!({})
    } else {
        json!({"velero": messages})
    }
}

/// Snapshots the fixture backups that are already Completed, so they can be restored.
pub(crate) fn snapshot_existing(st: &Store, state: &mut VeleroState) {
    let Some(t) = st.find_kind("velero.io/v1", "Backup") else {
        return;
    };
    for b in st.all(t, None) {
        let phase = b
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if phase == "Completed" || phase == "PartiallyFailed" {
            let key = format!("{}/{}", meta(&b, "namespace"), meta(&b, "name"));
            let objects = collect_backup(st, &b["spec"]);
            state
                .resource_lists
                .insert(format!("Backup/{key}"), resource_list(&objects));
            state.snapshots.insert(key, Arc::new(objects));
        }
    }
}

/// Runs until the runtime stops: reacts to new Velero objects.
pub(crate) async fn run(shared: Arc<Shared>) {
    let (mut changes, mut last, kinds) = {
        let st = lock(&shared.store);
        let kinds: Vec<Option<usize>> = [
            "Backup",
            "Restore",
            "DownloadRequest",
            "DeleteBackupRequest",
            "ServerStatusRequest",
        ]
        .iter()
        .map(|k| st.find_kind("velero.io/v1", k))
        .collect();
        (st.subscribe(), 0u64, kinds)
    };
    loop {
        let new: Vec<(usize, String, String)> = {
            let st = lock(&shared.store);
            let mut out = Vec::new();
            let events: Vec<_> = if last < st.oldest_watchable() {
                // History lost: consider every object (new ones are recognised by phase).
                kinds
                    .iter()
                    .flatten()
                    .flat_map(|t| st.all(*t, None).into_iter().map(move |o| (*t, o)))
                    .collect()
            } else {
                st.events_after(last)
                    .filter(|e| e.kind == crate::store::EventType::Added)
                    .map(|e| (e.type_idx, e.object.clone()))
                    .collect()
            };
            for (t, obj) in events {
                let phase = obj
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if kinds.contains(&Some(t)) && (phase.is_empty() || phase == "New") {
                    out.push((
                        t,
                        meta(&obj, "namespace").to_string(),
                        meta(&obj, "name").to_string(),
                    ));
                }
            }
            last = st.resource_version();
            out
        };
        for (t, ns, name) in new {
            let shared = shared.clone();
            let kind = lock(&shared.store).types[t].kind.clone();
            tokio::spawn(async move {
                match kind.as_str() {
                    "Backup" => backup(shared, t, ns, name).await,
                    "Restore" => restore(shared, t, ns, name).await,
                    "DownloadRequest" => download_request(shared, t, ns, name).await,
                    "ServerStatusRequest" => server_status_request(shared, t, ns, name).await,
                    "Schedule" => schedule(shared, t, ns, name).await,
                    _ => delete_backup_request(shared, t, ns, name).await,
                }
            });
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Applies `f` to the stored object (status included); false when it is gone.
fn mutate(shared: &Shared, t: usize, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> bool {
    let mut st = lock(&shared.store);
    let Some(cur) = st.get(t, ns, name) else {
        return false;
    };
    let mut obj = (*cur).clone();
    f(&mut obj);
    let sub = if st.types[t].status_subresource {
        Some("status")
    } else {
        None
    };
    st.update(t, ns, name, obj.clone(), sub, false).is_ok()
        && (sub.is_none() || {
            // Kinds with a status subresource: write metadata/spec changes too.
            let cur = st.get(t, ns, name);
            cur.is_some_and(|c| {
                let mut o = obj;
                o["metadata"]["resourceVersion"] = c["metadata"]["resourceVersion"].clone();
                st.update(t, ns, name, o, None, false).is_ok()
            })
        })
}

fn step(shared: &Shared) -> Duration {
    lock(&shared.velero).step
}

fn bsl_problem(st: &Store, velero_ns: &str, location: &str, explicit: bool) -> Option<String> {
    let t = st.find_kind("velero.io/v1", "BackupStorageLocation")?;
    let Some(bsl) = st.get(t, velero_ns, location) else {
        return Some(if explicit {
            format!(
                "a BackupStorageLocation CRD with the name specified in the backup spec needs to be created before this backup can be executed. Error: backupstoragelocations.velero.io \"{location}\" not found"
            )
        } else {
            format!(
                "an existing backup storage location wasn't specified at backup creation time and the default '{location}' wasn't found. Please address this issue (see `velero backup-location -h` for options) and create a new backup. Error: backupstoragelocations.velero.io \"{location}\" not found"
            )
        });
    };
    if bsl.pointer("/spec/accessMode").and_then(Value::as_str) == Some("ReadOnly") {
        return Some(format!(
            "backup can't be created because backup storage location {location} is currently in read-only mode"
        ));
    }
    if bsl.pointer("/status/phase").and_then(Value::as_str) == Some("Unavailable") {
        return Some(format!(
            "backup can't be created because BackupStorageLocation {location} is in Unavailable status."
        ));
    }
    None
}

fn default_location(st: &Store, velero_ns: &str) -> String {
    st.find_kind("velero.io/v1", "BackupStorageLocation")
        .and_then(|t| {
            st.all(t, Some(velero_ns))
                .into_iter()
                .find(|b| b.pointer("/spec/default") == Some(&json!(true)))
                .map(|b| meta(&b, "name").to_string())
        })
        .unwrap_or_else(|| "default".into())
}

/// `720h0m0s`-style durations (h, m, s parts).
fn parse_duration(s: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
        } else {
            let n: f64 = num.parse().ok()?;
            num.clear();
            total += (n * match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => return None,
            }) as i64;
        }
    }
    num.is_empty().then_some(total)
}

fn timestamp_in(secs: i64) -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn backup(shared: Arc<Shared>, t: usize, ns: String, name: String) {
    let step = step(&shared);
    let (spec, location, problem) = {
        let st = lock(&shared.store);
        let Some(obj) = st.get(t, &ns, &name) else {
            return;
        };
        let spec = obj["spec"].clone();
        let explicit = spec["storageLocation"].as_str().filter(|s| !s.is_empty());
        let location = explicit
            .map(String::from)
            .unwrap_or_else(|| default_location(&st, &ns));
        let problem = bsl_problem(&st, &ns, &location, explicit.is_some());
        (spec, location, problem)
    };
    let outcome = lock(&shared.velero).next_outcome(VeleroKind::Backup);
    let ttl = spec["ttl"]
        .as_str()
        .and_then(parse_duration)
        .unwrap_or(720 * 3600);
    let validation = match (&problem, &outcome) {
        (Some(p), _) => Some(vec![p.clone()]),
        (None, VeleroOutcome::FailedValidation { errors }) => Some(errors.clone()),
        _ => None,
    };
    if let Some(errors) = validation {
        tokio::time::sleep(step).await;
        mutate(&shared, t, &ns, &name, |o| {
            o["status"] = json!({"phase": "FailedValidation", "validationErrors": errors,
                "version": 1, "formatVersion": "1.1.0", "expiration": timestamp_in(ttl)});
        });
        return;
    }
    tokio::time::sleep(step).await;
    if !mutate(&shared, t, &ns, &name, |o| {
        o["metadata"]["labels"]["velero.io/storage-location"] = json!(location);
        o["spec"]["storageLocation"] = json!(location);
        o["status"] =
            json!({"phase": "Queued", "queuePosition": 1, "version": 1, "formatVersion": "1.1.0"});
    }) {
        return;
    }
    tokio::time::sleep(step).await;
    let objects = collect_backup(&lock(&shared.store), &spec);
    let total = objects.len() as i64;
    let started = now();
    if !mutate(&shared, t, &ns, &name, |o| {
        o["status"] = json!({"phase": "InProgress", "version": 1, "formatVersion": "1.1.0",
            "startTimestamp": started, "expiration": timestamp_in(ttl),
            "progress": {"totalItems": total, "itemsBackedUp": total / 2}});
    }) {
        return;
    }
    if outcome == VeleroOutcome::Stuck {
        return;
    }
    tokio::time::sleep(step).await;
    let key = format!("{ns}/{name}");
    let (phase, errors, warnings, failure) = match &outcome {
        VeleroOutcome::CompletedWithWarnings(w) => ("Completed", vec![], w.clone(), None),
        VeleroOutcome::PartiallyFailed { errors, warnings } => {
            ("PartiallyFailed", errors.clone(), warnings.clone(), None)
        }
        VeleroOutcome::Failed { reason } => ("Failed", vec![], vec![], Some(reason.clone())),
        _ => ("Completed", vec![], vec![], None),
    };
    {
        let mut v = lock(&shared.velero);
        v.resource_lists
            .insert(format!("Backup/{key}"), resource_list(&objects));
        v.results.insert(
            format!("Backup/{key}"),
            json!({"errors": result_map(&errors), "warnings": result_map(&warnings)}),
        );
        if failure.is_none() {
            v.snapshots.insert(key, Arc::new(objects));
        }
    }
    mutate(&shared, t, &ns, &name, |o| {
        let mut status = json!({"phase": phase, "version": 1, "formatVersion": "1.1.0",
            "startTimestamp": started, "completionTimestamp": now(), "expiration": timestamp_in(ttl),
            "progress": {"totalItems": total, "itemsBackedUp": if failure.is_some() { total / 2 } else { total }}});
        if !errors.is_empty() {
            status["errors"] = json!(errors.len());
        }
        if !warnings.is_empty() {
            status["warnings"] = json!(warnings.len());
        }
        if let Some(r) = &failure {
            status["failureReason"] = json!(r);
        }
        o["status"] = status;
    });
}

/// Removes server-set fields before re-creating an object, as Velero's restore does.
fn restorable(mut obj: Value, target_ns: Option<&str>, backup: &str, restore: &str) -> Value {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
            "ownerReferences",
        ] {
            m.remove(f);
        }
        if let Some(ns) = target_ns {
            m.insert("namespace".into(), json!(ns));
        }
    }
    obj["metadata"]["labels"]["velero.io/backup-name"] = json!(backup);
    obj["metadata"]["labels"]["velero.io/restore-name"] = json!(restore);
    if obj["kind"] == "Namespace" {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        if let Some(ns) = target_ns {
            obj["metadata"]["name"] = json!(ns);
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
    }
    obj
}

async fn restore(shared: Arc<Shared>, t: usize, ns: String, name: String) {
    let step = step(&shared);
    let outcome = lock(&shared.velero).next_outcome(VeleroKind::Restore);
    let (spec, backup_name, problem) = {
        let st = lock(&shared.store);
        let Some(obj) = st.get(t, &ns, &name) else {
            return;
        };
        let spec = obj["spec"].clone();
        let bt = st.find_kind("velero.io/v1", "Backup");
        let mut backup_name = spec["backupName"].as_str().unwrap_or("").to_string();
        if backup_name.is_empty()
            && let (Some(schedule), Some(bt)) = (spec["scheduleName"].as_str(), bt)
        {
            backup_name = st
                .all(bt, Some(&ns))
                .into_iter()
                .filter(|b| {
                    b.pointer("/metadata/labels/velero.io~1schedule-name")
                        .and_then(Value::as_str)
                        == Some(schedule)
                        && b.pointer("/status/phase").and_then(Value::as_str) == Some("Completed")
                })
                .max_by_key(|b| {
                    b.pointer("/status/startTimestamp")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
                .map(|b| meta(&b, "name").to_string())
                .unwrap_or_default();
        }
        let problem = if backup_name.is_empty() {
            Some("Either a backup or schedule must be specified as a source for the restore, but not both".to_string())
        } else {
            match bt.and_then(|bt| st.get(bt, &ns, &backup_name)) {
                None => Some(format!(
                    "Error retrieving backup: backups.velero.io \"{backup_name}\" not found"
                )),
                Some(b) => {
                    let phase = b
                        .pointer("/status/phase")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    (phase != "Completed" && phase != "PartiallyFailed").then(|| {
                        format!("backup \"{backup_name}\" is in phase {phase:?}; only Completed or PartiallyFailed backups can be restored")
                    })
                }
            }
        };
        (spec, backup_name, problem)
    };
    let validation = match (&problem, &outcome) {
        (Some(p), _) => Some(vec![p.clone()]),
        (None, VeleroOutcome::FailedValidation { errors }) => Some(errors.clone()),
        _ => None,
    };
    tokio::time::sleep(step).await;
    if let Some(errors) = validation {
        mutate(&shared, t, &ns, &name, |o| {
            o["status"] = json!({"phase": "FailedValidation", "validationErrors": errors});
        });
        return;
    }
    let snapshot = lock(&shared.velero)
        .snapshots
        .get(&format!("{ns}/{backup_name}"))
        .cloned()
        .unwrap_or_default();
    let mapping: HashMap<String, String> = spec["namespaceMapping"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let update_existing = spec["existingResourcePolicy"].as_str() == Some("update");
    let selected: Vec<&Value> = snapshot
        .iter()
        .filter(|_| outcome != VeleroOutcome::CompletedEmpty)
        .filter(|o| {
            let ons = if o["kind"] == "Namespace" {
                meta(o, "name")
            } else {
                meta(o, "namespace")
            };
            namespace_selected(&spec, ons) && labels_selected(&spec, o)
        })
        .collect();
    // Velero runs every item through its plugins' RestoreItemActions first.
    let (plugged, plugin_errors) =
        crate::velero_plugins::for_restore(&shared, &ns, &name, &selected).await;
    let selected: Vec<&Value> = match &plugged {
        Some(items) => items.iter().collect(),
        None => selected,
    };
    let total = selected.len() as i64;
    let started = now();
    if !mutate(&shared, t, &ns, &name, |o| {
        o["status"] = json!({"phase": "InProgress", "startTimestamp": started,
            "progress": {"totalItems": total, "itemsRestored": 0}});
    }) {
        return;
    }
    if outcome == VeleroOutcome::Stuck {
        return;
    }
    tokio::time::sleep(step).await;
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut warnings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut restored = Vec::new();
    {
        let mut st = lock(&shared.store);
        // Namespaces first, like Velero's resource priorities.
        let mut ordered = selected.clone();
        ordered.sort_by_key(|o| if o["kind"] == "Namespace" { 0 } else { 1 });
        for o in ordered {
            let is_ns = o["kind"] == "Namespace";
            let src_ns = if is_ns {
                meta(o, "name")
            } else {
                meta(o, "namespace")
            }
            .to_string();
            let dst_ns = mapping
                .get(&src_ns)
                .cloned()
                .unwrap_or_else(|| src_ns.clone());
            let obj = restorable(
                o.clone(),
                (!dst_ns.is_empty()).then_some(dst_ns.as_str()),
                &backup_name,
                &name,
            );
            let Some(ot) = st.find_kind(
                o["apiVersion"].as_str().unwrap_or(""),
                o["kind"].as_str().unwrap_or(""),
            ) else {
                continue;
            };
            let oname = meta(&obj, "name").to_string();
            let key_ns = if st.types[ot].namespaced {
                dst_ns.clone()
            } else {
                String::new()
            };
            let label = format!("{} \"{}\"", o["kind"].as_str().unwrap_or(""), oname);
            if let Some(existing) = st.get(ot, &key_ns, &oname) {
                if is_ns {
                    if existing.pointer("/status/phase").and_then(Value::as_str)
                        == Some("Terminating")
                    {
                        errors.entry(dst_ns.clone()).or_default().push(format!(
                            "error restoring namespaces/{dst_ns}: namespace {dst_ns} is being terminated"
                        ));
                    }
                    continue;
                }
                if update_existing {
                    let mut upd = obj.clone();
                    upd["metadata"]["resourceVersion"] =
                        existing["metadata"]["resourceVersion"].clone();
                    if let Err(e) = st.update(ot, &key_ns, &oname, upd, None, false) {
                        warnings
                            .entry(dst_ns.clone())
                            .or_default()
                            .push(format!("could not update {label}: {}", e.message));
                    } else {
                        restored.push(obj);
                    }
                } else {
                    warnings.entry(dst_ns.clone()).or_default().push(format!(
                        "could not restore, {label} already exists. Warning: the in-cluster version is different than the backed-up version"
                    ));
                }
                continue;
            }
            match st.create(ot, &key_ns, obj.clone(), false) {
                Ok(_) => restored.push(obj),
                Err(e) => errors
                    .entry(dst_ns.clone())
                    .or_default()
                    .push(format!("error restoring {label}: {}", e.message)),
            }
        }
    }
    let (mut phase, failure) = match &outcome {
        VeleroOutcome::Failed { reason } => ("Failed", Some(reason.clone())),
        VeleroOutcome::PartiallyFailed { .. } => ("PartiallyFailed", None),
        _ => ("Completed", None),
    };
    let mut velero_errors = Vec::new();
    let mut velero_warnings = Vec::new();
    match &outcome {
        VeleroOutcome::PartiallyFailed {
            errors: e,
            warnings: w,
        } => {
            velero_errors = e.clone();
            velero_warnings = w.clone();
        }
        VeleroOutcome::CompletedWithWarnings(w) => velero_warnings = w.clone(),
        _ => {}
    }
    velero_errors.extend(plugin_errors);
    let count = |m: &BTreeMap<String, Vec<String>>, extra: &[String]| {
        m.values().map(Vec::len).sum::<usize>() + extra.len()
    };
    let error_count = count(&errors, &velero_errors);
    let warning_count = count(&warnings, &velero_warnings);
    if error_count > 0 && phase == "Completed" {
        phase = "PartiallyFailed";
    }
    let result = |m: &BTreeMap<String, Vec<String>>, extra: &[String]| {
        let mut r = json!({});
        if !extra.is_empty() {
            r["velero"] = json!(extra);
        }
        if !m.is_empty() {
            r["namespaces"] = json!(m);
        }
        r
    };
    {
        let mut v = lock(&shared.velero);
        let key = format!("Restore/{ns}/{name}");
        v.resource_lists
            .insert(key.clone(), resource_list(&restored));
        v.results.insert(
            key,
            json!({"errors": result(&errors, &velero_errors), "warnings": result(&warnings, &velero_warnings)}),
        );
    }
    mutate(&shared, t, &ns, &name, |o| {
        let mut status = json!({"phase": phase, "startTimestamp": started, "completionTimestamp": now(),
            "progress": {"totalItems": total, "itemsRestored": restored.len()}});
        if error_count > 0 {
            status["errors"] = json!(error_count);
        }
        if warning_count > 0 {
            status["warnings"] = json!(warning_count);
        }
        if let Some(r) = &failure {
            status["failureReason"] = json!(r);
        }
        o["status"] = status;
    });
}

async fn download_request(shared: Arc<Shared>, t: usize, ns: String, name: String) {
    tokio::time::sleep(step(&shared) / 2).await;
    let (target_kind, target_name) = {
        let st = lock(&shared.store);
        let Some(obj) = st.get(t, &ns, &name) else {
            return;
        };
        (
            obj.pointer("/spec/target/kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            obj.pointer("/spec/target/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    let owner = if target_kind.starts_with("Restore") {
        "Restore"
    } else {
        "Backup"
    };
    // Velero leaves the request unprocessed when the target does not exist.
    let exists = {
        let st = lock(&shared.store);
        st.find_kind("velero.io/v1", owner)
            .and_then(|ot| st.get(ot, &ns, &target_name))
            .is_some()
    };
    if !exists {
        return;
    }
    let key = format!("{owner}/{ns}/{target_name}");
    let contents = (target_kind == "BackupContents").then(|| {
        let snapshot = lock(&shared.velero)
            .snapshots
            .get(&format!("{ns}/{target_name}"))
            .cloned()
            .unwrap_or_default();
        backup_tarball(&lock(&shared.store), &snapshot)
    });
    let body: Vec<u8> = {
        let v = lock(&shared.velero);
        match target_kind.as_str() {
            "BackupContents" => contents.unwrap_or_default(),
            "BackupResourceList" | "RestoreResourceList" => {
                v.resource_lists.get(&key).cloned().unwrap_or_else(|| json!({})).to_string().into_bytes()
            }
            "BackupResults" | "RestoreResults" => v
                .results
                .get(&key)
                .cloned()
                .unwrap_or_else(|| json!({"errors": {}, "warnings": {}}))
                .to_string()
                .into_bytes(),
            "BackupLog" | "RestoreLog" => format!(
                "time=\"{}\" level=info msg=\"{} {} processed by the simulated Velero\" logSource=\"fake-cluster\"\n",
                now(),
                owner,
                target_name
            )
            .into_bytes(),
            _ => b"[]".to_vec(),
        }
    };
    let token = format!("{ns}.{name}.{}", lock(&shared.store).resource_version());
    lock(&shared.velero).store_download(token.clone(), gzip(&body));
    let url = format!("{}/velero-download/{token}", shared.download_url);
    mutate(&shared, t, &ns, &name, |o| {
        o["status"] =
            json!({"phase": "Processed", "downloadURL": url, "expiration": timestamp_in(600)});
    });
}

/// The backup tarball as Velero writes it (before gzip): `metadata/version`, then each
/// object at `resources/<plural[.group]>/namespaces/<ns>/<name>.json` (or `/cluster/`)
/// and again under `v1-preferredversion/`, as Velero ≥ 1.4 does.
fn backup_tarball(st: &Store, objects: &[Value]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        let _ = tar.append_data(&mut header, path, data);
    };
    add("metadata/version", b"1.1.0");
    for o in objects {
        let Some(t) = st.find_kind(
            o["apiVersion"].as_str().unwrap_or(""),
            o["kind"].as_str().unwrap_or(""),
        ) else {
            continue;
        };
        let ty = &st.types[t];
        let resource = if ty.group.is_empty() {
            ty.plural.clone()
        } else {
            format!("{}.{}", ty.plural, ty.group)
        };
        let place = if ty.namespaced {
            format!("namespaces/{}", meta(o, "namespace"))
        } else {
            "cluster".to_owned()
        };
        let name = meta(o, "name");
        let data = o.to_string();
        add(
            &format!("resources/{resource}/{place}/{name}.json"),
            data.as_bytes(),
        );
        add(
            &format!(
                "resources/{resource}/{}-preferredversion/{place}/{name}.json",
                ty.version
            ),
            data.as_bytes(),
        );
    }
    tar.into_inner().unwrap_or_default()
}

/// Answers like Velero's ServerStatusRequest controller: `Processed`, the server version
/// and its plugins; nothing at all while the server is "down".
async fn server_status_request(shared: Arc<Shared>, t: usize, ns: String, name: String) {
    tokio::time::sleep(step(&shared) / 2).await;
    let (down, mut plugins, dir) = {
        let v = lock(&shared.velero);
        let plugins: Vec<Value> = v
            .plugins
            .iter()
            .map(|(kind, name)| json!({"kind": kind, "name": name}))
            .collect();
        (v.server_down, plugins, v.plugin_dir.clone())
    };
    if down {
        return;
    }
    // What the plugin binaries in `--plugin-dir` register, as Velero lists them.
    for p in crate::velero_plugins::registered(dir.as_deref()).await {
        if !plugins.contains(&p) {
            plugins.push(p);
        }
    }
    mutate(&shared, t, &ns, &name, |o| {
        o["status"] = json!({
            "phase": "Processed",
            "serverVersion": "v1.18.1",
            "processedTimestamp": now(),
            "plugins": plugins,
        });
    });
}

/// Why a cron expression is not one Velero accepts (5 fields or a `@` descriptor).
fn cron_problem(expr: &str) -> Option<String> {
    let expr = expr.trim();
    if expr.starts_with('@') {
        let ok = [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ]
        .contains(&expr)
            || expr
                .strip_prefix("@every ")
                .and_then(parse_duration)
                .is_some();
        return (!ok).then(|| format!("invalid schedule: unrecognized descriptor: {expr}"));
    }
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Some(format!(
            "invalid schedule: expected exactly 5 fields, found {fields}: {expr}"
        ));
    }
    let ok = expr.split_whitespace().all(|f| {
        f.chars()
            .all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c))
    });
    (!ok).then(|| format!("invalid schedule: {expr}"))
}

/// A Schedule becomes `Enabled`, or `FailedValidation` for a bad cron expression.
/// (No backups are started from schedules.)
async fn schedule(shared: Arc<Shared>, t: usize, ns: String, name: String) {
    tokio::time::sleep(step(&shared) / 2).await;
    let expr = {
        let st = lock(&shared.store);
        let Some(obj) = st.get(t, &ns, &name) else {
            return;
        };
        obj.pointer("/spec/schedule")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    mutate(&shared, t, &ns, &name, |o| {
        o["status"] = match cron_problem(&expr) {
            None => json!({"phase": "Enabled"}),
            Some(p) => json!({"phase": "FailedValidation", "validationErrors": [p]}),
        };
    });
}

async fn delete_backup_request(shared: Arc<Shared>, t: usize, ns: String, name: String) {
    tokio::time::sleep(step(&shared)).await;
    let backup_name = {
        let st = lock(&shared.store);
        let Some(obj) = st.get(t, &ns, &name) else {
            return;
        };
        obj.pointer("/spec/backupName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    mutate(&shared, t, &ns, &name, |o| {
        o["status"] = json!({"phase": "InProgress"})
    });
    tokio::time::sleep(step(&shared)).await;
    {
        let mut st = lock(&shared.store);
        if let Some(bt) = st.find_kind("velero.io/v1", "Backup") {
            let _ = st.delete(bt, &ns, &backup_name, None, None, false);
        }
    }
    lock(&shared.velero)
        .snapshots
        .remove(&format!("{ns}/{backup_name}"));
    mutate(&shared, t, &ns, &name, |o| {
        o["status"] = json!({"phase": "Processed"})
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("720h0m0s"), Some(720 * 3600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn cron_expressions() {
        assert_eq!(cron_problem("0 2 * * *"), None);
        assert_eq!(cron_problem("*/15 1-5 * * MON-FRI"), None);
        assert_eq!(cron_problem("@daily"), None);
        assert_eq!(cron_problem("@every 6h"), None);
        assert!(cron_problem("0 2 * *").unwrap().contains("found 4"));
        assert!(cron_problem("@sometimes").is_some());
    }

    #[test]
    fn resource_list_format() {
        let objs = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "a"}}),
        ];
        assert_eq!(
            resource_list(&objs),
            json!({"v1/Namespace": ["a"], "apps/v1/Deployment": ["a/d"]})
        );
    }
}
