//! Property tests (fuzzing) of every parser and rewriter of the library, run through
//! `fuzz_harness::check`: 256 cases per property under `cargo test`, any number under
//! `scripts/fuzz` (which prints what each property ran). Generators give realistic
//! inputs built from the fixtures' shapes, the same with random edits, and arbitrary text.

mod connection;
mod cron;
mod pgbouncer_ini;
mod plugin;
mod release;
mod sqlproxy;
mod target;

use proptest::prelude::*;

/// Characters that end or split the parts of the formats under test.
const SPECIAL: &[char] = &[
    '%', '@', ':', '/', '?', '&', '=', '[', ']', ',', '#', ' ', '\t', '\n', '\r', '\'', '"', '\\',
    ';', '*', '-', '+', '.', '0', '$', '\0', 'é', '\u{200b}',
];

/// `base` with up to `max_edits` random edits, replacements mostly from [`SPECIAL`].
pub fn mutated(
    base: impl Strategy<Value = String>,
    max_edits: usize,
) -> impl Strategy<Value = String> {
    fuzz_harness::strategies::mutated(base, SPECIAL, max_edits)
}

pub use fuzz_harness::strategies::any_text;

/// A DNS name, IPv4 or IPv6 address as the platform's connection strings name hosts.
pub fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com".to_owned()),
        Just("pg-sqlproxy-gcloud-sqlproxy.astronomer".to_owned()),
        "[a-z][a-z0-9-]{0,14}(\\.[a-z0-9-]{1,8}){0,4}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|a| std::net::Ipv6Addr::from(a).to_string()),
        Just("::1".to_owned()),
    ]
}
