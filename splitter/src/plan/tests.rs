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
