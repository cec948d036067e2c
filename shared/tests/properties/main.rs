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

/// `base` with up to `max_edits` random edits: a character inserted, deleted or replaced
/// (by one of [`SPECIAL`] or any character), so inputs stay close to the real shapes.
pub fn mutated(
    base: impl Strategy<Value = String>,
    max_edits: usize,
) -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        0u8..3,
        prop_oneof![3 => prop::sample::select(SPECIAL), 1 => any::<char>()],
    );
    (base, prop::collection::vec(edit, 0..=max_edits)).prop_map(|(base, edits)| {
        let mut chars: Vec<char> = base.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

/// Any text: arbitrary Unicode (controls included), or arbitrary bytes made UTF-8.
pub fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect()),
        prop::collection::vec(any::<u8>(), 0..max)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

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
