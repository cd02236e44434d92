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

use anyhow::{Context, Result, bail};
use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine;
use clap::Args;
use xshell::Shell;

use crate::aws::{Aws, sdk_error};
use crate::build_record::BuildRecord;
use crate::config::{Env, Target};
use crate::docker::{Docker, short_id};
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
    target: Target,
    /// Push an image built from a work tree with uncommitted changes (its tags end in `-dirty`).
    #[arg(long)]
    allow_dirty: bool,
    /// Print the steps without pushing or tagging anything (read-only AWS calls still run).
    #[arg(long)]
    dry_run: bool,
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
        let tags = push_tags(&record, self.target.env);
        let full = tags[0].clone();
        let local = record.image_ref();

        let docker = Docker::detect(sh)?;
        docker.ensure_daemon(sh)?;
        let info = docker.inspect_image(sh, &local)?;
        if info.id != record.image_id {
            bail!(
                "{local} is now {} but the build record says {}: rerun `cargo xtask image`",
                info.id,
                record.image_id
            );
        }

        let aws = Aws::load(&self.target.region)?;
        let registry = Registry::from_env(&aws)?;
        let ecr = aws.ecr();
        let account = aws.block_on(account_id(&aws))?;
        let repo = aws.block_on(ecr::describe_repository(
            &ecr,
            &self.target.ecr_repository(),
            self.target.env.as_str(),
        ))?;
        let remote = registry.image_uri(&repo, &full);
        println!(
            "push {local} ({}) to {} (account {account}, {}, tags {})",
            short_id(&info.id),
            repo.name,
            self.target.region,
            tags.join(", ")
        );
        if let Registry::Local(host) = &registry {
            println!("  local stack: layers go to the registry {host}, manifests to ECR (moto)");
        }

        // What ECR holds under our tags now: refuse early what would fail after an upload.
        let held = aws.block_on(ecr::get_manifests(&ecr, &repo, &tags))?;
        let is_ours = |m: &Manifest| m.config_digest().as_deref() == Some(info.id.as_str());
        if repo.tag_surely_immutable() {
            if let Some((tag, m)) = held.iter().find(|(_, m)| !is_ours(m)) {
                return Err(ecr::immutable_tag_error(&repo, tag, &m.digest));
            }
        }

        let uploaded;
        let manifest = match held.get(&full).filter(|m| is_ours(m)) {
            Some(m) => {
                println!(
                    "  ECR already has {full} on this image ({}): uploading nothing",
                    m.digest
                );
                uploaded = false;
                m.clone()
            }
            None => {
                let host = registry.host(&repo).to_owned();
                if self.dry_run {
                    println!(
                        "  [dry-run] would log in: docker login --username AWS --password-stdin {host} \
                         (password from ecr:GetAuthorizationToken, on stdin)"
                    );
                    println!("  [dry-run] would run: docker tag {local} {remote}");
                    println!("  [dry-run] would run: docker push {remote}");
                    for tag in &tags[1..] {
                        println!(
                            "  [dry-run] would tag the pushed manifest as {tag} (ecr:PutImage)"
                        );
                    }
                    println!("  [dry-run] would start an ECR image scan (ecr:StartImageScan)");
                    return Ok(());
                }
                self.login(sh, &docker, &aws, &host)?;
                docker.tag(sh, &local, &remote)?;
                docker.push(sh, &remote).with_context(|| {
                    format!(
                        "ECR push to {} failed: check AWS_ROLE_ARN, that the role's trust policy allows GitHub OIDC, \
                         that the repository exists (created by Terraform) and that the role has ecr:PutImage \
                         and the layer upload permissions",
                        repo.name
                    )
                })?;
                uploaded = true;
                aws.block_on(registry.pushed_manifest(&ecr, &repo, &full))?
            }
        };

        for tag in &tags {
            if self.dry_run {
                let there = held.get(tag).is_some_and(|m| m.digest == manifest.digest);
                if there {
                    println!("  tag {tag:<40} already there");
                } else {
                    println!("  [dry-run] would tag {} as {tag} (ecr:PutImage)", manifest.digest);
                }
                continue;
            }
            let outcome = aws.block_on(ecr::put_tag(&ecr, &repo, &manifest, tag))?;
            let what = match outcome {
                TagOutcome::Added => "added".to_owned(),
                TagOutcome::AlreadyThere => "already there".to_owned(),
                TagOutcome::Moved(from) => format!("moved from {from}"),
            };
            println!("  tag {tag:<40} {what}");
        }
        if self.dry_run {
            return Ok(());
        }
        if uploaded {
            aws.block_on(start_scan(&ecr, &repo, &manifest.digest));
        }

        println!("image   {remote}");
        println!("digest  {}", manifest.digest);
        crate::gha::write_outputs(&[
            ("image-uri", &remote),
            ("image-digest", &manifest.digest),
            ("image-tag", &full),
        ])
    }

    /// `docker login` to `host` with an ECR authorization token; the password goes to stdin only.
    fn login(&self, sh: &Shell, docker: &Docker, aws: &Aws, host: &str) -> Result<()> {
        let token = aws
            .block_on(aws.ecr().get_authorization_token().send())
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
        docker.login(sh, host, user, password).with_context(|| {
            format!("ECR login to {host} failed: check AWS_ROLE_ARN and the role's ECR permissions")
        })?;
        println!("  logged in to {host} as {user} (password on stdin)");
        Ok(())
    }
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
