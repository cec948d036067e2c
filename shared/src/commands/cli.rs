//! Flags every binary shares (kubeconfig, context, platform and Velero namespaces), and
//! the `main` runner that maps results to exit codes.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::error::Error;
use crate::commands::exit::ExitStatus;

/// Default namespace of the Astronomer platform.
pub const DEFAULT_PLATFORM_NAMESPACE: &str = "astronomer";
/// Default namespace of the Velero server.
pub const DEFAULT_VELERO_NAMESPACE: &str = "velero";

/// kubectl-style options shared by every `kubectl astro` command.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace of the Astronomer platform.
    #[arg(long, global = true, value_name = "NS", default_value = DEFAULT_PLATFORM_NAMESPACE)]
    pub platform_namespace: String,

    /// Helm release name of the platform (default: detected, else `astronomer`).
    #[arg(long, global = true, value_name = "NAME")]
    pub platform_release: Option<String>,

    /// Namespace of the Velero server.
    #[arg(long, global = true, value_name = "NS", env = "VELERO_NAMESPACE", default_value = DEFAULT_VELERO_NAMESPACE)]
    pub velero_namespace: String,
}

impl GlobalArgs {
    /// Where the platform and Velero live, as the domain modules take it.
    pub fn site(&self) -> crate::platform::Site {
        crate::platform::Site {
            platform_namespace: self.platform_namespace.clone(),
            platform_release: self.platform_release.clone(),
            velero_namespace: self.velero_namespace.clone(),
        }
    }
}

/// Builds a client from `--kubeconfig`/`KUBECONFIG`/`~/.kube/config` and `--context`.
pub async fn client_from(args: &GlobalArgs) -> Result<kube::Client, crate::client::KubeError> {
    crate::client::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await
}

/// Runs an async command on a fresh runtime and turns its result into an exit code,
/// printing any error once, with its cause chain and next step, to stderr.
pub fn run_main<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<ExitStatus, Error>>,
{
    let runtime = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitStatus::Failed.into();
        }
    };
    match runtime.block_on(interruptible(command())) {
        Some(Ok(status)) => status.into(),
        Some(Err(err)) => {
            report(&err);
            err.exit_status().into()
        }
        None => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "error: interrupted (Ctrl-C) before the command finished"
            );
            done_before(&mut stderr);
            ExitStatus::Failed.into()
        }
    }
}

/// How long a part that handles Ctrl-C itself ([`crate::interrupt`]: deleting its client
/// pod, saying that a backup keeps running) may take to clean up and report.
const CTRL_C_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `command`; on Ctrl-C it stops at once (`None`, so that the runner says what was
/// done), unless a part of it handles Ctrl-C itself, which then gets up to [`CTRL_C_GRACE`]
/// to clean up and report.
async fn interruptible<T>(command: impl Future<Output = T>) -> Option<T> {
    let mut command = std::pin::pin!(command);
    tokio::select! {
        result = &mut command => Some(result),
        Ok(()) = tokio::signal::ctrl_c() => {
            crate::interrupt::mark_requested();
            // Parts cleaning up (and reporting) after Ctrl-C run on until done; then stop.
            let deadline = tokio::time::Instant::now() + CTRL_C_GRACE;
            while crate::interrupt::handled() && tokio::time::Instant::now() < deadline {
                tokio::select! {
                    biased;
                    result = &mut command => return Some(result),
                    () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                }
            }
            futures::FutureExt::now_or_never(&mut command)
        }
    }
}

/// Prints what this process changed in the cluster so far (or that it changed nothing).
fn done_before(stderr: &mut impl Write) {
    let changes = crate::client::retry::changes();
    if changes.is_empty() {
        let _ = writeln!(
            stderr,
            "  done before the error: nothing was changed in the cluster"
        );
    } else {
        const SHOWN: usize = 8;
        let mut text = changes
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if changes.len() > SHOWN {
            text.push_str(&format!("; and {} more", changes.len() - SHOWN));
        }
        let _ = writeln!(stderr, "  done before the error, in the cluster: {text}");
    }
}

/// Prints an error and its sources to stderr, then the suggested next step.
pub fn report(err: &Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    let mut source = std::error::Error::source(err);
    // `#[error(transparent)]` repeats the inner message as the first source; skip echoes.
    let mut last = err.to_string();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !last.contains(&text) {
            let _ = writeln!(stderr, "  caused by: {text}");
        }
        last = text;
        source = cause.source();
    }
    // What was done before the error, so that nobody has to guess at 3 a.m.
    done_before(&mut stderr);
    if let Some(step) = err.next_step() {
        let _ = writeln!(stderr, "  next step: {step}");
    }
}

/// The name to show in usage text for a binary started as `argv0`.
///
/// kubectl runs plugins by path, so `kubectl-astro-restore` is shown as
/// `kubectl astro restore`, the way the user typed it.
pub fn display_name(argv0: &str) -> String {
    let file = std::path::Path::new(argv0)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or(argv0);
    match file.strip_prefix("kubectl-") {
        Some(rest) => format!("kubectl {}", rest.replace('-', " ")),
        None => file.to_owned(),
    }
}

/// Parses the command line of a binary, with usage text naming it as the user typed it.
pub fn parse<C: clap::Parser>() -> C {
    let argv0 = std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let command = C::command().bin_name(display_name(&argv0));
    let matches = command.get_matches();
    C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_binaries_are_shown_as_kubectl_subcommands() {
        assert_eq!(
            display_name("/home/u/.krew/store/astro/v0.1.0/kubectl-astro-restore"),
            "kubectl astro restore"
        );
        assert_eq!(display_name("kubectl-astro"), "kubectl astro");
        assert_eq!(display_name("./astro-tool"), "astro-tool");
    }
}
