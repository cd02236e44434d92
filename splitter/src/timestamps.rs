//! The splitter's check of its own output, without decoding: the packets a segment file holds
//! must carry the source's timestamps for the same packets: same count, decode order kept,
//! and every packet presented at the same offset from the segment's first owned frame as in
//! the source. A remux that loses the decode order of B-frames (an ffmpeg that derived
//! `dts = pts` for a Matroska input, say) shifts presentation times, and decoders then drop
//! or reorder frames; this catches it before a manifest is written.
//!
//! Pure: timestamps in, a verdict and a digest out. Reading the packet lists is `packets`'s
//! job, running ffmpeg `readback`'s and `verify`'s.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::hash::hex;

/// `"N/D"` (a time base, a frame rate) with both terms positive.
pub fn parse_rational(text: &str) -> Option<(i64, i64)> {
    let (n, d) = text.split_once('/')?;
    let (n, d) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    (n > 0 && d > 0).then_some((n, d))
}

/// One packet's timestamps as a demuxer delivers them (decode order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub dts: i64,
    pub pts: i64,
}

/// The video packets of one file: time base and timestamps in decode order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub time_base: (i64, i64),
    pub stamps: Vec<Stamp>,
}

impl Timeline {
    /// Each packet's pts relative to the file's first packet (decode order), in its time
    /// base.
    pub fn relative_pts(&self) -> Vec<i64> {
        let first = self.stamps.first().map_or(0, |s| s.pts);
        self.stamps.iter().map(|s| s.pts.saturating_sub(first)).collect()
    }

    /// The manifest's `pts_digest`: SHA-256 (hex) of the text `N/D\n` (the time base) followed
    /// by one line per packet, in decode order, with its pts minus the first packet's pts
    /// (decimal). Two files with the same digest present their frames identically.
    pub fn pts_digest(&self) -> String {
        let (num, den) = self.time_base;
        let mut hasher = Sha256::new();
        hasher.update(format!("{num}/{den}\n").as_bytes());
        for pts in self.relative_pts() {
            hasher.update(format!("{pts}\n").as_bytes());
        }
        hex(&hasher.finalize())
    }
}

/// How a segment's timestamps differ from the source's.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// The file holds another number of video packets than the source range it was cut from.
    Count { segment: usize, got: usize, expected: usize },
    /// Decode timestamps do not increase: the decode order is lost.
    DecodeOrder { segment: usize, packet: usize, dts: i64, previous: i64 },
    /// A packet is presented at another offset from the first owned frame than in the source.
    Presentation { segment: usize, packet: usize, got_seconds: f64, expected_seconds: f64 },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Count { segment, got, expected } => write!(
                f,
                "segment {segment} holds {got} video packets, the source has {expected} for it"
            ),
            Mismatch::DecodeOrder { segment, packet, dts, previous } => write!(
                f,
                "segment {segment}, packet {packet}: decode timestamp {dts} does not follow \
                 {previous} (decode order lost)"
            ),
            Mismatch::Presentation { segment, packet, got_seconds, expected_seconds } => write!(
                f,
                "segment {segment}, packet {packet} (decode order): presented at \
                 {got_seconds:+.6} s from the segment's first owned frame, in the source at \
                 {expected_seconds:+.6} s"
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

/// `ticks` of `from` expressed in `to`, rounded to the nearest tick (half away from zero, as
/// ffmpeg's `av_rescale_q`).
fn rescale(ticks: i64, from: (i64, i64), to: (i64, i64)) -> i64 {
    let num = i128::from(ticks) * i128::from(from.0) * i128::from(to.1);
    let den = i128::from(from.1) * i128::from(to.0);
    if den == 0 {
        return 0;
    }
    let half = den.abs() / 2;
    let rounded = if (num >= 0) == (den > 0) {
        (num.abs() + half) / den.abs()
    } else {
        -((num.abs() + half) / den.abs())
    };
    rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Whether one tick of `from` is a whole number of ticks of `to` (rescaling is then exact).
fn exact(from: (i64, i64), to: (i64, i64)) -> bool {
    let num = i128::from(from.0) * i128::from(to.1);
    let den = i128::from(from.1) * i128::from(to.0);
    den != 0 && num % den == 0
}

fn seconds(ticks: i64, (num, den): (i64, i64)) -> f64 {
    ticks as f64 * num as f64 / den as f64
}

/// Checks segment `segment`'s packets (`actual`, read back from its file) against the source's
/// packets it was cut from (`expected_pts`: their pts in decode order, in `source_tb`), where
/// `owned_from` is the position of the segment's first owned packet (after its lead-in).
///
/// Presentation offsets are compared in the segment's time base; when the source's ticks do
/// not convert exactly, a difference of one tick is rounding and allowed.
pub fn check_segment(
    segment: usize,
    expected_pts: &[i64],
    source_tb: (i64, i64),
    owned_from: usize,
    actual: &Timeline,
) -> Result<(), Mismatch> {
    let got = &actual.stamps;
    if got.len() != expected_pts.len() || owned_from >= got.len() {
        return Err(Mismatch::Count { segment, got: got.len(), expected: expected_pts.len() });
    }
    for (packet, pair) in got.windows(2).enumerate() {
        if pair[1].dts <= pair[0].dts {
            return Err(Mismatch::DecodeOrder {
                segment,
                packet: packet + 1,
                dts: pair[1].dts,
                previous: pair[0].dts,
            });
        }
    }
    let tb = actual.time_base;
    let tolerance = if exact(source_tb, tb) { 0 } else { 1 };
    let source_ref = expected_pts[owned_from];
    let segment_ref = got[owned_from].pts;
    for (packet, (stamp, &source_pts)) in got.iter().zip(expected_pts).enumerate() {
        let expected = rescale(source_pts.saturating_sub(source_ref), source_tb, tb);
        let offset = stamp.pts.saturating_sub(segment_ref);
        if (offset - expected).abs() > tolerance {
            return Err(Mismatch::Presentation {
                segment,
                packet,
                got_seconds: seconds(offset, tb),
                expected_seconds: seconds(source_pts - source_ref, source_tb),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x264-style decode order with B-pyramid: I P B b b (pts 0 4 2 1 3), 512 ticks a frame.
    fn source_pts(offset: i64) -> Vec<i64> {
        [0, 4, 2, 1, 3, 8, 6, 5, 7].iter().map(|f| offset + f * 512).collect()
    }

    fn timeline(tb: (i64, i64), pts: &[i64], dts_step: i64) -> Timeline {
        let first = pts.first().copied().unwrap_or(0);
        Timeline {
            time_base: tb,
            stamps: pts
                .iter()
                .enumerate()
                .map(|(i, &pts)| Stamp { dts: first - 2 * dts_step + i as i64 * dts_step, pts })
                .collect(),
        }
    }

    #[test]
    fn a_faithful_segment_passes_whatever_its_offset() {
        let src = source_pts(25_600);
        let seg = timeline((1, 12800), &source_pts(1024), 512);
        assert_eq!(check_segment(3, &src, (1, 12800), 0, &seg), Ok(()));
        // Another time base that the source's ticks convert to exactly (1/1000 → 1/16000).
        let ms: Vec<i64> = [0, 160, 80, 40, 120].to_vec();
        let seg16: Vec<i64> = ms.iter().map(|t| t * 16).collect();
        assert_eq!(check_segment(0, &ms, (1, 1000), 0, &timeline((1, 16000), &seg16, 640)), Ok(()));
    }

    #[test]
    fn rounding_of_an_inexact_conversion_is_allowed_one_tick() {
        // 30000/1001 fps in 1/30000 → 1/1000: 33.366… ms a frame, rounded per packet.
        let src: Vec<i64> = [0, 3, 1, 2].iter().map(|f| 7_000_000 + f * 1001).collect();
        let seg: Vec<i64> = src.iter().map(|t| rescale(*t + 123, (1, 30000), (1, 1000))).collect();
        assert_eq!(check_segment(0, &src, (1, 30000), 0, &timeline((1, 1000), &seg, 30)), Ok(()));
    }

    #[test]
    fn dts_equal_to_pts_loses_the_decode_order() {
        // What a demuxer without the stream's reordering depth delivers for Matroska.
        let src = source_pts(0);
        let seg = Timeline {
            time_base: (1, 12800),
            stamps: src.iter().map(|&p| Stamp { dts: p, pts: p }).collect(),
        };
        let err = check_segment(1, &src, (1, 12800), 0, &seg).expect_err("dts = pts");
        assert!(matches!(err, Mismatch::DecodeOrder { segment: 1, packet: 2, .. }), "{err}");
    }

    #[test]
    fn a_muxer_that_bumped_timestamps_is_caught() {
        // The muxer forced increasing dts and moved pts with them: runs one tick apart.
        let src = source_pts(0);
        let mut broken = src.clone();
        broken[3] = broken[2] + 1;
        let seg = timeline((1, 12800), &broken, 256);
        let err = check_segment(2, &src, (1, 12800), 0, &seg).expect_err("moved");
        assert_eq!(
            err.to_string(),
            "segment 2, packet 3 (decode order): presented at +0.080078 s from the segment's \
             first owned frame, in the source at +0.040000 s"
        );
    }

    #[test]
    fn counts_and_the_lead_in_reference() {
        let src = source_pts(0);
        let short = timeline((1, 12800), &src[..8], 256);
        assert_eq!(
            check_segment(0, &src, (1, 12800), 0, &short),
            Err(Mismatch::Count { segment: 0, got: 8, expected: 9 })
        );
        // Offsets are taken from the first owned packet (here the 6th, after a lead-in GOP):
        // a file whose lead-in is shifted against its owned frames fails.
        let mut shifted = src.clone();
        for p in &mut shifted[..5] {
            *p -= 512;
        }
        let seg = timeline((1, 12800), &shifted, 256);
        let err = check_segment(0, &src, (1, 12800), 5, &seg).expect_err("lead-in shifted");
        assert!(matches!(err, Mismatch::Presentation { packet: 0, .. }), "{err}");
    }

    #[test]
    fn the_digest_ignores_offsets_but_not_spacing_or_time_base() {
        let a = timeline((1, 12800), &source_pts(0), 256);
        let b = timeline((1, 12800), &source_pts(99_999), 256);
        assert_eq!(a.pts_digest(), b.pts_digest());
        let mut moved = source_pts(0);
        moved[4] += 1;
        assert_ne!(a.pts_digest(), timeline((1, 12800), &moved, 256).pts_digest());
        assert_ne!(a.pts_digest(), timeline((1, 25600), &source_pts(0), 256).pts_digest());
        // Independent of this code: sha256 of "1/25\n0\n2\n1\n" (computed with sha256sum).
        let small = timeline((1, 25), &[7, 9, 8], 1);
        assert_eq!(
            small.pts_digest(),
            "2d285739342f7792bfb9a322a39b29e90364f873e1902997c0cc05b0560c8f04"
        );
    }

    #[test]
    fn rescaling_rounds_like_ffmpeg() {
        assert_eq!(rescale(1001, (1, 30000), (1, 1000)), 33); // 33.3667
        assert_eq!(rescale(2002, (1, 30000), (1, 1000)), 67); // 66.733
        assert_eq!(rescale(-2002, (1, 30000), (1, 1000)), -67);
        assert_eq!(rescale(15, (1, 30000), (1, 1000)), 1); // 0.5 rounds away from zero
        assert!(exact((1, 1000), (1, 16000)) && exact((1, 25), (1, 12800)));
        assert!(!exact((1, 30000), (1, 1000)) && !exact((1, 16000), (1, 1000)));
    }
}
