//! Where results go: a local directory (staged inside it, then renamed into place) or an S3
//! prefix (uploaded with bounded concurrency). The manifest always goes last, and a stale
//! manifest is removed before anything else is written.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use aws_sdk_s3::Client;

use crate::error::{Kind, ResultExt, fail};
use crate::hash::FileDigest;
use crate::location::Location;
use crate::manifest::{self, Manifest};
use crate::s3::{Upload, Uploader, join_all};

/// A temporary directory removed on drop (also when a run fails or is interrupted).
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn create(parent: &Path, kind: Kind) -> Result<WorkDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!(".splitter-tmp-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&path)
            .kind(kind, || format!("cannot create a work directory in {}", parent.display()))?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // On an interrupt the directory is dropped while a killed ffmpeg (SIGKILL is delivered
        // asynchronously) may still create a file in it: removal then fails with "directory
        // not empty", so it is tried again for a moment.
        for _ in 0..50 {
            match std::fs::remove_dir_all(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => return,
            }
        }
    }
}

/// A finished file to publish.
#[derive(Clone, Debug)]
pub struct OutputFile {
    pub local: PathBuf,
    /// Path relative to the OUTPUT root ("segments/000000.mp4").
    pub relative: String,
    pub digest: FileDigest,
}

#[derive(Clone, Debug)]
pub enum Sink {
    Local { root: PathBuf },
    S3 { uploader: Uploader, bucket: String, prefix: String },
}

/// Whether a relative path follows the splitter's own naming (so it may be cleaned up).
fn is_ours(relative: &str) -> bool {
    let name = |dir: &str| relative.strip_prefix(dir).filter(|n| !n.contains('/'));
    if let Some(n) = name("segments/") {
        let stem = n.split('.').next().unwrap_or("");
        return stem.len() == 6 && stem.chars().all(|c| c.is_ascii_digit());
    }
    if let Some(n) = name("audio/") {
        let stem = n.split('.').next().unwrap_or("");
        return stem.strip_prefix("stream-").is_some_and(|d| d.parse::<u32>().is_ok());
    }
    false
}

impl Sink {
    /// Opens the output: checks it is writable and removes a stale manifest.
    pub async fn open(
        output: &Location,
        client: Option<Client>,
        concurrency: usize,
        part_size: u64,
    ) -> Result<Sink> {
        match output {
            Location::Local(root) => {
                if root.is_file() {
                    return Err(fail(
                        Kind::OutputUnwritable,
                        format!("output {} is a file, not a directory", root.display()),
                    ));
                }
                std::fs::create_dir_all(root).kind(Kind::OutputUnwritable, || {
                    format!("cannot create output directory {}", root.display())
                })?;
                let manifest = root.join(manifest::FILE_NAME);
                match std::fs::remove_file(&manifest) {
                    Ok(()) => tracing::info!(path = %manifest.display(), "removed stale manifest"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(fail(
                            Kind::OutputUnwritable,
                            format!("cannot remove stale {}: {e}", manifest.display()),
                        ));
                    }
                }
                Ok(Sink::Local { root: root.clone() })
            }
            Location::S3 { bucket, key } => {
                let client = client.ok_or_else(|| anyhow::anyhow!("no S3 client"))?;
                let mut uploader = Uploader::new(client, bucket, concurrency, part_size);
                let prefix = key.trim_end_matches('/').to_string();
                // Also proves the bucket exists and is writable before any work is done.
                uploader.delete(&Location::join_key(&prefix, manifest::FILE_NAME)).await?;
                let dirs = ["segments/", "audio/"].map(|d| Location::join_key(&prefix, d));
                uploader.remember_existing(&dirs).await?;
                Ok(Sink::S3 { uploader, bucket: bucket.clone(), prefix })
            }
        }
    }

    fn key(&self, relative: &str) -> String {
        match self {
            Sink::S3 { prefix, .. } => Location::join_key(prefix, relative),
            Sink::Local { .. } => relative.to_string(),
        }
    }

    /// Where to stage files: inside the output directory (so publishing is a rename) or in
    /// the work directory for S3.
    pub fn staging_parent(&self, work_dir: &Path) -> PathBuf {
        match self {
            Sink::Local { root } => root.clone(),
            Sink::S3 { .. } => work_dir.to_path_buf(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Sink::Local { root } => root.display().to_string(),
            Sink::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Publishes files (not the manifest). For S3, skips objects already stored with the same
    /// SHA-256. Returns how many were skipped.
    pub async fn store(&self, files: &[OutputFile]) -> Result<usize> {
        match self {
            Sink::Local { root } => {
                for file in files {
                    let dest = root.join(&file.relative);
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent).kind(Kind::OutputUnwritable, || {
                            format!("cannot create {}", parent.display())
                        })?;
                    }
                    std::fs::rename(&file.local, &dest).kind(Kind::OutputUnwritable, || {
                        format!("cannot move {} into {}", file.relative, root.display())
                    })?;
                }
                Ok(0)
            }
            Sink::S3 { uploader, .. } => {
                let done = AtomicUsize::new(0);
                let skipped = AtomicUsize::new(0);
                let total = files.len();
                let uploads = files.iter().map(|file| {
                    let key = self.key(&file.relative);
                    let done = &done;
                    let skipped = &skipped;
                    async move {
                        let result = uploader.upload(&file.local, &key, &file.digest).await?;
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        match result {
                            Upload::Skipped => {
                                skipped.fetch_add(1, Ordering::Relaxed);
                                tracing::info!(key, progress = %format!("{n}/{total}"), "already uploaded (same sha256), skipped");
                            }
                            Upload::Uploaded { parts } => {
                                tracing::info!(key, bytes = file.digest.bytes, parts, progress = %format!("{n}/{total}"), "uploaded");
                            }
                        }
                        anyhow::Ok(())
                    }
                });
                let results = join_all(uploads.collect()).await;
                for r in results {
                    r?;
                }
                Ok(skipped.load(Ordering::Relaxed))
            }
        }
    }

    /// Publishes one file now, for an S3 output (the pipeline's uploads while ffmpeg cuts);
    /// `None` for a local output, whose files are moved into place at the end.
    pub async fn store_now(&self, file: &OutputFile) -> Result<Option<Upload>> {
        let Sink::S3 { uploader, .. } = self else { return Ok(None) };
        let key = self.key(&file.relative);
        let result = uploader.upload(&file.local, &key, &file.digest).await?;
        match result {
            Upload::Skipped => tracing::info!(key, "already uploaded (same sha256), skipped"),
            Upload::Uploaded { parts } => {
                tracing::info!(key, bytes = file.digest.bytes, parts, "uploaded")
            }
        }
        Ok(Some(result))
    }

    /// Removes files from earlier runs that the new manifest does not list (only names the
    /// splitter itself uses).
    pub async fn remove_stale(&self, keep: &BTreeSet<String>) -> Result<()> {
        match self {
            Sink::Local { root } => {
                for dir in ["segments", "audio"] {
                    let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
                    for entry in entries.flatten() {
                        let relative = format!("{dir}/{}", entry.file_name().to_string_lossy());
                        if is_ours(&relative) && !keep.contains(&relative) {
                            std::fs::remove_file(entry.path())
                                .kind(Kind::OutputUnwritable, || {
                                    format!("cannot remove stale {}", entry.path().display())
                                })?;
                            tracing::info!(path = relative, "removed stale file");
                        }
                    }
                }
                Ok(())
            }
            Sink::S3 { uploader, prefix, .. } => {
                let base = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
                for dir in ["segments/", "audio/"] {
                    for key in uploader.list(&format!("{base}{dir}")).await? {
                        let relative = key.strip_prefix(&base).unwrap_or(&key);
                        if is_ours(relative) && !keep.contains(relative) {
                            uploader.delete(&key).await?;
                            tracing::info!(key, "removed stale object");
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Writes the manifest: the last step, atomically (S3: one PUT of a file written in
    /// `staging`, streamed, so memory does not hold its ~460 bytes per segment).
    pub async fn write_manifest(&self, manifest: &Manifest, staging: &Path) -> Result<()> {
        match self {
            Sink::Local { root } => {
                let tmp = root.join(format!(".{}.tmp-{}", manifest::FILE_NAME, std::process::id()));
                let dest = root.join(manifest::FILE_NAME);
                let write = || -> std::io::Result<()> {
                    write_manifest_file(manifest, &tmp)?.sync_all()?;
                    std::fs::rename(&tmp, &dest)
                };
                write().map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    fail(Kind::OutputUnwritable, format!("cannot write {}: {e}", dest.display()))
                })
            }
            Sink::S3 { uploader, .. } => {
                let path = staging.join(manifest::FILE_NAME);
                let write = || -> std::io::Result<FileDigest> {
                    drop(write_manifest_file(manifest, &path)?);
                    crate::hash::digest_file(&path)
                };
                let digest =
                    write().kind(Kind::Other, || format!("cannot write {}", path.display()))?;
                let key = self.key(manifest::FILE_NAME);
                uploader.put_file(&path, &key, &digest, Some("application/json")).await
            }
        }
    }
}

/// `manifest` written to a new file at `path` (buffered, flushed); the file, for a sync.
fn write_manifest_file(manifest: &Manifest, path: &Path) -> std::io::Result<std::fs::File> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    manifest.write_json(&mut out)?;
    out.into_inner().map_err(std::io::IntoInnerError::into_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_cleaned_up() {
        assert!(is_ours("segments/000012.mp4"));
        assert!(is_ours("audio/stream-1.m4a"));
        assert!(!is_ours("segments/notes.txt"));
        assert!(!is_ours("segments/sub/000001.mp4"));
        assert!(!is_ours("audio/stream-x.m4a"));
        assert!(!is_ours("manifest.json"));
    }

    #[test]
    fn work_dir_is_removed_on_drop() {
        let parent = std::env::temp_dir();
        let path = {
            let work = WorkDir::create(&parent, Kind::Other).expect("create");
            std::fs::write(work.path().join("x"), b"x").expect("write");
            work.path().to_path_buf()
        };
        assert!(!path.exists());
    }
}
