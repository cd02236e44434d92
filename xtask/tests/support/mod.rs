//! Shared support for xtask's integration tests: run the built `xtask` binary in a clean
//! environment, and get a running local stack (moto + registry + Docker Engine) on private ports.
//!
//! ```ignore
//! mod support;
//!
//! #[test]
//! fn something_against_the_stack() {
//!     let stack = support::stack(); // started once per test binary, stopped when it exits
//!     let out = support::run(stack.xtask().args(["push", "--env", "dev"]));
//!     out.assert_success();
//!     let aws = stack.aws();
//!     let repos = aws.block_on(aws.ecr().describe_repositories().send()).unwrap();
//! }
//! ```
//!
//! Every stack here runs with `--owner-pid` of the test process, so even a test binary that
//! panics or is killed leaves no server behind.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use xtask::proc::read_pid;

/// Environment variables of the caller's shell that would change what xtask does.
const SCRUBBED_PREFIXES: &[&str] = &["AWS_", "SPLITTER_", "MOTO_"];
const SCRUBBED: &[&str] = &["PROJECT_NAME"];
/// Kept: which Python runs moto is a property of the machine, not of a stack.
const KEPT: &[&str] = &["SPLITTER_PYTHON"];

/// The built xtask binary.
pub fn xtask_bin() -> &'static str {
    env!("CARGO_BIN_EXE_xtask")
}

/// A command that runs the built xtask with the caller's AWS/SPLITTER settings removed.
pub fn xtask() -> Command {
    let mut cmd = Command::new(xtask_bin());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let scrub = SCRUBBED_PREFIXES.iter().any(|p| key.starts_with(p))
            || SCRUBBED.contains(&key.as_str());
        if scrub && !KEPT.contains(&key.as_str()) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The outcome of a command, with helpers that fail the test with the full output.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn success(&self) -> bool {
        self.output.status.success()
    }
    /// Panics with both outputs unless the command succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "`{}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// Panics unless the command failed with exactly one `error: …` line on stderr; returns it.
    pub fn assert_one_line_error(&self) -> String {
        assert!(
            !self.success(),
            "`{}` succeeded but should have failed:\n{}",
            self.command,
            self.stdout()
        );
        let stderr = self.stderr();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(
            errors.len(),
            1,
            "expected one error line from `{}`, got:\n{stderr}",
            self.command
        );
        assert!(
            errors[0].lines().count() == 1 && !stderr.contains("panicked"),
            "not one clear line:\n{stderr}"
        );
        errors[0].to_owned()
    }
    /// [`Run::assert_one_line_error`], and the line says each of `parts`; returns it.
    pub fn assert_one_line_error_with(&self, parts: &[&str]) -> String {
        let line = self.assert_one_line_error();
        assert_contains(&line, parts);
        line
    }
}

/// Panics, showing `text`, unless it contains each of `parts`.
pub fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

/// The job id of itest's `itest passed: job ID …` line in `out`.
pub fn passed_job_id(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("itest passed: job "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `itest passed: job` line in:\n{out}"))
}

/// Runs `cmd` to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Run {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run `{command}`: {e}"));
    Run { command, output }
}

/// A port on 127.0.0.1 that nothing listens on now and that this process has not handed out.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("cannot bind a port on 127.0.0.1")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Whether process `pid` runs (a zombie does not). Not xtask's `proc::alive` on purpose: the
/// tests check with it what xtask's process handling did.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X') | None)
        }
        Err(_) => false,
    }
}

/// `docker ARGS` (the client on PATH); its stdout, trimmed. Panics with stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes the `{prefix}{pid}-splitter…` images earlier test runs left (and their local-registry
/// tags `127.0.0.1:PORT/{prefix}{pid}-splitter-…`), except process `keep_pid`'s when given.
pub fn remove_images(prefix: &str, keep_pid: Option<u32>) {
    for image in docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]).lines() {
        let repo = image
            .split_once('/')
            .filter(|(h, _)| h.starts_with("127.0.0.1:"))
            .map_or(image, |(_, r)| r);
        let Some(rest) = repo.strip_prefix(prefix) else { continue };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() || !rest[digits.len()..].starts_with("-splitter") {
            continue;
        }
        if keep_pid.is_some_and(|pid| digits == pid.to_string()) {
            continue;
        }
        let _ = Command::new("docker").args(["image", "rm", "--force", image]).output();
    }
}

/// Serializes heavy Docker work (image builds, Batch job containers) inside one test binary:
/// this machine has two cores. Hold the guard for the duration of the heavy part.
pub fn docker_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where test stacks keep their state: under the target directory, one folder per stack.
fn stacks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xtask-stacks")
}

/// Removes the state folders of earlier runs whose processes are gone.
fn remove_stale_stacks() {
    let Ok(entries) = std::fs::read_dir(stacks_dir()) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        let live = ["moto.pid", "registry.pid", "watch.pid"]
            .iter()
            .any(|f| read_pid(&dir.join(f)).is_some_and(pid_alive));
        if !live {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// A running local stack on private ports.
#[derive(Debug)]
pub struct Stack {
    pub state_dir: PathBuf,
    pub moto_port: u16,
    pub registry_port: u16,
    /// The `export`s of the stack's env file, as `(name, value)`.
    pub env: Vec<(String, String)>,
    /// What `local up` printed.
    pub up_output: String,
}

impl Stack {
    /// The flags that point an xtask `local` command at this stack.
    pub fn args(&self) -> Vec<String> {
        stack_args(&self.state_dir, self.moto_port, self.registry_port)
    }

    /// xtask with the stack's env file applied (so `push`, `deploy`, … talk to it).
    pub fn xtask(&self) -> Command {
        let mut cmd = xtask();
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_port)
    }

    pub fn registry(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }

    /// SDK clients talking to this stack's moto (xtask's own `Aws::local`).
    pub fn aws(&self) -> Aws {
        Aws::local("us-east-1", &self.endpoint()).expect("SDK clients for the stack")
    }

    /// Starts a new private stack (`local up --owner-pid <this process>`), state under the
    /// target directory. `name` tells stacks of one test binary apart.
    pub fn start(name: &str) -> Stack {
        Self::start_with(name, &[])
    }

    /// Like [`Stack::start`], with extra arguments for `local up` (e.g. `--env staging`).
    pub fn start_with(name: &str, extra: &[&str]) -> Stack {
        remove_stale_stacks();
        let state_dir = stacks_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&state_dir).expect("cannot create the stack's state dir");
        let (moto_port, registry_port) = (free_port(), free_port());
        let owner = std::process::id().to_string();
        let up = run(xtask()
            .args(["local", "up", "--no-install", "--owner-pid", &owner])
            .args(stack_args(&state_dir, moto_port, registry_port))
            .args(extra));
        up.assert_success();
        let env = read_env_file(&state_dir.join("env"));
        Stack { state_dir, moto_port, registry_port, env, up_output: up.stdout() }
    }

    /// `local down` for this stack; returns its output.
    pub fn down(&self) -> Run {
        let r = run(xtask().args(["local", "down"]).args(self.args()));
        r.assert_success();
        r
    }
}

fn stack_args(dir: &Path, moto: u16, registry: u16) -> Vec<String> {
    vec![
        "--moto-port".into(),
        moto.to_string(),
        "--registry-port".into(),
        registry.to_string(),
        "--state-dir".into(),
        dir.display().to_string(),
    ]
}

/// The `export NAME=value` lines of an env file, read as xtask reads them.
pub fn read_env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read env file {}: {e}", path.display()));
    xtask::aws::parse_env_file(&text)
}

/// The stack shared by the tests of one test binary: started on first use, stopped by its
/// watcher when the test process exits. Do not call `down` on it.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("shared"))
}

/// The SDK clients xtask itself uses (`xtask::aws`).
pub use xtask::aws::Aws;
