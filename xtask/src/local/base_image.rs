//! The local Debian trixie base image for offline image builds (`{project}-base:trixie`): built
//! with `debootstrap --variant=minbase` and `docker import` when missing, by `cargo xtask local up`
//! and `cargo xtask test`. Concurrent builds of one image (parallel tests) wait for each other.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::docker::Docker;
use crate::dry_run::DryRun;
use crate::proc;

/// Builds the Debian trixie base image with debootstrap + `docker import` when missing.
pub(crate) fn build_debootstrap_base(
    sh: &Shell,
    image: &str,
    dir: &Path,
    dry: DryRun,
) -> Result<()> {
    let docker = Docker::detect(sh)?;
    if docker.image_exists(sh, image)? {
        println!("base      {image}  (exists)");
        return Ok(());
    }
    if dry.is_on() {
        dry.would(format_args!(
            "build {image} with debootstrap --variant=minbase trixie + docker import"
        ));
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Concurrent callers (parallel tests) wait for one build instead of each running debootstrap.
    let lock_name = format!("{}.lock", image.replace([':', '/'], "_"));
    let lock = BuildLock::acquire(&crate::xtask_dir().join(lock_name))?;
    if docker.image_exists(sh, image)? {
        println!("base      {image}  (built meanwhile by another xtask)");
        return Ok(());
    }
    println!("base      building {image} with debootstrap (about 30 s)…");
    let started = Instant::now();
    let rootfs = dir.join(format!("base-rootfs-{}", std::process::id()));
    let log = dir.join("debootstrap.log");
    let result = debootstrap_and_import(sh, &docker, image, &rootfs, &log);
    let _ = std::fs::remove_dir_all(&rootfs);
    drop(lock);
    result?;
    println!("base      {image}  (built in {} s)", started.elapsed().as_secs());
    Ok(())
}

/// A lock between processes: a directory that exists while one holds it (`mkdir` is atomic).
/// A lock older than 15 minutes is taken to be left by a killed process.
#[derive(Debug)]
struct BuildLock(PathBuf);

impl BuildLock {
    fn acquire(path: &Path) -> Result<BuildLock> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let deadline = Instant::now() + Duration::from_secs(20 * 60);
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(BuildLock(path.to_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .unwrap_or_default();
                    if age > Duration::from_secs(15 * 60) {
                        let _ = std::fs::remove_dir(path);
                        continue;
                    }
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create lock {}", path.display()));
                }
            }
            if Instant::now() > deadline {
                bail!("waited 20 min for {} to go: remove it if no xtask runs", path.display());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// debootstrap into `rootfs` (its output in `log`), then `tar -C ROOTFS -c . | docker import`.
fn debootstrap_and_import(
    sh: &Shell,
    docker: &Docker,
    image: &str,
    rootfs: &Path,
    log: &Path,
) -> Result<()> {
    let out =
        cmd!(sh, "debootstrap --variant=minbase trixie {rootfs} http://deb.debian.org/debian")
            .quiet()
            .ignore_status()
            .output()
            .context("cannot run debootstrap")?;
    let mut text = out.stdout.clone();
    text.extend_from_slice(&out.stderr);
    std::fs::write(log, &text).with_context(|| format!("cannot write {}", log.display()))?;
    if !out.status.success() {
        bail!(
            "debootstrap failed: {} (log {}); is deb.debian.org reachable?",
            proc::last_line(log).unwrap_or_default(),
            log.display()
        );
    }
    // tar -C ROOTFS -c . | docker import - IMAGE
    let mut tar: std::process::Command = cmd!(sh, "tar -C {rootfs} -c .").into();
    let mut tar = tar.stdout(std::process::Stdio::piped()).spawn().context("cannot run tar")?;
    let tar_out = tar.stdout.take().context("no tar output")?;
    let label = "LABEL org.opencontainers.image.description=debian-trixie-minbase-debootstrap";
    let status = docker.import(sh, tar_out, label, image)?;
    let tar_status = tar.wait().context("tar failed")?;
    if !tar_status.success() || !status.success() {
        bail!("`tar -C {} -c . | docker import - {image}` failed", rootfs.display());
    }
    Ok(())
}
