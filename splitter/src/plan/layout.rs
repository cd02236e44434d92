//! How a plan's segments map onto ffmpeg segment muxers (one, or as many as overlapping
//! segment files need).

use std::collections::BTreeSet;

use super::{Plan, Segment};

/// How the planned segments are written by ffmpeg's segment muxer: one muxer when segment
/// files do not overlap; otherwise as many as the most files that share a packet (two for
/// lead-ins, more with context frames), each writing consecutive pieces of the stream, some
/// of which are segments and the rest discarded. No two files of one muxer overlap.
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
    // First fit in order of the files' starts: optimal for intervals (a new muxer only when
    // every existing one still writes a file that overlaps this one). When every segment but
    // the first has a one-GOP lead-in, this is even and odd segments.
    let mut files: Vec<&Segment> = plan.segments.iter().collect();
    files.sort_by_key(|s| (s.first_packet, s.index));
    let mut groups: Vec<Vec<&Segment>> = Vec::new();
    for s in files {
        let free = groups
            .iter_mut()
            .find(|g| g.last().is_some_and(|last| last.end_packet <= s.first_packet));
        match free {
            Some(group) => group.push(s),
            None => groups.push(vec![s]),
        }
    }
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
