//! Least privilege, proven: every command runs as a user bound only to its ClusterRole
//! from `deploy/rbac.yaml` (the file itself), and for each rule of each role, the role
//! without that rule makes some command of it fail with exit 3, the clear "forbidden …
//! needs <verb> on <resource>" message, and no change in the cluster.
//!
//! One fake cluster per role (in auth mode, RBAC evaluated by the fake API server); the
//! ClusterRole is swapped through the API between cases.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use e2e_tests::{FakeCluster, output_text as text};
use fake_cluster::TokenUser;
use serde_json::{Value, json};

const USER: &str = "oncall";

/// The ClusterRoles of `deploy/rbac.yaml`, by name.
fn shipped_roles() -> Vec<Value> {
    let path = e2e_tests::workspace_root().join("deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("deploy/rbac.yaml parses");
    docs.into_iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .collect()
}

fn shipped_role(name: &str) -> Value {
    shipped_roles()
        .into_iter()
        .find(|r| r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ClusterRole {name} in deploy/rbac.yaml"))
}

/// A fixture cluster in auth mode where [`USER`] is bound to one ClusterRole only.
struct RoleCluster {
    cluster: FakeCluster,
    kubeconfig: PathBuf,
    houston: String,
}

impl RoleCluster {
    fn start(role: &Value) -> Self {
        let houston = e2e_tests::pg().clone_database("astronomer_houston");
        let cluster = e2e_tests::cluster_builder()
            .pods_only_db()
            .substitute("/astronomer_houston?", format!("/{houston}?"))
            .options(|o| {
                o.velero_step = Some(std::time::Duration::from_millis(20));
                o.auth = Some(vec![TokenUser {
                    name: USER.into(),
                    token: "oncall-token".into(),
                    groups: vec!["oncall".into()],
                }]);
            })
            .start();
        cluster.apply(role.clone());
        cluster.apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("oncall-{}", role["metadata"]["name"].as_str().unwrap())},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": role["metadata"]["name"]},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
        }));
        // velero-plugin-astro loaded (as `velero plugin add` would), so that
        // `restore platform --db-host` takes the plugin's way.
        cluster.velero_set_plugins(&[
            ("ObjectStore", "velero.io/aws"),
            ("RestoreItemAction", "astronomer.io/db-endpoint"),
        ]);
        let kubeconfig = cluster.kubeconfig_for(USER);
        RoleCluster {
            cluster,
            kubeconfig,
            houston,
        }
    }

    fn run(&self, bin: &str, args: &[String]) -> Output {
        let mut cmd = e2e_tests::command_with_kubeconfig(e2e_tests::bin(bin), &self.kubeconfig);
        cmd.args(args);
        let out = e2e_tests::output(cmd);
        e2e_tests::assert_no_secrets(&out);
        out
    }

    /// Requests of [`USER`] that changed something (successful writes, reviews aside).
    fn changes(&self) -> Vec<String> {
        self.cluster
            .requests()
            .into_iter()
            .filter(|r| r.user.as_deref() == Some(USER))
            .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
            .filter(|r| (200..300).contains(&r.status))
            .filter(|r| !r.path.ends_with("/selfsubjectaccessreviews"))
            .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
            .collect()
    }
}

impl Drop for RoleCluster {
    fn drop(&mut self) {
        e2e_tests::pg().drop_database(&self.houston);
    }
}

/// One command of a role: the binary and its arguments (fresh names on every call).
struct Case {
    bin: &'static str,
    args: Box<dyn Fn() -> Vec<String>>,
    /// Exit codes that count as success (status exits 1 when a readiness check fails).
    ok: &'static [i32],
}

fn case(bin: &'static str, args: impl Fn() -> Vec<String> + 'static) -> Case {
    Case {
        bin,
        args: Box::new(args),
        ok: &[0],
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn cases(role: &str) -> Vec<Case> {
    let backup = e2e_tests::fixture_name("astro-nightly-20261124010000");
    // Failed with an error: describe fetches its results through a DownloadRequest.
    let failed = e2e_tests::fixture_name("astro-manual-20261122050000");
    let pg = e2e_tests::pg();
    let (db_host, db_port) = (e2e_tests::PODS_ONLY_DB_HOST, pg.port.to_string());
    match role {
        "kubectl-astro-dbconn" => vec![
            case("kubectl-astro-dbconn", || strings(&[])),
            case("kubectl-astro-dbconn", || {
                strings(&["-c", r#"select count(*) from "Deployment""#])
            }),
            // psql reads the end of stdin (null) and quits.
            case("kubectl-astro-dbconn", || strings(&["--shell"])),
        ],
        "kubectl-astro-backup" => {
            let describe = failed;
            vec![
                case("kubectl-astro-backup", || strings(&["list"])),
                case("kubectl-astro-backup", move || {
                    strings(&["describe", &describe])
                }),
                case("kubectl-astro-backup", || {
                    strings(&["create", &unique("rbac"), "--platform", "--wait"])
                }),
                case("kubectl-astro-backup", || {
                    strings(&[
                        "schedule",
                        "create",
                        &unique("rbac"),
                        "--schedule",
                        "@daily",
                    ])
                }),
                case("kubectl-astro-backup", || {
                    strings(&["schedule", "pause", "astro-nightly"])
                }),
                case("kubectl-astro-backup", || {
                    let out = std::env::temp_dir().join(format!("{}.dump", unique("rbac-db")));
                    strings(&["db", "--out", out.to_str().unwrap()])
                }),
            ]
        }
        "kubectl-astro-restore" => {
            let moved = ["--db-host", "db-new.example.invalid"].map(String::from);
            let back = [
                "--db-host".into(),
                db_host.to_owned(),
                "--db-port".into(),
                db_port,
            ];
            let (b1, b2, back2) = (backup.clone(), backup, back.clone());
            vec![
                case("kubectl-astro-restore", || {
                    strings(&["undelete", "boreal-aphelion-0042", "--force", "--yes"])
                }),
                case("kubectl-astro-restore", || {
                    strings(&["celestial-zenith-1234", "--yes"])
                }),
                case("kubectl-astro-restore", move || platform(&b1, &[])),
                // With velero-plugin-astro reported loaded: its ConfigMap is written for
                // the restore and removed after; the endpoint stays where it is.
                case("kubectl-astro-restore", move || platform(&b2, &back2)),
                // Away and back again, so the next cases still reach the database.
                case("kubectl-astro-restore", move || endpoint(&moved)),
                case("kubectl-astro-restore", move || endpoint(&back)),
            ]
        }
        "kubectl-astro-status" => vec![Case {
            ok: &[0, 1],
            ..case("kubectl-astro-status", || strings(&[]))
        }],
        other => panic!("no commands listed for ClusterRole {other}"),
    }
}

/// `restore platform` from `backup` under a fresh restore name, with `extra` flags.
fn platform(backup: &str, extra: &[String]) -> Vec<String> {
    let mut args = strings(&["platform", "--from-backup", backup, "--restore-name"]);
    args.push(unique("rbac-pl"));
    args.extend(with_save_to(extra));
    args
}

/// `restore endpoint` with `target` flags.
fn endpoint(target: &[String]) -> Vec<String> {
    let mut args = strings(&["endpoint"]);
    args.extend(with_save_to(target));
    args
}

/// `args`, then `--yes` and a fresh `--save-to` file for the saved originals.
fn with_save_to(args: &[String]) -> Vec<String> {
    let save = std::env::temp_dir().join(format!("{}.json", unique("rbac-originals")));
    let mut out = args.to_vec();
    out.extend(strings(&["--yes", "--save-to", save.to_str().unwrap()]));
    out
}

/// The verbs and resources a rule grants, as the forbidden message names them.
fn grants(rule: &Value) -> Vec<(String, String)> {
    let list = |k: &str| -> Vec<String> {
        rule[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for group in list("apiGroups") {
        for resource in list("resources") {
            let name = if group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{group}")
            };
            for verb in list("verbs") {
                out.push((verb, name.clone()));
            }
        }
    }
    out
}

fn check_role(role_name: &str) {
    let started = Instant::now();
    let role = shipped_role(role_name);
    let rc = RoleCluster::start(&role);
    let cases = cases(role_name);

    // With the whole role every command works.
    for c in &cases {
        let args = (c.args)();
        let t = Instant::now();
        let out = rc.run(c.bin, &args);
        eprintln!("rbac {role_name}: {} {args:?} {:.1?}", c.bin, t.elapsed());
        assert!(
            out.status.code().is_some_and(|code| c.ok.contains(&code)),
            "{} {args:?} as a user bound to {role_name}:\n{}",
            c.bin,
            text(&out)
        );
    }
    let full_run = started.elapsed();

    // Every verb the role grants was used by some request of these commands.
    let used: BTreeSet<String> = rc
        .cluster
        .requests()
        .into_iter()
        .filter(|r| r.user.as_deref() == Some(USER))
        .flat_map(|r| r.authorized)
        .collect();
    let rules = role["rules"].as_array().expect("rules").clone();
    let unused: Vec<String> = rules
        .iter()
        .flat_map(grants)
        .map(|(verb, resource)| format!("{verb} {resource}"))
        .filter(|g| !used.contains(g))
        .collect();
    eprintln!("rbac {role_name}: granted and never used: {unused:?}");

    // Without any one rule, some command is refused up front and changes nothing.
    for (i, rule) in rules.iter().enumerate() {
        let mut reduced = role.clone();
        reduced["rules"].as_array_mut().unwrap().remove(i);
        rc.cluster.apply(reduced);
        let wanted = grants(rule);
        let mut refused = None;
        for c in &cases {
            rc.cluster.clear_requests();
            let args = (c.args)();
            let out = rc.run(c.bin, &args);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.code() == Some(3) && stderr.contains("forbidden: ") {
                let names_rule = wanted
                    .iter()
                    .any(|(verb, resource)| stderr.contains(&format!("{verb} on {resource} ")));
                assert!(
                    names_rule,
                    "{role_name} without rule {i} {rule}: {} {args:?} is refused for something else:\n{}",
                    c.bin,
                    text(&out)
                );
                let changes = rc.changes();
                assert!(
                    changes.is_empty(),
                    "{} {args:?} changed the cluster before refusing: {changes:?}\n{}",
                    c.bin,
                    text(&out)
                );
                refused = Some(format!("{} {}", c.bin, args.join(" ")));
                break;
            }
        }
        assert!(
            refused.is_some(),
            "{role_name}: rule {i} {rule} is not needed by any of its commands (least privilege: remove it)"
        );
        rc.cluster.apply(role.clone());
    }
    eprintln!(
        "rbac {role_name}: {} commands, {} rules; whole role {:.1?}, total {:.1?}",
        cases.len(),
        rules.len(),
        full_run,
        started.elapsed()
    );
}

#[test]
fn dbconn_role_is_sufficient_and_every_rule_is_needed() {
    check_role("kubectl-astro-dbconn");
}

#[test]
fn backup_role_is_sufficient_and_every_rule_is_needed() {
    check_role("kubectl-astro-backup");
}

#[test]
fn restore_role_is_sufficient_and_every_rule_is_needed() {
    check_role("kubectl-astro-restore");
}

#[test]
fn status_role_is_sufficient_and_every_rule_is_needed() {
    check_role("kubectl-astro-status");
}

#[test]
fn every_shipped_role_is_tested() {
    for role in shipped_roles() {
        let name = role["metadata"]["name"].as_str().unwrap();
        assert!(!cases(name).is_empty(), "{name}");
    }
}

#[test]
fn unknown_and_revoked_tokens_get_401_and_a_clear_exit_3() {
    let role = shipped_role("kubectl-astro-status");
    let rc = RoleCluster::start(&role);
    rc.cluster.revoke_token(USER);
    let out = rc.run("kubectl-astro-backup", &strings(&["list"]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        rc.cluster
            .requests()
            .iter()
            .any(|r| r.status == 401 && r.user.is_none()),
        "the server answered 401"
    );
}

#[test]
fn the_real_kubectl_works_as_a_token_user_and_is_told_what_it_may_not_do() {
    let role = shipped_role("kubectl-astro-status");
    let rc = RoleCluster::start(&role);
    let kubectl = |args: &[&str]| {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .arg("--kubeconfig")
            .arg(&rc.kubeconfig)
            .args(args);
        e2e_tests::output(cmd)
    };
    let out = kubectl(&["get", "namespaces"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = kubectl(&["get", "deployments", "-A"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            r#"Error from server (Forbidden): deployments.apps is forbidden: User "{USER}" cannot list resource "deployments" in API group "apps" at the cluster scope"#
        )),
        "{}",
        text(&out)
    );
    let out = kubectl(&["auth", "can-i", "list", "namespaces"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "yes",
        "{}",
        text(&out)
    );
    let out = kubectl(&[
        "auth",
        "can-i",
        "create",
        "restores.velero.io",
        "-n",
        "velero",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no",
        "{}",
        text(&out)
    );
    // The admin kubeconfig every other test uses is not restricted.
    let mut cmd = std::process::Command::new("kubectl");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .arg("--kubeconfig")
        .arg(rc.cluster.kubeconfig_path())
        .args(["get", "deployments", "-A"]);
    let out = e2e_tests::output(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
