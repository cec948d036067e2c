//! The fake kubelet through kube-rs: env from `secretKeyRef` (Secret created after the Pod,
//! as the client pod code does), phases and exit codes, logs, attach and exec over WebSocket.

use std::time::{Duration, Instant};

use fake_cluster::{FakeCluster, Options};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn setup() -> (FakeCluster, Api<Pod>, Api<Secret>) {
    let cluster = FakeCluster::start(Options {
        kubelet: true,
        ..Options::default()
    })
    .unwrap();
    cluster.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "work"}}));
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    (
        cluster,
        Api::namespaced(client.clone(), "work"),
        Api::namespaced(client, "work"),
    )
}

fn pod(name: &str, script: &str, stdin: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "postgres:16", "command": ["sh", "-c", script], "stdin": stdin, "stdinOnce": stdin,
            "env": [{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": format!("{name}-secret"), "key": "password"}}},
                    {"name": "PLAIN", "value": "plain-value"}]
        }]}
    }))
    .unwrap()
}

async fn secret(secrets: &Api<Secret>, pod_name: &str) {
    let s = serde_json::from_value(json!({"metadata": {"name": format!("{pod_name}-secret")},
        "stringData": {"password": "Sup3r!Secret"}}))
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
}

async fn wait_phase(pods: &Api<Pod>, name: &str, phases: &[&str]) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = pods.get(name).await.unwrap();
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phases.contains(&phase.as_str()) {
            return p;
        }
        assert!(Instant::now() < deadline, "pod {name} stuck in {phase}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pod_runs_with_secret_env_and_reports_exit_code_and_logs() {
    let (_cluster, pods, secrets) = setup().await;
    pods.create(
        &PostParams::default(),
        &pod(
            "job",
            "echo pw=$PGPASSWORD $PLAIN; echo oops >&2; exit 3",
            false,
        ),
    )
    .await
    .unwrap();
    // The Secret comes after the Pod: the kubelet waits for it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let waiting = pods.get("job").await.unwrap();
    let state = waiting.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap();
    assert_eq!(
        state.waiting.unwrap().reason.as_deref(),
        Some("CreateContainerConfigError")
    );
    secret(&secrets, "job").await;
    let done = wait_phase(&pods, "job", &["Failed", "Succeeded"]).await;
    let status = done.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let term = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.exit_code, 3);
    let logs = pods.logs("job", &LogParams::default()).await.unwrap();
    assert!(logs.contains("pw=Sup3r!Secret plain-value"), "{logs}");
    assert!(logs.contains("oops"), "{logs}");
}

#[tokio::test]
async fn attach_streams_stdin_and_stdout_and_exec_runs_in_the_container_env() {
    let (_cluster, pods, secrets) = setup().await;
    secret(&secrets, "shell").await;
    pods.create(
        &PostParams::default(),
        &pod(
            "shell",
            "read line; echo got:$line; read again; exit 4",
            true,
        ),
    )
    .await
    .unwrap();
    wait_phase(&pods, "shell", &["Running"]).await;

    let mut exec = pods
        .exec(
            "shell",
            ["sh", "-c", "echo $PGPASSWORD"],
            &AttachParams::default().stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    exec.stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out.trim(), "Sup3r!Secret");
    let status = exec.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));

    let mut attached = pods
        .attach("shell", &AttachParams::default().stdin(true).stderr(false))
        .await
        .unwrap();
    let mut stdin = attached.stdin().unwrap();
    let mut stdout = attached.stdout().unwrap();
    let status = attached.take_status().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "got:hello");
    stdin.write_all(b"bye\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), status)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("4")
    );
}

#[tokio::test]
async fn deleting_a_running_pod_stops_its_process() {
    let (_cluster, pods, secrets) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    secret(&secrets, "sleeper").await;
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    pods.create(&PostParams::default(), &pod("sleeper", &script, false))
        .await
        .unwrap();
    wait_phase(&pods, "sleeper", &["Running"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&pidfile)
            && !p.trim().is_empty()
        {
            break p.trim().to_string();
        }
        assert!(Instant::now() < deadline, "pod never wrote its pid");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Killed and reaped: the /proc entry disappears.
    while proc_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "process {pid} still running after the pod was deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
