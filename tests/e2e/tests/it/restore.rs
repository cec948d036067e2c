//! `kubectl astro restore`: Houston undelete against the real PostgreSQL fixture,
//! and the restore flow end to end against the fake cluster.

use astro::houston::{self, DeploymentStatus, HoustonError, UndeletePlan, WorkspaceColumn};
use astro::release::ReleaseName;
use tokio_postgres::{Client, NoTls};

/// Connection settings of the throwaway server (`scripts/test-postgres start`).
fn pg_env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run `scripts/test-postgres start` and source target/test-postgres.env")
    })
}

async fn connect(db: &str) -> Client {
    let config = format!(
        "host={} port={} user={} password='{}' dbname={db}",
        pg_env("ASTRO_TEST_PG_HOST"),
        pg_env("ASTRO_TEST_PG_PORT"),
        pg_env("ASTRO_TEST_PG_USER"),
        pg_env("ASTRO_TEST_PG_PASSWORD").replace('\'', "\\'"),
    );
    let (client, conn) = tokio_postgres::connect(&config, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {db}: {e}"));
    tokio::spawn(conn);
    client
}

/// A private copy of a fixture Houston database, so an undelete in one test does not
/// change what another test sees. Dropped when the test ends.
struct HoustonCopy {
    name: String,
}

impl HoustonCopy {
    async fn new(template: &str, tag: &str) -> Self {
        let name = format!("t_restore_{tag}_{}", std::process::id());
        let admin = connect("postgres").await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .await
            .unwrap();
        // CREATE DATABASE … TEMPLATE fails while another session is connected to the
        // template (other tests read it); retry briefly.
        let mut last = None;
        for _ in 0..100 {
            match admin
                .batch_execute(&format!(
                    "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
                ))
                .await
            {
                Ok(()) => return HoustonCopy { name },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("cannot copy {template}: {last:?}");
    }

    async fn client(&self) -> Client {
        connect(&self.name).await
    }

    async fn drop_db(self) {
        let admin = connect("postgres").await;
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await;
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
    let db = HoustonCopy::new("astronomer_houston", "celestial").await;
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
    // Fixture dates are relative to today: deleted 3 days ago at 09:15 UTC.
    assert_eq!(s.age_days(), 3, "{s:?}");
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
    db.drop_db().await;
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
    let db = HoustonCopy::new(VARIANT_C_DB, "variantc").await;
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
    db.drop_db().await;
}

#[tokio::test]
async fn not_houston_database_is_refused() {
    let client = connect("postgres").await;
    let e = houston::collect_columns(&client).await.unwrap_err();
    assert!(matches!(e, HoustonError::NotHouston), "{e}");
}

/// The variant C (0.16, Prisma 1) Houston database of the fixtures.
const VARIANT_C_DB: &str = "legacy_houston";
