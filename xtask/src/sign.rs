//! `cargo xtask sign`: signs the pushed image with the environment's AWS KMS key, in cosign's
//! format, and attaches the scan's SBOM as a signed attestation; `deploy` and `rollback` verify
//! the signature ([`check_deployable`]) before they point a job definition at an image.
//!
//! 1. The image: the build record's full-SHA tag (or `--tag`), its manifest digest in ECR.
//! 2. The key: `alias/{project}-splitter-signing-{env}` ([`key`]); its public half
//!    (`kms:GetPublicKey`) checks everything locally. The private key never leaves KMS.
//! 3. The signature: cosign's simple-signing payload (the repository and the manifest digest),
//!    signed with `kms:Sign` (`ECDSA_SHA_256`), stored next to the image as an OCI artifact
//!    tagged `sha256-<hex>.sig` whose layer is the payload with the
//!    `dev.cosignproject.cosign/signature` annotation ([`cosign`]): `cosign verify --key
//!    awskms:///alias/…` accepts it. An image whose `.sig` already verifies with the key is not
//!    signed again.
//! 4. The attestation: the CycloneDX SBOM `scan` wrote, as an in-toto statement about the image
//!    in a DSSE envelope signed with the same key (over DSSE's PAE; `MessageType=DIGEST` when it
//!    is over 4 KiB), tagged `sha256-<hex>.att`. An attestation `sign` already stored for the
//!    digest is kept: the image is the same, and a new scan's SBOM differs only in its serial
//!    number, time stamp and references.
//!
//! Where the artifacts go is [`Registry::put_artifact`]: ECR's layer API and `PutImage` on AWS;
//! the local registry and moto's ECR on the local stack.

pub mod cosign;
mod key;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use xshell::Shell;

use crate::aws::Aws;
use crate::build_record::BuildRecord;
use crate::config::Target;
use crate::dry_run::DryRun;
use crate::ecr::{self, Manifest, Registry, Repository, TagOutcome};
pub use key::SigningKey;

/// The job definition tag that records how a deploy or rollback checked the image's signature.
pub const TAG_SIGNATURE: &str = "splitter:signature";

/// Annotation of the `.att` manifest `sign` writes: the SHA-256 of the attested statement (which
/// an attestation stored by `sign` carries; its signature differs every time).
pub const STATEMENT_ANNOTATION: &str = "dev.upscaler.splitter/statement-sha256";

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  cargo xtask sign --env dev                 # the build record's image, SBOM from `cargo xtask scan`
  cargo xtask sign --env prod --tag 0123abc… # an image already pushed
  cargo xtask sign --dry-run                 # what would be signed; nothing is written
  . target/xtask/local/env && cargo xtask sign   # the local stack (moto's KMS and ECR)

Verify by hand (cosign 2.x, AWS credentials of the environment):
  cosign verify --key awskms:///alias/upscaler-splitter-signing-dev \\
      ACCOUNT.dkr.ecr.REGION.amazonaws.com/upscaler-splitter-dev-ecr@sha256:…
  cosign verify-attestation --type cyclonedx --key awskms:///alias/upscaler-splitter-signing-dev IMAGE@sha256:…")]
pub struct Sign {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Image tag to sign (a full git SHA pushed by `cargo xtask push`) [default: the build
    /// record's tag].
    #[arg(long, value_name = "SHA")]
    pub(crate) tag: Option<String>,
    /// The CycloneDX SBOM to attest [default: the one `cargo xtask scan` wrote,
    /// target/xtask/scan/sbom.cdx.json].
    #[arg(long, value_name = "FILE", conflicts_with = "no_attestation")]
    pub(crate) sbom: Option<PathBuf>,
    /// Sign the image only; attach no SBOM attestation.
    #[arg(long)]
    pub(crate) no_attestation: bool,
    /// Print what would be signed and stored; sign and store nothing (read-only AWS calls still
    /// run).
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// What `sign` did, for the pipeline's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `sha256:…` of the image's manifest.
    pub digest: String,
    pub key_id: String,
    /// Whether a new signature was stored (false: a valid one was there).
    pub signed: bool,
    /// Whether a new attestation was stored; `None`: none asked for.
    pub attested: Option<bool>,
}

impl Sign {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        self.execute().map(|_| ())
    }

    /// Signs; `None` for a dry run.
    pub fn execute(&self) -> Result<Option<Signed>> {
        let tag = BuildRecord::tag_or_recorded(self.tag.as_deref())?;
        let sbom = self.sbom()?;
        let aws = Aws::load(&self.target.region)?;
        let registry = Registry::from_env(&aws)?;
        aws.block_on(self.sign(&aws, &registry, &tag, sbom))
    }

    /// The SBOM to attest, parsed (`None`: `--no-attestation`).
    fn sbom(&self) -> Result<Option<(PathBuf, serde_json::Value)>> {
        if self.no_attestation {
            return Ok(None);
        }
        let path = self
            .sbom
            .clone()
            .unwrap_or_else(|| crate::xtask_dir().join("scan").join(crate::scan::SBOM));
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read the SBOM {}: run `cargo xtask scan` first (it writes it), pass \
                 --sbom FILE, or sign without it (--no-attestation)",
                path.display()
            )
        })?;
        let sbom: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if sbom["bomFormat"] != "CycloneDX" {
            bail!("{} is not a CycloneDX SBOM (no \"bomFormat\": \"CycloneDX\")", path.display());
        }
        Ok(Some((path, sbom)))
    }

    async fn sign(
        &self,
        aws: &Aws,
        registry: &Registry,
        tag: &str,
        sbom: Option<(PathBuf, serde_json::Value)>,
    ) -> Result<Option<Signed>> {
        let ecr = aws.ecr();
        let repo =
            ecr::describe_repository(&ecr, &self.target.ecr_repository(), self.target.env.as_str())
                .await?;
        let digest = image_digest(&ecr, &repo, tag, &self.target).await?;
        let reference = docker_reference(registry, &repo);
        let alias = self.target.signing_key_alias();
        let kms = aws.kms();
        let key = SigningKey::load(&kms, &alias).await?;
        println!("sign {reference}@{digest} ({tag}) with {alias} (key {})", key.key_id);
        let dry = DryRun::new(self.dry_run).nested();

        // The signature.
        let sig_tag = cosign::signature_tag(&digest)?;
        let existing = ecr::get_manifest(&ecr, &repo, &sig_tag).await?;
        let valid = existing.as_ref().map(|m| {
            cosign::check_sig_manifest(m.text.as_bytes(), &reference, &digest, &key.public_key)
        });
        let signed = match valid {
            Some(Ok(())) => {
                println!("  signature  {sig_tag} already verifies with {alias}: not signed again");
                false
            }
            other => {
                if let Some(Err(why)) = other {
                    println!(
                        "  signature  {sig_tag} is there but does not verify ({why}): replacing it"
                    );
                }
                let what = format!("sign the payload with kms:Sign and store {sig_tag}");
                let stored = dry.call(what, || Ok(()))?;
                if stored.is_some() {
                    let payload = cosign::simple_signing_payload(&reference, &digest);
                    let signature = key.sign(&kms, &payload).await?;
                    let artifact = cosign::signature_artifact(&reference, &digest, &signature)?;
                    let outcome = store(&ecr, registry, &repo, &artifact).await?;
                    println!("  signature  {sig_tag} stored ({}, {outcome:?})", artifact.digest);
                }
                stored.is_some()
            }
        };

        // The attestation.
        let attested = match sbom {
            None => None,
            Some((path, sbom)) => {
                let att_tag = cosign::attestation_tag(&digest)?;
                let statement = cosign::statement(&reference, &digest, &sbom)?;
                let statement_sha =
                    ecr::sha256_digest(&statement).trim_start_matches("sha256:").to_owned();
                let existing = ecr::get_manifest(&ecr, &repo, &att_tag).await?;
                // Trivy's SBOM of the same image differs run to run (serial number, time,
                // bom-refs): an attestation `sign` stored for this digest is kept.
                if let Some(sha) = existing.as_ref().and_then(statement_annotation) {
                    println!(
                        "  attestation {att_tag} already attests this image (statement sha256 \
                         {}…): kept",
                        &sha[..sha.len().min(12)]
                    );
                    Some(false)
                } else {
                    let what = format!(
                        "sign an attestation of {} (DSSE, kms:Sign) and store {att_tag}",
                        crate::display_path(&path)
                    );
                    let stored = dry.call(what, || Ok(()))?;
                    if stored.is_some() {
                        let pae = cosign::pae(cosign::IN_TOTO_PAYLOAD_TYPE, &statement);
                        let signature = key.sign(&kms, &pae).await?;
                        let envelope = cosign::envelope(&statement, &signature);
                        let mut artifact = cosign::attestation_artifact(&digest, &envelope)?;
                        annotate(&mut artifact, &statement_sha)?;
                        let outcome = store(&ecr, registry, &repo, &artifact).await?;
                        println!(
                            "  attestation {att_tag} stored ({}, {} bytes of SBOM, {outcome:?})",
                            artifact.digest,
                            statement.len()
                        );
                    }
                    Some(stored.is_some())
                }
            }
        };
        if self.dry_run {
            return Ok(None);
        }
        Ok(Some(Signed { digest, key_id: key.key_id, signed, attested }))
    }
}

/// What cosign calls the image's repository: `HOST/REPOSITORY`, where jobs pull it from.
pub fn docker_reference(registry: &Registry, repo: &Repository) -> String {
    format!("{}/{}", registry.host(repo), repo.name)
}

/// The manifest digest ECR has under `tag`, or one line saying to push it.
async fn image_digest(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: &str,
    target: &Target,
) -> Result<String> {
    ecr::tag_digest(ecr, repo, tag).await?.with_context(|| {
        format!(
            "image tag {tag} is not in ECR repository {}: push it first with `cargo xtask push \
             --env {}`",
            repo.name, target.env
        )
    })
}

async fn store(
    ecr: &aws_sdk_ecr::Client,
    registry: &Registry,
    repo: &Repository,
    artifact: &cosign::Artifact,
) -> Result<TagOutcome> {
    let manifest = Manifest {
        text: String::from_utf8(artifact.manifest.clone()).context("the manifest is not UTF-8")?,
        media_type: artifact.media_type.to_owned(),
        digest: artifact.digest.clone(),
    };
    registry.put_artifact(ecr, repo, &artifact.blobs, &manifest, &artifact.tag).await
}

/// The statement digest an `.att` manifest records.
fn statement_annotation(manifest: &Manifest) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(&manifest.text).ok()?;
    value["annotations"][STATEMENT_ANNOTATION].as_str().map(str::to_owned)
}

/// Records the statement's digest in the `.att` manifest's annotations (its digest changes).
fn annotate(artifact: &mut cosign::Artifact, statement_sha: &str) -> Result<()> {
    let mut value: serde_json::Value =
        serde_json::from_slice(&artifact.manifest).context("the .att manifest")?;
    value["annotations"] = serde_json::json!({ STATEMENT_ANNOTATION: statement_sha });
    artifact.manifest = serde_json::to_vec(&value)?;
    artifact.digest = ecr::sha256_digest(&artifact.manifest);
    Ok(())
}

/// How a deploy or rollback checked the image at `digest`: `Ok(tag value)` to record on the
/// new revision ([`TAG_SIGNATURE`]), or the one-line refusal. With `allow_unsigned`, a missing
/// or bad signature is a printed warning instead, recorded as such.
pub async fn check_deployable(
    aws: &Aws,
    registry: &Registry,
    repo: &Repository,
    target: &Target,
    digest: &str,
    allow_unsigned: bool,
) -> Result<String> {
    let verdict = verify_image(aws, registry, repo, target, digest).await;
    match (verdict, allow_unsigned) {
        (Ok(key_id), _) => {
            println!("signature: {digest} is signed by {} ({key_id})", target.signing_key_alias());
            Ok("verified".to_owned())
        }
        (Err(why), true) => {
            eprintln!(
                "warning: --allow-unsigned: {why:#}; recorded on the revision ({TAG_SIGNATURE})"
            );
            Ok("unverified: deployed with --allow-unsigned".to_owned())
        }
        (Err(why), false) => Err(why.context(format!(
            "refusing to deploy an image that is not signed by {}: sign it (`cargo xtask sign \
             --env {}`), or pass --allow-unsigned (recorded on the revision)",
            target.signing_key_alias(),
            target.env
        ))),
    }
}

/// The key id whose signature the image at `digest` carries, or why it carries none.
async fn verify_image(
    aws: &Aws,
    registry: &Registry,
    repo: &Repository,
    target: &Target,
    digest: &str,
) -> Result<String> {
    let alias = target.signing_key_alias();
    let key = SigningKey::load(&aws.kms(), &alias).await?;
    let sig_tag = cosign::signature_tag(digest)?;
    let Some(manifest) = ecr::get_manifest(&aws.ecr(), repo, &sig_tag).await? else {
        bail!("{}@{digest} has no signature ({sig_tag} is not in the repository)", repo.name);
    };
    let reference = docker_reference(registry, repo);
    cosign::check_sig_manifest(manifest.text.as_bytes(), &reference, digest, &key.public_key)
        .map_err(|why| {
            anyhow::anyhow!("the signature of {}@{digest} is refused: {why}", repo.name)
        })?;
    Ok(key.key_id)
}
