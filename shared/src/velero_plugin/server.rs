//! The go-plugin gRPC server Velero talks to: check the cookie, bind a unix socket,
//! print the one handshake line, then serve PluginLister, RestoreItemAction (v1),
//! health, and go-plugin's controller (Shutdown), stdio and broker services.
//!
//! Rules that keep the Velero server alive: nothing but the handshake line on stdout,
//! JSON log lines with string fields on stderr, errors as gRPC statuses.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OnceCell, watch};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::actions::{self, ACTIONS, Action, KIND, Outcome};
use super::config::{self, EndpointConfig};
use super::handshake::{self, COOKIE_KEY, Handshake, HandshakeError, Network};
use super::log::{Level, log};
use super::proto::generated::plugin_lister_server::{PluginLister, PluginListerServer};
use super::proto::generated::restore_item_action_server::{
    RestoreItemAction, RestoreItemActionServer,
};
use super::proto::generated::{
    Empty, ListPluginsResponse, PluginIdentifier, ResourceSelector,
    RestoreItemActionAppliesToRequest, RestoreItemActionAppliesToResponse,
    RestoreItemActionExecuteRequest, RestoreItemActionExecuteResponse,
};
use super::proto::plugin::grpc_broker_server::{GrpcBroker, GrpcBrokerServer};
use super::proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use super::proto::plugin::grpc_stdio_server::{GrpcStdio, GrpcStdioServer};
use super::proto::plugin::{self as goplugin, ConnInfo, StdioData};

/// Message size limit both ways: go-plugin's client allows MaxInt32, tonic only 4 MiB.
pub const MAX_MESSAGE: usize = i32::MAX as usize;
/// How long a graceful stop may take after `Shutdown`; Velero SIGKILLs after 2 s.
pub const STOP_GRACE: Duration = Duration::from_millis(800);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Not started by Velero.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The socket.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Stdout is gone.
    #[error("cannot write the handshake line: {0}")]
    Stdout(#[source] std::io::Error),
    /// The runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The gRPC server.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Shared by every service of one process.
#[derive(Debug)]
struct State {
    /// argv[0] verbatim: Velero later launches exactly this path.
    argv0: String,
    /// The endpoint configuration, read once per process (a process lives for one restore).
    config: OnceCell<Option<EndpointConfig>>,
    /// Set by `Shutdown` or SIGTERM.
    stop: watch::Sender<bool>,
    /// Whether "the ConfigMap is for another restore" was logged (once is enough).
    other_restore_logged: AtomicBool,
}

/// `metadata.name` of the Restore Velero sends with each item ("" if unreadable).
fn restore_name(restore: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(restore)
        .ok()
        .and_then(|r| r.pointer("/metadata/name")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl State {
    async fn config(&self) -> Option<&EndpointConfig> {
        self.config
            .get_or_init(|| async {
                let namespace = config::velero_namespace();
                match config::load(&namespace).await {
                    Ok(Some(c)) => {
                        let new = c.new.as_ref().map(ToString::to_string).unwrap_or_default();
                        let instance = c
                            .sqlproxy
                            .as_ref()
                            .map(|(_, to)| to.as_str().to_owned())
                            .unwrap_or_default();
                        log(
                            Level::Info,
                            "db-endpoint configured: restored database secrets move to the new endpoint",
                            &[
                                ("namespace", &namespace),
                                ("newEndpoint", &new),
                                ("newInstance", &instance),
                            ],
                        );
                        Some(c)
                    }
                    Ok(None) => {
                        log(
                            Level::Info,
                            "no db-endpoint ConfigMap: items pass through unchanged",
                            &[("namespace", &namespace)],
                        );
                        None
                    }
                    // Restoring the old values beats failing every secret of the restore;
                    // `restore endpoint` moves them afterwards.
                    Err(e) => {
                        log(
                            Level::Error,
                            &format!("db-endpoint configuration unusable, items pass through unchanged: {e}"),
                            &[("namespace", &namespace)],
                        );
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

#[derive(Debug, Clone)]
struct Svc(Arc<State>);

/// A stream that sends nothing and ends when the process stops.
type Quiet<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn quiet<T: Send + 'static>(stopped: impl Future<Output = ()> + Send + 'static) -> Quiet<T> {
    Box::pin(futures::stream::once(stopped).filter_map(|()| futures::future::ready(None)))
}

#[tonic::async_trait]
impl PluginLister for Svc {
    async fn list_plugins(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let plugins = ACTIONS
            .iter()
            .map(|a| PluginIdentifier {
                command: self.0.argv0.clone(),
                kind: KIND.to_owned(),
                name: a.name().to_owned(),
            })
            .collect();
        Ok(Response::new(ListPluginsResponse { plugins }))
    }
}

fn status(e: &actions::ActionError) -> Status {
    // Go plugins answer every error with code Unknown.
    Status::unknown(e.to_string())
}

#[tonic::async_trait]
impl RestoreItemAction for Svc {
    async fn applies_to(
        &self,
        request: Request<RestoreItemActionAppliesToRequest>,
    ) -> Result<Response<RestoreItemActionAppliesToResponse>, Status> {
        let action = Action::from_name(&request.get_ref().plugin).map_err(|e| status(&e))?;
        let s = action.applies_to();
        Ok(Response::new(RestoreItemActionAppliesToResponse {
            resource_selector: Some(ResourceSelector {
                included_resources: s
                    .included_resources
                    .iter()
                    .map(|r| (*r).to_owned())
                    .collect(),
                selector: s.label_selector,
                ..ResourceSelector::default()
            }),
        }))
    }

    async fn execute(
        &self,
        request: Request<RestoreItemActionExecuteRequest>,
    ) -> Result<Response<RestoreItemActionExecuteResponse>, Status> {
        let request = request.into_inner();
        let action = Action::from_name(&request.plugin).map_err(|e| status(&e))?;
        let config = match action {
            Action::DbEndpoint => self.0.config().await.filter(|c| {
                let restore = restore_name(&request.restore);
                let applies = c.applies_to_restore(&restore);
                if !applies && !self.0.other_restore_logged.swap(true, Ordering::Relaxed) {
                    log(
                        Level::Info,
                        "db-endpoint ConfigMap is for another restore: items pass through unchanged",
                        &[
                            ("restore", &restore),
                            ("configuredFor", c.restore.as_deref().unwrap_or_default()),
                        ],
                    );
                }
                applies
            }),
            Action::SkipRedisData => None,
        };
        let decision = actions::execute(action, &request.item, config).map_err(|e| {
            log(
                Level::Error,
                &format!("cannot handle item: {e}"),
                &[("plugin", action.name())],
            );
            status(&e)
        })?;
        for note in &decision.notes {
            log(Level::Info, note, &[("plugin", action.name())]);
        }
        let (item, skip_restore) = match decision.outcome {
            // Echo the bytes: an object we do not concern comes back byte for byte.
            Outcome::Unchanged => (request.item, false),
            Outcome::Replace(bytes) => (bytes, false),
            Outcome::Skip => (request.item, true),
        };
        Ok(Response::new(RestoreItemActionExecuteResponse {
            item,
            additional_items: Vec::new(),
            skip_restore,
        }))
    }
}

#[tonic::async_trait]
impl GrpcController for Svc {
    async fn shutdown(
        &self,
        _: Request<goplugin::Empty>,
    ) -> Result<Response<goplugin::Empty>, Status> {
        log(Level::Debug, "shutdown requested", &[]);
        self.0.stop.send_replace(true);
        Ok(Response::new(goplugin::Empty {}))
    }
}

#[tonic::async_trait]
impl GrpcStdio for Svc {
    type StreamStdioStream = Quiet<StdioData>;

    // Kept open and silent: we never write to stdout/stderr through go-plugin's pipe
    // (logs go straight to stderr), and an UNIMPLEMENTED here can race in the client.
    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(quiet(self.0.stopped())))
    }
}

#[tonic::async_trait]
impl GrpcBroker for Svc {
    type StartStreamStream = Quiet<ConnInfo>;

    // Velero never uses the broker; accept the stream, drain it, send nothing.
    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        Ok(Response::new(quiet(self.0.stopped())))
    }
}

/// Removes the socket file whatever way `serve` ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn socket_path() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "velero-plugin-astro-{}-{nanos:09}",
        std::process::id()
    ))
}

fn watch_signals(state: &Arc<State>) {
    use tokio::signal::unix::{SignalKind, signal};
    // Go plugins ignore SIGINT (a Ctrl-C at Velero's terminal reaches the whole group);
    // Velero stops plugins through Shutdown or a kill.
    if let Ok(mut int) = signal(SignalKind::interrupt()) {
        tokio::spawn(async move {
            while int.recv().await.is_some() {
                log(Level::Debug, "SIGINT ignored", &[]);
            }
        });
    }
    if let Ok(mut term) = signal(SignalKind::terminate()) {
        let state = Arc::clone(state);
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                state.stop.send_replace(true);
            }
        });
    }
}

/// Where the server listens.
enum Listener {
    /// A unix socket (removed at exit), what Go plugins use on Linux.
    Unix(UnixListener, SocketFile),
    /// 127.0.0.1, when no socket can be made (e.g. a read-only temp dir).
    Tcp(TcpListener),
}

/// Binds a unix socket in the temp dir, else a TCP port on 127.0.0.1: a plugin that
/// fails to start stops the whole Velero server from starting.
async fn bind() -> Result<(Listener, Handshake), ServerError> {
    let path = socket_path();
    match UnixListener::bind(&path) {
        Ok(listener) => {
            let address = path.to_string_lossy().into_owned();
            Ok((
                Listener::Unix(listener, SocketFile(path)),
                Handshake {
                    network: Network::Unix,
                    address,
                },
            ))
        }
        Err(unix) => {
            let listener =
                TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .map_err(|_| ServerError::Bind {
                        path: path.clone(),
                        source: unix,
                    })?;
            let address = listener
                .local_addr()
                .map_err(|source| ServerError::Bind { path, source })?
                .to_string();
            Ok((
                Listener::Tcp(listener),
                Handshake {
                    network: Network::Tcp,
                    address,
                },
            ))
        }
    }
}

/// Binds, prints the handshake line, and serves until `Shutdown` (or SIGTERM).
pub async fn serve(argv0: String) -> Result<(), ServerError> {
    // Bound before the line is printed: Velero dials at once, without waiting for ready.
    let (listener, handshake) = bind().await?;
    let (stop, _) = watch::channel(false);
    let state = Arc::new(State {
        argv0,
        config: OnceCell::new(),
        stop,
        other_restore_logged: AtomicBool::new(false),
    });
    watch_signals(&state);
    let svc = Svc(Arc::clone(&state));
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(
            PluginListerServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            RestoreItemActionServer::new(svc.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(GrpcControllerServer::new(svc.clone()))
        .add_service(GrpcStdioServer::new(svc.clone()))
        .add_service(GrpcBrokerServer::new(svc));
    let (server, _socket): (Pin<Box<dyn Future<Output = _> + Send>>, _) = match listener {
        Listener::Unix(l, file) => (
            Box::pin(
                router.serve_with_incoming_shutdown(UnixListenerStream::new(l), state.stopped()),
            ),
            Some(file),
        ),
        Listener::Tcp(l) => (
            Box::pin(
                router.serve_with_incoming_shutdown(TcpListenerStream::new(l), state.stopped()),
            ),
            None,
        ),
    };
    let line = handshake.line();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(ServerError::Stdout)?;
    }
    log(
        Level::Debug,
        "velero-plugin-astro serving",
        &[("version", env!("CARGO_PKG_VERSION"))],
    );
    let stopped = state.stopped();
    tokio::select! {
        result = server => result?,
        // A client that keeps its connection open must not hold up the exit.
        () = async { stopped.await; tokio::time::sleep(STOP_GRACE).await } => {
            log(Level::Debug, "connections still open after Shutdown; exiting anyway", &[]);
        }
    }
    Ok(())
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or_default()
}

/// The whole program: what `velero-plugin-astro`'s `main` calls. Arguments are Velero's
/// own server flags and are ignored.
pub fn main() -> ExitCode {
    let argv0 = std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) = handshake::check_cookie(std::env::var(COOKIE_KEY).ok().as_deref()) {
        // A person ran it: plain text for them.
        eprintln!("velero-plugin-astro: {e}");
        return ExitCode::FAILURE;
    }
    // Even a panic is a JSON log line: Velero's parser then shows it as an error instead
    // of a raw line (and the release profile aborts; Velero restarts the process).
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        log(
            Level::Error,
            &format!("panic: {}", panic_message(info.payload())),
            &[("panicAt", &at)],
        );
    }));
    let runtime = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            log(Level::Error, &ServerError::Runtime(e).to_string(), &[]);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(argv0));
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(Level::Error, &e.to_string(), &[]);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_are_text() {
        let of = |f: fn()| std::panic::catch_unwind(f).unwrap_err();
        let literal = of(|| panic!("plain"));
        let formatted = of(|| panic!("{}", 42));
        let other = of(|| std::panic::panic_any(7_u8));
        assert_eq!(panic_message(literal.as_ref()), "plain");
        assert_eq!(panic_message(formatted.as_ref()), "42");
        assert_eq!(panic_message(other.as_ref()), "");
    }
}
