//! The krew install path: the manifest obeys krew's rules, and the host archive installed
//! in a krew-like layout works through the real `kubectl` with only `kubectl-astro` on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn kubectl() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return k.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl not found: install Debian's kubernetes-client (scripts/setup-deps)")
}

fn script(name: &str, args: &[&str]) -> String {
    let out = Command::new(workspace_root().join("scripts").join(name))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// Packages the binaries of the current build into `dir` and returns the archive path.
fn host_archive(dir: &Path) -> PathBuf {
    let built = e2e_tests::bin("kubectl-astro");
    let bin_dir = built.parent().expect("binary in a directory");
    PathBuf::from(script(
        "package",
        &[
            "--profile",
            "debug",
            "--no-build",
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ],
    ))
}

#[test]
fn manifest_follows_krews_rules() {
    let dist = tempfile::tempdir().unwrap();
    let archive = host_archive(dist.path());
    let name = archive.file_name().unwrap().to_str().unwrap().to_owned();
    let host_suffix = name.split('_').skip(2).collect::<Vec<_>>().join("_");
    // Only the host's archive can be built here; the others are stand-ins with distinct
    // contents so that each platform gets its own checksum.
    for os in ["linux", "darwin"] {
        for arch in ["amd64", "arm64"] {
            let other = name.replace(&host_suffix, &format!("{os}_{arch}.tar.gz"));
            let path = dist.path().join(&other);
            if !path.exists() {
                std::fs::write(&path, format!("stand-in for {os}/{arch}")).unwrap();
            }
        }
    }
    let manifest_path = dist.path().join("astro.yaml");
    script(
        "krew-manifest",
        &[
            "--archives",
            dist.path().to_str().unwrap(),
            "--base-url",
            "https://github.com/astro-dr/kubectl-astro/releases/download",
            "--out",
            manifest_path.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let manifest: serde_json::Value = serde_saphyr::from_str(&text).unwrap();

    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    let file_stem = manifest_path.file_stem().unwrap().to_str().unwrap();
    assert_eq!(
        manifest["metadata"]["name"], file_stem,
        "name must equal the file name"
    );

    let version = manifest["spec"]["version"].as_str().unwrap();
    assert!(
        is_krew_semver(version),
        "version {version:?} must be semver with a leading v"
    );
    let cargo_version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(version, cargo_version);

    let short = manifest["spec"]["shortDescription"].as_str().unwrap();
    assert!(
        !short.is_empty() && short.chars().count() <= 50,
        "shortDescription {short:?}"
    );

    let platforms = manifest["spec"]["platforms"].as_array().unwrap();
    let mut seen = Vec::new();
    for p in platforms {
        let labels = &p["selector"]["matchLabels"];
        let key = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        assert!(!seen.contains(&key), "duplicate platform {key:?}");
        seen.push(key);
        assert_eq!(
            p["bin"], "kubectl-astro",
            "one bin per platform: the dispatcher"
        );
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("https://") && uri.ends_with(".tar.gz"),
            "{uri}"
        );
        let archive_name = uri.rsplit('/').next().unwrap();
        let bytes = std::fs::read(dist.path().join(archive_name)).unwrap();
        assert_eq!(sha, sha256_hex(&bytes), "sha256 of {archive_name}");
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("darwin", "amd64"),
            ("darwin", "arm64"),
            ("linux", "amd64"),
            ("linux", "arm64")
        ]
    );
}

fn is_krew_semver(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let core = rest.split(['-', '+']).next().unwrap();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

struct KrewInstall {
    _root: tempfile::TempDir,
    path: std::ffi::OsString,
}

impl KrewInstall {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let archive = host_archive(&root.path().join("dist"));
        script(
            "krew-install-local",
            &[archive.to_str().unwrap(), root.path().to_str().unwrap()],
        );
        // Only krew's bin dir and kubectl's own dir: the siblings are NOT on PATH.
        let kubectl_dir = kubectl().parent().unwrap().to_path_buf();
        let path = std::env::join_paths([root.path().join("bin"), kubectl_dir]).unwrap();
        KrewInstall { _root: root, path }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let home = tempfile::tempdir().unwrap();
        Command::new(kubectl())
            .args(args)
            .env_clear()
            .envs(e2e_tests::fake_clock_env())
            .env("PATH", &self.path)
            .env("HOME", home.path())
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn krew_layout_works_through_real_kubectl() {
    let krew = KrewInstall::new();

    let out = krew.kubectl(&["plugin", "list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("kubectl-astro"), "{stdout}");
    assert!(
        !stdout.contains("kubectl-astro-"),
        "siblings must not be on PATH: {stdout}"
    );
    assert!(
        !stderr.to_lowercase().contains("warning"),
        "plugin list warned: {stderr}"
    );

    let out = krew.kubectl(&["astro"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for cmd in ["backup", "restore", "dbconn", "completion"] {
        assert!(stdout.contains(cmd), "{stdout}");
    }

    let out = krew.kubectl(&["astro", "resotre"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("did you mean \"restore\""), "{stderr}");

    // The dispatcher finds the siblings in the store, not on PATH, and their usage text
    // names them the way the user typed them.
    for cmd in ["dbconn", "restore", "backup"] {
        let out = krew.kubectl(&["astro", cmd, "--help"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "kubectl astro {cmd} --help: {stderr}");
        assert!(
            stdout.contains(&format!("kubectl astro {cmd}")),
            "usage must name `kubectl astro {cmd}`: {stdout}"
        );
    }

    // Exit codes pass through the dispatcher: clap's usage errors exit 2.
    let out = krew.kubectl(&["astro", "dbconn", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
}

#[test]
fn every_binary_reports_the_same_version() {
    let krew = KrewInstall::new();
    let expected = env!("CARGO_PKG_VERSION");
    let out = krew.kubectl(&["astro", "--version"]);
    assert!(text(&out).0.contains(expected));
    for cmd in ["dbconn", "restore", "backup"] {
        let out = krew.kubectl(&["astro", cmd, "--version"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{cmd} --version: {stderr}");
        assert!(stdout.trim().ends_with(expected), "{cmd}: {stdout}");
    }
}

#[test]
fn kubectl_complete_plugin_answers_the_cobra_protocol() {
    let out = Command::new(e2e_tests::bin("kubectl_complete-astro"))
        .args(["__complete", "restore", "--from-b"])
        .env_clear()
        .envs(e2e_tests::fake_clock_env())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "--from-backup\n:4\n");
}
