//! Who handles Ctrl-C: the binaries' runner stops a command at once on Ctrl-C, unless a
//! part of it that cleans up on Ctrl-C (a client pod, a wait that reports the backup keeps
//! running) is running; then that part gets a moment to clean up and report.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

static HANDLERS: AtomicUsize = AtomicUsize::new(0);

/// Set once Ctrl-C was pressed: a part that starts listening after the signal came (it
/// arrived while that part's request was in flight) still sees it.
static REQUESTED: OnceLock<Flag> = OnceLock::new();

/// A flag that stays set, and can be awaited.
struct Flag(watch::Sender<bool>);

impl Flag {
    fn new() -> Self {
        Flag(watch::channel(false).0)
    }

    fn set(&self) {
        self.0.send_replace(true);
    }

    async fn is_set(&self) {
        let mut seen = self.0.subscribe();
        // The sender lives as long as the flag: this only returns once it is set.
        let _ = seen.wait_for(|set| *set).await;
    }
}

fn requested() -> &'static Flag {
    REQUESTED.get_or_init(Flag::new)
}

/// Records that Ctrl-C was pressed (the runner calls this when it sees the signal).
pub fn mark_requested() {
    requested().set();
}

/// Resolves on Ctrl-C: at once if it was pressed already, otherwise when it comes (never,
/// if the handler cannot be installed).
pub async fn ctrl_c() {
    tokio::select! {
        () = requested().is_set() => {}
        Ok(()) = tokio::signal::ctrl_c() => mark_requested(),
    }
}

/// Held while code that handles Ctrl-C itself runs.
#[derive(Debug)]
pub struct Handled(());

/// Marks Ctrl-C as handled here until the guard is dropped.
pub fn handled_here() -> Handled {
    HANDLERS.fetch_add(1, Ordering::SeqCst);
    Handled(())
}

impl Drop for Handled {
    fn drop(&mut self) {
        HANDLERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether some running code handles Ctrl-C itself.
pub fn handled() -> bool {
    HANDLERS.load(Ordering::SeqCst) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_alive() {
        assert!(!handled());
        let a = handled_here();
        let b = handled_here();
        drop(a);
        assert!(handled());
        drop(b);
        assert!(!handled());
    }

    #[tokio::test]
    async fn a_flag_set_before_listening_is_still_seen() {
        let flag = Flag::new();
        let wait = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, flag.is_set()).await.is_err());
        flag.set();
        assert!(tokio::time::timeout(wait, flag.is_set()).await.is_ok());
        assert!(tokio::time::timeout(wait, flag.is_set()).await.is_ok());
    }
}
