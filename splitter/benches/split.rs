//! `cargo bench -p splitter --bench split`: bare ffmpeg segmenting vs the whole splitter.
//!
//! Generates once (cached under `target/splitter-bench/`) a ≥ 500 MB, 2-minute 1080p
//! H.264 + AAC MP4, then times, side by side and alternating, the bare recipe
//! (`ffmpeg -i big.mp4 -map 0:v:0 -c copy -f segment -segment_time 10 -reset_timestamps 1`)
//! and `splitter split big.mp4 out --segment-seconds 10` (probe, cut, audio, sha256, manifest),
//! and prints a table: wall and CPU times, the ratio, and peak memory.
//!
//! Options (after `--`): `--runs N` (default 5). `SPLITTER_FFMPEG`/`SPLITTER_FFPROBE` pick
//! the ffmpeg build for both sides.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const SECONDS: &str = "120";
const MIN_BYTES: u64 = 500 * 1024 * 1024;

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

fn generate_args() -> Vec<String> {
    [
        "-f",
        "lavfi",
        "-t",
        SECONDS,
        "-i",
        "testsrc2=size=1920x1080:rate=25",
        "-f",
        "lavfi",
        "-t",
        SECONDS,
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn big_file() -> PathBuf {
    use sha2::Digest;
    let dir = target_dir();
    std::fs::create_dir_all(&dir).expect("bench dir");
    let key: String = sha2::Sha256::digest(generate_args().join(" ").as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(format!("big-1080p-h264-aac-{key}.mp4"));
    if path.exists() {
        return path;
    }
    // Generated with the host's full ffmpeg (encoders), whatever build is benchmarked.
    eprintln!("generating {} once (x264 ultrafast, a few minutes on 2 cores)…", path.display());
    let tmp = dir.join("generating.mp4");
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(generate_args())
        .arg(&tmp)
        .status()
        .expect("run ffmpeg (install it, or run `cargo xtask test` once)");
    assert!(status.success(), "generating the benchmark input failed");
    std::fs::rename(&tmp, &path).expect("rename");
    eprintln!("generated in {:.0} s", started.elapsed().as_secs_f64());
    path
}

#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: Option<f64>,
    /// Peak RSS of the largest process in the tree (GNU time's %M), KiB.
    tree_rss_kib: Option<u64>,
    /// The splitter's own peak RSS (its final log line), KiB.
    self_rss_kib: Option<u64>,
}

/// Runs a command under GNU time when available; returns timings.
fn measure(program: &str, args: &[String], json_stderr: bool) -> Sample {
    let gnu_time = Path::new("/usr/bin/time").exists();
    let stats = target_dir().join("time.txt");
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-o").arg(&stats).args(["-f", "%U %S %M", program]);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().expect("run");
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} failed:\n{stderr}");
    let mut sample = Sample { wall, ..Sample::default() };
    if gnu_time {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if f.len() == 3 {
            sample.cpu = Some(f[0] + f[1]);
            sample.tree_rss_kib = Some(f[2] as u64);
        }
    }
    if json_stderr {
        sample.self_rss_kib = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "split complete")
            .and_then(|v| v["peak_rss_kib"].as_u64());
    }
    sample
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}{unit}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; ignore it and anything unknown.
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    let input = big_file();
    let bytes = std::fs::metadata(&input).expect("stat").len();
    assert!(bytes >= MIN_BYTES, "benchmark input is only {bytes} bytes");
    let ffmpeg = ffmpeg_path();
    let version = Command::new(&ffmpeg)
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    // Warm the page cache so both sides read from memory.
    let _ = std::io::copy(&mut std::fs::File::open(&input).expect("open"), &mut std::io::sink());

    let work = target_dir().join("runs");
    let splitter = env!("CARGO_BIN_EXE_splitter");
    let mut bare = Vec::new();
    let mut ours = Vec::new();
    let mut segments = 0;
    for run in 0..runs {
        for side in 0..2 {
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).expect("work dir");
            if side == 0 {
                let pattern = work.join("seg%03d.mp4");
                let mut a: Vec<String> =
                    ["-nostdin", "-hide_banner", "-loglevel", "error"].map(String::from).to_vec();
                a.extend(
                    splitter::cut::common_recipe(&input, "10", &pattern)
                        .into_iter()
                        .map(|s| s.to_string_lossy().into_owned()),
                );
                bare.push(measure(&ffmpeg, &a, false));
            } else {
                let out = work.join("out");
                let a: Vec<String> = [
                    "split",
                    input.to_str().expect("utf-8"),
                    out.to_str().expect("utf-8"),
                    "--segment-seconds",
                    "10",
                    "--log-format",
                    "json",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                ours.push(measure(splitter, &a, true));
                let manifest: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(out.join("manifest.json")).expect("manifest"),
                )
                .expect("json");
                segments = manifest["segments"].as_array().map_or(0, Vec::len);
            }
        }
        eprintln!(
            "run {}/{runs}: bare {:.2} s, splitter {:.2} s",
            run + 1,
            bare[run].wall,
            ours[run].wall
        );
    }
    let _ = std::fs::remove_dir_all(&work);

    let wall = |s: &[Sample]| median(s.iter().map(|x| x.wall).collect());
    let min_wall = |s: &[Sample]| s.iter().map(|x| x.wall).fold(f64::INFINITY, f64::min);
    let cpu = |s: &[Sample]| {
        let v: Vec<f64> = s.iter().filter_map(|x| x.cpu).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let tree = |s: &[Sample]| s.iter().filter_map(|x| x.tree_rss_kib).max();
    let own = ours.iter().filter_map(|x| x.self_rss_kib).max();
    let mib = |k: Option<u64>| k.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    println!();
    println!(
        "input: {} ({:.1} MB = {:.1} MiB, 1080p H.264 + AAC, {SECONDS} s) -> {segments} segments",
        input.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        bytes as f64 / 1e6,
        bytes as f64 / 1048576.0
    );
    println!("ffmpeg: {version}");
    println!("runs: {runs} each, alternating; load average before: {}", load.trim());
    println!();
    println!(
        "| command                               | wall median | wall min | CPU median | peak RSS (largest process) | splitter's own peak RSS |"
    );
    println!(
        "|---------------------------------------|-------------|----------|------------|----------------------------|-------------------------|"
    );
    println!(
        "| ffmpeg -f segment (bare recipe)       | {:>9.2} s | {:>6.2} s | {:>10} | {:>26} | {:>23} |",
        wall(&bare),
        min_wall(&bare),
        fmt_opt(cpu(&bare), " s"),
        mib(tree(&bare)),
        "-"
    );
    println!(
        "| splitter split (probe, cut, sha256…)  | {:>9.2} s | {:>6.2} s | {:>10} | {:>26} | {:>23} |",
        wall(&ours),
        min_wall(&ours),
        fmt_opt(cpu(&ours), " s"),
        mib(tree(&ours)),
        mib(own)
    );
    println!();
    let cpu_ratio = match (cpu(&ours), cpu(&bare)) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "n/a".into(),
    };
    println!(
        "ratio splitter/bare: wall median {:.2} (goal <= 1.5), wall min {:.2}, CPU {cpu_ratio}",
        wall(&ours) / wall(&bare),
        min_wall(&ours) / min_wall(&bare)
    );
    println!("splitter's own peak RSS: {} (goal <= 64 MiB)", mib(own));
}
