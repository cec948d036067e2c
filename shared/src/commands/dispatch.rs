//! The `kubectl astro` dispatcher: finds `kubectl-astro-<cmd>` next to its own resolved
//! executable (krew only links `kubectl-astro` into PATH), then on PATH, and execs it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::commands::exit::ExitStatus;

/// A command the dispatcher knows, with the one-line description `kubectl astro` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCommand {
    /// What the user types after `kubectl astro`.
    pub name: &'static str,
    /// One line shown in the command list.
    pub about: &'static str,
    /// Whether the dispatcher runs it itself instead of a sibling binary.
    pub builtin: bool,
}

/// Every command of `kubectl astro`, in the order of the runbook.
pub const COMMANDS: &[KnownCommand] = &[
    KnownCommand {
        name: "backup",
        about: "Velero backups and schedules of the platform and deployments, and database dumps",
        builtin: false,
    },
    KnownCommand {
        name: "restore",
        about: "Restore one deployment (with Houston undelete), the whole platform, or move the DB endpoint",
        builtin: false,
    },
    KnownCommand {
        name: "status",
        about: "Could we recover right now? DR readiness checks (read-only), text, JSON/YAML or Prometheus",
        builtin: false,
    },
    KnownCommand {
        name: "dbconn",
        about: "Decode the platform database connection; print it safely, run SQL, or open psql",
        builtin: false,
    },
    KnownCommand {
        name: "completion",
        about: "Print shell completions (bash, zsh, fish)",
        builtin: true,
    },
    KnownCommand {
        name: "version",
        about: "Print the version of kubectl-astro",
        builtin: true,
    },
];

/// Why a command could not be dispatched.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The user typed a command that does not exist.
    #[error("unknown command {given:?} for \"kubectl astro\"{}", suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    Unknown {
        /// What was typed.
        given: String,
        /// The closest known command, if one is close.
        suggestion: Option<&'static str>,
    },
    /// The sibling binary is not installed.
    #[error("cannot find {binary} next to {beside} or on PATH")]
    NotInstalled {
        /// The binary looked for.
        binary: String,
        /// Where we looked first.
        beside: String,
    },
    /// The binary exists but could not be started.
    #[error("cannot run {binary}: {source}")]
    Exec {
        /// The binary that failed to start.
        binary: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Finds the external command `name`: first beside `own_exe` (with symlinks resolved), then on `path`.
pub fn find_external(
    name: &str,
    own_exe: &Path,
    path: Option<&OsString>,
) -> Result<PathBuf, DispatchError> {
    let binary = format!("kubectl-astro-{name}");
    let resolved = std::fs::canonicalize(own_exe).unwrap_or_else(|_| own_exe.to_path_buf());
    let beside_dir = resolved.parent().map(Path::to_path_buf).unwrap_or_default();
    let beside = beside_dir.join(&binary);
    if is_executable(&beside) {
        return Ok(beside);
    }
    if let Some(path) = path {
        for dir in std::env::split_paths(path) {
            let candidate = dir.join(&binary);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(DispatchError::NotInstalled {
        binary,
        beside: beside_dir.display().to_string(),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Looks up a command by name, suggesting the closest one when it is unknown.
pub fn lookup(name: &str) -> Result<&'static KnownCommand, DispatchError> {
    COMMANDS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| DispatchError::Unknown {
            given: name.to_owned(),
            suggestion: closest(name),
        })
}

/// The known command closest to `typed` by edit distance, if it is plausibly a typo.
pub fn closest(typed: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .map(|c| (edit_distance(typed, c.name), c.name))
        .filter(|(d, name)| {
            *d <= 2.max(name.len() / 3) || name.starts_with(typed) && !typed.is_empty()
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev_diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(prev_diag + usize::from(ca != *cb));
            prev_diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The text `kubectl astro` prints when run alone.
pub fn command_list() -> String {
    let width = COMMANDS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::from(
        "kubectl astro: Astronomer Software disaster recovery, step by step from the runbook.\n\nCommands:\n",
    );
    for c in COMMANDS {
        out.push_str(&format!("  {:width$}  {}\n", c.name, c.about));
    }
    out.push_str("\nRun `kubectl astro <command> --help` for the flags of a command.\n");
    out
}

/// Runs `kubectl astro ARGS`: lists, prints the version, completes, or execs a sibling.
pub fn main(args: Vec<OsString>) -> std::process::ExitCode {
    match dispatch(args) {
        Ok(status) => status.into(),
        Err(err) => {
            let err = crate::commands::error::Error::from(err);
            crate::commands::cli::report(&err);
            err.exit_status().into()
        }
    }
}

fn dispatch(args: Vec<OsString>) -> Result<ExitStatus, DispatchError> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        let _ = crate::output::print_stdout(&command_list());
        return Ok(ExitStatus::Success);
    };
    let first = first.to_string_lossy().into_owned();
    match first.as_str() {
        "-h" | "--help" | "help" => {
            let _ = crate::output::print_stdout(&command_list());
            return Ok(ExitStatus::Success);
        }
        "-V" | "--version" | "version" => {
            let _ = crate::output::print_stdout(&format!(
                "kubectl-astro {}\n",
                env!("CARGO_PKG_VERSION")
            ));
            return Ok(ExitStatus::Success);
        }
        _ => {}
    }
    let command = lookup(&first)?;
    if command.name == "completion" {
        return Ok(completion(args.next()));
    }
    let own_exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kubectl-astro"));
    let binary = find_external(command.name, &own_exe, std::env::var_os("PATH").as_ref())?;
    exec(&binary, args.collect())
}

fn completion(shell: Option<OsString>) -> ExitStatus {
    use clap::ValueEnum;
    let shell = shell
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match clap_complete::Shell::from_str(&shell, true) {
        Ok(
            shell @ (clap_complete::Shell::Bash
            | clap_complete::Shell::Zsh
            | clap_complete::Shell::Fish),
        ) => {
            crate::commands::completion::print_script(shell);
            ExitStatus::Success
        }
        _ => {
            eprintln!(
                "error: completion needs a shell: bash, zsh or fish (got {shell:?})\n  next step: e.g. `source <(kubectl astro completion bash)`"
            );
            ExitStatus::Usage
        }
    }
}

fn exec(binary: &Path, args: Vec<OsString>) -> Result<ExitStatus, DispatchError> {
    use std::os::unix::process::CommandExt;
    // exec replaces this process, so the child's exit code and signals pass straight through.
    let err = std::process::Command::new(binary).args(args).exec();
    Err(DispatchError::Exec {
        binary: binary.display().to_string(),
        source: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_commands_only() {
        assert_eq!(closest("restor"), Some("restore"));
        assert_eq!(closest("bakup"), Some("backup"));
        assert_eq!(closest("db"), Some("dbconn"));
        assert_eq!(closest("completions"), Some("completion"));
        assert_eq!(closest("kubernetes"), None);
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn finds_siblings_beside_the_resolved_executable_first() {
        use std::os::unix::fs::PermissionsExt;
        let store = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let on_path = tempfile::tempdir().unwrap();
        let write_exe = |p: &Path| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write_exe(&store.path().join("kubectl-astro"));
        write_exe(&store.path().join("kubectl-astro-restore"));
        write_exe(&on_path.path().join("kubectl-astro-restore"));
        write_exe(&on_path.path().join("kubectl-astro-backup"));
        let link = bin.path().join("kubectl-astro");
        std::os::unix::fs::symlink(store.path().join("kubectl-astro"), &link).unwrap();
        let path = std::env::join_paths([bin.path(), on_path.path()]).unwrap();

        let found = find_external("restore", &link, Some(&path)).unwrap();
        assert_eq!(
            found.parent().unwrap(),
            std::fs::canonicalize(store.path()).unwrap()
        );
        let found = find_external("backup", &link, Some(&path)).unwrap();
        assert_eq!(found.parent().unwrap(), on_path.path());
        assert!(matches!(
            find_external("dbconn", &link, Some(&path)),
            Err(DispatchError::NotInstalled { .. })
        ));
    }
}
