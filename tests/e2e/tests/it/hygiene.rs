//! Secret hygiene and leftovers across the tool (issue 15), through `e2e_tests::audit`:
//! every command, on every fixture variant, keeps the fixture passwords out of its
//! output, out of the command lines (and environments) of itself and of what it starts,
//! out of what it writes to the cluster and out of the Velero plugin's log; and nothing
//! it creates for a run outlives the run, be it stopped by success, error, SIGINT or
//! (after garbage collection or the next run) SIGKILL.
//!
//! The tool has no verbosity flag and no log subscriber (no `-v`, `--verbose`,
//! `--log-level`, `RUST_LOG`): [`no_binary_has_a_verbosity_flag`] fails when one
//! appears, so that its highest level joins the audit; every audited run sets
//! `RUST_LOG=trace` in case a library starts honouring it. The Velero plugin logs at
//! every level all the time; its host passes Velero's `--log-level=debug`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_tests::audit::{self, Audited};
use e2e_tests::{FakeCluster, bin, cluster_builder, command, fixture_name};

/// Runs `binary args…` against `cluster`, audited, at the highest verbosity there is.
fn audited(binary: &str, args: &[&str], cluster: &FakeCluster) -> Audited {
    let mut cmd = command(bin(binary), cluster);
    cmd.args(args).env("RUST_LOG", "trace");
    audit::run_audited(cmd, cluster)
}

/// Audits each `(binary, args)` against `cluster`; panics listing every leak and every
/// run that did not end by itself (a crash would hide what it would have printed).
fn audit_all(cluster: &FakeCluster, runs: &[(&str, Vec<&str>)]) -> Vec<Audited> {
    let mut leaks = Vec::new();
    let mut results = Vec::new();
    for (binary, args) in runs {
        let run = audited(binary, args, cluster);
        let id = format!("{binary} {}", args.join(" "));
        assert!(
            run.output.status.code().is_some(),
            "{id} was killed: {}",
            e2e_tests::output_text(&run.output)
        );
        assert!(run.samples > 0, "{id}: /proc never sampled");
        leaks.extend(run.leaks.iter().map(|l| format!("{id}: {l}")));
        results.push(run);
    }
    assert!(
        leaks.is_empty(),
        "fixture secrets leaked:\n{}",
        leaks.join("\n")
    );
    results
}

fn assert_succeeded(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        e2e_tests::output_text(out)
    );
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("astro-hygiene.")
        .tempdir()
        .unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Read-only commands and dry runs of every binary, through pods where the database is
/// reachable only from pods (client pods, relay pods, DownloadRequests, a
/// ServerStatusRequest), including the error paths of a failing statement.
#[test]
fn read_only_commands_and_dry_runs_leak_nothing() {
    let cluster = cluster_builder().pods_only_db().start();
    let dir = scratch();
    let dump = dir.path().join("houston.dump");
    let airflow_dump = dir.path().join("wm.dump");
    let backup = fixture_name("astro-nightly-20261122010000");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("kubectl-astro-dbconn", vec![]),
        ("kubectl-astro-dbconn", vec!["--uri"]),
        ("kubectl-astro-dbconn", vec!["--env"]),
        ("kubectl-astro-dbconn", vec!["-o", "json"]),
        ("kubectl-astro-dbconn", vec!["-o", "yaml"]),
        ("kubectl-astro-dbconn", vec!["--bootstrap", "--env"]),
        ("kubectl-astro-dbconn", vec!["--grafana", "-o", "json"]),
        (
            "kubectl-astro-dbconn",
            vec!["--release", "quiet-nebula-3391", "--uri"],
        ),
        (
            "kubectl-astro-dbconn",
            vec!["--release", "radiant-quasar-7720", "-o", "yaml"],
        ),
        (
            "kubectl-astro-dbconn",
            vec!["--shell", "--dry-run", "-o", "yaml"],
        ),
        (
            "kubectl-astro-dbconn",
            vec!["-c", "select 1", "--dry-run", "-o", "json"],
        ),
        ("kubectl-astro-dbconn", vec!["-c", "select current_user"]),
        (
            "kubectl-astro-dbconn",
            vec!["-c", "select * from no_such_table"],
        ),
        (
            "kubectl-astro-dbconn",
            vec!["--release", "weightless-meteor-5042", "-c", "select 1"],
        ),
        ("kubectl-astro", vec!["dbconn", "--env"]),
        ("kubectl-astro-backup", vec!["list", "-o", "json"]),
        (
            "kubectl-astro-backup",
            vec!["create", "--all", "--dry-run", "-o", "yaml"],
        ),
        ("kubectl-astro-backup", vec!["describe", &backup]),
        ("kubectl-astro-backup", vec!["schedule", "list"]),
        ("kubectl-astro-backup", vec!["db", "--out", path_str(&dump)]),
        (
            "kubectl-astro-backup",
            vec![
                "db",
                "--release",
                "traditional-precession-8767",
                "--out",
                path_str(&airflow_dump),
            ],
        ),
        (
            "kubectl-astro-restore",
            vec!["celestial-zenith-1234", "--list-backups"],
        ),
        (
            "kubectl-astro-restore",
            vec!["celestial-zenith-1234", "--dry-run"],
        ),
        (
            "kubectl-astro-restore",
            vec!["endpoint", "--db-host", "dr-db.example.com", "--dry-run"],
        ),
        (
            "kubectl-astro-restore",
            vec![
                "endpoint",
                "--db-host",
                "dr-db.example.com",
                "--dry-run",
                "-o",
                "yaml",
            ],
        ),
        ("kubectl-astro-status", vec![]),
        ("kubectl-astro-status", vec!["-o", "json"]),
        ("kubectl-astro-status", vec!["-o", "prometheus"]),
    ];
    let results = audit_all(&cluster, &runs);
    // The audit saw the work: client pods ran psql and pg_dump, and both dumps exist.
    let pods = audit::created_pod_names(&cluster);
    assert!(
        pods.iter().filter(|p| p.starts_with("astro-")).count() >= 5,
        "{pods:?}"
    );
    for file in [&dump, &airflow_dump] {
        let run = runs
            .iter()
            .position(|(_, args)| args.contains(&path_str(file)))
            .unwrap();
        assert!(
            std::fs::metadata(file).is_ok_and(|m| m.len() > 0),
            "{} missing: {}",
            file.display(),
            e2e_tests::output_text(&results[run].output)
        );
    }
}

/// `--local`: psql (`--shell`) and pg_dump run on this machine, behind the audit's
/// shims; `-c` and status connect from this process.
#[test]
fn local_clients_get_no_password_in_arguments_or_environment() {
    let cluster = cluster_builder().start();
    let dir = scratch();
    let dump = dir.path().join("local.dump");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "kubectl-astro-dbconn",
            vec!["--local", "-c", "select current_user"],
        ),
        (
            "kubectl-astro-dbconn",
            vec![
                "--local",
                "--release",
                "quiet-nebula-3391",
                "-c",
                "select 1",
            ],
        ),
        (
            "kubectl-astro-dbconn",
            vec!["--local", "-c", "select * from no_such_table"],
        ),
        (
            "kubectl-astro-backup",
            vec!["db", "--local", "--out", path_str(&dump)],
        ),
        // psql reads its (empty) stdin and ends.
        ("kubectl-astro-dbconn", vec!["--local", "--shell"]),
        ("kubectl-astro-status", vec!["--local", "-o", "json"]),
    ];
    let results = audit_all(&cluster, &runs);
    // psql and pg_dump logged in (the password reached them); status exits 1 for the
    // fixture's failed checks, the bad statement fails.
    for ((binary, args), run) in runs.iter().zip(&results) {
        if *binary != "kubectl-astro-status" && !args.contains(&"select * from no_such_table") {
            assert_succeeded(&run.output);
        }
    }
    let started: Vec<&String> = results.iter().flat_map(|r| &r.started).collect();
    for program in ["psql", "pg_dump"] {
        assert!(
            started.iter().any(|s| s.contains(&format!("/{program}"))),
            "{program} never started: {started:?}"
        );
    }
    assert!(std::fs::metadata(&dump).is_ok_and(|m| m.len() > 0));
}

/// Every fixture variant, with its own credentials (Cloud SQL proxy user, legacy
/// database, namespace pools, renamed release, the `helm upgrade` placeholder).
#[test]
fn every_fixture_variant_leaks_nothing() {
    for variant in [
        "variant-b",
        "variant-c",
        "variant-d",
        "renamed-release",
        "placeholder",
    ] {
        let cluster = cluster_builder().variants(&[variant]).start();
        let release = if variant == "renamed-release" {
            "astro"
        } else {
            "astronomer"
        };
        let runs: Vec<(&str, Vec<&str>)> = vec![
            ("kubectl-astro-dbconn", vec!["--platform-release", release]),
            (
                "kubectl-astro-dbconn",
                vec!["--platform-release", release, "--env", "-o", "json"],
            ),
            ("kubectl-astro-dbconn", vec!["--bootstrap", "--uri"]),
            ("kubectl-astro-status", vec!["--local", "-o", "json"]),
            (
                "kubectl-astro-restore",
                vec!["endpoint", "--db-host", "dr-db.example.com", "--dry-run"],
            ),
        ];
        audit_all(&cluster, &runs);
    }
}

/// Commands that change things: a restore with its undelete through relay pods,
/// `restore endpoint` patching the secrets, a backup with its Redis policy.
#[test]
fn state_changing_commands_leak_nothing() {
    let pg = e2e_tests::pg();
    let db = pg.clone_database("astronomer_houston");
    let cluster = cluster_builder()
        .pods_only_db()
        .substitute("/astronomer_houston?", format!("/{db}?"))
        .start();
    // The originals `restore endpoint` saves (secrets, mode 0600) stay in a scratch dir.
    let dir = scratch();
    let originals = dir.path().join("originals.json");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "kubectl-astro-restore",
            vec!["celestial-zenith-1234", "--yes"],
        ),
        (
            "kubectl-astro-backup",
            vec!["create", "hygiene", "--all", "--wait"],
        ),
        (
            "kubectl-astro-restore",
            vec![
                "endpoint",
                "--db-host",
                "dr-db.example.com",
                "--yes",
                "--save-to",
                path_str(&originals),
            ],
        ),
    ];
    let results = audit_all(&cluster, &runs);
    pg.drop_database(&db);
    for r in &results {
        assert_succeeded(&r.output);
    }
}

/// `kubectl astro …`: kubectl's plugin dispatch, then the dispatcher's exec of the
/// sibling, then a client pod.
#[test]
fn kubectl_plugin_dispatch_leaks_nothing() {
    let cluster = cluster_builder().pods_only_db().start();
    let bins = bin("kubectl-astro-dbconn").parent().unwrap().to_path_buf();
    let home = scratch();
    let mut paths = vec![bins];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut cmd = Command::new("kubectl");
    cmd.env_clear()
        .envs(e2e_tests::fake_clock_env())
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env("HOME", home.path())
        .env("RUST_LOG", "trace")
        .args(["astro", "dbconn", "-c", "select 1"])
        .stdin(Stdio::null());
    let run = audit::run_audited(cmd, &cluster);
    run.assert_clean();
    assert_succeeded(&run.output);
}

/// The audit finds what it looks for: a password in a child's arguments, in a pod's
/// literal env, and in stdout (each planted on purpose).
#[test]
fn the_audit_catches_planted_leaks() {
    let cluster = cluster_builder().start();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "psql --version >/dev/null; sleep 0.3; echo Sup3r!Secret",
    ])
    .env("PGPASSWORD", "gcpPassw0rd");
    let planted = audit::run_audited(cmd, &cluster);
    let has = |needle: &str| planted.leaks.iter().any(|l| l.contains(needle));
    assert!(has("\"Sup3r!Secret\" in stdout"), "{:?}", planted.leaks);
    assert!(
        has("\"gcpPassw0rd\" in the environment of"),
        "{:?}",
        planted.leaks
    );
    assert!(has("/proc/environ"), "{:?}", planted.leaks);
    cluster.apply(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "planted", "namespace": "astronomer"},
        "spec": {"containers": [{"name": "c", "image": "x",
            "env": [{"name": "PGPASSWORD", "value": "r3disFake99"}]}]}
    }));
    // Test setup is not the tool: only API writes count.
    assert!(audit::object_leaks(&cluster).is_empty());
    let kubectl = e2e_tests::run(
        "kubectl",
        [
            "create",
            "secret",
            "generic",
            "-n",
            "astronomer",
            "ok-to-hold",
            "--from-literal=p=r3disFake99",
        ],
        &cluster,
    );
    assert!(
        kubectl.status.success(),
        "{}",
        e2e_tests::output_text(&kubectl)
    );
    let written = e2e_tests::run(
        "kubectl",
        [
            "create",
            "configmap",
            "-n",
            "astronomer",
            "not-ok",
            "--from-literal=p=r3disFake99",
        ],
        &cluster,
    );
    assert!(
        written.status.success(),
        "{}",
        e2e_tests::output_text(&written)
    );
    let leaks = audit::object_leaks(&cluster);
    assert_eq!(
        leaks,
        ["\"r3disFake99\" in POST ConfigMap astronomer/not-ok"],
        "a Secret may hold it, a ConfigMap may not"
    );
    let left = audit::leftovers(&cluster);
    assert_eq!(
        left,
        [
            "Secret astronomer/ok-to-hold",
            "ConfigMap astronomer/not-ok"
        ]
    );
    cluster.skip_drop_checks();
}

/// No binary grows a verbosity flag the audit does not run.
#[test]
fn no_binary_has_a_verbosity_flag() {
    for binary in [
        "kubectl-astro",
        "kubectl-astro-dbconn",
        "kubectl-astro-backup",
        "kubectl-astro-restore",
        "kubectl-astro-status",
    ] {
        let out = Command::new(bin(binary)).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in ["--verbose", "-v,", "--log-level", "--debug", "RUST_LOG"] {
            assert!(
                !help.contains(flag),
                "{binary} has {flag}: run its highest level in hygiene.rs's audits, then \
                 extend this list\n{help}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Leftovers after SIGINT and SIGKILL

fn spawn_audited_signal(
    cluster: &FakeCluster,
    binary: &str,
    args: &[&str],
    pod_prefix: &str,
    sig: &str,
) -> Audited {
    let mut cmd = command(bin(binary), cluster);
    cmd.args(args).env("RUST_LOG", "trace");
    audit::run_audited_with(cmd, cluster, |pid| {
        audit::wait_for_pod(cluster, pod_prefix, Duration::from_secs(30));
        // Let it get into the middle of its work (the pod runs, the session is open).
        std::thread::sleep(Duration::from_millis(300));
        audit::signal(pid, sig);
    })
}

/// SIGINT at work in a pod: client pod and Secret (dbconn, backup db), relay pod
/// (status) all removed before the command exits; nothing leaks on the way out.
#[test]
fn sigint_mid_run_leaves_nothing() {
    let cluster = cluster_builder().pods_only_db().start();
    let dir = scratch();
    let out = dir.path().join("x.dump");
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "kubectl-astro-dbconn",
            vec!["-c", "select pg_sleep(30)"],
            "astro-dbconn",
        ),
        (
            "kubectl-astro-backup",
            vec!["db", "--out", path_str(&out)],
            "astro-",
        ),
        (
            "kubectl-astro-restore",
            vec!["undelete", "celestial-zenith-1234", "--dry-run"],
            "astro-dbrelay",
        ),
    ];
    for (binary, args, prefix) in cases {
        let run = spawn_audited_signal(&cluster, binary, &args, prefix, "INT");
        run.assert_clean();
        let left = audit::leftovers(&cluster);
        assert!(
            left.is_empty(),
            "{binary} {args:?} left {left:?} after SIGINT: {}",
            e2e_tests::output_text(&run.output)
        );
    }
}

/// SIGINT while the command waits for the Velero server to answer a ServerStatusRequest
/// (the server does not run): the request is deleted before the command exits, and
/// `restore platform` creates no Restore and says so.
#[test]
fn sigint_while_asking_the_velero_server_leaves_no_request() {
    let cluster = cluster_builder().without_pg().start();
    cluster.velero_set_server_down(true);
    let backup = fixture_name("astro-nightly-20261124010000");
    let cases: [(&str, Vec<&str>); 2] = [
        (
            "kubectl-astro-restore",
            vec![
                "platform",
                "--from-backup",
                &backup,
                "--db-host",
                "new-db.example.com",
                "--yes",
            ],
        ),
        ("kubectl-astro-status", vec![]),
    ];
    for (binary, args) in cases {
        let mut cmd = command(bin(binary), &cluster);
        cmd.args(&args).env("RUST_LOG", "trace");
        let run = audit::run_audited_with(cmd, &cluster, |pid| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while cluster
                .list("velero.io/v1", "ServerStatusRequest", Some("velero"))
                .is_empty()
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{binary} created no ServerStatusRequest"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            audit::signal(pid, "INT");
        });
        run.assert_clean();
        let text = e2e_tests::output_text(&run.output);
        assert_ne!(run.output.status.code(), Some(0), "{binary}: {text}");
        let left = audit::leftovers(&cluster);
        assert!(
            left.is_empty(),
            "{binary} left {left:?} after SIGINT: {text}"
        );
        if binary == "kubectl-astro-restore" {
            assert_eq!(run.output.status.code(), Some(1), "{text}");
            assert!(
                text.contains("interrupted (Ctrl-C) while asking the Velero server")
                    && text.contains("no Restore was created")
                    && text.contains("nothing was changed in the cluster"),
                "{text}"
            );
            assert!(
                cluster
                    .list("velero.io/v1", "Restore", Some("velero"))
                    .is_empty(),
                "{text}"
            );
        }
    }
}

fn cluster_objects(cluster: &FakeCluster, kind: &str, prefix: &str) -> Vec<String> {
    cluster
        .list("v1", kind, Some("astronomer"))
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// SIGKILL while a client pod runs: its Secret is owned by the pod, so it goes when the
/// pod goes (garbage collection); nothing else is needed.
#[test]
fn sigkill_leftover_secret_is_garbage_collected_with_its_pod() {
    let cluster = cluster_builder()
        .pods_only_db()
        .without_drop_audit()
        .start();
    let run = spawn_audited_signal(
        &cluster,
        "kubectl-astro-dbconn",
        &["-c", "select pg_sleep(30)"],
        "astro-dbconn",
        "KILL",
    );
    run.assert_clean();
    let pods = cluster_objects(&cluster, "Pod", "astro-dbconn");
    let secrets = cluster_objects(&cluster, "Secret", "astro-dbconn");
    assert_eq!(pods.len(), 1, "the killed run's pod stays: {pods:?}");
    assert_eq!(secrets, pods, "with its Secret");
    let secret = cluster
        .get("v1", "Secret", Some("astronomer"), &secrets[0])
        .unwrap();
    let pod = cluster
        .get("v1", "Pod", Some("astronomer"), &pods[0])
        .unwrap();
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"], pod["metadata"]["uid"],
        "the Secret is owned by the pod"
    );
    // Whoever deletes the pod (kubectl delete, the next run, a namespace cleanup) takes
    // the credentials with it.
    assert!(cluster.delete("v1", "Pod", Some("astronomer"), &pods[0]));
    assert!(
        audit::leftovers(&cluster).is_empty(),
        "{:?}",
        audit::leftovers(&cluster)
    );
}

/// SIGKILL leaves a client pod (with Secret); the next run on this machine removes it at
/// once (the process that made it is gone), but not a live run's pod, a young pod of a
/// run on another machine (until its deadline passed), nor someone else's old pod.
#[test]
fn sigkill_leftover_pods_are_removed_by_the_next_run() {
    use astro::clientpod::{OWNER_ANNOTATION, ProcessId};
    let cluster = cluster_builder()
        .pods_only_db()
        .without_drop_audit()
        .start();
    let killed = spawn_audited_signal(
        &cluster,
        "kubectl-astro-dbconn",
        &["-c", "select pg_sleep(30)"],
        "astro-dbconn",
        "KILL",
    );
    killed.assert_clean();
    let abandoned = cluster_objects(&cluster, "Pod", "astro-dbconn");
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    let pod = |name: &str, managed_by: &str, owner: Option<String>| {
        let mut p = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "astronomer",
                "labels": {"component": "astro-dbclient", "app.kubernetes.io/managed-by": managed_by}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        });
        if let Some(owner) = owner {
            p["metadata"]["annotations"] = serde_json::json!({OWNER_ANNOTATION: owner});
        }
        cluster.apply(p);
    };
    let me = ProcessId::current().expect("/proc");
    let elsewhere = ProcessId {
        host: "other-laptop".into(),
        pid: 1,
        start: 1,
    };
    pod("astro-dbconn-live", "kubectl-astro", Some(me.to_string()));
    pod(
        "astro-dbconn-elsewhere",
        "kubectl-astro",
        Some(elsewhere.to_string()),
    );
    pod("astro-dbconn-theirs", "helm", None);
    let old = Duration::from_secs(astro::clientpod::MAX_POD_SECONDS as u64 + 600);
    assert!(cluster.set_age("v1", "Pod", Some("astronomer"), "astro-dbconn-theirs", old));
    let next_run = || {
        let next = audited("kubectl-astro-dbconn", &["-c", "select 1"], &cluster);
        next.assert_clean();
        assert_succeeded(&next.output);
        cluster_objects(&cluster, "Pod", "astro-db")
    };
    let pods = next_run();
    assert!(
        !pods.contains(&abandoned[0]),
        "{} still there: {pods:?}",
        abandoned[0]
    );
    for kept in [
        "astro-dbconn-live",
        "astro-dbconn-elsewhere",
        "astro-dbconn-theirs",
    ] {
        assert!(
            pods.contains(&kept.to_owned()),
            "{kept} was removed: {pods:?}"
        );
    }
    let secrets = cluster_objects(&cluster, "Secret", "astro-dbconn");
    assert!(
        secrets.is_empty(),
        "the killed run's Secret went with its pod: {secrets:?}"
    );
    // The other machine's pod goes once it is past its deadline.
    assert!(cluster.set_age(
        "v1",
        "Pod",
        Some("astronomer"),
        "astro-dbconn-elsewhere",
        old
    ));
    let pods = next_run();
    assert!(
        !pods.contains(&"astro-dbconn-elsewhere".to_owned()),
        "{pods:?}"
    );
    assert!(pods.contains(&"astro-dbconn-live".to_owned()), "{pods:?}");
}

/// A DownloadRequest a killed restore left (while choosing a backup by its resource
/// list) goes with the next download once older than a download URL lives; a fresh one
/// stays.
#[test]
fn sigkill_leftover_download_requests_are_removed_by_the_next_run() {
    // Velero signs URLs only after 4 s: the run waits, and is killed meanwhile.
    let cluster = cluster_builder()
        .options(|o| o.velero_step = Some(Duration::from_secs(8)))
        .without_drop_audit()
        .start();
    let args = ["celestial-zenith-1234", "--dry-run", "--local"];
    let requests = |c: &FakeCluster| -> Vec<String> {
        c.list("velero.io/v1", "DownloadRequest", Some("velero"))
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    for round in 1..=2 {
        let mut cmd = command(bin("kubectl-astro-restore"), &cluster);
        cmd.args(args);
        let run = audit::run_audited_with(cmd, &cluster, |pid| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while requests(&cluster).len() < round {
                assert!(std::time::Instant::now() < deadline, "no DownloadRequest");
                std::thread::sleep(Duration::from_millis(10));
            }
            audit::signal(pid, "KILL");
        });
        run.assert_clean();
    }
    let left = requests(&cluster);
    assert!(!left.is_empty(), "{left:?}");
    let old = Duration::from_secs(astro::velero::download::REQUEST_LIFETIME_SECONDS as u64 + 60);
    let aged = &left[0];
    assert!(cluster.set_age("velero.io/v1", "DownloadRequest", Some("velero"), aged, old));
    let next = audited("kubectl-astro-restore", &args, &cluster);
    next.assert_clean();
    let after = requests(&cluster);
    assert!(!after.contains(aged), "{aged} still there: {after:?}");
    for fresh in left.iter().skip(1) {
        assert!(
            after.contains(fresh),
            "a fresh request was removed: {after:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The Velero plugin's log

/// Every fixture Secret (and broken variants of the platform secrets) through both
/// RestoreItemActions with a db-endpoint configuration: no stderr line holds a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn velero_plugin_log_lines_hold_no_secret() {
    use astro::endpoint::target::Endpoint;
    use astro::velero_plugin::actions::{DB_ENDPOINT, SKIP_REDIS_DATA};
    use astro::velero_plugin::config::EndpointConfig;
    use astro::velero_plugin::host::{LaunchOptions, PluginProcess};

    let restore = br#"{"apiVersion":"velero.io/v1","kind":"Restore","metadata":{"name":"r","namespace":"velero"},"spec":{"backupName":"b"}}"#;
    let mut lines = Vec::new();
    for variant in [None, Some("variant-b"), Some("placeholder")] {
        let cluster = fake_cluster::FakeCluster::start(fake_cluster::Options {
            crd_dir: Some(PathBuf::new()),
            ..fake_cluster::Options::default()
        })
        .unwrap();
        let objects = e2e_tests::render_fixtures_shifted(&Vec::from_iter(variant), &[], 0);
        let mut items = Vec::new();
        for object in objects {
            if object["kind"] == "Secret" || object["kind"] == "Deployment" {
                items.push(object.clone());
            }
            if !object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .starts_with("velero.io/")
            {
                cluster.apply(object);
            }
        }
        // Secrets whose connection cannot be parsed: the error paths log too.
        for (i, bad) in [
            "postgres://astro_admin:Sup3r!Secret@[::1/astronomer_houston",
            "postgres://astro_admin:Sup3r%21Secret@host:notaport/db",
            "k3Zq9",
            "host=x password=gcpPassw0rd",
        ]
        .iter()
        .enumerate()
        {
            items.push(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("astronomer-houston-backend{}", if i == 0 { String::new() } else { format!("-{i}") }), "namespace": "astronomer"},
                "data": {"connection": base64_of(bad)}
            }));
        }
        let new = Endpoint {
            host: "dr-db.example.com".into(),
            port: 6432,
        };
        let old = Endpoint {
            host: e2e_tests::FIXTURE_DB_HOST.into(),
            port: e2e_tests::FIXTURE_DB_PORT,
        };
        let config = EndpointConfig {
            platform_namespace: "astronomer".into(),
            new: Some(new),
            old: Some(old),
            sqlproxy: None,
            platform_release: Some("astronomer".into()),
            // The Restore below (`r`).
            restore: Some("r".into()),
        };
        let mut cm = serde_json::to_value(config.configmap("velero")).unwrap();
        cm["apiVersion"] = "v1".into();
        cm["kind"] = "ConfigMap".into();
        cluster.apply(cm);
        let plugin = plugin_dir();
        let kubeconfig = cluster.kubeconfig_path().as_os_str().to_owned();
        let options = LaunchOptions {
            env: vec![
                ("KUBECONFIG".into(), kubeconfig),
                ("VELERO_NAMESPACE".into(), "velero".into()),
                ("RUST_LOG".into(), "trace".into()),
            ],
            start_timeout: Duration::from_secs(20),
            ..LaunchOptions::default()
        };
        let p = PluginProcess::launch(&plugin.1, &options)
            .await
            .unwrap_or_else(|f| panic!("launch: {}: {:?}", f.error, f.stderr));
        let mut answered = 0;
        for item in &items {
            let item = fake_cluster::reset_metadata(item.clone());
            let bytes = serde_json::to_vec(&item).unwrap();
            for action in [DB_ENDPOINT, SKIP_REDIS_DATA] {
                if p.execute(action, &bytes, restore).await.is_ok() {
                    answered += 1;
                }
            }
        }
        assert!(
            answered > items.len(),
            "{answered} answers for {} items",
            items.len()
        );
        let report = p.kill().await;
        assert!(
            report.stderr.iter().any(|l| l.contains("db-endpoint")),
            "the endpoint action never logged: {:#?}",
            report.stderr
        );
        lines.extend(report.stderr);
    }
    let leaking: Vec<&String> = lines
        .iter()
        .filter(|l| !e2e_tests::leaked_secrets(l).is_empty())
        .collect();
    assert!(
        leaking.is_empty(),
        "secrets in plugin log lines: {leaking:#?}"
    );
    assert!(lines.len() >= 6, "{lines:#?}");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The plugin binary laid out in a plugins directory, as Velero finds it.
fn plugin_dir() -> (tempfile::TempDir, PathBuf) {
    use astro::velero_plugin::host::{discover, install_into};
    let dir = scratch();
    let plugins = dir.path().join("plugins");
    install_into(&bin("velero-plugin-astro"), &plugins).unwrap();
    let found = discover(&plugins).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    (dir, found[0].clone())
}
