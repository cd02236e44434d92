//! The read-back: every segment file's video packets listed (an MP4's from its sample tables,
//! any other by ffmpeg's stream copy to `framecrc`; no decoding, see [`listing`]) and checked
//! against the source's packets it was cut from. The I/O
//! edge of the pure [`timestamps`] module: this runs ffmpeg and reads the lists, `timestamps`
//! gives the verdict.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Kind, fail};
use crate::listing::{self, Recipe};
use crate::packets::{self, PtsRanges};
use crate::plan::Segment;
use crate::timestamps::{self, Timeline};
use crate::tools::Tools;

/// What the read-back lists of each segment file: its first video stream.
const RECIPE: Recipe = Recipe { input_options: &[], stream: "v:0", idr: None };

/// Lists the video packets of segment files (framecrc text, no decoding), `files[i]`'s into
/// `listings[i]`, for [`check_listings`]: MP4 files from their tables, others with one ffmpeg
/// run per batch ([`listing`]); the error names a file that cannot be read back.
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
        for (file, listed) in files.iter().zip(listed) {
            listed.map_err(|e| match crate::error::kind_of(&e) {
                Kind::Tools => e,
                _ => anyhow::anyhow!("cannot read back {}: {e}", file.display()),
            })?;
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
