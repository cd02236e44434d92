//! Many files' video packets listed at once: an MP4/MOV file from its own sample tables
//! ([`mp4`], no process at all), any other file by one ffmpeg run for many of them: `ffmpeg -i
//! A -i B … -map 0:v:0 -c copy -f framecrc A.crc -map 1:v:0 -c copy -f framecrc B.crc …`
//! (stream copy, no decoding). Both give the same framecrc text (the MP4 reader's without the
//! checksums, which nothing reads; `tests/mp4_index.rs` compares the two on every kind of
//! MP4 the splitter writes).
//!
//! Starting ffmpeg costs more than listing a short segment (Debian's ffmpeg loads some 200
//! shared libraries: about 65 ms of CPU a run, against 1.5–3 ms per extra input), so the
//! read-back and `verify` list other containers' segments in batches. Each output sees one
//! input, and ffmpeg offsets every input by its own start time, so a file's listing in a batch
//! is byte for byte what a run of its own prints (checked with ffmpeg 5.1 and 7.1 on H.264,
//! HEVC, open GOPs, B-frames, MP4 and Matroska segments). When a batch's ffmpeg fails, each
//! half is listed the same way, down to single files: a file ffmpeg fails on alone gets its
//! own error (the reason ffmpeg gave), for the caller to name it.
//!
//! Batches are bounded by count (ffmpeg keeps every input open at once: 1–2 MB each, mostly
//! the decoder context it allocates even for a stream copy) and by bytes (a batch of big
//! segments stays short, and few downloads wait on disk for their listing). Every input still
//! costs ffmpeg 1.5 ms (7.1) to 3 ms (5.1) of CPU: 5–10 s for 3600 Matroska segments however
//! they are batched, which is why MP4 files do not go through ffmpeg.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

use crate::error::{Kind, fail};
use crate::mp4;
use crate::tools::Tools;

/// Files listed by one ffmpeg run at most.
pub const BATCH_FILES: usize = 64;
/// Bytes of files listed by one ffmpeg run at most (a bigger file is listed alone).
pub const BATCH_BYTES: u64 = 32 << 20;
/// ffmpeg runs at once. The machines the splitter runs on have 2 cores, but a listing run
/// does not keep a core busy all along (it opens its inputs one by one, and ffmpeg's threads
/// wait on each other): verifying 3600 one-second segments took 10–15% less time with three
/// runs at once than with two, with both ffmpeg 5.1 (Debian) and 7.1 (the container's).
pub const CONCURRENT_BATCHES: usize = 3;

/// How full a batch being formed is.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchFill {
    files: usize,
    bytes: u64,
}

impl BatchFill {
    /// Whether a file of `bytes` still fits (a batch always takes its first file).
    pub fn fits(&self, bytes: u64) -> bool {
        self.files == 0
            || (self.files < BATCH_FILES && self.bytes.saturating_add(bytes) <= BATCH_BYTES)
    }

    pub fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// Files of these sizes (in order) cut into consecutive batches.
pub fn batches(sizes: &[u64]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut fill = BatchFill::default();
    for (i, &bytes) in sizes.iter().enumerate() {
        if !fill.fits(bytes) {
            out.push(start..i);
            start = i;
            fill = BatchFill::default();
        }
        fill.add(bytes);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// What to list of each file.
#[derive(Clone, Copy, Debug)]
pub struct Recipe {
    /// Options before each `-i`.
    pub input_options: &'static [&'static str],
    /// The stream to list, after the input's number in `-map` (`v:0`: the first video stream).
    pub stream: &'static str,
    /// Also list the IDR pictures with this `filter_units` selection (see
    /// [`crate::cut::idr_unit_types`]).
    pub idr: Option<&'static str>,
}

/// One file's listings (framecrc text).
#[derive(Clone, Debug)]
pub struct Listing {
    pub packets: Vec<u8>,
    pub idr: Option<Vec<u8>>,
}

/// Names of listing files, unique within the process (batches run at once).
pub fn scratch_name(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{what}-{}.crc", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Where one file's listings go.
#[derive(Clone, Debug)]
pub struct Outputs {
    pub packets: PathBuf,
    /// Only with a [`Recipe`] that lists IDR pictures.
    pub idr: Option<PathBuf>,
}

/// One ffmpeg run listing `files[i]` into `outputs[i]`. An error means ffmpeg failed on one of
/// them (its message: the last line ffmpeg printed) or could not be run ([`Kind::Tools`]); the
/// outputs are then incomplete.
async fn run(tools: &Tools, recipe: &Recipe, files: &[PathBuf], outputs: &[Outputs]) -> Result<()> {
    let mut cmd = tools.ffmpeg();
    cmd.arg("-y");
    for file in files {
        cmd.args(recipe.input_options).arg("-i").arg(file);
    }
    for (i, out) in outputs.iter().enumerate() {
        let map = format!("{i}:{}", recipe.stream);
        cmd.args(["-map", map.as_str(), "-c", "copy", "-f", "framecrc"]).arg(&out.packets);
        if let (Some(path), Some(types)) = (&out.idr, recipe.idr) {
            let bsf = format!("filter_units={types}");
            cmd.args([
                "-map",
                map.as_str(),
                "-c",
                "copy",
                "-bsf:v",
                bsf.as_str(),
                "-f",
                "framecrc",
            ])
            .arg(path);
        }
    }
    let out =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().await.map_err(|e| {
            fail(Kind::Tools, format!("cannot run {}: {e}", tools.ffmpeg.display()))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("{}", crate::tools::last_line(&stderr));
    }
    Ok(())
}

/// Lists an MP4/MOV file's video packets from its sample tables ([`mp4`]) into `out`, in the
/// framecrc form ffmpeg would print (less the checksums, which nothing reads): `false` when
/// the reader declines the file (not MP4, fragmented, an edit list it cannot promise to
/// apply as ffmpeg does, …) and ffmpeg must list it. Microseconds, against 1.5–3 ms of
/// ffmpeg CPU per file.
fn list_mp4(recipe: &Recipe, file: &Path, out: &Outputs) -> Result<bool> {
    let Some(video) = mp4::Video::read(file)? else { return Ok(false) };
    let idr = match (&out.idr, recipe.idr.and_then(nal_types)) {
        (None, _) => None,
        (Some(path), Some(types)) => match video.pts_with_nal_types(file, types)? {
            Some(pts) => Some((path, pts)),
            None => return Ok(false),
        },
        (Some(_), None) => return Ok(false),
    };
    let header = format!("#tb 0: 1/{}\n", video.timescale);
    let mut text = header.clone();
    for s in &video.samples {
        let flags = if s.key { "" } else { ", F=0x0" };
        text +=
            &format!("0, {}, {}, {}, {}, 0x00000000{flags}\n", s.dts, s.pts, s.duration, s.size);
    }
    std::fs::write(&out.packets, text)
        .with_context(|| format!("writing the listing {}", out.packets.display()))?;
    if let Some((path, pts)) = idr {
        let mut text = header;
        for pts in pts {
            text += &format!("0, {pts}, {pts}, 1, 0, 0x00000000\n");
        }
        std::fs::write(path, text)
            .with_context(|| format!("writing the listing {}", path.display()))?;
    }
    Ok(true)
}

/// The NAL unit types of a `filter_units` selection (`pass_types=5`, `pass_types=19-20`).
fn nal_types(selection: &str) -> Option<std::ops::RangeInclusive<u8>> {
    let types = selection.strip_prefix("pass_types=")?;
    let (first, last) = types.split_once('-').unwrap_or((types, types));
    Some(first.parse().ok()?..=last.parse().ok()?)
}

/// Lists `files[i]` into `outputs[i]` with as few ffmpeg runs as it takes: all of them in one
/// run; when that fails, each half the same way, down to single files. A bad file among 64
/// costs about a dozen short runs, not 64. Returns each file's result: a file ffmpeg fails on
/// alone gets the error of its own run (see [`run`]).
pub async fn list_into(
    tools: &Tools,
    recipe: &Recipe,
    files: &[PathBuf],
    outputs: &[Outputs],
) -> Vec<Result<()>> {
    let count = files.len().min(outputs.len());
    let mut listed: Vec<Result<()>> = (0..count).map(|_| Ok(())).collect();
    // MP4/MOV files are listed from their sample tables; ffmpeg lists the others.
    let mut left: Vec<usize> = Vec::new();
    for i in 0..count {
        match list_mp4(recipe, &files[i], &outputs[i]) {
            Ok(true) => {}
            Ok(false) => left.push(i),
            // ffmpeg tolerates some damage the tables' reader does not: its verdict counts.
            Err(e) => {
                tracing::debug!(file = %files[i].display(), error = %crate::error::one_line(&e), "the MP4 reader failed; ffmpeg lists the file");
                left.push(i);
            }
        }
    }
    let files: Vec<PathBuf> = left.iter().map(|&i| files[i].clone()).collect();
    let outputs: Vec<Outputs> = left.iter().map(|&i| outputs[i].clone()).collect();
    let mut pending: Vec<Range<usize>> = Vec::new();
    if !left.is_empty() {
        pending.push(0..left.len());
    }
    while let Some(range) = pending.pop() {
        match run(tools, recipe, &files[range.clone()], &outputs[range.clone()]).await {
            Ok(()) => {}
            Err(e) if range.len() == 1 => listed[left[range.start]] = Err(e),
            Err(e) => {
                tracing::debug!(
                    files = range.len(),
                    error = %crate::error::one_line(&e),
                    "listing a batch failed; listing its halves"
                );
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
            }
        }
    }
    listed
}

/// Lists `files` into memory (through files in `scratch`, removed once read), as
/// [`list_into`].
pub async fn list(
    tools: &Tools,
    recipe: &Recipe,
    files: &[PathBuf],
    scratch: &Path,
) -> Vec<Result<Listing>> {
    let outputs: Vec<Outputs> = files
        .iter()
        .map(|_| Outputs {
            packets: scratch.join(scratch_name("packets")),
            idr: recipe.idr.map(|_| scratch.join(scratch_name("idr"))),
        })
        .collect();
    let listed = list_into(tools, recipe, files, &outputs).await;
    outputs
        .iter()
        .zip(listed)
        .map(|(out, listed)| {
            let read = |path: &Path| {
                let data = std::fs::read(path)
                    .with_context(|| format!("reading the listing {}", path.display()));
                let _ = std::fs::remove_file(path);
                data
            };
            let packets = read(&out.packets);
            let idr = out.idr.as_deref().map(read).transpose();
            listed?;
            Ok(Listing { packets: packets?, idr: idr? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_units_selections_read_as_nal_type_ranges() {
        assert_eq!(nal_types("pass_types=5"), Some(5..=5));
        assert_eq!(nal_types("pass_types=19-20"), Some(19..=20));
        assert_eq!(nal_types("remove_types=5"), None);
        assert_eq!(nal_types("pass_types=x"), None);
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        assert_eq!(batches(&[]), Vec::<Range<usize>>::new());
        let small = vec![1000; BATCH_FILES * 2 + 1];
        assert_eq!(
            batches(&small),
            vec![
                0..BATCH_FILES,
                BATCH_FILES..2 * BATCH_FILES,
                2 * BATCH_FILES..2 * BATCH_FILES + 1
            ]
        );
        let third = BATCH_BYTES / 3;
        assert_eq!(batches(&[third, third, third, third]), vec![0..3, 3..4]);
        // A file bigger than a batch is listed alone, and the next one starts a new batch.
        assert_eq!(batches(&[10, BATCH_BYTES * 2, 10, 10]), vec![0..1, 1..2, 2..4]);
    }
}
