//! Pointing the GCP Cloud SQL proxy (`pg-sqlproxy-gcloud-sqlproxy`) at another instance:
//! rewrite the connection names inside its `-instances=` flag, keeping `=tcp:…` and commas.

use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;

/// Name of the proxy Deployment (and Service) of the rimusz/gcloud-sqlproxy chart
/// as Astronomer's terraform installs it (Helm release `pg-sqlproxy`).
pub const SQLPROXY_DEPLOYMENT: &str = "pg-sqlproxy-gcloud-sqlproxy";

/// A Cloud SQL connection name, `PROJECT:REGION:INSTANCE`
/// (legacy domain-scoped projects add one more `DOMAIN:` in front).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceName(String);

impl InstanceName {
    /// Validates a connection name.
    pub fn parse(input: &str) -> Result<Self, SqlProxyError> {
        let parts: Vec<&str> = input.split(':').collect();
        let ok = (3..=4).contains(&parts.len())
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        if ok {
            Ok(InstanceName(input.to_owned()))
        } else {
            Err(SqlProxyError::BadInstanceName {
                input: input.to_owned(),
            })
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong planning a proxy rewrite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlProxyError {
    /// `--sqlproxy-instance`/`--from-instance` is not `PROJECT:REGION:INSTANCE`.
    #[error("{input:?} is not a Cloud SQL connection name (PROJECT:REGION:INSTANCE)")]
    BadInstanceName {
        /// The rejected input.
        input: String,
    },
    /// No container has an `-instances=` element.
    #[error(
        "deployment {deployment} has no -instances=/--instances= element in any container's command or args"
    )]
    NoInstancesFlag {
        /// namespace/name of the Deployment.
        deployment: String,
    },
    /// A Cloud SQL Auth Proxy v2 takes instances as positional arguments; not rewritten.
    #[error(
        "deployment {deployment} runs the Cloud SQL Auth Proxy v2 (container {container}, instances as positional arguments), which this command does not rewrite"
    )]
    V2Proxy {
        /// namespace/name of the Deployment.
        deployment: String,
        /// The container running the v2 proxy.
        container: String,
    },
    /// Several instances in the flag and no `--from-instance` to say which one moves.
    #[error("the -instances flag of {deployment} names several instances ({}); say which one moves", instances.join(", "))]
    Ambiguous {
        /// namespace/name of the Deployment.
        deployment: String,
        /// The connection names found.
        instances: Vec<String>,
    },
    /// `--from-instance` is not in the flag, and neither is the target.
    #[error("the -instances flag of {deployment} does not name {from} (it names {})", instances.join(", "))]
    FromNotFound {
        /// namespace/name of the Deployment.
        deployment: String,
        /// The instance asked for.
        from: String,
        /// The connection names found.
        instances: Vec<String>,
    },
}

/// Whether a command/args element is the v1 proxy's instances flag.
pub fn instances_flag_value(element: &str) -> Option<(&str, &str)> {
    ["--instances=", "-instances="]
        .into_iter()
        .find_map(|prefix| element.strip_prefix(prefix).map(|rest| (prefix, rest)))
}

/// The connection name of one `-instances` entry (the part before `=`, e.g. before `=tcp:`).
fn entry_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

/// The connection names listed by an `-instances=` element, in order.
pub fn instance_names(element: &str) -> Vec<String> {
    instances_flag_value(element)
        .map(|(_, list)| {
            list.split(',')
                .filter(|e| !e.is_empty())
                .map(|e| entry_name(e).to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Outcome of rewriting one `-instances=` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementRewrite {
    /// The new element.
    Changed(String),
    /// The element already names the target and not the source.
    AlreadyMoved,
}

/// Rewrites one `-instances=`/`--instances=` element.
///
/// Which entry moves: with `from`, every entry whose connection name is `from`;
/// without it, the only instance named (several distinct names are ambiguous).
/// Each entry keeps its `=tcp:…` suffix; empty entries (the trailing comma) stay.
pub fn rewrite_instances_element(
    deployment: &str,
    element: &str,
    from: Option<&InstanceName>,
    to: &InstanceName,
) -> Result<ElementRewrite, SqlProxyError> {
    let Some((prefix, list)) = instances_flag_value(element) else {
        return Err(SqlProxyError::NoInstancesFlag {
            deployment: deployment.to_owned(),
        });
    };
    let names = instance_names(element);
    let mut distinct = names.clone();
    distinct.sort();
    distinct.dedup();
    let names_to = names.iter().any(|n| n == to.as_str());
    let source: String = match from {
        Some(from) if names.iter().any(|n| n == from.as_str()) => from.as_str().to_owned(),
        Some(_) if names_to => return Ok(ElementRewrite::AlreadyMoved),
        Some(from) => {
            return Err(SqlProxyError::FromNotFound {
                deployment: deployment.to_owned(),
                from: from.to_string(),
                instances: names,
            });
        }
        None if distinct.len() == 1 && names_to => return Ok(ElementRewrite::AlreadyMoved),
        None if distinct.len() == 1 => distinct.remove(0),
        None if distinct.is_empty() => {
            return Err(SqlProxyError::NoInstancesFlag {
                deployment: deployment.to_owned(),
            });
        }
        None => {
            return Err(SqlProxyError::Ambiguous {
                deployment: deployment.to_owned(),
                instances: names,
            });
        }
    };
    let entries: Vec<String> = list
        .split(',')
        .map(|entry| {
            if !entry.is_empty() && entry_name(entry) == source {
                format!("{}{}", to.as_str(), &entry[source.len()..])
            } else {
                entry.to_owned()
            }
        })
        .collect();
    Ok(ElementRewrite::Changed(format!(
        "{prefix}{}",
        entries.join(",")
    )))
}

/// Which list of a container the element sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// `command`.
    Command,
    /// `args`.
    Args,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Command => "command",
            Field::Args => "args",
        })
    }
}

/// One element of one container to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementChange {
    /// Index of the container in `spec.template.spec.containers`.
    pub container_index: usize,
    /// Container name.
    pub container: String,
    /// `command` or `args`.
    pub field: Field,
    /// Index in that list.
    pub index: usize,
    /// The element now.
    pub old: String,
    /// The element after the move.
    pub new: String,
}

/// Plans the rewrite of every `-instances=` element of every container.
/// An empty result means the Deployment already points at `to`.
pub fn plan_sqlproxy(
    deployment: &Deployment,
    from: Option<&InstanceName>,
    to: &InstanceName,
) -> Result<Vec<ElementChange>, SqlProxyError> {
    let id = format!(
        "{}/{}",
        deployment.metadata.namespace.as_deref().unwrap_or_default(),
        deployment.metadata.name.as_deref().unwrap_or_default()
    );
    let containers = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut changes = Vec::new();
    let mut found = false;
    for (ci, container) in containers.iter().enumerate() {
        for (field, list) in [
            (Field::Command, container.command.as_deref()),
            (Field::Args, container.args.as_deref()),
        ] {
            for (index, element) in list.unwrap_or_default().iter().enumerate() {
                if instances_flag_value(element).is_none() {
                    continue;
                }
                found = true;
                if let ElementRewrite::Changed(new) =
                    rewrite_instances_element(&id, element, from, to)?
                {
                    changes.push(ElementChange {
                        container_index: ci,
                        container: container.name.clone(),
                        field,
                        index,
                        old: element.clone(),
                        new,
                    });
                }
            }
        }
    }
    if found {
        return Ok(changes);
    }
    let v2 = containers.iter().find(|c| {
        let mentions = |s: &str| s.contains("cloud-sql-proxy");
        c.image.as_deref().is_some_and(mentions)
            || c.command.iter().flatten().any(|s| mentions(s))
            || c.args.iter().flatten().any(|s| mentions(s))
    });
    Err(match v2 {
        Some(c) => SqlProxyError::V2Proxy {
            deployment: id,
            container: c.name.clone(),
        },
        None => SqlProxyError::NoInstancesFlag { deployment: id },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> InstanceName {
        InstanceName::parse(s).unwrap()
    }

    fn deployment(command: &[&str], args: &[&str], image: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": SQLPROXY_DEPLOYMENT, "namespace": "astronomer"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{
                "name": "sqlproxy", "image": image,
                "command": command, "args": args,
            }]}}}
        }))
        .unwrap()
    }

    const IMAGE: &str = "gcr.io/cloudsql-docker/gce-proxy:1.16";
    const FIXTURE_COMMAND: [&str; 4] = [
        "/cloud_sql_proxy",
        "--dir=/cloudsql",
        "-instances=acme-data-prod:us-east1:astro-pg-01=tcp:0.0.0.0:5432,",
        "-credential_file=/secrets/cloudsql/credentials.json",
    ];

    #[test]
    fn fixture_command_trailing_comma() {
        let d = deployment(&FIXTURE_COMMAND, &[], IMAGE);
        let changes =
            plan_sqlproxy(&d, None, &name("acme-data-prod:us-east1:astro-pg-02")).unwrap();
        assert_eq!(
            changes,
            vec![ElementChange {
                container_index: 0,
                container: "sqlproxy".into(),
                field: Field::Command,
                index: 2,
                old: FIXTURE_COMMAND[2].into(),
                new: "-instances=acme-data-prod:us-east1:astro-pg-02=tcp:0.0.0.0:5432,".into(),
            }]
        );
    }

    #[test]
    fn legacy_single_instance_without_comma() {
        let to = name("acme-data-prod:us-east1:astro-pg-02");
        assert_eq!(
            rewrite_instances_element(
                "d",
                "-instances=acme-data-prod:us-east1:astro-pg-01=tcp:0.0.0.0:5432",
                None,
                &to
            )
            .unwrap(),
            ElementRewrite::Changed(
                "-instances=acme-data-prod:us-east1:astro-pg-02=tcp:0.0.0.0:5432".into()
            )
        );
    }

    #[test]
    fn flag_in_args() {
        let d = deployment(
            &["/cloud_sql_proxy"],
            &[
                "--dir=/cloudsql",
                "--instances=acme-data-prod:us-east1:astro-pg-01=tcp:0.0.0.0:5432,",
            ],
            IMAGE,
        );
        let changes =
            plan_sqlproxy(&d, None, &name("acme-data-prod:us-east1:astro-pg-02")).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, Field::Args);
        assert_eq!(changes[0].index, 1);
        assert_eq!(
            changes[0].new,
            "--instances=acme-data-prod:us-east1:astro-pg-02=tcp:0.0.0.0:5432,"
        );
    }

    #[test]
    fn two_instances_need_from() {
        let element = "-instances=acme-data-prod:us-east1:astro-pg-01=tcp:0.0.0.0:5432,acme-data-prod:us-east1:other-db=tcp:0.0.0.0:5433,";
        let to = name("acme-data-prod:us-east1:astro-pg-02");
        assert!(matches!(
            rewrite_instances_element("d", element, None, &to),
            Err(SqlProxyError::Ambiguous { .. })
        ));
        let from = name("acme-data-prod:us-east1:astro-pg-01");
        assert_eq!(
            rewrite_instances_element("d", element, Some(&from), &to).unwrap(),
            ElementRewrite::Changed("-instances=acme-data-prod:us-east1:astro-pg-02=tcp:0.0.0.0:5432,acme-data-prod:us-east1:other-db=tcp:0.0.0.0:5433,".into())
        );
        let moved = "-instances=acme-data-prod:us-east1:astro-pg-02=tcp:0.0.0.0:5432,acme-data-prod:us-east1:other-db=tcp:0.0.0.0:5433,";
        assert_eq!(
            rewrite_instances_element("d", moved, Some(&from), &to).unwrap(),
            ElementRewrite::AlreadyMoved
        );
        let missing = name("acme-data-prod:us-east1:nope");
        assert!(matches!(
            rewrite_instances_element("d", element, Some(&missing), &to),
            Err(SqlProxyError::FromNotFound { .. })
        ));
    }

    #[test]
    fn rerun_is_already_moved() {
        let to = name("acme-data-prod:us-east1:astro-pg-02");
        let mut command = FIXTURE_COMMAND;
        command[2] = "-instances=acme-data-prod:us-east1:astro-pg-02=tcp:0.0.0.0:5432,";
        let d = deployment(&command, &[], IMAGE);
        assert!(plan_sqlproxy(&d, None, &to).unwrap().is_empty());
    }

    #[test]
    fn v2_proxy_is_detected_not_rewritten() {
        let d = deployment(
            &["/cloud-sql-proxy"],
            &["acme-data-prod:us-east1:astro-pg-01?port=5432&address=0.0.0.0"],
            "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0",
        );
        assert!(matches!(
            plan_sqlproxy(&d, None, &name("a:b:c")),
            Err(SqlProxyError::V2Proxy { .. })
        ));
        let plain = deployment(&["/bin/sleep"], &[], "busybox");
        assert!(matches!(
            plan_sqlproxy(&plain, None, &name("a:b:c")),
            Err(SqlProxyError::NoInstancesFlag { .. })
        ));
    }

    #[test]
    fn instance_names_are_validated() {
        for ok in [
            "a:b:c",
            "acme-data-prod:us-east1:astro-pg-02",
            "example.com:p:r:i",
        ] {
            assert!(InstanceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a:b", "a::c", "a:b:c=tcp:5432", "a:b:c,", "a b:c:d"] {
            assert!(InstanceName::parse(bad).is_err(), "{bad}");
        }
    }
}
