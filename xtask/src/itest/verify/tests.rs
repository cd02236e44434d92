//! `verify`'s unit tests: the fixture's real manifest passes every check, and each kind of
//! damage fails the check that looks for it.

use super::*;
use crate::itest::output::Packets;

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
            packets: m.segments.iter().find(|seg| seg.file.path == *p).map(|seg| {
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
    assert_eq!(names, CHECKS);
    let packets = checks.iter().find(|c| c.name == "packets").expect("packets");
    assert!(packets.detail.starts_with("240 + 48 video packets (ffprobe)"), "{}", packets.detail);
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
        detail(&checks, "packets").contains(
            "48 video packets (ffprobe), the manifest says 55 (5 lead-in + 48 frames + 2 trailing)"
        ),
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
