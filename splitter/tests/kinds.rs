//! Every kind of video the issue lists: split, then prove frame-exactness by decoding the
//! source and every segment with the host ffmpeg and comparing per-frame md5s. Where the
//! common `-f segment -reset_timestamps 1` recipe fails, the test shows it failing too.

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn make(name: &str, ext: &str, parts: Vec<String>) -> PathBuf {
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    fixture(name, ext, &refs)
}

/// 6 s of 160x90 H.264 with B-frames (x264 defaults: B-pyramid, closed GOP) and AAC.
fn h264_aac_mp4() -> PathBuf {
    let mut a = pattern("160x90", "25", "6");
    a.extend(args(&["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6"]));
    a.extend(args(&[
        "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
    ]));
    make("h264-aac", "mp4", a)
}

/// x265's defaults: open GOP, keyframes are CRA pictures with RASL leading pictures.
fn hevc_open_gop() -> PathBuf {
    let mut a = pattern("160x90", "25", "6");
    a.extend(args(&[
        "-c:v",
        "libx265",
        "-x265-params",
        "keyint=25:min-keyint=25:log-level=error",
        "-pix_fmt",
        "yuv420p",
    ]));
    make("hevc-open-gop", "mp4", a)
}

/// A file trimmed with `-ss … -c copy`: starts at the keyframe before the trim point, the
/// MP4 edit list hides the frames before it.
fn edit_list_mp4() -> PathBuf {
    let base = h264_aac_mp4();
    derived("edit-list", "mp4", &base, |src, dst| {
        ffmpeg(&["-ss", "1.3", "-i", path_str(src), "-c", "copy", "-t", "4", path_str(dst)]);
    })
}

fn moov_offsets(path: &Path) -> (usize, usize) {
    let data = std::fs::read(path).expect("read");
    let find = |tag: &[u8]| data.windows(4).position(|w| w == tag).expect("atom");
    (find(b"moov"), find(b"mdat"))
}

#[test]
fn h264_with_b_frames_moov_at_end_and_aac() {
    let src = h264_aac_mp4();
    let (moov, mdat) = moov_offsets(&src);
    assert!(moov > mdat, "fixture must have its moov atom after the media data");
    let out = TempDir::new("h264");
    let manifest = split_ok(&src, out.path(), "2");
    let frames = assert_frame_exact(&src, out.path());
    assert_eq!(frames, 150);
    let segments = manifest["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 3);
    assert!(segments.iter().all(|s| s["lead_in_frames"] == 0), "closed GOPs need no lead-in");
    assert_eq!(manifest["source"]["video"]["codec"], "h264");
    assert_eq!(manifest["source"]["video"]["width"], 160);
    assert_eq!(manifest["source"]["video"]["frame_rate"], 25.0);
    assert_eq!(manifest["source"]["sha256"], sha256_file(&src).as_str());
    assert_eq!(manifest["source"]["bytes"], std::fs::metadata(&src).expect("stat").len());
    // Audio: stream-copied into its own file, same decoded samples.
    let audio = manifest["audio"].as_array().expect("audio");
    assert_eq!(audio.len(), 1);
    assert_eq!(audio[0]["codec"], "aac");
    let audio_file = out.join(audio[0]["path"].as_str().expect("path"));
    assert_eq!(audio_md5(&audio_file, 0), audio_md5(&src, 0));
    // Segments are video only.
    let first = out.join(segments[0]["path"].as_str().expect("path"));
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0"])
        .arg(&first)
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "video");
}

#[test]
fn open_gop_hevc_beats_the_naive_recipe() {
    let src = hevc_open_gop();
    let (expected, naive, equal) = naive_recipe(&src, "2");
    assert!(
        !equal && naive < expected,
        "the naive recipe should lose RASL frames at CRA cuts ({naive} of {expected})"
    );
    let out = TempDir::new("hevc-open");
    let manifest = split_ok(&src, out.path(), "2");
    assert_eq!(assert_frame_exact(&src, out.path()), expected);
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments.len() >= 2);
    assert_eq!(segments[0]["lead_in_frames"], 0);
    assert!(
        segments[1..].iter().all(|s| s["lead_in_frames"].as_u64() > Some(0)),
        "CRA cuts need a lead-in from the previous GOP"
    );
}

#[test]
fn edit_list_beats_the_naive_recipe() {
    let src = edit_list_mp4();
    let (expected, naive, equal) = naive_recipe(&src, "2");
    assert!(
        !equal,
        "the naive recipe should show frames the edit list hides ({naive} vs {expected})"
    );
    let out = TempDir::new("edit-list");
    let manifest = split_ok(&src, out.path(), "2");
    assert_eq!(assert_frame_exact(&src, out.path()), expected);
    assert!(
        manifest["segments"][0]["lead_in_frames"].as_u64() > Some(0),
        "the hidden frames are the first segment's lead-in"
    );
    // The audio keeps its edit list (priming and trim): same samples as the source.
    let audio = out.join(manifest["audio"][0]["path"].as_str().expect("audio path"));
    assert_eq!(audio_md5(&audio, 0), audio_md5(&src, 0));
}

#[test]
fn variable_frame_rate() {
    // Drop frames irregularly and keep the timestamps: frame durations vary.
    let mut a = pattern("160x90", "25", "6");
    a.extend(args(&[
        "-vf",
        "select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,5)\\,1))'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-g",
        "20",
        "-pix_fmt",
        "yuv420p",
    ]));
    let src = make("vfr", "mp4", a);
    let out = TempDir::new("vfr");
    let manifest = split_ok(&src, out.path(), "1.5");
    assert_frame_exact(&src, out.path());
    let avg = manifest["source"]["video"]["frame_rate"].as_f64().expect("rate");
    assert!(avg < 25.0, "frames were dropped: average rate {avg}");
    // Durations come from timestamps, not frame counts.
    let seg = &manifest["segments"][0];
    let fps_in_segment =
        seg["frames"].as_f64().expect("f") / seg["duration_seconds"].as_f64().expect("d");
    assert!(fps_in_segment < 25.0, "{fps_in_segment}");
}

#[test]
fn mpeg_ts_h264() {
    let mut a = pattern("160x90", "25", "5");
    a.extend(args(&["-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "5"]));
    a.extend(args(&[
        "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts",
    ]));
    let src = make("h264", "ts", a);
    let out = TempDir::new("ts-h264");
    let manifest = split_ok(&src, out.path(), "2");
    assert_frame_exact(&src, out.path());
    assert_eq!(manifest["source"]["format"], "mpegts");
    let audio = out.join(manifest["audio"][0]["path"].as_str().expect("audio path"));
    assert_eq!(audio_md5(&audio, 0), audio_md5(&src, 0));
}

#[test]
fn mpeg_ts_mpeg2_open_gop() {
    // ffmpeg's MPEG-2 encoder makes open GOPs: B-frames after an I-frame reference the
    // previous GOP, so cuts need a lead-in.
    let mut a = pattern("160x90", "25", "6");
    a.extend(args(&["-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "6"]));
    a.extend(args(&["-c:v", "mpeg2video", "-bf", "2", "-g", "25", "-c:a", "mp2", "-f", "mpegts"]));
    let src = make("mpeg2", "ts", a);
    let (expected, naive, _) = naive_recipe(&src, "2");
    assert!(naive < expected, "the naive recipe drops leading B-frames ({naive} of {expected})");
    let out = TempDir::new("ts-mpeg2");
    let manifest = split_ok(&src, out.path(), "2");
    assert_eq!(assert_frame_exact(&src, out.path()), expected);
    assert_eq!(manifest["source"]["video"]["codec"], "mpeg2video");
    let audio = out.join(manifest["audio"][0]["path"].as_str().expect("audio path"));
    assert_eq!(manifest["audio"][0]["codec"], "mp2");
    assert_eq!(audio_md5(&audio, 0), audio_md5(&src, 0));
}

#[test]
fn webm_vp9_and_opus() {
    let mut a = pattern("160x90", "25", "5");
    a.extend(args(&["-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "5"]));
    a.extend(args(&[
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-g",
        "25",
        "-c:a",
        "libopus",
    ]));
    let src = make("vp9-opus", "webm", a);
    let out = TempDir::new("webm");
    let manifest = split_ok(&src, out.path(), "2");
    assert_frame_exact(&src, out.path());
    assert_eq!(manifest["source"]["video"]["codec"], "vp9");
    assert!(manifest["segments"][0]["path"].as_str().is_some_and(|p| p.ends_with(".mkv")));
    assert_eq!(manifest["audio"][0]["codec"], "opus");
    // Opus pre-skip and end trimming survive: same samples.
    let audio = out.join(manifest["audio"][0]["path"].as_str().expect("audio path"));
    assert_eq!(audio_md5(&audio, 0), audio_md5(&src, 0));
}

#[test]
fn av1_in_mp4() {
    let mut a = pattern("128x72", "25", "4");
    a.extend(args(&[
        "-c:v",
        "libaom-av1",
        "-cpu-used",
        "8",
        "-row-mt",
        "1",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
    ]));
    let src = make("av1", "mp4", a);
    let out = TempDir::new("av1");
    let manifest = split_ok(&src, out.path(), "1");
    assert_frame_exact(&src, out.path());
    assert_eq!(manifest["source"]["video"]["codec"], "av1");
    assert!(manifest["segments"].as_array().expect("segments").len() >= 3);
}

#[test]
fn hevc_10_bit() {
    let mut a = pattern("160x90", "25", "4");
    a.extend(args(&[
        "-c:v",
        "libx265",
        "-x265-params",
        "keyint=25:log-level=error",
        "-pix_fmt",
        "yuv420p10le",
    ]));
    let src = make("hevc-10bit", "mp4", a);
    let out = TempDir::new("hevc10");
    let manifest = split_ok(&src, out.path(), "1");
    assert_frame_exact(&src, out.path());
    // A decoder-less ffprobe (the container's) cannot tell the pixel format: null then.
    let pix_fmt = &manifest["source"]["video"]["pixel_format"];
    assert!(pix_fmt == "yuv420p10le" || pix_fmt.is_null(), "{pix_fmt}");
}

#[test]
fn hevc_idr_with_decodable_leading_pictures_needs_no_lead_in() {
    // Closed GOPs whose IDR pictures carry RADL leading pictures: clean cuts, which the
    // splitter tells apart from CRA pictures by their NAL unit type.
    let mut a = pattern("160x90", "25", "4");
    a.extend(args(&[
        "-c:v",
        "libx265",
        "-x265-params",
        "keyint=25:min-keyint=25:scenecut=0:no-open-gop=1:radl=2:bframes=3:b-adapt=0:log-level=error",
        "-pix_fmt",
        "yuv420p",
    ]));
    let src = make("hevc-radl", "mp4", a);
    let out = TempDir::new("hevc-radl");
    let manifest = split_ok(&src, out.path(), "1");
    assert_frame_exact(&src, out.path());
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments.len() >= 3);
    assert!(segments.iter().all(|s| s["lead_in_frames"] == 0));
}

#[test]
fn open_gop_h264() {
    let mut a = pattern("160x90", "25", "6");
    a.extend(args(&[
        "-c:v",
        "libx264",
        "-x264-params",
        "open-gop=1:keyint=25:min-keyint=25",
        "-pix_fmt",
        "yuv420p",
    ]));
    let src = make("h264-open-gop", "mp4", a);
    let out = TempDir::new("h264-open");
    split_ok(&src, out.path(), "2");
    assert_frame_exact(&src, out.path());
}

/// Writes a 90° rotation into the first `tkhd` box (what phones record), since ffmpeg 5.1
/// has no option for it on stream copy.
fn rotate_90(src: &Path, dst: &Path) {
    let mut data = std::fs::read(src).expect("read");
    let at = data.windows(4).position(|w| w == b"tkhd").expect("tkhd");
    let version = data[at + 4];
    let mut p = at + 8; // after type, version and flags
    p += if version == 0 { 8 } else { 16 }; // creation + modification time
    p += 8; // track id, reserved
    p += if version == 0 { 4 } else { 8 }; // duration
    p += 16; // reserved, layer, alternate group, volume, reserved
    let matrix: [i32; 9] = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
    for (i, v) in matrix.iter().enumerate() {
        data[p + 4 * i..p + 4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    std::fs::write(dst, data).expect("write");
}

#[test]
fn rotated_mov_keeps_its_rotation() {
    let mut a = pattern("160x90", "25", "4");
    a.extend(args(&["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p"]));
    let base = make("h264-plain", "mov", a);
    let src = derived("rotated", "mov", &base, rotate_90);
    assert_eq!(probe_rotation(&src), -90.0, "fixture must carry a display matrix");
    let out = TempDir::new("rotated");
    let manifest = split_ok(&src, out.path(), "1");
    assert_eq!(manifest["source"]["video"]["rotation"], 90);
    for seg in manifest["segments"].as_array().expect("segments") {
        let file = out.join(seg["path"].as_str().expect("path"));
        assert_eq!(probe_rotation(&file), -90.0, "{} lost the rotation", file.display());
    }
    // ffmpeg auto-rotates both when decoding: the frames match only if the rotation is kept.
    assert_frame_exact(&src, out.path());
}

#[test]
fn two_audio_tracks() {
    let mut a = pattern("160x90", "25", "4");
    a.extend(args(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:sample_rate=44100",
        "-t",
        "4",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-c:a:0",
        "aac",
        "-c:a:1",
        "ac3",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=fra",
        "-shortest",
    ]));
    let src = make("two-audio", "mp4", a);
    let out = TempDir::new("two-audio");
    let manifest = split_ok(&src, out.path(), "2");
    assert_frame_exact(&src, out.path());
    let audio = manifest["audio"].as_array().expect("audio");
    assert_eq!(audio.len(), 2);
    assert_eq!(
        (audio[0]["codec"].as_str(), audio[1]["codec"].as_str()),
        (Some("aac"), Some("ac3"))
    );
    assert_eq!(
        (audio[0]["language"].as_str(), audio[1]["language"].as_str()),
        (Some("eng"), Some("fra"))
    );
    for (i, entry) in audio.iter().enumerate() {
        let file = out.join(entry["path"].as_str().expect("path"));
        assert_eq!(audio_md5(&file, 0), audio_md5(&src, i), "audio track {i}");
    }
}

#[test]
fn gop_longer_than_the_target_is_one_segment() {
    let mut a = pattern("160x90", "25", "6");
    a.extend(args(&[
        "-c:v",
        "libx264",
        "-x264-params",
        "keyint=75:min-keyint=75:scenecut=0",
        "-pix_fmt",
        "yuv420p",
    ]));
    let src = make("long-gop", "mp4", a);
    let out = TempDir::new("long-gop");
    let manifest = split_ok(&src, out.path(), "1");
    assert_frame_exact(&src, out.path());
    let segments = manifest["segments"].as_array().expect("segments");
    // Keyframes every 3 s with a 1 s target: each segment is one GOP of 75 frames.
    assert_eq!(segments.len(), 2);
    assert!(segments.iter().all(|s| s["frames"] == 75));
    assert!(segments.iter().all(|s| s["duration_seconds"] == 3.0));
}

#[test]
fn a_single_keyframe_makes_one_segment() {
    let mut a = pattern("160x90", "25", "4");
    a.extend(args(&[
        "-c:v",
        "libx264",
        "-x264-params",
        "keyint=1000:min-keyint=1000:scenecut=0",
        "-pix_fmt",
        "yuv420p",
    ]));
    let src = make("one-keyframe", "mp4", a);
    let out = TempDir::new("one-keyframe");
    let manifest = split_ok(&src, out.path(), "1");
    assert_frame_exact(&src, out.path());
    let segments = manifest["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0]["frames"], 100);
}

#[test]
fn subtitles_and_timecode_are_left_out_and_listed() {
    let srt = scratch_root().join("fixtures").join("subs.srt");
    std::fs::create_dir_all(srt.parent().expect("dir")).expect("dir");
    std::fs::write(
        &srt,
        "1\n00:00:00,000 --> 00:00:01,500\nhello\n\n2\n00:00:02,000 --> 00:00:03,000\nworld\n",
    )
    .expect("srt");
    let mut a = pattern("160x90", "25", "4");
    a.extend(args(&[
        "-i",
        path_str(&srt),
        "-map",
        "0:v",
        "-map",
        "1:s",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-c:s",
        "mov_text",
        "-timecode",
        "01:00:00:00",
    ]));
    let src = make("subs-timecode", "mov", a);
    let out = TempDir::new("subs");
    let manifest = split_ok(&src, out.path(), "2");
    assert_frame_exact(&src, out.path());
    let excluded = manifest["excluded_streams"].as_array().expect("excluded");
    let types: Vec<&str> = excluded.iter().filter_map(|e| e["codec_type"].as_str()).collect();
    assert!(types.contains(&"subtitle"), "{excluded:?}");
    assert!(types.contains(&"data"), "timecode track listed: {excluded:?}");
    assert!(manifest["audio"].as_array().expect("audio").is_empty());
}

#[test]
fn same_input_and_settings_give_byte_identical_outputs() {
    let src = hevc_open_gop();
    let a = TempDir::new("determinism-a");
    let b = TempDir::new("determinism-b");
    let ma = split_ok(&src, a.path(), "2");
    let mb = split_ok(&src, b.path(), "2");
    assert_eq!(digests(&ma), digests(&mb));
    // And the fast path (closed GOPs, audio) too, checked on the files themselves.
    let src = h264_aac_mp4();
    let c = TempDir::new("determinism-c");
    let d = TempDir::new("determinism-d");
    let mc = split_ok(&src, c.path(), "2");
    split_ok(&src, d.path(), "2");
    for path in digests(&mc).keys() {
        assert_eq!(sha256_file(&c.join(path)), sha256_file(&d.join(path)), "{path}");
    }
    assert_eq!(
        std::fs::read(c.join("manifest.json")).ok(),
        std::fs::read(d.join("manifest.json")).ok()
    );
}
