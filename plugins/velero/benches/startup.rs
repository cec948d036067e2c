//! Benchmark of the plugin binary as Velero uses it: its size, the time from spawn to
//! a valid handshake line, and a whole discovery cycle (launch, `ListPlugins`,
//! `Shutdown`, exit), which Velero pays at every server start and every restore.
//! Prints figures, asserts nothing. `cargo bench -p velero-plugin-astro` measures the
//! release-profile binary; `-- --runs N` sets the number of launches (default 30),
//! `-- --binary PATH` measures another build (the static one of `scripts/build-velero-plugin`).

use std::path::Path;
use std::time::{Duration, Instant};

use astro::velero_plugin::host::{LaunchOptions, PluginProcess};

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:7.2} ms   p90 {:7.2} ms   max {:7.2} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[v.len() - 1])
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(30usize)
        .max(1);
    // `-- --binary PATH` measures another build (e.g. scripts/build-velero-plugin's).
    let path = args
        .iter()
        .position(|a| a == "--binary")
        .and_then(|i| args.get(i + 1))
        .map_or(
            Path::new(env!("CARGO_BIN_EXE_velero-plugin-astro")),
            Path::new,
        );
    let size = std::fs::metadata(path).expect("binary built").len();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (mut handshake, mut exit, mut cycle) = (Vec::new(), Vec::new(), Vec::new());
    runtime.block_on(async {
        for _ in 0..runs {
            let started = Instant::now();
            let p = PluginProcess::launch(path, &LaunchOptions::default())
                .await
                .unwrap_or_else(|f| panic!("{}: {:?}", f.error, f.stderr));
            handshake.push(p.start_time);
            p.list_plugins().await.expect("ListPlugins");
            let listed = started.elapsed();
            let report = p.kill().await;
            assert!(report.graceful, "not graceful: {report:?}");
            exit.push(report.elapsed);
            cycle.push(listed + report.elapsed);
        }
    });
    println!("velero-plugin-astro  {}", path.display());
    println!(
        "  binary size            {size} bytes ({:.2} MiB)",
        size as f64 / 1024.0 / 1024.0
    );
    println!(
        "  spawn → handshake      {}   ({runs} runs)",
        stats(handshake)
    );
    println!("  Shutdown → exit        {}", stats(exit));
    println!("  launch+list+shutdown   {}", stats(cycle));
}
