use super::*;
use std::collections::BTreeSet;

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
    let stream =
        Stream::from_packets(packets(&[(10, "K"), (8, ""), (9, ""), (12, ""), (11, ""), (13, "")]));
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
    let items: Vec<Packet> =
        (0..10).map(|pts| Packet { pts, duration: 1, key: pts == 0, discard: pts >= 8 }).collect();
    let stream = Stream::from_packets(items);
    let plan = plan(&stream, &KeyframeFacts::unknown(), 100).expect("plan");
    let s0 = &plan.segments[0];
    assert_eq!((s0.lead_in_frames, s0.frames, s0.trailing_frames), (0, 8, 2));
    assert_eq!(s0.end_pts, 8);
}

#[test]
fn edit_list_hiding_the_middle_is_refused() {
    let items: Vec<Packet> =
        (0..10).map(|pts| Packet { pts, duration: 1, key: pts == 0, discard: pts == 5 }).collect();
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
    assert_eq!((stream.gops[0].min_pts, stream.gops[0].max_pts, stream.gops[0].leading), (0, 8, 0));
    let plan = plan(&stream, &KeyframeFacts::unknown(), 5).expect("plan");
    assert_eq!(plan.cuts(), vec![1]);
    assert_eq!(plan.segments[0].frames, 9);
    assert_eq!((plan.segments[1].start_pts, plan.segments[1].end_pts), (9, 11));
}

// ---------------------------------------------------------------------------------------
// Context frames

/// What a decoder outputs for the packets of one segment file, in display order (pts): every
/// packet, except the first GOP's leading pictures when its keyframe is not clean.
fn decode_file(all: &[Packet], s: &Segment, facts: &KeyframeFacts) -> Vec<i64> {
    let file = &all[s.first_packet as usize..s.end_packet as usize];
    let key = file[0];
    assert!(key.key, "segment {} file starts on a non-keyframe", s.index);
    let clean = match &facts.clean_keyframes {
        Some(set) => set.contains(&key.pts),
        None => true,
    };
    let next_key = file.iter().skip(1).position(|p| p.key).map_or(file.len(), |i| i + 1);
    let mut out: Vec<i64> = file
        .iter()
        .enumerate()
        .filter(|&(i, p)| clean || i >= next_key || p.pts >= key.pts)
        .map(|(_, p)| p.pts)
        .collect();
    out.sort_unstable();
    out
}

/// What a whole-source decode shows, in display order.
fn decode_source(all: &[Packet], facts: &KeyframeFacts) -> Vec<i64> {
    let whole = Segment {
        index: 0,
        first_gop: 0,
        end_gop: 0,
        lead_in_gop: None,
        first_packet: 0,
        end_packet: all.len() as u64,
        owned_first_packet: 0,
        lead_in_frames: 0,
        frames: 0,
        trailing_frames: 0,
        start_pts: 0,
        end_pts: 0,
    };
    let hidden: BTreeSet<i64> = all.iter().filter(|p| p.discard).map(|p| p.pts).collect();
    decode_file(all, &whole, facts).into_iter().filter(|p| !hidden.contains(p)).collect()
}

/// Checks a plan with `context` frames against a simulated decode of every segment file: the
/// file decodes to `lead_in + frames + trailing` frames, dropping lead-in and trailing gives
/// exactly the source's frames in order, every inner side has at least `context` of the
/// source's frames, and one GOP less on either side would not.
fn assert_context_plan(all: &[Packet], facts: &KeyframeFacts, plan: &Plan, context: u64) {
    let stream = Stream::from_packets(all.iter().copied());
    let source = decode_source(all, facts);
    let shown: BTreeSet<i64> = source.iter().copied().collect();
    let mut joined = Vec::new();
    let last = plan.segments.len() - 1;
    for s in &plan.segments {
        let decoded = decode_file(all, s, facts);
        let (lead, owned) = (s.lead_in_frames as usize, s.frames as usize);
        assert_eq!(
            decoded.len() as u64,
            s.lead_in_frames + s.frames + s.trailing_frames,
            "segment {}: {s:?}",
            s.index
        );
        joined.extend_from_slice(&decoded[lead..lead + owned]);
        // The planner's own standalone count (what `verify` uses) agrees.
        let file = Stream::from_packets(
            all[s.first_packet as usize..s.end_packet as usize].iter().copied(),
        );
        assert_eq!(decoded_frames(&file, facts), Ok(decoded.len() as u64));
        let shown_before = decoded[..lead].iter().filter(|p| shown.contains(p)).count() as u64;
        let shown_after = decoded[lead + owned..].iter().filter(|p| shown.contains(p)).count();
        let source_before = source.iter().filter(|&&p| p < s.start_pts).count() as u64;
        let source_after = source.iter().filter(|&&p| p >= s.end_pts).count() as u64;
        // At least `context` frames, or all there are in the file's reach.
        if s.index == 0 {
            assert_eq!(s.lead_in_gop, None);
            assert_eq!(s.first_packet, 0);
        } else {
            assert!(
                shown_before >= context.min(source_before),
                "segment {}: {shown_before} context frames before, {context} wanted",
                s.index
            );
        }
        if s.index == last {
            assert_eq!(s.end_packet, stream.packets);
            assert_eq!(s.end_gop, stream.gops.len());
        } else {
            assert!(
                shown_after as u64 >= context.min(source_after),
                "segment {}: {shown_after} context frames after, {context} wanted",
                s.index
            );
        }
        // Only as wide as needed: one GOP less on either side is not enough (a file must start
        // at the GOP before an owned keyframe that is not clean, a lead-in).
        let first = &stream.gops[s.first_gop];
        let unclean = first.leading > 0
            && facts.clean_keyframes.as_ref().is_some_and(|c| !c.contains(&first.key_pts));
        let base = if unclean { s.first_gop - 1 } else { s.first_gop };
        if let Some(l) = s.lead_in_gop
            && l < base
        {
            let narrower = Segment { first_packet: stream.gops[l + 1].first_packet, ..s.clone() };
            let before = decode_file(all, &narrower, facts)
                .into_iter()
                .filter(|&p| p < s.start_pts && shown.contains(&p))
                .count() as u64;
            assert!(before < context, "segment {}: lead context wider than needed", s.index);
        }
        let end = stream.gops.iter().position(|g| g.first_packet == s.end_packet);
        let end = end.unwrap_or(stream.gops.len());
        if end > s.end_gop {
            let fewer: u64 = stream.gops[s.end_gop..end - 1]
                .iter()
                .filter_map(|g| g.shown)
                .map(|g| g.count)
                .sum();
            assert!(fewer < context, "segment {}: trailing context wider than needed", s.index);
        }
    }
    assert_eq!(joined, source, "segments without their context give the source's frames");
    assert_eq!(plan.frames, source.len() as u64);
}

/// Checks a layout: each muxer's pieces are consecutive, its segments do not overlap, every
/// segment is written exactly once with its planned packets, and there are as many muxers as
/// the most files that share a packet.
fn assert_layout(plan: &Plan, total: u64) -> Layout {
    let layout = layout(plan, total);
    let mut seen = vec![0; plan.segments.len()];
    for m in &layout.muxers {
        let mut points = vec![0];
        points.extend_from_slice(&m.cut_packets);
        points.push(total);
        assert!(points.windows(2).all(|w| w[0] < w[1]), "pieces in order: {m:?}");
        assert_eq!(m.pieces.len(), points.len() - 1);
        for (w, piece) in points.windows(2).zip(&m.pieces) {
            if let Some(i) = piece {
                let s = &plan.segments[*i];
                assert_eq!((s.first_packet, s.end_packet), (w[0], w[1]), "segment {i}");
                seen[*i] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "every segment written once: {seen:?}");
    let depth = (0..total)
        .map(|p| plan.segments.iter().filter(|s| s.first_packet <= p && p < s.end_packet).count())
        .max()
        .unwrap_or(0);
    assert_eq!(layout.muxers.len(), depth.max(1), "as many muxers as overlapping files");
    layout
}

#[test]
fn context_zero_is_the_plan_without_context() {
    let streams: Vec<(Vec<Packet>, KeyframeFacts, i64)> = vec![
        (closed_gop_bframes(100, 10), KeyframeFacts::unknown(), 25),
        (open_gop(6, 10, 3), KeyframeFacts::none_clean(), 10),
        (open_gop(6, 10, 2), KeyframeFacts::clean([20, 40]), 10),
    ];
    for (packets, facts, target) in streams {
        let stream = Stream::from_packets(packets.iter().copied());
        let with = plan_with_context(&stream, &facts, target, 0).expect("plan");
        assert_eq!(with, plan(&stream, &facts, target).expect("plan"));
        // Files are the owned GOPs (plus a one-GOP lead-in for unclean keyframes only).
        for s in &with.segments {
            assert_eq!(
                s.end_packet,
                stream.gops.get(s.end_gop).map_or(stream.packets, |g| g.first_packet)
            );
            assert!(s.lead_in_gop.is_none() || s.lead_in_gop == Some(s.first_gop - 1));
        }
        assert_context_plan(&packets, &facts, &with, 0);
        assert_layout(&with, stream.packets);
    }
}

#[test]
fn context_widens_files_by_whole_gops_and_keeps_ownership() {
    // Closed GOPs of 10 frames with B-frames, a segment per GOP.
    let packets = closed_gop_bframes(100, 10);
    let stream = Stream::from_packets(packets.iter().copied());
    let facts = KeyframeFacts::unknown();
    let bare = plan(&stream, &facts, 10).expect("plan");
    assert_eq!(bare.segments.len(), 10);
    assert!(!bare.files_overlap());
    assert_eq!(assert_layout(&bare, stream.packets).muxers.len(), 1);
    for context in [1, 3, 8, 10, 11, 25, 1000] {
        let plan = plan_with_context(&stream, &facts, 10, context).expect("plan");
        assert_eq!(plan.frames, bare.frames);
        for (s, b) in plan.segments.iter().zip(&bare.segments) {
            let owned = |s: &Segment| {
                (
                    s.index,
                    s.first_gop,
                    s.end_gop,
                    s.owned_first_packet,
                    s.frames,
                    s.start_pts,
                    s.end_pts,
                )
            };
            assert_eq!(owned(s), owned(b), "context {context} changed what a segment owns");
        }
        assert_contiguous(&plan);
        assert_context_plan(&packets, &facts, &plan, context);
        assert!(plan.files_overlap());
        // Whole GOPs of 10 frames: ceil(context / 10) each side, fewer at the ends.
        let gops = context.div_ceil(10) as usize;
        for s in &plan.segments {
            let want_before = gops.min(s.first_gop) as u64 * 10;
            let want_after = gops.min(10 - s.end_gop) as u64 * 10;
            assert_eq!((s.lead_in_frames, s.trailing_frames), (want_before, want_after), "{s:?}");
        }
        let layout = assert_layout(&plan, stream.packets);
        // A file spans 2 * gops + 1 segments (capped by the video): that many muxers.
        assert_eq!(layout.muxers.len(), (2 * gops + 1).min(10), "context {context}");
    }
    let first = plan_with_context(&stream, &facts, 10, 8).expect("plan");
    assert_eq!((first.segments[0].lead_in_frames, first.segments[0].trailing_frames), (0, 10));
    let last = &first.segments[9];
    assert_eq!((last.lead_in_frames, last.trailing_frames), (10, 0));
    assert_eq!((last.first_packet, last.end_packet), (80, 100));
}

#[test]
fn one_second_segments_with_more_context_than_a_gop_need_several_muxers() {
    // 25 fps, a keyframe every 12 frames, 1-second segments (target 25 ticks), 30 frames of
    // context: each file reaches over more than one neighbouring segment.
    let packets = closed_gop_bframes(250, 12);
    let stream = Stream::from_packets(packets.iter().copied());
    let facts = KeyframeFacts::unknown();
    let plan = plan_with_context(&stream, &facts, 25, 30).expect("plan");
    assert!(plan.segments.len() >= 8);
    assert_context_plan(&packets, &facts, &plan, 30);
    let inner = &plan.segments[4];
    assert!(inner.lead_in_frames >= 30 && inner.trailing_frames >= 30, "{inner:?}");
    let layout = assert_layout(&plan, stream.packets);
    assert!(layout.muxers.len() >= 3, "{} muxers", layout.muxers.len());
    // No muxer writes two files that overlap (checked by assert_layout); each writes
    // consecutive pieces of the stream.
    for m in &layout.muxers {
        assert!(m.pieces.iter().any(Option::is_some));
    }
}

#[test]
fn open_gop_context_starts_where_the_decoder_outputs_enough_frames() {
    // CRA keyframes with 3 RASL pictures, GOPs of 10: a decoder starting at a CRA outputs 7
    // of its GOP's frames.
    let packets = open_gop(6, 10, 3);
    let stream = Stream::from_packets(packets.iter().copied());
    let facts = KeyframeFacts::none_clean();
    let plan = plan_with_context(&stream, &facts, 10, 8).expect("plan");
    assert_eq!(plan.segments.len(), 6);
    assert_context_plan(&packets, &facts, &plan, 8);
    let s = &plan.segments;
    // Segment 1 owns GOP 1; before it only GOP 0 (7 frames): all of it.
    assert_eq!((s[1].lead_in_gop, s[1].lead_in_frames), (Some(0), 7));
    // Segment 2 owns GOP 2 (CRA): GOP 1 decoded from its CRA gives 7 < 8 frames, so GOP 0 too.
    assert_eq!((s[2].lead_in_gop, s[2].lead_in_frames), (Some(0), 7 + 10));
    // Segment 3: from GOP 1's CRA, 7 + 10 frames.
    assert_eq!((s[3].lead_in_gop, s[3].lead_in_frames), (Some(1), 7 + 10));
    // After: the next GOP, every frame (its RASL pictures have their references).
    assert_eq!(s[1].trailing_frames, 10);
    assert_eq!((s[5].trailing_frames, s[5].end_packet), (0, stream.packets));
    assert_layout(&plan, stream.packets);

    // IDR keyframes (RADL leading pictures): the decoder outputs all of a GOP.
    let idr = KeyframeFacts::clean([10, 20, 30, 40, 50]);
    let plan = plan_with_context(&stream, &idr, 10, 8).expect("plan");
    assert_context_plan(&packets, &idr, &plan, 8);
    assert_eq!((plan.segments[3].lead_in_gop, plan.segments[3].lead_in_frames), (Some(2), 10));
}

#[test]
fn context_counts_frames_an_edit_list_hides() {
    // The edit list hides the 5 frames before pts 0 (in GOP 0) and the last 3 frames.
    let items: Vec<Packet> = (-5..40)
        .map(|pts| Packet {
            pts,
            duration: 1,
            key: (pts + 5) % 5 == 0,
            discard: !(0..37).contains(&pts),
        })
        .collect();
    let facts = KeyframeFacts::unknown();
    let stream = Stream::from_packets(items.iter().copied());
    for context in [0, 3, 6, 12] {
        let plan = plan_with_context(&stream, &facts, 5, context).expect("plan");
        assert_context_plan(&items, &facts, &plan, context);
        assert_eq!(plan.frames, 37);
        assert_layout(&plan, stream.packets);
    }
    let plan = plan_with_context(&stream, &facts, 5, 6).expect("plan");
    // Segment 0 owns GOPs 0 and 1 (pts -5..-1, hidden, and 0..4); its file shows the 5
    // hidden frames first, as without context.
    let s0 = &plan.segments[0];
    assert_eq!((s0.end_gop, s0.lead_in_frames), (2, 5));
    // Segment 1 (from pts 5): only 5 of the source's frames are before it; GOP 0's hidden
    // frames are no context.
    let s1 = &plan.segments[1];
    assert_eq!((s1.start_pts, s1.lead_in_gop, s1.lead_in_frames), (5, Some(1), 5));
    // Segment 2 (from pts 10): two GOPs give 10 frames, one would give 5.
    let s2 = &plan.segments[2];
    assert_eq!((s2.start_pts, s2.lead_in_gop, s2.lead_in_frames), (10, Some(1), 10));
    // The last segment's file never carries GOPs that only hold hidden frames as context,
    // and its hidden frames stay trailing frames.
    let last = plan.segments.last().expect("last");
    assert_eq!(last.trailing_frames, 3);
}

#[test]
fn context_plans_hold_for_many_streams() {
    let mut cases: Vec<(Vec<Packet>, KeyframeFacts)> = vec![
        (closed_gop_bframes(97, 7), KeyframeFacts::unknown()),
        (closed_gop_bframes(200, 30), KeyframeFacts::unknown()),
        (open_gop(9, 8, 2), KeyframeFacts::none_clean()),
        (open_gop(9, 8, 2), KeyframeFacts::clean([16, 40, 56])),
    ];
    // Irregular GOP lengths.
    let mut irregular = Vec::new();
    let mut pts = 0;
    for len in [3, 17, 1, 9, 9, 2, 30, 4, 5, 11, 1, 1, 6] {
        for i in 0..len {
            irregular.push(pkt(pts + i, i == 0));
        }
        pts += len;
    }
    cases.push((irregular, KeyframeFacts::unknown()));
    for (packets, facts) in &cases {
        let stream = Stream::from_packets(packets.iter().copied());
        for target in [1, 5, 13, 40] {
            let bare = plan(&stream, facts, target).expect("plan");
            for context in [0, 1, 2, 5, 8, 16, 33, 500] {
                let plan = plan_with_context(&stream, facts, target, context).expect("plan");
                assert_eq!(plan.cuts(), bare.cuts());
                assert_contiguous(&plan);
                assert_context_plan(packets, facts, &plan, context);
                assert_layout(&plan, stream.packets);
                // Files start in decode order (the read-back reads the source's list once).
                assert!(plan.segments.windows(2).all(|w| w[0].first_packet <= w[1].first_packet));
            }
        }
    }
}

#[test]
fn context_plans_hold_for_random_streams() {
    // Pseudo-random GOP lengths, leading pictures (open GOPs, some keyframes clean), edit
    // lists hiding either end.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for _ in 0..300 {
        let lens: Vec<i64> = (0..1 + next(12)).map(|_| 1 + next(15) as i64).collect();
        let total: i64 = lens.iter().sum();
        let leading = next(4) as i64;
        let hide_start = if next(3) == 0 { next(5) as i64 } else { 0 };
        let hide_end = if next(3) == 0 { next(4) as i64 } else { 0 };
        let mut items = Vec::new();
        let mut base = 0;
        for (g, &len) in lens.iter().enumerate() {
            let lead = if g > 0 { leading.min(len - 1) } else { 0 };
            let key = base + lead;
            let mut push = |pts: i64, key: bool| {
                let discard = pts < hide_start || pts >= total - hide_end;
                items.push(Packet { pts, duration: 1, key, discard });
            };
            push(key, true);
            for pts in base..key {
                push(pts, false);
            }
            for pts in key + 1..base + len {
                push(pts, false);
            }
            base += len;
        }
        let keys: Vec<i64> = items.iter().filter(|p| p.key).map(|p| p.pts).collect();
        let facts = if next(2) == 0 {
            KeyframeFacts::none_clean()
        } else {
            KeyframeFacts::clean(keys.iter().copied().filter(|k| k % 2 == 0))
        };
        let stream = Stream::from_packets(items.iter().copied());
        let target = 1 + next(30) as i64;
        let Ok(bare) = plan(&stream, &facts, target) else { continue };
        for context in [0, 1, 4, 9, 20] {
            let plan = plan_with_context(&stream, &facts, target, context).expect("plan");
            assert_eq!(plan.cuts(), bare.cuts());
            assert_context_plan(&items, &facts, &plan, context);
            assert_layout(&plan, stream.packets);
            assert!(plan.segments.windows(2).all(|w| w[0].first_packet <= w[1].first_packet));
        }
    }
}
