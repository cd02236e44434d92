//! Video packets read straight from an MP4/MOV file's sample tables, as ffmpeg lists them.
//!
//! The read-back lists every segment file's video packets; with `ffmpeg -c copy -f framecrc`
//! that costs 1.5–3 ms of CPU per file, seconds for thousands of short segments. For MP4/MOV
//! files the same facts sit in the `moov` box, and [`Video::read`] reads them in microseconds:
//! the `moov` box, plus the first bytes of each sample for H.264 (see key flags below).
//!
//! The reader is deliberately narrow. It answers only where its answer is exactly what
//! ffmpeg 5.1's `mov` demuxer delivers and declines everything else, so the caller falls back
//! to ffmpeg: a fallback is always correct, a wrong answer is a bug. Declined
//! ([`Declined`] says why): anything that is not ISO-BMFF/QuickTime; fragmented files; files
//! without a video track, or with a track before it that ffmpeg might count as video (cover
//! art, chapter tracks, unknown handlers); edit lists other than "play everything from media
//! time M", M at or before the first presented frame, optionally after one empty edit;
//! samples ffmpeg would drop, flag as discarded or retime (a first packet that is not a key
//! frame, empty samples, dts after pts); codecs other than H.264 (`avc1`, `avc3`), HEVC
//! (`hvc1`, `hev1`) and MPEG-4 part 2 (`mp4v`) — AV1, VP9 and MPEG-1 get their key flags from
//! a bitstream parser in libavformat; and table shapes that ffmpeg handles in its own way
//! (zero counts, deltas or offsets out of range, `stps`, `rap ` sample groups, several sample
//! descriptions, data in other files, timescales finer than microseconds). A file that claims
//! to be MP4 but is corrupt (truncated boxes, tables whose counts do not add up, sample data
//! past the end of the file) is an error.
//!
//! What the demuxer does, mirrored here:
//! - Time base `1/timescale` of the track's `mdhd`.
//! - dts: the `stts` running sum minus ffmpeg's `dts_shift`, the largest negated `ctts`
//!   offset among all `ctts` entries but the last two; pts: the `stts` sum plus the `ctts`
//!   offset, read as signed whatever the box version.
//! - An accepted edit list moves every timestamp by the empty edit's duration and, when the
//!   smallest pts is positive, back by it: the first presented frame starts where the empty
//!   edit ends. The media time only decides which frames would be discarded (none, here).
//! - Key flags: `stss` membership (every sample without `stss`), except for H.264, where
//!   libavformat runs its H.264 parser over every packet and sets the flag exactly when the
//!   packet's first slice is an IDR slice (or an SEI recovery point precedes it: declined),
//!   whatever `stss` says.
//!
//! The timestamps are the demuxer's, as `ffprobe -show_packets` prints them. `ffmpeg -i FILE
//! -c copy -f framecrc` prints them minus the input's start time (ffmpeg's default input
//! offset), one constant for dts and pts: for a file with only this track, the first packet's
//! pts without an edit list, the empty edit's duration with one. The read-back compares pts
//! relative to the first packet's, and dts order, which that offset leaves alone.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use crate::timestamps::{Stamp, Timeline};

type FourCc = [u8; 4];

/// One video sample (packet), decode order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub dts: i64,
    pub pts: i64,
    /// The sample's `stts` duration (ffmpeg prints durations it derives itself).
    pub duration: i64,
    pub size: u64,
    /// ffmpeg's key flag (see the module notes for H.264).
    pub key: bool,
}

/// The first video track of an MP4/MOV file, as ffmpeg's demuxer delivers its packets.
#[derive(Clone, Debug)]
pub struct Video {
    /// Ticks per second of the track (`mdhd`): the time base is `1/timescale`.
    pub timescale: u32,
    /// Sample entry type: `avc1`, `avc3`, `hvc1`, `hev1` or `mp4v`.
    pub codec: [u8; 4],
    pub samples: Vec<Sample>,
    /// File offset of each sample's data.
    offsets: Vec<u64>,
    /// Size of the NAL unit length fields (`avcC`/`hvcC`), for H.264 and HEVC.
    nal_length_size: Option<u8>,
}

/// Why [`Video::read`] declined a file: ffmpeg has to list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declined(pub String);

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Declined {}

fn decline(why: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Declined(why.into()))
}

fn show(kind: &FourCc) -> String {
    kind.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect()
}

impl Video {
    /// The first video track's packets, exactly as ffmpeg's demuxer delivers them; `Ok(None)`
    /// when this reader cannot promise that (see the module notes) and ffmpeg must list the
    /// file; `Err` on I/O errors and corrupt MP4/MOV files.
    pub fn read(path: &Path) -> Result<Option<Video>> {
        Ok(Self::read_or_decline(path)?.ok())
    }

    /// [`Video::read`], saying why it declined.
    pub fn read_or_decline(path: &Path) -> Result<Result<Video, Declined>> {
        match read_video(path) {
            Ok(video) => Ok(Ok(video)),
            Err(e) => match e.downcast::<Declined>() {
                Ok(declined) => Ok(Err(declined)),
                Err(e) => Err(e.context(format!("reading the MP4 tables of {}", path.display()))),
            },
        }
    }

    /// The packets' timestamps in the form the read-back checks.
    pub fn timeline(&self) -> Timeline {
        Timeline {
            time_base: (1, i64::from(self.timescale)),
            stamps: self.samples.iter().map(|s| Stamp { dts: s.dts, pts: s.pts }).collect(),
        }
    }

    /// pts of the samples holding at least one NAL unit whose type is in `types`: the packets
    /// `ffmpeg -bsf:v filter_units=pass_types=A-B` keeps (`5` for H.264 IDR pictures, `19-20`
    /// for HEVC's). Reads every sample's NAL unit headers (a few bytes each), since nothing
    /// in the tables promises where such units are. `None` for codecs other than H.264 and
    /// HEVC; `path` must be the file this was read from.
    pub fn pts_with_nal_types(
        &self,
        path: &Path,
        types: RangeInclusive<u8>,
    ) -> Result<Option<Vec<i64>>> {
        let hevc = match &self.codec {
            b"avc1" | b"avc3" => false,
            b"hvc1" | b"hev1" => true,
            _ => return Ok(None),
        };
        let Some(length_size) = self.nal_length_size else { return Ok(None) };
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut data = SampleData::new(file);
        let mut pts = Vec::new();
        for (sample, &at) in self.samples.iter().zip(&self.offsets) {
            let has = has_nal_type(&mut data, at, sample.size, length_size, hevc, &types)
                .with_context(|| format!("reading the NAL units of {}", path.display()))?;
            if has {
                pts.push(sample.pts);
            }
        }
        Ok(Some(pts))
    }
}

fn read_video(path: &Path) -> Result<Video> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let file_len = file.metadata()?.len();
    let moov = read_moov(&mut file, file_len)?;
    let mut video = parse_moov(&moov)?.video(file_len)?;
    if let (b"avc1" | b"avc3", Some(length_size)) = (&video.codec, video.nal_length_size) {
        let mut data = SampleData::new(file);
        for (sample, &at) in video.samples.iter_mut().zip(&video.offsets) {
            sample.key = h264_parser_key(&mut data, at, sample.size, length_size)?
                .ok_or_else(|| decline("an H.264 SEI recovery point (ffmpeg's key flags)"))?;
        }
    }
    // ffmpeg's stream copy drops packets before the first key frame.
    if !video.samples.first().is_some_and(|s| s.key) {
        return Err(decline("the first packet is not a key frame"));
    }
    Ok(video)
}

// ---------------------------------------------------------------------------------------
// Boxes

/// Top-level boxes an MP4/MOV file may start with; anything else is some other format.
const FIRST_BOXES: [&FourCc; 9] =
    [b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"];

/// Finds the `moov` box among the top-level boxes (seeking over the others) and reads it.
fn read_moov<R: Read + Seek>(file: &mut R, len: u64) -> Result<Vec<u8>> {
    let mut pos = 0u64;
    let mut moov = None;
    while len - pos >= 8 {
        let mut header = [0u8; 16];
        let n = if len - pos >= 16 { 16 } else { 8 };
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut header[..n])?;
        let kind = [header[4], header[5], header[6], header[7]];
        if pos == 0 && !FIRST_BOXES.contains(&&kind) {
            return Err(decline("not an MP4/MOV file"));
        }
        let (head, size) = match be(&header[..4]) {
            0 => (8, len - pos),
            1 if n == 16 => (16, be(&header[8..16])),
            1 => (16, 0),
            size => (8, size),
        };
        if size < head {
            // ffmpeg stops reading top-level boxes there.
            ensure!(moov.is_some(), "malformed {} box at byte {pos}", show(&kind));
            break;
        }
        match &kind {
            b"moov" if moov.is_none() => moov = Some((pos + head, size - head)),
            b"moof" => return Err(decline("a fragmented MP4 (moof)")),
            b"meta" => return Err(decline("a top-level meta box")),
            _ => {}
        }
        if size >= len - pos {
            break;
        }
        pos += size;
    }
    let (start, size) = moov.ok_or_else(|| decline("no moov box"))?;
    ensure!(
        size <= len - start,
        "the moov box is truncated: {size} bytes from byte {start} of a {len}-byte file"
    );
    let size = usize::try_from(size).ok().filter(|&s| s <= 1 << 30).context("moov too large")?;
    let mut moov = vec![0; size];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut moov)?;
    Ok(moov)
}

/// One box inside a parent's body.
#[derive(Clone, Copy, Debug)]
struct Bx<'a> {
    kind: FourCc,
    body: &'a [u8],
    /// Offset of the box's end in the parent's body.
    end: usize,
}

/// The boxes in `data`, in order. A box that does not fit is an error; fewer than 8 bytes
/// left over are ignored (as ffmpeg does; QuickTime ends some lists with 4 zero bytes).
fn boxes(data: &[u8]) -> impl Iterator<Item = Result<Bx<'_>>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = &data[pos..];
        if rest.len() < 8 {
            return None;
        }
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let (head, size) = match be(&rest[..4]) {
            0 => (8, rest.len() as u64),
            1 if rest.len() >= 16 => (16, be(&rest[8..16])),
            1 => (16, 0),
            size => (8, size),
        };
        if size < head || size > rest.len() as u64 {
            pos = data.len();
            return Some(Err(anyhow::anyhow!(
                "{} box of {size} bytes does not fit in its parent ({} bytes left)",
                show(&kind),
                rest.len()
            )));
        }
        let size = size as usize;
        pos += size;
        Some(Ok(Bx { kind, body: &rest[head as usize..size], end: pos }))
    })
}

fn children(data: &[u8]) -> Result<Vec<Bx<'_>>> {
    boxes(data).collect()
}

/// The child of type `kind`, if any; declined when there are several (ffmpeg would pick one
/// of them by rules of its own).
fn only<'a>(kids: &[Bx<'a>], kind: &FourCc) -> Result<Option<&'a [u8]>> {
    let mut found = kids.iter().filter(|b| &b.kind == kind);
    let first = found.next().map(|b| b.body);
    if found.next().is_some() {
        return Err(decline(format!("more than one {} box", show(kind))));
    }
    Ok(first)
}

fn need<'a>(kids: &[Bx<'a>], kind: &FourCc) -> Result<&'a [u8]> {
    only(kids, kind)?.with_context(|| format!("no {} box", show(kind)))
}

/// Big-endian unsigned integer of up to 8 bytes.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| acc << 8 | u64::from(b))
}

/// A cursor over a box body; running out of bytes is an error naming the box.
#[derive(Debug)]
struct Fields<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Fields<'a> {
        Fields { data, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(self.data.len() >= n, "truncated {} box", self.what);
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(be(self.take(4)?) as u32)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(be(self.take(8)?))
    }

    /// A full box's version (the flags are skipped).
    fn version(&mut self) -> Result<u8> {
        let version = self.u8()?;
        self.take(3)?;
        Ok(version)
    }

    /// An entry count, checked against the bytes left for entries of `entry_size` bytes.
    fn count(&mut self, entry_size: usize) -> Result<usize> {
        let count = self.u32()? as usize;
        ensure!(
            count.checked_mul(entry_size).is_some_and(|n| n <= self.data.len()),
            "{} box lists {count} entries but holds {} bytes of them",
            self.what,
            self.data.len()
        );
        Ok(count)
    }
}

// ---------------------------------------------------------------------------------------
// Tracks

/// Sample entry types of tracks ffmpeg never counts as video.
const NOT_VIDEO: [&FourCc; 10] =
    [b"tx3g", b"text", b"tmcd", b"wvtt", b"stpp", b"c608", b"c708", b"mp4s", b"rtp ", b"mett"];

/// One edit list entry, durations in the movie's timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Edit {
    duration: u64,
    media_time: i64,
    rate: u32,
}

/// The chosen track's tables.
#[derive(Clone, Debug, Default)]
struct Track {
    timescale: u32,
    /// `mvhd`'s timescale, if it came before the track (ffmpeg reads edit lists with it).
    movie_timescale: Option<u32>,
    codec: FourCc,
    nal_length_size: Option<u8>,
    edits: Vec<Edit>,
    /// (count, delta)
    stts: Vec<(u32, u32)>,
    /// (count, offset)
    ctts: Vec<(u32, i32)>,
    /// (first chunk, samples per chunk, sample description index)
    stsc: Vec<(u32, u32, u32)>,
    sizes: Vec<u32>,
    chunks: Vec<u64>,
    /// 1-based sample numbers.
    stss: Option<Vec<u32>>,
}

fn parse_moov(moov: &[u8]) -> Result<Track> {
    let mut movie_timescale = None;
    let mut found: Option<(Track, usize)> = None;
    for item in boxes(moov) {
        let b = item?;
        match &b.kind {
            b"mvhd" if movie_timescale.is_none() => movie_timescale = Some(mvhd(b.body)?),
            b"mvhd" => return Err(decline("more than one mvhd box")),
            b"mvex" => return Err(decline("a fragmented MP4 (mvex)")),
            b"cmov" => return Err(decline("a compressed moov box")),
            b"trak" => {
                if refers_to_chapters(b.body)? {
                    return Err(decline("a chapter track reference"));
                }
                if found.is_none() {
                    found = trak(b.body, movie_timescale)?.map(|t| (t, b.end));
                }
            }
            _ => {}
        }
    }
    let (track, end) = found.ok_or_else(|| decline("no video track"))?;
    // Cover art becomes a video stream of its own, numbered where ffmpeg meets it.
    if moov[..end].windows(4).any(|w| w == b"covr") {
        return Err(decline("cover art before the video track"));
    }
    Ok(track)
}

fn refers_to_chapters(trak: &[u8]) -> Result<bool> {
    for b in children(trak)? {
        if &b.kind == b"tref" && children(b.body)?.iter().any(|r| &r.kind == b"chap") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The track's tables if it is a video track; `None` for a track ffmpeg never numbers as
/// video.
fn trak(body: &[u8], movie_timescale: Option<u32>) -> Result<Option<Track>> {
    let trak = children(body)?;
    let mdia = children(need(&trak, b"mdia")?)?;
    let handler = hdlr(need(&mdia, b"hdlr")?)?;
    let minf = children(need(&mdia, b"minf")?)?;
    let stbl = children(need(&minf, b"stbl")?)?;
    let entries = stsd(need(&stbl, b"stsd")?)?;
    let (codec, entry) = entries.first().copied().unwrap_or(([0; 4], &[]));
    if &handler != b"vide" {
        if &handler == b"soun" || NOT_VIDEO.contains(&&codec) {
            return Ok(None);
        }
        return Err(decline(format!(
            "a {} track ({}) before the video track",
            show(&handler),
            show(&codec)
        )));
    }
    if entries.len() != 1 {
        return Err(decline(format!("{} sample descriptions", entries.len())));
    }
    let nal_length_size = match &codec {
        b"avc1" | b"avc3" => Some(avcc(entry)?),
        b"hvc1" | b"hev1" => hvcc(entry)?,
        b"mp4v" => {
            mp4v_is_mpeg4(entry)?;
            None
        }
        _ => return Err(decline(format!("codec {}", show(&codec)))),
    };
    if let Some(dinf) = only(&minf, b"dinf")? {
        check_self_contained(dinf, entry)?;
    }
    let edits = match only(&trak, b"edts")? {
        Some(edts) => only(&children(edts)?, b"elst")?.map(elst).transpose()?.unwrap_or_default(),
        None => Vec::new(),
    };
    let sizes = match (only(&stbl, b"stsz")?, only(&stbl, b"stz2")?) {
        (Some(b), None) => stsz(b)?,
        (None, Some(b)) => stz2(b)?,
        (None, None) => bail!("no stsz box"),
        (Some(_), Some(_)) => return Err(decline("both stsz and stz2")),
    };
    let chunks = match (only(&stbl, b"stco")?, only(&stbl, b"co64")?) {
        (Some(b), None) => chunk_offsets(b, 4)?,
        (None, Some(b)) => chunk_offsets(b, 8)?,
        (None, None) => bail!("no stco box"),
        (Some(_), Some(_)) => return Err(decline("both stco and co64")),
    };
    if let Some(stps) = only(&stbl, b"stps")? {
        let mut f = Fields::new(stps, "stps");
        f.version()?;
        if f.count(4)? > 0 {
            return Err(decline("partial sync samples (stps)"));
        }
    }
    for b in stbl.iter().filter(|b| &b.kind == b"sbgp") {
        let mut f = Fields::new(b.body, "sbgp");
        f.version()?;
        if f.take(4)? == b"rap " {
            return Err(decline("a 'rap ' sample group"));
        }
    }
    Ok(Some(Track {
        timescale: mdhd(need(&mdia, b"mdhd")?)?,
        movie_timescale,
        codec,
        nal_length_size,
        edits,
        stts: pairs(need(&stbl, b"stts")?, "stts")?,
        ctts: only(&stbl, b"ctts")?.map(ctts).transpose()?.unwrap_or_default(),
        stsc: stsc(need(&stbl, b"stsc")?)?,
        sizes,
        chunks,
        stss: only(&stbl, b"stss")?.map(stss).transpose()?,
    }))
}

fn mvhd(body: &[u8]) -> Result<u32> {
    let mut f = Fields::new(body, "mvhd");
    let times = if f.version()? == 1 { 16 } else { 8 };
    f.take(times)?;
    f.u32()
}

fn mdhd(body: &[u8]) -> Result<u32> {
    let mut f = Fields::new(body, "mdhd");
    let times = match f.version()? {
        0 => 8,
        1 => 16,
        v => return Err(decline(format!("mdhd version {v}"))),
    };
    f.take(times)?;
    let timescale = f.u32()?;
    // ffmpeg's stream copy subtracts the start time in microseconds; finer time bases round,
    // and a first packet rounded below 0 is dropped.
    if timescale == 0 || timescale > 1_000_000 {
        return Err(decline(format!("track timescale {timescale}")));
    }
    Ok(timescale)
}

fn hdlr(body: &[u8]) -> Result<FourCc> {
    let mut f = Fields::new(body, "hdlr");
    f.version()?;
    f.take(4)?; // QuickTime's component type, 0 in MP4
    let t = f.take(4)?;
    Ok([t[0], t[1], t[2], t[3]])
}

/// The sample entries: type and body.
fn stsd(body: &[u8]) -> Result<Vec<(FourCc, &[u8])>> {
    let mut f = Fields::new(body, "stsd");
    f.version()?;
    let count = f.count(8)?;
    let entries = boxes(f.data)
        .take(count)
        .map(|b| b.map(|b| (b.kind, b.body)))
        .collect::<Result<Vec<_>>>()?;
    ensure!(entries.len() == count, "stsd box lists {count} entries, holds {}", entries.len());
    Ok(entries)
}

/// The boxes after a visual sample entry's fixed fields.
fn entry_boxes(entry: &[u8]) -> Result<Vec<Bx<'_>>> {
    ensure!(entry.len() >= 78, "truncated visual sample entry");
    children(&entry[78..])
}

fn avcc(entry: &[u8]) -> Result<u8> {
    match only(&entry_boxes(entry)?, b"avcC")? {
        Some(c) if c.len() >= 7 && c[0] == 1 => Ok((c[4] & 3) + 1),
        _ => Err(decline("H.264 without an avcC box")),
    }
}

fn hvcc(entry: &[u8]) -> Result<Option<u8>> {
    Ok(match only(&entry_boxes(entry)?, b"hvcC")? {
        Some(c) if c.len() >= 23 && c[0] == 1 => Some((c[21] & 3) + 1),
        _ => None,
    })
}

/// `mp4v` is MPEG-4 part 2 only with that object type in its `esds`; ffmpeg reads other
/// codecs (MPEG-1/2 video...) from the same entry type.
fn mp4v_is_mpeg4(entry: &[u8]) -> Result<()> {
    let object_type = only(&entry_boxes(entry)?, b"esds")?.and_then(|esds| {
        // ES_Descriptor (tag 3), then DecoderConfigDescriptor (tag 4): objectTypeIndication.
        let mut f = Fields::new(esds, "esds");
        f.version().ok()?;
        let (tag, _) = (f.u8().ok()?, descriptor_size(&mut f)?);
        (tag == 3).then_some(())?;
        f.take(2).ok()?; // ES_ID
        let flags = f.u8().ok()?;
        if flags & 0x80 != 0 {
            f.take(2).ok()?;
        }
        if flags & 0x40 != 0 {
            let url = f.u8().ok()?;
            f.take(usize::from(url)).ok()?;
        }
        if flags & 0x20 != 0 {
            f.take(2).ok()?;
        }
        let (tag, _) = (f.u8().ok()?, descriptor_size(&mut f)?);
        (tag == 4).then_some(())?;
        f.u8().ok()
    });
    match object_type {
        Some(0x20) => Ok(()),
        other => Err(decline(format!("mp4v with object type {other:?} (not MPEG-4 part 2)"))),
    }
}

fn descriptor_size(f: &mut Fields<'_>) -> Option<u32> {
    let mut size = 0;
    for _ in 0..4 {
        let b = f.u8().ok()?;
        size = size << 7 | u32::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Some(size)
}

/// Declines a track whose data ffmpeg would look for in another file.
fn check_self_contained(dinf: &[u8], entry: &[u8]) -> Result<()> {
    let Some(dref) = only(&children(dinf)?, b"dref")? else { return Ok(()) };
    ensure!(entry.len() >= 8, "truncated sample entry");
    let index = be(&entry[6..8]) as usize;
    let mut f = Fields::new(dref, "dref");
    f.version()?;
    let count = f.count(0)?;
    let refs = boxes(f.data).take(count).collect::<Result<Vec<_>>>()?;
    let ok = index >= 1
        && refs.get(index - 1).is_some_and(|r| {
            matches!(&r.kind, b"url " | b"alis") && r.body.len() >= 4 && r.body[3] & 1 == 1
        });
    if ok { Ok(()) } else { Err(decline("sample data in another file (dref)")) }
}

fn elst(body: &[u8]) -> Result<Vec<Edit>> {
    let mut f = Fields::new(body, "elst");
    let version = f.version()?;
    let count = f.count(if version == 1 { 20 } else { 12 })?;
    (0..count)
        .map(|_| {
            let (duration, media_time) = if version == 1 {
                (f.u64()?, f.u64()? as i64)
            } else {
                (u64::from(f.u32()?), i64::from(f.u32()? as i32))
            };
            Ok(Edit { duration, media_time, rate: f.u32()? })
        })
        .collect()
}

/// A table of (u32, u32) entries: `stts`.
fn pairs(body: &[u8], what: &'static str) -> Result<Vec<(u32, u32)>> {
    let mut f = Fields::new(body, what);
    f.version()?;
    let count = f.count(8)?;
    (0..count).map(|_| Ok((f.u32()?, f.u32()?))).collect()
}

/// `ctts`: offsets are signed in both versions as far as ffmpeg is concerned.
fn ctts(body: &[u8]) -> Result<Vec<(u32, i32)>> {
    Ok(pairs(body, "ctts")?.into_iter().map(|(count, offset)| (count, offset as i32)).collect())
}

fn stsc(body: &[u8]) -> Result<Vec<(u32, u32, u32)>> {
    let mut f = Fields::new(body, "stsc");
    f.version()?;
    let count = f.count(12)?;
    (0..count).map(|_| Ok((f.u32()?, f.u32()?, f.u32()?))).collect()
}

fn stsz(body: &[u8]) -> Result<Vec<u32>> {
    let mut f = Fields::new(body, "stsz");
    f.version()?;
    let constant = f.u32()?;
    if constant != 0 {
        let count = f.u32()? as usize;
        if count > 1 << 24 {
            return Err(decline(format!("{count} samples of {constant} bytes")));
        }
        return Ok(vec![constant; count]);
    }
    let count = f.count(4)?;
    (0..count).map(|_| f.u32()).collect()
}

fn stz2(body: &[u8]) -> Result<Vec<u32>> {
    let mut f = Fields::new(body, "stz2");
    f.version()?;
    f.take(3)?;
    let bits = f.u8()?;
    ensure!(matches!(bits, 4 | 8 | 16), "stz2 field size {bits}");
    let count = f.u32()? as usize;
    let table =
        f.take(count.checked_mul(usize::from(bits)).context("stz2 too large")?.div_ceil(8))?;
    Ok((0..count)
        .map(|i| match bits {
            4 if i % 2 == 0 => u32::from(table[i / 2] >> 4),
            4 => u32::from(table[i / 2] & 0xf),
            8 => u32::from(table[i]),
            _ => be(&table[2 * i..2 * i + 2]) as u32,
        })
        .collect())
}

fn chunk_offsets(body: &[u8], width: usize) -> Result<Vec<u64>> {
    let mut f = Fields::new(body, if width == 4 { "stco" } else { "co64" });
    f.version()?;
    let count = f.count(width)?;
    (0..count).map(|_| Ok(be(f.take(width)?))).collect()
}

fn stss(body: &[u8]) -> Result<Vec<u32>> {
    let mut f = Fields::new(body, "stss");
    f.version()?;
    let count = f.count(4)?;
    (0..count).map(|_| f.u32()).collect()
}

// ---------------------------------------------------------------------------------------
// Samples

/// The accepted edit list shape, in the track's timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    /// Duration of the leading empty edit (0 without one).
    empty: i64,
    media_time: i64,
    duration: i64,
}

/// `a * b / c` rounded half away from zero (`av_rescale`), for non-negative values.
fn rescale(a: u64, b: u32, c: u32) -> Option<i64> {
    let (b, c) = (u128::from(b), u128::from(c));
    i64::try_from((u128::from(a) * b + c / 2) / c).ok()
}

/// The edit list, if it is one this reader follows ffmpeg through exactly.
fn window(edits: &[Edit], timescale: u32, movie_timescale: Option<u32>) -> Result<Option<Window>> {
    let (empty, edit) = match edits {
        [] => return Ok(None),
        [edit] => (None, edit),
        [empty, edit] if empty.media_time == -1 => (Some(empty), edit),
        _ => return Err(decline(format!("an edit list of {} entries", edits.len()))),
    };
    if edit.media_time < 0 || edit.rate != 0x1_0000 {
        return Err(decline(format!(
            "an edit from media time {} at rate {:#x}",
            edit.media_time, edit.rate
        )));
    }
    let Some(movie) = movie_timescale.filter(|&t| t > 0 && t <= i32::MAX as u32) else {
        return Err(decline("an edit list without a usable movie timescale"));
    };
    let convert = |d: u64| rescale(d, timescale, movie).ok_or_else(|| decline("edit too long"));
    Ok(Some(Window {
        empty: empty.map_or(Ok(0), |e| convert(e.duration))?,
        media_time: edit.media_time,
        duration: convert(edit.duration)?,
    }))
}

/// One value per sample from a run-length table of (count, value).
fn expand<T: Copy>(runs: &[(u32, T)], samples: usize, what: &str) -> Result<Vec<T>> {
    if runs.iter().any(|&(count, _)| count == 0 || count > i32::MAX as u32) {
        return Err(decline(format!("a {what} entry with a count of 0 or over 2^31")));
    }
    let total: u64 = runs.iter().map(|&(count, _)| u64::from(count)).sum();
    ensure!(total == samples as u64, "{what} describes {total} samples, stsz {samples}");
    Ok(runs.iter().flat_map(|&(count, value)| std::iter::repeat_n(value, count as usize)).collect())
}

/// ffmpeg's `dts_shift`: the largest negated `ctts` offset, counting all entries but the last
/// two (sic).
fn dts_shift(ctts: &[(u32, i32)]) -> i64 {
    let counted = ctts.len().saturating_sub(2);
    ctts[..counted].iter().map(|&(_, offset)| -i64::from(offset)).fold(0, i64::max)
}

/// Each sample's file offset, from the sample-to-chunk table.
fn sample_offsets(stsc: &[(u32, u32, u32)], chunks: &[u64], sizes: &[u32]) -> Result<Vec<u64>> {
    ensure!(stsc.first().is_some_and(|e| e.0 == 1), "stsc does not start at chunk 1");
    for pair in stsc.windows(2) {
        ensure!(pair[0].0 < pair[1].0, "stsc chunk numbers do not increase");
    }
    for &(first, per_chunk, description) in stsc {
        ensure!(per_chunk > 0, "stsc entry with no samples per chunk");
        ensure!(first as usize <= chunks.len(), "stsc refers to chunk {first} of {}", chunks.len());
        if description != 1 {
            return Err(decline(format!("samples of sample description {description}")));
        }
    }
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut run = 0;
    for (index, &chunk) in chunks.iter().enumerate() {
        while stsc.get(run + 1).is_some_and(|e| e.0 as usize == index + 1) {
            run += 1;
        }
        let mut at = chunk;
        for _ in 0..stsc[run].1 {
            let size = sizes.get(offsets.len()).with_context(|| {
                format!("stsc and stco describe more samples than stsz's {}", sizes.len())
            })?;
            offsets.push(at);
            at = at.checked_add(u64::from(*size)).context("sample offset overflows")?;
        }
    }
    ensure!(
        offsets.len() == sizes.len(),
        "stsc and stco describe {} samples, stsz {}",
        offsets.len(),
        sizes.len()
    );
    Ok(offsets)
}

impl Track {
    /// The samples as ffmpeg's demuxer delivers them (key flags from `stss`).
    fn video(&self, file_len: u64) -> Result<Video> {
        let n = self.sizes.len();
        if n == 0 {
            return Err(decline("a video track without samples"));
        }
        if let Some(size) = self.sizes.iter().find(|&&s| s == 0 || s > 0x3FFF_FFFF) {
            return Err(decline(format!("a sample of {size} bytes")));
        }
        let deltas = expand(&self.stts, n, "stts")?;
        if deltas.iter().any(|&d| d > i32::MAX as u32) {
            return Err(decline("an stts delta over 2^31"));
        }
        let offsets = if self.ctts.is_empty() {
            vec![0; n]
        } else {
            if self.ctts.iter().any(|&(_, offset)| offset.unsigned_abs() >= 1 << 28) {
                return Err(decline("a ctts offset over 2^28"));
            }
            expand(&self.ctts, n, "ctts")?
        };
        let shift = dts_shift(&self.ctts);
        let positions = sample_offsets(&self.stsc, &self.chunks, &self.sizes)?;
        for (i, (&at, &size)) in positions.iter().zip(&self.sizes).enumerate() {
            ensure!(
                at.checked_add(u64::from(size)).is_some_and(|end| end <= file_len),
                "sample {i} ({size} bytes at byte {at}) lies past the end of the {file_len}-byte \
                 file (truncated?)"
            );
        }
        let index_key = self.index_keys(n)?;

        // Media timeline: dts from the stts sum, pts = dts + ctts offset.
        let mut dts = Vec::with_capacity(n);
        let mut sum = 0i64;
        for &delta in &deltas {
            dts.push(sum);
            sum = sum.checked_add(i64::from(delta)).ok_or_else(|| decline("dts overflow"))?;
        }
        let pts: Vec<i64> = dts.iter().zip(&offsets).map(|(&d, &o)| d + i64::from(o)).collect();

        // ffmpeg's edit list processing, for the accepted shapes: nothing dropped or
        // discarded, timestamps moved by `empty - min_pts` (the latter when positive).
        let move_by = match window(&self.edits, self.timescale, self.movie_timescale)? {
            None => 0,
            Some(w) => {
                let min_pts = check_window(&w, &pts, &deltas, &index_key, !self.ctts.is_empty())?;
                w.empty - min_pts.max(0)
            }
        };
        let samples = (0..n)
            .map(|i| {
                let sample = Sample {
                    dts: dts[i] - shift + move_by,
                    pts: pts[i] + move_by,
                    duration: i64::from(deltas[i]),
                    size: u64::from(self.sizes[i]),
                    key: index_key[i],
                };
                // ffmpeg's stream copy rewrites both timestamps of such a packet.
                if sample.dts > sample.pts {
                    return Err(decline(format!("packet {i} has dts after pts")));
                }
                Ok(sample)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Video {
            timescale: self.timescale,
            codec: self.codec,
            samples,
            offsets: positions,
            nal_length_size: self.nal_length_size,
        })
    }

    /// The demuxer's key flags: `stss` membership, every sample without `stss`.
    fn index_keys(&self, n: usize) -> Result<Vec<bool>> {
        let Some(sync) = &self.stss else { return Ok(vec![true; n]) };
        // An empty stss makes ffmpeg parse the stream for key frames; a 0 shifts its count.
        if sync.first().is_none_or(|&s| s == 0) {
            return Err(decline("an empty stss or one counting from 0"));
        }
        let mut keys = vec![false; n];
        let mut previous = 0;
        for &s in sync {
            ensure!(s > previous && s as usize <= n, "stss entry {s} out of order or range");
            keys[s as usize - 1] = true;
            previous = s;
        }
        Ok(keys)
    }
}

/// Checks that ffmpeg's edit list processing keeps every sample, undiscarded and in place;
/// returns the smallest pts (media timeline).
fn check_window(
    w: &Window,
    pts: &[i64],
    deltas: &[u32],
    index_key: &[bool],
    has_ctts: bool,
) -> Result<i64> {
    let end = w.media_time.checked_add(w.duration).ok_or_else(|| decline("edit too long"))?;
    // ffmpeg starts at the last key frame presented at or before the media time: sample 0
    // only when no later sample is presented at or before it.
    let starts_at_0 = pts[0] >= w.media_time && pts[1..].iter().all(|&p| p > w.media_time);
    if !starts_at_0 || pts.iter().any(|&p| p >= end) {
        return Err(decline(format!(
            "an edit list that hides frames (media time {}, duration {})",
            w.media_time, w.duration
        )));
    }
    // ffmpeg stops at a key frame whose end reaches the edit's end (with ctts, at the second).
    let mut reached = 0;
    let last = pts.len() - 1;
    for ((&key, &p), &delta) in index_key.iter().zip(pts).zip(deltas).take(last) {
        if key && p + i64::from(delta) >= end {
            reached += 1;
            if reached > usize::from(has_ctts) {
                return Err(decline("an edit list that ends before the last sample"));
            }
        }
    }
    Ok(pts.iter().copied().min().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------
// Sample data (NAL units)

/// Positioned reads of sample data; nearby reads share one buffer.
#[derive(Debug)]
struct SampleData<R> {
    inner: BufReader<R>,
    /// Where `inner` is, once known.
    pos: Option<u64>,
}

impl<R: Read + Seek> SampleData<R> {
    fn new(inner: R) -> SampleData<R> {
        SampleData { inner: BufReader::new(inner), pos: None }
    }

    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        match self.pos {
            Some(pos) if pos == at => {}
            Some(pos) => {
                self.inner.seek_relative(i64::try_from(i128::from(at) - i128::from(pos))?)?
            }
            None => _ = self.inner.seek(SeekFrom::Start(at))?,
        }
        self.pos = None;
        self.inner.read_exact(buf).with_context(|| format!("reading sample data at byte {at}"))?;
        self.pos = Some(at + buf.len() as u64);
        Ok(())
    }

    fn read_vec(&mut self, at: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0; usize::try_from(len)?];
        self.read_at(at, &mut buf)?;
        Ok(buf)
    }

    /// The NAL unit length field at `at`.
    fn length(&mut self, at: u64, size: u8) -> Result<u64> {
        let mut buf = [0; 4];
        let buf = &mut buf[..usize::from(size)];
        self.read_at(at, buf)?;
        Ok(be(buf))
    }
}

/// The key flag ffmpeg's H.264 parser gives a packet: whether its first slice (type 1 or 5)
/// is an IDR slice. `None` when an SEI recovery point precedes that slice (the parser would
/// call it key; declined rather than followed into SEI details). Walks the NAL units as the
/// parser does, stopping where it stops.
fn h264_parser_key<R: Read + Seek>(
    data: &mut SampleData<R>,
    at: u64,
    size: u64,
    length_size: u8,
) -> Result<Option<bool>> {
    let ls = u64::from(length_size);
    let mut i = 0;
    while i + ls < size {
        let n = data.length(at + i, length_size)?;
        i += ls;
        if n == 0 || n > size - i {
            break;
        }
        let mut header = [0];
        data.read_at(at + i, &mut header)?;
        match header[0] & 0x1f {
            5 => return Ok(Some(true)),
            1 => return Ok(Some(false)),
            6 if sei_has_recovery_point(&data.read_vec(at + i, n)?[1..]) => return Ok(None),
            _ => {}
        }
        i += n;
    }
    Ok(Some(false))
}

/// The RBSP of a NAL unit payload: emulation prevention bytes (`00 00 03`) removed.
fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Whether an SEI payload (escaped, after the NAL header) holds a recovery point message
/// among the messages ffmpeg's SEI reader would get to.
fn sei_has_recovery_point(payload: &[u8]) -> bool {
    fn number(rbsp: &mut &[u8]) -> Option<usize> {
        let mut value = 0;
        loop {
            let (&b, rest) = rbsp.split_first()?;
            *rbsp = rest;
            value += usize::from(b);
            if b != 0xff {
                return Some(value);
            }
        }
    }
    let rbsp = unescape(payload);
    let mut rest = rbsp.as_slice();
    while rest.len() > 2 && rest[0] != 0x80 {
        let (Some(kind), Some(size)) = (number(&mut rest), number(&mut rest)) else { break };
        if kind == 6 {
            return true;
        }
        let Some(after) = rest.get(size..) else { break };
        rest = after;
    }
    false
}

/// Whether a sample holds a NAL unit of one of `types` that ffmpeg's `filter_units` would
/// see: it splits packets as `ff_h2645_packet_split` does (length fields; a length that does
/// not fit fails the packet; fewer than 4 bytes left end it) and skips units with an invalid
/// header, a nonzero HEVC layer id, or only zero bytes.
fn has_nal_type<R: Read + Seek>(
    data: &mut SampleData<R>,
    at: u64,
    size: u64,
    length_size: u8,
    hevc: bool,
    types: &RangeInclusive<u8>,
) -> Result<bool> {
    let ls = u64::from(length_size);
    let mut i = 0;
    while size - i >= 4 {
        ensure!(size - i > ls, "sample at byte {at}: a NAL unit length field without a unit");
        let n = data.length(at + i, length_size)?;
        i += ls;
        ensure!(n > 0 && n <= size - i, "sample at byte {at}: a NAL unit of {n} bytes in {size}");
        let mut h = [0u8; 2];
        let header_len = n.min(2) as usize;
        data.read_at(at + i, &mut h[..header_len])?;
        let (valid, kind) = if hevc {
            let layer = (h[0] & 1) << 5 | h[1] >> 3;
            (h[0] & 0x80 == 0 && h[1] & 7 != 0 && layer == 0, h[0] >> 1 & 0x3f)
        } else {
            (h[0] & 0x80 == 0, h[0] & 0x1f)
        };
        if valid
            && types.contains(&kind)
            && (h.iter().any(|&b| b != 0) || data.read_vec(at + i, n)?.iter().any(|&b| b != 0))
        {
            return Ok(true);
        }
        i += n;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    /// A full box: version, flags 0, then the words.
    fn full(kind: &[u8; 4], version: u8, words: &[u32]) -> Vec<u8> {
        let mut body = vec![version, 0, 0, 0];
        for w in words {
            body.extend_from_slice(&w.to_be_bytes());
        }
        bx(kind, &body)
    }

    fn declined<T: fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(e) => match e.downcast::<Declined>() {
                Ok(d) => d.0,
                Err(e) => panic!("expected a decline, got the error {e:#}"),
            },
            Ok(v) => panic!("expected a decline, got {v:?}"),
        }
    }

    fn corrupt<T: fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(e) if !e.is::<Declined>() => format!("{e:#}"),
            other => panic!("expected a corrupt-file error, got {other:?}"),
        }
    }

    #[test]
    fn boxes_split_nested_data_and_catch_truncation() {
        let data = [bx(b"free", b"abc"), bx(b"moov", &bx(b"mvhd", &[0; 4]))].concat();
        let kids = children(&data).expect("parses");
        assert_eq!(kids.len(), 2);
        assert_eq!((&kids[1].kind, kids[1].end), (b"moov", data.len()));
        assert_eq!(children(kids[1].body).expect("parses")[0].body, &[0; 4]);

        // size 0: to the end of the parent; size 1: a 64-bit size follows.
        let mut to_end = vec![0, 0, 0, 0];
        to_end.extend_from_slice(b"mdat12345");
        assert_eq!(children(&to_end).expect("parses")[0].body, b"12345");
        let mut large = vec![0, 0, 0, 1];
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&19u64.to_be_bytes());
        large.extend_from_slice(b"xyz");
        assert_eq!(children(&large).expect("parses")[0].body, b"xyz");

        // A box claiming more than its parent holds is an error; < 8 spare bytes are not.
        let mut cut = bx(b"stts", &[0; 16]);
        cut.truncate(20);
        assert!(corrupt(children(&cut)).contains("stts box of 24 bytes does not fit"));
        assert_eq!(children(&[bx(b"free", b""), vec![0; 4]].concat()).expect("ok").len(), 1);
        // A table whose count needs more bytes than the box has.
        assert!(corrupt(stss(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1])).contains("9 entries"));
    }

    #[test]
    fn run_length_tables_expand_per_sample() {
        let stts = [(3, 512), (1, 1024), (2, 256)];
        assert_eq!(expand(&stts, 6, "stts").expect("ok"), [512, 512, 512, 1024, 256, 256]);
        assert!(corrupt(expand(&stts, 7, "stts")).contains("stts describes 6 samples, stsz 7"));
        assert!(declined(expand(&[(0u32, 1u32), (6, 1)], 6, "stts")).contains("count of 0"));

        // ctts v1 with negative offsets; the last two entries do not count for the shift.
        let ctts = [(1, 0), (1, -1024), (2, 512), (1, -2048), (1, -4096)];
        assert_eq!(expand(&ctts, 6, "ctts").expect("ok"), [0, -1024, 512, 512, -2048, -4096]);
        assert_eq!(dts_shift(&ctts), 1024);
        assert_eq!(dts_shift(&[(1, -5), (1, -9)]), 0);
        assert_eq!(dts_shift(&[]), 0);
    }

    #[test]
    fn compact_sizes_and_64_bit_offsets() {
        // stz2 with 4-bit fields: high nibble first; 3 samples.
        let stz2_box = [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3, 0x12, 0x30];
        assert_eq!(super::stz2(&stz2_box).expect("ok"), [1, 2, 3]);
        let stz2_box = [0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 1, 0x01, 0x02];
        assert_eq!(super::stz2(&stz2_box).expect("ok"), [0x102]);
        let co64 = [&[0u8, 0, 0, 0, 0, 0, 0, 1][..], &(5u64 << 32).to_be_bytes()].concat();
        assert_eq!(chunk_offsets(&co64, 8).expect("ok"), [5 << 32]);
    }

    #[test]
    fn sample_to_chunk_runs_give_offsets() {
        // Chunks 1-2 hold 2 samples each, chunk 3 on hold 1.
        let stsc = [(1, 2, 1), (3, 1, 1)];
        let chunks = [100, 200, 300, 400];
        let sizes = [10, 20, 30, 40, 50, 60];
        let offsets = sample_offsets(&stsc, &chunks, &sizes).expect("ok");
        assert_eq!(offsets, [100, 110, 200, 230, 300, 400]);
        assert!(corrupt(sample_offsets(&stsc, &chunks, &sizes[..5])).contains("more samples"));
        assert!(corrupt(sample_offsets(&stsc, &chunks, &[1; 7])).contains("describe 6 samples"));
        assert!(corrupt(sample_offsets(&[(2, 1, 1)], &chunks, &sizes)).contains("chunk 1"));
        assert!(corrupt(sample_offsets(&[(1, 1, 1), (9, 1, 1)], &chunks, &sizes)).contains("9"));
        assert!(declined(sample_offsets(&[(1, 6, 2)], &[0], &sizes)).contains("description 2"));
    }

    fn edit(duration: u64, media_time: i64) -> Edit {
        Edit { duration, media_time, rate: 0x1_0000 }
    }

    #[test]
    fn edit_lists_accepted_only_in_simple_shapes() {
        // Timescale 12800, movie timescale 1000: 3 s = 38400 ticks.
        assert_eq!(window(&[], 12800, None).expect("ok"), None);
        let w = window(&[edit(3000, 1024)], 12800, Some(1000)).expect("ok").expect("some");
        assert_eq!(w, Window { empty: 0, media_time: 1024, duration: 38400 });
        let w = window(&[edit(500, -1), edit(3000, 0)], 12800, Some(1000)).expect("ok");
        assert_eq!(w.expect("some").empty, 6400);
        // av_rescale rounds half away from zero: 1 ms at 90 kHz over 1000 = 90, 1/3 ms...
        assert_eq!(rescale(1, 90_000, 1000), Some(90));
        assert_eq!(rescale(1, 3, 2), Some(2));
        assert_eq!(rescale(1, 1, 3), Some(0));

        assert!(declined(window(&[edit(1, 0), edit(1, 5)], 1, Some(1))).contains("2 entries"));
        assert!(declined(window(&[edit(1, -1)], 1, Some(1))).contains("media time -1"));
        let slow = Edit { rate: 0x8000, ..edit(1, 0) };
        assert!(declined(window(&[slow], 1, Some(1))).contains("rate 0x8000"));
        assert!(declined(window(&[edit(1, 0)], 1, None)).contains("movie timescale"));

        // B-frames: pts 1024.. with the media time at the first (smallest) pts is a shift.
        let pts = [1024, 3072, 2048, 1536, 2560];
        let deltas = [512; 5];
        let keys = [true, false, false, false, false];
        let w = Window { empty: 0, media_time: 1024, duration: 2560 };
        assert_eq!(check_window(&w, &pts, &deltas, &keys, true).expect("ok"), 1024);
        // A media time past the first pts hides frames; so does an edit ending early.
        let later = Window { media_time: 1536, ..w };
        assert!(declined(check_window(&later, &pts, &deltas, &keys, true)).contains("hides"));
        let short = Window { duration: 2048, ..w };
        assert!(declined(check_window(&short, &pts, &deltas, &keys, true)).contains("hides"));
        // Without ctts, ffmpeg stops at the first key frame that reaches the edit's end.
        // (With ctts, at the second.)
        let w = Window { empty: 0, media_time: 0, duration: 1000 };
        let (pts, deltas, keys) = ([0, 512, 900], [512, 488, 24], [true, true, false]);
        let ends = check_window(&w, &pts, &deltas, &keys, false);
        assert!(declined(ends).contains("ends before the last sample"));
        assert_eq!(check_window(&w, &pts, &deltas, &keys, true).expect("ok"), 0);
    }

    /// A moov with one H.264 video track: 4 samples (I P B B), B-frame ctts, one chunk.
    fn moov(extra_stbl: &[u8], edts: &[u8]) -> Vec<u8> {
        let mut entry = vec![0; 78];
        entry[7] = 1; // data reference index
        entry.extend(bx(b"avcC", &[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]));
        let stsd = [vec![0; 4], 1u32.to_be_bytes().to_vec(), bx(b"avc1", &entry)].concat();
        let stbl = [
            bx(b"stsd", &stsd),
            full(b"stts", 0, &[1, 4, 512]),
            full(b"ctts", 0, &[3, 1, 1024, 1, 2048, 2, 512]),
            full(b"stsc", 0, &[1, 1, 4, 1]),
            full(b"stsz", 0, &[0, 4, 10, 20, 30, 40]),
            full(b"stco", 0, &[1, 1000]),
            full(b"stss", 0, &[1, 1]),
            extra_stbl.to_vec(),
        ]
        .concat();
        let mdia = [
            full(b"mdhd", 0, &[0, 0, 12800, 2048, 0]),
            full(b"hdlr", 0, &[0, u32::from_be_bytes(*b"vide"), 0, 0, 0]),
            bx(b"minf", &bx(b"stbl", &stbl)),
        ]
        .concat();
        let trak = [edts.to_vec(), bx(b"mdia", &mdia)].concat();
        let sound = bx(
            b"trak",
            &bx(
                b"mdia",
                &[
                    full(b"hdlr", 0, &[0, u32::from_be_bytes(*b"soun"), 0, 0, 0]),
                    bx(b"minf", &bx(b"stbl", &full(b"stsd", 0, &[0]))),
                ]
                .concat(),
            ),
        );
        let mvhd = full(b"mvhd", 0, &[0, 0, 1000, 160]);
        [mvhd, sound, bx(b"trak", &trak)].concat()
    }

    #[test]
    fn moov_tables_give_the_demuxers_timestamps() {
        let track = parse_moov(&moov(&[], &[])).expect("parses");
        assert_eq!(
            (track.codec, track.timescale, track.nal_length_size),
            (*b"avc1", 12800, Some(4))
        );
        let video = track.video(2000).expect("reads");
        let got: Vec<_> = video.samples.iter().map(|s| (s.dts, s.pts, s.size, s.key)).collect();
        let expected = [(0, 1024, 10, true), (512, 2560, 20, false), (1024, 1536, 30, false)];
        assert_eq!(got[..3], expected);
        assert_eq!(got[3], (1536, 2048, 40, false));
        assert_eq!(video.offsets, [1000, 1010, 1030, 1060]);
        assert_eq!(video.timeline().time_base, (1, 12800));

        // An edit list starting at the first pts: ffmpeg shifts pts to start at 0...
        let elst = bx(b"edts", &full(b"elst", 0, &[1, 160, 1024, 0x1_0000]));
        let video = parse_moov(&moov(&[], &elst)).expect("parses").video(2000).expect("reads");
        assert_eq!((video.samples[0].dts, video.samples[0].pts), (-1024, 0));
        // ...and after a 0.5 s empty edit, at 0.5 s.
        let elst =
            bx(b"edts", &full(b"elst", 0, &[2, 500, u32::MAX, 0x1_0000, 160, 1024, 1 << 16]));
        let video = parse_moov(&moov(&[], &elst)).expect("parses").video(2000).expect("reads");
        assert_eq!((video.samples[0].dts, video.samples[0].pts), (6400 - 1024, 6400));
        // An edit list that hides the first frame.
        let elst = bx(b"edts", &full(b"elst", 0, &[1, 100, 1536, 0x1_0000]));
        let track = parse_moov(&moov(&[], &elst)).expect("parses");
        assert!(declined(track.video(2000)).contains("hides"));

        // Sample data past the end of the file.
        assert!(corrupt(parse_moov(&moov(&[], &[])).expect("ok").video(1099)).contains("past"));
        // Fragmented, partial sync samples, empty stss.
        let mut fragmented = moov(&[], &[]);
        fragmented.extend(bx(b"mvex", &[]));
        assert!(declined(parse_moov(&fragmented)).contains("fragmented"));
        assert!(declined(parse_moov(&moov(&full(b"stps", 0, &[1, 2]), &[]))).contains("stps"));
        assert!(declined(parse_moov(&moov(&full(b"stss", 0, &[0]), &[]))).contains("more than"));
        let empty_stss = Track { stss: Some(vec![]), ..Track::default() };
        assert!(declined(empty_stss.index_keys(3)).contains("empty stss"));
        let unordered = Track { stss: Some(vec![2, 1]), ..Track::default() };
        assert!(corrupt(unordered.index_keys(3)).contains("out of order"));
    }

    #[test]
    fn truncated_moov_is_an_error() {
        let moov = bx(b"moov", &moov(&[], &[]));
        let mut file = [bx(b"ftyp", b"isom\0\0\0\0"), moov.clone()].concat();
        let whole = read_moov(&mut std::io::Cursor::new(&file), file.len() as u64).expect("ok");
        assert_eq!(whole, moov[8..]);
        file.truncate(file.len() - moov.len() / 2);
        let cut = read_moov(&mut std::io::Cursor::new(&file), file.len() as u64);
        assert!(corrupt(cut).contains("moov box is truncated"));
        // A cut inside the moov's tables, with the moov's own size fixed up.
        let mut inner = moov[8..].to_vec();
        inner.truncate(inner.len() - 30);
        assert!(corrupt(parse_moov(&inner)).contains("does not fit"));
        // Not boxes at all.
        let text = b"hello, this is not a video\n".to_vec();
        let mut reader = std::io::Cursor::new(&text);
        assert!(declined(read_moov(&mut reader, text.len() as u64)).contains("not an MP4"));
    }

    /// Sample data: NAL units with 4-byte lengths.
    fn nals(units: &[&[u8]]) -> Vec<u8> {
        units
            .iter()
            .flat_map(|u| [(u.len() as u32).to_be_bytes().to_vec(), u.to_vec()])
            .flatten()
            .collect()
    }

    fn data(bytes: &[u8]) -> SampleData<std::io::Cursor<Vec<u8>>> {
        SampleData::new(std::io::Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn h264_key_flags_follow_the_first_slice() {
        let key = |units: &[&[u8]]| {
            let bytes = nals(units);
            h264_parser_key(&mut data(&bytes), 0, bytes.len() as u64, 4).expect("reads")
        };
        let sei_unregistered: &[u8] = &[0x06, 5, 2, 0xaa, 0xbb, 0x80];
        let sei_recovery: &[u8] = &[0x06, 6, 1, 0x84, 0x80];
        assert_eq!(key(&[sei_unregistered, &[0x65, 0x88], &[0x41, 0x9a]]), Some(true));
        assert_eq!(key(&[&[0x09, 0x10], &[0x41, 0x9a], &[0x65, 0x88]]), Some(false));
        assert_eq!(key(&[&[0x67, 1, 2]]), Some(false));
        assert_eq!(key(&[sei_recovery, &[0x41, 0x9a]]), None);
        // A recovery point after an escaped message is still found.
        assert!(sei_has_recovery_point(&[5, 3, 0, 0, 3, 1, 6, 1, 0x84, 0x80]));
        assert!(!sei_has_recovery_point(&[5, 3, 0, 0, 3, 6, 0x80]));
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3, 3]), [0, 0, 1, 0, 0, 3]);
    }

    #[test]
    fn nal_type_query_splits_like_ffmpeg() {
        let has = |bytes: &[u8], hevc: bool, types: RangeInclusive<u8>| {
            has_nal_type(&mut data(bytes), 0, bytes.len() as u64, 4, hevc, &types)
        };
        let h264 = nals(&[&[0x06, 5, 0x80], &[0x65, 0x88, 0x84]]);
        assert!(has(&h264, false, 5..=5).expect("reads"));
        assert!(!has(&h264, false, 1..=1).expect("reads"));
        // HEVC IDR_W_RADL (19) and CRA (21); layer 1 and temporal id 0 do not count.
        let idr: &[u8] = &[19 << 1, 1, 0xaf];
        let cra: &[u8] = &[21 << 1, 1, 0xaf];
        assert!(has(&nals(&[cra, idr]), true, 19..=20).expect("reads"));
        assert!(!has(&nals(&[cra]), true, 19..=20).expect("reads"));
        assert!(!has(&nals(&[&[19 << 1, 1 << 3 | 1, 0xaf]]), true, 19..=20).expect("reads"));
        assert!(!has(&nals(&[&[19 << 1, 0, 0xaf]]), true, 19..=20).expect("reads"));
        // A length that does not fit fails, as in ffmpeg; 1-3 spare bytes are ignored.
        let mut broken = nals(&[idr]);
        broken[3] = 9;
        assert!(corrupt(has(&broken, true, 19..=20)).contains("9 bytes"));
        let spare = [nals(&[cra]), vec![0, 0, 0]].concat();
        assert!(!has(&spare, true, 19..=20).expect("reads"));
    }
}
