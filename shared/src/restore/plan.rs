//! The Velero Restore object for one deployment namespace, built without I/O so
//! `--dry-run` prints exactly what would be created.

use std::collections::BTreeMap;

use crate::release::ReleaseName;
use crate::restore::preflight::ExistingPolicy;

/// Longest name Velero can use as a label value unchanged.
pub const MAX_RESTORE_NAME: usize = 63;

/// `--namespace-mapping SRC:DST` (restore side by side, e.g. for a drill).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceMapping {
    /// Namespace in the backup.
    pub from: String,
    /// Namespace to create.
    pub to: String,
}

impl std::str::FromStr for NamespaceMapping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (from, to) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not SRC:DST"))?;
        for part in [from, to] {
            if !is_dns_label(part) {
                return Err(format!(
                    "{part:?} is not a namespace name (lowercase letters, digits, '-', at most 63)"
                ));
            }
        }
        Ok(NamespaceMapping {
            from: from.to_owned(),
            to: to.to_owned(),
        })
    }
}

/// Whether `s` is a valid Kubernetes namespace name (RFC 1123 label).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Everything the Restore needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    /// Restore name.
    pub name: String,
    /// Velero namespace.
    pub velero_namespace: String,
    /// Backup to restore from.
    pub backup: String,
    /// Namespace in the backup.
    pub namespace: String,
    /// Optional side-by-side target.
    pub mapping: Option<NamespaceMapping>,
    /// Existing-resource policy, when given.
    pub policy: Option<ExistingPolicy>,
}

impl RestorePlan {
    /// The namespace objects land in.
    pub fn target_namespace(&self) -> &str {
        self.mapping.as_ref().map_or(&self.namespace, |m| &m.to)
    }
}

/// `<release>-<UTC yyyymmddhhmmss>`; release names are ≤ 45 characters so this is ≤ 60.
pub fn restore_name(release: &ReleaseName, now: jiff::Timestamp) -> String {
    restore_name_attempt(release, now, 0)
}

/// [`restore_name`] for the `attempt`-th try: `-<attempt>` is appended from 1 on, for when
/// another restore of the release took the name in the same second (409 AlreadyExists).
pub fn restore_name_attempt(release: &ReleaseName, now: jiff::Timestamp, attempt: u32) -> String {
    let mut stamp = now.strftime("%Y%m%d%H%M%S").to_string();
    if attempt > 0 {
        stamp.push_str(&format!("-{attempt}"));
    }
    let keep = MAX_RESTORE_NAME - stamp.len() - 1;
    let base: String = release.as_str().chars().take(keep).collect();
    format!("{}-{stamp}", base.trim_end_matches('-'))
}

/// The Restore as Velero's API takes it (no status; `backupName` always, never `scheduleName`).
pub fn restore_object(plan: &RestorePlan) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "backupName": plan.backup,
        "includedNamespaces": [plan.namespace],
    });
    if let Some(m) = &plan.mapping {
        spec["namespaceMapping"] =
            serde_json::to_value(BTreeMap::from([(m.from.clone(), m.to.clone())]))
                .unwrap_or_default();
    }
    if let Some(p) = plan.policy {
        spec["existingResourcePolicy"] = p.as_str().into();
    }
    serde_json::json!({
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {
            "name": plan.name,
            "namespace": plan.velero_namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubectl-astro"},
        },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit() {
        let now: jiff::Timestamp = "2026-09-01T12:00:00Z".parse().unwrap();
        let r = ReleaseName::parse("celestial-zenith-1234").unwrap();
        assert_eq!(
            restore_name(&r, now),
            "celestial-zenith-1234-20260901120000"
        );
        let long = ReleaseName::parse(&"a".repeat(45)).unwrap();
        assert!(restore_name(&long, now).len() <= MAX_RESTORE_NAME);
        assert!(restore_name_attempt(&long, now, 12).len() <= MAX_RESTORE_NAME);
        let again = restore_name_attempt(&r, now, 2);
        assert!(
            again.ends_with("-2") && again != restore_name(&r, now),
            "{again}"
        );
    }

    #[test]
    fn mapping_parses() {
        let m: NamespaceMapping = "astronomer-a:astronomer-a-drill".parse().unwrap();
        assert_eq!(m.to, "astronomer-a-drill");
        assert!("nocolon".parse::<NamespaceMapping>().is_err());
        assert!("a:B".parse::<NamespaceMapping>().is_err());
    }

    #[test]
    fn object_matches_velero_cli_shape() {
        let plan = RestorePlan {
            name: "r1".into(),
            velero_namespace: "velero".into(),
            backup: "b1".into(),
            namespace: "ns1".into(),
            mapping: Some("ns1:ns1-drill".parse().unwrap()),
            policy: Some(ExistingPolicy::Update),
        };
        let v = restore_object(&plan);
        assert_eq!(v["spec"]["backupName"], "b1");
        assert_eq!(v["spec"]["includedNamespaces"], serde_json::json!(["ns1"]));
        assert_eq!(v["spec"]["namespaceMapping"]["ns1"], "ns1-drill");
        assert_eq!(v["spec"]["existingResourcePolicy"], "update");
        assert!(v.get("status").is_none());
        assert_eq!(plan.target_namespace(), "ns1-drill");
    }
}
