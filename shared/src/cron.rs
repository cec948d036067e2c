//! Client-side validation of Velero schedule expressions, accepting exactly what
//! robfig/cron v3 `ParseStandard` accepts (Velero 1.15–1.18), and computing next run times.
//!
//! Rules (velero.md §3.3): an optional `CRON_TZ=<zone> ` / `TZ=<zone> ` prefix; then a
//! descriptor (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
//! `@hourly`, `@every <Go duration>`) or exactly five fields (minute, hour, day of month,
//! month, day of week) of comma lists of `*`, `?`, `N`, `N-M`, each optionally `/step`.
//! Month and weekday names (`JAN`, `mon`) are accepted; day of week is 0–6.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};

/// Bit 63 marks a field written as `*`/`?` (robfig's "star bit"): when either day field
/// has it, both day fields must match; otherwise either may (classic cron OR semantics).
const STAR: u64 = 1 << 63;

/// A schedule expression Velero's parser rejects, with the parser's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {expr:?}: {reason}")]
pub struct CronError {
    /// The expression as given.
    pub expr: String,
    /// Why it is rejected (worded like robfig/cron's errors).
    pub reason: String,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct CronSchedule {
    /// Time zone of the expression (the `CRON_TZ=` prefix; UTC otherwise, as in the
    /// stock Velero image).
    pub zone: TimeZone,
    /// What the expression means.
    pub kind: ScheduleKind,
}

/// The two shapes robfig/cron produces.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleKind {
    /// Field bit sets (bit n = value n allowed; [`STAR`] marks `*`).
    Spec {
        /// Minutes 0–59.
        minute: u64,
        /// Hours 0–23.
        hour: u64,
        /// Days of month 1–31.
        dom: u64,
        /// Months 1–12.
        month: u64,
        /// Days of week 0–6 (Sunday = 0).
        dow: u64,
    },
    /// `@every <duration>`: a fixed delay (at least one second) after the last run.
    Every(SignedDuration),
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Parses `expr` as Velero's schedule controller does (`cron.ParseStandard`).
pub fn parse(expr: &str) -> Result<CronSchedule, CronError> {
    let err = |reason: String| CronError {
        expr: expr.to_owned(),
        reason,
    };
    if expr.is_empty() {
        return Err(err("empty spec string".into()));
    }
    let mut spec = expr;
    let mut zone = TimeZone::UTC;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        // robfig slices up to the first space; without one it panics and Velero
        // reports the recovered panic as an invalid schedule.
        let Some(space) = spec.find(' ') else {
            return Err(err(
                "time zone prefix must be followed by a space and the schedule".into(),
            ));
        };
        let eq = spec.find('=').unwrap_or(0);
        if eq + 1 > space {
            return Err(err("malformed time zone prefix".into()));
        }
        let name = &spec[eq + 1..space];
        zone = load_location(name).ok_or_else(|| {
            err(format!(
                "provided bad location {name}: unknown time zone {name}"
            ))
        })?;
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec)
            .map(|kind| CronSchedule { zone, kind })
            .map_err(err);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        )));
    }
    let minute = get_field(fields[0], &MINUTES).map_err(err)?;
    let hour = get_field(fields[1], &HOURS).map_err(err)?;
    let dom = get_field(fields[2], &DOM).map_err(err)?;
    let month = get_field(fields[3], &MONTHS).map_err(err)?;
    let dow = get_field(fields[4], &DOW).map_err(err)?;
    Ok(CronSchedule {
        zone,
        kind: ScheduleKind::Spec {
            minute,
            hour,
            dom,
            month,
            dow,
        },
    })
}

/// Go's `time.LoadLocation`: `""` and `UTC` are UTC; other names come from the IANA
/// database (`Local` is the server's zone: UTC in the stock Velero image).
fn load_location(name: &str) -> Option<TimeZone> {
    match name {
        "" | "UTC" | "Local" => Some(TimeZone::UTC),
        _ => TimeZone::get(name).ok(),
    }
}

fn parse_descriptor(spec: &str) -> Result<ScheduleKind, String> {
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR;
    let spec_kind = |minute, hour, dom, month, dow| ScheduleKind::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
    };
    Ok(match spec {
        "@yearly" | "@annually" => spec_kind(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => spec_kind(1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => spec_kind(1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => spec_kind(1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => spec_kind(1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            if let Some(d) = spec.strip_prefix("@every ") {
                let duration = parse_go_duration(d)
                    .map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
                // robfig's Every() rounds to whole seconds, minimum one second.
                let secs = duration.as_secs().max(1);
                ScheduleKind::Every(SignedDuration::from_secs(secs))
            } else {
                return Err(format!("unrecognized descriptor: {spec}"));
            }
        }
    })
}

fn get_field(field: &str, b: &Bounds) -> Result<u64, String> {
    // strings.FieldsFunc on ',': empty elements are skipped (so "1,,2" is fine).
    let mut out = 0;
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        out |= get_range(expr, b)?;
    }
    Ok(out)
}

fn get_range(expr: &str, b: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = b.min;
        end = b.max;
        extra = STAR;
    } else {
        start = int_or_name(low_and_high[0], b)?;
        end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_uint(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

fn int_or_name(expr: &str, b: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, n)) = b.names.iter().find(|(name, _)| *name == lower) {
        return Ok(*n);
    }
    parse_uint(expr)
}

/// Go's `strconv.Atoi` followed by robfig's non-negative check.
fn parse_uint(expr: &str) -> Result<u32, String> {
    let digits = expr.strip_prefix('+').unwrap_or(expr);
    let negative = expr.starts_with('-');
    let body = if negative { &expr[1..] } else { digits };
    if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        ));
    }
    let value: i64 = body.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        )
    })?;
    if negative && value != 0 {
        return Err(format!("negative number (-{value}) not allowed: {expr}"));
    }
    // Values above any field's maximum are reported by the range check.
    Ok(u32::try_from(value).unwrap_or(u32::MAX))
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    let mut out = 0;
    let mut i = min;
    while i <= max {
        out |= 1 << i;
        i += step;
    }
    out
}

/// Go's `time.ParseDuration`: a signed sequence of decimal numbers, each with a unit
/// (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`); `"0"` alone is allowed.
pub fn parse_go_duration(input: &str) -> Result<SignedDuration, String> {
    let bad = || format!("time: invalid duration {input:?}");
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {input:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {input:?}")),
        };
        let number: f64 = format!(
            "{}.{}",
            if int_part.is_empty() { "0" } else { int_part },
            if frac_part.is_empty() { "0" } else { frac_part }
        )
        .parse()
        .map_err(|_| bad())?;
        total += number * nanos_per_unit;
        if total > i64::MAX as f64 {
            return Err(bad());
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    let nanos = total as i64;
    let d = SignedDuration::from_nanos(nanos);
    Ok(if negative { -d } else { d })
}

impl CronSchedule {
    /// The next run strictly after `after`, or `None` if the expression never matches
    /// within five years (robfig's search limit), e.g. `0 0 30 2 *`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let (minute, hour, dom, month, dow) = match &self.kind {
            ScheduleKind::Every(d) => return after.checked_add(*d).ok(),
            ScheduleKind::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
            } => (*minute, *hour, *dom, *month, *dow),
        };
        // Start at the next whole minute; walk in the schedule's zone, skipping whole
        // months, days and hours that cannot match. Times inside a DST gap do not exist
        // as instants, so such runs are skipped, as robfig does.
        let start = after.checked_add(1.minute()).ok()?;
        let mut t = start
            .to_zoned(self.zone.clone())
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?;
        let limit = after
            .checked_add(SignedDuration::from_hours(24 * 366 * 5))
            .ok()?;
        let day_ok = |z: &Zoned| {
            let d = z.day();
            let w = z.weekday().to_sunday_zero_offset();
            let dom_match = dom & (1 << d) != 0;
            let dow_match = dow & (1 << w) != 0;
            if dom & STAR != 0 || dow & STAR != 0 {
                dom_match && dow_match
            } else {
                dom_match || dow_match
            }
        };
        while t.timestamp() <= limit {
            if month & (1 << t.month()) == 0 {
                t = start_of_day(
                    &self.zone,
                    t.date().first_of_month().checked_add(1.month()).ok()?,
                )?;
                continue;
            }
            if !day_ok(&t) {
                t = start_of_day(&self.zone, t.date().tomorrow().ok()?)?;
                continue;
            }
            if hour & (1 << t.hour()) == 0 {
                let top = t.with().minute(0).build().ok()?;
                t = top.checked_add(1.hour()).ok()?;
                continue;
            }
            if minute & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            return Some(t.timestamp());
        }
        None
    }

    /// The next `n` runs after `after` (fewer if it never matches).
    pub fn next_runs(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

fn start_of_day(zone: &TimeZone, date: Date) -> Option<Zoned> {
    date.to_zoned(zone.clone()).ok()
}

impl fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleKind::Every(d) => write!(f, "every {d:#}"),
            ScheduleKind::Spec { .. } => f.write_str("cron"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (expression, accepted by Velero 1.18 / robfig cron v3 ParseStandard).
    /// Expectations follow robfig/cron v3.0.1 parser.go: field count, bounds, names,
    /// steps, descriptors, time.ParseDuration and time.LoadLocation.
    const TABLE: &[(&str, bool)] = &[
        ("0 1 * * *", true),
        ("*/15 * * * *", true),
        ("0 0 1 1 *", true),
        ("0 0 * * 0", true),
        ("0 0 * * 6", true),
        ("0 0 * * 7", false), // day of week is 0-6 only
        ("0 0 * * MON-FRI", true),
        ("0 0 * * mon,wed,fri", true),
        ("0 0 * JAN,jul *", true),
        ("0 0 * * monday", false), // only three-letter names
        ("0 0 1-15/2 * *", true),
        ("0 0 ? * *", true),
        ("0 0 * * ?", true),
        ("5/10 * * * *", true), // N/step = N-max/step
        ("0 0 0 * *", false),   // day of month starts at 1
        ("60 * * * *", false),
        ("0 24 * * *", false),
        ("0 0 32 * *", false),
        ("0 0 * 13 *", false),
        ("0 0 * 0 *", false),
        ("5-1 * * * *", false), // start beyond end
        ("*/0 * * * *", false), // zero step
        ("1-2-3 * * * *", false),
        ("1/2/3 * * * *", false),
        ("-1 * * * *", false),
        ("a * * * *", false),
        ("0 0 1 * * *", false), // 6 fields (no seconds field in Velero)
        ("0 0 * *", false),
        ("", false),
        ("@daily", true),
        ("@midnight", true),
        ("@hourly", true),
        ("@weekly", true),
        ("@monthly", true),
        ("@yearly", true),
        ("@annually", true),
        ("@reboot", false),
        ("@Daily", false),
        ("@every 6h", true),
        ("@every 2h30m", true),
        ("@every 1.5h", true),
        ("@every 90s", true),
        ("@every 0", true),
        ("@every 6", false),  // missing unit
        ("@every 1d", false), // Go has no day unit
        ("@every", false),
        ("@every ", false),
        ("CRON_TZ=America/New_York 0 3 * * *", true),
        ("TZ=Europe/Berlin 0 3 * * *", true),
        ("CRON_TZ=UTC @daily", true),
        ("CRON_TZ=Mars/Olympus 0 3 * * *", false),
        ("CRON_TZ=UTC", false), // no space: robfig panics, Velero reports invalid
        ("0 0,12 1,15 * *", true),
        ("0 0 1,,15 * *", true), // empty list elements are skipped
        ("+5 * * * *", true),    // strconv.Atoi accepts a sign
        ("05 01 * * *", true),
        ("  0   1 * * *  ", true),
        ("0 0 * * SUN-SAT", true),
        ("0 0 * * FRI-MON", false),
    ];

    #[test]
    fn accept_reject_table_agrees_with_velero() {
        assert!(TABLE.len() >= 25);
        for (expr, accepted) in TABLE {
            let got = parse(expr);
            assert_eq!(got.is_ok(), *accepted, "{expr:?}: {got:?}");
        }
    }

    #[test]
    fn error_wording_matches_robfig() {
        let e = parse("0 0 1 * * *").unwrap_err();
        assert!(
            e.reason.starts_with("expected exactly 5 fields, found 6"),
            "{e}"
        );
        let e = parse("0 0 * * 7").unwrap_err();
        assert!(
            e.reason.contains("end of range (7) above maximum (6)"),
            "{e}"
        );
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_runs_daily_utc() {
        let s = parse("0 1 * * *").unwrap();
        let runs = s.next_runs(ts("2026-11-25T16:40:00Z"), 3);
        assert_eq!(
            runs,
            [
                ts("2026-11-26T01:00:00Z"),
                ts("2026-11-27T01:00:00Z"),
                ts("2026-11-28T01:00:00Z")
            ]
        );
    }

    #[test]
    fn dom_dow_or_semantics() {
        // 1st of the month OR any Monday.
        let s = parse("0 0 1 * MON").unwrap();
        let runs = s.next_runs(ts("2026-11-25T00:00:00Z"), 3);
        assert_eq!(
            runs,
            [
                ts("2026-11-30T00:00:00Z"), // Monday
                ts("2026-12-01T00:00:00Z"), // 1st
                ts("2026-12-07T00:00:00Z"), // Monday
            ]
        );
        // With a star in day-of-week only the day of month counts.
        let s = parse("0 0 1 * *").unwrap();
        assert_eq!(
            s.next_after(ts("2026-11-25T00:00:00Z")),
            Some(ts("2026-12-01T00:00:00Z"))
        );
        // A stepped star loses the star bit, so OR applies.
        let s = parse("0 0 */10 * MON").unwrap();
        assert_eq!(
            s.next_after(ts("2026-11-25T00:00:00Z")),
            Some(ts("2026-11-30T00:00:00Z"))
        );
    }

    #[test]
    fn time_zone_prefix_moves_runs() {
        let s = parse("CRON_TZ=America/New_York 0 3 * * *").unwrap();
        // 03:00 EST = 08:00 UTC in November.
        assert_eq!(
            s.next_after(ts("2026-11-25T00:00:00Z")),
            Some(ts("2026-11-25T08:00:00Z"))
        );
        // Spring-forward gap: 02:30 on 2027-03-14 does not exist in New York.
        let s = parse("CRON_TZ=America/New_York 30 2 14 3 *").unwrap();
        let next = s.next_after(ts("2027-03-13T00:00:00Z")).unwrap();
        assert!(next > ts("2027-03-15T00:00:00Z"), "{next}");
    }

    #[test]
    fn never_matching_and_every() {
        let s = parse("0 0 30 2 *").unwrap();
        assert_eq!(s.next_after(ts("2026-01-01T00:00:00Z")), None);
        let s = parse("@every 2h30m").unwrap();
        assert_eq!(
            s.next_runs(ts("2026-01-01T00:00:00Z"), 2),
            [ts("2026-01-01T02:30:00Z"), ts("2026-01-01T05:00:00Z")]
        );
        let s = parse("@every 100ms").unwrap();
        assert_eq!(s.kind, ScheduleKind::Every(SignedDuration::from_secs(1)));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn five_numeric_fields_in_range_parse(m in 0u32..60, h in 0u32..24, d in 1u32..32, mo in 1u32..13, w in 0u32..7) {
            let expr = format!("{m} {h} {d} {mo} {w}");
            proptest::prop_assert!(parse(&expr).is_ok());
        }
    }
}
