//! The command line of `cargo xtask`: one subcommand per command module of the library, each
//! with its own clap arguments (`xtask::local::Local`, …).

use clap::{Parser, Subcommand};
use xtask::{deploy, iam_policy, image, itest, local, pipeline, push, rollback, scan, sign, test};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, scan, push, deploy and integration-test the splitter container",
    arg_required_else_help = true,
    version
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
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
    /// Sign the pushed image with the environment's KMS key (cosign format) and attest its SBOM.
    Sign(sign::Sign),
    /// Register a new Batch job definition revision that runs a pushed image.
    Deploy(deploy::Deploy),
    /// Go back to the job definition (and image) that ran before the last deploy.
    Rollback(rollback::Rollback),
    /// Run a real Batch job on a test video, verify its segments and join them back.
    Itest(itest::Itest),
    /// Run image → scan → push → sign → deploy → itest, stopping at the first failure.
    Pipeline(pipeline::Pipeline),
    /// Print the least-privilege IAM policy and OIDC trust policy the deploy role needs.
    IamPolicy(iam_policy::IamPolicy),
}
