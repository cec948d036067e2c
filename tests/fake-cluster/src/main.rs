//! `fake-cluster`: runs the fake Kubernetes API server standalone (the README's sandbox).
//! Prints the kubeconfig path and serves until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fake_cluster::{FakeCluster, Options};

/// Serve a fake Kubernetes API loaded from YAML manifests.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directories of manifests (`*.yaml`, multi-document) to load, in order.
    #[arg(long, num_args = 1.., required = true)]
    manifests: Vec<PathBuf>,
    /// Directory of CRD YAML files (default: the repository's `crds/velero/`).
    #[arg(long)]
    crds: Option<PathBuf>,
    /// Port on 127.0.0.1 (default: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write the kubeconfig here instead of a temporary file.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Replace text in manifests before loading, e.g. `db.example.com:5432=127.0.0.1:5432`.
    #[arg(long, value_name = "FROM=TO")]
    substitute: Vec<String>,
    /// Do not run the simulated Velero controller.
    #[arg(long)]
    no_velero: bool,
    /// Run Pods whose command is a local program (psql, pg_dump, sh) as local processes.
    #[arg(long)]
    kubelet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut substitutions = Vec::new();
    for s in &args.substitute {
        match s.split_once('=') {
            Some((from, to)) => substitutions.push((from.to_string(), to.to_string())),
            None => {
                eprintln!("error: --substitute {s:?} is not FROM=TO");
                return ExitCode::from(2);
            }
        }
    }
    let cluster = match FakeCluster::start(Options {
        manifest_dirs: args.manifests,
        crd_dir: args.crds,
        substitutions,
        simulate_velero: !args.no_velero,
        kubelet: args.kubelet,
        port: args.port,
        kubeconfig_path: args.kubeconfig_out,
        ..Options::default()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", cluster.kubeconfig_path().display());
    eprintln!(
        "fake API server on {}; try: kubectl --kubeconfig {} get ns   (Ctrl-C stops)",
        cluster.url(),
        cluster.kubeconfig_path().display()
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = rt.block_on(tokio::signal::ctrl_c());
    drop(cluster);
    ExitCode::SUCCESS
}
