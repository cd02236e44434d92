//! `cargo xtask local status`: which of the environment's resources exist, read back with the
//! same lookups the seeding uses; nothing is created.

use anyhow::{Context, Result};

use super::{KMS_KIND, Resource, State, describe_job_definition, describe_key};
use crate::aws::{Aws, sdk_error};
use crate::config::{BATCH_LOG_GROUP, Target};
use crate::jobdef;
use crate::lookup::{
    bucket_exists, log_group_exists, read_compute_environment, read_job_queue, read_key_by_alias,
    read_repository_uri, read_role,
};

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
        present(log_group_exists(&aws.logs(), BATCH_LOG_GROUP).await?),
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
    let res = match jobdef::find_latest_active(&batch, &def_name).await? {
        Some(def) => Resource::new(
            "batch job definition",
            &def_name,
            State::Exists,
            describe_job_definition(&def),
        ),
        None => Resource::new("batch job definition", &def_name, State::Missing, ""),
    };
    out.push(res);

    let alias = target.signing_key_alias();
    let res = match read_key_by_alias(&aws.kms(), &alias).await? {
        Some(key) => Resource::new(KMS_KIND, alias, State::Exists, describe_key(&key)),
        None => Resource::new(KMS_KIND, alias, State::Missing, ""),
    };
    out.push(res);
    Ok(out)
}
