//! `sandbox-cluster`: the fake cluster loaded with the fixture platform exactly as the
//! end-to-end tests see it (variants, DB host pointed at the test PostgreSQL from
//! `ASTRO_TEST_PG_*` but reachable only from pods, which a fake kubelet runs as local
//! processes; dates shifted to today, deleted namespaces restorable), served until Ctrl-C
//! or SIGTERM. Used by `scripts/sandbox`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Parsed command line: `--kubeconfig-out FILE [--variant DIR]...`.
struct Args {
    kubeconfig: PathBuf,
    variants: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut kubeconfig = None;
    let mut variants = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kubeconfig-out" => kubeconfig = args.next().map(PathBuf::from),
            "--variant" => variants.push(args.next().ok_or("--variant needs a directory name")?),
            "-h" | "--help" => {
                return Err(
                    "usage: sandbox-cluster --kubeconfig-out FILE [--variant variant-b|variant-c|variant-d|renamed-release|placeholder]..."
                        .into(),
                );
            }
            other => return Err(format!("unexpected argument {other:?} (see --help)")),
        }
    }
    Ok(Args {
        kubeconfig: kubeconfig.ok_or("--kubeconfig-out FILE is required")?,
        variants,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if e2e_tests::try_pg().is_none() {
        eprintln!(
            "sandbox-cluster: ASTRO_TEST_PG_* unset; the DB secrets keep the fixture host (start scripts/test-postgres and source target/test-postgres.env)"
        );
    }
    let variants: Vec<&str> = args.variants.iter().map(String::as_str).collect();
    let kubeconfig = args.kubeconfig.clone();
    // As on a real installation: the database only pods reach, a kubelet running them.
    let cluster = e2e_tests::cluster_builder()
        .variants(&variants)
        .pods_only_db()
        .options(move |o| o.kubeconfig_path = Some(kubeconfig))
        .start();
    println!("{}", cluster.kubeconfig_path().display());
    eprintln!(
        "sandbox-cluster: fake API server on {} (kubeconfig {}); Ctrl-C stops",
        cluster.url(),
        cluster.kubeconfig_path().display()
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sandbox-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    drop(cluster);
    ExitCode::SUCCESS
}
