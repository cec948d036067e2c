//! The README's first command: `scripts/sandbox` brings celestial-zenith-1234 back on the
//! fixture platform and cleans up after itself.

use std::path::Path;
use std::process::Command;

#[test]
fn sandbox_demo_restores_celestial_zenith_and_cleans_up() {
    // Built binaries live beside sandbox-cluster; the sandbox must not run cargo itself
    // here (the build directory is locked while tests run).
    let cluster_bin = e2e_tests::bin("sandbox-cluster");
    let profile_dir = cluster_bin.parent().unwrap();
    let target = profile_dir.parent().unwrap();
    assert_eq!(
        profile_dir.file_name().unwrap(),
        "debug",
        "tests run from a debug build"
    );
    let out = Command::new(e2e_tests::workspace_root().join("scripts/sandbox"))
        .args(["--no-shell", "--no-build"])
        .env("CARGO_TARGET_DIR", target)
        .env_remove("KUBECONFIG")
        .env_remove("ASTRO_TEST_PG_NAME")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sandbox failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("undeleted"), "{stdout}");
    assert!(
        stderr.contains("houston: reading through a pod"),
        "Houston through the cluster: {stderr}"
    );
    // dbconn -c and backup db went through client pods; pg_restore lists the table data.
    assert!(stdout.contains("deployments"), "{stdout}");
    let tables: usize = stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        tables >= 5,
        "pg_restore -l lists the Houston tables: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("astronomer-celestial-zenith-1234") && l.contains("Active")),
        "{stdout}"
    );
    e2e_tests::assert_no_secrets(&out);
    // Its own PostgreSQL is gone again; the tests' one was not touched.
    assert!(!Path::new(target).join("sandbox-postgres.state").exists());
    let pg = e2e_tests::pg();
    assert_eq!(
        pg.query_one(
            "astronomer_houston",
            "select \"deletedAt\" is not null from houston$default.\"Deployment\" where \"releaseName\" = 'celestial-zenith-1234'"
        )
        .as_deref(),
        Some("t")
    );
}
