//! Who handles Ctrl-C: the binaries' runner stops a command at once on Ctrl-C, unless a
//! part of it that cleans up on Ctrl-C (a client pod, a wait that reports the backup keeps
//! running) is running; then that part gets a moment to clean up and report.

use std::sync::atomic::{AtomicUsize, Ordering};

static HANDLERS: AtomicUsize = AtomicUsize::new(0);

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
}
