//! `cargo xtask deploy`: registers a new revision of the environment's Batch job definition
//! that differs from the latest ACTIVE one only in the container image.
//!
//! Running jobs are not touched; jobs submitted afterwards (by name) run the new revision. The
//! new revision records the revision it replaced (tag `splitter:previous-revision`), which is
//! where `cargo xtask rollback` goes back to.
//!
//! Only a signed image is deployed: its `.sig` must verify with the environment's KMS key
//! ([`crate::sign::check_deployable`]); `--allow-unsigned` overrides that with a warning, and the
//! revision records which it was (tag `splitter:signature`).

use anyhow::Result;
use clap::Args;
use xshell::Shell;

use crate::aws::Aws;
use crate::build_record::BuildRecord;
use crate::config::Target;
use crate::ecr::{self, Registry};
use crate::jobdef::{self, Change, Properties, Rules, TAG_IMAGE_TAG, TAG_PREVIOUS_REVISION};
use crate::sign;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask deploy --env dev                  # the image of the last `cargo xtask image`
  cargo xtask deploy --env staging --tag 0123abc…  # a tag already pushed to staging's ECR
  cargo xtask deploy --env prod --dry-run       # show the diff only
  cargo xtask deploy --env prod --yes           # prod needs --yes

Two deploys at once: Batch gives each its own revision; the one registered last is the latest
ACTIVE revision, so new jobs run its image. Both revisions stay, each recording the revision it
read as its previous one; a deploy that sees a newer revision than its own says so.
In GitHub Actions the new revision's ARN, number and image URI are also written to $GITHUB_OUTPUT
(job-definition-arn, job-definition-revision, image-uri).")]
pub struct Deploy {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Image tag to deploy (the full git SHA pushed by `cargo xtask push`) [default: the build
    /// record's tag].
    #[arg(long, value_name = "SHA")]
    pub(crate) tag: Option<String>,
    #[command(flatten)]
    pub(crate) register: RegisterFlags,
}

/// The flags `deploy` and `rollback` share: whether and how the new revision is registered
/// ([`Rules`]).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct RegisterFlags {
    /// Register a new revision even when the latest one already is what it would register
    /// (deploy: runs that image; rollback: has the target's properties).
    #[arg(long)]
    pub(crate) force: bool,
    /// Show the diff; register (and move) nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Confirm a prod deploy or rollback.
    #[arg(long)]
    pub(crate) yes: bool,
    /// Register even when the image carries no valid signature by the environment's key
    /// (prints a warning and records `splitter:signature` = unverified on the revision).
    #[arg(long)]
    pub(crate) allow_unsigned: bool,
}

impl RegisterFlags {
    pub(crate) fn rules(&self) -> Rules {
        Rules { dry_run: self.dry_run, yes: self.yes, force: self.force }
    }
}

impl Deploy {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        let tag = BuildRecord::tag_or_recorded(self.tag.as_deref())?;
        let aws = Aws::load(&self.target.region)?;
        let registry = Registry::from_env(&aws)?;
        let change =
            aws.block_on(plan(&aws, &registry, &self.target, &tag, self.register.allow_unsigned))?;
        change.apply(&aws, &self.target, self.register.rules())?;
        Ok(())
    }
}

/// The latest ACTIVE revision with the image `tag`, after checking ECR has that tag and that it
/// is signed by the environment's key (or `allow_unsigned`).
async fn plan(
    aws: &Aws,
    registry: &Registry,
    target: &Target,
    tag: &str,
    allow_unsigned: bool,
) -> Result<Change> {
    let batch = aws.batch();
    let current = jobdef::latest_active(&batch, target).await?;
    let ecr = aws.ecr();
    let repo =
        ecr::describe_repository(&ecr, &target.ecr_repository(), target.env.as_str()).await?;
    let Some(digest) = ecr::tag_digest(&ecr, &repo, tag).await? else {
        anyhow::bail!(
            "image tag {tag} is not in ECR repository {}: push it first with `cargo xtask push --env {}` \
             (tags are full git SHAs)",
            repo.name,
            target.env
        );
    };
    let signature =
        sign::check_deployable(aws, registry, &repo, target, &digest, allow_unsigned).await?;
    let image = registry.image_uri(&repo, tag);
    let revision = current.revision().unwrap_or(0);
    let mut next = Properties::from_described(&current)
        .with_image(&target.job_definition(), &image)?
        .with_tag(TAG_PREVIOUS_REVISION, revision.to_string())
        .with_tag(TAG_IMAGE_TAG, tag)
        .with_tag(sign::TAG_SIGNATURE, signature);
    if let Some(tags) = next.tags.as_mut() {
        tags.remove(jobdef::TAG_SOURCE_REVISION);
    }
    Ok(Change { current, next, what: format!("image {tag} = {digest}") })
}
