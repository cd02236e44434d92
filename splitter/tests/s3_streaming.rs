//! An S3 input read while it downloads: moto behind the loopback proxy of
//! `support::fault_proxy`, which slows the download down (64 KiB pieces with pauses) so the
//! order of events can be seen in the splitter's logs. The outputs are checked against the
//! source with the host's ffmpeg, and against a run that downloads first (`--sequential`).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::fault_proxy::{Fault, FaultPlan, FaultProxy, Methods};
use support::*;

/// 8 s of noisy 320x240 H.264 (lossless, ~24 MB: more than the head the probe waits for, the
/// index plus 16 MiB) + AAC, a keyframe every second, index first.
fn fast_start_mp4() -> PathBuf {
    fixture(
        "stream-noise-24mb",
        "mp4",
        &[
            "-f",
            "lavfi",
            "-t",
            "8",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-t",
            "8",
            "-i",
            "sine=sample_rate=48000",
            "-vf",
            "noise=alls=30:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    )
}

/// The same streams remuxed (`-c copy`), e.g. into Matroska, MPEG-TS, or MP4 with the index
/// at the end.
fn remuxed(name: &str, ext: &str, extra: &'static [&'static str]) -> PathBuf {
    derived(name, ext, &fast_start_mp4(), |src, dest| {
        let mut args = vec!["-i", path_str(src), "-map", "0", "-c", "copy"];
        args.extend_from_slice(extra);
        args.push(path_str(dest));
        ffmpeg(&args);
    })
}

fn run_via(moto: &Moto, proxy: &FaultProxy, args: &[&str], extra: &[(&str, &str)]) -> Run {
    run_against(moto, &proxy.endpoint(), args, extra)
}

/// The timestamp of the first log line with this message (RFC 3339 UTC, one format: text
/// order is time order).
fn first(run: &Run, message: &str) -> String {
    run.json_logs()
        .iter()
        .find(|l| l["message"] == message)
        .and_then(|l| l["timestamp"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {message:?} in:\n{}", run.stderr))
}

fn logged(run: &Run, message: &str) -> Vec<Value> {
    run.json_logs().into_iter().filter(|l| l["message"] == message).collect()
}

/// ffprobe's duration of a file, read independently of the splitter.
fn duration(path: &Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a duration")
}

/// A slow link for downloads: 64 KiB pieces, 5 ms apart (~13 MB/s: 24 MB in ~2 s).
fn slow_gets() -> FaultPlan {
    FaultPlan::always(Methods::Only(&["GET"]), Fault::SlowBody(Duration::from_millis(5)))
}

#[tokio::test]
async fn an_input_read_front_to_back_is_cut_while_it_downloads() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "videos").await;
    let inputs = [
        ("clip.mp4", fast_start_mp4()),
        ("clip.mkv", remuxed("stream-mkv", "mkv", &[])),
        ("clip.ts", remuxed("stream-ts", "ts", &[])),
        // The index after the media data: fetched with a ranged GET, fed in front of it.
        ("late.mp4", remuxed("stream-index-last", "mp4", &["-movflags", "-faststart"])),
    ];
    for (key, path) in &inputs {
        put_file(&client, "videos", key, path).await;
    }
    let proxy = FaultProxy::start(moto.port, slow_gets());
    for (key, src) in &inputs {
        let input = format!("s3://videos/{key}");
        let dir = TempDir::new(&format!("streamed-{key}"));
        let (streamed, sequential) = (dir.join("streamed"), dir.join("sequential"));
        let args = ["split", &input, path_str(&streamed), "--segment-seconds", "1"];
        let run = run_via(&moto, &proxy, &args, &[]);
        run.assert_ok();
        assert_eq!(logged(&run, "reading the input while it downloads").len(), 1, "{key}");
        assert!(
            first(&run, "segment written") < first(&run, "downloaded"),
            "{key}: ffmpeg cut while the input arrived:\n{}",
            run.stderr
        );
        let manifest = read_manifest(&streamed);
        assert_eq!(manifest["source"]["sha256"], sha256_file(src).as_str(), "{key}");
        let recorded = manifest["source"]["duration_seconds"].as_f64().expect("duration");
        assert!((recorded - duration(src)).abs() < 1e-6, "{key}: {recorded} vs ffprobe");
        assert_frame_exact(src, &streamed);

        // Downloaded first: the same files.
        let args =
            ["split", &input, path_str(&sequential), "--segment-seconds", "1", "--sequential"];
        let run = run_via(&moto, &proxy, &args, &[]);
        run.assert_ok();
        assert!(first(&run, "downloaded") < first(&run, "segment written"), "{key}");
        assert_eq!(digests(&read_manifest(&sequential)), digests(&manifest), "{key}");
    }
}

#[tokio::test]
async fn a_container_that_cannot_be_read_front_to_back_is_downloaded_first() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "videos").await;
    let src = remuxed("stream-avi", "avi", &[]);
    put_file(&client, "videos", "clip.avi", &src).await;
    let proxy = FaultProxy::start(moto.port, slow_gets());
    let dir = TempDir::new("avi");
    let run = run_via(&moto, &proxy, &["split", "s3://videos/clip.avi", path_str(dir.path())], &[]);
    run.assert_ok();
    let waited = logged(&run, "downloading the whole input before reading it");
    assert_eq!(waited.len(), 1);
    assert_eq!(waited[0]["reason"], "its container is read after the download");
    assert!(first(&run, "downloaded") < first(&run, "segment written"));
    assert_frame_exact(&src, dir.path());
}

#[tokio::test]
async fn a_download_that_fails_while_ffmpeg_reads_it_is_the_error_reported() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "videos").await;
    let src = remuxed("stream-mkv", "mkv", &[]);
    let size = std::fs::metadata(&src).expect("stat").len();
    assert!(size > 20 << 20, "fixture is {size} bytes");
    put_file(&client, "videos", "big.mkv", &src).await;
    // Every body cut in half: 1/2, 3/4, 7/8 of the file arrive, then the attempts run out.
    let proxy = FaultProxy::start(
        moto.port,
        FaultPlan::always(Methods::Only(&["GET"]), Fault::TruncateBody),
    );
    let dir = TempDir::new("stream-fails");
    let out = dir.join("out");
    let run = run_via(
        &moto,
        &proxy,
        &["split", "s3://videos/big.mkv", path_str(&out), "--segment-seconds", "1"],
        &[("SPLITTER_S3_MAX_ATTEMPTS", "3"), ("SPLITTER_LOG_FORMAT", "text")],
    );
    assert!(run.stderr.contains("reading the input while it downloads"), "{}", run.stderr);
    run.assert_fails(3, "reading s3://videos/big.mkv failed at byte");
    assert!(run.stderr.contains("(after 3 attempts)"));
    assert!(!out.join("manifest.json").exists());
}

#[tokio::test]
async fn an_index_fetched_ahead_that_the_download_contradicts_fails_the_split() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "videos").await;
    let src = remuxed("stream-index-last", "mp4", &["-movflags", "-faststart"]);
    put_file(&client, "videos", "late.mp4", &src).await;
    // GET 0 is the download, GET 1 the index fetched from the end: its last byte (inside the
    // encoder tag ffmpeg writes last in `moov`, harmless to the cut) differs from the
    // object's, as when the object is replaced between the two reads.
    let plan = |seed| FaultPlan {
        seed,
        rate: 0.5,
        methods: Methods::Only(&["GET"]),
        faults: vec![Fault::FlipLastByte],
    };
    let seed = (0..100_000)
        .find(|&seed| plan(seed).decide(0).is_none() && plan(seed).decide(1).is_some())
        .expect("a seed");
    let proxy = FaultProxy::start(moto.port, plan(seed));
    let dir = TempDir::new("index-changed");
    let out = dir.join("out");
    let run = run_via(&moto, &proxy, &["split", "s3://videos/late.mp4", path_str(&out)], &[]);
    assert_eq!(proxy.stats().injected("FlipLastByte"), 1, "{:?}", proxy.stats().faults);
    assert_eq!(logged(&run, "reading the input while it downloads").len(), 1);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let errors: Vec<Value> =
        run.json_logs().into_iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    let message = errors[0]["message"].as_str().expect("message");
    assert!(message.contains("changed while it was being downloaded"), "{message}");
    assert!(!out.join("manifest.json").exists(), "no manifest");
}
