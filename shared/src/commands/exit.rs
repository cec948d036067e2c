//! Process exit codes shared by every binary (SPEC "Conventions").
//! 0 success, 1 operation failed, 2 usage or bad input, 3 precondition refused.

use std::process::ExitCode;

/// How a command ended, as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked.
    Success,
    /// The operation ran and failed (e.g. a backup ended `PartiallyFailed`).
    Failed,
    /// Usage error or bad input; nothing was changed.
    Usage,
    /// A precondition refused the operation; nothing was changed.
    Refused,
}

impl ExitStatus {
    /// The numeric code of this status.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Refused => 3,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}
