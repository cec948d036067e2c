//! Thin binary: parse flags, call the library, print.

fn main() -> std::process::ExitCode {
    astro::cli::run_main(|| async { Ok(astro::exit::ExitStatus::Success) })
}
