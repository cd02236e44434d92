//! `splitter split`: input → probe → plan → one ffmpeg run → read-back check → hashes →
//! publish → manifest.
//!
//! Fast path (most files: closed GOPs): a single ffmpeg run lets the segment muxer cut at the
//! first keyframe after every N seconds while it also extracts the audio and lists the video
//! packets; the plan module then checks that those cuts are frame-exact. When they are not
//! (open GOPs, which the first seconds usually reveal), the segments are cut again at planned
//! keyframes, with lead-ins where needed. Hashing runs beside ffmpeg: the source while it is
//! read, each segment as soon as the muxer closes it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cut::{
    self, AudioJob, Container, CutPass, PassOutcome, Piece, VideoCuts, idr_unit_types,
};
use crate::error::{Kind, ResultExt, fail};
use crate::hash::{FileDigest, HashQueue, Pending};
use crate::location::Location;
use crate::manifest::{self, AudioEntry, ExcludedStream, Manifest, SegmentEntry};
use crate::output::{OutputFile, Sink, WorkDir};
use crate::packets::{self, PacketLog};
use crate::plan::{self, KeyframeFacts, Plan, Stream};
use crate::probe::{self, SourceInfo};
use crate::s3;
use crate::timestamps::{self, Timeline};
use crate::tools::Tools;

/// Settings of one split.
#[derive(Clone, Debug)]
pub struct SplitOptions {
    pub input: String,
    pub output: String,
    pub segment_seconds: f64,
    pub work_dir: PathBuf,
    pub upload_concurrency: usize,
    pub part_size: u64,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

async fn finish_hash(pending: Pending, what: &str) -> Result<FileDigest> {
    pending.wait().await.with_context(|| format!("hashing {what}"))
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

fn read_packet_log(path: &Path) -> Result<PacketLog> {
    let file = File::open(path).context("opening ffmpeg's packet list")?;
    packets::read_log(BufReader::new(file))
}

fn read_idr_log(path: &Path) -> Result<Vec<i64>> {
    let file = File::open(path).context("opening ffmpeg's IDR list")?;
    packets::read_pts(BufReader::new(file))
}

fn seconds(ticks: i64, (num, den): (i64, i64)) -> f64 {
    ticks as f64 * num as f64 / den as f64
}

/// The stream ticks of `seconds` in time base `tb`.
fn ticks(seconds: f64, (num, den): (i64, i64)) -> i64 {
    (seconds * den as f64 / num as f64).round() as i64
}

/// Maps the pieces ffmpeg's segment muxer cut (by their start times) to GOP indices.
fn cuts_from_pieces(pieces: &[Piece], log: &PacketLog) -> Result<Vec<usize>, String> {
    let mut ordered: Vec<&Piece> = pieces.iter().filter(|p| p.muxer == 0).collect();
    ordered.sort_by_key(|p| p.index);
    for (i, p) in ordered.iter().enumerate() {
        if p.index != i {
            return Err(format!("segment list skips piece {i}"));
        }
    }
    let mut cuts = Vec::new();
    for piece in ordered.iter().skip(1) {
        let best = log
            .stream
            .gops
            .iter()
            .enumerate()
            .map(|(g, gop)| (g, (seconds(gop.key_pts, log.time_base) - piece.start_seconds).abs()))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((g, diff)) if diff < 1e-3 => cuts.push(g),
            _ => {
                return Err(format!(
                    "no keyframe at {:.6}s where ffmpeg started piece {}",
                    piece.start_seconds, piece.index
                ));
            }
        }
    }
    Ok(cuts)
}

/// Fails on inputs ffmpeg could only partly read.
fn check_complete(
    outcome: &PassOutcome,
    log: &PacketLog,
    info: &SourceInfo,
    shown: &str,
) -> Result<()> {
    let expected = info.video().nb_frames.filter(|_| info.format_name.contains("mp4"));
    if outcome.truncated || expected.is_some_and(|n| log.stream.packets < n) {
        let detail = match expected {
            Some(n) => format!(" ({} of {n} video packets readable)", log.stream.packets),
            None => String::new(),
        };
        return Err(fail(Kind::NotAVideo, format!("{shown} is truncated{detail}")));
    }
    if log.stream.packets == 0 {
        return Err(fail(Kind::NotAVideo, format!("{shown} has no readable video packets")));
    }
    if log.corrupt_packets > 0 {
        tracing::warn!(packets = log.corrupt_packets, "the input has corrupt video packets");
    }
    Ok(())
}

/// Keyframe facts for the codec from an IDR list (if one was made).
fn keyframe_facts(codec: &str, idr: Option<Vec<i64>>) -> KeyframeFacts {
    match (idr_unit_types(codec), idr) {
        (Some(_), Some(idr)) => KeyframeFacts::clean(idr),
        (Some(_), None) => KeyframeFacts::unknown(),
        (None, _) => KeyframeFacts::none_clean(),
    }
}

/// The segment files in order, each with its running hash.
struct CutSegments {
    plan: Plan,
    time_base: (i64, i64),
    files: Vec<(PathBuf, Pending)>,
    /// The source's video packets as ffmpeg listed them (framecrc), for the read-back check.
    packet_log: PathBuf,
}

/// Segment files read back at once (each is one short ffmpeg run).
const READ_BACK_CONCURRENCY: usize = 4;

/// A segment file's video packets, listed by ffmpeg (stream copy to framecrc, no decoding).
async fn read_back(tools: &Tools, file: &Path) -> Result<Timeline> {
    let out = tools
        .ffmpeg()
        .arg("-i")
        .arg(file)
        .args(["-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .map_err(|e| fail(Kind::Tools, format!("cannot run {}: {e}", tools.ffmpeg.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no details");
        anyhow::bail!("ffmpeg cannot read back {}: {reason}", file.display());
    }
    packets::read_timeline(&out.stdout[..])
}

/// Reads every segment file back and checks its packets' timestamps against the source's
/// packets it was cut from (see [`timestamps`]); returns each segment's `pts_digest`.
async fn check_timestamps(tools: &Tools, cut: &CutSegments, shown: &str) -> Result<Vec<String>> {
    let log = File::open(&cut.packet_log).context("opening ffmpeg's packet list")?;
    let mut source = packets::PtsRanges::new(BufReader::new(log));
    let mut digests = Vec::with_capacity(cut.files.len());
    let segments = cut.plan.segments.chunks(READ_BACK_CONCURRENCY);
    for (segments, files) in segments.zip(cut.files.chunks(READ_BACK_CONCURRENCY)) {
        let tasks: Vec<_> = files
            .iter()
            .map(|(path, _)| {
                let (tools, path) = (tools.clone(), path.clone());
                tokio::spawn(async move { read_back(&tools, &path).await })
            })
            .collect();
        for (segment, task) in segments.iter().zip(tasks) {
            let actual = task.await.context("reading a segment back")??;
            let expected = source.range(segment.first_packet..segment.end_packet)?;
            let owned_from = (segment.owned_first_packet - segment.first_packet) as usize;
            timestamps::check_segment(segment.index, &expected, cut.time_base, owned_from, &actual)
                .map_err(|mismatch| {
                    fail(
                        Kind::Other,
                        format!(
                            "{shown}: {mismatch}; a decoder would lose or reorder frames, so \
                             ffmpeg {} at {} cannot cut this input correctly (no manifest \
                             written; report it with the input's ffprobe output)",
                            tools.ffmpeg_version,
                            tools.ffmpeg.display()
                        ),
                    )
                })?;
            digests.push(actual.pts_digest());
        }
    }
    Ok(digests)
}

struct Cutter<'a> {
    tools: &'a Tools,
    hashes: &'a HashQueue,
    info: &'a SourceInfo,
    source: &'a Path,
    shown: &'a str,
    work: &'a Path,
    container: Container,
    segment_seconds: f64,
}

impl Cutter<'_> {
    fn pass(&self, pieces_dir: &Path) -> CutPass {
        CutPass {
            input: self.source.to_path_buf(),
            video_stream: self.info.video().index,
            video: None,
            pieces_dir: pieces_dir.to_path_buf(),
            packet_log: None,
            idr_log: None,
            audio: Vec::new(),
        }
    }

    fn pieces_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir)
            .kind(Kind::OutputUnwritable, || format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Cuts the video (and extracts `audio` in the same run).
    async fn cut(&self, audio: Vec<AudioJob>) -> Result<CutSegments> {
        let mut audio = Some(audio);
        let codec = self.info.video().codec_name.as_str();
        let sniffed = Stream::from_packets(self.info.sniffed.iter().copied());
        let open_gop_seen = sniffed.gops.iter().any(|g| g.leading > 0);
        let mut log: Option<PacketLog> = None;

        if open_gop_seen {
            tracing::info!(
                "keyframes with leading pictures (open GOP): cutting at planned keyframes"
            );
        } else {
            let dir = self.pieces_dir("fast")?;
            let packet_log = self.work.join("packets.crc");
            let mut pass = self.pass(&dir);
            pass.video = Some((VideoCuts::Every { seconds: self.segment_seconds }, self.container));
            pass.packet_log = Some(packet_log.clone());
            pass.audio = audio.take().unwrap_or_default();
            let expected = self
                .info
                .duration_seconds
                .map(|d| (d / self.segment_seconds).ceil().max(1.0) as usize);
            let mut pieces: Vec<Piece> = Vec::new();
            let mut hashes: BTreeMap<usize, (PathBuf, Pending)> = BTreeMap::new();
            let outcome = pass
                .run(self.tools, |piece| {
                    tracing::info!(
                        segment = piece.index,
                        expected_segments = expected,
                        "segment written"
                    );
                    hashes.insert(
                        piece.index,
                        (piece.path.clone(), self.hashes.submit(piece.path.clone())),
                    );
                    pieces.push(piece);
                })
                .await?;
            let packets = read_packet_log(&packet_log)?;
            check_complete(&outcome, &packets, self.info, self.shown)?;
            let checked = cuts_from_pieces(&pieces, &packets).and_then(|cuts| {
                plan::plan_for_cuts(&packets.stream, &KeyframeFacts::unknown(), &cuts)
                    .map_err(|e| e.to_string())
            });
            match checked {
                Ok(plan) if !plan.has_lead_in_packets() && hashes.len() == plan.segments.len() => {
                    return Ok(CutSegments {
                        plan,
                        time_base: packets.time_base,
                        files: hashes.into_values().collect(),
                        packet_log,
                    });
                }
                Ok(_) => {
                    tracing::info!("ffmpeg's cuts need lead-ins: cutting at planned keyframes")
                }
                Err(reason) => tracing::info!(
                    reason,
                    "ffmpeg's cuts are not frame-exact for this input: cutting at planned keyframes"
                ),
            }
            drop(hashes);
            let _ = std::fs::remove_dir_all(&dir);
            log = Some(packets);
        }

        // Planned path: the packet list, the IDR list if the codec has one and keyframes have
        // leading pictures, and the audio if not done yet, in one probing run.
        let packet_log = self.work.join("packets.crc");
        let idr_types = idr_unit_types(codec);
        let need_idr = idr_types.is_some()
            && log.as_ref().is_none_or(|l| !l.stream.keyframes_with_leading_pictures().is_empty());
        let mut idr = None;
        let audio_left = audio.take().unwrap_or_default();
        if log.is_none() || need_idr || !audio_left.is_empty() {
            let idr_log = self.work.join("idr.crc");
            let mut pass = self.pass(self.work);
            if log.is_none() {
                pass.packet_log = Some(packet_log.clone());
            }
            if let (true, Some(types)) = (need_idr, idr_types) {
                pass.idr_log = Some((idr_log.clone(), types));
            }
            pass.audio = audio_left;
            let outcome = pass.run(self.tools, |_| {}).await?;
            if log.is_none() {
                let packets = read_packet_log(&packet_log)?;
                check_complete(&outcome, &packets, self.info, self.shown)?;
                log = Some(packets);
            }
            if pass.idr_log.is_some() {
                idr = Some(read_idr_log(&idr_log)?);
            }
        }
        let log = log.context("no packet list")?;
        let facts = keyframe_facts(codec, idr);
        let target = ticks(self.segment_seconds, log.time_base);
        let plan = plan::plan(&log.stream, &facts, target).map_err(|e| {
            fail(Kind::NotAVideo, format!("{}: cannot split frame-exactly: {e}", self.shown))
        })?;
        let layout = plan::layout(&plan, log.stream.packets);
        tracing::info!(
            segments = plan.segments.len(),
            with_lead_in = plan.segments.iter().filter(|s| s.lead_in_gop.is_some()).count(),
            "planned"
        );

        let dir = self.pieces_dir("planned")?;
        let mut pass = self.pass(&dir);
        pass.video = Some((VideoCuts::Planned(layout.clone()), self.container));
        let total = plan.segments.len();
        let mut files: BTreeMap<usize, (PathBuf, Pending)> = BTreeMap::new();
        let mut unexpected = Vec::new();
        pass.run(self.tools, |piece| {
            match layout.muxers.get(piece.muxer).and_then(|m| m.pieces.get(piece.index)) {
                Some(Some(segment)) => {
                    tracing::info!(segment, progress = %format!("{}/{total}", files.len() + 1), "segment written");
                    files.insert(*segment, (piece.path.clone(), self.hashes.submit(piece.path)));
                }
                Some(None) => {
                    // Overlap bookkeeping: this piece belongs to no segment.
                    let _ = std::fs::remove_file(&piece.path);
                }
                None => unexpected.push(piece.path),
            }
        })
        .await?;
        if !unexpected.is_empty() || files.len() != total {
            return Err(anyhow::anyhow!(
                "ffmpeg did not cut where planned: {} of {total} segments, {} unexpected pieces",
                files.len(),
                unexpected.len()
            ));
        }
        Ok(CutSegments {
            plan,
            time_base: log.time_base,
            files: files.into_values().collect(),
            packet_log,
        })
    }
}

fn rational_string((n, d): (i64, i64)) -> String {
    format!("{n}/{d}")
}

/// Runs a split; returns the manifest it wrote.
pub async fn split(opts: &SplitOptions) -> Result<Manifest> {
    let started = Instant::now();
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
    let ffmpeg = opts.ffmpeg.clone().unwrap_or_else(|| PathBuf::from("ffmpeg"));
    let ffprobe = opts.ffprobe.clone().unwrap_or_else(|| PathBuf::from("ffprobe"));
    // ffmpeg's version check runs beside the input checks and the probe (which checks
    // ffprobe's version from its own output); its verdict comes first.
    let ffmpeg_check = tokio::spawn({
        let ffmpeg = ffmpeg.clone();
        async move { crate::tools::check("ffmpeg", ffmpeg.as_os_str()).await }
    });
    let needs_s3 = matches!(input, Location::S3 { .. }) || matches!(output, Location::S3 { .. });
    let client = if needs_s3 { Some(s3::client().await) } else { None };
    let hashes = HashQueue::new().context("starting the hashing thread")?;

    // 1. The input, checked before anything is written.
    let mut input_work: Option<WorkDir> = None;
    let shown = input.to_string();
    let mut source_hash: Option<Pending> = None;
    let source_path: Result<PathBuf> = match &input {
        Location::Local(path) => check_local_input(path).map(|()| {
            // Hash while ffprobe and ffmpeg read it (page cache).
            source_hash = Some(hashes.submit(path.clone()));
            path.clone()
        }),
        Location::S3 { .. } => Ok(PathBuf::new()),
    };
    let tools = {
        let version = ffmpeg_check.await.context("checking ffmpeg")??;
        Tools { ffmpeg, ffprobe, ffmpeg_version: version.release }
    };
    let mut source_path = source_path?;
    if let Location::S3 { bucket, key } = &input {
        let work = WorkDir::create(&opts.work_dir, Kind::Other)?;
        let name = Path::new(key)
            .extension()
            .map_or("input".to_string(), |e| format!("input.{}", e.to_string_lossy()));
        let dest = work.path().join(name);
        tracing::info!(input = %input, "downloading");
        let client = client.as_ref().context("no S3 client")?;
        let digest = s3::download(client, bucket, key, &dest).await?;
        tracing::info!(bytes = digest.bytes, "downloaded");
        input_work = Some(work);
        probe::sniff_content(&dest).map_err(|e| {
            let message = crate::error::one_line(&e).replace(&dest.display().to_string(), &shown);
            fail(crate::error::kind_of(&e), message)
        })?;
        source_hash = Some(Pending::ready(digest));
        source_path = dest;
    }
    let source_hash = source_hash.context("no source digest")?;
    let info = probe::probe(&tools.ffprobe, &source_path, &shown).await?;
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

    // 2. The output: stale manifest removed before anything is written.
    let sink = Sink::open(&output, client.clone(), opts.upload_concurrency, opts.part_size).await?;
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

    // 3. Cut.
    let cutter = Cutter {
        tools: &tools,
        hashes: &hashes,
        info: &info,
        source: &source_path,
        shown: &shown,
        work: work.path(),
        container: cut::segment_container(&video.codec_name),
        segment_seconds: opts.segment_seconds,
    };
    let cut = cutter.cut(audio_jobs.clone()).await?;
    if cut.plan.frames < 2 {
        return Err(fail(Kind::NotAVideo, format!("{shown} holds a single picture, not a video")));
    }

    // 4. The segments read back: their timestamps must be the source's (no decoding).
    let pts_digests = check_timestamps(&tools, &cut, &shown).await?;

    // 5. Digests, manifest entries.
    let tb = cut.time_base;
    let mut files = Vec::new();
    let mut segments = Vec::new();
    let cut_files = cut.files.into_iter().zip(pts_digests);
    for (segment, ((path, task), pts_digest)) in cut.plan.segments.iter().zip(cut_files) {
        let digest = finish_hash(task, "a segment").await?;
        let relative = manifest::segment_path(segment.index, cutter.container.extension);
        segments.push(SegmentEntry {
            index: segment.index,
            path: relative.clone(),
            bytes: digest.bytes,
            sha256: digest.sha256.clone(),
            frames: segment.frames,
            start_seconds: seconds(segment.start_pts - cut.plan.origin_pts, tb),
            duration_seconds: seconds(segment.end_pts - segment.start_pts, tb),
            lead_in_frames: segment.lead_in_frames,
            trailing_frames: segment.trailing_frames,
            start_pts: segment.start_pts,
            end_pts: segment.end_pts,
            pts_digest,
        });
        files.push(OutputFile { local: path, relative, digest });
    }
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
    let source_digest = finish_hash(source_hash, "the input").await?;
    drop(input_work);
    let end_seconds =
        cut.plan.segments.last().map_or(0.0, |s| seconds(s.end_pts - cut.plan.origin_pts, tb));
    let manifest = Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        splitter_version: env!("CARGO_PKG_VERSION").to_string(),
        segment_seconds: opts.segment_seconds,
        ffmpeg_version: tools.ffmpeg_version.clone(),
        source: manifest::Source {
            uri: opts.input.clone(),
            bytes: source_digest.bytes,
            sha256: source_digest.sha256,
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
                frames: cut.plan.frames,
                rotation: info.rotation_degrees(),
                time_base: rational_string(tb),
            },
        },
        segments,
        audio,
        excluded_streams: info
            .excluded()
            .into_iter()
            .map(|(s, reason)| ExcludedStream {
                stream_index: s.index,
                codec_type: s.codec_type.clone(),
                codec: s.codec_name.clone(),
                reason: reason.to_string(),
            })
            .collect(),
    };
    for excluded in &manifest.excluded_streams {
        tracing::info!(
            stream = excluded.stream_index,
            codec_type = %excluded.codec_type,
            codec = %excluded.codec,
            reason = %excluded.reason,
            "stream left out"
        );
    }

    // 6. Publish, clean up what an earlier run left, manifest last.
    tracing::info!(output = %sink.describe(), files = files.len(), "publishing");
    let skipped = sink.store(&files).await?;
    let keep: BTreeSet<String> = files.iter().map(|f| f.relative.clone()).collect();
    sink.remove_stale(&keep).await?;
    sink.write_manifest(&manifest).await?;
    drop(work);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_conversions() {
        assert_eq!(ticks(10.0, (1, 12800)), 128000);
        assert_eq!(ticks(2.5, (1, 90000)), 225000);
        assert_eq!(ticks(1.0, (1001, 30000)), 30);
        assert!((seconds(128000, (1, 12800)) - 10.0).abs() < 1e-12);
    }

    #[test]
    fn ffmpeg_pieces_map_to_gops_by_start_time() {
        let log = PacketLog {
            stream: Stream::from_packets((0..100).map(|i| plan::Packet {
                pts: i * 512,
                duration: 512,
                key: i % 25 == 0,
                discard: false,
            })),
            time_base: (1, 12800),
            corrupt_packets: 0,
            bytes: 0,
        };
        let piece = |index, start_seconds| Piece {
            muxer: 0,
            index,
            path: PathBuf::from(format!("a{index:06}.mp4")),
            start_seconds,
        };
        let pieces = vec![piece(1, 2.0), piece(0, 0.0), piece(2, 3.000_000_4)];
        assert_eq!(cuts_from_pieces(&pieces, &log), Ok(vec![2, 3]));
        assert!(cuts_from_pieces(&[piece(0, 0.0), piece(1, 1.5)], &log).is_err());
        assert!(cuts_from_pieces(&[piece(0, 0.0), piece(2, 2.0)], &log).is_err());
    }
}
