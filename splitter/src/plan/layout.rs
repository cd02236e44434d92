//! How a plan's segments map onto ffmpeg segment muxers (one, or two when segments overlap).

use std::collections::BTreeSet;

use super::{Plan, Segment};

/// How the planned segments are written by ffmpeg's segment muxer: one muxer when segments
/// do not overlap; otherwise two (even and odd segments), each writing consecutive pieces of
/// the stream, some of which are segments and the rest discarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub muxers: Vec<MuxerLayout>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuxerLayout {
    /// Packet indices (decode order, all keyframes) where the muxer starts a new piece.
    pub cut_packets: Vec<u64>,
    /// For each piece the muxer writes, in order: the segment it is, or `None` (discarded).
    pub pieces: Vec<Option<usize>>,
}

pub fn layout(plan: &Plan, total_packets: u64) -> Layout {
    let groups: Vec<Vec<&Segment>> = if plan.has_lead_in_packets() {
        vec![
            plan.segments.iter().step_by(2).collect(),
            plan.segments.iter().skip(1).step_by(2).collect(),
        ]
    } else {
        vec![plan.segments.iter().collect()]
    };
    let muxers = groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|segments| {
            let mut points = BTreeSet::new();
            for s in &segments {
                points.insert(s.first_packet);
                points.insert(s.end_packet);
            }
            points.insert(0);
            points.insert(total_packets);
            let points: Vec<u64> = points.into_iter().collect();
            let pieces = points
                .windows(2)
                .map(|w| {
                    segments
                        .iter()
                        .find(|s| s.first_packet == w[0] && s.end_packet == w[1])
                        .map(|s| s.index)
                })
                .collect();
            let cut_packets = points[1..points.len() - 1].to_vec();
            MuxerLayout { cut_packets, pieces }
        })
        .collect();
    Layout { muxers }
}
