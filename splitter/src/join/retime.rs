//! Pure: the joined video's timestamps, and the `moov` box that carries them.
//!
//! The processed segments are concatenated by ffmpeg (stream copy) into one MOV file whose
//! samples are the workers' packets in decode order, with whatever timestamps the workers
//! wrote. Only the order of those timestamps within a segment matters: the frame a worker
//! presents k-th is the segment's k-th owned frame, which gets the source's k-th owned
//! presentation timestamp. This module computes every sample's new pts, a decode timeline that
//! fits it, and rewrites the file's `moov` (sample times, composition offsets, edit list,
//! timescales, durations, rotation) around the untouched sample data.

use std::fmt;

use anyhow::{Context, Result, bail, ensure};

/// Why the workers' timestamps cannot be mapped onto the source's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetimeError {
    /// A segment's samples and its owned frames differ in number.
    Count { segment: usize, samples: usize, frames: usize },
    /// Two samples of one segment present at the same time: their order is unknown.
    DuplicatePts { segment: usize, pts: i64 },
    /// The source's frames are not in strictly increasing presentation order.
    SourceOrder { segment: usize },
}

impl fmt::Display for RetimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetimeError::Count { segment, samples, frames } => write!(
                f,
                "segment {segment}: expected {frames} frames, found {samples} in the concatenated video"
            ),
            RetimeError::DuplicatePts { segment, pts } => {
                write!(f, "segment {segment}: two frames share the timestamp {pts}")
            }
            RetimeError::SourceOrder { segment } => {
                write!(f, "segment {segment}: the split's timestamps are not increasing")
            }
        }
    }
}

impl std::error::Error for RetimeError {}

/// The joined video's timing, in ticks of `1/timescale`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub timescale: u32,
    /// Each sample's presentation time (decode order): the source's.
    pub pts: Vec<i64>,
    /// Each sample's decode time (decode order, strictly increasing, never after its pts).
    pub dts: Vec<i64>,
    /// When the last frame ends (its pts plus its duration).
    pub end: i64,
}

impl Timing {
    /// First presented time.
    pub fn start(&self) -> i64 {
        self.pts.iter().copied().min().unwrap_or(0)
    }
}

/// Maps the workers' timestamps onto the source's.
///
/// - `worker_pts`: every sample's pts as the concatenated file has it, decode order;
/// - `segments`: per segment, in order, the source's presentation times of the frames it owns
///   (ascending) — the segment's samples are the next `len()` samples of `worker_pts`;
/// - `end`: when the source's last frame ends; all in ticks of `1/timescale`.
pub fn retime(
    worker_pts: &[i64],
    segments: &[Vec<i64>],
    end: i64,
    timescale: u32,
) -> Result<Timing, RetimeError> {
    let mut pts = Vec::with_capacity(worker_pts.len());
    let mut at = 0usize;
    for (segment, owned) in segments.iter().enumerate() {
        if owned.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RetimeError::SourceOrder { segment });
        }
        let samples = worker_pts.get(at..at + owned.len()).filter(|_| {
            // The last segment must also end the file.
            segment + 1 < segments.len() || at + owned.len() == worker_pts.len()
        });
        let Some(samples) = samples else {
            let samples = if segment + 1 == segments.len() {
                worker_pts.len().saturating_sub(at)
            } else {
                worker_pts.len().saturating_sub(at).min(owned.len() + 1)
            };
            return Err(RetimeError::Count { segment, samples, frames: owned.len() });
        };
        // rank[i] = display position of sample i within the segment.
        let mut order: Vec<usize> = (0..samples.len()).collect();
        order.sort_by_key(|&i| samples[i]);
        if let Some(w) = order.windows(2).find(|w| samples[w[0]] == samples[w[1]]) {
            return Err(RetimeError::DuplicatePts { segment, pts: samples[w[0]] });
        }
        let mut new = vec![0i64; samples.len()];
        for (rank, &i) in order.iter().enumerate() {
            new[i] = owned[rank];
        }
        pts.extend(new);
        at += owned.len();
    }
    // Each segment's times ascend (checked above); the segments follow each other, so their
    // concatenation is every presentation time in order.
    if let Some(i) = segments.windows(2).position(|w| match (w[0].last(), w[1].first()) {
        (Some(last), Some(first)) => last >= first,
        _ => false,
    }) {
        // Segments overlap in time: the split's own ranges are contiguous, so this is a bug.
        return Err(RetimeError::SourceOrder { segment: i + 1 });
    }
    let sorted = segments.concat();
    // The decode time of the k-th sample is the k-th presentation time, moved back by the
    // largest reordering delay, so it is never after the sample's own pts.
    let delay = sorted.iter().zip(&pts).map(|(s, p)| s - p).max().unwrap_or(0);
    let dts = sorted.iter().map(|s| s - delay).collect();
    Ok(Timing { timescale, pts, dts, end })
}

// ---------------------------------------------------------------------------------------
// The moov box

/// A box: a leaf (its body kept as bytes) or a container of boxes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Leaf { kind: [u8; 4], body: Vec<u8> },
    Container { kind: [u8; 4], children: Vec<Node> },
}

const CONTAINERS: [&[u8; 4]; 6] = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"];

impl Node {
    fn kind(&self) -> &[u8; 4] {
        match self {
            Node::Leaf { kind, .. } | Node::Container { kind, .. } => kind,
        }
    }

    fn parse_all(mut data: &[u8]) -> Result<Vec<Node>> {
        let mut nodes = Vec::new();
        while !data.is_empty() {
            ensure!(data.len() >= 8, "a truncated box header");
            let size32 = u32::from_be_bytes(data[..4].try_into()?) as u64;
            let kind: [u8; 4] = data[4..8].try_into()?;
            let (head, size) = match size32 {
                1 => {
                    ensure!(data.len() >= 16, "a truncated box header");
                    (16usize, u64::from_be_bytes(data[8..16].try_into()?))
                }
                0 => (8, data.len() as u64),
                n => (8, n),
            };
            let size = usize::try_from(size).context("box size")?;
            ensure!(size >= head && size <= data.len(), "a box that does not fit its parent");
            let body = &data[head..size];
            nodes.push(if CONTAINERS.contains(&&kind) {
                Node::Container { kind, children: Node::parse_all(body)? }
            } else {
                Node::Leaf { kind, body: body.to_vec() }
            });
            data = &data[size..];
        }
        Ok(nodes)
    }

    fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend([0; 4]);
        out.extend(self.kind());
        match self {
            Node::Leaf { body, .. } => out.extend(body),
            Node::Container { children, .. } => children.iter().for_each(|c| c.write(out)),
        }
        let size = u32::try_from(out.len() - start).expect("a moov box under 4 GiB");
        out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    fn children_mut(&mut self) -> Result<&mut Vec<Node>> {
        match self {
            Node::Container { children, .. } => Ok(children),
            Node::Leaf { kind, .. } => {
                bail!("{} is not a container", String::from_utf8_lossy(kind))
            }
        }
    }

    fn child_mut(&mut self, kind: &[u8; 4]) -> Result<&mut Node> {
        self.children_mut()?
            .iter_mut()
            .find(|c| c.kind() == kind)
            .with_context(|| format!("no {} box", String::from_utf8_lossy(kind)))
    }

    fn body_mut(&mut self) -> Result<&mut Vec<u8>> {
        match self {
            Node::Leaf { body, .. } => Ok(body),
            Node::Container { kind, .. } => {
                bail!("{} is a container", String::from_utf8_lossy(kind))
            }
        }
    }
}

fn be32(data: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_be_bytes(data.get(at..at + 4).context("a truncated box")?.try_into()?))
}

/// The single track's samples: their presentation times in file order as the tables give
/// them (`stts` running sum plus `ctts`), the track's timescale.
pub fn sample_pts(moov_body: &[u8]) -> Result<Vec<i64>> {
    let mut nodes = Node::parse_all(moov_body)?;
    let mut moov = Node::Container { kind: *b"moov", children: std::mem::take(&mut nodes) };
    let traks = moov.children_mut()?.iter().filter(|c| c.kind() == b"trak").count();
    ensure!(traks == 1, "the concatenated video has {traks} tracks, not 1");
    let stbl =
        moov.child_mut(b"trak")?.child_mut(b"mdia")?.child_mut(b"minf")?.child_mut(b"stbl")?;
    let stts = stbl.child_mut(b"stts")?.body_mut()?.clone();
    let ctts = match stbl.child_mut(b"ctts") {
        Ok(node) => Some(node.body_mut()?.clone()),
        Err(_) => None,
    };
    let mut pts = Vec::new();
    let mut t = 0i64;
    for i in 0..be32(&stts, 4)? as usize {
        let (count, delta) = (be32(&stts, 8 + 8 * i)?, be32(&stts, 12 + 8 * i)?);
        for _ in 0..count {
            pts.push(t);
            t += i64::from(delta);
        }
    }
    if let Some(ctts) = ctts {
        let mut at = 0usize;
        for i in 0..be32(&ctts, 4)? as usize {
            let (count, offset) = (be32(&ctts, 8 + 8 * i)?, be32(&ctts, 12 + 8 * i)? as i32);
            for _ in 0..count {
                let slot = pts.get_mut(at).context("ctts lists more samples than stts")?;
                *slot += i64::from(offset);
                at += 1;
            }
        }
        ensure!(at == pts.len(), "ctts lists {at} samples, stts {}", pts.len());
    }
    Ok(pts)
}

/// Run-length entries (count, value).
fn runs(values: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((count, last)) if *last == v => *count += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

fn table(version: u8, entries: &[(u32, u32)]) -> Vec<u8> {
    let mut body = vec![version, 0, 0, 0];
    body.extend((entries.len() as u32).to_be_bytes());
    for (count, value) in entries {
        body.extend(count.to_be_bytes());
        body.extend(value.to_be_bytes());
    }
    body
}

/// `mvhd`/`mdhd`-style header rewritten as version 1 with a new timescale and duration.
fn time_header(body: &[u8], timescale: u32, duration: u64) -> Result<Vec<u8>> {
    let version = *body.first().context("an empty header box")?;
    let (times, rest_at) = match version {
        0 => (
            (u64::from(be32(body, 4)?), u64::from(be32(body, 8)?)),
            20, // created 4, modified 4, timescale 4, duration 4
        ),
        1 => {
            let created = u64::from_be_bytes(body.get(4..12).context("truncated")?.try_into()?);
            let modified = u64::from_be_bytes(body.get(12..20).context("truncated")?.try_into()?);
            ((created, modified), 32)
        }
        v => bail!("header version {v}"),
    };
    let mut out = vec![1, body[1], body[2], body[3]];
    out.extend(times.0.to_be_bytes());
    out.extend(times.1.to_be_bytes());
    out.extend(timescale.to_be_bytes());
    out.extend(duration.to_be_bytes());
    out.extend(body.get(rest_at..).context("truncated")?);
    Ok(out)
}

/// `tkhd` rewritten as version 1 with a new duration and the rotation's matrix.
fn track_header(body: &[u8], duration: u64, rotation: i32) -> Result<Vec<u8>> {
    let version = *body.first().context("an empty tkhd")?;
    let (created, modified, id, rest_at) = match version {
        0 => (u64::from(be32(body, 4)?), u64::from(be32(body, 8)?), be32(body, 12)?, 24),
        1 => (
            u64::from_be_bytes(body.get(4..12).context("truncated")?.try_into()?),
            u64::from_be_bytes(body.get(12..20).context("truncated")?.try_into()?),
            be32(body, 20)?,
            36,
        ),
        v => bail!("tkhd version {v}"),
    };
    let mut out = vec![1, body[1], body[2], body[3]];
    out.extend(created.to_be_bytes());
    out.extend(modified.to_be_bytes());
    out.extend(id.to_be_bytes());
    out.extend([0; 4]);
    out.extend(duration.to_be_bytes());
    let mut rest = body.get(rest_at..).context("truncated tkhd")?.to_vec();
    ensure!(rest.len() >= 16 + 36 + 8, "truncated tkhd");
    rest[16..52].copy_from_slice(&matrix(rotation));
    out.extend(rest);
    Ok(out)
}

/// The `tkhd` matrix a player applies to rotate the picture `degrees` clockwise (what
/// ffmpeg's `mov` muxer writes for that display matrix).
pub fn matrix(degrees: i32) -> [u8; 36] {
    const ONE: i32 = 0x1_0000;
    let (a, b, c, d) = match degrees.rem_euclid(360) {
        90 => (0, ONE, -ONE, 0),
        180 => (-ONE, 0, 0, -ONE),
        270 => (0, -ONE, ONE, 0),
        _ => (ONE, 0, 0, ONE),
    };
    let values = [a, b, 0, c, d, 0, 0, 0, 0x4000_0000];
    let mut out = [0u8; 36];
    for (i, v) in values.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Rewrites the concatenated file's `moov` body for `timing`: sample times, composition
/// offsets and an edit list that presents every sample at its pts; timescales, durations; the
/// track's rotation. Sample sizes, chunk offsets, sync samples and the sample description
/// stay as they are (the sample data does not move).
pub fn rewrite_moov(moov_body: &[u8], timing: &Timing, rotation: i32) -> Result<Vec<u8>> {
    let n = timing.pts.len();
    ensure!(n > 0 && timing.dts.len() == n, "no samples to time");
    let start = timing.start();
    ensure!(start >= 0, "the first frame's timestamp is negative ({start})");
    let last_dts = *timing.dts.last().expect("n > 0");
    let last_pts = timing.pts.iter().copied().max().expect("n > 0");
    ensure!(timing.end > last_pts, "the video ends before its last frame");
    let delay = timing.pts.iter().zip(&timing.dts).map(|(p, d)| p - d).max().unwrap_or(0);
    // Sample times start at 0; without an edit list the demuxer would present sample k at
    // pts[k] - dts[0]; the edit list moves that to pts[k].
    let shift = timing.dts[0];
    let deltas: Vec<u32> = timing
        .dts
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain([(timing.end - delay).saturating_sub(last_dts).max(1)])
        .map(|d| u32::try_from(d).context("a frame longer than 2^32 ticks"))
        .collect::<Result<_>>()?;
    let offsets: Vec<u32> = timing
        .pts
        .iter()
        .zip(&timing.dts)
        .map(|(p, d)| u32::try_from(p - d).context("a reordering delay over 2^32 ticks"))
        .collect::<Result<_>>()?;
    let media_duration: u64 = deltas.iter().map(|&d| u64::from(d)).sum();
    let end = u64::try_from(timing.end).context("negative end")?;
    // Sample k's media (composition) time is pts[k] - shift; the first frame's is
    // start - shift (the reordering delay, never negative). The edit list presents that media
    // time at `start`: an empty edit up to `start` when it is positive (as ffmpeg's own muxer
    // writes it), then the media from the first frame on, up to `end`.
    let first_media = start - shift;
    let start_ticks = u64::try_from(start).expect("checked above");
    let mut edits: Vec<(u64, i64)> = Vec::new();
    if start_ticks > 0 {
        edits.push((start_ticks, -1));
    }
    edits.push((end - start_ticks, first_media));
    let total = end;

    let mut elst = vec![1, 0, 0, 0];
    elst.extend((edits.len() as u32).to_be_bytes());
    for (duration, time) in &edits {
        elst.extend(duration.to_be_bytes());
        elst.extend(time.to_be_bytes());
        elst.extend(0x0001_0000u32.to_be_bytes()); // rate 1.0
    }

    let mut moov = Node::Container { kind: *b"moov", children: Node::parse_all(moov_body)? };
    let ts = timing.timescale;
    let mvhd = moov.child_mut(b"mvhd")?.body_mut()?;
    *mvhd = time_header(mvhd, ts, total)?;
    let trak = moov.child_mut(b"trak")?;
    let tkhd = trak.child_mut(b"tkhd")?.body_mut()?;
    *tkhd = track_header(tkhd, total, rotation)?;
    let children = trak.children_mut()?;
    children.retain(|c| c.kind() != b"edts");
    let at = children.iter().position(|c| c.kind() == b"tkhd").map_or(0, |i| i + 1);
    children.insert(
        at,
        Node::Container {
            kind: *b"edts",
            children: vec![Node::Leaf { kind: *b"elst", body: elst }],
        },
    );
    let mdia = trak.child_mut(b"mdia")?;
    let mdhd = mdia.child_mut(b"mdhd")?.body_mut()?;
    *mdhd = time_header(mdhd, ts, media_duration)?;
    let stbl = mdia.child_mut(b"minf")?.child_mut(b"stbl")?;
    let stbl_children = stbl.children_mut()?;
    stbl_children.retain(|c| !matches!(c.kind(), b"ctts" | b"cslg"));
    let stts_at = stbl_children.iter().position(|c| c.kind() == b"stts").context("no stts box")?;
    stbl_children[stts_at] = Node::Leaf { kind: *b"stts", body: table(0, &runs(deltas)) };
    stbl_children
        .insert(stts_at + 1, Node::Leaf { kind: *b"ctts", body: table(0, &runs(offsets)) });
    let mut out = Vec::with_capacity(moov_body.len() + 64);
    moov.write(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_take_the_source_times_in_the_workers_display_order() {
        // Two segments; the worker reordered (B-frames) and used its own time base.
        let worker = [0, 3, 1, 2, 100, 102, 101];
        let source = vec![vec![10, 20, 35, 40], vec![50, 57, 70]];
        let t = retime(&worker, &source, 80, 1000).expect("retimed");
        assert_eq!(t.pts, vec![10, 40, 20, 35, 50, 70, 57]);
        // dts increasing, never after pts.
        assert!(t.dts.windows(2).all(|w| w[0] < w[1]), "{:?}", t.dts);
        assert!(t.dts.iter().zip(&t.pts).all(|(d, p)| d <= p));
        assert_eq!(t.start(), 10);
    }

    #[test]
    fn counts_and_ties_are_refused() {
        let source = vec![vec![0, 1, 2], vec![3, 4]];
        assert_eq!(
            retime(&[0, 1, 2, 3], &source, 5, 1),
            Err(RetimeError::Count { segment: 1, samples: 1, frames: 2 })
        );
        assert_eq!(
            retime(&[0, 1, 2, 3, 4, 5], &source, 5, 1),
            Err(RetimeError::Count { segment: 1, samples: 3, frames: 2 })
        );
        assert_eq!(
            retime(&[0, 1, 1, 3, 4], &source, 5, 1),
            Err(RetimeError::DuplicatePts { segment: 0, pts: 1 })
        );
    }

    fn leaf(kind: &[u8; 4], body: Vec<u8>) -> Node {
        Node::Leaf { kind: *kind, body }
    }

    fn container(kind: &[u8; 4], children: Vec<Node>) -> Node {
        Node::Container { kind: *kind, children }
    }

    /// A moov body like ffmpeg's for 3 samples of 1/100 s, no B-frames.
    fn moov_body() -> Vec<u8> {
        let mut mvhd = vec![0; 4];
        mvhd.extend([0; 8]); // times
        mvhd.extend(1000u32.to_be_bytes());
        mvhd.extend(30u32.to_be_bytes());
        mvhd.extend([0; 80]);
        let mut tkhd = vec![0, 0, 0, 3];
        tkhd.extend([0; 8]);
        tkhd.extend(1u32.to_be_bytes());
        tkhd.extend([0; 4]);
        tkhd.extend(30u32.to_be_bytes());
        tkhd.extend([0; 16]);
        tkhd.extend(matrix(0));
        tkhd.extend([0; 8]);
        let mut mdhd = vec![0; 4];
        mdhd.extend([0; 8]);
        mdhd.extend(100u32.to_be_bytes());
        mdhd.extend(3u32.to_be_bytes());
        mdhd.extend([0x55, 0xc4, 0, 0]);
        let stbl = container(
            b"stbl",
            vec![
                leaf(b"stsd", vec![0; 8]),
                leaf(b"stts", table(0, &[(3, 1)])),
                leaf(b"stsz", vec![0; 12]),
            ],
        );
        let moov = [
            leaf(b"mvhd", mvhd),
            container(
                b"trak",
                vec![
                    leaf(b"tkhd", tkhd),
                    container(b"mdia", vec![leaf(b"mdhd", mdhd), container(b"minf", vec![stbl])]),
                ],
            ),
        ];
        let mut out = Vec::new();
        moov.iter().for_each(|n| n.write(&mut out));
        out
    }

    #[test]
    fn the_moov_is_rewritten_with_the_new_times() {
        let body = moov_body();
        assert_eq!(sample_pts(&body).expect("read"), vec![0, 1, 2]);
        // Reordered frames starting at 500 (1/12800), the last ending at 1400.
        let timing = retime(&[0, 2, 1], &[vec![512, 1024, 1280]], 1400, 12800).expect("ok");
        let out = rewrite_moov(&body, &timing, 90).expect("rewritten");
        // Nodes parse back; the tables give the new pts relative to the first dts.
        let moov = Node::parse_all(&out).expect("parse");
        let Node::Container { children, .. } = &moov[0] else { panic!("container") };
        let mut body = Vec::new();
        children.iter().for_each(|c| c.write(&mut body));
        let relative: Vec<i64> =
            sample_pts(&body).expect("read").iter().map(|p| p + timing.dts[0]).collect();
        assert_eq!(relative, timing.pts);
        // The rotation matrix went into tkhd; an edit list was inserted after it.
        let text = format!("{out:?}");
        assert!(out.windows(4).any(|w| w == b"elst"), "{text}");
        assert!(out.windows(36).any(|w| w == matrix(90)), "rotation matrix missing");
    }
}
