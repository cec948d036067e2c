//! Airflow deployment release names, validated once at the edge.
//! Generated names look like `weightless-meteor-5042`; custom names follow Houston's rules.

use std::fmt;
use std::str::FromStr;

/// Longest custom release name Houston accepts.
pub const MAX_RELEASE_NAME_LEN: usize = 45;

/// A validated Airflow deployment release name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseName(String);

/// Why a string is not a release name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseNameError {
    /// Empty input.
    #[error("release name is empty")]
    Empty,
    /// Longer than Houston allows.
    #[error(
        "release name {name:?} is {len} characters long; Houston allows at most {MAX_RELEASE_NAME_LEN}"
    )]
    TooLong {
        /// The rejected input.
        name: String,
        /// Its length.
        len: usize,
    },
    /// A character outside `[a-z0-9-]`, or a leading/trailing dash.
    #[error(
        "release name {name:?} is not valid: use lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. weightless-meteor-5042)"
    )]
    Invalid {
        /// The rejected input.
        name: String,
    },
}

impl ReleaseName {
    /// Parses and validates a release name.
    pub fn parse(input: &str) -> Result<Self, ReleaseNameError> {
        if input.is_empty() {
            return Err(ReleaseNameError::Empty);
        }
        if input.len() > MAX_RELEASE_NAME_LEN {
            return Err(ReleaseNameError::TooLong {
                name: input.to_owned(),
                len: input.len(),
            });
        }
        let bytes = input.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let edge_ok = |b: u8| b != b'-';
        if !bytes.iter().all(allowed) || !edge_ok(bytes[0]) || !edge_ok(bytes[bytes.len() - 1]) {
            return Err(ReleaseNameError::Invalid {
                name: input.to_owned(),
            });
        }
        Ok(ReleaseName(input.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with `-` replaced by `_`, as used in database and role names.
    pub fn underscored(&self) -> String {
        self.0.replace('-', "_")
    }

    /// The Airflow database Houston created for this deployment.
    pub fn airflow_database(&self) -> String {
        format!("{}_airflow", self.underscored())
    }
}

impl FromStr for ReleaseName {
    type Err = ReleaseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleaseName::parse(s)
    }
}

impl fmt::Display for ReleaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ReleaseName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_generated_and_custom_names() {
        for name in ["weightless-meteor-5042", "dt-prod", "a", "x1", "a-b"] {
            assert!(ReleaseName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        let long = "a".repeat(46);
        for name in [
            "",
            "-a",
            "a-",
            "A-b",
            "a_b",
            "a.b",
            "a b",
            "ä",
            long.as_str(),
            "x;drop",
        ] {
            assert!(ReleaseName::parse(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn derives_database_names() {
        let r = ReleaseName::parse("weightless-meteor-5042").unwrap();
        assert_eq!(r.airflow_database(), "weightless_meteor_5042_airflow");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = ReleaseName::parse(&s);
        }

        #[test]
        fn valid_names_round_trip(s in "[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?") {
            let r = ReleaseName::parse(&s).unwrap();
            proptest::prop_assert_eq!(r.as_str(), s.as_str());
        }
    }
}
