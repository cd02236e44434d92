//! `split --context-frames N`: every segment file also carries at least N of the source's
//! frames before and after the ones it owns (fewer only at the ends of the video), counted in
//! `lead_in_frames` and `trailing_frames`, and what it owns does not change with N.
//!
//! Checked independently of the splitter's code: the host's ffmpeg decodes the source and
//! every segment file (`framemd5`, one md5 per decoded picture) and the test compares
//! pictures: the context frames must be exactly the source's neighbouring pictures, the owned
//! ones, concatenated, exactly the source's.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;

const CONTEXT: u64 = 8;

/// Closed GOPs of 12 frames, no B-frames.
fn h264_closed() -> PathBuf {
    encoded("ctx-h264-closed", "mp4", "160x90", "8", "-c:v libx264 -bf 0 -g 12 -pix_fmt yuv420p")
}

/// x265 with open GOPs: keyframes are CRA pictures whose RASL leading pictures reference the
/// previous GOP (a decoder starting at a CRA drops them).
fn hevc_open() -> PathBuf {
    encoded(
        "ctx-hevc-open",
        "mp4",
        "160x90",
        "8",
        "-c:v libx265 -x265-params \
         keyint=25:min-keyint=25:scenecut=0:open-gop=1:bframes=4:log-level=error \
         -pix_fmt yuv420p",
    )
}

/// H.264 with B-frames (B-pyramid) in Matroska, GOPs of 10 frames: 8 frames of context are
/// one GOP, 30 are three.
fn h264_b_frames_mkv() -> PathBuf {
    encoded(
        "ctx-h264-bf3",
        "mkv",
        "160x90",
        "8",
        "-c:v libx264 -bf 3 -b_strategy 0 -g 10 -keyint_min 10 -sc_threshold 0 -pix_fmt yuv420p",
    )
}

/// MPEG-2 with B-frames in MPEG-TS: open GOPs without any clean keyframe.
fn mpeg2_ts() -> PathBuf {
    encoded("ctx-mpeg2", "ts", "160x90", "8", "-c:v mpeg2video -bf 2 -g 15 -f mpegts")
}

fn split(src: &Path, out: &Path, seconds: &str, context: Option<u64>, env: &[(&str, &str)]) {
    let mut args = vec!["split", path_str(src), path_str(out), "--segment-seconds", seconds];
    let n = context.map(|n| n.to_string());
    if let Some(n) = &n {
        args.extend(["--context-frames", n]);
    }
    splitter(&args, env).assert_ok();
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// What is wrong with `out`'s segments as context-carrying segments of `source` (its
/// pictures' md5s, decode order of display): every problem, none when all holds.
fn context_problems(source: &[String], out: &Path, context: u64) -> Vec<String> {
    let manifest = read_manifest(out);
    let segments = manifest["segments"].as_array().expect("segments");
    let last = segments.len() - 1;
    let mut problems = Vec::new();
    let mut owned_pictures: Vec<String> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let file = out.join(seg["path"].as_str().expect("path"));
        let pictures = framemd5(&file);
        let (lead, owned, trailing) =
            (num(seg, "lead_in_frames"), num(seg, "frames"), num(seg, "trailing_frames"));
        let (lead_n, owned_n) = (lead as usize, owned as usize);
        if pictures.len() as u64 != lead + owned + trailing {
            problems.push(format!(
                "segment {i} decodes to {} pictures, manifest: {lead} + {owned} + {trailing}",
                pictures.len()
            ));
            continue;
        }
        // Where the owned pictures are in the source (segments are contiguous).
        let start = owned_pictures.len();
        owned_pictures.extend_from_slice(&pictures[lead_n..lead_n + owned_n]);
        let expected_lead = if i == 0 { 0..=0 } else { context.min(start as u64)..=u64::MAX };
        if !expected_lead.contains(&lead) {
            problems
                .push(format!("segment {i}: {lead} context frames before, want {expected_lead:?}"));
        }
        let after = source.len().saturating_sub(start + owned_n) as u64;
        let expected_trailing = if i == last { 0..=0 } else { context.min(after)..=u64::MAX };
        if !expected_trailing.contains(&trailing) {
            problems.push(format!(
                "segment {i}: {trailing} context frames after, want {expected_trailing:?}"
            ));
        }
        // The context pictures are the source's neighbours of the owned ones.
        let before = start.checked_sub(lead_n).map(|from| &source[from..start]);
        if before != Some(&pictures[..lead_n]) {
            problems.push(format!("segment {i}: the {lead} pictures before are not the source's"));
        }
        let end = start + owned_n;
        let following = source.get(end..end + trailing as usize);
        if following != Some(&pictures[lead_n + owned_n..]) {
            problems
                .push(format!("segment {i}: the {trailing} pictures after are not the source's"));
        }
        if seg["pts_digest"].as_str() != Some(ffprobe_pts_digest(&file).as_str()) {
            problems.push(format!("segment {i}: pts_digest is not that of the file"));
        }
    }
    if owned_pictures != source {
        let diff = owned_pictures.iter().zip(source).position(|(a, b)| a != b);
        problems.push(format!(
            "the owned pictures ({}) are not the source's ({}); first difference at {diff:?}",
            owned_pictures.len(),
            source.len()
        ));
    }
    problems
}

/// What a segment owns, as the manifest says.
fn ownership(out: &Path) -> Vec<(u64, i64, i64, String, String)> {
    let manifest = read_manifest(out);
    manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            (
                num(s, "frames"),
                s["start_pts"].as_i64().expect("start_pts"),
                s["end_pts"].as_i64().expect("end_pts"),
                s["start_seconds"].to_string(),
                s["duration_seconds"].to_string(),
            )
        })
        .collect()
}

fn total_bytes(out: &Path) -> u64 {
    let manifest = read_manifest(out);
    manifest["segments"].as_array().expect("segments").iter().map(|s| num(s, "bytes")).sum()
}

/// Splits `src` with and without context and checks both against the decoded source; returns
/// the manifest with context.
fn check(name: &str, src: &Path, seconds: &str, context: u64) -> Value {
    let source = framemd5(src);
    let with = TempDir::new(&format!("{name}-ctx"));
    split(src, with.path(), seconds, Some(context), &[]);
    let problems = context_problems(&source, with.path(), context);
    assert!(problems.is_empty(), "{name} with --context-frames {context}:\n{problems:#?}");
    let verify = splitter(&["verify", path_str(with.path())], &[("SPLITTER_LOG_FORMAT", "text")]);
    verify.assert_ok();

    // Without context: the same ownership, narrower files, and the check above fails (it
    // does test the context).
    let without = TempDir::new(&format!("{name}-bare"));
    split(src, without.path(), seconds, None, &[]);
    assert_eq!(ownership(with.path()), ownership(without.path()), "{name}: N changed ownership");
    let bare = context_problems(&source, without.path(), context);
    assert!(
        !bare.is_empty() && bare.iter().all(|p| p.contains("context frames")),
        "{name}: segments without context should fail only the context check: {bare:#?}"
    );
    assert!(context_problems(&source, without.path(), 0).is_empty());
    assert!(total_bytes(with.path()) > total_bytes(without.path()));

    let manifest = read_manifest(with.path());
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments.len() >= 3, "{name}: {} segments", segments.len());
    manifest
}

#[test]
fn closed_gop_h264() {
    let manifest = check("ctx-h264-closed", &h264_closed(), "2", CONTEXT);
    // One GOP of 12 frames each side.
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments[1..].iter().all(|s| num(s, "lead_in_frames") == 12), "{segments:?}");
    let inner = &segments[..segments.len() - 1];
    assert!(inner.iter().all(|s| num(s, "trailing_frames") == 12), "{segments:?}");
}

#[test]
fn open_gop_hevc() {
    let src = hevc_open();
    // The fixture has open GOPs: without context, CRA cuts need a lead-in.
    let bare = TempDir::new("ctx-hevc-lead-in");
    split(&src, bare.path(), "2", None, &[]);
    let manifest = read_manifest(bare.path());
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments[1..].iter().all(|s| num(s, "lead_in_frames") > 0), "{segments:?}");
    check("ctx-hevc-open", &src, "2", CONTEXT);
}

#[test]
fn h264_with_b_frames_in_matroska() {
    check("ctx-h264-bf3", &h264_b_frames_mkv(), "2", CONTEXT);
}

#[test]
fn mpeg2_open_gop_in_mpeg_ts() {
    check("ctx-mpeg2", &mpeg2_ts(), "2", CONTEXT);
}

/// 1-second segments and 30 frames of context (three 10-frame GOPs): each file reaches over
/// more than one neighbouring segment (segments of 30 and 20 frames: cuts at keyframes 30, 50,
/// 80, …), so up to four files share a packet and the cut needs four segment muxers. Set from
/// the environment.
#[test]
fn context_wider_than_a_segment_from_the_environment() {
    let src = h264_b_frames_mkv();
    let source = framemd5(&src);
    let out = TempDir::new("ctx-wide");
    let run = splitter(
        &["split", path_str(&src), path_str(out.path()), "--segment-seconds", "1"],
        &[("SPLITTER_CONTEXT_FRAMES", "30")],
    );
    run.assert_ok();
    let planned = run
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "planned")
        .unwrap_or_else(|| panic!("no `planned` log line:\n{}", run.stderr));
    assert_eq!(planned["context_frames"], 30, "{planned}");
    assert_eq!(planned["muxers"], 4, "{planned}");
    let problems = context_problems(&source, out.path(), 30);
    assert!(problems.is_empty(), "{problems:#?}");
    let manifest = read_manifest(out.path());
    let segments = manifest["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 8);
    assert_eq!(num(&segments[3], "lead_in_frames"), 30);
    assert_eq!(num(&segments[3], "trailing_frames"), 30);
    assert_eq!(num(&segments[1], "lead_in_frames"), 30, "all of segment 0");
    assert_eq!(num(&segments[6], "trailing_frames"), 20, "all of segment 7");
    splitter(&["verify", path_str(out.path())], &[]).assert_ok();
}
