//! Thin binary: parse flags, call the library, print.

use astro::commands::status::{Cli, run};

fn main() -> std::process::ExitCode {
    let cli: Cli = astro::commands::cli::parse();
    astro::commands::cli::run_main(|| run(cli))
}
