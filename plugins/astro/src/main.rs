//! `kubectl-astro`: the dispatcher krew puts on PATH; runs `kubectl-astro-<cmd>` beside it.

fn main() -> std::process::ExitCode {
    astro::commands::dispatch::main(std::env::args_os().skip(1).collect())
}
