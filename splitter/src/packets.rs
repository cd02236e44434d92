//! Reading packet lists that ffmpeg prints with its `framecrc` muxer.
//!
//! A stream copy to `framecrc` lists every packet in decode order without decoding:
//!
//! ```text
//! #tb 0: 1/12800
//! 0,      -1024,          0,      512,     2898, 0x04803df9
//! 0,       -512,       1536,      512,      623, 0x9b3d37e8, F=0x0
//! ```
//!
//! (stream, dts, pts, duration, size, adler32, then `F=` flags unless they are exactly "key").
//! The same packets, numbered the same way, reach the segment muxer in the same run, which is
//! what makes `-segment_frames` exact.

use std::io::BufRead;

use anyhow::{Context, Result, bail};

use crate::error::{Kind, fail};
use crate::plan::{GopBuilder, Packet, Stream};
use crate::timestamps::{Stamp, Timeline};

const FLAG_KEY: u32 = 0x1;
const FLAG_CORRUPT: u32 = 0x2;
const FLAG_DISCARD: u32 = 0x4;

/// A packet list folded into GOPs, plus what else the list tells.
#[derive(Clone, Debug)]
pub struct PacketLog {
    pub stream: Stream,
    /// Time base of the timestamps (`#tb` header).
    pub time_base: (i64, i64),
    pub corrupt_packets: u64,
    pub bytes: u64,
}

fn parse_time_base(line: &str) -> Option<(i64, i64)> {
    crate::timestamps::parse_rational(line.strip_prefix("#tb 0:")?)
}

/// One packet line of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    pub packet: Packet,
    pub dts: i64,
    pub size: u64,
    pub corrupt: bool,
}

/// One packet line → its packet, dts, size and whether it is flagged corrupt.
pub fn parse_line(line: &str) -> Option<Line> {
    let mut fields = line.split(',').map(str::trim);
    let _stream = fields.next()?;
    let dts: i64 = fields.next()?.parse().ok()?;
    let pts: i64 = fields.next()?.parse().ok()?;
    let duration: i64 = fields.next()?.parse().ok()?;
    let size: u64 = fields.next()?.parse().ok()?;
    let _crc = fields.next()?;
    let flags = match fields.next() {
        Some(f) if f.starts_with("F=") => {
            u32::from_str_radix(f.trim_start_matches("F=").trim_start_matches("0x"), 16).ok()?
        }
        _ => FLAG_KEY,
    };
    let packet =
        Packet { pts, duration, key: flags & FLAG_KEY != 0, discard: flags & FLAG_DISCARD != 0 };
    Some(Line { packet, dts, size, corrupt: flags & FLAG_CORRUPT != 0 })
}

/// The packet lines of a listing, in order, with the time base once its header was read.
#[derive(Debug)]
struct Lines<R> {
    lines: std::io::Lines<R>,
    number: usize,
    time_base: Option<(i64, i64)>,
    what: &'static str,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R, what: &'static str) -> Lines<R> {
        Lines { lines: reader.lines(), number: 0, time_base: None, what }
    }

    /// The next packet line, `None` at the end.
    fn next_line(&mut self) -> Result<Option<Line>> {
        for line in self.lines.by_ref() {
            self.number += 1;
            let line = line.with_context(|| format!("reading {}", self.what))?;
            if line.starts_with('#') {
                if let Some(tb) = parse_time_base(&line) {
                    self.time_base = Some(tb);
                }
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            return match parse_line(&line) {
                Some(parsed) => Ok(Some(parsed)),
                None => bail!("unexpected line {} in {}: {line:?}", self.number, self.what),
            };
        }
        Ok(None)
    }

    fn time_base(&self) -> Result<(i64, i64)> {
        self.time_base.with_context(|| format!("{} has no time base line", self.what))
    }
}

/// Reads a whole listing (one segment's) into its timeline.
pub fn read_timeline(reader: impl BufRead) -> Result<Timeline> {
    let mut lines = Lines::new(reader, "a segment's packet list");
    let mut stamps = Vec::new();
    while let Some(line) = lines.next_line()? {
        stamps.push(Stamp { dts: line.dts, pts: line.packet.pts });
    }
    Ok(Timeline { time_base: lines.time_base()?, stamps })
}

/// The source's packet pts, read forward range by range (memory: the largest range).
#[derive(Debug)]
pub struct PtsRanges<R> {
    lines: Lines<R>,
    /// Decode-order index of `window[0]`.
    start: u64,
    window: std::collections::VecDeque<i64>,
}

impl<R: BufRead> PtsRanges<R> {
    pub fn new(reader: R) -> PtsRanges<R> {
        PtsRanges {
            lines: Lines::new(reader, "ffmpeg's packet list"),
            start: 0,
            window: std::collections::VecDeque::new(),
        }
    }

    /// pts of packets `range` (decode order); ranges must not start before an earlier one.
    pub fn range(&mut self, range: std::ops::Range<u64>) -> Result<Vec<i64>> {
        if range.start < self.start {
            bail!("packet ranges must be read in order ({} after {})", range.start, self.start);
        }
        while self.start < range.start {
            if self.window.pop_front().is_none() {
                match self.lines.next_line()? {
                    Some(_) => {}
                    None => bail!("ffmpeg's packet list ends before packet {}", range.start),
                }
            }
            self.start += 1;
        }
        while self.start + (self.window.len() as u64) < range.end {
            match self.lines.next_line()? {
                Some(line) => self.window.push_back(line.packet.pts),
                None => bail!("ffmpeg's packet list ends before packet {}", range.end),
            }
        }
        Ok(self.window.iter().take((range.end - range.start) as usize).copied().collect())
    }

    pub fn time_base(&self) -> Result<(i64, i64)> {
        self.lines.time_base()
    }
}

/// Reads a framecrc listing of one stream into GOP summaries (memory: O(GOPs)).
pub fn read_log(reader: impl BufRead) -> Result<PacketLog> {
    let mut builder = GopBuilder::new();
    let mut lines = Lines::new(reader, "ffmpeg's packet list");
    let mut corrupt_packets = 0;
    let mut bytes = 0;
    while let Some(Line { packet, size, corrupt, .. }) = lines.next_line()? {
        if packet.pts == i64::MIN {
            return Err(fail(
                Kind::NotAVideo,
                format!(
                    "video packet {} has no presentation timestamp: the input's frame order \
                     cannot be known without decoding",
                    builder.packets()
                ),
            ));
        }
        builder.push(packet);
        bytes += size;
        corrupt_packets += u64::from(corrupt);
    }
    let time_base = lines.time_base()?;
    Ok(PacketLog { stream: builder.finish(), time_base, corrupt_packets, bytes })
}

/// Reads the pts of every packet in a framecrc listing (used for the IDR list, which is
/// short: one entry per IDR picture).
pub fn read_pts(reader: impl BufRead) -> Result<Vec<i64>> {
    let mut lines = Lines::new(reader, "ffmpeg's keyframe list");
    let mut out = Vec::new();
    while let Some(line) = lines.next_line()? {
        out.push(line.packet.pts);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "#format: frame checksums
#version: 2
#hash: CRC32
#tb 0: 1/12800
#media_type 0: video
#codec_id 0: h264
#dimensions 0: 160x90
#sar 0: 1/1
0,     -17920,     -16896,      512,     2898, 0x04803df9, F=0x5
0,     -17408,     -14848,      512,      996, 0x18ebf4f5, F=0x4
0,      -1024,       1536,      512,      799, 0x05338f9f, F=0x0
0,      25600,      26624,      512,     2898, 0x04803df9
0,      26112,      26112,      512,      320, 0x42fa97b5, F=0x12
0,      -3600,          0,     3600,     4979, 0x8fd19907, S=2,        1,       40
";

    #[test]
    fn parses_flags_sizes_and_the_time_base() {
        let log = read_log(LOG.as_bytes()).expect("parse");
        assert_eq!(log.time_base, (1, 12800));
        assert_eq!(log.stream.packets, 6);
        assert_eq!(log.stream.gops.len(), 3);
        assert_eq!(log.corrupt_packets, 1);
        assert_eq!(log.bytes, 2898 + 996 + 799 + 2898 + 320 + 4979);
        let first = &log.stream.gops[0];
        assert_eq!(first.key_pts, -16896);
        assert_eq!(first.hidden_pts, vec![-16896, -14848]);
        // A line without F= is a keyframe with no other flag; with side data (S=) too.
        assert_eq!(log.stream.gops[1].first_packet, 3);
        assert_eq!(log.stream.gops[2].key_pts, 0);
    }

    #[test]
    fn packets_without_timestamps_are_refused() {
        let log =
            "#tb 0: 1/25\n0, 0, 0, 1, 10, 0x0\n0, 1, -9223372036854775808, 1, 10, 0x0, F=0x0\n";
        let err = read_log(log.as_bytes()).expect_err("no pts");
        assert_eq!(crate::error::kind_of(&err), Kind::NotAVideo);
        assert!(err.to_string().contains("packet 1 has no presentation timestamp"), "{err}");
    }

    #[test]
    fn a_segment_listing_reads_into_its_timeline() {
        let timeline = read_timeline(LOG.as_bytes()).expect("timeline");
        assert_eq!(timeline.time_base, (1, 12800));
        assert_eq!(timeline.stamps.len(), 6);
        assert_eq!(timeline.stamps[0], Stamp { dts: -17920, pts: -16896 });
        assert_eq!(timeline.stamps[5], Stamp { dts: -3600, pts: 0 });
    }

    #[test]
    fn source_ranges_are_read_forward_with_overlaps() {
        let list = "#tb 0: 1/25\n".to_owned()
            + &(0..10).map(|i| format!("0, {i}, {}, 1, 10, 0x0\n", i * 2)).collect::<String>();
        let mut ranges = PtsRanges::new(list.as_bytes());
        assert_eq!(ranges.range(0..3).expect("0..3"), vec![0, 2, 4]);
        // A lead-in overlaps the previous range.
        assert_eq!(ranges.range(1..5).expect("1..5"), vec![2, 4, 6, 8]);
        assert_eq!(ranges.range(7..10).expect("7..10"), vec![14, 16, 18]);
        assert_eq!(ranges.time_base().expect("tb"), (1, 25));
        assert!(ranges.range(2..4).is_err(), "ranges go forward only");
        assert!(ranges.range(8..11).expect_err("past the end").to_string().contains("ends before"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(read_log("#tb 0: 1/25\nnot a packet\n".as_bytes()).is_err());
        assert!(read_log("0, 0, 0, 1, 10, 0x0\n".as_bytes()).is_err(), "no time base");
        assert_eq!(
            read_pts("#tb 0: 1/25\n0, 1, 2, 1, 10, 0x0\n".as_bytes()).expect("pts"),
            vec![2]
        );
    }
}
