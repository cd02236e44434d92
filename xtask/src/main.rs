//! `cargo xtask`: builds, scans, pushes, deploys and integration-tests the splitter container.
//!
//! One module per command; every command is `impl Cmd { fn run(self, sh: &Shell) -> Result<()> }`
//! with a single [`xshell::Shell`] rooted at the workspace. Every process goes through xshell and
//! every AWS call through the Rust SDK, so a laptop and CI run the same steps. Pointing
//! `AWS_ENDPOINT_URL` at the local stack (`cargo xtask local up`) is the only difference between
//! local and real AWS.

mod aws;
mod build_record;
mod config;
mod deploy;
mod docker;
mod ecr;
mod gha;
mod git;
mod iam_policy;
mod image;
mod infra;
mod itest;
mod jobdef;
mod local;
mod pipeline;
mod proc;
mod push;
mod rollback;
mod scan;
mod test;
mod time;
mod tools;
mod workflow_lint;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xshell::Shell;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, scan, push, deploy and integration-test the splitter container",
    arg_required_else_help = true,
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start, inspect or stop the local AWS stack (moto, a registry, Docker Engine).
    Local(local::Local),
    /// Install what is missing, then run fmt, clippy and every test (the README's test command).
    Test(test::Test),
    /// Build the splitter image with BuildKit, tagged with the git SHA.
    Image(image::Image),
    /// Scan the built image with Trivy: SARIF + SBOM always, gate on severity.
    Scan(scan::Scan),
    /// Push the built image to the environment's ECR repository.
    Push(push::Push),
    /// Register a new Batch job definition revision that runs a pushed image.
    Deploy(deploy::Deploy),
    /// Go back to the job definition (and image) that ran before the last deploy.
    Rollback(rollback::Rollback),
    /// Run a real Batch job on a test video and verify its segments.
    Itest(itest::Itest),
    /// Run image → scan → push → deploy → itest, stopping at the first failure.
    Pipeline(pipeline::Pipeline),
    /// Print the least-privilege IAM policy and OIDC trust policy the deploy role needs.
    IamPolicy(iam_policy::IamPolicy),
}

impl Cmd {
    fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Cmd::Local(cmd) => cmd.run(sh),
            Cmd::Test(cmd) => cmd.run(sh),
            Cmd::Image(cmd) => cmd.run(sh),
            Cmd::Scan(cmd) => cmd.run(sh),
            Cmd::Push(cmd) => cmd.run(sh),
            Cmd::Deploy(cmd) => cmd.run(sh),
            Cmd::Rollback(cmd) => cmd.run(sh),
            Cmd::Itest(cmd) => cmd.run(sh),
            Cmd::Pipeline(cmd) => cmd.run(sh),
            Cmd::IamPolicy(cmd) => cmd.run(sh),
        }
    }
}

fn main() -> ExitCode {
    // Hidden: `xtask __parse ARGS…` only parses ARGS as `cargo xtask ARGS…` and runs nothing
    // (the README test checks every command line it shows this way).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "__parse") {
        let argv = std::iter::once("cargo xtask".into()).chain(args[2..].iter().cloned());
        return match Cli::try_parse_from(argv) {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                let _ = err.print();
                if err.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
            }
        };
    }
    let cli = Cli::parse();
    let result = Shell::new().context("cannot create a shell").and_then(|sh| {
        sh.change_dir(project_root());
        cli.cmd.run(&sh)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// A path relative to the workspace when inside it (shorter messages).
pub fn shown(path: &Path) -> String {
    path.strip_prefix(project_root()).unwrap_or(path).display().to_string()
}

/// Where xtask keeps its state and reports: `target/xtask/` (or under `CARGO_TARGET_DIR`).
pub fn xtask_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    target.join("xtask")
}
