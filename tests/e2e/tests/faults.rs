//! The fault suite with assertions (the same scenarios as the `fault-report` binary):
//! every scenario once, seeded by `ASTRO_FAULT_SEED` (default 7, so `cargo test` runs the
//! same faults every time; the seed is printed).
//! One test, run sequentially: the PostgreSQL-restart scenarios restart the suite's own
//! server, which no other scenario may be using at the time.

use e2e_tests::faults::{self, Suite};

#[test]
fn every_scenario_loses_nothing_leaves_nothing_leaks_nothing() {
    let seed = std::env::var("ASTRO_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    eprintln!("fault suite seed {seed} (repeat with ASTRO_FAULT_SEED={seed})");
    let mut suite = Suite::new(seed);
    let rows: Vec<_> = faults::scenarios()
        .into_iter()
        .map(|(target, disturbance)| suite.run(target, disturbance, 1))
        .collect();
    let table = faults::table(&rows);
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("{}: {n}", r.scenario)))
        .collect();
    assert!(
        faults::passed(&rows),
        "seed {seed}\n{table}{}",
        notes.join("\n")
    );
    eprintln!("{table}");
}
