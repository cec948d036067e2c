//! The fault suite's report: runs every scenario of `e2e_tests::faults` and prints the
//! table (scenario, runs, successes, data lost, leftovers, secrets leaked, unclear failure
//! messages). Exits 1 when data was lost, objects were left behind, a secret leaked, a
//! failure message did not say what was done, or a run that had to succeed did not.
//!
//!   cargo run -p e2e-tests --bin fault-report -- [--seed N] [--runs N] [--only TEXT]

use std::process::ExitCode;
use std::time::Instant;

use e2e_tests::faults::{self, Suite};

fn main() -> ExitCode {
    let mut seed = None;
    let mut runs = 1;
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match arg.as_str() {
            "--seed" => seed = Some(value("--seed").parse().expect("--seed is a number")),
            "--runs" => runs = value("--runs").parse().expect("--runs is a number"),
            "--only" => only = Some(value("--only")),
            "-h" | "--help" => {
                println!("fault-report [--seed N] [--runs N] [--only TEXT]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("fault-report: unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    let seed = seed.unwrap_or_else(faults::clock_seed);
    println!("fault suite: seed {seed} (repeat with --seed {seed}), {runs} run(s) a scenario");
    let started = Instant::now();
    let mut suite = Suite::new(seed);
    let mut rows = Vec::new();
    for (target, disturbance) in faults::scenarios() {
        let name = faults::scenario_name(target, disturbance);
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let row_started = Instant::now();
        let row = suite.run(target, disturbance, runs);
        eprintln!("  {name}: {:.1} s", row_started.elapsed().as_secs_f64());
        rows.push(row);
    }
    print!("{}", faults::table(&rows));
    for row in &rows {
        for note in &row.notes {
            println!("  {}: {note}", row.scenario);
        }
    }
    println!("wall time {:.0} s", started.elapsed().as_secs_f64());
    if faults::passed(&rows) {
        ExitCode::SUCCESS
    } else {
        println!("fault suite FAILED (seed {seed})");
        ExitCode::FAILURE
    }
}
