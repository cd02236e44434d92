//! The local stack's seeding: the AWS resources Terraform creates for one environment, created
//! here (idempotently) through the SDK on moto for `cargo xtask local up`, and read back for
//! `cargo xtask local status` ([`read`], in `seed/status.rs`). Their shapes are in
//! [`super::definitions`], the lookups in [`crate::lookup`].
//!
//! Only what already exists is left alone: a second run creates nothing, and never touches a job
//! definition that a deploy moved on (no second revision).
//!
//! One deliberate local difference: the compute environment is `UNMANAGED`. A `MANAGED` one needs
//! the VPC's subnets and security groups (an EC2 API xtask has no other use for); moto's Batch
//! runs every job of the queue as a Docker container on this host either way.
//!
//! The image signing key (`cargo xtask sign`) is a tagged ECDSA P-256 `SIGN_VERIFY` KMS key behind
//! the alias [`Target::signing_key_alias`]; a second run keeps the key the alias names.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use aws_sdk_batch::types::{
    CeState, CeType, ComputeEnvironmentOrder, JobDefinition, JobDefinitionType, JobTimeout,
    JqState, PlatformCapability,
};
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyState, KeyUsageType};

use super::definitions::{
    ECR_KEEP_IMAGES, JOB_PARAMETER_DEFAULTS, JOB_TIMEOUT_SECONDS, LOG_RETENTION_DAYS,
    container_properties, job_role_policy, lifecycle_policy, retry_strategy, trust_policy,
};
use crate::aws::{Aws, sdk_error};
use crate::config::{BATCH_LOG_GROUP, PLACEHOLDER_TAG, Target};
use crate::jobdef;
use crate::lookup::{
    bucket_exists, log_group_exists, read_compute_environment, read_job_queue, read_key_by_alias,
    read_repository_uri, read_role,
};

mod status;

pub use status::read;

/// Tags as the requests take them: `(key, value)`.
type Tags = [(&'static str, String)];

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
    let tags = target.tags();
    let iam = aws.iam();
    let batch = aws.batch();
    let mut out = Vec::new();

    // 1. IAM: the job role and the Batch service role.
    let (job_role_arn, job_role) = ensure_job_role(&iam, target, &tags).await?;
    out.push(job_role);
    let (service_role_arn, service_role) = ensure_batch_service_role(&iam, target, &tags).await?;
    out.push(service_role);
    // 2. S3 bucket.
    out.push(ensure_bucket(aws, target, &tags).await?);
    // 3. ECR repository + lifecycle policy.
    let (repo_uri, repo) = ensure_repository(aws, target, &tags).await?;
    out.push(repo);
    // 4. CloudWatch log group.
    out.push(ensure_log_group(aws, &tags).await?);
    // 5. Batch: compute environment, job queue, job definition.
    out.push(ensure_compute_environment(&batch, target, &service_role_arn, &tags).await?);
    out.push(ensure_job_queue(&batch, target, &tags).await?);
    let image = format!("{repo_uri}:{PLACEHOLDER_TAG}");
    out.push(ensure_job_definition(&batch, target, &image, &job_role_arn, extra_env, &tags).await?);
    // 6. KMS: the image signing key and its alias.
    out.push(ensure_signing_key(aws, target, &tags).await?);
    Ok(out)
}

/// Step 1: the job role, with its data policy when created; returns its ARN.
async fn ensure_job_role(
    iam: &aws_sdk_iam::Client,
    target: &Target,
    tags: &Tags,
) -> Result<(String, Resource)> {
    let name = target.job_role();
    let (arn, state) = ensure_role(iam, &name, "ecs-tasks.amazonaws.com", tags).await?;
    if state == State::Created {
        iam.put_role_policy()
            .role_name(&name)
            .policy_name("splitter-data")
            .policy_document(job_role_policy(target))
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cannot attach the data policy to role {name}"))?;
    }
    let resource = Resource::new("iam role", &name, state, arn.clone());
    Ok((arn, resource))
}

/// Step 1: the Batch service role, with `AWSBatchServiceRole` when created; returns its ARN.
async fn ensure_batch_service_role(
    iam: &aws_sdk_iam::Client,
    target: &Target,
    tags: &Tags,
) -> Result<(String, Resource)> {
    let name = target.batch_service_role();
    let (arn, state) = ensure_role(iam, &name, "batch.amazonaws.com", tags).await?;
    if state == State::Created {
        iam.attach_role_policy()
            .role_name(&name)
            .policy_arn("arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole")
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cannot attach AWSBatchServiceRole to {name}"))?;
    }
    let resource = Resource::new("iam role", &name, state, arn.clone());
    Ok((arn, resource))
}

/// Creates the role when missing; returns its ARN and what happened.
async fn ensure_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    service: &str,
    tags: &Tags,
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

/// Step 2: the data bucket, tagged, public access blocked.
async fn ensure_bucket(aws: &Aws, target: &Target, tags: &Tags) -> Result<Resource> {
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

/// Step 3: the repository (and its lifecycle policy) when missing; returns its URI.
async fn ensure_repository(aws: &Aws, target: &Target, tags: &Tags) -> Result<(String, Resource)> {
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

/// Step 4: the jobs' log group, with its retention.
async fn ensure_log_group(aws: &Aws, tags: &Tags) -> Result<Resource> {
    let logs = aws.logs();
    if log_group_exists(&logs, BATCH_LOG_GROUP).await? {
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

/// Step 5: the compute environment (`UNMANAGED`, see the module docs).
async fn ensure_compute_environment(
    batch: &aws_sdk_batch::Client,
    target: &Target,
    service_role_arn: &str,
    tags: &Tags,
) -> Result<Resource> {
    let ce_name = target.compute_environment();
    if read_compute_environment(batch, &ce_name).await?.is_some() {
        return Ok(Resource::new("batch compute env", &ce_name, State::Exists, ""));
    }
    batch
        .create_compute_environment()
        .compute_environment_name(&ce_name)
        .r#type(CeType::Unmanaged)
        .state(CeState::Enabled)
        .service_role(service_role_arn)
        .set_tags(Some(tag_map(tags)))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot create compute environment {ce_name}"))?;
    Ok(Resource::new("batch compute env", &ce_name, State::Created, "UNMANAGED"))
}

/// Step 5: the job queue, on the compute environment.
async fn ensure_job_queue(
    batch: &aws_sdk_batch::Client,
    target: &Target,
    tags: &Tags,
) -> Result<Resource> {
    let queue = target.job_queue();
    if read_job_queue(batch, &queue).await?.is_some() {
        return Ok(Resource::new("batch job queue", &queue, State::Exists, ""));
    }
    batch
        .create_job_queue()
        .job_queue_name(&queue)
        .priority(1)
        .state(JqState::Enabled)
        .compute_environment_order(
            ComputeEnvironmentOrder::builder()
                .order(1)
                .compute_environment(target.compute_environment())
                .build(),
        )
        .set_tags(Some(tag_map(tags)))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot create job queue {queue}"))?;
    Ok(Resource::new("batch job queue", &queue, State::Created, ""))
}

/// Step 5: the first job definition revision, running `image`, unless any ACTIVE one exists.
async fn ensure_job_definition(
    batch: &aws_sdk_batch::Client,
    target: &Target,
    image: &str,
    job_role_arn: &str,
    extra_env: &[(String, String)],
    tags: &Tags,
) -> Result<Resource> {
    let def_name = target.job_definition();
    if let Some(def) = jobdef::find_latest_active(batch, &def_name).await? {
        return Ok(Resource::new(
            "batch job definition",
            &def_name,
            State::Exists,
            describe_job_definition(&def),
        ));
    }
    let mut req = batch
        .register_job_definition()
        .job_definition_name(&def_name)
        .r#type(JobDefinitionType::Container)
        .container_properties(container_properties(target, image, job_role_arn, extra_env))
        .retry_strategy(retry_strategy())
        .timeout(JobTimeout::builder().attempt_duration_seconds(JOB_TIMEOUT_SECONDS).build())
        .platform_capabilities(PlatformCapability::Ec2)
        .propagate_tags(true);
    for (k, v) in JOB_PARAMETER_DEFAULTS {
        req = req.parameters(k, v);
    }
    let reg = req
        .set_tags(Some(tag_map(tags)))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot register job definition {def_name}"))?;
    Ok(Resource::new(
        "batch job definition",
        &def_name,
        State::Created,
        format!("revision {} (image {image})", reg.revision().unwrap_or(0)),
    ))
}

/// Step 6: the signing key (ECDSA P-256, sign and verify) behind the environment's alias. An
/// alias that exists is kept, with the key it names, which must be such a key.
async fn ensure_signing_key(aws: &Aws, target: &Target, tags: &Tags) -> Result<Resource> {
    let kms = aws.kms();
    let alias = target.signing_key_alias();
    if let Some(key) = read_key_by_alias(&kms, &alias).await? {
        check_signing_key(&alias, &key)?;
        return Ok(Resource::new(KMS_KIND, &alias, State::Exists, describe_key(&key)));
    }
    let mut req = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description(format!(
            "Signs the {} splitter images of {} (cargo xtask sign)",
            target.project, target.env
        ));
    for (k, v) in tags {
        req = req.tags(aws_sdk_kms::types::Tag::builder().tag_key(*k).tag_value(v).build()?);
    }
    let out = req
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot create the KMS signing key for {alias}"))?;
    let key = out.key_metadata().context("KMS CreateKey returned no key metadata")?;
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(key.key_id())
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot create the KMS alias {alias} for key {}", key.key_id()))?;
    Ok(Resource::new(KMS_KIND, &alias, State::Created, describe_key(key)))
}

/// The signing key's kind in the resource table.
const KMS_KIND: &str = "kms signing key";

/// Fails unless `key` can make the signatures `cargo xtask sign` makes.
fn check_signing_key(alias: &str, key: &KeyMetadata) -> Result<()> {
    if key.key_spec() != Some(&KeySpec::EccNistP256)
        || key.key_usage() != Some(&KeyUsageType::SignVerify)
    {
        bail!(
            "{alias} names KMS key {} ({}), not an ECC_NIST_P256 SIGN_VERIFY key: delete the alias (`aws kms delete-alias --alias-name {alias}`) and run `cargo xtask local up` again",
            key.key_id(),
            key_kind(key)
        );
    }
    Ok(())
}

/// `→ key KEY-ID (ECC_NIST_P256, SIGN_VERIFY, Enabled)`.
fn describe_key(key: &KeyMetadata) -> String {
    format!("→ key {} ({})", key.key_id(), key_kind(key))
}

fn key_kind(key: &KeyMetadata) -> String {
    let spec = key.key_spec().map_or("?", KeySpec::as_str);
    let usage = key.key_usage().map_or("?", KeyUsageType::as_str);
    let state = key.key_state().map_or("?", KeyState::as_str);
    format!("{spec}, {usage}, {state}")
}

fn describe_job_definition(def: &JobDefinition) -> String {
    let image = def.container_properties().and_then(|c| c.image()).unwrap_or("?");
    format!("revision {} (image {image})", def.revision().unwrap_or(0))
}

/// Tags as the Batch and CloudWatch Logs requests take them.
fn tag_map(tags: &Tags) -> HashMap<String, String> {
    tags.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}
