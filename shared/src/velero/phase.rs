//! The four phases after which Velero leaves a Backup or Restore alone, and helpers
//! on the generated phase enums (hand-written; the generator does not touch this file).

use std::fmt;

/// A terminal phase of a Backup or Restore (velero.md §2.4, §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// Everything was backed up / restored (warnings allowed).
    Completed,
    /// It ran, with errors (`status.errors > 0`); reasons are in the results file.
    PartiallyFailed,
    /// The whole operation failed; `status.failureReason` says why.
    Failed,
    /// Velero refused the spec; `status.validationErrors` say why.
    FailedValidation,
}

impl Terminal {
    /// The terminal phase named `phase`, or `None` if the phase is still running
    /// (`""`, `New`, `Queued`, `ReadyToStart`, `InProgress`, `WaitingForPluginOperations*`,
    /// `Finalizing*`, `Deleting`, or a phase this build does not know).
    pub fn from_phase(phase: &str) -> Option<Self> {
        match phase {
            "Completed" => Some(Terminal::Completed),
            "PartiallyFailed" => Some(Terminal::PartiallyFailed),
            "Failed" => Some(Terminal::Failed),
            "FailedValidation" => Some(Terminal::FailedValidation),
            _ => None,
        }
    }

    /// The phase as Velero spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Terminal::Completed => "Completed",
            Terminal::PartiallyFailed => "PartiallyFailed",
            Terminal::Failed => "Failed",
            Terminal::FailedValidation => "FailedValidation",
        }
    }
}

impl fmt::Display for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
