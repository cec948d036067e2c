//! One object out of a backup's tarball (what a `BackupContents` DownloadRequest serves):
//! `restore platform` reads the database endpoint the backup will bring back before it
//! restores anything.
//!
//! Velero writes each object at `resources/<plural[.group]>/namespaces/<ns>/<name>.json`
//! (`/cluster/<name>.json` when cluster-scoped) and, since 1.4, again under a version
//! directory (`<version>-preferredversion/`, or `<version>/` with API group versions on).
//! Both places are read; the unversioned one wins.

use std::io::Read;

use serde_json::Value;

/// Why the tarball cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ContentsError {
    /// Not a gzip-compressed tar file.
    #[error("not a gzip-compressed tar file: {0}")]
    Archive(#[source] std::io::Error),
    /// The object's file is not JSON.
    #[error("{path} in the backup is not a JSON object: {reason}")]
    NotJson {
        /// Path inside the tarball.
        path: String,
        /// Parser message.
        reason: String,
    },
}

/// Where an object of `resource` (`secrets`, `deployments.apps`) lives in the tarball, if
/// `path` is one of its places: `Some(true)` for the unversioned one.
fn place_of(path: &str, resource: &str, namespace: Option<&str>, name: &str) -> Option<bool> {
    let rest = path.trim_start_matches("./").strip_prefix("resources/")?;
    let rest = rest.strip_prefix(resource)?.strip_prefix('/')?;
    let tail = match namespace {
        Some(ns) => format!("namespaces/{ns}/{name}.json"),
        None => format!("cluster/{name}.json"),
    };
    if rest == tail {
        return Some(true);
    }
    let (version, rest) = rest.split_once('/')?;
    (rest == tail && !version.is_empty() && !version.contains('.')).then_some(false)
}

/// The object `resource` `namespace/name` from a gzip-compressed backup tarball; `None`
/// when the backup does not hold it.
pub fn find_object(
    tar_gz: &[u8],
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ContentsError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    let mut versioned = None;
    for entry in archive.entries().map_err(ContentsError::Archive)? {
        let mut entry = entry.map_err(ContentsError::Archive)?;
        let path = entry
            .path()
            .map_err(ContentsError::Archive)?
            .to_string_lossy()
            .into_owned();
        let Some(unversioned) = place_of(&path, resource, namespace, name) else {
            continue;
        };
        let mut text = Vec::new();
        entry
            .read_to_end(&mut text)
            .map_err(ContentsError::Archive)?;
        let object = match serde_json::from_slice::<Value>(&text) {
            Ok(v) if v.is_object() => v,
            Ok(_) => return Err(not_json(path, "not an object".into())),
            Err(e) => return Err(not_json(path, e.to_string())),
        };
        if unversioned {
            return Ok(Some(object));
        }
        versioned.get_or_insert(object);
    }
    Ok(versioned)
}

fn not_json(path: String, reason: String) -> ContentsError {
    ContentsError::NotJson { path, reason }
}

/// Backup tarballs for unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    /// A gzip-compressed tar file holding `files` (`path`, content).
    pub(crate) fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, *data).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::tarball;
    use super::*;

    #[test]
    fn finds_an_object_in_either_place() {
        let secret = br#"{"kind":"Secret","metadata":{"name":"s"}}"#;
        let other = br#"{"kind":"Secret","metadata":{"name":"other"}}"#;
        let both = tarball(&[
            ("metadata/version", b"1.1.0"),
            (
                "resources/secrets/v1-preferredversion/namespaces/a/s.json",
                other,
            ),
            ("resources/secrets/namespaces/a/s.json", secret),
        ]);
        let found = find_object(&both, "secrets", Some("a"), "s")
            .unwrap()
            .unwrap();
        assert_eq!(found["metadata"]["name"], "s", "the unversioned copy wins");
        let versioned_only = tarball(&[("resources/secrets/v1/namespaces/a/s.json", secret)]);
        assert!(
            find_object(&versioned_only, "secrets", Some("a"), "s")
                .unwrap()
                .is_some()
        );
        assert!(
            find_object(&both, "secrets", Some("b"), "s")
                .unwrap()
                .is_none()
        );
        assert!(
            find_object(&both, "secrets.apps", Some("a"), "s")
                .unwrap()
                .is_none()
        );
        let cluster = tarball(&[("resources/namespaces/cluster/a.json", b"{}")]);
        assert!(
            find_object(&cluster, "namespaces", None, "a")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn bad_archives_and_files_are_errors() {
        assert!(matches!(
            find_object(b"not gzip", "secrets", Some("a"), "s"),
            Err(ContentsError::Archive(_))
        ));
        let bad = tarball(&[("resources/secrets/namespaces/a/s.json", b"[1]")]);
        assert!(matches!(
            find_object(&bad, "secrets", Some("a"), "s"),
            Err(ContentsError::NotJson { .. })
        ));
    }

    #[test]
    fn places() {
        assert_eq!(
            place_of(
                "resources/secrets/namespaces/a/s.json",
                "secrets",
                Some("a"),
                "s"
            ),
            Some(true)
        );
        assert_eq!(
            place_of(
                "resources/secrets/v1-preferredversion/namespaces/a/s.json",
                "secrets",
                Some("a"),
                "s"
            ),
            Some(false)
        );
        // `deployments.apps` must not match `secrets.apps`-like prefixes or other names.
        assert_eq!(
            place_of(
                "resources/secretsx/namespaces/a/s.json",
                "secrets",
                Some("a"),
                "s"
            ),
            None
        );
        assert_eq!(
            place_of(
                "resources/secrets/namespaces/a/s.json.bak",
                "secrets",
                Some("a"),
                "s"
            ),
            None
        );
    }
}
