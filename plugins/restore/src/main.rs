//! Thin binary: parse flags, call the library, print.

use astro::commands::restore::{Cli, run};

fn main() -> std::process::ExitCode {
    let cli: Cli = astro::commands::cli::parse();
    astro::commands::cli::run_main(|| run(cli))
}
