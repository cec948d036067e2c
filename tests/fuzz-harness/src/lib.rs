//! The property tests' runner: `cargo test` runs each property with proptest's default
//! 256 cases; `scripts/fuzz N` sets `PROPTEST_CASES=N` and `FUZZ_REPORT=FILE`, and every
//! property appends what it really ran (cases, failures, wall time) to that file, so the
//! table the script prints comes from the tests, not from the environment.
//!
//! Failures are shrunk and persisted by proptest (`proptest-regressions/` beside the test
//! sources), and replayed first on the next run.

use std::cell::Cell;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// Environment variable naming the report file (one tab-separated line per property).
pub const REPORT_ENV: &str = "FUZZ_REPORT";

/// What one property run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Test cases evaluated (persisted regressions included, shrinking steps not).
    pub cases: u64,
    /// 0, or 1 when a case failed (proptest stops at the first failure and shrinks it).
    pub failures: u64,
}

/// Runs `test` on values of `strategy` as property `property` of `target`, with
/// `PROPTEST_CASES` cases (256 by default); panics with the shrunk input on failure.
///
/// The caller's source file locates the regression file, as `proptest!` does.
#[track_caller]
pub fn check<S: Strategy>(
    target: &str,
    property: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Outcome {
    let source_file = std::panic::Location::caller().file();
    run(target, property, Some(source_file), strategy, test)
}

/// [`check`], persisting failures beside `source_file` when one is given.
fn run<S: Strategy>(
    target: &str,
    property: &str,
    source_file: Option<&'static str>,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Outcome {
    let defaults = Config::default();
    let config = Config {
        source_file,
        failure_persistence: source_file.map(|_| {
            Box::new(FileFailurePersistence::SourceParallel(
                "proptest-regressions",
            )) as _
        }),
        // Filters reject a share of generated values; the budget grows with the cases.
        max_global_rejects: defaults.cases.max(1024),
        ..defaults
    };
    let cases = Cell::new(0u64);
    let failed = Cell::new(false);
    let started = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |value| {
        let result = test(value);
        // After the first failure the runner only shrinks; those runs are not cases.
        if !failed.get() {
            cases.set(cases.get() + 1);
            failed.set(matches!(result, Err(TestCaseError::Fail(_))));
        }
        result
    });
    let outcome = Outcome {
        cases: cases.get(),
        failures: u64::from(result.is_err()),
    };
    report(target, property, outcome, started.elapsed().as_secs_f64());
    if let Err(e) = result {
        panic!("{target}/{property}: {e}");
    }
    outcome
}

/// Appends one line to the report file, if `scripts/fuzz` asked for one.
fn report(target: &str, property: &str, outcome: Outcome, seconds: f64) {
    let Some(path) = std::env::var_os(REPORT_ENV) else {
        return;
    };
    let line = format!(
        "{target}\t{property}\t{}\t{}\t{seconds:.2}\n",
        outcome.cases, outcome.failures
    );
    // One short write per line with O_APPEND: lines of parallel tests do not interleave.
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("cannot append to {}: {e}", path.to_string_lossy());
    }
}

/// Generators the property tests share.
pub mod strategies {
    use proptest::prelude::*;

    /// `base` with up to `max_edits` random edits: a character inserted, deleted or
    /// replaced (by one of `special`, the characters that split the format under test, or
    /// by any character), so inputs stay close to the real shapes.
    pub fn mutated(
        base: impl Strategy<Value = String>,
        special: &'static [char],
        max_edits: usize,
    ) -> impl Strategy<Value = String> {
        let edit = (
            any::<prop::sample::Index>(),
            0u8..3,
            prop_oneof![3 => prop::sample::select(special), 1 => any::<char>()],
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_case_and_stops_at_a_failure() {
        let ok = check("harness", "passes", 0u32..1000, |_| Ok(()));
        assert_eq!(
            ok,
            Outcome {
                cases: u64::from(Config::default().cases),
                failures: 0
            }
        );
        let failing = std::panic::catch_unwind(|| {
            run("harness", "fails", None, 0u32..1000, |n| {
                proptest::prop_assert!(n < 500);
                Ok(())
            })
        });
        let message = failing.unwrap_err();
        let text = message.downcast_ref::<String>().unwrap();
        // Shrunk to the smallest failing value.
        assert!(text.contains("500"), "{text}");
    }
}
