//! `backup schedule create|list|pause|unpause`: Velero Schedules with the same scoping and
//! Redis policy as `backup create`, cron checked client-side before Velero sees it.

use jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::BackupError;
use super::create::{apply_policy, collect_policy, collect_scope};
use super::plan::{self, BackupOptions, MAX_SCHEDULE_NAME, PolicyAction, Scope};
use crate::client::KubeError;
use crate::cron::{self, CronSchedule, ScheduleKind};
use crate::platform::Site;
use crate::velero::Schedule;

/// Everything `schedule create` would do, decided.
#[derive(Debug, Clone)]
pub struct SchedulePlan {
    /// The parsed cron expression.
    pub cron: CronSchedule,
    /// What to do with the volume-policy ConfigMap.
    pub policy: PolicyAction,
    /// The Schedule to create.
    pub schedule: Schedule,
}

impl SchedulePlan {
    /// The objects that would be created or changed, as JSON values, in order.
    pub fn objects(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        let mut out = Vec::new();
        if let PolicyAction::Create(cm) | PolicyAction::Update(cm) = &self.policy {
            out.push(serde_json::to_value(cm)?);
        }
        out.push(serde_json::to_value(&self.schedule)?);
        Ok(out)
    }
}

/// Reads the cluster and decides (no changes).
pub async fn prepare(
    client: &Client,
    globals: &Site,
    name: &str,
    expr: &str,
    scope: &Scope,
    opts: &BackupOptions,
) -> Result<SchedulePlan, BackupError> {
    plan::validate_name(name, MAX_SCHEDULE_NAME, "schedule")?;
    let cron = cron::parse(expr)?;
    let scoped = collect_scope(client, globals, scope, opts.storage_location.as_deref()).await?;
    let api: Api<Schedule> = Api::namespaced(client.clone(), &globals.velero_namespace);
    let existing = api.get_opt(name).await.map_err(|e| {
        KubeError::api(
            format!("get schedule {}/{name}", globals.velero_namespace),
            e,
        )
    })?;
    if existing.is_some() {
        return Err(BackupError::AlreadyExists {
            kind: "schedule",
            namespace: globals.velero_namespace.clone(),
            name: name.to_owned(),
        });
    }
    let policy = collect_policy(client, &globals.velero_namespace).await?;
    let schedule = plan::plan_schedule(
        name,
        &globals.velero_namespace,
        expr,
        &scoped.namespaces,
        opts,
    );
    Ok(SchedulePlan {
        cron,
        policy,
        schedule,
    })
}

/// Applies the plan: policy first, then the Schedule.
pub async fn apply(client: &Client, plan: &SchedulePlan) -> Result<Schedule, BackupError> {
    let namespace = plan.schedule.metadata.namespace.clone().unwrap_or_default();
    let name = plan.schedule.metadata.name.clone().unwrap_or_default();
    apply_policy(client, &namespace, plan.policy.clone()).await?;
    let api: Api<Schedule> = Api::namespaced(client.clone(), &namespace);
    match api.create(&PostParams::default(), &plan.schedule).await {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(BackupError::AlreadyExists {
            kind: "schedule",
            namespace,
            name,
        }),
        Err(e) => Err(KubeError::api(format!("create schedule {namespace}/{name}"), e).into()),
    }
}

/// Lines telling when the schedule runs next (UTC).
pub fn describe_next_runs(cron: &CronSchedule, now: Timestamp) -> Vec<String> {
    match &cron.kind {
        ScheduleKind::Every(d) => vec![format!(
            "runs every {d:#} after the previous backup; Velero starts counting at creation, so the first backup comes about {d:#} from now"
        )],
        ScheduleKind::Spec { .. } => {
            let runs = cron.next_runs(now, 3);
            if runs.is_empty() {
                return vec!["this expression never matches a date (e.g. 30 February): no backup would ever run".into()];
            }
            let mut out = vec!["next runs (UTC):".to_owned()];
            out.extend(
                runs.iter()
                    .map(|t| format!("  {}", t.strftime("%Y-%m-%d %H:%M:%S UTC"))),
            );
            out
        }
    }
}

/// Every Schedule, sorted by name.
pub async fn collect_schedules(
    client: &Client,
    velero_namespace: &str,
) -> Result<Vec<Schedule>, KubeError> {
    let api: Api<Schedule> = Api::namespaced(client.clone(), velero_namespace);
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(super::list::PAGE_LIMIT);
    loop {
        let page = api.list(&params).await.map_err(|e| {
            KubeError::api(format!("list schedules in namespace {velero_namespace}"), e)
        })?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(out)
}

/// The columns of `backup schedule list`, as `velero schedule get` prints them.
pub const HEADER: [&str; 8] = [
    "NAME",
    "STATUS",
    "CREATED",
    "SCHEDULE",
    "BACKUP TTL",
    "LAST BACKUP",
    "SELECTOR",
    "PAUSED",
];

/// One schedule's cells, in [`HEADER`] order (`now` for the last backup's age).
pub fn row(s: &Schedule, now: Timestamp) -> Vec<String> {
    let status = s.status.clone().unwrap_or_default();
    let phase = status
        .phase
        .as_ref()
        .map(|p| p.as_str().to_owned())
        .filter(|p| !p.is_empty());
    let created = s
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default();
    let last = status
        .last_backup
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map_or_else(|| "n/a".to_owned(), |t| super::list::humanize_until(t, now));
    let selector = s
        .spec
        .template
        .label_selector
        .as_ref()
        .and_then(|l| l.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into());
    vec![
        s.metadata.name.clone().unwrap_or_default(),
        phase.unwrap_or_else(|| "New".into()),
        created,
        s.spec.schedule.clone(),
        s.spec.template.ttl.clone().unwrap_or_else(|| "0s".into()),
        last,
        selector,
        s.spec.paused.unwrap_or(false).to_string(),
    ]
}

/// Sets `spec.paused` (what `velero schedule pause|unpause` changes).
pub async fn set_paused(
    client: &Client,
    velero_namespace: &str,
    name: &str,
    paused: bool,
) -> Result<Schedule, BackupError> {
    let api: Api<Schedule> = Api::namespaced(client.clone(), velero_namespace);
    let patch = serde_json::json!({"spec": {"paused": paused}});
    let (params, body) = (PatchParams::default(), Patch::Merge(&patch));
    // Sets one field outright: right to send again after a conflict.
    match crate::client::retry_on_conflict(|| api.patch(name, &params, &body)).await {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(BackupError::NotFound {
            kind: "schedule",
            namespace: velero_namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(e) => Err(KubeError::api(
            format!(
                "{} schedule {velero_namespace}/{name}",
                if paused { "pause" } else { "unpause" }
            ),
            e,
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_runs_text() {
        let now: Timestamp = "2026-11-25T16:40:00Z".parse().unwrap();
        let lines = describe_next_runs(&cron::parse("0 1 * * *").unwrap(), now);
        assert_eq!(
            lines,
            [
                "next runs (UTC):",
                "  2026-11-26 01:00:00 UTC",
                "  2026-11-27 01:00:00 UTC",
                "  2026-11-28 01:00:00 UTC"
            ]
        );
        assert!(describe_next_runs(&cron::parse("0 0 30 2 *").unwrap(), now)[0].contains("never"));
        assert!(describe_next_runs(&cron::parse("@every 6h").unwrap(), now)[0].contains("6h"));
    }

    #[test]
    fn table_has_velero_columns() {
        let s = plan::plan_schedule(
            "nightly",
            "velero",
            "0 1 * * *",
            &["a".into()],
            &BackupOptions::default(),
        );
        let now: Timestamp = "2026-11-25T16:40:00Z".parse().unwrap();
        let cells = row(&s, now);
        assert_eq!(cells.len(), HEADER.len());
        assert_eq!(&cells[..2], ["nightly", "New"]);
        assert_eq!(cells[7], "false");
    }
}
