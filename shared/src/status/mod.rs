//! `kubectl astro status`: could we recover right now? Pure checks on typed facts
//! ([`checks`]), the read-only collect step ([`collect`]) and the report ([`report`]),
//! knowing nothing of clap or the terminal.

pub mod checks;
pub mod collect;
pub mod decide;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Nothing in the way.
    Ok,
    /// Works today, but something needs attention.
    Warn,
    /// A recovery would not get this back (or not as expected).
    Fail,
    /// Cannot tell (the source did not answer).
    Unknown,
}

impl Verdict {
    /// Lower-case name, as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The report's sections, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Section {
    /// The Velero server and its storage locations.
    Velero,
    /// Velero schedules: health, missed runs, coverage.
    Schedules,
    /// Per namespace: the newest backup that holds it.
    Backups,
    /// The Redis volume policy.
    Redis,
    /// The platform database: secret and dumps.
    Database,
    /// Soft-deleted deployments still restorable.
    SoftDeleted,
    /// Helm values that would undo an endpoint move.
    Endpoint,
}

impl Section {
    /// Title for text output.
    pub fn title(self) -> &'static str {
        match self {
            Section::Velero => "Velero",
            Section::Schedules => "Schedules",
            Section::Backups => "Backups per namespace",
            Section::Redis => "Redis volume policy",
            Section::Database => "Platform database",
            Section::SoftDeleted => "Soft-deleted deployments",
            Section::Endpoint => "Endpoint durability",
        }
    }
}

/// One verdict with what it is about and what to do next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Stable id of the kind of check (`velero.server`, `backup.age`, …): the metric label.
    pub check: String,
    /// The section it belongs to.
    pub section: Section,
    /// What it is about (a location, schedule, release or namespace).
    pub subject: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub message: String,
    /// What to do about it (none when ok).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    /// The backup the check is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Age in seconds of what the check measured (newest backup, dump), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// Days left (soft-deleted deployments before the 14-day cleanup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// The Houston release this is about, if any (metric label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

impl Check {
    /// A check without the optional fields.
    pub fn new(
        check: &str,
        section: Section,
        subject: impl Into<String>,
        verdict: Verdict,
        message: impl Into<String>,
    ) -> Self {
        Check {
            check: check.to_owned(),
            section,
            subject: subject.into(),
            verdict,
            message: message.into(),
            next_step: None,
            backup: None,
            age_seconds: None,
            days_left: None,
            release: None,
        }
    }

    /// With a next step.
    #[must_use]
    pub fn next(mut self, step: impl Into<String>) -> Self {
        self.next_step = Some(step.into());
        self
    }
}

/// Why the status could not be gathered at all (partial failures become `unknown` checks).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Reading from the API server failed.
    #[error(transparent)]
    Kube(#[from] crate::client::KubeError),
    /// A flag value that cannot be used.
    #[error("{what}: {reason}")]
    BadInput {
        /// The flag.
        what: String,
        /// Why.
        reason: String,
    },
}
