//! The fake cluster's simulated Velero with this plugin in its plugins directory: a
//! restore runs every item through the plugin binary, so the restored Redis PVC is
//! absent and the database secrets name the new endpoint when they are created.

use std::time::Duration;

use astro::endpoint::target::Endpoint;
use astro::velero_plugin::config::EndpointConfig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_cluster::{FakeCluster, Options};
use serde_json::{Value, json};

use crate::support::installed;

const OLD_HOST: &str = "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com";
const NEW_HOST: &str = "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com";

fn secret_text(secret: &Value, key: &str) -> String {
    let bytes = STANDARD
        .decode(secret["data"][key].as_str().unwrap_or_default())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

async fn restored(cluster: &FakeCluster, name: &str) -> Value {
    for _ in 0..600 {
        if let Some(r) = cluster.get("velero.io/v1", "Restore", Some("velero"), name) {
            let phase = r["status"]["phase"].as_str().unwrap_or_default().to_owned();
            if ["Completed", "PartiallyFailed", "Failed", "FailedValidation"]
                .contains(&phase.as_str())
            {
                return r;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("restore {name} did not finish");
}

#[tokio::test]
async fn simulated_velero_runs_the_plugin_on_restored_items() {
    let plugin = installed();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/platform");
    let cluster = FakeCluster::start(Options {
        manifest_dirs: vec![fixtures],
        simulate_velero: true,
        velero_step: Some(Duration::from_millis(10)),
        velero_plugin_dir: plugin.path.parent().map(std::path::Path::to_path_buf),
        ..Options::default()
    })
    .unwrap();
    let config = EndpointConfig {
        platform_namespace: "astronomer".into(),
        new: Some(Endpoint {
            host: NEW_HOST.into(),
            port: 5432,
        }),
        old: Some(Endpoint {
            host: OLD_HOST.into(),
            port: 5432,
        }),
        sqlproxy: None,
        platform_release: None,
        restore: None,
    };
    let mut cm = serde_json::to_value(config.configmap("velero")).unwrap();
    cm["apiVersion"] = "v1".into();
    cm["kind"] = "ConfigMap".into();
    cluster.apply(cm);
    // Into fresh namespaces, so nothing already exists there.
    cluster.apply(json!({"apiVersion": "velero.io/v1", "kind": "Restore",
        "metadata": {"name": "dr-1", "namespace": "velero"},
        "spec": {"backupName": "astro-nightly-20261122010000",
                 "includedNamespaces": ["astronomer", "astronomer-weightless-meteor-5042"],
                 "namespaceMapping": {"astronomer": "astronomer-dr",
                                      "astronomer-weightless-meteor-5042": "wm-dr"}}}));
    let restore = restored(&cluster, "dr-1").await;
    assert_eq!(restore["status"]["phase"], "Completed", "{restore:#}");

    let pvc = |ns: &str, name: &str| cluster.get("v1", "PersistentVolumeClaim", Some(ns), name);
    assert!(pvc("wm-dr", "redis-db-weightless-meteor-5042-redis-0").is_none());
    assert!(
        pvc(
            "astronomer-weightless-meteor-5042",
            "redis-db-weightless-meteor-5042-redis-0"
        )
        .is_some()
    );
    assert!(pvc("wm-dr", "data-weightless-meteor-5042-dag-server-0").is_some());
    assert!(
        cluster
            .get(
                "apps/v1",
                "StatefulSet",
                Some("wm-dr"),
                "weightless-meteor-5042-redis"
            )
            .is_some()
    );
    assert!(
        cluster
            .get(
                "v1",
                "Service",
                Some("wm-dr"),
                "weightless-meteor-5042-redis"
            )
            .is_some()
    );

    let secret = |ns: &str, name: &str| cluster.get("v1", "Secret", Some(ns), name).unwrap();
    let bootstrap = secret_text(
        &secret("astronomer-dr", "astronomer-bootstrap"),
        "connection",
    );
    assert!(
        bootstrap.contains(NEW_HOST) && !bootstrap.contains(OLD_HOST),
        "bootstrap not moved"
    );
    let houston = secret_text(
        &secret("astronomer-dr", "astronomer-houston-backend"),
        "connection",
    );
    assert!(houston.contains(&format!(
        "{NEW_HOST}:5432/astronomer_houston?schema=houston%24default"
    )));
    let ini = secret_text(
        &secret("wm-dr", "weightless-meteor-5042-pgbouncer-config"),
        "pgbouncer.ini",
    );
    assert!(ini.contains(&format!("host={NEW_HOST}")) && !ini.contains(OLD_HOST));
    // The source namespaces were not touched, and nothing was patched afterwards.
    let live = secret_text(&secret("astronomer", "astronomer-bootstrap"), "connection");
    assert!(live.contains(OLD_HOST));
    assert!(
        !cluster
            .requests()
            .iter()
            .any(|r| r.path.contains("/secrets") && (r.method == "PATCH" || r.method == "PUT"))
    );
}

async fn client(cluster: &FakeCluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn server_status_request_lists_the_plugin_and_config_is_written() {
    use astro::velero_plugin::install;
    let plugin = installed();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/platform");
    for with_plugin in [true, false] {
        let cluster = FakeCluster::start(Options {
            manifest_dirs: vec![fixtures.clone()],
            simulate_velero: true,
            velero_step: Some(Duration::from_millis(10)),
            velero_plugin_dir: with_plugin.then(|| plugin.path.parent().unwrap().to_path_buf()),
            ..Options::default()
        })
        .unwrap();
        let client = client(&cluster).await;
        let answer =
            astro::velero::server_status::ask(&client, "velero", "test-", install::STATUS_TIMEOUT)
                .await;
        assert!(
            answer.has_plugin("RestoreItemAction", "velero.io/pod"),
            "{answer:?}"
        );
        assert_eq!(install::has_db_endpoint(&answer), with_plugin, "{answer:?}");
        assert!(
            cluster
                .list("velero.io/v1", "ServerStatusRequest", Some("velero"))
                .is_empty()
        );
        if with_plugin {
            let config = EndpointConfig {
                platform_namespace: "astronomer".into(),
                new: Some(Endpoint {
                    host: NEW_HOST.into(),
                    port: 5432,
                }),
                old: None,
                sqlproxy: None,
                platform_release: None,
                restore: None,
            };
            install::write_config(&client, "velero", &config)
                .await
                .unwrap();
            install::write_config(&client, "velero", &config)
                .await
                .unwrap();
            let cm = cluster
                .get("v1", "ConfigMap", Some("velero"), "astro-db-endpoint")
                .unwrap();
            assert_eq!(cm["data"]["newHost"], NEW_HOST);
            install::delete_config(&client, "velero").await.unwrap();
            install::delete_config(&client, "velero").await.unwrap();
            assert!(
                cluster
                    .get("v1", "ConfigMap", Some("velero"), "astro-db-endpoint")
                    .is_none()
            );
        }
    }
}
