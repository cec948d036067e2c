//! Retrying API calls that are safe to repeat: a tower layer around kube's service.
//!
//! Which calls are repeated is decided by [`Policy::delay`], a pure function of the call's
//! kind ([`Call`]), what came back ([`Outcome`]), the attempt number and the time spent:
//! - reads (GET, HEAD, LIST, WATCH) and DELETE: on 500/502/503/504, 429 and transport errors;
//! - a PATCH/PUT carrying a `metadata.resourceVersion` precondition: the same (if the first
//!   attempt did land, the repeat answers 409 Conflict, which the callers already handle);
//! - a create with a fixed name: the same, and a later `409 AlreadyExists` is checked to be
//!   our own object (every field we sent is on it), then answered as the create's success;
//! - anything else (a create with `generateName`, a patch without precondition) only on
//!   429 and on a connection that was never made: the server did not see it.
//!
//! Delays grow exponentially with jitter, `Retry-After` is honoured up to a cap, and every
//! call has an overall deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use kube::client::{Body, DynBody};
use serde_json::Value;
use tower::{BoxError, Service, ServiceExt as _};

/// How long to wait between attempts, and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Delay before the second attempt (doubled for each further one).
    pub base: Duration,
    /// Longest delay computed by backoff.
    pub max_delay: Duration,
    /// Longest server-asked `Retry-After` honoured.
    pub retry_after_cap: Duration,
    /// No attempt starts later than this after the first one.
    pub deadline: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            retry_after_cap: Duration::from_secs(10),
            deadline: Duration::from_secs(45),
            max_attempts: 8,
        }
    }
}

/// What a call does, as far as repeating it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// GET, HEAD, OPTIONS (lists and watches included) and DELETE.
    Idempotent,
    /// PATCH or PUT with a `metadata.resourceVersion` precondition.
    Preconditioned,
    /// POST of an object with a fixed `metadata.name`.
    NamedCreate,
    /// Anything else: repeating it could do it twice.
    Unsafe,
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status (and `Retry-After`, if any).
    Status {
        /// The HTTP status code.
        code: u16,
        /// The server's `Retry-After`, in seconds.
        retry_after: Option<Duration>,
    },
    /// No connection could be made: the request was never sent.
    ConnectFailed,
    /// The connection failed after the request may have been sent.
    Transport,
}

impl Policy {
    /// The delay before attempt `attempt + 1` after attempt `attempt` (from 1) came to
    /// `outcome`, `elapsed` after the first attempt started; `None`: do not repeat.
    /// `jitter` in [0, 1) spreads the delay over its upper half.
    pub fn delay(
        &self,
        call: Call,
        outcome: Outcome,
        attempt: u32,
        elapsed: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        let server_asked = match outcome {
            // Throttled (API priority and fairness) before the server handled it.
            Outcome::Status {
                code: 429,
                retry_after,
            } => retry_after.map(|d| d.min(self.retry_after_cap)),
            Outcome::ConnectFailed => None,
            Outcome::Status {
                code: 500 | 502 | 503 | 504,
                ..
            }
            | Outcome::Transport
                if call != Call::Unsafe =>
            {
                None
            }
            _ => return None,
        };
        if attempt >= self.max_attempts {
            return None;
        }
        let exponent = attempt.saturating_sub(1).min(16);
        let backoff = self.base.saturating_mul(1 << exponent).min(self.max_delay);
        let backoff = backoff.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
        let delay = server_asked.map_or(backoff, |asked| asked.max(backoff));
        (elapsed + delay <= self.deadline).then_some(delay)
    }
}

/// The kind of call `method` with `body` (the request's JSON, if any) is.
pub fn classify(method: &Method, body: &[u8]) -> Call {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE => Call::Idempotent,
        Method::PATCH | Method::PUT if has_precondition(body) => Call::Preconditioned,
        Method::POST if sent_name(body).is_some() => Call::NamedCreate,
        _ => Call::Unsafe,
    }
}

/// Whether a PATCH/PUT body carries a resourceVersion precondition: in the object (merge,
/// strategic merge, apply, PUT) or as a JSON Patch `test` operation.
fn has_precondition(body: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o
            .get("metadata")
            .and_then(|m| m.get("resourceVersion"))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty()),
        Ok(Value::Array(ops)) => ops.iter().any(|op| {
            op["op"] == "test" && op["path"] == "/metadata/resourceVersion" && op["value"] != ""
        }),
        _ => false,
    }
}

fn sent_name(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// Whether `existing` (the object found under the name of our create) is what we sent:
/// every field of `sent` is on it with the same value, apart from what the server sets or
/// converts (`status`, `stringData`, server metadata).
pub fn is_own_object(sent: &Value, existing: &Value) -> bool {
    let Value::Object(fields) = sent else {
        return false;
    };
    fields.iter().all(|(key, value)| match key.as_str() {
        "status" | "stringData" => true,
        "metadata" => ["name", "namespace", "labels", "annotations"]
            .iter()
            .all(|k| {
                value
                    .get(k)
                    .is_none_or(|v| contains(v, &existing["metadata"][k]))
            }),
        _ => contains(value, &existing[key]),
    })
}

/// `a` is contained in `b`: equal scalars, equal-length arrays element-wise, objects key-wise.
fn contains(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| v.is_null() || b.get(k).is_some_and(|w| contains(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| contains(v, w))
        }
        _ => a == b,
    }
}

/// The [`tower::Layer`] adding [`Retry`] around kube's service.
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    policy: Policy,
}

impl RetryLayer {
    /// A layer retrying under `policy`.
    pub fn new(policy: Policy) -> Self {
        RetryLayer { policy }
    }
}

impl<S> tower::Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Repeats the calls [`Policy::delay`] allows; see the module documentation.
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    policy: Policy,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request<Body>> for Retry<S>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<Box<DynBody>>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready makes this call; the fresh one waits for the next.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let policy = self.policy.clone();
        Box::pin(attempts(inner, policy, request))
    }
}

async fn attempts<S>(
    mut inner: S,
    policy: Policy,
    request: Request<Body>,
) -> Result<Response<Box<DynBody>>, BoxError>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError>,
{
    // Streaming bodies cannot be replayed: one attempt.
    let Some(body) = request.body().try_clone() else {
        return inner.ready().await?.call(request).await;
    };
    let body = body.collect_bytes().await.map_err(BoxError::from)?;
    let (request, _) = request.into_parts();
    let call = classify(&request.method, &body);
    let started = Instant::now();
    let mut jitter = Jitter::new();
    let mut attempt = 1;
    loop {
        let result = inner
            .ready()
            .await?
            .call(copy(&request, body.clone()))
            .await;
        let conflict = matches!(&result, Ok(r) if r.status() == StatusCode::CONFLICT);
        if conflict && attempt > 1 {
            // A repeated create finding its name taken: did our first attempt land?
            if call == Call::NamedCreate
                && let Some(own) = own_object(&mut inner, &request, &body).await
            {
                return Ok(own);
            }
            return result;
        }
        let outcome = match &result {
            Ok(response) => Outcome::Status {
                code: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get(hyper::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .map(Duration::from_secs),
            },
            Err(error) => match transport_failure(error.as_ref()) {
                Some(outcome) => outcome,
                None => return result,
            },
        };
        let Some(delay) = policy.delay(call, outcome, attempt, started.elapsed(), jitter.next())
        else {
            if let Ok(response) = &result
                && response.status().is_success()
            {
                record_change(&request, &body);
            }
            return result;
        };
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// The changes this process made in the cluster, in order ("create pods astronomer/x"),
/// so that an error can say what was done before it ([`changes`]).
static CHANGES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// What the process changed through the API so far (successful writes, not dry runs),
/// without the temporary objects it created and deleted again.
pub fn changes() -> Vec<String> {
    net_changes(&CHANGES.lock().map(|c| c.clone()).unwrap_or_default())
}

/// `writes` ("VERB TARGET", in order) without what left no trace: an object created and
/// later deleted, with every write to it in between (a client pod, a DownloadRequest).
fn net_changes(writes: &[String]) -> Vec<String> {
    fn split(w: &str) -> (&str, &str) {
        w.split_once(' ').unwrap_or((w, ""))
    }
    let mut kept: Vec<&String> = Vec::new();
    for write in writes {
        let (verb, target) = split(write);
        let created = kept.iter().position(|k| split(k) == ("create", target));
        match (verb, created) {
            ("delete", Some(at)) => {
                let since = kept.split_off(at);
                kept.extend(since.into_iter().filter(|k| split(k).1 != target));
            }
            _ => kept.push(write),
        }
    }
    kept.into_iter().cloned().collect()
}

fn record_change(request: &Parts, body: &[u8]) {
    if let Some(change) = describe_change(&request.method, &request.uri, body)
        && let Ok(mut changes) = CHANGES.lock()
    {
        changes.push(change);
    }
}

/// "VERB RESOURCE NAMESPACE/NAME" for a write, `None` for reads and dry runs.
pub fn describe_change(method: &Method, uri: &hyper::Uri, body: &[u8]) -> Option<String> {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "replace",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => return None,
    };
    if uri.query().is_some_and(|q| q.contains("dryRun")) {
        return None;
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/GROUP/VERSION/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..)?,
        Some(&"apis") => segments.get(3..)?,
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        _ => (None, rest),
    };
    let (resource, name) = match rest {
        // Access and token reviews are answered, never stored: nothing changed.
        [resource, ..] if resource.ends_with("reviews") => return None,
        [resource] => (
            *resource,
            sent_name(body).unwrap_or_else(|| "(generated name)".into()),
        ),
        [resource, name, ..] => (*resource, (*name).to_owned()),
        _ => return None,
    };
    Some(match namespace {
        Some(ns) => format!("{verb} {resource} {ns}/{name}"),
        None => format!("{verb} {resource} {name}"),
    })
}

/// A copy of the request with `body`.
fn copy(request: &Parts, body: hyper::body::Bytes) -> Request<Body> {
    Request::from_parts(request.clone(), Body::from(body))
}

/// After a repeated create answered 409: the object under that name, when it is ours,
/// as the create's answer.
async fn own_object<S>(
    inner: &mut S,
    request: &Parts,
    body: &[u8],
) -> Option<Response<Box<DynBody>>>
where
    S: Service<Request<Body>, Response = Response<Box<DynBody>>, Error = BoxError>,
{
    let sent: Value = serde_json::from_slice(body).ok()?;
    let name = sent_name(body)?;
    let path = format!("{}/{}", request.uri.path().trim_end_matches('/'), name);
    let mut get = Request::from_parts(request.clone(), Body::empty());
    *get.method_mut() = Method::GET;
    *get.uri_mut() = hyper::Uri::builder().path_and_query(path).build().ok()?;
    get.headers_mut().remove(hyper::header::CONTENT_TYPE);
    let response = inner.ready().await.ok()?.call(get).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.ok()?.to_bytes();
    let existing: Value = serde_json::from_slice(&bytes).ok()?;
    if !is_own_object(&sent, &existing) {
        return None;
    }
    let body: Box<DynBody> =
        Box::new(http_body_util::Full::new(bytes).map_err(|never| match never {}));
    Some(Response::from_parts(parts, body))
}

/// Whether a failed attempt was a transport failure, and of which kind; `None` for
/// anything else (a bad kubeconfig, an auth plugin failing), which is not repeated.
fn transport_failure(error: &(dyn std::error::Error + 'static)) -> Option<Outcome> {
    let mut source = Some(error);
    let mut transport = false;
    while let Some(e) = source {
        if let Some(legacy) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if legacy.is_connect() {
                return Some(Outcome::ConnectFailed);
            }
            transport = true;
        }
        transport |= e.is::<hyper::Error>() || e.is::<std::io::Error>();
        source = e.source();
    }
    transport.then_some(Outcome::Transport)
}

/// A small xorshift for jitter, seeded from the clock and the process id (jitter only
/// spreads clients apart; it needs no quality).
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Jitter(u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const STATUS: fn(u16) -> Outcome = |code| Outcome::Status {
        code,
        retry_after: None,
    };

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn classifies_calls_by_method_and_precondition() {
        assert_eq!(classify(&Method::GET, b""), Call::Idempotent);
        assert_eq!(classify(&Method::DELETE, b"{}"), Call::Idempotent);
        let rv = body(json!({"metadata": {"resourceVersion": "7"}, "data": {}}));
        assert_eq!(classify(&Method::PATCH, &rv), Call::Preconditioned);
        assert_eq!(classify(&Method::PUT, &rv), Call::Preconditioned);
        let plain = body(json!({"metadata": {"labels": {"a": "b"}}}));
        assert_eq!(classify(&Method::PATCH, &plain), Call::Unsafe);
        let empty_rv = body(json!({"metadata": {"resourceVersion": ""}}));
        assert_eq!(classify(&Method::PATCH, &empty_rv), Call::Unsafe);
        let json_patch = body(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "9"},
            {"op": "replace", "path": "/spec/x", "value": 1}
        ]));
        assert_eq!(classify(&Method::PATCH, &json_patch), Call::Preconditioned);
        let named = body(json!({"metadata": {"name": "b1"}}));
        assert_eq!(classify(&Method::POST, &named), Call::NamedCreate);
        let generated = body(json!({"metadata": {"generateName": "b-"}}));
        assert_eq!(classify(&Method::POST, &generated), Call::Unsafe);
        assert_eq!(classify(&Method::POST, b"not json"), Call::Unsafe);
    }

    #[test]
    fn retries_server_errors_only_for_safe_calls() {
        let p = Policy::default();
        for code in [500, 502, 503, 504] {
            for call in [Call::Idempotent, Call::Preconditioned, Call::NamedCreate] {
                assert!(
                    p.delay(call, STATUS(code), 1, MS(0), 0.5).is_some(),
                    "{call:?} {code}"
                );
            }
            assert_eq!(p.delay(Call::Unsafe, STATUS(code), 1, MS(0), 0.5), None);
        }
        assert!(
            p.delay(Call::Idempotent, Outcome::Transport, 1, MS(0), 0.0)
                .is_some()
        );
        assert_eq!(
            p.delay(Call::Unsafe, Outcome::Transport, 1, MS(0), 0.0),
            None
        );
        // Never sent, or throttled before being handled: safe for any call.
        for call in [Call::Unsafe, Call::Idempotent] {
            assert!(
                p.delay(call, Outcome::ConnectFailed, 1, MS(0), 0.0)
                    .is_some()
            );
            assert!(p.delay(call, STATUS(429), 1, MS(0), 0.0).is_some());
        }
        for code in [200, 201, 400, 401, 403, 404, 409, 410, 422] {
            assert_eq!(
                p.delay(Call::Idempotent, STATUS(code), 1, MS(0), 0.0),
                None,
                "{code}"
            );
        }
    }

    #[test]
    fn backs_off_exponentially_with_jitter_up_to_the_cap() {
        let p = Policy::default();
        let d = |attempt, jitter| p.delay(Call::Idempotent, STATUS(503), attempt, MS(0), jitter);
        assert_eq!(d(1, 0.0), Some(MS(100)));
        assert_eq!(d(1, 0.999_999), Some(Duration::from_nanos(199_999_900)));
        assert_eq!(d(2, 0.0), Some(MS(200)));
        assert_eq!(d(3, 0.0), Some(MS(400)));
        assert_eq!(d(7, 0.0), Some(MS(2500)));
        assert_eq!(d(7, 1.0), Some(MS(5000)));
        assert_eq!(d(8, 0.0), None, "max_attempts");
    }

    #[test]
    fn honours_retry_after_capped_and_the_deadline() {
        let p = Policy::default();
        let throttled = |secs| Outcome::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            p.delay(Call::Unsafe, throttled(2), 1, MS(0), 0.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.delay(Call::Unsafe, throttled(3600), 1, MS(0), 0.0),
            Some(p.retry_after_cap)
        );
        // A shorter Retry-After than the backoff waits for the backoff.
        assert_eq!(
            p.delay(Call::Unsafe, throttled(0), 4, MS(0), 0.0),
            Some(MS(800))
        );
        assert_eq!(
            p.delay(Call::Idempotent, STATUS(503), 2, p.deadline - MS(100), 0.0),
            None,
            "the delay would pass the deadline"
        );
        assert_eq!(
            p.delay(Call::Idempotent, STATUS(503), 2, p.deadline - MS(300), 0.0),
            Some(MS(200))
        );
    }

    #[test]
    fn describes_writes_for_the_error_report() {
        let uri = |s: &str| s.parse::<hyper::Uri>().unwrap();
        let named = body(json!({"metadata": {"name": "p1"}}));
        assert_eq!(
            describe_change(
                &Method::POST,
                &uri("/api/v1/namespaces/astronomer/pods?"),
                &named
            ),
            Some("create pods astronomer/p1".into())
        );
        assert_eq!(
            describe_change(
                &Method::PATCH,
                &uri("/apis/velero.io/v1/namespaces/velero/backupstoragelocations/default"),
                b"{}"
            ),
            Some("patch backupstoragelocations velero/default".into())
        );
        assert_eq!(
            describe_change(&Method::DELETE, &uri("/api/v1/namespaces/n"), b""),
            Some("delete namespaces n".into())
        );
        assert_eq!(
            describe_change(&Method::GET, &uri("/api/v1/namespaces/n/pods/p"), b""),
            None
        );
        assert_eq!(
            describe_change(
                &Method::POST,
                &uri("/api/v1/namespaces/n/pods?dryRun=All"),
                &named
            ),
            None
        );
    }

    #[test]
    fn reviews_and_temporary_objects_are_no_change() {
        let uri = |s: &str| s.parse::<hyper::Uri>().unwrap();
        assert_eq!(
            describe_change(
                &Method::POST,
                &uri("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
                b"{}"
            ),
            None
        );
        let writes: Vec<String> = [
            "patch backupstoragelocations velero/default",
            "create pods astronomer/relay",
            "create serverstatusrequests velero/ask",
            "patch pods astronomer/relay",
            "delete pods astronomer/relay",
            "delete secrets astronomer/old",
            "create restores velero/r1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            net_changes(&writes),
            [
                "patch backupstoragelocations velero/default",
                "create serverstatusrequests velero/ask",
                "delete secrets astronomer/old",
                "create restores velero/r1",
            ]
        );
        // Created again after the delete: that one stays.
        let again: Vec<String> = ["create pods a/p", "delete pods a/p", "create pods a/p"]
            .map(String::from)
            .to_vec();
        assert_eq!(net_changes(&again), ["create pods a/p"]);
    }

    #[test]
    fn own_object_is_what_we_sent_plus_server_fields() {
        let sent = json!({
            "apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b1", "namespace": "velero", "labels": {"by": "astro"}},
            "spec": {"includedNamespaces": ["a"], "ttl": "720h0m0s"}
        });
        let mut existing = sent.clone();
        existing["metadata"]["uid"] = json!("u-1");
        existing["metadata"]["labels"]["velero.io/storage-location"] = json!("default");
        existing["spec"]["storageLocation"] = json!("default");
        existing["status"] = json!({"phase": "InProgress"});
        assert!(is_own_object(&sent, &existing));

        let mut other = existing.clone();
        other["spec"]["includedNamespaces"] = json!(["b"]);
        assert!(!is_own_object(&sent, &other));
        let mut unlabeled = existing;
        unlabeled["metadata"]["labels"] = json!({});
        assert!(!is_own_object(&sent, &unlabeled));
    }
}
