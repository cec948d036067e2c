//! Choosing the backup to restore from: the newest usable backup that really holds the
//! namespace. Only a backup's resource list proves that: a schedule keeps naming a deleted
//! namespace in `includedNamespaces`, and Velero reports those backups `Completed` with
//! nothing of it inside. The include/exclude globs only rule backups out (no download).

use std::collections::BTreeMap;

use crate::velero::Backup;

/// How the user asked for a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupSource {
    /// `--from-backup NAME`.
    Named(String),
    /// `--from-schedule NAME`: newest of the backups labelled `velero.io/schedule-name=NAME`.
    Schedule(String),
    /// Default: newest of all backups.
    Newest,
}

/// What planning needs to know about one Backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// Backup name.
    pub name: String,
    /// `status.phase` (`""` when unset).
    pub phase: String,
    /// `status.startTimestamp`, else `metadata.creationTimestamp` (RFC 3339).
    pub started: Option<jiff::Timestamp>,
    /// `spec.includedNamespaces`.
    pub included: Vec<String>,
    /// `spec.excludedNamespaces`.
    pub excluded: Vec<String>,
    /// `spec.storageLocation`.
    pub storage_location: Option<String>,
    /// Label `velero.io/schedule-name`.
    pub schedule: Option<String>,
}

impl BackupInfo {
    /// Reads the fields from a Backup.
    pub fn of(b: &Backup) -> Option<Self> {
        let ts = |t: Option<&str>| t.and_then(|s| s.parse().ok());
        let status = b.status.as_ref();
        Some(BackupInfo {
            name: b.metadata.name.clone()?,
            phase: status
                .and_then(|s| s.phase.as_ref())
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            started: ts(status.and_then(|s| s.start_timestamp.as_deref()))
                .or_else(|| b.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            included: b.spec.included_namespaces.clone().unwrap_or_default(),
            excluded: b.spec.excluded_namespaces.clone().unwrap_or_default(),
            storage_location: b.spec.storage_location.clone(),
            schedule: b
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("velero.io/schedule-name").cloned()),
        })
    }
}

/// Whether a backup may hold the namespace, as far as its spec tells.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "camelCase")]
pub enum Containment {
    /// Excluded, or not matched by any include: it cannot hold the namespace.
    No(String),
    /// Named in `includedNamespaces`, or matched by `*` or a glob: only the backup's
    /// resource list can tell whether the namespace existed when the backup ran.
    Maybe(String),
}

/// Whether `name` matches a Velero namespace glob (`*`, `?`, `[abc]`, `[a-z]`, `[!a]`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, chars consumed including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None // unterminated class: treat '[' literally
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (
                n.first(),
                class(&p[1..], n.first().copied().unwrap_or('\0')),
            ) {
                (Some(_), Some((ok, used))) => ok && go(&p[1 + used..], &n[1..]),
                (None, Some(_)) => false,
                (_, None) => n.first() == Some(&'[') && go(&p[1..], &n[1..]),
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Decides from the spec alone whether a backup holds `namespace`.
pub fn containment(b: &BackupInfo, namespace: &str) -> Containment {
    if let Some(p) = b.excluded.iter().find(|p| glob_match(p, namespace)) {
        return Containment::No(format!("excluded by excludedNamespaces {p:?}"));
    }
    if b.included.is_empty() || b.included.iter().any(|p| p == "*") {
        return Containment::Maybe("includes every namespace (*)".into());
    }
    if b.included.iter().any(|p| p == namespace) {
        return Containment::Maybe("listed in includedNamespaces".into());
    }
    if let Some(p) = b
        .included
        .iter()
        .find(|p| is_glob(p) && glob_match(p, namespace))
    {
        return Containment::Maybe(format!("matches includedNamespaces pattern {p:?}"));
    }
    Containment::No(format!(
        "not in includedNamespaces [{}]",
        b.included.join(", ")
    ))
}

/// Whether the spec lets a backup hold `namespace`: [`containment`] is
/// [`Containment::Maybe`], decided without building the reason.
pub fn may_hold(b: &BackupInfo, namespace: &str) -> bool {
    !b.excluded.iter().any(|p| glob_match(p, namespace))
        && (b.included.is_empty()
            || b.included
                .iter()
                .any(|p| p == "*" || p == namespace || (is_glob(p) && glob_match(p, namespace))))
}

/// Whether a backup's phase allows restoring from it.
pub fn usability(b: &BackupInfo, allow_partially_failed: bool) -> Result<(), String> {
    match b.phase.as_str() {
        "Completed" => Ok(()),
        "PartiallyFailed" if allow_partially_failed => Ok(()),
        "PartiallyFailed" => {
            Err("PartiallyFailed (use --allow-partially-failed to consider it)".into())
        }
        "" => Err("has no phase yet".into()),
        other => Err(other.to_owned()),
    }
}

/// One backup considered, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The backup.
    pub backup: BackupInfo,
    /// `Ok` when its phase allows a restore, else why not.
    pub usable: Result<(), String>,
    /// What its spec says about the namespace.
    pub containment: Containment,
    /// What its resource list said, when it was downloaded.
    pub confirmed: Option<bool>,
}

impl Candidate {
    /// One-line verdict for `--list-backups`.
    pub fn verdict(&self) -> String {
        if let Err(why) = &self.usable {
            return format!("not usable: {why}");
        }
        match (&self.containment, self.confirmed) {
            (Containment::Maybe(r), Some(true)) => {
                format!("holds the namespace (confirmed by its resource list; {r})")
            }
            (Containment::Maybe(r), Some(false)) => {
                format!("does not hold the namespace (its resource list lacks it, although {r})")
            }
            (Containment::No(r), _) => format!("does not hold the namespace ({r})"),
            (Containment::Maybe(r), None) => {
                format!("not checked ({r}; resource list not read: a newer backup was chosen)")
            }
        }
    }
}

/// Newest first; ties broken by name so the order is stable (the order candidates have).
pub fn sort_newest_first(backups: &mut [BackupInfo]) {
    backups.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.name.cmp(&a.name)));
}

/// Orders the backups of `source` newest first and gives each its static verdict.
/// For a named backup the list holds just that backup.
pub fn plan_candidates(
    backups: Vec<BackupInfo>,
    source: &BackupSource,
    namespace: &str,
    allow_partially_failed: bool,
) -> Vec<Candidate> {
    let mut backups: Vec<BackupInfo> = backups
        .into_iter()
        .filter(|b| match source {
            BackupSource::Named(n) => &b.name == n,
            BackupSource::Schedule(s) => b.schedule.as_deref() == Some(s.as_str()),
            BackupSource::Newest => true,
        })
        .collect();
    sort_newest_first(&mut backups);
    backups
        .into_iter()
        .map(|b| Candidate {
            usable: usability(&b, allow_partially_failed),
            containment: containment(&b, namespace),
            confirmed: None,
            backup: b,
        })
        .collect()
}

/// Whether a Velero resource list (`{"v1/Namespace": [..], "apps/v1/Deployment": ["ns/name"]}`)
/// holds the namespace or anything in it.
pub fn resource_list_contains(list: &BTreeMap<String, Vec<String>>, namespace: &str) -> bool {
    let prefix = format!("{namespace}/");
    list.get("v1/Namespace")
        .is_some_and(|names| names.iter().any(|n| n == namespace))
        || list
            .values()
            .flatten()
            .any(|item| item.starts_with(&prefix))
}

/// The outcome of choosing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    /// Index into the candidates of the chosen backup, if any.
    pub chosen: Option<usize>,
    /// Why it was chosen.
    pub reason: Option<String>,
    /// Every backup considered, newest first, with verdicts filled in as far as they were read.
    pub candidates: Vec<Candidate>,
    /// How many resource lists were downloaded.
    pub downloads: usize,
}

impl Choice {
    /// The chosen candidate.
    pub fn chosen(&self) -> Option<&Candidate> {
        self.chosen.map(|i| &self.candidates[i])
    }
}

/// Walks the candidates newest first and stops at the first usable backup whose resource
/// list holds the namespace; a list is downloaded only for backups the spec does not rule
/// out, at most once per backup (the candidates are distinct backups).
pub async fn choose<E>(
    mut candidates: Vec<Candidate>,
    namespace: &str,
    mut resource_list: impl AsyncFnMut(&str) -> Result<BTreeMap<String, Vec<String>>, E>,
) -> Result<Choice, E> {
    let mut downloads = 0;
    for i in 0..candidates.len() {
        let c = &mut candidates[i];
        if c.usable.is_err() {
            continue;
        }
        let reason = match &c.containment {
            Containment::No(_) => continue,
            Containment::Maybe(r) => {
                let list = resource_list(&c.backup.name).await?;
                downloads += 1;
                let hit = resource_list_contains(&list, namespace);
                c.confirmed = Some(hit);
                if !hit {
                    continue;
                }
                format!("{r}, and its resource list holds {namespace}")
            }
        };
        let reason = format!(
            "newest usable backup ({}) holding {namespace}: {reason}",
            c.backup.phase
        );
        return Ok(Choice {
            chosen: Some(i),
            reason: Some(reason),
            candidates,
            downloads,
        });
    }
    Ok(Choice {
        chosen: None,
        reason: None,
        candidates,
        downloads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(name: &str, phase: &str, minute: i64, included: &[&str]) -> BackupInfo {
        BackupInfo {
            name: name.into(),
            phase: phase.into(),
            started: Some(jiff::Timestamp::from_second(1_790_000_000 + minute * 60).unwrap()),
            included: included.iter().map(|s| s.to_string()).collect(),
            excluded: vec![],
            storage_location: Some("default".into()),
            schedule: None,
        }
    }

    #[test]
    fn may_hold_agrees_with_containment() {
        let mut b = backup("b", "Completed", 0, &[]);
        for (included, excluded) in [
            (vec![], vec![]),
            (vec!["*"], vec![]),
            (vec!["*"], vec!["team-*"]),
            (vec!["team-a", "other"], vec![]),
            (vec!["team-?"], vec![]),
            (vec!["team-[ab]"], vec!["team-b"]),
            (vec!["other"], vec![]),
        ] {
            b.included = included.iter().map(|s| s.to_string()).collect();
            b.excluded = excluded.iter().map(|s| s.to_string()).collect();
            for ns in ["team-a", "team-b", "team-cc", "other", "x"] {
                let maybe = matches!(containment(&b, ns), Containment::Maybe(_));
                assert_eq!(may_hold(&b, ns), maybe, "{ns} in {b:?}");
            }
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match(
            "astronomer-*",
            "astronomer-weightless-meteor-5042"
        ));
        assert!(!glob_match("astronomer-*", "velero"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("[abc]-x", "b-x"));
        assert!(!glob_match("[abc]-x", "d-x"));
        assert!(glob_match("ns-[0-9]", "ns-7"));
        assert!(glob_match("ns-[!0-9]", "ns-a"));
        assert!(!glob_match("ns-[!0-9]", "ns-1"));
        assert!(glob_match("a[", "a["));
        assert!(glob_match("data-*-prod", "data-team-prod"));
    }

    proptest::proptest! {
        #[test]
        fn literal_patterns_match_only_themselves(a in "[a-z0-9-]{1,20}", b in "[a-z0-9-]{1,20}") {
            proptest::prop_assert!(glob_match(&a, &a));
            proptest::prop_assert_eq!(glob_match(&a, &b), a == b);
        }

        #[test]
        fn star_suffix_is_prefix_match(a in "[a-z-]{0,10}", b in "[a-z0-9-]{0,20}") {
            proptest::prop_assert_eq!(glob_match(&format!("{a}*"), &b), b.starts_with(&a));
        }

        #[test]
        fn glob_never_panics(p in ".{0,12}", n in ".{0,12}") {
            let _ = glob_match(&p, &n);
        }
    }

    #[test]
    fn containment_rules() {
        let ns = "astronomer-celestial-zenith-1234";
        let mut b = backup("b", "Completed", 0, &[ns]);
        // Named is not proof: only the resource list can say it holds the namespace.
        assert!(matches!(containment(&b, ns), Containment::Maybe(_)));
        b.included = vec!["astronomer".into()];
        assert!(matches!(containment(&b, ns), Containment::No(_)));
        b.included = vec![];
        assert!(matches!(containment(&b, ns), Containment::Maybe(_)));
        b.included = vec!["astronomer-*".into()];
        assert!(matches!(containment(&b, ns), Containment::Maybe(_)));
        b.excluded = vec!["astronomer-c*".into()];
        assert!(matches!(containment(&b, ns), Containment::No(_)));
    }

    #[test]
    fn usable_phases() {
        let b = backup("b", "PartiallyFailed", 0, &[]);
        assert!(usability(&b, false).is_err());
        assert!(usability(&b, true).is_ok());
        assert!(usability(&backup("b", "Failed", 0, &[]), true).is_err());
        assert!(usability(&backup("b", "InProgress", 0, &[]), true).is_err());
    }

    #[test]
    fn from_json_reads_the_fields() {
        let v = serde_json::json!({
            "metadata": {"name": "daily-20260901010000", "labels": {"velero.io/schedule-name": "daily"},
                         "creationTimestamp": "2026-09-01T01:00:00Z"},
            "spec": {"includedNamespaces": ["*"], "excludedNamespaces": ["kube-system"], "storageLocation": "default"},
            "status": {"phase": "Completed", "startTimestamp": "2026-09-01T01:00:01Z"}
        });
        let b = BackupInfo::of(&serde_json::from_value(v).unwrap()).unwrap();
        assert_eq!(b.schedule.as_deref(), Some("daily"));
        assert_eq!(b.started.unwrap().to_string(), "2026-09-01T01:00:01Z");
        assert_eq!(b.excluded, ["kube-system"]);
    }

    fn list(namespaces: &[&str]) -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(
            "v1/Namespace".to_string(),
            namespaces.iter().map(|s| s.to_string()).collect(),
        )])
    }

    #[tokio::test]
    async fn newest_usable_holding_namespace_wins_with_one_download_per_maybe() {
        let ns = "astronomer-celestial-zenith-1234";
        let backups = vec![
            backup("old-explicit", "Completed", 1, &[ns]),
            backup("all-without", "Completed", 5, &["*"]),
            backup("failed", "Failed", 6, &[ns]),
            backup("other", "Completed", 7, &["astronomer"]),
            backup("all-with", "Completed", 4, &["*"]),
            backup("pf", "PartiallyFailed", 8, &[ns]),
        ];
        let candidates = plan_candidates(backups, &BackupSource::Newest, ns, false);
        let names: Vec<_> = candidates.iter().map(|c| c.backup.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "pf",
                "other",
                "failed",
                "all-without",
                "all-with",
                "old-explicit"
            ]
        );
        let mut asked = Vec::new();
        let choice = choose(candidates, ns, async |name: &str| {
            asked.push(name.to_owned());
            Ok::<_, ()>(if name == "all-with" {
                list(&["astronomer", ns])
            } else {
                list(&["astronomer"])
            })
        })
        .await
        .unwrap();
        assert_eq!(asked, ["all-without", "all-with"]);
        assert_eq!(choice.downloads, 2);
        assert_eq!(
            choice.candidates[5].confirmed, None,
            "older ones are not read"
        );
        assert_eq!(choice.chosen().unwrap().backup.name, "all-with");
        assert_eq!(choice.candidates[3].confirmed, Some(false));
        assert!(choice.reason.unwrap().contains("resource list"));
    }

    #[tokio::test]
    async fn schedule_filter_and_partially_failed_opt_in() {
        let ns = "ns1";
        let mut a = backup("daily-1", "PartiallyFailed", 10, &["ns1"]);
        a.schedule = Some("daily".into());
        let mut b = backup("daily-0", "Completed", 5, &["ns1"]);
        b.schedule = Some("daily".into());
        let c = backup("manual", "Completed", 20, &["ns1"]);
        let all = vec![a, b, c];
        let pick = async |allow| {
            let cands = plan_candidates(
                all.clone(),
                &BackupSource::Schedule("daily".into()),
                ns,
                allow,
            );
            choose(cands, ns, async |_: &str| Ok::<_, ()>(list(&["ns1"])))
                .await
                .unwrap()
                .chosen()
                .map(|c| c.backup.name.clone())
        };
        assert_eq!(pick(false).await.as_deref(), Some("daily-0"));
        assert_eq!(pick(true).await.as_deref(), Some("daily-1"));
    }

    #[tokio::test]
    async fn a_schedule_that_still_names_a_deleted_namespace_is_not_proof() {
        let ns = "astronomer-celestial-zenith-1234";
        // Every backup names the namespace; only the oldest ran while it existed.
        let backups = vec![
            backup("after-2", "Completed", 30, &["astronomer", ns]),
            backup("after-1", "Completed", 20, &["astronomer", ns]),
            backup("before", "Completed", 10, &["astronomer", ns]),
            backup("older", "Completed", 5, &["astronomer", ns]),
        ];
        let candidates = plan_candidates(backups, &BackupSource::Newest, ns, false);
        let mut asked = Vec::new();
        let choice = choose(candidates, ns, async |name: &str| {
            asked.push(name.to_owned());
            Ok::<_, ()>(if name.starts_with("after") {
                list(&["astronomer"])
            } else {
                list(&["astronomer", ns])
            })
        })
        .await
        .unwrap();
        assert_eq!(choice.chosen().unwrap().backup.name, "before");
        assert_eq!(asked, ["after-2", "after-1", "before"]);
        assert_eq!(choice.candidates[0].confirmed, Some(false));
        assert!(choice.candidates[0].verdict().contains("lacks it"));
        assert!(choice.candidates[3].verdict().contains("not checked"));

        // Named with --from-backup: the same proof is asked for.
        let named = plan_candidates(
            vec![backup("after-1", "Completed", 20, &[ns])],
            &BackupSource::Named("after-1".into()),
            ns,
            false,
        );
        let choice = choose(named, ns, async |_: &str| {
            Ok::<_, ()>(list(&["astronomer"]))
        })
        .await
        .unwrap();
        assert!(choice.chosen().is_none());
        assert_eq!(choice.candidates[0].confirmed, Some(false));
    }

    #[test]
    fn resource_list_items_count_too() {
        let l = BTreeMap::from([(
            "apps/v1/Deployment".to_string(),
            vec!["ns1/web".to_string()],
        )]);
        assert!(resource_list_contains(&l, "ns1"));
        assert!(!resource_list_contains(&l, "ns"));
    }
}
