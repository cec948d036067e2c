//! The fake API server against the real kube-rs client: verbs, selectors, pagination,
//! errors as `metav1.Status`, garbage collection, namespaces, CRD validation, watches, faults.

use std::path::PathBuf;
use std::time::Duration;

use fake_cluster::{FakeCluster, Fault, NamespaceTermination, Options};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, Preconditions,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/platform")
}

fn start(options: Options) -> FakeCluster {
    FakeCluster::start(Options {
        manifest_dirs: vec![data_dir()],
        substitutions: vec![("DBHOST".into(), "127.0.0.1:5432".into())],
        ..options
    })
    .expect("fake cluster starts")
}

async fn client(cluster: &FakeCluster) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn backups(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("velero.io", "v1", "Backup"));
    Api::namespaced_with(client.clone(), "velero", &ar)
}

fn api_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn fixtures_are_loaded_with_server_fields() {
    let cluster = start(Options::default());
    let c = client(&cluster).await;
    let secret = Api::<Secret>::namespaced(c.clone(), "astronomer")
        .get("astronomer-bootstrap")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(
        String::from_utf8(data["connection"].0.clone()).unwrap(),
        "postgres://astro_admin:Sup3r!Secret@127.0.0.1:5432/postgres"
    );
    assert!(secret.string_data.is_none());
    assert!(secret.metadata.uid.is_some());
    assert!(secret.metadata.resource_version.is_some());
    assert!(secret.metadata.creation_timestamp.is_some());
    let b = backups(&c).get("nightly-20261124").await.unwrap();
    assert_eq!(b.data["status"]["phase"], "Completed");
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let cluster = start(Options::default());
    let c = client(&cluster).await;
    let deploys: Api<Deployment> = Api::all(c.clone());
    let airflow = deploys
        .list(&ListParams::default().labels("tier=airflow"))
        .await
        .unwrap();
    assert_eq!(airflow.items.len(), 1);
    let not_airflow = deploys
        .list(&ListParams::default().labels("tier!=airflow"))
        .await
        .unwrap();
    assert_eq!(not_airflow.items.len(), 1);
    let by_name = deploys
        .list(&ListParams::default().fields("metadata.name=astronomer-houston"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "astronomer");
    for i in 0..23 {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i:02}")}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 23);
    names.dedup();
    assert_eq!(names.len(), 23);
}

#[tokio::test]
async fn errors_are_status_objects() {
    let cluster = start(Options::default());
    let c = client(&cluster).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "astronomer");
    assert_eq!(
        api_code(secrets.get("nope").await.unwrap_err()),
        (404, "NotFound".into())
    );
    let existing = secrets.get("astronomer-bootstrap").await.unwrap();
    let mut dup = existing.clone();
    dup.metadata.resource_version = None;
    dup.metadata.uid = None;
    assert_eq!(
        api_code(
            secrets
                .create(&PostParams::default(), &dup)
                .await
                .unwrap_err()
        ),
        (409, "AlreadyExists".into())
    );
    dup.metadata.namespace = None;
    let in_missing_ns: Api<Secret> = Api::namespaced(c.clone(), "missing");
    assert_eq!(
        api_code(
            in_missing_ns
                .create(&PostParams::default(), &dup)
                .await
                .unwrap_err()
        )
        .0,
        404
    );

    // A stale resourceVersion in PUT or in a patch body is a precondition.
    let mut stale = existing.clone();
    secrets
        .patch(
            "astronomer-bootstrap",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .unwrap();
    stale.metadata.labels = Some([("y".to_string(), "2".to_string())].into());
    assert_eq!(
        api_code(
            secrets
                .replace("astronomer-bootstrap", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );
    let patch = json!({"metadata": {"resourceVersion": existing.metadata.resource_version, "labels": {"z": "3"}}});
    assert_eq!(
        api_code(
            secrets
                .patch(
                    "astronomer-bootstrap",
                    &PatchParams::default(),
                    &Patch::Merge(patch)
                )
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );

    // Velero objects are validated against the CRD schema.
    let bad = serde_json::from_value(json!({
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": "bad"}, "spec": {"includedNamespaces": "astronomer"}
    }))
    .unwrap();
    let err = backups(&c)
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(
                s.message.contains("spec.includedNamespaces"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn patch_types_generate_name_and_gc() {
    let cluster = start(Options::default());
    let c = client(&cluster).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "astronomer-celestial-zenith-1234");
    let name = "celestial-zenith-1234-scheduler";
    let patched = deploys
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "scheduler", "env": [{"name": "EXTRA", "value": "1"}]}
            ]}}}})),
        )
        .await
        .unwrap();
    let containers = patched.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0].image.as_deref(),
        Some("quay.io/astronomer/ap-airflow:2.9")
    );
    assert_eq!(containers[0].env.as_ref().unwrap().len(), 2);
    assert_eq!(patched.metadata.generation, Some(2));

    let json_patched = deploys
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "replace", "path": "/spec/replicas", "value": 0}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(json_patched.spec.unwrap().replicas, Some(0));

    let pods: Api<Pod> = Api::namespaced(c.clone(), "astronomer");
    let pod = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"generateName": "astro-dbconn-"},
                "spec": {"containers": [{"name": "psql", "image": "postgres"}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let pod_name = pod.metadata.name.clone().unwrap();
    assert!(pod_name.starts_with("astro-dbconn-") && pod_name.len() == "astro-dbconn-".len() + 5);
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "astronomer");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owned", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod.metadata.uid}
            ]}, "stringData": {"password": "x"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    // Wrong uid precondition is refused; then the delete collects the owned Secret.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        api_code(pods.delete(&pod_name, &dp).await.unwrap_err()).0,
        409
    );
    pods.delete(&pod_name, &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_code(secrets.get("owned").await.unwrap_err()).0, 404);
    assert_eq!(
        api_code(
            pods.delete(&pod_name, &DeleteParams::default())
                .await
                .unwrap_err()
        )
        .0,
        404
    );
}

#[tokio::test]
async fn namespace_termination() {
    let cluster = start(Options {
        namespace_termination: NamespaceTermination::Manual,
        ..Options::default()
    });
    let c = client(&cluster).await;
    let nss: Api<Namespace> = Api::all(c.clone());
    let ns = "astronomer-celestial-zenith-1234";
    nss.delete(ns, &DeleteParams::default()).await.unwrap();
    let terminating = nss.get(ns).await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(cluster.list("apps/v1", "Deployment", Some(ns)).is_empty());
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    let err = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("because it is being terminated"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    cluster.finish_namespace_termination(ns);
    assert_eq!(api_code(nss.get(ns).await.unwrap_err()).0, 404);

    assert!(cluster.set_namespace_terminating("velero"));
    assert_eq!(
        cluster.get("v1", "Namespace", None, "velero").unwrap()["status"]["phase"],
        "Terminating"
    );
}

#[tokio::test]
async fn kube_runtime_watcher_sees_changes_and_survives_dropped_watches() {
    let cluster = start(Options::default());
    cluster.inject(Fault::DropWatches {
        after_events: Some(1),
        after_ms: None,
        times: Some(2),
    });
    let c = client(&cluster).await;
    let api = backups(&c);
    let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
    let mut stream = Box::pin(stream);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("nightly-20261124"));
    for i in 0..3 {
        let obj = serde_json::from_value(json!({
            "apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": format!("b{i}")}, "spec": {"includedNamespaces": ["astronomer"]}
        }))
        .unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        let obj = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("watch event within 10s")
            .unwrap()
            .unwrap();
        let name = obj.metadata.name.unwrap();
        if name.starts_with('b') {
            seen.insert(name);
        }
    }
    let watches = cluster.requests().iter().filter(|r| r.watch).count();
    assert!(watches >= 2, "dropped watches were restarted ({watches})");
}

#[tokio::test]
async fn watch_from_an_expired_version_gets_410() {
    let cluster = start(Options {
        watch_history: Some(3),
        ..Options::default()
    });
    let c = client(&cluster).await;
    let api = backups(&c);
    let wp = kube::api::WatchParams::default().timeout(2);
    let mut events = Box::pin(api.watch(&wp, "1").await.unwrap());
    let mut saw_gone = false;
    while let Some(ev) = events.next().await {
        if let Ok(kube::api::WatchEvent::Error(e)) = ev {
            assert_eq!(e.code, 410);
            saw_gone = true;
        }
    }
    assert!(saw_gone);
}

#[tokio::test]
async fn faults_and_request_log() {
    let cluster = start(Options::default());
    let c = client(&cluster).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "astronomer");
    cluster.clear_requests();
    cluster.inject(Fault::Status {
        method: Some("GET".into()),
        path_contains: "/secrets/astronomer-bootstrap".into(),
        code: 500,
        times: Some(1),
    });
    assert_eq!(
        api_code(secrets.get("astronomer-bootstrap").await.unwrap_err()).0,
        500
    );
    secrets.get("astronomer-bootstrap").await.unwrap();
    let log = cluster.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].status, log[1].status), (500, 200));
    assert_eq!(log[0].method, "GET");

    cluster.inject(Fault::ConflictRate {
        fraction: 0.5,
        kinds: vec!["Secret".into()],
    });
    let mut conflicts = 0;
    for i in 0..40 {
        let r = secrets
            .patch(
                "astronomer-bootstrap",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"i": i.to_string()}}})),
            )
            .await;
        if let Err(e) = r {
            assert_eq!(api_code(e).0, 409);
            conflicts += 1;
        }
    }
    assert!(
        (8..=32).contains(&conflicts),
        "{conflicts} of 40 conflicted"
    );
    cluster.clear_faults();
    let patch_log = cluster
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect::<Vec<_>>();
    assert_eq!(patch_log.len(), 40);
    assert_eq!(
        patch_log[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );

    cluster.inject(Fault::Latency(Duration::from_millis(200)));
    let t = std::time::Instant::now();
    secrets.get("astronomer-bootstrap").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));
}
