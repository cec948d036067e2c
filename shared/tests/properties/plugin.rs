//! `velero_plugin`: the two RestoreItemActions on item bytes of every kind they see,
//! huge and malformed ones included, and their agreement with the `restore endpoint`
//! planner.

use std::collections::BTreeMap;

use astro::endpoint::plan::{Collected, Kind, PlanContext, Target, plan_move};
use astro::endpoint::target::Endpoint;
use astro::sqlproxy::{InstanceName, SQLPROXY_DEPLOYMENT};
use astro::velero_plugin::actions::{ACTIONS, Action, Outcome, execute};
use astro::velero_plugin::config::EndpointConfig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fuzz_harness::check;
use k8s_openapi::api::core::v1::Secret;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{any_text, host};

const TARGET: &str = "velero plugin";
const PLATFORM: &str = "astronomer";
const OLD: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";

fn old() -> Endpoint {
    Endpoint {
        host: OLD.into(),
        port: 5432,
    }
}

fn new_endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        1 => Just(old()),
        4 => (host(), 1u16..).prop_map(|(host, port)| Endpoint { host, port }),
    ]
}

/// A connection value as the database secrets hold it: at the old host, elsewhere, a
/// placeholder, or anything.
fn connection() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(postgres|postgresql|db\\+postgresql)://[a-z_]{1,8}:[A-Za-z0-9%]{1,10}@".prop_map(|p| format!("{p}{OLD}:5432/astronomer_houston?schema=houston%24default")),
        2 => super::target::uri(),
        1 => "[A-Za-z0-9]{5}",
        1 => any_text(30),
    ]
}

fn ini() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9-]{0,8}".prop_map(|r| format!("[databases]\n{r}-metadata = host={OLD} dbname={r}_airflow port=5432 pool_size=3\n{r}-result-backend = host={OLD} dbname={r}_airflow port=5432 pool_size=2\n\n[pgbouncer]\npool_mode = transaction\nlisten_port = 6543\n")),
        2 => super::pgbouncer_ini::ini(),
    ]
}

/// Secret data: the keys the actions read, sometimes missing, not UTF-8, or extra.
fn data(
    main_key: &'static str,
    value: BoxedStrategy<String>,
) -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    (
        prop::option::weighted(0.9, value),
        prop::option::of(connection()),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
    )
        .prop_map(move |(main, keda, junk)| {
            let mut data = BTreeMap::new();
            if let Some(v) = main {
                data.insert(main_key.to_owned(), v.into_bytes());
            }
            if let Some(k) = keda {
                data.insert("kedaConnection".to_owned(), k.into_bytes());
            }
            if let Some(j) = junk {
                data.insert("other".to_owned(), j);
            }
            data
        })
}

fn secret_json(ns: &str, name: &str, data: &BTreeMap<String, Vec<u8>>) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), STANDARD.encode(v).into()))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "7",
                     "labels": {"release": "r"}, "annotations": {"a": "b"}},
        "data": data})
}

/// The platform's database secrets in the platform namespace, an Airflow namespace and
/// a pool namespace.
fn secrets() -> impl Strategy<Value = Vec<Value>> {
    let bootstrap = "[a-z_]{1,8}:[A-Za-z0-9%]{1,10}".prop_map(|userinfo| {
        let uri = format!("postgres://{userinfo}@{OLD}:5432");
        secret_json(
            PLATFORM,
            "astronomer-bootstrap",
            &BTreeMap::from([("connection".to_owned(), uri.into_bytes())]),
        )
    });
    let others = prop::collection::vec(
        prop_oneof![
            (
                prop::sample::select(vec![
                    "astronomer-houston-backend",
                    "astronomer-grafana-backend"
                ]),
                data("connection", connection().boxed())
            )
                .prop_map(|(name, d)| secret_json(PLATFORM, name, &d)),
            (
                prop::sample::select(vec!["astronomer-r", "data-team", PLATFORM]),
                data("pgbouncer.ini", ini().boxed())
            )
                .prop_map(|(ns, d)| secret_json(ns, "r-pgbouncer-config", &d)),
            (
                prop::sample::select(vec!["astronomer-r", "data-team", PLATFORM]),
                prop::sample::select(vec![
                    "r-metadata",
                    "r-result-backend",
                    "r-airflow-metadata",
                    "r-broker-url",
                    "x"
                ]),
                data("connection", connection().boxed()),
            )
                .prop_map(|(ns, name, d)| secret_json(ns, name, &d)),
        ],
        0..6,
    );
    (bootstrap, others).prop_map(|(b, mut others)| {
        others.insert(0, b);
        // One object per namespace/name, as in a cluster.
        let mut seen = std::collections::BTreeSet::new();
        others.retain(|s| {
            seen.insert((
                s["metadata"]["namespace"].to_string(),
                s["metadata"]["name"].to_string(),
            ))
        });
        others
    })
}

fn config(
    new: Option<Endpoint>,
    sqlproxy: Option<(Option<InstanceName>, InstanceName)>,
) -> EndpointConfig {
    EndpointConfig {
        platform_namespace: PLATFORM.into(),
        new,
        old: Some(old()),
        sqlproxy,
        platform_release: None,
        restore: None,
    }
}

/// The item's `data` after the action (the input's when it is left alone).
fn data_after(
    action: Action,
    item: &Value,
    config: &EndpointConfig,
) -> Result<Value, TestCaseError> {
    let bytes = serde_json::to_vec(item).unwrap();
    let decision =
        execute(action, &bytes, Some(config)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(match decision.outcome {
        Outcome::Unchanged => item["data"].clone(),
        Outcome::Replace(out) => serde_json::from_slice::<Value>(&out).unwrap()["data"].clone(),
        Outcome::Skip => return Err(TestCaseError::fail("a secret was skipped")),
    })
}

/// For every secret, the plugin restores what `restore endpoint` would patch it to.
#[test]
fn actions_agree_with_the_planner_on_secrets() {
    check(
        TARGET,
        "actions agree with planner on secrets",
        (secrets(), new_endpoint()),
        |(items, new)| {
            let collected = Collected {
                secrets: items
                    .iter()
                    .map(|s| serde_json::from_value::<Secret>(s.clone()).unwrap())
                    .collect(),
                ..Collected::default()
            };
            let ctx = PlanContext {
                target: Target {
                    endpoint: Some(new.clone()),
                    userinfo: None,
                    sqlproxy: None,
                },
                old: Some(old()),
                platform_namespace: PLATFORM.into(),
                platform_release: PLATFORM.into(),
                restart_stamp: String::new(),
            };
            let plan =
                plan_move(&collected, &ctx).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let config = config(Some(new), None);
            for item in &items {
                let (ns, name) = (
                    item["metadata"]["namespace"].as_str().unwrap(),
                    item["metadata"]["name"].as_str().unwrap(),
                );
                let mut planned = item["data"].clone();
                if let Some(change) = plan.changes().find(|c| {
                    c.object.kind == Kind::Secret
                        && c.object.namespace == ns
                        && c.object.name == name
                }) {
                    for (k, v) in change.patch["data"].as_object().unwrap() {
                        planned[k] = v.clone();
                    }
                }
                prop_assert_eq!(
                    &data_after(Action::DbEndpoint, item, &config)?,
                    &planned,
                    "{}/{}",
                    ns,
                    name
                );
                prop_assert_eq!(
                    &data_after(Action::SkipRedisData, item, &config)?,
                    &item["data"]
                );
                // The action is idempotent: its output goes through unchanged.
                let mut restored = item.clone();
                restored["data"] = planned;
                prop_assert_eq!(
                    &data_after(Action::DbEndpoint, &restored, &config)?,
                    &restored["data"]
                );
            }
            Ok(())
        },
    );
}

/// Items of every kind the actions see (Redis PVCs, the Cloud SQL proxy, secrets,
/// anything), as JSON, re-serialised oddly, cut, bit-flipped, huge or deeply nested.
fn item_bytes() -> impl Strategy<Value = Vec<u8>> {
    let flag = prop_oneof![
        Just("-instances=astro-prod:us-east1:astro-pg=tcp:0.0.0.0:5432,".to_owned()),
        Just(
            "--instances=astro-prod:us-east1:astro-pg=tcp:5432,astro-prod:us-east1:other=tcp:5433"
                .to_owned()
        ),
        any_text(20),
    ];
    let proxy = (flag, any::<bool>()).prop_map(|(flag, in_args)| {
        let list = json!(["/cloud_sql_proxy", flag]);
        let container = if in_args { json!({"name": "sqlproxy", "image": "gcr.io/cloudsql-docker/gce-proxy:1.33", "args": list}) } else { json!({"name": "sqlproxy", "command": list}) };
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": SQLPROXY_DEPLOYMENT, "namespace": PLATFORM},
               "spec": {"selector": {}, "template": {"spec": {"containers": [container]}}}})
    });
    let pvc = prop::sample::select(vec!["redis", "worker", "scheduler"]).prop_map(|c| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": format!("redis-db-r-redis-0-{c}"), "namespace": "astronomer-r", "labels": {"tier": "airflow", "component": c}},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    });
    let secret = secrets().prop_map(|mut s| s.pop().unwrap());
    // Sizes spread over 1 B … 256 KiB (a Secret may hold up to 1 MiB).
    let huge = (0u32..19).prop_map(|k| {
        let n = 1usize << k;
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r-metadata", "namespace": "astronomer-r"},
               "data": {"connection": STANDARD.encode(format!("postgres://u:p@{OLD}:5432/{}", "d".repeat(n))), "big": "A".repeat(n / 3 * 4)}})
    });
    // serde_json stops at 128 levels: deeper items are "not JSON", never a stack overflow.
    let deep = (1usize..300).prop_map(|depth| {
        let mut v = json!("x");
        for _ in 0..depth {
            v = json!({"a": [v]});
        }
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r-metadata", "namespace": "astronomer-r"}, "data": v})
    });
    let object = prop_oneof![3 => proxy, 3 => pvc, 3 => secret, 1 => huge, 1 => deep];
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0u8..3);
    (object, prop::collection::vec(edit, 0..3), any::<bool>()).prop_map(
        |(object, edits, pretty)| {
            let mut bytes = if pretty {
                serde_json::to_vec_pretty(&object).unwrap()
            } else {
                serde_json::to_vec(&object).unwrap()
            };
            for (at, byte, op) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, byte),
                    1 => bytes.truncate(i),
                    _ if i < bytes.len() => bytes[i] ^= byte,
                    _ => {}
                }
            }
            bytes
        },
    )
}

fn configs() -> Vec<Option<EndpointConfig>> {
    let to = InstanceName::parse("astro-prod:us-east1:astro-dr").unwrap();
    let from = InstanceName::parse("astro-prod:us-east1:astro-pg").unwrap();
    let new = Endpoint {
        host: "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com".into(),
        port: 5433,
    };
    vec![
        None,
        Some(config(Some(new.clone()), None)),
        Some(config(None, Some((None, to.clone())))),
        Some(config(Some(new), Some((Some(from), to)))),
    ]
}

/// Whatever the bytes: no panic; an answer keeps the item's identity and every field
/// the action does not own, and running the action on its own answer changes nothing.
#[test]
fn any_item_bytes() {
    let configs = configs();
    check(
        TARGET,
        "any item: no panic, identity kept, idempotent",
        item_bytes(),
        |bytes| {
            for action in ACTIONS {
                for config in &configs {
                    let Ok(decision) = execute(action, &bytes, config.as_ref()) else {
                        continue;
                    };
                    let Outcome::Replace(out) = decision.outcome else {
                        continue;
                    };
                    let (before, after): (Value, Value) = (
                        serde_json::from_slice(&bytes).unwrap(),
                        serde_json::from_slice(&out).unwrap(),
                    );
                    let owned = if before["kind"] == "Secret" {
                        "/data"
                    } else {
                        "/spec/template/spec/containers"
                    };
                    let (mut b, mut a) = (before.clone(), after.clone());
                    for v in [&mut b, &mut a] {
                        if let Some(slot) = v.pointer_mut(owned) {
                            *slot = Value::Null;
                        }
                    }
                    prop_assert_eq!(a, b, "{} changed more than {}", action.name(), owned);
                    let again = execute(action, &out, config.as_ref())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(again.outcome, Outcome::Unchanged);
                }
            }
            Ok(())
        },
    );
}

/// The ConfigMap data `restore platform` writes reads back as the same configuration.
#[test]
fn config_print_parse_is_stable() {
    let any_data = prop::collection::btree_map(
        prop::sample::select(vec![
            "newHost",
            "newPort",
            "oldHost",
            "oldPort",
            "newInstance",
            "oldInstance",
            "platformNamespace",
            "x",
        ])
        .prop_map(str::to_owned),
        prop_oneof![
            host(),
            "[0-9]{1,6}",
            Just("astro-prod:us-east1:astro-dr".to_owned()),
            any_text(12)
        ],
        0..8,
    );
    check(
        TARGET,
        "config data parse -> print -> parse stable",
        any_data,
        |data| {
            if let Ok(config) = EndpointConfig::from_data(&data) {
                prop_assert_eq!(
                    EndpointConfig::from_data(&config.to_data()).ok(),
                    Some(config)
                );
            }
            Ok(())
        },
    );
}
