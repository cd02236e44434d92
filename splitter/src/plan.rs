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
//! * With *context frames* N (for processing that looks at neighbouring frames), a segment's
//!   file also holds whole GOPs before and after the ones it owns, as few as give a standalone
//!   decode at least N of the source's frames before and after the owned ones (fewer only at
//!   the ends of the video). They are counted in `lead_in_frames` and `trailing_frames`;
//!   ownership does not depend on N.
//!
//! Memory is O(GOPs), not O(packets): packets are folded into [`Gop`] summaries as they are
//! read, so a very long input plans in a few megabytes.

use std::collections::BTreeSet;
use std::fmt;

mod gop;
mod layout;
#[cfg(test)]
mod tests;

pub use gop::{Gop, GopBuilder, Packet, Span, Stream};
pub use layout::{Layout, MuxerLayout, layout};

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
    /// First GOP of the file when it starts before the owned ones (a lead-in for an unclean
    /// keyframe, or context frames): GOPs `lead_in_gop..first_gop` are decoded and their
    /// frames dropped by the worker.
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
    /// Frames a standalone decode outputs after the owned frames: trailing context GOPs (the
    /// file then ends after `end_gop`), and frames hidden by an edit list that trims the end.
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

    /// Whether some segment files share packets (lead-ins or context frames): they cannot all
    /// be written by one segment muxer.
    pub fn files_overlap(&self) -> bool {
        let mut end = 0;
        for s in &self.segments {
            if s.first_packet < end {
                return true;
            }
            end = end.max(s.end_packet);
        }
        false
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
    /// Context frames wanted before and after each segment's owned frames.
    context: u64,
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
    fn new(
        stream: &'a Stream,
        facts: &'a KeyframeFacts,
        context: u64,
    ) -> Result<Planner<'a>, PlanError> {
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
            context,
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

    /// Frames a decoder that starts at GOP `g` outputs for the GOP (its leading pictures are
    /// dropped unless the keyframe is clean), and how many of them a whole-source decode shows.
    fn decoded_from(&self, g: usize) -> Result<(u64, u64), PlanError> {
        let gop = &self.gops()[g];
        let drops_leading = !self.facts.is_clean(gop, g)?;
        let output = gop.packets - if drops_leading { gop.leading } else { 0 };
        Ok((output, shown_span(gop, drops_leading).map_or(0, |s| s.count)))
    }

    /// The GOP where the file of a segment owning GOPs from `first_gop` starts: `base` (the
    /// owned keyframe, or the GOP before it for a lead-in) or an earlier one, the latest from
    /// which a decoder outputs `context` of the source's frames before the owned ones (or all
    /// the source has there).
    ///
    /// The result never decreases as `first_gop` grows, so files start in decode order.
    fn context_start(&self, base: usize, first_gop: usize) -> Result<usize, PlanError> {
        // A decode from GOP 0 outputs every frame the source shows before `first_gop`.
        let wanted = self.context.min(self.shown_before[first_gop]);
        let mut g = base;
        loop {
            let before = if g < first_gop {
                self.decoded_from(g)?.1 + self.shown_before[first_gop] - self.shown_before[g + 1]
            } else {
                0
            };
            if before >= wanted || g == 0 {
                return Ok(g);
            }
            g -= 1;
        }
    }

    /// The GOP where the file of a segment owning GOPs up to `end_gop` ends (exclusive): the
    /// first that gives `context` shown frames after the owned ones, or the end of the stream.
    fn context_end(&self, end_gop: usize) -> usize {
        let n = self.gops().len();
        let mut end = end_gop;
        while end < n
            && self.shown_before[end] - self.shown_before[end_gop] < self.context
            && self.shown_before[n] > self.shown_before[end]
        {
            end += 1;
        }
        end
    }

    fn segment(
        &self,
        index: usize,
        first_gop: usize,
        end_gop: usize,
    ) -> Result<Segment, PlanError> {
        let gops = self.gops();
        let first = &gops[first_gop];
        let base = if index == 0 || self.facts.is_clean(first, first_gop)? {
            first_gop
        } else {
            first_gop - 1
        };
        let decode_start =
            if index == 0 { first_gop } else { self.context_start(base, first_gop)? };
        let lead_in_gop = (decode_start < first_gop).then_some(decode_start);
        let file_end = self.context_end(end_gop);

        // Frames the GOPs before the owned ones output (all display before the owned frames:
        // `first_gop` is a valid cut).
        let mut lead_in_frames = 0;
        if let Some(l) = lead_in_gop {
            lead_in_frames += self.decoded_from(l)?.0;
            lead_in_frames += gops[l + 1..first_gop].iter().map(|g| g.packets).sum::<u64>();
        }
        // The GOPs after the owned ones are decoded with their references: every packet is
        // output, after the owned frames (`end_gop` is a valid cut).
        let mut trailing_frames: u64 = gops[end_gop..file_end].iter().map(|g| g.packets).sum();

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
        let end_packet = gops.get(file_end).map_or(self.stream.packets, |g| g.first_packet);
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
    plan_with_context(stream, facts, target, 0)
}

/// Plans segments of about `target` ticks whose files also carry at least `context` frames
/// before and after the owned ones (whole GOPs; fewer only at the ends of the video). The
/// owned frames and the cuts are those of [`plan`]: `context` only widens the files.
pub fn plan_with_context(
    stream: &Stream,
    facts: &KeyframeFacts,
    target: i64,
    context: u64,
) -> Result<Plan, PlanError> {
    let planner = Planner::new(stream, facts, context)?;
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
    Planner::new(stream, facts, 0)?.plan_for_cuts(cuts)
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
