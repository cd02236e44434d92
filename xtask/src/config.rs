//! Names and settings, in one place. Every value has a flag and an environment variable; the
//! defaults come from the deployment guide (project `upscaler`, region `us-east-1`).
//!
//! | resource            | name                                   | seed? |
//! |---------------------|----------------------------------------|-------|
//! | ECR repository      | `{project}-splitter-{env}-ecr`         | yes   |
//! | Batch job definition| `{project}-splitter-job-{env}`         | yes   |
//! | Batch job queue     | `{project}-splitter-queue-{env}`       | ours  |
//! | Batch compute env   | `{project}-splitter-compute-{env}`     | ours  |
//! | S3 bucket (itest)   | `{project}-splitter-{env}-data`        | ours  |
//! | IAM role (Batch job)| `{project}-splitter-job-role-{env}`    | ours  |

use std::fmt;

use clap::{Args, ValueEnum};

/// A deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Env {
    Dev,
    Staging,
    Prod,
}

impl Env {
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Staging => "staging",
            Env::Prod => "prod",
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which project, environment and region a command works on.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Project prefix of every resource name.
    #[arg(long, env = "PROJECT_NAME", default_value = "upscaler")]
    pub project: String,
    /// Deployment environment.
    #[arg(long = "env", env = "SPLITTER_ENV", value_enum, default_value_t = Env::Dev)]
    pub env: Env,
    /// AWS region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
}

impl Target {
    pub fn ecr_repository(&self) -> String {
        format!("{}-splitter-{}-ecr", self.project, self.env)
    }
    pub fn job_definition(&self) -> String {
        format!("{}-splitter-job-{}", self.project, self.env)
    }
    pub fn job_queue(&self) -> String {
        format!("{}-splitter-queue-{}", self.project, self.env)
    }
    pub fn compute_environment(&self) -> String {
        format!("{}-splitter-compute-{}", self.project, self.env)
    }
    pub fn bucket(&self) -> String {
        format!("{}-splitter-{}-data", self.project, self.env)
    }
    pub fn job_role(&self) -> String {
        format!("{}-splitter-job-role-{}", self.project, self.env)
    }
}

/// The local image name `cargo xtask image` tags (`{project}-splitter:{sha}`).
pub fn local_image_name(project: &str) -> String {
    format!("{project}-splitter")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(env: Env) -> Target {
        Target { project: "upscaler".into(), env, region: "us-east-1".into() }
    }

    #[test]
    fn names_follow_the_seed() {
        let dev = target(Env::Dev);
        assert_eq!(dev.ecr_repository(), "upscaler-splitter-dev-ecr");
        assert_eq!(dev.job_definition(), "upscaler-splitter-job-dev");
        let prod = target(Env::Prod);
        assert_eq!(prod.ecr_repository(), "upscaler-splitter-prod-ecr");
        assert_eq!(prod.job_queue(), "upscaler-splitter-queue-prod");
    }
}
