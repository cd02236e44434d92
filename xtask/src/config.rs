//! Names and settings, in one place. Every value has a flag and an environment variable; the
//! defaults come from the deployment guide (project `upscaler`, region `us-east-1`).
//!
//! | resource                    | name                                          | seed? |
//! |-----------------------------|-----------------------------------------------|-------|
//! | ECR repository              | `{project}-splitter-{env}-ecr`                | yes   |
//! | Batch job definition        | `{project}-splitter-job-{env}`                | yes   |
//! | CloudWatch log group        | `/aws/batch/job`                              | yes   |
//! | Batch job queue             | `{project}-splitter-queue-{env}`              | ours  |
//! | Batch compute environment   | `{project}-splitter-compute-{env}`            | ours  |
//! | S3 bucket (itest data)      | `{project}-splitter-{env}-data`               | ours  |
//! | IAM role (Batch job)        | `{project}-splitter-job-role-{env}`           | ours  |
//! | IAM role (Batch service)    | `{project}-splitter-batch-service-role-{env}` | ours  |
//! | KMS key alias (signing)     | `alias/{project}-splitter-signing-{env}`      | ours  |
//! | local base image            | `{project}-base:trixie`                       | ours  |
//! | local splitter image        | `{project}-splitter:{git sha}[-dirty]`        | ours  |
//!
//! The local stack (`cargo xtask local …`) has its own settings: [`LocalStack`].

use std::fmt;
use std::path::PathBuf;

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

/// The project prefix when `PROJECT_NAME` is not set (the deployment guide's).
pub const DEFAULT_PROJECT: &str = "upscaler";

/// Which project, environment and region a command works on.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Project prefix of every resource name.
    #[arg(long, env = "PROJECT_NAME", default_value = DEFAULT_PROJECT)]
    pub project: String,
    /// Deployment environment.
    #[arg(long = "env", env = "SPLITTER_ENV", value_enum, default_value_t = Env::Dev)]
    pub env: Env,
    /// AWS region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
}

/// The CloudWatch log group Batch writes job logs to (the seed's "Monitoring" section).
pub const BATCH_LOG_GROUP: &str = "/aws/batch/job";

/// The image tag a job definition carries before the first deploy: Terraform registers the
/// job definition before any image exists, and `cargo xtask deploy` replaces it.
pub const PLACEHOLDER_TAG: &str = "placeholder";

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
    /// The role the Batch service uses to manage the compute environment.
    pub fn batch_service_role(&self) -> String {
        format!("{}-splitter-batch-service-role-{}", self.project, self.env)
    }
    /// The alias of the KMS key (ECC_NIST_P256, SIGN_VERIFY) that signs the environment's images;
    /// the deploy role may use only the key this alias names (`iam_policy`).
    pub fn signing_key_alias(&self) -> String {
        format!("alias/{}-splitter-signing-{}", self.project, self.env)
    }
    /// Tags every resource carries (Terraform's `default_tags`).
    pub fn tags(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Project", self.project.clone()),
            ("Environment", self.env.to_string()),
            ("Component", "splitter".to_owned()),
            ("ManagedBy", "cargo-xtask".to_owned()),
        ]
    }
}

/// The local image name `cargo xtask image` tags (`{project}-splitter:{sha}`).
pub fn local_image_name(project: &str) -> String {
    format!("{project}-splitter")
}

/// The Debian base image offline builds use, made by `cargo xtask local up` with debootstrap
/// (this machine cannot pull images): `{project}-base:trixie`.
pub fn local_base_image(project: &str) -> String {
    format!("{project}-base:trixie")
}

/// Where a local stack runs: ports on 127.0.0.1 and the directory holding its PID files, logs,
/// registry storage and the `env` file. Tests run private stacks on other ports and directories.
#[derive(Debug, Clone, Args)]
pub struct LocalStack {
    /// Port of the moto server (S3, ECR, Batch, IAM, STS, CloudWatch Logs, KMS) on 127.0.0.1.
    #[arg(long, env = "SPLITTER_MOTO_PORT", default_value_t = 4566)]
    pub moto_port: u16,
    /// Port of the Distribution registry on 127.0.0.1.
    #[arg(long, env = "SPLITTER_REGISTRY_PORT", default_value_t = 5000)]
    pub registry_port: u16,
    /// State directory: PID files, logs, registry storage, the `env` file
    /// [default: target/xtask/local].
    #[arg(long, env = "SPLITTER_LOCAL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl LocalStack {
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| crate::xtask_dir().join("local"))
    }
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_port)
    }
    pub fn registry(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }
    /// The file another shell sources to talk to the stack.
    pub fn env_file(&self) -> PathBuf {
        self.state_dir().join("env")
    }
}

/// The dummy credentials of the local stack (moto accepts any).
pub use crate::aws::{LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY};

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
        assert_eq!(prod.signing_key_alias(), "alias/upscaler-splitter-signing-prod");
    }

    #[test]
    fn our_names_follow_the_same_scheme() {
        let staging =
            Target { project: "acme".into(), env: Env::Staging, region: "eu-west-1".into() };
        assert_eq!(staging.compute_environment(), "acme-splitter-compute-staging");
        assert_eq!(staging.bucket(), "acme-splitter-staging-data");
        assert_eq!(staging.job_role(), "acme-splitter-job-role-staging");
        assert_eq!(staging.batch_service_role(), "acme-splitter-batch-service-role-staging");
        assert_eq!(staging.signing_key_alias(), "alias/acme-splitter-signing-staging");
        assert_eq!(local_image_name("acme"), "acme-splitter");
        assert_eq!(local_base_image("acme"), "acme-base:trixie");
        let tags = staging.tags();
        assert!(tags.contains(&("Project", "acme".to_owned())));
        assert!(tags.contains(&("Environment", "staging".to_owned())));
    }

    #[test]
    fn bucket_names_are_valid_s3_names() {
        // S3: 3–63 chars, lowercase letters, digits, dots and hyphens.
        for env in [Env::Dev, Env::Staging, Env::Prod] {
            let name = target(env).bucket();
            assert!((3..=63).contains(&name.len()), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
    }

    #[test]
    fn signing_key_aliases_are_valid_kms_aliases() {
        // KMS: `alias/` then letters, digits, `/`, `_`, `-`; 256 chars at most; not `alias/aws/`.
        for env in [Env::Dev, Env::Staging, Env::Prod] {
            let alias = target(env).signing_key_alias();
            let name = alias.strip_prefix("alias/").expect("alias/ prefix");
            assert!(alias.len() <= 256 && !name.starts_with("aws/"), "{alias}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c)),
                "{alias}"
            );
        }
    }

    #[test]
    fn local_stack_defaults() {
        let stack = LocalStack { moto_port: 4566, registry_port: 5000, state_dir: None };
        assert_eq!(stack.endpoint_url(), "http://127.0.0.1:4566");
        assert_eq!(stack.registry(), "127.0.0.1:5000");
        assert!(stack.state_dir().ends_with("xtask/local"));
        assert!(stack.env_file().ends_with("xtask/local/env"));
    }
}
