//! The deploy role's two documents, built from [`crate::config`]'s names: the permissions policy
//! (each command's statements on the environment's own resources) and the trust policy.

use serde_json::{Value, json};

use super::{GITHUB_OIDC_HOST, ITEST_PREFIX};
use crate::config::{BATCH_LOG_GROUP, Target};

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

/// The permissions policy of the deploy role of `target`'s environment: the statements of push,
/// of sign (and deploy's and rollback's verification), of deploy, rollback and itest on Batch,
/// and of itest's data, in that order.
pub fn permissions_policy(target: &Target, account: &str) -> Value {
    let arns = Arns::new(target, account);
    let statements = [
        ecr_statements(&arns),
        signing_statements(&arns),
        batch_statements(&arns),
        itest_data_statements(&arns),
    ]
    .concat();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The condition key that scopes a KMS key statement by the key's aliases (AWS KMS ABAC).
pub const KMS_RESOURCE_ALIASES: &str = "kms:ResourceAliases";

/// The ARNs of the environment's resources the statements name.
#[derive(Debug)]
struct Arns {
    repository: String,
    /// The job definition, unversioned and every revision (`:*`).
    job_definitions: [String; 2],
    job_queue: String,
    /// Any job of the account in the region (job ids are not known in advance).
    jobs: String,
    job_role: String,
    bucket: String,
    /// Objects under [`ITEST_PREFIX`] only.
    itest_objects: String,
    /// Batch's awslogs streams of the job definition: `{job definition}/default/{job id}`.
    log_streams: String,
    /// Any KMS key of the account in the region: IAM names a key by its key ARN only, so the
    /// signing key is the one whose aliases include [`Arns::signing_key_alias`].
    keys: String,
    signing_key_alias: String,
}

impl Arns {
    fn new(target: &Target, account: &str) -> Arns {
        let p = partition(&target.region);
        let region = &target.region;
        let arn = |service: &str, resource: &str| {
            format!("arn:{p}:{service}:{region}:{account}:{resource}")
        };
        let jobdef = target.job_definition();
        let bucket = target.bucket();
        Arns {
            repository: arn("ecr", &format!("repository/{}", target.ecr_repository())),
            job_definitions: [
                arn("batch", &format!("job-definition/{jobdef}")),
                arn("batch", &format!("job-definition/{jobdef}:*")),
            ],
            job_queue: arn("batch", &format!("job-queue/{}", target.job_queue())),
            jobs: arn("batch", "job/*"),
            job_role: format!("arn:{p}:iam::{account}:role/{}", target.job_role()),
            bucket: format!("arn:{p}:s3:::{bucket}"),
            itest_objects: format!("arn:{p}:s3:::{bucket}/{ITEST_PREFIX}*"),
            log_streams: arn("logs", &format!("log-group:{BATCH_LOG_GROUP}:log-stream:{jobdef}/*")),
            keys: arn("kms", "key/*"),
            signing_key_alias: target.signing_key_alias(),
        }
    }
}

/// push's statements (and deploy's and rollback's reads of the repository).
fn ecr_statements(arns: &Arns) -> Vec<Value> {
    vec![
        json!({
            // push: the registry login. AWS has no resource-level permission for it.
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": "*"
        }),
        json!({
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
            "Resource": arns.repository
        }),
    ]
}

/// sign's statement on the signing key (deploy and rollback verify with its public key).
fn signing_statements(arns: &Arns) -> Vec<Value> {
    vec![json!({
        // sign: KMS signs the image's payloads; sign/deploy/rollback read the public key to
        // verify. Only the key the environment's alias names: a key ARN is unknown before
        // the key exists, so the key is chosen by its alias (AWS KMS's documented way).
        "Sid": "SigningKey",
        "Effect": "Allow",
        "Action": ["kms:GetPublicKey", "kms:Sign"],
        "Resource": arns.keys,
        "Condition": {"ForAnyValue:StringEquals": {KMS_RESOURCE_ALIASES: arns.signing_key_alias}}
    })]
}

/// deploy's, rollback's and itest's Batch statements, and the job role they hand to Batch.
fn batch_statements(arns: &Arns) -> Vec<Value> {
    let [jobdef, revisions] = &arns.job_definitions;
    vec![
        json!({
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
        }),
        json!({
            // deploy/rollback: a new revision of this job definition, with its tags.
            "Sid": "BatchRegister",
            "Effect": "Allow",
            "Action": ["batch:RegisterJobDefinition", "batch:TagResource"],
            "Resource": arns.job_definitions
        }),
        json!({
            // itest: submit to this queue with this job definition only.
            "Sid": "BatchSubmit",
            "Effect": "Allow",
            "Action": ["batch:SubmitJob"],
            "Resource": [arns.job_queue, jobdef, revisions]
        }),
        json!({
            // itest: stop its own job when it times out (job ids are not known in advance).
            "Sid": "BatchTerminate",
            "Effect": "Allow",
            "Action": ["batch:TerminateJob"],
            "Resource": arns.jobs
        }),
        json!({
            // Registering a revision hands the job role to Batch; no other role.
            "Sid": "PassJobRole",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": arns.job_role,
            "Condition": {"StringEquals": {"iam:PassedToService": "batch.amazonaws.com"}}
        }),
    ]
}

/// itest's statements on its run's objects and on the job's log.
fn itest_data_statements(arns: &Arns) -> Vec<Value> {
    vec![
        json!({
            // itest: the bucket exists (HeadBucket) and lists its run's output. Objects
            // outside its prefix stay out of reach (next statement).
            "Sid": "ItestBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": arns.bucket
        }),
        json!({
            "Sid": "ItestObjects",
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            "Resource": arns.itest_objects
        }),
        json!({
            // itest: the failed job's log tail.
            "Sid": "JobLogs",
            "Effect": "Allow",
            "Action": ["logs:GetLogEvents"],
            "Resource": arns.log_streams
        }),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn target(env: Env, region: &str) -> Target {
        Target { project: "upscaler".into(), env, region: region.into() }
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
        let signing = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Sid"] == "SigningKey")
            .expect("SigningKey statement");
        assert_eq!(signing["Action"], json!(["kms:GetPublicKey", "kms:Sign"]));
        assert_eq!(signing["Resource"], "arn:aws:kms:eu-west-1:111122223333:key/*");
        assert_eq!(
            signing["Condition"],
            json!({"ForAnyValue:StringEquals": {
                "kms:ResourceAliases": "alias/upscaler-splitter-signing-staging"
            }})
        );
        // No other statement reaches KMS.
        let kms = text.matches("\"kms:").count();
        assert_eq!(kms, 3, "kms:GetPublicKey, kms:Sign, kms:ResourceAliases only: {text}");
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
}
