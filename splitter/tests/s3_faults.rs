//! The S3 path under real faults: the splitter talks to a real `moto_server` through the
//! fault-injecting loopback proxy of `support::fault_proxy` (dropped connections before and
//! after the request took effect, 503 SlowDown, stalls past the read timeout, bodies cut short).
//! What is checked is independent of the splitter's own code: the proxy's count of the faults
//! it injected, the objects in moto read directly (not through the proxy), and the segments
//! decoded by the host's ffmpeg against the source.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::fault_proxy::{Fault, FaultPlan, FaultProxy, Methods};
use support::*;

fn video() -> PathBuf {
    s3_video()
}

/// Runs the splitter against the proxy (`extra`: more environment, e.g. the limits).
fn run_via(moto: &Moto, proxy: &FaultProxy, args: &[&str], extra: &[(&str, &str)]) -> Run {
    run_against(moto, &proxy.endpoint(), args, extra)
}

/// The splitter's retry log lines.
fn retries(run: &Run) -> Vec<Value> {
    run.json_logs().into_iter().filter(|l| l["message"] == "S3 request failed; retrying").collect()
}

/// Objects under a prefix with their `x-amz-meta-sha256`, read directly from moto.
async fn stored(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in list_keys(client, bucket, prefix).await {
        let head = client.head_object().bucket(bucket).key(&key).send().await.expect("head");
        let sha = head.metadata().and_then(|m| m.get("sha256")).cloned().unwrap_or_default();
        out.push((key, sha));
    }
    out
}

#[tokio::test]
async fn a_third_of_requests_failing_still_gives_a_complete_frame_exact_output() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "videos").await;
    create_bucket(&client, "out").await;
    let src = video();
    put_file(&client, "videos", "movie.mp4", &src).await;
    let plan = |seed| FaultPlan {
        seed,
        rate: 0.3,
        methods: Methods::All,
        faults: vec![
            Fault::DropBeforeBody,
            Fault::DropAfterBody,
            Fault::DropAfterForward,
            Fault::SlowDown503,
            Fault::Stall(Duration::from_secs(4)),
            Fault::TruncateBody,
        ],
    };
    // A seed whose first 14 decisions (fewer requests than a run sends, whatever order they
    // arrive in) hold at least 4 faults of at least 3 kinds.
    let seed = (0..10_000)
        .find(|&seed| {
            let faults: Vec<Fault> = (0..14).filter_map(|i| plan(seed).decide(i)).collect();
            let mut kinds: Vec<&str> = faults.iter().map(Fault::name).collect();
            kinds.sort_unstable();
            kinds.dedup();
            faults.len() >= 4 && kinds.len() >= 3
        })
        .expect("a seed");
    let proxy = FaultProxy::start(moto.port, plan(seed));
    let out = run_via(
        &moto,
        &proxy,
        &["split", "s3://videos/movie.mp4", "s3://out/job", "--segment-seconds", "1"],
        &[("SPLITTER_S3_READ_TIMEOUT_SECONDS", "1")],
    );
    out.assert_ok();
    let stats = proxy.stats();
    assert!(stats.total_faults() >= 4, "faults injected: {:?}", stats.faults);
    assert!(stats.faults.len() >= 3, "several kinds of fault: {:?}", stats.faults);

    // Each retry is logged once, with its attempt number (2 or more).
    let retried = retries(&out);
    assert!(!retried.is_empty());
    for line in &retried {
        assert!(line["attempt"].as_u64().is_some_and(|a| a >= 2), "{line}");
        assert_eq!(line["level"], "WARN");
    }
    // Nothing else is a warning: no SDK noise about checksums it cannot validate.
    let logs = out.json_logs();
    let warnings: Vec<&Value> = logs
        .iter()
        .filter(|l| l["level"] == "WARN" && l["message"] != "S3 request failed; retrying")
        .collect();
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");

    // The result, read directly from moto: complete, frame-exact, and it verifies.
    proxy.set_plan(FaultPlan::none());
    let manifest = manifest_at(&client, "out", "job").await.expect("manifest written");
    assert_eq!(manifest["source"]["sha256"], sha256_file(&src).as_str());
    let local = TempDir::new("faults-30");
    download_prefix(&client, "out", "job", local.path()).await;
    assert_frame_exact(&src, local.path());
    let verify = run_via(&moto, &proxy, &["verify", "s3://out/job"], &[]);
    verify.assert_ok();
}

/// PUTs of segment 4 and later: the plan that breaks a split part-way.
fn later_segment_puts(method: &str, target: &str) -> bool {
    method == "PUT"
        && target.split('?').next().and_then(|p| p.rsplit('/').next()).is_some_and(|name| {
            name.strip_suffix(".mp4").and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n >= 4)
        })
}

#[tokio::test]
async fn a_fault_on_every_request_fails_cleanly_and_a_rerun_uploads_only_what_is_missing() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "out").await;
    let src = video();
    let s = path_str(&src);
    let limits = [("SPLITTER_S3_MAX_ATTEMPTS", "3")];

    // Every request fails: the first one (removing a stale manifest) gives up after 3 attempts.
    let proxy = FaultProxy::start(moto.port, FaultPlan::always(Methods::All, Fault::SlowDown503));
    let failed = run_via(&moto, &proxy, &["split", s, "s3://out/job"], &limits);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(failed.stderr.contains("SlowDown") && failed.stderr.contains("after 3 attempts"));
    assert_eq!(proxy.stats().requests, 3, "3 attempts, then it stops");
    assert_eq!(retries(&failed).len(), 2);
    assert!(list_keys(&client, "out", "").await.is_empty());

    // Connections dropped on every PUT of segment 4 and later (the request never reaches S3).
    proxy.set_plan(FaultPlan::always(Methods::Matching(later_segment_puts), Fault::DropAfterBody));
    proxy.reset_stats();
    let args = ["split", s, "s3://out/job", "--segment-seconds", "1"];
    let failed = run_via(&moto, &proxy, &args, &limits);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let errors: Vec<Value> =
        failed.json_logs().into_iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "one error line:\n{}", failed.stderr);
    let text = errors[0]["message"].as_str().expect("message");
    assert!(
        text.contains("uploading s3://out/job/segments/0000") && text.contains("after 3 attempts"),
        "{text}"
    );
    assert!(manifest_at(&client, "out", "job").await.is_none(), "no manifest");
    let before = stored(&client, "out", "job/").await;
    assert!(!before.is_empty(), "segments 0-3 were uploaded while ffmpeg cut the rest");
    assert!(before.iter().all(|(k, _)| !later_segment_puts("PUT", k)));

    // Without faults, the same run completes and sends only what is missing.
    proxy.set_plan(FaultPlan::none());
    proxy.reset_stats();
    let rerun = run_via(&moto, &proxy, &args, &[]);
    rerun.assert_ok();
    let manifest = manifest_at(&client, "out", "job").await.expect("manifest");
    let listed = digests(&manifest);
    let already = listed
        .iter()
        .filter(|(path, sha)| before.contains(&(format!("job/{path}"), sha.to_string())))
        .count();
    assert_eq!(already, before.len());
    assert_eq!(rerun.completion()["skipped_existing"].as_u64(), Some(already as u64));
    let puts = proxy.stats().events.iter().filter(|e| e.method == "PUT").count();
    assert_eq!(puts, listed.len() - already + 1, "missing files and the manifest, nothing else");
    let local = TempDir::new("faults-rerun");
    download_prefix(&client, "out", "job", local.path()).await;
    assert_frame_exact(&src, local.path());
}

#[tokio::test]
async fn a_stalled_answer_times_out_and_the_error_says_so() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "out").await;
    let src = video();
    let proxy = FaultProxy::start(
        moto.port,
        FaultPlan::always(Methods::All, Fault::Stall(Duration::from_secs(60))),
    );
    let failed = run_via(
        &moto,
        &proxy,
        &["split", path_str(&src), "s3://out/job"],
        &[("SPLITTER_S3_MAX_ATTEMPTS", "2"), ("SPLITTER_S3_READ_TIMEOUT_SECONDS", "1")],
    );
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(failed.stderr.to_lowercase().contains("timeout"), "{}", failed.stderr);
    assert!(failed.stderr.contains("after 2 attempts"), "{}", failed.stderr);
    assert_eq!(proxy.stats().injected("Stall"), 2);
    assert!(list_keys(&client, "out", "").await.is_empty());
}

#[tokio::test]
async fn a_download_cut_short_resumes_where_it_broke() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "videos").await;
    // Index first: the download's GETs are the only ones (an index at the end is fetched
    // with a GET of its own first, which would take part in the fault plan).
    let src = derived("s3-video-faststart", "mp4", &video(), |src, dest| {
        ffmpeg(&["-i", path_str(src), "-c", "copy", "-movflags", "+faststart", path_str(dest)]);
    });
    put_file(&client, "videos", "movie.mp4", &src).await;
    // Every GET's body cut in half: each attempt gets further (ranged GETs from the byte reached).
    let proxy = FaultProxy::start(moto.port, resumes(2));
    let dir = TempDir::new("resume");
    let out = run_via(
        &moto,
        &proxy,
        &["split", "s3://videos/movie.mp4", path_str(&dir.join("out"))],
        &[("SPLITTER_S3_MAX_ATTEMPTS", "20")],
    );
    out.assert_ok();
    let truncated = proxy.stats().injected("TruncateBody");
    assert_eq!(truncated, 2, "{:?}", proxy.stats().faults);
    let resumed: Vec<Value> = retries(&out)
        .into_iter()
        .filter(|l| l["request"].as_str().is_some_and(|r| r.contains("resuming at byte")))
        .collect();
    assert_eq!(resumed.len(), truncated, "one resume per cut-short body");
    // Resumed downloads are ranged from the byte the splitter reached, not from zero: each
    // resume starts where the cut-short body ended, which the log names.
    let gets: Vec<Option<String>> = proxy
        .stats()
        .events
        .iter()
        .filter(|e| e.method == "GET")
        .map(|e| e.range.clone())
        .collect();
    let reached: Vec<String> = resumed
        .iter()
        .map(|l| {
            let request = l["request"].as_str().expect("request");
            let byte = request.rsplit("resuming at byte ").next().expect("byte");
            format!("bytes={}-", byte.trim_end_matches(')'))
        })
        .collect();
    assert_eq!(gets.len(), truncated + 1);
    assert_eq!(gets[0], None, "the first GET asks for the whole object");
    let later: Vec<String> = gets[1..].iter().map(|r| r.clone().expect("a Range header")).collect();
    assert_eq!(later, reached);
    let size = std::fs::metadata(&src).expect("stat").len();
    let starts: Vec<u64> = later
        .iter()
        .map(|r| r["bytes=".len()..r.len() - 1].parse().expect("a byte offset"))
        .collect();
    assert!(starts[0] > 0 && starts[0] < starts[1] && starts[1] < size, "{starts:?} of {size}");
    let manifest = read_manifest(&dir.join("out"));
    assert_eq!(manifest["source"]["sha256"], sha256_file(&src).as_str());
    assert_frame_exact(&src, &dir.join("out"));
}

/// CompleteMultipartUpload requests (POST with an uploadId, no part number).
fn completions(method: &str, target: &str) -> bool {
    method == "POST" && target.contains("uploadId=") && !target.contains("partNumber=")
}

#[tokio::test]
async fn a_lost_completion_answer_counts_as_done_when_the_object_is_there() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "out").await;
    // ~12 MB in one segment: a multipart upload.
    let src = noise_12mb();
    // The first completion takes effect but its answer is lost; the retry is told the upload
    // does not exist (as S3 answers once it completed). moto itself answers a repeated
    // completion with 200, so the proxy gives S3's answer.
    let proxy = FaultProxy::start(
        moto.port,
        sequence(completions, &[Fault::DropAfterForward, Fault::NoSuchUpload404]),
    );
    let args = |key: &'static str| {
        [
            "split".to_string(),
            path_str(&src).to_string(),
            format!("s3://out/{key}"),
            "--segment-seconds".into(),
            "100".into(),
            "--part-size-mib".into(),
            "5".into(),
        ]
    };
    let argv = args("big");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = run_via(&moto, &proxy, &argv, &[]);
    out.assert_ok();
    assert_eq!(proxy.stats().injected("DropAfterForward"), 1);
    assert_eq!(proxy.stats().injected("NoSuchUpload404"), 1);
    let logs = out.json_logs();
    assert!(
        logs.iter()
            .any(|l| l["message"]
                == "an earlier attempt completed the upload (size and sha256 match)"),
        "the retry found the upload gone and checked the object:\n{}",
        out.stderr
    );
    let manifest = manifest_at(&client, "out", "big").await.expect("manifest");
    for (key, sha) in stored(&client, "out", "big/").await {
        if let Some(expected) = digests(&manifest).get(key.trim_start_matches("big/")) {
            assert_eq!(&sha, expected, "{key}");
        }
    }
    let local = TempDir::new("faults-multipart");
    download_prefix(&client, "out", "big", local.path()).await;
    assert_frame_exact(&src, local.path());

    // The same answers when the first completion never reached S3: the object is not there, so
    // the upload is not counted as done.
    let proxy = FaultProxy::start(
        moto.port,
        sequence(completions, &[Fault::DropAfterBody, Fault::NoSuchUpload404]),
    );
    let argv = args("lost");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let failed = run_via(&moto, &proxy, &argv, &[]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(failed.stderr.contains("the upload is gone and the object is not there"));
    assert!(list_keys(&client, "out", "lost/").await.is_empty());
}

/// A plan whose first faults on `methods` are exactly `faults`, in order (found by seed).
fn sequence(methods: fn(&str, &str) -> bool, faults: &[Fault]) -> FaultPlan {
    let plan = |seed| FaultPlan {
        seed,
        rate: 1.0,
        methods: Methods::Matching(methods),
        faults: faults.to_vec(),
    };
    let seed = (0..100_000)
        .find(|&seed| {
            faults.iter().enumerate().all(|(i, f)| plan(seed).decide(i as u64) == Some(*f))
        })
        .expect("a seed giving that sequence");
    plan(seed)
}

/// A plan that cuts the first `n` GET bodies short and leaves the rest alone.
fn resumes(n: u64) -> FaultPlan {
    let plan = |seed| FaultPlan {
        seed,
        rate: 0.5,
        methods: Methods::Only(&["GET"]),
        faults: vec![Fault::TruncateBody],
    };
    let seed = (0..100_000)
        .find(|&seed| {
            (0..n).all(|i| plan(seed).decide(i).is_some()) && plan(seed).decide(n).is_none()
        })
        .expect("a seed");
    plan(seed)
}

/// 16 s of 320x240 noise, a keyframe every second: sixteen segments of about 3 MB.
fn noise_16s() -> PathBuf {
    noise_video("noise-16s-gop25", "16", "25")
}

/// Bytes of the files under `dir` (recursively), 0 for what vanished while walking.
fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Runs a split of `src` into s3://out/`prefix` through `proxy` with the work directory in
/// `work`, sampling the work directory's size every 5 ms; returns the run and the peak.
fn split_sampling_scratch(
    moto: &Moto,
    proxy: &FaultProxy,
    src: &std::path::Path,
    prefix: &str,
    work: &TempDir,
    backlog_mib: &str,
) -> (Run, u64) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, dir) = (std::sync::Arc::clone(&done), work.path().to_path_buf());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(tree_bytes(&dir));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let output = format!("s3://out/{prefix}");
    // ffmpeg reading at 20x real time (a segment every 50 ms): how far it runs on while a pause
    // is on its way no longer depends on how busy the machine is.
    let ffmpeg = work.join("ffmpeg-at-20x");
    write_script(
        &ffmpeg,
        "#!/bin/sh\nexec \"${SPLITTER_TEST_FFMPEG:-ffmpeg}\" -readrate 20 \"$@\"\n",
    );
    let run = run_via(
        moto,
        proxy,
        &["split", path_str(src), &output, "--segment-seconds", "1"],
        &[
            ("SPLITTER_FFMPEG", path_str(&ffmpeg)),
            ("SPLITTER_WORK_DIR", path_str(work.path())),
            ("SPLITTER_UPLOAD_BACKLOG_MIB", backlog_mib),
        ],
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (run, sampler.join().expect("sampler"))
}

#[tokio::test]
async fn the_cut_pauses_while_segments_wait_for_slow_uploads() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "out").await;
    let src = noise_16s();
    // Every write answered a second late: at most 4 uploads a second (the default
    // concurrency), while ffmpeg writes 20 segments a second.
    let proxy = FaultProxy::start(
        moto.port,
        FaultPlan::always(Methods::Writes, Fault::Delay(Duration::from_millis(1000))),
    );
    let (held_work, free_work) = (TempDir::new("backlog-held"), TempDir::new("backlog-free"));
    let (held, held_peak) = split_sampling_scratch(&moto, &proxy, &src, "held", &held_work, "2");
    held.assert_ok();
    let (free, free_peak) = split_sampling_scratch(&moto, &proxy, &src, "free", &free_work, "1024");
    free.assert_ok();

    // The largest segment, read from the output (not from the splitter's logs).
    let manifest = manifest_at(&client, "out", "held").await.expect("manifest");
    let segments = manifest["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 16);
    let largest = segments.iter().map(|s| s["bytes"].as_u64().expect("bytes")).max().expect("max");
    let total: u64 = segments.iter().map(|s| s["bytes"].as_u64().expect("bytes")).sum();
    // Held: the backlog (2 MiB) plus a few segments. ffmpeg lists a segment as closed when
    // the next one has started, and runs on while the pause is being sent (at full speed,
    // measured: the backlog plus three closed segments and a part of the next one).
    let bound = (2 << 20) + 5 * largest;
    eprintln!("scratch peaks: held {held_peak}, free {free_peak}, bound {bound}, total {total}");
    assert!(
        held_peak <= bound,
        "scratch peaked at {held_peak} bytes with a 2 MiB backlog (bound {bound}; segments up to \
         {largest} bytes)"
    );
    // Planted contrast: with a backlog larger than the video, the cut runs ahead and most
    // segments wait on disk at once, so the sampling above can see a missing pause.
    assert!(
        free_peak > 2 * bound && free_peak * 10 >= total * 6,
        "without a pause the scratch should hold most of the {total} bytes of segments; it \
         peaked at {free_peak} (bound {bound})"
    );
    assert_eq!(
        digests(&manifest),
        digests(&manifest_at(&client, "out", "free").await.expect("manifest")),
        "the same output either way"
    );
    let local = TempDir::new("backlog-out");
    download_prefix(&client, "out", "held", local.path()).await;
    assert_frame_exact(&src, local.path());
}
