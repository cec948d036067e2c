//! `cron`: Velero schedule expressions (robfig/cron v3 `ParseStandard`) and next runs.

use astro::cron::{CronSchedule, ScheduleKind, parse};
use fuzz_harness::check;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;

use super::{any_text, mutated};

const TARGET: &str = "cron";

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Local",
    "",
    "Mars/Olympus",
];

/// One field: lists of `*`, `?`, numbers, names, ranges, steps.
fn field(max: u32, names: &'static [&'static str]) -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*".to_owned()),
        Just("?".to_owned()),
        (0..=max + 1).prop_map(|n| n.to_string()),
        prop::sample::select(names).prop_map(str::to_owned),
        (0..=max, 0..=max).prop_map(|(a, b)| format!("{a}-{b}")),
    ];
    let step = prop::option::of(0u32..=max + 1);
    prop::collection::vec((atom, step), 1..4).prop_map(|items| {
        items
            .into_iter()
            .map(|(a, s)| s.map_or(a.clone(), |s| format!("{a}/{s}")))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Numeric fields have no names; `L` (Quartz's "last") is not a name robfig knows.
const NO_NAMES: &[&str] = &["L"];
const MONTHS: &[&str] = &["JAN", "feb", "Dec", "jul"];
const DAYS: &[&str] = &["SUN", "mon", "Fri", "sat", "MON-FRI"];

fn expression() -> impl Strategy<Value = String> {
    let five = (
        field(59, NO_NAMES),
        field(23, NO_NAMES),
        field(31, NO_NAMES),
        field(12, MONTHS),
        field(6, DAYS),
    )
        .prop_map(|(m, h, d, mo, w)| format!("{m} {h} {d} {mo} {w}"));
    let descriptor = prop_oneof![
        prop::sample::select(vec![
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
            "@reboot",
            "@Daily",
        ])
        .prop_map(str::to_owned),
        "@every [-+]?([0-9]{1,4}(\\.[0-9]{1,3})?(ns|us|µs|ms|s|m|h|d)?){1,3}",
    ];
    let zone = prop::option::of((
        prop::sample::select(vec!["CRON_TZ=", "TZ="]),
        prop::sample::select(ZONES),
    ));
    (zone, prop_oneof![4 => five, 1 => descriptor]).prop_map(|(zone, body)| match zone {
        Some((prefix, name)) => format!("{prefix}{name} {body}"),
        None => body,
    })
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![3 => expression(), 3 => mutated(expression(), 3), 1 => any_text(40)]
}

/// A canonical expression for a schedule: `*` for star fields, else the values listed.
fn print(s: &CronSchedule) -> Option<String> {
    const STAR: u64 = 1 << 63;
    let body = match &s.kind {
        ScheduleKind::Every(d) => format!("@every {}s", d.as_secs()),
        ScheduleKind::Spec {
            minute,
            hour,
            dom,
            month,
            dow,
        } => {
            let mut fields = Vec::new();
            for bits in [minute, hour, dom, month, dow] {
                if bits & STAR != 0 {
                    fields.push("*".to_owned());
                } else if *bits == 0 {
                    return None; // `,` alone: accepted, never matches, no canonical text
                } else {
                    let values: Vec<String> = (0..63)
                        .filter(|i| bits & (1 << i) != 0)
                        .map(|i| i.to_string())
                        .collect();
                    fields.push(values.join(","));
                }
            }
            fields.join(" ")
        }
    };
    Some(match s.zone.iana_name() {
        Some(name) if name != "UTC" => format!("CRON_TZ={name} {body}"),
        _ => body,
    })
}

#[test]
fn parse_never_panics_and_print_parse_is_stable() {
    check(TARGET, "parse -> print -> parse stable", input(), |expr| {
        let Ok(schedule) = parse(&expr) else {
            return Ok(());
        };
        let Some(text) = print(&schedule) else {
            return Ok(());
        };
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(back, schedule, "{}", text);
        Ok(())
    });
}

/// Any instant from 1990 to 2060.
fn instant() -> impl Strategy<Value = Timestamp> {
    (631_152_000i64..2_871_763_200).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

/// The next run is after the given instant, on a whole minute, matching every field in
/// the schedule's zone, and the first such: asking from any instant before it gives it.
#[test]
fn next_run_is_the_first_match() {
    let args = (expression(), instant(), any::<prop::sample::Index>());
    check(
        TARGET,
        "next run is the first match",
        args,
        |(expr, after, between)| {
            let Ok(schedule) = parse(&expr) else {
                return Ok(());
            };
            let Some(next) = schedule.next_after(after) else {
                return Ok(());
            };
            prop_assert!(next > after);
            let (minute, hour, dom, month, dow) = match schedule.kind {
                ScheduleKind::Every(every) => {
                    prop_assert!(every >= SignedDuration::from_secs(1));
                    prop_assert_eq!(Some(next), after.checked_add(every).ok());
                    return Ok(());
                }
                ScheduleKind::Spec {
                    minute,
                    hour,
                    dom,
                    month,
                    dow,
                } => (minute, hour, dom, month, dow),
            };
            let z = next.to_zoned(schedule.zone.clone());
            prop_assert_eq!(z.second(), 0);
            prop_assert!(minute & (1 << z.minute()) != 0);
            prop_assert!(hour & (1 << z.hour()) != 0);
            prop_assert!(month & (1 << z.month()) != 0);
            let star = 1u64 << 63;
            let (d, w) = (
                dom & (1 << z.day()) != 0,
                dow & (1 << z.weekday().to_sunday_zero_offset()) != 0,
            );
            let day_matches = if dom & star != 0 || dow & star != 0 {
                d && w
            } else {
                d || w
            };
            prop_assert!(day_matches);
            // Minimal: from any instant in [after, next) the next run is the same.
            let span = next.as_second() - after.as_second();
            let offset = i64::try_from(between.index(usize::try_from(span).unwrap_or(usize::MAX)))
                .unwrap_or(0);
            let from = after.checked_add(offset.seconds()).unwrap();
            prop_assert_eq!(schedule.next_after(from), Some(next), "from {}", from);
            Ok(())
        },
    );
}
