//! The manifest as itest reads it: the fields of `manifest.json` it checks (schema 1 or 2, see
//! `splitter/README.md`), read leniently from whatever splitter the deployed image runs.

use std::ops::RangeInclusive;

use serde::Deserialize;

/// The manifest schemas itest reads: 2 added each segment's `pts_digest` (which itest does not
/// check), nothing itest reads changed.
pub const SCHEMAS: RangeInclusive<u32> = 1..=2;

/// The fields of `manifest.json` itest checks (unknown fields are ignored).
///
/// Deliberately not `splitter::manifest::Manifest`: itest checks what a *deployed* image wrote,
/// which may be an older or newer splitter than this checkout, so it reads only the fields it
/// checks, leniently, and judges `schema_version` itself (a failed check line, not a serde
/// error). Sharing the producer's types would also let a contract change (a renamed field) pass
/// unnoticed on both sides, and make xtask rebuild on every splitter edit. `splitter/README.md`
/// documents the schema; the itest tests run the real splitter against this view.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub splitter_version: String,
    pub segment_seconds: f64,
    #[serde(default)]
    pub ffmpeg_version: Option<String>,
    pub source: ManifestSource,
    pub segments: Vec<Segment>,
    #[serde(default)]
    pub audio: Vec<Audio>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestSource {
    pub bytes: u64,
    pub sha256: String,
    pub video: Video,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Video {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub frames: u64,
}

/// A file the manifest lists (a segment or an audio file): where it is, its size and SHA-256.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Segment {
    pub index: usize,
    #[serde(flatten)]
    pub file: Listed,
    /// Frames a standalone decode of the file outputs: `lead_in_frames` (dropped by a worker),
    /// `frames` (owned), `trailing_frames`.
    pub frames: u64,
    pub lead_in_frames: u64,
    pub trailing_frames: u64,
    pub start_seconds: f64,
    pub duration_seconds: f64,
}

impl Segment {
    /// Frames a standalone decode of the segment outputs.
    pub fn decoded_frames(&self) -> u64 {
        self.lead_in_frames + self.frames + self.trailing_frames
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Audio {
    #[serde(flatten)]
    pub file: Listed,
    pub codec: String,
    #[serde(default)]
    pub channels: Option<u32>,
    #[serde(default)]
    pub sample_rate: Option<u32>,
}

impl Manifest {
    /// Every file the manifest lists (segments, then audio): (path, bytes, sha256). The
    /// splitter's `Manifest::files` answers the same on its own types; this view keeps its own
    /// on purpose (see [`Manifest`]: itest reads what a deployed splitter wrote).
    pub fn files(&self) -> Vec<(&str, u64, &str)> {
        let segments = self.segments.iter().map(|s| &s.file);
        let listed = segments.chain(self.audio.iter().map(|a| &a.file));
        listed.map(|f| (f.path.as_str(), f.bytes, f.sha256.as_str())).collect()
    }
}
