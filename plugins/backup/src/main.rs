//! `kubectl-astro-backup`: thin binary; all logic is in `astro::commands::backup`.

fn main() -> std::process::ExitCode {
    let cli: astro::commands::backup::Cli = astro::commands::cli::parse();
    astro::commands::cli::run_main(|| astro::commands::backup::run(cli))
}
