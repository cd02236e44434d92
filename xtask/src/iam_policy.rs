//! `cargo xtask iam-policy`: the IAM role GitHub Actions assumes to push, deploy, roll back and
//! integration-test one environment, as two JSON documents built from the names in
//! [`crate::config`]:
//!
//! - the **permissions policy**: exactly the actions those commands call (through the SDK, and
//!   through `docker push` for the ECR layer upload), each on the environment's own resources
//!   (its ECR repository, job definition, job queue, data bucket, the job log streams, `PassRole`
//!   on its job role only); `*` only where AWS has no resource-level permission;
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

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use xshell::Shell;

use crate::aws::{Aws, sdk_error};
use crate::config::{BATCH_LOG_GROUP, Target};

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

/// The ARN partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The permissions policy of the deploy role of `target`'s environment.
pub fn permissions_policy(target: &Target, account: &str) -> Value {
    let p = partition(&target.region);
    let region = &target.region;
    let arn =
        |service: &str, resource: &str| format!("arn:{p}:{service}:{region}:{account}:{resource}");
    let repository = arn("ecr", &format!("repository/{}", target.ecr_repository()));
    let jobdef = target.job_definition();
    let jobdefs = [
        arn("batch", &format!("job-definition/{jobdef}")),
        arn("batch", &format!("job-definition/{jobdef}:*")),
    ];
    let queue = arn("batch", &format!("job-queue/{}", target.job_queue()));
    let bucket = target.bucket();
    // Batch's awslogs streams are `{job definition}/default/{job id}`.
    let log_streams = arn("logs", &format!("log-group:{BATCH_LOG_GROUP}:log-stream:{jobdef}/*"));
    let job_role = format!("arn:{p}:iam::{account}:role/{}", target.job_role());
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                // push: the registry login. AWS has no resource-level permission for it.
                "Sid": "EcrLogin",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": "*"
            },
            {
                // push (docker push: layer upload + PutImage; xtask: tags with PutImage, reads
                // manifests, starts the scan), deploy/rollback (the tag exists, `latest` moves).
                "Sid": "EcrRepository",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:CompleteLayerUpload",
                    "ecr:DescribeImages",
                    "ecr:DescribeRepositories",
                    "ecr:InitiateLayerUpload",
                    "ecr:PutImage",
                    "ecr:StartImageScan",
                    "ecr:UploadLayerPart"
                ],
                "Resource": repository
            },
            {
                // deploy/rollback/itest read revisions, queues and jobs: Batch's Describe and
                // List actions have no resource-level permissions.
                "Sid": "BatchRead",
                "Effect": "Allow",
                "Action": [
                    "batch:DescribeJobDefinitions",
                    "batch:DescribeJobQueues",
                    "batch:DescribeJobs",
                    "batch:ListJobs"
                ],
                "Resource": "*"
            },
            {
                // deploy/rollback: a new revision of this job definition, with its tags.
                "Sid": "BatchRegister",
                "Effect": "Allow",
                "Action": ["batch:RegisterJobDefinition", "batch:TagResource"],
                "Resource": jobdefs
            },
            {
                // itest: submit to this queue with this job definition only.
                "Sid": "BatchSubmit",
                "Effect": "Allow",
                "Action": ["batch:SubmitJob"],
                "Resource": [queue, jobdefs[0], jobdefs[1]]
            },
            {
                // itest: stop its own job when it times out (job ids are not known in advance).
                "Sid": "BatchTerminate",
                "Effect": "Allow",
                "Action": ["batch:TerminateJob"],
                "Resource": arn("batch", "job/*")
            },
            {
                // Registering a revision hands the job role to Batch; no other role.
                "Sid": "PassJobRole",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": job_role,
                "Condition": {"StringEquals": {"iam:PassedToService": "batch.amazonaws.com"}}
            },
            {
                // itest: the bucket exists (HeadBucket) and lists its run's output. Objects
                // outside its prefix stay out of reach (next statement).
                "Sid": "ItestBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": format!("arn:{p}:s3:::{bucket}")
            },
            {
                "Sid": "ItestObjects",
                "Effect": "Allow",
                "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                "Resource": format!("arn:{p}:s3:::{bucket}/{ITEST_PREFIX}*")
            },
            {
                // itest: the failed job's log tail.
                "Sid": "JobLogs",
                "Effect": "Allow",
                "Action": ["logs:GetLogEvents"],
                "Resource": log_streams
            }
        ]
    })
}

/// The trust policy: GitHub's OIDC provider, for this repository's GitHub environment named
/// like `target`'s environment (the workflow runs every AWS job in one).
pub fn trust_policy(target: &Target, account: &str, repo: &str) -> Value {
    let p = partition(&target.region);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "GitHubActionsEnvironment",
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:{p}:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{GITHUB_OIDC_HOST}:aud"): "sts.amazonaws.com",
                    format!("{GITHUB_OIDC_HOST}:sub"): format!("repo:{repo}:environment:{}", target.env)
                }
            }
        }]
    })
}

/// The IAM action an SDK call needs, from the operation metadata the recorder writes
/// (`Service:Operation`). `Ok(None)`: the call needs no permission.
pub fn iam_action(service: &str, operation: &str) -> Result<Option<String>> {
    let prefix = match service {
        "ECR" => "ecr",
        "Batch" => "batch",
        "CloudWatch Logs" => "logs",
        "IAM" => "iam",
        "S3" => "s3",
        // GetCallerIdentity needs no permission (AWS: "no permissions are required").
        "STS" if operation == "GetCallerIdentity" => return Ok(None),
        "STS" => "sts",
        other => bail!(
            "AWS service {other:?} ({operation}) is unknown to iam-policy: add its IAM prefix to iam_policy::iam_action"
        ),
    };
    // S3's IAM actions are not named after its operations.
    let action = match (prefix, operation) {
        ("s3", "ListObjectsV2" | "ListObjects" | "HeadBucket") => "ListBucket",
        ("s3", "HeadObject" | "GetObject" | "GetObjectAttributes") => "GetObject",
        (
            "s3",
            "PutObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "CompleteMultipartUpload"
            | "CopyObject",
        ) => "PutObject",
        ("s3", "DeleteObjects") => "DeleteObject",
        (_, op) => op,
    };
    Ok(Some(format!("{prefix}:{action}")))
}

/// The `Sid` of the first Allow statement of `policy` that grants `action`.
pub fn allowing_statement(policy: &Value, action: &str) -> Option<String> {
    let statements = policy["Statement"].as_array()?;
    statements.iter().find_map(|s| {
        if s["Effect"] != "Allow" {
            return None;
        }
        let actions: Vec<&str> = match &s["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        actions
            .iter()
            .any(|pattern| action_matches(pattern, action))
            .then(|| s["Sid"].as_str().unwrap_or("(no Sid)").to_owned())
    })
}

/// IAM action matching: case-insensitive, `*` matches any run of characters.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..])),
            Some((c, rest)) => {
                a.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &a[1..])
            }
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Prints each distinct recorded call with the action and statement that allows it; fails
/// naming every call the policy does not allow.
fn check_calls(policy: &Value, recorded: &str) -> Result<()> {
    let calls: BTreeSet<&str> = recorded.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if calls.is_empty() {
        bail!("no AWS calls recorded: run xtask commands with XTASK_RECORD_AWS_CALLS=FILE first");
    }
    let mut denied = Vec::new();
    for call in &calls {
        let (service, operation) = call
            .split_once(':')
            .with_context(|| format!("recorded line {call:?} is not `Service:Operation`"))?;
        match iam_action(service, operation)? {
            None => println!("{call:40} (needs no permission)"),
            Some(action) => match allowing_statement(policy, &action) {
                Some(sid) => println!("{call:40} {action:32} {sid}"),
                None => {
                    println!("{call:40} {action:32} NOT ALLOWED");
                    denied.push(action);
                }
            },
        }
    }
    if !denied.is_empty() {
        bail!(
            "the deploy role's policy does not allow {}: add them to iam_policy::permissions_policy",
            denied.join(", ")
        );
    }
    println!("{} distinct calls, all allowed", calls.len());
    Ok(())
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
    use crate::config::Env;

    fn target(env: Env, region: &str) -> Target {
        Target { project: "upscaler".into(), env, region: region.into() }
    }

    #[test]
    fn recorded_calls_map_to_iam_actions() {
        let map = |s, o| iam_action(s, o).expect("known service");
        assert_eq!(map("ECR", "PutImage").as_deref(), Some("ecr:PutImage"));
        assert_eq!(
            map("Batch", "RegisterJobDefinition").as_deref(),
            Some("batch:RegisterJobDefinition")
        );
        assert_eq!(map("CloudWatch Logs", "GetLogEvents").as_deref(), Some("logs:GetLogEvents"));
        assert_eq!(map("S3", "ListObjectsV2").as_deref(), Some("s3:ListBucket"));
        assert_eq!(map("S3", "HeadObject").as_deref(), Some("s3:GetObject"));
        assert_eq!(map("S3", "UploadPart").as_deref(), Some("s3:PutObject"));
        assert_eq!(map("S3", "DeleteObjects").as_deref(), Some("s3:DeleteObject"));
        assert_eq!(map("STS", "GetCallerIdentity"), None);
        let err = iam_action("Lambda", "Invoke").expect_err("unknown service");
        assert!(err.to_string().contains("unknown to iam-policy"), "{err}");
    }

    #[test]
    fn action_patterns_match_like_iam() {
        assert!(action_matches("ecr:PutImage", "ecr:putimage"));
        assert!(action_matches("ecr:*", "ecr:PutImage"));
        assert!(action_matches("s3:Get*", "s3:GetObject"));
        assert!(!action_matches("ecr:Put*", "ecr:GetAuthorizationToken"));
        assert!(!action_matches("ecr:PutImage", "ecr:PutImageScanningConfiguration"));
    }

    #[test]
    fn every_resource_is_the_environments_own_unless_aws_has_none() {
        let policy = permissions_policy(&target(Env::Staging, "eu-west-1"), "111122223333");
        let text = policy.to_string();
        assert!(
            text.contains(
                "arn:aws:ecr:eu-west-1:111122223333:repository/upscaler-splitter-staging-ecr"
            ),
            "{text}"
        );
        assert!(text.contains(
            "arn:aws:batch:eu-west-1:111122223333:job-definition/upscaler-splitter-job-staging:*"
        ));
        assert!(text.contains(
            "arn:aws:batch:eu-west-1:111122223333:job-queue/upscaler-splitter-queue-staging"
        ));
        assert!(text.contains("arn:aws:s3:::upscaler-splitter-staging-data/itest/*"));
        assert!(
            text.contains("log-group:/aws/batch/job:log-stream:upscaler-splitter-job-staging/*")
        );
        assert!(!text.contains("-dev") && !text.contains("-prod"), "{text}");
        for s in policy["Statement"].as_array().expect("statements") {
            if s["Resource"] == "*" {
                let actions: Vec<&str> = s["Action"]
                    .as_array()
                    .expect("list")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                // AWS: no resource-level permissions for these.
                assert!(
                    actions.iter().all(|a| *a == "ecr:GetAuthorizationToken"
                        || a.starts_with("batch:Describe")
                        || a.starts_with("batch:List")),
                    "{actions:?} on *"
                );
            }
        }
        let pass = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Action"][0] == "iam:PassRole")
            .expect("PassRole statement");
        assert_eq!(
            pass["Resource"],
            "arn:aws:iam::111122223333:role/upscaler-splitter-job-role-staging"
        );
        assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "batch.amazonaws.com");
    }

    #[test]
    fn trust_is_one_repository_environment_and_partitions_follow_the_region() {
        let trust = trust_policy(&target(Env::Prod, "cn-north-1"), "111122223333", "acme/splitter");
        let s = &trust["Statement"][0];
        assert_eq!(
            s["Principal"]["Federated"],
            "arn:aws-cn:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
        );
        let cond = &s["Condition"]["StringEquals"];
        assert_eq!(
            cond["token.actions.githubusercontent.com:sub"],
            "repo:acme/splitter:environment:prod"
        );
        assert_eq!(cond["token.actions.githubusercontent.com:aud"], "sts.amazonaws.com");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("us-east-1"), "aws");
    }

    #[test]
    fn checking_calls_names_what_is_missing() {
        let policy = permissions_policy(&target(Env::Dev, "us-east-1"), "111122223333");
        assert!(
            check_calls(&policy, "ECR:PutImage\nSTS:GetCallerIdentity\nS3:ListObjectsV2\n").is_ok()
        );
        let err = check_calls(&policy, "ECR:PutImage\nECR:DeleteRepository\n").expect_err("denied");
        assert!(err.to_string().contains("does not allow ecr:DeleteRepository"), "{err}");
        assert!(check_calls(&policy, "\n").is_err());
    }

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
