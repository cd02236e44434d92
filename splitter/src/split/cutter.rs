//! Step 3 of a split, cutting: the fast path (ffmpeg's segment muxer cuts every N seconds, the
//! plan module checks the cuts) and, for open GOPs or cuts that are not frame-exact, the
//! planned path (the plan module picks the cuts, lead-ins and context frames where needed).

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::pipeline::Segments;
use crate::cut::{AudioJob, Container, CutPass, PassOutcome, Piece, VideoCuts, idr_unit_types};
use crate::error::{Kind, ResultExt, fail};
use crate::growing::{Growing, State};
use crate::hold::Hold;
use crate::packets::{self, PacketLog};
use crate::plan::{self, KeyframeFacts, Plan, Stream};
use crate::probe::SourceInfo;
use crate::tools::Tools;

/// The video packet list's file name in the work directory.
const PACKET_LOG: &str = "packets.crc";

fn read_packet_log(path: &Path) -> Result<PacketLog> {
    let file = File::open(path).context("opening ffmpeg's packet list")?;
    packets::read_log(BufReader::new(file))
}

fn read_idr_log(path: &Path) -> Result<Vec<i64>> {
    let file = File::open(path).context("opening ffmpeg's IDR list")?;
    packets::read_pts(BufReader::new(file))
}

/// `ticks` in time base `tb`, in seconds.
pub(super) fn seconds(ticks: i64, (num, den): (i64, i64)) -> f64 {
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

/// The segment files in order (each handed to the pipeline as ffmpeg closed it).
pub(super) struct CutSegments {
    pub(super) plan: Plan,
    pub(super) time_base: (i64, i64),
    /// The segment files' container.
    pub(super) container: Container,
    /// The source's video packets as ffmpeg listed them (framecrc), for the read-back check.
    pub(super) packet_log: PathBuf,
}

/// How the fast path ends.
enum FastPath {
    /// ffmpeg's cuts are frame-exact: the segments are written.
    Done(CutSegments),
    /// They are not: the packet list, for the planned path.
    Replan(PacketLog),
}

pub(super) struct Cutter<'a> {
    pub(super) tools: &'a Tools,
    /// Where each segment file goes once ffmpeg closed it (hashed, listed, uploaded).
    pub(super) segments: &'a Segments,
    pub(super) info: &'a SourceInfo,
    pub(super) source: &'a Path,
    /// `source` is still downloading: the first pass reads it as it arrives.
    pub(super) arriving: Option<&'a Growing>,
    /// Every pass is stopped while too much is cut and not uploaded yet.
    pub(super) hold: &'a Hold,
    /// Whether a pass has run (a later one needs the whole file).
    pub(super) passed: Cell<bool>,
    pub(super) shown: &'a str,
    pub(super) work: &'a Path,
    pub(super) container: Container,
    pub(super) segment_seconds: f64,
    /// Frames each segment file carries before and after its own (`--context-frames`).
    pub(super) context_frames: u64,
}

impl Cutter<'_> {
    /// A pass over the input: the first one reads a download as it arrives, a later one the
    /// whole file (after the first pass the download has ended; a failed one is reported by
    /// the caller, which owns it).
    fn pass(&self, pieces_dir: &Path) -> Result<CutPass> {
        let first = !self.passed.replace(true);
        let arriving = match self.arriving {
            Some(growing) if first => Some(growing.clone()),
            Some(growing) if !matches!(growing.state(), State::Complete(_)) => {
                return Err(fail(
                    Kind::InputUnreadable,
                    format!("{}: the download did not complete", self.shown),
                ));
            }
            _ => None,
        };
        Ok(CutPass {
            input: self.source.to_path_buf(),
            arriving,
            hold: Some(self.hold.clone()),
            video_stream: self.info.video().index,
            video: None,
            pieces_dir: pieces_dir.to_path_buf(),
            packet_log: None,
            idr_log: None,
            audio: Vec::new(),
        })
    }

    fn pieces_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir)
            .kind(Kind::OutputUnwritable, || format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Cuts the video (and extracts `audio` in the same run): the fast path, unless context
    /// frames are asked for, the sniffed packets show open GOPs or ffmpeg's cuts are not
    /// frame-exact, then the planned path.
    pub(super) async fn cut(&self, audio: Vec<AudioJob>) -> Result<CutSegments> {
        if self.context_frames > 0 {
            // The segment muxer's files hold no context: plan (their files overlap).
            tracing::info!(
                context_frames = self.context_frames,
                "context frames: cutting at planned keyframes"
            );
            return self.cut_planned(None, audio).await;
        }
        let sniffed = Stream::from_packets(self.info.sniffed.iter().copied());
        if sniffed.gops.iter().any(|g| g.leading > 0) {
            tracing::info!(
                "keyframes with leading pictures (open GOP): cutting at planned keyframes"
            );
            return self.cut_planned(None, audio).await;
        }
        match self.try_fast_path(audio).await? {
            FastPath::Done(segments) => Ok(segments),
            // The fast path's run extracted the audio.
            FastPath::Replan(log) => self.cut_planned(Some(log), Vec::new()).await,
        }
    }

    /// The fast path: one run cuts at ffmpeg's keyframes every N seconds, extracts `audio` and
    /// lists the video packets; the plan module then checks those cuts.
    async fn try_fast_path(&self, audio: Vec<AudioJob>) -> Result<FastPath> {
        let dir = self.pieces_dir("fast")?;
        let packet_log = self.work.join(PACKET_LOG);
        let mut pass = self.pass(&dir)?;
        pass.video = Some((VideoCuts::Every { seconds: self.segment_seconds }, self.container));
        pass.packet_log = Some(packet_log.clone());
        pass.audio = audio;
        let expected =
            self.info.duration_seconds.map(|d| (d / self.segment_seconds).ceil().max(1.0) as usize);
        let mut pieces: Vec<Piece> = Vec::new();
        let mut written: BTreeSet<usize> = BTreeSet::new();
        let outcome = pass
            .run(self.tools, |piece| {
                tracing::info!(
                    segment = piece.index,
                    expected_segments = expected,
                    "segment written"
                );
                self.segments.closed(piece.index, piece.path.clone());
                written.insert(piece.index);
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
            Ok(plan) if !plan.files_overlap() && written.len() == plan.segments.len() => {
                return Ok(FastPath::Done(CutSegments {
                    plan,
                    time_base: packets.time_base,
                    container: self.container,
                    packet_log,
                }));
            }
            Ok(_) => {
                tracing::info!("ffmpeg's cuts need lead-ins: cutting at planned keyframes")
            }
            Err(reason) => tracing::info!(
                reason,
                "ffmpeg's cuts are not frame-exact for this input: cutting at planned keyframes"
            ),
        }
        // Nothing of the fast path's segments may land after the planned ones.
        self.segments.discard().await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(FastPath::Replan(packets))
    }

    /// The planned path: the plan module picks the cuts (`log`: the fast path's packet list,
    /// if it ran; `audio`: what is still to extract) and the segment muxers cut there.
    async fn cut_planned(
        &self,
        log: Option<PacketLog>,
        audio: Vec<AudioJob>,
    ) -> Result<CutSegments> {
        let (log, facts) = self.probing_pass(log, audio).await?;
        let target = ticks(self.segment_seconds, log.time_base);
        let plan = plan::plan_with_context(&log.stream, &facts, target, self.context_frames)
            .map_err(|e| {
                fail(Kind::NotAVideo, format!("{}: cannot split frame-exactly: {e}", self.shown))
            })?;
        let layout = plan::layout(&plan, log.stream.packets);
        tracing::info!(
            segments = plan.segments.len(),
            with_lead_in = plan.segments.iter().filter(|s| s.lead_in_gop.is_some()).count(),
            context_frames = self.context_frames,
            muxers = layout.muxers.len(),
            "planned"
        );

        let dir = self.pieces_dir("planned")?;
        let mut pass = self.pass(&dir)?;
        pass.video = Some((VideoCuts::Planned(layout.clone()), self.container));
        let total = plan.segments.len();
        let mut written: BTreeSet<usize> = BTreeSet::new();
        let mut unexpected = Vec::new();
        pass.run(self.tools, |piece| {
            match layout.muxers.get(piece.muxer).and_then(|m| m.pieces.get(piece.index)) {
                Some(Some(segment)) => {
                    tracing::info!(segment, progress = %format!("{}/{total}", written.len() + 1), "segment written");
                    self.segments.closed(*segment, piece.path);
                    written.insert(*segment);
                }
                Some(None) => {
                    // Overlap bookkeeping: this piece belongs to no segment.
                    let _ = std::fs::remove_file(&piece.path);
                }
                None => unexpected.push(piece.path),
            }
        })
        .await?;
        if !unexpected.is_empty() || written.len() != total {
            return Err(anyhow::anyhow!(
                "ffmpeg did not cut where planned: {} of {total} segments, {} unexpected pieces",
                written.len(),
                unexpected.len()
            ));
        }
        Ok(CutSegments {
            plan,
            time_base: log.time_base,
            container: self.container,
            packet_log: self.work.join(PACKET_LOG),
        })
    }

    /// What the planned path needs that is not known yet: the packet list, the IDR list if the
    /// codec has one and keyframes have leading pictures, and the audio if not done yet, in
    /// one probing run.
    async fn probing_pass(
        &self,
        mut log: Option<PacketLog>,
        audio: Vec<AudioJob>,
    ) -> Result<(PacketLog, KeyframeFacts)> {
        let codec = self.info.video().codec_name.as_str();
        let packet_log = self.work.join(PACKET_LOG);
        let idr_types = idr_unit_types(codec);
        let need_idr = idr_types.is_some()
            && log.as_ref().is_none_or(|l| !l.stream.keyframes_with_leading_pictures().is_empty());
        let mut idr = None;
        if log.is_none() || need_idr || !audio.is_empty() {
            let idr_log = self.work.join("idr.crc");
            let mut pass = self.pass(self.work)?;
            if log.is_none() {
                pass.packet_log = Some(packet_log.clone());
            }
            if let (true, Some(types)) = (need_idr, idr_types) {
                pass.idr_log = Some((idr_log.clone(), types));
            }
            pass.audio = audio;
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
        Ok((log, keyframe_facts(codec, idr)))
    }
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
