//! HTTP front of the fake API server: routing, discovery, verbs, watch streams, tables,
//! request log and fault injection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::auth::{RequestInfo, User, authorize, forbidden, needs_create_too};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ApiError, EventType, ListQuery};
use crate::{Fault, RequestRecord, Shared, lock, record};

/// Where the server listens.
pub(crate) struct Listeners {
    /// The API (HTTPS when `tls` is set).
    pub api: std::net::TcpListener,
    /// Plain HTTP for the object store's download links (auth mode).
    pub downloads: Option<std::net::TcpListener>,
    /// TLS for the API.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Runs the server until `shutdown` fires; reports readiness on `ready`.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listeners: Listeners,
    shutdown: tokio::sync::oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    simulate_velero: bool,
    run_kubelet: bool,
) {
    let bind = |l: std::net::TcpListener| tokio::net::TcpListener::from_std(l);
    let (listener, downloads) = match (
        bind(listeners.api),
        listeners.downloads.map(bind).transpose(),
    ) {
        (Ok(l), Ok(d)) => (l, d),
        (Err(e), _) | (_, Err(e)) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let ticker = shared.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(50));
        loop {
            interval.tick().await;
            lock(&ticker.store).tick();
        }
    });
    if run_kubelet {
        tokio::spawn(crate::kubelet::run(shared.clone()));
    }
    if simulate_velero {
        tokio::spawn(crate::velero_sim::run(shared.clone()));
    }
    let app = axum::Router::new().fallback(handle).with_state(shared);
    if let Some(d) = downloads {
        tokio::spawn(axum::serve(d, app.clone()).into_future());
    }
    // Not a graceful shutdown: open watches would hold it for their whole timeout.
    match listeners.tls {
        Some(acceptor) => {
            let tls = match crate::tls::TlsListener::new(listener, acceptor) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            tokio::select! {
                _ = axum::serve(tls, app) => {}
                _ = shutdown => {}
            }
        }
        None => {
            let _ = ready.send(Ok(()));
            tokio::select! {
                _ = axum::serve(listener, app) => {}
                _ = shutdown => {}
            }
        }
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    bytes_response(code, serde_json::to_vec(body).unwrap_or_default())
}

fn bytes_response(code: u16, body: Vec<u8>) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (latency, injected) = pre_faults(&shared, req.method(), req.uri().path());
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    if let Some((code, retry_after)) = injected {
        let (method, path) = (req.method().to_string(), req.uri().path().to_string());
        let mut response = json_response(
            code,
            &ApiError::new(
                code,
                reason_for(code),
                format!("injected fault: {code} for {method} {path}"),
            )
            .status(),
        );
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        let watch = is_watch(req.uri().query());
        record(
            &shared,
            RequestRecord {
                method,
                path,
                query: req.uri().query().unwrap_or("").to_string(),
                content_type: req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from),
                status: code,
                watch,
                user: None,
                authorized: Vec::new(),
            },
        );
        return response;
    }
    let Access {
        user,
        checks: authorized,
        denied,
    } = authenticate_and_authorize(&shared, &req);
    if let Some(e) = denied {
        record(
            &shared,
            RequestRecord {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
                query: req.uri().query().unwrap_or("").to_string(),
                content_type: None,
                status: e.code,
                watch: is_watch(req.uri().query()),
                user: user.map(|u| u.name),
                authorized,
            },
        );
        return error_response(&e);
    }
    let user_name = user.as_ref().map(|u| u.name.clone());
    if let Some((ns, name, verb)) = pod_stream_target(req.uri().path())
        && (verb == "log" || req.headers().contains_key(header::UPGRADE))
    {
        let rec = RequestRecord {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().unwrap_or("").to_string(),
            content_type: None,
            status: 0,
            watch: false,
            user: user_name.clone(),
            authorized: authorized.clone(),
        };
        let response = if verb == "log" {
            let query = axum::extract::Query::<HashMap<String, String>>::try_from_uri(req.uri())
                .map(|q| q.0)
                .unwrap_or_default();
            crate::kubelet::logs(&shared, &ns, &name, &query)
        } else {
            crate::kubelet::websocket(shared.clone(), req, ns, name, verb)
        };
        record(
            &shared,
            RequestRecord {
                status: response.status().as_u16(),
                ..rec
            },
        );
        return response;
    }
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let path = uri.path().to_string();
    let query_str = uri.query().unwrap_or("").to_string();
    let query: HashMap<String, String> =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&uri)
            .map(|q| q.0)
            .unwrap_or_default();
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();

    // Protobuf: kubectl's typed create of Namespaces, Secrets and ConfigMaps is decoded;
    // anything else gets 415, as from a server without that codec.
    let protobuf = content_type
        .as_deref()
        .is_some_and(|c| c.contains("protobuf"));
    let decoded = if protobuf && method == Method::POST {
        crate::protobuf::decode(&body)
    } else {
        None
    };
    let body = match decoded {
        Some(v) => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
        None => body,
    };
    if protobuf && body.first() != Some(&b'{') {
        let e = ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {})",
                content_type.as_deref().unwrap_or("")
            ),
        );
        let response = error_response(&e);
        record(
            &shared,
            RequestRecord {
                method: method.to_string(),
                path,
                query: query_str,
                content_type,
                status: 415,
                watch,
                user: user_name,
                authorized,
            },
        );
        return response;
    }
    let response = route(
        &shared,
        &method,
        &path,
        &query,
        &headers,
        content_type.as_deref(),
        body,
        user.as_ref(),
    );
    record(
        &shared,
        RequestRecord {
            method: method.to_string(),
            path,
            query: query_str,
            content_type,
            status: response.status().as_u16(),
            watch,
            user: user_name,
            authorized,
        },
    );
    response
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// Who asked, what RBAC was asked to allow, and the 401/403 to answer if anything.
#[derive(Default)]
struct Access {
    user: Option<User>,
    checks: Vec<String>,
    denied: Option<ApiError>,
}

/// Auth mode: authenticates the request (401 for an unknown, missing or revoked token)
/// and authorizes it with RBAC (403). Without auth mode every request passes as nobody
/// in particular.
fn authenticate_and_authorize(shared: &Shared, req: &Request) -> Access {
    let Some(auth) = &shared.auth else {
        return Access::default();
    };
    let path = req.uri().path();
    // The simulated object store's presigned URLs are not API requests.
    if path.starts_with("/velero-download/") {
        return Access::default();
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(user) = lock(auth).authenticate(header) else {
        return Access {
            denied: Some(crate::auth::unauthorized()),
            ..Access::default()
        };
    };
    let info = RequestInfo::of(req.method().as_str(), path, is_watch(req.uri().query()));
    let mut checks = vec![info.clone()];
    if needs_create_too(&info, req.headers().contains_key(header::UPGRADE)) {
        checks.push(info.with_verb("create"));
    }
    let mut access = Access {
        checks: checks.iter().map(RequestInfo::summary).collect(),
        ..Access::default()
    };
    let st = lock(&shared.store);
    access.denied = checks
        .iter()
        .find(|c| !authorize(&st, &user, c))
        .map(|c| forbidden(&user, c));
    access.user = Some(user);
    access
}

/// `(namespace, pod, "log" | "attach" | "exec")` for pod streaming subresources.
fn pod_stream_target(path: &str) -> Option<(String, String, String)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "pods",
            name,
            verb @ ("log" | "attach" | "exec"),
        ] => Some((ns.to_string(), name.to_string(), verb.to_string())),
        _ => None,
    }
}

/// An injected status code and its `Retry-After` seconds.
type Injected = (u16, Option<u64>);

/// Latency to add and an injected status, consuming `times` counters.
fn pre_faults(
    shared: &Shared,
    method: &Method,
    path: &str,
) -> (Option<Duration>, Option<Injected>) {
    let mut fs = lock(&shared.faults);
    let mut latency = None;
    let mut code = None;
    let mut exhausted = None;
    for (i, f) in fs.faults.iter_mut().enumerate() {
        match f {
            Fault::Latency(d) => latency = Some(latency.unwrap_or_default() + *d),
            Fault::LatencySpikes {
                delay,
                every,
                path_contains,
                seen,
            } if path.contains(path_contains.as_str()) => {
                if *seen % (*every).max(1) == 0 {
                    latency = Some(latency.unwrap_or_default() + *delay);
                }
                *seen = seen.wrapping_add(1);
            }
            Fault::Throttle {
                path_contains,
                retry_after_secs,
                times,
            } if code.is_none() && path.contains(path_contains.as_str()) => {
                if let Some(n) = times {
                    if *n == 0 {
                        continue;
                    }
                    *n -= 1;
                    if *n == 0 {
                        exhausted = Some(i);
                    }
                }
                code = Some((429, Some(*retry_after_secs)));
            }
            Fault::Status {
                method: m,
                path_contains,
                code: c,
                times,
            } if code.is_none()
                && m.as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
                && path.contains(path_contains.as_str()) =>
            {
                if let Some(n) = times {
                    if *n == 0 {
                        continue;
                    }
                    *n -= 1;
                    if *n == 0 {
                        exhausted = Some(i);
                    }
                }
                code = Some((*c, None));
            }
            _ => {}
        }
    }
    if let Some(i) = exhausted {
        fs.faults.remove(i);
    }
    (latency, code)
}

/// Whether a write to `kind` object `ns/name` should fail with an injected conflict.
fn injected_conflict(shared: &Shared, kind: &str, ns: &str, name: &str) -> bool {
    let mut fs = lock(&shared.faults);
    let mut hit = None;
    for f in &fs.faults {
        if let Fault::ConflictRate { fraction, kinds } = f
            && (kinds.is_empty() || kinds.iter().any(|k| k == kind))
        {
            hit = Some(*fraction);
            break;
        }
    }
    match hit {
        Some(fraction) => fs.draw_for(&format!("{kind}/{ns}/{name}")) < fraction,
        None => false,
    }
}

/// Armed watch-drop limits for a new watch: (after_events, after_ms).
fn take_drop_watch(shared: &Shared) -> Option<(Option<u32>, Option<u64>)> {
    let mut fs = lock(&shared.faults);
    let mut out = None;
    let mut exhausted = None;
    for (i, f) in fs.faults.iter_mut().enumerate() {
        if let Fault::DropWatches {
            after_events,
            after_ms,
            times,
        } = f
        {
            if let Some(n) = times {
                if *n == 0 {
                    continue;
                }
                *n -= 1;
                if *n == 0 {
                    exhausted = Some(i);
                }
            }
            out = Some((*after_events, *after_ms));
            break;
        }
    }
    if let Some(i) = exhausted {
        fs.faults.remove(i);
    }
    out
}

/// What the path addresses.
enum Target {
    Collection {
        t: usize,
        ns: String,
    },
    Object {
        t: usize,
        ns: String,
        name: String,
        sub: Option<String>,
    },
}

#[allow(clippy::too_many_arguments)] // one request's parts, passed through from `handle`
fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    content_type: Option<&str>,
    body: Bytes,
    user: Option<&User>,
) -> Response {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => return json_response(200, &version()),
        ["healthz" | "livez" | "readyz"] => {
            return Response::builder()
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("ok"))
                .unwrap_or_default();
        }
        ["api"] => {
            let addr = shared
                .url
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            return json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]}),
            );
        }
        ["apis"] => return json_response(200, &api_groups(shared)),
        // An empty document: kubectl's client-side validation then has no schema to check
        // against and lets the server validate (CRD kinds are validated here).
        ["openapi", "v2"] if accepts_protobuf(headers) => {
            return Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                )
                .body(Body::from(openapi_v2_protobuf()))
                .unwrap_or_default();
        }
        ["openapi", "v2"] => {
            return json_response(
                200,
                &json!({"swagger": "2.0", "info": {"title": "fake-cluster", "version": "v1.33.0"}, "paths": {}, "definitions": {}}),
            );
        }
        ["api", "v1"] => return resource_list(shared, "", "v1"),
        ["velero-download", token] => {
            return match lock(&shared.velero).download(token) {
                Some(data) => Response::builder()
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(Body::from(data))
                    .unwrap_or_default(),
                None => Response::builder()
                    .status(404)
                    .body(Body::from(
                        "NoSuchKey: the download URL is unknown or expired",
                    ))
                    .unwrap_or_default(),
            };
        }
        ["apis", g, v] => return resource_list(shared, g, v),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => {
            return self_subject_access_review(shared, method, &body, user);
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            return error_response(&ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    let target = {
        let st = lock(&shared.store);
        let find = |plural: &str| st.find(group, version, plural);
        let not_found = || {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        };
        let r = match rest {
            ["namespaces", ns, plural, more @ ..]
                if find(plural).is_some_and(|t| st.types[t].namespaced) =>
            {
                let t = find(plural).unwrap_or_default();
                match more {
                    [] => Ok(Target::Collection {
                        t,
                        ns: ns.to_string(),
                    }),
                    [name] => Ok(Target::Object {
                        t,
                        ns: ns.to_string(),
                        name: name.to_string(),
                        sub: None,
                    }),
                    [name, sub] => Ok(Target::Object {
                        t,
                        ns: ns.to_string(),
                        name: name.to_string(),
                        sub: Some(sub.to_string()),
                    }),
                    _ => Err(not_found()),
                }
            }
            [plural, more @ ..] => match find(plural) {
                None => Err(not_found()),
                Some(t) => match more {
                    [] => Ok(Target::Collection {
                        t,
                        ns: String::new(),
                    }),
                    [name] if !st.types[t].namespaced => Ok(Target::Object {
                        t,
                        ns: String::new(),
                        name: name.to_string(),
                        sub: None,
                    }),
                    [name, sub] if !st.types[t].namespaced => Ok(Target::Object {
                        t,
                        ns: String::new(),
                        name: name.to_string(),
                        sub: Some(sub.to_string()),
                    }),
                    _ => Err(not_found()),
                },
            },
            [] => Err(not_found()),
        };
        match r {
            Ok(t) => t,
            Err(e) => return error_response(&e),
        }
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let table = wants_table(headers);
    match target {
        Target::Collection { t, ns } => match *method {
            Method::GET => {
                let (labels, fields) = match selectors(query) {
                    Ok(s) => s,
                    Err(e) => return error_response(&e),
                };
                if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                    return start_watch(shared, t, ns, labels, fields, query, table);
                }
                list(shared, t, &ns, labels, fields, query, table)
            }
            Method::POST => {
                let obj = match parse_body(&body) {
                    Ok(v) => v,
                    Err(e) => return error_response(&e),
                };
                let r = lock(&shared.store).create(t, &ns, obj, dry_run);
                match r {
                    Ok(o) => {
                        if !dry_run {
                            crate::record_write(shared, "POST", &o);
                        }
                        json_response(201, &o)
                    }
                    Err(e) => error_response(&e),
                }
            }
            Method::DELETE => {
                let (labels, fields) = match selectors(query) {
                    Ok(s) => s,
                    Err(e) => return error_response(&e),
                };
                let mut st = lock(&shared.store);
                let q = ListQuery {
                    labels,
                    fields,
                    ..Default::default()
                };
                let page = match st.list(t, if ns.is_empty() { None } else { Some(&ns) }, &q) {
                    Ok(p) => p,
                    Err(e) => return error_response(&e),
                };
                let mut deleted = Vec::new();
                for obj in page.items {
                    let ons = obj
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let name = obj
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if let Ok(d) = st.delete(t, &ons, &name, None, None, dry_run) {
                        deleted.push((*d).clone());
                    }
                }
                let ty = &st.types[t];
                json_response(
                    200,
                    &json!({"kind": format!("{}List", ty.kind), "apiVersion": ty.api_version(),
                        "metadata": {"resourceVersion": st.resource_version().to_string()}, "items": deleted}),
                )
            }
            _ => error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported on a collection"),
            )),
        },
        Target::Object { t, ns, name, sub } => {
            let sub = sub.as_deref();
            if sub == Some("scale")
                && lock(&shared.store).types[t]
                    .extra_subresources
                    .contains(&"scale")
            {
                return scale(shared, method, t, &ns, &name, content_type, &body);
            }
            if let Some(s) = sub
                && s != "status"
            {
                return error_response(&ApiError::new(
                    404,
                    "NotFound",
                    format!("the server could not find the requested resource ({s})"),
                ));
            }
            match *method {
                Method::GET => {
                    if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                        let fields = FieldSelector::parse(&format!("metadata.name={name}"))
                            .unwrap_or_default();
                        return start_watch(
                            shared,
                            t,
                            ns,
                            LabelSelector::default(),
                            fields,
                            query,
                            table,
                        );
                    }
                    let st = lock(&shared.store);
                    match st.get(t, &ns, &name) {
                        Some(o) if table => json_response(
                            200,
                            &crate::table::table(
                                &st.types[t],
                                &[o],
                                None,
                                st.resource_version(),
                                query,
                            ),
                        ),
                        Some(o) => json_response(200, &o),
                        None => error_response(&ApiError::not_found(&st.types[t], &name)),
                    }
                }
                Method::PUT | Method::PATCH => {
                    let kind = lock(&shared.store).types[t].kind.clone();
                    if injected_conflict(shared, &kind, &ns, &name) {
                        let st = lock(&shared.store);
                        return error_response(&ApiError::conflict(&st.types[t], &name));
                    }
                    let r = if *method == Method::PUT {
                        match parse_body(&body) {
                            Ok(obj) => lock(&shared.store).update(t, &ns, &name, obj, sub, dry_run),
                            Err(e) => Err(e),
                        }
                    } else {
                        let ct = content_type.unwrap_or("application/merge-patch+json");
                        lock(&shared.store).patch(t, &ns, &name, ct, &body, sub, dry_run)
                    };
                    match r {
                        Ok(o) => {
                            if !dry_run {
                                crate::record_write(shared, method.as_str(), &o);
                            }
                            json_response(200, &o)
                        }
                        Err(e) => error_response(&e),
                    }
                }
                Method::DELETE => {
                    let opts: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
                    let rv = opts
                        .pointer("/preconditions/resourceVersion")
                        .and_then(Value::as_str);
                    let dry_run = dry_run
                        || opts
                            .get("dryRun")
                            .and_then(Value::as_array)
                            .is_some_and(|a| a.iter().any(|v| v == "All"));
                    let r = lock(&shared.store).delete(t, &ns, &name, uid, rv, dry_run);
                    match r {
                        Ok(o) => json_response(200, &o),
                        Err(e) => error_response(&e),
                    }
                }
                _ => error_response(&ApiError::new(
                    405,
                    "MethodNotAllowed",
                    format!("{method} is not supported"),
                )),
            }
        }
    }
}

/// POST of a SelfSubjectAccessReview: answered, never stored. Without auth mode every
/// request is allowed, and so is every review.
fn self_subject_access_review(
    shared: &Shared,
    method: &Method,
    body: &[u8],
    user: Option<&User>,
) -> Response {
    if *method != Method::POST {
        return error_response(&ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on selfsubjectaccessreviews"),
        ));
    }
    let review = match parse_body(body) {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    let answer = match user {
        Some(u) => crate::auth::self_subject_access_review(&lock(&shared.store), u, &review),
        None => {
            let mut r = review;
            r["status"] = json!({"allowed": true});
            r
        }
    };
    json_response(201, &answer)
}

/// The `autoscaling/v1` Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let labels = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": labels}})
}

/// GET/PUT/PATCH of `…/scale`: reads or sets `spec.replicas` of the workload.
fn scale(
    shared: &Shared,
    method: &Method,
    t: usize,
    ns: &str,
    name: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    let mut st = lock(&shared.store);
    let Some(obj) = st.get(t, ns, name) else {
        return error_response(&ApiError::not_found(&st.types[t], name));
    };
    let current = scale_of(&obj);
    let wanted = match *method {
        Method::GET => return json_response(200, &current),
        Method::PUT => parse_body(body),
        Method::PATCH => crate::patch::apply(
            content_type.unwrap_or("application/merge-patch+json"),
            &current,
            body,
        )
        .map_err(|m| ApiError::new(422, "Invalid", m)),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on scale"),
        )),
    };
    let wanted = match wanted {
        Ok(w) => w,
        Err(e) => return error_response(&e),
    };
    let Some(replicas) = wanted.pointer("/spec/replicas").and_then(Value::as_i64) else {
        return error_response(&ApiError::new(
            422,
            "Invalid",
            "spec.replicas: Required value",
        ));
    };
    let mut updated = (*obj).clone();
    updated["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        updated["metadata"]["resourceVersion"] = json!(rv);
    }
    match st.update(t, ns, name, updated, None, false) {
        Ok(o) => json_response(200, &scale_of(&o)),
        Err(e) => error_response(&e),
    }
}

fn accepts_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("protobuf"))
}

/// A gnostic `openapi_v2.Document` with only `swagger` and `info`, protobuf-encoded by hand.
fn openapi_v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
        out.push(tag << 3 | 2);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"fake-cluster");
    field(&mut info, 2, b"v1.33.0");
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    doc
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .or_else(|_| serde_saphyr::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })
}

fn selectors(query: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

fn api_groups(shared: &Shared) -> Value {
    let st = lock(&shared.store);
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in &st.types {
        if t.group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, vs)) => {
                if !vs.contains(&t.version) {
                    vs.push(t.version.clone());
                }
            }
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(shared: &Shared, group: &str, version: &str) -> Response {
    let st = lock(&shared.store);
    let resources: Vec<Value> = st
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(|t| t.discovery())
        .collect();
    if resources.is_empty() {
        return error_response(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json_response(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn list(
    shared: &Shared,
    t: usize,
    ns: &str,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &HashMap<String, String>,
    table: bool,
) -> Response {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => return error_response(&ApiError::bad_request("limit must be a number")),
        None => None,
    };
    let q = ListQuery {
        labels,
        fields,
        limit,
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
    };
    let st = lock(&shared.store);
    let page = match st.list(t, if ns.is_empty() { None } else { Some(ns) }, &q) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let ty = &st.types[t];
    if table {
        return json_response(
            200,
            &crate::table::table(
                ty,
                &page.items,
                page.continue_token.as_deref(),
                page.resource_version,
                query,
            ),
        );
    }
    // Serialized by hand so 10,000 items are written once, not cloned into a Value first.
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    let mut out = Vec::with_capacity(256 + page.items.len() * 512);
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
            ty.kind,
            ty.api_version(),
            meta
        )
        .as_bytes(),
    );
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, &**item);
    }
    out.extend_from_slice(b"]}");
    bytes_response(200, out)
}

/// Filters of one watch.
struct WatchFilter {
    t: usize,
    ns: String,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event to send for a change, if any (objects moving out of the selection read as DELETED).
    fn translate(&self, e: &crate::store::Event) -> Option<(&'static str, Arc<Value>)> {
        if e.type_idx != self.t || (!self.ns.is_empty() && e.namespace != self.ns) {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.previous.as_ref().is_some_and(|p| self.matches(p));
        match e.kind {
            EventType::Deleted => before.then(|| ("DELETED", e.object.clone())),
            EventType::Added => now.then(|| ("ADDED", e.object.clone())),
            EventType::Modified => match (before, now) {
                (true, true) => Some(("MODIFIED", e.object.clone())),
                (false, true) => Some(("ADDED", e.object.clone())),
                (true, false) => Some(("DELETED", e.object.clone())),
                (false, false) => None,
            },
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    let _ = serde_json::to_writer(&mut out, object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn start_watch(
    shared: &Arc<Shared>,
    t: usize,
    ns: String,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &HashMap<String, String>,
    table: bool,
) -> Response {
    let query = query.clone();
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();
    let start_rv: Option<u64> = match rv_param.as_str() {
        "" | "0" => None,
        s => match s.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "invalid resourceVersion {s:?}"
                )));
            }
        },
    };
    let drop = take_drop_watch(shared);
    let filter = WatchFilter {
        t,
        ns,
        labels,
        fields,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(64);
    let shared = shared.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let deadline = started + timeout;
        let drop_at = drop
            .and_then(|(_, ms)| ms)
            .map(|ms| started + Duration::from_millis(ms));
        let drop_after_events = drop.and_then(|(n, _)| n);
        let mut sent = 0u32;
        // `kubectl get -w` asks for Tables: one row per event, columns only in the first.
        let render = |obj: &Arc<Value>, first: bool| -> Value {
            if !table {
                return (**obj).clone();
            }
            let st = lock(&shared.store);
            let mut t = crate::table::table(
                &st.types[filter.t],
                std::slice::from_ref(obj),
                None,
                st.resource_version(),
                &query,
            );
            if !first && let Some(m) = t.as_object_mut() {
                m.remove("columnDefinitions");
            }
            t
        };
        let (mut changes, mut last, initial, gone, kind, api_version) = {
            let st = lock(&shared.store);
            let changes = st.subscribe();
            let ty = &st.types[filter.t];
            let (kind, api_version) = (ty.kind.clone(), ty.api_version());
            match start_rv {
                Some(rv) if !send_initial => {
                    let gone = rv < st.oldest_watchable();
                    (
                        changes,
                        rv,
                        Vec::new(),
                        gone.then(|| st.oldest_watchable()),
                        kind,
                        api_version,
                    )
                }
                _ => {
                    let initial: Vec<Arc<Value>> = st
                        .all(
                            filter.t,
                            if filter.ns.is_empty() {
                                None
                            } else {
                                Some(filter.ns.as_str())
                            },
                        )
                        .into_iter()
                        .filter(|o| filter.matches(o))
                        .collect();
                    (
                        changes,
                        st.resource_version(),
                        initial,
                        None,
                        kind,
                        api_version,
                    )
                }
            }
        };
        if let Some(oldest) = gone {
            let status = ApiError::new(
                410,
                "Expired",
                format!(
                    "too old resource version: {} ({oldest})",
                    start_rv.unwrap_or_default()
                ),
            )
            .status();
            let _ = tx.send(Ok(event_line("ERROR", &status))).await;
            return;
        }
        let bookmark = |rv: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            event_line(
                "BOOKMARK",
                &json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
            )
        };
        for obj in initial {
            if tx
                .send(Ok(event_line("ADDED", &render(&obj, sent == 0))))
                .await
                .is_err()
            {
                return;
            }
            sent += 1;
            if drop_after_events.is_some_and(|n| sent >= n) {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(Ok(bookmark(last, true))).await.is_err() {
            return;
        }
        let mut next_bookmark = Instant::now() + Duration::from_secs(1);
        loop {
            let batch: Result<Vec<(&'static str, Arc<Value>)>, u64> = {
                let st = lock(&shared.store);
                if last < st.oldest_watchable() {
                    Err(st.oldest_watchable())
                } else {
                    let out = st
                        .events_after(last)
                        .filter_map(|e| filter.translate(e))
                        .collect();
                    last = st.resource_version();
                    Ok(out)
                }
            };
            match batch {
                Err(oldest) => {
                    let status = ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {last} ({oldest})"),
                    )
                    .status();
                    let _ = tx.send(Ok(event_line("ERROR", &status))).await;
                    return;
                }
                Ok(events) => {
                    for (kind, obj) in events {
                        if tx
                            .send(Ok(event_line(kind, &render(&obj, sent == 0))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        sent += 1;
                        if drop_after_events.is_some_and(|n| sent >= n) {
                            return;
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline || drop_at.is_some_and(|d| now >= d) {
                return;
            }
            if bookmarks && now >= next_bookmark {
                if tx.send(Ok(bookmark(last, false))).await.is_err() {
                    return;
                }
                next_bookmark = now + Duration::from_secs(1);
            }
            let mut wake = deadline.min(next_bookmark);
            if let Some(d) = drop_at {
                wake = wake.min(d);
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return; },
                _ = tokio::time::sleep_until(wake.into()) => {},
                _ = tx.closed() => return,
            }
        }
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        )))
        .unwrap_or_default()
}
