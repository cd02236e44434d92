//! The Docker client every command uses, and every call to it: no other module runs `docker`
//! (builds, inspect, `image_exists`, pull, import, save, login, push, tag, the daemon's version).
//!
//! BuildKit builds need `docker buildx build` when the buildx plugin exists; without it only a
//! client that still has the built-in BuildKit (Docker ≤ 22.x, e.g. Debian's `/usr/bin/docker`
//! 20.10) can build with `DOCKER_BUILDKIT=1 docker build`; newer clients refuse. [`Docker::detect`]
//! picks a client that can, in this order: the `DOCKER` environment variable if set; else the first
//! of `docker` on `PATH` and `/usr/bin/docker` that has buildx; else the first that has the built-in
//! BuildKit. Non-build commands work with any client and use the same one.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xshell::{Cmd, Shell, cmd};

use crate::dry_run::DryRun;

/// How BuildKit builds are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// `docker buildx build --load`.
    Buildx,
    /// `DOCKER_BUILDKIT=1 docker build` (clients ≤ 22.x).
    BuiltinBuildKit,
}

/// Environment variables and leading arguments of a build command.
type BuildPrefix = (Vec<(&'static str, &'static str)>, Vec<String>);

/// A Docker client and how it builds.
#[derive(Debug, Clone)]
pub struct Docker {
    program: PathBuf,
    /// How this client builds, or why it cannot.
    mode: std::result::Result<BuildMode, String>,
}

/// The fields of `docker image inspect` that commands use.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// `sha256:…`
    pub id: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    pub user: String,
    pub entrypoint: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub architecture: String,
    pub os: String,
}

impl Docker {
    /// Picks the client (see the module docs). Needs no daemon. Fails only when there is no
    /// client at all; a client that cannot build is reported by [`Docker::build_mode`].
    pub fn detect(sh: &Shell) -> Result<Docker> {
        if let Some(program) = std::env::var_os("DOCKER").filter(|p| !p.is_empty()) {
            let program = PathBuf::from(program);
            let version = client_version(sh, &program).with_context(|| {
                format!(
                    "DOCKER={} does not run: point DOCKER at a docker client",
                    program.display()
                )
            })?;
            let mode = if has_buildx(sh, &program) {
                Ok(BuildMode::Buildx)
            } else if builtin_buildkit(&version) {
                Ok(BuildMode::BuiltinBuildKit)
            } else {
                Err(format!(
                    "DOCKER={} (client {version}) has neither buildx nor the built-in BuildKit: \
                     install the buildx plugin or point DOCKER at a Docker ≤ 22.x client",
                    program.display()
                ))
            };
            return Ok(Docker { program, mode });
        }

        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(on_path) = find_on_path("docker") {
            candidates.push(on_path);
        }
        let debian = PathBuf::from("/usr/bin/docker");
        if debian.is_file() && !candidates.iter().any(|c| same_file(c, &debian)) {
            candidates.push(debian);
        }
        if candidates.is_empty() {
            bail!(
                "no `docker` client found: install Docker Engine (Debian: `apt-get install docker.io`) \
                 or set DOCKER to a client"
            );
        }
        if let Some(program) = candidates.iter().find(|c| has_buildx(sh, c)) {
            return Ok(Docker { program: program.clone(), mode: Ok(BuildMode::Buildx) });
        }
        let mut seen = Vec::new();
        for program in &candidates {
            if let Ok(version) = client_version(sh, program) {
                if builtin_buildkit(&version) {
                    return Ok(Docker {
                        program: program.clone(),
                        mode: Ok(BuildMode::BuiltinBuildKit),
                    });
                }
                seen.push(format!("{} {version}", program.display()));
            }
        }
        let mode = Err(format!(
            "no docker client here can run a BuildKit build ({}: no buildx plugin, too new for \
             DOCKER_BUILDKIT=1): install the buildx plugin (Debian: `apt-get install docker-buildx`)",
            seen.join(", ")
        ));
        Ok(Docker { program: candidates.remove(0), mode })
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// How this client runs BuildKit builds; the error names what to install.
    pub fn build_mode(&self) -> Result<BuildMode> {
        self.mode.clone().map_err(anyhow::Error::msg)
    }

    /// `docker ARGS…` for any non-build command.
    pub fn cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        sh.cmd(&self.program)
    }

    /// The start of a BuildKit build command (`buildx build --load` or `build` with
    /// `DOCKER_BUILDKIT=1`), as the environment and the arguments.
    fn build_prefix(&self) -> Result<BuildPrefix> {
        Ok(match self.build_mode()? {
            BuildMode::Buildx => (vec![], vec!["buildx".into(), "build".into(), "--load".into()]),
            BuildMode::BuiltinBuildKit => (vec![("DOCKER_BUILDKIT", "1")], vec!["build".into()]),
        })
    }

    /// A BuildKit build command with `args` after the prefix, for running or printing
    /// ([`crate::dry_run::command_line`]).
    pub fn build_cmd<'a>(&self, sh: &'a Shell, args: &[String]) -> Result<Cmd<'a>> {
        let (envs, prefix) = self.build_prefix()?;
        let mut cmd = self.cmd(sh).args(prefix).args(args);
        for (key, value) in envs {
            cmd = cmd.env(key, value);
        }
        Ok(cmd)
    }

    /// `docker version --format {{.Server.Version}}`, run; fails only when the client does not.
    fn version_output(&self, sh: &Shell) -> Result<std::process::Output> {
        self.cmd(sh)
            .args(["version", "--format", "{{.Server.Version}}"])
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))
    }

    /// The daemon's version; the error is the client's stderr (or says the client did not run).
    pub fn server_version(&self, sh: &Shell) -> Result<String> {
        let output = self.version_output(sh)?;
        if !output.status.success() {
            bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
        }
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if version.is_empty() {
            bail!("`docker version` printed no server version");
        }
        Ok(version)
    }

    /// Fails with the next step when the daemon does not answer.
    pub fn ensure_daemon(&self, sh: &Shell) -> Result<()> {
        let output = self.version_output(sh)?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        if stderr.to_lowercase().contains("permission denied") {
            bail!(
                "Docker daemon at {host} refused this user (permission denied): run as root or add \
                 yourself to the `docker` group"
            );
        }
        bail!(
            "Docker daemon not reachable at {host}: start it with `sudo dockerd &` or \
             `cargo xtask local up`"
        )
    }

    /// Whether `reference` is in the local image store.
    pub fn image_exists(&self, sh: &Shell, reference: &str) -> Result<bool> {
        let output = self
            .cmd(sh)
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .quiet()
            .ignore_status()
            .output()?;
        Ok(output.status.success())
    }

    /// Copies files out of an image into `dest` (a container is created, never started,
    /// and removed again).
    pub fn copy_out(&self, sh: &Shell, image: &str, files: &[&str], dest: &Path) -> Result<()> {
        let container = self
            .cmd(sh)
            .args(["create", image])
            .quiet()
            .ignore_stderr()
            .read()
            .with_context(|| format!("cannot create a container from {image}"))?;
        let copied = files.iter().try_for_each(|file| {
            self.cmd(sh)
                .args(["cp", &format!("{container}:{file}")])
                .arg(dest)
                .quiet()
                .run()
                .with_context(|| format!("cannot copy {file} out of {image}"))
        });
        let removed = self.cmd(sh).args(["rm", &container]).quiet().ignore_stdout().run();
        copied?;
        removed.with_context(|| format!("cannot remove the container {container}"))
    }

    /// `docker image inspect` of one image.
    pub fn inspect_image(&self, sh: &Shell, reference: &str) -> Result<ImageInfo> {
        let text = self
            .cmd(sh)
            .args(["image", "inspect", reference])
            .quiet()
            .ignore_stderr()
            .read()
            .with_context(|| {
                format!("image {reference} not found: build it with `cargo xtask image`")
            })?;
        parse_inspect(&text)
            .with_context(|| format!("unexpected `docker image inspect {reference}` output"))
    }

    /// `docker pull`, quietly; the error says what to do offline.
    pub fn pull(&self, sh: &Shell, reference: &str) -> Result<()> {
        let output =
            self.cmd(sh).args(["pull", "--quiet", reference]).quiet().ignore_status().output()?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason =
            stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("unknown error").trim();
        bail!("{}", reason.trim_start_matches("Error response from daemon: "))
    }

    /// `docker save` of one image to a tar file (e.g. for `trivy image --input`).
    pub fn save(&self, sh: &Shell, reference: &str, tar: &Path) -> Result<()> {
        self.cmd(sh)
            .args(["save", "--output"])
            .arg(tar)
            .arg(reference)
            .quiet()
            .run()
            .with_context(|| format!("cannot save {reference} to {}", tar.display()))
    }

    /// `docker login` with the password on stdin, never on the command line or in a log (nor in
    /// what a dry run prints).
    pub fn login(
        &self,
        sh: &Shell,
        dry: DryRun,
        registry: &str,
        user: &str,
        password: &str,
    ) -> Result<()> {
        let login = self
            .cmd(sh)
            .args(["login", "--username", user, "--password-stdin", registry])
            .stdin(password)
            .quiet()
            .ignore_stdout();
        dry.run(login)
            .with_context(|| format!("docker login to {registry} failed: check the credentials"))
    }

    /// `docker push` of one reference (progress on the terminal).
    pub fn push(&self, sh: &Shell, dry: DryRun, reference: &str) -> Result<()> {
        dry.run(self.cmd(sh).args(["push", reference]))
            .with_context(|| format!("docker push {reference} failed (see the output above)"))
    }

    /// `docker import --change CHANGE - IMAGE`: an image from the root file system tar read from
    /// `tar` (e.g. another process's stdout). Returns the client's exit status; the caller judges
    /// it together with the tar producer's.
    pub fn import(
        &self,
        sh: &Shell,
        tar: impl Into<std::process::Stdio>,
        change: &str,
        image: &str,
    ) -> Result<std::process::ExitStatus> {
        let mut import: std::process::Command =
            self.cmd(sh).args(["import", "--change", change, "-", image]).into();
        import
            .stdin(tar)
            .stdout(std::process::Stdio::null())
            .status()
            .context("cannot run docker import")
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, sh: &Shell, dry: DryRun, source: &str, target: &str) -> Result<()> {
        dry.run(self.cmd(sh).args(["tag", source, target]).quiet())
            .with_context(|| format!("cannot tag {source} as {target}"))
    }
}

fn parse_inspect(text: &str) -> Result<ImageInfo> {
    let value: Value = serde_json::from_str(text)?;
    let image = value.get(0).context("empty inspect output")?;
    let config = &image["Config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let labels = config["Labels"]
        .as_object()
        .map(|m| {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
        })
        .unwrap_or_default();
    Ok(ImageInfo {
        id: image["Id"].as_str().context("no Id")?.to_owned(),
        size: image["Size"].as_u64().context("no Size")?,
        user: config["User"].as_str().unwrap_or_default().to_owned(),
        entrypoint: strings(&config["Entrypoint"]),
        labels,
        architecture: image["Architecture"].as_str().unwrap_or_default().to_owned(),
        os: image["Os"].as_str().unwrap_or_default().to_owned(),
    })
}

/// `docker --version` → "20.10.24+dfsg1".
fn client_version(sh: &Shell, program: &Path) -> Result<String> {
    let out = cmd!(sh, "{program} --version").quiet().ignore_stderr().read()?;
    parse_client_version(&out)
        .with_context(|| format!("unexpected `docker --version` output: {out}"))
}

fn parse_client_version(out: &str) -> Option<String> {
    let rest = out.split("version ").nth(1)?;
    let version = rest.split([',', ' ']).next()?.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

/// Clients before 23.0 still build with the built-in BuildKit when `DOCKER_BUILDKIT=1`.
fn builtin_buildkit(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major < 23)
}

fn has_buildx(sh: &Shell, program: &Path) -> bool {
    cmd!(sh, "{program} buildx version").quiet().ignore_stdout().ignore_stderr().run().is_ok()
}

fn find_on_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name.as_ref())).find(|p| p.is_file())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The first 12 hex digits of an image id or digest (`sha256:` dropped), as `docker images`
/// shows it.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_versions() {
        assert_eq!(
            parse_client_version("Docker version 20.10.24+dfsg1, build 297e128").as_deref(),
            Some("20.10.24+dfsg1")
        );
        assert_eq!(
            parse_client_version("Docker version 28.1.1, build 4eba377").as_deref(),
            Some("28.1.1")
        );
        assert_eq!(parse_client_version("nonsense"), None);
        assert!(builtin_buildkit("20.10.24+dfsg1"));
        assert!(builtin_buildkit("22.06.0"));
        assert!(!builtin_buildkit("23.0.0"));
        assert!(!builtin_buildkit("28.1.1"));
        assert!(!builtin_buildkit("garbage"));
    }

    #[test]
    fn inspect_output() {
        let text = r#"[{"Id":"sha256:abc","Size":1234,"Architecture":"amd64","Os":"linux",
            "Config":{"User":"10001:10001","Entrypoint":["/usr/local/bin/splitter"],
            "Labels":{"org.opencontainers.image.revision":"deadbeef"}}}]"#;
        let info = parse_inspect(text).expect("parses");
        assert_eq!(info.id, "sha256:abc");
        assert_eq!(info.size, 1234);
        assert_eq!(info.user, "10001:10001");
        assert_eq!(info.entrypoint, ["/usr/local/bin/splitter"]);
        assert_eq!(info.labels["org.opencontainers.image.revision"], "deadbeef");
        assert!(parse_inspect("[]").is_err());
    }
}
