//! `kubectl astro restore`: Houston undelete against the real PostgreSQL fixture,
//! and the restore flow end to end against the fake cluster.

use astro::houston::{self, DeploymentStatus, HoustonError, UndeletePlan, WorkspaceColumn};
use astro::release::ReleaseName;
use tokio_postgres::Client;

async fn connect(db: &str) -> Client {
    e2e_tests::pg().connect(db).await
}

/// A private copy of a fixture Houston database, so an undelete in one test does not
/// change what another test sees. Dropped when the test ends (also on panic).
struct HoustonCopy {
    name: String,
}

impl HoustonCopy {
    fn new(template: &str) -> Self {
        HoustonCopy {
            name: e2e_tests::pg().clone_database(template),
        }
    }

    async fn client(&self) -> Client {
        connect(&self.name).await
    }
}

impl Drop for HoustonCopy {
    fn drop(&mut self) {
        e2e_tests::pg().drop_database(&self.name);
    }
}

fn rel(s: &str) -> ReleaseName {
    ReleaseName::parse(s).unwrap()
}

async fn role_bindings(client: &Client) -> Vec<(String, Option<String>)> {
    client
        .query(
            r#"SELECT "id"::text, "deploymentId"::text FROM "houston$default"."RoleBinding" ORDER BY "id""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn deleted_at(client: &Client, release: &str) -> Option<String> {
    client
        .query_one(
            r#"SELECT "deletedAt"::text FROM "houston$default"."Deployment" WHERE "releaseName" = $1"#,
            &[&release],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn undelete_soft_deleted_changes_one_row_and_keeps_role_bindings() {
    let db = HoustonCopy::new("astronomer_houston");
    let mut client = db.client().await;
    let release = rel("celestial-zenith-1234");
    let columns = houston::collect_columns(&client).await.unwrap();
    assert_eq!(columns.workspace, Some(WorkspaceColumn::WorkspaceId));
    assert!(columns.namespace);
    let status = houston::collect_status(&client, &columns, &release)
        .await
        .unwrap();
    let DeploymentStatus::SoftDeleted(s) = &status else {
        panic!("expected soft-deleted, got {status:?}");
    };
    assert_eq!(s.id, "ckoy0d2mm000401l5e5f6g7h8");
    assert!(s.workspace_exists && s.airflow_db_exists);
    // Fixture dates are relative to today: deleted 3 days ago at 09:15 UTC, so before
    // 09:15 UTC it is 2 whole days old.
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let whole_days = if now.time() < jiff::civil::time(9, 15, 0, 0) {
        2
    } else {
        3
    };
    assert_eq!(s.age_days(), whole_days, "{s:?}");
    assert!(s.deleted_at.ends_with("09:15:00.000"), "{s:?}");
    assert!(!s.past_cleanup());
    assert!(matches!(
        houston::plan_undelete(&release, &status, false).unwrap(),
        UndeletePlan::Undelete { .. }
    ));
    let before = role_bindings(&client).await;
    assert!(
        before
            .iter()
            .any(|(_, d)| d.as_deref() == Some("ckoy0d2mm000401l5e5f6g7h8"))
    );
    let done = houston::undelete(&mut client, &release).await.unwrap();
    assert_eq!(done.rows, 1);
    assert_eq!(deleted_at(&client, "celestial-zenith-1234").await, None);
    assert_eq!(role_bindings(&client).await, before);
    // Other soft-deleted rows are untouched.
    assert!(deleted_at(&client, "boreal-aphelion-0042").await.is_some());
    // Now live: a second run is a no-op and the UPDATE itself would match nothing.
    let status = houston::collect_status(&client, &columns, &release)
        .await
        .unwrap();
    assert_eq!(
        houston::plan_undelete(&release, &status, false).unwrap(),
        UndeletePlan::NothingToDo
    );
    let e = houston::undelete(&mut client, &release).await.unwrap_err();
    assert!(matches!(e, HoustonError::RowCount { rows: 0, .. }), "{e}");
    drop(client);
    drop(db);
}

#[tokio::test]
async fn hard_deleted_is_refused_with_database_restore_hint() {
    let client = connect("astronomer_houston").await;
    let release = rel("gusty-perihelion-7311");
    let columns = houston::collect_columns(&client).await.unwrap();
    let status = houston::collect_status(&client, &columns, &release)
        .await
        .unwrap();
    assert_eq!(status, DeploymentStatus::NotFound);
    let e = houston::plan_undelete(&release, &status, true).unwrap_err();
    assert!(matches!(e, HoustonError::HardDeleted { .. }));
}

#[tokio::test]
async fn live_deployment_needs_nothing() {
    let client = connect("astronomer_houston").await;
    let release = rel("weightless-meteor-5042");
    let columns = houston::collect_columns(&client).await.unwrap();
    let status = houston::collect_status(&client, &columns, &release)
        .await
        .unwrap();
    assert!(
        matches!(status, DeploymentStatus::Active { .. }),
        "{status:?}"
    );
    assert_eq!(
        houston::plan_undelete(&release, &status, false).unwrap(),
        UndeletePlan::NothingToDo
    );
}

#[tokio::test]
async fn workspace_gone_is_refused_and_old_delete_warned() {
    let client = connect("astronomer_houston").await;
    let release = rel("boreal-aphelion-0042");
    let columns = houston::collect_columns(&client).await.unwrap();
    let status = houston::collect_status(&client, &columns, &release)
        .await
        .unwrap();
    let DeploymentStatus::SoftDeleted(s) = &status else {
        panic!("expected soft-deleted, got {status:?}");
    };
    assert!(!s.workspace_exists);
    assert!(s.past_cleanup(), "{s:?}");
    let e = houston::plan_undelete(&release, &status, false).unwrap_err();
    assert!(matches!(e, HoustonError::WorkspaceGone { .. }), "{e}");
    let UndeletePlan::Undelete { warnings, forced } =
        houston::plan_undelete(&release, &status, true).unwrap()
    else {
        panic!("--force should undelete");
    };
    assert!(warnings[0].contains("14 days"), "{warnings:?}");
    assert_eq!(forced.len(), 1);
}

#[tokio::test]
async fn variant_c_schema_uses_the_workspace_column() {
    let db = HoustonCopy::new(VARIANT_C_DB);
    let mut client = db.client().await;
    let columns = houston::collect_columns(&client).await.unwrap();
    assert_eq!(columns.workspace, Some(WorkspaceColumn::Workspace));
    assert!(!columns.namespace);
    let release = rel("celestial-zenith-1234");
    let status = houston::collect_status(&client, &columns, &release)
        .await
        .unwrap();
    let DeploymentStatus::SoftDeleted(s) = &status else {
        panic!("expected soft-deleted, got {status:?}");
    };
    assert!(s.workspace_exists, "{s:?}");
    assert_eq!(
        houston::undelete(&mut client, &release).await.unwrap().rows,
        1
    );
    assert_eq!(deleted_at(&client, "celestial-zenith-1234").await, None);
    drop(client);
    drop(db);
}

#[tokio::test]
async fn not_houston_database_is_refused() {
    let client = connect("postgres").await;
    let e = houston::collect_columns(&client).await.unwrap_err();
    assert!(matches!(e, HoustonError::NotHouston), "{e}");
}

/// The variant C (0.16, Prisma 1) Houston database of the fixtures.
const VARIANT_C_DB: &str = "legacy_houston";

// ---------------------------------------------------------------------------------------
// The binary against the fake cluster (+ the real PostgreSQL for Houston).

use std::path::PathBuf;
use std::process::{Command, Output};

use fake_cluster::{FakeCluster, Fault, Options, VeleroKind, VeleroOutcome};
use serde_json::{Value, json};

fn restore_bin() -> PathBuf {
    e2e_tests::bin("kubectl-astro-restore")
}

/// A fake cluster holding the rendered fixtures (platform + `variants`), with the Houston
/// secret pointing at `houston_db` when given, plus `extra` objects.
struct Sandbox {
    cluster: FakeCluster,
    _dir: tempfile::TempDir,
}

fn sandbox(variants: &[&str], houston_db: Option<(&str, &str)>, extra: Vec<Value>) -> Sandbox {
    sandbox_with(variants, houston_db, extra, |_| {})
}

/// [`sandbox`] with `edit` applied to every rendered fixture object first.
fn sandbox_with(
    variants: &[&str],
    houston_db: Option<(&str, &str)>,
    extra: Vec<Value>,
    edit: impl Fn(&mut Value),
) -> Sandbox {
    sandbox_reaching_db(variants, houston_db, extra, edit, DbReach::PodsOnly)
}

/// Where the fixture platform's database can be reached from.
#[derive(Clone, Copy, PartialEq)]
enum DbReach {
    /// Only from pods (a private network), as on real installations: the default.
    PodsOnly,
    /// From this machine too (for `--local`).
    Everywhere,
}

fn sandbox_reaching_db(
    variants: &[&str],
    houston_db: Option<(&str, &str)>,
    extra: Vec<Value>,
    edit: impl Fn(&mut Value),
    reach: DbReach,
) -> Sandbox {
    let pg = e2e_tests::pg();
    let (db_host, pod_hosts) = match reach {
        DbReach::PodsOnly => (
            e2e_tests::PODS_ONLY_DB_HOST,
            vec![(e2e_tests::PODS_ONLY_DB_HOST.to_owned(), pg.host.clone())],
        ),
        DbReach::Everywhere => (pg.host.as_str(), Vec::new()),
    };
    let substitutions = e2e_tests::db_substitutions(db_host, pg.port);
    let mut objects = e2e_tests::render_fixtures(variants, &substitutions);
    // The deleted namespaces' contents, for the fixture backups to hold (removed below).
    let days = e2e_tests::days_since_fixture_today();
    let saved = e2e_tests::saved_objects(&|text: &str| {
        let text = substitutions
            .iter()
            .fold(text.to_owned(), |t, (from, to)| t.replace(from, to));
        e2e_tests::shift_dates(&text, days)
    });
    objects.extend(saved.iter().cloned());
    if let Some((from, to)) = houston_db {
        for o in &mut objects {
            if o["kind"] == "Secret" && o["metadata"]["name"] == "astronomer-houston-backend" {
                let text = o
                    .to_string()
                    .replace(&format!("/{from}"), &format!("/{to}"));
                *o = serde_json::from_str(&text).unwrap();
            }
        }
    }
    objects.iter_mut().for_each(&edit);
    let dir = tempfile::tempdir().unwrap();
    e2e_tests::write_manifests(&objects, dir.path());
    e2e_tests::write_manifest_chunks(&extra, dir.path(), "extra-");
    let cluster = FakeCluster::start(Options {
        manifest_dirs: vec![dir.path().to_path_buf()],
        crd_dir: Some(e2e_tests::velero_crd_dir()),
        simulate_velero: true,
        velero_step: Some(std::time::Duration::from_millis(50)),
        kubelet: true,
        pod_hosts,
        ..Options::default()
    })
    .expect("fake cluster starts");
    e2e_tests::remove_saved(
        &cluster,
        saved,
        fake_cluster::NamespaceTermination::Immediate,
    );
    e2e_tests::audit_on_drop(&cluster);
    Sandbox { cluster, _dir: dir }
}

/// Pods and Secrets this tool left in the platform namespace (must be none).
fn leftovers(sandbox: &Sandbox) -> Vec<String> {
    ["Pod", "Secret"]
        .iter()
        .flat_map(|kind| sandbox.cluster.list("v1", kind, Some("astronomer")))
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubectl-astro")
        .map(|o| format!("{} {}", o["kind"], o["metadata"]["name"]))
        .collect()
}

fn run(sandbox: &Sandbox, args: &[&str]) -> Output {
    let mut cmd = Command::new(restore_bin());
    cmd.env_clear()
        .envs(e2e_tests::fake_clock_env())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--kubeconfig")
        .arg(sandbox.cluster.kubeconfig_path())
        .args(args);
    let out = e2e_tests::output(cmd);
    e2e_tests::assert_no_secrets(&out);
    out
}

use e2e_tests::output_text as text;

fn restores(sandbox: &Sandbox) -> Vec<Value> {
    sandbox
        .cluster
        .list("velero.io/v1", "Restore", Some("velero"))
}

/// A fixture backup name shifted to today, as the rendered fixtures have it.
#[test]
fn restore_soft_deleted_deployment_end_to_end() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    let out = run(&sb, &["celestial-zenith-1234", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let expected = e2e_tests::fixture_name("astro-nightly-20261122010000");
    assert!(all.contains(&format!("backup: {expected}")), "{all}");
    assert!(
        all.contains("platform namespace + '-' + release name"),
        "{all}"
    );
    let r = restores(&sb);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["spec"]["backupName"], json!(expected));
    assert_eq!(
        r[0]["spec"]["includedNamespaces"],
        json!(["astronomer-celestial-zenith-1234"])
    );
    assert_eq!(r[0]["status"]["phase"], "Completed");
    let pg = e2e_tests::pg();
    assert_eq!(
        pg.query_one(
            &db.name,
            r#"SELECT count(*) FROM "houston$default"."Deployment" WHERE "releaseName" = 'celestial-zenith-1234' AND "deletedAt" IS NULL"#
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        pg.query_one(
            &db.name,
            r#"SELECT count(*) FROM "houston$default"."RoleBinding" WHERE "deploymentId" = 'ckoy0d2mm000401l5e5f6g7h8'"#
        )
        .as_deref(),
        Some("1")
    );
    // The other soft-deleted deployment is untouched.
    assert!(
        pg.query_one(
            &db.name,
            r#"SELECT "deletedAt"::text FROM "houston$default"."Deployment" WHERE "releaseName" = 'boreal-aphelion-0042'"#
        )
        .is_some()
    );
}

#[test]
fn hard_deleted_refused_before_anything_changes() {
    let sb = sandbox(&[], None, vec![]);
    let out = run(&sb, &["gusty-perihelion-7311", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("hard-deleted"), "{all}");
    assert!(all.contains("database restore"), "{all}");
    assert!(restores(&sb).is_empty());
}

#[test]
fn undelete_subcommand_outcomes() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    let out = run(&sb, &["undelete", "weightless-meteor-5042"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));

    let out = run(&sb, &["undelete", "boreal-aphelion-0042", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("ckoy0e0ws000601l5zzzzzzzz"), "{all}");
    assert!(all.contains("--force"), "{all}");

    let out = run(&sb, &["undelete", "celestial-zenith-1234", "--dry-run"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains(r#"SET "deletedAt" = NULL"#), "{all}");
    // No TTY and no --yes: refused, nothing changed.
    let out = run(&sb, &["undelete", "celestial-zenith-1234"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let pg = e2e_tests::pg();
    let still_deleted =
        r#"SELECT count(*) FROM "houston$default"."Deployment" WHERE "deletedAt" IS NOT NULL"#;
    assert_eq!(pg.query_one(&db.name, still_deleted).as_deref(), Some("2"));

    let out = run(
        &sb,
        &[
            "undelete",
            "boreal-aphelion-0042",
            "--yes",
            "--force",
            "-o",
            "json",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("14 days"), "{all}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rowsChanged"], 1);
    assert_eq!(pg.query_one(&db.name, still_deleted).as_deref(), Some("1"));
}

#[test]
fn variant_c_undelete_through_the_binary() {
    let db = HoustonCopy::new(VARIANT_C_DB);
    let sb = sandbox(&["variant-c"], Some((VARIANT_C_DB, &db.name)), vec![]);
    let out = run(&sb, &["undelete", "celestial-zenith-1234", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        e2e_tests::pg()
            .query_one(
                &db.name,
                r#"SELECT count(*) FROM "houston$default"."Deployment" WHERE "deletedAt" IS NULL AND "releaseName" = 'celestial-zenith-1234'"#
            )
            .as_deref(),
        Some("1")
    );
}

fn backup(name: &str, phase: &str, started: &str, included: &[&str]) -> Value {
    json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero", "labels": {"velero.io/storage-location": "default"}},
        "spec": {"includedNamespaces": included, "storageLocation": "default", "ttl": "720h0m0s"},
        "status": {"phase": phase, "startTimestamp": started, "completionTimestamp": started}
    })
}

#[test]
fn pool_namespace_from_houston_column_or_flag() {
    let now = jiff::Timestamp::now();
    let started = (now - jiff::SignedDuration::from_hours(2)).to_string();
    let dt = backup("dt-prod-manual", "Completed", &started, &["data-team-prod"]);
    let sb = sandbox(&["variant-d"], None, vec![dt]);
    let out = run(&sb, &["dt-prod", "--dry-run", "-o", "json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    // The dry run prints the objects it would create (a List), the plan on stderr.
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let restore = &list["items"][0];
    assert_eq!(restore["kind"], "Restore");
    assert_eq!(restore["spec"]["backupName"], "dt-prod-manual");
    assert_eq!(
        restore["spec"]["includedNamespaces"],
        json!(["data-team-prod"])
    );
    assert!(
        all.contains("namespace: data-team-prod (from the Houston"),
        "the rule is Houston's namespace column: {all}"
    );
    // The namespace exists: the dry run says existing objects are skipped.
    assert!(all.contains("will be skipped"), "{all}");

    let out = run(
        &sb,
        &[
            "dt-prod",
            "--namespace",
            "data-team-prod",
            "--no-undelete",
            "--dry-run",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("given with --namespace"), "{all}");
    assert!(all.contains("backupName: dt-prod-manual"), "{all}");
    assert!(restores(&sb).is_empty(), "dry runs create nothing");
}

#[test]
fn refusals_each_with_their_own_message_and_code() {
    let sb = sandbox(&[], None, vec![]);
    let case = |args: &[&str], code: i32, needle: &str| {
        let out = run(&sb, args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {all}");
        assert!(
            all.contains(needle),
            "{args:?}: expected {needle:?} in {all}"
        );
    };
    // Existing namespace, no TTY, no --yes / policy.
    case(
        &["weightless-meteor-5042", "--no-undelete"],
        3,
        "already exists: objects already in it are skipped",
    );
    // Missing backup.
    case(
        &[
            "celestial-zenith-1234",
            "--no-undelete",
            "--from-backup",
            "no-such-backup",
            "--yes",
        ],
        2,
        "backup no-such-backup not found",
    );
    // Failed backup.
    let failed = e2e_tests::fixture_name("astro-manual-20261122050000");
    case(
        &[
            "celestial-zenith-1234",
            "--no-undelete",
            "--from-backup",
            &failed,
            "--yes",
        ],
        3,
        "cannot be restored from: it is Failed",
    );
    // Namespace in no backup.
    case(
        &[
            "celestial-zenith-1234",
            "--no-undelete",
            "--namespace",
            "astronomer-nowhere",
            "--yes",
        ],
        3,
        "no usable backup contains namespace astronomer-nowhere",
    );
    // Named backup that does not hold the namespace.
    let newest = e2e_tests::fixture_name("astro-nightly-20261124010000");
    case(
        &[
            "celestial-zenith-1234",
            "--no-undelete",
            "--from-backup",
            &newest,
            "--yes",
        ],
        3,
        "does not contain namespace astronomer-celestial-zenith-1234",
    );
    // Terminating namespace.
    assert!(
        sb.cluster
            .set_namespace_terminating("astronomer-weightless-meteor-5042")
    );
    case(
        &["weightless-meteor-5042", "--no-undelete", "--yes"],
        3,
        "is Terminating",
    );
    // Unavailable storage location.
    let mut bsl = sb
        .cluster
        .get(
            "velero.io/v1",
            "BackupStorageLocation",
            Some("velero"),
            "default",
        )
        .unwrap();
    bsl["status"] = json!({"phase": "Unavailable", "message": "NoCredentialProviders: no valid providers in chain"});
    sb.cluster.apply(bsl);
    case(
        &["celestial-zenith-1234", "--no-undelete", "--yes"],
        3,
        "is Unavailable: NoCredentialProviders",
    );
    assert!(restores(&sb).is_empty(), "no refusal created a Restore");
}

#[test]
fn partially_failed_restore_reports_reasons_and_skips_undelete() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    sb.cluster.velero_set_outcome(
        VeleroKind::Restore,
        VeleroOutcome::PartiallyFailed {
            errors: vec![
                "error restoring persistentvolumeclaims/redis-db: volume not found".into(),
            ],
            warnings: vec![],
        },
    );
    let out = run(&sb, &["celestial-zenith-1234", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("PartiallyFailed"), "{all}");
    assert!(all.contains("volume not found"), "{all}");
    assert!(all.contains("was not undeleted"), "{all}");
    assert_eq!(
        e2e_tests::pg()
            .query_one(
                &db.name,
                r#"SELECT count(*) FROM "houston$default"."Deployment" WHERE "releaseName" = 'celestial-zenith-1234' AND "deletedAt" IS NOT NULL"#
            )
            .as_deref(),
        Some("1")
    );
}

#[test]
fn dropped_watches_do_not_lose_the_outcome() {
    let sb = sandbox(&[], None, vec![]);
    sb.cluster.inject(Fault::DropWatches {
        after_events: Some(1),
        after_ms: None,
        times: Some(3),
    });
    let out = run(
        &sb,
        &[
            "celestial-zenith-1234",
            "--no-undelete",
            "--namespace",
            "astronomer-celestial-zenith-1234",
            "--yes",
            "-o",
            "json",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"]["phase"], "Completed", "{all}");
    let watches = sb.cluster.requests().iter().filter(|r| r.watch).count();
    assert!(
        watches >= 2,
        "the watch was re-established ({watches} watches)"
    );
}

/// 2,000 backups, newest first: the newest three do not hold the namespace (two say so
/// only in their resource lists), the fourth does.
fn many_backups(ns: &str) -> (Vec<Value>, Vec<Value>, String) {
    let base = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 30);
    let at = |i: i64| (base + jiff::SignedDuration::from_mins(i)).to_string();
    let mut at_start = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"platform-release": "astronomer"}}}),
    ];
    for i in 0..1996 {
        // Older backups name other namespaces: decided without downloads.
        let inc = if i % 2 == 0 { "astronomer" } else { ns };
        at_start.push(backup(&format!("bulk-{i:04}"), "Completed", &at(i), &[inc]));
    }
    let chosen = "bulk-all-1996".to_string();
    at_start.push(backup(&chosen, "Completed", &at(1996), &["*"]));
    // Created after start: their resource lists do not hold the namespace.
    let later = vec![
        backup("bulk-other-1997", "Completed", &at(1997), &["astronomer"]),
        backup("bulk-glob-1998", "Completed", &at(1998), &["astronomer-*"]),
        backup("bulk-all-1999", "Completed", &at(1999), &["*"]),
    ];
    (at_start, later, chosen)
}

#[test]
fn chooses_among_two_thousand_backups_with_paging_and_few_downloads() {
    let ns = "astronomer-bulk-restore-0001";
    let (at_start, later, chosen) = many_backups(ns);
    let sb = sandbox(&[], None, at_start);
    for b in later {
        sb.cluster.apply(b);
    }
    // The namespace was deleted after the older backups ran.
    sb.cluster.delete("v1", "Namespace", None, ns);
    sb.cluster.clear_requests();
    let out = run(
        &sb,
        &[
            "bulk-restore-0001",
            "--no-undelete",
            "--namespace",
            ns,
            "--dry-run",
            "-o",
            "json",
        ],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list["items"][0]["spec"]["backupName"],
        json!(chosen),
        "{all}"
    );
    let requests = sb.cluster.requests();
    let lists: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/backups") && !r.watch)
        .collect();
    assert!(
        lists.len() >= 4,
        "2,000 backups need at least 4 pages: {lists:?}"
    );
    assert!(
        lists.iter().all(|r| r.query.contains("limit=500")),
        "{lists:?}"
    );
    assert!(
        lists.iter().skip(1).all(|r| r.query.contains("continue=")),
        "{lists:?}"
    );
    let downloads: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/downloadrequests"))
        .collect();
    // bulk-all-1999 and bulk-glob-1998 (no), bulk-all-1996 (yes); bulk-other-1997 needs none.
    assert_eq!(downloads.len(), 3, "{downloads:?}");
    let listed: Vec<String> = sb
        .cluster
        .list("velero.io/v1", "DownloadRequest", Some("velero"))
        .iter()
        .map(|d| {
            d["spec"]["target"]["name"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        listed.is_empty(),
        "download requests are cleaned up: {listed:?}"
    );
}

#[test]
fn waits_for_a_terminating_namespace_when_asked() {
    let sb = sandbox(&[], None, vec![]);
    let ns = "astronomer-weightless-meteor-5042";
    assert!(sb.cluster.set_namespace_terminating(ns));
    let mut cmd = Command::new(restore_bin());
    cmd.env_clear()
        .envs(e2e_tests::fake_clock_env())
        .arg("--kubeconfig")
        .arg(sb.cluster.kubeconfig_path())
        .args([
            "weightless-meteor-5042",
            "--no-undelete",
            "--namespace",
            ns,
            "--wait-for-namespace",
            "--yes",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // The restore must not start while the namespace is still there.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        restores(&sb).is_empty(),
        "restore created while the namespace was Terminating"
    );
    sb.cluster.finish_namespace_termination(ns);
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("is gone"), "{all}");
    assert_eq!(restores(&sb).len(), 1, "{all}");
}

#[test]
fn verify_waits_for_restored_deployments_to_become_available() {
    let src = "astronomer-weightless-meteor-5042";
    // Backed-up Deployments carry no status (Velero strips it on restore anyway).
    let sb = sandbox_with(&[], None, vec![], |o| {
        if o["kind"] == "Deployment" && o["metadata"]["namespace"] == src {
            o.as_object_mut().unwrap().remove("status");
        }
    });
    let dst = "weightless-drill";
    let mut cmd = Command::new(restore_bin());
    cmd.env_clear()
        .envs(e2e_tests::fake_clock_env())
        .arg("--kubeconfig")
        .arg(sb.cluster.kubeconfig_path())
        .args([
            "weightless-meteor-5042",
            "--no-undelete",
            "--namespace",
            src,
            "--namespace-mapping",
            &format!("{src}:{dst}"),
            "--verify",
            "--verify-timeout",
            "30s",
            "--yes",
            "-o",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Play the kubelet: once the restored Deployments exist and the restore is done, mark
    // them Available one by one; the command must wait for all of them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut marked = 0;
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        let done = restores(&sb)
            .first()
            .is_some_and(|r| r["status"]["phase"] == "Completed");
        let deployments = sb.cluster.list("apps/v1", "Deployment", Some(dst));
        if done {
            if let Some(mut d) = deployments
                .into_iter()
                .find(|d| d["status"]["conditions"][0]["status"] != "True")
            {
                d["status"] = json!({"conditions": [{"type": "Available", "status": "True"}]});
                sb.cluster.apply(d);
                marked += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = report["deploymentsAvailable"].as_u64().unwrap();
    assert!(
        n >= 2 && n == marked,
        "{n} available, {marked} marked: {all}"
    );
}

// ---------------------------------------------------------------------------------------
// A real installation: the database only pods reach, Velero's word not taken as proof.

/// Runs `args` while scanning every process's command line for fixture secrets (this tool,
/// kubectl, and the fake kubelet's pod processes all run on this machine).
fn run_scanning_cmdlines(sandbox: &Sandbox, args: &[&str]) -> (Output, Vec<String>) {
    let mut cmd = Command::new(restore_bin());
    cmd.env_clear()
        .envs(e2e_tests::fake_clock_env())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--kubeconfig")
        .arg(sandbox.cluster.kubeconfig_path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("start restore");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scanner = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut leaks = std::collections::BTreeSet::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
                        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                        for s in e2e_tests::leaked_secrets(&line) {
                            leaks.insert(format!("{s} in {line}"));
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            leaks.into_iter().collect::<Vec<_>>()
        })
    };
    let out = child.wait_with_output().expect("restore output");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let leaks = scanner.join().unwrap();
    e2e_tests::assert_no_secrets(&out);
    (out, leaks)
}

fn deleted_at_of(db: &str, release: &str) -> Option<String> {
    e2e_tests::pg().query_one(
        db,
        &format!(
            r#"SELECT "deletedAt"::text FROM "houston$default"."Deployment" WHERE "releaseName" = '{release}'"#
        ),
    )
}

#[test]
fn restore_and_undelete_go_through_a_pod_when_only_pods_reach_the_database() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    let (out, leaks) = run_scanning_cmdlines(&sb, &["celestial-zenith-1234", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(leaks.is_empty(), "secrets in process arguments: {leaks:?}");
    assert!(
        all.contains("through a pod in namespace astronomer"),
        "{all}"
    );
    assert!(all.contains("undeleted in Houston"), "{all}");
    assert_eq!(deleted_at_of(&db.name, "celestial-zenith-1234"), None);
    // One relay pod for the reads, one for the undelete; no Secret; all removed.
    let requests = sb.cluster.requests();
    let created = |suffix: &str| {
        requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(suffix))
            .count()
    };
    assert_eq!(created("/namespaces/astronomer/pods"), 2, "{requests:?}");
    assert_eq!(created("/namespaces/astronomer/secrets"), 0);
    assert!(leftovers(&sb).is_empty(), "{:?}", leftovers(&sb));
    // The namespace came back with its workloads.
    assert!(
        !sb.cluster
            .list(
                "apps/v1",
                "Deployment",
                Some("astronomer-celestial-zenith-1234")
            )
            .is_empty()
    );
}

#[test]
fn local_fails_naming_this_machine_when_only_pods_reach_the_database() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    for args in [
        &["celestial-zenith-1234", "--local", "--yes"][..],
        &["undelete", "celestial-zenith-1234", "--local", "--yes"][..],
    ] {
        let out = run(&sb, args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        assert!(all.contains("from this machine"), "{all}");
        assert!(all.contains(e2e_tests::PODS_ONLY_DB_HOST), "{all}");
        assert!(all.contains("drop --local"), "{all}");
    }
    assert!(restores(&sb).is_empty());
    assert!(deleted_at_of(&db.name, "celestial-zenith-1234").is_some());
    assert!(leftovers(&sb).is_empty());
}

#[test]
fn local_still_works_where_this_machine_reaches_the_database() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox_reaching_db(
        &[],
        Some(("astronomer_houston", &db.name)),
        vec![],
        |_| {},
        DbReach::Everywhere,
    );
    let out = run(
        &sb,
        &["undelete", "celestial-zenith-1234", "--local", "--yes"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(deleted_at_of(&db.name, "celestial-zenith-1234"), None);
    let pods = sb
        .cluster
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .count();
    assert_eq!(pods, 0, "--local starts no pod");
}

#[test]
fn unreachable_database_from_the_pod_is_named_with_the_pod() {
    let sb = sandbox_with(&[], None, vec![], |o| {
        if o["kind"] == "Secret" && o["metadata"]["name"] == "astronomer-houston-backend" {
            // A host that neither this machine nor the pods resolve.
            let text = o
                .to_string()
                .replace(e2e_tests::PODS_ONLY_DB_HOST, "nowhere.private.invalid");
            *o = serde_json::from_str(&text).unwrap();
        }
    });
    let out = run(&sb, &["undelete", "celestial-zenith-1234", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("from pod astronomer/astro-dbrelay-"), "{all}");
    assert!(all.contains("in the cluster"), "{all}");
    assert!(all.contains("nowhere.private.invalid"), "{all}");
    assert!(leftovers(&sb).is_empty(), "{:?}", leftovers(&sb));
}

#[test]
fn dry_run_shows_the_restore_the_sql_and_the_relay_pod() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    let out = run(&sb, &["celestial-zenith-1234", "--dry-run"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // stdout: exactly the object to create (apply-able); the SQL and the pod on stderr.
    let docs = e2e_tests::parse_yaml_docs(&stdout).unwrap();
    assert_eq!(docs.len(), 1, "{stdout}");
    assert_eq!(docs[0]["kind"], "Restore");
    assert!(stderr.contains("UPDATE"), "{stderr}");
    assert!(stderr.contains("relay pod"), "{stderr}");
    assert!(stderr.contains("kind: Pod"), "{stderr}");
    assert!(stderr.contains("/dev/tcp"), "{stderr}");
    assert!(restores(&sb).is_empty());
    assert!(deleted_at_of(&db.name, "celestial-zenith-1234").is_some());
    assert!(leftovers(&sb).is_empty());
}

/// A Backup as a schedule makes it after the deployment was deleted: it still names the
/// namespace. Created through the API, the simulated Velero runs it now, when the
/// namespace is gone, so its resource list lacks it; it is the newest.
fn backup_after_deletion(sb: &Sandbox, name: &str, ns: &str) {
    sb.cluster.apply(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero",
                     "labels": {"velero.io/schedule-name": "astro-nightly"}},
        "spec": {"includedNamespaces": ["astronomer", ns], "storageLocation": "default", "ttl": "720h0m0s"}
    }));
    for _ in 0..200 {
        let b = sb
            .cluster
            .get("velero.io/v1", "Backup", Some("velero"), name);
        if b.is_some_and(|b| b["status"]["phase"] == "Completed") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("backup {name} did not complete");
}

#[test]
fn backups_naming_the_namespace_without_holding_it_are_not_chosen() {
    let ns = "astronomer-celestial-zenith-1234";
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    backup_after_deletion(&sb, "astro-nightly-after-1", ns);
    backup_after_deletion(&sb, "astro-nightly-after-2", ns);

    let listed = run(&sb, &["celestial-zenith-1234", "--list-backups"]);
    let list = text(&listed);
    assert_eq!(listed.status.code(), Some(0), "{list}");
    let line = |name: &str| {
        list.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not listed: {list}"))
            .to_owned()
    };
    assert!(line("astro-nightly-after-2").contains("lacks it"), "{list}");
    assert!(line("astro-nightly-after-1").contains("lacks it"), "{list}");
    let holding = e2e_tests::fixture_name("astro-nightly-20261122010000");
    assert!(line(&holding).starts_with('*'), "{list}");
    assert!(
        line(&holding).contains("confirmed by its resource list"),
        "{list}"
    );

    // Naming such a backup: refused before anything is created.
    let named = run(
        &sb,
        &[
            "celestial-zenith-1234",
            "--from-backup",
            "astro-nightly-after-2",
            "--yes",
        ],
    );
    let all = text(&named);
    assert_eq!(named.status.code(), Some(3), "{all}");
    assert!(all.contains("does not contain namespace"), "{all}");
    assert!(restores(&sb).is_empty());
    assert!(deleted_at_of(&db.name, "celestial-zenith-1234").is_some());

    // The default choice: the older backup that holds it.
    let out = run(&sb, &["celestial-zenith-1234", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains(&format!("backup: {holding}")), "{all}");
    assert_eq!(restores(&sb)[0]["spec"]["backupName"], json!(holding));
}

#[test]
fn a_completed_restore_that_brings_nothing_back_fails_and_leaves_houston_alone() {
    let db = HoustonCopy::new("astronomer_houston");
    let sb = sandbox(&[], Some(("astronomer_houston", &db.name)), vec![]);
    sb.cluster
        .velero_set_outcome(VeleroKind::Restore, VeleroOutcome::CompletedEmpty);
    let out = run(&sb, &["celestial-zenith-1234", "--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("ended Completed, but"), "{all}");
    assert!(all.contains("does not exist"), "{all}");
    assert!(all.contains("was not undeleted"), "{all}");
    assert_eq!(restores(&sb)[0]["status"]["phase"], "Completed");
    assert!(deleted_at_of(&db.name, "celestial-zenith-1234").is_some());
    assert!(leftovers(&sb).is_empty());
}

#[test]
fn a_restore_name_taken_in_the_same_second_gets_a_suffix() {
    let sb = sandbox(&[], None, vec![]);
    // Another restore of the release took `<release>-<stamp>` for each of the next seconds.
    let release = astro::release::ReleaseName::parse("celestial-zenith-1234").unwrap();
    let now = jiff::Timestamp::now();
    let mut taken = Vec::new();
    for s in -1..30 {
        let name =
            astro::restore::plan::restore_name(&release, now + jiff::SignedDuration::from_secs(s));
        sb.cluster.apply(json!({
            "apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": name, "namespace": "velero"},
            "spec": {"backupName": "other"},
            "status": {"phase": "Completed"}
        }));
        taken.push(name);
    }
    let out = run(
        &sb,
        &[
            "celestial-zenith-1234",
            "--no-undelete",
            "--namespace",
            "astronomer-celestial-zenith-1234",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ours: Vec<String> = restores(&sb)
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
        .filter(|n| !taken.contains(n))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(ours[0].ends_with("-1"), "{ours:?}");
}
