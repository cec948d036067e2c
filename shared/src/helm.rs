//! Helm 3 release records (`sh.helm.release.v1.<release>.v<N>` Secrets): the one decoder
//! of their payload, the newest record per release, and the values that name a host
//! (which the next `helm upgrade` would restore after an endpoint move). Used by platform
//! release detection, the endpoint move and `status`.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

/// Prefix of Helm 3 release record Secret names.
pub const RELEASE_SECRET_PREFIX: &str = "sh.helm.release.v1.";

/// `(release, revision)` from a release record Secret name.
pub fn parse_release_secret_name(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix(RELEASE_SECRET_PREFIX)?;
    let (release, version) = rest.rsplit_once(".v")?;
    Some((release, version.parse().ok()?))
}

/// Decodes the `release` key of a record Secret (the bytes after Kubernetes' own base64):
/// Helm stores base64(gzip(JSON)); older or hand-made records may skip a layer.
pub fn decode_release(bytes: &[u8]) -> Option<Value> {
    let trimmed = bytes.trim_ascii();
    if trimmed.starts_with(&[0x1f, 0x8b]) {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(trimmed)
            .read_to_end(&mut json)
            .ok()?;
        return serde_json::from_slice(&json).ok();
    }
    if trimmed.starts_with(b"{") {
        return serde_json::from_slice(trimmed).ok();
    }
    let inner = STANDARD.decode(trimmed).ok()?;
    if inner == trimmed {
        return None;
    }
    decode_release(&inner)
}

/// The newest decodable record of one release.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRecord {
    /// Namespace of the record Secret.
    pub namespace: String,
    /// Release name.
    pub release: String,
    /// Its revision.
    pub revision: u32,
    /// The decoded release (`config` holds the user-supplied values).
    pub value: Value,
}

/// The newest record of each release among `secrets` (per namespace), decoded; records
/// whose payload does not decode are left out.
pub fn newest_records<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Vec<ReleaseRecord> {
    let mut newest: BTreeMap<(String, String), (u32, &Secret)> = BTreeMap::new();
    for secret in secrets {
        let ns = secret.metadata.namespace.clone().unwrap_or_default();
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        if let Some((release, revision)) = parse_release_secret_name(name) {
            let slot = newest
                .entry((ns, release.to_owned()))
                .or_insert((revision, secret));
            if revision >= slot.0 {
                *slot = (revision, secret);
            }
        }
    }
    newest
        .into_iter()
        .filter_map(|((namespace, release), (revision, secret))| {
            let bytes = secret.data.as_ref()?.get("release")?;
            Some(ReleaseRecord {
                namespace,
                release,
                revision,
                value: decode_release(&bytes.0)?,
            })
        })
        .collect()
}

/// `chart.metadata.name` of a decoded release.
pub fn chart_name(release: &Value) -> Option<String> {
    release["chart"]["metadata"]["name"]
        .as_str()
        .map(str::to_owned)
}

/// Paths (`data.metadataConnection.host`) of the release's user-supplied values
/// (`config`) whose string value contains `host`.
pub fn values_naming_host(release: &Value, host: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(config) = release.get("config") {
        walk(config, String::new(), &host.to_ascii_lowercase(), &mut out);
    }
    out
}

fn walk(value: &Value, path: String, host: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.to_ascii_lowercase().contains(host) => out.push(path),
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, p, host, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{path}[{i}]"), host, out);
            }
        }
        _ => {}
    }
}

/// Builds a record the way Helm does (base64 of gzip of JSON), for tests and fixtures.
pub fn encode_release(release: &Value) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(release.to_string().as_bytes());
    STANDARD.encode(gz.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_old_host_in_double_encoded_record() {
        let release = json!({
            "name": "weightless-meteor-5042",
            "version": 3,
            "config": {"data": {
                "metadataConnection": {"host": "astro-prod.example", "port": 5432, "pass": "x"},
                "resultBackendConnection": {"host": "Astro-Prod.example"}
            }, "labels": {"platform": "astronomer"}}
        });
        let helm_string = encode_release(&release);
        // What Kubernetes hands back after decoding `data.release` once: Helm's base64 text.
        let decoded = decode_release(helm_string.as_bytes()).unwrap();
        assert_eq!(decoded, release);
        let mut paths = values_naming_host(&decoded, "astro-prod.example");
        paths.sort();
        assert_eq!(
            paths,
            vec![
                "data.metadataConnection.host",
                "data.resultBackendConnection.host"
            ]
        );
        assert!(values_naming_host(&decoded, "astro-dr.example").is_empty());
        assert_eq!(
            parse_release_secret_name("sh.helm.release.v1.weightless-meteor-5042.v3"),
            Some(("weightless-meteor-5042", 3))
        );
        assert_eq!(parse_release_secret_name("other"), None);
        assert!(decode_release(b"not a release").is_none());
    }
}
