//! Fetching files Velero keeps in object storage (a backup's resource list, a restore's
//! results) the way the Velero CLI does: a DownloadRequest, its pre-signed URL, one GET.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::await_condition;

use crate::restore::RestoreError;
use crate::velero::DownloadRequest;

/// How long Velero gets to sign a URL (the Velero CLI waits 30 s too).
const URL_TIMEOUT: Duration = Duration::from_secs(30);

/// The Velero CLI's results format: `{"warnings": R, "errors": R}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Results {
    /// Warnings by scope.
    #[serde(default)]
    pub warnings: ResultScopes,
    /// Errors by scope.
    #[serde(default)]
    pub errors: ResultScopes,
}

/// Messages grouped the way Velero groups them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ResultScopes {
    /// Velero's own messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub velero: Vec<String>,
    /// Cluster-scoped resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    /// Per namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

impl ResultScopes {
    /// Every message as "scope: message" lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.velero.iter().map(|m| format!("velero: {m}")).collect();
        out.extend(self.cluster.iter().map(|m| format!("cluster: {m}")));
        for (ns, msgs) in &self.namespaces {
            out.extend(msgs.iter().map(|m| format!("{ns}: {m}")));
        }
        out
    }
}

/// Creates a DownloadRequest for `kind` (`BackupResourceList`, `RestoreResults`…) of
/// `target`, waits for its URL, downloads and gunzips the file, and deletes the request.
pub async fn download(
    client: &kube::Client,
    velero_namespace: &str,
    kind: &str,
    target: &str,
) -> Result<Vec<u8>, RestoreError> {
    let fail = |reason: String| RestoreError::Download {
        what: kind.to_owned(),
        target: target.to_owned(),
        reason,
    };
    let api: Api<DownloadRequest> = Api::namespaced(client.clone(), velero_namespace);
    let name = request_name(target);
    let request: DownloadRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "velero.io/v1",
        "kind": "DownloadRequest",
        "metadata": {"name": name, "namespace": velero_namespace},
        "spec": {"target": {"kind": kind, "name": target}},
    }))
    .map_err(|e| fail(e.to_string()))?;
    api.create(&PostParams::default(), &request)
        .await
        .map_err(|e| fail(format!("create DownloadRequest {name}: {e}")))?;
    let result = async {
        let signed = tokio::time::timeout(
            URL_TIMEOUT,
            await_condition(api.clone(), &name, |o: Option<&DownloadRequest>| {
                o.and_then(download_url).is_some()
            }),
        )
        .await
        .map_err(|_| {
            fail(format!(
                "Velero did not sign a URL within {}s (is the Velero server running?)",
                URL_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| fail(format!("watch DownloadRequest {name}: {e}")))?;
        let url = signed
            .as_ref()
            .and_then(download_url)
            .ok_or_else(|| fail("the DownloadRequest disappeared".into()))?;
        let body = http_get(&url).await.map_err(fail)?;
        gunzip(&body).map_err(|e| fail(format!("not gzip data: {e}")))
    }
    .await;
    // Velero deletes expired requests itself; removing ours now keeps the namespace tidy.
    let _ = api.delete(&name, &DeleteParams::default()).await;
    result
}

/// Downloads and parses a backup's resource list.
pub async fn backup_resource_list(
    client: &kube::Client,
    velero_namespace: &str,
    backup: &str,
) -> Result<BTreeMap<String, Vec<String>>, RestoreError> {
    let bytes = download(client, velero_namespace, "BackupResourceList", backup).await?;
    serde_json::from_slice(&bytes).map_err(|e| RestoreError::Download {
        what: "BackupResourceList".into(),
        target: backup.into(),
        reason: format!("not a resource list: {e}"),
    })
}

/// Downloads and parses a restore's results (warnings and errors with their reasons).
pub async fn restore_results(
    client: &kube::Client,
    velero_namespace: &str,
    restore: &str,
) -> Result<Results, RestoreError> {
    let bytes = download(client, velero_namespace, "RestoreResults", restore).await?;
    serde_json::from_slice(&bytes).map_err(|e| RestoreError::Download {
        what: "RestoreResults".into(),
        target: restore.into(),
        reason: format!("not a results file: {e}"),
    })
}

fn download_url(o: &DownloadRequest) -> Option<String> {
    let v = serde_json::to_value(o).ok()?;
    v.pointer("/status/downloadURL")
        .and_then(|u| u.as_str())
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
}

/// `<target>-<suffix>`, within the 63-character name limit, unique per call.
fn request_name(target: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let suffix = format!(
        "{:x}{:04x}",
        nanos & 0xffff_ffff_ffff,
        std::process::id() & 0xffff
    );
    let keep = 63 - suffix.len() - 1;
    let base: String = target.chars().take(keep).collect();
    format!("{}-{suffix}", base.trim_end_matches(['-', '.']))
}

fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// One GET of a pre-signed URL (https with the system's roots, or plain http).
async fn http_get(url: &str) -> Result<Vec<u8>, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("bad URL from Velero: {e}"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("cannot load the system's CA certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(https);
    // The query string is the signature: never put the URL in an error message.
    let host = uri.host().unwrap_or("?").to_owned();
    let response = tokio::time::timeout(Duration::from_secs(60), client.get(uri))
        .await
        .map_err(|_| format!("GET from {host} timed out"))?
        .map_err(|e| format!("GET from {host}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading from {host}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("GET from {host} answered {status}"));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_fit_and_differ() {
        let long = "b".repeat(80);
        let a = request_name(&long);
        assert!(a.len() <= 63, "{a}");
        assert!(
            request_name("celestial-zenith-1234-20260901")
                .starts_with("celestial-zenith-1234-20260901-")
        );
    }

    #[test]
    fn results_parse_velero_format() {
        let r: Results = serde_json::from_str(
            r#"{"warnings":{"namespaces":{"ns1":["could not restore, ConfigMap \"kube-root-ca.crt\" already exists"]}},
                "errors":{"velero":["timed out"],"cluster":[]}}"#,
        )
        .unwrap();
        assert_eq!(r.errors.lines(), ["velero: timed out"]);
        assert_eq!(r.warnings.lines().len(), 1);
        assert!(r.warnings.lines()[0].starts_with("ns1: could not restore"));
    }

    #[test]
    fn gunzip_round_trip() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"v1/Namespace\":[\"a\"]}").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz).unwrap(), b"{\"v1/Namespace\":[\"a\"]}");
    }
}
