//! Bad input: one clear line on stderr, a documented exit code, no manifest, never a panic.
//! (S3-side cases — missing object or bucket, access denied — are in `s3.rs`.)

mod support;

use std::path::{Path, PathBuf};

use support::*;

const TEXT: &[(&str, &str)] = &[("SPLITTER_LOG_FORMAT", "text")];

fn split(input: &Path, output: &Path) -> Run {
    splitter(&["split", path_str(input), path_str(output), "--segment-seconds", "2"], TEXT)
}

#[track_caller]
fn assert_no_manifest(output: &Path) {
    assert!(!output.join("manifest.json").exists(), "no manifest may be written");
}

fn small_mp4() -> PathBuf {
    let mut a = pattern("160x90", "25", "4");
    for s in ["-f", "lavfi", "-t", "4", "-i", "sine=sample_rate=48000"] {
        a.push(s.into());
    }
    for s in ["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac"] {
        a.push(s.into());
    }
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    fixture("small", "mp4", &refs)
}

#[test]
fn missing_file() {
    let dir = TempDir::new("missing");
    let run = split(&dir.join("nope.mp4"), &dir.join("out"));
    run.assert_fails(3, "does not exist");
    assert!(!dir.join("out").exists(), "nothing is written for a missing input");
}

#[test]
fn a_directory_is_not_an_input() {
    let dir = TempDir::new("dir-input");
    let run = split(dir.path(), &dir.join("out"));
    run.assert_fails(3, "is a directory");
}

#[test]
fn zero_bytes() {
    let dir = TempDir::new("empty");
    let input = dir.join("empty.mp4");
    std::fs::write(&input, b"").expect("write");
    split(&input, &dir.join("out")).assert_fails(4, "is empty (0 bytes)");
    assert_no_manifest(&dir.join("out"));
}

#[test]
fn random_bytes() {
    let dir = TempDir::new("random");
    let input = dir.join("random.mp4");
    // Deterministic "random" bytes (xorshift), binary from the first byte.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&input, data).expect("write");
    split(&input, &dir.join("out")).assert_fails(4, "is not a readable video");
    assert_no_manifest(&dir.join("out"));
}

#[test]
fn a_text_file_named_mp4() {
    let dir = TempDir::new("text");
    let input = dir.join("notes.mp4");
    std::fs::write(&input, "These are my notes about the video.\nNot a video.\n".repeat(50))
        .expect("write");
    split(&input, &dir.join("out")).assert_fails(4, "is a text file");
    assert_no_manifest(&dir.join("out"));
}

#[test]
fn a_still_image() {
    let png =
        fixture("still", "png", &["-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1"]);
    let dir = TempDir::new("still");
    split(&png, &dir.join("out")).assert_fails(4, "still image (PNG)");
    // The same picture in an MP4 container: one frame is not a video either.
    let one_frame = fixture(
        "one-frame",
        "mp4",
        &["-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1", "-c:v", "libx264"],
    );
    split(&one_frame, &dir.join("out")).assert_fails(4, "single picture");
    assert_no_manifest(&dir.join("out"));
}

#[test]
fn audio_only() {
    let m4a =
        fixture("audio-only", "m4a", &["-f", "lavfi", "-t", "2", "-i", "sine", "-c:a", "aac"]);
    let dir = TempDir::new("audio-only");
    split(&m4a, &dir.join("out")).assert_fails(4, "has no video stream (found: audio (aac))");
    assert_no_manifest(&dir.join("out"));
}

#[test]
fn truncated_files() {
    let src = small_mp4();
    let dir = TempDir::new("truncated");
    // moov at the start (faststart), media data cut short: the index promises more.
    let faststart = dir.join("faststart.mp4");
    ffmpeg(&["-i", path_str(&src), "-c", "copy", "-movflags", "+faststart", path_str(&faststart)]);
    let data = std::fs::read(&faststart).expect("read");
    let cut = dir.join("cut-faststart.mp4");
    std::fs::write(&cut, &data[..data.len() * 6 / 10]).expect("write");
    split(&cut, &dir.join("out")).assert_fails(4, "is truncated");
    assert_no_manifest(&dir.join("out"));
    // moov at the end (ffmpeg's default), cut before it: no index at all.
    let data = std::fs::read(&src).expect("read");
    let cut = dir.join("cut-moov-at-end.mp4");
    std::fs::write(&cut, &data[..data.len() / 2]).expect("write");
    split(&cut, &dir.join("out")).assert_fails(4, "moov atom not found");
    assert_no_manifest(&dir.join("out"));
}

#[test]
fn unwritable_output() {
    let src = small_mp4();
    let dir = TempDir::new("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").expect("write");
    split(&src, &file).assert_fails(5, "is a file, not a directory");
    split(&src, &file.join("sub")).assert_fails(5, "cannot create output directory");
    assert_eq!(std::fs::read(&file).expect("read"), b"x", "the file is untouched");
}

#[test]
fn nonsense_flags() {
    let src = small_mp4();
    let dir = TempDir::new("flags");
    let out = dir.join("out");
    let (s, o) = (path_str(&src), path_str(&out));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["split", s, o, "--bogus"], "unexpected argument '--bogus'"),
        (vec!["split", s, o, "--segment-seconds", "abc"], "invalid value 'abc'"),
        (vec!["split", s, o, "--segment-seconds=-3"], "must be a positive number"),
        (vec!["split", s, o, "--segment-seconds", "0"], "must be a positive number"),
        (vec!["split", s], "required arguments were not provided"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["split", "s3://Not_A_Bucket/x.mp4", o], "not a valid S3 bucket name"),
        (vec!["split", s, o, "--upload-concurrency", "0"], "invalid value '0'"),
    ];
    for (args, text) in cases {
        let run = splitter(&args, TEXT);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
        assert_eq!(run.stderr.trim().lines().count(), 1, "{args:?} one line: {}", run.stderr);
        assert!(run.stderr.contains(text), "{args:?}: {:?} should mention {text:?}", run.stderr);
        assert!(!out.join("manifest.json").exists());
    }
}

fn fake_tool(dir: &Path, name: &str, version: &str, lavf: &str) -> PathBuf {
    let path = dir.join(name);
    write_script(
        &path,
        &format!(
            "#!/bin/sh\necho '{name} version {version} Copyright (c) 2000-2021 the FFmpeg developers'\n\
             echo 'libavformat    {lavf} / {lavf}'\n"
        ),
    );
    path
}

#[test]
fn ffmpeg_or_ffprobe_missing_or_too_old() {
    let src = small_mp4();
    let dir = TempDir::new("tools");
    let out = dir.join("out");
    let old_ffmpeg = fake_tool(dir.path(), "ffmpeg", "4.4.2-0ubuntu0.22.04.1", "58. 76.100");
    let old_ffprobe = fake_tool(dir.path(), "ffprobe", "4.4.2-0ubuntu0.22.04.1", "58. 76.100");
    let args = ["split", path_str(&src), path_str(&out)];
    let cases: Vec<(&str, &str, &str)> = vec![
        ("SPLITTER_FFMPEG", "/nonexistent/ffmpeg", "ffmpeg not found or not runnable"),
        ("SPLITTER_FFPROBE", "/nonexistent/ffprobe", "ffprobe not found or not runnable"),
        ("SPLITTER_FFMPEG", path_str(&old_ffmpeg), "ffmpeg 4.4.2-0ubuntu0.22.04.1 at"),
        ("SPLITTER_FFPROBE", path_str(&old_ffprobe), "ffprobe 4.4.2-0ubuntu0.22.04.1 at"),
    ];
    for (var, value, text) in cases {
        let run = splitter(&args, &[(var, value), ("SPLITTER_LOG_FORMAT", "text")]);
        run.assert_fails(6, text);
        if value.contains("4.4") || run.stderr.contains("too old") {
            assert!(run.stderr.contains("too old: the splitter needs ffmpeg 5.1 or newer"));
        }
        assert_no_manifest(&out);
    }
    // `verify` checks the tools too.
    let run = splitter(
        &["verify", path_str(&out)],
        &[("SPLITTER_FFMPEG", path_str(&old_ffmpeg)), ("SPLITTER_LOG_FORMAT", "text")],
    );
    run.assert_fails(6, "too old");
}

#[test]
fn errors_are_json_lines_when_not_on_a_terminal() {
    let dir = TempDir::new("json-error");
    // No SPLITTER_LOG_FORMAT: stderr is a pipe here, so JSON.
    let run =
        splitter(&["split", path_str(&dir.join("missing.mp4")), path_str(&dir.join("out"))], &[]);
    assert_eq!(run.code, Some(3));
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    let event: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(event["level"], "ERROR");
    assert_eq!(event["exit_code"], 3);
    assert_eq!(event["kind"], "input_unreadable");
    assert!(event["message"].as_str().unwrap_or("").contains("does not exist"));
}

/// The ffprobe under test (the image's in `cargo xtask test`'s image-ffmpeg step) and the
/// demuxers it says it has.
fn demuxers_under_test() -> String {
    let ffprobe = std::env::var("SPLITTER_TEST_FFPROBE").unwrap_or_else(|_| "ffprobe".into());
    let out = std::process::Command::new(&ffprobe)
        .args(["-hide_banner", "-demuxers"])
        .output()
        .expect("run ffprobe -demuxers");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_container_the_build_cannot_read_is_named() {
    // ASF/WMV: common in old archives, not among the container image's demuxers.
    let mut a = pattern("160x90", "25", "4");
    a.extend(["-c:v", "wmv2", "-q:v", "5", "-f", "asf"].map(String::from));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let src = fixture("asf-wmv2", "wmv", &refs);
    let out = TempDir::new("asf");
    let has_asf = demuxers_under_test().lines().any(|l| l.split_whitespace().nth(1) == Some("asf"));
    let run = split(&src, out.path());
    if has_asf {
        // A full ffmpeg reads it: a plain split, frame-exact like any other input.
        run.assert_ok();
        assert_frame_exact(&src, out.path());
    } else {
        run.assert_fails(
            4,
            "is in the ASF (WMV) container, which this ffmpeg build does not support",
        );
        assert!(run.stderr.contains("no `asf` demuxer"), "{}", run.stderr);
        assert!(run.stderr.contains("it reads MP4/MOV, Matroska/WebM"), "{}", run.stderr);
        assert_no_manifest(out.path());
    }
}
