//! Pure segment planning: the video stream's packets in decode order in, a cut list out.
//!
//! No I/O happens here. The model, measured against ffmpeg's decoders (see the integration
//! tests), is:
//!
//! * Packets are grouped into GOPs: a keyframe and every packet up to the next keyframe, in
//!   decode order. Segments own whole GOPs, and own frames by display order.
//! * A keyframe has *leading pictures* when later packets of its GOP have a smaller pts (open
//!   GOP: HEVC CRA + RASL, H.264 recovery points, MPEG-2 open GOPs). A decoder that starts at
//!   such a keyframe drops its leading pictures, unless the keyframe is a clean random-access
//!   point (an IDR picture, whose leading pictures are decodable RADL pictures).
//! * Packets flagged *discard* (hidden by an MP4/MOV edit list) are decoded but not shown by a
//!   whole-source decode. Segment files carry no edit list, so a standalone decode of a segment
//!   outputs them: they are counted in `lead_in_frames` (or `trailing_frames`).
//! * A segment that starts at a keyframe with leading pictures that is not clean gets a lead-in:
//!   its file also holds the previous GOP, whose frames a worker drops (`lead_in_frames`).
//!
//! Memory is O(GOPs), not O(packets): packets are folded into [`Gop`] summaries as they are
//! read, so a very long input plans in a few megabytes.

use std::collections::BTreeSet;
use std::fmt;

/// One video packet as the demuxer delivers it (timestamps in the stream time base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub pts: i64,
    pub duration: i64,
    pub key: bool,
    /// Hidden by an edit list: decoded, never shown.
    pub discard: bool,
}

/// Display range of a set of frames: smallest and largest pts, and where the last one ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub min: i64,
    pub max: i64,
    /// `pts + duration` of the frame with the largest pts.
    pub end: i64,
    pub count: u64,
}

impl Span {
    fn single(p: &Packet) -> Span {
        Span { min: p.pts, max: p.pts, end: p.pts.saturating_add(p.duration.max(0)), count: 1 }
    }

    fn include(span: &mut Option<Span>, p: &Packet) {
        match span {
            None => *span = Some(Span::single(p)),
            Some(s) => {
                s.min = s.min.min(p.pts);
                if p.pts >= s.max {
                    s.max = p.pts;
                    s.end = p.pts.saturating_add(p.duration.max(0));
                }
                s.count += 1;
            }
        }
    }
}

/// Summary of one GOP (a keyframe and the packets up to the next keyframe, decode order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gop {
    /// Decode-order index of the keyframe packet in the stream.
    pub first_packet: u64,
    pub packets: u64,
    pub key_pts: i64,
    /// Smallest and largest pts over all packets (shown or not).
    pub min_pts: i64,
    pub max_pts: i64,
    /// Packets whose pts is smaller than the keyframe's (leading pictures).
    pub leading: u64,
    /// pts of the packets hidden by an edit list (there are few: edit lists trim the ends).
    pub hidden_pts: Vec<i64>,
    /// Frames that are not hidden.
    pub shown: Option<Span>,
    /// Frames that are not hidden and not leading pictures.
    pub shown_trailing: Option<Span>,
}

impl Gop {
    fn new(first_packet: u64, p: &Packet) -> Gop {
        Gop {
            first_packet,
            packets: 0,
            key_pts: p.pts,
            min_pts: p.pts,
            max_pts: p.pts,
            leading: 0,
            hidden_pts: Vec::new(),
            shown: None,
            shown_trailing: None,
        }
    }

    fn push(&mut self, p: &Packet) {
        self.packets += 1;
        self.min_pts = self.min_pts.min(p.pts);
        self.max_pts = self.max_pts.max(p.pts);
        let leading = p.pts < self.key_pts;
        if leading {
            self.leading += 1;
        }
        if p.discard {
            self.hidden_pts.push(p.pts);
        } else {
            Span::include(&mut self.shown, p);
            if !leading {
                Span::include(&mut self.shown_trailing, p);
            }
        }
    }
}

/// Folds packets (decode order) into GOP summaries.
#[derive(Debug, Default)]
pub struct GopBuilder {
    gops: Vec<Gop>,
    next_index: u64,
    before_first_key: u64,
}

impl GopBuilder {
    pub fn new() -> GopBuilder {
        GopBuilder::default()
    }

    pub fn push(&mut self, p: Packet) {
        let index = self.next_index;
        self.next_index += 1;
        if p.key {
            self.gops.push(Gop::new(index, &p));
        }
        match self.gops.last_mut() {
            Some(gop) => gop.push(&p),
            None => self.before_first_key += 1,
        }
    }

    /// Packets pushed so far.
    pub fn packets(&self) -> u64 {
        self.next_index
    }

    pub fn finish(self) -> Stream {
        Stream {
            gops: self.gops,
            packets: self.next_index,
            before_first_key: self.before_first_key,
        }
    }
}

/// The summarized video stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    pub gops: Vec<Gop>,
    /// Total number of packets.
    pub packets: u64,
    /// Packets before the first keyframe (ffmpeg's stream copy drops them; none expected).
    pub before_first_key: u64,
}

impl Stream {
    pub fn from_packets(packets: impl IntoIterator<Item = Packet>) -> Stream {
        let mut builder = GopBuilder::new();
        for p in packets {
            builder.push(p);
        }
        builder.finish()
    }

    /// pts of the keyframes that have leading pictures (the ones whose type matters).
    pub fn keyframes_with_leading_pictures(&self) -> Vec<i64> {
        self.gops.iter().filter(|g| g.leading > 0).map(|g| g.key_pts).collect()
    }
}

/// What is known about keyframes beyond the packet flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyframeFacts {
    /// pts of keyframes that are clean random-access points even though they have leading
    /// pictures (IDR pictures). `None`: not known (a keyframe with leading pictures is then
    /// neither assumed clean nor unclean, and planning asks for the facts).
    pub clean_keyframes: Option<BTreeSet<i64>>,
}

impl KeyframeFacts {
    /// Nothing is known (fast path: fine as long as no keyframe that matters has leading
    /// pictures).
    pub fn unknown() -> KeyframeFacts {
        KeyframeFacts { clean_keyframes: None }
    }

    /// The codec has no clean random-access point with leading pictures (MPEG-2, VP9, AV1…).
    pub fn none_clean() -> KeyframeFacts {
        KeyframeFacts { clean_keyframes: Some(BTreeSet::new()) }
    }

    pub fn clean(pts: impl IntoIterator<Item = i64>) -> KeyframeFacts {
        KeyframeFacts { clean_keyframes: Some(pts.into_iter().collect()) }
    }

    /// Whether a decoder that starts at `gop` outputs all of its frames.
    fn is_clean(&self, gop: &Gop, index: usize) -> Result<bool, PlanError> {
        if gop.leading == 0 {
            return Ok(true);
        }
        match &self.clean_keyframes {
            Some(set) => Ok(set.contains(&gop.key_pts)),
            None => Err(PlanError::KeyframeTypeUnknown { gop: index, pts: gop.key_pts }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// No keyframe at all.
    NoKeyframe,
    /// Every frame is hidden by the edit list.
    NoShownFrames,
    /// Packets precede the first keyframe.
    PacketsBeforeFirstKeyframe(u64),
    /// A keyframe with leading pictures must be classified (IDR or not) first.
    KeyframeTypeUnknown { gop: usize, pts: i64 },
    /// An edit list hides frames between shown frames (only trimming the ends is supported).
    HiddenFramesInside { pts: i64 },
    /// A cut that ffmpeg (or a caller) chose is not a valid cut point.
    InvalidCut { gop: usize, reason: &'static str },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoKeyframe => write!(f, "the video stream has no keyframe"),
            PlanError::NoShownFrames => {
                write!(f, "every video frame is hidden by the file's edit list")
            }
            PlanError::PacketsBeforeFirstKeyframe(n) => {
                write!(f, "the video stream starts with {n} packets before its first keyframe")
            }
            PlanError::KeyframeTypeUnknown { gop, pts } => write!(
                f,
                "keyframe {gop} (pts {pts}) has leading pictures and its type (IDR or not) is unknown"
            ),
            PlanError::HiddenFramesInside { pts } => write!(
                f,
                "the edit list hides a frame (pts {pts}) between shown frames; only edit lists \
                 that trim the start or the end are supported"
            ),
            PlanError::InvalidCut { gop, reason } => {
                write!(f, "cannot cut at keyframe {gop}: {reason}")
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// One planned segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub index: usize,
    /// GOPs this segment owns: `first_gop..end_gop`.
    pub first_gop: usize,
    pub end_gop: usize,
    /// GOP decoded before the owned ones, whose frames the worker drops.
    pub lead_in_gop: Option<usize>,
    /// Packets written to the segment file (decode order): `first_packet..end_packet`.
    pub first_packet: u64,
    pub end_packet: u64,
    /// Decode-order index of the first owned packet (the keyframe of `first_gop`); equal to
    /// `first_packet` unless the file starts with a lead-in GOP.
    pub owned_first_packet: u64,
    /// Frames a standalone decode outputs before the owned frames.
    pub lead_in_frames: u64,
    /// Frames this segment owns.
    pub frames: u64,
    /// Frames a standalone decode outputs after the owned frames (hidden by an edit list that
    /// trims the end; 0 otherwise).
    pub trailing_frames: u64,
    /// Owned display range `[start_pts, end_pts)`, contiguous with the neighbours.
    pub start_pts: i64,
    pub end_pts: i64,
}

/// The cut list and the facts the manifest needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub segments: Vec<Segment>,
    /// Frames a whole-source decode outputs.
    pub frames: u64,
    /// pts of the first shown frame (segment start times are relative to it).
    pub origin_pts: i64,
}

impl Plan {
    /// Cut GOP indices (excluding 0).
    pub fn cuts(&self) -> Vec<usize> {
        self.segments.iter().skip(1).map(|s| s.first_gop).collect()
    }

    /// Whether some segment's file overlaps the previous one (needs lead-in packets).
    pub fn has_lead_in_packets(&self) -> bool {
        self.segments.iter().any(|s| s.lead_in_gop.is_some())
    }
}

/// Facts about the shown frames of the whole source.
struct Shown {
    first: i64,
    last: i64,
    end: i64,
}

/// Frames of `gop` that a decoder outputs and a whole-source decode shows, given whether
/// decoding starts at this GOP and drops its leading pictures.
fn shown_span(gop: &Gop, drops_leading: bool) -> Option<Span> {
    if drops_leading { gop.shown_trailing } else { gop.shown }
}

struct Planner<'a> {
    stream: &'a Stream,
    facts: &'a KeyframeFacts,
    /// Whether the source decode (which starts at GOP 0) drops GOP 0's leading pictures.
    first_drops_leading: bool,
    shown: Shown,
    /// prefix_max[g] = max pts over GOPs 0..g; suffix_min[g] = min pts over GOPs g..
    prefix_max: Vec<i64>,
    suffix_min: Vec<i64>,
    /// shown_before[g] = shown frames in GOPs 0..g.
    shown_before: Vec<u64>,
}

impl<'a> Planner<'a> {
    fn new(stream: &'a Stream, facts: &'a KeyframeFacts) -> Result<Planner<'a>, PlanError> {
        if stream.before_first_key > 0 {
            return Err(PlanError::PacketsBeforeFirstKeyframe(stream.before_first_key));
        }
        let gops = &stream.gops;
        let first = gops.first().ok_or(PlanError::NoKeyframe)?;
        let first_drops_leading = !facts.is_clean(first, 0)?;

        let mut shown: Option<Shown> = None;
        let mut shown_before = Vec::with_capacity(gops.len() + 1);
        let mut total = 0u64;
        for (i, gop) in gops.iter().enumerate() {
            shown_before.push(total);
            if let Some(span) = shown_span(gop, i == 0 && first_drops_leading) {
                total += span.count;
                shown = Some(match shown {
                    None => Shown { first: span.min, last: span.max, end: span.end },
                    Some(s) => Shown {
                        first: s.first.min(span.min),
                        last: s.last.max(span.max),
                        end: if span.max >= s.last { span.end } else { s.end },
                    },
                });
            }
        }
        shown_before.push(total);
        let shown = shown.ok_or(PlanError::NoShownFrames)?;

        let mut prefix_max = Vec::with_capacity(gops.len() + 1);
        let mut acc = i64::MIN;
        for gop in gops {
            prefix_max.push(acc);
            acc = acc.max(gop.max_pts);
        }
        prefix_max.push(acc);
        let mut suffix_min = vec![i64::MAX; gops.len() + 1];
        for i in (0..gops.len()).rev() {
            suffix_min[i] = suffix_min[i + 1].min(gops[i].min_pts);
        }

        // Hidden frames must sit before the first or after the last shown frame.
        for (i, gop) in gops.iter().enumerate() {
            for &pts in &gop.hidden_pts {
                let dropped = i == 0 && first_drops_leading && pts < gop.key_pts;
                if !dropped && pts >= shown.first && pts <= shown.last {
                    return Err(PlanError::HiddenFramesInside { pts });
                }
            }
        }

        Ok(Planner {
            stream,
            facts,
            first_drops_leading,
            shown,
            prefix_max,
            suffix_min,
            shown_before,
        })
    }

    fn gops(&self) -> &[Gop] {
        &self.stream.gops
    }

    /// Why GOP `g` cannot start a segment, if it cannot (ignoring minimum sizes).
    fn cut_problem(&self, g: usize) -> Option<&'static str> {
        if g == 0 || g >= self.gops().len() {
            return Some("not an inner keyframe");
        }
        if self.prefix_max[g] >= self.suffix_min[g] {
            return Some("frames before and after it interleave in display order");
        }
        None
    }

    fn owned_frames(&self, first: usize, end: usize) -> u64 {
        self.shown_before[end] - self.shown_before[first]
    }

    fn segment(
        &self,
        index: usize,
        first_gop: usize,
        end_gop: usize,
    ) -> Result<Segment, PlanError> {
        let gops = self.gops();
        let first = &gops[first_gop];
        let lead_in_gop = if index == 0 || self.facts.is_clean(first, first_gop)? {
            None
        } else {
            Some(first_gop - 1)
        };
        let decode_start = lead_in_gop.unwrap_or(first_gop);

        // Frames the lead-in GOP outputs (all display before the owned frames: valid cut).
        let mut lead_in_frames = 0;
        if let Some(l) = lead_in_gop {
            let gop = &gops[l];
            let dropped = if self.facts.is_clean(gop, l)? { 0 } else { gop.leading };
            lead_in_frames += gop.packets - dropped;
        }

        let mut trailing_frames = 0;
        let mut start_pts: Option<i64> = None;
        for (g, gop) in gops.iter().enumerate().take(end_gop).skip(first_gop) {
            let drops_leading = g == decode_start && g == 0 && self.first_drops_leading;
            if let Some(span) = shown_span(gop, drops_leading) {
                start_pts = Some(start_pts.map_or(span.min, |s| s.min(span.min)));
            }
            for &pts in &gop.hidden_pts {
                if drops_leading && pts < gop.key_pts {
                    continue; // dropped by the decoder, never output
                }
                if pts < self.shown.first {
                    lead_in_frames += 1;
                } else {
                    trailing_frames += 1;
                }
            }
        }
        let frames = self.owned_frames(first_gop, end_gop);
        let start_pts = match start_pts {
            Some(pts) if frames > 0 => pts,
            _ => {
                return Err(PlanError::InvalidCut {
                    gop: first_gop,
                    reason: "the segment would own no shown frame",
                });
            }
        };
        let first_packet = gops[decode_start].first_packet;
        let end_packet = gops.get(end_gop).map_or(self.stream.packets, |g| g.first_packet);
        Ok(Segment {
            index,
            first_gop,
            end_gop,
            lead_in_gop,
            first_packet,
            end_packet,
            owned_first_packet: gops[first_gop].first_packet,
            lead_in_frames,
            frames,
            trailing_frames,
            start_pts: if index == 0 { self.shown.first } else { start_pts },
            end_pts: self.shown.end, // fixed up by the caller
        })
    }

    fn plan_for_cuts(&self, cuts: &[usize]) -> Result<Plan, PlanError> {
        let n = self.gops().len();
        let mut bounds = Vec::with_capacity(cuts.len() + 2);
        bounds.push(0);
        for &c in cuts {
            if let Some(reason) = self.cut_problem(c) {
                return Err(PlanError::InvalidCut { gop: c, reason });
            }
            if c <= *bounds.last().unwrap_or(&0) {
                return Err(PlanError::InvalidCut { gop: c, reason: "cuts are not increasing" });
            }
            bounds.push(c);
        }
        bounds.push(n);
        let mut segments = Vec::with_capacity(bounds.len() - 1);
        for (i, w) in bounds.windows(2).enumerate() {
            segments.push(self.segment(i, w[0], w[1])?);
        }
        for i in 1..segments.len() {
            let next_start = segments[i].start_pts;
            segments[i - 1].end_pts = next_start;
        }
        let frames = segments.iter().map(|s| s.frames).sum();
        Ok(Plan { segments, frames, origin_pts: self.shown.first })
    }

    /// Cut at the first valid keyframe at or after each multiple of `target` (in stream ticks)
    /// from the first shown frame: the rule of ffmpeg's segment muxer, restricted to keyframes
    /// where a cut keeps every segment frame-exact.
    fn choose_cuts(&self, target: i64) -> Vec<usize> {
        let target = i128::from(target.max(1));
        let mut cuts = Vec::new();
        let mut last = 0usize;
        let total = self.shown_before[self.gops().len()];
        for g in 1..self.gops().len() {
            let due = i128::from(self.gops()[g].key_pts) - i128::from(self.shown.first)
                >= target * (cuts.len() as i128 + 1);
            if !due || self.cut_problem(g).is_some() {
                continue;
            }
            let before = self.owned_frames(last, g);
            let after = total - self.shown_before[g];
            if before == 0 || after == 0 {
                continue;
            }
            cuts.push(g);
            last = g;
        }
        cuts
    }
}

/// Plans segments of about `target` ticks (stream time base).
pub fn plan(stream: &Stream, facts: &KeyframeFacts, target: i64) -> Result<Plan, PlanError> {
    let planner = Planner::new(stream, facts)?;
    let cuts = planner.choose_cuts(target);
    planner.plan_for_cuts(&cuts)
}

/// Computes the segments for cuts chosen elsewhere (by ffmpeg's segment muxer), or explains
/// why they are not frame-exact.
pub fn plan_for_cuts(
    stream: &Stream,
    facts: &KeyframeFacts,
    cuts: &[usize],
) -> Result<Plan, PlanError> {
    Planner::new(stream, facts)?.plan_for_cuts(cuts)
}

/// Frames a standalone decode of a whole file (e.g. one segment) outputs, given its packets:
/// what `verify` compares with `lead_in_frames + frames + trailing_frames`.
pub fn decoded_frames(stream: &Stream, facts: &KeyframeFacts) -> Result<u64, PlanError> {
    if stream.before_first_key > 0 {
        return Err(PlanError::PacketsBeforeFirstKeyframe(stream.before_first_key));
    }
    let first = stream.gops.first().ok_or(PlanError::NoKeyframe)?;
    let dropped = if facts.is_clean(first, 0)? { 0 } else { first.leading };
    Ok(stream.packets - dropped)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(pts: i64, key: bool) -> Packet {
        Packet { pts, duration: 1, key, discard: false }
    }

    /// Packets from a compact description: each item is (pts, flags) where flags has 'K' for
    /// key and 'D' for discard.
    fn packets(items: &[(i64, &str)]) -> Vec<Packet> {
        items
            .iter()
            .map(|&(pts, f)| Packet {
                pts,
                duration: 1,
                key: f.contains('K'),
                discard: f.contains('D'),
            })
            .collect()
    }

    /// A closed-GOP stream with B-frames: I P B B per 4 frames, GOP of `gop` frames.
    fn closed_gop_bframes(frames: i64, gop: i64) -> Vec<Packet> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < frames {
            let len = gop.min(frames - start);
            out.push(pkt(start, true));
            let mut i = 1;
            while i < len {
                // P at i+2 then B i, B i+1 (if they fit), else plain P.
                if i + 2 < len {
                    out.push(pkt(start + i + 2, false));
                    out.push(pkt(start + i, false));
                    out.push(pkt(start + i + 1, false));
                    i += 3;
                } else {
                    out.push(pkt(start + i, false));
                    i += 1;
                }
            }
            start += len;
        }
        out
    }

    /// An open-GOP stream like x265's default: every keyframe after the first is followed in
    /// decode order by `leading` pictures displayed before it.
    fn open_gop(gops: i64, gop: i64, leading: i64) -> Vec<Packet> {
        let mut out = Vec::new();
        for g in 0..gops {
            let key = g * gop;
            out.push(pkt(key, true));
            if g > 0 {
                for l in (1..=leading).rev() {
                    out.push(pkt(key - l, false));
                }
            }
            let last = if g + 1 < gops { (g + 1) * gop - leading } else { (g + 1) * gop };
            for pts in key + 1..last {
                out.push(pkt(pts, false));
            }
        }
        out
    }

    fn assert_contiguous(plan: &Plan) {
        for w in plan.segments.windows(2) {
            assert_eq!(w[0].end_pts, w[1].start_pts, "segments must be contiguous");
            assert_eq!(w[0].end_gop, w[1].first_gop);
        }
        let sum: u64 = plan.segments.iter().map(|s| s.frames).sum();
        assert_eq!(sum, plan.frames);
    }

    #[test]
    fn closed_gop_with_bframes_cuts_at_keyframes_without_lead_in() {
        let stream = Stream::from_packets(closed_gop_bframes(100, 10));
        assert_eq!(stream.gops.len(), 10);
        assert!(stream.gops.iter().all(|g| g.leading == 0));
        let plan = plan(&stream, &KeyframeFacts::unknown(), 25).expect("plan");
        // First keyframe at or after 25, 50, 75: 30, 50, 80 (grid advances one step per cut).
        let starts: Vec<i64> = plan.segments.iter().map(|s| s.start_pts).collect();
        assert_eq!(starts, vec![0, 30, 50, 80]);
        assert!(plan.segments.iter().all(|s| s.lead_in_frames == 0 && s.lead_in_gop.is_none()));
        assert_eq!(plan.frames, 100);
        assert_eq!(plan.segments.last().map(|s| s.end_pts), Some(100));
        assert_contiguous(&plan);
        let layout = layout(&plan, stream.packets);
        assert_eq!(layout.muxers.len(), 1);
        assert_eq!(layout.muxers[0].cut_packets, vec![30, 50, 80]);
        assert_eq!(layout.muxers[0].pieces, vec![Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn open_gop_needs_facts_then_gets_a_lead_in_from_the_previous_gop() {
        let stream = Stream::from_packets(open_gop(4, 10, 3));
        assert_eq!(stream.keyframes_with_leading_pictures(), vec![10, 20, 30]);
        // Without knowing whether the keyframes are IDR, the plan cannot be exact.
        assert_eq!(
            plan(&stream, &KeyframeFacts::unknown(), 10),
            Err(PlanError::KeyframeTypeUnknown { gop: 1, pts: 10 })
        );
        // CRA keyframes (none clean): every segment but the first decodes the previous GOP.
        let plan = plan(&stream, &KeyframeFacts::none_clean(), 10).expect("plan");
        assert_eq!(plan.segments.len(), 4);
        assert_eq!(plan.frames, 40);
        assert_contiguous(&plan);
        let s0 = &plan.segments[0];
        assert_eq!((s0.lead_in_frames, s0.frames, s0.start_pts, s0.end_pts), (0, 7, 0, 7));
        let s1 = &plan.segments[1];
        // Lead-in: GOP 0 is the stream's first GOP, no leading pictures: its 7 packets.
        assert_eq!(s1.lead_in_gop, Some(0));
        assert_eq!((s1.lead_in_frames, s1.frames, s1.start_pts, s1.end_pts), (7, 10, 7, 17));
        assert_eq!((s1.first_packet, s1.end_packet), (0, 17));
        assert_eq!(s1.owned_first_packet, 7, "the owned GOP starts after the lead-in");
        let s2 = &plan.segments[2];
        // Lead-in GOP 1 starts at a CRA: its 3 leading pictures are dropped by the decoder.
        assert_eq!((s2.lead_in_frames, s2.frames), (10 - 3, 10));
        assert_eq!((s2.first_packet, s2.end_packet), (7, 27));
        assert_eq!(s2.owned_first_packet, 17);
        let s3 = &plan.segments[3];
        assert_eq!((s3.lead_in_frames, s3.frames, s3.end_pts), (7, 13, 40));

        let layout = layout(&plan, stream.packets);
        assert_eq!(layout.muxers.len(), 2);
        // Even segments: 0 = [0,7), 2 = [7,27), then [27,40) is discarded.
        assert_eq!(layout.muxers[0].cut_packets, vec![7, 27]);
        assert_eq!(layout.muxers[0].pieces, vec![Some(0), Some(2), None]);
        // Odd segments: 1 = [0,17), 3 = [17,40).
        assert_eq!(layout.muxers[1].cut_packets, vec![17]);
        assert_eq!(layout.muxers[1].pieces, vec![Some(1), Some(3)]);
    }

    #[test]
    fn idr_keyframes_with_leading_pictures_are_clean_cuts() {
        let stream = Stream::from_packets(open_gop(3, 10, 2));
        let facts = KeyframeFacts::clean([10, 20]);
        let plan = plan(&stream, &facts, 10).expect("plan");
        assert!(!plan.has_lead_in_packets());
        let counts: Vec<(u64, u64)> =
            plan.segments.iter().map(|s| (s.lead_in_frames, s.frames)).collect();
        assert_eq!(counts, vec![(0, 8), (0, 10), (0, 12)]);
        // Segment 1 owns its keyframe's decodable leading pictures (pts 8 and 9).
        assert_eq!(plan.segments[1].start_pts, 8);
        assert_contiguous(&plan);
    }

    #[test]
    fn first_keyframe_with_leading_pictures_drops_them_in_the_source_too() {
        // A stream cut out of an open-GOP stream: starts on a CRA with 2 RASL pictures.
        let stream = Stream::from_packets(packets(&[
            (10, "K"),
            (8, ""),
            (9, ""),
            (12, ""),
            (11, ""),
            (13, ""),
        ]));
        let plan = plan(&stream, &KeyframeFacts::none_clean(), 100).expect("plan");
        assert_eq!(plan.frames, 4);
        assert_eq!(plan.segments[0].start_pts, 10);
        assert_eq!(plan.segments[0].lead_in_frames, 0);
        assert_eq!(decoded_frames(&stream, &KeyframeFacts::none_clean()), Ok(4));
        assert_eq!(decoded_frames(&stream, &KeyframeFacts::clean([10])), Ok(6));
    }

    #[test]
    fn edit_list_hidden_frames_become_lead_in_of_the_first_segment() {
        // `-ss` with stream copy: the file starts at the keyframe before the trim point and the
        // edit list hides the frames before it (pts < 0 after ffmpeg applies the edit list).
        let mut items = Vec::new();
        for pts in -5..15 {
            let key = pts == -5 || pts == 5;
            items.push(Packet { pts, duration: 1, key, discard: pts < 0 });
        }
        let stream = Stream::from_packets(items);
        let plan = plan(&stream, &KeyframeFacts::unknown(), 5).expect("plan");
        assert_eq!(plan.frames, 15);
        assert_eq!(plan.origin_pts, 0);
        let s0 = &plan.segments[0];
        assert_eq!((s0.lead_in_frames, s0.frames, s0.start_pts, s0.end_pts), (5, 5, 0, 5));
        let s1 = &plan.segments[1];
        assert_eq!((s1.lead_in_frames, s1.frames, s1.start_pts, s1.end_pts), (0, 10, 5, 15));
        assert!(!plan.has_lead_in_packets());
    }

    #[test]
    fn edit_list_hiding_whole_gops_never_makes_an_empty_segment() {
        // Keyframes every 4 frames, the edit list hides the first 9 frames.
        let items: Vec<Packet> = (0..20)
            .map(|pts| Packet { pts, duration: 1, key: pts % 4 == 0, discard: pts < 9 })
            .collect();
        let stream = Stream::from_packets(items);
        let plan = plan(&stream, &KeyframeFacts::unknown(), 4).expect("plan");
        assert!(plan.segments.iter().all(|s| s.frames > 0));
        assert_eq!(plan.frames, 11);
        let s0 = &plan.segments[0];
        // First cut at the first keyframe at least 4 after the first shown frame (9): 16.
        assert_eq!((s0.first_gop, s0.end_gop), (0, 4));
        assert_eq!((s0.lead_in_frames, s0.frames), (9, 7));
        assert_contiguous(&plan);
    }

    #[test]
    fn edit_list_hiding_the_end_gives_trailing_frames() {
        let items: Vec<Packet> = (0..10)
            .map(|pts| Packet { pts, duration: 1, key: pts == 0, discard: pts >= 8 })
            .collect();
        let stream = Stream::from_packets(items);
        let plan = plan(&stream, &KeyframeFacts::unknown(), 100).expect("plan");
        let s0 = &plan.segments[0];
        assert_eq!((s0.lead_in_frames, s0.frames, s0.trailing_frames), (0, 8, 2));
        assert_eq!(s0.end_pts, 8);
    }

    #[test]
    fn edit_list_hiding_the_middle_is_refused() {
        let items: Vec<Packet> = (0..10)
            .map(|pts| Packet { pts, duration: 1, key: pts == 0, discard: pts == 5 })
            .collect();
        let stream = Stream::from_packets(items);
        assert_eq!(
            plan(&stream, &KeyframeFacts::unknown(), 100),
            Err(PlanError::HiddenFramesInside { pts: 5 })
        );
    }

    #[test]
    fn variable_frame_rate_uses_timestamps_not_frame_counts() {
        // Frames 0..10 at 1 tick, then 10 frames 5 ticks apart; keyframe every 5 frames.
        let mut pts = 0;
        let mut items = Vec::new();
        for i in 0..20 {
            let duration = if i < 10 { 1 } else { 5 };
            items.push(Packet { pts, duration, key: i % 5 == 0, discard: false });
            pts += duration;
        }
        let stream = Stream::from_packets(items);
        let plan = plan(&stream, &KeyframeFacts::unknown(), 20).expect("plan");
        // Keyframes at pts 0, 5, 10, 35: the first at or after 20 is 35 (frame 15).
        let starts: Vec<i64> = plan.segments.iter().map(|s| s.start_pts).collect();
        assert_eq!(starts, vec![0, 35]);
        assert_eq!(plan.segments[0].frames, 15);
        assert_eq!(plan.segments[1].frames, 5);
        assert_eq!(plan.segments[1].end_pts, 60);
    }

    #[test]
    fn single_keyframe_is_one_segment() {
        let items: Vec<Packet> = (0..50).map(|pts| pkt(pts, pts == 0)).collect();
        let stream = Stream::from_packets(items);
        let plan = plan(&stream, &KeyframeFacts::unknown(), 10).expect("plan");
        assert_eq!(plan.segments.len(), 1);
        assert_eq!(plan.segments[0].frames, 50);
        assert_eq!((plan.segments[0].first_packet, plan.segments[0].end_packet), (0, 50));
    }

    #[test]
    fn gop_longer_than_target_is_its_own_segment() {
        // GOPs of 30 frames, target 10: every keyframe is a cut.
        let stream = Stream::from_packets(closed_gop_bframes(90, 30));
        let plan = plan(&stream, &KeyframeFacts::unknown(), 10).expect("plan");
        let starts: Vec<i64> = plan.segments.iter().map(|s| s.start_pts).collect();
        assert_eq!(starts, vec![0, 30, 60]);
        assert!(plan.segments.iter().all(|s| s.frames == 30));
    }

    #[test]
    fn interleaved_display_order_is_not_a_cut_point() {
        // The packet after keyframe 2 (decode order) is displayed before the previous GOP ends,
        // and it is not a leading picture of a clean keyframe either: cutting there would move
        // a frame across segments.
        let stream = Stream::from_packets(packets(&[
            (0, "K"),
            (3, ""),
            (1, ""),
            (4, "K"),
            (2, ""),
            (5, ""),
            (8, "K"),
            (9, ""),
        ]));
        let plan = plan(&stream, &KeyframeFacts::none_clean(), 1).expect("plan");
        assert_eq!(plan.cuts(), vec![2]);
        assert_eq!(
            plan_for_cuts(&stream, &KeyframeFacts::none_clean(), &[1]),
            Err(PlanError::InvalidCut {
                gop: 1,
                reason: "frames before and after it interleave in display order"
            })
        );
    }

    #[test]
    fn cuts_chosen_by_ffmpeg_are_checked() {
        let stream = Stream::from_packets(closed_gop_bframes(40, 10));
        let plan = plan_for_cuts(&stream, &KeyframeFacts::unknown(), &[1, 3]).expect("plan");
        assert_eq!(plan.segments.len(), 3);
        assert_eq!(plan.segments[1].frames, 20);
        assert!(matches!(
            plan_for_cuts(&stream, &KeyframeFacts::unknown(), &[3, 1]),
            Err(PlanError::InvalidCut { .. })
        ));
        let open = Stream::from_packets(open_gop(3, 10, 2));
        assert!(matches!(
            plan_for_cuts(&open, &KeyframeFacts::unknown(), &[1]),
            Err(PlanError::KeyframeTypeUnknown { .. })
        ));
    }

    #[test]
    fn degenerate_streams_are_errors_not_panics() {
        assert_eq!(
            plan(&Stream::from_packets([]), &KeyframeFacts::unknown(), 10),
            Err(PlanError::NoKeyframe)
        );
        let no_key = Stream::from_packets([pkt(0, false), pkt(1, false)]);
        assert_eq!(
            plan(&no_key, &KeyframeFacts::unknown(), 10),
            Err(PlanError::PacketsBeforeFirstKeyframe(2))
        );
        let all_hidden =
            Stream::from_packets([Packet { pts: 0, duration: 1, key: true, discard: true }]);
        assert_eq!(plan(&all_hidden, &KeyframeFacts::unknown(), 10), Err(PlanError::NoShownFrames));
    }

    #[test]
    fn b_pyramid_gops_are_summarized_by_display_range() {
        // x264 b-pyramid: I0 P8 B4 b2 b1 b3 b6 b5 b7, then the next GOP.
        let stream = Stream::from_packets(packets(&[
            (0, "K"),
            (8, ""),
            (4, ""),
            (2, ""),
            (1, ""),
            (3, ""),
            (6, ""),
            (5, ""),
            (7, ""),
            (9, "K"),
            (10, ""),
        ]));
        assert_eq!(stream.gops.len(), 2);
        assert_eq!(
            (stream.gops[0].min_pts, stream.gops[0].max_pts, stream.gops[0].leading),
            (0, 8, 0)
        );
        let plan = plan(&stream, &KeyframeFacts::unknown(), 5).expect("plan");
        assert_eq!(plan.cuts(), vec![1]);
        assert_eq!(plan.segments[0].frames, 9);
        assert_eq!((plan.segments[1].start_pts, plan.segments[1].end_pts), (9, 11));
    }
}
