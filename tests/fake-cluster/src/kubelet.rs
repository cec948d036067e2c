//! A fake kubelet: Pods whose container command is a program on this machine run as local
//! processes (env resolved from Secrets/ConfigMaps), with logs, attach and exec over WebSocket.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::store::{ApiError, EventType, now};
use crate::{Shared, lock};

/// Log bytes kept per pod (older output is dropped first).
const LOG_CAP: usize = 4 << 20;

/// One running (or finished) pod process.
pub(crate) struct PodProcess {
    env: Vec<(String, String)>,
    container: String,
    tty: bool,
    stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    output: tokio::sync::broadcast::Sender<(u8, Bytes)>,
    logs: Mutex<Vec<u8>>,
    exit: tokio::sync::watch::Sender<Option<i32>>,
}

/// Processes by `namespace/name`.
#[derive(Default)]
pub(crate) struct KubeletState {
    pods: HashMap<String, Arc<PodProcess>>,
}

fn program_on_path(cmd: &str) -> Option<std::path::PathBuf> {
    if cmd.contains('/') {
        let p = std::path::PathBuf::from(cmd);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(cmd))
            .find(|p| p.is_file())
    })
}

/// Watches for new Pods and runs the ones it can.
pub(crate) async fn run(shared: Arc<Shared>) {
    let (mut changes, mut last, pods_t) = {
        let st = lock(&shared.store);
        (
            st.subscribe(),
            st.resource_version(),
            st.find_kind("v1", "Pod").unwrap_or_default(),
        )
    };
    loop {
        let new: Vec<Arc<Value>> = {
            let st = lock(&shared.store);
            let out = st
                .events_after(last)
                .filter(|e| e.kind == EventType::Added && e.type_idx == pods_t)
                .map(|e| e.object.clone())
                .collect();
            last = st.resource_version();
            out
        };
        for pod in new {
            let cmd = pod
                .pointer("/spec/containers/0/command/0")
                .and_then(Value::as_str)
                .and_then(program_on_path);
            if let Some(program) = cmd {
                tokio::spawn(run_pod(shared.clone(), pods_t, pod, program));
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

fn meta(obj: &Value, f: &str) -> String {
    obj.pointer(&format!("/metadata/{f}"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Cluster DNS for a pod process: every pods-only host name in `text` becomes its address
/// (see `Options::pod_hosts`).
fn pod_dns(hosts: &[(String, String)], text: &str) -> String {
    hosts.iter().fold(text.to_owned(), |text, (name, address)| {
        text.replace(name, address)
    })
}

/// Resolves a container's env; Err names the missing Secret/ConfigMap or key.
fn resolve_env(
    shared: &Shared,
    ns: &str,
    container: &Value,
) -> Result<Vec<(String, String)>, String> {
    let st = lock(&shared.store);
    let secrets = st.find_kind("v1", "Secret");
    let configmaps = st.find_kind("v1", "ConfigMap");
    let mut out = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        if let Some(v) = e["value"].as_str() {
            out.push((name.to_string(), v.to_string()));
            continue;
        }
        let from = &e["valueFrom"];
        let (kind, r, t) = if from["secretKeyRef"].is_object() {
            ("secret", &from["secretKeyRef"], secrets)
        } else if from["configMapKeyRef"].is_object() {
            ("configmap", &from["configMapKeyRef"], configmaps)
        } else {
            continue;
        };
        let optional = r["optional"] == json!(true);
        let obj_name = r["name"].as_str().unwrap_or("");
        let key = r["key"].as_str().unwrap_or("");
        let Some(obj) = t.and_then(|t| st.get(t, ns, obj_name)) else {
            if optional {
                continue;
            }
            return Err(format!("{kind} \"{obj_name}\" not found"));
        };
        let value = if kind == "secret" {
            obj["data"][key].as_str().and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .ok()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            })
        } else {
            obj["data"][key].as_str().map(String::from)
        };
        match value {
            Some(v) => out.push((name.to_string(), v)),
            None if optional => {}
            None => return Err(format!("couldn't find key {key} in {kind} {ns}/{obj_name}")),
        }
    }
    Ok(out)
}

/// Sets the pod's status (phase + first container state); false when the pod is gone.
fn set_status(shared: &Shared, t: usize, ns: &str, name: &str, uid: &str, status: Value) -> bool {
    let mut st = lock(&shared.store);
    let Some(cur) = st.get(t, ns, name) else {
        return false;
    };
    if meta(&cur, "uid") != uid {
        return false;
    }
    let mut obj = (*cur).clone();
    obj["status"] = status;
    st.update(t, ns, name, obj, Some("status"), false).is_ok()
}

fn container_status(container: &Value, state: Value, ready: bool) -> Value {
    json!({"name": container["name"], "image": container["image"], "imageID": "", "ready": ready,
        "started": ready, "restartCount": 0, "state": state})
}

async fn run_pod(shared: Arc<Shared>, t: usize, pod: Arc<Value>, program: std::path::PathBuf) {
    let ns = meta(&pod, "namespace");
    let name = meta(&pod, "name");
    let uid = meta(&pod, "uid");
    let container = pod["spec"]["containers"][0].clone();
    let key = format!("{ns}/{name}");
    let exists = |shared: &Shared| {
        lock(&shared.store)
            .get(t, &ns, &name)
            .is_some_and(|p| meta(&p, "uid") == uid)
    };
    // Like the kubelet: retry while a referenced Secret is missing (it may come later).
    let env = loop {
        match resolve_env(&shared, &ns, &container) {
            Ok(env) => break env,
            Err(message) => {
                set_status(
                    &shared,
                    t,
                    &ns,
                    &name,
                    &uid,
                    json!({"phase": "Pending",
                    "containerStatuses": [container_status(&container,
                        json!({"waiting": {"reason": "CreateContainerConfigError", "message": message}}), false)]}),
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                if !exists(&shared) {
                    return;
                }
            }
        }
    };
    let mut args: Vec<String> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .filter_map(|s| s.as_str().map(String::from))
        .collect();
    args.extend(
        container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from)),
    );
    let pod_dns = |text: &str| pod_dns(&shared.pod_hosts, text);
    // HOSTNAME first (the pod's own env may override it), in exec sessions too, as in a
    // container: it also tells which pod a process on this machine belongs to.
    let env: Vec<(String, String)> = std::iter::once(("HOSTNAME".to_owned(), name.clone()))
        .chain(env.into_iter().map(|(k, v)| (k, pod_dns(&v))))
        .collect();
    let args: Vec<String> = args.iter().map(|a| pod_dns(a)).collect();
    let want_stdin = container["stdin"] == json!(true);
    let tty = container["tty"] == json!(true);
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if want_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            set_status(
                &shared,
                t,
                &ns,
                &name,
                &uid,
                json!({"phase": "Failed",
                "containerStatuses": [container_status(&container,
                    json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": e.to_string(),
                        "startedAt": started, "finishedAt": now()}}), false)]}),
            );
            return;
        }
    };
    let (output, _) = tokio::sync::broadcast::channel(1024);
    let (exit, _) = tokio::sync::watch::channel(None);
    let proc = Arc::new(PodProcess {
        env,
        container: container["name"].as_str().unwrap_or("").to_string(),
        tty,
        stdin: tokio::sync::Mutex::new(child.stdin.take()),
        output,
        logs: Mutex::new(Vec::new()),
        exit,
    });
    lock(&shared.kubelet).pods.insert(key.clone(), proc.clone());
    set_status(
        &shared,
        t,
        &ns,
        &name,
        &uid,
        json!({"phase": "Running", "startTime": started, "podIP": "127.0.0.1",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [container_status(&container, json!({"running": {"startedAt": started}}), true)]}),
    );

    let readers: Vec<_> = [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            if tty { 1 } else { 2 },
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ]
    .into_iter()
    .filter_map(|(ch, r)| r.map(|r| (ch, r)))
    .map(|(ch, mut r)| {
        let proc = proc.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                {
                    let mut logs = lock(&proc.logs);
                    logs.extend_from_slice(&buf[..n]);
                    if logs.len() > LOG_CAP {
                        let cut = logs.len() - LOG_CAP;
                        logs.drain(..cut);
                    }
                }
                let _ = proc.output.send((ch, Bytes::copy_from_slice(&buf[..n])));
            }
        })
    })
    .collect();

    let deadline = pod["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut killed_reason = None;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.ok(),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if !exists(&shared) {
                    let _ = child.kill().await;
                    killed_reason = Some("Deleted");
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = child.kill().await;
                    killed_reason = Some("DeadlineExceeded");
                }
            }
        }
    };
    for r in readers {
        let _ = r.await;
    }
    let code = status.and_then(|s| s.code()).unwrap_or(137);
    proc.exit.send_replace(Some(code));
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let mut st = json!({"phase": phase, "startTime": started, "podIP": "127.0.0.1",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [container_status(&container, json!({"terminated": {"exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": started, "finishedAt": now()}}), false)]});
    if let Some(r) = killed_reason {
        st["reason"] = json!(r);
    }
    set_status(&shared, t, &ns, &name, &uid, st);
    // Keep the record while the Pod exists (logs stay readable); forget it afterwards.
    while exists(&shared) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut k = lock(&shared.kubelet);
    if k.pods.get(&key).is_some_and(|p| Arc::ptr_eq(p, &proc)) {
        k.pods.remove(&key);
    }
}

fn text(code: u16, body: String) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn api_error(e: &ApiError) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(e.status().to_string()))
        .unwrap_or_default()
}

fn lookup(shared: &Shared, ns: &str, name: &str) -> Result<Option<Arc<PodProcess>>, ApiError> {
    let st = lock(&shared.store);
    let t = st.find_kind("v1", "Pod").unwrap_or_default();
    if st.get(t, ns, name).is_none() {
        return Err(ApiError::not_found(&st.types[t], name));
    }
    Ok(lock(&shared.kubelet)
        .pods
        .get(&format!("{ns}/{name}"))
        .cloned())
}

/// `GET …/pods/{name}/log` (`follow`, `tailLines` honoured).
pub(crate) fn logs(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Response {
    let proc = match lookup(shared, ns, name) {
        Ok(Some(p)) => p,
        Ok(None) => {
            let container = query.get("container").cloned().unwrap_or_default();
            return api_error(&ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )));
        }
        Err(e) => return api_error(&e),
    };
    let mut data = lock(&proc.logs).clone();
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let text = String::from_utf8_lossy(&data).into_owned();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        data = lines[lines.len().saturating_sub(n)..].concat().into_bytes();
    }
    if query.get("follow").is_some_and(|f| f == "true") && proc.exit.borrow().is_none() {
        let mut rx = proc.output.subscribe();
        let mut exit = proc.exit.subscribe();
        let (tx, body_rx) =
            tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Bytes::from(data))).await;
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Ok((_, b)) => if tx.send(Ok(b)).await.is_err() { return },
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                    _ = exit.changed() => {
                        while let Ok((_, b)) = rx.try_recv() {
                            let _ = tx.send(Ok(b)).await;
                        }
                        return;
                    }
                }
            }
        });
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from_stream(futures::stream::unfold(
                body_rx,
                |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
            )))
            .unwrap_or_default();
    }
    text(200, String::from_utf8_lossy(&data).into_owned())
}

fn status_message(code: Option<i32>) -> Message {
    let status = match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(c) => {
            json!({"metadata": {}, "status": "Failure", "message": format!("command terminated with non-zero exit code: exit status {c}"),
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]}})
        }
        None => {
            json!({"metadata": {}, "status": "Failure", "message": "container is not running", "reason": "InternalError"})
        }
    };
    let mut bytes = vec![3u8];
    bytes.extend_from_slice(status.to_string().as_bytes());
    Message::Binary(bytes.into())
}

/// `…/pods/{name}/attach` and `…/exec` WebSocket upgrades (v5/v4.channel.k8s.io).
pub(crate) fn websocket(
    shared: Arc<Shared>,
    mut req: Request,
    ns: String,
    name: String,
    verb: String,
) -> Response {
    let query: HashMap<String, Vec<String>> = {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        if let Ok(axum::extract::Query(pairs)) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        {
            for (k, v) in pairs {
                m.entry(k).or_default().push(v);
            }
        }
        m
    };
    let flag = |k: &str| {
        query
            .get(k)
            .and_then(|v| v.first())
            .is_some_and(|v| v == "true" || v == "1")
    };
    let proc = match lookup(&shared, &ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return api_error(&ApiError::bad_request(format!(
                "container in pod \"{name}\" is not running (the fake kubelet only runs pods whose command is a local program)"
            )));
        }
        Err(e) => return api_error(&e),
    };
    let headers = req.headers();
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec())
    else {
        return api_error(&ApiError::bad_request("Upgrade request required"));
    };
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let Some(protocol) = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
    else {
        return api_error(&ApiError::bad_request(
            "no supported subprotocol (v5/v4.channel.k8s.io)",
        ));
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let command: Vec<String> = query.get("command").cloned().unwrap_or_default();
    let (want_stdin, want_stdout, want_stderr) = (flag("stdin"), flag("stdout"), flag("stderr"));
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        if verb == "exec" {
            exec_session(ws, proc, command, want_stdin, want_stdout, want_stderr).await;
        } else {
            attach_session(ws, proc, want_stdin, want_stdout, want_stderr).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key),
        )
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Body::empty())
        .unwrap_or_default()
}

type Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

async fn attach_session(
    ws: Ws,
    proc: Arc<PodProcess>,
    want_stdin: bool,
    want_stdout: bool,
    want_stderr: bool,
) {
    let (mut sink, mut stream) = ws.split();
    if proc.exit.borrow().is_some() {
        let _ = sink.send(status_message(None)).await;
        let _ = sink.close().await;
        return;
    }
    let mut output = proc.output.subscribe();
    let mut exit = proc.exit.subscribe();
    let proc_in = proc.clone();
    let input = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Binary(data) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            match data.first() {
                Some(0) if want_stdin => {
                    if let Some(stdin) = proc_in.stdin.lock().await.as_mut() {
                        let _ = stdin.write_all(&data[1..]).await;
                        let _ = stdin.flush().await;
                    }
                }
                Some(255) if data.get(1) == Some(&0) => {
                    proc_in.stdin.lock().await.take();
                }
                _ => {}
            }
        }
        // stdinOnce: the client went away, the container's stdin closes.
        proc_in.stdin.lock().await.take();
    });
    loop {
        tokio::select! {
            m = output.recv() => match m {
                Ok((ch, data)) => {
                    if (ch == 1 && !want_stdout) || (ch == 2 && !want_stderr) {
                        continue;
                    }
                    let mut bytes = vec![if proc.tty { 1 } else { ch }];
                    bytes.extend_from_slice(&data);
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            _ = exit.changed() => {
                while let Ok((ch, data)) = output.try_recv() {
                    let mut bytes = vec![if proc.tty { 1 } else { ch }];
                    bytes.extend_from_slice(&data);
                    let _ = sink.send(Message::Binary(bytes.into())).await;
                }
                let code = *exit.borrow();
                let _ = sink.send(status_message(code)).await;
                break;
            }
        }
    }
    let _ = sink.close().await;
    input.abort();
}

async fn exec_session(
    ws: Ws,
    proc: Arc<PodProcess>,
    command: Vec<String>,
    want_stdin: bool,
    want_stdout: bool,
    want_stderr: bool,
) {
    let (mut sink, mut stream) = ws.split();
    let Some(program) = command.first().and_then(|c| program_on_path(c)) else {
        let mut bytes = vec![3u8];
        bytes.extend_from_slice(
            json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("exec: {:?}: executable file not found in $PATH", command.first())})
            .to_string()
            .as_bytes(),
        );
        let _ = sink.send(Message::Binary(bytes.into())).await;
        let _ = sink.close().await;
        return;
    };
    let mut child = match tokio::process::Command::new(program)
        .args(&command[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(proc.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if want_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so that the pod's end kills what it started too.
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            let _ = sink.send(status_message(None)).await;
            return;
        }
    };
    let _ = &proc.container;
    let mut stdin = child.stdin.take();
    let input = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Binary(data) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            match data.first() {
                Some(0) => {
                    if let Some(s) = stdin.as_mut() {
                        let _ = s.write_all(&data[1..]).await;
                    }
                }
                Some(255) if data.get(1) == Some(&0) => stdin = None,
                _ => {}
            }
        }
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(64);
    let mut readers = Vec::new();
    for (ch, r) in [
        (
            1u8,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            2u8,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ] {
        if let Some(mut r) = r {
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || tx.send((ch, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }));
        }
    }
    drop(tx);
    // An exec session lives in the pod's container: when the pod ends (deleted, its
    // deadline passed), the session's processes are killed, as a container runtime does.
    let mut pod_exit = proc.exit.subscribe();
    let pod_ended = async move {
        while pod_exit.borrow_and_update().is_none() {
            if pod_exit.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::pin!(pod_ended);
    let mut pod_running = true;
    loop {
        let message = tokio::select! {
            m = rx.recv() => m,
            () = &mut pod_ended, if pod_running => {
                pod_running = false;
                // The session's group (never pid -1 or 0: `Pid` is positive).
                if let Some(group) = child
                    .id()
                    .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?))
                {
                    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                continue;
            }
        };
        let Some((ch, data)) = message else { break };
        if (ch == 1 && !want_stdout) || (ch == 2 && !want_stderr) {
            continue;
        }
        let mut bytes = vec![ch];
        bytes.extend_from_slice(&data);
        if sink.send(Message::Binary(bytes.into())).await.is_err() {
            break;
        }
    }
    let code = child.wait().await.ok().and_then(|s| s.code());
    let _ = sink.send(status_message(Some(code.unwrap_or(137)))).await;
    let _ = sink.close().await;
    input.abort();
}
