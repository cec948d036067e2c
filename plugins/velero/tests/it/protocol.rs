//! The go-plugin contract, as Velero's client checks it.

use std::time::Duration;

use astro::velero_plugin::actions::{DB_ENDPOINT, SKIP_REDIS_DATA};
use astro::velero_plugin::handshake::Network;
use astro::velero_plugin::host::{Code, HostError, LaunchOptions, PluginProcess};
use serde_json::json;

use crate::support::{RESTORE, installed, launch, stop};

#[tokio::test]
async fn handshake_listing_and_graceful_shutdown() {
    let plugin = installed();
    let p = launch(&plugin, &[]).await;
    assert_eq!(p.handshake.network, Network::Unix);
    assert!(p.handshake.address.starts_with('/'), "{:?}", p.handshake);
    assert!(std::path::Path::new(&p.handshake.address).exists());
    assert!(p.stdio_opened, "StreamStdio should stay open");
    // Velero's registry checks run inside list_plugins (kinds, names, command = argv[0]).
    let listed = p.list_plugins().await.unwrap();
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|i| (i.kind.as_str(), i.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("RestoreItemAction", DB_ENDPOINT),
            ("RestoreItemAction", SKIP_REDIS_DATA)
        ]
    );
    assert!(
        listed
            .iter()
            .all(|i| i.command == plugin.path.to_str().unwrap())
    );
    let socket = p.handshake.address.clone();
    let stderr = stop(p).await;
    assert!(!stderr.is_empty(), "expected a start-up log line");
    assert!(
        !std::path::Path::new(&socket).exists(),
        "socket file left behind"
    );
}

#[tokio::test]
async fn applies_to_is_narrow() {
    let plugin = installed();
    let p = launch(&plugin, &[]).await;
    let redis = p.applies_to(SKIP_REDIS_DATA).await.unwrap().unwrap();
    assert_eq!(redis.included_resources, ["persistentvolumeclaims"]);
    assert_eq!(redis.selector, "tier=airflow,component=redis");
    let db = p.applies_to(DB_ENDPOINT).await.unwrap().unwrap();
    assert_eq!(
        db.included_resources,
        ["secrets", "deployments.apps", "statefulsets.apps"]
    );
    assert!(matches!(
        p.applies_to("astronomer.io/nope").await,
        Err(HostError::Rpc(s)) if s.code() == tonic_code_unknown()
    ));
    stop(p).await;
}

fn tonic_code_unknown() -> Code {
    Code::Unknown
}

#[tokio::test]
async fn missing_cookie_exits_non_zero_with_a_message() {
    let plugin = installed();
    let options = LaunchOptions {
        without_velero_env: true,
        start_timeout: Duration::from_secs(20),
        ..LaunchOptions::default()
    };
    let failure = PluginProcess::launch(&plugin.path, &options)
        .await
        .expect_err("must not start without the cookie");
    match failure.error {
        HostError::Exited { status } => {
            assert!(status.is_some_and(|s| !s.success()), "{status:?}");
        }
        e => panic!("{e}"),
    }
    assert!(
        failure.stderr.iter().any(|l| l.contains("VELERO_PLUGIN")),
        "{:?}",
        failure.stderr
    );
}

#[tokio::test]
async fn bad_requests_are_grpc_errors_not_crashes() {
    let plugin = installed();
    let p = launch(&plugin, &[]).await;
    let item = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"y"}}"#;
    for (name, bytes) in [
        ("astronomer.io/nope", &item[..]),
        (SKIP_REDIS_DATA, b"not json {"),
        (DB_ENDPOINT, b"[1,2]"),
    ] {
        match p.execute(name, bytes, RESTORE).await {
            Err(HostError::Rpc(s)) => {
                assert_eq!(s.code(), tonic_code_unknown(), "{s:?}");
                assert!(!s.message().is_empty());
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // Still serving.
    p.list_plugins().await.unwrap();
    let answer = p.execute(SKIP_REDIS_DATA, item, RESTORE).await.unwrap();
    assert_eq!(answer.item, item.to_vec());
    stop(p).await;
}

#[tokio::test]
async fn five_mib_item_and_32_concurrent_calls() {
    let plugin = installed();
    let p = launch(&plugin, &[]).await;
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "astronomer"},
        "data": {"blob": "x".repeat(5 * 1024 * 1024)}});
    let big = serde_json::to_vec(&big).unwrap();
    assert!(big.len() > 5 * 1024 * 1024);
    for name in [SKIP_REDIS_DATA, DB_ENDPOINT] {
        let answer = p.execute(name, &big, RESTORE).await.unwrap();
        assert!(
            answer.item == big,
            "{name}: big item not echoed byte for byte"
        );
    }
    let calls = (0..32).map(|i| {
        let p = &p;
        async move {
            let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": format!("redis-db-r{i}-redis-0"), "namespace": format!("astronomer-r{i}"),
                             "labels": {"tier": "airflow", "component": if i % 2 == 0 { "redis" } else { "worker" }, "release": format!("r{i}")}}});
            let bytes = serde_json::to_vec(&pvc).unwrap();
            let answer = p.execute(SKIP_REDIS_DATA, &bytes, RESTORE).await.unwrap();
            assert_eq!(answer.skip_restore, i % 2 == 0, "{i}");
            assert_eq!(answer.item, bytes);
        }
    });
    futures::future::join_all(calls).await;
    let stderr = stop(p).await;
    assert!(
        stderr
            .iter()
            .filter(|l| l.contains("not restoring Redis PVC"))
            .count()
            == 16,
        "{stderr:#?}"
    );
}

#[tokio::test]
async fn sigint_is_ignored() {
    let plugin = installed();
    let p = launch(&plugin, &[]).await;
    let pid = p.pid().unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.list_plugins().await.unwrap();
    stop(p).await;
}

#[tokio::test]
async fn falls_back_to_tcp_without_a_usable_temp_dir() {
    let plugin = installed();
    let p = launch(&plugin, &[("TMPDIR", "/nonexistent/velero-plugin-astro")]).await;
    assert_eq!(p.handshake.network, Network::Tcp);
    assert!(
        p.handshake.address.starts_with("127.0.0.1:"),
        "{:?}",
        p.handshake
    );
    p.list_plugins().await.unwrap();
    stop(p).await;
}
