//! `splitter verify`: re-checks an output against its manifest without decoding: every file
//! present with the recorded size and SHA-256, every segment starting on a keyframe and
//! holding the frames the manifest says, segments contiguous, audio files of the recorded
//! codec.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cut::{CutPass, idr_unit_types};
use crate::error::{Kind, fail};
use crate::hash::{self, FileDigest};
use crate::location::Location;
use crate::manifest::{self, Manifest, SegmentEntry};
use crate::output::WorkDir;
use crate::packets;
use crate::plan::{self, KeyframeFacts};
use crate::s3;
use crate::tools::Tools;

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub output: String,
    pub work_dir: PathBuf,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

/// What verification found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub files: usize,
    pub problems: Vec<String>,
}

/// Checks the manifest's own consistency (no I/O).
pub fn check_manifest(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    if m.schema_version != manifest::SCHEMA_VERSION {
        problems.push(format!(
            "manifest schema_version {} is not {} (this splitter's)",
            m.schema_version,
            manifest::SCHEMA_VERSION
        ));
    }
    if m.segments.is_empty() {
        problems.push("manifest lists no segments".into());
    }
    for (i, s) in m.segments.iter().enumerate() {
        if s.index != i {
            problems.push(format!("segment {} is listed at position {i}", s.index));
        }
        if s.frames == 0 {
            problems.push(format!("segment {} owns no frames", s.index));
        }
        if s.end_pts <= s.start_pts {
            problems.push(format!("segment {} has an empty time range", s.index));
        }
    }
    for w in m.segments.windows(2) {
        if w[0].end_pts != w[1].start_pts {
            problems.push(format!(
                "segments {} and {} are not contiguous (end_pts {} != start_pts {})",
                w[0].index, w[1].index, w[0].end_pts, w[1].start_pts
            ));
        }
        let gap = w[0].start_seconds + w[0].duration_seconds - w[1].start_seconds;
        if gap.abs() > 1e-6 {
            problems.push(format!(
                "segments {} and {} are not contiguous in seconds ({gap:+.6} s)",
                w[0].index, w[1].index
            ));
        }
    }
    let total: u64 = m.segments.iter().map(|s| s.frames).sum();
    if total != m.source.video.frames {
        problems.push(format!(
            "segments own {total} frames but the source has {}",
            m.source.video.frames
        ));
    }
    let mut paths: Vec<&str> = m.files().iter().map(|f| f.0).collect();
    paths.sort_unstable();
    if paths.windows(2).any(|w| w[0] == w[1]) {
        problems.push("manifest lists a file twice".into());
    }
    for path in &paths {
        if path.starts_with('/') || path.split('/').any(|p| p == ".." || p.is_empty()) {
            problems.push(format!("manifest path {path:?} is not a plain relative path"));
        }
    }
    problems
}

/// What a segment file's packets tell, without decoding.
struct SegmentFacts {
    /// Frames a standalone decode outputs.
    frames: u64,
    starts_on_key: bool,
    /// Its normalized timestamps' digest (see `manifest::SegmentEntry::pts_digest`).
    pts_digest: String,
}

/// Reads a segment file's packets (no decoding).
async fn segment_facts(
    tools: &Tools,
    file: &Path,
    codec: &str,
    work: &Path,
) -> Result<SegmentFacts> {
    let log_path = work.join("verify-packets.crc");
    let idr_path = work.join("verify-idr.crc");
    let pass = CutPass {
        input: file.to_path_buf(),
        arriving: None,
        video_stream: 0,
        video: None,
        pieces_dir: work.to_path_buf(),
        packet_log: Some(log_path.clone()),
        idr_log: idr_unit_types(codec).map(|t| (idr_path.clone(), t)),
        audio: Vec::new(),
    };
    pass.run(tools, |_| {}).await?;
    // One read of the listing, two views of it: GOPs (frame count) and timestamps (digest).
    let listing = std::fs::read(&log_path)?;
    let log = packets::read_log(&listing[..])?;
    let facts = match &pass.idr_log {
        Some(_) => KeyframeFacts::clean(packets::read_pts(BufReader::new(File::open(&idr_path)?))?),
        None => KeyframeFacts::none_clean(),
    };
    let starts_on_key = log.stream.before_first_key == 0 && !log.stream.gops.is_empty();
    let frames = plan::decoded_frames(&log.stream, &facts).unwrap_or(0);
    let timeline = packets::read_timeline(&listing[..])?;
    Ok(SegmentFacts { frames, starts_on_key, pts_digest: timeline.pts_digest() })
}

async fn audio_codec(tools: &Tools, file: &Path) -> Result<Option<String>> {
    let out = tools
        .ffprobe()
        .args(["-print_format", "json", "-show_streams"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .await?;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok(json
        .get("streams")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .and_then(|s| s.get("codec_name"))
        .and_then(Value::as_str)
        .map(str::to_string))
}

enum Store {
    Local(PathBuf),
    S3 { client: aws_sdk_s3::Client, bucket: String, prefix: String },
}

impl Store {
    async fn manifest(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Local(root) => match std::fs::read(root.join(manifest::FILE_NAME)) {
                Ok(data) => Ok(Some(data)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(fail(
                    Kind::InputUnreadable,
                    format!("cannot read {}: {e}", root.join(manifest::FILE_NAME).display()),
                )),
            },
            Store::S3 { client, bucket, prefix } => {
                let key = Location::join_key(prefix, manifest::FILE_NAME);
                s3::get_small(client, bucket, &key).await
            }
        }
    }

    /// A local copy of a listed file and its digest; `Ok(None)` when it is missing.
    async fn fetch(&self, relative: &str, work: &Path) -> Result<Option<(PathBuf, FileDigest)>> {
        match self {
            Store::Local(root) => {
                let path = root.join(relative);
                if !path.is_file() {
                    return Ok(None);
                }
                let p = path.clone();
                let digest = tokio::task::spawn_blocking(move || hash::digest_file(&p))
                    .await
                    .context("hashing task failed")??;
                Ok(Some((path, digest)))
            }
            Store::S3 { client, bucket, prefix } => {
                let key = Location::join_key(prefix, relative);
                let name = relative.replace('/', "_");
                let dest = work.join(name);
                let digest = s3::download_if_exists(client, bucket, &key, &dest).await?;
                Ok(digest.map(|d| (dest, d)))
            }
        }
    }
}

/// Verifies an output; problems are collected, not returned as errors.
pub async fn verify(opts: &VerifyOptions) -> Result<Report> {
    let output =
        Location::parse(&opts.output).map_err(|e| fail(Kind::Usage, format!("bad OUTPUT: {e}")))?;
    let tools = Tools::locate(opts.ffmpeg.clone(), opts.ffprobe.clone()).await?;
    let store = match &output {
        Location::Local(root) => Store::Local(root.clone()),
        Location::S3 { bucket, key } => Store::S3 {
            client: s3::client().await,
            bucket: bucket.clone(),
            prefix: key.trim_end_matches('/').to_string(),
        },
    };
    let mut report = Report::default();
    let Some(data) = store.manifest().await? else {
        report.problems.push(format!(
            "{}/{} is missing: the output is incomplete (or was never written)",
            opts.output.trim_end_matches('/'),
            manifest::FILE_NAME
        ));
        return Ok(report);
    };
    let manifest = match Manifest::from_json(&data) {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(format!("manifest.json is not a valid manifest: {e}"));
            return Ok(report);
        }
    };
    report.problems.extend(check_manifest(&manifest));
    let work = WorkDir::create(&opts.work_dir, Kind::Other)?;
    let codec = manifest.source.video.codec.clone();
    let segments: std::collections::HashMap<&str, &SegmentEntry> =
        manifest.segments.iter().map(|s| (s.path.as_str(), s)).collect();
    let total = manifest.files().len();
    for (n, (relative, bytes, sha256)) in manifest.files().into_iter().enumerate() {
        report.files += 1;
        let Some((path, digest)) = store.fetch(relative, work.path()).await? else {
            report.problems.push(format!("{relative} is missing"));
            continue;
        };
        if digest.bytes != bytes {
            report
                .problems
                .push(format!("{relative} has {} bytes, the manifest says {bytes}", digest.bytes));
        } else if digest.sha256 != sha256 {
            report.problems.push(format!("{relative}: sha256 does not match the manifest"));
        }
        if let Some(segment) = segments.get(relative) {
            match segment_facts(&tools, &path, &codec, work.path()).await {
                Ok(SegmentFacts { frames, starts_on_key, pts_digest }) => {
                    if segment.pts_digest.is_empty() {
                        report.problems.push(format!(
                            "{relative} has no pts_digest in the manifest: its timestamps \
                             cannot be checked (re-split with this splitter)"
                        ));
                    } else if pts_digest != segment.pts_digest {
                        report.problems.push(format!(
                            "{relative}: its packets' timestamps differ from those the splitter \
                             checked against the source (pts_digest): frames would be lost or \
                             reordered"
                        ));
                    }
                    if !starts_on_key {
                        report.problems.push(format!("{relative} does not start on a keyframe"));
                    }
                    let expected =
                        segment.lead_in_frames + segment.frames + segment.trailing_frames;
                    if frames != expected {
                        report.problems.push(format!(
                            "{relative} decodes to {frames} frames, the manifest says {expected} \
                             ({} lead-in + {} owned + {} trailing)",
                            segment.lead_in_frames, segment.frames, segment.trailing_frames
                        ));
                    }
                }
                Err(e) => report.problems.push(format!(
                    "{relative} cannot be read as video: {}",
                    crate::error::one_line(&e)
                )),
            }
        } else if let Some(audio) = manifest.audio.iter().find(|a| a.path == relative) {
            match audio_codec(&tools, &path).await? {
                Some(codec) if codec == audio.codec => {}
                Some(codec) => report.problems.push(format!(
                    "{relative} holds {codec} audio, the manifest says {}",
                    audio.codec
                )),
                None => report.problems.push(format!("{relative} cannot be read as audio")),
            }
        }
        if matches!(store, Store::S3 { .. }) {
            let _ = std::fs::remove_file(&path);
        }
        tracing::info!(file = relative, progress = %format!("{}/{total}", n + 1), "checked");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Source, Video};

    fn manifest() -> Manifest {
        let seg = |index: usize, start: i64, end: i64, frames: u64| SegmentEntry {
            index,
            path: manifest::segment_path(index, "mp4"),
            bytes: 1,
            sha256: "x".into(),
            frames,
            start_seconds: start as f64 / 10.0,
            duration_seconds: (end - start) as f64 / 10.0,
            lead_in_frames: 0,
            trailing_frames: 0,
            start_pts: start,
            end_pts: end,
            pts_digest: "d".into(),
        };
        Manifest {
            schema_version: manifest::SCHEMA_VERSION,
            splitter_version: "0".into(),
            segment_seconds: 1.0,
            ffmpeg_version: "5.1".into(),
            source: Source {
                uri: "x".into(),
                bytes: 1,
                sha256: "x".into(),
                format: "mov".into(),
                duration_seconds: 2.0,
                video: Video {
                    stream_index: 0,
                    codec: "h264".into(),
                    profile: None,
                    width: 1,
                    height: 1,
                    pixel_format: None,
                    frame_rate: 10.0,
                    frame_rate_rational: "10/1".into(),
                    frames: 20,
                    rotation: 0,
                    time_base: "1/10".into(),
                },
            },
            segments: vec![seg(0, 0, 10, 10), seg(1, 10, 20, 10)],
            audio: vec![],
            excluded_streams: vec![],
        }
    }

    #[test]
    fn a_consistent_manifest_has_no_problems() {
        assert_eq!(check_manifest(&manifest()), Vec::<String>::new());
    }

    #[test]
    fn gaps_counts_and_paths_are_reported() {
        let mut m = manifest();
        m.segments[1].start_pts = 11;
        m.segments[1].start_seconds = 1.1;
        m.segments[1].frames = 9;
        m.segments[0].path = "../escape.mp4".into();
        let problems = check_manifest(&m);
        assert!(problems.iter().any(|p| p.contains("not contiguous (end_pts 10 != start_pts 11)")));
        assert!(problems.iter().any(|p| p.contains("not contiguous in seconds")));
        assert!(
            problems.iter().any(|p| p.contains("segments own 19 frames but the source has 20"))
        );
        assert!(problems.iter().any(|p| p.contains("not a plain relative path")));
    }
}
