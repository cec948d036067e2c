//! Property tests (fuzzing) of the fake API server's request parsing: label and field
//! selectors, patch bodies of every content type, and whole HTTP requests (paths,
//! queries, bodies) against a running server, through `fuzz_harness::check`
//! (256 cases under `cargo test`, any number under `scripts/fuzz`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fake_cluster::parse::{FieldSelector, LabelSelector, apply_patch};
use fake_cluster::{FakeCluster, Options};
use fuzz_harness::check;
use fuzz_harness::strategies::{self, any_text};
use proptest::prelude::*;
use serde_json::{Value, json};

const TARGET: &str = "fake cluster";

/// Characters of selector and query syntax.
const SPECIAL: &[char] = &[
    '=', '!', ',', '(', ')', ' ', '.', '/', '%', '&', '?', '\0', 'é',
];

/// `base` with a few characters inserted, deleted or replaced by selector syntax.
fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    strategies::mutated(base, SPECIAL, 4)
}

// ---- label selectors ------------------------------------------------------------------

/// A requirement of the model: what the selector text says, evaluated independently.
#[derive(Debug, Clone)]
enum Req {
    Eq(String, String, &'static str),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Req {
    fn text(&self, pad: &str) -> String {
        match self {
            Req::Eq(k, v, op) => format!("{k}{pad}{op}{pad}{v}"),
            Req::Ne(k, v) => format!("{k}{pad}!={pad}{v}"),
            Req::In(k, vs) => format!("{k} in{pad}({})", vs.join(&format!(",{pad}"))),
            Req::NotIn(k, vs) => format!("{k} notin ({pad}{}{pad})", vs.join(",")),
            Req::Exists(k) => k.clone(),
            Req::NotExists(k) => format!("!{pad}{k}"),
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k);
        match self {
            Req::Eq(k, v, _) => get(k) == Some(v),
            Req::Ne(k, v) => get(k) != Some(v),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        }
    }
}

const KEYS: &[&str] = &[
    "tier",
    "component",
    "release",
    "app.kubernetes.io/name",
    "velero.io/backup-name",
    "workspace",
];
const VALUES: &[&str] = &[
    "airflow",
    "redis",
    "weightless-meteor-5042",
    "velero",
    "a.b_c-1",
    "",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "[a-z0-9]([a-z0-9._/-]{0,20}[a-z0-9])?"]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(VALUES).prop_map(str::to_owned), 1 => "[A-Za-z0-9._-]{1,12}"]
}

fn requirement() -> impl Strategy<Value = Req> {
    let values = || {
        prop::collection::vec(
            value().prop_filter("set values are not empty", |v| !v.is_empty()),
            1..4,
        )
    };
    prop_oneof![
        (key(), value(), prop::sample::select(vec!["=", "=="]))
            .prop_map(|(k, v, op)| Req::Eq(k, v, op)),
        (key(), value()).prop_map(|(k, v)| Req::Ne(k, v)),
        (key(), values()).prop_map(|(k, vs)| Req::In(k, vs)),
        (key(), values()).prop_map(|(k, vs)| Req::NotIn(k, vs)),
        key().prop_map(Req::Exists),
        key().prop_map(Req::NotExists),
    ]
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(key(), value(), 0..5)
}

fn object(labels: &BTreeMap<String, String>) -> Value {
    json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
}

/// A selector printed from a model parses to a selector that matches exactly what the
/// model matches (the parse -> evaluate round trip kubectl and kube-rs rely on).
#[test]
fn label_selector_round_trips_a_model() {
    let args = (
        prop::collection::vec(requirement(), 0..5),
        prop::sample::select(vec!["", " "]),
        prop::collection::vec(labels(), 1..6),
    );
    check(
        TARGET,
        "label selector model round trip",
        args,
        |(reqs, pad, objects)| {
            let text = reqs
                .iter()
                .map(|r| r.text(pad))
                .collect::<Vec<_>>()
                .join(",");
            let selector = LabelSelector::parse(&text)
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            for labels in &objects {
                let want = reqs.iter().all(|r| r.matches(labels));
                prop_assert_eq!(
                    selector.matches(&object(labels)),
                    want,
                    "{:?} on {:?}",
                    text,
                    labels
                );
            }
            Ok(())
        },
    );
}

#[test]
fn selectors_never_panic() {
    let text = || {
        prop_oneof![
            2 => prop::collection::vec(requirement(), 0..4).prop_map(|r| r.iter().map(|r| r.text(" ")).collect::<Vec<_>>().join(",")),
            2 => mutated("tier=airflow,component in (redis, x),!release,a notin (b)".prop_map(String::from)),
            1 => any_text(40),
        ]
    };
    check(
        TARGET,
        "selectors never panic",
        (text(), text(), labels()),
        |(l, f, labels)| {
            let obj = object(&labels);
            if let Ok(s) = LabelSelector::parse(&l) {
                let _ = s.matches(&obj);
            }
            if let Ok(s) = FieldSelector::parse(&f) {
                let _ = s.matches(&obj);
                let _ = s.pinned("metadata.name");
            }
            Ok(())
        },
    );
}

/// Field selectors: `metadata.name=x,status.phase!=y` printed from a model match what
/// the model says, and `pinned` names the namespace or name an `=` pins.
#[test]
fn field_selector_round_trips_a_model() {
    let field = prop::sample::select(vec![
        "metadata.name",
        "metadata.namespace",
        "status.phase",
        "spec.nodeName",
        "type",
    ]);
    let req = (
        field,
        prop::sample::select(vec!["=", "==", "!="]),
        prop::sample::select(vec!["n", "ns", "Running", "", "x"]),
    );
    let args = (
        prop::collection::vec(req, 0..4),
        "[a-z]{0,2}",
        prop::sample::select(vec!["Running", "Pending"]),
    );
    check(
        TARGET,
        "field selector model round trip",
        args,
        |(reqs, name, phase)| {
            let text = reqs
                .iter()
                .map(|(f, op, v)| format!("{f}{op}{v}"))
                .collect::<Vec<_>>()
                .join(",");
            let selector = FieldSelector::parse(&text)
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            let obj =
                json!({"metadata": {"name": name, "namespace": "ns"}, "status": {"phase": phase}});
            let actual = |f: &str| match f {
                "metadata.name" => name.clone(),
                "metadata.namespace" => "ns".to_owned(),
                "status.phase" => phase.to_owned(),
                _ => String::new(),
            };
            let want = reqs
                .iter()
                .all(|(f, op, v)| (actual(f) == *v) == (*op != "!="));
            prop_assert_eq!(selector.matches(&obj), want, "{}", text);
            let pinned = reqs
                .iter()
                .find(|(f, op, _)| *f == "metadata.name" && *op != "!=")
                .map(|(_, _, v)| *v);
            prop_assert_eq!(selector.pinned("metadata.name"), pinned);
            Ok(())
        },
    );
}

// ---- patch bodies ---------------------------------------------------------------------

/// Any JSON value, a few levels deep, with the names pod templates merge by.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[ -~]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let key = prop_oneof![
            prop::sample::select(vec![
                "name",
                "containers",
                "env",
                "volumes",
                "volumeMounts",
                "ports",
                "image",
                "spec",
                "metadata",
                "$patch",
                "value"
            ])
            .prop_map(str::to_owned),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A Deployment-like target with named containers, env and volume mounts.
fn workload() -> impl Strategy<Value = Value> {
    // Merge keys are unique within a list, as the API server's validation keeps them.
    let env = prop::collection::btree_map("[A-C]", "[0-9]", 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect::<Vec<_>>()
    });
    let container = (env, json_value())
        .prop_map(|(env, extra)| json!({"image": "x", "env": env, "extra": extra}));
    let containers = prop::collection::btree_map("[a-c]", container, 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(name, mut c)| {
                c["name"] = name.into();
                c
            })
            .collect::<Vec<_>>()
    });
    (containers, json_value()).prop_map(|(containers, extra)| {
        json!({"metadata": {"name": "w", "labels": {"a": "b"}}, "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}, "extra": extra}})
    })
}

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

/// Merge and strategic merge patches are idempotent: applying one twice gives what
/// applying it once gives (kubectl and kube-rs retry patches on conflicts).
#[test]
fn merge_patches_are_idempotent() {
    let patch = prop_oneof![json_value(), workload()];
    let args = (
        workload(),
        patch,
        prop::sample::select(vec![MERGE, STRATEGIC]),
    );
    check(
        TARGET,
        "merge patches idempotent",
        args,
        |(target, patch, ct)| {
            let body = serde_json::to_vec(&patch).unwrap();
            let once = apply_patch(ct, &target, &body).map_err(TestCaseError::fail)?;
            let twice = apply_patch(ct, &once, &body).map_err(TestCaseError::fail)?;
            prop_assert_eq!(twice, once);
            Ok(())
        },
    );
}

/// Whatever the body and content type: an answer or an error, never a panic.
#[test]
fn patch_bodies_never_panic() {
    let json_patch = prop::collection::vec(
        (prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test", "x"]), "(/[a-z0-9~-]{0,6}){0,3}", json_value())
            .prop_map(|(op, path, value)| json!({"op": op, "path": path, "from": "/spec", "value": value})),
        0..4,
    )
    .prop_map(|ops| serde_json::to_vec(&ops).unwrap());
    let yaml = prop_oneof![
        Just(b"a: &x [*x]\n".to_vec()),
        Just(b"a: &a [1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c]\n".to_vec()),
        Just(b"metadata:\n  labels:\n    a: b\nspec: {replicas: 3}\n".to_vec()),
        Just(b"!!binary aGVsbG8=".to_vec()),
        Just(b"- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -".to_vec()),
    ];
    let body = prop_oneof![
        json_patch,
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        yaml,
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    let ct = prop::sample::select(vec![
        "application/json-patch+json",
        MERGE,
        STRATEGIC,
        "application/apply-patch+yaml",
        "application/apply-patch+json; charset=utf-8",
        "application/json",
        "",
    ]);
    check(
        TARGET,
        "patch bodies never panic",
        (workload(), body, ct),
        |(target, body, ct)| {
            let _ = apply_patch(ct, &target, &body);
            Ok(())
        },
    );
}

// ---- whole requests -------------------------------------------------------------------

/// Which cluster a test talks to: request fuzzing may delete every namespace of its own.
#[derive(Clone, Copy)]
enum Cluster {
    Fuzzed,
    RoundTrip,
}

fn cluster(which: Cluster) -> &'static FakeCluster {
    static CLUSTERS: [OnceLock<FakeCluster>; 2] = [OnceLock::new(), OnceLock::new()];
    CLUSTERS[which as usize].get_or_init(|| {
        FakeCluster::start(Options {
            manifest_dirs: vec![
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/platform"),
            ],
            substitutions: vec![("DBHOST".into(), "127.0.0.1:5432".into())],
            ..Options::default()
        })
        .inspect(|cluster| {
            for ns in ["fuzz", "roundtrip"] {
                cluster.apply(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                );
            }
        })
        .expect("fake cluster starts")
    })
}

/// One HTTP/1.1 request on a fresh connection; the status code and body of the answer.
fn send(
    which: Cluster,
    method: &str,
    target: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let addr = cluster(which)
        .url()
        .trim_start_matches("http://")
        .to_owned();
    let mut stream = TcpStream::connect(&addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The server may answer a malformed request line with 400 and close before the body
    // is written; the answer is what counts.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| answer[i + 4..].to_vec());
    Ok((code, body))
}

/// A request target: real API paths (collections, objects, subresources, CRD groups)
/// with some segments replaced, and queries of selectors, paging and options.
fn request_target() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        6 => prop::sample::select(vec![
            "api", "apis", "v1", "namespaces", "astronomer", "velero", "astronomer-weightless-meteor-5042", "fuzz",
            "secrets", "configmaps", "pods", "deployments", "statefulsets", "persistentvolumeclaims", "backups",
            "restores", "schedules", "velero.io", "apps", "status", "scale", "log", "exec", "astronomer-bootstrap",
            "velero-download", "version", "openapi", "v2", "healthz", "customresourcedefinitions", "apiextensions.k8s.io",
        ]).prop_map(str::to_owned),
        1 => "[a-z0-9.%-]{0,12}",
    ];
    let path = prop_oneof![
        3 => ("(api/v1|apis/apps/v1|apis/velero.io/v1)", prop::option::of(prop::sample::select(vec!["astronomer", "velero", "fuzz", "nope"])),
              prop::sample::select(vec!["secrets", "configmaps", "deployments", "backups", "pods", "namespaces", "nodes"]),
              prop::option::of(prop::sample::select(vec!["astronomer-bootstrap", "fuzz-a", "fuzz-b", "x"])),
              prop::option::of(prop::sample::select(vec!["status", "scale", "log", "binding"])))
            .prop_map(|(gv, ns, plural, name, sub)| {
                let mut p = format!("/{gv}");
                if let Some(ns) = ns { p += &format!("/namespaces/{ns}"); }
                p += &format!("/{plural}");
                if let Some(n) = name { p += &format!("/{n}"); if let Some(s) = sub { p += &format!("/{s}"); } }
                p
            }),
        1 => prop::collection::vec(segment, 0..7).prop_map(|s| format!("/{}", s.join("/"))),
    ];
    let param = prop_oneof![
        "labelSelector=[a-z=!,()% ]{0,20}".prop_map(|s| s.replace(' ', "%20")),
        Just("labelSelector=tier%3Dairflow%2Ccomponent%20in%20(redis)".to_owned()),
        "fieldSelector=(metadata\\.name|status\\.phase|bogus)(%3D|!%3D|%3D%3D)[a-z]{0,5}",
        "limit=-?[0-9]{0,4}",
        "continue=[A-Za-z0-9=%]{0,12}",
        "resourceVersion=[0-9a-z]{0,5}",
        Just("dryRun=All".to_owned()),
        Just("propagationPolicy=Foreground".to_owned()),
        "(timeoutSeconds|tailLines|container|follow)=[a-z0-9]{0,4}",
        "[a-zA-Z%]{1,6}=[a-zA-Z0-9%]{0,6}",
    ];
    (path, prop::collection::vec(param, 0..4)).prop_map(|(path, params)| {
        if params.is_empty() {
            path
        } else {
            format!("{path}?{}", params.join("&"))
        }
    })
}

fn request_body() -> impl Strategy<Value = Vec<u8>> {
    let configmap = (prop::sample::select(vec!["fuzz-a", "fuzz-b", "Bad_Name", ""]), prop::collection::btree_map("[a-z.]{1,6}", any_text(8), 0..3))
        .prop_map(|(name, data)| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "fuzz", "labels": {"tier": "airflow"}}, "data": data}));
    prop_oneof![
        2 => configmap.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => Just(br#"[{"op":"replace","path":"/data","value":{"k":"v"}}]"#.to_vec()),
        1 => Just(br#"{"metadata":{"resourceVersion":"1"},"data":{"k":null}}"#.to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => Just(Vec::new()),
    ]
}

/// Any request: an answer with a status below 500, errors as a `metav1.Status`, and
/// the server answering the next request.
#[test]
fn any_request_gets_an_answer() {
    let method = prop::sample::select(vec![
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
    ]);
    let ct = prop::sample::select(vec![
        "application/json",
        MERGE,
        STRATEGIC,
        "application/json-patch+json",
        "application/apply-patch+yaml",
        "application/vnd.kubernetes.protobuf",
        "text/plain",
    ]);
    let args = (method, request_target(), ct, request_body());
    check(
        TARGET,
        "any HTTP request gets an answer",
        args,
        |(method, target, ct, body)| {
            // A watch streams until its timeout: not a parsing question.
            if target.contains("watch") || target.contains("follow") {
                return Ok(());
            }
            let (code, answer) =
                send(Cluster::Fuzzed, method, &target, ct, &body).map_err(TestCaseError::fail)?;
            prop_assert!(
                code < 500,
                "{} {} -> {}: {}",
                method,
                target,
                code,
                String::from_utf8_lossy(&answer)
            );
            if code >= 400 && method != "HEAD" && !answer.is_empty() {
                if let Ok(status) = serde_json::from_slice::<Value>(&answer) {
                    prop_assert_eq!(&status["kind"], "Status", "{} {}", method, target);
                    prop_assert_eq!(status["code"].as_u64(), Some(u64::from(code)));
                }
            }
            Ok(())
        },
    );
}

/// A ConfigMap created through the API reads back with the same data, whatever the
/// strings hold; a label selector built from its labels lists it.
#[test]
fn created_objects_read_back() {
    let valid_labels = prop::collection::btree_map(
        prop::sample::select(KEYS).prop_map(str::to_owned),
        "([a-z0-9]([a-z0-9._-]{0,8}[a-z0-9])?)?",
        0..4,
    );
    let args = (
        "[a-z]{1,10}",
        prop::collection::btree_map("[A-Za-z0-9._-]{1,12}", any_text(20), 0..4),
        valid_labels,
    );
    check(
        TARGET,
        "create -> get round trip",
        args,
        |(suffix, data, labels)| {
            let name = format!("rt-{suffix}");
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": data});
            // Not a namespace the request fuzzing addresses (it may delete those).
            let base = "/api/v1/namespaces/roundtrip/configmaps";
            let _ = send(
                Cluster::RoundTrip,
                "DELETE",
                &format!("{base}/{name}"),
                "application/json",
                b"",
            );
            let (code, answer) = send(
                Cluster::RoundTrip,
                "POST",
                base,
                "application/json",
                &serde_json::to_vec(&cm).unwrap(),
            )
            .map_err(TestCaseError::fail)?;
            prop_assert_eq!(code, 201, "{}", String::from_utf8_lossy(&answer));
            let (code, answer) = send(
                Cluster::RoundTrip,
                "GET",
                &format!("{base}/{name}"),
                "",
                b"",
            )
            .map_err(TestCaseError::fail)?;
            prop_assert_eq!(code, 200);
            let got: Value = serde_json::from_slice(&answer).unwrap();
            prop_assert_eq!(&got["data"], &cm["data"]);
            prop_assert_eq!(&got["metadata"]["labels"], &cm["metadata"]["labels"]);
            let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}%3D{v}")).collect();
            let (code, answer) = send(
                Cluster::RoundTrip,
                "GET",
                &format!("{base}?labelSelector={}", selector.join(",")),
                "",
                b"",
            )
            .map_err(TestCaseError::fail)?;
            prop_assert_eq!(code, 200);
            let list: Value = serde_json::from_slice(&answer).unwrap();
            prop_assert!(
                list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["metadata"]["name"] == name.as_str())
            );
            let _ = send(
                Cluster::RoundTrip,
                "DELETE",
                &format!("{base}/{name}"),
                "application/json",
                b"",
            );
            Ok(())
        },
    );
}
