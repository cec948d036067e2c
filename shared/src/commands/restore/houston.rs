//! Houston for `restore RELEASE` and `restore undelete`: read the deployment's row and
//! run the checked undelete, through the cluster by default (see [`crate::pgtunnel`]).

use crate::commands::cli::GlobalArgs;
use crate::commands::error::Result;
use crate::houston::{self, DeploymentColumns, DeploymentStatus, HoustonError, UndeletePlan};
use crate::output::note;
use crate::pgtunnel::{self, DbAccess};
use crate::release::ReleaseName;

use super::HoustonAccessArgs;

/// Houston as seen for one release, and how to reach it again.
pub(super) struct HoustonView {
    pub columns: DeploymentColumns,
    pub status: DeploymentStatus,
    pub connection: crate::connection::PgConnection,
    pub access: DbAccess,
    pub platform_release: String,
}

pub(super) async fn houston_view(
    kube: &kube::Client,
    global: &GlobalArgs,
    release: &ReleaseName,
    reach: &HoustonAccessArgs,
) -> Result<HoustonView> {
    let platform = crate::platform::collect_platform_release(
        kube,
        &global.platform_namespace,
        global.platform_release.as_deref(),
    )
    .await?;
    let resolved = crate::platform::collect_connection(
        kube,
        &global.platform_namespace,
        &platform,
        &crate::platform::Target::Houston,
    )
    .await?;
    for n in &resolved.notes {
        note(format!("houston: {n}"));
    }
    let access = reach.access(&global.platform_namespace, &platform.name);
    if let DbAccess::Cluster(s) = &access {
        note(format!(
            "houston: reading through a pod in namespace {} (--local connects from this machine)",
            s.namespace
        ));
    }
    let (columns, status) =
        pgtunnel::with_connection(kube, &access, &resolved.connection, async |client| {
            let columns = houston::collect_columns(client).await?;
            let status = houston::collect_status(client, &columns, release).await?;
            Ok::<_, HoustonError>((columns, status))
        })
        .await?;
    Ok(HoustonView {
        columns,
        status,
        connection: resolved.connection,
        access,
        platform_release: platform.name,
    })
}

/// Re-reads the row (time passed since the view) and runs the checked one-row undelete,
/// in one session; `None` when someone undeleted it meanwhile.
pub(super) async fn undelete_now(
    kube: &kube::Client,
    view: &HoustonView,
    release: &ReleaseName,
    force: bool,
) -> Result<Option<houston::Undeleted>> {
    let done = pgtunnel::with_connection(kube, &view.access, &view.connection, async |client| {
        let status = houston::collect_status(client, &view.columns, release).await?;
        match houston::plan_undelete(release, &status, force)? {
            UndeletePlan::NothingToDo => Ok::<_, HoustonError>(None),
            UndeletePlan::Undelete { .. } => Ok(Some(houston::undelete(client, release).await?)),
        }
    })
    .await?;
    Ok(done)
}

/// How the undelete would reach Houston, for `--dry-run`.
pub(super) fn describe_access(view: &HoustonView) -> String {
    match &view.access {
        DbAccess::Local => "from this machine (--local)".to_owned(),
        DbAccess::Cluster(s) => {
            let pod = pgtunnel::plan_relay(s, &view.connection).pod();
            let yaml = serde_saphyr::to_string(&pod).unwrap_or_else(|e| format!("({e})\n"));
            let mut text = format!(
                "through a temporary relay pod in namespace {} (deleted afterwards; no Secret, the password stays in the protocol stream):\n",
                s.namespace
            );
            for line in yaml.lines() {
                text.push_str(&format!("#   {line}\n"));
            }
            text.push_str("# each connection execs in it: bash -c\n");
            for line in pgtunnel::RELAY_SCRIPT.lines() {
                text.push_str(&format!("#   {line}\n"));
            }
            text
        }
    }
}

pub(super) fn describe_status(release: &ReleaseName, status: &DeploymentStatus) -> String {
    match status {
        DeploymentStatus::NotFound => format!("houston: {release} has no Deployment row"),
        DeploymentStatus::Active { .. } => format!("houston: {release} is live (not deleted)"),
        DeploymentStatus::SoftDeleted(s) => format!(
            "houston: {release} was soft-deleted at {} UTC ({} days ago); workspace {} {}, Airflow database {} {}",
            s.deleted_at,
            s.age_days(),
            s.workspace_id.as_deref().unwrap_or("(none)"),
            if s.workspace_exists {
                "exists"
            } else {
                "is gone"
            },
            release.airflow_database(),
            if s.airflow_db_exists {
                "exists"
            } else {
                "is gone"
            },
        ),
    }
}
