//! What a succeeded job must have written, checked without AWS: the manifest (schema 1 or 2,
//! see `splitter/README.md`), the facts gathered about each object it lists (among them each
//! segment's video packets as the host's ffprobe lists them: [`Packets`]), and what the source
//! should give ([`super::source::Expect`]).

use std::ops::RangeInclusive;

use serde::Deserialize;

use super::source::Source;

/// The manifest schemas itest reads: 2 added each segment's `pts_digest` (which itest does not
/// check), nothing itest reads changed.
pub const SCHEMAS: RangeInclusive<u32> = 1..=2;

/// The fields of `manifest.json` itest checks (unknown fields are ignored).
///
/// Deliberately not `splitter::manifest::Manifest`: itest checks what a *deployed* image wrote,
/// which may be an older or newer splitter than this checkout, so it reads only the fields it
/// checks, leniently, and judges `schema_version` itself (a failed check line, not a serde
/// error). Sharing the producer's types would also let a contract change (a renamed field) pass
/// unnoticed on both sides, and make xtask rebuild on every splitter edit. `splitter/README.md`
/// documents the schema; the itest tests run the real splitter against this view.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub splitter_version: String,
    pub segment_seconds: f64,
    #[serde(default)]
    pub ffmpeg_version: Option<String>,
    pub source: ManifestSource,
    pub segments: Vec<Segment>,
    #[serde(default)]
    pub audio: Vec<Audio>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestSource {
    pub bytes: u64,
    pub sha256: String,
    pub video: Video,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Video {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub frames: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Segment {
    pub index: usize,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Frames a standalone decode of the file outputs: `lead_in_frames` (dropped by a worker),
    /// `frames` (owned), `trailing_frames`.
    pub frames: u64,
    pub lead_in_frames: u64,
    pub trailing_frames: u64,
    pub start_seconds: f64,
    pub duration_seconds: f64,
}

impl Segment {
    /// Frames a standalone decode of the segment outputs.
    pub fn decoded_frames(&self) -> u64 {
        self.lead_in_frames + self.frames + self.trailing_frames
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Audio {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub codec: String,
    #[serde(default)]
    pub channels: Option<u32>,
    #[serde(default)]
    pub sample_rate: Option<u32>,
}

impl Manifest {
    /// Every file the manifest lists: (path, bytes, sha256).
    pub fn files(&self) -> Vec<(&str, u64, &str)> {
        self.segments
            .iter()
            .map(|s| (s.path.as_str(), s.bytes, s.sha256.as_str()))
            .chain(self.audio.iter().map(|a| (a.path.as_str(), a.bytes, a.sha256.as_str())))
            .collect()
    }
}

/// What S3 holds for one file the manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub path: String,
    /// `None`: no such object.
    pub bytes: Option<u64>,
    /// sha256 of the downloaded bytes.
    pub sha256: Option<String>,
    /// `x-amz-meta-sha256`, when the object carries it.
    pub meta_sha256: Option<String>,
    /// For a segment that exists: its video packets (ffprobe), or why ffprobe cannot list them.
    pub packets: Option<Result<Packets, String>>,
}

/// A segment's video packets in decode order, as the host's ffprobe lists them: the witness of
/// what the manifest says about the file, independent of the splitter's own reading of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packets {
    pub count: u64,
    /// ffprobe's flags of the first packet (`K_`: keyframe); `None` without video packets.
    pub first_flags: Option<String>,
    /// Packets of the first GOP shown before its keyframe (smaller pts, later in decode order):
    /// leading pictures, which a decoder drops when the keyframe is not a clean random-access
    /// point (open GOP). 0 for closed GOPs.
    pub leading: u64,
}

impl Packets {
    pub fn starts_on_keyframe(&self) -> bool {
        self.first_flags.as_deref().is_some_and(|f| f.contains('K'))
    }
}

/// Reads `ffprobe -select_streams v:0 -show_entries packet=pts,flags -of csv=p=0`: one
/// `pts,flags` line per packet (pts may be `N/A`).
pub fn parse_packets(csv: &str) -> Result<Packets, String> {
    let mut count = 0u64;
    let mut first_flags = None;
    // The first keyframe's pts, while still in the first GOP.
    let mut key_pts: Option<Option<i64>> = None;
    let mut in_first_gop = false;
    let mut leading = 0u64;
    for line in csv.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (pts, flags) = line
            .split_once(',')
            .ok_or_else(|| format!("ffprobe printed `{line}`, not `pts,flags`"))?;
        let pts = match pts.trim() {
            "N/A" => None,
            p => Some(
                p.parse::<i64>()
                    .map_err(|_| format!("ffprobe printed `{line}`: pts is not a number"))?,
            ),
        };
        let key = flags.contains('K');
        count += 1;
        if count == 1 {
            first_flags = Some(flags.trim().to_owned());
            if key {
                key_pts = Some(pts);
                in_first_gop = true;
            }
            continue;
        }
        if key {
            in_first_gop = false;
        }
        if in_first_gop {
            if let (Some(Some(k)), Some(p)) = (key_pts, pts) {
                if p < k {
                    leading += 1;
                }
            }
        }
    }
    Ok(Packets { count, first_flags, leading })
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check { name, ok, detail: detail.into() }
}

/// All checks of one run. `stored` has one entry per file of the manifest; `listed` is every
/// key under the output prefix (relative to it).
pub fn verify(
    m: &Manifest,
    source: &Source,
    segment_seconds: f64,
    stored: &[Stored],
    listed: &[String],
) -> Vec<Check> {
    let e = &source.expect;
    let mut out = Vec::new();

    out.push(check(
        "manifest",
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
    ));

    let same_source = m.source.bytes == source.bytes && m.source.sha256 == source.sha256;
    out.push(check(
        "source",
        same_source,
        if same_source {
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
        },
    ));

    out.push(objects_check(m, stored));
    out.extend(packet_checks(m, stored));

    // Segment count and indexes.
    let n = m.segments.len();
    let indexes_ok = m.segments.iter().enumerate().all(|(i, s)| s.index == i);
    let (count_ok, expected) = match e.segments(segment_seconds) {
        Some(want) => (n == want, format!("expected {want} from the keyframes ({})", e.from)),
        None => {
            let max = e.max_segments(segment_seconds);
            (n >= 1 && n <= max, format!("expected 1..={max} for {:.3} s", e.video_seconds))
        }
    };
    out.push(check(
        "segments",
        indexes_ok && count_ok && n > 0,
        format!(
            "{n} at {segment_seconds} s, {expected}{}",
            if indexes_ok { "" } else { "; indexes are not 0, 1, 2, …" }
        ),
    ));

    // Contiguous, from the first frame.
    let frame =
        if e.frame_rate > 0.0 { 1.0 / e.frame_rate } else { 1.0 / m.source.video.frame_rate };
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
    out.push(check(
        "contiguous",
        gaps.is_empty(),
        if gaps.is_empty() { format!("{} s", bounds.join(" → ")) } else { gaps.join("; ") },
    ));

    // Durations add up to the source's, within one frame.
    let sum: f64 = m.segments.iter().map(|s| s.duration_seconds).sum();
    let delta = (sum - e.video_seconds).abs();
    let parts: Vec<String> =
        m.segments.iter().map(|s| format!("{:.3}", s.duration_seconds)).collect();
    out.push(check(
        "duration",
        e.video_seconds > 0.0 && delta <= frame + 1e-6,
        format!(
            "{} = {sum:.3} s; source {:.3} s ({}), off by {delta:.3} s (one frame: {frame:.3} s)",
            parts.join(" + "),
            e.video_seconds,
            e.from
        ),
    ));

    // Frames: the segments own every frame once.
    let frames: u64 = m.segments.iter().map(|s| s.frames).sum();
    let frames_ok = frames == m.source.video.frames && e.frames.is_none_or(|f| f == frames);
    let want = match e.frames {
        Some(f) => format!("source {} (manifest), {f} ({})", m.source.video.frames, e.from),
        None => format!("source {} (manifest)", m.source.video.frames),
    };
    out.push(check("frames", frames_ok, format!("{frames} in the segments; {want}")));

    // One audio file per audio stream.
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
    out.push(check(
        "audio",
        m.audio.len() == e.audio_streams,
        format!(
            "{} file(s){}; the source has {} audio stream(s) ({})",
            m.audio.len(),
            if tracks.is_empty() { String::new() } else { format!(": {}", tracks.join(", ")) },
            e.audio_streams,
            e.from
        ),
    ));

    // Nothing but what the manifest lists.
    let known: Vec<&str> = m.files().iter().map(|(p, _, _)| *p).collect();
    let extra: Vec<&String> =
        listed.iter().filter(|k| *k != "manifest.json" && !known.contains(&k.as_str())).collect();
    out.push(check(
        "no extras",
        extra.is_empty(),
        if extra.is_empty() {
            format!("{} objects: the manifest and the {} files it lists", listed.len(), known.len())
        } else {
            format!(
                "objects the manifest does not list: {}",
                extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
    ));
    out
}

/// `24`, `29.97`.
fn rate(fps: f64) -> String {
    let text = format!("{fps:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn objects_check(m: &Manifest, stored: &[Stored]) -> Check {
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
        check(
            "objects",
            true,
            format!(
                "{n} files, {total} bytes: sizes and sha256 as the manifest says (downloaded), \
                 x-amz-meta-sha256 too"
            ),
        )
    } else {
        check("objects", false, problems.join("; "))
    }
}

/// `packets`: each segment has as many video packets as the manifest says a standalone decode
/// outputs (`lead_in_frames + frames + trailing_frames`; with leading pictures, which a decoder
/// may drop, that many more are allowed). `keyframes`: each segment's first packet in decode
/// order is a keyframe. Both from ffprobe's listing of the downloaded file.
fn packet_checks(m: &Manifest, stored: &[Stored]) -> [Check; 2] {
    let mut counts = Vec::new();
    let mut count_problems = Vec::new();
    let mut key_problems = Vec::new();
    for seg in &m.segments {
        let path = seg.path.as_str();
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
        return [check("packets", false, none()), check("keyframes", false, none())];
    }
    let count = if count_problems.is_empty() {
        check(
            "packets",
            true,
            format!(
                "{} video packets (ffprobe) = lead-in + frames + trailing of each segment, as the manifest says",
                counts.join(" + ")
            ),
        )
    } else {
        check("packets", false, count_problems.join("; "))
    };
    let keys = if key_problems.is_empty() {
        check(
            "keyframes",
            true,
            format!("each of the {n} segment(s) starts on a keyframe (ffprobe, decode order)"),
        )
    } else {
        check("keyframes", false, key_problems.join("; "))
    };
    [count, keys]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::itest::source::Expect;

    /// The manifest the splitter wrote for the fixture (a real one, from the container).
    const FIXTURE_MANIFEST: &str = r#"{
      "schema_version": 1, "splitter_version": "0.1.0", "segment_seconds": 10.0,
      "ffmpeg_version": "7.1.5-0+deb13u1",
      "source": {"uri": "s3://b/itest/x/input.mp4", "bytes": 355304,
        "sha256": "84edc00503b7f97c6d1c3c99f504cc0de211ac8aa1e5ea356561e73ff85bb44f",
        "format": "mov,mp4,m4a,3gp,3g2,mj2", "duration_seconds": 12.0,
        "video": {"stream_index": 0, "codec": "h264", "profile": "Main", "width": 320, "height": 240,
          "pixel_format": null, "frame_rate": 24.0, "frame_rate_rational": "24/1", "frames": 288,
          "rotation": 0, "time_base": "1/12288"}},
      "segments": [
        {"index": 0, "path": "segments/000000.mp4", "bytes": 214538, "sha256": "d919", "frames": 240,
         "start_seconds": 0.0, "duration_seconds": 10.0, "lead_in_frames": 0, "trailing_frames": 0,
         "start_pts": 0, "end_pts": 122880},
        {"index": 1, "path": "segments/000001.mp4", "bytes": 39739, "sha256": "1ce9", "frames": 48,
         "start_seconds": 10.0, "duration_seconds": 2.0, "lead_in_frames": 0, "trailing_frames": 0,
         "start_pts": 122880, "end_pts": 147456}],
      "audio": [{"stream_index": 1, "path": "audio/stream-1.m4a", "bytes": 99375, "sha256": "5608",
        "codec": "aac", "channels": 2, "sample_rate": 48000, "language": null}],
      "excluded_streams": []
    }"#;

    fn source() -> Source {
        Source {
            path: "itest.mp4".into(),
            bytes: 355304,
            sha256: "84edc00503b7f97c6d1c3c99f504cc0de211ac8aa1e5ea356561e73ff85bb44f".into(),
            expect: Expect::fixture(),
        }
    }

    /// What S3 and ffprobe give for a correct output: each segment as many packets as the
    /// manifest says, starting on a keyframe.
    fn stored(m: &Manifest) -> Vec<Stored> {
        m.files()
            .iter()
            .map(|(p, b, s)| Stored {
                path: p.to_string(),
                bytes: Some(*b),
                sha256: Some(s.to_string()),
                meta_sha256: Some(s.to_string()),
                packets: m.segments.iter().find(|seg| seg.path == *p).map(|seg| {
                    Ok(Packets {
                        count: seg.decoded_frames(),
                        first_flags: Some("K_".into()),
                        leading: 0,
                    })
                }),
            })
            .collect()
    }

    fn listed(m: &Manifest) -> Vec<String> {
        let mut l: Vec<String> = m.files().iter().map(|(p, _, _)| p.to_string()).collect();
        l.push("manifest.json".into());
        l
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn the_fixture_manifest_passes_every_check() {
        let m: Manifest = serde_json::from_str(FIXTURE_MANIFEST).expect("manifest");
        let checks = verify(&m, &source(), 10.0, &stored(&m), &listed(&m));
        assert_eq!(failed(&checks), Vec::<&str>::new(), "{checks:#?}");
        assert_eq!(checks.len(), 11);
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
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
                "no extras"
            ]
        );
        let packets = checks.iter().find(|c| c.name == "packets").expect("packets");
        assert!(
            packets.detail.starts_with("240 + 48 video packets (ffprobe)"),
            "{}",
            packets.detail
        );
        let duration = checks.iter().find(|c| c.name == "duration").expect("duration");
        assert!(duration.detail.starts_with("10.000 + 2.000 = 12.000 s"), "{}", duration.detail);
    }

    #[test]
    fn each_kind_of_damage_fails_its_check() {
        let good: Manifest = serde_json::from_str(FIXTURE_MANIFEST).expect("manifest");

        // A corrupted object, a missing one, a wrong size.
        let mut s = stored(&good);
        s[0].sha256 = Some("00".into());
        s[1].bytes = None;
        s[1].packets = None;
        s[2].bytes = Some(1);
        let checks = verify(&good, &source(), 10.0, &s, &listed(&good));
        assert_eq!(failed(&checks), ["objects", "packets", "keyframes"]);
        let detail = &checks.iter().find(|c| c.name == "objects").expect("objects").detail;
        assert!(detail.contains("segments/000000.mp4: sha256 00"), "{detail}");
        assert!(detail.contains("segments/000001.mp4: missing"), "{detail}");
        assert!(detail.contains("audio/stream-1.m4a: 1 bytes"), "{detail}");
        assert!(!detail.contains("x-amz-meta-sha256"), "a missing object has no metadata to miss");
        let detail = &checks.iter().find(|c| c.name == "packets").expect("packets").detail;
        assert_eq!(detail, "segments/000001.mp4: not probed (no object)");

        // A lost segment: count, duration and frames no longer add up.
        let mut m = good.clone();
        m.segments.pop();
        let checks = verify(&m, &source(), 10.0, &stored(&m), &listed(&m));
        assert_eq!(failed(&checks), ["segments", "duration", "frames"]);

        // A gap between segments.
        let mut m = good.clone();
        m.segments[1].start_seconds = 10.5;
        m.segments[1].duration_seconds = 1.5;
        let checks = verify(&m, &source(), 10.0, &stored(&m), &listed(&m));
        assert_eq!(failed(&checks), ["contiguous", "duration"]);

        // Audio missing, an unlisted object, another source, another segment length.
        let mut m = good.clone();
        m.audio.clear();
        let mut l = listed(&m);
        l.push("segments/000002.mp4".into());
        let mut other = source();
        other.sha256 = "ff".into();
        let checks = verify(&m, &other, 5.0, &stored(&m), &l);
        assert_eq!(failed(&checks), ["manifest", "source", "segments", "audio", "no extras"]);
    }

    fn detail<'a>(checks: &'a [Check], name: &str) -> &'a str {
        &checks.iter().find(|c| c.name == name).expect("a check of that name").detail
    }

    #[test]
    fn an_object_without_its_sha256_metadata_fails() {
        let m: Manifest = serde_json::from_str(FIXTURE_MANIFEST).expect("manifest");
        for i in [1, 2] {
            let mut s = stored(&m);
            s[i].meta_sha256 = None;
            let checks = verify(&m, &source(), 10.0, &s, &listed(&m));
            assert_eq!(failed(&checks), ["objects"]);
            assert_eq!(
                detail(&checks, "objects"),
                format!(
                    "{}: no x-amz-meta-sha256 (the splitter stores every file with its sha256 as metadata)",
                    s[i].path
                )
            );
        }
        // Present but different is a failure too (as before).
        let mut s = stored(&m);
        s[0].meta_sha256 = Some("abc".into());
        let checks = verify(&m, &source(), 10.0, &s, &listed(&m));
        assert_eq!(
            detail(&checks, "objects"),
            "segments/000000.mp4: x-amz-meta-sha256 abc, the manifest says d919"
        );
    }

    #[test]
    fn ffprobes_packets_must_agree_with_the_manifest() {
        let m: Manifest = serde_json::from_str(FIXTURE_MANIFEST).expect("manifest");
        let packets = |count, flags: &str, leading| {
            Some(Ok(Packets { count, first_flags: Some(flags.into()), leading }))
        };

        // A segment with other packets than the manifest says: only `packets` fails, naming it
        // and both numbers.
        let mut s = stored(&m);
        s[1].packets = packets(24, "K_", 0);
        let checks = verify(&m, &source(), 10.0, &s, &listed(&m));
        assert_eq!(failed(&checks), ["packets"]);
        assert_eq!(
            detail(&checks, "packets"),
            "segments/000001.mp4: 24 video packets (ffprobe), the manifest says 48 \
             (0 lead-in + 48 frames + 0 trailing)"
        );
        // The manifest's lead-in and trailing frames count: the file holds them.
        let mut lead = m.clone();
        lead.segments[1].lead_in_frames = 5;
        lead.segments[1].trailing_frames = 2;
        let checks = verify(&lead, &source(), 10.0, &stored(&m), &listed(&m));
        assert_eq!(failed(&checks), ["packets"]);
        assert!(
            detail(&checks, "packets").contains("48 video packets (ffprobe), the manifest says 55 (5 lead-in + 48 frames + 2 trailing)"),
            "{checks:#?}"
        );
        let checks = verify(&lead, &source(), 10.0, &stored(&lead), &listed(&lead));
        assert_eq!(failed(&checks), Vec::<&str>::new(), "{checks:#?}");

        // Open GOP: leading pictures a decoder may drop are allowed on top, nothing else.
        let mut s = stored(&m);
        s[1].packets = packets(51, "K_", 3);
        let checks = verify(&m, &source(), 10.0, &s, &listed(&m));
        assert_eq!(failed(&checks), Vec::<&str>::new(), "{checks:#?}");
        s[1].packets = packets(50, "K_", 3);
        let checks = verify(&m, &source(), 10.0, &s, &listed(&m));
        assert_eq!(failed(&checks), ["packets"]);
        assert!(detail(&checks, "packets").ends_with("(or 51 with its 3 leading pictures)"));

        // Not starting on a keyframe; no video at all; not readable.
        let mut s = stored(&m);
        s[0].packets = packets(240, "__", 0);
        let checks = verify(&m, &source(), 10.0, &s, &listed(&m));
        assert_eq!(failed(&checks), ["keyframes"]);
        assert_eq!(
            detail(&checks, "keyframes"),
            "segments/000000.mp4: its first video packet is not a keyframe (ffprobe flags `__`)"
        );
        s[0].packets = Some(Ok(Packets { count: 0, first_flags: None, leading: 0 }));
        s[1].packets = Some(Err("Invalid data found when processing input".into()));
        let checks = verify(&m, &source(), 10.0, &s, &listed(&m));
        assert_eq!(failed(&checks), ["packets", "keyframes"]);
        assert_eq!(
            detail(&checks, "packets"),
            "segments/000000.mp4: 0 video packets (ffprobe), the manifest says 240 \
             (0 lead-in + 240 frames + 0 trailing); segments/000001.mp4: ffprobe cannot list its \
             packets: Invalid data found when processing input"
        );
        assert_eq!(
            detail(&checks, "keyframes"),
            "segments/000000.mp4: no video packets (ffprobe); segments/000001.mp4: ffprobe cannot \
             list its packets: Invalid data found when processing input"
        );
    }

    #[test]
    fn ffprobes_packet_listing_is_read() {
        // Closed GOPs with B-frames (the fixture's segment 1): decode order, no leading pictures.
        let p = parse_packets("0,K_\n2048,__\n1024,__\n512,__\n1536,__\n3072,K_\n2560,__\n")
            .expect("packets");
        assert_eq!(p, Packets { count: 7, first_flags: Some("K_".into()), leading: 0 });
        assert!(p.starts_on_keyframe());
        // An open GOP: two packets of the first GOP are shown before its keyframe; those of the
        // second GOP do not count.
        let p =
            parse_packets("1024,K_\n512,__\n0,__\n2048,__\n3072,K_\n2560,__\n").expect("packets");
        assert_eq!(p.leading, 2);
        // A cut inside a GOP; unknown timestamps; discarded packets; nothing at all.
        let p = parse_packets("2040,__\n1016,_D\nN/A,__\n").expect("packets");
        assert_eq!(p, Packets { count: 3, first_flags: Some("__".into()), leading: 0 });
        assert!(!p.starts_on_keyframe());
        let p = parse_packets("").expect("no packets");
        assert_eq!(p, Packets { count: 0, first_flags: None, leading: 0 });
        assert!(!p.starts_on_keyframe());
        // Not what was asked for.
        assert_eq!(
            parse_packets("0,K_\nbanana\n"),
            Err("ffprobe printed `banana`, not `pts,flags`".to_owned())
        );
        assert!(parse_packets("x,K_\n").is_err());
    }

    #[test]
    fn schema_2_manifests_are_read_and_unknown_schemas_fail() {
        // What the splitter writes now: schema 2, a pts_digest per segment (ignored here).
        let text = FIXTURE_MANIFEST.replace(r#""schema_version": 1"#, r#""schema_version": 2"#).replace(
            r#""start_pts": 0,"#,
            r#""start_pts": 0, "pts_digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","#,
        );
        assert!(text.contains("pts_digest") && text.contains(r#""schema_version": 2"#));
        let m: Manifest = serde_json::from_str(&text).expect("a schema-2 manifest");
        let checks = verify(&m, &source(), 10.0, &stored(&m), &listed(&m));
        assert_eq!(failed(&checks), Vec::<&str>::new(), "{checks:#?}");
        assert!(detail(&checks, "manifest").starts_with("schema 2 (itest reads 1..=2)"));

        let mut future = m.clone();
        future.schema_version = 3;
        let checks = verify(&future, &source(), 10.0, &stored(&m), &listed(&m));
        assert_eq!(failed(&checks), ["manifest"]);
    }

    #[test]
    fn frame_rates_read_short() {
        assert_eq!(rate(24.0), "24");
        assert_eq!(rate(30000.0 / 1001.0), "29.97");
        assert_eq!(rate(12.5), "12.5");
    }

    #[test]
    fn a_duration_within_one_frame_passes() {
        let mut m: Manifest = serde_json::from_str(FIXTURE_MANIFEST).expect("manifest");
        m.segments[1].duration_seconds = 2.0 + 1.0 / 24.0;
        let checks = verify(&m, &source(), 10.0, &stored(&m), &listed(&m));
        assert!(!failed(&checks).contains(&"duration"), "{checks:#?}");
        m.segments[1].duration_seconds = 2.0 + 2.0 / 24.0;
        let checks = verify(&m, &source(), 10.0, &stored(&m), &listed(&m));
        assert!(failed(&checks).contains(&"duration"), "{checks:#?}");
    }
}
