//! The local terminal during an attached session: raw mode (restored on drop) and size.
//! Raw mode sends Ctrl-C and friends to the remote psql instead of killing this process.

use std::io::IsTerminal;

use kube::api::TerminalSize;
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};

/// Raw mode on stdin while this value lives.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Switches stdin to raw mode.
    pub fn enable() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Whether stdin and stdout are both terminals (an interactive session makes sense).
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The size of the terminal on stdout, if it is one.
pub fn size() -> Option<TerminalSize> {
    let ws = tcgetwinsize(std::io::stdout()).ok()?;
    Some(TerminalSize {
        width: ws.ws_col,
        height: ws.ws_row,
    })
}
