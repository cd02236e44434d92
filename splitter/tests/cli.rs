//! The command line around a split: help and version, logs, verify, re-runs into the same
//! directory, and what an interrupted run leaves behind.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

fn video() -> PathBuf {
    let mut a = pattern("160x90", "25", "6");
    for s in ["-f", "lavfi", "-t", "6", "-i", "sine=sample_rate=48000"] {
        a.push(s.into());
    }
    for s in ["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac"] {
        a.push(s.into());
    }
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    fixture("cli-video", "mp4", &refs)
}

#[test]
fn help_and_version() {
    let version = splitter(&["--version"], &[]);
    assert!(version.success());
    assert_eq!(version.stdout.trim(), format!("splitter {}", env!("CARGO_PKG_VERSION")));
    for args in [vec!["--help"], vec!["split", "--help"], vec!["verify", "--help"]] {
        let run = splitter(&args, &[]);
        assert!(run.success(), "{args:?}");
        assert!(run.stdout.contains("Usage: splitter"), "{args:?}: {}", run.stdout);
    }
    let split_help = splitter(&["split", "--help"], &[]).stdout;
    for env in
        ["SPLITTER_SEGMENT_SECONDS", "SPLITTER_WORK_DIR", "SPLITTER_FFMPEG", "SPLITTER_LOG_FORMAT"]
    {
        assert!(split_help.contains(env), "--help documents {env}");
    }
    assert!(splitter(&["--help"], &[]).stdout.contains("Exit codes"));
    // No subcommand: usage on stderr, exit 2.
    assert_eq!(splitter(&[], &[]).code, Some(2));
}

#[test]
fn settings_come_from_the_environment_too() {
    let src = video();
    let out = TempDir::new("env");
    let run = splitter(
        &["split", path_str(&src), path_str(out.path())],
        &[("SPLITTER_SEGMENT_SECONDS", "3")],
    );
    run.assert_ok();
    let manifest = read_manifest(out.path());
    assert_eq!(manifest["segment_seconds"], 3.0);
    assert_eq!(manifest["segments"].as_array().map(Vec::len), Some(2));
}

#[test]
fn logs_are_json_lines_off_a_terminal_with_progress_per_segment() {
    let src = video();
    let out = TempDir::new("logs");
    let run =
        splitter(&["split", path_str(&src), path_str(out.path()), "--segment-seconds", "2"], &[]);
    run.assert_ok();
    let lines: Vec<&str> = run.stderr.lines().collect();
    let events = run.json_logs();
    assert_eq!(events.len(), lines.len(), "every stderr line is JSON:\n{}", run.stderr);
    assert!(events.iter().all(|e| e["level"].is_string() && e["timestamp"].is_string()));
    let written = events.iter().filter(|e| e["message"] == "segment written").count();
    assert_eq!(written, 3);
    let done = run.completion();
    assert_eq!(done["segments"], 3);
    assert!(done["peak_rss_kib"].as_u64().is_some());
    assert!(run.stdout.is_empty());

    let text = splitter(
        &["split", path_str(&src), path_str(out.path()), "--segment-seconds", "2"],
        &[("SPLITTER_LOG_FORMAT", "text")],
    );
    text.assert_ok();
    assert!(text.json_logs().is_empty(), "text format:\n{}", text.stderr);
    assert!(text.stderr.contains("INFO") && text.stderr.contains("split complete"));
}

#[test]
fn verify_accepts_a_good_output_and_lists_every_problem() {
    let src = video();
    let out = TempDir::new("verify");
    let manifest = split_ok(&src, out.path(), "2");
    let ok = splitter(&["verify", path_str(out.path())], &[("SPLITTER_LOG_FORMAT", "text")]);
    ok.assert_ok();
    assert!(ok.stderr.contains("output verified"));

    // Damage it three ways.
    let seg0 = out.join(manifest["segments"][0]["path"].as_str().expect("path"));
    let mut data = std::fs::read(&seg0).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&seg0, data).expect("write");
    std::fs::remove_file(out.join(manifest["segments"][1]["path"].as_str().expect("path")))
        .expect("rm");
    let mut edited = manifest.clone();
    edited["segments"][2]["frames"] =
        serde_json::json!(manifest["segments"][2]["frames"].as_u64().expect("n") + 1);
    std::fs::write(out.join("manifest.json"), serde_json::to_vec_pretty(&edited).expect("json"))
        .expect("write");

    let bad = splitter(&["verify", path_str(out.path())], &[("SPLITTER_LOG_FORMAT", "text")]);
    assert_eq!(bad.code, Some(7), "{}", bad.stderr);
    let stderr = &bad.stderr;
    assert!(stderr.contains("segments/000000.mp4: sha256 does not match"), "{stderr}");
    assert!(stderr.contains("segments/000001.mp4 is missing"), "{stderr}");
    assert!(stderr.contains("segments/000002.mp4 decodes to"), "{stderr}");
    assert!(stderr.contains("segments own"), "frame total no longer matches: {stderr}");
    assert!(stderr.contains("error: verification failed"), "{stderr}");

    // No manifest at all: incomplete.
    std::fs::remove_file(out.join("manifest.json")).expect("rm");
    let missing = splitter(&["verify", path_str(out.path())], &[("SPLITTER_LOG_FORMAT", "text")]);
    assert_eq!(missing.code, Some(7));
    assert!(missing.stderr.contains("manifest.json is missing"));
}

/// An ffmpeg that moves the pts of one packet (the fourth of the stream) by one tick in what
/// the segment muxer writes: a remux that broke the timestamps, as the container's
/// decoder-less ffmpeg did for Matroska B-frames. Always the host's ffmpeg (the shipped build
/// has no `setts` filter); the listings the splitter compares against are untouched.
fn ffmpeg_that_moves_a_timestamp(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("ffmpeg-moves-a-pts");
    write_script(
        &path,
        "#!/bin/bash\nargs=()\nprev=\nfor a in \"$@\"; do\n  args+=(\"$a\")\n  \
         if [ \"$prev\" = -f ] && [ \"$a\" = segment ]; then\n    \
         args+=(-bsf:v 'setts=pts=if(eq(N\\,3)\\,PTS+1\\,PTS)')\n  fi\n  prev=$a\ndone\n\
         exec ffmpeg \"${args[@]}\"\n",
    );
    path
}

#[test]
fn split_refuses_segments_whose_timestamps_differ_from_the_source() {
    let src = video();
    let tools = TempDir::new("moved-pts-tools");
    let wrapper = ffmpeg_that_moves_a_timestamp(tools.path());
    let out = TempDir::new("moved-pts");
    let run = splitter(
        &["split", path_str(&src), path_str(out.path()), "--segment-seconds", "2"],
        &[
            ("SPLITTER_FFMPEG", path_str(&wrapper)),
            ("SPLITTER_FFPROBE", "ffprobe"),
            ("SPLITTER_LOG_FORMAT", "text"),
        ],
    );
    run.assert_fails(
        1,
        "segment 0, packet 3 (decode order): presented at +0.040078 s from the segment's first \
         owned frame, in the source at +0.040000 s",
    );
    assert!(run.stderr.contains("no manifest written"), "{}", run.stderr);
    assert!(!out.join("manifest.json").exists(), "a failed split must leave no manifest");
    // The same input through the same ffmpeg without the fault splits (the check is not
    // refusing everything).
    split_ok(&src, out.path(), "2");
}

#[test]
fn verify_finds_segments_whose_timestamps_changed() {
    let src = video();
    let out = TempDir::new("verify-pts");
    let manifest = split_ok(&src, out.path(), "2");
    // Remux segment 1 with one pts moved by a tick, and record its new size and sha256 so
    // only the timestamps disagree with the manifest.
    let relative = manifest["segments"][1]["path"].as_str().expect("path").to_owned();
    let seg = out.join(&relative);
    let moved = out.join("moved.mp4");
    ffmpeg(&[
        "-i",
        path_str(&seg),
        "-c",
        "copy",
        "-bsf:v",
        "setts=pts=if(eq(N\\,5)\\,PTS+1\\,PTS)",
        "-use_editlist",
        "0",
        path_str(&moved),
    ]);
    std::fs::rename(&moved, &seg).expect("replace segment");
    assert_ne!(
        ffprobe_pts_digest(&seg),
        manifest["segments"][1]["pts_digest"].as_str().unwrap_or("")
    );
    let mut edited = manifest.clone();
    edited["segments"][1]["bytes"] =
        serde_json::json!(std::fs::metadata(&seg).expect("stat").len());
    edited["segments"][1]["sha256"] = serde_json::json!(sha256_file(&seg));
    std::fs::write(out.join("manifest.json"), serde_json::to_vec_pretty(&edited).expect("json"))
        .expect("write");
    let bad = splitter(&["verify", path_str(out.path())], &[("SPLITTER_LOG_FORMAT", "text")]);
    assert_eq!(bad.code, Some(7), "{}", bad.stderr);
    assert!(
        bad.stderr.contains(&format!("{relative}: its packets' timestamps differ")),
        "{}",
        bad.stderr
    );
    assert!(!bad.stderr.contains("sha256 does not match"), "{}", bad.stderr);

    // A manifest of schema 1 (before pts_digest) is not taken as verified.
    let mut old = manifest.clone();
    old["schema_version"] = serde_json::json!(1);
    for seg in old["segments"].as_array_mut().expect("segments") {
        seg.as_object_mut().expect("object").remove("pts_digest");
    }
    std::fs::write(out.join("manifest.json"), serde_json::to_vec_pretty(&old).expect("json"))
        .expect("write");
    let old_run = splitter(&["verify", path_str(out.path())], &[("SPLITTER_LOG_FORMAT", "text")]);
    assert_eq!(old_run.code, Some(7), "{}", old_run.stderr);
    assert!(old_run.stderr.contains("schema_version 1 is not 2"), "{}", old_run.stderr);
    assert!(old_run.stderr.contains("has no pts_digest"), "{}", old_run.stderr);
}

#[test]
fn rerunning_into_the_same_directory_replaces_the_output() {
    let src = video();
    let out = TempDir::new("rerun");
    let first = split_ok(&src, out.path(), "1");
    assert_eq!(first["segments"].as_array().map(Vec::len), Some(6));
    // A user file in the output is left alone; our stale segments are removed.
    std::fs::write(out.join("segments/notes.txt"), b"mine").expect("write");
    let second = split_ok(&src, out.path(), "3");
    assert_eq!(second["segments"].as_array().map(Vec::len), Some(2));
    let mut names: Vec<String> = std::fs::read_dir(out.join("segments"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["000000.mp4", "000001.mp4", "notes.txt"]);
    assert_frame_exact(&src, out.path());
    // Nothing temporary is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Starts a split of a bigger input and waits for its first segment.
fn start_and_wait_for_first_segment(out: &std::path::Path) -> std::process::Child {
    let src = fixture(
        "cli-long",
        "mp4",
        &[
            "-f",
            "lavfi",
            "-t",
            "40",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let mut child = splitter_command()
        .args(["split", path_str(&src), path_str(out), "--segment-seconds", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines.next().expect("splitter exited early").expect("read");
        if line.contains("segment written") || Instant::now() > deadline {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

#[test]
fn a_killed_run_leaves_no_manifest() {
    let out = TempDir::new("killed");
    let mut child = start_and_wait_for_first_segment(out.path());
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success());
    assert!(!out.join("manifest.json").exists());
    assert!(!out.join("segments").exists(), "segments are published only when all are done");
}

#[test]
fn sigterm_stops_cleanly_with_exit_130() {
    let out = TempDir::new("sigterm");
    let mut child = start_and_wait_for_first_segment(out.path());
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(!out.join("manifest.json").exists());
    let leftovers: Vec<_> =
        std::fs::read_dir(out.path()).expect("list").filter_map(|e| e.ok()).collect();
    assert!(leftovers.is_empty(), "the work directory is removed: {leftovers:?}");
}
