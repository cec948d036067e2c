//! Every fixture object of the platform and its variants, through both actions,
//! compared with what `restore endpoint`'s planner would have patched: the plugin and
//! the command must never disagree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::actions::{Action, Outcome, execute};
use super::config::EndpointConfig;
use crate::endpoint::plan::{Collected, PlanContext, RESTARTED_FOR, Role, Target, plan_move};
use crate::endpoint::target::{Endpoint, uri_endpoint};
use crate::sqlproxy::InstanceName;

const NEW_HOST: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";

type Key = (String, String, String, String);

fn key(v: &Value) -> Key {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The objects as the API server (and so a backup) holds them: the layers merged,
/// `stringData` folded into base64 `data`.
pub(crate) fn objects(variant: Option<&str>) -> Vec<Value> {
    let mut order: Vec<Key> = Vec::new();
    let mut by_key: BTreeMap<Key, Value> = BTreeMap::new();
    for layer in std::iter::once("platform").chain(variant) {
        let dir = fixtures().join(layer);
        if let Ok(text) = std::fs::read_to_string(dir.join("remove.txt")) {
            for line in text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            {
                let f: Vec<&str> = line.split_whitespace().collect();
                let ns = if f[2] == "-" { "" } else { f[2] };
                let k = (f[0].into(), f[1].into(), ns.into(), f[3].into());
                by_key.remove(&k);
                order.retain(|o| o != &k);
            }
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let docs: Vec<Value> =
                serde_saphyr::from_multiple(&std::fs::read_to_string(&file).unwrap()).unwrap();
            for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
                if let Some(Value::Object(sd)) =
                    doc.as_object_mut().and_then(|o| o.remove("stringData"))
                {
                    for (k, v) in sd {
                        doc["data"][k] = STANDARD.encode(v.as_str().unwrap_or_default()).into();
                    }
                }
                let k = key(&doc);
                if by_key.insert(k.clone(), doc).is_none() {
                    order.push(k);
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|k| by_key.remove(&k))
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(objects: &[Value], kind: &str) -> Vec<T> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| serde_json::from_value(o.clone()).unwrap())
        .collect()
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

struct Case {
    variant: Option<&'static str>,
    release: &'static str,
    endpoint: Option<Endpoint>,
    sqlproxy: Option<(Option<InstanceName>, InstanceName)>,
}

/// Runs one case; returns how many objects the plugin rewrote.
fn check(case: &Case) -> usize {
    let objects = objects(case.variant);
    let collected = Collected {
        secrets: typed(&objects, "Secret"),
        deployments: typed(&objects, "Deployment"),
        statefulsets: typed(&objects, "StatefulSet"),
    };
    let bootstrap = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "astronomer-bootstrap")
        .unwrap();
    let text = STANDARD
        .decode(bootstrap["data"]["connection"].as_str().unwrap())
        .unwrap();
    let old = uri_endpoint(std::str::from_utf8(&text).unwrap());
    let ctx = PlanContext {
        target: Target {
            endpoint: case.endpoint.clone(),
            userinfo: None,
            sqlproxy: case.sqlproxy.clone(),
        },
        old: old.clone(),
        platform_namespace: "astronomer".into(),
        platform_release: case.release.into(),
        restart_stamp: "now".into(),
    };
    let plan = plan_move(&collected, &ctx).unwrap();
    let patches: BTreeMap<(String, String, String), &Value> = plan
        .changes()
        .filter(|c| c.role != Role::Restart)
        .map(|c| {
            let kind = format!("{:?}", c.object.kind);
            (
                (kind, c.object.namespace.clone(), c.object.name.clone()),
                &c.patch,
            )
        })
        .collect();
    // The workloads the move restarts, with the fingerprint it leaves on them.
    let marks: BTreeMap<(String, String, String), &Value> = plan
        .changes()
        .filter(|c| c.role == Role::Restart)
        .map(|c| {
            let kind = format!("{:?}", c.object.kind);
            let fingerprint =
                &c.patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_FOR];
            (
                (kind, c.object.namespace.clone(), c.object.name.clone()),
                fingerprint,
            )
        })
        .collect();
    let config = EndpointConfig {
        platform_namespace: "astronomer".into(),
        new: case.endpoint.clone(),
        old,
        sqlproxy: case.sqlproxy.clone(),
        platform_release: Some(case.release.into()),
        restore: None,
    };
    let mut rewritten = 0;
    let mut restored = Vec::new();
    for object in &objects {
        let bytes = serde_json::to_vec(object).unwrap();
        let (_, kind, ns, name) = key(object);
        let id = format!("{:?} {kind} {ns}/{name}", case.variant);
        let decision = execute(Action::DbEndpoint, &bytes, Some(&config)).unwrap();
        let k = (kind.clone(), ns.clone(), name.clone());
        restored.push(match &decision.outcome {
            Outcome::Replace(out) => serde_json::from_slice(out).unwrap(),
            _ => object.clone(),
        });
        match (patches.get(&k), marks.get(&k), decision.outcome) {
            (None, None, Outcome::Unchanged) => {}
            (None, Some(fingerprint), Outcome::Replace(out)) => {
                let out: Value = serde_json::from_slice(&out).unwrap();
                let mut expected = object.clone();
                merge(
                    &mut expected,
                    &serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                        RESTARTED_FOR: fingerprint}}}}}),
                );
                assert_eq!(out, expected, "{id}: only the fingerprint is added");
            }
            (Some(patch), None, Outcome::Replace(out)) => {
                rewritten += 1;
                let out: Value = serde_json::from_slice(&out).unwrap();
                let mut expected = object.clone();
                let mut patch = (*patch).clone();
                patch["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("resourceVersion");
                if kind == "Deployment" {
                    // The planner's patch carries typed containers; compare the lists it
                    // changes, element by element.
                    let want = &patch["spec"]["template"]["spec"]["containers"];
                    let got = &out["spec"]["template"]["spec"]["containers"];
                    for (i, c) in want.as_array().unwrap().iter().enumerate() {
                        for f in ["command", "args"] {
                            assert_eq!(c.get(f), got[i].get(f), "{id} {f}");
                        }
                    }
                    // Nothing else moved.
                    let mut back = out.clone();
                    back["spec"]["template"]["spec"]["containers"] =
                        object["spec"]["template"]["spec"]["containers"].clone();
                    assert_eq!(back, *object, "{id}");
                } else {
                    merge(&mut expected, &patch);
                    assert_eq!(out, expected, "{id}");
                    // Byte-equal values, as the API server would store them.
                    for (k, v) in expected["data"].as_object().unwrap() {
                        assert_eq!(
                            STANDARD.decode(out["data"][k].as_str().unwrap()).unwrap(),
                            STANDARD.decode(v.as_str().unwrap()).unwrap(),
                            "{id} {k}"
                        );
                    }
                }
            }
            (patch, mark, got) => {
                panic!("{id}: planner patch {patch:?} restart {mark:?}, plugin {got:?}")
            }
        }
        // The Redis action skips exactly the Redis PVCs and leaves the rest alone.
        let redis = execute(Action::SkipRedisData, &bytes, None)
            .unwrap()
            .outcome;
        let is_redis_pvc = kind == "PersistentVolumeClaim" && name.starts_with("redis-db-");
        assert_eq!(redis == Outcome::Skip, is_redis_pvc, "{id}");
        if !is_redis_pvc {
            assert_eq!(redis, Outcome::Unchanged, "{id}");
        }
    }
    // What the plugin restored needs nothing more: the move that follows the restore
    // patches nothing and restarts nothing.
    let after = Collected {
        secrets: typed(&restored, "Secret"),
        deployments: typed(&restored, "Deployment"),
        statefulsets: typed(&restored, "StatefulSet"),
    };
    let again = plan_move(&after, &ctx).unwrap();
    let left: Vec<String> = again.changes().map(|c| c.object.id()).collect();
    assert!(
        left.is_empty(),
        "{:?}: still planned after the plugin: {left:?}",
        case.variant
    );
    rewritten
}

fn new_endpoint() -> Option<Endpoint> {
    Some(Endpoint {
        host: NEW_HOST.into(),
        port: 6432,
    })
}

#[test]
fn platform_variant_a() {
    let n = check(&Case {
        variant: None,
        release: "astronomer",
        endpoint: new_endpoint(),
        sqlproxy: None,
    });
    // bootstrap, houston, grafana, 3 pgbouncer configs, quiet-nebula's metadata,
    // radiant-quasar's kedaConnection.
    assert!(n >= 7, "only {n} objects rewritten");
}

#[test]
fn variants_b_to_d_and_renamed_release() {
    for (variant, release) in [
        ("variant-c", "astronomer"),
        ("variant-d", "astronomer"),
        ("renamed-release", "astro"),
        ("placeholder", "astronomer"),
    ] {
        let n = check(&Case {
            variant: Some(variant),
            release,
            endpoint: new_endpoint(),
            sqlproxy: None,
        });
        assert!(n >= 5, "{variant}: only {n} objects rewritten");
    }
    let to = InstanceName::parse("acme-data-dr:us-west1:astro-pg-02").unwrap();
    let n = check(&Case {
        variant: Some("variant-b"),
        release: "astronomer",
        endpoint: None,
        sqlproxy: Some((None, to)),
    });
    assert_eq!(n, 1, "the proxy Deployment");
}

#[test]
fn redis_pvcs_are_found_in_the_fixtures() {
    let objects = objects(None);
    let skipped = objects
        .iter()
        .filter(|o| {
            execute(Action::SkipRedisData, &serde_json::to_vec(o).unwrap(), None)
                .unwrap()
                .outcome
                == Outcome::Skip
        })
        .count();
    assert_eq!(
        skipped, 2,
        "weightless-meteor and radiant-quasar run Celery"
    );
    assert!(
        objects.iter().any(|o| o["kind"] == "StatefulSet"
            && o["metadata"]["name"] == "weightless-meteor-5042-redis")
    );
}
