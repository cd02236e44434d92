//! `cargo xtask local up | down | status | env`: the local AWS stack.
//!
//! - moto (`python3 -m moto.server`, pinned in [`crate::tools`]) on 127.0.0.1: S3, ECR, Batch,
//!   IAM, STS, CloudWatch Logs and KMS on one port. `MOTO_DOCKER_NETWORK_MODE=host`, so the Batch
//!   job containers it starts through Docker reach it at 127.0.0.1. It runs with xtask's fix of
//!   its KMS `Sign`/`Verify` (`MessageType=DIGEST`, the 4096-byte limit; see [`servers`]).
//! - a Distribution registry (Debian's `docker-registry`) on 127.0.0.1 with a config we write:
//!   moto's ECR has no registry API, so images go there and their manifests into ECR.
//! - Docker Engine: checked, and started when down and we are root (never stopped: it is shared).
//! - the local base image for offline builds (`{project}-base:trixie`, debootstrap + import:
//!   [`base_image`]).
//! - the environment's resources, as Terraform creates them ([`seed`], shapes in
//!   [`definitions`]), and an `env` file for other shells.
//!
//! Everything lives in the state directory (default `target/xtask/local/`): `moto.pid`,
//! `registry.pid`, `watch.pid`, their logs, `registry.yml`, `xtask_moto_kms_fix.py`, the
//! registry's storage and `env`.
//! `down` stops exactly the PIDs found there (checking each is still the process we started);
//! starting, finding and stopping the servers is [`servers`]'.

mod base_image;
mod definitions;
mod seed;
mod servers;

pub(crate) use base_image::build_debootstrap_base;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use xshell::Shell;

use crate::aws::Aws;
use crate::config::{self, LocalStack, Target};
use crate::docker::Docker;
use crate::dry_run::DryRun;
use crate::dry_run::shell_quote;
use crate::{proc, tools};
use servers::{
    MOTO, REGISTRY, WATCH, check_port, moto_port_of, registry_port_of, start_moto, start_registry,
    start_watch, stop_stack,
};

#[derive(Debug, Args)]
pub struct Local {
    #[command(subcommand)]
    cmd: LocalCmd,
}

#[derive(Debug, Subcommand)]
enum LocalCmd {
    /// Start moto, the registry (and Docker Engine if needed), build the base image, create the
    /// environment's AWS resources and write the env file. Idempotent: reuses what runs.
    Up(Up),
    /// Stop what `up` started (by PID, nothing else) and remove the env file.
    Down(Down),
    /// Show what runs, on which ports, and which resources exist.
    Status(Status),
    /// Print the env file's `export` lines: `eval "$(cargo xtask local env)"`.
    Env(EnvCmd),
    /// (internal) Stop the stack once a process exits; started by `up --owner-pid`.
    #[command(hide = true)]
    Watch(Watch),
}

impl Local {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self.cmd {
            LocalCmd::Up(cmd) => cmd.run(sh),
            LocalCmd::Down(cmd) => cmd.run(sh),
            LocalCmd::Status(cmd) => cmd.run(sh),
            LocalCmd::Env(cmd) => cmd.run(),
            LocalCmd::Watch(cmd) => cmd.run(),
        }
    }
}

/// `local up`'s arguments; also built by `pipeline --local` ([`Up::new`]).
#[derive(Debug, Args)]
pub struct Up {
    #[command(flatten)]
    pub(crate) stack: LocalStack,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Base image for offline image builds; when unset, `{project}-base:trixie` is built with
    /// debootstrap if missing.
    #[arg(long, env = "SPLITTER_BASE_IMAGE")]
    pub(crate) base_image: Option<String>,
    /// Do not install missing tools; fail with the install command instead.
    #[arg(long)]
    pub(crate) no_install: bool,
    /// Stop the stack when process PID exits (tests pass their own PID, so nothing outlives them).
    #[arg(long, value_name = "PID")]
    pub(crate) owner_pid: Option<u32>,
    /// Print what would be started and created; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
struct Down {
    #[command(flatten)]
    stack: LocalStack,
    /// Also delete the state directory (registry storage, logs).
    #[arg(long)]
    purge: bool,
    /// Print what would be stopped; stop nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct Status {
    #[command(flatten)]
    stack: LocalStack,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct EnvCmd {
    #[command(flatten)]
    stack: LocalStack,
}

#[derive(Debug, Args)]
struct Watch {
    #[command(flatten)]
    stack: LocalStack,
    #[arg(long, value_name = "PID")]
    owner_pid: u32,
}

/// `KEY=value` pairs of the env file.
fn env_vars(
    stack: &LocalStack,
    region: &str,
    project: &str,
    base_image: &str,
) -> Vec<(String, String)> {
    let dir = absolute(&stack.state_dir());
    [
        ("AWS_ENDPOINT_URL", stack.endpoint_url()),
        ("AWS_ACCESS_KEY_ID", config::LOCAL_ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", config::LOCAL_SECRET_ACCESS_KEY.to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("PROJECT_NAME", project.to_owned()),
        ("SPLITTER_LOCAL_REGISTRY", stack.registry()),
        ("SPLITTER_BASE_IMAGE", base_image.to_owned()),
        ("SPLITTER_MOTO_PORT", stack.moto_port.to_string()),
        ("SPLITTER_REGISTRY_PORT", stack.registry_port.to_string()),
        ("SPLITTER_LOCAL_STATE_DIR", dir.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_owned())
    }
}

fn env_file_text(vars: &[(String, String)], dir: &Path) -> String {
    let mut text = format!(
        "# The local stack of `cargo xtask local up` (state dir {}).\n\
         # Use it from another shell: . {}\n",
        dir.display(),
        dir.join("env").display()
    );
    for (k, v) in vars {
        text.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    text
}

impl Up {
    /// `local up` on `stack` and `target`, with no owner process.
    pub(crate) fn new(
        stack: LocalStack,
        target: Target,
        base_image: Option<String>,
        no_install: bool,
        dry_run: bool,
    ) -> Up {
        Up { stack, target, base_image, no_install, owner_pid: None, dry_run }
    }

    pub(crate) fn run(self, sh: &Shell) -> Result<()> {
        let dir = absolute(&self.stack.state_dir());
        let dry = DryRun::new(self.dry_run);
        let mode = if self.no_install { tools::Mode::CheckOnly } else { tools::Mode::Install };
        tools::ensure(sh, tools::LOCAL_STACK, mode, dry)?;
        if !dry.is_on() {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let docker = tools::ensure_docker(sh, &dir, dry)?;
        println!("docker    Docker Engine {docker}");
        // Fail fast on a taken port, before the (slow) base image.
        if MOTO.running(&dir).is_none() {
            check_port(self.stack.moto_port, "--moto-port / SPLITTER_MOTO_PORT")?;
        }
        if REGISTRY.running(&dir).is_none() {
            check_port(self.stack.registry_port, "--registry-port / SPLITTER_REGISTRY_PORT")?;
        }

        let base_image = match &self.base_image {
            Some(image) => {
                if !dry.is_on() && !Docker::detect(sh)?.image_exists(sh, image)? {
                    bail!(
                        "SPLITTER_BASE_IMAGE={image} is not a local image: build or load it, or unset SPLITTER_BASE_IMAGE"
                    );
                }
                image.clone()
            }
            None => {
                let image = config::local_base_image(&self.target.project);
                build_debootstrap_base(sh, &image, &dir, dry)?;
                image
            }
        };

        // The watcher first, so that even an `up` failing half-way is cleaned up.
        if let Some(owner) = self.owner_pid {
            start_watch(sh, &self.stack, &dir, owner, dry)?;
        }
        start_moto(sh, &self.stack, &dir, dry)?;
        start_registry(sh, &self.stack, &dir, dry)?;

        let local_env = vec![
            ("AWS_ENDPOINT_URL".to_owned(), self.stack.endpoint_url()),
            ("AWS_ACCESS_KEY_ID".to_owned(), config::LOCAL_ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), config::LOCAL_SECRET_ACCESS_KEY.to_owned()),
        ];
        println!(
            "resources (project {}, env {}, region {}):",
            self.target.project, self.target.env, self.target.region
        );
        if dry.is_on() {
            let dry = dry.nested();
            for (kind, name) in [
                ("iam role", self.target.job_role()),
                ("iam role", self.target.batch_service_role()),
                ("s3 bucket", self.target.bucket()),
                ("ecr repository", self.target.ecr_repository()),
                ("log group", config::BATCH_LOG_GROUP.to_owned()),
                ("batch compute env", self.target.compute_environment()),
                ("batch job queue", self.target.job_queue()),
                ("batch job definition", self.target.job_definition()),
                ("kms signing key", self.target.signing_key_alias()),
            ] {
                dry.would(format_args!("create if missing: {kind} {name}"));
            }
        } else {
            let aws = Aws::local(&self.target.region, &self.stack.endpoint_url())?;
            let resources = seed::apply(&aws, &self.target, &local_env)?;
            seed::print_table(&resources);
        }

        let vars = env_vars(&self.stack, &self.target.region, &self.target.project, &base_image);
        let text = env_file_text(&vars, &dir);
        if !dry.is_on() {
            std::fs::write(dir.join("env"), &text)
                .with_context(|| format!("cannot write {}", dir.join("env").display()))?;
        }
        println!("\nenvironment ({}):", dir.join("env").display());
        print!("{text}");
        Ok(())
    }
}

impl Down {
    fn run(self, _sh: &Shell) -> Result<()> {
        let dir = absolute(&self.stack.state_dir());
        let stopped = stop_stack(&dir, DryRun::new(self.dry_run), None)?;
        if stopped == 0 {
            println!("nothing runs for {}", dir.display());
        }
        if self.dry_run {
            return Ok(());
        }
        let _ = std::fs::remove_file(dir.join("env"));
        if self.purge && dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
            println!("removed {}", dir.display());
        }
        Ok(())
    }
}

impl Status {
    fn run(self, sh: &Shell) -> Result<()> {
        let dir = absolute(&self.stack.state_dir());
        println!("local stack in {}", dir.display());
        let moto = MOTO.running(&dir);
        match moto {
            Some(pid) => {
                let port = moto_port_of(pid).unwrap_or(self.stack.moto_port);
                let answers = proc::http_status(port, "/moto-api/") == Some(200);
                println!(
                    "  moto      running  pid {pid}  http://127.0.0.1:{port}  {}",
                    if answers { "answers" } else { "NOT ANSWERING" }
                );
            }
            None => println!("  moto      stopped"),
        }
        match REGISTRY.running(&dir) {
            Some(pid) => {
                let port = registry_port_of(&dir).unwrap_or(self.stack.registry_port);
                let answers = proc::http_status(port, "/v2/") == Some(200);
                println!(
                    "  registry  running  pid {pid}  127.0.0.1:{port}  {}",
                    if answers { "answers" } else { "NOT ANSWERING" }
                );
            }
            None => println!("  registry  stopped"),
        }
        if let Some(pid) = WATCH.running(&dir) {
            println!("  watch     running  pid {pid}");
        }
        match tools::docker_server_version(sh) {
            Ok(v) => println!("  docker    Docker Engine {v} answers"),
            Err(why) => println!("  docker    not answering ({why})"),
        }
        let env_file = dir.join("env");
        if env_file.exists() {
            println!("  env file  {}", env_file.display());
        }
        let Some(pid) = moto else {
            println!("start it with `cargo xtask local up`");
            return Ok(());
        };
        let port = moto_port_of(pid).unwrap_or(self.stack.moto_port);
        println!(
            "resources (project {}, env {}, region {}):",
            self.target.project, self.target.env, self.target.region
        );
        let aws = Aws::local(&self.target.region, &format!("http://127.0.0.1:{port}"))?;
        seed::print_table(&seed::read(&aws, &self.target)?);
        Ok(())
    }
}

impl EnvCmd {
    fn run(self) -> Result<()> {
        let path = self.stack.env_file();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no env file at {}: start the stack with `cargo xtask local up`",
                path.display()
            )
        })?;
        print!("{text}");
        Ok(())
    }
}

impl Watch {
    fn run(self) -> Result<()> {
        let dir = absolute(&self.stack.state_dir());
        let me = std::process::id();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            // Taken over by another watcher, or the stack was stopped: nothing left to do.
            if proc::read_pid(&WATCH.pid_file(&dir)) != Some(me) {
                return Ok(());
            }
            let owner_alive = std::path::Path::new(&format!("/proc/{}", self.owner_pid)).exists()
                && proc::alive(self.owner_pid, "");
            if !owner_alive {
                eprintln!(
                    "process {} exited: stopping the stack of {}",
                    self.owner_pid,
                    dir.display()
                );
                stop_stack(&dir, DryRun::OFF, Some(me))?;
                let _ = std::fs::remove_file(dir.join("env"));
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("http://127.0.0.1:4566"), "http://127.0.0.1:4566");
        assert_eq!(shell_quote("/a dir/x"), "'/a dir/x'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn env_file_exports_what_another_shell_needs() {
        let stack =
            LocalStack { moto_port: 4600, registry_port: 5100, state_dir: Some("/tmp/s".into()) };
        let vars = env_vars(&stack, "us-east-1", "upscaler", "upscaler-base:trixie");
        let text = env_file_text(&vars, Path::new("/tmp/s"));
        for line in [
            "export AWS_ENDPOINT_URL=http://127.0.0.1:4600",
            "export AWS_ACCESS_KEY_ID=test",
            "export AWS_SECRET_ACCESS_KEY=test",
            "export AWS_REGION=us-east-1",
            "export SPLITTER_LOCAL_REGISTRY=127.0.0.1:5100",
            "export SPLITTER_BASE_IMAGE=upscaler-base:trixie",
            "export SPLITTER_LOCAL_STATE_DIR=/tmp/s",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
