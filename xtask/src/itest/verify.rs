//! What a succeeded job must have written, checked without AWS: the manifest
//! ([`super::manifest`]), the facts gathered about each object it lists ([`Stored`], among them
//! each segment's video packets as the host's ffprobe lists them:
//! [`Packets`](super::output::Packets)), and what the source should give
//! ([`super::source::Expect`]). The checks are [`CHECKS`], one function each.

use super::manifest::{Manifest, SCHEMAS};
use super::output::Stored;
use super::source::{Expect, Source};

/// The checks of a run, in the order they are reported.
pub const CHECKS: [&str; 11] = [
    "manifest",
    "source",
    "objects",
    "packets",
    "keyframes",
    "segments",
    "contiguous",
    "duration",
    "frames",
    "audio",
    "no extras",
];

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// A check's result before it is named: whether it passed, and what was seen.
type Verdict = (bool, String);

/// All checks of one run ([`CHECKS`]). `stored` has one entry per file of the manifest; `listed`
/// is every key under the output prefix (relative to it).
pub fn verify(
    m: &Manifest,
    source: &Source,
    segment_seconds: f64,
    stored: &[Stored],
    listed: &[String],
) -> Vec<Check> {
    let e = &source.expect;
    let [packets, keyframes] = packet_checks(m, stored);
    let verdicts: [Verdict; CHECKS.len()] = [
        manifest_check(m, segment_seconds),
        source_check(m, source),
        objects_check(m, stored),
        packets,
        keyframes,
        segments_check(m, e, segment_seconds),
        contiguous_check(m, e),
        duration_check(m, e),
        frames_check(m, e),
        audio_check(m, e),
        no_extras_check(m, listed),
    ];
    CHECKS
        .into_iter()
        .zip(verdicts)
        .map(|(name, (ok, detail))| Check { name, ok, detail })
        .collect()
}

/// `manifest`: a schema itest reads, written for the `segment_seconds` asked.
fn manifest_check(m: &Manifest, segment_seconds: f64) -> Verdict {
    (
        SCHEMAS.contains(&m.schema_version) && (m.segment_seconds - segment_seconds).abs() < 1e-9,
        format!(
            "schema {} (itest reads {}..={}), splitter {}, ffmpeg {}, segment_seconds {} (asked {})",
            m.schema_version,
            SCHEMAS.start(),
            SCHEMAS.end(),
            m.splitter_version,
            m.ffmpeg_version.as_deref().unwrap_or("?"),
            m.segment_seconds,
            segment_seconds
        ),
    )
}

/// `source`: the manifest describes the uploaded video (size and sha256).
fn source_check(m: &Manifest, source: &Source) -> Verdict {
    let same_source = m.source.bytes == source.bytes && m.source.sha256 == source.sha256;
    let detail = if same_source {
        format!(
            "{} bytes, sha256 {}… = the uploaded video; {} {}x{} {} fps",
            source.bytes,
            &source.sha256[..12.min(source.sha256.len())],
            m.source.video.codec,
            m.source.video.width,
            m.source.video.height,
            rate(m.source.video.frame_rate)
        )
    } else {
        format!(
            "the manifest says {} bytes, sha256 {}; the uploaded video is {} bytes, sha256 {}",
            m.source.bytes, m.source.sha256, source.bytes, source.sha256
        )
    };
    (same_source, detail)
}

/// `24`, `29.97`.
fn rate(fps: f64) -> String {
    let text = format!("{fps:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `objects`: every file the manifest lists is stored with its size and sha256 (downloaded), and
/// an `x-amz-meta-sha256` that is there and agrees.
fn objects_check(m: &Manifest, stored: &[Stored]) -> Verdict {
    let mut problems = Vec::new();
    let mut total = 0u64;
    for (path, bytes, sha) in m.files() {
        let Some(s) = stored.iter().find(|s| s.path == path) else {
            problems.push(format!("{path}: not checked"));
            continue;
        };
        match s.bytes {
            None => problems.push(format!("{path}: missing")),
            Some(b) if b != bytes => {
                problems.push(format!("{path}: {b} bytes, the manifest says {bytes}"))
            }
            Some(b) => total += b,
        }
        if s.bytes.is_some() && s.sha256.as_deref() != Some(sha) {
            problems.push(format!(
                "{path}: sha256 {}, the manifest says {sha}",
                s.sha256.as_deref().unwrap_or("?")
            ));
        }
        match (&s.meta_sha256, s.bytes) {
            (Some(meta), _) if meta != sha => {
                problems.push(format!("{path}: x-amz-meta-sha256 {meta}, the manifest says {sha}"))
            }
            (None, Some(_)) => problems.push(format!(
                "{path}: no x-amz-meta-sha256 (the splitter stores every file with its sha256 as metadata)"
            )),
            _ => {}
        }
    }
    let n = m.files().len();
    if problems.is_empty() {
        (
            true,
            format!(
                "{n} files, {total} bytes: sizes and sha256 as the manifest says (downloaded), \
                 x-amz-meta-sha256 too"
            ),
        )
    } else {
        (false, problems.join("; "))
    }
}

/// `packets`: each segment has as many video packets as the manifest says a standalone decode
/// outputs (`lead_in_frames + frames + trailing_frames`; with leading pictures, which a decoder
/// may drop, that many more are allowed). `keyframes`: each segment's first packet in decode
/// order is a keyframe. Both from ffprobe's listing of the downloaded file.
fn packet_checks(m: &Manifest, stored: &[Stored]) -> [Verdict; 2] {
    let mut counts = Vec::new();
    let mut count_problems = Vec::new();
    let mut key_problems = Vec::new();
    for seg in &m.segments {
        let path = seg.file.path.as_str();
        let want = seg.decoded_frames();
        let probed = stored.iter().find(|s| s.path == path).and_then(|s| s.packets.as_ref());
        let packets = match probed {
            None => {
                for problems in [&mut count_problems, &mut key_problems] {
                    problems.push(format!("{path}: not probed (no object)"));
                }
                continue;
            }
            Some(Err(why)) => {
                for problems in [&mut count_problems, &mut key_problems] {
                    problems.push(format!("{path}: ffprobe cannot list its packets: {why}"));
                }
                continue;
            }
            Some(Ok(p)) => p,
        };
        let count_ok = packets.count == want
            || (packets.leading > 0 && packets.count == want + packets.leading);
        if count_ok {
            counts.push(packets.count.to_string());
        } else {
            let leading = if packets.leading > 0 {
                format!(
                    " (or {} with its {} leading pictures)",
                    want + packets.leading,
                    packets.leading
                )
            } else {
                String::new()
            };
            count_problems.push(format!(
                "{path}: {} video packets (ffprobe), the manifest says {want} \
                 ({} lead-in + {} frames + {} trailing){leading}",
                packets.count, seg.lead_in_frames, seg.frames, seg.trailing_frames
            ));
        }
        match &packets.first_flags {
            _ if packets.starts_on_keyframe() => {}
            None => key_problems.push(format!("{path}: no video packets (ffprobe)")),
            Some(flags) => key_problems.push(format!(
                "{path}: its first video packet is not a keyframe (ffprobe flags `{flags}`)"
            )),
        }
    }
    let n = m.segments.len();
    if n == 0 {
        let none = || "the manifest lists no segments".to_owned();
        return [(false, none()), (false, none())];
    }
    let count = if count_problems.is_empty() {
        (
            true,
            format!(
                "{} video packets (ffprobe) = lead-in + frames + trailing of each segment, as the manifest says",
                counts.join(" + ")
            ),
        )
    } else {
        (false, count_problems.join("; "))
    };
    let keys = if key_problems.is_empty() {
        (true, format!("each of the {n} segment(s) starts on a keyframe (ffprobe, decode order)"))
    } else {
        (false, key_problems.join("; "))
    };
    [count, keys]
}

/// `segments`: as many as the keyframes and `segment_seconds` give (or a plausible count when
/// the keyframes are unknown), indexed 0, 1, 2, ….
fn segments_check(m: &Manifest, e: &Expect, segment_seconds: f64) -> Verdict {
    let n = m.segments.len();
    let indexes_ok = m.segments.iter().enumerate().all(|(i, s)| s.index == i);
    let (count_ok, expected) = match e.segments(segment_seconds) {
        Some(want) => (n == want, format!("expected {want} from the keyframes ({})", e.from)),
        None => {
            let max = e.max_segments(segment_seconds);
            (n >= 1 && n <= max, format!("expected 1..={max} for {:.3} s", e.video_seconds))
        }
    };
    (
        indexes_ok && count_ok && n > 0,
        format!(
            "{n} at {segment_seconds} s, {expected}{}",
            if indexes_ok { "" } else { "; indexes are not 0, 1, 2, …" }
        ),
    )
}

/// One frame of the source in seconds (the tolerance of `contiguous` and `duration`).
fn one_frame(m: &Manifest, e: &Expect) -> f64 {
    if e.frame_rate > 0.0 { 1.0 / e.frame_rate } else { 1.0 / m.source.video.frame_rate }
}

/// `contiguous`: each segment starts where the one before ends, the first at the first frame.
fn contiguous_check(m: &Manifest, e: &Expect) -> Verdict {
    let frame = one_frame(m, e);
    let mut gaps = Vec::new();
    if let Some(first) = m.segments.first() {
        if first.start_seconds.abs() > frame / 2.0 {
            gaps.push(format!("segment 0 starts at {:.6} s", first.start_seconds));
        }
    }
    for w in m.segments.windows(2) {
        let end = w[0].start_seconds + w[0].duration_seconds;
        if (end - w[1].start_seconds).abs() > 1e-6 {
            gaps.push(format!(
                "segment {} ends at {end:.6} s, segment {} starts at {:.6} s",
                w[0].index, w[1].index, w[1].start_seconds
            ));
        }
    }
    let bounds: Vec<String> = m
        .segments
        .iter()
        .map(|s| format!("{:.3}", s.start_seconds))
        .chain(m.segments.last().map(|s| format!("{:.3}", s.start_seconds + s.duration_seconds)))
        .collect();
    (
        gaps.is_empty(),
        if gaps.is_empty() { format!("{} s", bounds.join(" → ")) } else { gaps.join("; ") },
    )
}

/// `duration`: the segments' durations add up to the source's, within one frame.
fn duration_check(m: &Manifest, e: &Expect) -> Verdict {
    let frame = one_frame(m, e);
    let sum: f64 = m.segments.iter().map(|s| s.duration_seconds).sum();
    let delta = (sum - e.video_seconds).abs();
    let parts: Vec<String> =
        m.segments.iter().map(|s| format!("{:.3}", s.duration_seconds)).collect();
    (
        e.video_seconds > 0.0 && delta <= frame + 1e-6,
        format!(
            "{} = {sum:.3} s; source {:.3} s ({}), off by {delta:.3} s (one frame: {frame:.3} s)",
            parts.join(" + "),
            e.video_seconds,
            e.from
        ),
    )
}

/// `frames`: the segments own every frame of the source once.
fn frames_check(m: &Manifest, e: &Expect) -> Verdict {
    let frames: u64 = m.segments.iter().map(|s| s.frames).sum();
    let frames_ok = frames == m.source.video.frames && e.frames.is_none_or(|f| f == frames);
    let want = match e.frames {
        Some(f) => format!("source {} (manifest), {f} ({})", m.source.video.frames, e.from),
        None => format!("source {} (manifest)", m.source.video.frames),
    };
    (frames_ok, format!("{frames} in the segments; {want}"))
}

/// `audio`: one audio file per audio stream of the source.
fn audio_check(m: &Manifest, e: &Expect) -> Verdict {
    let tracks: Vec<String> = m
        .audio
        .iter()
        .map(|a| {
            let mut t = a.codec.clone();
            if let Some(c) = a.channels {
                t.push_str(&format!(" {c} ch"));
            }
            if let Some(r) = a.sample_rate {
                t.push_str(&format!(" {r} Hz"));
            }
            t
        })
        .collect();
    (
        m.audio.len() == e.audio_streams,
        format!(
            "{} file(s){}; the source has {} audio stream(s) ({})",
            m.audio.len(),
            if tracks.is_empty() { String::new() } else { format!(": {}", tracks.join(", ")) },
            e.audio_streams,
            e.from
        ),
    )
}

/// `no extras`: nothing under the output prefix but the manifest and what it lists.
fn no_extras_check(m: &Manifest, listed: &[String]) -> Verdict {
    let known: Vec<&str> = m.files().iter().map(|(p, _, _)| *p).collect();
    let extra: Vec<&String> =
        listed.iter().filter(|k| *k != "manifest.json" && !known.contains(&k.as_str())).collect();
    (
        extra.is_empty(),
        if extra.is_empty() {
            format!("{} objects: the manifest and the {} files it lists", listed.len(), known.len())
        } else {
            format!(
                "objects the manifest does not list: {}",
                extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
    )
}

#[cfg(test)]
mod tests;
