//! `cargo xtask image`: builds `container/Dockerfile` with BuildKit and tags the result
//! `{project}-splitter:{full git sha}` (`-dirty` when the work tree has uncommitted changes).
//!
//! Writes the build record (`target/xtask/image.json`) that `scan` and `push` read. Labels carry
//! VERSION (the workspace version), GIT_SHA and BUILD_DATE (the commit's time, so rebuilding a
//! commit reproduces the same image id and a cached rebuild is a no-op).

use std::path::Path;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use xshell::Shell;

use crate::build_record::BuildRecord;
use crate::docker::{BuildMode, Docker, ImageInfo, short_id};
use crate::git::Revision;

mod handoff;

const DOCKERFILE: &str = "container/Dockerfile";
/// The build secret with the host's CA bundle (see the Dockerfile's splitter-build stage).
const CA_SECRET: &str = "build-ca";
/// `--platform`'s default.
pub(crate) const DEFAULT_PLATFORM: &str = "linux/amd64";

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask image                                  # production base (pinned debian:trixie-slim)
  cargo xtask image --base-image splitter-base:trixie-local   # offline: a locally built trixie base
  cargo xtask image --dry-run                        # print the docker command only
  cargo xtask image --cache-from type=gha --cache-to type=gha,mode=max   # CI, with buildx
  cargo xtask image save DIR    # the built image + build record, for another machine or CI job
  cargo xtask image load DIR    # …loaded there: `scan` and `push` then use it

The Docker client is `docker buildx build` when the buildx plugin exists, else
`DOCKER_BUILDKIT=1 docker build` with a client that still has BuildKit built in
(set DOCKER=/path/to/docker to choose).")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Image {
    #[command(subcommand)]
    action: Option<Action>,
    /// Project prefix: the image is `{project}-splitter:{git sha}`.
    #[arg(long, env = "PROJECT_NAME", default_value = "upscaler")]
    pub(crate) project: String,
    /// Target platform.
    #[arg(long, default_value = DEFAULT_PLATFORM)]
    pub(crate) platform: String,
    /// Debian trixie image the build stages start from [default: the pinned debian:trixie-slim
    /// in container/Dockerfile]. No network? `cargo xtask local up` builds one.
    #[arg(long, env = "SPLITTER_BASE_IMAGE", value_name = "IMAGE")]
    pub(crate) base_image: Option<String>,
    /// Ignore the layer cache: rebuild every stage (also refreshes Debian security updates).
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// External cache to import, passed to `--cache-from` (repeatable), e.g. `type=gha`
    /// (`type=…` needs buildx; a plain image reference works without).
    #[arg(long, value_name = "SPEC")]
    pub(crate) cache_from: Vec<String>,
    /// Cache to export, passed to `--cache-to`, e.g. `type=gha,mode=max` (needs buildx).
    #[arg(long, value_name = "SPEC")]
    pub(crate) cache_to: Option<String>,
    /// Print the exact build command and exit without building.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Moving a built image between machines (CI jobs).
#[derive(Debug, Subcommand)]
enum Action {
    /// Write the built image (`docker save`) and its build record to DIR.
    Save(handoff::Save),
    /// Load an image saved with `image save DIR`, check its id, install its build record.
    Load(handoff::Load),
}

impl Image {
    /// What `cargo xtask image [--base-image BASE]` builds, for the commands that need the
    /// image (the default project, platform and cache).
    pub fn with_base_image(base_image: Option<String>) -> Image {
        Image {
            action: None,
            project: crate::config::DEFAULT_PROJECT.to_owned(),
            platform: DEFAULT_PLATFORM.to_owned(),
            base_image,
            no_cache: false,
            cache_from: Vec::new(),
            cache_to: None,
            dry_run: false,
        }
    }

    pub fn run(self, sh: &Shell) -> Result<()> {
        match self.action {
            Some(Action::Save(cmd)) => return cmd.run(sh),
            Some(Action::Load(cmd)) => return cmd.run(sh),
            None => {}
        }
        let root = crate::project_root();
        let docker = Docker::detect(sh)?;
        let revision = Revision::read(sh, &root)?;
        let base_image = self.base_image.clone().filter(|b| !b.trim().is_empty());
        let plan = self.plan(&docker, &revision, base_image.as_deref(), ca_bundle().as_deref())?;

        let build = docker.build_cmd(sh, &plan.args)?;
        if self.dry_run {
            // The bare command line (not `[dry-run] would run: …`): it is this command's output.
            println!("{}", crate::dry_run::command_line(build));
            return Ok(());
        }

        // A failed build must not leave the previous image's record for scan/push to pick up.
        let record_path = BuildRecord::path();
        if record_path.exists() {
            std::fs::remove_file(&record_path)
                .with_context(|| format!("cannot remove the old {}", record_path.display()))?;
        }
        docker.ensure_daemon(sh)?;
        let base = match &base_image {
            Some(base) => base.clone(),
            None => default_base_image(&root)?,
        };
        pull_base_if_missing(sh, &docker, &base)?;
        if revision.dirty {
            eprintln!(
                "note: the work tree has uncommitted changes: tagging {}; `cargo xtask push` refuses \
                 it without --allow-dirty",
                plan.image_ref
            );
        }

        let started = Instant::now();
        build.run().map_err(|_| {
            anyhow::anyhow!(
                "docker build of {} failed (see the build output above): fix the failing step, or \
                 rerun with --no-cache if a cached layer is stale",
                plan.image_ref
            )
        })?;
        let elapsed = started.elapsed();

        let info = docker.inspect_image(sh, &plan.image_ref)?;
        check_built(&info, &revision.sha, &self.platform)?;
        let record = BuildRecord {
            image_id: info.id.clone(),
            repository: plan.repository.clone(),
            tags: vec![plan.tag.clone()],
            git_sha: revision.sha.clone(),
            dirty: revision.dirty,
            size_bytes: info.size,
            platform: self.platform.clone(),
            version: plan.version.clone(),
            created: crate::time::rfc3339(SystemTime::now()),
        };
        record.save()?;
        println!(
            "built {} ({}) in {:.0} s: {} ({} bytes) uncompressed",
            plan.image_ref,
            short_id(&info.id),
            elapsed.as_secs_f64(),
            human_size(info.size),
            info.size
        );
        println!("build record: {}", BuildRecord::path().display());
        Ok(())
    }

    fn plan(
        &self,
        docker: &Docker,
        revision: &Revision,
        base_image: Option<&str>,
        ca_bundle: Option<&Path>,
    ) -> Result<BuildPlan> {
        if docker.build_mode()? == BuildMode::BuiltinBuildKit {
            let typed_cache_from = self.cache_from.iter().find(|c| c.contains("type="));
            if self.cache_to.is_some() || typed_cache_from.is_some() {
                bail!(
                    "--cache-to and --cache-from type=… need `docker buildx` ({} builds with \
                     DOCKER_BUILDKIT=1, which cannot): install the buildx plugin, or drop them",
                    docker.program().display()
                );
            }
        }
        validate_name(&self.project)?;
        let repository = crate::config::local_image_name(&self.project);
        let tag = revision.tag();
        let image_ref = format!("{repository}:{tag}");
        let version = env!("CARGO_PKG_VERSION").to_owned();

        let mut args: Vec<String> = vec![
            "--file".into(),
            DOCKERFILE.into(),
            "--platform".into(),
            self.platform.clone(),
            "--tag".into(),
            image_ref.clone(),
        ];
        let mut build_arg = |key: &str, value: &str| {
            args.push("--build-arg".into());
            args.push(format!("{key}={value}"));
        };
        build_arg("VERSION", &version);
        build_arg("GIT_SHA", &revision.sha);
        build_arg("BUILD_DATE", &revision.commit_time);
        if let Some(base) = base_image {
            build_arg("BASE_IMAGE", base);
        }
        if let Some(bundle) = ca_bundle {
            args.push("--secret".into());
            args.push(format!("id={CA_SECRET},src={}", bundle.display()));
        }
        if self.no_cache {
            args.push("--no-cache".into());
        }
        for spec in &self.cache_from {
            args.push("--cache-from".into());
            args.push(spec.clone());
        }
        if let Some(spec) = &self.cache_to {
            args.push("--cache-to".into());
            args.push(spec.clone());
        }
        args.push(".".into());
        Ok(BuildPlan { repository, tag, image_ref, version, args })
    }
}

/// What one build does.
#[derive(Debug)]
struct BuildPlan {
    repository: String,
    tag: String,
    image_ref: String,
    version: String,
    /// Arguments after `docker build` / `docker buildx build --load`.
    args: Vec<String>,
}

/// What the Dockerfile promises, checked on the result: the revision label, a non-root user, the
/// splitter as entrypoint, the requested platform.
fn check_built(info: &ImageInfo, sha: &str, platform: &str) -> Result<()> {
    let revision = info.labels.get("org.opencontainers.image.revision").map(String::as_str);
    if revision != Some(sha) {
        bail!(
            "the built image carries revision label {revision:?}, not {sha}: container/Dockerfile must \
             set org.opencontainers.image.revision from the GIT_SHA build arg"
        );
    }
    let user = info.user.split(':').next().unwrap_or_default();
    if user.is_empty() || user == "0" || user == "root" {
        bail!(
            "the built image runs as root (USER {:?}): container/Dockerfile must end with a non-root USER",
            info.user
        );
    }
    if info.entrypoint.first().map(String::as_str) != Some("/usr/local/bin/splitter") {
        bail!(
            "the built image's entrypoint is {:?}, not the splitter: fix container/Dockerfile",
            info.entrypoint
        );
    }
    let built = format!("{}/{}", info.os, info.architecture);
    if !platform.split(',').any(|p| p.trim().starts_with(&built)) {
        eprintln!("warning: asked for platform {platform}, the image is {built}");
    }
    Ok(())
}

/// A project name that makes a valid image repository name.
fn validate_name(project: &str) -> Result<()> {
    let ok = !project.is_empty()
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && project.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        bail!(
            "project name {project:?} cannot name an image: use lowercase letters, digits, `-`, `_`, `.` \
             (--project or PROJECT_NAME)"
        );
    }
    Ok(())
}

/// The production base named in the Dockerfile (`ARG BASE_IMAGE=…`).
fn default_base_image(root: &Path) -> Result<String> {
    let path = root.join(DOCKERFILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("ARG BASE_IMAGE="))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("{} has no `ARG BASE_IMAGE=` default", path.display()))
}

/// The base must be local or pullable; offline machines need a locally built one.
fn pull_base_if_missing(sh: &Shell, docker: &Docker, base: &str) -> Result<()> {
    if docker.image_exists(sh, base)? {
        return Ok(());
    }
    if let Err(err) = docker.pull(sh, base) {
        bail!(
            "base image {base} is neither local nor pullable ({err:#}): without registry access \
             build a Debian trixie base with `cargo xtask local up` (it exports \
             SPLITTER_BASE_IMAGE) and pass it with --base-image"
        );
    }
    Ok(())
}

/// The CA bundle handed to the build as the `build-ca` secret: `SSL_CERT_FILE`, else the
/// Debian bundle, when present.
fn ca_bundle() -> Option<std::path::PathBuf> {
    std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from).filter(|p| p.is_file()).or_else(
        || {
            Some("/etc/ssl/certs/ca-certificates.crt".into())
                .filter(|p: &std::path::PathBuf| p.is_file())
        },
    )
}

fn human_size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert!(validate_name("upscaler").is_ok());
        assert!(validate_name("img-test_2.x").is_ok());
        assert!(validate_name("Upscaler").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
    }

    #[test]
    fn the_dockerfile_names_a_pinned_production_base() {
        let base = default_base_image(&crate::project_root()).expect("ARG BASE_IMAGE");
        assert!(base.starts_with("debian:trixie-slim@sha256:"), "{base}");
        assert_eq!(base.len(), "debian:trixie-slim@sha256:".len() + 64, "{base}");
    }

    #[test]
    fn sizes_and_ids() {
        assert_eq!(human_size(45_312_345), "45.3 MB");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
