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
