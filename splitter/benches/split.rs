//! `cargo bench -p splitter --bench split [-- --case local|s3|s3-link|many|context|all]
//! [--runs N] [--segments N] [--link-mb-per-s N] [--segment-seconds S]`
//!
//! Five cases, each printing a markdown table (see `README.md` beside this file):
//!
//! - `local` (the default): a ≥ 500 MB, 2-minute 1080p H.264 + AAC MP4 (generated once, cached
//!   under `target/splitter-bench/`) cut by the issue's bare recipe
//!   (`ffmpeg -i big.mp4 -map 0:v:0 -c copy -f segment -segment_time 10 -reset_timestamps 1`)
//!   and by `splitter split big.mp4 out --segment-seconds 10`, alternating: wall and CPU times,
//!   the ratio, peak memory.
//! - `s3`: the same input from and to a private `moto_server`: `splitter split` overlapped (the
//!   default), `--sequential`, and the AWS CLI recipe (download, bare ffmpeg, upload), with the
//!   peak size of their scratch directories.
//! - `s3-link`: the `s3` case's splitter rows with the splitter reaching moto through a paced
//!   loopback relay (`--link-mb-per-s`, default 40 MB/s each way): the network, not moto's CPU
//!   on the same cores, is then the bottleneck, as for a Batch job on AWS.
//! - `many`: a 320x180 H.264 + AAC video of `--segments N` seconds (default 3600) cut into 1 s
//!   segments, locally and on moto, plus `splitter verify` of each output: memory should stay
//!   flat in the number of segments.
//! - `context`: the `local` case's input split with `--context-frames` 0, 8 and 25
//!   (`--segment-seconds S`, default 10): total segment bytes and the overhead of the context.
//!
//! `--runs N`: alternating runs of each row (default 5 for `local`, 3 for the others).
//! `SPLITTER_FFMPEG`/`SPLITTER_FFPROBE` pick the ffmpeg build for the splitter and the bare
//! recipe alike. The splitter is the one cargo builds for the bench (`target/release/splitter`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIG_SECONDS: &str = "120";
const MIN_BYTES: u64 = 500 * 1024 * 1024;
const SPLITTER: &str = env!("CARGO_BIN_EXE_splitter");
const BUCKET: &str = "bench";
/// How often the scratch directory and the process's peak RSS are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Local,
    S3,
    S3Link,
    Many,
    Context,
    Join,
    All,
}

#[derive(Debug)]
struct Options {
    case: Case,
    runs: Option<usize>,
    segments: u64,
    /// `s3-link`: the link's rate each way, MB/s.
    link_mb_per_s: u64,
    /// `context`: the segment length.
    segment_seconds: String,
}

impl Options {
    fn parse() -> Options {
        let args: Vec<String> = std::env::args().collect();
        // `cargo bench` passes `--bench`; ignore it and anything unknown.
        let value = |name: &str| {
            args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
        };
        let case = match value("--case").unwrap_or("local") {
            "local" => Case::Local,
            "s3" => Case::S3,
            "s3-link" => Case::S3Link,
            "many" => Case::Many,
            "context" => Case::Context,
            "join" => Case::Join,
            "all" => Case::All,
            other => {
                panic!("--case {other}: expected local, s3, s3-link, many, context, join or all")
            }
        };
        let number = |name: &str| {
            value(name).map(|n| {
                n.parse::<u64>().unwrap_or_else(|_| panic!("{name} {n}: expected a number"))
            })
        };
        Options {
            case,
            runs: number("--runs").map(|n| n.max(1) as usize),
            segments: number("--segments").unwrap_or(3600).max(1),
            link_mb_per_s: number("--link-mb-per-s").unwrap_or(40).max(1),
            segment_seconds: value("--segment-seconds").unwrap_or("10").to_string(),
        }
    }

    fn runs(&self, default: usize) -> usize {
        self.runs.unwrap_or(default)
    }
}

fn main() {
    let opts = Options::parse();
    if matches!(opts.case, Case::Local | Case::All) {
        case_local(opts.runs(5));
    }
    if matches!(opts.case, Case::S3 | Case::All) {
        case_s3(opts.runs(3), None);
    }
    if matches!(opts.case, Case::S3Link | Case::All) {
        case_s3(opts.runs(3), Some(opts.link_mb_per_s));
    }
    if matches!(opts.case, Case::Many | Case::All) {
        case_many(opts.runs(3), opts.segments);
    }
    if matches!(opts.case, Case::Context | Case::All) {
        case_context(&opts.segment_seconds);
    }
    if matches!(opts.case, Case::Join | Case::All) {
        case_join(opts.runs(3));
    }
}

// ---------------------------------------------------------------------------------------
// Inputs

fn target_dir() -> PathBuf {
    // benches run with the package as the working directory; target/ is the workspace's.
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("splitter-bench")
}

fn ffmpeg_path() -> String {
    std::env::var("SPLITTER_FFMPEG").unwrap_or_else(|_| "ffmpeg".into())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Generates `name-KEY.mp4` once with the host's ffmpeg (KEY hashes the arguments, so a change
/// of recipe makes a new file) and returns its path.
fn cached_input(name: &str, args: &[String], how_long: &str) -> PathBuf {
    use sha2::Digest;
    let dir = target_dir();
    std::fs::create_dir_all(&dir).expect("bench dir");
    let key: String = sha2::Sha256::digest(args.join(" ").as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(format!("{name}-{key}.mp4"));
    if path.exists() {
        return path;
    }
    // Generated with the host's full ffmpeg (encoders), whatever build is benchmarked.
    eprintln!("generating {} once ({how_long})…", path.display());
    let tmp = dir.join("generating.mp4");
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&tmp)
        .status()
        .expect("run ffmpeg (install it, or run `cargo xtask test` once)");
    assert!(status.success(), "generating the benchmark input failed");
    std::fs::rename(&tmp, &path).expect("rename");
    eprintln!("generated in {:.0} s", started.elapsed().as_secs_f64());
    path
}

/// The ≥ 500 MB, 2-minute 1080p H.264 + AAC input of the `local` and `s3` cases.
fn big_file() -> PathBuf {
    let args = strings(&[
        "-f",
        "lavfi",
        "-t",
        BIG_SECONDS,
        "-i",
        "testsrc2=size=1920x1080:rate=25",
        "-f",
        "lavfi",
        "-t",
        BIG_SECONDS,
        "-i",
        "sine=frequency=440:sample_rate=48000",
        // Noise keeps the bitrate up like camera footage; ultrafast keeps generation short.
        "-vf",
        "noise=alls=8:allf=t",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-x264-params",
        "bframes=3",
        "-b:v",
        "37M",
        "-maxrate",
        "38M",
        "-bufsize",
        "38M",
        "-g",
        "50",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
    ]);
    let path =
        cached_input("big-1080p-h264-aac", &args, "x264 ultrafast, a few minutes on 2 cores");
    let bytes = file_size(&path);
    assert!(bytes >= MIN_BYTES, "benchmark input is only {bytes} bytes");
    path
}

/// The `many` case's input: `seconds` of 320x180 25 fps H.264 with a keyframe every second and
/// no B-frames, AAC at 32 kHz / 32 kb/s, moov first (`+faststart`).
fn small_file(seconds: u64) -> PathBuf {
    let t = seconds.to_string();
    let args = strings(&[
        "-f",
        "lavfi",
        "-t",
        &t,
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-f",
        "lavfi",
        "-t",
        &t,
        "-i",
        "sine=frequency=440:sample_rate=32000",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        "-movflags",
        "+faststart",
    ]);
    let how_long = format!("~{} s on 2 cores", (seconds / 70).max(1));
    cached_input(&format!("small-320x180-{seconds}s"), &args, &how_long)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// Reads the file once so the first run does not pay for the disk.
fn warm_page_cache(path: &Path) {
    let _ = std::io::copy(&mut std::fs::File::open(path).expect("open"), &mut std::io::sink());
}

fn ffmpeg_version() -> String {
    Command::new(ffmpeg_path())
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

/// A fresh, empty directory under `target/splitter-bench/`.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = target_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

// ---------------------------------------------------------------------------------------
// Measuring

/// One command to time.
#[derive(Debug, Default)]
struct Run {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Directory whose total size is sampled while the command runs.
    scratch: Option<PathBuf>,
    /// Sample the command's own peak RSS (VmHWM) while it runs.
    own_rss: bool,
}

impl Run {
    fn new(program: &str, args: Vec<String>) -> Run {
        Run { program: program.into(), args, ..Run::default() }
    }

    /// `splitter ARGS`, logging JSON lines, its work directory `work` (sampled), in `env`.
    fn splitter(args: &[&str], work: &Path, env: &[(String, String)]) -> Run {
        let mut env = env.to_vec();
        env.push(("SPLITTER_LOG_FORMAT".into(), "json".into()));
        env.push(("SPLITTER_WORK_DIR".into(), path_str(work).into()));
        Run { env, scratch: Some(work.into()), own_rss: true, ..Run::new(SPLITTER, strings(args)) }
    }

    /// The bare recipe: `ffmpeg -i INPUT -map 0:v:0 -c copy -f segment … PATTERN`.
    fn bare_ffmpeg(input: &Path, seconds: &str, pattern: &Path) -> Run {
        Run::new(&ffmpeg_path(), bare_recipe_args(input, seconds, pattern))
    }
}

fn bare_recipe_args(input: &Path, seconds: &str, pattern: &Path) -> Vec<String> {
    let mut args = strings(&["-nostdin", "-hide_banner", "-loglevel", "error"]);
    args.extend(
        splitter::cut::common_recipe(input, seconds, pattern)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned()),
    );
    args
}

#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    wall: f64,
    /// User + system time of the process tree (GNU time's %U + %S), s.
    cpu: Option<f64>,
    /// Peak RSS of the largest process in the tree (GNU time's %M), KiB.
    tree_rss_kib: Option<u64>,
    /// The command's own peak RSS, KiB: the splitter's "split complete" log line when it has
    /// one, else the process's VmHWM sampled every 20 ms.
    own_rss_kib: Option<u64>,
    /// The largest total size of the scratch directory seen while the command ran, bytes.
    scratch_peak: Option<u64>,
}

/// Runs a command under GNU time when available, sampling its scratch directory and peak RSS
/// from a thread; fails the bench if the command fails.
fn measure(run: &Run) -> Sample {
    let gnu_time = Path::new("/usr/bin/time").exists();
    let stats = target_dir().join("time.txt");
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-o").arg(&stats).args(["-f", "%U %S %M", &run.program]);
        c
    } else {
        Command::new(&run.program)
    };
    cmd.args(&run.args)
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("run {}: {e}", run.program));
    // Under GNU time the command is time's child; otherwise the child itself.
    let watched = run.own_rss.then(|| (child.id(), gnu_time));
    let sampler = Sampler::start(run.scratch.clone(), watched);
    let out = child.wait_with_output().expect("wait");
    let wall = started.elapsed().as_secs_f64();
    let (scratch_peak, sampled_rss) = sampler.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} {:?} failed:\n{stderr}", run.program, run.args);
    let mut sample = Sample { wall, scratch_peak, ..Sample::default() };
    if gnu_time {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if f.len() == 3 {
            sample.cpu = Some(f[0] + f[1]);
            sample.tree_rss_kib = Some(f[2] as u64);
        }
    }
    if run.own_rss {
        let logged = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "split complete")
            .and_then(|v| v["peak_rss_kib"].as_u64());
        sample.own_rss_kib = logged.or(sampled_rss);
    }
    sample
}

/// A thread that samples, every 20 ms until stopped, the total size of a directory and the
/// VmHWM of a process, keeping the maxima.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Option<u64>, Option<u64>)>,
}

impl Sampler {
    /// `watched`: the pid to read VmHWM of, and whether it is the parent of that process
    /// (GNU time) rather than the process itself.
    fn start(scratch: Option<PathBuf>, watched: Option<(u32, bool)>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut pid = watched.and_then(|(pid, is_parent)| (!is_parent).then_some(pid));
            let (mut scratch_peak, mut rss_peak) = (None::<u64>, None::<u64>);
            while !stopped.load(Ordering::Relaxed) {
                if let Some(dir) = &scratch {
                    scratch_peak = scratch_peak.max(Some(tree_size(dir)));
                }
                if let (None, Some((parent, true))) = (pid, watched) {
                    pid = child_of(parent);
                }
                if let Some(pid) = pid {
                    rss_peak = rss_peak.max(vm_hwm_kib(pid));
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            (scratch_peak, rss_peak)
        });
        Sampler { stop, thread }
    }

    /// Returns (scratch peak in bytes, RSS peak in KiB).
    fn stop(self) -> (Option<u64>, Option<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}

/// Total size of the files under `dir`; files and directories that vanish meanwhile count 0.
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => tree_size(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A child process of `parent`, found in /proc (the kernel's `children` file is not always
/// there).
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------
// Statistics and tables

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn wall_median(s: &[Sample]) -> f64 {
    median(s.iter().map(|x| x.wall).collect())
}

fn wall_min(s: &[Sample]) -> f64 {
    s.iter().map(|x| x.wall).fold(f64::INFINITY, f64::min)
}

fn cpu_median(s: &[Sample]) -> Option<f64> {
    let v: Vec<f64> = s.iter().filter_map(|x| x.cpu).collect();
    (!v.is_empty()).then(|| median(v))
}

fn tree_rss_max(s: &[Sample]) -> Option<u64> {
    s.iter().filter_map(|x| x.tree_rss_kib).max()
}

fn own_rss_max(s: &[Sample]) -> Option<u64> {
    s.iter().filter_map(|x| x.own_rss_kib).max()
}

fn scratch_max(s: &[Sample]) -> Option<u64> {
    s.iter().filter_map(|x| x.scratch_peak).max()
}

fn seconds(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2} s"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Prints a markdown table, the first column left-aligned and the others right-aligned.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let width = |c: usize| {
        rows.iter().map(|r| r[c].chars().count()).chain([headers[c].chars().count()]).max()
    };
    let widths: Vec<usize> = (0..headers.len()).map(|c| width(c).unwrap_or(0)).collect();
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (s, &w))| if c == 0 { format!("{s:<w$}") } else { format!("{s:>w$}") })
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    println!();
    line(headers.iter().map(|h| h.to_string()).collect());
    println!("|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
    for row in rows {
        line(row.clone());
    }
    println!();
}

const S3_HEADERS: [&str; 6] =
    ["command", "wall median", "wall min", "CPU median", "own peak RSS", "peak scratch"];

/// A row of the `s3` and `many` tables.
fn s3_row(label: &str, s: &[Sample]) -> Vec<String> {
    vec![
        label.into(),
        seconds(Some(wall_median(s))),
        seconds(Some(wall_min(s))),
        seconds(cpu_median(s)),
        mib(own_rss_max(s)),
        megabytes(scratch_max(s)),
    ]
}

fn segments_in(manifest: &[u8]) -> usize {
    let manifest: serde_json::Value = serde_json::from_slice(manifest).expect("manifest json");
    manifest["segments"].as_array().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------
// moto_server and the AWS CLI

/// A private moto_server on a free 127.0.0.1 port with bucket `bench`, killed on drop.
struct Moto {
    child: Child,
    port: u16,
    /// The AWS CLI's config file (path-style addressing), removed on drop.
    config: PathBuf,
}

impl Moto {
    fn start() -> Moto {
        std::fs::create_dir_all(target_dir()).expect("bench dir");
        let config = target_dir().join("aws-config");
        std::fs::write(&config, "[default]\ns3 =\n    addressing_style = path\n")
            .expect("aws config");
        for _ in 0..5 {
            let config = config.clone();
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            let mut child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): install moto[server]"));
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited (port taken?): try another port
                }
                if http_ok(port, "/moto-api/data.json") {
                    let moto = Moto { child, port, config };
                    moto.aws(&["s3", "mb", &format!("s3://{BUCKET}")]);
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start on 127.0.0.1");
    }

    /// Environment for every S3 client: the splitter, the AWS CLI.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", path_str(&self.config).into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The same, for a client that reaches moto through 127.0.0.1:`port` (a [`Link`]).
    fn env_via(&self, port: u16) -> Vec<(String, String)> {
        let mut env = self.env();
        for (key, value) in &mut env {
            if key == "AWS_ENDPOINT_URL" {
                *value = format!("http://127.0.0.1:{port}");
            }
        }
        env
    }

    /// Runs the AWS CLI (not timed); returns its standard output.
    fn aws(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("aws")
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("run the AWS CLI (`aws`)");
        assert!(
            out.status.success(),
            "aws {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Uploads `file` to s3://bench/`key`; returns the URL.
    fn upload(&self, file: &Path, key: &str) -> String {
        let url = format!("s3://{BUCKET}/{key}");
        let started = Instant::now();
        self.aws(&["s3", "cp", "--quiet", path_str(file), &url]);
        eprintln!("uploaded {url} in {:.1} s", started.elapsed().as_secs_f64());
        url
    }

    fn remove(&self, prefix_url: &str) {
        self.aws(&["s3", "rm", "--quiet", "--recursive", prefix_url]);
    }

    fn read(&self, url: &str) -> Vec<u8> {
        self.aws(&["s3", "cp", "--quiet", url, "-"])
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).is_ok() && status.contains(" 200 ")
}

// ---------------------------------------------------------------------------------------
// A network link of a given rate in front of moto

/// A loopback TCP relay to moto that passes at most `rate` bytes per second each way, shared by
/// all connections (a Batch instance's network, where moto on the same cores is not): the
/// `s3-link` case's bottleneck is then the link, as on AWS, not moto's CPU.
struct Link {
    port: u16,
    up: Arc<Pacer>,
    down: Arc<Pacer>,
}

/// Paces one direction: each chunk waits its turn on a shared schedule.
struct Pacer {
    rate: f64,
    next: std::sync::Mutex<Instant>,
    bytes: std::sync::atomic::AtomicU64,
}

impl Pacer {
    fn new(rate: f64) -> Arc<Pacer> {
        Arc::new(Pacer {
            rate,
            next: std::sync::Mutex::new(Instant::now()),
            bytes: Default::default(),
        })
    }

    /// Waits until `n` more bytes may pass.
    fn pass(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let until = {
            let mut next = self.next.lock().expect("pacer lock");
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / self.rate);
            *next
        };
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
}

impl Link {
    fn start(upstream: u16, rate: f64) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the link");
        let port = listener.local_addr().expect("link address").port();
        let (up, down) = (Pacer::new(rate), Pacer::new(rate));
        let (up2, down2) = (Arc::clone(&up), Arc::clone(&down));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (up, down) = (Arc::clone(&up2), Arc::clone(&down2));
                relay(&client, &server, up);
                relay(&server, &client, down);
            }
        });
        Link { port, up, down }
    }

    /// Bytes passed (up, down).
    fn bytes(&self) -> (u64, u64) {
        (self.up.bytes.load(Ordering::Relaxed), self.down.bytes.load(Ordering::Relaxed))
    }
}

/// Copies `from` to `to` at the pacer's rate, on a thread of its own, until `from` ends.
fn relay(from: &TcpStream, to: &TcpStream, pacer: Arc<Pacer>) {
    use std::io::{Read, Write};
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { return };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            pacer.pass(n);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

// ---------------------------------------------------------------------------------------
// Case `local`: bare ffmpeg vs splitter on local files

fn case_local(runs: usize) {
    let input = big_file();
    let bytes = file_size(&input);
    let load = load_average();
    warm_page_cache(&input);

    let mut bare = Vec::new();
    let mut ours = Vec::new();
    let mut segments = 0;
    for run in 0..runs {
        let out = fresh_dir("runs/out");
        bare.push(measure(&Run::bare_ffmpeg(&input, "10", &out.join("seg%03d.mp4"))));

        let (work, out) = (fresh_dir("runs/work"), target_dir().join("runs/out"));
        let _ = std::fs::remove_dir_all(&out);
        let split = ["split", path_str(&input), path_str(&out), "--segment-seconds", "10"];
        ours.push(measure(&Run::splitter(&split, &work, &[])));
        segments = segments_in(&std::fs::read(out.join("manifest.json")).expect("manifest"));
        eprintln!(
            "run {}/{runs}: bare {:.2} s, splitter {:.2} s",
            run + 1,
            bare[run].wall,
            ours[run].wall
        );
    }
    let _ = std::fs::remove_dir_all(target_dir().join("runs"));

    println!();
    println!("## local: bare ffmpeg vs splitter split");
    println!();
    println!(
        "input: {} ({:.1} MB = {:.1} MiB, 1080p H.264 + AAC, {BIG_SECONDS} s) -> {segments} segments",
        input.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        bytes as f64 / 1e6,
        bytes as f64 / 1048576.0
    );
    println!("ffmpeg: {}", ffmpeg_version());
    println!(
        "runs: {runs} each, alternating; load average before: {load}, after: {}",
        load_average()
    );
    let row = |label: &str, s: &[Sample], own: String| {
        vec![
            label.to_string(),
            seconds(Some(wall_median(s))),
            seconds(Some(wall_min(s))),
            seconds(cpu_median(s)),
            mib(tree_rss_max(s)),
            own,
        ]
    };
    print_table(
        &[
            "command",
            "wall median",
            "wall min",
            "CPU median",
            "peak RSS (largest process)",
            "splitter's own peak RSS",
        ],
        &[
            row("ffmpeg -f segment (bare recipe)", &bare, "-".into()),
            row("splitter split (probe, cut, sha256…)", &ours, mib(own_rss_max(&ours))),
        ],
    );
    println!(
        "ratio splitter/bare: wall median {:.2} (goal <= 1.5), wall min {:.2}, CPU {}",
        wall_median(&ours) / wall_median(&bare),
        wall_min(&ours) / wall_min(&bare),
        ratio(cpu_median(&ours), cpu_median(&bare))
    );
    println!("splitter's own peak RSS: {} (goal <= 64 MiB)", mib(own_rss_max(&ours)));
}

// ---------------------------------------------------------------------------------------
// Case `s3`: S3 -> S3 on moto, overlapped vs sequential vs the AWS CLI recipe

/// The AWS CLI recipe as one timed process tree: download into DIR, bare ffmpeg into DIR/seg,
/// upload DIR/seg.
fn cli_recipe(moto: &Moto, input_url: &str, dir: &Path, output_url: &str) -> Run {
    let script = r#"set -e
src=$1 dir=$2 dest=$3
shift 3
aws s3 cp --quiet "$src" "$dir/in.mp4"
mkdir "$dir/seg"
"$@"
aws s3 cp --quiet --recursive "$dir/seg" "$dest"
"#;
    let mut args = strings(&["-c", script, "sh", input_url, path_str(dir), output_url]);
    args.push(ffmpeg_path());
    args.extend(bare_recipe_args(&dir.join("in.mp4"), "10", &dir.join("seg/%06d.mp4")));
    Run { env: moto.env(), scratch: Some(dir.into()), ..Run::new("sh", args) }
}

/// The same file with its index (`moov`) first, as `-movflags +faststart` writes it (cached
/// beside it): the splitter cuts such an input while it downloads.
fn fast_start_copy(input: &Path) -> PathBuf {
    let path = input.with_extension("faststart.mp4");
    if !path.exists() {
        let tmp = input.with_extension("faststart.tmp.mp4");
        let status = Command::new(ffmpeg_path())
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(input)
            .args(["-map", "0", "-c", "copy", "-movflags", "+faststart"])
            .arg(&tmp)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "remuxing the benchmark input failed");
        std::fs::rename(&tmp, &path).expect("rename");
    }
    path
}

/// The `s3` case; with `link_mb_per_s`, the `s3-link` case: the splitter reaches moto through
/// a [`Link`] of that rate each way, and the AWS CLI row is left out.
fn case_s3(runs: usize, link_mb_per_s: Option<u64>) {
    let input = big_file();
    let bytes = file_size(&input);
    let moto = Moto::start();
    let input_url = moto.upload(&input, "in/big.mp4");
    let fast_start_url = moto.upload(&fast_start_copy(&input), "in/big-faststart.mp4");
    let link = link_mb_per_s.map(|rate| Link::start(moto.port, rate as f64 * 1e6));
    let env = match &link {
        Some(link) => moto.env_via(link.port),
        None => moto.env(),
    };
    let load = load_average();

    let (mut overlapped, mut sequential, mut cli) = (Vec::new(), Vec::new(), Vec::new());
    let mut streamed = Vec::new();
    let mut segments = 0;
    let mut n = 0;
    let mut next_prefix = |name: &str| {
        n += 1;
        format!("s3://{BUCKET}/{name}-{n}")
    };
    for run in 0..runs {
        for (url, sequential_flag, samples) in [
            (&input_url, false, &mut overlapped),
            (&fast_start_url, false, &mut streamed),
            (&input_url, true, &mut sequential),
        ] {
            let work = fresh_dir("s3-work");
            let out = next_prefix("out");
            let mut split = vec!["split", url, &out, "--segment-seconds", "10"];
            if sequential_flag {
                split.push("--sequential");
            }
            samples.push(measure(&Run::splitter(&split, &work, &env)));
            if segments == 0 {
                segments = segments_in(&moto.read(&format!("{out}/manifest.json")));
            }
            moto.remove(&out);
        }
        if link.is_none() {
            let dir = fresh_dir("s3-cli");
            let out = next_prefix("cli");
            cli.push(measure(&cli_recipe(&moto, &input_url, &dir, &format!("{out}/"))));
            moto.remove(&out);
        }
        eprintln!(
            "run {}/{runs}: overlapped {:.2} s, fast start {:.2} s, sequential {:.2} s{}",
            run + 1,
            overlapped[run].wall,
            streamed[run].wall,
            sequential[run].wall,
            cli.get(run).map_or(String::new(), |c| format!(", AWS CLI recipe {:.2} s", c.wall))
        );
    }
    for dir in ["s3-work", "s3-cli"] {
        let _ = std::fs::remove_dir_all(target_dir().join(dir));
    }

    println!();
    match link_mb_per_s {
        None => println!("## s3: S3 -> S3 on a local moto_server"),
        Some(rate) => println!(
            "## s3-link: S3 -> S3 on a local moto_server behind a {rate} MB/s link each way"
        ),
    }
    println!();
    println!(
        "input: {input_url} ({:.1} MB, 1080p H.264 + AAC, {BIG_SECONDS} s) -> {segments} segments of 10 s",
        bytes as f64 / 1e6
    );
    println!("ffmpeg: {}", ffmpeg_version());
    println!(
        "runs: {runs} each, alternating; load average before: {load}, after: {}",
        load_average()
    );
    let mut rows = vec![
        s3_row("splitter split (overlapped, the default; index at the end)", &overlapped),
        s3_row("splitter split (overlapped; fast-start copy: cut while downloading)", &streamed),
        s3_row("splitter split --sequential", &sequential),
    ];
    if !cli.is_empty() {
        rows.push(s3_row("aws s3 cp + ffmpeg -f segment + aws s3 cp --recursive", &cli));
    }
    print_table(&S3_HEADERS, &rows);
    let goal = wall_median(&overlapped) / wall_median(&sequential);
    println!(
        "ratio overlapped/sequential: wall median {goal:.2} (goal ≤ 0.7: {}), wall min {:.2}, CPU {}",
        verdict(goal <= 0.7),
        wall_min(&overlapped) / wall_min(&sequential),
        ratio(cpu_median(&overlapped), cpu_median(&sequential))
    );
    let streamed_goal = wall_median(&streamed) / wall_median(&sequential);
    println!(
        "ratio overlapped (fast start)/sequential: wall median {streamed_goal:.2} (goal ≤ 0.7: {})",
        verdict(streamed_goal <= 0.7)
    );
    if !cli.is_empty() {
        println!(
            "ratio overlapped/AWS CLI recipe: wall median {:.2}",
            wall_median(&overlapped) / wall_median(&cli)
        );
    }
    if let Some(link) = link {
        let (up, down) = link.bytes();
        println!(
            "through the link: {:.1} MB up, {:.1} MB down (all runs)",
            up as f64 / 1e6,
            down as f64 / 1e6
        );
    }
}

// ---------------------------------------------------------------------------------------
// Case `many`: thousands of 1 s segments

fn case_many(runs: usize, segments: u64) {
    let input = small_file(segments);
    let bytes = file_size(&input);
    let moto = Moto::start();
    let input_url = moto.upload(&input, "in/hour.mp4");
    let load = load_average();
    warm_page_cache(&input);

    let mut rows: [(&str, Vec<Sample>); 5] = [
        ("ffmpeg -f segment (bare recipe), local", Vec::new()),
        ("splitter split, local", Vec::new()),
        ("splitter verify, local", Vec::new()),
        ("splitter split, S3 -> S3", Vec::new()),
        ("splitter verify, S3", Vec::new()),
    ];
    let mut made = 0;
    for run in 0..runs {
        let out = fresh_dir("many-bare");
        rows[0].1.push(measure(&Run::bare_ffmpeg(&input, "1", &out.join("%06d.mp4"))));
        let _ = std::fs::remove_dir_all(&out);

        let (work, out) = (fresh_dir("many-work"), target_dir().join("many-out"));
        let _ = std::fs::remove_dir_all(&out);
        let split = ["split", path_str(&input), path_str(&out), "--segment-seconds", "1"];
        rows[1].1.push(measure(&Run::splitter(&split, &work, &[])));
        made = segments_in(&std::fs::read(out.join("manifest.json")).expect("manifest"));
        let work = fresh_dir("many-work");
        rows[2].1.push(measure(&Run::splitter(&["verify", path_str(&out)], &work, &[])));
        let _ = std::fs::remove_dir_all(&out);

        let out = format!("s3://{BUCKET}/many-{}", run + 1);
        let work = fresh_dir("many-work");
        let split = ["split", &input_url, &out, "--segment-seconds", "1"];
        rows[3].1.push(measure(&Run::splitter(&split, &work, &moto.env())));
        let work = fresh_dir("many-work");
        rows[4].1.push(measure(&Run::splitter(&["verify", &out], &work, &moto.env())));
        moto.remove(&out);

        let walls: Vec<String> =
            rows.iter().map(|(label, s)| format!("{label} {:.2} s", s[run].wall)).collect();
        eprintln!("run {}/{runs}: {}", run + 1, walls.join(", "));
    }
    let _ = std::fs::remove_dir_all(target_dir().join("many-work"));

    println!();
    println!("## many: {segments} segments of 1 s");
    println!();
    println!(
        "input: {} ({:.1} MB, 320x180 25 fps H.264 + AAC, {segments} s), also as {input_url} -> {made} segments",
        input.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        bytes as f64 / 1e6
    );
    println!("ffmpeg: {}", ffmpeg_version());
    println!(
        "runs: {runs} each, alternating; load average before: {load}, after: {}",
        load_average()
    );
    let table: Vec<Vec<String>> = rows.iter().map(|(label, s)| s3_row(label, s)).collect();
    print_table(&S3_HEADERS, &table);

    let [bare, split, verify, s3_split, s3_verify] = rows.map(|(_, s)| s);
    let split_vs_bare = wall_median(&split) / wall_median(&bare);
    let verify_vs_split = wall_median(&verify) / wall_median(&split);
    let s3_verify_vs_split = wall_median(&s3_verify) / wall_median(&s3_split);
    let rss = [&split, &verify, &s3_split, &s3_verify].iter().filter_map(|s| own_rss_max(s)).max();
    println!(
        "goal: split ≤ 2× bare wall: {split_vs_bare:.2}× ({}); verify ≤ split wall: local {verify_vs_split:.2}× ({}), S3 {s3_verify_vs_split:.2}× ({}); splitter's own peak RSS ≤ 64 MiB: {} ({})",
        verdict(split_vs_bare <= 2.0),
        verdict(verify_vs_split <= 1.0),
        verdict(s3_verify_vs_split <= 1.0),
        mib(rss),
        verdict(rss.is_some_and(|k| k <= 64 * 1024)),
    );
}

// ---------------------------------------------------------------------------------------
// Case `context`: what `--context-frames` costs in bytes

fn case_context(segment_seconds: &str) {
    const CONTEXTS: [u64; 3] = [0, 8, 25];
    let input = big_file();
    let load = load_average();
    warm_page_cache(&input);
    let mut rows = Vec::new();
    let mut base_bytes = None;
    for n in CONTEXTS {
        let (work, out) = (fresh_dir("context-work"), target_dir().join("context-out"));
        let _ = std::fs::remove_dir_all(&out);
        let n_text = n.to_string();
        let split = [
            "split",
            path_str(&input),
            path_str(&out),
            "--segment-seconds",
            segment_seconds,
            "--context-frames",
            &n_text,
        ];
        let sample = measure(&Run::splitter(&split, &work, &[]));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
                .expect("manifest json");
        let segments = manifest["segments"].as_array().expect("segments");
        let sum = |key: &str| segments.iter().filter_map(|s| s[key].as_u64()).sum::<u64>();
        let (bytes, frames) = (sum("bytes"), sum("frames"));
        let base = *base_bytes.get_or_insert(bytes);
        let count = segments.len().max(1) as f64;
        rows.push(vec![
            n_text,
            segments.len().to_string(),
            format!("{bytes}"),
            format!("{:+.1} %", (bytes as f64 / base as f64 - 1.0) * 100.0),
            format!("{:.1}", sum("lead_in_frames") as f64 / count),
            format!("{:.1}", sum("trailing_frames") as f64 / count),
            format!(
                "{:+.1} %",
                (sum("lead_in_frames") + sum("trailing_frames")) as f64 / frames.max(1) as f64
                    * 100.0
            ),
            seconds(Some(sample.wall)),
        ]);
        eprintln!("--context-frames {n}: {bytes} bytes, {:.2} s", sample.wall);
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_dir_all(target_dir().join("context-work"));

    println!();
    println!("## context: --context-frames, {segment_seconds} s segments");
    println!();
    println!(
        "input: {} ({:.1} MB, 1080p H.264 GOP 50 + AAC, {BIG_SECONDS} s)",
        input.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        file_size(&input) as f64 / 1e6
    );
    println!("ffmpeg: {}", ffmpeg_version());
    println!("one run each; load average before: {load}, after: {}", load_average());
    print_table(
        &[
            "context frames",
            "segments",
            "segment bytes",
            "bytes overhead",
            "mean lead_in_frames",
            "mean trailing_frames",
            "frames overhead",
            "wall",
        ],
        &rows,
    );
}

// ---------------------------------------------------------------------------------------
// join

/// `join` against the recipe it replaces: the big input split at 10 s, then its own segments
/// joined back (the identity join, every segment's frames as they are) into an MP4 with the
/// audio, against ffmpeg's concat demuxer doing the same by hand (`-f concat -i LIST -i AUDIO
/// -c copy -movflags +faststart`), which keeps the worker's timestamps instead of the source's.
fn case_join(runs: usize) {
    let input = big_file();
    let load = load_average();
    warm_page_cache(&input);
    let out = target_dir().join("join-split");
    let _ = std::fs::remove_dir_all(&out);
    let work = fresh_dir("join-work");
    measure(&Run::splitter(
        &["split", path_str(&input), path_str(&out), "--segment-seconds", "10"],
        &work,
        &[],
    ));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    let segments = manifest["segments"].as_array().expect("segments").len();
    let audio = out.join(manifest["audio"][0]["path"].as_str().expect("an audio file"));
    let list = target_dir().join("join-list.ffconcat");
    let mut text = String::from("ffconcat version 1.0\n");
    for s in manifest["segments"].as_array().expect("segments") {
        let path = out.join(s["path"].as_str().expect("path"));
        text += &format!("file '{}'\n", path.display());
    }
    std::fs::write(&list, text).expect("concat list");
    let joined = target_dir().join("joined.mp4");
    let by_hand = target_dir().join("joined-by-hand.mp4");
    let (mut join, mut recipe) = (Vec::new(), Vec::new());
    for i in 0..runs {
        eprintln!("join run {}/{runs}", i + 1);
        let _ = std::fs::remove_file(&joined);
        join.push(measure(&Run::splitter(
            &["join", path_str(&out), path_str(&out.join("segments")), path_str(&joined)],
            &work,
            &[],
        )));
        let _ = std::fs::remove_file(&by_hand);
        let mut args = strings(&["-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat"]);
        args.extend(strings(&["-safe", "0", "-auto_convert", "0", "-i", path_str(&list)]));
        args.extend(strings(&["-i", path_str(&audio), "-map", "0:v:0", "-map", "1:a:0"]));
        args.extend(strings(&["-c", "copy", "-movflags", "+faststart", path_str(&by_hand)]));
        recipe.push(measure(&Run::new(&ffmpeg_path(), args)));
    }
    let bytes = file_size(&joined);
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_file(&joined);
    let _ = std::fs::remove_file(&by_hand);

    println!();
    println!("## join: {segments} segments of 10 s joined back with the audio into an MP4");
    println!();
    println!(
        "input: {} ({:.1} MB), joined: {:.1} MB",
        input.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        file_size(&input) as f64 / 1e6,
        bytes as f64 / 1e6
    );
    println!("ffmpeg: {}", ffmpeg_version());
    println!(
        "{runs} runs each, alternating; load average before: {load}, after: {}",
        load_average()
    );
    let row = |label: &str, s: &[Sample]| {
        vec![
            label.to_string(),
            seconds(Some(wall_median(s))),
            seconds(Some(wall_min(s))),
            seconds(cpu_median(s)),
            mib(tree_rss_max(s)),
            megabytes(scratch_max(s)),
        ]
    };
    print_table(
        &[
            "command",
            "wall (median)",
            "wall (min)",
            "cpu (median)",
            "peak RSS (tree)",
            "scratch peak",
        ],
        &[row("ffmpeg concat recipe", &recipe), row("splitter join", &join)],
    );
    println!(
        "join / recipe (median wall): {}",
        ratio(Some(wall_median(&join)), Some(wall_median(&recipe)))
    );
}
