//! `velero-plugin-astro`: thin binary; the go-plugin server and the actions are in
//! `astro::velero_plugin`. Velero launches it; it is not a command for people.

fn main() -> std::process::ExitCode {
    astro::velero_plugin::server::main()
}
