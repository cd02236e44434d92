//! What a succeeded job must have written, checked without AWS: the manifest (schema 1, see
//! `splitter/README.md`), the facts gathered about each object it lists, and what the source
//! should give ([`super::source::Expect`]).

use serde::Deserialize;

use super::source::Source;

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
    pub frames: u64,
    pub start_seconds: f64,
    pub duration_seconds: f64,
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
        m.schema_version == 1 && (m.segment_seconds - segment_seconds).abs() < 1e-9,
        format!(
            "schema {}, splitter {}, ffmpeg {}, segment_seconds {} (asked {})",
            m.schema_version,
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
        if let Some(meta) = &s.meta_sha256 {
            if meta != sha {
                problems.push(format!("{path}: x-amz-meta-sha256 {meta}, the manifest says {sha}"));
            }
        }
    }
    let n = m.files().len();
    if problems.is_empty() {
        check(
            "objects",
            true,
            format!("{n} files, {total} bytes: sizes and sha256 as the manifest says (downloaded)"),
        )
    } else {
        check("objects", false, problems.join("; "))
    }
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

    fn stored(m: &Manifest) -> Vec<Stored> {
        m.files()
            .iter()
            .map(|(p, b, s)| Stored {
                path: p.to_string(),
                bytes: Some(*b),
                sha256: Some(s.to_string()),
                meta_sha256: Some(s.to_string()),
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
        assert_eq!(checks.len(), 9);
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
        s[2].bytes = Some(1);
        let checks = verify(&good, &source(), 10.0, &s, &listed(&good));
        assert_eq!(failed(&checks), ["objects"]);
        let detail = &checks.iter().find(|c| c.name == "objects").expect("objects").detail;
        assert!(detail.contains("segments/000000.mp4: sha256 00"), "{detail}");
        assert!(detail.contains("segments/000001.mp4: missing"), "{detail}");
        assert!(detail.contains("audio/stream-1.m4a: 1 bytes"), "{detail}");

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
