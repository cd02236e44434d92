//! Every kind of video the issue lists: split, then prove frame-exactness by decoding the
//! source and every segment with the host ffmpeg and comparing per-frame md5s. Where the
//! common `-f segment -reset_timestamps 1` recipe fails, the test shows it failing too.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;

/// Splits `src` into a new directory (named after `name`) every `seconds` and proves the
/// segments frame-exact; returns the directory, the manifest and the source's frame count.
fn split_exact(src: &Path, name: &str, seconds: &str) -> (TempDir, Value, usize) {
    let out = TempDir::new(name);
    let manifest = split_ok(src, out.path(), seconds);
    let frames = assert_frame_exact(src, out.path());
    (out, manifest, frames)
}

/// The samples of the manifest's audio file `index` equal those of the source's audio
/// stream `index`.
fn assert_audio_same(out: &TempDir, manifest: &Value, src: &Path, index: usize) {
    let audio = out.join(manifest["audio"][index]["path"].as_str().expect("audio path"));
    assert_eq!(audio_md5(&audio, 0), audio_md5(src, index), "audio track {index}");
}

/// 6 s of 160x90 H.264 with B-frames (x264 defaults: B-pyramid, closed GOP) and AAC.
fn h264_aac_mp4() -> PathBuf {
    encoded(
        "h264-aac",
        "mp4",
        "160x90",
        "6",
        "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 6 \
         -c:v libx264 -g 25 -pix_fmt yuv420p -c:a aac -b:a 64k",
    )
}

/// x265's defaults: open GOP, keyframes are CRA pictures with RASL leading pictures.
fn hevc_open_gop() -> PathBuf {
    encoded(
        "hevc-open-gop",
        "mp4",
        "160x90",
        "6",
        "-c:v libx265 -x265-params keyint=25:min-keyint=25:log-level=error -pix_fmt yuv420p",
    )
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
    let (out, manifest, frames) = split_exact(&src, "h264", "2");
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
    assert_audio_same(&out, &manifest, &src, 0);
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
    let (_out, manifest, frames) = split_exact(&src, "hevc-open", "2");
    assert_eq!(frames, expected);
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
    let (out, manifest, frames) = split_exact(&src, "edit-list", "2");
    assert_eq!(frames, expected);
    assert!(
        manifest["segments"][0]["lead_in_frames"].as_u64() > Some(0),
        "the hidden frames are the first segment's lead-in"
    );
    // The audio keeps its edit list (priming and trim): same samples as the source.
    assert_audio_same(&out, &manifest, &src, 0);
}

#[test]
fn variable_frame_rate() {
    // Drop frames irregularly and keep the timestamps: frame durations vary.
    let src = encoded(
        "vfr",
        "mp4",
        "160x90",
        "6",
        "-vf select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,5)\\,1))' -fps_mode vfr \
         -c:v libx264 -g 20 -pix_fmt yuv420p",
    );
    let (_out, manifest, _) = split_exact(&src, "vfr", "1.5");
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
    let src = encoded(
        "h264",
        "ts",
        "160x90",
        "5",
        "-f lavfi -i sine=sample_rate=48000 -t 5 \
         -c:v libx264 -g 25 -pix_fmt yuv420p -c:a aac -f mpegts",
    );
    let (out, manifest, _) = split_exact(&src, "ts-h264", "2");
    assert_eq!(manifest["source"]["format"], "mpegts");
    assert_audio_same(&out, &manifest, &src, 0);
}

#[test]
fn mpeg_ts_mpeg2_open_gop() {
    // ffmpeg's MPEG-2 encoder makes open GOPs: B-frames after an I-frame reference the
    // previous GOP, so cuts need a lead-in.
    let src = encoded(
        "mpeg2",
        "ts",
        "160x90",
        "6",
        "-f lavfi -i sine=sample_rate=48000 -t 6 \
         -c:v mpeg2video -bf 2 -g 25 -c:a mp2 -f mpegts",
    );
    let (expected, naive, _) = naive_recipe(&src, "2");
    assert!(naive < expected, "the naive recipe drops leading B-frames ({naive} of {expected})");
    let (out, manifest, frames) = split_exact(&src, "ts-mpeg2", "2");
    assert_eq!(frames, expected);
    assert_eq!(manifest["source"]["video"]["codec"], "mpeg2video");
    assert_eq!(manifest["audio"][0]["codec"], "mp2");
    assert_audio_same(&out, &manifest, &src, 0);
}

/// Matroska stores presentation timestamps only: a demuxer must know the stream's reordering
/// depth (from the decoder's view of the SPS) to rebuild the decode timestamps of B-frames.
/// An ffmpeg without the H.264/HEVC decoders gets `dts = pts` here and breaks the segments.
#[test]
fn matroska_h264_with_b_frames_and_opus() {
    let src = encoded(
        "mkv-h264-bf3",
        "mkv",
        "320x180",
        "9",
        "-f lavfi -i sine=sample_rate=48000 -t 9 \
         -c:v libx264 -bf 3 -g 50 -pix_fmt yuv420p -c:a libopus",
    );
    let (out, manifest, frames) = split_exact(&src, "mkv-h264", "2");
    assert_eq!(frames, 225);
    assert_eq!(manifest["source"]["format"], "matroska,webm");
    assert_eq!(manifest["source"]["video"]["codec"], "h264");
    assert!(manifest["segments"].as_array().expect("segments").len() >= 4);
    assert_eq!(manifest["audio"][0]["codec"], "opus");
    assert_audio_same(&out, &manifest, &src, 0);
}

#[test]
fn matroska_hevc_closed_gop_with_b_frames() {
    let src = encoded(
        "mkv-hevc-closed-bf3",
        "mkv",
        "320x180",
        "6",
        "-c:v libx265 -x265-params \
         keyint=30:min-keyint=30:scenecut=0:no-open-gop=1:bframes=3:log-level=error \
         -pix_fmt yuv420p",
    );
    let (_out, manifest, frames) = split_exact(&src, "mkv-hevc-closed", "1.5");
    assert_eq!(frames, 150);
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments.len() >= 4);
    assert!(segments.iter().all(|s| s["lead_in_frames"] == 0), "closed GOPs need no lead-in");
}

#[test]
fn matroska_hevc_open_gop_needs_lead_ins() {
    let src = encoded(
        "mkv-hevc-open-bf3",
        "mkv",
        "320x180",
        "6",
        "-c:v libx265 -x265-params keyint=30:min-keyint=30:scenecut=0:bframes=3:log-level=error \
         -pix_fmt yuv420p",
    );
    let (_out, manifest, frames) = split_exact(&src, "mkv-hevc-open", "1.5");
    assert_eq!(frames, 150);
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments.len() >= 4);
    assert!(
        segments[1..].iter().all(|s| s["lead_in_frames"].as_u64() > Some(0)),
        "CRA cuts need a lead-in from the previous GOP: {segments:?}"
    );
}

/// Camera and capture-card recordings: Motion JPEG and PCM in AVI.
#[test]
fn avi_mjpeg_and_pcm() {
    let src = encoded(
        "avi-mjpeg",
        "avi",
        "160x90",
        "4",
        "-f lavfi -i sine=sample_rate=48000 -t 4 -c:v mjpeg -q:v 5 -c:a pcm_s16le",
    );
    let (out, manifest, frames) = split_exact(&src, "avi-mjpeg", "1");
    assert_eq!(frames, 100);
    assert_eq!(manifest["source"]["format"], "avi");
    assert!(manifest["segments"].as_array().expect("segments").len() >= 4);
    assert_audio_same(&out, &manifest, &src, 0);
}

/// Xvid-style AVI: MPEG-4 Part 2 with B-frames and AC-3 audio (AVI has no timestamps of
/// its own beyond the frame index; B-frames after an I-frame reference the previous GOP).
#[test]
fn avi_mpeg4_with_b_frames() {
    let src = encoded(
        "avi-mpeg4-bf2",
        "avi",
        "160x90",
        "4",
        "-f lavfi -i sine=sample_rate=44100 -t 4 -c:v mpeg4 -bf 2 -g 25 -vtag XVID -c:a ac3",
    );
    let (out, manifest, frames) = split_exact(&src, "avi-mpeg4", "1");
    assert_eq!(frames, 100);
    assert_eq!(manifest["source"]["video"]["codec"], "mpeg4");
    assert_audio_same(&out, &manifest, &src, 0);
}

/// DVD and broadcast captures: MPEG-2 with B-frames and MP2 in an MPEG program stream.
#[test]
fn mpeg_ps_mpeg2_with_b_frames() {
    let src = encoded(
        "mpeg-ps",
        "mpg",
        "160x90",
        "6",
        "-f lavfi -i sine=sample_rate=48000 -t 6 \
         -c:v mpeg2video -bf 2 -g 25 -c:a mp2 -f vob",
    );
    let (out, manifest, _) = split_exact(&src, "mpeg-ps", "2");
    assert_eq!(manifest["source"]["format"], "mpeg");
    assert_eq!(manifest["source"]["video"]["codec"], "mpeg2video");
    assert_audio_same(&out, &manifest, &src, 0);
}

/// Flash-era web video and RTMP recordings: H.264 with B-frames and AAC in FLV.
#[test]
fn flv_h264_with_b_frames() {
    let src = encoded(
        "flv-h264",
        "flv",
        "160x90",
        "6",
        "-f lavfi -i sine=sample_rate=44100 -t 6 \
         -c:v libx264 -bf 3 -g 25 -pix_fmt yuv420p -c:a aac",
    );
    let (out, manifest, frames) = split_exact(&src, "flv-h264", "2");
    assert_eq!(frames, 150);
    assert_eq!(manifest["source"]["format"], "flv");
    assert_audio_same(&out, &manifest, &src, 0);
}

/// Older WebM: VP8 and Vorbis (the vp8 and vorbis parsers of the components list).
#[test]
fn webm_vp8_and_vorbis() {
    let src = encoded(
        "vp8-vorbis",
        "webm",
        "160x90",
        "4",
        "-f lavfi -i sine=sample_rate=44100 -t 4 \
         -c:v libvpx -deadline realtime -cpu-used 8 -g 25 -c:a libvorbis",
    );
    let (out, manifest, _) = split_exact(&src, "webm-vp8", "1");
    assert_eq!(manifest["source"]["video"]["codec"], "vp8");
    assert_eq!(manifest["audio"][0]["codec"], "vorbis");
    assert_audio_same(&out, &manifest, &src, 0);
}

/// Matroska rips with lossless and DTS audio: FLAC and DTS (the flac and dca parsers).
#[test]
fn matroska_flac_and_dts_audio() {
    let src = encoded(
        "mkv-flac-dts",
        "mkv",
        "160x90",
        "4",
        "-f lavfi -i sine=frequency=440:sample_rate=48000 \
         -f lavfi -i sine=frequency=880:sample_rate=48000 -t 4 \
         -map 0:v -map 1:a -map 2:a -c:v libx264 -g 25 -pix_fmt yuv420p \
         -c:a:0 flac -c:a:1 dca -strict -2 -ac:a:1 2 -shortest",
    );
    let (out, manifest, _) = split_exact(&src, "mkv-flac-dts", "2");
    let codecs: Vec<&str> = manifest["audio"]
        .as_array()
        .expect("audio")
        .iter()
        .filter_map(|a| a["codec"].as_str())
        .collect();
    assert_eq!(codecs, ["flac", "dts"]);
    for i in 0..2 {
        assert_audio_same(&out, &manifest, &src, i);
    }
}

/// Video CD era: MPEG-1 video and MP2 in an MPEG program stream.
#[test]
fn mpeg_ps_mpeg1() {
    let src = encoded(
        "mpeg1-ps",
        "mpg",
        "160x90",
        "4",
        "-f lavfi -i sine=sample_rate=44100 -t 4 -c:v mpeg1video -bf 2 -g 25 -c:a mp2 -f mpeg",
    );
    let (out, manifest, _) = split_exact(&src, "mpeg1-ps", "1");
    assert_eq!(manifest["source"]["video"]["codec"], "mpeg1video");
    assert_audio_same(&out, &manifest, &src, 0);
}

/// Broadcast captures with LATM-framed AAC in MPEG-TS (the aac_latm parser and decoder).
#[test]
fn mpeg_ts_with_latm_aac() {
    let src = encoded(
        "ts-latm",
        "ts",
        "160x90",
        "4",
        "-f lavfi -i sine=sample_rate=48000 -t 4 \
         -c:v libx264 -g 25 -pix_fmt yuv420p -c:a aac -mpegts_flags latm -f mpegts",
    );
    let (out, manifest, _) = split_exact(&src, "ts-latm", "1");
    assert_eq!(manifest["audio"][0]["codec"], "aac_latm");
    assert_audio_same(&out, &manifest, &src, 0);
}

/// PCM audio in a MOV (camera and editing exports): MP4 cannot hold it, so the audio file is a
/// `.mov` (the mov muxer of the components list).
#[test]
fn mov_with_pcm_audio() {
    let src = encoded(
        "mov-pcm",
        "mov",
        "160x90",
        "4",
        "-f lavfi -i sine=sample_rate=48000 -t 4 \
         -c:v libx264 -g 25 -pix_fmt yuv420p -c:a pcm_s24le",
    );
    let (out, manifest, _) = split_exact(&src, "mov-pcm", "2");
    assert!(manifest["audio"][0]["path"].as_str().is_some_and(|p| p.ends_with(".mov")));
    assert_audio_same(&out, &manifest, &src, 0);
}

#[test]
fn webm_vp9_and_opus() {
    let src = encoded(
        "vp9-opus",
        "webm",
        "160x90",
        "5",
        "-f lavfi -i sine=sample_rate=48000 -t 5 \
         -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 25 -c:a libopus",
    );
    let (out, manifest, _) = split_exact(&src, "webm", "2");
    assert_eq!(manifest["source"]["video"]["codec"], "vp9");
    assert!(manifest["segments"][0]["path"].as_str().is_some_and(|p| p.ends_with(".mkv")));
    assert_eq!(manifest["audio"][0]["codec"], "opus");
    // Opus pre-skip and end trimming survive: same samples.
    assert_audio_same(&out, &manifest, &src, 0);
}

#[test]
fn av1_in_mp4() {
    let src = encoded(
        "av1",
        "mp4",
        "128x72",
        "4",
        "-c:v libaom-av1 -cpu-used 8 -row-mt 1 -g 25 -pix_fmt yuv420p",
    );
    let (_out, manifest, _) = split_exact(&src, "av1", "1");
    assert_eq!(manifest["source"]["video"]["codec"], "av1");
    assert!(manifest["segments"].as_array().expect("segments").len() >= 3);
}

#[test]
fn hevc_10_bit() {
    let src = encoded(
        "hevc-10bit",
        "mp4",
        "160x90",
        "4",
        "-c:v libx265 -x265-params keyint=25:log-level=error -pix_fmt yuv420p10le",
    );
    let (_out, manifest, _) = split_exact(&src, "hevc10", "1");
    // A decoder-less ffprobe (the container's) cannot tell the pixel format: null then.
    let pix_fmt = &manifest["source"]["video"]["pixel_format"];
    assert!(pix_fmt == "yuv420p10le" || pix_fmt.is_null(), "{pix_fmt}");
}

#[test]
fn hevc_idr_with_decodable_leading_pictures_needs_no_lead_in() {
    // Closed GOPs whose IDR pictures carry RADL leading pictures: clean cuts, which the
    // splitter tells apart from CRA pictures by their NAL unit type.
    let src = encoded(
        "hevc-radl",
        "mp4",
        "160x90",
        "4",
        "-c:v libx265 -x265-params \
         keyint=25:min-keyint=25:scenecut=0:no-open-gop=1:radl=2:bframes=3:b-adapt=0:log-level=error \
         -pix_fmt yuv420p",
    );
    let (_out, manifest, _) = split_exact(&src, "hevc-radl", "1");
    let segments = manifest["segments"].as_array().expect("segments");
    assert!(segments.len() >= 3);
    assert!(segments.iter().all(|s| s["lead_in_frames"] == 0));
}

#[test]
fn open_gop_h264() {
    let src = encoded(
        "h264-open-gop",
        "mp4",
        "160x90",
        "6",
        "-c:v libx264 -x264-params open-gop=1:keyint=25:min-keyint=25 -pix_fmt yuv420p",
    );
    split_exact(&src, "h264-open", "2");
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
    let base = encoded("h264-plain", "mov", "160x90", "4", "-c:v libx264 -g 25 -pix_fmt yuv420p");
    let src = derived("rotated", "mov", &base, rotate_90);
    assert_eq!(probe_rotation(&src), -90.0, "fixture must carry a display matrix");
    // ffmpeg auto-rotates both when decoding: the frames match only if the rotation is kept.
    let (out, manifest, _) = split_exact(&src, "rotated", "1");
    assert_eq!(manifest["source"]["video"]["rotation"], 90);
    for seg in manifest["segments"].as_array().expect("segments") {
        let file = out.join(seg["path"].as_str().expect("path"));
        assert_eq!(probe_rotation(&file), -90.0, "{} lost the rotation", file.display());
    }
}

#[test]
fn two_audio_tracks() {
    let src = support::two_audio_tracks();
    let (out, manifest, _) = split_exact(&src, "two-audio", "2");
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
    for i in 0..audio.len() {
        assert_audio_same(&out, &manifest, &src, i);
    }
}

#[test]
fn gop_longer_than_the_target_is_one_segment() {
    let src = encoded(
        "long-gop",
        "mp4",
        "160x90",
        "6",
        "-c:v libx264 -x264-params keyint=75:min-keyint=75:scenecut=0 -pix_fmt yuv420p",
    );
    let (_out, manifest, _) = split_exact(&src, "long-gop", "1");
    let segments = manifest["segments"].as_array().expect("segments");
    // Keyframes every 3 s with a 1 s target: each segment is one GOP of 75 frames.
    assert_eq!(segments.len(), 2);
    assert!(segments.iter().all(|s| s["frames"] == 75));
    assert!(segments.iter().all(|s| s["duration_seconds"] == 3.0));
}

#[test]
fn a_single_keyframe_makes_one_segment() {
    let src = encoded(
        "one-keyframe",
        "mp4",
        "160x90",
        "4",
        "-c:v libx264 -x264-params keyint=1000:min-keyint=1000:scenecut=0 -pix_fmt yuv420p",
    );
    let (_out, manifest, _) = split_exact(&src, "one-keyframe", "1");
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
    let mut args = pattern("160x90", "25", "4");
    args.extend(["-i".to_owned(), path_str(&srt).to_owned()]);
    args.extend(
        "-map 0:v -map 1:s -c:v libx264 -g 25 -pix_fmt yuv420p -c:s mov_text -timecode 01:00:00:00"
            .split_whitespace()
            .map(str::to_owned),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let src = fixture("subs-timecode", "mov", &refs);
    let (_out, manifest, _) = split_exact(&src, "subs", "2");
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
