//! ECR for `push`, `deploy` and `rollback`: the environment's repository, image manifests, and
//! tags moved with `PutImage` of an existing manifest (no second upload).
//!
//! ## The local switch ([`Registry`])
//!
//! moto's ECR has the control-plane API but no registry (no `/v2/`): nothing can `docker push` to
//! it. When `SPLITTER_LOCAL_REGISTRY` is set (the local stack's env file sets it, next to
//! `AWS_ENDPOINT_URL`), exactly two things change, both in [`Registry`]:
//!
//! - the registry host images are pushed to and job definitions run them from: the local
//!   Distribution registry (`127.0.0.1:PORT/{repo}:{tag}`, which the local Docker that runs
//!   moto's Batch jobs can pull) instead of the repository URI's host
//!   (`{account}.dkr.ecr.{region}.amazonaws.com/{repo}:{tag}`);
//! - where the pushed manifest is read back from: the registry's HTTP API (`ecr/local_registry.rs`;
//!   exact bytes, digest = `Docker-Content-Digest` = sha256 of the bytes) instead of ECR
//!   `BatchGetImage`.
//!
//! Everything else is the same code on both: the manifest is then tagged in ECR with `PutImage`
//! (passing the registry's digest, so ECR's digests equal the registry's). In real AWS the
//! full-SHA `PutImage` finds the tag the push already created and counts as "already tagged".

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability};
use sha2::{Digest, Sha256};

use crate::aws::{Aws, sdk_error};

mod local_registry;

use local_registry::{registry_manifest, registry_put_artifact};

/// The environment variable of the local switch.
pub const LOCAL_REGISTRY_VAR: &str = "SPLITTER_LOCAL_REGISTRY";

/// Manifest media types xtask reads and writes (single-platform images; Docker and OCI).
pub const MANIFEST_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
];

/// Where images are pushed and where their manifests come from (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    /// Real ECR: the repository URI's host; manifests from ECR `BatchGetImage`.
    Ecr,
    /// The local stack: a Distribution registry at `host:port`; manifests from its HTTP API.
    Local(String),
}

impl Registry {
    /// `SPLITTER_LOCAL_REGISTRY` set → [`Registry::Local`]. Only together with an endpoint
    /// override: against real AWS it would push where no job can pull from.
    pub fn from_env(aws: &Aws) -> Result<Registry> {
        // The pipeline's `--local` sets it in-process (`aws::set_env_overlay`).
        let local = crate::aws::env_var(LOCAL_REGISTRY_VAR).filter(|v| !v.trim().is_empty());
        match (local, aws.endpoint_url()) {
            (None, _) => Ok(Registry::Ecr),
            (Some(host), Some(_)) => Ok(Registry::Local(host.trim().to_owned())),
            (Some(host), None) => bail!(
                "{LOCAL_REGISTRY_VAR}={host} is set but AWS_ENDPOINT_URL is not: it belongs to the \
                 local stack (`. target/xtask/local/env`); unset it to use real ECR"
            ),
        }
    }

    /// The registry host images go to and are run from.
    pub fn host<'a>(&'a self, repo: &'a Repository) -> &'a str {
        match self {
            Registry::Ecr => repo.host(),
            Registry::Local(host) => host,
        }
    }

    /// `HOST/REPOSITORY:TAG`: what `docker push` pushes and a job definition runs.
    pub fn image_uri(&self, repo: &Repository, tag: &str) -> String {
        format!("{}/{}:{tag}", self.host(repo), repo.name)
    }

    /// The manifest `docker push` just stored under `tag`.
    pub async fn pushed_manifest(
        &self,
        ecr: &aws_sdk_ecr::Client,
        repo: &Repository,
        tag: &str,
    ) -> Result<Manifest> {
        match self {
            Registry::Ecr => get_manifest(ecr, repo, tag).await?.with_context(|| {
                format!(
                    "ECR has no image tagged {tag} in {} right after the push: check the push output above",
                    repo.name
                )
            }),
            Registry::Local(host) => registry_manifest(host, &repo.name, tag),
        }
    }
}

impl Registry {
    /// Stores a small artifact (cosign's `.sig`/`.att`: `blobs` by digest, then `manifest`)
    /// under `tag` where the repository's images are: the local registry's HTTP API, then
    /// ECR's tag (`PutImage`) locally; ECR's layer upload API (`InitiateLayerUpload`,
    /// `UploadLayerPart`, `CompleteLayerUpload`, skipping layers it has) and `PutImage` on AWS.
    pub async fn put_artifact(
        &self,
        ecr: &aws_sdk_ecr::Client,
        repo: &Repository,
        blobs: &BTreeMap<String, Vec<u8>>,
        manifest: &Manifest,
        tag: &str,
    ) -> Result<TagOutcome> {
        match self {
            Registry::Local(host) => registry_put_artifact(host, &repo.name, blobs, manifest, tag)?,
            Registry::Ecr => upload_layers(ecr, repo, blobs).await?,
        }
        put_tag(ecr, repo, manifest, tag).await
    }
}

/// Uploads `blobs` to an ECR repository with its layer API (each in one part: artifacts are
/// small), skipping those ECR already has.
async fn upload_layers(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    blobs: &BTreeMap<String, Vec<u8>>,
) -> Result<()> {
    use aws_sdk_ecr::primitives::Blob;
    use aws_sdk_ecr::types::LayerAvailability;
    let permission = |call: &str| {
        format!(
            "cannot upload to {} (ecr:{call}): check that the role has ecr:{call} on it",
            repo.name
        )
    };
    let digests: Vec<String> = blobs.keys().cloned().collect();
    let available = ecr
        .batch_check_layer_availability()
        .repository_name(&repo.name)
        .set_layer_digests(Some(digests))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| permission("BatchCheckLayerAvailability"))?;
    for (digest, bytes) in blobs {
        let there = available.layers().iter().any(|l| {
            l.layer_digest() == Some(digest.as_str())
                && l.layer_availability() == Some(&LayerAvailability::Available)
        });
        if there {
            continue;
        }
        let upload = ecr
            .initiate_layer_upload()
            .repository_name(&repo.name)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| permission("InitiateLayerUpload"))?;
        let id = upload.upload_id().context("ECR returned no upload id")?.to_owned();
        let last = i64::try_from(bytes.len()).unwrap_or(i64::MAX).saturating_sub(1);
        ecr.upload_layer_part()
            .repository_name(&repo.name)
            .upload_id(&id)
            .part_first_byte(0)
            .part_last_byte(last)
            .layer_part_blob(Blob::new(bytes.clone()))
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| permission("UploadLayerPart"))?;
        let completed = ecr
            .complete_layer_upload()
            .repository_name(&repo.name)
            .upload_id(&id)
            .layer_digests(digest)
            .send()
            .await;
        match completed {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_layer_already_exists_exception()) => {}
            Err(err) => {
                return Err(sdk_error(err)).with_context(|| permission("CompleteLayerUpload"));
            }
        }
    }
    Ok(())
}

/// An image manifest exactly as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes (ECR's `imageManifest`).
    pub text: String,
    pub media_type: String,
    /// `sha256:…` of the bytes.
    pub digest: String,
}

impl Manifest {
    /// The config blob's digest: for an image Docker built, its local image id.
    pub fn config_digest(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.text).ok()?;
        value["config"]["digest"].as_str().map(str::to_owned)
    }
}

/// `sha256:` + hex of the bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An ECR repository as `push`/`deploy` need it.
#[derive(Debug, Clone)]
pub struct Repository {
    pub name: String,
    /// `{account}.dkr.ecr.{region}.amazonaws.com/{name}`
    pub uri: String,
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, `MUTABLE_WITH_EXCLUSION`.
    pub mutability: String,
}

impl Repository {
    /// The registry host of the repository URI.
    pub fn host(&self) -> &str {
        self.uri.split('/').next().unwrap_or(&self.uri)
    }

    /// Whether an existing `tag` certainly cannot move to another image. With exclusion filters
    /// this cannot be known up front (this SDK version does not return the filters): `PutImage`
    /// decides, and its refusal is reported by [`put_tag`].
    pub fn tag_surely_immutable(&self) -> bool {
        self.mutability == ImageTagMutability::Immutable.as_str()
    }
}

/// The repository, or one line naming it and who creates it.
pub async fn describe_repository(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
    env: &str,
) -> Result<Repository> {
    let found = find_repository(ecr, name).await.with_context(|| {
        format!(
            "cannot read ECR repository {name}: check the AWS credentials (AWS_ROLE_ARN and its trust policy in CI) \
             and ecr:DescribeRepositories permission"
        )
    })?;
    found.with_context(|| {
        format!(
            "ECR repository {name} does not exist: it is created by Terraform (or `cargo xtask local up --env {env}` \
             on the local stack); check PROJECT_NAME/--project and --env"
        )
    })
}

/// The repository, `None` when it does not exist (the error is the SDK's: callers say what
/// they were doing).
pub async fn find_repository(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<Option<Repository>> {
    let out = match ecr.describe_repositories().repository_names(name).send().await {
        Ok(out) => out,
        Err(err)
            if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(sdk_error(err)),
    };
    let repo = out
        .repositories()
        .iter()
        .find(|r| r.repository_name() == Some(name))
        .with_context(|| format!("ECR did not return repository {name}"))?;
    Ok(Some(Repository {
        name: name.to_owned(),
        uri: repo.repository_uri().unwrap_or_default().to_owned(),
        mutability: repo
            .image_tag_mutability()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| "MUTABLE".to_owned()),
    }))
}

/// The manifests ECR holds under `tags` (missing tags are absent from the map). One
/// `BatchGetImage` per tag: moto answers a tag lookup with the image's first tag, not the one
/// asked for, so several tags in one call could not be told apart.
pub async fn get_manifests(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    tags: &[String],
) -> Result<BTreeMap<String, Manifest>> {
    let mut found = BTreeMap::new();
    for tag in tags {
        if let Some(manifest) = get_manifest(ecr, repo, tag).await? {
            found.insert(tag.clone(), manifest);
        }
    }
    Ok(found)
}

/// The manifest ECR holds under `tag` (or a digest), if any (`BatchGetImage`).
pub async fn get_manifest(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: &str,
) -> Result<Option<Manifest>> {
    let mut req = ecr.batch_get_image().repository_name(&repo.name).image_ids(image_id(tag));
    for media_type in MANIFEST_MEDIA_TYPES {
        req = req.accepted_media_types(media_type);
    }
    let out = req.send().await.map_err(sdk_error).with_context(|| {
        format!(
            "cannot read image {tag} of {} (ecr:BatchGetImage): check the role's permissions",
            repo.name
        )
    })?;
    let Some(image) = out.images().first() else { return Ok(None) };
    let digest = image.image_id().and_then(|id| id.image_digest());
    let (Some(digest), Some(text)) = (digest, image.image_manifest()) else {
        return Ok(None);
    };
    let media_type = image
        .image_manifest_media_type()
        .map(str::to_owned)
        .or_else(|| media_type_in(text))
        .unwrap_or_else(|| MANIFEST_MEDIA_TYPES[0].to_owned());
    Ok(Some(Manifest { text: text.to_owned(), media_type, digest: digest.to_owned() }))
}

/// An image identifier for a tag or a digest (`sha256:…`).
pub fn image_id(reference: &str) -> ImageIdentifier {
    if reference.starts_with("sha256:") {
        ImageIdentifier::builder().image_digest(reference).build()
    } else {
        ImageIdentifier::builder().image_tag(reference).build()
    }
}

/// The digest of the image ECR has under `reference` (a tag, or a digest), or `None`.
pub async fn tag_digest(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    reference: &str,
) -> Result<Option<String>> {
    let out = ecr
        .describe_images()
        .repository_name(&repo.name)
        .image_ids(image_id(reference))
        .send()
        .await;
    match out {
        Ok(out) => Ok(out
            .image_details()
            .iter()
            .find(|d| {
                d.image_digest() == Some(reference) || d.image_tags().iter().any(|t| t == reference)
            })
            .and_then(|d| d.image_digest())
            .map(str::to_owned)),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_image_not_found_exception()) => {
            Ok(None)
        }
        Err(err) => Err(sdk_error(err)).with_context(|| {
            format!(
                "cannot look up image {reference} in {} (ecr:DescribeImages): check the role's permissions",
                repo.name
            )
        }),
    }
}

/// What [`put_tag`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOutcome {
    /// The tag is new in the repository.
    Added,
    /// The tag already pointed at this manifest.
    AlreadyThere,
    /// The tag moved from another image (its digest).
    Moved(String),
}

/// Points `tag` at `manifest` with `PutImage` (no upload: the layers are already there).
pub async fn put_tag(
    ecr: &aws_sdk_ecr::Client,
    repo: &Repository,
    manifest: &Manifest,
    tag: &str,
) -> Result<TagOutcome> {
    let before = tag_digest(ecr, repo, tag).await?;
    if before.as_deref() == Some(manifest.digest.as_str()) {
        return Ok(TagOutcome::AlreadyThere);
    }
    if let Some(other) = &before {
        if repo.tag_surely_immutable() {
            return Err(immutable_tag_error(repo, tag, other));
        }
    }
    let result = ecr
        .put_image()
        .repository_name(&repo.name)
        .image_manifest(&manifest.text)
        .image_manifest_media_type(&manifest.media_type)
        .image_digest(&manifest.digest)
        .image_tag(tag)
        .send()
        .await;
    match result {
        Ok(_) => Ok(before.map_or(TagOutcome::Added, TagOutcome::Moved)),
        Err(err)
            if err.as_service_error().is_some_and(|e| {
                e.is_image_already_exists_exception() || e.is_image_tag_already_exists_exception()
            }) =>
        {
            // Same manifest and tag (a push already tagged it, or another run did meanwhile),
            // or an immutable tag on another image (moto raises ImageAlreadyExists for both).
            match tag_digest(ecr, repo, tag).await? {
                Some(d) if d == manifest.digest => Ok(TagOutcome::AlreadyThere),
                Some(other) => Err(immutable_tag_error(repo, tag, &other)),
                None => Err(sdk_error(err))
                    .with_context(|| format!("cannot tag {} as {tag}", manifest.digest)),
            }
        }
        Err(err) => Err(sdk_error(err)).with_context(|| {
            format!(
                "cannot tag {} as {tag} in {} (ecr:PutImage): check that the role has ecr:PutImage on the repository",
                manifest.digest, repo.name
            )
        }),
    }
}

/// One line: which tag cannot move, why, and what to do.
pub fn immutable_tag_error(repo: &Repository, tag: &str, holder: &str) -> anyhow::Error {
    if tag == "latest" {
        anyhow!(
            "tag latest of {} already points at {holder} and the repository's tags are {}: `latest` cannot move; \
             exclude it from immutability (Terraform `image_tag_mutability = \"IMMUTABLE_WITH_EXCLUSION\"` with an \
             exclusion filter for `latest`, or `aws ecr put-image-tag-mutability --repository-name {} \
             --image-tag-mutability IMMUTABLE_WITH_EXCLUSION --image-tag-mutability-exclusion-filters \
             filterType=WILDCARD,filter=latest`)",
            repo.name,
            repo.mutability,
            repo.name
        )
    } else {
        anyhow!(
            "tag {tag} of {} already points at another image ({holder}) and the repository's tags are {}: \
             build from a new commit (tags are the git SHA) instead of re-pushing a rebuilt one",
            repo.name,
            repo.mutability
        )
    }
}

/// The `mediaType` field of a manifest, if it has one.
fn media_type_in(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value["mediaType"].as_str().map(str::to_owned)
}

/// `HOST/REPOSITORY:TAG` (or `…@sha256:…`) split into the repository name and the tag or digest.
pub fn split_image_uri(uri: &str) -> Option<(&str, &str)> {
    let (path, reference) = match uri.rsplit_once('@') {
        Some((path, digest)) => (path, digest),
        None => {
            let slash = uri.rfind('/').map_or(0, |i| i + 1);
            let colon = uri[slash..].rfind(':')? + slash;
            (&uri[..colon], &uri[colon + 1..])
        }
    };
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && !reference.is_empty()).then_some((name, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(mutability: &str) -> Repository {
        Repository {
            name: "upscaler-splitter-dev-ecr".into(),
            uri: "123456789012.dkr.ecr.us-east-1.amazonaws.com/upscaler-splitter-dev-ecr".into(),
            mutability: mutability.into(),
        }
    }

    #[test]
    fn the_switch_changes_only_the_host() {
        let r = repo("MUTABLE");
        assert_eq!(r.host(), "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(
            Registry::Ecr.image_uri(&r, "abc"),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/upscaler-splitter-dev-ecr:abc"
        );
        assert_eq!(
            Registry::Local("127.0.0.1:5000".into()).image_uri(&r, "abc"),
            "127.0.0.1:5000/upscaler-splitter-dev-ecr:abc"
        );
    }

    #[test]
    fn image_uris_split_into_repository_and_reference() {
        assert_eq!(
            split_image_uri("127.0.0.1:5000/upscaler-splitter-dev-ecr:abc"),
            Some(("upscaler-splitter-dev-ecr", "abc"))
        );
        assert_eq!(
            split_image_uri("1.dkr.ecr.us-east-1.amazonaws.com/r@sha256:00ff"),
            Some(("r", "sha256:00ff"))
        );
        assert_eq!(split_image_uri("127.0.0.1:5000/r"), None);
        assert_eq!(split_image_uri("busybox:1"), Some(("busybox", "1")));
    }

    #[test]
    fn immutability_is_known_only_without_exclusions() {
        assert!(repo("IMMUTABLE").tag_surely_immutable());
        assert!(!repo("MUTABLE").tag_surely_immutable());
        assert!(!repo("IMMUTABLE_WITH_EXCLUSION").tag_surely_immutable());
        let e = immutable_tag_error(&repo("IMMUTABLE"), "latest", "sha256:1").to_string();
        assert!(e.contains("IMMUTABLE_WITH_EXCLUSION") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn manifests_name_their_config_and_hash_to_their_digest() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:abc"},"layers":[]}"#;
        let m = Manifest {
            text: text.into(),
            media_type: MANIFEST_MEDIA_TYPES[0].into(),
            digest: sha256_digest(text.as_bytes()),
        };
        assert_eq!(m.config_digest().as_deref(), Some("sha256:abc"));
        assert_eq!(media_type_in(text).as_deref(), Some(MANIFEST_MEDIA_TYPES[0]));
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
