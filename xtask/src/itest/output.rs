//! The job's output (step 6) and the run's objects (steps 7 and 8): `manifest.json` and every
//! object it lists downloaded and hashed, each segment's video packets listed by the host's
//! ffprobe (in a private scratch directory), every key under the output prefix listed, the joined
//! file downloaded, and the run's prefix deleted. These are the facts [`super::verify`] and
//! [`super::join`] check.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, SCHEMAS};
use super::{Resolved, Run, random_hex, source};
use crate::aws::{Aws, sdk_error};

/// What the job wrote, as downloaded.
#[derive(Debug)]
pub(super) struct Output {
    pub manifest: Manifest,
    /// One entry per file of the manifest.
    pub stored: Vec<Stored>,
    /// Every key under the output prefix, relative to it.
    pub listed: Vec<String>,
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

/// The host's ffprobe: the independent witness of what each segment holds.
pub(super) fn find_ffprobe() -> Result<PathBuf> {
    crate::tools::find_program("ffprobe").context(
        "itest needs ffprobe on PATH to list the video packets of each segment the job writes: \
         install ffmpeg (`apt-get install ffmpeg`)",
    )
}

/// Reads the manifest and every object it lists (segments probed with ffprobe), and lists the
/// output prefix.
pub(super) async fn read(
    aws: &Aws,
    resolved: &Resolved,
    run: &Run,
    ffprobe: &Path,
) -> Result<Output> {
    let s3 = aws.s3();
    let prefix = run.output_prefix();
    let manifest = read_manifest(&s3, resolved, run).await?;
    let scratch = Scratch::create()?;
    let mut stored = Vec::new();
    for (path, _, _) in manifest.files() {
        let key = format!("{prefix}/{path}");
        let is_segment = manifest.segments.iter().any(|s| s.file.path == path);
        let copy = is_segment.then(|| scratch.file_for(path));
        let mut object = stored_object(&s3, &run.bucket, &key, path, copy.as_deref()).await?;
        if let (Some(file), Some(_)) = (copy, object.bytes) {
            let ffprobe = ffprobe.to_owned();
            let probe_file = file.clone();
            object.packets = Some(
                tokio::task::spawn_blocking(move || probe_segment(&ffprobe, &probe_file))
                    .await
                    .context("the ffprobe task failed")??,
            );
            let _ = std::fs::remove_file(&file);
        }
        stored.push(object);
    }
    let listed = list_keys(&s3, &run.bucket, &format!("{prefix}/")).await?;
    let listed = listed
        .iter()
        .filter_map(|k| k.strip_prefix(&format!("{prefix}/")).map(str::to_owned))
        .collect();
    Ok(Output { manifest, stored, listed })
}

/// `manifest.json`, which a succeeded job must have written.
async fn read_manifest(
    s3: &aws_sdk_s3::Client,
    resolved: &Resolved,
    run: &Run,
) -> Result<Manifest> {
    let key = format!("{}/manifest.json", run.output_prefix());
    let object = match s3.get_object().bucket(&run.bucket).key(&key).send().await {
        Ok(o) => o,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => bail!(
            "itest failed: the job SUCCEEDED but wrote no s3://{}/{key}: the splitter must write it last, \
             and only on success (a splitter bug: see its log in {})",
            run.bucket,
            resolved.log_group
        ),
        Err(err) => {
            return Err(sdk_error(err))
                .with_context(|| format!("cannot read s3://{}/{key}", run.bucket));
        }
    };
    let bytes = object
        .body
        .collect()
        .await
        .with_context(|| format!("cannot download s3://{}/{key}", run.bucket))?
        .into_bytes();
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "itest failed: s3://{}/{key} is not a splitter manifest (schema {}..={})",
            run.bucket,
            SCHEMAS.start(),
            SCHEMAS.end()
        )
    })
}

/// A private temporary directory for the downloaded segments, removed when dropped.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    pub(super) fn create() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "xtask-itest-{}-{}",
            std::process::id(),
            random_hex(8)
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    /// Where the copy of a manifest path goes (its file name kept: `000001.mp4`).
    pub(super) fn file_for(&self, path: &str) -> PathBuf {
        self.0.join(path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("segment"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lists the video packets of a downloaded segment with ffprobe (decode order, no decoding).
/// `Ok(Err(why))`: ffprobe ran but cannot read the file (a failed check, not an error).
fn probe_segment(ffprobe: &Path, file: &Path) -> Result<Result<Packets, String>> {
    let out = std::process::Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,flags"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .with_context(|| format!("cannot run {}", ffprobe.display()))?;
    if !out.status.success() {
        return Ok(Err(ffprobe_failure(file, &out)));
    }
    Ok(parse_packets(&String::from_utf8_lossy(&out.stdout)))
}

/// Why ffprobe could not read `file`: its last stderr line, without the file name it starts
/// with.
pub(super) fn ffprobe_failure(file: &Path, out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches(&format!("{}: ", file.display())).to_owned())
        .unwrap_or_else(|| format!("ffprobe exited with {}", out.status))
}

/// Downloads one object, hashing it on the way (and writing it to `copy`, when given).
async fn stored_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &str,
    copy: Option<&Path>,
) -> Result<Stored> {
    let mut object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Ok(Stored {
                path: path.to_owned(),
                bytes: None,
                sha256: None,
                meta_sha256: None,
                packets: None,
            });
        }
        Err(err) => {
            return Err(sdk_error(err)).with_context(|| format!("cannot read s3://{bucket}/{key}"));
        }
    };
    let meta_sha256 = object.metadata().and_then(|m| m.get("sha256")).cloned();
    let mut file = match copy {
        Some(p) => Some(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => None,
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .with_context(|| format!("cannot download s3://{bucket}/{key}"))?
    {
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        if let (Some(f), Some(p)) = (file.as_mut(), copy) {
            f.write_all(&chunk).with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    Ok(Stored {
        path: path.to_owned(),
        bytes: Some(bytes),
        sha256: Some(source::hex(&hasher.finalize())),
        meta_sha256,
        packets: None,
    })
}

/// Step 7: downloads `key` to `file`; its size, `None` when there is no such object.
pub(super) async fn download(
    aws: &Aws,
    bucket: &str,
    key: &str,
    file: &Path,
) -> Result<Option<u64>> {
    Ok(stored_object(&aws.s3(), bucket, key, key, Some(file)).await?.bytes)
}

async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("cannot list s3://{bucket}/{prefix}"))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
    }
    Ok(keys)
}

/// Step 8: deletes every object under `prefix`; returns how many.
pub(super) async fn delete_prefix(aws: &Aws, bucket: &str, prefix: &str) -> Result<usize> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let s3 = aws.s3();
    let keys = list_keys(&s3, bucket, prefix).await?;
    for chunk in keys.chunks(1000) {
        let objects = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(Delete::builder().set_objects(Some(objects)).quiet(true).build()?)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cannot delete objects under s3://{bucket}/{prefix}"))?;
        if let Some(e) = out.errors().first() {
            bail!(
                "cannot delete s3://{bucket}/{}: {}",
                e.key().unwrap_or("?"),
                e.message().unwrap_or("no reason given")
            );
        }
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real ffprobe on real files (needs ffmpeg: `cargo xtask test` installs it).
    #[test]
    fn ffprobe_lists_the_video_packets_of_a_file() {
        let ffprobe = find_ffprobe().expect("ffprobe on PATH");
        let fixture = crate::project_root().join(source::FIXTURE);
        let p = probe_segment(&ffprobe, &fixture).expect("ffprobe runs").expect("a video");
        // 12 s at 24 fps, closed GOPs with B-frames: no leading pictures; audio not counted.
        assert_eq!((p.count, p.leading), (288, 0), "{p:?}");
        assert!(p.starts_on_keyframe(), "{p:?}");

        let scratch = Scratch::create().expect("scratch dir");
        let text = scratch.file_for("segments/000000.mp4");
        assert!(text.ends_with("000000.mp4") && text.starts_with(&scratch.0));
        std::fs::write(&text, "not a video\n").expect("write");
        let why = probe_segment(&ffprobe, &text).expect("ffprobe runs").expect_err("not a video");
        assert!(why.contains("Invalid data found"), "{why}");
        assert!(!why.contains(&scratch.0.display().to_string()), "no temporary path: {why}");
        let dir = scratch.0.clone();
        drop(scratch);
        assert!(!dir.exists(), "the scratch directory is removed");
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
}
