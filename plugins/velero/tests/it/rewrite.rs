//! The plugin binary against the fixture platform and its variants: every object comes
//! out exactly as `restore endpoint`'s planner would have patched it, or byte-equal to
//! what went in; the configuration is read from a (fake) API server.

use astro::endpoint::plan::{Collected, PlanContext, RESTARTED_FOR, Role, Target, plan_move};
use astro::endpoint::target::{Endpoint, uri_endpoint};
use astro::sqlproxy::InstanceName;
use astro::velero_plugin::actions::{DB_ENDPOINT, SKIP_REDIS_DATA};
use astro::velero_plugin::config::EndpointConfig;
use astro::velero_plugin::host::PluginProcess;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_cluster::{FakeCluster, Options, reset_metadata};
use serde_json::{Value, json};

use crate::support::{Installed, RESTORE, installed, launch, stop};

const NEW_HOST: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";

/// A cluster holding the rendered fixtures of `variant` (the API server folds
/// `stringData` into `data`, as on a real cluster a backup was taken from).
fn cluster(variant: Option<&str>) -> FakeCluster {
    let cluster = FakeCluster::start(Options {
        crd_dir: Some(std::path::PathBuf::new()),
        ..Options::default()
    })
    .unwrap();
    let variants: Vec<&str> = variant.into_iter().collect();
    // Velero's own objects are not what a restore hands to item actions here.
    for object in e2e_tests::render_fixtures_shifted(&variants, &[], 0)
        .into_iter()
        .filter(|o| {
            !o["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .starts_with("velero.io/")
        })
    {
        cluster.apply(object);
    }
    cluster
}

/// The plugin, launched against `cluster`'s API server.
async fn launch_against(plugin: &Installed, cluster: &FakeCluster) -> PluginProcess {
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    launch(
        plugin,
        &[("KUBECONFIG", &kubeconfig), ("VELERO_NAMESPACE", "velero")],
    )
    .await
}

fn typed<T: serde::de::DeserializeOwned>(items: &[Value]) -> Vec<T> {
    items
        .iter()
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

fn write_config(cluster: &FakeCluster, config: &EndpointConfig) {
    let cm = serde_json::to_value(config.configmap("velero")).unwrap();
    let mut cm = cm;
    cm["apiVersion"] = "v1".into();
    cm["kind"] = "ConfigMap".into();
    cluster.apply(cm);
}

async fn check_variant(
    variant: Option<&str>,
    release: &str,
    endpoint: Option<Endpoint>,
    sqlproxy: Option<(Option<InstanceName>, InstanceName)>,
) -> usize {
    let cluster = cluster(variant);
    let secrets = cluster.list("v1", "Secret", None);
    let deployments = cluster.list("apps/v1", "Deployment", None);
    let collected = Collected {
        secrets: typed(&secrets),
        deployments: typed(&deployments),
        statefulsets: typed(&cluster.list("apps/v1", "StatefulSet", None)),
    };
    let bootstrap = secrets
        .iter()
        .find(|s| s["metadata"]["name"] == "astronomer-bootstrap")
        .unwrap();
    let text = STANDARD
        .decode(bootstrap["data"]["connection"].as_str().unwrap())
        .unwrap();
    let old = uri_endpoint(std::str::from_utf8(&text).unwrap());
    let ctx = PlanContext {
        target: Target {
            endpoint: endpoint.clone(),
            userinfo: None,
            sqlproxy: sqlproxy.clone(),
        },
        old: old.clone(),
        platform_namespace: "astronomer".into(),
        platform_release: release.into(),
        restart_stamp: "now".into(),
    };
    let plan = plan_move(&collected, &ctx).unwrap();
    write_config(
        &cluster,
        &EndpointConfig {
            platform_namespace: "astronomer".into(),
            new: endpoint,
            old,
            sqlproxy,
            platform_release: None,
            restore: None,
        },
    );
    let plugin = installed();
    let p = launch_against(&plugin, &cluster).await;
    let mut rewritten = 0;
    let everything = [
        secrets,
        deployments,
        cluster.list("v1", "ConfigMap", None),
        cluster.list("v1", "Service", None),
        cluster.list("v1", "PersistentVolumeClaim", None),
        cluster.list("apps/v1", "StatefulSet", None),
    ]
    .concat();
    for object in everything {
        let item = reset_metadata(object);
        let bytes = serde_json::to_vec(&item).unwrap();
        let (kind, ns, name) = (
            item["kind"].as_str().unwrap().to_owned(),
            item["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            item["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        let id = format!("{variant:?} {kind} {ns}/{name}");
        let change = plan.changes().find(|c| {
            format!("{:?}", c.object.kind) == kind
                && c.object.namespace == ns
                && c.object.name == name
        });
        let answer = p.execute(DB_ENDPOINT, &bytes, RESTORE).await.unwrap();
        assert!(!answer.skip_restore, "{id}");
        match change {
            None => assert!(
                answer.item == bytes,
                "{id}: changed but the planner would not"
            ),
            Some(change) => {
                rewritten += 1;
                let got: Value = serde_json::from_slice(&answer.item).unwrap();
                let mut patch = change.patch.clone();
                patch["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("resourceVersion");
                if change.role == Role::Restart {
                    // A reader the move would restart: restored with the fingerprint that
                    // restart leaves, nothing else.
                    let fingerprint =
                        &patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_FOR];
                    let mut want = item.clone();
                    merge(
                        &mut want,
                        &serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                            RESTARTED_FOR: fingerprint}}}}}),
                    );
                    assert_eq!(got, want, "{id}");
                } else if kind == "Secret" {
                    let mut want = item.clone();
                    merge(&mut want, &patch);
                    assert_eq!(got, want, "{id}");
                } else {
                    let want = &patch["spec"]["template"]["spec"]["containers"];
                    let have = &got["spec"]["template"]["spec"]["containers"];
                    for (i, c) in want.as_array().unwrap().iter().enumerate() {
                        for f in ["command", "args"] {
                            assert_eq!(c.get(f), have[i].get(f), "{id} {f}");
                        }
                    }
                }
            }
        }
        let redis = p.execute(SKIP_REDIS_DATA, &bytes, RESTORE).await.unwrap();
        let is_redis_pvc = kind == "PersistentVolumeClaim" && name.starts_with("redis-db-");
        assert_eq!(redis.skip_restore, is_redis_pvc, "{id}");
        assert!(redis.item == bytes, "{id}");
    }
    let stderr = stop(p).await;
    // Never a password in the log (the fixtures' passwords all contain these).
    for line in &stderr {
        for secret in ["Sup3r", "qN3b", "gcpPassw0rd", "Passw0rd"] {
            assert!(!line.contains(secret), "secret in log line {line}");
        }
    }
    assert!(
        stderr.iter().any(|l| l.contains("db-endpoint configured")),
        "{stderr:#?}"
    );
    rewritten
}

fn new_endpoint() -> Option<Endpoint> {
    Some(Endpoint {
        host: NEW_HOST.into(),
        port: 6432,
    })
}

#[tokio::test]
async fn variant_a_platform() {
    let n = check_variant(None, "astronomer", new_endpoint(), None).await;
    assert!(n >= 7, "{n}");
}

#[tokio::test]
async fn variants_c_d_renamed_and_placeholder() {
    for (variant, release) in [
        ("variant-c", "astronomer"),
        ("variant-d", "astronomer"),
        ("renamed-release", "astro"),
        ("placeholder", "astronomer"),
    ] {
        let n = check_variant(Some(variant), release, new_endpoint(), None).await;
        assert!(n >= 5, "{variant}: {n}");
    }
}

#[tokio::test]
async fn variant_b_cloud_sql_proxy() {
    let to = InstanceName::parse("acme-data-dr:us-west1:astro-pg-02").unwrap();
    let n = check_variant(Some("variant-b"), "astronomer", None, Some((None, to))).await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn without_configmap_nothing_changes() {
    let cluster = FakeCluster::start(Options {
        crd_dir: Some(std::path::PathBuf::new()),
        ..Options::default()
    })
    .unwrap();
    cluster.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}));
    let plugin = installed();
    let p = launch_against(&plugin, &cluster).await;
    let uri = "postgres://u:p@astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com:5432";
    let item = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "astronomer-bootstrap", "namespace": "astronomer"},
        "data": {"connection": STANDARD.encode(uri)}});
    let bytes = serde_json::to_vec(&item).unwrap();
    let answer = p.execute(DB_ENDPOINT, &bytes, RESTORE).await.unwrap();
    assert!(answer.item == bytes);
    let stderr = stop(p).await;
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("no db-endpoint ConfigMap")),
        "{stderr:#?}"
    );
}
