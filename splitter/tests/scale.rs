//! Many segments: the read-back and `verify` list segment files in batches (one ffmpeg run
//! for many files, `splitter::listing`), and each file's verdict must still be its own.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use splitter::listing::BATCH_FILES;
use splitter::plan::Segment;
use splitter::readback;
use splitter::tools::Tools;
use support::*;

/// 30 s, a keyframe every 5 frames (0.2 s), tiny: 150 segments of 0.2 s.
fn video() -> PathBuf {
    let mut a = pattern("64x36", "25", "30");
    for s in ["-c:v", "libx264", "-g", "5", "-keyint_min", "5", "-sc_threshold", "0"] {
        a.push(s.into());
    }
    a.push("-pix_fmt".into());
    a.push("yuv420p".into());
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    fixture("scale-video", "mp4", &refs)
}

/// Another valid video of the same kind, with other pictures and another length.
fn other_video() -> PathBuf {
    fixture(
        "scale-other",
        "mp4",
        &[
            "-f",
            "lavfi",
            "-t",
            "0.32",
            "-i",
            "testsrc=size=64x36:rate=25",
            "-c:v",
            "libx264",
            "-g",
            "5",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

/// The problems a failed verify reported (its `verify:` error lines).
fn problems(run: &Run) -> Vec<String> {
    assert_eq!(run.code, Some(7), "verify should find problems:\n{}", run.stderr);
    run.stderr.lines().filter(|l| l.contains("verify: ")).map(str::to_string).collect()
}

/// Segment files the problems name.
fn named_segments(problems: &[String], manifest: &Value) -> Vec<String> {
    let mut named: Vec<String> = segment_paths(manifest)
        .into_iter()
        .filter(|path| problems.iter().any(|p| p.contains(path.as_str())))
        .collect();
    named.sort();
    named
}

fn segment_paths(manifest: &Value) -> Vec<String> {
    manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["path"].as_str().expect("path").to_string())
        .collect()
}

fn verify(out: &Path) -> Run {
    splitter(&["verify", path_str(out)], &[("SPLITTER_LOG_FORMAT", "text")])
}

/// Records a segment file's current size and SHA-256 in the manifest, so that only what its
/// packets say can tell it from the original.
fn record_file(out: &Path, manifest: &mut Value, index: usize) {
    let path = out.join(manifest["segments"][index]["path"].as_str().expect("path"));
    manifest["segments"][index]["bytes"] =
        serde_json::json!(std::fs::metadata(&path).expect("stat").len());
    manifest["segments"][index]["sha256"] = serde_json::json!(sha256_file(&path));
    std::fs::write(out.join("manifest.json"), serde_json::to_vec_pretty(manifest).expect("json"))
        .expect("write manifest");
}

#[test]
fn batched_listings_name_the_one_segment_that_differs() {
    let src = video();
    let out = TempDir::new("scale");
    let manifest = split_ok(&src, out.path(), "0.2");
    let paths = segment_paths(&manifest);
    assert!(
        paths.len() > 2 * BATCH_FILES,
        "{} segments: more than two batches of {BATCH_FILES} expected",
        paths.len()
    );
    verify(out.path()).assert_ok();

    // A different but valid video in the middle of the second batch.
    let target = BATCH_FILES + BATCH_FILES / 2;
    let replaced = out.join(&paths[target]);
    std::fs::copy(other_video(), &replaced).expect("replace a segment");
    let found = problems(&verify(out.path()));
    assert_eq!(named_segments(&found, &manifest), vec![paths[target].clone()], "{found:#?}");
    assert!(found.iter().any(|p| p.contains("sha256 does not match") || p.contains("bytes")));

    // Size and SHA-256 as the manifest says: only its listing tells it apart.
    let mut edited = manifest.clone();
    record_file(out.path(), &mut edited, target);
    let found = problems(&verify(out.path()));
    assert_eq!(named_segments(&found, &manifest), vec![paths[target].clone()], "{found:#?}");
    let target_path = &paths[target];
    assert!(
        found.iter().any(|p| p.contains(&format!("{target_path} decodes to 8 frames"))),
        "{found:#?}"
    );
    assert!(!found.iter().any(|p| p.contains("sha256") || p.contains("bytes")), "{found:#?}");

    // A file ffmpeg cannot read fails its batch's ffmpeg run: the batch is listed again file
    // by file, and the error names that file alone.
    let broken = BATCH_FILES / 2;
    std::fs::write(out.join(&paths[broken]), b"not a video at all").expect("write");
    record_file(out.path(), &mut edited, broken);
    let found = problems(&verify(out.path()));
    assert_eq!(
        named_segments(&found, &manifest),
        vec![paths[broken].clone(), paths[target].clone()],
        "{found:#?}"
    );
    let broken_path = &paths[broken];
    let unreadable: Vec<&String> = found
        .iter()
        .filter(|p| p.contains(&format!("{broken_path} cannot be read as video")))
        .collect();
    assert_eq!(unreadable.len(), 1, "{found:#?}");
}

/// The manifest's segments as the planner had them (closed GOPs, no lead-in: each segment's
/// packets follow the previous one's).
fn planned(manifest: &Value) -> Vec<Segment> {
    let mut first = 0;
    let mut start = 0;
    manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let frames = s["frames"].as_u64().expect("frames");
            assert_eq!(s["lead_in_frames"].as_u64(), Some(0));
            let segment = Segment {
                index,
                first_gop: index,
                end_gop: index + 1,
                lead_in_gop: None,
                first_packet: first,
                end_packet: first + frames,
                owned_first_packet: first,
                lead_in_frames: 0,
                frames,
                trailing_frames: 0,
                start_pts: start,
                end_pts: s["end_pts"].as_i64().expect("end_pts"),
            };
            first += frames;
            start = segment.end_pts;
            segment
        })
        .collect()
}

/// The ffmpeg the tests run (`SPLITTER_TEST_FFMPEG`/`FFPROBE`, else the host's).
async fn tools() -> Tools {
    Tools::locate(
        std::env::var_os("SPLITTER_TEST_FFMPEG").map(PathBuf::from),
        std::env::var_os("SPLITTER_TEST_FFPROBE").map(PathBuf::from),
    )
    .await
    .expect("tools")
}

#[tokio::test]
async fn the_read_back_lists_segments_in_batches_and_in_several_calls() {
    let src = video();
    let out = TempDir::new("scale-readback");
    let manifest = split_ok(&src, out.path(), "0.2");
    let segments = planned(&manifest);
    let files: Vec<PathBuf> = segment_paths(&manifest).iter().map(|p| out.join(p)).collect();
    let expected: Vec<String> = manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["pts_digest"].as_str().expect("digest").to_string())
        .collect();
    // The source's packet list, as the cut lists it.
    let log = out.join("source.crc");
    ffmpeg(&[
        "-fflags",
        "+genpts",
        "-i",
        path_str(&src),
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "framecrc",
        path_str(&log),
    ]);
    let tools = tools().await;

    // The listings, as split's pipeline writes them: all at once (batched inside), then in
    // uneven pieces (as segments are closed); checked afterwards.
    let listings: Vec<PathBuf> =
        (0..files.len()).map(|i| out.join(&format!("listing-{i}.crc"))).collect();
    readback::list_packets(&tools, &files, &listings).await.expect("list");
    let digests = readback::check_listings(&segments, &listings, &log, &tools, "src")
        .expect("check listings");
    assert_eq!(digests, expected);
    let mut at = 0;
    for size in [1, 7, BATCH_FILES + 3, 2 * BATCH_FILES, files.len()] {
        let end = (at + size).min(files.len());
        readback::list_packets(&tools, &files[at..end], &listings[at..end]).await.expect("list");
        at = end;
    }
    let digests = readback::check_listings(&segments, &listings, &log, &tools, "src")
        .expect("check listings");
    assert_eq!(digests, expected);

    // Another video in place of a segment in the second batch: the read-back names it.
    let a = BATCH_FILES + 10;
    let mut replaced = files.clone();
    replaced[a] = other_video();
    readback::list_packets(&tools, &replaced, &listings).await.expect("list");
    let err = readback::check_listings(&segments, &listings, &log, &tools, "src")
        .expect_err("another video");
    let frames = segments[a].frames;
    assert!(
        err.to_string().contains(&format!(
            "segment {a} holds 8 video packets, the source has {frames} for it"
        )),
        "{err}"
    );

    // An unreadable segment file: named by the error, however many files its batch had.
    let broken = out.join("broken.mp4");
    std::fs::write(&broken, b"not a video").expect("write");
    let mut with_broken = files.clone();
    with_broken[a] = broken.clone();
    let err = readback::list_packets(
        &tools,
        &with_broken[..BATCH_FILES * 2],
        &listings[..BATCH_FILES * 2],
    )
    .await
    .expect_err("unreadable segment");
    let text = splitter::error::one_line(&err);
    assert!(text.contains(&format!("cannot read back {}", broken.display())), "{text}");
}

/// (dts, pts, size, key) of each packet line of a framecrc listing (text independent of the
/// splitter's parser).
fn packet_fields(listing: &str) -> Vec<(i64, i64, u64, bool)> {
    listing
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let key = f.get(6).is_none_or(|flags| {
                let bits = u32::from_str_radix(flags.trim_start_matches("F=0x"), 16);
                bits.expect("flags") & 1 == 1
            });
            (
                f[1].parse().expect("dts"),
                f[2].parse().expect("pts"),
                f[4].parse().expect("size"),
                key,
            )
        })
        .collect()
}

#[tokio::test]
async fn mp4_and_matroska_segments_listed_together_each_get_their_own_listing() {
    let src = video();
    let out = TempDir::new("scale-mixed");
    let manifest = split_ok(&src, out.path(), "0.2");
    let mp4s: Vec<PathBuf> = segment_paths(&manifest).iter().map(|p| out.join(p)).collect();
    // Every third segment remuxed to Matroska (listed by ffmpeg; the MP4s from their tables),
    // more than one ffmpeg batch of them.
    let mut files = Vec::new();
    for (i, mp4) in mp4s.iter().enumerate().take(3 * BATCH_FILES + 9) {
        if i % 3 == 1 {
            let mkv = out.join(&format!("remuxed-{i}.mkv"));
            ffmpeg(&["-i", path_str(mp4), "-c", "copy", path_str(&mkv)]);
            files.push(mkv);
        } else {
            files.push(mp4.clone());
        }
    }
    let tools = tools().await;
    let listings: Vec<PathBuf> =
        (0..files.len()).map(|i| out.join(&format!("mixed-{i}.crc"))).collect();
    readback::list_packets(&tools, &files, &listings).await.expect("list");
    for (file, listing) in files.iter().zip(&listings) {
        let alone = out.join("alone.crc");
        ffmpeg(&[
            "-i",
            path_str(file),
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-f",
            "framecrc",
            path_str(&alone),
        ]);
        let expected = std::fs::read_to_string(&alone).expect("ffmpeg's listing");
        let got = std::fs::read_to_string(listing).expect("listing");
        let tb = |text: &str| text.lines().find(|l| l.starts_with("#tb 0:")).map(str::to_string);
        assert_eq!(tb(&got), tb(&expected), "{}", file.display());
        let (got, expected) = (packet_fields(&got), packet_fields(&expected));
        assert!(!expected.is_empty());
        // The same packets up to one offset (the MP4 reader's is documented in `mp4`).
        let shift = |p: &[(i64, i64, u64, bool)]| -> Vec<(i64, i64, u64, bool)> {
            p.iter().map(|&(d, q, s, k)| (d - p[0].1, q - p[0].1, s, k)).collect()
        };
        assert_eq!(shift(&got), shift(&expected), "{}", file.display());
    }
}
