//! `sqlproxy`: the Cloud SQL proxy's `-instances=` flag.

use astro::sqlproxy::{ElementRewrite, InstanceName, instance_names, rewrite_instances_element};
use fuzz_harness::check;
use proptest::prelude::*;

use super::{any_text, mutated};

const TARGET: &str = "sqlproxy";

fn instance() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("astro-prod:us-east1:astro-pg".to_owned()),
        Just("astro-prod:us-east1:astro-dr".to_owned()),
        "[a-z][a-z0-9-]{0,10}:[a-z]{2,6}-[a-z]{2,8}[0-9]:[a-z][a-z0-9-]{0,10}",
        Just("example.com:proj:us-central1:db".to_owned()),
    ]
}

/// `-instances=P:R:N=tcp:0.0.0.0:5432,` and its variants: `--` prefix, several entries,
/// ports or unix sockets, the fixture's trailing comma, empty entries.
fn element() -> impl Strategy<Value = String> {
    let suffix = prop_oneof![
        Just(String::new()),
        "=tcp:[0-9]{4}",
        "=tcp:0\\.0\\.0\\.0:[0-9]{4}",
        Just("=unix:/cloudsql/x".to_owned()),
    ];
    (
        prop::sample::select(vec![
            "-instances=",
            "--instances=",
            "-instance=",
            "instances=",
        ]),
        prop::collection::vec((instance(), suffix), 0..4),
        prop::sample::select(vec!["", ",", ",,"]),
    )
        .prop_map(|(prefix, entries, tail)| {
            let list: Vec<String> = entries.into_iter().map(|(n, s)| n + &s).collect();
            format!("{prefix}{}{tail}", list.join(","))
        })
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![3 => element(), 3 => mutated(element(), 4), 1 => any_text(60)]
}

fn name() -> impl Strategy<Value = InstanceName> {
    instance().prop_map(|s| InstanceName::parse(&s).expect("generated names are valid"))
}

/// Applies a rewrite: the new element, or the same one when already moved or refused.
fn apply(element: &str, from: Option<&InstanceName>, to: &InstanceName) -> String {
    match rewrite_instances_element("astronomer/pg-sqlproxy", element, from, to) {
        Ok(ElementRewrite::Changed(new)) => new,
        _ => element.to_owned(),
    }
}

#[test]
fn instance_name_parse_print_parse() {
    let input = prop_oneof![2 => instance(), 2 => mutated(instance(), 3), 1 => any_text(40)];
    check(
        TARGET,
        "instance name parse -> print -> parse",
        input,
        |s| {
            if let Ok(n) = InstanceName::parse(&s) {
                prop_assert_eq!(n.to_string(), s.clone());
                prop_assert_eq!(InstanceName::parse(&n.to_string()), Ok(n));
                let parts = s.split(':').count();
                prop_assert!(parts == 3 || parts == 4);
            }
            Ok(())
        },
    );
}

#[test]
fn rewrite_is_idempotent_and_keeps_the_rest() {
    let args = (input(), prop::option::of(name()), name());
    check(
        TARGET,
        "rewrite idempotent, keeps unowned bytes",
        args,
        |(element, from, to)| {
            let once = apply(&element, from.as_ref(), &to);
            prop_assert_eq!(apply(&once, from.as_ref(), &to), once.clone());
            if once != element {
                let (before, after) = (split(&element), split(&once));
                // Same prefix, same number of entries, every `=…` suffix kept; only names change,
                // and only to `to`.
                prop_assert_eq!(before.0, after.0);
                prop_assert_eq!(before.1.len(), after.1.len());
                for ((bn, bs), (an, as_)) in before.1.iter().zip(&after.1) {
                    prop_assert_eq!(bs, as_);
                    prop_assert!(an == bn || an == to.as_str(), "{} became {}", bn, an);
                }
                prop_assert!(instance_names(&once).iter().any(|n| n == to.as_str()));
                if let Some(from) = &from {
                    prop_assert!(from == &to || !instance_names(&once).contains(&from.to_string()));
                }
            }
            Ok(())
        },
    );
}

/// Moving to the instance the flag already serves changes nothing.
#[test]
fn rewrite_to_the_same_instance_is_the_identity() {
    let args = (element(), any::<bool>());
    check(
        TARGET,
        "same instance is identity",
        args,
        |(element, with_from)| {
            let names = instance_names(&element);
            let Some(first) = names.first() else {
                return Ok(());
            };
            let Ok(to) = InstanceName::parse(first) else {
                return Ok(());
            };
            let from = with_from.then(|| to.clone());
            prop_assert_eq!(apply(&element, from.as_ref(), &to), element);
            Ok(())
        },
    );
}

/// `(flag prefix, [(name, suffix)])` of an element.
fn split(element: &str) -> (String, Vec<(String, String)>) {
    let (prefix, list) = astro::sqlproxy::instances_flag_value(element).unwrap_or(("", element));
    let entries = list
        .split(',')
        .map(|e| match e.split_once('=') {
            Some((n, s)) => (n.to_owned(), s.to_owned()),
            None => (e.to_owned(), String::new()),
        })
        .collect();
    (prefix.to_owned(), entries)
}
