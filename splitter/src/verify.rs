//! `splitter verify`: re-checks an output against its manifest without decoding: every file
//! present with the recorded size and SHA-256, every segment starting on a keyframe and
//! holding the frames the manifest says, segments contiguous, audio files of the recorded
//! codec.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::cut::idr_unit_types;
use crate::error::{Kind, fail};
use crate::hash::FileDigest;
use crate::listing::{self, BATCH_FILES, BatchFill, CONCURRENT_BATCHES, Recipe};
use crate::location::Location;
use crate::manifest::{self, Manifest, SegmentEntry};
use crate::output::WorkDir;
use crate::packets;
use crate::plan::{self, KeyframeFacts};
use crate::store::Store;
use crate::task::Task;
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

/// S3 files downloaded at once (each hashed on the way, deleted once checked).
const S3_FETCHES: usize = 8;
/// Local files hashed at once (beside the listing ffmpeg runs).
const LOCAL_FETCHES: usize = 2;

/// What a segment's listings tell: one read of the packet list, two views of it (GOPs for the
/// frame count, timestamps for the digest), plus the IDR list where the codec has one.
fn facts_from_listing(listing: &[u8], idr: Option<&[u8]>) -> Result<SegmentFacts> {
    let log = packets::read_log(listing)?;
    let facts = match idr {
        Some(idr) => KeyframeFacts::clean(packets::read_pts(idr)?),
        None => KeyframeFacts::none_clean(),
    };
    let starts_on_key = log.stream.before_first_key == 0 && !log.stream.gops.is_empty();
    let frames = plan::decoded_frames(&log.stream, &facts).unwrap_or(0);
    let timeline = packets::read_timeline(listing)?;
    Ok(SegmentFacts { frames, starts_on_key, pts_digest: timeline.pts_digest() })
}

/// What verify lists of each segment file: its stream 0, and its IDR pictures where the codec
/// has them.
fn recipe(codec: &str) -> Recipe {
    Recipe { input_options: &["-fflags", "+genpts"], stream: "0", idr: idr_unit_types(codec) }
}

/// Reads a batch of segment files' packets: one ffmpeg run for all of them (or, when that
/// fails, for each half, down to single files: see [`listing::list_into`]).
async fn batch_facts(
    tools: &Tools,
    files: &[PathBuf],
    codec: &str,
    work: &Path,
) -> Vec<Result<SegmentFacts>> {
    let listings = listing::list(tools, &recipe(codec), files, work).await;
    listings
        .into_iter()
        .map(|listing| match listing {
            Ok(l) => facts_from_listing(&l.packets, l.idr.as_deref()),
            Err(e) if crate::error::kind_of(&e) == Kind::Tools => Err(e),
            Err(e) => Err(anyhow::anyhow!("ffmpeg failed: {e}")),
        })
        .collect()
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

/// What a file of the manifest is checked as, besides its size and digest.
#[derive(Clone, Debug)]
enum Role {
    Segment(Box<SegmentEntry>),
    /// An audio file of this codec.
    Audio(String),
    Other,
}

/// A file of the manifest to check.
#[derive(Debug)]
struct Item {
    /// Position in the manifest's file list.
    n: usize,
    relative: String,
    bytes: u64,
    sha256: String,
    role: Role,
}

/// A file fetched: its local copy and digest, `None` when it is missing.
#[derive(Debug)]
struct Fetched {
    item: Item,
    local: Option<(PathBuf, FileDigest)>,
}

impl Fetched {
    /// The segment file to list, if this is one that is there.
    fn segment_file(&self) -> Option<(&Path, u64)> {
        match (&self.item.role, &self.local) {
            (Role::Segment(_), Some((path, digest))) => Some((path, digest.bytes)),
            _ => None,
        }
    }
}

/// A file checked: what is wrong with it.
#[derive(Debug)]
struct Checked {
    n: usize,
    relative: String,
    problems: Vec<String>,
}

/// The manifest's files, in order, with what each is checked as.
fn items(manifest: &Manifest) -> Vec<Item> {
    let segments: std::collections::HashMap<&str, &SegmentEntry> =
        manifest.segments.iter().map(|s| (s.path.as_str(), s)).collect();
    manifest
        .files()
        .into_iter()
        .enumerate()
        .map(|(n, (relative, bytes, sha256))| {
            let role = if let Some(segment) = segments.get(relative) {
                Role::Segment(Box::new((*segment).clone()))
            } else if let Some(audio) = manifest.audio.iter().find(|a| a.path == relative) {
                Role::Audio(audio.codec.clone())
            } else {
                Role::Other
            };
            Item { n, relative: relative.to_string(), bytes, sha256: sha256.to_string(), role }
        })
        .collect()
}

/// Where batches are checked: one of [`CONCURRENT_BATCHES`] listing slots each.
#[derive(Debug)]
struct Batches {
    tools: Tools,
    codec: String,
    work: PathBuf,
    slots: Arc<Semaphore>,
    /// Delete the files once checked (S3 copies).
    delete_copies: bool,
}

impl Batches {
    /// Starts checking a batch once a listing slot is free (so that only the batches being
    /// listed and the one being formed have their downloads on disk).
    async fn start(&self, batch: Vec<Fetched>) -> Task<Result<Vec<Checked>>> {
        let slot = Arc::clone(&self.slots).acquire_owned().await;
        let (tools, codec, work) = (self.tools.clone(), self.codec.clone(), self.work.clone());
        let delete_copies = self.delete_copies;
        Task::spawn(async move {
            let slot = slot.context("listing slots closed")?;
            check_batch(&tools, batch, &codec, &work, slot, delete_copies).await
        })
    }
}

/// Checks a batch of fetched files in order: their segment files listed together (holding
/// `slot` meanwhile), S3 copies deleted once checked.
async fn check_batch(
    tools: &Tools,
    batch: Vec<Fetched>,
    codec: &str,
    work: &Path,
    slot: OwnedSemaphorePermit,
    delete_copies: bool,
) -> Result<Vec<Checked>> {
    let files: Vec<PathBuf> =
        batch.iter().filter_map(|f| f.segment_file().map(|(p, _)| p.to_path_buf())).collect();
    let mut facts = batch_facts(tools, &files, codec, work).await.into_iter();
    drop(slot);
    let mut checked = Vec::with_capacity(batch.len());
    for Fetched { item, local } in batch {
        let mut problems = Vec::new();
        let relative = &item.relative;
        let Some((path, digest)) = local else {
            problems.push(format!("{relative} is missing"));
            checked.push(Checked { n: item.n, relative: item.relative, problems });
            continue;
        };
        if digest.bytes != item.bytes {
            problems.push(format!(
                "{relative} has {} bytes, the manifest says {}",
                digest.bytes, item.bytes
            ));
        } else if digest.sha256 != item.sha256 {
            problems.push(format!("{relative}: sha256 does not match the manifest"));
        }
        match &item.role {
            Role::Segment(segment) => {
                let listed = facts.next().context("a segment's listing is missing")?;
                segment_problems(relative, segment, listed, &mut problems);
            }
            Role::Audio(codec) => match audio_codec(tools, &path).await? {
                Some(found) if found == *codec => {}
                Some(found) => problems
                    .push(format!("{relative} holds {found} audio, the manifest says {codec}")),
                None => problems.push(format!("{relative} cannot be read as audio")),
            },
            Role::Other => {}
        }
        if delete_copies {
            let _ = std::fs::remove_file(&path);
        }
        checked.push(Checked { n: item.n, relative: item.relative, problems });
    }
    Ok(checked)
}

/// What is wrong with a segment file, from its listing.
fn segment_problems(
    relative: &str,
    segment: &SegmentEntry,
    listed: Result<SegmentFacts>,
    problems: &mut Vec<String>,
) {
    match listed {
        Ok(SegmentFacts { frames, starts_on_key, pts_digest }) => {
            if segment.pts_digest.is_empty() {
                problems.push(format!(
                    "{relative} has no pts_digest in the manifest: its timestamps cannot be \
                     checked (re-split with this splitter)"
                ));
            } else if pts_digest != segment.pts_digest {
                problems.push(format!(
                    "{relative}: its packets' timestamps differ from those the splitter checked \
                     against the source (pts_digest): frames would be lost or reordered"
                ));
            }
            if !starts_on_key {
                problems.push(format!("{relative} does not start on a keyframe"));
            }
            let expected = segment.lead_in_frames + segment.frames + segment.trailing_frames;
            if frames != expected {
                problems.push(format!(
                    "{relative} decodes to {frames} frames, the manifest says {expected} ({} \
                     lead-in + {} owned + {} trailing)",
                    segment.lead_in_frames, segment.frames, segment.trailing_frames
                ));
            }
        }
        Err(e) => problems
            .push(format!("{relative} cannot be read as video: {}", crate::error::one_line(&e))),
    }
}

/// Checks every file of the manifest, in a bounded pipeline: files fetched (S3: downloaded
/// and hashed, local: hashed) a few at once and in order, segment files listed in batches
/// ([`listing`]) a few at once, problems collected in the manifest's order. Memory and scratch
/// space stay bounded whatever the number of files.
async fn check_files(
    tools: &Tools,
    store: Store,
    items: Vec<Item>,
    codec: &str,
    work: &Path,
    report: &mut Report,
) -> Result<()> {
    let total = items.len();
    let s3 = matches!(store, Store::S3 { .. });
    let (fetches, lookahead) =
        if s3 { (S3_FETCHES, S3_FETCHES) } else { (LOCAL_FETCHES, BATCH_FILES) };
    let store = Arc::new(store);
    let fetch_slots = Arc::new(Semaphore::new(fetches));
    let (fetched_tx, mut fetched_rx) = mpsc::channel::<Task<Result<Fetched>>>(lookahead);
    // Batches in order, each started once a listing slot is free.
    let (batch_tx, mut batch_rx) = mpsc::channel::<Task<Result<Vec<Checked>>>>(1);

    // 1. Fetch, in order, a few at once.
    let fetcher = {
        let work = work.to_path_buf();
        async move {
            let mut names = HashSet::new();
            for item in items {
                let Ok(slot) = Arc::clone(&fetch_slots).acquire_owned().await else { break };
                // S3 copies are named after the file; a path the manifest lists twice gets
                // a second name (both copies may be on disk at once).
                let mut name = item.relative.replace('/', "_");
                if !names.insert(name.clone()) {
                    name = format!("{}-{name}", item.n);
                }
                let (store, work) = (Arc::clone(&store), work.clone());
                let task = Task::spawn(async move {
                    let local = store.fetch(&item.relative, &name, &work).await;
                    drop(slot);
                    Ok(Fetched { item, local: local? })
                });
                if fetched_tx.send(task).await.is_err() {
                    break;
                }
            }
        }
    };

    // 2. Group into batches: segment files up to the batch limits, the other files in
    // between where they come.
    let batcher = {
        let batches = Batches {
            tools: tools.clone(),
            codec: codec.to_string(),
            work: work.to_path_buf(),
            slots: Arc::new(Semaphore::new(CONCURRENT_BATCHES)),
            delete_copies: s3,
        };
        async move {
            let mut batch: Vec<Fetched> = Vec::new();
            let mut fill = BatchFill::default();
            while let Some(task) = fetched_rx.recv().await {
                let fetched = match task.join().await.and_then(|f| f) {
                    Ok(fetched) => fetched,
                    Err(e) => {
                        // Problems before it are reported first; then this error.
                        if !batch.is_empty()
                            && batch_tx.send(batches.start(batch).await).await.is_err()
                        {
                            return;
                        }
                        let _ = batch_tx.send(Task::spawn(async move { Err(e) })).await;
                        return;
                    }
                };
                if let Some((_, bytes)) = fetched.segment_file() {
                    if !fill.fits(bytes) {
                        if batch_tx
                            .send(batches.start(std::mem::take(&mut batch)).await)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        fill = BatchFill::default();
                    }
                    fill.add(bytes);
                }
                batch.push(fetched);
            }
            if !batch.is_empty() {
                let _ = batch_tx.send(batches.start(batch).await).await;
            }
        }
    };

    // 3. Collect, in order.
    let collector = async move {
        while let Some(task) = batch_rx.recv().await {
            for Checked { n, relative, problems } in task.join().await?? {
                report.problems.extend(problems);
                tracing::info!(file = relative, progress = %format!("{}/{total}", n + 1), "checked");
            }
        }
        anyhow::Ok(())
    };
    let ((), (), collected) = tokio::join!(fetcher, batcher, collector);
    collected
}

/// Verifies an output; problems are collected, not returned as errors.
pub async fn verify(opts: &VerifyOptions) -> Result<Report> {
    let output =
        Location::parse(&opts.output).map_err(|e| fail(Kind::Usage, format!("bad OUTPUT: {e}")))?;
    let tools = Tools::locate(opts.ffmpeg.clone(), opts.ffprobe.clone()).await?;
    let store = Store::at(&output).await;
    let mut report = Report::default();
    let Some(data) = store.manifest().await? else {
        report.problems.push(format!(
            "{}/{} is missing: the output is incomplete (or was never written)",
            opts.output.trim_end_matches('/'),
            manifest::FILE_NAME
        ));
        return Ok(report);
    };
    let parsed = Manifest::from_json(&data);
    drop(data);
    let manifest = match parsed {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(format!("manifest.json is not a valid manifest: {e}"));
            return Ok(report);
        }
    };
    report.problems.extend(check_manifest(&manifest));
    let work = WorkDir::create(&opts.work_dir, Kind::Other)?;
    let items = items(&manifest);
    report.files = items.len();
    let codec = manifest.source.video.codec.clone();
    drop(manifest);
    check_files(&tools, store, items, &codec, work.path(), &mut report).await?;
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
