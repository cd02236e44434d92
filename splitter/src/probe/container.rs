//! The container check: which container a file is by its first bytes, and the one line for a
//! container this ffmpeg build has no demuxer for.

use std::path::Path;

use crate::tools;

/// A container recognized by its first bytes: what users call it, and the name of ffmpeg's
/// demuxer for it as `ffprobe -demuxers` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Container {
    pub name: &'static str,
    pub demuxer: &'static str,
}

/// Bytes at offsets that must all match.
type Marks = &'static [(usize, &'static [u8])];

/// Containers people feed an upscaler, by signature: (name, demuxer, bytes at offsets that must
/// all match). Which of them a build reads depends on its demuxers (the container image's are in
/// `ffmpeg-components.txt`).
const SIGNATURES: &[(&str, &str, Marks)] = &[
    ("MP4/MOV", "mov", &[(4, b"ftyp")]),
    ("MP4/MOV", "mov", &[(4, b"moov")]),
    ("MP4/MOV", "mov", &[(4, b"mdat")]),
    ("MP4/MOV", "mov", &[(4, b"wide")]),
    ("MP4/MOV", "mov", &[(4, b"free")]),
    ("Matroska/WebM", "matroska", &[(0, b"\x1a\x45\xdf\xa3")]),
    ("AVI", "avi", &[(0, b"RIFF"), (8, b"AVI ")]),
    ("MPEG program stream (VOB/MPG)", "mpeg", &[(0, b"\x00\x00\x01\xba")]),
    ("FLV", "flv", &[(0, b"FLV\x01")]),
    ("ASF (WMV)", "asf", &[(0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")]),
    ("MXF", "mxf", &[(0, b"\x06\x0e\x2b\x34\x02\x05\x01\x01")]),
    ("Ogg", "ogg", &[(0, b"OggS")]),
    ("RealMedia", "rm", &[(0, b".RMF")]),
    ("NUT", "nut", &[(0, b"nut/multimedia container")]),
    ("IVF", "ivf", &[(0, b"DKIF")]),
    ("MPEG-TS", "mpegts", &[(0, b"\x47"), (188, b"\x47"), (376, b"\x47")]),
    ("MPEG-TS (M2TS)", "mpegts", &[(4, b"\x47"), (196, b"\x47"), (388, b"\x47")]),
];

/// The container of a file, from its first bytes.
pub fn container_from_magic(head: &[u8]) -> Option<Container> {
    let at = |offset: usize, sig: &[u8]| head.get(offset..offset + sig.len()) == Some(sig);
    SIGNATURES
        .iter()
        .find(|(_, _, marks)| marks.iter().all(|(offset, sig)| at(*offset, sig)))
        .map(|(name, demuxer, _)| Container { name, demuxer })
}

/// Demuxer names from `ffprobe -demuxers` (lines like ` D  mov,mp4,m4a  QuickTime / MOV`).
pub fn demuxer_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let flags = words.next()?;
            let names = words.next()?;
            (flags.starts_with('D') && flags.len() <= 2 && names != "=")
                .then(|| names.split(',').map(str::to_owned).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

/// The one line for an input whose container this build has no demuxer for; `None` when the
/// container is unknown or the build has its demuxer (then the file itself is the problem).
pub fn unsupported_container(head: &[u8], demuxers: &[String], shown: &str) -> Option<String> {
    let container = container_from_magic(head)?;
    if demuxers.iter().any(|d| d == container.demuxer) {
        return None;
    }
    const READABLE: &[&str] = &["mov", "matroska", "mpegts", "mpeg", "avi", "flv", "asf", "mxf"];
    let names = ["MP4/MOV", "Matroska/WebM", "MPEG-TS", "MPEG-PS", "AVI", "FLV", "ASF", "MXF"];
    let reads: Vec<&str> = READABLE
        .iter()
        .zip(names)
        .filter(|(d, _)| demuxers.iter().any(|have| have == *d))
        .map(|(_, name)| name)
        .collect();
    Some(format!(
        "{shown} is in the {} container, which this ffmpeg build does not support (it has no \
         `{}` demuxer); it reads {}: remux the file into one of those (e.g. `ffmpeg -i IN -c copy \
         OUT.mkv`)",
        container.name,
        container.demuxer,
        reads.join(", ")
    ))
}

/// Whether a download can be read while it arrives, from its first bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// ffmpeg can read it front to back: probe once this many bytes are on disk (the whole
    /// index of an MP4, plus a margin so the probe sees the first GOPs), cut from the stream.
    Stream { probe_after: u64 },
    /// An MP4 whose media data (`mdat`, these bytes of the file) comes before its index: read
    /// front to back once the index is fetched from the end and put in front of the media
    /// data (see [`crate::faststart`]).
    IndexAfterMedia { media: std::ops::Range<u64> },
    /// Only the whole file can be read (the reason, for the log).
    AfterDownload(&'static str),
    /// Not known until more bytes are on disk.
    NeedMore,
}

/// Bytes past the index (or the start) a probe gets before a streamed cut starts.
pub const PROBE_MARGIN: u64 = 16 << 20;

/// How a download can be read (see [`Readiness`]): Matroska/WebM and MPEG-TS front to back;
/// MP4/MOV when its index (`moov`) comes before the media data (`mdat`, "fast start"), which
/// `box_at` (an MP4 box header at an offset: its size and type, `None` when those bytes are not
/// on disk yet) tells; everything else after the download. `complete`: no more bytes will come.
pub fn readiness(
    container: Option<Container>,
    complete: bool,
    mut box_at: impl FnMut(u64) -> Option<(u64, [u8; 4])>,
) -> Readiness {
    match container.map(|c| c.demuxer) {
        Some("matroska" | "mpegts") => Readiness::Stream { probe_after: PROBE_MARGIN },
        Some("mov") => {
            let mut offset = 0u64;
            loop {
                let Some((size, kind)) = box_at(offset) else {
                    return if complete {
                        Readiness::AfterDownload("it has no index (moov box)")
                    } else {
                        Readiness::NeedMore
                    };
                };
                match &kind {
                    b"moov" if size >= 8 => {
                        return Readiness::Stream {
                            probe_after: offset.saturating_add(size).saturating_add(PROBE_MARGIN),
                        };
                    }
                    b"mdat" if size >= 8 && size != u64::MAX => {
                        return Readiness::IndexAfterMedia {
                            media: offset..offset.saturating_add(size),
                        };
                    }
                    b"mdat" => {
                        return Readiness::AfterDownload(
                            "its media data runs to the end of the file, with no index before it",
                        );
                    }
                    _ if size < 8 => {
                        return Readiness::AfterDownload("its boxes could not be followed");
                    }
                    _ => offset = offset.saturating_add(size),
                }
            }
        }
        _ => Readiness::AfterDownload("its container is read after the download"),
    }
}

/// An MP4 box header from its first 16 bytes: size (a 64-bit size when the 32-bit one is 1;
/// `u64::MAX` for "to the end of the file") and type.
pub fn mp4_box(header: &[u8; 16]) -> (u64, [u8; 4]) {
    let word =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let kind = [header[4], header[5], header[6], header[7]];
    let size = match word(0) {
        0 => u64::MAX,
        1 => u64::from(word(8)) << 32 | u64::from(word(12)),
        n => u64::from(n),
    };
    (size, kind)
}

/// The demuxers this ffprobe build has (none when it cannot list them).
pub(super) async fn ffprobe_demuxers(ffprobe: &Path) -> Vec<String> {
    let out = tools::ffprobe_command(ffprobe).arg("-demuxers").output().await;
    out.map(|o| demuxer_names(&String::from_utf8_lossy(&o.stdout))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first lines of `ffprobe -demuxers` of the container's build (7.1.5), and of a
    /// full build.
    const IMAGE_DEMUXERS: &str = "File formats:\n D. = Demuxing supported\n .E = Muxing \
        supported\n --\n D  avi             AVI (Audio Video Interleaved)\n D  flv             \
        FLV (Flash Video)\n D  matroska,webm   Matroska / WebM\n D  mov,mp4,m4a,3gp,3g2,mj2 \
        QuickTime / MOV\n D  mpeg            MPEG-PS (MPEG-2 Program Stream)\n D  mpegts      \
        MPEG-TS (MPEG-2 Transport Stream)\n";

    #[test]
    fn containers_are_named_by_their_first_bytes() {
        let name = |head: &[u8]| container_from_magic(head).map(|c| c.demuxer);
        assert_eq!(name(b"\0\0\0\x20ftypisom"), Some("mov"));
        assert_eq!(name(b"RIFF\x10\0\0\0AVI LIST"), Some("avi"));
        assert_eq!(name(b"RIFF\x10\0\0\0WAVEfmt "), None);
        assert_eq!(name(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9"), Some("asf"));
        assert_eq!(name(b"\x06\x0e\x2b\x34\x02\x05\x01\x01\x0d\x01"), Some("mxf"));
        let mut ts = vec![0u8; 564];
        for i in [0, 188, 376] {
            ts[i] = 0x47;
        }
        assert_eq!(name(&ts), Some("mpegts"));
        assert_eq!(name(b"\x47 not a transport stream"), None);
    }

    /// Box headers of a file laid out as `boxes` (type, size), `available` bytes on disk.
    fn layout(
        boxes: &[(&[u8; 4], u64)],
        available: u64,
    ) -> impl FnMut(u64) -> Option<(u64, [u8; 4])> {
        let mut at = Vec::new();
        let mut offset = 0u64;
        for (kind, size) in boxes {
            at.push((offset, *size, **kind));
            offset = offset.saturating_add(*size);
        }
        move |offset| {
            (offset + 16 <= available)
                .then(|| at.iter().find(|(o, _, _)| *o == offset).map(|(_, s, k)| (*s, *k)))
                .flatten()
        }
    }

    #[test]
    fn fast_start_mp4_matroska_and_ts_are_read_while_they_download() {
        let mp4 = container_from_magic(b"\0\0\0\x20ftypisom");
        let fast_start = [(b"ftyp", 32), (b"moov", 5000), (b"free", 8), (b"mdat", 1 << 30)];
        assert_eq!(
            readiness(mp4, false, layout(&fast_start, 10_000)),
            Readiness::Stream { probe_after: 5032 + PROBE_MARGIN }
        );
        // The moov's header not on disk yet.
        assert_eq!(readiness(mp4, false, layout(&fast_start, 20)), Readiness::NeedMore);
        let index_last = [(b"ftyp", 32), (b"free", 8), (b"mdat", 1 << 30), (b"moov", 5000)];
        assert_eq!(
            readiness(mp4, false, layout(&index_last, 10_000)),
            Readiness::IndexAfterMedia { media: 40..40 + (1 << 30) }
        );
        let open_ended = [(b"ftyp", 32), (b"mdat", u64::MAX)];
        assert!(matches!(
            readiness(mp4, false, layout(&open_ended, 10_000)),
            Readiness::AfterDownload(_)
        ));
        let broken = [(b"ftyp", 32), (b"wide", 0)];
        assert!(matches!(readiness(mp4, true, layout(&broken, 100)), Readiness::AfterDownload(_)));
        let mkv = container_from_magic(b"\x1a\x45\xdf\xa3\x01");
        assert_eq!(
            readiness(mkv, false, |_| None),
            Readiness::Stream { probe_after: PROBE_MARGIN }
        );
        let avi = container_from_magic(b"RIFF\x10\0\0\0AVI LIST");
        assert!(matches!(readiness(avi, false, |_| None), Readiness::AfterDownload(_)));
        assert!(matches!(readiness(None, false, |_| None), Readiness::AfterDownload(_)));
    }

    #[test]
    fn mp4_box_headers_with_32_and_64_bit_sizes() {
        let mut h = [0u8; 16];
        h[..8].copy_from_slice(b"\0\0\x10\0moov");
        assert_eq!(mp4_box(&h), (4096, *b"moov"));
        h[..16].copy_from_slice(b"\0\0\0\x01mdat\0\0\0\x01\0\0\0\x10");
        assert_eq!(mp4_box(&h), ((1 << 32) + 16, *b"mdat"));
        h[..8].copy_from_slice(b"\0\0\0\0mdat");
        assert_eq!(mp4_box(&h).0, u64::MAX);
    }

    #[test]
    fn a_container_without_its_demuxer_gets_one_line_naming_it() {
        let demuxers = demuxer_names(IMAGE_DEMUXERS);
        assert_eq!(
            demuxers,
            [
                "avi", "flv", "matroska", "webm", "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "mpeg",
                "mpegts"
            ]
        );
        let asf = b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa";
        assert_eq!(
            unsupported_container(asf, &demuxers, "in.wmv").as_deref(),
            Some(
                "in.wmv is in the ASF (WMV) container, which this ffmpeg build does not support \
                 (it has no `asf` demuxer); it reads MP4/MOV, Matroska/WebM, MPEG-TS, MPEG-PS, AVI, FLV: \
                 remux the file into one of those (e.g. `ffmpeg -i IN -c copy OUT.mkv`)"
            )
        );
        // A build that has the demuxer: the file is the problem, not the build.
        assert_eq!(unsupported_container(asf, &["asf".to_owned()], "in.wmv"), None);
        assert_eq!(unsupported_container(b"random bytes", &demuxers, "x"), None);
    }
}
