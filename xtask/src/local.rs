//! `cargo xtask local up | down | status | env`: the local AWS stack.
//!
//! - moto (`python3 -m moto.server`, pinned in [`crate::tools`]) on 127.0.0.1: S3, ECR, Batch,
//!   IAM, STS and CloudWatch Logs on one port. `MOTO_DOCKER_NETWORK_MODE=host`, so the Batch job
//!   containers it starts through Docker reach it at 127.0.0.1.
//! - a Distribution registry (Debian's `docker-registry`) on 127.0.0.1 with a config we write:
//!   moto's ECR has no registry API, so images go there and their manifests into ECR.
//! - Docker Engine: checked, and started when down and we are root (never stopped: it is shared).
//! - the local base image for offline builds (`{project}-base:trixie`, debootstrap + import).
//! - the environment's resources ([`crate::infra`]), and an `env` file for other shells.
//!
//! Everything lives in the state directory (default `target/xtask/local/`): `moto.pid`,
//! `registry.pid`, `watch.pid`, their logs, `registry.yml`, the registry's storage and `env`.
//! `down` stops exactly the PIDs found there (checking each is still the process we started).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use xshell::{Shell, cmd};

use crate::aws::Aws;
use crate::config::{self, LocalStack, Target};
use crate::docker::shell_quote;
use crate::{infra, proc, tools};

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

#[derive(Debug, Args)]
struct Up {
    #[command(flatten)]
    stack: LocalStack,
    #[command(flatten)]
    target: Target,
    /// Base image for offline image builds; when unset, `{project}-base:trixie` is built with
    /// debootstrap if missing.
    #[arg(long, env = "SPLITTER_BASE_IMAGE")]
    base_image: Option<String>,
    /// Do not install missing tools; fail with the install command instead.
    #[arg(long)]
    no_install: bool,
    /// Stop the stack when process PID exits (tests pass their own PID, so nothing outlives them).
    #[arg(long, value_name = "PID")]
    owner_pid: Option<u32>,
    /// Print what would be started and created; change nothing.
    #[arg(long)]
    dry_run: bool,
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

/// A server of the stack: its PID file, log, and the text its command line must contain.
#[derive(Debug, Clone, Copy)]
struct Server {
    name: &'static str,
    marker: &'static str,
}

const MOTO: Server = Server { name: "moto", marker: "moto.server" };
const REGISTRY: Server = Server { name: "registry", marker: "docker-registry" };
const WATCH: Server = Server { name: "watch", marker: "xtask" };

impl Server {
    fn pid_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pid", self.name))
    }
    fn log_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.log", self.name))
    }
    /// The PID from the PID file, if that process still runs and is ours.
    fn running(self, dir: &Path) -> Option<u32> {
        proc::read_pid(&self.pid_file(dir)).filter(|pid| proc::alive(*pid, self.marker))
    }
}

/// The port a running moto listens on, from its command line (`-p PORT`).
fn moto_port_of(pid: u32) -> Option<u16> {
    let args = proc::cmdline(pid)?;
    let i = args.iter().position(|a| a == "-p")?;
    args.get(i + 1)?.parse().ok()
}

/// The port a running registry listens on, from the config file we wrote.
fn registry_port_of(dir: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(dir.join("registry.yml")).ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("addr:"))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

/// The registry's configuration: storage under the state dir, 127.0.0.1 only, delete enabled.
fn registry_config(dir: &Path, port: u16) -> String {
    format!(
        "# Written by `cargo xtask local up`.\n\
         version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: registry\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n\
         health:\n  storagedriver:\n    enabled: true\n    interval: 10s\n    threshold: 3\n",
        dir.join("registry").display()
    )
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
    fn run(self, sh: &Shell) -> Result<()> {
        let dir = absolute(&self.stack.state_dir());
        let dry = self.dry_run;
        let mode = if self.no_install { tools::Mode::CheckOnly } else { tools::Mode::Install };
        tools::ensure(sh, tools::LOCAL_STACK, mode, dry)?;
        if !dry {
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
                if !dry && !image_exists(sh, image) {
                    bail!(
                        "SPLITTER_BASE_IMAGE={image} is not a local image: build or load it, or unset SPLITTER_BASE_IMAGE"
                    );
                }
                image.clone()
            }
            None => {
                let image = config::local_base_image(&self.target.project);
                ensure_base_image(sh, &image, &dir, dry)?;
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
        if dry {
            for (kind, name) in [
                ("iam role", self.target.job_role()),
                ("iam role", self.target.batch_service_role()),
                ("s3 bucket", self.target.bucket()),
                ("ecr repository", self.target.ecr_repository()),
                ("log group", config::BATCH_LOG_GROUP.to_owned()),
                ("batch compute env", self.target.compute_environment()),
                ("batch job queue", self.target.job_queue()),
                ("batch job definition", self.target.job_definition()),
            ] {
                println!("  [dry-run] would create if missing: {kind} {name}");
            }
        } else {
            let aws = Aws::local(&self.target.region, &self.stack.endpoint_url())?;
            let resources = infra::apply(&aws, &self.target, &local_env)?;
            infra::print_table(&resources);
        }

        let vars = env_vars(&self.stack, &self.target.region, &self.target.project, &base_image);
        let text = env_file_text(&vars, &dir);
        if !dry {
            std::fs::write(dir.join("env"), &text)
                .with_context(|| format!("cannot write {}", dir.join("env").display()))?;
        }
        println!("\nenvironment ({}):", dir.join("env").display());
        print!("{text}");
        Ok(())
    }
}

fn start_moto(sh: &Shell, stack: &LocalStack, dir: &Path, dry: bool) -> Result<()> {
    let port = stack.moto_port;
    if let Some(pid) = MOTO.running(dir) {
        let running_port = moto_port_of(pid);
        if running_port != Some(port) {
            bail!(
                "moto of {} already runs (pid {pid}) on port {}: run `cargo xtask local down` first, or use --moto-port {0}",
                dir.display(),
                running_port.map_or("?".to_owned(), |p| p.to_string())
            );
        }
        println!("moto      running   pid {pid}  {}  (reused)", stack.endpoint_url());
        return Ok(());
    }
    check_port(port, "--moto-port / SPLITTER_MOTO_PORT")?;
    let python = tools::python();
    if dry {
        println!("[dry-run] would start: {python} -m moto.server -H 127.0.0.1 -p {port}");
        return Ok(());
    }
    let log = MOTO.log_file(dir);
    let port_s = port.to_string();
    let cmd = cmd!(sh, "{python} -m moto.server -H 127.0.0.1 -p {port_s}")
        .env("MOTO_DOCKER_NETWORK_MODE", "host")
        .env("MOTO_PORT", &port_s)
        // AWS managed policies (AWSBatchServiceRole, …) exist, as in a real account.
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .env("PYTHONUNBUFFERED", "1");
    let mut command: std::process::Command = cmd.into();
    command.current_dir(dir);
    let pid = proc::spawn_detached(command, &log)?;
    proc::write_pid(&MOTO.pid_file(dir), pid)?;
    wait_ready(MOTO, pid, port, "/moto-api/", &log, Duration::from_secs(60))?;
    println!("moto      started   pid {pid}  {}  (log {})", stack.endpoint_url(), log.display());
    Ok(())
}

fn start_registry(sh: &Shell, stack: &LocalStack, dir: &Path, dry: bool) -> Result<()> {
    let port = stack.registry_port;
    if let Some(pid) = REGISTRY.running(dir) {
        let running_port = registry_port_of(dir);
        if running_port != Some(port) {
            bail!(
                "the registry of {} already runs (pid {pid}) on port {}: run `cargo xtask local down` first, or use --registry-port {0}",
                dir.display(),
                running_port.map_or("?".to_owned(), |p| p.to_string())
            );
        }
        println!("registry  running   pid {pid}  {}  (reused)", stack.registry());
        return Ok(());
    }
    check_port(port, "--registry-port / SPLITTER_REGISTRY_PORT")?;
    if dry {
        println!(
            "[dry-run] would start: docker-registry serve {}",
            dir.join("registry.yml").display()
        );
        return Ok(());
    }
    let config_path = dir.join("registry.yml");
    std::fs::create_dir_all(dir.join("registry"))
        .with_context(|| format!("cannot create {}", dir.join("registry").display()))?;
    std::fs::write(&config_path, registry_config(dir, port))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let log = REGISTRY.log_file(dir);
    let pid = proc::spawn_detached(cmd!(sh, "docker-registry serve {config_path}").into(), &log)?;
    proc::write_pid(&REGISTRY.pid_file(dir), pid)?;
    wait_ready(REGISTRY, pid, port, "/v2/", &log, Duration::from_secs(30))?;
    println!("registry  started   pid {pid}  {}  (log {})", stack.registry(), log.display());
    Ok(())
}

fn check_port(port: u16, how: &str) -> Result<()> {
    if !proc::port_free(port) {
        bail!(
            "port {port} on 127.0.0.1 is in use by another program: stop it, or pick another port with {how}"
        );
    }
    Ok(())
}

/// Waits for `GET path` to answer 200; fails with the log's last line if the process dies.
fn wait_ready(
    server: Server,
    pid: u32,
    port: u16,
    path: &str,
    log: &Path,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if proc::http_status(port, path) == Some(200) {
            return Ok(());
        }
        // Any command line: until its exec, the child still shows ours.
        if !proc::alive(pid, "") {
            bail!(
                "{} exited at start: {} (log {})",
                server.name,
                proc::last_line(log).unwrap_or_default(),
                log.display()
            );
        }
        if Instant::now() > deadline {
            let _ = proc::stop(pid, server.marker, Duration::from_secs(5));
            bail!(
                "{} (pid {pid}) did not answer on 127.0.0.1:{port} within {} s: see {}",
                server.name,
                timeout.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_watch(sh: &Shell, stack: &LocalStack, dir: &Path, owner: u32, dry: bool) -> Result<()> {
    if dry {
        println!("[dry-run] would stop the stack when process {owner} exits");
        return Ok(());
    }
    if let Some(pid) = WATCH.running(dir) {
        proc::stop(pid, WATCH.marker, Duration::from_secs(5))?;
    }
    let exe = std::env::current_exe().context("cannot find the xtask executable")?;
    let (moto, registry) = (stack.moto_port.to_string(), stack.registry_port.to_string());
    let owner_s = owner.to_string();
    let cmd = cmd!(
        sh,
        "{exe} local watch --owner-pid {owner_s} --moto-port {moto} --registry-port {registry} --state-dir {dir}"
    );
    let pid = proc::spawn_detached(cmd.into(), &WATCH.log_file(dir))?;
    proc::write_pid(&WATCH.pid_file(dir), pid)?;
    println!("watch     started   pid {pid}  (stops the stack when process {owner} exits)");
    Ok(())
}

fn image_exists(sh: &Shell, image: &str) -> bool {
    let format = "{{.Id}}";
    cmd!(sh, "docker image inspect --format {format} {image}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// Builds the Debian trixie base image with debootstrap + `docker import` when missing.
pub fn ensure_base_image(sh: &Shell, image: &str, dir: &Path, dry: bool) -> Result<()> {
    if image_exists(sh, image) {
        println!("base      {image}  (exists)");
        return Ok(());
    }
    if dry {
        println!(
            "[dry-run] would build {image} with debootstrap --variant=minbase trixie + docker import"
        );
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Concurrent callers (parallel tests) wait for one build instead of each running debootstrap.
    let lock_name = format!("{}.lock", image.replace([':', '/'], "_"));
    let lock = BuildLock::acquire(&crate::xtask_dir().join(lock_name))?;
    if image_exists(sh, image) {
        println!("base      {image}  (built meanwhile by another xtask)");
        return Ok(());
    }
    println!("base      building {image} with debootstrap (about 30 s)…");
    let started = Instant::now();
    let rootfs = dir.join(format!("base-rootfs-{}", std::process::id()));
    let log = dir.join("debootstrap.log");
    let result = build_base_image(sh, image, &rootfs, &log);
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

fn build_base_image(sh: &Shell, image: &str, rootfs: &Path, log: &Path) -> Result<()> {
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
    let mut import: std::process::Command =
        cmd!(sh, "docker import --change {label} - {image}").into();
    let status = import
        .stdin(tar_out)
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run docker import")?;
    let tar_status = tar.wait().context("tar failed")?;
    if !tar_status.success() || !status.success() {
        bail!("`tar -C {} -c . | docker import - {image}` failed", rootfs.display());
    }
    Ok(())
}

impl Down {
    fn run(self, _sh: &Shell) -> Result<()> {
        let dir = absolute(&self.stack.state_dir());
        let stopped = stop_stack(&dir, self.dry_run, None)?;
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

/// Stops the watcher, the registry and moto of `dir` (skipping `except`, the caller itself).
/// Returns how many processes it stopped.
fn stop_stack(dir: &Path, dry: bool, except: Option<u32>) -> Result<usize> {
    let mut stopped = 0;
    for server in [WATCH, REGISTRY, MOTO] {
        let pid_file = server.pid_file(dir);
        let Some(pid) = proc::read_pid(&pid_file) else { continue };
        if Some(pid) == except {
            if !dry {
                let _ = std::fs::remove_file(&pid_file);
            }
            continue;
        }
        if proc::alive(pid, server.marker) {
            if dry {
                println!("[dry-run] would stop {} (pid {pid})", server.name);
                continue;
            }
            proc::stop(pid, server.marker, Duration::from_secs(10))
                .with_context(|| format!("cannot stop {} (pid {pid})", server.name))?;
            println!("stopped {} (pid {pid})", server.name);
            stopped += 1;
        }
        if !dry {
            std::fs::remove_file(&pid_file)
                .with_context(|| format!("cannot remove {}", pid_file.display()))?;
        }
    }
    Ok(stopped)
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
        infra::print_table(&infra::read(&aws, &self.target)?);
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
                stop_stack(&dir, false, Some(me))?;
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

    #[test]
    fn registry_config_binds_loopback_and_is_read_back() {
        let dir = std::env::temp_dir().join(format!("xtask-registry-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let text = registry_config(&dir, 5123);
        assert!(text.contains("addr: 127.0.0.1:5123"));
        assert!(text.contains("delete:\n    enabled: true"));
        assert!(text.contains(&format!("rootdirectory: {}", dir.join("registry").display())));
        std::fs::write(dir.join("registry.yml"), text).expect("write");
        assert_eq!(registry_port_of(&dir), Some(5123));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
