//! Shared helpers: the binary laid out in a plugins directory, launched as Velero does.

use std::ffi::OsString;
use std::path::PathBuf;

use astro::velero_plugin::host::{LaunchOptions, PluginProcess, discover, install_into};

/// The binary under test, copied into `<tmp>/plugins/` (mode 0755) and found there by
/// Velero's discovery rules. `ASTRO_VELERO_PLUGIN_BIN` tests another build of it (e.g.
/// the static one of `scripts/build-velero-plugin`).
pub struct Installed {
    _dir: tempfile::TempDir,
    /// The path Velero would launch.
    pub path: PathBuf,
}

pub fn installed() -> Installed {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let binary = std::env::var_os("ASTRO_VELERO_PLUGIN_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_velero-plugin-astro")),
        PathBuf::from,
    );
    install_into(&binary, &plugins).unwrap();
    let found = discover(&plugins).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    Installed {
        path: found[0].clone(),
        _dir: dir,
    }
}

/// Launch options with extra environment (e.g. `KUBECONFIG`).
pub fn options(env: &[(&str, &str)]) -> LaunchOptions {
    LaunchOptions {
        env: env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect(),
        start_timeout: std::time::Duration::from_secs(20),
        ..LaunchOptions::default()
    }
}

pub async fn launch(installed: &Installed, env: &[(&str, &str)]) -> PluginProcess {
    match PluginProcess::launch(&installed.path, &options(env)).await {
        Ok(p) => p,
        Err(f) => panic!("launch failed: {}; stderr: {:#?}", f.error, f.stderr),
    }
}

/// Stops the process as Velero does and checks it behaved: gone within 2 s of
/// `Shutdown` by itself, nothing on stdout after the handshake, every log line valid.
pub async fn stop(process: PluginProcess) -> Vec<String> {
    let report = process.kill().await;
    assert!(report.graceful, "not gone 2 s after Shutdown: {report:?}");
    // Gone once the connection closes, not only when the server's own grace runs out.
    assert!(
        report.elapsed < astro::velero_plugin::server::STOP_GRACE,
        "{:?} from Shutdown to exit",
        report.elapsed
    );
    assert!(
        report.status.is_some_and(|s| s.success()),
        "exit status {:?}",
        report.status
    );
    assert!(
        report.stdout_after_handshake.is_empty(),
        "stdout noise: {:?}",
        report.stdout_after_handshake
    );
    assert!(
        report.bad_log_lines().is_empty(),
        "{:?} in {:#?}",
        report.bad_log_lines(),
        report.stderr
    );
    report.stderr
}

/// A Restore as Velero marshals it (only its bytes travel; the actions ignore it).
pub const RESTORE: &[u8] =
    br#"{"apiVersion":"velero.io/v1","kind":"Restore","metadata":{"name":"r","namespace":"velero"},"spec":{"backupName":"b"}}"#;
