//! Which Helm release is the platform: `--platform-release`, else the release of chart
//! `astronomer` found among the Helm records of the platform namespace.

use kube::Client;
use kube::api::ListParams;

use super::*;

/// Where the platform release name came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum ReleaseOrigin {
    /// `--platform-release`.
    Flag,
    /// A Helm release secret of chart `astronomer`.
    Detected {
        /// The Helm release secret it was read from.
        secret: String,
    },
    /// Nothing found; the default `astronomer`.
    Default {
        /// Why detection did not give a name.
        reason: String,
    },
}

/// The platform's Helm release name and how we know it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlatformRelease {
    /// The release name (e.g. `astronomer`).
    pub name: String,
    /// How it was found.
    pub origin: ReleaseOrigin,
}

impl PlatformRelease {
    /// The name with `-` replaced by `_`, as in database names.
    pub fn underscored(&self) -> String {
        self.name.replace('-', "_")
    }
    /// `<release>-houston-backend`.
    pub fn houston_secret(&self) -> String {
        format!("{}-houston-backend", self.name)
    }
    /// `<release>-grafana-backend`.
    pub fn grafana_secret(&self) -> String {
        format!("{}-grafana-backend", self.name)
    }
    /// `<release_underscored>_houston`.
    pub fn houston_database(&self) -> String {
        format!("{}_houston", self.underscored())
    }
}

/// One Helm release secret, as far as detection cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmRecord {
    /// The secret's name (`sh.helm.release.v1.<release>.v<N>`).
    pub secret: String,
    /// The release name (label `name`, else from the secret name).
    pub release: String,
    /// Revision (label `version`, else from the secret name).
    pub version: u64,
    /// Label `status` (`deployed`, `superseded`, …).
    pub status: Option<String>,
    /// `chart.metadata.name` when the payload could be decoded.
    pub chart: Option<String>,
}

/// Reads the parts of a Helm release secret that detection needs.
pub fn helm_record(secret: &RawSecret) -> Option<HelmRecord> {
    let rest = secret
        .name
        .strip_prefix(crate::helm::RELEASE_SECRET_PREFIX)?;
    let (name_from_secret, version_from_secret) = rest.rsplit_once(".v")?;
    let release = secret
        .labels
        .get("name")
        .cloned()
        .unwrap_or_else(|| name_from_secret.to_owned());
    let version = secret
        .labels
        .get("version")
        .and_then(|v| v.parse().ok())
        .or_else(|| version_from_secret.parse().ok())
        .unwrap_or(0);
    let chart = secret
        .bytes("release")
        .ok()
        .and_then(|b| crate::helm::decode_release(&b))
        .and_then(|release| crate::helm::chart_name(&release));
    Some(HelmRecord {
        secret: secret.name.clone(),
        release,
        version,
        status: secret.labels.get("status").cloned(),
        chart,
    })
}

/// Picks the platform release among Helm records: the releases of chart `astronomer`;
/// when no payload could be decoded, the only release present (labels alone cannot tell
/// the chart, so two unknown releases fall back to the default).
pub fn choose_platform_release(
    namespace: &str,
    records: &[HelmRecord],
) -> Result<PlatformRelease, PlatformError> {
    let newest = |release: &str| {
        records
            .iter()
            .filter(|r| r.release == release)
            .max_by_key(|r| (r.status.as_deref() == Some("deployed"), r.version))
            .map(|r| r.secret.clone())
            .unwrap_or_default()
    };
    let mut astronomer: Vec<&str> = records
        .iter()
        .filter(|r| r.chart.as_deref() == Some(PLATFORM_CHART))
        .map(|r| r.release.as_str())
        .collect();
    astronomer.sort_unstable();
    astronomer.dedup();
    match astronomer.as_slice() {
        [one] => {
            return Ok(PlatformRelease {
                name: (*one).to_owned(),
                origin: ReleaseOrigin::Detected {
                    secret: newest(one),
                },
            });
        }
        [] => {}
        many => {
            return Err(PlatformError::AmbiguousRelease {
                namespace: namespace.to_owned(),
                releases: many.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
    }
    let mut undecoded: Vec<&str> = records
        .iter()
        .filter(|r| r.chart.is_none())
        .map(|r| r.release.as_str())
        .collect();
    undecoded.sort_unstable();
    undecoded.dedup();
    let reason = match undecoded.as_slice() {
        [one] if records.iter().all(|r| r.chart.is_none()) => {
            return Ok(PlatformRelease {
                name: (*one).to_owned(),
                origin: ReleaseOrigin::Detected {
                    secret: newest(one),
                },
            });
        }
        _ if records.is_empty() => {
            format!("no Helm release secrets (label owner=helm) in namespace {namespace}")
        }
        _ => format!("no Helm release of chart astronomer in namespace {namespace}"),
    };
    Ok(PlatformRelease {
        name: DEFAULT_PLATFORM_RELEASE.to_owned(),
        origin: ReleaseOrigin::Default { reason },
    })
}

/// The platform release: `--platform-release` if given, else detected from the Helm
/// release secrets in the platform namespace, else `astronomer` (with the reason).
pub async fn collect_platform_release(
    client: &Client,
    namespace: &str,
    given: Option<&str>,
) -> Result<PlatformRelease, PlatformError> {
    if let Some(name) = given {
        return Ok(PlatformRelease {
            name: name.to_owned(),
            origin: ReleaseOrigin::Flag,
        });
    }
    let api = secrets_api(client, namespace);
    let list = match api.list(&ListParams::default().labels("owner=helm")).await {
        Ok(list) => list,
        Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403) => {
            return Ok(PlatformRelease {
                name: DEFAULT_PLATFORM_RELEASE.to_owned(),
                origin: ReleaseOrigin::Default {
                    reason: format!(
                        "not allowed to list Helm release secrets in namespace {namespace} (HTTP {}); pass --platform-release to be sure",
                        status.code
                    ),
                },
            });
        }
        Err(e) => {
            return Err(api_error(
                format!("list Helm release secrets in namespace {namespace}"),
                e,
            ));
        }
    };
    let records: Vec<HelmRecord> = list
        .items
        .iter()
        .filter_map(|obj| {
            let mut value = obj.data.clone();
            value["metadata"] = serde_json::to_value(&obj.metadata).ok()?;
            helm_record(&RawSecret::from_json(namespace, &value))
        })
        .collect();
    choose_platform_release(namespace, &records)
}
