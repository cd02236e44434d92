//! What the input is: a first look at its bytes, then ffprobe's view of its streams.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use anyhow::Result;
use serde_json::Value;

use crate::error::{Kind, fail};
use crate::plan::Packet;
use crate::tools;

mod container;

pub use container::{
    Container, PROBE_MARGIN, Readiness, container_from_magic, demuxer_names, mp4_box, readiness,
    unsupported_container,
};

/// Seconds of packets ffprobe reads up front to spot open GOPs (which need the planned path).
pub const SNIFF_SECONDS: u32 = 15;

/// A cheap look at the first bytes, for a clear message about obviously wrong inputs.
pub fn sniff_content(path: &Path) -> Result<()> {
    let head = read_head(path)
        .map_err(|e| fail(Kind::InputUnreadable, format!("cannot read {}: {e}", path.display())))?;
    if head.is_empty() {
        return Err(fail(Kind::NotAVideo, format!("{} is empty (0 bytes)", path.display())));
    }
    if let Some(kind) = still_image_kind(&head) {
        return Err(fail(
            Kind::NotAVideo,
            format!("{} is a still image ({kind}), not a video", path.display()),
        ));
    }
    if looks_like_text(&head) {
        return Err(fail(
            Kind::NotAVideo,
            format!("{} is a text file, not a video", path.display()),
        ));
    }
    Ok(())
}

/// The first 512 bytes of a file (all of it when shorter): enough for every signature.
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    File::open(path)?.take(512).read_to_end(&mut head)?;
    Ok(head)
}

fn still_image_kind(head: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
    ];
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some("WebP");
    }
    SIGNATURES.iter().find(|(sig, _)| head.starts_with(sig)).map(|(_, kind)| *kind)
}

fn looks_like_text(head: &[u8]) -> bool {
    // Text: valid UTF-8 (allowing a cut at the end) without control bytes other than
    // whitespace. Every media container has binary bytes in its first 512.
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.valid_up_to() + 4 > head.len() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !text.is_empty() && text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

/// One stream as ffprobe describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamInfo {
    pub index: u32,
    pub codec_type: String,
    pub codec_name: String,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pixel_format: Option<String>,
    pub avg_frame_rate: Option<(i64, i64)>,
    pub r_frame_rate: Option<(i64, i64)>,
    pub time_base: Option<(i64, i64)>,
    pub nb_frames: Option<u64>,
    /// Display-matrix rotation as ffprobe reports it (counter-clockwise degrees).
    pub rotation: f64,
    pub attached_pic: bool,
    pub channels: Option<u32>,
    pub sample_rate: Option<u32>,
    pub language: Option<String>,
}

/// The input as ffprobe sees it.
#[derive(Clone, Debug)]
pub struct SourceInfo {
    pub format_name: String,
    pub duration_seconds: Option<f64>,
    pub streams: Vec<StreamInfo>,
    /// Position in `streams` of the video stream that is split.
    pub video: usize,
    /// The video stream's first packets (about [`SNIFF_SECONDS`]), demuxer timestamps.
    pub sniffed: Vec<Packet>,
}

impl SourceInfo {
    pub fn video(&self) -> &StreamInfo {
        &self.streams[self.video]
    }

    pub fn audio(&self) -> impl Iterator<Item = &StreamInfo> {
        self.streams.iter().filter(|s| s.codec_type == "audio")
    }

    /// Streams that are neither the split video nor audio, with the reason they are skipped.
    pub fn excluded(&self) -> Vec<(&StreamInfo, &'static str)> {
        let video_index = self.video().index;
        self.streams
            .iter()
            .filter(|s| s.codec_type != "audio" && s.index != video_index)
            .map(|s| {
                let reason = match s.codec_type.as_str() {
                    "video" if s.attached_pic => "cover art (attached picture)",
                    "video" => "only the first video stream is split",
                    "subtitle" => "subtitle streams are not extracted",
                    "data" => "data streams (timecode, metadata) are not extracted",
                    "attachment" => "attachments are not extracted",
                    _ => "stream type is not extracted",
                };
                (s, reason)
            })
            .collect()
    }

    /// Clockwise rotation in degrees (0, 90, 180 or 270) a player applies.
    pub fn rotation_degrees(&self) -> i32 {
        normalize_rotation(self.video().rotation)
    }
}

/// ffprobe's display-matrix rotation (counter-clockwise) → clockwise degrees in 0..360.
pub fn normalize_rotation(ccw: f64) -> i32 {
    let cw = (-ccw).round() as i64;
    cw.rem_euclid(360) as i32
}

fn rational(v: Option<&Value>) -> Option<(i64, i64)> {
    crate::timestamps::parse_rational(v?.as_str()?)
}

fn number<T: std::str::FromStr>(v: Option<&Value>) -> Option<T> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    v?.as_str().map(str::to_string).filter(|s| !s.is_empty() && s != "unknown")
}

fn parse_stream(v: &Value) -> Option<StreamInfo> {
    let rotation = v
        .get("side_data_list")
        .and_then(Value::as_array)
        .and_then(|list| list.iter().find_map(|sd| number::<f64>(sd.get("rotation"))))
        .or_else(|| {
            // Before ffmpeg 5.0 the rotation was a clockwise "rotate" tag.
            number::<f64>(v.get("tags").and_then(|t| t.get("rotate"))).map(|cw| -cw)
        })
        .unwrap_or(0.0);
    Some(StreamInfo {
        index: number(v.get("index"))?,
        codec_type: string(v.get("codec_type")).unwrap_or_else(|| "unknown".into()),
        codec_name: string(v.get("codec_name")).unwrap_or_else(|| "unknown".into()),
        profile: string(v.get("profile")),
        width: number(v.get("width")).filter(|w| *w > 0),
        height: number(v.get("height")).filter(|h| *h > 0),
        pixel_format: string(v.get("pix_fmt")),
        avg_frame_rate: rational(v.get("avg_frame_rate")),
        r_frame_rate: rational(v.get("r_frame_rate")),
        time_base: rational(v.get("time_base")),
        nb_frames: number(v.get("nb_frames")),
        rotation,
        attached_pic: number::<u32>(v.get("disposition").and_then(|d| d.get("attached_pic")))
            == Some(1),
        channels: number(v.get("channels")),
        sample_rate: number(v.get("sample_rate")),
        language: string(v.get("tags").and_then(|t| t.get("language"))).filter(|l| l != "und"),
    })
}

fn parse_sniffed(v: &Value, video_index: u32) -> Vec<Packet> {
    v.get("packets")
        .and_then(Value::as_array)
        .map(|packets| {
            packets
                .iter()
                .filter(|p| number::<u32>(p.get("stream_index")) == Some(video_index))
                .filter_map(|p| {
                    let flags = p.get("flags").and_then(Value::as_str).unwrap_or("");
                    Some(Packet {
                        pts: number(p.get("pts"))?,
                        duration: number(p.get("duration")).unwrap_or(0),
                        key: flags.contains('K'),
                        discard: flags.contains('D'),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

const IMAGE_CODECS: &[&str] =
    &["png", "mjpeg", "bmp", "gif", "webp", "tiff", "jpeg2000", "jpegls", "ppm", "pgm", "qoi"];

/// Interprets ffprobe's JSON: picks the video stream, rejects what is not a video.
pub fn interpret(json: &Value, shown: &str) -> Result<SourceInfo> {
    let format = json.get("format");
    let format_name =
        string(format.and_then(|f| f.get("format_name"))).unwrap_or_else(|| "unknown".into());
    let streams: Vec<StreamInfo> = json
        .get("streams")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(parse_stream).collect())
        .unwrap_or_default();
    let video = streams
        .iter()
        .position(|s| s.codec_type == "video" && !s.attached_pic)
        .ok_or_else(|| {
            let kinds: Vec<String> =
                streams.iter().map(|s| format!("{} ({})", s.codec_type, s.codec_name)).collect();
            let found = if kinds.is_empty() { "no streams".into() } else { kinds.join(", ") };
            fail(Kind::NotAVideo, format!("{shown} has no video stream (found: {found})"))
        })?;
    let v = &streams[video];
    let is_image_format = format_name.ends_with("_pipe") || format_name == "image2";
    let single_picture = matches!(v.nb_frames, Some(n) if n <= 1);
    if is_image_format || (IMAGE_CODECS.contains(&v.codec_name.as_str()) && single_picture) {
        return Err(fail(
            Kind::NotAVideo,
            format!("{shown} is a still image ({}), not a video", v.codec_name),
        ));
    }
    let sniffed = parse_sniffed(json, v.index);
    Ok(SourceInfo {
        duration_seconds: number(format.and_then(|f| f.get("duration"))),
        format_name,
        video,
        streams,
        sniffed,
    })
}

/// Runs ffprobe on a local file. Also checks ffprobe's version (from the same output).
pub async fn probe(ffprobe: &Path, path: &Path, shown: &str) -> Result<SourceInfo> {
    let output = tools::ffprobe_command(ffprobe)
        .args(["-print_format", "json", "-show_program_version", "-show_library_versions"])
        .args(["-show_format", "-show_streams"])
        .args(["-show_entries", "packet=stream_index,pts,duration,flags"])
        .arg("-read_intervals")
        .arg(format!("%+{SNIFF_SECONDS}"))
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| {
            fail(
                Kind::Tools,
                format!(
                    "ffprobe not found or not runnable ({}: {e}); install ffmpeg {} or newer, or \
                     point SPLITTER_FFPROBE at it",
                    ffprobe.display(),
                    tools::MIN_VERSION
                ),
            )
        })?;
    let json: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    match json.as_ref().and_then(tools::version_from_json) {
        Some(info) if tools::is_supported(&info) != Some(false) => {}
        // Not ffprobe, or too old: `ffprobe -version` gives the precise reason.
        _ => {
            tools::check("ffprobe", ffprobe.as_os_str()).await?;
            return Err(fail(
                Kind::Tools,
                format!("{} printed unexpected output; is it ffprobe?", ffprobe.display()),
            ));
        }
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let demuxers = container::ffprobe_demuxers(ffprobe).await;
        let head = read_head(path).unwrap_or_default();
        if let Some(message) = unsupported_container(&head, &demuxers, shown) {
            return Err(fail(Kind::NotAVideo, message));
        }
        let reason = tools::last_line(&stderr);
        let reason = reason.rsplit_once("]: ").map_or(reason, |(_, r)| r).trim();
        let detail = stderr
            .lines()
            .find(|l| l.contains("moov atom not found") || l.contains("partial file"))
            .map(|l| l.rsplit("] ").next().unwrap_or(l).trim());
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        return Err(fail(
            Kind::NotAVideo,
            format!(
                "{shown} is not a readable video: ffprobe says \"{}\"{detail}",
                reason.trim_start_matches(&format!("{}: ", path.display()))
            ),
        ));
    }
    interpret(&json.unwrap_or_default(), shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn magic_bytes() {
        assert_eq!(still_image_kind(b"\x89PNG\r\n\x1a\n...."), Some("PNG"));
        assert_eq!(still_image_kind(b"\xff\xd8\xff\xe0"), Some("JPEG"));
        assert_eq!(still_image_kind(b"RIFF\0\0\0\0WEBPVP8 "), Some("WebP"));
        assert_eq!(still_image_kind(b"\0\0\0\x20ftypisom"), None);
        assert!(looks_like_text(b"hello\nworld\n"));
        assert!(looks_like_text("caf\u{e9} ol\u{e9}".as_bytes()));
        assert!(!looks_like_text(b"\0\0\0\x20ftypisom"));
        assert!(!looks_like_text(b"\x47\x40\x00\x10"));
    }

    #[test]
    fn rotation_is_normalized_to_clockwise_degrees() {
        assert_eq!(normalize_rotation(-90.0), 90);
        assert_eq!(normalize_rotation(90.0), 270);
        assert_eq!(normalize_rotation(180.0), 180);
        assert_eq!(normalize_rotation(-180.0), 180);
        assert_eq!(normalize_rotation(0.0), 0);
    }

    fn stream(index: u32, kind: &str, codec: &str) -> Value {
        json!({"index": index, "codec_type": kind, "codec_name": codec, "time_base": "1/12800",
               "avg_frame_rate": "25/1", "r_frame_rate": "25/1", "width": 320, "height": 240,
               "nb_frames": "100", "disposition": {"attached_pic": 0}})
    }

    #[test]
    fn picks_the_first_real_video_stream_and_lists_the_rest() {
        let mut cover = stream(0, "video", "mjpeg");
        cover["disposition"]["attached_pic"] = json!(1);
        let mut video = stream(1, "video", "h264");
        video["side_data_list"] = json!([{"side_data_type": "Display Matrix", "rotation": -90}]);
        let json = json!({
            "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "4.000000"},
            "streams": [cover, video, stream(2, "audio", "aac"), stream(3, "subtitle", "mov_text")],
            "packets": [
                {"stream_index": 1, "pts": 0, "duration": 512, "flags": "K_"},
                {"stream_index": 2, "pts": 0, "duration": 1024, "flags": "K_"},
                {"stream_index": 1, "pts": 1024, "duration": 512, "flags": "__"},
                {"stream_index": 1, "pts": 512, "duration": 512, "flags": "_D"}
            ]
        });
        let info = interpret(&json, "in.mp4").expect("a video");
        assert_eq!(info.video().index, 1);
        assert_eq!(info.rotation_degrees(), 90);
        assert_eq!(info.duration_seconds, Some(4.0));
        assert_eq!(info.audio().map(|a| a.index).collect::<Vec<_>>(), vec![2]);
        let excluded: Vec<(u32, &str)> =
            info.excluded().iter().map(|(s, r)| (s.index, *r)).collect();
        assert_eq!(
            excluded,
            vec![(0, "cover art (attached picture)"), (3, "subtitle streams are not extracted")]
        );
        assert_eq!(info.sniffed.len(), 3);
        assert!(info.sniffed[0].key && !info.sniffed[1].key && info.sniffed[2].discard);
    }

    #[test]
    fn audio_only_and_still_images_are_not_videos() {
        let audio =
            json!({"format": {"format_name": "mov,mp4"}, "streams": [stream(0, "audio", "aac")]});
        let err = interpret(&audio, "a.m4a").expect_err("audio only");
        assert_eq!(crate::error::kind_of(&err), Kind::NotAVideo);
        assert!(err.to_string().contains("no video stream (found: audio (aac))"), "{err}");

        let png =
            json!({"format": {"format_name": "png_pipe"}, "streams": [stream(0, "video", "png")]});
        let err = interpret(&png, "x.png").expect_err("still image");
        assert!(err.to_string().contains("still image (png)"), "{err}");

        let mut one = stream(0, "video", "mjpeg");
        one["nb_frames"] = json!("1");
        let single = json!({"format": {"format_name": "mov,mp4"}, "streams": [one]});
        assert!(interpret(&single, "x.mov").is_err());

        let nothing = json!({"format": {"format_name": "mov,mp4"}, "streams": []});
        let err = interpret(&nothing, "x.mov").expect_err("no streams");
        assert!(err.to_string().contains("found: no streams"), "{err}");
    }
}
