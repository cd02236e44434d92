//! `splitter::mp4` against ffmpeg, independently of the splitter's own listing code: for files
//! made with the host's ffmpeg (and segments cut by the splitter), the packets read from the
//! MP4/MOV tables must be exactly the ones `ffmpeg -map 0:v:0 -c copy -f framecrc` lists —
//! count, time base, sizes, key flags, and dts and pts up to one constant offset (ffmpeg's
//! input start time) — and exactly what `ffprobe -show_packets` prints, offset included. For
//! H.264 and HEVC, the NAL unit query must pick the packets `-bsf:v filter_units` keeps.
//! Files the reader cannot promise that for must be declined, never answered wrongly.
//!
//! Nothing is skipped: without /usr/bin/ffmpeg and /usr/bin/ffprobe the tests fail. Inputs are
//! always made with the host's ffmpeg; the listings to compare with (and the splitter's cut)
//! come from `SPLITTER_TEST_FFMPEG`/`SPLITTER_TEST_FFPROBE` when set (`cargo xtask test` sets
//! them to the image's static ffmpeg), so the reader is held to the ffmpeg that ships.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use splitter::mp4::Video;
use splitter::packets;

const FFMPEG: &str = "/usr/bin/ffmpeg";
const FFPROBE: &str = "/usr/bin/ffprobe";
/// 3 s of a moving test pattern, small.
const PATTERN: &str = "testsrc2=size=160x90:rate=25:duration=3";

fn tool(path: &'static str) -> &'static str {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: these tests compare the MP4 reader with the host's ffmpeg 5.1 \
         (install ffmpeg, or run `cargo xtask test`)"
    );
    path
}

/// The ffmpeg (or ffprobe, `var`) whose listings the reader must match: the shipped one when
/// the environment names it, else the host's.
fn reference(var: &str, host: &'static str) -> String {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => path,
        _ => tool(host).to_string(),
    }
}

/// Runs a program, returning its stdout; panics with its stderr when it fails.
fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("mp4_index")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// Runs ffmpeg with `args` (inputs, options) writing `name` here.
    fn make(&self, name: &str, args: &[&str]) -> PathBuf {
        let out = self.0.join(name);
        let mut all = vec!["-v", "error", "-y"];
        all.extend_from_slice(args);
        all.push(out.to_str().expect("utf-8 path"));
        run(tool(FFMPEG), &all);
        out
    }

    /// A test pattern encoded with `codec_args`.
    fn encode(&self, name: &str, codec_args: &[&str]) -> PathBuf {
        let mut args = vec!["-f", "lavfi", "-i", PATTERN];
        args.extend_from_slice(codec_args);
        self.make(name, &args)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packet {
    dts: i64,
    pts: i64,
    size: u64,
    flags: u32,
}

#[derive(Debug)]
struct Listing {
    time_base: (i64, i64),
    packets: Vec<Packet>,
    text: String,
}

/// Parses a framecrc listing: `#tb 0: N/D`, then `stream, dts, pts, duration, size, crc[,
/// F=0xFLAGS]` (no `F=`: the flags are exactly "key").
fn parse_listing(text: String) -> Listing {
    let mut time_base = None;
    let mut packets = Vec::new();
    for line in text.lines() {
        if let Some(tb) = line.strip_prefix("#tb 0:") {
            let (n, d) = tb.trim().split_once('/').expect("N/D");
            time_base = Some((n.parse().expect("number"), d.parse().expect("number")));
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        assert!(f.len() >= 6, "unexpected framecrc line {line:?}");
        let flags = match f.get(6) {
            Some(x) => {
                let hex = x.strip_prefix("F=0x").expect("F=0x flags");
                u32::from_str_radix(hex, 16).expect("hex flags")
            }
            None => 1,
        };
        let number = |i: usize| f[i].parse::<i64>().expect("number");
        packets.push(Packet { dts: number(1), pts: number(2), size: number(4) as u64, flags });
    }
    Listing { time_base: time_base.expect("a #tb line"), packets, text }
}

/// `ffmpeg -i FILE -map 0:v:0 -c copy [extra] -f framecrc -`.
fn framecrc(file: &Path, extra: &[&str]) -> Listing {
    let mut args = vec!["-v", "error", "-i", s(file), "-map", "0:v:0", "-c", "copy"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "framecrc", "-"]);
    let ffmpeg = reference("SPLITTER_TEST_FFMPEG", FFMPEG);
    parse_listing(String::from_utf8(run(&ffmpeg, &args)).expect("utf-8"))
}

/// The demuxer's own (pts, dts) of the first video stream, as ffprobe prints them.
fn ffprobe_stamps(file: &Path) -> Vec<(i64, i64)> {
    let args = ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,dts"];
    let ffprobe = reference("SPLITTER_TEST_FFPROBE", FFPROBE);
    let out = run(&ffprobe, &[&args[..], &["-of", "csv=p=0", s(file)]].concat());
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (pts, dts) = l.trim().split_once(',').expect("pts,dts");
            (pts.parse().expect("pts"), dts.parse().expect("dts"))
        })
        .collect()
}

fn read(file: &Path) -> Video {
    match Video::read_or_decline(file).expect("reads") {
        Ok(video) => video,
        Err(declined) => panic!("{} declined: {declined}", file.display()),
    }
}

fn declined(file: &Path) -> String {
    match Video::read_or_decline(file).expect("reads") {
        Ok(video) => panic!("{} was read, expected a decline: {video:?}", file.display()),
        Err(declined) => declined.0,
    }
}

/// Reads `file` and checks the answer against ffmpeg's (see the module notes); returns it.
fn assert_exact(file: &Path) -> Video {
    let video = read(file);
    let shown = file.display();
    let listing = framecrc(file, &[]);
    assert_eq!(listing.time_base, (1, i64::from(video.timescale)), "{shown}: time base");
    assert_eq!(video.samples.len(), listing.packets.len(), "{shown}: packet count");
    let offset = listing.packets[0].pts - video.samples[0].pts;
    for (i, (ours, ff)) in video.samples.iter().zip(&listing.packets).enumerate() {
        let ours_as_ff = Packet {
            dts: ours.dts + offset,
            pts: ours.pts + offset,
            size: ours.size,
            flags: ff.flags & !1 | u32::from(ours.key),
        };
        assert_eq!(ours_as_ff, *ff, "{shown}: packet {i} (ours {ours:?}, ffmpeg offset {offset})");
    }
    // Offset included: the demuxer's timestamps, as ffprobe shows them.
    let ours: Vec<(i64, i64)> = video.samples.iter().map(|s| (s.pts, s.dts)).collect();
    assert_eq!(ours, ffprobe_stamps(file), "{shown}: (pts, dts) against ffprobe");
    // What the read-back compares: the same digest as the listing it reads today.
    let listed = packets::read_timeline(listing.text.as_bytes()).expect("listing parses");
    assert_eq!(video.timeline().pts_digest(), listed.pts_digest(), "{shown}: pts digest");

    let idr = match &video.codec {
        b"avc1" | b"avc3" => Some(("pass_types=5", 5..=5)),
        b"hvc1" | b"hev1" => Some(("pass_types=19-20", 19..=20)),
        _ => None,
    };
    if let Some((pass, types)) = idr {
        let ours = video.pts_with_nal_types(file, types).expect("reads").expect("H.264/HEVC");
        let ours: Vec<i64> = ours.iter().map(|p| p - video.samples[0].pts).collect();
        let filtered = framecrc(file, &["-bsf:v", &format!("filter_units={pass}")]);
        let first = listing.packets[0].pts;
        let ff: Vec<i64> = filtered.packets.iter().map(|p| p.pts - first).collect();
        assert_eq!(ours, ff, "{shown}: packets with IDR NAL units");
    } else {
        assert_eq!(video.pts_with_nal_types(file, 0..=63).expect("reads"), None);
    }
    video
}

fn key_count(video: &Video) -> usize {
    video.samples.iter().filter(|s| s.key).count()
}

fn reordered(video: &Video) -> bool {
    video.samples.iter().any(|s| s.pts != s.dts - video.samples[0].dts + video.samples[0].pts)
}

/// H.264 with B-frames and two GOPs, as MP4 (with the edit list the muxer writes for B-frames).
fn h264_b_frames(dir: &Scratch, name: &str) -> PathBuf {
    dir.encode(name, &["-c:v", "libx264", "-bf", "3", "-g", "25"])
}

#[test]
fn h264_with_b_frames_mp4_and_mov() {
    let dir = Scratch::new("h264-b");
    for name in ["b.mp4", "b.mov"] {
        let video = assert_exact(&h264_b_frames(&dir, name));
        assert_eq!(&video.codec, b"avc1");
        assert!(reordered(&video) && key_count(&video) == 3, "{name}: B-frames, 3 GOPs");
    }
}

#[test]
fn h264_without_b_frames_fast_start() {
    let dir = Scratch::new("h264-faststart");
    let file = dir.encode("f.mp4", &["-c:v", "libx264", "-bf", "0", "-movflags", "+faststart"]);
    let bytes = std::fs::read(&file).expect("read");
    let at = |kind: &[u8]| bytes.windows(4).position(|w| w == kind).expect("box");
    assert!(at(b"moov") < at(b"mdat"), "moov first");
    let video = assert_exact(&file);
    assert!(!reordered(&video));
}

#[test]
fn hevc_open_and_closed_gops_hvc1_and_hev1() {
    let dir = Scratch::new("hevc");
    for (gop, open) in [("open", 1), ("closed", 0)] {
        for tag in ["hvc1", "hev1"] {
            let params = format!("open-gop={open}:keyint=30:bframes=4:log-level=error");
            let file = dir.encode(
                &format!("{gop}-{tag}.mp4"),
                &["-c:v", "libx265", "-x265-params", &params, "-tag:v", tag],
            );
            let video = assert_exact(&file);
            assert_eq!(&video.codec, tag.as_bytes());
            assert!(reordered(&video));
            let idr = video.pts_with_nal_types(&file, 19..=20).expect("reads").expect("HEVC");
            if open == 1 {
                assert!(idr.len() < key_count(&video), "{gop}-{tag}: CRA key frames");
            } else {
                assert_eq!(idr.len(), key_count(&video), "{gop}-{tag}: IDR key frames only");
            }
        }
    }
}

#[test]
fn h264_variable_frame_rate() {
    let dir = Scratch::new("vfr");
    let file = dir.encode(
        "vfr.mp4",
        &[
            "-vf",
            "setpts='if(lt(N,20),N*2,N*3+20)/TB'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "libx264",
            "-bf",
            "2",
        ],
    );
    let video = assert_exact(&file);
    let mut durations: Vec<i64> = video.samples.iter().map(|s| s.duration).collect();
    durations.dedup();
    assert!(durations.len() > 1, "variable durations: {durations:?}");
}

#[test]
fn edit_lists_shift_or_are_declined() {
    let dir = Scratch::new("edits");
    let source = h264_b_frames(&dir, "b.mp4");
    // An empty edit before the media: every timestamp moves by 0.5 s.
    let late = dir.make("late.mp4", &["-itsoffset", "0.5", "-i", s(&source), "-c", "copy"]);
    let video = assert_exact(&late);
    assert_eq!(video.samples[0].pts, i64::from(video.timescale) / 2);
    // A cut inside a GOP: the edit list hides the frames before 1.3 s, which ffmpeg lists
    // as discarded. Declined.
    let cut = dir.make("cut.mp4", &["-ss", "1.3", "-i", s(&source), "-c", "copy"]);
    assert!(framecrc(&cut, &[]).packets.iter().any(|p| p.flags & 4 != 0));
    assert!(declined(&cut).contains("hides frames"), "{}", declined(&cut));
    // Without an edit list, B-frames start at a positive pts.
    let plain = dir.make("plain.mp4", &["-i", s(&source), "-c", "copy", "-use_editlist", "0"]);
    let video = assert_exact(&plain);
    assert!(video.samples[0].pts > 0);
}

#[test]
fn negative_composition_offsets() {
    let dir = Scratch::new("negative-cts");
    let file = dir
        .encode("neg.mp4", &["-c:v", "libx264", "-bf", "3", "-movflags", "+negative_cts_offsets"]);
    let bytes = std::fs::read(&file).expect("read");
    let ctts = bytes.windows(4).position(|w| w == b"ctts").expect("ctts box");
    assert_eq!(bytes[ctts + 4], 1, "ctts version 1");
    let video = assert_exact(&file);
    assert!(video.samples.iter().any(|s| s.dts < 0), "dts shifted for negative offsets");
}

#[test]
fn audio_track_before_the_video() {
    let dir = Scratch::new("audio-first");
    let file = dir.make(
        "av.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            PATTERN,
            "-f",
            "lavfi",
            "-i",
            "sine=duration=3",
            "-map",
            "1:a",
            "-map",
            "0:v",
            "-c:v",
            "libx264",
            "-bf",
            "3",
            "-c:a",
            "aac",
        ],
    );
    assert!(reordered(&assert_exact(&file)));
}

#[test]
fn other_codecs() {
    let dir = Scratch::new("codecs");
    let mpeg4 = dir.encode("mpeg4.mp4", &["-c:v", "mpeg4", "-bf", "2", "-g", "12"]);
    let video = assert_exact(&mpeg4);
    assert!(&video.codec == b"mp4v" && reordered(&video) && key_count(&video) > 1);
    // AV1 and VP9 packets get their key flags from libavformat's parsers: declined.
    let av1 = dir.encode("av1.mp4", &["-t", "1", "-c:v", "libaom-av1", "-cpu-used", "8"]);
    assert!(declined(&av1).contains("av01"));
    let vp9 = dir.encode("vp9.mp4", &["-t", "1", "-c:v", "libvpx-vp9", "-deadline", "realtime"]);
    assert!(declined(&vp9).contains("vp09"));
}

/// Rewrites the second `stss` entry (sample 26 or so, the second GOP) to sample 2.
fn move_second_sync_sample(file: &Path, to: &Path) {
    let mut bytes = std::fs::read(file).expect("read");
    let stss = bytes.windows(4).position(|w| w == b"stss").expect("stss box");
    let count = u32::from_be_bytes(bytes[stss + 8..stss + 12].try_into().expect("4 bytes"));
    assert!(count >= 2);
    bytes[stss + 16..stss + 20].copy_from_slice(&2u32.to_be_bytes());
    std::fs::write(to, bytes).expect("write");
}

#[test]
fn key_flags_follow_ffmpeg_rather_than_stss_for_h264() {
    let dir = Scratch::new("stss");
    // H.264: ffmpeg's parser flags IDR pictures, whatever stss says.
    let h264 = dir.encode("h264.mp4", &["-c:v", "libx264", "-bf", "3", "-g", "25"]);
    let moved = dir.0.join("h264-moved.mp4");
    move_second_sync_sample(&h264, &moved);
    let video = assert_exact(&moved);
    assert!(!video.samples[1].key && video.samples[25].key);
    // HEVC: stss it is.
    let params = "keyint=30:bframes=4:log-level=error";
    let hevc = dir.encode("hevc.mp4", &["-c:v", "libx265", "-x265-params", params]);
    let moved = dir.0.join("hevc-moved.mp4");
    move_second_sync_sample(&hevc, &moved);
    let video = assert_exact(&moved);
    assert!(video.samples[1].key);
}

/// `splitter split INPUT OUT --segment-seconds 1`; returns the segment files.
fn split(dir: &Scratch, input: &Path, name: &str) -> Vec<PathBuf> {
    let out = dir.0.join(name);
    let work = dir.0.join(format!("{name}-work"));
    std::fs::create_dir_all(&work).expect("work dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_splitter"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SPLITTER_") {
            cmd.env_remove(key);
        }
    }
    let ffmpeg = reference("SPLITTER_TEST_FFMPEG", FFMPEG);
    let ffprobe = reference("SPLITTER_TEST_FFPROBE", FFPROBE);
    cmd.args(["--ffmpeg", &ffmpeg, "--ffprobe", &ffprobe, "--work-dir", s(&work)]);
    cmd.args(["split", s(input), s(&out), "--segment-seconds", "1"]);
    let result = cmd.output().expect("runs the splitter");
    assert!(result.status.success(), "split failed: {}", String::from_utf8_lossy(&result.stderr));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(out.join("segments"))
        .expect("segments dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    segments.sort();
    segments
}

#[test]
fn segments_the_splitter_writes() {
    let dir = Scratch::new("segments");
    let five = "testsrc2=size=160x90:rate=25:duration=5";
    let h264 = dir
        .make("h264.mp4", &["-f", "lavfi", "-i", five, "-c:v", "libx264", "-bf", "3", "-g", "25"]);
    let params = "open-gop=1:keyint=30:bframes=4:log-level=error";
    let hevc = dir.make(
        "hevc.mp4",
        &["-f", "lavfi", "-i", five, "-c:v", "libx265", "-x265-params", params, "-tag:v", "hvc1"],
    );
    for (input, name) in [(&h264, "h264-out"), (&hevc, "hevc-out")] {
        let segments = split(&dir, input, name);
        assert!(segments.len() >= 3, "{name}: {} segments", segments.len());
        let mut packets = 0;
        for segment in &segments {
            packets += assert_exact(segment).samples.len();
        }
        assert!(packets >= 125, "{name}: {packets} packets in all segments");
    }
}

#[test]
fn declines_what_it_cannot_promise() {
    let dir = Scratch::new("declines");
    let source = h264_b_frames(&dir, "b.mp4");
    let fragmented = dir.make(
        "frag.mp4",
        &["-i", s(&source), "-c", "copy", "-movflags", "frag_keyframe+empty_moov"],
    );
    assert!(declined(&fragmented).contains("fragmented"));
    let mkv = dir.make("b.mkv", &["-i", s(&source), "-c", "copy"]);
    assert!(declined(&mkv).contains("not an MP4"));
    let text = dir.0.join("notes.txt");
    std::fs::write(&text, "not a video, just some text\n").expect("write");
    assert!(declined(&text).contains("not an MP4"));
    // x264's open GOPs: recovery point SEIs make ffmpeg's parser flag non-IDR key frames.
    let open =
        dir.encode("open.mp4", &["-c:v", "libx264", "-g", "25", "-x264-params", "open-gop=1"]);
    assert!(declined(&open).contains("recovery point"));
    assert!(Video::read(&dir.0.join("missing.mp4")).is_err(), "a missing file is an error");

    // Truncated: the moov at the end cut in half; a fast-start file cut inside its samples.
    let bytes = std::fs::read(&source).expect("read");
    let moov = bytes.windows(4).position(|w| w == b"moov").expect("moov") - 4;
    let half = dir.0.join("half-moov.mp4");
    std::fs::write(&half, &bytes[..moov + (bytes.len() - moov) / 2]).expect("write");
    assert!(!matches!(Video::read(&half), Ok(Some(_))), "never an answer for a cut moov");
    assert!(Video::read(&half).is_err());
    let fast = dir.make("fast.mp4", &["-i", s(&source), "-c", "copy", "-movflags", "+faststart"]);
    let bytes = std::fs::read(&fast).expect("read");
    let cut = dir.0.join("cut-samples.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).expect("write");
    let error = Video::read(&cut).expect_err("samples past the end");
    assert!(format!("{error:#}").contains("past the end"), "{error:#}");
}
