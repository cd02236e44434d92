//! The build record `cargo xtask image` writes and `scan` / `push` read:
//! `target/xtask/image.json`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::docker::{Docker, ImageInfo};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Local image id (`sha256:…`).
    pub image_id: String,
    /// Local repository name, e.g. `upscaler-splitter`.
    pub repository: String,
    /// Tags given locally: the full git SHA (with `-dirty` when the tree was dirty).
    pub tags: Vec<String>,
    /// Full git SHA of HEAD at build time.
    pub git_sha: String,
    /// Whether the work tree had uncommitted changes.
    pub dirty: bool,
    /// Uncompressed image size in bytes.
    pub size_bytes: u64,
    pub platform: String,
    pub version: String,
    /// RFC 3339 build time.
    pub created: String,
}

impl BuildRecord {
    pub fn path() -> PathBuf {
        crate::xtask_dir().join("image.json")
    }

    /// The image tag a command works on: `--tag` when given, else the build record's primary
    /// tag; one line saying what to do when there is neither (`deploy`, `sign`).
    pub fn tag_or_recorded(tag: Option<&str>) -> anyhow::Result<String> {
        if let Some(tag) = tag.filter(|t| !t.trim().is_empty()) {
            return Ok(tag.to_owned());
        }
        let record = BuildRecord::load().map_err(|_| {
            anyhow::anyhow!(
                "no --tag given and no build record ({}): pass --tag SHA of a pushed image, or run \
                 `cargo xtask image` and `cargo xtask push` first",
                BuildRecord::path().display()
            )
        })?;
        record.tags.first().cloned().ok_or_else(|| {
            anyhow::anyhow!("the build record has no tag: rerun `cargo xtask image`")
        })
    }

    /// `repository:tag` of the primary tag.
    pub fn image_ref(&self) -> String {
        format!("{}:{}", self.repository, self.tags[0])
    }

    pub fn load() -> Result<BuildRecord> {
        let path = Self::path();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no image built yet ({} missing): run `cargo xtask image` first",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| {
            format!("{} is not a build record: rerun `cargo xtask image`", path.display())
        })
    }

    /// The local image the record names, which must still be the recorded one (the daemon
    /// checked first): what `push` uploads and `image save` hands over.
    pub(crate) fn local_image(&self, sh: &Shell, docker: &Docker) -> Result<ImageInfo> {
        let local = self.image_ref();
        docker.ensure_daemon(sh)?;
        let info = docker.inspect_image(sh, &local)?;
        if info.id != self.image_id {
            bail!(
                "{local} is now {} but the build record says {}: rerun `cargo xtask image`",
                info.id,
                self.image_id
            );
        }
        Ok(info)
    }

    pub fn save(&self) -> Result<()> {
        let path = Self::path();
        std::fs::create_dir_all(path.parent().expect("has a parent"))
            .with_context(|| format!("cannot create {}", path.display()))?;
        let text = serde_json::to_string_pretty(self).expect("serializable");
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}
