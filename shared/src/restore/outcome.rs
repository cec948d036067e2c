//! What a finished Restore says: phase, counts, failure reason, validation errors, and the
//! warning/error reasons from its results file, turned into a report and an exit status.

use crate::restore::RestoreError;
use crate::restore::download::Results;
use crate::velero::Restore;

/// A finished (or last-seen) Restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Restore name.
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// `status.warnings`.
    pub warnings: i64,
    /// `status.errors`.
    pub errors: i64,
    /// `status.failureReason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// `status.validationErrors`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,
    /// `status.progress.itemsRestored`.
    pub items_restored: i64,
    /// `status.progress.totalItems`.
    pub total_items: i64,
    /// The results file, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Results>,
}

impl Outcome {
    /// Reads a finished (or last-seen) Restore.
    pub fn of(restore: &Restore) -> Self {
        let status = restore.status.clone().unwrap_or_default();
        let progress = status.progress.unwrap_or_default();
        Outcome {
            name: restore.metadata.name.clone().unwrap_or_default(),
            phase: status
                .phase
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            warnings: status.warnings.unwrap_or(0),
            errors: status.errors.unwrap_or(0),
            failure_reason: status.failure_reason.filter(|r| !r.is_empty()),
            validation_errors: status.validation_errors.unwrap_or_default(),
            items_restored: progress.items_restored.unwrap_or(0),
            total_items: progress.total_items.unwrap_or(0),
            results: None,
        }
    }

    /// Whether the results file has something to explain.
    pub fn wants_results(&self) -> bool {
        self.warnings > 0 || self.errors > 0 || self.phase == "PartiallyFailed"
    }

    /// `None` for Completed; otherwise the error to exit with.
    pub fn error(&self) -> Option<RestoreError> {
        if self.phase == "Completed" {
            return None;
        }
        let detail = match self.phase.as_str() {
            "FailedValidation" => Some(self.validation_errors.join("; ")),
            "Failed" => self.failure_reason.clone(),
            "PartiallyFailed" => Some(match &self.results {
                Some(r) if !r.errors.lines().is_empty() => r.errors.lines().join("; "),
                _ => format!("{} errors (results file not available)", self.errors),
            }),
            _ => None,
        }
        .filter(|d| !d.is_empty());
        Some(RestoreError::RestoreFailed {
            name: self.name.clone(),
            phase: if self.phase.is_empty() {
                "without a phase".into()
            } else {
                self.phase.clone()
            },
            detail,
        })
    }

    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut out = format!(
            "restore {} {}: {}/{} items restored, {} warnings, {} errors\n",
            self.name,
            self.phase,
            self.items_restored,
            self.total_items,
            self.warnings,
            self.errors
        );
        if let Some(r) = &self.failure_reason {
            out.push_str(&format!("  failure reason: {r}\n"));
        }
        for e in &self.validation_errors {
            out.push_str(&format!("  validation error: {e}\n"));
        }
        if let Some(r) = &self.results {
            for l in r.errors.lines() {
                out.push_str(&format!("  error: {l}\n"));
            }
            for l in r.warnings.lines() {
                out.push_str(&format!("  warning: {l}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Restore as the API returns it, from its metadata and status.
    fn restore(v: serde_json::Value) -> Restore {
        let mut object = json!({"apiVersion": "velero.io/v1", "kind": "Restore", "spec": {}});
        object["metadata"] = v["metadata"].clone();
        object["status"] = v["status"].clone();
        serde_json::from_value(object).expect("a valid Restore")
    }

    #[test]
    fn phases_map_to_errors() {
        let ok = Outcome::of(&restore(
            json!({"metadata": {"name": "r"}, "status": {"phase": "Completed", "warnings": 2}}),
        ));
        assert!(ok.error().is_none());
        assert!(ok.wants_results());
        let failed = Outcome::of(&restore(
            json!({"metadata": {"name": "r"}, "status": {"phase": "Failed", "failureReason": "found a restore with status \"InProgress\" during the server starting"}}),
        ));
        assert!(
            failed
                .error()
                .unwrap()
                .to_string()
                .contains("server starting")
        );
        let v = Outcome::of(&restore(
            json!({"metadata": {"name": "r"}, "status": {"phase": "FailedValidation", "validationErrors": ["The BSL default is unavailable"]}}),
        ));
        assert!(v.error().unwrap().to_string().contains("BSL default"));
        let mut pf = Outcome::of(&restore(
            json!({"metadata": {"name": "r"}, "status": {"phase": "PartiallyFailed", "errors": 1}}),
        ));
        assert!(pf.error().unwrap().to_string().contains("1 errors"));
        pf.results = Some(
            serde_json::from_value(
                json!({"errors": {"namespaces": {"ns": ["error restoring pods/x"]}}}),
            )
            .unwrap(),
        );
        let e = pf.error().unwrap();
        assert!(e.to_string().contains("error restoring pods/x"), "{e}");
        assert!(
            pf.text()
                .contains("error: namespace ns: error restoring pods/x"),
            "{}",
            pf.text()
        );
    }
}
