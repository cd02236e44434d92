//! Packets folded into GOP summaries as they are read: the stream model the planner works on.

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
