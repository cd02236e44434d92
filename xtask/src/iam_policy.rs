//! `cargo xtask iam-policy`: the IAM role GitHub Actions assumes to push, deploy, roll back and
//! integration-test one environment, as two JSON documents built from the names in
//! [`crate::config`]:
//!
//! - the **permissions policy**: exactly the actions those commands call (through the SDK, and
//!   through `docker push` for the ECR layer upload), each on the environment's own resources
//!   (its ECR repository, job definition, job queue, data bucket, the job log streams, `PassRole`
//!   on its job role only, `kms:Sign` and `kms:GetPublicKey` on the one key whose aliases include
//!   its signing key alias: `kms:ResourceAliases`); `*` only where AWS has no resource-level
//!   permission;
//! - the **trust policy**: GitHub's OIDC provider, audience `sts.amazonaws.com`, and a subject
//!   that is this repository's GitHub environment of the same name, so only a job running in
//!   the `prod` environment (after its reviewers approved) can act as the prod role, and pull
//!   requests can assume no role at all.
//!
//! `--check FILE` reads the calls xtask recorded (`XTASK_RECORD_AWS_CALLS=FILE`, see
//! [`crate::aws`]) and fails on any the permissions policy does not allow: the coverage test
//! (`xtask/tests/iam_policy.rs`) runs push, deploy, rollback (and itest) that way.
//! `cargo xtask local up` is not in the policy: creating the resources is Terraform's job (or an
//! administrator's, locally).
//!
//! The documents are built in `iam_policy/documents.rs`, the check is `iam_policy/check.rs`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::json;
use xshell::Shell;

use crate::aws::{Aws, sdk_error};
use crate::config::Target;

mod check;
mod documents;

use check::check_calls;
pub use check::{allowing_statement, allowing_statement_on_key, iam_action};
pub use documents::{partition, permissions_policy, trust_policy};

/// Where `cargo xtask itest` puts its runs in the environment's bucket (`itest/{stamp}-{random}`):
/// the deploy role may touch no other object there.
pub const ITEST_PREFIX: &str = "itest/";

/// GitHub Actions' OIDC token issuer.
pub const GITHUB_OIDC_HOST: &str = "token.actions.githubusercontent.com";

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask iam-policy --env dev --account 123456789012 --repo acme/splitter
  cargo xtask iam-policy --env prod --document trust > trust.json
  cargo xtask iam-policy --env prod --document permissions > permissions.json
  XTASK_RECORD_AWS_CALLS=calls.txt cargo xtask deploy --env dev
  cargo xtask iam-policy --env dev --check calls.txt   # did the policy allow every call?

Create the role once per environment (needs IAM admin rights, and GitHub's OIDC provider in the
account):
  aws iam create-role --role-name upscaler-splitter-deploy-dev --assume-role-policy-document file://trust.json
  aws iam put-role-policy --role-name upscaler-splitter-deploy-dev --policy-name splitter-deploy \\
      --policy-document file://permissions.json
then store its ARN as the AWS_ROLE_ARN secret of the GitHub environment.")]
pub struct IamPolicy {
    #[command(flatten)]
    target: Target,
    /// AWS account id (12 digits) [default: the caller's, from STS GetCallerIdentity].
    #[arg(long, env = "AWS_ACCOUNT_ID", value_name = "ID")]
    account: Option<String>,
    /// The GitHub repository whose workflow may assume the role [default: GITHUB_REPOSITORY,
    /// else the workspace's `repository` in Cargo.toml].
    #[arg(long, env = "GITHUB_REPOSITORY", value_name = "OWNER/NAME")]
    repo: Option<String>,
    /// What to print: both documents in one JSON object, or just one of them (ready for
    /// `aws iam put-role-policy` / `create-role`).
    #[arg(long, value_enum, default_value_t = Document::All)]
    document: Document,
    /// Instead of printing: check the calls recorded in FILE (`XTASK_RECORD_AWS_CALLS=FILE`,
    /// one `Service:Operation` per line) against the permissions policy.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Document {
    All,
    Permissions,
    Trust,
}

impl IamPolicy {
    pub fn run(self, sh: &Shell) -> Result<()> {
        if let Some(file) = &self.check {
            let file = sh.current_dir().join(file);
            // Actions are what is checked: the account only fills ARNs.
            let policy = permissions_policy(&self.target, "123456789012");
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "cannot read {}: record calls first with `{}={} cargo xtask …`",
                    file.display(),
                    crate::aws::RECORD_CALLS_VAR,
                    file.display()
                )
            })?;
            return check_calls(&policy, &text);
        }
        let repo = match self.repo.clone().filter(|r| !r.trim().is_empty()) {
            Some(repo) => repo,
            None => workspace_repository().as_deref().and_then(repo_from_cargo).context(
                "no repository known: pass --repo OWNER/NAME (the GitHub repository that runs the workflow)",
            )?,
        };
        validate_repo(&repo)?;
        let account = match self.account.clone().filter(|a| !a.trim().is_empty()) {
            Some(account) => account,
            None => caller_account(&self.target.region)?,
        };
        validate_account(&account)?;
        let permissions = permissions_policy(&self.target, &account);
        let trust = trust_policy(&self.target, &account, &repo);
        let out = match self.document {
            Document::Permissions => permissions,
            Document::Trust => trust,
            Document::All => json!({
                "RoleName": role_name(&self.target),
                "TrustPolicy": trust,
                "PermissionsPolicy": permissions,
            }),
        };
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        Ok(())
    }
}

/// The suggested name of the deploy role: `{project}-splitter-deploy-{env}`.
pub fn role_name(target: &Target) -> String {
    format!("{}-splitter-deploy-{}", target.project, target.env)
}

/// The `repository` URL of the workspace's Cargo.toml (`[workspace.package]`).
fn workspace_repository() -> Option<String> {
    let text = std::fs::read_to_string(crate::project_root().join("Cargo.toml")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("repository = "))
        .map(|v| v.trim().trim_matches('"').to_owned())
}

/// `owner/name` from a `https://github.com/owner/name(.git)` URL.
fn repo_from_cargo(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://github.com/")?;
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    (rest.split('/').count() == 2).then(|| rest.to_owned())
}

fn validate_repo(repo: &str) -> Result<()> {
    let ok = repo.split_once('/').is_some_and(|(owner, name)| {
        let good = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        good(owner) && good(name)
    });
    if !ok {
        bail!("--repo {repo:?} is not a GitHub repository: use OWNER/NAME, e.g. acme/splitter");
    }
    Ok(())
}

fn validate_account(account: &str) -> Result<()> {
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "--account {account:?} is not an AWS account id: use its 12 digits, e.g. 123456789012"
        );
    }
    Ok(())
}

/// The account of the caller's credentials.
fn caller_account(region: &str) -> Result<String> {
    let aws = Aws::load(region)?;
    let out = aws.block_on(aws.sts().get_caller_identity().send()).map_err(sdk_error).context(
        "cannot find the AWS account from the current credentials: pass --account ID (12 digits)",
    )?;
    out.account()
        .map(str::to_owned)
        .context("STS returned no account: pass --account ID (12 digits)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_and_accounts_are_validated() {
        assert_eq!(
            repo_from_cargo("https://github.com/upscaler/splitter").as_deref(),
            Some("upscaler/splitter")
        );
        assert_eq!(repo_from_cargo("https://github.com/a/b.git").as_deref(), Some("a/b"));
        assert_eq!(repo_from_cargo("https://gitlab.com/a/b"), None);
        assert!(validate_repo("acme/splitter").is_ok());
        assert!(validate_repo("acme").is_err());
        assert!(validate_repo("acme/split ter").is_err());
        assert!(validate_account("123456789012").is_ok());
        assert!(validate_account("12345").is_err());
    }
}
