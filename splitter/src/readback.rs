//! The read-back: every segment file's video packets listed by ffmpeg (stream copy to
//! `framecrc`, no decoding) and checked against the source's packets it was cut from. The I/O
//! edge of the pure [`timestamps`] module: this runs ffmpeg and reads the lists, `timestamps`
//! gives the verdict.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Kind, fail};
use crate::packets;
use crate::plan::Segment;
use crate::timestamps::{self, Timeline};
use crate::tools::Tools;

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
        let reason = crate::tools::last_line(&stderr);
        anyhow::bail!("ffmpeg cannot read back {}: {reason}", file.display());
    }
    packets::read_timeline(&out.stdout[..])
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
    let log = File::open(packet_log).context("opening ffmpeg's packet list")?;
    let mut source = packets::PtsRanges::new(BufReader::new(log));
    let mut digests = Vec::with_capacity(files.len());
    let chunks = segments.chunks(READ_BACK_CONCURRENCY);
    for (segments, files) in chunks.zip(files.chunks(READ_BACK_CONCURRENCY)) {
        let tasks: Vec<_> = files
            .iter()
            .map(|path| {
                let (tools, path) = (tools.clone(), path.clone());
                tokio::spawn(async move { read_back(&tools, &path).await })
            })
            .collect();
        for (segment, task) in segments.iter().zip(tasks) {
            let actual = task.await.context("reading a segment back")??;
            let expected = source.range(segment.first_packet..segment.end_packet)?;
            let owned_from = (segment.owned_first_packet - segment.first_packet) as usize;
            let time_base = source.time_base()?;
            timestamps::check_segment(segment.index, &expected, time_base, owned_from, &actual)
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

/// Lists each file's video packets into the matching `listings` file (stream copy to
/// framecrc, no decoding), all in one ffmpeg run: one input and one output per file.
pub async fn list_packets(tools: &Tools, files: &[PathBuf], listings: &[PathBuf]) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut command = tools.ffmpeg();
    for file in files {
        command.arg("-i").arg(file);
    }
    for (n, listing) in listings.iter().enumerate() {
        command.args(["-map", &format!("{n}:v:0"), "-c", "copy", "-f", "framecrc"]).arg(listing);
    }
    let out = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .map_err(|e| fail(Kind::Tools, format!("cannot run {}: {e}", tools.ffmpeg.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = crate::tools::last_line(&stderr);
        let first = files[0].display();
        anyhow::bail!("ffmpeg cannot read back the segments from {first} on: {reason}");
    }
    Ok(())
}

/// Checks each segment's listing (`listings[i]` is `segments[i]`'s, from [`list_packets`])
/// against the source's packets it was cut from, listed in `packet_log`; returns each
/// segment's `pts_digest`.
pub fn check_listings(
    segments: &[Segment],
    listings: &[PathBuf],
    packet_log: &Path,
    tools: &Tools,
    shown: &str,
) -> Result<Vec<String>> {
    let log = File::open(packet_log).context("opening ffmpeg's packet list")?;
    let mut source = packets::PtsRanges::new(BufReader::new(log));
    let mut digests = Vec::with_capacity(listings.len());
    for (segment, listing) in segments.iter().zip(listings) {
        let file = File::open(listing)
            .with_context(|| format!("opening the read-back listing {}", listing.display()))?;
        let actual = packets::read_timeline(BufReader::new(file))?;
        let expected = source.range(segment.first_packet..segment.end_packet)?;
        let owned_from = (segment.owned_first_packet - segment.first_packet) as usize;
        let time_base = source.time_base()?;
        timestamps::check_segment(segment.index, &expected, time_base, owned_from, &actual)
            .map_err(|mismatch| mismatch_error(&mismatch, tools, shown))?;
        digests.push(actual.pts_digest());
    }
    Ok(digests)
}

fn mismatch_error(mismatch: &impl std::fmt::Display, tools: &Tools, shown: &str) -> anyhow::Error {
    fail(
        Kind::Other,
        format!(
            "{shown}: {mismatch}; a decoder would lose or reorder frames, so ffmpeg {} at {} \
             cannot cut this input correctly (no manifest written; report it with the input's \
             ffprobe output)",
            tools.ffmpeg_version,
            tools.ffmpeg.display()
        ),
    )
}
