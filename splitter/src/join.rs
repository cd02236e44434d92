//! `splitter join`: the processed segments and the split's audio, put back together by stream
//! copy, every frame at the source's presentation time.
//!
//! 1. The split's manifest, and one processed file per segment (`PROCESSED/000003.*`).
//! 2. Checks before anything is written: each processed file has exactly the frames its segment
//!    owns (packets counted by ffprobe, no decoding), and all share codec, resolution, pixel
//!    format and codec configuration.
//! 3. The source's presentation times of each segment's owned frames, read from the split's own
//!    segment files (their packets are the source's, stream-copied; their `pts_digest` in the
//!    manifest vouches for them).
//! 4. ffmpeg concatenates the processed files into one MOV (stream copy); [`retime`] gives every
//!    sample its source time and rewrites the MOV's tables around the untouched sample data.
//! 5. ffmpeg muxes that video with the audio files (stream copy, timestamps kept) into a
//!    temporary file, renamed into place or uploaded last.

mod checks;
pub mod retime;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::error::{Kind, ResultExt, fail};
use crate::hash;
use crate::listing::{self, Recipe};
use crate::location::Location;
use crate::manifest::{self, Manifest, SegmentEntry};
use crate::output::WorkDir;
use crate::packets;
use crate::s3::{self, join_all};
use crate::store::Store;
use crate::tools::{self, Tools};
pub use checks::{Facts, check_segment, match_segments};

/// Processed files probed (or split segments fetched) at once.
const CONCURRENCY: usize = 4;

/// Settings of one join.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    pub split_output: String,
    pub processed: String,
    pub output: String,
    pub work_dir: PathBuf,
    pub upload_concurrency: usize,
    pub part_size: u64,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

/// The joined file's container, from OUTPUT_FILE's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// MP4 with its index first (fast start).
    Mp4,
    Matroska,
}

impl OutputFormat {
    pub fn for_name(name: &str) -> Result<OutputFormat, String> {
        let extension = Path::new(name).extension().and_then(|e| e.to_str());
        match extension.map(str::to_ascii_lowercase).as_deref() {
            None | Some("mp4") => Ok(OutputFormat::Mp4),
            Some("mkv") => Ok(OutputFormat::Matroska),
            Some(other) => Err(format!(
                "OUTPUT_FILE must end in .mp4 or .mkv (no extension: MP4), not .{other}"
            )),
        }
    }

    fn muxer(self) -> &'static str {
        match self {
            OutputFormat::Mp4 => "mp4",
            OutputFormat::Matroska => "matroska",
        }
    }
}

/// What a join produced.
#[derive(Clone, Debug)]
pub struct Joined {
    pub segments: usize,
    pub frames: u64,
    pub audio_tracks: usize,
    pub bytes: u64,
}

/// Runs a join.
pub async fn join(opts: &JoinOptions) -> Result<Joined> {
    let started = Instant::now();
    let parse = |what: &str, arg: &str| {
        Location::parse(arg).map_err(|e| fail(Kind::Usage, format!("bad {what}: {e}")))
    };
    let split_at = parse("SPLIT_OUTPUT", &opts.split_output)?;
    let processed_at = parse("PROCESSED", &opts.processed)?;
    let output_at = parse("OUTPUT_FILE", &opts.output)?;
    let output_name = match &output_at {
        Location::S3 { key, .. } if key.is_empty() || key.ends_with('/') => {
            return Err(fail(
                Kind::Usage,
                format!("OUTPUT_FILE {output_at} does not name an object"),
            ));
        }
        Location::S3 { key, .. } => key.clone(),
        Location::Local(path) if path.is_dir() => {
            return Err(fail(
                Kind::OutputUnwritable,
                format!("OUTPUT_FILE {} is a directory; name the file to write", path.display()),
            ));
        }
        Location::Local(path) => path.display().to_string(),
    };
    let format = OutputFormat::for_name(&output_name).map_err(|e| fail(Kind::Usage, e))?;
    let tools = Tools::locate(opts.ffmpeg.clone(), opts.ffprobe.clone()).await?;
    let split = Store::at(&split_at).await;
    let processed = Store::at(&processed_at).await;
    let work = WorkDir::create(&opts.work_dir, Kind::Other)?;

    // 1. The split's manifest; the processed file of each segment.
    let manifest = read_manifest(&split).await?;
    let names = processed.list("").await?;
    let names = match_segments(&names, manifest.segments.len())
        .map_err(|e| fail(Kind::NotAVideo, format!("{e} in {}", opts.processed)))?;
    tracing::info!(
        segments = names.len(),
        audio_tracks = manifest.audio.len(),
        frames = manifest.source.video.frames,
        "joining"
    );

    // 2. Each processed file fetched and checked.
    let (inputs, facts) =
        check_processed(&tools, &processed, &names, &manifest, work.path()).await?;

    // 3. The source's times of every segment's owned frames.
    let (num, den) = time_base(&manifest.source.video.time_base)?;
    let owned = source_times(&tools, &split, &manifest, (num, den), work.path()).await?;

    // 4. One video, every sample at its source time.
    let video = work.path().join("video.mov");
    concatenate(&tools, &inputs, &facts.codec, &video, work.path()).await?;
    if matches!(processed, Store::S3 { .. }) {
        // Downloads: the concatenated video holds their packets now.
        inputs.iter().for_each(|path| drop(std::fs::remove_file(path)));
    }
    let last = manifest.segments.last().context("the manifest lists no segment")?;
    let end = last.end_pts.checked_mul(num).context("end time overflows")?;
    let samples = retime_file(&video, &owned, end, den, manifest.source.video.rotation)?;
    tracing::info!(samples, "video concatenated, every frame at the source's timestamp");

    // 5. With the audio, into a temporary file published last.
    let mut audio = Vec::new();
    for entry in &manifest.audio {
        let name = format!("audio-{}", entry.stream_index);
        let path = split_file(&split, &entry.path, &name, work.path()).await?;
        audio.push((path, entry.language.clone()));
    }
    let bytes = publish(&tools, &video, &facts.codec, &audio, format, &output_at, opts).await?;
    let joined = Joined {
        segments: names.len(),
        frames: manifest.source.video.frames,
        audio_tracks: audio.len(),
        bytes,
    };
    tracing::info!(
        output = %output_at,
        segments = joined.segments,
        frames = joined.frames,
        audio_tracks = joined.audio_tracks,
        bytes,
        elapsed_seconds = started.elapsed().as_secs_f64(),
        "join complete"
    );
    Ok(joined)
}

async fn read_manifest(split: &Store) -> Result<Manifest> {
    let path = split.describe(manifest::FILE_NAME);
    let data = split.manifest().await?.ok_or_else(|| {
        fail(Kind::InputUnreadable, format!("{path} does not exist: not a finished split output"))
    })?;
    let value: Value = serde_json::from_slice(&data)
        .map_err(|e| fail(Kind::NotAVideo, format!("{path} is not JSON: {e}")))?;
    let schema = value.get("schema_version").and_then(Value::as_u64);
    if schema != Some(u64::from(manifest::SCHEMA_VERSION)) {
        let found = schema.map_or_else(|| "none".to_string(), |s| s.to_string());
        return Err(fail(
            Kind::NotAVideo,
            format!(
                "{path} has schema_version {found}; this splitter joins schema {} (join with \
                 the splitter release that wrote it, or split again)",
                manifest::SCHEMA_VERSION
            ),
        ));
    }
    let manifest = Manifest::from_json(&data)
        .map_err(|e| fail(Kind::NotAVideo, format!("{path} is not a valid manifest: {e}")))?;
    if let Some(problem) = crate::verify::check_manifest(&manifest).into_iter().next() {
        return Err(fail(Kind::NotAVideo, format!("{path}: {problem}")));
    }
    Ok(manifest)
}

/// A file the split's manifest lists, local (S3: downloaded to `work/name`); missing, one line.
async fn split_file(split: &Store, relative: &str, name: &str, work: &Path) -> Result<PathBuf> {
    split.locate(relative, name, work).await?.ok_or_else(|| {
        fail(
            Kind::InputUnreadable,
            format!("{} is missing: the split output is incomplete", split.describe(relative)),
        )
    })
}

/// "1/12800" → (1, 12800).
fn time_base(text: &str) -> Result<(i64, u32)> {
    match crate::timestamps::parse_rational(text).map(|(n, d)| (n, u32::try_from(d))) {
        Some((n, Ok(d))) => Ok((n, d)),
        _ => Err(fail(Kind::NotAVideo, format!("the manifest's time base {text:?} is not N/D"))),
    }
}

/// Each processed file, local (S3: downloaded), after its checks passed.
async fn check_processed(
    tools: &Tools,
    processed: &Store,
    names: &[String],
    manifest: &Manifest,
    work: &Path,
) -> Result<(Vec<PathBuf>, Facts)> {
    let mut paths = Vec::with_capacity(names.len());
    let mut first: Option<Facts> = None;
    for (chunk_at, chunk) in names.chunks(CONCURRENCY).enumerate() {
        let fetched = join_all(
            chunk
                .iter()
                .map(|name| async move {
                    let local = format!("processed-{name}");
                    let path = processed.locate(name, &local, work).await?.ok_or_else(|| {
                        fail(
                            Kind::InputUnreadable,
                            format!("{} disappeared", processed.describe(name)),
                        )
                    })?;
                    let facts = probe(tools, &path).await;
                    anyhow::Ok((path, facts))
                })
                .collect(),
        )
        .await;
        for (i, result) in fetched.into_iter().enumerate() {
            let index = chunk_at * CONCURRENCY + i;
            let segment = &manifest.segments[index];
            let name = &names[index];
            let (path, facts) = result?;
            let facts = facts.map_err(|why| {
                fail(Kind::NotAVideo, format!("segment {index} ({name}): not a video: {why}"))
            })?;
            let reference = first.get_or_insert_with(|| facts.clone());
            check_segment(index, name, segment.frames, &facts, reference)
                .map_err(|e| fail(Kind::NotAVideo, e))?;
            tracing::info!(segment = index, progress = %format!("{}/{}", index + 1, names.len()), "segment checked");
            paths.push(std::path::absolute(&path).unwrap_or(path));
        }
    }
    let first = first.context("the manifest lists no segment")?;
    Ok((paths, first))
}

/// ffprobe's facts about a file's first video stream; `Err` says why it is not a video.
async fn probe(tools: &Tools, path: &Path) -> Result<Facts, String> {
    let out = tools
        .ffprobe()
        .args(["-select_streams", "v:0", "-count_packets", "-show_data_hash", "sha256"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,pix_fmt,nb_read_packets,extradata_hash",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .await
        .map_err(|e| format!("cannot run ffprobe: {e}"))?;
    if !out.status.success() {
        return Err(tools::last_line(&String::from_utf8_lossy(&out.stderr)).to_string());
    }
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let stream = json
        .get("streams")
        .and_then(|s| s.get(0))
        .ok_or_else(|| "it has no video stream".to_string())?;
    let text = |k: &str| stream.get(k).and_then(Value::as_str).map(str::to_string);
    let number = |k: &str| stream.get(k).and_then(Value::as_u64);
    let packets = text("nb_read_packets").and_then(|n| n.parse().ok());
    match (text("codec_name"), number("width"), number("height"), packets) {
        (Some(codec), Some(w), Some(h), Some(packets)) if w > 0 && h > 0 => Ok(Facts {
            codec,
            width: w as u32,
            height: h as u32,
            pixel_format: text("pix_fmt"),
            packets,
            extradata: text("extradata_hash"),
        }),
        _ => Err("its video stream has no codec, size or packets".to_string()),
    }
}

/// Per segment, the source's presentation times (ticks of `1/den`, ascending) of the frames
/// it owns, from the split's segment files: their packets, sorted by pts, end with the owned
/// frames and then `trailing_frames`.
async fn source_times(
    tools: &Tools,
    split: &Store,
    manifest: &Manifest,
    (num, den): (i64, u32),
    work: &Path,
) -> Result<Vec<Vec<i64>>> {
    const RECIPE: Recipe = Recipe { input_options: &[], stream: "v:0", idr: None };
    let mut owned = Vec::with_capacity(manifest.segments.len());
    for chunk in manifest.segments.chunks(listing::BATCH_FILES) {
        let fetched = join_all(
            chunk
                .chunks(chunk.len().div_ceil(CONCURRENCY))
                .map(|part| async move {
                    let mut paths = Vec::new();
                    for segment in part {
                        let name = format!("split-{}", segment.index);
                        let path = split_file(split, &segment.path, &name, work).await?;
                        paths.push(path);
                    }
                    anyhow::Ok(paths)
                })
                .collect(),
        )
        .await;
        let mut files = Vec::new();
        for part in fetched {
            files.extend(part?);
        }
        let listings = listing::list(tools, &RECIPE, &files, work).await;
        for ((segment, listing), file) in chunk.iter().zip(listings).zip(&files) {
            let listing =
                listing.with_context(|| format!("listing the split's {}", segment.path))?;
            let timeline = packets::read_timeline(listing.packets.as_slice())?;
            if !segment.pts_digest.is_empty() && timeline.pts_digest() != segment.pts_digest {
                return Err(fail(
                    Kind::NotAVideo,
                    format!(
                        "segment {}: the split's {} does not match its manifest (pts_digest): \
                         it was changed after the split; split again",
                        segment.index, segment.path
                    ),
                ));
            }
            owned.push(owned_times(segment, &timeline, (num, den))?);
            if matches!(split, Store::S3 { .. }) {
                let _ = std::fs::remove_file(file);
            }
        }
    }
    Ok(owned)
}

fn owned_times(
    segment: &SegmentEntry,
    timeline: &crate::timestamps::Timeline,
    (num, den): (i64, u32),
) -> Result<Vec<i64>> {
    let mut pts: Vec<i64> = timeline.stamps.iter().map(|s| s.pts).collect();
    pts.sort_unstable();
    let frames = usize::try_from(segment.frames)?;
    let trailing = usize::try_from(segment.trailing_frames)?;
    let Some(first) = pts.len().checked_sub(frames + trailing) else {
        return Err(fail(
            Kind::NotAVideo,
            format!(
                "segment {}: the split's {} holds {} packets, fewer than the {} frames it owns",
                segment.index,
                segment.path,
                pts.len(),
                frames + trailing
            ),
        ));
    };
    let (fnum, fden) = timeline.time_base;
    let origin = pts[first];
    // ticks of the file's time base -> ticks of 1/den: exact when the file keeps the
    // source's time base, as the split's MP4 segments do.
    let start = i128::from(segment.start_pts) * i128::from(num);
    Ok(pts[first..first + frames]
        .iter()
        .map(|&p| {
            let offset = i128::from(p - origin) * i128::from(fnum) * i128::from(den);
            let offset = (offset + i128::from(fden) / 2).div_euclid(i128::from(fden));
            (start + offset) as i64
        })
        .collect())
}

/// ffmpeg's concat demuxer: the processed files' video packets into one MOV (stream copy).
/// The intermediate file is MP4 for the codecs MP4 defines a sample entry for (ffmpeg's `mov`
/// muxer refuses AV1 and VP9 in QuickTime mode), QuickTime for the rest (ProRes, FFV1 …):
/// the tables [`retime`] rewrites are the same in both.
fn intermediate_muxer(codec: &str) -> &'static str {
    match codec {
        "h264" | "hevc" | "av1" | "vp9" | "mpeg4" => "mp4",
        _ => "mov",
    }
}

async fn concatenate(
    tools: &Tools,
    inputs: &[PathBuf],
    codec: &str,
    video: &Path,
    work: &Path,
) -> Result<()> {
    let list = work.join("segments.ffconcat");
    let mut text = String::from("ffconcat version 1.0\n");
    for path in inputs {
        let quoted = path.display().to_string().replace('\'', r"'\''");
        text += &format!("file '{quoted}'\n");
    }
    std::fs::write(&list, text).context("writing the concat list")?;
    let out = tools
        .ffmpeg()
        .args(["-loglevel", "warning", "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i"])
        .arg(&list)
        .args(["-map", "0:v:0", "-c", "copy", "-map_metadata", "-1", "-f"])
        .arg(intermediate_muxer(codec))
        .arg("-y")
        .arg(video)
        .output()
        .await
        .map_err(|e| fail(Kind::Tools, format!("cannot run {}: {e}", tools.ffmpeg.display())))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(fail(
            Kind::NotAVideo,
            format!(
                "ffmpeg cannot concatenate the processed segments: {}",
                tools::last_line(&stderr)
            ),
        ));
    }
    if let Some(line) = stderr.lines().find(|l| l.contains("Non-monotonic DTS")) {
        // ffmpeg changed timestamps to keep going: the display order is no longer known.
        return Err(fail(
            Kind::NotAVideo,
            format!("the processed segments' timestamps go backwards when concatenated: {line}"),
        ));
    }
    Ok(())
}

/// Gives the concatenated file's samples the source's times: its `moov` (the last box, after
/// `mdat`) is replaced by one with new tables.
fn retime_file(
    video: &Path,
    owned: &[Vec<i64>],
    end: i64,
    den: u32,
    rotation: i32,
) -> Result<usize> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(video)
        .with_context(|| format!("opening {}", video.display()))?;
    let len = file.metadata()?.len();
    let (at, head, size) = last_box(&mut file, len)?;
    let mut moov = vec![0; usize::try_from(size - head)?];
    file.seek(SeekFrom::Start(at + head))?;
    file.read_exact(&mut moov)?;
    let worker_pts = retime::sample_pts(&moov).context("reading the concatenated video")?;
    let timing = retime::retime(&worker_pts, owned, end, den)
        .map_err(|e| fail(Kind::NotAVideo, e.to_string()))?;
    let new = retime::rewrite_moov(&moov, &timing, rotation)?;
    file.set_len(at)?;
    file.seek(SeekFrom::Start(at))?;
    file.write_all(&new)?;
    file.sync_all()?;
    Ok(worker_pts.len())
}

/// The `moov` box's position, header size and size; it must be the file's last box.
fn last_box(file: &mut std::fs::File, len: u64) -> Result<(u64, u64, u64)> {
    let mut pos = 0;
    while pos + 8 <= len {
        let mut header = [0u8; 16];
        file.seek(SeekFrom::Start(pos))?;
        let n = if len - pos >= 16 { 16 } else { 8 };
        file.read_exact(&mut header[..n])?;
        let (head, size) = match u32::from_be_bytes(header[..4].try_into()?) {
            1 => (16, u64::from_be_bytes(header[8..16].try_into()?)),
            0 => (8, len - pos),
            s => (8, u64::from(s)),
        };
        anyhow::ensure!(size >= head && pos + size <= len, "a malformed box at byte {pos}");
        if &header[4..8] == b"moov" {
            anyhow::ensure!(pos + size == len, "the moov box is not the file's last box");
            return Ok((pos, head, size));
        }
        pos += size;
    }
    anyhow::bail!("the concatenated video has no moov box")
}

/// Muxes the video and the audio into a temporary file and publishes it; returns its size.
async fn publish(
    tools: &Tools,
    video: &Path,
    codec: &str,
    audio: &[(PathBuf, Option<String>)],
    format: OutputFormat,
    output: &Location,
    opts: &JoinOptions,
) -> Result<u64> {
    let staging = match output {
        Location::Local(path) => {
            let parent =
                path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).kind(Kind::OutputUnwritable, || {
                format!("cannot create the directory {}", parent.display())
            })?;
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            parent.join(format!(".{name}.join-{}.tmp", std::process::id()))
        }
        // In the work directory, beside the video.
        Location::S3 { .. } => video.with_file_name("joined"),
    };
    let staged = Staged(staging.clone());
    let mut command = tools.ffmpeg();
    // Timestamps as they are: the video carries the source's, the audio files theirs.
    command.args(["-copyts", "-i"]).arg(video);
    for (path, _) in audio {
        command.arg("-i").arg(path);
    }
    command.args(["-map", "0:v:0"]);
    for i in 0..audio.len() {
        command.args(["-map", &format!("{}:a:0", i + 1)]);
    }
    command.args(["-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1"]);
    for (i, (_, language)) in audio.iter().enumerate() {
        if let Some(language) = language {
            command.args([format!("-metadata:s:a:{i}"), format!("language={language}")]);
        }
    }
    if format == OutputFormat::Mp4 {
        command.args(["-movflags", "+faststart"]);
    }
    command.args(["-f", format.muxer(), "-y"]).arg(&staging);
    let out = command
        .output()
        .await
        .map_err(|e| fail(Kind::Tools, format!("cannot run {}: {e}", tools.ffmpeg.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = match format {
            OutputFormat::Mp4 => format!(" (if MP4 cannot hold {codec}, write a .mkv file)"),
            OutputFormat::Matroska => String::new(),
        };
        return Err(fail(
            Kind::Other,
            format!("ffmpeg could not write the joined file: {}{hint}", tools::last_line(&stderr)),
        ));
    }
    let digest = {
        let path = staging.clone();
        tokio::task::spawn_blocking(move || hash::digest_file(&path))
            .await
            .context("hashing task failed")?
            .with_context(|| format!("reading {}", staging.display()))?
    };
    match output {
        Location::Local(path) => {
            std::fs::rename(&staging, path).kind(Kind::OutputUnwritable, || {
                format!("cannot move the joined file to {}", path.display())
            })?;
        }
        Location::S3 { bucket, key } => {
            let uploader = s3::Uploader::new(
                s3::client().await,
                bucket,
                opts.upload_concurrency,
                opts.part_size,
            );
            uploader.upload(&staging, key, &digest).await?;
        }
    }
    drop(staged);
    Ok(digest.bytes)
}

/// A temporary file removed when dropped (a failed or interrupted join leaves nothing).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
