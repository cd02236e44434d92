//! Step 1 of itest: what exists in the environment, checked before anything is uploaded: the
//! job queue (enabled), the job definition's latest ACTIVE revision (it must take `Ref::input`
//! and `Ref::output`; its image, log group and `segment_seconds`) and the bucket.

use anyhow::{Context, Result, bail};

use crate::aws::Aws;
use crate::config::{BATCH_LOG_GROUP, Target};
use crate::{jobdef, lookup};

/// What preflight resolved in the environment before anything is uploaded: the queue, the job
/// definition revision to run, its image and log group, and `segment_seconds`.
#[derive(Debug)]
pub(super) struct Resolved {
    pub queue: String,
    pub job_definition: String,
    pub revision: i32,
    pub arn: String,
    pub image: String,
    pub log_group: String,
    /// The value the job gets, and where it comes from.
    pub segment_seconds: f64,
    pub segment_seconds_from: &'static str,
}

/// Step 1: checks queue, job definition and bucket; reads the revision to run.
pub(super) async fn preflight(
    aws: &Aws,
    target: &Target,
    segment_override: Option<&str>,
) -> Result<Resolved> {
    let batch = aws.batch();
    let queue = target.job_queue();
    let found = lookup::find_job_queue(&batch, &queue).await.with_context(|| {
        format!(
            "cannot describe job queue {queue}: check the AWS credentials (locally: \
             `. target/xtask/local/env`) and the batch:DescribeJobQueues permission"
        )
    })?;
    let Some(q) = found else {
        bail!(
            "job queue {queue} does not exist in {}: it is created by Terraform (locally: \
             `cargo xtask local up --env {}`); check --project ({}) and --env",
            target.region,
            target.env,
            target.project
        );
    };
    if q.state().map(|s| s.as_str()) != Some("ENABLED") {
        bail!(
            "job queue {queue} is {}: enable it (`aws batch update-job-queue --job-queue {queue} --state ENABLED`)",
            q.state().map(|s| s.as_str()).unwrap_or("not enabled")
        );
    }

    let def = jobdef::latest_active(&batch, target).await?;
    let name = target.job_definition();
    let revision = def.revision().unwrap_or(0);
    let container = def.container_properties();
    let command: Vec<&str> =
        container.map(|c| c.command().iter().map(String::as_str).collect()).unwrap_or_default();
    for param in ["input", "output"] {
        let reference = format!("Ref::{param}");
        if !command.iter().any(|part| part.contains(&reference)) {
            bail!(
                "revision {revision} of {name} does not take the `{param}` parameter (its command is {command:?}): \
                 itest passes the video through Ref::input and Ref::output; fix the job definition's command \
                 (Terraform), e.g. [\"split\", \"Ref::input\", \"Ref::output\", \"--segment-seconds\", \"Ref::segment_seconds\"]"
            );
        }
    }
    let log_group = container
        .and_then(|c| c.log_configuration())
        .and_then(|l| l.options())
        .and_then(|o| o.get("awslogs-group"))
        .cloned()
        .unwrap_or_else(|| BATCH_LOG_GROUP.to_owned());
    let default = def.parameters().and_then(|p| p.get("segment_seconds"));
    let (segment_seconds, segment_seconds_from) = match (segment_override, default) {
        (Some(v), _) => (v.parse::<f64>().unwrap_or(0.0), "--segment-seconds"),
        (None, Some(v)) => match v.parse::<f64>() {
            Ok(n) if n > 0.0 => (n, "the job definition's default"),
            _ => bail!(
                "revision {revision} of {name} has segment_seconds = {v:?}, not a number of seconds: \
                 fix the job definition, or pass --segment-seconds"
            ),
        },
        (None, None) => (10.0, "the splitter's default"),
    };

    let bucket = target.bucket();
    let exists = lookup::bucket_exists(&aws.s3(), &bucket).await.with_context(|| {
        format!("cannot read S3 bucket {bucket}: check the role's s3:ListBucket permission")
    })?;
    if !exists {
        bail!(
            "S3 bucket {bucket} does not exist: it is created by Terraform (locally: `cargo xtask local up --env {}`); \
             check --project and --env",
            target.env
        );
    }
    Ok(Resolved {
        queue,
        job_definition: name,
        revision,
        arn: def.job_definition_arn().unwrap_or_default().to_owned(),
        image: container.and_then(|c| c.image()).unwrap_or("?").to_owned(),
        log_group,
        segment_seconds,
        segment_seconds_from,
    })
}
