//! Starting the fake cluster loaded with the rendered fixtures, and running the built
//! binaries against it with a scrubbed environment.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use fake_cluster::{FakeCluster, NamespaceTermination, Options};
use serde_json::Value;

use crate::{
    days_since_fixture_today, db_substitutions, fixtures_dir, load_dir, object_key,
    render_fixtures_shifted, shift_dates, try_pg, velero_crd_dir, write_manifests,
};

/// The fake cluster with the `platform/` fixtures, pointed at the test PostgreSQL
/// (when `ASTRO_TEST_PG_*` is set), with the simulated Velero running.
pub fn cluster() -> FakeCluster {
    cluster_builder().start()
}

/// [`cluster`] with variant directories loaded over `platform/`, e.g. `&["variant-c"]`.
pub fn cluster_with(variants: &[&str]) -> FakeCluster {
    cluster_builder().variants(variants).start()
}

/// A builder for clusters that need more than [`cluster_with`].
pub fn cluster_builder() -> ClusterBuilder {
    ClusterBuilder {
        variants: Vec::new(),
        substitutions: Vec::new(),
        use_pg: true,
        pg: None,
        pods_only_db: false,
        audit_on_drop: true,
        options: Options {
            simulate_velero: true,
            ..Options::default()
        },
    }
}

/// Configures a fixture cluster; [`ClusterBuilder::start`] renders and starts it.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    variants: Vec<String>,
    substitutions: Vec<(String, String)>,
    use_pg: bool,
    pg: Option<crate::Pg>,
    pods_only_db: bool,
    audit_on_drop: bool,
    options: Options,
}

impl ClusterBuilder {
    /// Variant directories to load over `platform/`, in order.
    pub fn variants(mut self, variants: &[&str]) -> Self {
        self.variants = variants.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// A text replacement applied to the fixture YAML before the DB substitutions, e.g.
    /// `("/astronomer_houston?", "/astronomer_houston_t1_0?")` to point Houston at a
    /// private copy made by `Pg::clone_database`.
    pub fn substitute(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.substitutions.push((from.into(), to.into()));
        self
    }

    /// The test PostgreSQL reachable only from pods, as on a real installation: the
    /// secrets name [`crate::PODS_ONLY_DB_HOST`], which the fake kubelet (turned on) maps
    /// to the server for its pods, and which nothing else resolves.
    pub fn pods_only_db(mut self) -> Self {
        self.pods_only_db = true;
        self.options.kubelet = true;
        self
    }

    /// Point the fixtures at `pg` instead of the `ASTRO_TEST_PG_*` server (the fault suite
    /// has its own, which it restarts).
    pub fn pg(mut self, pg: crate::Pg) -> Self {
        self.pg = Some(pg);
        self
    }

    /// Keep the fixture DB host instead of the test PostgreSQL.
    pub fn without_pg(mut self) -> Self {
        self.use_pg = false;
        self
    }

    /// No audit when the cluster is dropped (see [`ClusterBuilder::start`]): for a test
    /// that leaves the tool's objects behind on purpose (SIGKILL) and checks them itself.
    pub fn without_drop_audit(mut self) -> Self {
        self.audit_on_drop = false;
        self
    }

    /// Adjusts the fake cluster's options (faults are injected after start instead).
    pub fn options(mut self, edit: impl FnOnce(&mut Options)) -> Self {
        edit(&mut self.options);
        self
    }

    /// Renders the fixtures and starts the cluster.
    ///
    /// The objects of `tests/fixtures/velero-backups/` (the deleted deployments'
    /// namespaces) are loaded too, so that the simulated Velero snapshots them into the
    /// fixture backups that include them, and deleted again before this returns: the
    /// cluster looks as after the deletion, and restoring those backups brings them back.
    ///
    /// When the cluster is dropped at the end of the test, it is audited (unless
    /// [`ClusterBuilder::without_drop_audit`]): no object the tool created for a run is
    /// left ([`crate::audit::leftovers`]), and no object written through the API other
    /// than a Secret holds a fixture secret ([`crate::audit::object_leaks`]).
    pub fn start(self) -> FakeCluster {
        let mut substitutions = self.substitutions.clone();
        let mut options = self.options.clone();
        if self.use_pg
            && let Some(pg) = self.pg.clone().or_else(try_pg)
        {
            if self.pods_only_db {
                substitutions.extend(db_substitutions(crate::PODS_ONLY_DB_HOST, pg.port));
                options
                    .pod_hosts
                    .push((crate::PODS_ONLY_DB_HOST.to_owned(), pg.host.clone()));
            } else {
                substitutions.extend(db_substitutions(&pg.host, pg.port));
            }
        }
        let variants: Vec<&str> = self.variants.iter().map(String::as_str).collect();
        let days = days_since_fixture_today();
        let objects = render_fixtures_shifted(&variants, &substitutions, days);
        let edit = |text: &str| {
            let mut text = text.to_owned();
            for (from, to) in &substitutions {
                text = text.replace(from, to);
            }
            shift_dates(&text, days)
        };
        let saved = saved_objects(&edit);

        let dir = tempfile::Builder::new()
            .prefix("astro-fixtures.")
            .tempdir()
            .expect("temp dir");
        write_manifests(&objects, dir.path());
        std::fs::write(
            dir.path().join("saved.yaml"),
            saved
                .iter()
                .map(|o| format!("---\n{o}\n"))
                .collect::<String>(),
        )
        .expect("write saved objects");

        options.manifest_dirs = vec![dir.path().to_path_buf()];
        options.substitutions = Vec::new();
        if options.crd_dir.is_none() {
            options.crd_dir = Some(velero_crd_dir());
        }
        let manual = options.namespace_termination;
        let cluster = FakeCluster::start(options)
            .unwrap_or_else(|e| panic!("fake cluster with fixtures {variants:?}: {e}"));

        remove_saved(&cluster, saved, manual);
        if self.audit_on_drop {
            audit_on_drop(&cluster);
        }
        cluster
    }
}

/// When `cluster` is dropped at the end of the test: no object the tool created for a
/// run is left ([`crate::audit::leftovers`]), and no object written through the API other
/// than a Secret holds a fixture secret ([`crate::audit::object_leaks`]).
pub fn audit_on_drop(cluster: &FakeCluster) {
    cluster.check_on_drop(|cluster| {
        let mut problems = Vec::new();
        let left = crate::audit::leftovers_after(cluster, std::time::Duration::from_secs(2));
        if !left.is_empty() {
            problems.push(format!("the tool left behind {left:?}"));
        }
        problems.extend(crate::audit::object_leaks(cluster));
        problems
    });
}

/// The contents of the deleted deployments' namespaces (`tests/fixtures/velero-backups/`),
/// rendered with `edit`: load them with the fixtures so that the simulated Velero's
/// fixture backups hold them, then [`remove_saved`] once the cluster runs.
pub fn saved_objects(edit: &dyn Fn(&str) -> String) -> Vec<Value> {
    load_dir(&fixtures_dir().join("velero-backups"), edit)
        .into_iter()
        .map(|d| d.object)
        .collect()
}

/// Deletes the [`saved_objects`] again (namespaced objects first, then their namespaces),
/// so the cluster looks as after the deletion; clears the request log.
pub fn remove_saved(
    cluster: &FakeCluster,
    mut saved: Vec<Value>,
    termination: NamespaceTermination,
) {
    saved.sort_by_key(|o| o["kind"] == "Namespace");
    for o in &saved {
        let (api_version, kind, ns, name) = object_key(o);
        let ns = (!ns.is_empty()).then_some(ns.as_str());
        assert!(
            cluster.delete(&api_version, &kind, ns, &name),
            "cannot remove saved {kind} {name}"
        );
        if kind == "Namespace" && termination != NamespaceTermination::Immediate {
            cluster.finish_namespace_termination(&name);
        }
    }
    cluster.clear_requests();
}

/// Path of a workspace binary of the current build, e.g. `bin("kubectl-astro-restore")`.
///
/// The first call runs `cargo build --workspace --bins` (a no-op after `scripts/test`'s
/// own build) and takes the paths from cargo's JSON messages, so a test never runs a
/// stale binary, whatever the target directory or profile. (`CARGO_BIN_EXE_*` would need
/// every test in the package of every binary it runs; the e2e tests run all of them.)
pub fn bin(name: &str) -> PathBuf {
    built_binaries().get(name).cloned().unwrap_or_else(|| {
        panic!(
            "no binary {name:?} in the workspace (built: {:?})",
            built_binaries().keys()
        )
    })
}

fn built_binaries() -> &'static BTreeMap<String, PathBuf> {
    static BINS: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        // Not the variables cargo sets for this test process: build scripts would see them
        // and the next plain `cargo build` would rebuild their crates.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_by_cargo_test = key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_BIN_EXE_")
                || matches!(
                    key.as_ref(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "OUT_DIR"
                );
            // scripts/test-later-date fakes the clock of the tests, never of cargo/rustc.
            let fake_clock = key == "LD_PRELOAD" || key.starts_with("FAKETIME");
            if set_by_cargo_test || fake_clock {
                build.env_remove(key.as_ref());
            }
        }
        build
            .args([
                "build",
                "--workspace",
                "--bins",
                "--message-format=json-render-diagnostics",
            ])
            .arg("--manifest-path")
            .arg(crate::workspace_root().join("Cargo.toml"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        // Tests built with `--release` run release binaries.
        let exe = std::env::current_exe().expect("test executable path");
        if exe.components().any(|c| c.as_os_str() == "release") {
            build.arg("--release");
        }
        let out = build
            .output()
            .unwrap_or_else(|e| panic!("cannot run {build:?}: {e}"));
        assert!(
            out.status.success(),
            "{build:?} failed (see its messages above)"
        );
        let mut bins = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(message) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if message["reason"] != "compiler-artifact" {
                continue;
            }
            if let (Some(name), Some(exe)) = (
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                bins.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
        bins
    })
}

/// A HOME for the binaries under test: empty, private, alive for the whole test process.
fn scratch_home() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("astro-e2e-home.")
            .tempdir()
            .expect("temp dir")
    })
    .path()
}

/// A command for `bin` against `cluster`: `--kubeconfig <cluster's>` as the first
/// argument, environment cleared except `PATH` (kubectl, psql), an empty `HOME`,
/// `LANG=C.UTF-8`, `NO_COLOR=1`, `TERM=dumb`; stdin is null (so never a TTY).
pub fn command(bin: impl AsRef<OsStr>, cluster: &FakeCluster) -> Command {
    command_with_kubeconfig(bin, cluster.kubeconfig_path())
}

/// [`command`] with another kubeconfig, e.g. `FakeCluster::kubeconfig_for(user)`.
pub fn command_with_kubeconfig(bin: impl AsRef<OsStr>, kubeconfig: &Path) -> Command {
    let mut command = scrubbed_command(bin);
    command.arg("--kubeconfig").arg(kubeconfig);
    command
}

/// [`command`] without the `--kubeconfig` argument (for callers that put it last).
pub fn scrubbed_command(bin: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .envs(crate::fake_clock_env())
        .env("HOME", scratch_home())
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// Runs `bin args…` against `cluster` (see [`command`]) and returns its output.
pub fn run<I, S>(bin: impl AsRef<OsStr>, args: I, cluster: &FakeCluster) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = command(bin, cluster);
    command.args(args);
    crate::output(command)
}
