//! `cargo xtask push`: pushes the image of the build record to the environment's ECR repository,
//! tagged as the deployment guide says: the full git SHA, the short SHA (7) and, for dev only,
//! `latest`.
//!
//! The image is uploaded once (`docker push` of the full-SHA tag); the other tags are added with
//! ECR `PutImage` of the same manifest, so nothing is uploaded twice. When ECR already has the
//! full-SHA tag on this very image (its manifest's config digest is the local image id), nothing
//! is uploaded at all. The ECR password goes to `docker login --password-stdin` only.
//!
//! On the local stack (`SPLITTER_LOCAL_REGISTRY` set) the image goes to the local registry and
//! its manifest is recorded in moto's ECR: see [`crate::ecr::Registry`].

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine;
use clap::Args;
use xshell::Shell;

use crate::aws::{Aws, sdk_error};
use crate::build_record::BuildRecord;
use crate::config::{Env, Target};
use crate::docker::{Docker, ImageInfo, short_id};
use crate::dry_run::DryRun;
use crate::ecr::{self, Manifest, Registry, Repository, TagOutcome};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask push --env dev                # tags SHA, SHA[..7] and latest
  cargo xtask push --env staging --dry-run  # print the steps; push nothing
  . target/xtask/local/env && cargo xtask push   # the local stack (moto + local registry)

Reads the build record of `cargo xtask image` (target/xtask/image.json). In GitHub Actions the
image URI, digest and tag are also written to $GITHUB_OUTPUT (image-uri, image-digest, image-tag).")]
pub struct Push {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Push an image built from a work tree with uncommitted changes (its tags end in `-dirty`).
    #[arg(long)]
    pub(crate) allow_dirty: bool,
    /// Print the steps without pushing or tagging anything (read-only AWS calls still run).
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// The tags an image gets in an environment: full SHA, short SHA, and `latest` for dev only.
pub fn push_tags(record: &BuildRecord, env: Env) -> Vec<String> {
    let suffix = if record.dirty { "-dirty" } else { "" };
    let full =
        record.tags.first().cloned().unwrap_or_else(|| format!("{}{suffix}", record.git_sha));
    let short = format!("{}{suffix}", crate::git::short_sha(&record.git_sha));
    let mut tags = vec![full, short];
    if env == Env::Dev {
        tags.push("latest".to_owned());
    }
    tags
}

impl Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let dry = DryRun::new(self.dry_run).nested();
        // 1. The build record's image, still the local image it names.
        let record = self.build_record()?;
        let docker = Docker::detect(sh)?;
        let info = record.local_image(sh, &docker)?;
        let tags = push_tags(&record, self.target.env);
        let full = &tags[0];
        let local = record.image_ref();

        // 2. Where it goes: the account, the repository, the registry.
        let dest = Destination::find(&self.target)?;
        let remote = dest.registry.image_uri(&dest.repo, full);
        dest.announce(&local, &info, &tags);

        // 3. What ECR holds under our tags now: refuse early what would fail after an upload.
        let held = dest.held(&tags, &info.id)?;

        // 4. The one upload (login, tag, push), unless ECR has the full-SHA tag on this image.
        //    A dry run that would upload has no manifest yet.
        let (manifest, uploaded) = match held.get(full).filter(|m| is_image(m, &info.id)) {
            Some(m) => {
                println!(
                    "  ECR already has {full} on this image ({}): uploading nothing",
                    m.digest
                );
                (Some(m.clone()), false)
            }
            None => (dest.upload(sh, dry, &docker, &local, &remote, full)?, true),
        };

        // 5. The tags on that manifest (ECR PutImage); the push itself put the full SHA.
        let to_put = if manifest.is_none() { &tags[1..] } else { &tags[..] };
        dest.put_tags(dry, to_put, &held, manifest.as_ref())?;

        // 6. An ECR scan of what was uploaded.
        if uploaded {
            dry.call("start an ECR image scan (ecr:StartImageScan)", || {
                if let Some(m) = &manifest {
                    dest.aws.block_on(start_scan(&dest.ecr, &dest.repo, &m.digest));
                }
                Ok(())
            })?;
        }

        // 7. What was pushed: printed, and written to $GITHUB_OUTPUT.
        match manifest {
            Some(manifest) if !dry.is_on() => report(&remote, &manifest, full),
            _ => Ok(()),
        }
    }

    /// Step 1: the build record, which must name a tagged image built from a clean work tree
    /// (or `--allow-dirty`).
    fn build_record(&self) -> Result<BuildRecord> {
        let record = BuildRecord::load()?;
        if record.tags.is_empty() {
            bail!(
                "the build record {} has no tag: rerun `cargo xtask image`",
                BuildRecord::path().display()
            );
        }
        if record.dirty && !self.allow_dirty {
            bail!(
                "{} was built from a work tree with uncommitted changes: commit them and rebuild with \
                 `cargo xtask image`, or pass --allow-dirty to push it anyway",
                record.image_ref()
            );
        }
        Ok(record)
    }
}

/// Whether `manifest` is of the local image `id` (its config digest is the image id).
fn is_image(manifest: &Manifest, id: &str) -> bool {
    manifest.config_digest().as_deref() == Some(id)
}

/// Where the image goes (step 2), and the steps that talk to it.
struct Destination {
    aws: Aws,
    registry: Registry,
    ecr: aws_sdk_ecr::Client,
    account: String,
    repo: Repository,
    region: String,
}

impl Destination {
    /// Step 2: the account (STS), the environment's repository, the registry.
    fn find(target: &Target) -> Result<Destination> {
        let aws = Aws::load(&target.region)?;
        let registry = Registry::from_env(&aws)?;
        let ecr = aws.ecr();
        let account = aws.block_on(account_id(&aws))?;
        let repo = aws.block_on(ecr::describe_repository(
            &ecr,
            &target.ecr_repository(),
            target.env.as_str(),
        ))?;
        Ok(Destination { aws, registry, ecr, account, repo, region: target.region.clone() })
    }

    fn announce(&self, local: &str, info: &ImageInfo, tags: &[String]) {
        println!(
            "push {local} ({}) to {} (account {}, {}, tags {})",
            short_id(&info.id),
            self.repo.name,
            self.account,
            self.region,
            tags.join(", ")
        );
        if let Registry::Local(host) = &self.registry {
            println!("  local stack: layers go to the registry {host}, manifests to ECR (moto)");
        }
    }

    /// Step 3: the manifests ECR has under `tags`; with immutable tags, one on another image
    /// than `image_id` is refused now.
    fn held(&self, tags: &[String], image_id: &str) -> Result<BTreeMap<String, Manifest>> {
        let held = self.aws.block_on(ecr::get_manifests(&self.ecr, &self.repo, tags))?;
        if self.repo.tag_surely_immutable() {
            if let Some((tag, m)) = held.iter().find(|(_, m)| !is_image(m, image_id)) {
                return Err(ecr::immutable_tag_error(&self.repo, tag, &m.digest));
            }
        }
        Ok(held)
    }

    /// Step 4: login, `docker tag`, `docker push` of the full-SHA tag; the manifest it stored
    /// (`None` on a dry run).
    fn upload(
        &self,
        sh: &Shell,
        dry: DryRun,
        docker: &Docker,
        local: &str,
        remote: &str,
        full: &str,
    ) -> Result<Option<Manifest>> {
        let host = self.registry.host(&self.repo);
        self.login(sh, dry, docker, host)?;
        docker.tag(sh, dry, local, remote)?;
        docker.push(sh, dry, remote).with_context(|| {
            format!(
                "ECR push to {} failed: check AWS_ROLE_ARN, that the role's trust policy allows GitHub OIDC, \
                 that the repository exists (created by Terraform) and that the role has ecr:PutImage \
                 and the layer upload permissions",
                self.repo.name
            )
        })?;
        if dry.is_on() {
            return Ok(None);
        }
        self.aws.block_on(self.registry.pushed_manifest(&self.ecr, &self.repo, full)).map(Some)
    }

    /// Step 4: `docker login` to `host` with an ECR authorization token; the password goes to
    /// stdin only. A dry run asks ECR for no token, and shows the login with ECR's user, `AWS`.
    fn login(&self, sh: &Shell, dry: DryRun, docker: &Docker, host: &str) -> Result<()> {
        let credentials = dry.call(
            "get an ECR password (ecr:GetAuthorizationToken), for the login's stdin",
            || self.credentials(),
        )?;
        let (user, password) = credentials.unwrap_or_else(|| ("AWS".to_owned(), String::new()));
        docker.login(sh, dry, host, &user, &password).with_context(|| {
            format!("ECR login to {host} failed: check AWS_ROLE_ARN and the role's ECR permissions")
        })?;
        if !dry.is_on() {
            println!("  logged in to {host} as {user} (password on stdin)");
        }
        Ok(())
    }

    /// The user and password of an ECR authorization token.
    fn credentials(&self) -> Result<(String, String)> {
        let token = self
            .aws
            .block_on(self.ecr.get_authorization_token().send())
            .map_err(sdk_error)
            .context(
                "cannot get an ECR login (ecr:GetAuthorizationToken): check AWS_ROLE_ARN, the role's trust \
                 policy for GitHub OIDC and its ecr:GetAuthorizationToken permission",
            )?;
        let encoded = token
            .authorization_data()
            .first()
            .and_then(|d| d.authorization_token())
            .context("ECR returned no authorization token: retry, or check the region")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .context("ECR returned an authorization token that is not base64 `user:password`")?;
        let (user, password) = decoded
            .split_once(':')
            .context("ECR returned an authorization token that is not `user:password`")?;
        Ok((user.to_owned(), password.to_owned()))
    }

    /// Step 5: each of `tags` on `manifest` (ECR PutImage); `manifest` is `None` on a dry run
    /// that would upload it first.
    fn put_tags(
        &self,
        dry: DryRun,
        tags: &[String],
        held: &BTreeMap<String, Manifest>,
        manifest: Option<&Manifest>,
    ) -> Result<()> {
        for tag in tags {
            let there =
                manifest.is_some_and(|m| held.get(tag).is_some_and(|h| h.digest == m.digest));
            if dry.is_on() && there {
                println!("  tag {tag:<40} already there");
                continue;
            }
            let what = match manifest {
                Some(m) => format!("tag {} as {tag} (ecr:PutImage)", m.digest),
                None => format!("tag the pushed manifest as {tag} (ecr:PutImage)"),
            };
            let outcome = dry.call(what, || {
                let manifest = manifest.context("no manifest to tag")?;
                self.aws.block_on(ecr::put_tag(&self.ecr, &self.repo, manifest, tag))
            })?;
            let what = match outcome {
                None => continue,
                Some(TagOutcome::Added) => "added".to_owned(),
                Some(TagOutcome::AlreadyThere) => "already there".to_owned(),
                Some(TagOutcome::Moved(from)) => format!("moved from {from}"),
            };
            println!("  tag {tag:<40} {what}");
        }
        Ok(())
    }
}

/// Step 7: the image and digest, printed and written to `$GITHUB_OUTPUT`.
fn report(remote: &str, manifest: &Manifest, full: &str) -> Result<()> {
    println!("image   {remote}");
    println!("digest  {}", manifest.digest);
    crate::gha::write_outputs(&[
        ("image-uri", remote),
        ("image-digest", &manifest.digest),
        ("image-tag", full),
    ])
}

/// The account of the caller (STS `GetCallerIdentity`).
async fn account_id(aws: &Aws) -> Result<String> {
    let out = aws.sts().get_caller_identity().send().await.map_err(sdk_error).context(
        "cannot identify the AWS account (sts:GetCallerIdentity): configure credentials (in CI: AWS_ROLE_ARN \
         and its OIDC trust policy; locally: a profile, or `. target/xtask/local/env` for the local stack)",
    )?;
    out.account().map(str::to_owned).context("STS returned no account id")
}

/// Starts an ECR image scan; a scan that cannot start is a warning, not a failed push.
async fn start_scan(ecr: &aws_sdk_ecr::Client, repo: &Repository, digest: &str) {
    let result = ecr
        .start_image_scan()
        .repository_name(&repo.name)
        .image_id(ImageIdentifier::builder().image_digest(digest).build())
        .send()
        .await;
    match result {
        Ok(out) => {
            let status = out
                .image_scan_status()
                .and_then(|s| s.status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "started".to_owned());
            println!("  ECR image scan: {status}");
        }
        Err(err) => {
            let already = err.as_service_error().is_some_and(|e| e.is_limit_exceeded_exception());
            let unsupported = err.as_service_error().is_some_and(|e| {
                e.is_validation_exception() || e.is_unsupported_image_type_exception()
            });
            let why = sdk_error(err);
            if already {
                println!(
                    "  ECR image scan: already scanned today (scan on push, or an earlier push): {why}"
                );
            } else if unsupported {
                println!(
                    "  ECR image scan: not started ({why}); with enhanced scanning, Inspector scans pushed images itself"
                );
            } else {
                eprintln!(
                    "warning: the image is pushed but its ECR scan did not start ({why}): check the role's \
                     ecr:StartImageScan permission"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dirty: bool) -> BuildRecord {
        let sha = "0123456789abcdef0123456789abcdef01234567".to_owned();
        BuildRecord {
            image_id: "sha256:ff".into(),
            repository: "upscaler-splitter".into(),
            tags: vec![if dirty { format!("{sha}-dirty") } else { sha.clone() }],
            git_sha: sha,
            dirty,
            size_bytes: 1,
            platform: "linux/amd64".into(),
            version: "0.1.0".into(),
            created: "2025-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn tags_follow_the_deployment_guide() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(push_tags(&record(false), Env::Dev), [sha, "0123456", "latest"]);
        assert_eq!(push_tags(&record(false), Env::Staging), [sha, "0123456"]);
        assert_eq!(push_tags(&record(false), Env::Prod), [sha, "0123456"]);
        assert_eq!(
            push_tags(&record(true), Env::Dev),
            [format!("{sha}-dirty").as_str(), "0123456-dirty", "latest"]
        );
    }
}
