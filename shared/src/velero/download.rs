//! Fetching Velero files (results, logs, resource lists) the way `velero describe` does:
//! a DownloadRequest, a watch until `status.downloadURL` is set, an HTTP GET, gunzip.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};

use super::{
    DownloadRequest, DownloadRequestSpec, DownloadRequestTarget, DownloadRequestTargetKind,
};
use crate::client::KubeError;
use crate::clientpod::{MANAGED_BY, first_in_process};

/// How long Velero gets to sign a URL (the CLI waits 30 s too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a Velero file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Creating, watching or deleting the DownloadRequest failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// Ctrl-C while fetching (the DownloadRequest was deleted).
    #[error("interrupted while downloading {kind} of {name}; the download request was deleted")]
    Interrupted {
        /// Target kind.
        kind: String,
        /// Backup or restore name.
        name: String,
    },
    /// Velero did not sign a URL in time (is the Velero server running?).
    #[error("Velero did not answer download request for {kind} of {name} within {secs}s")]
    Timeout {
        /// Target kind (e.g. `BackupResults`).
        kind: String,
        /// Backup or restore name.
        name: String,
        /// Seconds waited.
        secs: u64,
    },
    /// The object store answered with an error status.
    #[error("downloading {kind} of {name} from {host} failed: HTTP {status}")]
    Http {
        /// Target kind.
        kind: String,
        /// Backup or restore name.
        name: String,
        /// Host of the pre-signed URL (the full URL carries a signature; not printed).
        host: String,
        /// HTTP status code.
        status: u16,
    },
    /// The URL could not be fetched at all.
    #[error("downloading {kind} of {name} from {host} failed: {reason}")]
    Transport {
        /// Target kind.
        kind: String,
        /// Backup or restore name.
        name: String,
        /// Host of the pre-signed URL.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The file was not gzip or not the expected JSON.
    #[error("the {kind} file of {name} is not readable: {reason}")]
    Decode {
        /// Target kind.
        kind: String,
        /// Backup or restore name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// Downloads one Velero file for `name` (a backup or restore) and returns its content,
/// gunzipped (every kind except `BackupContents` is stored gzip-compressed).
/// The DownloadRequest is deleted afterwards, also on error.
pub async fn download(
    client: &Client,
    velero_namespace: &str,
    kind: DownloadRequestTargetKind,
    name: &str,
    timeout: Duration,
) -> Result<Vec<u8>, DownloadError> {
    let api: Api<DownloadRequest> = Api::namespaced(client.clone(), velero_namespace);
    let mut request = DownloadRequest::new(
        "",
        velero_namespace,
        DownloadRequestSpec {
            target: DownloadRequestTarget {
                kind: kind.clone(),
                name: name.to_owned(),
            },
        },
    );
    // A name of our own rather than generateName: a create with a fixed name can be
    // repeated after a server error without leaving a second request (client::retry).
    request.metadata.name = Some(crate::clientpod::unique_name(
        truncate(name, 50).trim_end_matches(['-', '.']),
    ));
    // Ours by this label, so that a later run can remove what a killed one left.
    request.metadata.labels = Some(BTreeMap::from([(
        MANAGED_BY.0.to_owned(),
        MANAGED_BY.1.to_owned(),
    )]));
    remove_abandoned_once(&api).await;
    // From before the create: Ctrl-C while it is in flight, or while fetching, still
    // deletes the request (the runner waits for this part).
    let _handled = crate::interrupt::handled_here();
    let created = api
        .create(&PostParams::default(), &request)
        .await
        .map_err(|e| {
            KubeError::api(
                format!(
                    "create a DownloadRequest for {kind} of {name} in namespace {velero_namespace}"
                ),
                e,
            )
        })?;
    let request_name = created.metadata.name.clone().unwrap_or_default();
    let result = tokio::select! {
        result = fetch(&api, &request_name, &kind, name, timeout) => result,
        () = crate::interrupt::ctrl_c() => Err(DownloadError::Interrupted {
            kind: kind.to_string(),
            name: name.to_owned(),
        }),
    };
    // Velero would expire it after 10 minutes; do not leave it behind.
    let _ = api.delete(&request_name, &DeleteParams::default()).await;
    result
}

/// How long Velero keeps a signed download URL valid (and the request with it).
pub const REQUEST_LIFETIME_SECONDS: i64 = 10 * 60;

/// Whether `request`, one of ours by its label, was left by a killed run at `now`:
/// created longer ago than a download URL lives. Never someone else's request.
pub fn abandoned(request: &DownloadRequest, now: jiff::Timestamp) -> bool {
    let ours = request
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1);
    ours && request
        .metadata
        .creation_timestamp
        .as_ref()
        .is_some_and(|t| now.duration_since(t.0).as_secs() > REQUEST_LIFETIME_SECONDS)
}

/// Deletes the DownloadRequests killed runs of this tool left (see [`abandoned`]), once
/// per namespace and process, best effort: Velero would expire them too, when it runs.
async fn remove_abandoned_once(api: &Api<DownloadRequest>) {
    let namespace = api.namespace().unwrap_or_default();
    if !first_in_process(&format!("downloadrequests/{namespace}")) {
        return;
    }
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else {
        return;
    };
    let now = jiff::Timestamp::now();
    for request in list.items.iter().filter(|r| abandoned(r, now)) {
        if let Some(name) = &request.metadata.name {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
}

async fn fetch(
    api: &Api<DownloadRequest>,
    request_name: &str,
    kind: &DownloadRequestTargetKind,
    name: &str,
    timeout: Duration,
) -> Result<Vec<u8>, DownloadError> {
    let signed = |o: Option<&DownloadRequest>| {
        o.and_then(|o| o.status.as_ref())
            .and_then(|s| s.download_url.as_deref())
            .is_some_and(|u| !u.is_empty())
    };
    let ready = tokio::time::timeout(timeout, await_condition(api.clone(), request_name, signed))
        .await
        .map_err(|_| DownloadError::Timeout {
            kind: kind.to_string(),
            name: name.to_owned(),
            secs: timeout.as_secs(),
        })?
        .map_err(|e| {
            KubeError::api(
                format!("watch DownloadRequest {request_name}"),
                kube::Error::Service(Box::new(e)),
            )
        })?;
    let url = ready
        .and_then(|o| o.status)
        .and_then(|s| s.download_url)
        .unwrap_or_default();
    let body = http_get(&url, kind, name).await?;
    if *kind == DownloadRequestTargetKind::BackupContents {
        return Ok(body);
    }
    gunzip(&body).map_err(|e| DownloadError::Decode {
        kind: kind.to_string(),
        name: name.to_owned(),
        reason: format!("not gzip: {e}"),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The host part of a URL, for messages (never the signed query).
fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or("?")
        .to_owned()
}

/// The TLS configuration with the system's root certificates, read once per process:
/// loading and parsing the certificate store costs far more than a download.
fn native_roots_config() -> Result<rustls::ClientConfig, String> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use hyper_rustls::ConfigBuilderExt as _;
            rustls::ClientConfig::builder()
                .with_native_roots()
                .map(|b| b.with_no_client_auth())
                .map_err(|e| e.to_string())
        })
        .clone()
}

async fn http_get(
    url: &str,
    kind: &DownloadRequestTargetKind,
    name: &str,
) -> Result<Vec<u8>, DownloadError> {
    let transport = |reason: String| DownloadError::Transport {
        kind: kind.to_string(),
        name: name.to_owned(),
        host: host_of(url),
        reason,
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| transport(format!("invalid URL: {e}")))?;
    let tls =
        native_roots_config().map_err(|e| transport(format!("no TLS root certificates: {e}")))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(connector);
    let response = tokio::time::timeout(Duration::from_secs(120), client.get(uri))
        .await
        .map_err(|_| transport("no answer within 120s".into()))?
        .map_err(|e| transport(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DownloadError::Http {
            kind: kind.to_string(),
            name: name.to_owned(),
            host: host_of(url),
            status,
        });
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// Messages of one severity in a `BackupResults`/`RestoreResults` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ResultMessages {
    /// Messages about Velero itself.
    #[serde(default)]
    pub velero: Vec<String>,
    /// Messages about cluster-scoped resources.
    #[serde(default)]
    pub cluster: Vec<String>,
    /// Messages per namespace.
    #[serde(default)]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

impl ResultMessages {
    /// Every message, prefixed with where it applies (`velero: …`, `cluster: …`, `ns/x: …`).
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.velero.iter().map(|m| format!("velero: {m}")).collect();
        out.extend(self.cluster.iter().map(|m| format!("cluster: {m}")));
        for (ns, messages) in &self.namespaces {
            out.extend(messages.iter().map(|m| format!("namespace {ns}: {m}")));
        }
        out
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.velero.is_empty()
            && self.cluster.is_empty()
            && self.namespaces.values().all(Vec::is_empty)
    }
}

/// The content of a `BackupResults` or `RestoreResults` file: the only place Velero
/// records why something ended `PartiallyFailed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct OperationResults {
    /// Error messages.
    #[serde(default)]
    pub errors: ResultMessages,
    /// Warning messages.
    #[serde(default)]
    pub warnings: ResultMessages,
}

/// Parses a (gunzipped) results file.
pub fn parse_results(json: &[u8]) -> Result<OperationResults, serde_json::Error> {
    serde_json::from_slice(json)
}

/// Downloads and parses the results file of a backup (`BackupResults`) or restore
/// (`RestoreResults`).
pub async fn results(
    client: &Client,
    velero_namespace: &str,
    kind: DownloadRequestTargetKind,
    name: &str,
) -> Result<OperationResults, DownloadError> {
    let data = download(
        client,
        velero_namespace,
        kind.clone(),
        name,
        DEFAULT_TIMEOUT,
    )
    .await?;
    parse_results(&data).map_err(|e| DownloadError::Decode {
        kind: kind.to_string(),
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_requests_older_than_a_url_lives_count_as_abandoned() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let now = jiff::Timestamp::now();
        let request = |ours: bool, age: i64| {
            let mut r = DownloadRequest::new(
                "r",
                "velero",
                DownloadRequestSpec {
                    target: DownloadRequestTarget {
                        kind: DownloadRequestTargetKind::BackupResourceList,
                        name: "b".into(),
                    },
                },
            );
            r.metadata.creation_timestamp = Some(Time(now - jiff::SignedDuration::from_secs(age)));
            if ours {
                r.metadata.labels = Some(BTreeMap::from([(
                    MANAGED_BY.0.to_owned(),
                    MANAGED_BY.1.to_owned(),
                )]));
            }
            r
        };
        assert!(!abandoned(&request(true, 30), now));
        assert!(abandoned(
            &request(true, REQUEST_LIFETIME_SECONDS + 60),
            now
        ));
        assert!(
            !abandoned(&request(false, REQUEST_LIFETIME_SECONDS * 10), now),
            "the Velero CLI's"
        );
    }

    #[test]
    fn parses_results_file() {
        let json = br#"{"errors":{"namespaces":{"astronomer-x":["error backing up pod: boom"]}},"warnings":{"velero":["w1"],"cluster":["c1"]}}"#;
        let r = parse_results(json).unwrap();
        assert_eq!(
            r.errors.lines(),
            ["namespace astronomer-x: error backing up pod: boom"]
        );
        assert_eq!(r.warnings.lines(), ["velero: w1", "cluster: c1"]);
        assert!(!r.errors.is_empty());
        assert!(parse_results(b"{}").unwrap().errors.is_empty());
    }

    #[test]
    fn gunzips_and_hides_signature() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"{\"errors\":{}}").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz).unwrap(), b"{\"errors\":{}}");
        assert_eq!(
            host_of("https://bucket.s3.amazonaws.com/backups/b1/b1-results.gz?X-Amz-Signature=abc"),
            "bucket.s3.amazonaws.com"
        );
        assert_eq!(truncate("abcdef", 3), "abc");
    }
}
