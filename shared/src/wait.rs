//! Waiting for a Velero Backup or Restore to reach a terminal phase, through a watch
//! (re-established from the last resourceVersion, re-listed on 410), with progress.
//!
//! ```no_run
//! # async fn f(client: kube::Client) -> Result<(), astro::wait::WaitError> {
//! use astro::velero::Backup;
//! use astro::wait::{wait_for, WaitOptions, WaitOutcome};
//! let api: kube::Api<Backup> = kube::Api::namespaced(client, "velero");
//! match wait_for(&api, "astro-all-20260101000000", &WaitOptions::default()).await? {
//!     WaitOutcome::Finished { phase, .. } => println!("ended {phase}"),
//!     WaitOutcome::Interrupted { .. } => println!("stopped waiting; the backup keeps running"),
//!     WaitOutcome::TimedOut { .. } => println!("gave up waiting"),
//! }
//! # Ok(()) }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::NamespaceResourceScope;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::velero::{Backup, Restore, Terminal};

/// Consecutive watch errors (each retried with backoff) after which we give up.
const MAX_CONSECUTIVE_ERRORS: u32 = 12;

/// An object whose phase we can wait on: a Velero Backup or Restore.
pub trait Waitable:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Lower-case noun for messages ("backup", "restore").
    const NOUN: &'static str;
    /// `status.phase`, `""` when unset (Velero prints it as `New`).
    fn phase(&self) -> &str;
    /// Items done and the estimated total, when Velero has reported them.
    fn progress(&self) -> Option<(u64, u64)>;
}

impl Waitable for Backup {
    const NOUN: &'static str = "backup";
    fn phase(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.phase.as_ref())
            .map_or("", |p| p.as_str())
    }
    fn progress(&self) -> Option<(u64, u64)> {
        let p = self.status.as_ref()?.progress.as_ref()?;
        Some((count(p.items_backed_up), count(p.total_items)))
    }
}

impl Waitable for Restore {
    const NOUN: &'static str = "restore";
    fn phase(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.phase.as_ref())
            .map_or("", |p| p.as_str())
    }
    fn progress(&self) -> Option<(u64, u64)> {
        let p = self.status.as_ref()?.progress.as_ref()?;
        Some((count(p.items_restored), count(p.total_items)))
    }
}

fn count(n: Option<i64>) -> u64 {
    n.map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// How a wait ended without an error.
#[derive(Debug, Clone)]
pub enum WaitOutcome<K> {
    /// The object reached a terminal phase; `object` is its final state.
    Finished {
        /// Which terminal phase.
        phase: Terminal,
        /// The object as last seen.
        object: K,
    },
    /// Ctrl-C (or the caller's cancel future): we stopped waiting; the object keeps
    /// running on the server.
    Interrupted {
        /// The object as last seen, if it was seen.
        last: Option<K>,
    },
    /// `WaitOptions::timeout` passed; the object keeps running on the server.
    TimedOut {
        /// The object as last seen, if it was seen.
        last: Option<K>,
    },
}

/// How progress is shown while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain periodic lines on stderr.
    Plain,
    /// Nothing.
    Quiet,
}

/// Options for [`wait_for`].
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// How progress is shown.
    pub progress: ProgressMode,
    /// How often a plain status line is printed when nothing changed.
    pub plain_every: Duration,
    /// Give up after this long (the object keeps running).
    pub timeout: Option<Duration>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            progress: ProgressMode::Auto,
            plain_every: Duration::from_secs(10),
            timeout: None,
        }
    }
}

/// Why a wait failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The object does not exist (or disappeared) while we were waiting.
    #[error("{noun} {namespace}/{name} does not exist (it was deleted or never created)")]
    Gone {
        /// "backup" or "restore".
        noun: &'static str,
        /// Velero namespace.
        namespace: String,
        /// Object name.
        name: String,
    },
    /// The watch kept failing.
    #[error("cannot watch {noun} {namespace}/{name}: {source}")]
    Watch {
        /// "backup" or "restore".
        noun: &'static str,
        /// Velero namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// The last watch error.
        source: Box<watcher::Error>,
    },
}

pub(crate) fn api_code(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    }
}

/// Errors that retrying will not fix: no permission, no such resource type.
fn is_fatal(e: &watcher::Error) -> bool {
    matches!(api_code(e), Some(401 | 403 | 404))
}

/// Where a phase stands: still running, or terminal.
pub fn classify(phase: &str) -> Option<Terminal> {
    Terminal::from_phase(phase)
}

/// Waits until the named object reaches `Completed`, `PartiallyFailed`, `Failed` or
/// `FailedValidation`; Ctrl-C stops waiting ([`WaitOutcome::Interrupted`]).
/// Every other phase (`""`, `New`, `Queued`, `ReadyToStart`, `InProgress`,
/// `WaitingForPluginOperations*`, `Finalizing*`, and phases added later) counts as running.
pub async fn wait_for<K: Waitable>(
    api: &Api<K>,
    name: &str,
    opts: &WaitOptions,
) -> Result<WaitOutcome<K>, WaitError> {
    let ctrl_c = async {
        let _handled = crate::interrupt::handled_here();
        crate::interrupt::ctrl_c().await;
    };
    wait_for_until(api, name, opts, ctrl_c).await
}

/// Like [`wait_for`], but stops waiting when `cancel` completes instead of on Ctrl-C.
pub async fn wait_for_until<K, F>(
    api: &Api<K>,
    name: &str,
    opts: &WaitOptions,
    cancel: F,
) -> Result<WaitOutcome<K>, WaitError>
where
    K: Waitable,
    F: Future<Output = ()>,
{
    let namespace = api_namespace(api);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(api.clone(), config).default_backoff();
    futures::pin_mut!(stream);
    futures::pin_mut!(cancel);

    let mut state = WaitState {
        name,
        namespace,
        reporter: Reporter::new::<K>(name, opts),
        last: None,
        seen_in_listing: false,
        errors: 0,
    };
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    futures::pin_mut!(timeout);
    let mut ticker = tokio::time::interval(opts.plain_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;

    loop {
        tokio::select! {
            biased;
            () = &mut cancel => return Ok(state.stopped("stopped waiting", false)),
            () = &mut timeout => return Ok(state.stopped("gave up waiting", true)),
            _ = ticker.tick() => state.reporter.tick(state.last.as_ref()),
            event = stream.next() => {
                let Some(event) = event else {
                    // The watcher stream is infinite; an end means the runtime is shutting down.
                    return Ok(WaitOutcome::Interrupted { last: state.last });
                };
                if let Some(done) = state.on_event(event) {
                    return done;
                }
            }
        }
    }
}

/// The wait so far: what was seen, and how the watch has been doing.
struct WaitState<'a, K> {
    name: &'a str,
    namespace: String,
    reporter: Reporter,
    last: Option<K>,
    seen_in_listing: bool,
    errors: u32,
}

impl<K: Waitable> WaitState<'_, K> {
    /// Ctrl-C or the timeout: the object keeps running on the server.
    fn stopped(mut self, what: &str, timed_out: bool) -> WaitOutcome<K> {
        self.reporter.stop(&format!(
            "{what}; {} {} keeps running on the server",
            K::NOUN,
            self.name
        ));
        if timed_out {
            WaitOutcome::TimedOut { last: self.last }
        } else {
            WaitOutcome::Interrupted { last: self.last }
        }
    }

    fn gone(&mut self) -> Result<WaitOutcome<K>, WaitError> {
        self.reporter.stop("");
        Err(WaitError::Gone {
            noun: K::NOUN,
            namespace: self.namespace.clone(),
            name: self.name.to_owned(),
        })
    }

    /// One watch event: `Some` when the wait is over.
    fn on_event(
        &mut self,
        event: Result<Event<K>, watcher::Error>,
    ) -> Option<Result<WaitOutcome<K>, WaitError>> {
        let event = match event {
            Ok(event) => event,
            Err(e) => return self.on_error(e),
        };
        self.errors = 0;
        let object = match event {
            Event::Init => {
                self.seen_in_listing = false;
                return None;
            }
            Event::InitDone if !self.seen_in_listing => return Some(self.gone()),
            Event::InitDone => return None,
            Event::Delete(_) => return Some(self.gone()),
            Event::Apply(o) | Event::InitApply(o) => o,
        };
        // The field selector already filters; this guards a lax server.
        if object.meta().name.as_deref() != Some(self.name) {
            return None;
        }
        self.seen_in_listing = true;
        self.reporter.update(&object);
        if let Some(phase) = classify(object.phase()) {
            self.reporter.finish(phase);
            return Some(Ok(WaitOutcome::Finished { phase, object }));
        }
        self.last = Some(object);
        None
    }

    /// A watch error: retried (the watcher reconnects) until fatal or too many in a row.
    fn on_error(&mut self, e: watcher::Error) -> Option<Result<WaitOutcome<K>, WaitError>> {
        self.errors += 1;
        if is_fatal(&e) || self.errors >= MAX_CONSECUTIVE_ERRORS {
            self.reporter.stop("");
            return Some(Err(WaitError::Watch {
                noun: K::NOUN,
                namespace: self.namespace.clone(),
                name: self.name.to_owned(),
                source: Box::new(e),
            }));
        }
        self.reporter
            .note(&format!("watch interrupted ({e}); reconnecting"));
        None
    }
}

fn api_namespace<K: Waitable>(api: &Api<K>) -> String {
    // `Api` does not expose its namespace; the request URL does.
    namespace_of_url(api.resource_url())
}

fn namespace_of_url(url: &str) -> String {
    url.split("/namespaces/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// A progress bar on stderr counting `unit` (`{pos}/{len} <unit>`), ticking steadily.
/// Callers decide first whether stderr is a terminal ([`ProgressMode::Auto`]).
pub fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{spinner}} {{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}})");
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Shows progress: an indicatif bar on a TTY, plain lines on stderr otherwise.
struct Reporter {
    noun: &'static str,
    name: String,
    bar: Option<ProgressBar>,
    plain: bool,
    started: Instant,
    last_line: String,
}

impl Reporter {
    fn new<K: Waitable>(name: &str, opts: &WaitOptions) -> Self {
        let tty = std::io::stderr().is_terminal();
        let (bar, plain) = match opts.progress {
            ProgressMode::Quiet => (None, false),
            ProgressMode::Plain => (None, true),
            ProgressMode::Auto if tty => {
                let bar = progress_bar(0, "items");
                bar.set_message(format!("{} {name}: waiting", K::NOUN));
                (Some(bar), false)
            }
            ProgressMode::Auto => (None, true),
        };
        Reporter {
            noun: K::NOUN,
            name: name.to_owned(),
            bar,
            plain,
            started: Instant::now(),
            last_line: String::new(),
        }
    }

    fn line<K: Waitable>(&self, object: &K) -> String {
        let phase = match object.phase() {
            "" => "New",
            p => p,
        };
        match object.progress() {
            Some((done, total)) if total > 0 => {
                format!("{} {}: {phase}, {done}/{total} items", self.noun, self.name)
            }
            _ => format!("{} {}: {phase}", self.noun, self.name),
        }
    }

    fn update<K: Waitable>(&mut self, object: &K) {
        let line = self.line(object);
        if let Some(bar) = &self.bar {
            if let Some((done, total)) = object.progress() {
                bar.set_length(total.max(done));
                bar.set_position(done);
            }
            let phase = if object.phase().is_empty() {
                "New"
            } else {
                object.phase()
            };
            bar.set_message(format!("{} {}: {phase}", self.noun, self.name));
        } else if self.plain && line != self.last_line {
            eprintln!("{line} ({}s)", self.started.elapsed().as_secs());
        }
        self.last_line = line;
    }

    fn tick<K: Waitable>(&mut self, last: Option<&K>) {
        if self.plain {
            let line = last.map_or_else(
                || format!("{} {}: waiting", self.noun, self.name),
                |o| self.line(o),
            );
            eprintln!(
                "{line} ({}s, still waiting)",
                self.started.elapsed().as_secs()
            );
        }
    }

    fn note(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.println(message);
        } else if self.plain {
            eprintln!("{message}");
        }
    }

    fn finish(&mut self, phase: Terminal) {
        let message = format!(
            "{} {} finished: {phase} after {}s",
            self.noun,
            self.name,
            self.started.elapsed().as_secs()
        );
        self.stop(&message);
    }

    fn stop(&mut self, message: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !message.is_empty() && (self.plain || self.bar.is_none()) {
            eprintln!("{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_and_terminal_phases() {
        for running in [
            "",
            "New",
            "Queued",
            "ReadyToStart",
            "InProgress",
            "WaitingForPluginOperations",
            "WaitingForPluginOperationsPartiallyFailed",
            "Finalizing",
            "FinalizingPartiallyFailed",
            "SomethingNewInMain",
        ] {
            assert_eq!(classify(running), None, "{running}");
        }
        assert_eq!(classify("Completed"), Some(Terminal::Completed));
        assert_eq!(classify("PartiallyFailed"), Some(Terminal::PartiallyFailed));
        assert_eq!(classify("Failed"), Some(Terminal::Failed));
        assert_eq!(
            classify("FailedValidation"),
            Some(Terminal::FailedValidation)
        );
    }

    #[test]
    fn namespace_from_api_url() {
        assert_eq!(
            namespace_of_url("/apis/velero.io/v1/namespaces/velero/backups"),
            "velero"
        );
        assert_eq!(namespace_of_url("/apis/velero.io/v1/backups"), "");
    }
}
