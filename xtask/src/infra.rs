//! The AWS resources Terraform creates for one environment, created here (idempotently) through
//! the SDK for the local stack, and read back for `cargo xtask local status`.
//!
//! Only what already exists is left alone: a second run creates nothing, and never touches a job
//! definition that a deploy moved on (no second revision).
//!
//! One deliberate local difference: the compute environment is `UNMANAGED`. A `MANAGED` one needs
//! the VPC's subnets and security groups (an EC2 API xtask has no other use for); moto's Batch
//! runs every job of the queue as a Docker container on this host either way.

use std::collections::HashMap;

use anyhow::{Context, Result};
use aws_sdk_batch::types::{
    CeState, CeType, ComputeEnvironmentDetail, ComputeEnvironmentOrder, ContainerProperties,
    EvaluateOnExit, JobDefinition, JobDefinitionType, JobQueueDetail, JobTimeout, JqState,
    KeyValuePair, LinuxParameters, LogConfiguration, LogDriver, PlatformCapability,
    ResourceRequirement, ResourceType, RetryAction, RetryStrategy, Tmpfs,
};

use crate::aws::{Aws, sdk_error};
use crate::config::{BATCH_LOG_GROUP, PLACEHOLDER_TAG, Target};

/// The splitter's Batch job shape (what Terraform's `aws_batch_job_definition` says).
pub const JOB_VCPUS: &str = "1";
pub const JOB_MEMORY_MIB: &str = "4096";
/// A read-only root filesystem; the splitter's temp space is a tmpfs at `/tmp`.
pub const JOB_TMP_SIZE_MIB: i32 = 2048;
pub const JOB_TIMEOUT_SECONDS: i32 = 3600;
pub const JOB_ATTEMPTS: i32 = 3;
/// The command, with Batch parameter references (the container's ENTRYPOINT is the splitter).
pub const JOB_COMMAND: [&str; 5] =
    ["split", "Ref::input", "Ref::output", "--segment-seconds", "Ref::segment_seconds"];
/// Parameter defaults; `input` and `output` are given per job.
pub const JOB_PARAMETER_DEFAULTS: [(&str, &str); 1] = [("segment_seconds", "10")];
/// ECR lifecycle: how many images to keep (untagged ones expire after a day).
pub const ECR_KEEP_IMAGES: u32 = 30;
pub const LOG_RETENTION_DAYS: i32 = 30;

/// What one resource looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Created,
    Exists,
    Missing,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: &'static str,
    pub name: String,
    pub state: State,
    pub detail: String,
}

impl Resource {
    fn new(
        kind: &'static str,
        name: impl Into<String>,
        state: State,
        detail: impl Into<String>,
    ) -> Self {
        Resource { kind, name: name.into(), state, detail: detail.into() }
    }
}

/// Prints resources as an aligned table.
pub fn print_table(resources: &[Resource]) {
    let kind_w = resources.iter().map(|r| r.kind.len()).max().unwrap_or(0);
    let name_w = resources.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in resources {
        let state = match r.state {
            State::Created => "created",
            State::Exists => "exists",
            State::Missing => "missing",
        };
        let detail = if r.detail.is_empty() { String::new() } else { format!("  {}", r.detail) };
        println!("  {:kind_w$}  {:name_w$}  {state}{detail}", r.kind, r.name);
    }
}

/// The trust policy of a role a service assumes.
fn trust_policy(service: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole"
        }]
    })
    .to_string()
}

/// What the splitter job may do: read inputs and write outputs in the environment's bucket.
pub fn job_role_policy(target: &Target) -> String {
    let bucket = target.bucket();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListData",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}")]
            },
            {
                "Sid": "ReadWriteData",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [format!("arn:aws:s3:::{bucket}/*")]
            }
        ]
    })
    .to_string()
}

/// Keep the newest [`ECR_KEEP_IMAGES`] images; expire untagged ones after a day.
pub fn lifecycle_policy() -> String {
    serde_json::json!({
        "rules": [
            {
                "rulePriority": 1,
                "description": "Expire untagged images after 1 day",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1
                },
                "action": { "type": "expire" }
            },
            {
                "rulePriority": 2,
                "description": format!("Keep the last {ECR_KEEP_IMAGES} images"),
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": ECR_KEEP_IMAGES
                },
                "action": { "type": "expire" }
            }
        ]
    })
    .to_string()
}

/// The first job definition's container: `image` is the repository URI with a placeholder tag,
/// `extra_env` carries the local stack's endpoint and dummy credentials (empty for real AWS).
pub fn container_properties(
    target: &Target,
    image: &str,
    job_role_arn: &str,
    extra_env: &[(String, String)],
) -> ContainerProperties {
    let mut env: Vec<(String, String)> = vec![
        ("AWS_REGION".into(), target.region.clone()),
        ("SPLITTER_LOG_FORMAT".into(), "json".into()),
    ];
    env.extend(extra_env.iter().cloned());
    ContainerProperties::builder()
        .image(image)
        .set_command(Some(JOB_COMMAND.iter().map(|s| s.to_string()).collect()))
        .job_role_arn(job_role_arn)
        .resource_requirements(
            ResourceRequirement::builder().r#type(ResourceType::Vcpu).value(JOB_VCPUS).build(),
        )
        .resource_requirements(
            ResourceRequirement::builder()
                .r#type(ResourceType::Memory)
                .value(JOB_MEMORY_MIB)
                .build(),
        )
        .set_environment(Some(
            env.into_iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ))
        .readonly_root_filesystem(true)
        .linux_parameters(
            LinuxParameters::builder()
                .tmpfs(
                    Tmpfs::builder()
                        .container_path("/tmp")
                        .size(JOB_TMP_SIZE_MIB)
                        .mount_options("rw")
                        .mount_options("nosuid")
                        .mount_options("nodev")
                        .build(),
                )
                .build(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", BATCH_LOG_GROUP)
                .build(),
        )
        .build()
}

/// Retry when the host went away (Spot reclaim), give up on anything else.
pub fn retry_strategy() -> RetryStrategy {
    RetryStrategy::builder()
        .attempts(JOB_ATTEMPTS)
        .evaluate_on_exit(
            EvaluateOnExit::builder()
                .on_status_reason("Host EC2*")
                .action(RetryAction::Retry)
                .build(),
        )
        .evaluate_on_exit(
            EvaluateOnExit::builder().on_reason("*").action(RetryAction::Exit).build(),
        )
        .build()
}

/// The latest ACTIVE revision of a job definition, if any.
pub async fn latest_active_job_definition(
    batch: &aws_sdk_batch::Client,
    name: &str,
) -> Result<Option<JobDefinition>> {
    let mut pages = batch
        .describe_job_definitions()
        .job_definition_name(name)
        .status("ACTIVE")
        .into_paginator()
        .send();
    let mut latest: Option<JobDefinition> = None;
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("cannot describe job definition {name}"))?;
        for def in page.job_definitions() {
            if latest.as_ref().is_none_or(|l| def.revision() > l.revision()) {
                latest = Some(def.clone());
            }
        }
    }
    Ok(latest)
}

/// Creates what is missing; returns every resource with what happened to it.
/// `extra_env` goes into the first job definition's environment (local stack only).
pub fn apply(aws: &Aws, target: &Target, extra_env: &[(String, String)]) -> Result<Vec<Resource>> {
    aws.block_on(apply_async(aws, target, extra_env))
}

async fn apply_async(
    aws: &Aws,
    target: &Target,
    extra_env: &[(String, String)],
) -> Result<Vec<Resource>> {
    let mut out = Vec::new();
    let tags = target.tags();

    // IAM: the job role and the Batch service role.
    let iam = aws.iam();
    let job_role = ensure_role(&iam, &target.job_role(), "ecs-tasks.amazonaws.com", &tags).await?;
    if job_role.1 == State::Created {
        iam.put_role_policy()
            .role_name(target.job_role())
            .policy_name("splitter-data")
            .policy_document(job_role_policy(target))
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!("cannot attach the data policy to role {}", target.job_role())
            })?;
    }
    out.push(Resource::new("iam role", target.job_role(), job_role.1, job_role.0.clone()));
    let service_role =
        ensure_role(&iam, &target.batch_service_role(), "batch.amazonaws.com", &tags).await?;
    if service_role.1 == State::Created {
        iam.attach_role_policy()
            .role_name(target.batch_service_role())
            .policy_arn("arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!("cannot attach AWSBatchServiceRole to {}", target.batch_service_role())
            })?;
    }
    out.push(Resource::new(
        "iam role",
        target.batch_service_role(),
        service_role.1,
        service_role.0.clone(),
    ));

    // S3 bucket.
    out.push(ensure_bucket(aws, target, &tags).await?);

    // ECR repository + lifecycle policy.
    let (repo_uri, repo) = ensure_repository(aws, target, &tags).await?;
    out.push(repo);

    // CloudWatch log group.
    out.push(ensure_log_group(aws, &tags).await?);

    // Batch: compute environment, job queue, job definition.
    let batch = aws.batch();
    let ce_name = target.compute_environment();
    if read_compute_environment(&batch, &ce_name).await?.is_some() {
        out.push(Resource::new("batch compute env", &ce_name, State::Exists, ""));
    } else {
        batch
            .create_compute_environment()
            .compute_environment_name(&ce_name)
            .r#type(CeType::Unmanaged)
            .state(CeState::Enabled)
            .service_role(&service_role.0)
            .set_tags(Some(tag_map(&tags)))
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cannot create compute environment {ce_name}"))?;
        out.push(Resource::new("batch compute env", &ce_name, State::Created, "UNMANAGED"));
    }

    let queue = target.job_queue();
    if read_job_queue(&batch, &queue).await?.is_some() {
        out.push(Resource::new("batch job queue", &queue, State::Exists, ""));
    } else {
        batch
            .create_job_queue()
            .job_queue_name(&queue)
            .priority(1)
            .state(JqState::Enabled)
            .compute_environment_order(
                ComputeEnvironmentOrder::builder().order(1).compute_environment(&ce_name).build(),
            )
            .set_tags(Some(tag_map(&tags)))
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cannot create job queue {queue}"))?;
        out.push(Resource::new("batch job queue", &queue, State::Created, ""));
    }

    let def_name = target.job_definition();
    match latest_active_job_definition(&batch, &def_name).await? {
        Some(def) => out.push(Resource::new(
            "batch job definition",
            &def_name,
            State::Exists,
            describe_job_definition(&def),
        )),
        None => {
            let image = format!("{repo_uri}:{PLACEHOLDER_TAG}");
            let mut req = batch
                .register_job_definition()
                .job_definition_name(&def_name)
                .r#type(JobDefinitionType::Container)
                .container_properties(container_properties(target, &image, &job_role.0, extra_env))
                .retry_strategy(retry_strategy())
                .timeout(
                    JobTimeout::builder().attempt_duration_seconds(JOB_TIMEOUT_SECONDS).build(),
                )
                .platform_capabilities(PlatformCapability::Ec2)
                .propagate_tags(true);
            for (k, v) in JOB_PARAMETER_DEFAULTS {
                req = req.parameters(k, v);
            }
            let reg = req
                .set_tags(Some(tag_map(&tags)))
                .send()
                .await
                .map_err(sdk_error)
                .with_context(|| format!("cannot register job definition {def_name}"))?;
            out.push(Resource::new(
                "batch job definition",
                &def_name,
                State::Created,
                format!("revision {} (image {image})", reg.revision().unwrap_or(0)),
            ));
        }
    }
    Ok(out)
}

fn describe_job_definition(def: &JobDefinition) -> String {
    let image = def.container_properties().and_then(|c| c.image()).unwrap_or("?");
    format!("revision {} (image {image})", def.revision().unwrap_or(0))
}

/// Creates the role when missing; returns its ARN and what happened.
async fn ensure_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    service: &str,
    tags: &[(&'static str, String)],
) -> Result<(String, State)> {
    if let Some(arn) = read_role(iam, name).await? {
        return Ok((arn, State::Exists));
    }
    let mut req =
        iam.create_role().role_name(name).assume_role_policy_document(trust_policy(service));
    for (k, v) in tags {
        req = req.tags(aws_sdk_iam::types::Tag::builder().key(*k).value(v).build()?);
    }
    let out = req
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot create IAM role {name}"))?;
    let arn = out.role().map(|r| r.arn().to_owned()).unwrap_or_default();
    Ok((arn, State::Created))
}

async fn ensure_bucket(
    aws: &Aws,
    target: &Target,
    tags: &[(&'static str, String)],
) -> Result<Resource> {
    let s3 = aws.s3();
    let bucket = target.bucket();
    if bucket_exists(&s3, &bucket)
        .await
        .with_context(|| format!("cannot read S3 bucket {bucket}"))?
    {
        return Ok(Resource::new("s3 bucket", &bucket, State::Exists, ""));
    }
    let mut req = s3.create_bucket().bucket(&bucket);
    if target.region != "us-east-1" {
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    target.region.as_str(),
                ))
                .build(),
        );
    }
    req.send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot create S3 bucket {bucket}"))?;
    let mut tagging = aws_sdk_s3::types::Tagging::builder();
    for (k, v) in tags {
        tagging = tagging.tag_set(aws_sdk_s3::types::Tag::builder().key(*k).value(v).build()?);
    }
    s3.put_bucket_tagging()
        .bucket(&bucket)
        .tagging(tagging.build()?)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot tag S3 bucket {bucket}"))?;
    s3.put_public_access_block()
        .bucket(&bucket)
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot block public access to S3 bucket {bucket}"))?;
    Ok(Resource::new("s3 bucket", &bucket, State::Created, "public access blocked"))
}

/// Creates the repository (and its lifecycle policy) when missing; returns its URI.
async fn ensure_repository(
    aws: &Aws,
    target: &Target,
    tags: &[(&'static str, String)],
) -> Result<(String, Resource)> {
    let ecr = aws.ecr();
    let name = target.ecr_repository();
    let (uri, mut state) = match read_repository_uri(&ecr, &name).await? {
        Some(uri) => (uri, State::Exists),
        None => {
            let mut req = ecr
                .create_repository()
                .repository_name(&name)
                .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
                .image_scanning_configuration(
                    aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                        .scan_on_push(true)
                        .build(),
                );
            for (k, v) in tags {
                req = req.tags(aws_sdk_ecr::types::Tag::builder().key(*k).value(v).build()?);
            }
            let out = req
                .send()
                .await
                .map_err(sdk_error)
                .with_context(|| format!("cannot create ECR repository {name}"))?;
            let uri = out.repository().and_then(|r| r.repository_uri()).unwrap_or_default();
            (uri.to_owned(), State::Created)
        }
    };
    let has_policy = match ecr.get_lifecycle_policy().repository_name(&name).send().await {
        Ok(_) => true,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_lifecycle_policy_not_found_exception()) =>
        {
            false
        }
        Err(err) => {
            return Err(sdk_error(err))
                .with_context(|| format!("cannot read the lifecycle policy of {name}"));
        }
    };
    if !has_policy {
        ecr.put_lifecycle_policy()
            .repository_name(&name)
            .lifecycle_policy_text(lifecycle_policy())
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cannot set the lifecycle policy of {name}"))?;
        if state == State::Exists {
            state = State::Created;
        }
    }
    let detail = format!("{uri} (lifecycle: keep {ECR_KEEP_IMAGES}, untagged expire after 1 day)");
    Ok((uri, Resource::new("ecr repository", &name, state, detail)))
}

async fn ensure_log_group(aws: &Aws, tags: &[(&'static str, String)]) -> Result<Resource> {
    let logs = aws.logs();
    if log_group_exists(&logs).await? {
        return Ok(Resource::new("log group", BATCH_LOG_GROUP, State::Exists, ""));
    }
    let req = logs.create_log_group().log_group_name(BATCH_LOG_GROUP).set_tags(Some(tag_map(tags)));
    match req.send().await {
        Ok(_) => {}
        // Created meanwhile (moto's Batch creates it when a job logs).
        Err(err)
            if err.as_service_error().is_some_and(|e| e.is_resource_already_exists_exception()) => {
        }
        Err(err) => {
            return Err(sdk_error(err))
                .with_context(|| format!("cannot create log group {BATCH_LOG_GROUP}"));
        }
    }
    logs.put_retention_policy()
        .log_group_name(BATCH_LOG_GROUP)
        .retention_in_days(LOG_RETENTION_DAYS)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot set the retention of log group {BATCH_LOG_GROUP}"))?;
    Ok(Resource::new(
        "log group",
        BATCH_LOG_GROUP,
        State::Created,
        format!("retention {LOG_RETENTION_DAYS} days"),
    ))
}

async fn log_group_exists(logs: &aws_sdk_cloudwatchlogs::Client) -> Result<bool> {
    let out = logs
        .describe_log_groups()
        .log_group_name_prefix(BATCH_LOG_GROUP)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot describe log group {BATCH_LOG_GROUP}"))?;
    Ok(out.log_groups().iter().any(|g| g.log_group_name() == Some(BATCH_LOG_GROUP)))
}

/// Reads back which of the environment's resources exist (nothing is created).
pub fn read(aws: &Aws, target: &Target) -> Result<Vec<Resource>> {
    aws.block_on(read_async(aws, target))
}

async fn read_async(aws: &Aws, target: &Target) -> Result<Vec<Resource>> {
    let present = |yes: bool| if yes { State::Exists } else { State::Missing };
    let mut out = Vec::new();
    let iam = aws.iam();
    for name in [target.job_role(), target.batch_service_role()] {
        let state = present(read_role(&iam, &name).await?.is_some());
        out.push(Resource::new("iam role", name, state, ""));
    }

    let bucket = target.bucket();
    let state = present(
        bucket_exists(&aws.s3(), &bucket)
            .await
            .with_context(|| format!("cannot read S3 bucket {bucket}"))?,
    );
    out.push(Resource::new("s3 bucket", bucket, state, ""));

    let ecr = aws.ecr();
    let repo = target.ecr_repository();
    let res = match read_repository_uri(&ecr, &repo).await? {
        Some(uri) => {
            let images = ecr
                .list_images()
                .repository_name(&repo)
                .send()
                .await
                .map_err(sdk_error)
                .with_context(|| format!("cannot list the images of {repo}"))?;
            let n = images.image_ids().len();
            Resource::new("ecr repository", &repo, State::Exists, format!("{uri} ({n} image ids)"))
        }
        None => Resource::new("ecr repository", &repo, State::Missing, ""),
    };
    out.push(res);

    out.push(Resource::new(
        "log group",
        BATCH_LOG_GROUP,
        present(log_group_exists(&aws.logs()).await?),
        "",
    ));

    let batch = aws.batch();
    let ce = target.compute_environment();
    let res = match read_compute_environment(&batch, &ce).await? {
        Some(c) => {
            let t = c.r#type().map(|t| t.as_str()).unwrap_or("?");
            let s = c.state().map(|s| s.as_str()).unwrap_or("?");
            Resource::new("batch compute env", ce, State::Exists, format!("{t}, {s}"))
        }
        None => Resource::new("batch compute env", ce, State::Missing, ""),
    };
    out.push(res);

    let queue = target.job_queue();
    let state = present(read_job_queue(&batch, &queue).await?.is_some());
    out.push(Resource::new("batch job queue", queue, state, ""));

    let def_name = target.job_definition();
    let res = match latest_active_job_definition(&batch, &def_name).await? {
        Some(def) => Resource::new(
            "batch job definition",
            &def_name,
            State::Exists,
            describe_job_definition(&def),
        ),
        None => Resource::new("batch job definition", &def_name, State::Missing, ""),
    };
    out.push(res);
    Ok(out)
}

// Lookups `apply` and `read` share: `None` (or `false`) when the resource does not exist. The
// `read_*` ones say what failed; `bucket_exists` and `find_job_queue`, which itest uses too, leave
// that to the caller (itest's messages say what to check).

/// The role's ARN.
async fn read_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<String>> {
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
async fn read_repository_uri(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<Option<String>> {
    let repo = crate::ecr::find_repository(ecr, name)
        .await
        .with_context(|| format!("cannot read ECR repository {name}"))?;
    Ok(repo.map(|r| r.uri))
}

async fn read_compute_environment(
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

async fn read_job_queue(
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

/// Tags as the Batch and CloudWatch Logs requests take them.
fn tag_map(tags: &[(&'static str, String)]) -> HashMap<String, String> {
    tags.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn target() -> Target {
        Target { project: "upscaler".into(), env: Env::Dev, region: "us-east-1".into() }
    }

    #[test]
    fn the_job_definition_is_shaped_like_a_real_one() {
        let extra = vec![("AWS_ENDPOINT_URL".to_owned(), "http://127.0.0.1:4566".to_owned())];
        let image =
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/upscaler-splitter-dev-ecr:placeholder";
        let c = container_properties(&target(), image, "arn:aws:iam::123456789012:role/r", &extra);
        assert_eq!(c.image(), Some(image));
        assert_eq!(
            c.command(),
            ["split", "Ref::input", "Ref::output", "--segment-seconds", "Ref::segment_seconds"]
        );
        assert_eq!(c.job_role_arn(), Some("arn:aws:iam::123456789012:role/r"));
        assert_eq!(c.readonly_root_filesystem(), Some(true));
        let tmpfs = c.linux_parameters().map(|l| l.tmpfs()).unwrap_or_default();
        assert_eq!(tmpfs.len(), 1);
        assert_eq!(tmpfs[0].container_path(), Some("/tmp"));
        let req: Vec<(&str, &str)> = c
            .resource_requirements()
            .iter()
            .map(|r| (r.r#type().map(|t| t.as_str()).unwrap_or(""), r.value().unwrap_or("")))
            .collect();
        assert_eq!(req, [("VCPU", JOB_VCPUS), ("MEMORY", JOB_MEMORY_MIB)]);
        let env: Vec<(&str, &str)> = c
            .environment()
            .iter()
            .map(|e| (e.name().unwrap_or(""), e.value().unwrap_or("")))
            .collect();
        assert!(env.contains(&("AWS_REGION", "us-east-1")));
        assert!(env.contains(&("SPLITTER_LOG_FORMAT", "json")));
        assert!(env.contains(&("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")));
        let log = c.log_configuration().expect("log configuration");
        assert_eq!(log.log_driver(), Some(&LogDriver::Awslogs));
        assert_eq!(
            log.options().and_then(|o| o.get("awslogs-group")).map(String::as_str),
            Some(BATCH_LOG_GROUP)
        );
    }

    #[test]
    fn real_aws_gets_no_endpoint_or_credentials() {
        let c = container_properties(&target(), "img", "arn", &[]);
        assert!(
            c.environment().iter().all(|e| !e.name().unwrap_or("").starts_with("AWS_ENDPOINT"))
        );
        assert!(c.environment().iter().all(|e| e.name() != Some("AWS_ACCESS_KEY_ID")));
    }

    #[test]
    fn retries_only_lost_hosts() {
        let r = retry_strategy();
        assert_eq!(r.attempts(), Some(JOB_ATTEMPTS));
        let rules = r.evaluate_on_exit();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].action(), Some(&RetryAction::Retry));
        assert_eq!(rules[1].action(), Some(&RetryAction::Exit));
        assert_eq!(rules[1].on_reason(), Some("*"));
    }

    #[test]
    fn policies_are_valid_json_naming_the_bucket() {
        let p: serde_json::Value = serde_json::from_str(&job_role_policy(&target())).expect("json");
        let text = p.to_string();
        assert!(text.contains("arn:aws:s3:::upscaler-splitter-dev-data/*"));
        let l: serde_json::Value = serde_json::from_str(&lifecycle_policy()).expect("json");
        let rules = l["rules"].as_array().expect("rules");
        // An `any` rule must have the highest priority number.
        assert_eq!(rules.last().expect("rule")["selection"]["tagStatus"], "any");
        assert_eq!(rules.last().expect("rule")["selection"]["countNumber"], ECR_KEEP_IMAGES);
    }
}
