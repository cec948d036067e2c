//! Pure planning for `backup create` / `schedule create`: scope → namespaces, names,
//! flag values → the Velero objects `velero backup create` would send, plus the Redis
//! volume-policy ConfigMap; pre-flight checks on already-collected state.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::BackupError;
use crate::namespaces::{PlatformNamespaces, default_deployment_namespace};
use crate::release::ReleaseName;
use crate::velero::backup::BackupResourcePolicy;
use crate::velero::{
    Backup, BackupSpec, BackupStorageLocation, BackupStorageLocationAccessMode,
    BackupStorageLocationStatusPhase, Schedule, ScheduleSpec,
};

/// Name of the volume-policy ConfigMap in the Velero namespace.
pub const POLICY_CONFIGMAP: &str = "astro-backup-volume-policy";
/// Its one data key (Velero requires exactly one).
pub const POLICY_KEY: &str = "policy.yaml";
/// Skip the data of Airflow Redis PVCs (velero.md §6); the PVC, StatefulSet and
/// Service objects stay in the backup. Needs Velero ≥ 1.16 (`pvcLabels`).
pub const POLICY_YAML: &str = "version: v1
volumePolicies:
- conditions:
    pvcLabels:
      tier: airflow
      component: redis
  action:
    type: skip
";
/// Label on objects this tool manages.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-astro");
/// Longest Backup name Velero can use as a label value unchanged.
pub const MAX_BACKUP_NAME: usize = 63;
/// Longest Schedule name: its backups are `<schedule>-<14 digits>`.
pub const MAX_SCHEDULE_NAME: usize = 48;

/// What to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The platform namespace and every deployment namespace.
    All,
    /// Some of them.
    Selected {
        /// The platform namespace.
        platform: bool,
        /// These deployments' namespaces.
        releases: Vec<ReleaseName>,
    },
}

impl Scope {
    /// From `--all`, `--platform`, `--release` (none given means all).
    pub fn from_flags(
        all: bool,
        platform: bool,
        releases: Vec<ReleaseName>,
    ) -> Result<Self, BackupError> {
        if all && (platform || !releases.is_empty()) {
            return Err(BackupError::invalid(
                "--all cannot be combined with --platform or --release",
                "use --all alone, or list what you want with --platform and --release",
            ));
        }
        if all || (!platform && releases.is_empty()) {
            return Ok(Scope::All);
        }
        let mut releases = releases;
        releases.sort();
        releases.dedup();
        Ok(Scope::Selected { platform, releases })
    }

    /// A short word for default names: `all`, `platform`, the release, or `releases`.
    pub fn label(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Selected {
                platform: true,
                releases,
            } if releases.is_empty() => "platform".into(),
            Scope::Selected {
                platform: false,
                releases,
            } if releases.len() == 1 => releases[0].to_string(),
            Scope::Selected { .. } => "releases".into(),
        }
    }
}

/// The namespaces of `scope`, platform namespace first, then deployments sorted.
pub fn resolve_namespaces(
    scope: &Scope,
    found: &PlatformNamespaces,
    platform_namespace: &str,
    platform_release: &str,
) -> Result<Vec<String>, BackupError> {
    let mut out = Vec::new();
    match scope {
        Scope::All => {
            // Added by name: its labels may or may not match the deployment selector.
            out.push(platform_namespace.to_owned());
            out.extend(found.deployments.iter().cloned());
        }
        Scope::Selected { platform, releases } => {
            if *platform {
                out.push(platform_namespace.to_owned());
            }
            for release in releases {
                let ns = found
                    .deployment_of(platform_namespace, release)
                    .ok_or_else(|| BackupError::ReleaseNamespaceMissing {
                        release: release.to_string(),
                        expected: default_deployment_namespace(platform_namespace, release),
                        platform_release: platform_release.to_owned(),
                    })?;
                out.push(ns.to_owned());
            }
        }
    }
    Ok(out)
}

/// Every namespace must exist and not be Terminating.
pub fn check_namespaces(
    namespaces: &[String],
    found: &PlatformNamespaces,
) -> Result<(), BackupError> {
    for ns in namespaces {
        if !found.existing.contains(ns) {
            return Err(BackupError::NamespaceMissing {
                namespace: ns.clone(),
            });
        }
        if found.terminating.contains(ns) {
            return Err(BackupError::NamespaceTerminating {
                namespace: ns.clone(),
            });
        }
    }
    Ok(())
}

/// The storage location the server will use: the explicit one, else the BSL marked
/// `default: true` (the most recently created if several), else `default`.
pub fn choose_storage_location(explicit: Option<&str>, all: &[BackupStorageLocation]) -> String {
    if let Some(name) = explicit {
        return name.to_owned();
    }
    all.iter()
        .filter(|b| b.spec.default == Some(true))
        .max_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        })
        .and_then(|b| b.metadata.name.clone())
        .unwrap_or_else(|| "default".to_owned())
}

/// The location must exist, be `Available`, and not be `ReadOnly`.
pub fn check_storage_location(
    name: &str,
    bsl: Option<&BackupStorageLocation>,
    velero_namespace: &str,
) -> Result<(), BackupError> {
    let Some(bsl) = bsl else {
        return Err(BackupError::StorageLocationMissing {
            name: name.to_owned(),
            velero_namespace: velero_namespace.to_owned(),
        });
    };
    if bsl.spec.access_mode == Some(BackupStorageLocationAccessMode::ReadOnly) {
        return Err(BackupError::StorageLocationReadOnly {
            name: name.to_owned(),
        });
    }
    let status = bsl.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_ref());
    if phase != Some(&BackupStorageLocationStatusPhase::Available) {
        let phase = match phase.map(|p| p.as_str()) {
            None | Some("") => "Unknown".to_owned(),
            Some(p) => p.to_owned(),
        };
        return Err(BackupError::StorageLocationUnavailable {
            name: name.to_owned(),
            phase,
            message: status
                .and_then(|s| s.message.clone())
                .filter(|m| !m.is_empty()),
        });
    }
    Ok(())
}

/// `astro-<scope>-<UTC yyyymmddhhmmss>`, the scope shortened so the name fits 63 characters.
pub fn default_name(scope_label: &str, now: Timestamp) -> String {
    let stamp = now.strftime("%Y%m%d%H%M%S").to_string();
    let room = MAX_BACKUP_NAME - "astro-".len() - 1 - stamp.len();
    let scope: String = scope_label.chars().take(room).collect();
    format!("astro-{}-{stamp}", scope.trim_end_matches('-'))
}

/// A Kubernetes object name (DNS-1123 subdomain) within Velero's length limit.
pub fn validate_name(name: &str, max: usize, what: &str) -> Result<(), BackupError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty()
        || !name.chars().all(ok_char)
        || !edge(name.chars().next())
        || !edge(name.chars().last())
    {
        return Err(BackupError::invalid(
            format!("{what} name {name:?} is not a valid Kubernetes name"),
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ));
    }
    if name.len() > max {
        return Err(BackupError::invalid(
            format!(
                "{what} name {name:?} is {} characters long; at most {max} keep Velero's labels exact",
                name.len()
            ),
            format!("choose a name of at most {max} characters"),
        ));
    }
    Ok(())
}

/// `--labels k=v,k2=v2`.
pub fn parse_labels(input: &str) -> Result<BTreeMap<String, String>, BackupError> {
    let mut out = BTreeMap::new();
    for pair in input.split(',').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(BackupError::invalid(
                format!("label {pair:?} is not key=value"),
                "write labels as --labels key=value,key2=value2",
            ));
        };
        if k.is_empty() {
            return Err(BackupError::invalid(
                format!("label {pair:?} has an empty key"),
                "write labels as --labels key=value,key2=value2",
            ));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// `--ttl 72h` → `72h0m0s` (a Go duration, serialized as Go prints it).
pub fn parse_ttl(input: &str) -> Result<String, BackupError> {
    let d = crate::cron::parse_go_duration(input).map_err(|e| {
        BackupError::invalid(
            format!("--ttl {input:?} is not a duration: {e}"),
            "use a Go duration such as 72h, 720h or 2h30m",
        )
    })?;
    if d.is_negative() {
        return Err(BackupError::invalid(
            format!("--ttl {input:?} is negative"),
            "use a positive duration such as 72h",
        ));
    }
    Ok(go_duration_string(d))
}

/// Go's `time.Duration.String()` (`72h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`).
pub fn go_duration_string(d: SignedDuration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let frac = |value: u128, unit: u128| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.ilog10() as usize;
            let s = format!("{rest:0digits$}");
            format!("{whole}.{}", s.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", frac(n, 1_000_000));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let secs = frac(n % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// Flag values shared by backups and schedule templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupOptions {
    /// `--ttl`, already in Go form.
    pub ttl: Option<String>,
    /// `--storage-location`.
    pub storage_location: Option<String>,
    /// `--snapshot-volumes[=bool]`; `None` = server default (true).
    pub snapshot_volumes: Option<bool>,
    /// `--labels`.
    pub labels: BTreeMap<String, String>,
}

/// The spec `velero backup create --include-namespaces … [flags]
/// --resource-policies-configmap astro-backup-volume-policy` sends (velero.md §2.1–2.2).
pub fn plan_backup_spec(namespaces: &[String], opts: &BackupOptions) -> BackupSpec {
    BackupSpec {
        included_namespaces: Some(namespaces.to_vec()),
        storage_location: opts.storage_location.clone(),
        ttl: opts.ttl.clone(),
        snapshot_volumes: opts.snapshot_volumes,
        resource_policy: Some(BackupResourcePolicy {
            api_group: None,
            kind: "configmap".into(),
            name: POLICY_CONFIGMAP.into(),
        }),
        ..BackupSpec::default()
    }
}

/// The Backup object.
pub fn plan_backup(
    name: &str,
    velero_namespace: &str,
    namespaces: &[String],
    opts: &BackupOptions,
) -> Backup {
    let mut backup = Backup::new(name, velero_namespace, plan_backup_spec(namespaces, opts));
    if !opts.labels.is_empty() {
        backup.metadata.labels = Some(opts.labels.clone());
    }
    backup
}

/// The Schedule object `velero schedule create NAME --schedule … [same flags]` sends.
pub fn plan_schedule(
    name: &str,
    velero_namespace: &str,
    cron: &str,
    namespaces: &[String],
    opts: &BackupOptions,
) -> Schedule {
    let template = plan_backup_spec(namespaces, opts);
    let mut schedule = Schedule::new(
        name,
        velero_namespace,
        ScheduleSpec {
            schedule: cron.to_owned(),
            template,
            // The CLI always sends it; true would let k8s GC fight backup sync (velero#4093).
            use_owner_references_in_backup: Some(false),
            ..ScheduleSpec::default()
        },
    );
    if !opts.labels.is_empty() {
        schedule.metadata.labels = Some(opts.labels.clone());
    }
    schedule
}

/// The volume-policy ConfigMap, exactly one data key.
pub fn plan_policy_configmap(velero_namespace: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(POLICY_CONFIGMAP.into()),
            namespace: Some(velero_namespace.into()),
            labels: Some(BTreeMap::from([(MANAGED_BY.0.into(), MANAGED_BY.1.into())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(POLICY_KEY.into(), POLICY_YAML.into())])),
        ..ConfigMap::default()
    }
}

/// What to do with the policy ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyAction {
    /// It does not exist: create it.
    Create(ConfigMap),
    /// It exists with other content: replace its data (keeping its metadata and
    /// resourceVersion, so a concurrent change conflicts instead of being lost).
    Update(ConfigMap),
    /// It already says exactly this.
    Unchanged,
}

/// Decides how to make the ConfigMap hold exactly our policy (idempotent).
pub fn plan_policy(existing: Option<&ConfigMap>, velero_namespace: &str) -> PolicyAction {
    let desired = plan_policy_configmap(velero_namespace);
    match existing {
        None => PolicyAction::Create(desired),
        Some(cm)
            if cm.data == desired.data
                && cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty) =>
        {
            PolicyAction::Unchanged
        }
        Some(cm) => {
            let mut updated = cm.clone();
            updated.data = desired.data;
            updated.binary_data = None;
            let labels = updated.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
            PolicyAction::Update(updated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::velero::{BackupStorageLocationSpec, BackupStorageLocationStatus};

    fn r(s: &str) -> ReleaseName {
        ReleaseName::parse(s).unwrap()
    }

    fn found() -> PlatformNamespaces {
        PlatformNamespaces {
            platform: Some("astronomer".into()),
            deployments: vec!["astronomer-a-1".into(), "astronomer-b-2".into()],
            existing: [
                "astronomer",
                "astronomer-a-1",
                "astronomer-b-2",
                "astronomer-tools",
                "velero",
            ]
            .map(String::from)
            .into(),
            terminating: ["astronomer-b-2".to_owned()].into(),
        }
    }

    #[test]
    fn scope_flags_and_namespaces() {
        assert_eq!(Scope::from_flags(false, false, vec![]).unwrap(), Scope::All);
        assert!(Scope::from_flags(true, true, vec![]).is_err());
        let all = resolve_namespaces(&Scope::All, &found(), "astronomer", "astronomer").unwrap();
        assert_eq!(all, ["astronomer", "astronomer-a-1", "astronomer-b-2"]);
        let one = Scope::from_flags(false, false, vec![r("a-1")]).unwrap();
        assert_eq!(one.label(), "a-1");
        assert_eq!(
            resolve_namespaces(&one, &found(), "astronomer", "astronomer").unwrap(),
            ["astronomer-a-1"]
        );
        let tools = Scope::from_flags(false, true, vec![r("tools")]).unwrap();
        assert!(matches!(
            resolve_namespaces(&tools, &found(), "astronomer", "astronomer"),
            Err(BackupError::ReleaseNamespaceMissing { .. })
        ));
        // Platform release "prod" in namespace "astronomer": the prefix is the namespace.
        assert_eq!(
            resolve_namespaces(&one, &found(), "astronomer", "prod").unwrap(),
            ["astronomer-a-1"]
        );
        assert!(matches!(
            check_namespaces(&["astronomer-b-2".into()], &found()),
            Err(BackupError::NamespaceTerminating { .. })
        ));
        assert!(matches!(
            check_namespaces(&["nope".into()], &found()),
            Err(BackupError::NamespaceMissing { .. })
        ));
    }

    #[test]
    fn names_fit_velero_limits() {
        let now: Timestamp = "2026-11-25T16:40:05Z".parse().unwrap();
        assert_eq!(default_name("all", now), "astro-all-20261125164005");
        let long = default_name(&"x".repeat(45), now);
        assert_eq!(long.len(), 63);
        assert!(validate_name(&long, MAX_BACKUP_NAME, "backup").is_ok());
        assert!(validate_name(&"a".repeat(64), MAX_BACKUP_NAME, "backup").is_err());
        assert!(validate_name(&"a".repeat(49), MAX_SCHEDULE_NAME, "schedule").is_err());
        assert!(validate_name("Bad_Name", 63, "backup").is_err());
    }

    #[test]
    fn ttl_and_labels() {
        assert_eq!(parse_ttl("72h").unwrap(), "72h0m0s");
        assert_eq!(parse_ttl("168h").unwrap(), "168h0m0s");
        assert_eq!(parse_ttl("90m").unwrap(), "1h30m0s");
        assert_eq!(parse_ttl("90s").unwrap(), "1m30s");
        assert_eq!(parse_ttl("1.5s").unwrap(), "1.5s");
        assert_eq!(parse_ttl("0").unwrap(), "0s");
        assert!(parse_ttl("3d").is_err());
        assert!(parse_ttl("-1h").is_err());
        assert_eq!(
            go_duration_string(SignedDuration::from_millis(500)),
            "500ms"
        );
        let labels = parse_labels("team=data,tier=prod").unwrap();
        assert_eq!(labels.get("team").map(String::as_str), Some("data"));
        assert!(parse_labels("oops").is_err());
    }

    #[test]
    fn backup_equals_velero_cli_object() {
        // velero backup create b1 --include-namespaces ns1 --ttl 168h --storage-location default
        //   --resource-policies-configmap astro-backup-volume-policy
        let opts = BackupOptions {
            ttl: Some(parse_ttl("168h").unwrap()),
            storage_location: Some("default".into()),
            ..BackupOptions::default()
        };
        let backup = plan_backup("b1", "velero", &["ns1".into()], &opts);
        let yaml = serde_saphyr::to_string(&backup).unwrap();
        let expected = "apiVersion: velero.io/v1
kind: Backup
metadata:
  name: b1
  namespace: velero
spec:
  includedNamespaces:
    - ns1
  resourcePolicy:
    kind: configmap
    name: astro-backup-volume-policy
  storageLocation: default
  ttl: 168h0m0s
";
        let got: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        let want: serde_json::Value = serde_saphyr::from_str(expected).unwrap();
        assert_eq!(got, want, "{yaml}");
    }

    #[test]
    fn schedule_template_carries_policy() {
        let s = plan_schedule(
            "nightly",
            "velero",
            "0 1 * * *",
            &["ns1".into()],
            &BackupOptions {
                snapshot_volumes: Some(false),
                ..BackupOptions::default()
            },
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["spec"]["schedule"], "0 1 * * *");
        assert_eq!(v["spec"]["useOwnerReferencesInBackup"], false);
        assert_eq!(
            v["spec"]["template"]["resourcePolicy"]["name"],
            POLICY_CONFIGMAP
        );
        assert_eq!(v["spec"]["template"]["snapshotVolumes"], false);
        assert_eq!(v["spec"]["template"]["includedNamespaces"][0], "ns1");
    }

    fn bsl(
        name: &str,
        mode: Option<BackupStorageLocationAccessMode>,
        phase: Option<BackupStorageLocationStatusPhase>,
    ) -> BackupStorageLocation {
        let mut b = BackupStorageLocation::new(
            name,
            "velero",
            BackupStorageLocationSpec {
                access_mode: mode,
                ..BackupStorageLocationSpec::default()
            },
        );
        b.status = Some(BackupStorageLocationStatus {
            phase,
            ..Default::default()
        });
        b
    }

    #[test]
    fn storage_location_preflight() {
        use BackupStorageLocationAccessMode as M;
        use BackupStorageLocationStatusPhase as P;
        let ok = bsl("default", Some(M::ReadWrite), Some(P::Available));
        assert!(check_storage_location("default", Some(&ok), "velero").is_ok());
        let ro = bsl("default", Some(M::ReadOnly), Some(P::Available));
        assert!(matches!(
            check_storage_location("default", Some(&ro), "velero"),
            Err(BackupError::StorageLocationReadOnly { .. })
        ));
        let down = bsl("default", None, Some(P::Unavailable));
        assert!(matches!(
            check_storage_location("default", Some(&down), "velero"),
            Err(BackupError::StorageLocationUnavailable { .. })
        ));
        let unknown = bsl("default", None, None);
        assert!(check_storage_location("default", Some(&unknown), "velero").is_err());
        assert!(matches!(
            check_storage_location("x", None, "velero"),
            Err(BackupError::StorageLocationMissing { .. })
        ));
        let mut marked = bsl("secondary", None, Some(P::Available));
        marked.spec.default = Some(true);
        assert_eq!(
            choose_storage_location(None, &[ok.clone(), marked]),
            "secondary"
        );
        assert_eq!(choose_storage_location(None, &[ok]), "default");
        assert_eq!(choose_storage_location(Some("x"), &[]), "x");
    }

    #[test]
    fn policy_configmap_is_idempotent() {
        let PolicyAction::Create(cm) = plan_policy(None, "velero") else {
            panic!("expected create")
        };
        assert_eq!(cm.data.as_ref().unwrap().len(), 1);
        assert_eq!(plan_policy(Some(&cm), "velero"), PolicyAction::Unchanged);
        let mut drifted = cm.clone();
        drifted
            .data
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        let PolicyAction::Update(fixed) = plan_policy(Some(&drifted), "velero") else {
            panic!("expected update")
        };
        assert_eq!(fixed.data, cm.data);
        // The policy text parses as the YAML Velero expects.
        let v: serde_json::Value = serde_saphyr::from_str(POLICY_YAML).unwrap();
        assert_eq!(
            v["volumePolicies"][0]["conditions"]["pvcLabels"]["component"],
            "redis"
        );
        assert_eq!(v["volumePolicies"][0]["action"]["type"], "skip");
    }
}
