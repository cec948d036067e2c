//! `release`: Airflow release names.

use astro::release::{MAX_RELEASE_NAME_LEN, ReleaseName};
use fuzz_harness::check;
use proptest::prelude::*;

use super::{any_text, mutated};

const TARGET: &str = "release name";

fn realistic() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("weightless-meteor-5042".to_owned()),
        Just("celestial-zenith-1234".to_owned()),
        "[a-z]{3,12}-[a-z]{3,12}-[0-9]{4}",
        "[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?",
    ]
}

#[test]
fn parse_accepts_exactly_houstons_names() {
    let input = prop_oneof![2 => realistic(), 2 => mutated(realistic(), 3), 1 => any_text(60)];
    check(TARGET, "accepts exactly Houston's names", input, |s| {
        let valid = !s.is_empty()
            && s.len() <= MAX_RELEASE_NAME_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        match ReleaseName::parse(&s) {
            Ok(r) => {
                prop_assert!(valid, "{:?} accepted", s);
                // parse → print → parse.
                prop_assert_eq!(r.to_string(), s.clone());
                prop_assert_eq!(ReleaseName::parse(r.as_str()), Ok(r.clone()));
                // Database and role names derived from it are plain SQL identifiers.
                let db = r.airflow_database();
                prop_assert!(
                    db.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                );
            }
            Err(e) => {
                prop_assert!(!valid, "{:?} rejected: {}", s, e);
            }
        }
        Ok(())
    });
}
