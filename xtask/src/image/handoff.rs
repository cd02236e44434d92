//! `cargo xtask image save DIR` / `image load DIR`: hand the built image and its build record
//! from one machine (or CI job) to another, so the image that was scanned is the image that is
//! pushed, byte for byte.
//!
//! `save` writes `DIR/image.tar` (`docker save` of the build record's image) and
//! `DIR/image.json` (the build record). `load` runs `docker load`, checks that the loaded image
//! has the recorded id (a tar that is not that image is refused) and installs the record as
//! `target/xtask/image.json`, where `scan` and `push` read it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use xshell::Shell;

use crate::build_record::BuildRecord;
use crate::docker::{Docker, short_id};

/// File names inside the hand-off directory.
pub const IMAGE_TAR: &str = "image.tar";
pub const RECORD: &str = "image.json";

#[derive(Debug, Args)]
pub struct Save {
    /// Directory to write image.tar and image.json to (created if needed).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct Load {
    /// Directory `cargo xtask image save` wrote.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

impl Save {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let dir = sh.current_dir().join(&self.dir);
        let record = BuildRecord::load()?;
        let image = record.image_ref();
        let docker = Docker::detect(sh)?;
        record.local_image(sh, &docker)?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let started = Instant::now();
        // The record last: a directory with a record holds a complete tar.
        let _ = std::fs::remove_file(dir.join(RECORD));
        let tar = dir.join(IMAGE_TAR);
        docker.save(sh, &image, &tar)?;
        write_record(&dir.join(RECORD), &record)?;
        println!(
            "saved {image} ({}) to {}: {:.1} MB in {:.1} s",
            short_id(&record.image_id),
            dir.display(),
            file_size(&tar) as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

impl Load {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let dir = sh.current_dir().join(&self.dir);
        let record_path = dir.join(RECORD);
        let text = std::fs::read_to_string(&record_path).with_context(|| {
            format!(
                "no build record in {} ({RECORD} missing): write the directory with `cargo xtask image save DIR`",
                dir.display()
            )
        })?;
        let record: BuildRecord = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a build record: save it again with `cargo xtask image save`",
                record_path.display()
            )
        })?;
        if record.tags.is_empty() {
            bail!(
                "the build record {} has no tag: rebuild with `cargo xtask image`",
                record_path.display()
            );
        }
        let tar = dir.join(IMAGE_TAR);
        if !tar.is_file() {
            bail!(
                "{} is missing: save the image again with `cargo xtask image save DIR`",
                tar.display()
            );
        }
        let docker = Docker::detect(sh)?;
        docker.ensure_daemon(sh)?;
        let started = Instant::now();
        docker
            .cmd(sh)
            .args(["load", "--quiet", "--input"])
            .arg(&tar)
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| {
                format!("`docker load` of {} failed: is it a `docker save` tar?", tar.display())
            })?;
        let image = record.image_ref();
        let info = docker.inspect_image(sh, &image).with_context(|| {
            format!(
                "{} does not hold {image}: save it again with `cargo xtask image save`",
                tar.display()
            )
        })?;
        if info.id != record.image_id {
            bail!(
                "{} loaded {image} as {}, but its build record says {}: the tar and the record come from \
                 different builds; save them together again",
                tar.display(),
                info.id,
                record.image_id
            );
        }
        record.save()?;
        println!(
            "loaded {image} ({}) in {:.1} s; build record: {}",
            short_id(&record.image_id),
            started.elapsed().as_secs_f64(),
            BuildRecord::path().display()
        );
        Ok(())
    }
}

fn write_record(path: &Path, record: &BuildRecord) -> Result<()> {
    let text = serde_json::to_string_pretty(record).expect("serializable");
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
