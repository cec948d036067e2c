//! The checks: pure functions from typed facts to [`Check`]s. The facts are small
//! structs the collect step fills from the cluster and Houston; tests build them by hand.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::{Check, Section, Verdict};
use crate::restore::choice::{self, BackupInfo, Containment};

/// Name of the Velero plugin that keeps Redis data out (`velero-plugin-astro`).
pub const REDIS_PLUGIN: &str = "astronomer.io/skip-redis-data";

/// How long after a cron tick a backup may start and still count as on time.
pub const SCHEDULE_GRACE: SignedDuration = SignedDuration::from_mins(30);

fn age(now: Timestamp, t: Timestamp) -> SignedDuration {
    now.duration_since(t)
}

/// `26h`, `3d 4h`, `12m` for messages.
pub fn human(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    let (days, hours, mins) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    match (days, hours) {
        (0, 0) => format!("{mins}m"),
        (0, h) => format!("{h}h{mins:02}m"),
        (d, h) => format!("{d}d{h:02}h"),
    }
}

pub use crate::velero::server_status::ServerAnswer;

/// Velero server reachable: a ServerStatusRequest answered.
pub fn check_server(answer: &ServerAnswer, velero_namespace: &str) -> Check {
    let step = format!(
        "check the Velero server: `kubectl -n {velero_namespace} get pods`, `kubectl -n {velero_namespace} logs deploy/velero`"
    );
    match answer {
        ServerAnswer::Answered { version, plugins } => Check::new(
            "velero.server",
            Section::Velero,
            "server",
            Verdict::Ok,
            format!("Velero {version} answered ({} plugins)", plugins.len()),
        ),
        ServerAnswer::NoAnswer { waited_secs } => Check::new(
            "velero.server",
            Section::Velero,
            "server",
            Verdict::Unknown,
            format!(
                "no answer to a ServerStatusRequest within {waited_secs}s: cannot tell whether backups run"
            ),
        )
        .next(step),
        ServerAnswer::Error(_) | ServerAnswer::Interrupted => Check::new(
            "velero.server",
            Section::Velero,
            "server",
            Verdict::Unknown,
            format!(
                "cannot ask the Velero server: {}",
                answer.problem().unwrap_or_default()
            ),
        )
        .next(step),
    }
}

/// What status needs of one BackupStorageLocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationFacts {
    /// Name.
    pub name: String,
    /// `spec.default`.
    pub default: bool,
    /// `status.phase` (`""` when unset).
    pub phase: String,
    /// `spec.accessMode` (default `ReadWrite`).
    pub access_mode: String,
    /// `status.lastValidationTime`.
    pub last_validation: Option<Timestamp>,
    /// `status.message`.
    pub message: Option<String>,
}

/// Each storage location's phase and access mode; the ones backups use (the default and
/// those schedules name) must be Available and ReadWrite.
pub fn check_locations(
    locations: &[LocationFacts],
    used: &[String],
    now: Timestamp,
    velero_namespace: &str,
) -> Vec<Check> {
    let mut out = Vec::new();
    if locations.is_empty() {
        out.push(
            Check::new(
                "velero.location",
                Section::Velero,
                "(none)",
                Verdict::Fail,
                format!("no BackupStorageLocation in namespace {velero_namespace}: nothing can be backed up"),
            )
            .next("create one (`velero backup-location create`)"),
        );
        return out;
    }
    for l in locations {
        let in_use = l.default || used.contains(&l.name);
        let validated = l
            .last_validation
            .map(|t| format!(", validated {} ago", human(age(now, t))))
            .unwrap_or_else(|| ", never validated".into());
        let mut text = format!(
            "{} {}{}{}",
            if l.phase.is_empty() {
                "(no phase)"
            } else {
                &l.phase
            },
            l.access_mode,
            validated,
            if l.default { ", default" } else { "" }
        );
        if let Some(m) = l.message.as_deref().filter(|m| !m.is_empty()) {
            text.push_str(&format!(": {m}"));
        }
        let (verdict, step) = if l.phase != "Available" {
            (
                if in_use { Verdict::Fail } else { Verdict::Warn },
                Some(format!(
                    "fix the location's credentials or bucket; `kubectl -n {velero_namespace} describe backupstoragelocation {}`",
                    l.name
                )),
            )
        } else if l.access_mode == "ReadOnly" && in_use {
            (
                Verdict::Fail,
                Some(format!(
                    "new backups cannot be written; after a restore set it back: `kubectl -n {velero_namespace} patch backupstoragelocation {} --type merge -p '{{\"spec\":{{\"accessMode\":\"ReadWrite\"}}}}'`",
                    l.name
                )),
            )
        } else {
            (Verdict::Ok, None)
        };
        let mut c = Check::new("velero.location", Section::Velero, &l.name, verdict, text);
        c.next_step = step;
        out.push(c);
    }
    out
}

/// What status needs of one Velero Schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleFacts {
    /// Name.
    pub name: String,
    /// `spec.schedule`.
    pub cron: String,
    /// `spec.paused`.
    pub paused: bool,
    /// `status.phase`.
    pub phase: String,
    /// `status.validationErrors`.
    pub validation_errors: Vec<String>,
    /// The newest of `status.lastBackup` and the start of its newest labelled backup.
    pub last_backup: Option<Timestamp>,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// `spec.template.includedNamespaces`.
    pub included: Vec<String>,
    /// `spec.template.excludedNamespaces`.
    pub excluded: Vec<String>,
    /// `spec.template.storageLocation`.
    pub storage_location: Option<String>,
    /// `spec.template.resourcePolicy.name` when its kind is `configmap`.
    pub resource_policy: Option<String>,
}

impl ScheduleFacts {
    /// Whether the schedule makes backups at all.
    pub fn active(&self) -> bool {
        !self.paused && self.phase != "FailedValidation"
    }

    fn as_backup(&self) -> BackupInfo {
        BackupInfo {
            name: self.name.clone(),
            phase: String::new(),
            started: None,
            included: self.included.clone(),
            excluded: self.excluded.clone(),
            storage_location: self.storage_location.clone(),
            schedule: None,
        }
    }

    /// Whether its backups would include `namespace` (same rules as a restore's choice).
    pub fn covers(&self, namespace: &str) -> bool {
        matches!(
            choice::containment(&self.as_backup(), namespace),
            Containment::Maybe(_)
        )
    }
}

/// Cron ticks in `(after, until]`, at most `cap`.
fn ticks_between(
    cron: &crate::cron::CronSchedule,
    after: Timestamp,
    until: Timestamp,
    cap: usize,
) -> usize {
    let mut n = 0;
    let mut t = after;
    while n < cap {
        match cron.next_after(t) {
            Some(next) if next <= until => {
                n += 1;
                t = next;
            }
            _ => break,
        }
    }
    n
}

/// One schedule: paused, failed validation, bad cron, and missed runs (the cron promised
/// a run since its last backup, more than [`SCHEDULE_GRACE`] ago).
pub fn check_schedule(s: &ScheduleFacts, now: Timestamp, velero_namespace: &str) -> Check {
    let mk =
        |v: Verdict, msg: String| Check::new("schedule.runs", Section::Schedules, &s.name, v, msg);
    if s.phase == "FailedValidation" {
        return mk(
            Verdict::Fail,
            format!("FailedValidation: {}", s.validation_errors.join("; ")),
        )
        .next(format!(
            "fix the schedule: `kubectl -n {velero_namespace} edit schedule {}`",
            s.name
        ));
    }
    if s.paused {
        return mk(
            Verdict::Warn,
            format!("paused (cron {:?}): makes no backups", s.cron),
        )
        .next(format!(
            "`velero schedule unpause {}` if it should run",
            s.name
        ));
    }
    let cron = match crate::cron::parse(&s.cron) {
        Ok(c) => c,
        Err(e) => {
            return mk(
                Verdict::Fail,
                format!("cron {:?} is invalid: {}", s.cron, e.reason),
            )
            .next("fix spec.schedule");
        }
    };
    let until = now.checked_sub(SCHEDULE_GRACE).unwrap_or(now);
    let since = match (s.last_backup, s.created) {
        (Some(t), _) => t,
        (None, Some(c)) => c,
        (None, None) => {
            return mk(Verdict::Warn, format!("cron {:?}, no backup yet", s.cron));
        }
    };
    let missed = ticks_between(&cron, since, until, 1000);
    let last = s
        .last_backup
        .map(|t| format!("last backup {} ago", human(age(now, t))))
        .unwrap_or_else(|| "no backup yet".into());
    let next = cron
        .next_after(now)
        .map(|t| format!(", next run in {}", human(age(t, now))))
        .unwrap_or_default();
    if missed > 0 {
        let more = if missed >= 1000 {
            "1000+".to_owned()
        } else {
            missed.to_string()
        };
        return mk(
            Verdict::Fail,
            format!(
                "cron {:?}: {last}; missed {more} run(s) the cron promised{next}",
                s.cron
            ),
        )
        .next(format!(
            "check the Velero server logs and `kubectl -n {velero_namespace} describe schedule {}`",
            s.name
        ));
    }
    mk(Verdict::Ok, format!("cron {:?}: {last}{next}", s.cron))
}

/// Every namespace that must be backed up (platform + deployments) is covered by an
/// active schedule; for one that is not, names the schedules listing namespaces explicitly.
pub fn check_coverage(schedules: &[ScheduleFacts], namespaces: &[String]) -> Vec<Check> {
    let active: Vec<&ScheduleFacts> = schedules.iter().filter(|s| s.active()).collect();
    if active.is_empty() {
        return vec![
            Check::new(
                "schedule.coverage",
                Section::Schedules,
                "(all)",
                Verdict::Fail,
                "no active Velero schedule: nothing is backed up regularly",
            )
            .next("`kubectl astro backup schedule create astro-nightly --schedule \"0 1 * * *\"`"),
        ];
    }
    let mut out = Vec::new();
    for ns in namespaces {
        if active.iter().any(|s| s.covers(ns)) {
            continue;
        }
        let explicit: Vec<&str> = active
            .iter()
            .filter(|s| !s.included.is_empty() && !s.included.iter().any(|p| p == "*"))
            .map(|s| s.name.as_str())
            .collect();
        let why = if explicit.is_empty() {
            "excluded by every schedule".to_owned()
        } else {
            format!(
                "schedule {} lists its namespaces explicitly and not this one (created after the schedule?)",
                explicit.join(", ")
            )
        };
        let mut c = Check::new(
            "schedule.coverage",
            Section::Schedules,
            explicit.first().copied().unwrap_or("(all)"),
            Verdict::Fail,
            format!("namespace {ns} is in no schedule: {why}"),
        )
        .next(format!(
            "add {ns} to spec.template.includedNamespaces of {} (or recreate it with `kubectl astro backup schedule create`, which covers every deployment)",
            explicit.first().copied().unwrap_or("a schedule")
        ));
        c.release = None;
        out.push(c);
    }
    if out.is_empty() {
        out.push(Check::new(
            "schedule.coverage",
            Section::Schedules,
            "(all)",
            Verdict::Ok,
            format!(
                "all {} namespaces are covered by an active schedule",
                namespaces.len()
            ),
        ));
    }
    out
}

/// One namespace's newest holding backup and its age (`max_age` the threshold).
#[allow(clippy::too_many_arguments)]
pub fn check_backup(
    namespace: &str,
    release: Option<&str>,
    newest: Result<Option<&BackupInfo>, &str>,
    now: Timestamp,
    max_age: SignedDuration,
) -> Check {
    let mut c = match newest {
        Err(why) => Check::new(
            "backup.age",
            Section::Backups,
            namespace,
            Verdict::Unknown,
            format!("cannot tell: {why}"),
        ),
        Ok(None) => Check::new(
            "backup.age",
            Section::Backups,
            namespace,
            Verdict::Fail,
            "no usable backup holds this namespace".to_owned(),
        )
        .next("`kubectl astro backup create` now, and check the schedules above"),
        Ok(Some(b)) => {
            let a = b.started.map(|t| age(now, t));
            let mut c = match a {
                Some(a) if a > max_age => Check::new(
                    "backup.age",
                    Section::Backups,
                    namespace,
                    Verdict::Fail,
                    format!(
                        "newest holding backup {} ({}) is {} old, past {}",
                        b.name,
                        b.phase,
                        human(a),
                        human(max_age)
                    ),
                )
                .next("`kubectl astro backup create` now, and check the schedules above"),
                Some(a) => Check::new(
                    "backup.age",
                    Section::Backups,
                    namespace,
                    Verdict::Ok,
                    format!(
                        "newest holding backup {} ({}), {} old",
                        b.name,
                        b.phase,
                        human(a)
                    ),
                ),
                None => Check::new(
                    "backup.age",
                    Section::Backups,
                    namespace,
                    Verdict::Warn,
                    format!("newest holding backup {} has no start time", b.name),
                ),
            };
            c.backup = Some(b.name.clone());
            c.age_seconds = a.map(|a| a.as_secs());
            c
        }
    };
    c.release = release.map(str::to_owned);
    c
}

/// The Redis volume policy: ConfigMap present and referenced by every active schedule,
/// or the plugin that skips Redis data loaded.
pub fn check_redis(
    policy_exists: bool,
    schedules: &[ScheduleFacts],
    plugins: Option<&[(String, String)]>,
    velero_namespace: &str,
) -> Check {
    let policy = crate::backup::plan::POLICY_CONFIGMAP;
    let mk = |v: Verdict, m: String| Check::new("redis.policy", Section::Redis, policy, v, m);
    if let Some(p) = plugins
        && p.iter().any(|(_, n)| n == REDIS_PLUGIN)
    {
        return mk(
            Verdict::Ok,
            format!("the Velero plugin {REDIS_PLUGIN} is loaded"),
        );
    }
    if !policy_exists {
        return mk(
            Verdict::Warn,
            format!("ConfigMap {velero_namespace}/{policy} is missing and the plugin {REDIS_PLUGIN} is not loaded: backups carry Redis data"),
        )
        .next("`kubectl astro backup schedule create` creates the policy and references it");
    }
    let missing: Vec<&str> = schedules
        .iter()
        .filter(|s| s.active() && s.resource_policy.as_deref() != Some(policy))
        .map(|s| s.name.as_str())
        .collect();
    if missing.is_empty() {
        mk(
            Verdict::Ok,
            format!(
                "ConfigMap {velero_namespace}/{policy} exists and every active schedule references it"
            ),
        )
    } else {
        mk(
            Verdict::Warn,
            format!(
                "schedule {} does not reference {policy}: its backups carry Redis data",
                missing.join(", ")
            ),
        )
        .next(format!(
            "set spec.template.resourcePolicy {{kind: configmap, name: {policy}}} on {}",
            missing.join(", ")
        ))
    }
}

/// What `<release>-houston-backend` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoustonSecret {
    /// A Postgres URL (host only kept).
    Url {
        /// Database host.
        host: String,
    },
    /// Helm's 5-character placeholder.
    Placeholder,
    /// Missing, empty or unreadable.
    Unusable(String),
}

/// The platform database secret.
pub fn check_houston_secret(
    secret_name: &str,
    state: &HoustonSecret,
    platform_namespace: &str,
) -> Check {
    let mk =
        |v: Verdict, m: String| Check::new("database.secret", Section::Database, secret_name, v, m);
    match state {
        HoustonSecret::Url { host } => mk(Verdict::Ok, format!("holds a Postgres URL (host {host})")),
        HoustonSecret::Placeholder => mk(
            Verdict::Warn,
            "holds Helm's 5-character placeholder (just after a `helm upgrade`): Houston's connection comes from astronomer-bootstrap until the bootstrapper rewrites it; a platform backup taken now carries the placeholder".into(),
        )
        .next(format!("restart Houston so the bootstrapper rewrites it: `kubectl -n {platform_namespace} rollout restart deploy/<release>-houston`")),
        HoustonSecret::Unusable(why) => mk(Verdict::Warn, why.clone())
            .next("`kubectl astro dbconn` shows which connection the tools fall back to"),
    }
}

/// The newest database dump found under `--dumps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpFacts {
    /// File name.
    pub name: String,
    /// Modification time.
    pub modified: Timestamp,
    /// Size in bytes.
    pub size: u64,
}

/// The newest `backup db` dump known (or "no database backup recorded").
pub fn check_dumps(
    dumps: Option<&Option<DumpFacts>>,
    now: Timestamp,
    max_age: SignedDuration,
) -> Check {
    let mk =
        |v: Verdict, m: String| Check::new("database.dump", Section::Database, "houston", v, m);
    let step =
        "`kubectl astro backup db --out houston-$(date +%F).dump` (and keep it off the cluster)";
    match dumps {
        None => mk(
            Verdict::Warn,
            "no database backup recorded (pass --dumps DIR to check `backup db` dumps)".into(),
        )
        .next(step),
        Some(None) => mk(
            Verdict::Warn,
            "no database backup recorded: the --dumps directory holds no dump".into(),
        )
        .next(step),
        Some(Some(d)) => {
            let a = age(now, d.modified);
            let mut c = if d.size == 0 {
                mk(Verdict::Fail, format!("newest dump {} is empty", d.name)).next(step)
            } else if a > max_age {
                mk(
                    Verdict::Warn,
                    format!("newest dump {} is {} old", d.name, human(a)),
                )
                .next(step)
            } else {
                mk(
                    Verdict::Ok,
                    format!(
                        "newest dump {} ({} bytes), {} old",
                        d.name,
                        d.size,
                        human(a)
                    ),
                )
            };
            c.age_seconds = Some(a.as_secs());
            c
        }
    }
}

/// One soft-deleted deployment: days left before the 14-day cleanup, and whether a backup
/// holds its namespace.
pub fn check_soft_deleted(
    release: &str,
    namespace: &str,
    deleted_seconds_ago: i64,
    holding: Result<Option<&BackupInfo>, &str>,
    warn_days: i64,
) -> Check {
    let window = crate::houston::CLEANUP_AFTER_DAYS * 86_400;
    let left_secs = window - deleted_seconds_ago;
    let days_left = left_secs.div_euclid(86_400);
    let restore = format!("`kubectl astro restore {release}` to bring it back");
    let mut c = match holding {
        Err(why) => Check::new("softdeleted.restorable", Section::SoftDeleted, release, Verdict::Unknown, format!("cannot tell whether a backup holds {namespace}: {why}")),
        _ if left_secs <= 0 => Check::new(
            "softdeleted.restorable",
            Section::SoftDeleted,
            release,
            Verdict::Warn,
            format!("deleted {} days ago: past the 14-day cleanup, Houston's cleanup job removes the row at its next run (then only a database restore helps)", deleted_seconds_ago / 86_400),
        )
        .next(restore.clone()),
        Ok(None) => Check::new(
            "softdeleted.restorable",
            Section::SoftDeleted,
            release,
            Verdict::Warn,
            format!("{days_left} days left before the cleanup, but no usable backup holds {namespace}: only the Houston row can come back"),
        ),
        Ok(Some(b)) if days_left < warn_days => Check::new(
            "softdeleted.restorable",
            Section::SoftDeleted,
            release,
            Verdict::Warn,
            format!("nearing the 14-day cleanup: {days_left} days left; backup {} holds {namespace}", b.name),
        )
        .next(restore.clone()),
        Ok(Some(b)) => Check::new(
            "softdeleted.restorable",
            Section::SoftDeleted,
            release,
            Verdict::Ok,
            format!("restorable: {days_left} days left before the cleanup; backup {} holds {namespace}", b.name),
        ),
    };
    if let Ok(Some(b)) = holding {
        c.backup = Some(b.name.clone());
    }
    c.days_left = Some(days_left.max(0));
    c.release = Some(release.to_owned());
    c
}

/// Database hosts named by a Helm release's user-supplied values: `(path, host)` for
/// every `host` key and every Postgres URL. Passwords are never returned.
pub fn helm_value_hosts(release: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match v {
                        serde_json::Value::String(s) if k == "host" && !s.is_empty() => {
                            out.push((p, s.to_ascii_lowercase()));
                        }
                        serde_json::Value::String(s)
                            if s.starts_with("postgres") && s.contains("://") =>
                        {
                            if let Ok(c) = crate::connection::PgConnection::parse(s) {
                                out.push((p, c.host().to_ascii_lowercase()));
                            }
                        }
                        _ => walk(v, &p, out),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(config) = release.get("config") {
        walk(config, "", &mut out);
    }
    out
}

/// One deployment's newest Helm release values against the host the secrets use.
pub fn check_helm_values(
    release: &str,
    namespace: &str,
    revision: u32,
    hosts: &[(String, String)],
    secrets_host: &str,
) -> Check {
    let other: BTreeMap<&str, Vec<&str>> = hosts
        .iter()
        .filter(|(_, h)| !h.eq_ignore_ascii_case(secrets_host))
        .fold(BTreeMap::new(), |mut m, (p, h)| {
            m.entry(h.as_str()).or_default().push(p.as_str());
            m
        });
    let mut c = if other.is_empty() {
        Check::new(
            "endpoint.helm",
            Section::Endpoint,
            release,
            Verdict::Ok,
            format!("Helm values (revision {revision}) name no other database host"),
        )
    } else {
        let list: Vec<String> = other
            .iter()
            .map(|(h, paths)| format!("{h} at {}", paths.join(", ")))
            .collect();
        Check::new(
            "endpoint.helm",
            Section::Endpoint,
            release,
            Verdict::Warn,
            format!("Helm values (revision {revision}) name another database host than the secrets ({secrets_host}): {}; the next `helm upgrade` would undo an endpoint move", list.join("; ")),
        )
        .next(format!("update the values: `helm upgrade {release} <chart> -n {namespace} --reuse-values --set ...host={secrets_host}`"))
    };
    c.release = Some(release.to_owned());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn schedule(name: &str, included: &[&str], last: Option<&str>) -> ScheduleFacts {
        ScheduleFacts {
            name: name.into(),
            cron: "0 1 * * *".into(),
            paused: false,
            phase: "Enabled".into(),
            validation_errors: vec![],
            last_backup: last.map(ts),
            created: Some(ts("2026-01-01T00:00:00Z")),
            included: included.iter().map(|s| (*s).to_owned()).collect(),
            excluded: vec![],
            storage_location: Some("default".into()),
            resource_policy: None,
        }
    }

    fn backup(name: &str, started: &str) -> BackupInfo {
        BackupInfo {
            name: name.into(),
            phase: "Completed".into(),
            started: Some(ts(started)),
            included: vec![],
            excluded: vec![],
            storage_location: None,
            schedule: None,
        }
    }

    #[test]
    fn server_answer_or_cannot_tell() {
        let ok = check_server(
            &ServerAnswer::Answered {
                version: "v1.16.1".into(),
                plugins: vec![],
            },
            "velero",
        );
        assert_eq!(ok.verdict, Verdict::Ok);
        let no = check_server(&ServerAnswer::NoAnswer { waited_secs: 10 }, "velero");
        assert_eq!(no.verdict, Verdict::Unknown);
        assert!(no.next_step.unwrap().contains("kubectl -n velero get pods"));
    }

    #[test]
    fn locations_in_use_must_be_available_and_writable() {
        let now = ts("2026-11-25T12:00:00Z");
        let mut l = LocationFacts {
            name: "default".into(),
            default: true,
            phase: "Available".into(),
            access_mode: "ReadWrite".into(),
            last_validation: Some(ts("2026-11-25T11:59:00Z")),
            message: None,
        };
        assert_eq!(
            check_locations(std::slice::from_ref(&l), &[], now, "velero")[0].verdict,
            Verdict::Ok
        );
        l.access_mode = "ReadOnly".into();
        assert_eq!(
            check_locations(std::slice::from_ref(&l), &[], now, "velero")[0].verdict,
            Verdict::Fail
        );
        l.access_mode = "ReadWrite".into();
        l.phase = "Unavailable".into();
        assert_eq!(
            check_locations(std::slice::from_ref(&l), &[], now, "velero")[0].verdict,
            Verdict::Fail
        );
        l.default = false;
        assert_eq!(
            check_locations(std::slice::from_ref(&l), &[], now, "velero")[0].verdict,
            Verdict::Warn
        );
        assert_eq!(
            check_locations(&[], &[], now, "velero")[0].verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn missed_runs_counted_from_the_cron() {
        let now = ts("2026-11-25T12:00:00Z");
        let on_time = schedule("n", &["a"], Some("2026-11-25T01:00:00Z"));
        assert_eq!(check_schedule(&on_time, now, "velero").verdict, Verdict::Ok);
        let late = schedule("n", &["a"], Some("2026-11-23T01:00:00Z"));
        let c = check_schedule(&late, now, "velero");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.message.contains("missed 2 run"), "{}", c.message);
        // Within the grace period after the tick: not missed yet.
        let early = schedule("n", &["a"], Some("2026-11-24T01:00:00Z"));
        assert_eq!(
            check_schedule(&early, ts("2026-11-25T01:10:00Z"), "velero").verdict,
            Verdict::Ok
        );
        let mut paused = on_time.clone();
        paused.paused = true;
        assert_eq!(
            check_schedule(&paused, now, "velero").verdict,
            Verdict::Warn
        );
        let mut bad = on_time;
        bad.cron = "61 * * * *".into();
        assert_eq!(check_schedule(&bad, now, "velero").verdict, Verdict::Fail);
    }

    #[test]
    fn a_namespace_created_after_an_explicit_schedule_is_uncovered() {
        let s = schedule("astro-nightly", &["astronomer", "astronomer-a"], None);
        let nss = vec![
            "astronomer".to_owned(),
            "astronomer-a".to_owned(),
            "astronomer-new".to_owned(),
        ];
        let out = check_coverage(std::slice::from_ref(&s), &nss);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].verdict, Verdict::Fail);
        assert_eq!(out[0].subject, "astro-nightly");
        assert!(out[0].message.contains("astronomer-new"));
        let all = schedule("all", &["*"], None);
        assert_eq!(check_coverage(&[all], &nss)[0].verdict, Verdict::Ok);
        assert_eq!(check_coverage(&[], &nss)[0].verdict, Verdict::Fail);
    }

    #[test]
    fn backup_age_against_the_threshold() {
        let now = ts("2026-11-25T12:00:00Z");
        let b = backup("b1", "2026-11-25T01:00:00Z");
        let max = SignedDuration::from_hours(26);
        let c = check_backup("ns", Some("r"), Ok(Some(&b)), now, max);
        assert_eq!((c.verdict, c.age_seconds), (Verdict::Ok, Some(11 * 3600)));
        let old = backup("b0", "2026-11-23T01:00:00Z");
        assert_eq!(
            check_backup("ns", None, Ok(Some(&old)), now, max).verdict,
            Verdict::Fail
        );
        assert_eq!(
            check_backup("ns", None, Ok(None), now, max).verdict,
            Verdict::Fail
        );
        assert_eq!(
            check_backup("ns", None, Err("x"), now, max).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn redis_policy_or_plugin() {
        let mut s = schedule("n", &["*"], None);
        assert_eq!(
            check_redis(false, std::slice::from_ref(&s), Some(&[]), "velero").verdict,
            Verdict::Warn
        );
        assert_eq!(
            check_redis(true, std::slice::from_ref(&s), Some(&[]), "velero").verdict,
            Verdict::Warn
        );
        s.resource_policy = Some(crate::backup::plan::POLICY_CONFIGMAP.into());
        assert_eq!(
            check_redis(true, std::slice::from_ref(&s), None, "velero").verdict,
            Verdict::Ok
        );
        let plugin = [("RestoreItemAction".to_owned(), REDIS_PLUGIN.to_owned())];
        assert_eq!(
            check_redis(false, &[], Some(&plugin), "velero").verdict,
            Verdict::Ok
        );
    }

    #[test]
    fn houston_secret_and_dumps() {
        assert_eq!(
            check_houston_secret(
                "astronomer-houston-backend",
                &HoustonSecret::Placeholder,
                "astronomer"
            )
            .verdict,
            Verdict::Warn
        );
        assert_eq!(
            check_houston_secret("x", &HoustonSecret::Url { host: "db".into() }, "astronomer")
                .verdict,
            Verdict::Ok
        );
        let now = ts("2026-11-25T12:00:00Z");
        let max = SignedDuration::from_hours(26);
        assert_eq!(check_dumps(None, now, max).verdict, Verdict::Warn);
        let d = DumpFacts {
            name: "h.dump".into(),
            modified: ts("2026-11-25T11:00:00Z"),
            size: 10,
        };
        assert_eq!(check_dumps(Some(&Some(d)), now, max).verdict, Verdict::Ok);
    }

    #[test]
    fn soft_deleted_days_left() {
        let b = backup("b", "2026-11-20T01:00:00Z");
        let c = check_soft_deleted("r", "ns", 3 * 86_400, Ok(Some(&b)), 7);
        assert_eq!((c.verdict, c.days_left), (Verdict::Ok, Some(11)));
        let c = check_soft_deleted("r", "ns", 12 * 86_400 + 60, Ok(Some(&b)), 7);
        assert_eq!((c.verdict, c.days_left), (Verdict::Warn, Some(1)));
        assert!(c.message.contains("nearing"));
        let c = check_soft_deleted("r", "ns", 20 * 86_400, Ok(Some(&b)), 7);
        assert_eq!((c.verdict, c.days_left), (Verdict::Warn, Some(0)));
        assert_eq!(
            check_soft_deleted("r", "ns", 86_400, Ok(None), 7).verdict,
            Verdict::Warn
        );
    }

    #[test]
    fn helm_values_naming_another_host() {
        let release = serde_json::json!({"config": {"data": {"metadataConnection": {"host": "Old.DB", "pass": "s3cr3tpw"},
            "url": "postgresql://u:p@old.db:5432/x"}}});
        let hosts = helm_value_hosts(&release);
        assert_eq!(
            hosts,
            vec![
                (
                    "data.metadataConnection.host".to_owned(),
                    "old.db".to_owned()
                ),
                ("data.url".to_owned(), "old.db".to_owned()),
            ]
        );
        let c = check_helm_values("r", "ns", 3, &hosts, "new.db");
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(!c.message.contains("s3cr3tpw"));
        assert_eq!(
            check_helm_values("r", "ns", 3, &hosts, "OLD.db").verdict,
            Verdict::Ok
        );
    }
}
