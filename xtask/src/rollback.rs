//! `cargo xtask rollback`: goes back to an earlier job definition revision by registering its
//! properties again as a new revision (the deployment guide's option 3; the newest ACTIVE
//! revision is what new jobs run, so re-registering is what makes an old one current), and on
//! dev moves `latest` back to the image it runs (option 2: ECR `BatchGetImage` + `PutImage`).
//!
//! Targets:
//! - default: the revision that was the latest ACTIVE one before the last deploy, read from the
//!   current revision's `splitter:previous-revision` tag (not blindly N−1);
//! - `--to-revision N`: any revision, INACTIVE ones too;
//! - `--to-tag SHA`: the current revision's properties with the image of that tag.
//!
//! A rollback is itself recorded like a deploy (its previous revision is the one it replaced),
//! so a second `rollback` undoes the first.

use anyhow::{Context, Result, bail};
use clap::Args;
use xshell::Shell;

use crate::aws::Aws;
use crate::config::{Env, Target};
use crate::deploy::RegisterFlags;
use crate::dry_run::DryRun;
use crate::ecr::{self, Registry, Repository, TagOutcome};
use crate::jobdef::{
    self, Applied, Change, Properties, TAG_IMAGE_TAG, TAG_PREVIOUS_REVISION, TAG_SOURCE_REVISION,
};
use crate::sign;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask rollback --env dev                   # back to the revision before the last deploy
  cargo xtask rollback --env dev --to-revision 3   # revision 3's properties (INACTIVE ones too)
  cargo xtask rollback --env staging --to-tag 0123abc…  # the current properties, that image
  cargo xtask rollback --env prod --dry-run        # show the diff only; prod needs --yes

The target is re-registered as a new revision (the latest ACTIVE revision is what new jobs run);
running jobs are not touched. On dev, `latest` moves back to the target's image.")]
pub struct Rollback {
    #[command(flatten)]
    target: Target,
    /// Go back to this revision's properties (ACTIVE or INACTIVE).
    #[arg(long, value_name = "N", conflicts_with = "to_tag")]
    to_revision: Option<i32>,
    /// Keep the current properties, run the image with this tag (a full git SHA in ECR).
    #[arg(long, value_name = "SHA")]
    to_tag: Option<String>,
    #[command(flatten)]
    register: RegisterFlags,
}

impl Rollback {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        let aws = Aws::load(&self.target.region)?;
        let registry = Registry::from_env(&aws)?;
        let ecr = aws.ecr();
        let repo = aws.block_on(ecr::describe_repository(
            &ecr,
            &self.target.ecr_repository(),
            self.target.env.as_str(),
        ))?;
        let change = aws.block_on(self.plan(&aws, &registry, &repo))?;
        let image = change.next.image().unwrap_or_default().to_owned();
        let applied = change.apply(&aws, &self.target, self.register.rules())?;

        // Dev: `latest` back on the image the target runs.
        if self.target.env != Env::Dev {
            return Ok(());
        }
        let Some(reference) = reference_in(&repo, &image) else {
            println!("latest not moved: {image} is not in {}", repo.name);
            return Ok(());
        };
        let dry = DryRun::new(matches!(applied, Applied::DryRun));
        let what = format!(
            "move latest of {} to {reference} (ecr:BatchGetImage + ecr:PutImage)",
            repo.name
        );
        let moved = dry.call(what, || {
            let manifest =
                aws.block_on(ecr::get_manifest(&ecr, &repo, &reference))?.with_context(|| {
                    format!(
                        "image {reference} vanished from {} meanwhile: push it again",
                        repo.name
                    )
                })?;
            let outcome = aws.block_on(ecr::put_tag(&ecr, &repo, &manifest, "latest"))?;
            Ok((manifest, outcome))
        })?;
        let Some((manifest, outcome)) = moved else { return Ok(()) };
        match outcome {
            TagOutcome::AlreadyThere => {
                println!("latest already on {reference} ({})", manifest.digest)
            }
            TagOutcome::Added => println!("latest set to {reference} ({})", manifest.digest),
            TagOutcome::Moved(from) => {
                println!("latest moved back to {reference} ({}), from {from}", manifest.digest)
            }
        }
        Ok(())
    }

    async fn plan(&self, aws: &Aws, registry: &Registry, repo: &Repository) -> Result<Change> {
        let batch = aws.batch();
        let name = self.target.job_definition();
        let current = jobdef::latest_active(&batch, &self.target).await?;
        let current_rev = current.revision().unwrap_or(0);
        let current_props = Properties::from_described(&current);

        let (source_rev, props, what) = if let Some(tag) = &self.to_tag {
            let image = registry.image_uri(repo, tag);
            let props = current_props.clone().with_image(&name, &image)?;
            (None, props, format!("rollback to image {tag}"))
        } else {
            let wanted = match self.to_revision {
                Some(n) => n,
                None => current_props
                    .tag(TAG_PREVIOUS_REVISION)
                    .and_then(|v| v.parse::<i32>().ok())
                    .with_context(|| {
                        format!(
                            "revision {current_rev} of {name} does not say which revision it replaced (no \
                             {TAG_PREVIOUS_REVISION} tag: it was not registered by `cargo xtask deploy`): pick a \
                             target with --to-revision N or --to-tag SHA"
                        )
                    })?,
            };
            let all = jobdef::all_revisions(&batch, &name).await?;
            let Some(source) = all.iter().find(|d| d.revision() == Some(wanted)) else {
                let first = all.first().and_then(|d| d.revision()).unwrap_or(0);
                let last = all.last().and_then(|d| d.revision()).unwrap_or(0);
                bail!(
                    "revision {wanted} of {name} does not exist (revisions {first}..{last}): pick one with --to-revision"
                );
            };
            let status = source.status().unwrap_or("?").to_owned();
            let props = Properties::from_described(source);
            (Some(wanted), props, format!("rollback to revision {wanted}'s properties ({status})"))
        };

        // The target image must still be in ECR (the lifecycle policy expires old ones).
        let image = props.image().unwrap_or_default().to_owned();
        let reference = reference_in(repo, &image);
        let digest = match &reference {
            Some(reference) => match ecr::tag_digest(&aws.ecr(), repo, reference).await? {
                Some(digest) => Some(digest),
                None => bail!(
                    "the target image {image} is not in ECR repository {} (never pushed, or expired by the lifecycle \
                     policy): push it again, or pick another target with --to-revision N / --to-tag SHA",
                    repo.name
                ),
            },
            None => None,
        };
        let allow = self.register.allow_unsigned;
        let signature = match &digest {
            Some(digest) => {
                sign::check_deployable(aws, registry, repo, &self.target, digest, allow).await?
            }
            None if allow => {
                eprintln!(
                    "warning: --allow-unsigned: the target image {image} is not in {}, so its \
                     signature cannot be checked; recorded on the revision",
                    repo.name
                );
                "unverified: rolled back with --allow-unsigned".to_owned()
            }
            None => bail!(
                "the target image {image} is not in ECR repository {}, so its signature cannot be \
                 checked: pick a target in it (--to-revision N / --to-tag SHA), or pass \
                 --allow-unsigned",
                repo.name
            ),
        };

        let mut next = props
            .with_tag(TAG_PREVIOUS_REVISION, current_rev.to_string())
            .with_tag(sign::TAG_SIGNATURE, signature);
        if let Some(tags) = next.tags.as_mut() {
            tags.remove(TAG_SOURCE_REVISION);
            tags.remove(TAG_IMAGE_TAG);
        }
        if let Some(reference) = reference {
            next = next.with_tag(TAG_IMAGE_TAG, reference);
        }
        if let Some(rev) = source_rev {
            next = next.with_tag(TAG_SOURCE_REVISION, rev.to_string());
        }
        Ok(Change { current, next, what })
    }
}

/// The tag (or digest) of `image` when it is in `repo` (on either side of the local switch).
fn reference_in(repo: &Repository, image: &str) -> Option<String> {
    let (name, reference) = ecr::split_image_uri(image)?;
    (name == repo.name).then(|| reference.to_owned())
}
