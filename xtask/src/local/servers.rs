//! The local stack's servers: moto, the Distribution registry (with the config we write) and the
//! watcher that stops the stack when its owner exits. Each is started detached
//! ([`crate::proc`]), found again through its PID file in the state directory, checked to be the
//! process we started, and stopped by that PID only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::config::LocalStack;
use crate::dry_run::{DryRun, process_line};
use crate::{proc, tools};

/// A server of the stack: its PID file, log, and the text its command line must contain.
#[derive(Debug, Clone, Copy)]
pub(super) struct Server {
    name: &'static str,
    marker: &'static str,
}

pub(super) const MOTO: Server = Server { name: "moto", marker: "moto.server" };
pub(super) const REGISTRY: Server = Server { name: "registry", marker: "docker-registry" };
pub(super) const WATCH: Server = Server { name: "watch", marker: "xtask" };

impl Server {
    pub(super) fn pid_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pid", self.name))
    }
    fn log_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.log", self.name))
    }
    /// The PID from the PID file, if that process still runs and is ours.
    pub(super) fn running(self, dir: &Path) -> Option<u32> {
        proc::read_pid(&self.pid_file(dir)).filter(|pid| proc::alive(*pid, self.marker))
    }
}

/// xtask's fix of moto's KMS `Sign`/`Verify` (and `GetPublicKey`), a Python file written into
/// the state directory and run before moto's server starts. Measured with moto 5.2.5: moto
/// ignores `MessageType=DIGEST` and hashes the given digest again, so its signature verifies
/// against no real message (openssl and cosign reject it; `RAW` verifies), and it signs a `RAW`
/// message of any size where KMS refuses more than 4096 bytes; its `GetPublicKey` has no
/// `KeySpec` (only the deprecated `CustomerMasterKeySpec`) and a bare key id as `KeyId`. With the
/// fix, all behave as on AWS (a digest is signed as it is; too big a message is a
/// `ValidationException`), so the local stack catches a caller that would fail on AWS.
/// `xtask/tests/kms.rs` checks them, and that a stock moto still gets them wrong: when a moto
/// release fixes DIGEST, that test fails; then delete `moto_kms_fix.py`, this constant and
/// [`MOTO_LAUNCHER`], and start `-m moto.server` again.
const MOTO_KMS_FIX: &str = include_str!("moto_kms_fix.py");
/// Where [`MOTO_KMS_FIX`] goes in the state directory.
const MOTO_KMS_FIX_FILE: &str = "xtask_moto_kms_fix.py";
/// What `python3 -m moto.server` runs, after [`MOTO_KMS_FIX`] (read from moto's working
/// directory, the state directory): same arguments (`sys.argv[1:]`: `-H`, `-p`), same
/// environment. Its text holds [`MOTO`]'s marker, `moto.server`.
const MOTO_LAUNCHER: &str = concat!(
    "import runpy; runpy.run_path(\"xtask_moto_kms_fix.py\"); ",
    "import moto.server; moto.server.main()"
);

/// The port a running moto listens on, from its command line (`-p PORT`).
pub(super) fn moto_port_of(pid: u32) -> Option<u16> {
    let args = proc::cmdline(pid)?;
    let i = args.iter().position(|a| a == "-p")?;
    args.get(i + 1)?.parse().ok()
}

/// The port a running registry listens on, from the config file we wrote.
pub(super) fn registry_port_of(dir: &Path) -> Option<u16> {
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

pub(super) fn start_moto(sh: &Shell, stack: &LocalStack, dir: &Path, dry: DryRun) -> Result<()> {
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
        let launched =
            proc::cmdline(pid).is_some_and(|args| args.iter().any(|a| a == MOTO_LAUNCHER));
        if !launched {
            println!(
                "warning: this moto runs without xtask's KMS fix (DIGEST signatures are wrong): restart it with `cargo xtask local down` and `up`"
            );
        }
        return Ok(());
    }
    check_port(port, "--moto-port / SPLITTER_MOTO_PORT")?;
    let python = tools::python();
    let port_s = port.to_string();
    let cmd = cmd!(sh, "{python} -c {MOTO_LAUNCHER} -H 127.0.0.1 -p {port_s}")
        .env("MOTO_DOCKER_NETWORK_MODE", "host")
        .env("MOTO_PORT", &port_s)
        // AWS managed policies (AWSBatchServiceRole, …) exist, as in a real account.
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .env("PYTHONUNBUFFERED", "1");
    let mut command: std::process::Command = cmd.into();
    command.current_dir(dir);
    dry.call(format_args!("start: {}", process_line(&command)), || {
        let fix = dir.join(MOTO_KMS_FIX_FILE);
        std::fs::write(&fix, MOTO_KMS_FIX)
            .with_context(|| format!("cannot write {}", fix.display()))?;
        let log = MOTO.log_file(dir);
        let pid = proc::spawn_detached(command, &log)?;
        proc::write_pid(&MOTO.pid_file(dir), pid)?;
        wait_ready(MOTO, pid, port, "/moto-api/", &log, Duration::from_secs(60))?;
        println!(
            "moto      started   pid {pid}  {}  (log {})",
            stack.endpoint_url(),
            log.display()
        );
        Ok(())
    })?;
    Ok(())
}

pub(super) fn start_registry(
    sh: &Shell,
    stack: &LocalStack,
    dir: &Path,
    dry: DryRun,
) -> Result<()> {
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
    let config_path = dir.join("registry.yml");
    let command = cmd!(sh, "docker-registry serve {config_path}").into();
    dry.call(format_args!("start: {}", process_line(&command)), || {
        std::fs::create_dir_all(dir.join("registry"))
            .with_context(|| format!("cannot create {}", dir.join("registry").display()))?;
        std::fs::write(&config_path, registry_config(dir, port))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let log = REGISTRY.log_file(dir);
        let pid = proc::spawn_detached(command, &log)?;
        proc::write_pid(&REGISTRY.pid_file(dir), pid)?;
        wait_ready(REGISTRY, pid, port, "/v2/", &log, Duration::from_secs(30))?;
        println!("registry  started   pid {pid}  {}  (log {})", stack.registry(), log.display());
        Ok(())
    })?;
    Ok(())
}

pub(super) fn check_port(port: u16, how: &str) -> Result<()> {
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

pub(super) fn start_watch(
    sh: &Shell,
    stack: &LocalStack,
    dir: &Path,
    owner: u32,
    dry: DryRun,
) -> Result<()> {
    dry.call(format_args!("stop the stack when process {owner} exits"), || {
        start_watch_process(sh, stack, dir, owner)
    })?;
    Ok(())
}

fn start_watch_process(sh: &Shell, stack: &LocalStack, dir: &Path, owner: u32) -> Result<()> {
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

/// Stops the watcher, the registry and moto of `dir` (skipping `except`, the caller itself).
/// Returns how many processes it stopped.
pub(super) fn stop_stack(dir: &Path, dry: DryRun, except: Option<u32>) -> Result<usize> {
    let mut stopped = 0;
    for server in [WATCH, REGISTRY, MOTO] {
        let pid_file = server.pid_file(dir);
        let Some(pid) = proc::read_pid(&pid_file) else { continue };
        if Some(pid) == except {
            if !dry.is_on() {
                let _ = std::fs::remove_file(&pid_file);
            }
            continue;
        }
        if proc::alive(pid, server.marker) {
            let stop = || {
                proc::stop(pid, server.marker, Duration::from_secs(10))
                    .with_context(|| format!("cannot stop {} (pid {pid})", server.name))?;
                println!("stopped {} (pid {pid})", server.name);
                Ok(())
            };
            if dry.call(format_args!("stop {} (pid {pid})", server.name), stop)?.is_none() {
                continue;
            }
            stopped += 1;
        }
        if !dry.is_on() {
            std::fs::remove_file(&pid_file)
                .with_context(|| format!("cannot remove {}", pid_file.display()))?;
        }
    }
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moto_launcher_runs_the_kms_fix_and_is_found_as_moto() {
        assert!(MOTO_LAUNCHER.contains(&format!("runpy.run_path(\"{MOTO_KMS_FIX_FILE}\")")));
        assert!(MOTO_LAUNCHER.contains(MOTO.marker), "proc::alive must recognize moto");
        assert!(MOTO_LAUNCHER.ends_with("moto.server.main()"));
        // The fix patches what it says, and nothing at import time fails silently.
        for patched in ["KmsResponse.sign = ", "KmsResponse.verify = ", "Prehashed(", "4096"] {
            assert!(MOTO_KMS_FIX.contains(patched), "{patched}");
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
