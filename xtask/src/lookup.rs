//! Whether an environment's AWS resources exist, read through the SDK: `None` (or `false`) when
//! one does not. The local stack's seeding and `local status` ([`crate::local`]) read every one;
//! itest's preflight reads the job queue and the bucket with the same calls.
//!
//! The signing key is read by its alias ([`read_key_by_alias`], local stack only).
//!
//! The `read_*` lookups say in their error what failed. [`bucket_exists`] and [`find_job_queue`]
//! leave that to the caller: itest's messages name the permission to check. The ECR repository
//! is [`crate::ecr::find_repository`]'s (push and rollback read it too); job definitions are
//! [`crate::jobdef`]'s.

use anyhow::{Context, Result};
use aws_sdk_batch::types::{ComputeEnvironmentDetail, JobQueueDetail};

use crate::aws::sdk_error;

/// The role's ARN.
pub async fn read_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<String>> {
    match iam.get_role().role_name(name).send().await {
        Ok(out) => Ok(Some(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_entity_exception()) => {
            Ok(None)
        }
        Err(err) => Err(sdk_error(err)).with_context(|| format!("cannot read IAM role {name}")),
    }
}

/// Whether the bucket exists (`HeadBucket`).
pub async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(err) => Err(sdk_error(err)),
    }
}

/// The repository's URI.
pub async fn read_repository_uri(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<Option<String>> {
    let repo = crate::ecr::find_repository(ecr, name)
        .await
        .with_context(|| format!("cannot read ECR repository {name}"))?;
    Ok(repo.map(|r| r.uri))
}

/// Whether the log group exists (`DescribeLogGroups` by prefix, the exact name matched).
pub async fn log_group_exists(logs: &aws_sdk_cloudwatchlogs::Client, name: &str) -> Result<bool> {
    let out = logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot describe log group {name}"))?;
    Ok(out.log_groups().iter().any(|g| g.log_group_name() == Some(name)))
}

/// The compute environment.
pub async fn read_compute_environment(
    batch: &aws_sdk_batch::Client,
    name: &str,
) -> Result<Option<ComputeEnvironmentDetail>> {
    let out = batch
        .describe_compute_environments()
        .compute_environments(name)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot describe compute environment {name}"))?;
    Ok(out
        .compute_environments()
        .iter()
        .find(|c| c.compute_environment_name() == Some(name))
        .cloned())
}

/// The KMS key an alias names (`DescribeKey` by alias name). For the local stack's seeding and
/// status only: the deploy role has no `kms:DescribeKey` (it uses the key with `kms:Sign` and
/// reads it with `kms:GetPublicKey`, both by alias).
pub async fn read_key_by_alias(
    kms: &aws_sdk_kms::Client,
    alias: &str,
) -> Result<Option<aws_sdk_kms::types::KeyMetadata>> {
    match kms.describe_key().key_id(alias).send().await {
        Ok(out) => Ok(out.key_metadata().cloned()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found_exception()) => Ok(None),
        Err(err) => {
            Err(sdk_error(err)).with_context(|| format!("cannot describe the KMS key {alias}"))
        }
    }
}

/// The job queue, the error naming it.
pub async fn read_job_queue(
    batch: &aws_sdk_batch::Client,
    name: &str,
) -> Result<Option<JobQueueDetail>> {
    find_job_queue(batch, name).await.with_context(|| format!("cannot describe job queue {name}"))
}

/// The job queue (`DescribeJobQueues`).
pub async fn find_job_queue(
    batch: &aws_sdk_batch::Client,
    name: &str,
) -> Result<Option<JobQueueDetail>> {
    let out = batch.describe_job_queues().job_queues(name).send().await.map_err(sdk_error)?;
    Ok(out.job_queues().iter().find(|q| q.job_queue_name() == Some(name)).cloned())
}
