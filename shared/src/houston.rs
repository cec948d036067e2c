//! Houston database SQL for restores: which Deployment columns this schema has, whether a
//! deployment is live, soft-deleted or gone, and the runbook's "undelete" in a checked transaction.

use std::fmt;

use tokio_postgres::GenericClient;

use crate::release::ReleaseName;

/// The Postgres schema Prisma gives Houston's tables.
pub const HOUSTON_SCHEMA: &str = "houston$default";

/// Days after which Houston's nightly cleanup job hard-deletes a soft-deleted deployment
/// (`<release>-houston-cleanup-deployments`, `olderThan: 14`).
pub const CLEANUP_AFTER_DAYS: i64 = 14;

/// The runbook's step 7, narrowed so it only ever touches a soft-deleted row.
/// `$1` is the release name.
pub const UNDELETE_SQL: &str = r#"UPDATE "houston$default"."Deployment" SET "deletedAt" = NULL WHERE "releaseName" = $1 AND "deletedAt" IS NOT NULL"#;

/// Finds which of the columns we care about the Deployment table has.
const COLUMNS_SQL: &str = r#"SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'Deployment'"#;

/// Errors from reading or changing the Houston database.
#[derive(Debug, thiserror::Error)]
pub enum HoustonError {
    /// A query failed (connection lost, permissions, unexpected schema).
    #[error("Houston database: {action}: {source}")]
    Query {
        /// What we were doing.
        action: String,
        /// The driver error.
        source: tokio_postgres::Error,
    },
    /// `houston$default."Deployment"` does not exist in the database we connected to.
    #[error(
        "the database has no table \"{HOUSTON_SCHEMA}\".\"Deployment\"; it does not look like the Houston database"
    )]
    NotHouston,
    /// No row for the release: hard-deleted, cleaned up after 14 days, or never existed.
    #[error(
        "deployment {release} has no row in the Houston database: it was hard-deleted (or removed by the 14-day cleanup job), so clearing \"deletedAt\" cannot bring it back"
    )]
    HardDeleted {
        /// The release asked for.
        release: ReleaseName,
    },
    /// The soft-deleted row points at a workspace that no longer exists.
    #[error(
        "deployment {release} belongs to workspace {workspace}, which no longer exists in Houston; undeleting it would leave a deployment no one can see"
    )]
    WorkspaceGone {
        /// The release asked for.
        release: ReleaseName,
        /// The workspace id the row points at ("none" when NULL).
        workspace: String,
    },
    /// The deployment's Airflow database has been dropped.
    #[error(
        "the Airflow database {database} of deployment {release} no longer exists; the deployment would come back without its metadata"
    )]
    AirflowDatabaseMissing {
        /// The release asked for.
        release: ReleaseName,
        /// `<release_underscored>_airflow`.
        database: String,
    },
    /// Another live deployment now uses the namespace (namespace pools hand namespaces out again).
    #[error("namespace {namespace} of deployment {release} is now used by live deployment {other}")]
    NamespaceTaken {
        /// The release asked for.
        release: ReleaseName,
        /// The namespace in question.
        namespace: String,
        /// The release that uses it now.
        other: String,
    },
    /// The UPDATE did not change exactly one row, so it was rolled back.
    #[error(
        "the undelete of {release} would have changed {rows} rows instead of 1; rolled back, nothing changed"
    )]
    RowCount {
        /// The release asked for.
        release: ReleaseName,
        /// How many rows the UPDATE matched.
        rows: u64,
    },
}

impl HoustonError {
    fn query(action: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let action = action.into();
        move |source| HoustonError::Query { action, source }
    }
}

/// The column that links a Deployment to its Workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WorkspaceColumn {
    /// `"workspaceId"` (Prisma 2, 0.25 and later).
    WorkspaceId,
    /// `"workspace"` (Prisma 1, 0.16 era).
    Workspace,
}

impl WorkspaceColumn {
    /// The column name, unquoted.
    pub fn name(self) -> &'static str {
        match self {
            WorkspaceColumn::WorkspaceId => "workspaceId",
            WorkspaceColumn::Workspace => "workspace",
        }
    }
}

/// Which optional columns this Houston schema's Deployment table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DeploymentColumns {
    /// How the row points at its workspace, if it does.
    pub workspace: Option<WorkspaceColumn>,
    /// Whether newer Houston's `"namespace"` column exists.
    pub namespace: bool,
}

impl DeploymentColumns {
    /// Decides from the column names `information_schema` lists. `None` when the table is missing.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Option<Self> {
        if names.is_empty() {
            return None;
        }
        let has = |c: &str| names.iter().any(|n| n.as_ref() == c);
        let workspace = if has("workspaceId") {
            Some(WorkspaceColumn::WorkspaceId)
        } else if has("workspace") {
            Some(WorkspaceColumn::Workspace)
        } else {
            None
        };
        Some(DeploymentColumns {
            workspace,
            namespace: has("namespace"),
        })
    }

    /// The status query for this schema. Identifiers are constants, quoted; values are `$n`.
    /// `$1` release name, `$2` Airflow database name.
    pub fn status_sql(&self) -> String {
        let workspace = match self.workspace {
            Some(c) => format!(r#"d."{}""#, c.name()),
            None => "NULL::text".into(),
        };
        let workspace_exists = match self.workspace {
            Some(_) => format!(
                r#"EXISTS (SELECT 1 FROM "houston$default"."Workspace" w WHERE w."id" = {workspace})"#
            ),
            None => "true".into(),
        };
        let namespace = if self.namespace {
            r#"d."namespace""#
        } else {
            "NULL::text"
        };
        let namespace_user = if self.namespace {
            r#"(SELECT o."releaseName" FROM "houston$default"."Deployment" o WHERE o."namespace" = d."namespace" AND o."deletedAt" IS NULL AND o."releaseName" <> d."releaseName" LIMIT 1)"#
        } else {
            "NULL::text"
        };
        format!(
            r#"SELECT d."id"::text, to_char(d."deletedAt", 'YYYY-MM-DD HH24:MI:SS.MS'), floor(extract(epoch FROM (now() AT TIME ZONE 'UTC') - d."deletedAt"))::bigint, {workspace}::text, {workspace_exists}, {namespace}::text, {namespace_user}::text, EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $2) FROM "houston$default"."Deployment" d WHERE d."releaseName" = $1"#
        )
    }
}

/// What Houston knows about a soft-deleted deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SoftDeleted {
    /// Houston's deployment id (cuid).
    pub id: String,
    /// `deletedAt` as stored (UTC, no zone).
    pub deleted_at: String,
    /// Seconds between `deletedAt` and the database's clock.
    pub age_seconds: i64,
    /// The workspace the row points at.
    pub workspace_id: Option<String>,
    /// Whether that workspace row still exists (true when the schema has no workspace link).
    pub workspace_exists: bool,
    /// Whether `<release_underscored>_airflow` is in `pg_database`.
    pub airflow_db_exists: bool,
    /// The namespace column, when the schema has it and it is set.
    pub namespace: Option<String>,
    /// A live deployment that now uses the same namespace (namespace pools), if any.
    pub namespace_taken_by: Option<String>,
}

impl SoftDeleted {
    /// Whether the 14-day cleanup should already have removed this row.
    pub fn past_cleanup(&self) -> bool {
        self.age_seconds > CLEANUP_AFTER_DAYS * 86_400
    }

    /// Age in whole days, for messages.
    pub fn age_days(&self) -> i64 {
        self.age_seconds.div_euclid(86_400)
    }
}

/// Where a deployment stands in Houston.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum DeploymentStatus {
    /// No row: hard-deleted or never existed.
    NotFound,
    /// A live row (`deletedAt` is NULL).
    Active {
        /// Houston's deployment id.
        id: String,
        /// The namespace column, when present and set.
        namespace: Option<String>,
    },
    /// A soft-deleted row that an undelete can bring back.
    SoftDeleted(SoftDeleted),
}

impl DeploymentStatus {
    /// The namespace Houston recorded, if any.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            DeploymentStatus::NotFound => None,
            DeploymentStatus::Active { namespace, .. } => namespace.as_deref(),
            DeploymentStatus::SoftDeleted(s) => s.namespace.as_deref(),
        }
    }
}

/// Reads the Deployment table's columns through `information_schema`.
pub async fn collect_columns(
    client: &impl GenericClient,
) -> Result<DeploymentColumns, HoustonError> {
    let rows = client
        .query(COLUMNS_SQL, &[&HOUSTON_SCHEMA])
        .await
        .map_err(HoustonError::query("read the Deployment columns"))?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    DeploymentColumns::from_names(&names).ok_or(HoustonError::NotHouston)
}

/// Reads the status of one deployment.
pub async fn collect_status(
    client: &impl GenericClient,
    columns: &DeploymentColumns,
    release: &ReleaseName,
) -> Result<DeploymentStatus, HoustonError> {
    let row = client
        .query_opt(
            &columns.status_sql(),
            &[&release.as_str(), &release.airflow_database()],
        )
        .await
        .map_err(HoustonError::query(format!(
            "read the Deployment row of {release}"
        )))?;
    let Some(row) = row else {
        return Ok(DeploymentStatus::NotFound);
    };
    let id: String = row.get(0);
    let deleted_at: Option<String> = row.get(1);
    let namespace: Option<String> = row.get(5);
    let Some(deleted_at) = deleted_at else {
        return Ok(DeploymentStatus::Active { id, namespace });
    };
    Ok(DeploymentStatus::SoftDeleted(SoftDeleted {
        id,
        deleted_at,
        age_seconds: row.get::<_, Option<i64>>(2).unwrap_or(0),
        workspace_id: row.get(3),
        workspace_exists: row.get(4),
        airflow_db_exists: row.get(7),
        namespace,
        namespace_taken_by: row.get(6),
    }))
}

/// One Deployment row, live or soft-deleted, as `kubectl astro status` lists them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRow {
    /// `releaseName`.
    pub release: String,
    /// The namespace column, when the schema has it and it is set.
    pub namespace: Option<String>,
    /// Seconds since `deletedAt` by the database's clock; `None` for a live row.
    pub deleted_seconds_ago: Option<i64>,
}

impl DeploymentColumns {
    /// Every Deployment row with its deletion age. No values to bind; identifiers quoted.
    pub fn rows_sql(&self) -> String {
        let namespace = if self.namespace {
            r#"d."namespace""#
        } else {
            "NULL::text"
        };
        format!(
            r#"SELECT d."releaseName"::text, {namespace}::text, CASE WHEN d."deletedAt" IS NULL THEN NULL ELSE floor(extract(epoch FROM (now() AT TIME ZONE 'UTC') - d."deletedAt"))::bigint END FROM "houston$default"."Deployment" d ORDER BY d."releaseName""#
        )
    }
}

/// Reads every Deployment row (live and soft-deleted).
pub async fn collect_rows(
    client: &impl GenericClient,
    columns: &DeploymentColumns,
) -> Result<Vec<DeploymentRow>, HoustonError> {
    let rows = client
        .query(&columns.rows_sql(), &[])
        .await
        .map_err(HoustonError::query("list the Deployment rows"))?;
    Ok(rows
        .iter()
        .map(|r| DeploymentRow {
            release: r.get(0),
            namespace: r.get(1),
            deleted_seconds_ago: r.get(2),
        })
        .collect())
}

/// What to do about Houston for one release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum UndeletePlan {
    /// The deployment is live; nothing to change.
    NothingToDo,
    /// Clear `deletedAt` with [`UNDELETE_SQL`].
    Undelete {
        /// Things the user should know but that do not block (e.g. past the 14-day cleanup).
        warnings: Vec<String>,
        /// Checks that failed and were overridden with `--force`.
        forced: Vec<String>,
    },
}

/// Decides whether an undelete may run. Refusals are errors; `force` turns the
/// workspace/database/namespace refusals into warnings. A missing row is never forceable.
pub fn plan_undelete(
    release: &ReleaseName,
    status: &DeploymentStatus,
    force: bool,
) -> Result<UndeletePlan, HoustonError> {
    let s = match status {
        DeploymentStatus::NotFound => {
            return Err(HoustonError::HardDeleted {
                release: release.clone(),
            });
        }
        DeploymentStatus::Active { .. } => return Ok(UndeletePlan::NothingToDo),
        DeploymentStatus::SoftDeleted(s) => s,
    };
    let mut refusals = Vec::new();
    if !s.workspace_exists {
        refusals.push(HoustonError::WorkspaceGone {
            release: release.clone(),
            workspace: s.workspace_id.clone().unwrap_or_else(|| "none".into()),
        });
    }
    if !s.airflow_db_exists {
        refusals.push(HoustonError::AirflowDatabaseMissing {
            release: release.clone(),
            database: release.airflow_database(),
        });
    }
    if let (Some(namespace), Some(other)) = (&s.namespace, &s.namespace_taken_by) {
        refusals.push(HoustonError::NamespaceTaken {
            release: release.clone(),
            namespace: namespace.clone(),
            other: other.clone(),
        });
    }
    let mut warnings = Vec::new();
    if s.past_cleanup() {
        warnings.push(format!(
            "{release} was deleted {} days ago ({} UTC); Houston's cleanup job removes soft-deleted deployments after {CLEANUP_AFTER_DAYS} days, so on a normal install this row would already be gone (is the cleanup CronJob disabled?)",
            s.age_days(),
            s.deleted_at
        ));
    }
    if !force && !refusals.is_empty() {
        return Err(refusals.swap_remove(0));
    }
    let forced = refusals.iter().map(ToString::to_string).collect();
    Ok(UndeletePlan::Undelete { warnings, forced })
}

/// The outcome of running the undelete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Undeleted {
    /// Rows changed (always 1 on success).
    pub rows: u64,
}

/// Runs [`UNDELETE_SQL`] in a transaction that commits only if exactly one row changed.
pub async fn undelete(
    client: &mut tokio_postgres::Client,
    release: &ReleaseName,
) -> Result<Undeleted, HoustonError> {
    let tx = client
        .transaction()
        .await
        .map_err(HoustonError::query("begin a transaction"))?;
    let rows = tx
        .execute(UNDELETE_SQL, &[&release.as_str()])
        .await
        .map_err(HoustonError::query(format!("undelete {release}")))?;
    if rows != 1 {
        tx.rollback()
            .await
            .map_err(HoustonError::query("roll back the undelete"))?;
        return Err(HoustonError::RowCount {
            release: release.clone(),
            rows,
        });
    }
    tx.commit().await.map_err(HoustonError::query(format!(
        "commit the undelete of {release}"
    )))?;
    Ok(Undeleted { rows })
}

/// The SQL the undelete runs, with the value shown, for `--dry-run`.
pub struct DrySql<'a>(pub &'a ReleaseName);

impl fmt::Display for DrySql<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "BEGIN;")?;
        writeln!(f, "{UNDELETE_SQL};  -- $1 = '{}'", self.0)?;
        writeln!(f, "-- COMMIT only if exactly 1 row changed, else ROLLBACK")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::commands::error::Diagnose;
    #[allow(unused_imports)]
    use crate::commands::exit::ExitStatus;

    fn rel(s: &str) -> ReleaseName {
        ReleaseName::parse(s).unwrap()
    }

    fn soft(age_days: i64) -> SoftDeleted {
        SoftDeleted {
            id: "ckoy0d2mm000401l5e5f6g7h8".into(),
            deleted_at: "2026-08-29 09:15:00.000".into(),
            age_seconds: age_days * 86_400 + 60,
            workspace_id: Some("ckoy0b7yu000101l5h2x9c3qz".into()),
            workspace_exists: true,
            airflow_db_exists: true,
            namespace: None,
            namespace_taken_by: None,
        }
    }

    #[test]
    fn detects_columns() {
        let a = DeploymentColumns::from_names(&["id", "releaseName", "workspaceId", "namespace"]);
        assert_eq!(
            a,
            Some(DeploymentColumns {
                workspace: Some(WorkspaceColumn::WorkspaceId),
                namespace: true
            })
        );
        let c = DeploymentColumns::from_names(&["id", "releaseName", "workspace"]);
        assert_eq!(
            c,
            Some(DeploymentColumns {
                workspace: Some(WorkspaceColumn::Workspace),
                namespace: false
            })
        );
        assert_eq!(DeploymentColumns::from_names::<&str>(&[]), None);
    }

    #[test]
    fn status_sql_quotes_identifiers_and_binds_values() {
        let sql = DeploymentColumns {
            workspace: Some(WorkspaceColumn::Workspace),
            namespace: false,
        }
        .status_sql();
        assert!(sql.contains(r#"d."workspace""#));
        assert!(sql.contains(r#""houston$default"."Deployment""#));
        assert!(sql.contains(r#"d."releaseName" = $1"#));
        assert!(sql.contains("datname = $2"));
    }

    #[test]
    fn hard_deleted_is_refused_even_with_force() {
        let e = plan_undelete(
            &rel("gusty-perihelion-7311"),
            &DeploymentStatus::NotFound,
            true,
        )
        .unwrap_err();
        assert!(matches!(e, HoustonError::HardDeleted { .. }));
        assert_eq!(e.exit_status(), ExitStatus::Refused);
        assert!(e.next_step().unwrap().contains("database restore"));
    }

    #[test]
    fn live_deployment_is_a_no_op() {
        let status = DeploymentStatus::Active {
            id: "x".into(),
            namespace: None,
        };
        assert_eq!(
            plan_undelete(&rel("weightless-meteor-5042"), &status, false).unwrap(),
            UndeletePlan::NothingToDo
        );
    }

    #[test]
    fn recent_soft_delete_undeletes_without_warnings() {
        let status = DeploymentStatus::SoftDeleted(soft(3));
        assert_eq!(
            plan_undelete(&rel("celestial-zenith-1234"), &status, false).unwrap(),
            UndeletePlan::Undelete {
                warnings: vec![],
                forced: vec![]
            }
        );
    }

    #[test]
    fn past_cleanup_warns() {
        let status = DeploymentStatus::SoftDeleted(soft(20));
        let UndeletePlan::Undelete { warnings, .. } =
            plan_undelete(&rel("celestial-zenith-1234"), &status, false).unwrap()
        else {
            panic!("expected an undelete");
        };
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("20 days ago"), "{warnings:?}");
        // Exactly 14 days is not past the cleanup.
        let mut s = soft(14);
        s.age_seconds = 14 * 86_400;
        assert!(!s.past_cleanup());
    }

    #[test]
    fn missing_workspace_refused_unless_forced() {
        let mut s = soft(20);
        s.workspace_exists = false;
        s.workspace_id = Some("ckoy0e0ws000601l5zzzzzzzz".into());
        let status = DeploymentStatus::SoftDeleted(s);
        let e = plan_undelete(&rel("boreal-aphelion-0042"), &status, false).unwrap_err();
        assert!(matches!(e, HoustonError::WorkspaceGone { .. }));
        assert!(e.to_string().contains("ckoy0e0ws000601l5zzzzzzzz"));
        let UndeletePlan::Undelete { warnings, forced } =
            plan_undelete(&rel("boreal-aphelion-0042"), &status, true).unwrap()
        else {
            panic!("expected an undelete");
        };
        assert_eq!(warnings.len(), 1);
        assert_eq!(forced.len(), 1);
    }

    #[test]
    fn missing_airflow_db_and_taken_namespace_refused() {
        let mut s = soft(1);
        s.airflow_db_exists = false;
        let e = plan_undelete(
            &rel("celestial-zenith-1234"),
            &DeploymentStatus::SoftDeleted(s),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("celestial_zenith_1234_airflow"));
        let mut s = soft(1);
        s.namespace = Some("data-team-prod".into());
        s.namespace_taken_by = Some("dt-prod".into());
        let e = plan_undelete(
            &rel("celestial-zenith-1234"),
            &DeploymentStatus::SoftDeleted(s),
            false,
        )
        .unwrap_err();
        assert!(matches!(e, HoustonError::NamespaceTaken { .. }));
    }

    #[test]
    fn dry_sql_shows_the_statement() {
        let text = DrySql(&rel("celestial-zenith-1234")).to_string();
        assert!(text.contains(UNDELETE_SQL));
        assert!(text.contains("'celestial-zenith-1234'"));
    }
}
