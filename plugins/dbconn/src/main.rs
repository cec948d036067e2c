//! `kubectl-astro-dbconn`: thin binary; all logic is in `astro::commands::dbconn`.

fn main() -> std::process::ExitCode {
    let cli: astro::commands::dbconn::Cli = astro::commands::cli::parse();
    astro::commands::cli::run_main(|| astro::commands::dbconn::run(cli))
}
