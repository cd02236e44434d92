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
