//! The read-back: every segment file's video packets listed by ffmpeg (stream copy to
//! `framecrc`, no decoding) and checked against the source's packets it was cut from. The I/O
//! edge of the pure [`timestamps`] module: this runs ffmpeg and reads the lists, `timestamps`
//! gives the verdict.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Kind, fail};
use crate::listing::{self, CONCURRENT_BATCHES, Recipe, Task};
use crate::output::WorkDir;
use crate::packets::{self, PtsRanges};
use crate::plan::Segment;
use crate::timestamps::{self, Timeline};
use crate::tools::Tools;

/// What the read-back lists of each segment file: its first video stream.
const RECIPE: Recipe = Recipe { input_options: &[], stream: "v:0", idr: None };

/// A segment file's video packets, listed by ffmpeg (stream copy to framecrc, no decoding),
/// into `listing`, or to stdout (returned) when there is none.
async fn read_back(tools: &Tools, file: &Path, listing: Option<&Path>) -> Result<Vec<u8>> {
    let mut cmd = tools.ffmpeg();
    if listing.is_some() {
        cmd.arg("-y");
    }
    cmd.arg("-i").arg(file).args(["-map", "0:v:0", "-c", "copy", "-f", "framecrc"]);
    match listing {
        Some(path) => cmd.arg(path),
        None => cmd.arg("-"),
    };
    let out = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .map_err(|e| fail(Kind::Tools, format!("cannot run {}: {e}", tools.ffmpeg.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = crate::tools::last_line(&stderr);
        anyhow::bail!("ffmpeg cannot read back {}: {reason}", file.display());
    }
    Ok(out.stdout)
}

/// A batch's segment files read back, in order, up to the first that cannot be.
type ReadBack = Vec<Result<Timeline>>;

/// A batch of segment files read back: one ffmpeg run for all of them (or, when that fails,
/// for each half; a file ffmpeg fails on alone is read back by a run of its own, whose error
/// names it), up to the first file that cannot be read.
async fn read_batch(tools: Tools, files: Vec<PathBuf>, scratch: PathBuf) -> ReadBack {
    let listings = listing::list(&tools, &RECIPE, &files, &scratch).await;
    let mut timelines = Vec::with_capacity(files.len());
    for (file, listing) in files.iter().zip(listings) {
        let timeline = match listing {
            Some(listing) => packets::read_timeline(&listing.packets[..]),
            None => {
                read_back(&tools, file, None).await.and_then(|out| packets::read_timeline(&out[..]))
            }
        };
        let failed = timeline.is_err();
        timelines.push(timeline);
        if failed {
            break;
        }
    }
    timelines
}

/// Lists the video packets of segment files (framecrc, no decoding), `files[i]`'s into
/// `listings[i]`, for [`check_listings`]: one ffmpeg run per batch ([`listing`]); a file
/// ffmpeg fails on is listed by a run of its own, so that the error names the file that
/// cannot be read back.
pub async fn list_packets(tools: &Tools, files: &[PathBuf], listings: &[PathBuf]) -> Result<()> {
    anyhow::ensure!(
        files.len() == listings.len(),
        "{} segment files to read back into {} listings",
        files.len(),
        listings.len()
    );
    let sizes: Vec<u64> =
        files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).collect();
    for batch in listing::batches(&sizes) {
        let (files, listings) = (&files[batch.clone()], &listings[batch]);
        let outputs: Vec<listing::Outputs> =
            listings.iter().map(|l| listing::Outputs { packets: l.clone(), idr: None }).collect();
        let listed = listing::list_into(tools, &RECIPE, files, &outputs).await;
        for ((file, listing), listed) in files.iter().zip(listings).zip(listed) {
            if !listed {
                read_back(tools, file, Some(listing)).await?;
            }
        }
    }
    Ok(())
}

/// The source's packets, read forward once, that segments are checked against.
#[derive(Debug)]
struct Source {
    ranges: PtsRanges<BufReader<File>>,
    tools: Tools,
    /// The input as messages name it.
    shown: String,
}

impl Source {
    fn open(tools: &Tools, packet_log: &Path, shown: &str) -> Result<Source> {
        let log = File::open(packet_log).context("opening ffmpeg's packet list")?;
        Ok(Source {
            ranges: PtsRanges::new(BufReader::new(log)),
            tools: tools.clone(),
            shown: shown.to_string(),
        })
    }

    /// One segment's packets (`actual`, read back from its file) against the source's packets
    /// it was cut from; its `pts_digest`.
    fn check(&mut self, segment: &Segment, actual: &Timeline) -> Result<String> {
        let expected = self.ranges.range(segment.first_packet..segment.end_packet)?;
        let owned_from = (segment.owned_first_packet - segment.first_packet) as usize;
        let time_base = self.ranges.time_base()?;
        timestamps::check_segment(segment.index, &expected, time_base, owned_from, actual)
            .map_err(|mismatch| {
                fail(
                    Kind::Other,
                    format!(
                        "{}: {mismatch}; a decoder would lose or reorder frames, so ffmpeg {} at \
                         {} cannot cut this input correctly (no manifest written; report it \
                         with the input's ffprobe output)",
                        self.shown,
                        self.tools.ffmpeg_version,
                        self.tools.ffmpeg.display()
                    ),
                )
            })?;
        Ok(actual.pts_digest())
    }
}

/// Checks segments listed by [`list_packets`] (`listings[i]` is `segments[i]`'s) against the
/// source's packets they were cut from, listed in `packet_log` (see [`timestamps`]); returns
/// each segment's `pts_digest`.
pub fn check_listings(
    segments: &[Segment],
    listings: &[PathBuf],
    packet_log: &Path,
    tools: &Tools,
    shown: &str,
) -> Result<Vec<String>> {
    anyhow::ensure!(
        segments.len() == listings.len(),
        "{} segments to check but {} listings",
        segments.len(),
        listings.len()
    );
    let mut source = Source::open(tools, packet_log, shown)?;
    segments
        .iter()
        .zip(listings)
        .map(|(segment, listing)| {
            let file = File::open(listing)
                .with_context(|| format!("opening the packet list {}", listing.display()))?;
            source.check(segment, &packets::read_timeline(BufReader::new(file))?)
        })
        .collect()
}

/// The read-back check, segment by segment in order: segment files are listed in batches
/// ([`listing`]), a few batches at once, and each segment's packets are compared with the
/// source's packets it was cut from (see [`timestamps`]).
///
/// The source's packet list is read forward once (it must be complete), so segments must be
/// handed over in order; they may come in several calls. A call lists its segments in batches
/// of up to [`listing::BATCH_FILES`], so handing over that many at a time costs the fewest
/// ffmpeg runs.
#[derive(Debug)]
pub struct Checker {
    source: Source,
    /// Where ffmpeg writes the listings (each removed once read).
    scratch: WorkDir,
}

impl Checker {
    /// `packet_log`: the source's video packets as ffmpeg listed them (framecrc); `shown`: the
    /// input as messages name it.
    pub fn new(tools: &Tools, packet_log: &Path, shown: &str) -> Result<Checker> {
        let source = Source::open(tools, packet_log, shown)?;
        let dir =
            packet_log.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Ok(Checker { source, scratch: WorkDir::create(dir, Kind::Other)? })
    }

    /// Checks the next segments in order (`files[i]` is `segments[i]`'s file); returns their
    /// `pts_digest`s. The first segment that cannot be read back or whose timestamps differ
    /// from the source's is the error.
    pub async fn check(&mut self, segments: &[Segment], files: &[PathBuf]) -> Result<Vec<String>> {
        anyhow::ensure!(
            segments.len() == files.len(),
            "{} segments to read back but {} files",
            segments.len(),
            files.len()
        );
        let sizes: Vec<u64> =
            files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).collect();
        let mut batches = listing::batches(&sizes).into_iter();
        let mut running: VecDeque<(Range<usize>, Task<ReadBack>)> = VecDeque::new();
        let mut digests = Vec::with_capacity(files.len());
        loop {
            while running.len() < CONCURRENT_BATCHES {
                let Some(batch) = batches.next() else { break };
                let work = read_batch(
                    self.source.tools.clone(),
                    files[batch.clone()].to_vec(),
                    self.scratch.path().to_path_buf(),
                );
                running.push_back((batch, Task::spawn(work)));
            }
            let Some((batch, task)) = running.pop_front() else { break };
            let timelines = task.join().await.context("reading a segment back")?;
            for (segment, actual) in segments[batch].iter().zip(timelines) {
                digests.push(self.source.check(segment, &actual?)?);
            }
        }
        Ok(digests)
    }
}

/// Reads every segment file back (`files[i]` is `segments[i]`'s) and checks its packets'
/// timestamps against the source's packets it was cut from, listed in `packet_log` (see
/// [`timestamps`]); returns each segment's `pts_digest`.
pub async fn check_timestamps(
    tools: &Tools,
    segments: &[Segment],
    files: &[PathBuf],
    packet_log: &Path,
    shown: &str,
) -> Result<Vec<String>> {
    Checker::new(tools, packet_log, shown)?.check(segments, files).await
}
