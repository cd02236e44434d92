//! `manifest.json`: written last, its presence marks an output complete.

use serde::{Deserialize, Serialize};

/// 2: segments carry `pts_digest` (the splitter checks its segments' timestamps).
pub const SCHEMA_VERSION: u32 = 2;
pub const FILE_NAME: &str = "manifest.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub splitter_version: String,
    pub segment_seconds: f64,
    /// The ffmpeg release that cut the segments (outputs are byte-identical for the same
    /// input, settings and ffmpeg release).
    pub ffmpeg_version: String,
    pub source: Source,
    pub segments: Vec<SegmentEntry>,
    pub audio: Vec<AudioEntry>,
    /// Streams left out (subtitles, data/timecode, attachments, cover art, extra video).
    pub excluded_streams: Vec<ExcludedStream>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The INPUT argument: `s3://bucket/key` or the local path as given.
    pub uri: String,
    pub bytes: u64,
    pub sha256: String,
    /// Container as ffprobe names it, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    pub format: String,
    pub duration_seconds: f64,
    pub video: Video,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Video {
    pub stream_index: u32,
    pub codec: String,
    pub profile: Option<String>,
    pub width: u32,
    pub height: u32,
    pub pixel_format: Option<String>,
    /// Average frame rate in frames per second.
    pub frame_rate: f64,
    /// The same, exact: "30000/1001".
    pub frame_rate_rational: String,
    /// Frames a whole-source decode outputs (sum of the segments' `frames`).
    pub frames: u64,
    /// Clockwise degrees a player rotates the picture (0, 90, 180, 270); kept in segments.
    pub rotation: i32,
    /// Time base of `start_pts`/`end_pts` in the segments: "1/12800".
    pub time_base: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub index: usize,
    /// Relative to the OUTPUT root: "segments/000000.mp4".
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Frames this segment owns.
    pub frames: u64,
    /// Seconds from the first frame of the source to this segment's first owned frame.
    pub start_seconds: f64,
    pub duration_seconds: f64,
    /// Frames a standalone decode outputs before the owned ones: drop them.
    pub lead_in_frames: u64,
    /// Frames a standalone decode outputs after the owned ones (only when the source's edit
    /// list hides frames at its end): drop them too. Usually 0.
    pub trailing_frames: u64,
    /// Owned display range [start_pts, end_pts) in the source's video time base; the next
    /// segment's `start_pts` is this one's `end_pts`.
    pub start_pts: i64,
    pub end_pts: i64,
    /// SHA-256 of the segment file's video packet timestamps, normalized: the text `N/D\n`
    /// (the file's video time base), then per packet in decode order its pts minus the first
    /// packet's, one decimal per line. `verify` recomputes it from the file. Empty in
    /// manifests of schema 1, which had none.
    #[serde(default)]
    pub pts_digest: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioEntry {
    pub stream_index: u32,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub codec: String,
    pub channels: Option<u32>,
    pub sample_rate: Option<u32>,
    pub language: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExcludedStream {
    pub stream_index: u32,
    pub codec_type: String,
    pub codec: String,
    pub reason: String,
}

impl Manifest {
    /// The manifest as written: pretty JSON and a newline.
    pub fn write_json(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")
    }

    pub fn from_json(data: &[u8]) -> serde_json::Result<Manifest> {
        serde_json::from_slice(data)
    }

    /// Every file the manifest lists (segments, then audio), with size and digest.
    pub fn files(&self) -> Vec<(&str, u64, &str)> {
        self.segments
            .iter()
            .map(|s| (s.path.as_str(), s.bytes, s.sha256.as_str()))
            .chain(self.audio.iter().map(|a| (a.path.as_str(), a.bytes, a.sha256.as_str())))
            .collect()
    }
}

/// Path of segment `index` with the given extension.
pub fn segment_path(index: usize, extension: &str) -> String {
    format!("segments/{index:06}.{extension}")
}

pub fn audio_path(stream_index: u32, extension: &str) -> String {
    format!("audio/stream-{stream_index}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lists_files() {
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            splitter_version: "0.1.0".into(),
            segment_seconds: 10.0,
            ffmpeg_version: "5.1".into(),
            source: Source {
                uri: "s3://b/k.mp4".into(),
                bytes: 10,
                sha256: "ab".into(),
                format: "mov,mp4,m4a,3gp,3g2,mj2".into(),
                duration_seconds: 4.0,
                video: Video {
                    stream_index: 0,
                    codec: "h264".into(),
                    profile: Some("High".into()),
                    width: 320,
                    height: 240,
                    pixel_format: Some("yuv420p".into()),
                    frame_rate: 25.0,
                    frame_rate_rational: "25/1".into(),
                    frames: 100,
                    rotation: 0,
                    time_base: "1/12800".into(),
                },
            },
            segments: vec![SegmentEntry {
                index: 0,
                path: segment_path(0, "mp4"),
                bytes: 5,
                sha256: "cd".into(),
                frames: 100,
                start_seconds: 0.0,
                duration_seconds: 4.0,
                lead_in_frames: 0,
                trailing_frames: 0,
                start_pts: 0,
                end_pts: 51200,
                pts_digest: "01".into(),
            }],
            audio: vec![AudioEntry {
                stream_index: 1,
                path: audio_path(1, "m4a"),
                bytes: 3,
                sha256: "ef".into(),
                codec: "aac".into(),
                channels: Some(2),
                sample_rate: Some(48000),
                language: None,
            }],
            excluded_streams: vec![],
        };
        let mut json = Vec::new();
        manifest.write_json(&mut json).expect("write to memory");
        assert_eq!(Manifest::from_json(&json).expect("parse"), manifest);
        assert_eq!(
            manifest.files(),
            vec![("segments/000000.mp4", 5, "cd"), ("audio/stream-1.m4a", 3, "ef")]
        );
        let text = String::from_utf8(json).expect("utf-8");
        assert!(text.contains("\"schema_version\": 2"));
        assert!(text.contains("\"pts_digest\": \"01\""));
        // A schema 1 manifest (no pts_digest) still parses, so verify can say what is wrong.
        let old = text
            .replace("\"schema_version\": 2", "\"schema_version\": 1")
            .replace(",\n      \"pts_digest\": \"01\"", "");
        assert!(!old.contains("pts_digest"), "{old}");
        let old = Manifest::from_json(old.as_bytes()).expect("schema 1 parses");
        assert_eq!((old.schema_version, old.segments[0].pts_digest.as_str()), (1, ""));
    }
}
