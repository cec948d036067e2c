//! Pure planning of an endpoint move: from the collected objects to the list of patches
//! (each with its resourceVersion precondition) and restarts, grouped per namespace.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use serde_json::{Value, json};

use super::target::{Endpoint, redact_uri, rewrite_uri, uri_endpoint};
use crate::helm;
use crate::pgbouncer_ini;
use crate::sqlproxy::{self, InstanceName, SQLPROXY_DEPLOYMENT, SqlProxyError};

/// Name of the bootstrap secret (fixed, whatever the platform release is called).
pub use crate::platform::BOOTSTRAP_SECRET;
/// Pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Pod-template annotation recording which endpoint a workload was restarted for,
/// so a re-run knows the restart already happened.
pub const RESTARTED_FOR: &str = "kubectl-astro.io/db-endpoint";

/// The kinds of object a move touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    /// core/v1 Secret.
    Secret,
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
}

/// One object by kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        ObjectRef {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// `Kind/namespace/name`, the key of the originals file.
    pub fn id(&self) -> String {
        format!("{:?}/{}/{}", self.kind, self.namespace, self.name)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Why an object is in the plan (decides how it is re-planned after a conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `astronomer-bootstrap`.
    Bootstrap,
    /// `<platform-release>-houston-backend` / `-grafana-backend`.
    Backend,
    /// `<release>-pgbouncer-config`.
    PgbouncerConfig,
    /// A per-release secret with a URI straight at the database.
    DirectUri,
    /// The Cloud SQL proxy Deployment.
    SqlProxy,
    /// A rollout restart of a reader.
    Restart,
}

/// How a value is shown in a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A connection URI: the password is redacted.
    Uri,
    /// A pgbouncer.ini: `password=` tokens are redacted.
    PgbouncerIni,
    /// Shown as is.
    Plain,
}

/// One value of one object that changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The key (`connection`) or path (`sqlproxy.command[2]`).
    pub key: String,
    /// Value now.
    pub old: String,
    /// Value after the move.
    pub new: String,
    /// How to display it.
    pub shape: Shape,
}

impl Edit {
    /// `(old, new)` with secrets redacted.
    pub fn redacted(&self) -> (String, String) {
        let r = |s: &str| match self.shape {
            Shape::Uri => redact_uri(s),
            Shape::PgbouncerIni => pgbouncer_ini::redact(s),
            Shape::Plain => s.to_owned(),
        };
        (r(&self.old), r(&self.new))
    }
}

/// One patch: a merge patch carrying `metadata.resourceVersion` as precondition.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The object.
    pub object: ObjectRef,
    /// Why it changes.
    pub role: Role,
    /// The values that change (empty for restarts).
    pub edits: Vec<Edit>,
    /// The merge-patch body.
    pub patch: Value,
}

/// Changes applied one after another in one namespace (secrets first, then restarts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// The namespace.
    pub namespace: String,
    /// In order.
    pub changes: Vec<Change>,
}

/// A deployment whose Helm values still name the old host (§1.6 of the research notes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HelmFinding {
    /// Namespace of the release.
    pub namespace: String,
    /// Release name.
    pub release: String,
    /// Revision read.
    pub revision: u32,
    /// Value paths naming the old host.
    pub paths: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Platform namespace first, then deployment namespaces.
    pub groups: Vec<Group>,
    /// Things the user should know (missing workloads, placeholders, unknown ports).
    pub notes: Vec<String>,
    /// Deployments whose Helm values still name the old host.
    pub helm: Vec<HelmFinding>,
}

impl Plan {
    /// Every change, in order.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.groups.iter().flat_map(|g| g.changes.iter())
    }

    /// Number of value patches and of restarts.
    pub fn counts(&self) -> (usize, usize) {
        let restarts = self.changes().filter(|c| c.role == Role::Restart).count();
        (self.changes().count() - restarts, restarts)
    }
}

/// Where the platform moves to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// New database endpoint (`--db-host/--db-port` or `--db-connection`).
    pub endpoint: Option<Endpoint>,
    /// New raw `user:password` for the platform's admin URIs (from `--db-connection`).
    pub userinfo: Option<String>,
    /// New Cloud SQL instance (`--sqlproxy-instance`), and which one it replaces.
    pub sqlproxy: Option<(Option<InstanceName>, InstanceName)>,
}

/// Everything the pure planner needs besides the objects.
#[derive(Debug, Clone)]
pub struct PlanContext {
    /// Where to.
    pub target: Target,
    /// Where from, if known (saved originals, else the bootstrap secret).
    pub old: Option<Endpoint>,
    /// Platform namespace.
    pub platform_namespace: String,
    /// Platform Helm release.
    pub platform_release: String,
    /// Value of `kubectl.kubernetes.io/restartedAt` for this run.
    pub restart_stamp: String,
}

/// The objects the planner looks at.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Secrets of every namespace.
    pub secrets: Vec<Secret>,
    /// Deployments of every namespace.
    pub deployments: Vec<Deployment>,
    /// StatefulSets of the platform namespace.
    pub statefulsets: Vec<StatefulSet>,
}

/// Errors that stop planning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The bootstrap secret is missing.
    #[error("secret {namespace}/{BOOTSTRAP_SECRET} not found")]
    BootstrapMissing {
        /// Platform namespace.
        namespace: String,
    },
    /// The bootstrap connection is not a URI.
    #[error("secret {namespace}/{BOOTSTRAP_SECRET} key `connection` is not a postgres:// URI")]
    BootstrapNotUri {
        /// Platform namespace.
        namespace: String,
    },
    /// `--sqlproxy-instance` given but no proxy Deployment.
    #[error("deployment {namespace}/{SQLPROXY_DEPLOYMENT} not found")]
    SqlProxyMissing {
        /// Platform namespace.
        namespace: String,
    },
    /// The proxy Deployment cannot be rewritten.
    #[error(transparent)]
    SqlProxy(#[from] SqlProxyError),
}

fn meta_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

fn resource_version(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Value {
    json!(meta.resource_version.clone().unwrap_or_default())
}

/// A secret value as text (`None` if missing or not UTF-8).
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn secret_change(secret: &Secret, role: Role, edits: Vec<Edit>) -> Option<Change> {
    if edits.is_empty() {
        return None;
    }
    let (ns, name) = meta_name(&secret.metadata);
    let data: serde_json::Map<String, Value> = edits
        .iter()
        .map(|e| (e.key.clone(), json!(STANDARD.encode(&e.new))))
        .collect();
    Some(Change {
        object: ObjectRef::new(Kind::Secret, ns, name),
        role,
        patch: json!({
            "metadata": {"resourceVersion": resource_version(&secret.metadata)},
            "data": data,
        }),
        edits,
    })
}

/// What planning one object gives: maybe a change, and notes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Planned {
    /// The change, `None` when the object is already moved or left alone.
    pub change: Option<Change>,
    /// Notes for the user.
    pub notes: Vec<String>,
}

/// Plans a Secret of the given role (also used to re-plan after a 409 conflict).
pub fn plan_secret(secret: &Secret, role: Role, ctx: &PlanContext) -> Planned {
    let mut out = Planned::default();
    let Some(endpoint) = &ctx.target.endpoint else {
        return out;
    };
    let (ns, name) = meta_name(&secret.metadata);
    let label = format!("{ns}/{name}");
    let edits = match role {
        Role::Bootstrap | Role::Backend => {
            backend_edits(secret, &label, endpoint, ctx, &mut out.notes)
        }
        Role::PgbouncerConfig => pgbouncer_edits(secret, &label, endpoint, ctx, &mut out.notes),
        Role::DirectUri => direct_uri_edits(secret, &label, endpoint, ctx, &mut out.notes),
        Role::SqlProxy | Role::Restart => Vec::new(),
    };
    out.change = secret_change(secret, role, edits);
    out
}

/// The text of `key`, or a note that the secret is left alone without it.
fn required_text(
    secret: &Secret,
    key: &str,
    label: &str,
    notes: &mut Vec<String>,
) -> Option<String> {
    let text = secret_text(secret, key);
    if text.is_none() {
        notes.push(format!("secret {label} has no `{key}` key; left alone"));
    }
    text
}

/// `connection` of the bootstrap and `*-backend` secrets (a placeholder is left for the
/// bootstrapper to rewrite).
fn backend_edits(
    secret: &Secret,
    label: &str,
    endpoint: &Endpoint,
    ctx: &PlanContext,
    notes: &mut Vec<String>,
) -> Vec<Edit> {
    let Some(value) = required_text(secret, "connection", label, notes) else {
        return Vec::new();
    };
    match rewrite_uri(&value, endpoint, ctx.target.userinfo.as_deref()) {
        Some(new) if new != value => vec![Edit {
            key: "connection".into(),
            old: value,
            new,
            shape: Shape::Uri,
        }],
        Some(_) => Vec::new(),
        None => {
            notes.push(format!(
                "secret {label} holds a placeholder, not a URI (normal right after a `helm upgrade`); \
                 the houston/grafana bootstrapper rewrites it from {BOOTSTRAP_SECRET} when the pod restarts"
            ));
            Vec::new()
        }
    }
}

/// The `host=`/`port=` tokens of `pgbouncer.ini` (every other byte kept).
fn pgbouncer_edits(
    secret: &Secret,
    label: &str,
    endpoint: &Endpoint,
    ctx: &PlanContext,
    notes: &mut Vec<String>,
) -> Vec<Edit> {
    let Some(ini) = required_text(secret, "pgbouncer.ini", label, notes) else {
        return Vec::new();
    };
    let rewrite = pgbouncer_ini::rewrite_databases_endpoint(&ini, &endpoint.host, endpoint.port);
    if !rewrite.missing_port.is_empty() && endpoint.port != 5432 {
        notes.push(format!(
            "secret {label}: entries {} have no `port=` token (pgbouncer then uses 5432) and the new port is {}; \
             not patched: add `port={}` to them by hand",
            rewrite.missing_port.join(", "),
            endpoint.port,
            endpoint.port
        ));
        return Vec::new();
    }
    if let Some(old) = &ctx.old {
        for entry in pgbouncer_ini::database_entries(&ini) {
            if let Some(host) = entry.host
                && !old.same_host(&host)
                && !endpoint.same_host(&host)
            {
                notes.push(format!(
                    "secret {label}: entry {} pointed at {host}, neither the old nor the new host; moved anyway",
                    entry.name
                ));
            }
        }
    }
    if rewrite.text == ini {
        return Vec::new();
    }
    vec![Edit {
        key: "pgbouncer.ini".into(),
        old: ini,
        new: rewrite.text,
        shape: Shape::PgbouncerIni,
    }]
}

/// `connection` / `kedaConnection` keys that point straight at the old host.
fn direct_uri_edits(
    secret: &Secret,
    label: &str,
    endpoint: &Endpoint,
    ctx: &PlanContext,
    notes: &mut Vec<String>,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    for key in ["connection", "kedaConnection"] {
        let Some(value) = secret_text(secret, key) else {
            continue;
        };
        let Some(current) = uri_endpoint(&value) else {
            continue;
        };
        let points_at_old = ctx
            .old
            .as_ref()
            .is_some_and(|old| old.same_host(&current.host));
        if !points_at_old || current == *endpoint {
            continue;
        }
        if let Some(new) = rewrite_uri(&value, endpoint, None)
            && new != value
        {
            edits.push(Edit {
                key: key.into(),
                old: value,
                new,
                shape: Shape::Uri,
            });
        }
    }
    if !edits.is_empty() {
        notes.push(format!(
            "secret {label} pointed straight at the database ({}); restart the Airflow pods that read it",
            edits.iter().map(|e| e.key.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    edits
}

/// Plans the Cloud SQL proxy Deployment rewrite.
pub fn plan_sqlproxy_deployment(
    deployment: &Deployment,
    ctx: &PlanContext,
) -> Result<Option<Change>, SqlProxyError> {
    let Some((from, to)) = &ctx.target.sqlproxy else {
        return Ok(None);
    };
    let element_changes = sqlproxy::plan_sqlproxy(deployment, from.as_ref(), to)?;
    if element_changes.is_empty() {
        return Ok(None);
    }
    let mut containers = serde_json::to_value(
        deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| s.containers.clone())
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let mut edits = Vec::new();
    for c in &element_changes {
        if let Some(slot) = containers
            .get_mut(c.container_index)
            .and_then(|v| v.get_mut(c.field.to_string()))
            .and_then(|v| v.get_mut(c.index))
        {
            *slot = json!(c.new);
        }
        edits.push(Edit {
            key: format!("{}.{}[{}]", c.container, c.field, c.index),
            old: c.old.clone(),
            new: c.new.clone(),
            shape: Shape::Plain,
        });
    }
    let (ns, name) = meta_name(&deployment.metadata);
    Ok(Some(Change {
        object: ObjectRef::new(Kind::Deployment, ns, name),
        role: Role::SqlProxy,
        edits,
        // A merge patch replaces the whole list; the resourceVersion precondition makes
        // sure it is the list we read.
        patch: json!({
            "metadata": {"resourceVersion": resource_version(&deployment.metadata)},
            "spec": {"template": {"spec": {"containers": containers}}},
        }),
    }))
}

/// Plans a rollout restart unless the workload's pods already started for this endpoint
/// (its template carries the endpoint's fingerprint: a previous run restarted it, or the
/// Velero plugin restored it so). `force`: a secret it reads changes in this run, so its
/// pods must restart whatever the template says.
pub fn plan_restart(
    kind: Kind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    template: &PodTemplateSpec,
    ctx: &PlanContext,
    force: bool,
) -> Option<Change> {
    let fingerprint = restart_fingerprint(ctx.target.endpoint.as_ref()?);
    let current = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(RESTARTED_FOR));
    if !force && current == Some(&fingerprint) {
        return None;
    }
    let (ns, name) = meta_name(meta);
    Some(Change {
        object: ObjectRef::new(kind, ns, name),
        role: Role::Restart,
        edits: Vec::new(),
        patch: json!({
            "metadata": {"resourceVersion": resource_version(meta)},
            "spec": {"template": {"metadata": {"annotations": {
                RESTARTED_AT: ctx.restart_stamp,
                RESTARTED_FOR: fingerprint,
            }}}},
        }),
    })
}

/// The value of [`RESTARTED_FOR`] on the pod template of a workload whose pods started
/// with the database secrets naming `endpoint`.
pub fn restart_fingerprint(endpoint: &Endpoint) -> String {
    endpoint.to_string()
}

/// Whether a move restarts this workload (it reads the database secrets): the platform's
/// readers by name (by suffix when the release is unknown) and every `*-pgbouncer`
/// Deployment.
pub fn restarted_by_move(
    kind: Kind,
    namespace: &str,
    name: &str,
    platform_namespace: &str,
    platform_release: Option<&str>,
) -> bool {
    if kind == Kind::Deployment && name.ends_with("-pgbouncer") {
        return true;
    }
    namespace == platform_namespace
        && platform_readers(platform_release.unwrap_or_default())
            .iter()
            .any(|(k, reader)| {
                *k == kind
                    && match platform_release {
                        Some(_) => name == reader,
                        None => name.ends_with(reader.as_str()),
                    }
            })
}

/// The platform workloads that read the database secrets, restarted after a move.
pub fn platform_readers(release: &str) -> Vec<(Kind, String)> {
    let mut out: Vec<(Kind, String)> = [
        "houston",
        "houston-worker",
        "commander",
        "grafana",
        "prometheus-postgres-exporter",
    ]
    .iter()
    .map(|s| (Kind::Deployment, format!("{release}-{s}")))
    .collect();
    out.push((Kind::StatefulSet, format!("{release}-prometheus")));
    out
}

/// Secret name suffixes that may carry a direct database URI in a deployment namespace.
const DIRECT_SUFFIXES: [&str; 2] = ["-metadata", "-result-backend"];

fn take(planned: Planned, group: &mut Group, notes: &mut Vec<String>) {
    notes.extend(planned.notes);
    group.changes.extend(planned.change);
}

/// The collected objects by `(namespace, name)`.
struct Index<'a> {
    secrets: BTreeMap<(&'a str, &'a str), &'a Secret>,
    deployments: BTreeMap<(&'a str, &'a str), &'a Deployment>,
    collected: &'a Collected,
}

impl<'a> Index<'a> {
    fn new(collected: &'a Collected) -> Self {
        Index {
            secrets: collected
                .secrets
                .iter()
                .map(|s| (meta_name(&s.metadata), s))
                .collect(),
            deployments: collected
                .deployments
                .iter()
                .map(|d| (meta_name(&d.metadata), d))
                .collect(),
            collected,
        }
    }

    /// The restart of a Deployment or StatefulSet `ns/name`, if it exists.
    fn restart(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        ctx: &PlanContext,
        force: bool,
    ) -> Option<Option<Change>> {
        let template = |spec: Option<PodTemplateSpec>| spec.unwrap_or_default();
        match kind {
            Kind::Deployment => self.deployments.get(&(ns, name)).map(|d| {
                let spec = d.spec.as_ref().map(|s| s.template.clone());
                plan_restart(kind, &d.metadata, &template(spec), ctx, force)
            }),
            _ => self
                .collected
                .statefulsets
                .iter()
                .find(|s| meta_name(&s.metadata) == (ns, name))
                .map(|s| {
                    let spec = s.spec.as_ref().map(|s| s.template.clone());
                    plan_restart(kind, &s.metadata, &template(spec), ctx, force)
                }),
        }
    }
}

/// Plans the whole move from the collected objects: the platform namespace first, then
/// every deployment namespace (found by its content: pool namespaces have no labels),
/// secret patches before the restarts that read them.
pub fn plan_move(collected: &Collected, ctx: &PlanContext) -> Result<Plan, PlanError> {
    let index = Index::new(collected);
    let mut plan = Plan::default();
    let platform = plan_platform(&index, ctx, &mut plan.notes)?;
    plan.groups.push(platform);
    if ctx.target.endpoint.is_some() {
        let per_ns = plan_deployment_namespaces(&index, ctx, &mut plan.notes);
        merge_namespace_groups(&mut plan, per_ns, &ctx.platform_namespace);
    }
    if plan.groups[0].changes.is_empty() && plan.groups.len() > 1 {
        plan.groups.remove(0);
    }
    plan.helm = helm_findings(collected, ctx);
    Ok(plan)
}

/// The platform namespace: bootstrap and backend secrets, the Cloud SQL proxy, and the
/// restarts of the platform's readers.
fn plan_platform(
    index: &Index,
    ctx: &PlanContext,
    notes: &mut Vec<String>,
) -> Result<Group, PlanError> {
    let pns = ctx.platform_namespace.as_str();
    let mut platform = Group {
        namespace: pns.to_owned(),
        changes: Vec::new(),
    };
    if ctx.target.endpoint.is_some() {
        let bootstrap = index.secrets.get(&(pns, BOOTSTRAP_SECRET)).ok_or_else(|| {
            PlanError::BootstrapMissing {
                namespace: pns.into(),
            }
        })?;
        if secret_text(bootstrap, "connection")
            .and_then(|v| uri_endpoint(&v))
            .is_none()
        {
            return Err(PlanError::BootstrapNotUri {
                namespace: pns.into(),
            });
        }
        take(
            plan_secret(bootstrap, Role::Bootstrap, ctx),
            &mut platform,
            notes,
        );
        for suffix in ["houston-backend", "grafana-backend"] {
            let name = format!("{}-{suffix}", ctx.platform_release);
            match index.secrets.get(&(pns, name.as_str())) {
                Some(s) => take(plan_secret(s, Role::Backend, ctx), &mut platform, notes),
                None => notes.push(format!("secret {pns}/{name} not found; skipped")),
            }
        }
    }
    if ctx.target.sqlproxy.is_some() {
        let proxy = index
            .deployments
            .get(&(pns, SQLPROXY_DEPLOYMENT))
            .ok_or_else(|| PlanError::SqlProxyMissing {
                namespace: pns.into(),
            })?;
        platform
            .changes
            .extend(plan_sqlproxy_deployment(proxy, ctx)?);
    }
    if ctx.target.endpoint.is_some() {
        let secrets_change = platform
            .changes
            .iter()
            .any(|c| c.object.kind == Kind::Secret);
        for (kind, name) in platform_readers(&ctx.platform_release) {
            match index.restart(kind, pns, &name, ctx, secrets_change) {
                Some(change) => platform.changes.extend(change),
                None => notes.push(format!("{kind:?} {pns}/{name} not found; not restarted")),
            }
        }
    }
    Ok(platform)
}

/// Each namespace's `*-pgbouncer-config` (and its pgbouncer restart) and direct URIs.
fn plan_deployment_namespaces<'a>(
    index: &Index<'a>,
    ctx: &PlanContext,
    notes: &mut Vec<String>,
) -> BTreeMap<&'a str, Group> {
    let mut per_ns: BTreeMap<&str, Group> = BTreeMap::new();
    for (&(ns, name), secret) in &index.secrets {
        let group = per_ns.entry(ns).or_insert_with(|| Group {
            namespace: ns.to_owned(),
            changes: Vec::new(),
        });
        if let Some(release) = name.strip_suffix("-pgbouncer-config") {
            let planned = plan_secret(secret, Role::PgbouncerConfig, ctx);
            let config_changes = planned.change.is_some();
            take(planned, group, notes);
            let pgbouncer = format!("{release}-pgbouncer");
            match index.restart(Kind::Deployment, ns, &pgbouncer, ctx, config_changes) {
                Some(change) => group.changes.extend(change),
                None => notes.push(format!(
                    "Deployment {ns}/{pgbouncer} not found; not restarted"
                )),
            }
        } else if DIRECT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            take(plan_secret(secret, Role::DirectUri, ctx), group, notes);
        }
    }
    per_ns
}

/// Adds the namespace groups to the plan, restarts after the secret patches within each;
/// the platform namespace's own deployment-style secrets join its group before its restarts.
fn merge_namespace_groups(plan: &mut Plan, per_ns: BTreeMap<&str, Group>, pns: &str) {
    for group in per_ns.into_values() {
        if group.changes.is_empty() {
            continue;
        }
        let (mut secrets_first, restarts): (Vec<_>, Vec<_>) = group
            .changes
            .into_iter()
            .partition(|c| c.role != Role::Restart);
        secrets_first.extend(restarts);
        if group.namespace == pns {
            let platform = &mut plan.groups[0];
            let at = platform
                .changes
                .iter()
                .position(|c| c.role == Role::Restart)
                .unwrap_or(platform.changes.len());
            platform.changes.splice(at..at, secrets_first);
        } else {
            plan.groups.push(Group {
                namespace: group.namespace,
                changes: secrets_first,
            });
        }
    }
}

/// Deployments whose newest Helm release record still names the old host in its values.
pub fn helm_findings(collected: &Collected, ctx: &PlanContext) -> Vec<HelmFinding> {
    let Some(old) = &ctx.old else {
        return Vec::new();
    };
    if ctx
        .target
        .endpoint
        .as_ref()
        .is_some_and(|e| e.same_host(&old.host))
    {
        return Vec::new();
    }
    helm::newest_records(&collected.secrets)
        .into_iter()
        .filter_map(|record| {
            let paths = helm::values_naming_host(&record.value, &old.host);
            (!paths.is_empty()).then_some(HelmFinding {
                namespace: record.namespace,
                release: record.release,
                revision: record.revision,
                paths,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";
    const NEW: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";

    fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> Secret {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(STANDARD.encode(v))))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "7"},
            "data": data,
        }))
        .unwrap()
    }

    fn deployment(ns: &str, name: &str, annotations: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "9"},
            "spec": {"selector": {}, "template": {"metadata": {"annotations": annotations}, "spec": {"containers": [{"name": "c"}]}}},
        }))
        .unwrap()
    }

    fn ctx() -> PlanContext {
        PlanContext {
            target: Target {
                endpoint: Some(Endpoint {
                    host: NEW.into(),
                    port: 5433,
                }),
                ..Target::default()
            },
            old: Some(Endpoint {
                host: OLD.into(),
                port: 5432,
            }),
            platform_namespace: "astronomer".into(),
            platform_release: "astronomer".into(),
            restart_stamp: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn platform() -> Collected {
        let ini = format!(
            "[databases]\nr-metadata = host={OLD} dbname=r_airflow port=5432 pool_size=3\n"
        );
        Collected {
            secrets: vec![
                secret(
                    "astronomer",
                    BOOTSTRAP_SECRET,
                    &[(
                        "connection",
                        &format!("postgres://astro_admin:Sup3r%21Secret@{OLD}:5432"),
                    )],
                ),
                secret(
                    "astronomer",
                    "astronomer-houston-backend",
                    &[(
                        "connection",
                        &format!(
                            "postgres://astro_admin:Sup3r%21Secret@{OLD}:5432/astronomer_houston?schema=houston%24default"
                        ),
                    )],
                ),
                secret(
                    "astronomer-r",
                    "r-pgbouncer-config",
                    &[("pgbouncer.ini", &ini), ("users.txt", "\"r\" \"pw\"\n")],
                ),
                secret(
                    "astronomer-r",
                    "r-airflow-metadata",
                    &[
                        (
                            "connection",
                            "postgresql://r:pw@r-pgbouncer.astronomer-r:6543/r-metadata",
                        ),
                        (
                            "kedaConnection",
                            &format!("postgresql://r:pw@{OLD}:5432/r_airflow"),
                        ),
                    ],
                ),
                secret(
                    "astronomer-r",
                    "r-broker-url",
                    &[("connection", &format!("redis://:x@{OLD}:6379/0"))],
                ),
            ],
            deployments: vec![
                deployment("astronomer", "astronomer-houston", json!({})),
                deployment(
                    "astronomer",
                    "astronomer-grafana",
                    json!({RESTARTED_FOR: format!("{NEW}:5433")}),
                ),
                deployment("astronomer-r", "r-pgbouncer", json!({})),
            ],
            statefulsets: Vec::new(),
        }
    }

    #[test]
    fn marked_workloads_restart_only_when_their_secrets_change() {
        // Secrets already moved (a restore through the Velero plugin, or a re-run): the
        // workloads whose template carries the fingerprint are left alone.
        let mut collected = platform();
        let moved = plan_move(&collected, &ctx()).unwrap();
        for secret in &mut collected.secrets {
            let id = format!(
                "Secret/{}/{}",
                secret.metadata.namespace.as_deref().unwrap(),
                secret.metadata.name.as_deref().unwrap()
            );
            if let Some(change) = moved.changes().find(|c| c.object.id() == id) {
                for edit in &change.edits {
                    secret.data.get_or_insert_default().insert(
                        edit.key.clone(),
                        k8s_openapi::ByteString(edit.new.clone().into_bytes()),
                    );
                }
            }
        }
        let again = plan_move(&collected, &ctx()).unwrap();
        let ids: Vec<String> = again.changes().map(|c| c.object.id()).collect();
        assert_eq!(
            ids,
            [
                "Deployment/astronomer/astronomer-houston",
                "Deployment/astronomer-r/r-pgbouncer"
            ],
            "grafana carries the fingerprint; the unmarked ones still restart"
        );
        for d in &mut collected.deployments {
            d.spec
                .get_or_insert_default()
                .template
                .metadata
                .get_or_insert_default()
                .annotations = Some([(RESTARTED_FOR.to_owned(), format!("{NEW}:5433"))].into());
        }
        assert_eq!(plan_move(&collected, &ctx()).unwrap().changes().count(), 0);
        assert!(restarted_by_move(
            Kind::Deployment,
            "astronomer",
            "astronomer-houston",
            "astronomer",
            Some("astronomer")
        ));
        assert!(restarted_by_move(
            Kind::Deployment,
            "astronomer",
            "astro-houston-worker",
            "astronomer",
            None
        ));
        assert!(restarted_by_move(
            Kind::Deployment,
            "pool-7",
            "r-pgbouncer",
            "astronomer",
            Some("astronomer")
        ));
        assert!(restarted_by_move(
            Kind::StatefulSet,
            "astronomer",
            "astronomer-prometheus",
            "astronomer",
            Some("astronomer")
        ));
        assert!(!restarted_by_move(
            Kind::StatefulSet,
            "astronomer",
            "astronomer-houston",
            "astronomer",
            Some("astronomer")
        ));
        assert!(!restarted_by_move(
            Kind::Deployment,
            "astronomer",
            "astro-houston",
            "astronomer",
            Some("astronomer")
        ));
        assert!(!restarted_by_move(
            Kind::Deployment,
            "other",
            "astronomer-houston",
            "astronomer",
            None
        ));
    }

    #[test]
    fn plans_every_kind_of_change() {
        let plan = plan_move(&platform(), &ctx()).unwrap();
        let ids: Vec<(String, Role)> = plan.changes().map(|c| (c.object.id(), c.role)).collect();
        assert_eq!(
            ids,
            vec![
                (
                    "Secret/astronomer/astronomer-bootstrap".into(),
                    Role::Bootstrap
                ),
                (
                    "Secret/astronomer/astronomer-houston-backend".into(),
                    Role::Backend
                ),
                (
                    "Deployment/astronomer/astronomer-houston".into(),
                    Role::Restart
                ),
                // Marked for this endpoint already, but the secrets it reads change now.
                (
                    "Deployment/astronomer/astronomer-grafana".into(),
                    Role::Restart
                ),
                (
                    "Secret/astronomer-r/r-airflow-metadata".into(),
                    Role::DirectUri
                ),
                (
                    "Secret/astronomer-r/r-pgbouncer-config".into(),
                    Role::PgbouncerConfig
                ),
                ("Deployment/astronomer-r/r-pgbouncer".into(), Role::Restart),
            ]
        );
        let houston = plan.changes().nth(1).unwrap();
        assert_eq!(
            houston.edits[0].new,
            format!(
                "postgres://astro_admin:Sup3r%21Secret@{NEW}:5433/astronomer_houston?schema=houston%24default"
            )
        );
        assert_eq!(houston.patch["metadata"]["resourceVersion"], "7");
        let direct = plan.changes().nth(4).unwrap();
        assert_eq!(direct.edits.len(), 1);
        assert_eq!(direct.edits[0].key, "kedaConnection");
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("astronomer-commander not found"))
        );
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("astronomer-grafana-backend not found"))
        );
        // Redacted diffs never show the password.
        for c in plan.changes() {
            for e in &c.edits {
                let (a, b) = e.redacted();
                assert!(
                    !a.contains("Sup3r") && !b.contains("Sup3r") && !b.contains(":pw@"),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn applying_the_plan_makes_it_empty() {
        let mut collected = platform();
        let plan = plan_move(&collected, &ctx()).unwrap();
        // Simulate the API server applying each merge patch.
        for change in plan.changes() {
            let apply = |v: Value| -> Value {
                let mut v = v;
                json_merge(&mut v, &change.patch);
                v
            };
            match change.object.kind {
                Kind::Secret => {
                    for s in &mut collected.secrets {
                        if meta_name(&s.metadata)
                            == (
                                change.object.namespace.as_str(),
                                change.object.name.as_str(),
                            )
                        {
                            *s = serde_json::from_value(apply(serde_json::to_value(&*s).unwrap()))
                                .unwrap();
                        }
                    }
                }
                _ => {
                    for d in &mut collected.deployments {
                        if meta_name(&d.metadata)
                            == (
                                change.object.namespace.as_str(),
                                change.object.name.as_str(),
                            )
                        {
                            *d = serde_json::from_value(apply(serde_json::to_value(&*d).unwrap()))
                                .unwrap();
                        }
                    }
                }
            }
        }
        let again = plan_move(&collected, &ctx()).unwrap();
        assert_eq!(
            again.changes().count(),
            0,
            "{:?}",
            again.changes().collect::<Vec<_>>()
        );
    }

    fn json_merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (t, p) => *t = p.clone(),
        }
    }

    #[test]
    fn missing_port_with_new_port_is_not_patched() {
        let mut c = platform();
        c.secrets[2] = secret(
            "astronomer-r",
            "r-pgbouncer-config",
            &[(
                "pgbouncer.ini",
                &format!("[databases]\nr = host={OLD} dbname=x\n"),
            )],
        );
        let plan = plan_move(&c, &ctx()).unwrap();
        assert!(!plan.changes().any(|c| c.role == Role::PgbouncerConfig));
        assert!(plan.notes.iter().any(|n| n.contains("no `port=` token")));
    }

    #[test]
    fn helm_values_naming_old_host_are_reported() {
        let mut c = platform();
        let record = json!({"config": {"data": {"metadataConnection": {"host": OLD}}}});
        let helm_text = helm::encode_release(&record);
        c.secrets.push(secret(
            "astronomer-r",
            "sh.helm.release.v1.r.v2",
            &[("release", &helm_text)],
        ));
        c.secrets.push(secret(
            "astronomer-r",
            "sh.helm.release.v1.r.v1",
            &[("release", "garbage")],
        ));
        let plan = plan_move(&c, &ctx()).unwrap();
        assert_eq!(
            plan.helm,
            vec![HelmFinding {
                namespace: "astronomer-r".into(),
                release: "r".into(),
                revision: 2,
                paths: vec!["data.metadataConnection.host".into()],
            }]
        );
    }
}
