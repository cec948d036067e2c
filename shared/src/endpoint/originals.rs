//! The local file of original values saved before the first patch (mode 0600, it holds
//! passwords). A later run only adds what is not there yet: the true originals survive re-runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default file name, in the current directory, so a re-run finds it without flags.
pub const DEFAULT_FILE: &str = "kubectl-astro-endpoint-originals.json";

/// Marker of the file format.
const FORMAT: &str = "kubectl-astro/endpoint-originals/v1";

/// The saved originals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Originals {
    /// Format marker.
    pub format: String,
    /// How to use the file.
    pub note: String,
    /// Per object (`Secret/astronomer/astronomer-bootstrap`): key → value before the move.
    /// Secret values are stored decoded.
    pub objects: BTreeMap<String, SavedObject>,
}

/// The saved values of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedObject {
    /// When the first value of this object was saved (RFC 3339).
    pub saved_at: String,
    /// key → original value.
    pub values: BTreeMap<String, String>,
}

/// Errors reading or writing the file.
#[derive(Debug, thiserror::Error)]
pub enum OriginalsError {
    /// The file could not be read, parsed or written.
    #[error("{action} {path}: {message}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        message: String,
    },
}

impl Originals {
    /// Reads the file, or an empty set if it does not exist.
    pub fn load(path: &Path) -> Result<Self, OriginalsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Originals::default());
            }
            Err(e) => {
                return Err(OriginalsError::Io {
                    action: "cannot read",
                    path: path.to_owned(),
                    message: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| OriginalsError::Io {
            action: "cannot parse",
            path: path.to_owned(),
            message: format!("{e} (move the file away only if you know its values are not needed)"),
        })
    }

    /// The saved value of `key` of `object`, if any.
    pub fn value(&self, object: &str, key: &str) -> Option<&str> {
        self.objects
            .get(object)?
            .values
            .get(key)
            .map(String::as_str)
    }

    /// Adds values not saved yet; an existing value is never replaced (it is older).
    /// Returns how many values were added.
    pub fn merge<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
        now: &str,
    ) -> usize {
        let mut added = 0;
        for (object, key, value) in entries {
            let saved = self
                .objects
                .entry(object.to_owned())
                .or_insert_with(|| SavedObject {
                    saved_at: now.to_owned(),
                    values: BTreeMap::new(),
                });
            if !saved.values.contains_key(key) {
                saved.values.insert(key.to_owned(), value.to_owned());
                added += 1;
            }
        }
        added
    }

    /// Writes the file atomically (temporary file in the same folder, fsync, rename),
    /// created with mode 0600 so the passwords in it are readable only by the user.
    pub fn save(&mut self, path: &Path) -> Result<(), OriginalsError> {
        self.format = FORMAT.into();
        self.note = "Values as they were before `kubectl astro restore endpoint`. Keep this file \
                     until the move is verified; to roll back, put these values back \
                     (secret values are shown decoded)."
            .into();
        let io = |action, e: std::io::Error| OriginalsError::Io {
            action,
            path: path.to_owned(),
            message: e.to_string(),
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| io("cannot create", e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("cannot write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("cannot write", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_run_keeps_true_originals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orig.json");
        let mut first = Originals::load(&path).unwrap();
        assert_eq!(first.merge([("Secret/a/b", "connection", "old")], "t1"), 1);
        first.save(&path).unwrap();
        let mut second = Originals::load(&path).unwrap();
        assert_eq!(
            second.merge(
                [
                    ("Secret/a/b", "connection", "new"),
                    ("Secret/a/c", "pgbouncer.ini", "x")
                ],
                "t2"
            ),
            1
        );
        second.save(&path).unwrap();
        let third = Originals::load(&path).unwrap();
        assert_eq!(third.value("Secret/a/b", "connection"), Some("old"));
        assert_eq!(third.value("Secret/a/c", "pgbouncer.ini"), Some("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
