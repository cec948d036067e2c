//! `kubectl_complete-astro`: kubectl (1.26+) runs it to complete `kubectl astro` arguments.

fn main() {
    // kubectl calls `kubectl_complete-astro __complete <words…>`; accept it with or without that word.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .skip_while(|w| w == "__complete" || w == "__completeNoDesc")
        .collect();
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(astro::commands::completion::complete(&words));
}
