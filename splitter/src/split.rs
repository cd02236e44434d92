//! `splitter split`: input → probe → plan → one ffmpeg run → read-back check → hashes →
//! publish → manifest.
//!
//! Fast path (most files: closed GOPs): a single ffmpeg run lets the segment muxer cut at the
//! first keyframe after every N seconds while it also extracts the audio and lists the video
//! packets; the plan module then checks that those cuts are frame-exact. When they are not
//! (open GOPs, which the first seconds usually reveal), the segments are cut again at planned
//! keyframes, with lead-ins where needed (`cutter`). Hashing runs beside ffmpeg: the source
//! while it is read, each segment as soon as the muxer closes it.

mod cutter;
mod download;
mod pipeline;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use aws_sdk_s3::Client;
use tokio::task::JoinHandle;

use crate::cut::{self, AudioJob};
use crate::error::{Kind, ResultExt, fail};
use crate::hash::{FileDigest, HashQueue, Pending};
use crate::hold::Hold;
use crate::location::Location;
use crate::manifest::{self, AudioEntry, ExcludedStream, Manifest, SegmentEntry};
use crate::output::{OutputFile, Sink, WorkDir};
use crate::probe::{self, SourceInfo};
use crate::readback;
use crate::s3;
use crate::tools::Tools;
use cutter::{CutSegments, Cutter, seconds};
use download::Download;
use pipeline::{Finished, Pipeline};

/// Settings of one split.
#[derive(Clone, Debug)]
pub struct SplitOptions {
    pub input: String,
    pub output: String,
    pub segment_seconds: f64,
    /// Frames of context each segment file carries before and after the frames it owns (whole
    /// GOPs, counted in `lead_in_frames`/`trailing_frames`; fewer only at the video's ends).
    pub context_frames: u64,
    pub work_dir: PathBuf,
    pub upload_concurrency: usize,
    pub part_size: u64,
    /// Bytes of segments cut and not uploaded yet beyond which the cut pauses (the scratch
    /// space an S3 → S3 split needs is about the input plus this; see [`Hold`]).
    pub upload_backlog: u64,
    /// Download, cut and upload one after the other (no overlap).
    pub sequential: bool,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

/// Runs a split; returns the manifest it wrote.
pub async fn split(opts: &SplitOptions) -> Result<Manifest> {
    let started = Instant::now();
    let (input, output) = check_arguments(opts)?;
    // ffmpeg's version check runs beside the input checks and the probe (which checks
    // ffprobe's version from its own output); its verdict comes first.
    let ffmpeg_check = check_tools(opts);
    let needs_s3 = matches!(input, Location::S3 { .. }) || matches!(output, Location::S3 { .. });
    let client = if needs_s3 { Some(s3::client().await) } else { None };
    let hashes = HashQueue::new().context("starting the hashing thread")?;

    // 1. The input, checked before anything is written.
    let (tools, mut source) =
        resolve_input(&input, opts, ffmpeg_check, client.as_ref(), &hashes).await?;

    // 2. The output: stale manifest removed before anything is written.
    let out = open_output(&output, client, opts, &source.info).await?;

    // 3. Cut; each segment hashed, listed and (S3) uploaded as soon as ffmpeg closes it.
    let cut = cut_video(&tools, &hashes, &source, &out, opts).await;
    let (cut, finished) = settle_download(&tools, &mut source, cut).await?;

    // 4. The segments read back: their timestamps must be the source's (no decoding).
    let listings: Vec<PathBuf> = finished.iter().map(|f| f.listing.clone()).collect();
    let pts_digests = readback::check_listings(
        &cut.plan.segments,
        &listings,
        &cut.packet_log,
        &tools,
        &source.shown,
    )?;

    // 5. Digests, manifest entries.
    let skipped = finished.iter().filter(|f| f.stored == Some(s3::Upload::Skipped)).count();
    let (manifest, files) = manifest_entries(
        opts,
        &tools,
        &hashes,
        source,
        &out.audio_jobs,
        &cut,
        finished,
        pts_digests,
    )
    .await?;

    // 6. Publish, clean up what an earlier run left, manifest last.
    let skipped = skipped + publish(out, &files, &manifest).await?;
    tracing::info!(
        segments = manifest.segments.len(),
        frames = manifest.source.video.frames,
        audio_files = manifest.audio.len(),
        skipped_existing = skipped,
        elapsed_seconds = started.elapsed().as_secs_f64(),
        peak_rss_kib = crate::peak_rss_kib(),
        "split complete"
    );
    Ok(manifest)
}

/// INPUT, OUTPUT and `--segment-seconds`, checked before anything runs.
fn check_arguments(opts: &SplitOptions) -> Result<(Location, Location)> {
    let input =
        Location::parse(&opts.input).map_err(|e| fail(Kind::Usage, format!("bad INPUT: {e}")))?;
    let output =
        Location::parse(&opts.output).map_err(|e| fail(Kind::Usage, format!("bad OUTPUT: {e}")))?;
    if !(opts.segment_seconds.is_finite() && opts.segment_seconds > 0.0) {
        return Err(fail(
            Kind::Usage,
            format!("--segment-seconds must be a positive number, not {}", opts.segment_seconds),
        ));
    }
    if matches!(&input, Location::S3 { key, .. } if key.is_empty() || key.ends_with('/')) {
        return Err(fail(Kind::Usage, format!("INPUT {input} does not name an object")));
    }
    Ok((input, output))
}

/// ffmpeg's version check, started in the background; the tools once it passed.
fn check_tools(opts: &SplitOptions) -> JoinHandle<Result<Tools>> {
    let ffmpeg = opts.ffmpeg.clone().unwrap_or_else(|| PathBuf::from("ffmpeg"));
    let ffprobe = opts.ffprobe.clone().unwrap_or_else(|| PathBuf::from("ffprobe"));
    tokio::spawn(async move {
        let version = crate::tools::check("ffmpeg", ffmpeg.as_os_str()).await?;
        Ok(Tools { ffmpeg, ffprobe, ffmpeg_version: version.release })
    })
}

/// The input, checked and probed.
struct Source {
    /// The file ffmpeg reads: the local input, or the download of an S3 input.
    path: PathBuf,
    /// INPUT as messages name it.
    shown: String,
    /// Its digest (an S3 input's once the download finished).
    hash: Option<Pending>,
    info: SourceInfo,
    /// An S3 input's download (perhaps still running), removed once the input is hashed.
    download: Option<Download>,
}

/// Step 1: the input checked (a local one hashed while ffprobe and ffmpeg read it, page
/// cache; an S3 one downloaded and hashed on the way), ffmpeg's check awaited, the input
/// probed.
async fn resolve_input(
    input: &Location,
    opts: &SplitOptions,
    ffmpeg_check: JoinHandle<Result<Tools>>,
    client: Option<&Client>,
    hashes: &HashQueue,
) -> Result<(Tools, Source)> {
    let shown = input.to_string();
    let local_hash: Result<Option<Pending>> = match input {
        Location::Local(path) => {
            check_local_input(path).map(|()| Some(hashes.submit(path.clone())))
        }
        Location::S3 { .. } => Ok(None),
    };
    let tools = ffmpeg_check.await.context("checking ffmpeg")??;
    let local_hash = local_hash?;
    let (path, hash, download) = match input {
        Location::Local(path) => (path.clone(), local_hash, None),
        Location::S3 { bucket, key } => {
            let client = client.context("no S3 client")?;
            let download =
                Download::start(&opts.work_dir, client, bucket, key, &shown, opts.sequential)
                    .await?;
            (download.path.clone(), None, Some(download))
        }
    };
    let probe_path = download.as_ref().map_or(&path, |d| &d.probe_path);
    let info = probe::probe(&tools.ffprobe, probe_path, &shown).await?;
    let video = info.video();
    tracing::info!(
        input = %shown,
        format = %info.format_name,
        codec = %video.codec_name,
        width = video.width,
        height = video.height,
        audio_streams = info.audio().count(),
        "probed"
    );
    Ok((tools, Source { path, shown, hash, info, download }))
}

/// A local input, checked: exists, is a file, is readable, looks like media.
fn check_local_input(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            format!("input {} does not exist", path.display())
        } else {
            format!("cannot read input {}: {e}", path.display())
        };
        fail(Kind::InputUnreadable, what)
    })?;
    if meta.is_dir() {
        return Err(fail(
            Kind::InputUnreadable,
            format!("input {} is a directory, not a video file", path.display()),
        ));
    }
    File::open(path)
        .kind(Kind::InputUnreadable, || format!("cannot read input {}", path.display()))?;
    probe::sniff_content(path)
}

/// After the cut: the download's end awaited (its failure is the error to report, before
/// whatever the cut made of a partial input), its digest kept; a streamed input re-probed for
/// the duration a partial file cannot tell (MPEG-TS). A failed cut stops the download.
async fn settle_download<T>(tools: &Tools, source: &mut Source, cut: Result<T>) -> Result<T> {
    let Some(download) = source.download.as_mut() else { return cut };
    if cut.is_err() && !download.failed() {
        download.abort();
        return cut;
    }
    let digest = download.finish().await?;
    download.check_fetched_index(&source.shown)?;
    let cut = cut?;
    if download.streamed {
        let whole = probe::probe(&tools.ffprobe, &source.path, &source.shown).await?;
        source.info.duration_seconds = whole.duration_seconds;
    }
    source.hash = Some(Pending::ready(digest));
    Ok(cut)
}

/// The opened output and the files staged for it.
struct Output {
    sink: Sink,
    /// Staging: inside the output directory (local) or in the work directory (S3).
    work: WorkDir,
    /// Each audio stream's file in `work`.
    audio_jobs: Vec<AudioJob>,
}

/// Step 2: the output opened (a stale manifest removed before anything is written), the
/// staging directory created, each audio stream's file chosen.
async fn open_output(
    output: &Location,
    client: Option<Client>,
    opts: &SplitOptions,
    info: &SourceInfo,
) -> Result<Output> {
    let sink = Sink::open(output, client, opts.upload_concurrency, opts.part_size).await?;
    let staging = sink.staging_parent(&opts.work_dir);
    let work = WorkDir::create(&staging, Kind::OutputUnwritable)?;
    let audio_dir = work.path().join("audio");
    std::fs::create_dir_all(&audio_dir)
        .kind(Kind::OutputUnwritable, || format!("cannot create {}", audio_dir.display()))?;
    let audio_jobs: Vec<AudioJob> = info
        .audio()
        .map(|a| {
            let container = cut::audio_container(&info.format_name, &a.codec_name);
            AudioJob {
                stream_index: a.index,
                container,
                file: audio_dir.join(format!("stream-{}.{}", a.index, container.extension)),
            }
        })
        .collect();
    Ok(Output { sink, work, audio_jobs })
}

/// Step 3: the video cut (the audio extracted in the same run), each segment through the
/// pipeline as it is closed; a single picture refused. A failure in the pipeline (an upload
/// that ran out of attempts) stops the cut.
async fn cut_video(
    tools: &Tools,
    hashes: &HashQueue,
    source: &Source,
    out: &Output,
    opts: &SplitOptions,
) -> Result<(CutSegments, Vec<Finished>)> {
    let container = cut::segment_container(&source.info.video().codec_name);
    let upload_now = !opts.sequential;
    let mut pipeline = Pipeline::start(
        tools,
        hashes,
        &out.sink,
        container.extension,
        upload_now,
        opts.upload_concurrency,
    );
    let arriving = source.download.as_ref().and_then(Download::arriving).cloned();
    let hold = Hold::new(pipeline.pending(), opts.upload_backlog);
    let segments = pipeline.segments().clone();
    let cutter = Cutter {
        tools,
        segments: &segments,
        info: &source.info,
        source: &source.path,
        arriving: arriving.as_ref(),
        hold: &hold,
        passed: Default::default(),
        shown: &source.shown,
        work: out.work.path(),
        container,
        segment_seconds: opts.segment_seconds,
        context_frames: opts.context_frames,
    };
    let cut = tokio::select! {
        cut = cutter.cut(out.audio_jobs.clone()) => cut?,
        error = pipeline.failed() => return Err(error),
    };
    drop(segments);
    if cut.plan.frames < 2 {
        let shown = &source.shown;
        return Err(fail(Kind::NotAVideo, format!("{shown} holds a single picture, not a video")));
    }
    let finished = pipeline.finish().await?;
    if finished.len() != cut.plan.segments.len() {
        anyhow::bail!(
            "the segment pipeline saw {} segments, the plan has {}",
            finished.len(),
            cut.plan.segments.len()
        );
    }
    Ok((cut, finished))
}

async fn finish_hash(pending: Pending, what: &str) -> Result<FileDigest> {
    pending.wait().await.with_context(|| format!("hashing {what}"))
}

/// Step 5: every file's digest awaited, the manifest built; the files still to publish.
#[allow(clippy::too_many_arguments)]
async fn manifest_entries(
    opts: &SplitOptions,
    tools: &Tools,
    hashes: &HashQueue,
    source: Source,
    audio_jobs: &[AudioJob],
    cut: &CutSegments,
    finished: Vec<Finished>,
    pts_digests: Vec<String>,
) -> Result<(Manifest, Vec<OutputFile>)> {
    let mut files = Vec::new();
    let segments = segment_entries(cut, finished, pts_digests, &mut files);
    let audio = audio_entries(hashes, audio_jobs, &source.info, &mut files).await?;
    let source_digest = finish_hash(source.hash.context("no source digest")?, "the input").await?;
    drop(source.download);
    let manifest = Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        splitter_version: env!("CARGO_PKG_VERSION").to_string(),
        segment_seconds: opts.segment_seconds,
        ffmpeg_version: tools.ffmpeg_version.clone(),
        source: source_entry(&opts.input, source_digest, &source.info, cut),
        segments,
        audio,
        excluded_streams: excluded_streams(&source.info),
    };
    Ok((manifest, files))
}

/// The segments' manifest entries; the files not stored yet (a local output's) appended to
/// `files`.
fn segment_entries(
    cut: &CutSegments,
    finished: Vec<Finished>,
    pts_digests: Vec<String>,
    files: &mut Vec<OutputFile>,
) -> Vec<SegmentEntry> {
    let (plan, tb) = (&cut.plan, cut.time_base);
    let mut segments = Vec::new();
    let done = finished.into_iter().zip(pts_digests);
    for (segment, (done, pts_digest)) in plan.segments.iter().zip(done) {
        let digest = done.digest;
        let relative = manifest::segment_path(segment.index, cut.container.extension);
        segments.push(SegmentEntry {
            index: segment.index,
            path: relative.clone(),
            bytes: digest.bytes,
            sha256: digest.sha256.clone(),
            frames: segment.frames,
            start_seconds: seconds(segment.start_pts - plan.origin_pts, tb),
            duration_seconds: seconds(segment.end_pts - segment.start_pts, tb),
            lead_in_frames: segment.lead_in_frames,
            trailing_frames: segment.trailing_frames,
            start_pts: segment.start_pts,
            end_pts: segment.end_pts,
            pts_digest,
        });
        if done.stored.is_none() {
            files.push(OutputFile { local: done.path, relative, digest });
        }
    }
    segments
}

/// The audio files' manifest entries, hashed now (their files appended to `files`).
async fn audio_entries(
    hashes: &HashQueue,
    audio_jobs: &[AudioJob],
    info: &SourceInfo,
    files: &mut Vec<OutputFile>,
) -> Result<Vec<AudioEntry>> {
    let mut audio = Vec::new();
    for (job, stream) in audio_jobs.iter().zip(info.audio()) {
        let digest = finish_hash(hashes.submit(job.file.clone()), "an audio file").await?;
        let relative = manifest::audio_path(job.stream_index, job.container.extension);
        audio.push(AudioEntry {
            stream_index: job.stream_index,
            path: relative.clone(),
            bytes: digest.bytes,
            sha256: digest.sha256.clone(),
            codec: stream.codec_name.clone(),
            channels: stream.channels,
            sample_rate: stream.sample_rate,
            language: stream.language.clone(),
        });
        files.push(OutputFile { local: job.file.clone(), relative, digest });
    }
    Ok(audio)
}

fn rational_string((n, d): (i64, i64)) -> String {
    format!("{n}/{d}")
}

/// The manifest's `source`: INPUT as given, its digest, what ffprobe and the plan say.
fn source_entry(
    uri: &str,
    digest: FileDigest,
    info: &SourceInfo,
    cut: &CutSegments,
) -> manifest::Source {
    let (plan, tb) = (&cut.plan, cut.time_base);
    let end_seconds =
        plan.segments.last().map_or(0.0, |s| seconds(s.end_pts - plan.origin_pts, tb));
    let video = info.video();
    manifest::Source {
        uri: uri.to_string(),
        bytes: digest.bytes,
        sha256: digest.sha256,
        format: info.format_name.clone(),
        duration_seconds: info.duration_seconds.unwrap_or(end_seconds),
        video: manifest::Video {
            stream_index: video.index,
            codec: video.codec_name.clone(),
            profile: video.profile.clone(),
            width: video.width.unwrap_or(0),
            height: video.height.unwrap_or(0),
            pixel_format: video.pixel_format.clone(),
            frame_rate: video.avg_frame_rate.map_or(0.0, |(n, d)| n as f64 / d as f64),
            frame_rate_rational: video.avg_frame_rate.map_or_else(String::new, rational_string),
            frames: plan.frames,
            rotation: info.rotation_degrees(),
            time_base: rational_string(tb),
        },
    }
}

/// The streams left out, with the reason (each one logged).
fn excluded_streams(info: &SourceInfo) -> Vec<ExcludedStream> {
    let excluded: Vec<ExcludedStream> = info
        .excluded()
        .into_iter()
        .map(|(s, reason)| ExcludedStream {
            stream_index: s.index,
            codec_type: s.codec_type.clone(),
            codec: s.codec_name.clone(),
            reason: reason.to_string(),
        })
        .collect();
    for excluded in &excluded {
        tracing::info!(
            stream = excluded.stream_index,
            codec_type = %excluded.codec_type,
            codec = %excluded.codec,
            reason = %excluded.reason,
            "stream left out"
        );
    }
    excluded
}

/// Step 6: every file published, what an earlier run left removed, the manifest written last;
/// the staging directory removed after. Returns how many files were already there (S3).
async fn publish(out: Output, files: &[OutputFile], manifest: &Manifest) -> Result<usize> {
    let sink = &out.sink;
    tracing::info!(output = %sink.describe(), files = files.len(), "publishing");
    let skipped = sink.store(files).await?;
    let keep: BTreeSet<String> = manifest.files().iter().map(|f| f.0.to_string()).collect();
    sink.remove_stale(&keep).await?;
    sink.write_manifest(manifest, out.work.path()).await?;
    drop(out.work);
    Ok(skipped)
}
