//! Where a split's output (or a worker's results) is read from: a local directory or an S3
//! prefix. Shared by `verify` and `join`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Kind, fail};
use crate::hash::{self, FileDigest};
use crate::location::Location;
use crate::manifest;
use crate::s3;

#[derive(Clone, Debug)]
pub enum Store {
    Local(PathBuf),
    S3 { client: aws_sdk_s3::Client, bucket: String, prefix: String },
}

impl Store {
    /// The store at `location`; `client` is needed for S3.
    pub async fn at(location: &Location) -> Store {
        match location {
            Location::Local(root) => Store::Local(root.clone()),
            Location::S3 { bucket, key } => Store::S3 {
                client: s3::client().await,
                bucket: bucket.clone(),
                prefix: key.trim_end_matches('/').to_string(),
            },
        }
    }

    pub async fn manifest(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Local(root) => match std::fs::read(root.join(manifest::FILE_NAME)) {
                Ok(data) => Ok(Some(data)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(fail(
                    Kind::InputUnreadable,
                    format!("cannot read {}: {e}", root.join(manifest::FILE_NAME).display()),
                )),
            },
            Store::S3 { client, bucket, prefix } => {
                let key = Location::join_key(prefix, manifest::FILE_NAME);
                s3::get_small(client, bucket, &key).await
            }
        }
    }

    /// A local copy of a listed file (S3: downloaded to `work/name`) and its digest; `Ok(None)`
    /// when it is missing.
    pub async fn fetch(
        &self,
        relative: &str,
        name: &str,
        work: &Path,
    ) -> Result<Option<(PathBuf, FileDigest)>> {
        match self {
            Store::Local(root) => {
                let path = root.join(relative);
                if !path.is_file() {
                    return Ok(None);
                }
                let p = path.clone();
                let digest = tokio::task::spawn_blocking(move || hash::digest_file(&p))
                    .await
                    .context("hashing task failed")??;
                Ok(Some((path, digest)))
            }
            Store::S3 { client, bucket, prefix } => {
                let key = Location::join_key(prefix, relative);
                let dest = work.join(name);
                let digest = s3::download_if_exists(client, bucket, &key, &dest).await?;
                Ok(digest.map(|d| (dest, d)))
            }
        }
    }

    /// A local copy of a listed file without hashing it (S3: downloaded to `work/name`);
    /// `Ok(None)` when it is missing.
    pub async fn locate(&self, relative: &str, name: &str, work: &Path) -> Result<Option<PathBuf>> {
        match self {
            Store::Local(root) => {
                let path = root.join(relative);
                Ok(path.is_file().then_some(path))
            }
            Store::S3 { .. } => Ok(self.fetch(relative, name, work).await?.map(|(path, _)| path)),
        }
    }

    /// Names of the files directly under `dir` (relative to the store's root), sorted.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        let mut names = match self {
            Store::Local(root) => {
                let path = if dir.is_empty() { root.clone() } else { root.join(dir) };
                let entries = std::fs::read_dir(&path).map_err(|e| {
                    fail(Kind::InputUnreadable, format!("cannot list {}: {e}", path.display()))
                })?;
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.with_context(|| format!("listing {}", path.display()))?;
                    if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                        names.push(entry.file_name().to_string_lossy().into_owned());
                    }
                }
                names
            }
            Store::S3 { client, bucket, prefix } => {
                let under = Location::join_key(&Location::join_key(prefix, dir), "");
                let lister = s3::Uploader::new(client.clone(), bucket, 1, 5 << 20);
                lister
                    .list(&under)
                    .await?
                    .into_iter()
                    .filter_map(|key| key.strip_prefix(&under).map(str::to_string))
                    .filter(|name| !name.is_empty() && !name.contains('/'))
                    .collect()
            }
        };
        names.sort();
        Ok(names)
    }

    /// What messages call `relative` in this store.
    pub fn describe(&self, relative: &str) -> String {
        match self {
            Store::Local(root) => root.join(relative).display().to_string(),
            Store::S3 { bucket, prefix, .. } => {
                format!("s3://{bucket}/{}", Location::join_key(prefix, relative))
            }
        }
    }
}
