//! The object store: one map per resource type, a global resourceVersion counter (like etcd),
//! a bounded event history for watches, ownerReference garbage collection, namespaces.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::registry::{self, ResourceType};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};

/// What happens to a namespace after it was deleted and its content removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NamespaceTermination {
    /// It disappears at once (the default).
    #[default]
    Immediate,
    /// It stays `Terminating` for this long, then disappears.
    After(Duration),
    /// It stays `Terminating` until `FakeCluster::finish_namespace_termination`.
    Manual,
}

/// An API error rendered as a `metav1.Status`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, t: &ResourceType, name: &str) -> Self {
        self.details = Some(json!({"name": name, "group": t.group, "kind": t.plural}));
        self
    }

    pub fn not_found(t: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", t.qualified()),
        )
        .with_details(t, name)
    }

    pub fn conflict(t: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                t.qualified()
            ),
        )
        .with_details(t, name)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, retained for watches.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub rv: u64,
    pub type_idx: usize,
    pub namespace: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
}

type Key = (String, String);
type ObjRef = (usize, String, String);

/// Options of one list call.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
pub(crate) struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

/// All cluster state.
pub(crate) struct Store {
    pub types: Vec<ResourceType>,
    objects: Vec<BTreeMap<Key, Arc<Value>>>,
    rv: u64,
    seq: u64,
    rng: u64,
    events: VecDeque<Event>,
    event_cap: usize,
    owners: HashMap<String, BTreeSet<ObjRef>>,
    pub termination: NamespaceTermination,
    pending_termination: Vec<(String, Instant)>,
    notify: tokio::sync::watch::Sender<u64>,
}

/// Current time in the API server's RFC 3339 form.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object ensured above");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("object ensured above")
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything but metadata and status: a change there bumps `metadata.generation`.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

impl Store {
    pub fn new(notify: tokio::sync::watch::Sender<u64>, termination: NamespaceTermination) -> Self {
        let types = registry::builtins();
        let objects = types.iter().map(|_| BTreeMap::new()).collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Self {
            types,
            objects,
            rv: 1,
            seq: 0,
            rng: seed,
            events: VecDeque::new(),
            event_cap: 50_000,
            owners: HashMap::new(),
            termination,
            pending_termination: Vec::new(),
            notify,
        }
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Oldest resourceVersion a watch can still start from.
    pub fn oldest_watchable(&self) -> u64 {
        self.events.front().map(|e| e.rv - 1).unwrap_or(self.rv)
    }

    /// Retained events with `rv > after`, oldest first.
    pub fn events_after(&self, after: u64) -> impl Iterator<Item = &Event> {
        let start = self.events.partition_point(|e| e.rv <= after);
        self.events.range(start..)
    }

    /// Registers the kinds of a CRD object; re-registering replaces the validator.
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), String> {
        for t in registry::from_crd(crd)? {
            if let Some(i) = self.find(&t.group, &t.version, &t.plural) {
                self.types[i] = t;
            } else {
                self.types.push(t);
                self.objects.push(BTreeMap::new());
            }
        }
        Ok(())
    }

    /// Resource type index by group, version and plural (or kind, case-insensitively).
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Resource type index by apiVersion and kind.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.types
            .iter()
            .position(|t| t.group == group && t.version == version && t.kind == kind)
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                ALPHABET[(self.rng % ALPHABET.len() as u64) as usize] as char
            })
            .collect()
    }

    fn uid(&mut self) -> String {
        self.seq += 1;
        let r = self.rng;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            self.seq >> 48 & 0xfff,
            (self.seq >> 36) & 0xfff,
            self.seq & 0xffff_ffff_ffff
        )
    }

    /// Stores `obj` (resourceVersion stamped), records the event and wakes watchers.
    fn commit(
        &mut self,
        t: usize,
        kind: EventType,
        mut obj: Value,
        previous: Option<Arc<Value>>,
    ) -> Arc<Value> {
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let obj = Arc::new(obj);
        let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
        if let Some(prev) = &previous {
            for owner in owner_uids(prev) {
                if let Some(set) = self.owners.get_mut(&owner) {
                    set.remove(&(t, ns.clone(), name.clone()));
                    if set.is_empty() {
                        self.owners.remove(&owner);
                    }
                }
            }
        }
        if kind == EventType::Deleted {
            self.objects[t].remove(&(ns.clone(), name.clone()));
        } else {
            for owner in owner_uids(&obj) {
                self.owners
                    .entry(owner)
                    .or_default()
                    .insert((t, ns.clone(), name.clone()));
            }
            self.objects[t].insert((ns.clone(), name), obj.clone());
        }
        let _ = uid;
        self.events.push_back(Event {
            rv,
            type_idx: t,
            namespace: ns,
            kind,
            object: obj.clone(),
            previous,
        });
        while self.events.len() > self.event_cap {
            self.events.pop_front();
        }
        self.notify.send_replace(rv);
        obj
    }

    /// One object.
    pub fn get(&self, t: usize, ns: &str, name: &str) -> Option<Arc<Value>> {
        let ns = if self.types[t].namespaced { ns } else { "" };
        self.objects[t]
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Every object of a type (in one namespace if given), sorted by namespace and name.
    pub fn all(&self, t: usize, ns: Option<&str>) -> Vec<Arc<Value>> {
        match ns {
            Some(ns) if self.types[t].namespaced => self.objects[t]
                .range((ns.to_string(), String::new())..)
                .take_while(|(k, _)| k.0 == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            _ => self.objects[t].values().cloned().collect(),
        }
    }

    /// One page of a list call.
    pub fn list(&self, t: usize, ns: Option<&str>, q: &ListQuery) -> Result<ListPage, ApiError> {
        let ns = ns.or(q.fields.pinned("metadata.namespace"));
        let ns = if self.types[t].namespaced { ns } else { None };
        let start: Bound<Key> = match &q.continue_token {
            Some(token) => {
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| {
                        s.split_once('\u{0}')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                    })
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                Bound::Excluded(decoded)
            }
            None => match ns {
                Some(ns) => Bound::Included((ns.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        let map = &self.objects[t];
        let mut items = Vec::new();
        let mut last: Option<&Key> = None;
        let mut more = false;
        let limit = q.limit.filter(|l| *l > 0);
        for (k, v) in map.range((start, Bound::Unbounded)) {
            if let Some(ns) = ns
                && k.0 != ns
            {
                break;
            }
            if !(q.labels.matches(v) && q.fields.matches(v)) {
                continue;
            }
            if let Some(l) = limit
                && items.len() >= l
            {
                // One more match is enough to hand out a continue token; counting the rest
                // would make paging through n items O(n²).
                more = true;
                break;
            }
            items.push(v.clone());
            last = Some(k);
        }
        let continue_token = if more {
            last.map(|(a, b)| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{a}\u{0}{b}"))
            })
        } else {
            None
        };
        Ok(ListPage {
            items,
            resource_version: self.rv,
            continue_token,
        })
    }

    fn namespace_state(&self, ns: &str) -> Option<&str> {
        let obj = self.objects[0].get(&(String::new(), ns.to_string()))?;
        Some(
            obj.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active"),
        )
    }

    /// Fills defaults and server-side conversions, validates against the CRD schema.
    fn normalize(&self, t: usize, obj: &mut Value, name: &str) -> Result<(), ApiError> {
        let ty = &self.types[t];
        let causes = metadata_problems(obj);
        if !causes.is_empty() {
            let mut err = ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: {}",
                    ty.kind,
                    causes
                        .iter()
                        .map(|(f, m)| format!("{f}: {m}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            err.details = Some(json!({"name": name, "group": ty.group, "kind": ty.kind,
                "causes": causes.iter().map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f})).collect::<Vec<_>>()}));
            return Err(err);
        }
        if ty.kind == "Secret" && ty.group.is_empty() {
            convert_string_data(obj);
            if obj
                .get("type")
                .is_none_or(|t| t.as_str().is_none_or(str::is_empty))
            {
                obj["type"] = json!("Opaque");
            }
        }
        if ty.kind == "Namespace" && obj.pointer("/status/phase").is_none() {
            obj["status"] = json!({"phase": "Active"});
        }
        if ty.kind == "Pod" && obj.pointer("/status/phase").is_none() {
            obj["status"] = json!({"phase": "Pending"});
        }
        if let Some(s) = &ty.schema {
            schema::prune(s, obj, true);
        }
        if let Some(v) = &ty.validator {
            let causes = schema::validate(v, obj);
            if !causes.is_empty() {
                let text: Vec<String> = causes
                    .iter()
                    .map(|(f, m)| {
                        format!(
                            "{}: Invalid value: {m}",
                            if f.is_empty() { "<root>" } else { f }
                        )
                    })
                    .collect();
                let mut err = ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{}.{} \"{name}\" is invalid: {}",
                        ty.kind,
                        ty.group,
                        text.join(", ")
                    ),
                );
                err.details = Some(json!({
                    "name": name, "group": ty.group, "kind": ty.kind,
                    "causes": causes.iter().map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: {m}"), "field": f})).collect::<Vec<_>>(),
                }));
                return Err(err);
            }
        }
        Ok(())
    }

    /// Creates an object (POST). `ns` is the URL namespace ("" for cluster-scoped).
    pub fn create(
        &mut self,
        t: usize,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let (api_version, kind, namespaced) = {
            let ty = &self.types[t];
            (ty.api_version(), ty.kind.clone(), ty.namespaced)
        };
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        obj["apiVersion"] = Value::String(api_version);
        obj["kind"] = Value::String(kind.clone());
        let mut name = meta_str(&obj, "name").unwrap_or("").to_string();
        if name.is_empty() {
            match meta_str(&obj, "generateName") {
                Some(prefix) if !prefix.is_empty() => {
                    let prefix = prefix.to_string();
                    loop {
                        let candidate = format!("{prefix}{}", self.random_suffix());
                        if self.get(t, ns, &candidate).is_none() {
                            name = candidate;
                            break;
                        }
                    }
                }
                _ => {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"
                        ),
                    ));
                }
            }
        }
        let body_ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
        if namespaced {
            if ns.is_empty() {
                return Err(ApiError::bad_request(
                    "the namespace of the object must be set in the URL",
                ));
            }
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            match self.namespace_state(ns) {
                None => {
                    return Err(ApiError::new(
                        404,
                        "NotFound",
                        format!("namespaces \"{ns}\" not found"),
                    )
                    .with_details(&self.types[0], ns));
                }
                Some("Terminating") => {
                    let mut e = ApiError::new(
                        403,
                        "Forbidden",
                        format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            self.types[t].qualified()
                        ),
                    );
                    e.details = Some(
                        json!({"name": name, "group": self.types[t].group, "kind": self.types[t].plural,
                        "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
                    );
                    return Err(e);
                }
                Some(_) => {}
            }
        }
        if self.get(t, ns, &name).is_some() {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", self.types[t].qualified()),
            )
            .with_details(&self.types[t], &name));
        }
        let uid = self.uid();
        {
            let meta = meta_mut(&mut obj);
            meta.insert("name".into(), Value::String(name.clone()));
            if namespaced {
                meta.insert("namespace".into(), Value::String(ns.to_string()));
            } else {
                meta.remove("namespace");
            }
            meta.insert("uid".into(), Value::String(uid));
            meta.insert("creationTimestamp".into(), Value::String(now()));
            meta.insert("generation".into(), json!(1));
            meta.remove("resourceVersion");
            meta.remove("deletionTimestamp");
        }
        self.normalize(t, &mut obj, &name)?;
        if kind == "CustomResourceDefinition" && self.types[t].group == "apiextensions.k8s.io" {
            self.register_crd(&obj).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("CustomResourceDefinition \"{name}\" is invalid: {e}"),
                )
            })?;
        }
        if dry_run {
            return Ok(Arc::new(obj));
        }
        Ok(self.commit(t, EventType::Added, obj, None))
    }

    /// Replaces an object (PUT), or its status with `subresource == Some("status")`.
    pub fn update(
        &mut self,
        t: usize,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self
            .get(t, ns, name)
            .ok_or_else(|| ApiError::not_found(&self.types[t], name))?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        let ty = &self.types[t];
        let body_name = meta_str(&obj, "name").unwrap_or(name);
        if body_name != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(ty, name));
        }
        obj["apiVersion"] = Value::String(ty.api_version());
        obj["kind"] = Value::String(ty.kind.clone());
        if subresource == Some("status") {
            let status = obj.get("status").cloned();
            obj = (*old).clone();
            match status {
                Some(s) => obj["status"] = s,
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        } else if ty.status_subresource {
            match old.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let spec_changed = spec_part(&old) != spec_part(&obj);
        {
            let old_meta = old.get("metadata").cloned().unwrap_or_default();
            let namespaced = ty.namespaced;
            let meta = meta_mut(&mut obj);
            meta.insert("name".into(), Value::String(name.to_string()));
            if namespaced {
                meta.insert("namespace".into(), Value::String(ns.to_string()));
            }
            for keep in ["uid", "creationTimestamp", "deletionTimestamp"] {
                match old_meta.get(keep) {
                    Some(v) => meta.insert(keep.into(), v.clone()),
                    None => meta.remove(keep),
                };
            }
            meta.insert(
                "generation".into(),
                json!(if spec_changed {
                    generation + 1
                } else {
                    generation
                }),
            );
            meta.insert(
                "resourceVersion".into(),
                old_meta.get("resourceVersion").cloned().unwrap_or_default(),
            );
        }
        self.normalize(t, &mut obj, name)?;
        if obj == *old {
            return Ok(old);
        }
        if dry_run {
            return Ok(Arc::new(obj));
        }
        let finalized = obj.pointer("/metadata/deletionTimestamp").is_some()
            && obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
        if finalized && self.types[t].kind != "Namespace" {
            let committed = self.commit(t, EventType::Modified, obj, Some(old));
            self.remove(t, &committed);
            return Ok(committed);
        }
        Ok(self.commit(t, EventType::Modified, obj, Some(old)))
    }

    /// Applies a patch (PATCH); a `metadata.resourceVersion` in the result is a precondition.
    #[allow(clippy::too_many_arguments)] // mirrors the URL + query parts of a PATCH
    pub fn patch(
        &mut self,
        t: usize,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        subresource: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let is_apply = content_type.starts_with("application/apply-patch");
        let old = match self.get(t, ns, name) {
            Some(o) => o,
            None if is_apply => {
                let obj: Value = serde_saphyr::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid apply patch: {e}")))?;
                return self.create(t, ns, obj, dry_run);
            }
            None => return Err(ApiError::not_found(&self.types[t], name)),
        };
        let patched = crate::patch::apply(content_type, &old, body).map_err(|m| {
            if m.starts_with("the body of the request was in an unknown format") {
                ApiError::new(415, "UnsupportedMediaType", m)
            } else {
                ApiError::new(422, "Invalid", m)
            }
        })?;
        if !patched.is_object() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "the patched object is not an object",
            ));
        }
        self.update(t, ns, name, patched, subresource, dry_run)
    }

    fn remove(&mut self, t: usize, obj: &Arc<Value>) {
        let mut gone = (**obj).clone();
        let uid = meta_str(obj, "uid").unwrap_or("").to_string();
        meta_mut(&mut gone);
        self.commit(t, EventType::Deleted, gone, Some(obj.clone()));
        if let Some(dependents) = self.owners.remove(&uid) {
            for (dt, dns, dname) in dependents {
                if let Some(dep) = self.get(dt, &dns, &dname) {
                    self.delete_object(dt, &dep);
                }
            }
        }
    }

    fn delete_object(&mut self, t: usize, obj: &Arc<Value>) -> Arc<Value> {
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                return obj.clone();
            }
            let mut marked = (**obj).clone();
            meta_mut(&mut marked).insert("deletionTimestamp".into(), Value::String(now()));
            return self.commit(t, EventType::Modified, marked, Some(obj.clone()));
        }
        self.remove(t, obj);
        obj.clone()
    }

    /// Deletes an object (DELETE) with optional uid / resourceVersion preconditions.
    pub fn delete(
        &mut self,
        t: usize,
        ns: &str,
        name: &str,
        precondition_uid: Option<&str>,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let obj = self
            .get(t, ns, name)
            .ok_or_else(|| ApiError::not_found(&self.types[t], name))?;
        if let Some(uid) = precondition_uid
            && Some(uid) != meta_str(&obj, "uid")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&obj, "uid").unwrap_or("")
                ),
            )
            .with_details(&self.types[t], name));
        }
        if let Some(rv) = precondition_rv
            && Some(rv) != meta_str(&obj, "resourceVersion")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&obj, "resourceVersion").unwrap_or("")
                ),
            )
            .with_details(&self.types[t], name));
        }
        if dry_run {
            return Ok(obj);
        }
        if t == 0 {
            return Ok(self.terminate_namespace(name));
        }
        Ok(self.delete_object(t, &obj))
    }

    /// Marks a namespace Terminating, removes its content, then finishes per the policy.
    pub fn terminate_namespace(&mut self, ns: &str) -> Arc<Value> {
        let Some(obj) = self.get(0, "", ns) else {
            return Arc::new(Value::Null);
        };
        let mut marked = obj;
        if marked.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating") {
            let mut v = (*marked).clone();
            meta_mut(&mut v)
                .entry("deletionTimestamp")
                .or_insert_with(|| Value::String(now()));
            v["status"] = json!({"phase": "Terminating"});
            marked = self.commit(0, EventType::Modified, v, Some(marked));
        }
        for t in 1..self.types.len() {
            if !self.types[t].namespaced {
                continue;
            }
            for obj in self.all(t, Some(ns)) {
                // Finalizers inside a terminating namespace are not honoured: the fake has no
                // controllers to clear them.
                self.remove(t, &obj);
            }
        }
        match self.termination {
            NamespaceTermination::Immediate => self.finish_namespace(ns),
            NamespaceTermination::After(d) => self
                .pending_termination
                .push((ns.to_string(), Instant::now() + d)),
            NamespaceTermination::Manual => {}
        }
        marked
    }

    /// Puts a namespace into Terminating without deleting anything (test helper).
    pub fn set_namespace_terminating(&mut self, ns: &str) -> bool {
        let Some(obj) = self.get(0, "", ns) else {
            return false;
        };
        let mut v = (*obj).clone();
        meta_mut(&mut v)
            .entry("deletionTimestamp")
            .or_insert_with(|| Value::String(now()));
        v["status"] = json!({"phase": "Terminating"});
        self.commit(0, EventType::Modified, v, Some(obj));
        true
    }

    /// Removes a Terminating namespace (and anything still in it).
    pub fn finish_namespace(&mut self, ns: &str) {
        self.pending_termination.retain(|(n, _)| n != ns);
        for t in 1..self.types.len() {
            if self.types[t].namespaced {
                for obj in self.all(t, Some(ns)) {
                    self.remove(t, &obj);
                }
            }
        }
        if let Some(obj) = self.get(0, "", ns) {
            self.remove(0, &obj);
        }
    }

    /// Finishes namespaces whose termination delay has passed.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .pending_termination
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for ns in due {
            self.finish_namespace(&ns);
        }
    }

    /// Moves an object's `creationTimestamp` `age` into the past (test setup: an object
    /// left behind long ago); false when there is no such object.
    pub fn set_age(
        &mut self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        age: std::time::Duration,
    ) -> bool {
        let Some(t) = self.find_kind(api_version, kind) else {
            return false;
        };
        let Some(obj) = self.get(t, ns, name) else {
            return false;
        };
        let Ok(age) = jiff::SignedDuration::try_from(age) else {
            return false;
        };
        let created = jiff::Timestamp::now() - age;
        let mut aged = (*obj).clone();
        meta_mut(&mut aged).insert(
            "creationTimestamp".into(),
            Value::String(created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        self.commit(t, EventType::Modified, aged, Some(obj));
        true
    }

    /// Create-or-replace from a test or a manifest: ensures the namespace exists.
    pub fn apply(&mut self, obj: Value) -> Result<Arc<Value>, String> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let t = self
            .find_kind(api_version, kind)
            .ok_or_else(|| format!("unknown kind {kind} in {api_version:?}"))?;
        let ns = if self.types[t].namespaced {
            meta_str(&obj, "namespace").unwrap_or("default").to_string()
        } else {
            String::new()
        };
        if !ns.is_empty() && self.namespace_state(&ns).is_none() {
            self.create(
                0,
                "",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                false,
            )
            .map_err(|e| e.message)?;
        }
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        if !name.is_empty() && self.get(t, &ns, &name).is_some() {
            let mut obj = obj;
            meta_mut(&mut obj).remove("resourceVersion");
            // Test setup may set status of kinds with a status subresource: write both.
            let status = obj.get("status").cloned();
            let updated = self
                .update(t, &ns, &name, obj, None, false)
                .map_err(|e| e.message)?;
            if let Some(status) = status {
                let mut with_status = (*updated).clone();
                with_status["status"] = status;
                return self
                    .update(t, &ns, &name, with_status, Some("status"), false)
                    .map_err(|e| e.message);
            }
            return Ok(updated);
        }
        self.create(t, &ns, obj, false).map_err(|e| e.message)
    }
}

/// Whether `s` is a lowercase RFC 1123 subdomain (what object names must be).
fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Checks of object metadata the API server does for every kind: name, labels, annotations.
fn metadata_problems(obj: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if !dns_subdomain(name) {
        out.push((
            "metadata.name".to_string(),
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    for field in ["labels", "annotations"] {
        match &meta[field] {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    if !v.is_string() {
                        out.push((
                            format!("metadata.{field}"),
                            format!("Invalid value: {k:?}: values must be strings"),
                        ));
                    } else if field == "labels" {
                        let v = v.as_str().unwrap_or("");
                        let ok = v.len() <= 63
                            && v.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                            && v.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
                            && v.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric());
                        if !ok {
                            out.push((
                                "metadata.labels".to_string(),
                                format!("Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (max 63)"),
                            ));
                        }
                    }
                }
            }
            _ => out.push((
                format!("metadata.{field}"),
                "Invalid value: must be a map of strings".to_string(),
            )),
        }
    }
    out
}

/// Merges `stringData` into base64 `data`, as the API server does for Secrets.
fn convert_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

impl Store {
    /// Limits the retained watch history.
    pub fn set_event_cap(&mut self, cap: usize) {
        self.event_cap = cap;
    }

    /// A receiver woken on every committed change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let (tx, _rx) = tokio::sync::watch::channel(0);
        Store::new(tx, NamespaceTermination::Immediate)
    }

    #[test]
    fn metadata_is_validated() {
        let mut s = store();
        for bad in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Upper", "namespace": "x"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x", "labels": "no"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x", "labels": {"k": "bad value"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x", "annotations": {"k": 1}}}),
        ] {
            assert!(s.apply(bad.clone()).is_err(), "{bad}");
        }
        s.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a.b-c", "namespace": "x", "labels": {"k": ""}}}))
            .unwrap();
    }

    #[test]
    fn secret_string_data_becomes_base64() {
        let mut s = store();
        let o = s
            .apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "x"}, "stringData": {"k": "v"}}))
            .unwrap();
        assert_eq!(o["data"]["k"], "dg==");
        assert!(o.get("stringData").is_none());
    }

    #[test]
    fn pagination_walks_all_items_once() {
        let mut s = store();
        for i in 0..25 {
            s.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i:02}"), "namespace": "x"}}))
                .unwrap();
        }
        let t = s.find_kind("v1", "ConfigMap").unwrap();
        let mut q = ListQuery {
            limit: Some(10),
            ..Default::default()
        };
        let mut names = Vec::new();
        loop {
            let page = s.list(t, Some("x"), &q).unwrap();
            names.extend(
                page.items
                    .iter()
                    .map(|o| o["metadata"]["name"].as_str().unwrap().to_string()),
            );
            match page.continue_token {
                Some(c) => q.continue_token = Some(c),
                None => break,
            }
        }
        assert_eq!(names.len(), 25);
        assert_eq!(names[24], "c24");
    }

    #[test]
    fn owner_deletion_collects_dependents() {
        let mut s = store();
        let pod = s
            .apply(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"}}))
            .unwrap();
        let uid = pod["metadata"]["uid"].as_str().unwrap();
        s.apply(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "x",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": uid}]}}),
        )
        .unwrap();
        let pods = s.find_kind("v1", "Pod").unwrap();
        let secrets = s.find_kind("v1", "Secret").unwrap();
        s.delete(pods, "x", "p", None, None, false).unwrap();
        assert!(s.get(secrets, "x", "s").is_none());
    }
}
