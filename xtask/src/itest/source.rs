//! The video itest uploads, and what a correct split of it looks like.
//!
//! For the committed fixture (`xtask/fixtures/itest.mp4`) the expectations are written down here
//! ([`Expect::fixture`]; `xtask/tests/itest.rs` checks them against ffprobe), so the fixture is not
//! probed before a run (ffprobe is still needed afterwards, for the segments: see `output.rs`).
//! Any other `--video` is probed with the host's ffprobe (packets only, nothing decoded).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

/// The fixture, relative to the workspace root.
pub const FIXTURE: &str = "xtask/fixtures/itest.mp4";

/// What a correct split of the source must show.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// Duration of the video stream in seconds (what the segments' durations add up to).
    pub video_seconds: f64,
    /// Average frame rate (one frame = 1 / this): the tolerance of the duration check.
    pub frame_rate: f64,
    /// Frames of the video stream, when known exactly.
    pub frames: Option<u64>,
    /// Keyframe times in seconds from the first frame, in order (empty: unknown).
    pub keyframes: Vec<f64>,
    /// Audio streams (each becomes one audio file).
    pub audio_streams: usize,
    /// Where these facts come from, for the report.
    pub from: &'static str,
}

impl Expect {
    /// The committed fixture: 12 s of 24 fps H.264 (a keyframe every 2 s) and one AAC track.
    pub fn fixture() -> Expect {
        Expect {
            video_seconds: 12.0,
            frame_rate: 24.0,
            frames: Some(288),
            keyframes: (0..6).map(|k| f64::from(k) * 2.0).collect(),
            audio_streams: 1,
            from: "the fixture's description",
        }
    }

    /// How many segments the splitter's rule gives for `segment_seconds`: a segment starts at
    /// the first keyframe at or after each multiple of `segment_seconds` from the first frame
    /// (several multiples landing on one keyframe start one segment). `None` without keyframes.
    pub fn segments(&self, segment_seconds: f64) -> Option<usize> {
        if self.keyframes.is_empty() || segment_seconds <= 0.0 {
            return None;
        }
        // Keyframe times come from rounded timestamps: a microsecond of slack.
        const EPS: f64 = 1e-6;
        let mut count = 1;
        let mut last = self.keyframes[0];
        let mut k = 1.0;
        loop {
            let at = k * segment_seconds;
            if at >= self.video_seconds - EPS {
                break;
            }
            match self.keyframes.iter().find(|t| **t >= at - EPS) {
                Some(t) if *t > last + EPS && *t < self.video_seconds - EPS => {
                    count += 1;
                    last = *t;
                }
                Some(_) => {}
                None => break,
            }
            k += 1.0;
        }
        Some(count)
    }

    /// The most segments any keyframe layout can give: one per started `segment_seconds`.
    pub fn max_segments(&self, segment_seconds: f64) -> usize {
        ((self.video_seconds / segment_seconds) - 1e-6).ceil().max(1.0) as usize
    }
}

/// The video of one itest run.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub expect: Expect,
}

impl Source {
    /// The fixture (`video` = None) or another video, hashed; other videos are probed.
    pub fn load(sh: &Shell, video: Option<&Path>) -> Result<Source> {
        let (path, expect) = match video {
            None => (crate::project_root().join(FIXTURE), None),
            Some(v) => (sh.current_dir().join(v), Some(())),
        };
        if !path.is_file() {
            match video {
                None => bail!(
                    "the itest fixture {} is missing: restore it with `git checkout -- {FIXTURE}`, or pass --video PATH",
                    path.display()
                ),
                Some(v) => bail!("--video {}: no such file", v.display()),
            }
        }
        let (bytes, sha256) = hash_file(&path)?;
        let expect = match expect {
            None => Expect::fixture(),
            Some(()) => probe(sh, &path)?,
        };
        Ok(Source { path, bytes, sha256, expect })
    }

    /// The file name with its extension, for the S3 key (`input.mp4`).
    pub fn object_name(&self) -> String {
        match self.path.extension().and_then(|e| e.to_str()) {
            Some(ext) if !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
                format!("input.{}", ext.to_ascii_lowercase())
            }
            _ => "input".to_owned(),
        }
    }
}

/// Size and sha256 (hex) of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex(&hasher.finalize())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What ffprobe says about a video: streams, and the video stream's packets (no decoding).
fn probe(sh: &Shell, path: &Path) -> Result<Expect> {
    let Some(ffprobe) = crate::tools::find_program("ffprobe") else {
        bail!(
            "--video needs ffprobe on PATH to know what a correct split looks like: install ffmpeg \
             (`apt-get install ffmpeg`)"
        );
    };
    let streams = cmd!(
        sh,
        "{ffprobe} -v error -show_entries stream=index,codec_type,duration,avg_frame_rate,r_frame_rate:stream_disposition=attached_pic:format=duration -of json {path}"
    )
    .quiet()
    .ignore_status()
    .output()
    .context("cannot run ffprobe")?;
    if !streams.status.success() {
        // Not a video: still a useful itest (the splitter must refuse it), with nothing to expect.
        return Ok(Expect {
            video_seconds: 0.0,
            frame_rate: 0.0,
            frames: None,
            keyframes: vec![],
            audio_streams: 0,
            from: "ffprobe cannot read it",
        });
    }
    let info: Value =
        serde_json::from_slice(&streams.stdout).context("ffprobe printed no JSON streams")?;
    let video = pick_video(&info);
    let packets = match &video {
        Some(v) => {
            let selector = v["index"].as_u64().unwrap_or(0).to_string();
            let out = cmd!(
                sh,
                "{ffprobe} -v error -select_streams {selector} -show_entries packet=pts_time,duration_time,flags -of csv=p=0 {path}"
            )
            .quiet()
            .read()
            .context("ffprobe cannot list the video packets")?;
            parse_packets(&out)
        }
        None => vec![],
    };
    Ok(expect_from(&info, video.as_ref(), &packets))
}

/// The first video stream that is not cover art.
fn pick_video(info: &Value) -> Option<Value> {
    info["streams"]
        .as_array()?
        .iter()
        .find(|s| {
            s["codec_type"] == "video" && s["disposition"]["attached_pic"].as_i64() != Some(1)
        })
        .cloned()
}

/// One video packet: presentation time, duration, keyframe flag.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Packet {
    pts: f64,
    duration: f64,
    key: bool,
}

/// `pts_time,duration_time,flags` lines (ffprobe `-of csv=p=0`); unparsable times are skipped.
fn parse_packets(csv: &str) -> Vec<Packet> {
    csv.lines()
        .filter_map(|line| {
            let mut f = line.split(',');
            let pts = f.next()?.trim().parse::<f64>().ok()?;
            let duration = f.next()?.trim().parse::<f64>().unwrap_or(0.0);
            let key = f.next().is_some_and(|flags| flags.contains('K'));
            Some(Packet { pts, duration, key })
        })
        .collect()
}

fn rational(text: Option<&str>) -> Option<f64> {
    let (n, d) = text?.split_once('/')?;
    let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

fn expect_from(info: &Value, video: Option<&Value>, packets: &[Packet]) -> Expect {
    let audio_streams = info["streams"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["codec_type"] == "audio").count())
        .unwrap_or(0);
    let Some(video) = video else {
        return Expect {
            video_seconds: 0.0,
            frame_rate: 0.0,
            frames: None,
            keyframes: vec![],
            audio_streams,
            from: "ffprobe (no video stream)",
        };
    };
    let frame_rate = rational(video["avg_frame_rate"].as_str())
        .or_else(|| rational(video["r_frame_rate"].as_str()))
        .unwrap_or(0.0);
    let first = packets.iter().map(|p| p.pts).fold(f64::INFINITY, f64::min);
    let end = packets.iter().map(|p| p.pts + p.duration).fold(f64::NEG_INFINITY, f64::max);
    let from_packets = (first.is_finite() && end > first).then_some(end - first);
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok()).filter(|d| *d > 0.0);
    let video_seconds = number(&video["duration"])
        .or(from_packets)
        .or_else(|| number(&info["format"]["duration"]))
        .unwrap_or(0.0);
    let mut keyframes: Vec<f64> = packets.iter().filter(|p| p.key).map(|p| p.pts - first).collect();
    keyframes.sort_by(f64::total_cmp);
    Expect { video_seconds, frame_rate, frames: None, keyframes, audio_streams, from: "ffprobe" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_splits_into_two_segments_at_ten_seconds() {
        let f = Expect::fixture();
        assert_eq!(f.segments(10.0), Some(2));
        assert_eq!(f.segments(4.0), Some(3)); // 0, 4, 8
        assert_eq!(f.segments(3.0), Some(4)); // 0, 4 (first ≥ 3), 6, 10 (first ≥ 9)
        assert_eq!(f.segments(2.0), Some(6));
        assert_eq!(f.segments(1.0), Some(6)); // every keyframe, once
        assert_eq!(f.segments(12.0), Some(1));
        assert_eq!(f.segments(60.0), Some(1));
        assert_eq!(f.max_segments(10.0), 2);
        assert_eq!(f.max_segments(12.0), 1);
        assert_eq!(f.max_segments(5.0), 3);
    }

    /// The description matches the committed file, read by the same ffprobe code `--video`
    /// uses (needs ffprobe: `cargo xtask test` installs ffmpeg).
    #[test]
    fn the_fixture_matches_its_description() {
        let sh = Shell::new().expect("shell");
        let probed = probe(&sh, &crate::project_root().join(FIXTURE)).expect("ffprobe the fixture");
        let described = Expect::fixture();
        assert_eq!(probed.keyframes, described.keyframes);
        assert_eq!(probed.frame_rate, described.frame_rate);
        assert_eq!(probed.audio_streams, described.audio_streams);
        assert!((probed.video_seconds - described.video_seconds).abs() < 1e-6, "{probed:?}");
        assert_eq!(probed.segments(10.0), Some(2));
    }

    #[test]
    fn one_long_gop_is_one_segment_and_no_keyframes_is_unknown() {
        let e = Expect { keyframes: vec![0.0], ..Expect::fixture() };
        assert_eq!(e.segments(2.0), Some(1));
        let e = Expect { keyframes: vec![], ..Expect::fixture() };
        assert_eq!(e.segments(2.0), None);
    }

    #[test]
    fn ffprobe_output_becomes_expectations() {
        let info: Value = serde_json::from_str(
            r#"{"streams":[
                {"index":0,"codec_type":"video","avg_frame_rate":"25/1","r_frame_rate":"25/1","disposition":{"attached_pic":0}},
                {"index":1,"codec_type":"audio","duration":"4.1"},
                {"index":2,"codec_type":"audio"},
                {"index":3,"codec_type":"video","disposition":{"attached_pic":1}}],
              "format":{"duration":"4.100000"}}"#,
        )
        .expect("json");
        let video = pick_video(&info).expect("video");
        assert_eq!(video["index"], 0);
        // B-frames: packets in decode order, the first one not at 0.
        let packets = parse_packets(
            "0.080000,0.040000,K__\n0.160000,0.040000,___\n0.120000,0.040000,___\n2.080000,0.040000,K__\n3.980000,0.040000,___\nN/A,N/A,___\n",
        );
        assert_eq!(packets.len(), 5);
        let e = expect_from(&info, Some(&video), &packets);
        assert_eq!(e.frame_rate, 25.0);
        assert!((e.video_seconds - 3.94).abs() < 1e-9, "{}", e.video_seconds);
        assert_eq!(e.keyframes, vec![0.0, 2.0]);
        assert_eq!(e.audio_streams, 2);
        assert_eq!(e.segments(2.0), Some(2));
    }

    #[test]
    fn object_names_keep_a_plain_extension() {
        let mut s = Source {
            path: "/x/My Video.MKV".into(),
            bytes: 1,
            sha256: String::new(),
            expect: Expect::fixture(),
        };
        assert_eq!(s.object_name(), "input.mkv");
        s.path = "/x/noext".into();
        assert_eq!(s.object_name(), "input");
        s.path = "/x/odd.m-p4".into();
        assert_eq!(s.object_name(), "input");
    }
}
