//! Shared helpers for the splitter's integration tests: fixtures generated with the host's
//! ffmpeg (cached under the target dir, keyed by the command), frame-exactness checks with
//! `framemd5`, running the binary, and a private `moto_server`.
//!
//! Nothing here skips silently: a missing ffmpeg or moto_server fails the test with a message
//! saying how to get them (`cargo xtask test` installs them).

#![allow(dead_code)] // each test binary uses a different subset

pub mod fault_proxy;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const INSTALL_HINT: &str =
    "run the tests with `cargo xtask test`, which installs ffmpeg and moto_server";

/// Base directory for test scratch space and the fixture cache (inside `target/`).
pub fn scratch_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("splitter")
}

fn require_tool(name: &str) -> String {
    let out = Command::new(name).arg("-version").output();
    match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string()
        }
        _ => panic!("`{name}` is not installed or not runnable: {INSTALL_HINT}"),
    }
}

/// The host ffmpeg's version line (checked once; panics with the install hint if missing).
pub fn ffmpeg_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        require_tool("ffprobe");
        require_tool("ffmpeg")
    })
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A video made by ffmpeg: `seconds` s of the 25 fps test pattern at `size`, then `rest`, the
/// rest of the command line (more inputs, maps, codecs) as whitespace-separated words.
pub fn encoded(name: &str, ext: &str, size: &str, seconds: &str, rest: &str) -> PathBuf {
    let mut args = pattern(size, "25", seconds);
    args.extend(rest.split_whitespace().map(str::to_owned));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    fixture(name, ext, &refs)
}

/// 4 s of 160x90 H.264 with two audio tracks: AAC 48 kHz (`eng`) and AC-3 44.1 kHz (`fra`).
pub fn two_audio_tracks() -> PathBuf {
    encoded(
        "two-audio",
        "mp4",
        "160x90",
        "4",
        "-f lavfi -i sine=frequency=440:sample_rate=48000 \
         -f lavfi -i sine=frequency=880:sample_rate=44100 -t 4 \
         -map 0:v -map 1:a -map 2:a -c:v libx264 -g 25 -pix_fmt yuv420p \
         -c:a:0 aac -c:a:1 ac3 -metadata:s:a:0 language=eng -metadata:s:a:1 language=fra \
         -shortest",
    )
}

/// Runs ffmpeg quietly, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    ffmpeg_version();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A generated input video, cached under the target dir by its ffmpeg arguments.
/// `args` are the ffmpeg arguments before the output path.
pub fn fixture(name: &str, ext: &str, args: &[&str]) -> PathBuf {
    let mut key: Vec<&str> = vec![ffmpeg_version()];
    key.extend_from_slice(args);
    let dir = scratch_root().join("fixtures");
    std::fs::create_dir_all(&dir).expect("fixture dir");
    let path = dir.join(format!("{name}-{}.{ext}", short_hash(&key)));
    if !path.exists() {
        let tmp = dir.join(format!(".{name}-{}-{}.{ext}", std::process::id(), next_id()));
        let mut full: Vec<&str> = args.to_vec();
        let tmp_str = tmp.to_str().expect("utf-8 path");
        full.push(tmp_str);
        ffmpeg(&full);
        std::fs::rename(&tmp, &path).expect("publish fixture");
    }
    path
}

/// A fixture derived from another file by a function (cached by name + base path).
pub fn derived(name: &str, ext: &str, base: &Path, make: impl FnOnce(&Path, &Path)) -> PathBuf {
    let dir = scratch_root().join("fixtures");
    let base_str = base.to_string_lossy();
    let path = dir.join(format!("{name}-{}.{ext}", short_hash(&[&base_str, name])));
    if !path.exists() {
        let tmp = dir.join(format!(".{name}-{}-{}.{ext}", std::process::id(), next_id()));
        make(base, &tmp);
        std::fs::rename(&tmp, &path).expect("publish fixture");
    }
    path
}

fn next_id() -> usize {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = scratch_root().join("runs").join(format!(
            "{name}-{}-{}",
            std::process::id(),
            next_id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Source args for a synthetic test pattern with moving content.
pub fn pattern(size: &str, rate: &str, seconds: &str) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-t".into(),
        seconds.into(),
        "-i".into(),
        format!("testsrc2=size={size}:rate={rate}"),
    ]
}

/// Result of running the splitter binary.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// JSON log lines (the default when stderr is not a terminal).
    pub fn json_logs(&self) -> Vec<Value> {
        self.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The final "split complete" event.
    pub fn completion(&self) -> Value {
        self.json_logs()
            .into_iter()
            .find(|l| l["message"] == "split complete")
            .unwrap_or_else(|| panic!("no completion log line in:\n{}", self.stderr))
    }

    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.success(), "splitter failed ({:?}):\n{}", self.code, self.stderr);
    }

    /// Asserts a failure with the given exit code whose error is one line containing `text`,
    /// without a panic.
    #[track_caller]
    pub fn assert_fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, Some(code), "exit code; stderr:\n{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "panic:\n{}", self.stderr);
        let errors: Vec<&str> = self.stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "exactly one error line expected:\n{}", self.stderr);
        assert!(errors[0].contains(text), "error line {:?} should mention {text:?}", errors[0]);
    }
}

pub fn splitter_command() -> Command {
    // `SPLITTER_TEST_BIN`: another splitter to test, e.g. a script that runs the image's.
    let program = std::env::var_os("SPLITTER_TEST_BIN")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_splitter").into());
    let mut cmd = Command::new(program);
    // Deterministic environment: no inherited settings change a test's meaning.
    for var in [
        "SPLITTER_SEGMENT_SECONDS",
        "SPLITTER_WORK_DIR",
        "SPLITTER_FFMPEG",
        "SPLITTER_FFPROBE",
        "SPLITTER_LOG_FORMAT",
        "SPLITTER_LOG",
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "SPLITTER_S3_MAX_ATTEMPTS",
        "SPLITTER_S3_CONNECT_TIMEOUT_SECONDS",
        "SPLITTER_S3_READ_TIMEOUT_SECONDS",
        "SPLITTER_SEQUENTIAL",
        "SPLITTER_CONTEXT_FRAMES",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("SPLITTER_WORK_DIR", scratch_root().join("work"));
    // For a SPLITTER_TEST_BIN that runs the splitter elsewhere: the tree every path is under.
    cmd.env("SPLITTER_TEST_SCRATCH", scratch_root());
    // The splitter under test may run another ffmpeg build (e.g. the container's minimal
    // one); fixtures and reference decodes always use the host's full ffmpeg.
    for (from, to) in
        [("SPLITTER_TEST_FFMPEG", "SPLITTER_FFMPEG"), ("SPLITTER_TEST_FFPROBE", "SPLITTER_FFPROBE")]
    {
        if let Some(value) = std::env::var_os(from) {
            cmd.env(to, value);
        }
    }
    let _ = std::fs::create_dir_all(scratch_root().join("work"));
    cmd
}

/// Runs the splitter with arguments and extra environment.
pub fn splitter(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = splitter_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output { status, stdout, stderr } = cmd.output().expect("run splitter");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `splitter split INPUT OUTPUT --segment-seconds N`, asserting success; returns the manifest.
pub fn split_ok(input: &Path, output: &Path, seconds: &str) -> Value {
    let run =
        splitter(&["split", path_str(input), path_str(output), "--segment-seconds", seconds], &[]);
    run.assert_ok();
    read_manifest(output)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn read_manifest(output: &Path) -> Value {
    let data = std::fs::read(output.join("manifest.json")).expect("manifest.json exists");
    serde_json::from_slice(&data).expect("manifest is JSON")
}

/// Per-frame md5 of the first video stream, decoded by ffmpeg (every frame kept).
pub fn framemd5(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "decoding {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit(',').next().unwrap_or("").trim().to_string())
        .collect()
}

/// md5 of the decoded samples of an audio stream (as 32-bit float).
pub fn audio_md5(path: &Path, audio_index: usize) -> String {
    let map = format!("0:a:{audio_index}");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", &map, "-c:a", "pcm_f32le", "-f", "md5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "decoding audio of {}", path.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Decodes the source and every segment; asserts the segments, in order and without their
/// lead-in/trailing frames, give exactly the source's frames. Returns the frame count.
#[track_caller]
pub fn assert_frame_exact(source: &Path, output: &Path) -> usize {
    let manifest = read_manifest(output);
    let expected = framemd5(source);
    let mut got = Vec::new();
    let mut start_pts: Option<i64> = None;
    for seg in manifest["segments"].as_array().expect("segments") {
        let file = output.join(seg["path"].as_str().expect("path"));
        let frames = framemd5(&file);
        let lead = seg["lead_in_frames"].as_u64().expect("lead_in") as usize;
        let owned = seg["frames"].as_u64().expect("frames") as usize;
        let trailing = seg["trailing_frames"].as_u64().expect("trailing") as usize;
        assert_eq!(
            frames.len(),
            lead + owned + trailing,
            "{} decodes to {} frames, manifest says {lead} + {owned} + {trailing}",
            file.display(),
            frames.len()
        );
        got.extend_from_slice(&frames[lead..lead + owned]);
        assert_eq!(
            seg["pts_digest"].as_str(),
            Some(ffprobe_pts_digest(&file).as_str()),
            "{}: the manifest's pts_digest is not that of the file's timestamps",
            file.display()
        );
        // Contiguous start times.
        if let Some(prev_end) = start_pts {
            assert_eq!(seg["start_pts"].as_i64(), Some(prev_end), "segments must be contiguous");
        }
        start_pts = seg["end_pts"].as_i64();
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "segments give {} frames, the source decodes to {}",
        got.len(),
        expected.len()
    );
    let first_diff = got.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "frame {first_diff:?} differs between segments and source");
    assert_eq!(manifest["source"]["video"]["frames"].as_u64(), Some(expected.len() as u64));
    expected.len()
}

/// The recipe the issue calls naive: ffmpeg's segment muxer with reset timestamps. Returns
/// (frames the source decodes to, frames its segments decode to, whether they are equal).
pub fn naive_recipe(source: &Path, seconds: &str) -> (usize, usize, bool) {
    let dir = TempDir::new("naive");
    let pattern = dir.join("seg%03d.mp4");
    let args: Vec<String> = splitter::cut::common_recipe(source, seconds, &pattern)
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let got: Vec<String> = files.iter().flat_map(|f| framemd5(f)).collect();
    let expected = framemd5(source);
    (expected.len(), got.len(), got == expected)
}

/// The manifest's `pts_digest` of a segment file, computed from the host's ffprobe (not the
/// splitter's code): SHA-256 of `N/D\n` (the video time base), then each video packet's pts
/// minus the first packet's, in decode order, one per line.
pub fn ffprobe_pts_digest(path: &Path) -> String {
    let probe = |entries: &str| {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", entries])
            .args(["-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("run ffprobe");
        assert!(out.status.success(), "ffprobe {}", path.display());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The first field of each line: side data sections add fields after it.
    let first_fields = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(',').next().unwrap_or("").trim().to_owned())
            .collect()
    };
    let time_base = first_fields(probe("stream=time_base")).concat();
    let pts: Vec<i64> = first_fields(probe("packet=pts"))
        .iter()
        .map(|p| p.parse().unwrap_or_else(|_| panic!("pts {p:?} of {}", path.display())))
        .collect();
    let mut text = format!("{time_base}\n");
    for p in &pts {
        text.push_str(&format!("{}\n", p - pts[0]));
    }
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes an executable script (a stand-in tool).
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Segment files' digests by path, from the manifest.
pub fn digests(manifest: &Value) -> BTreeMap<String, String> {
    manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .chain(manifest["audio"].as_array().expect("audio"))
        .map(|e| {
            (
                e["path"].as_str().unwrap_or("").to_string(),
                e["sha256"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Rotation (counter-clockwise degrees, as ffprobe reports) of the first video stream.
pub fn probe_rotation(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    json["streams"][0]["side_data_list"]
        .as_array()
        .and_then(|l| l.iter().find_map(|s| s["rotation"].as_f64()))
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// moto_server

/// A private moto_server on a free 127.0.0.1 port, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => panic!("cannot start moto_server ({e}): {INSTALL_HINT}"),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited (port taken?): try another port
                }
                if http(port, "GET", "/moto-api/data.json", "").is_some() {
                    return Moto { child, port };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start on 127.0.0.1: {INSTALL_HINT}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for the splitter (and the test's own client).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Makes moto authenticate every request after the next `allowed` ones (moto's
    /// INITIAL_NO_AUTH_ACTION_COUNT): the dummy credentials then get 403.
    pub fn deny_after(&self, allowed: &str) {
        http(self.port, "POST", "/moto-api/reset-auth", allowed).expect("moto reset-auth");
    }

    /// A client for the test's own S3 calls.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 request to 127.0.0.1 (no client library needed for moto's admin API).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    status.contains(" 200 ").then_some(status)
}

pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    client.create_bucket().bucket(bucket).send().await.expect("create bucket");
}

pub async fn put_file(client: &aws_sdk_s3::Client, bucket: &str, key: &str, path: &Path) {
    let body = aws_sdk_s3::primitives::ByteStream::from_path(path).await.expect("read");
    client.put_object().bucket(bucket).key(key).body(body).send().await.expect("put");
}

pub async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = client.list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list");
    out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

pub async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = client.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(out.body.collect().await.expect("body").into_bytes().to_vec())
}

// S3 suites' shared pieces

/// 8 s of 160x90 H.264, a keyframe every second, AAC: enough segments to fail part-way through.
pub fn s3_video() -> PathBuf {
    let mut a = pattern("160x90", "25", "8");
    for s in ["-f", "lavfi", "-t", "8", "-i", "sine=sample_rate=48000"] {
        a.push(s.into());
    }
    for s in ["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac"] {
        a.push(s.into());
    }
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    fixture("s3-video", "mp4", &refs)
}

/// `seconds` of 320x240 noise, lossless H.264 (big files from little time), a keyframe every
/// `gop` frames, no audio.
pub fn noise_video(name: &str, seconds: &str, gop: &str) -> PathBuf {
    fixture(
        name,
        "mp4",
        &[
            "-f",
            "lavfi",
            "-t",
            seconds,
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-vf",
            "noise=alls=30:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-g",
            gop,
        ],
    )
}

/// ~12 MB of noise in one GOP: one segment larger than two 5 MiB parts (multipart uploads).
pub fn noise_12mb() -> PathBuf {
    noise_video("noise-12mb", "4", "100")
}

/// Runs the splitter against S3 at `endpoint` (moto's, or a proxy's in front of it), with
/// moto's credentials and `extra` environment.
pub fn run_against(moto: &Moto, endpoint: &str, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut env: Vec<(&str, String)> = moto.env();
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ENDPOINT_URL" {
            *v = endpoint.to_string();
        }
    }
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    splitter(args, &refs)
}

/// The manifest under a prefix, read directly from S3.
pub async fn manifest_at(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Option<Value> {
    let data = get_bytes(client, bucket, &format!("{prefix}/manifest.json")).await?;
    Some(serde_json::from_slice(&data).expect("manifest JSON"))
}

/// Downloads everything under a prefix into a local directory (to decode it).
pub async fn download_prefix(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str, dir: &Path) {
    for key in list_keys(client, bucket, prefix).await {
        let relative = key.strip_prefix(&format!("{prefix}/")).expect("under prefix");
        let dest = dir.join(relative);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        let data = get_bytes(client, bucket, &key).await.expect("object");
        std::fs::write(dest, data).expect("write");
    }
}
