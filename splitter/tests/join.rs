//! `splitter join`: split → the README's example worker (2× upscale, x264 at a constant 25
//! fps) on every segment → join; then the joined file is checked against the source with the
//! host's ffmpeg and ffprobe (decoded frame count and timestamps, audio packets, the
//! audio/video offset), never with the splitter's own code. Refusals, the identity join and
//! S3 are here too.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn worker_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/upscale-worker.sh")
}

/// Runs the example worker on every segment of the split at `split` into `processed`
/// (`NNNNNN.mkv`); `frames_delta` changes how many frames it keeps (refusal tests).
fn process(split: &Path, processed: &Path, frames_delta: i64) {
    std::fs::create_dir_all(processed).expect("processed dir");
    let manifest = read_manifest(split);
    for segment in manifest["segments"].as_array().expect("segments") {
        let index = segment["index"].as_u64().expect("index");
        let frames = segment["frames"].as_i64().expect("frames") + frames_delta;
        let out = Command::new("sh")
            .arg(worker_script())
            .arg(split.join(segment["path"].as_str().expect("path")))
            .arg(segment["lead_in_frames"].as_u64().expect("lead_in").to_string())
            .arg(frames.to_string())
            .arg(processed.join(format!("{index:06}.mkv")))
            .output()
            .expect("run the worker");
        assert!(out.status.success(), "worker: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The splitter with text logs (errors as one `error:` line).
fn text_run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec!["--log-format", "text"];
    all.extend_from_slice(args);
    splitter(&all, env)
}

fn join(split: &Path, processed: &Path, output: &Path) -> Run {
    text_run(&["join", path_str(split), path_str(processed), path_str(output)], &[])
}

fn ffprobe_lines(args: &[&str], path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe {args:?} {}", path.display());
    // Side data (x264's SEI, say) prints as rows of its own: only the asked-for values count.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Presentation times of the frames a decode of the first video stream outputs.
fn frame_times(path: &Path) -> Vec<String> {
    ffprobe_lines(&["-select_streams", "v:0", "-show_entries", "frame=pts_time"], path)
}

/// start_time of every audio stream minus the video's, in microseconds.
fn audio_offsets(path: &Path) -> Vec<i64> {
    let start = |spec: &str| -> Vec<f64> {
        ffprobe_lines(&["-select_streams", spec, "-show_entries", "stream=start_time"], path)
            .iter()
            .map(|s| s.parse().expect("start_time"))
            .collect()
    };
    let video = start("v:0")[0];
    start("a").iter().map(|a| ((a - video) * 1e6).round() as i64).collect()
}

/// The md5 of every packet of audio stream `index` (stream copy, no timestamps).
fn audio_packets(path: &Path, index: usize) -> Vec<String> {
    framemd5_lines(path, &format!("0:a:{index}"))
        .iter()
        // stream, dts, pts, duration, size, md5 of the data[, side data]
        .map(|l| l.split(',').nth(5).unwrap_or("").trim().to_string())
        .collect()
}

/// The packet lines (`framemd5`, stream copy) of the stream `map` selects.
fn framemd5_lines(path: &Path, map: &str) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", map, "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn languages(path: &Path) -> Vec<String> {
    ffprobe_lines(&["-select_streams", "a", "-show_entries", "stream_tags=language"], path)
}

/// ffmpeg's own remux of `src` into `ext` (the reference for a container's timing: Matroska
/// cannot start before 0, so audio priming moves every stream by the same amount).
fn remuxed(src: &Path, ext: &str) -> PathBuf {
    derived(&format!("remux-{ext}"), ext, src, |src, dst| {
        ffmpeg(&[
            "-i",
            path_str(src),
            "-map",
            "0:v:0",
            "-map",
            "0:a?",
            "-c",
            "copy",
            path_str(dst),
        ]);
    })
}

/// Split, process, join into `ext`; every check against the source. Returns the work dir.
fn round_trip(src: &Path, name: &str, seconds: &str, ext: &str) -> TempDir {
    round_trip_with(src, name, seconds, ext, &[])
}

/// [`round_trip`] with more `split` arguments.
fn round_trip_with(src: &Path, name: &str, seconds: &str, ext: &str, more: &[&str]) -> TempDir {
    let dir = TempDir::new(name);
    let (split, processed) = (dir.join("split"), dir.join("processed"));
    let mut args = vec!["split", path_str(src), path_str(&split), "--segment-seconds", seconds];
    args.extend_from_slice(more);
    splitter(&args, &[]).assert_ok();
    process(&split, &processed, 0);
    let joined = dir.join(&format!("joined.{ext}"));
    let run = join(&split, &processed, &joined);
    run.assert_ok();
    let reference = if ext == "mp4" { src.to_path_buf() } else { remuxed(src, ext) };
    let want = frame_times(&reference);
    let got = frame_times(&joined);
    assert_eq!(got.len(), want.len(), "decoded frames");
    assert_eq!(got, want, "every frame at the source's timestamp");
    assert!(want.len() > 20, "a real video: {} frames", want.len());
    assert_eq!(audio_offsets(&joined), audio_offsets(&reference), "audio/video offsets (µs)");
    let tracks = audio_offsets(src).len();
    for i in 0..tracks {
        let (got, want) = (audio_packets(&joined, i), audio_packets(src, i));
        assert_eq!(got.len(), want.len(), "audio track {i}: packets");
        let first = got.iter().zip(&want).position(|(g, w)| g != w);
        assert_eq!(first, None, "audio track {i}: first packet that differs");
    }
    // A track without a language may come out as "und" (MP4's default).
    let named =
        |p: &Path| -> Vec<String> { languages(p).into_iter().filter(|l| l != "und").collect() };
    assert_eq!(named(&joined), named(src), "languages");
    // Upscaled: the worker's frames, not the source's.
    let size =
        ffprobe_lines(&["-select_streams", "v:0", "-show_entries", "stream=width,height"], &joined);
    assert_eq!(size, vec!["320,180".to_string()]);
    // Nothing but the joined file next to it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
    dir
}

fn h264_aac() -> PathBuf {
    encoded(
        "join-h264-aac",
        "mp4",
        "160x90",
        "6",
        "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 6 -c:v libx264 -g 25 -bf 3 \
         -pix_fmt yuv420p -c:a aac -b:a 64k",
    )
}

#[test]
fn closed_gop_h264_with_aac_to_mp4_and_mkv() {
    round_trip(&h264_aac(), "join-h264", "2", "mp4");
    round_trip(&h264_aac(), "join-h264-mkv", "2", "mkv");
}

fn hevc_open() -> PathBuf {
    encoded(
        "join-hevc-open",
        "mp4",
        "160x90",
        "6",
        "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 6 \
         -c:v libx265 -x265-params keyint=25:min-keyint=25:log-level=error -pix_fmt yuv420p \
         -c:a aac",
    )
}

#[test]
fn open_gop_hevc_with_lead_ins() {
    let dir = round_trip(&hevc_open(), "join-hevc", "1.5", "mp4");
    let manifest = read_manifest(&dir.join("split"));
    let lead_ins = manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter(|s| s["lead_in_frames"].as_u64() > Some(0))
        .count();
    assert!(lead_ins > 0, "the fixture must need lead-ins");
}

#[test]
fn context_frames_round_trip() {
    // Open GOPs (lead-ins) and B-frames, 8 context frames: the worker drops what the manifest
    // says and the join is the source's again.
    let dir =
        round_trip_with(&hevc_open(), "join-context", "1.5", "mp4", &["--context-frames", "8"]);
    let manifest = read_manifest(&dir.join("split"));
    let segments = manifest["segments"].as_array().expect("segments");
    let last = segments.len() - 1;
    for (i, s) in segments.iter().enumerate() {
        let (lead, trail) = (s["lead_in_frames"].as_u64(), s["trailing_frames"].as_u64());
        assert!(i == 0 || lead >= Some(8), "segment {i}: lead_in_frames {lead:?}");
        assert!(i == last || trail >= Some(8), "segment {i}: trailing_frames {trail:?}");
    }
    round_trip_with(&h264_aac(), "join-context-h264", "2", "mkv", &["--context-frames", "8"]);
}

#[test]
fn variable_frame_rate_keeps_its_timing() {
    // Irregular frame durations; the worker writes a constant 25 fps.
    let src = encoded(
        "join-vfr",
        "mp4",
        "160x90",
        "6",
        "-vf select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,5)\\,1))' -fps_mode vfr \
         -c:v libx264 -g 20 -pix_fmt yuv420p",
    );
    let times = frame_times(&src);
    let steps: std::collections::BTreeSet<String> = times
        .windows(2)
        .map(|w| {
            let d = w[1].parse::<f64>().expect("t") - w[0].parse::<f64>().expect("t");
            format!("{d:.3}")
        })
        .collect();
    assert!(steps.len() > 1, "the fixture must be VFR: {steps:?}");
    round_trip(&src, "join-vfr", "1.5", "mp4");
    round_trip(&src, "join-vfr-mkv", "1.5", "mkv");
}

#[test]
fn edit_list_source() {
    let src = derived("join-edit-list", "mp4", &h264_aac(), |src, dst| {
        ffmpeg(&["-ss", "1.3", "-i", path_str(src), "-c", "copy", "-t", "4", path_str(dst)]);
    });
    round_trip(&src, "join-edit", "1", "mp4");
}

#[test]
fn two_audio_tracks_with_languages() {
    let src = two_audio_tracks();
    round_trip(&src, "join-two-audio", "2", "mp4");
    round_trip(&src, "join-two-audio-mkv", "2", "mkv");
}

#[test]
fn audio_starting_before_the_video() {
    // The video starts 0.5 s after the audio (Matroska keeps both start times).
    let src = fixture(
        "join-late-video",
        "mkv",
        &[
            "-itsoffset",
            "0.5",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=25:duration=6",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=6",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
    );
    assert!(audio_offsets(&src)[0] < -400_000, "audio must start first: {:?}", audio_offsets(&src));
    round_trip(&src, "join-late-video", "2", "mkv");
    round_trip(&src, "join-late-video-mp4", "2", "mp4");
}

#[test]
fn rotation_is_the_sources() {
    let base = encoded("join-plain", "mov", "160x90", "4", "-c:v libx264 -g 25 -pix_fmt yuv420p");
    let src = derived("join-rotated", "mov", &base, |src, dst| {
        let mut data = std::fs::read(src).expect("read");
        let at = data.windows(4).position(|w| w == b"tkhd").expect("tkhd");
        let p = at + 8 + if data[at + 4] == 0 { 8 + 8 + 4 } else { 16 + 8 + 8 } + 16;
        let matrix: [i32; 9] = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
        for (i, v) in matrix.iter().enumerate() {
            data[p + 4 * i..p + 4 * i + 4].copy_from_slice(&v.to_be_bytes());
        }
        std::fs::write(dst, data).expect("write");
    });
    assert_eq!(probe_rotation(&src), -90.0);
    let dir = TempDir::new("join-rotated");
    let (split, processed) = (dir.join("split"), dir.join("processed"));
    split_ok(&src, &split, "1");
    process(&split, &processed, 0);
    let joined = dir.join("joined.mp4");
    join(&split, &processed, &joined).assert_ok();
    assert_eq!(probe_rotation(&joined), -90.0, "the source's rotation");
}

#[test]
fn colour_metadata_is_the_first_segments() {
    let dir = TempDir::new("join-colour");
    let (split, processed) = (dir.join("split"), dir.join("processed"));
    split_ok(&h264_aac(), &split, "2");
    process(&split, &processed, 0);
    // The worker tagged its output HDR10 (container colour fields, stream copy).
    let first = processed.join("000000.mkv");
    let tagged = dir.join("tagged.mkv");
    ffmpeg(&[
        "-i",
        path_str(&first),
        "-c",
        "copy",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        "smpte2084",
        "-colorspace",
        "bt2020nc",
        path_str(&tagged),
    ]);
    std::fs::rename(&tagged, &first).expect("move");
    let colour = |p: &Path| {
        ffprobe_lines(
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=color_primaries,color_transfer,color_space",
            ],
            p,
        )
    };
    let want = vec!["bt2020nc,smpte2084,bt2020".to_string()];
    assert_eq!(colour(&first), want, "the fixture is tagged");
    for ext in ["mp4", "mkv"] {
        let joined = dir.join(&format!("joined.{ext}"));
        join(&split, &processed, &joined).assert_ok();
        assert_eq!(colour(&joined), want, "{ext}");
    }
}

/// Video packets (data and timestamps) as ffmpeg's stream copy delivers them.
fn video_packets(path: &Path) -> Vec<String> {
    framemd5_lines(path, "0:v:0")
}

#[test]
fn joining_the_splits_own_segments_gives_back_the_source() {
    let src = h264_aac();
    let dir = TempDir::new("join-identity");
    let split = dir.join("split");
    let manifest = split_ok(&src, &split, "2");
    assert!(manifest["segments"].as_array().expect("s").iter().all(|s| s["lead_in_frames"] == 0));
    let joined = dir.join("joined.mp4");
    join(&split, &split.join("segments"), &joined).assert_ok();
    let (got, want) = (video_packets(&joined), video_packets(&src));
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want, "video packets and timestamps bit for bit");
}

/// A split and its processed segments, for the refusal tests.
fn prepared(name: &str, frames_delta: i64) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(name);
    let (split, processed) = (dir.join("split"), dir.join("processed"));
    split_ok(&h264_aac(), &split, "2");
    process(&split, &processed, frames_delta);
    (dir, split, processed)
}

/// The join fails with exit 4, one line containing `text`, and writes nothing.
#[track_caller]
fn assert_refused(dir: &TempDir, split: &Path, processed: &Path, text: &str) {
    let out = dir.join("joined.mp4");
    join(split, processed, &out).assert_fails(4, text);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("joined"))
        .collect();
    assert!(left.is_empty(), "output written: {left:?}");
}

#[test]
fn a_frame_too_many_or_too_few_is_refused() {
    let (dir, split, processed) = prepared("join-one-more", 0);
    let frames = read_manifest(&split)["segments"][0]["frames"].as_u64().expect("frames");
    // The worker kept one frame too many: its last frame twice.
    let first = processed.join("000000.mkv");
    let padded = dir.join("padded.mkv");
    ffmpeg(&[
        "-i",
        path_str(&first),
        "-vf",
        "tpad=stop=1:stop_mode=clone",
        "-c:v",
        "libx264",
        path_str(&padded),
    ]);
    std::fs::rename(&padded, &first).expect("move");
    assert_refused(
        &dir,
        &split,
        &processed,
        &format!(
            "segment 0 (000000.mkv): expected {frames} frames (the frames it owns), found {}",
            frames + 1
        ),
    );
    let (dir, split, processed) = prepared("join-one-less", -1);
    assert_refused(
        &dir,
        &split,
        &processed,
        &format!(
            "segment 0 (000000.mkv): expected {frames} frames (the frames it owns), found {}",
            frames - 1
        ),
    );
}

#[test]
fn missing_resized_foreign_and_unknown_schema_are_refused() {
    let (dir, split, processed) = prepared("join-refusals", 0);
    // A missing segment.
    let second = processed.join("000001.mkv");
    let kept = dir.join("kept.mkv");
    std::fs::rename(&second, &kept).expect("move");
    assert_refused(&dir, &split, &processed, "segment 1: no processed file (expected 000001.*)");
    // Another resolution.
    let segment = read_manifest(&split)["segments"][1].clone();
    let frames = segment["frames"].as_u64().expect("frames");
    ffmpeg(&[
        "-i",
        path_str(&kept),
        "-vf",
        "scale=160:90",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        path_str(&second),
    ]);
    assert_eq!(
        ffprobe_lines(
            &["-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames"],
            &second
        ),
        vec![frames.to_string()]
    );
    assert_refused(
        &dir,
        &split,
        &processed,
        "segment 1 (000001.mkv): resolution 160x90, segment 0 has 320x180",
    );
    // Not a video.
    std::fs::remove_file(&second).expect("rm");
    std::fs::write(processed.join("000001.mp4"), "not a video\n").expect("write");
    assert_refused(&dir, &split, &processed, "segment 1 (000001.mp4): not a video");
    std::fs::remove_file(processed.join("000001.mp4")).expect("rm");
    std::fs::rename(&kept, &second).expect("move back");
    // An unknown manifest schema.
    let path = split.join("manifest.json");
    let text = std::fs::read_to_string(&path).expect("manifest");
    std::fs::write(&path, text.replace("\"schema_version\": 2", "\"schema_version\": 99"))
        .expect("w");
    assert_refused(&dir, &split, &processed, "schema_version 99");
    // Restored, the same inputs join: the refusals were about what was changed.
    std::fs::write(&path, text).expect("w");
    join(&split, &processed, &dir.join("joined.mp4")).assert_ok();
}

/// A join stopped by SIGTERM while ffmpeg writes the joined file (its final mux slowed to real
/// time by a wrapper script, so the temporary file is there to be caught) exits 130 and leaves
/// neither the file nor its temporary.
#[test]
fn an_interrupted_join_leaves_nothing() {
    let (dir, split, processed) = prepared("join-interrupted", 0);
    let ffmpeg = dir.join("ffmpeg-slow-mux");
    write_script(
        &ffmpeg,
        "#!/bin/sh\ncase \"$*\" in\n  *-copyts*) exec \"${SPLITTER_TEST_FFMPEG:-ffmpeg}\" -readrate 1 \"$@\" ;;\n  *) exec \"${SPLITTER_TEST_FFMPEG:-ffmpeg}\" \"$@\" ;;\nesac\n",
    );
    let joined = dir.join("joined.mp4");
    let mut child = splitter_command()
        .args(["--log-format", "text", "join", path_str(&split), path_str(&processed)])
        .arg(&joined)
        .env("SPLITTER_FFMPEG", &ffmpeg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the join");
    let temporary = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".joined.mp4.join-"))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while temporary(dir.path()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the temporary file never appeared");
        assert!(child.try_wait().expect("poll").is_none(), "the join ended before the mux");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(kill.expect("kill").success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!joined.exists(), "no joined file");
    assert_eq!(temporary(dir.path()), Vec::<String>::new(), "the temporary file is removed");
    // Run again without the interruption: the same inputs join.
    join(&split, &processed, &joined).assert_ok();
}

#[test]
fn bad_output_names_are_usage_errors() {
    let (dir, split, processed) = prepared("join-usage", 0);
    let avi = dir.join("x.avi");
    let run = text_run(&["join", path_str(&split), path_str(&processed), path_str(&avi)], &[]);
    run.assert_fails(2, "OUTPUT_FILE must end in .mp4 or .mkv");
    // No extension: MP4.
    let plain = dir.join("joined");
    join(&split, &processed, &plain).assert_ok();
    let format = ffprobe_lines(&["-show_entries", "format=format_name"], &plain);
    assert!(format[0].contains("mp4"), "{format:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_from_and_to_s3() {
    let moto = Moto::start();
    let client = moto.client().await;
    client.create_bucket().bucket("join").send().await.expect("bucket");
    let src = h264_aac();
    let dir = TempDir::new("join-s3");
    let local_split = dir.join("split");
    split_ok(&src, &local_split, "2");
    let processed = dir.join("processed");
    process(&local_split, &processed, 0);
    // Split and processed results on S3 (the split writes its own output there).
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    splitter(&["split", path_str(&src), "s3://join/split", "--segment-seconds", "2"], &env)
        .assert_ok();
    for entry in std::fs::read_dir(&processed).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&path).await.expect("body");
        client
            .put_object()
            .bucket("join")
            .key(format!("processed/{name}"))
            .body(body)
            .send()
            .await
            .expect("put");
    }
    let run = splitter(
        &["join", "s3://join/split", "s3://join/processed/", "s3://join/out/joined.mp4"],
        &env,
    );
    run.assert_ok();
    let data = get_bytes(&client, "join", "out/joined.mp4").await.expect("joined object");
    let joined = dir.join("from-s3.mp4");
    std::fs::write(&joined, data).expect("write");
    assert_eq!(frame_times(&joined), frame_times(&src));
    assert_eq!(audio_packets(&joined, 0), audio_packets(&src, 0));
    // S3 to a local file too, and a missing processed prefix is refused.
    let local = dir.join("local.mkv");
    splitter(&["join", "s3://join/split", path_str(&processed), path_str(&local)], &env)
        .assert_ok();
    assert_eq!(frame_times(&local), frame_times(&remuxed(&src, "mkv")));
    let run =
        text_run(&["join", "s3://join/split", "s3://join/nothing", "s3://join/out/x.mp4"], &env);
    run.assert_fails(4, "segment 0: no processed file");
    assert!(get_bytes(&client, "join", "out/x.mp4").await.is_none());
}

#[test]
fn the_readme_shows_the_worker_the_tests_run() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let script = std::fs::read_to_string(worker_script()).expect("script");
    let command: Vec<&str> = script
        .lines()
        .skip_while(|l| !l.starts_with("exec ffmpeg"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(command.len() >= 3, "{command:?}");
    for line in command {
        let line = line.trim_start_matches("exec ").trim();
        assert!(readme.contains(line), "README.md must show the worker line {line:?}");
    }
}
