//! A local mirror of the Trivy vulnerability DB, as air-gapped sites run one: the DB pushed as
//! an OCI artifact into a registry, so `trivy image --db-repository REGISTRY/trivy-db:2` works
//! without reaching `ghcr.io`.
//!
//! The artifact has the shape Trivy 0.76 downloads (`pkg/oci/artifact.go`): one manifest
//! (`application/vnd.oci.image.manifest.v1+json`) with exactly one layer of media type
//! `application/vnd.aquasec.trivy.db.layer.v1.tar+gzip`, annotated
//! `org.opencontainers.image.title: db.tar.gz` (Trivy names the download after it and unpacks
//! it by its extension), holding `trivy.db` and `metadata.json`; the config blob is `{}` of type
//! `application/vnd.aquasec.trivy.config.v1+json`.
//!
//! Pushed with the registry HTTP API (curl) to a plain-HTTP registry on a loopback address:
//! Trivy talks plain HTTP to `localhost`/`127.0.0.1` registries by itself. On a machine with
//! internet, mirror the real DB instead:
//! `oras copy ghcr.io/aquasecurity/trivy-db:2 REGISTRY/trivy-db:2`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

pub const DB_LAYER_MEDIA_TYPE: &str = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip";
pub const DB_CONFIG_MEDIA_TYPE: &str = "application/vnd.aquasec.trivy.config.v1+json";
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Repository and tag of the mirrored DB (the public one is `ghcr.io/aquasecurity/trivy-db:2`).
pub const DB_REPOSITORY: &str = "trivy-db";
pub const DB_TAG: &str = "2";

/// Pushes the DB in `db_dir` (`trivy.db` + `metadata.json`, e.g. written by
/// `TrivyDb::write`) to `registry` (`host:port`, plain HTTP) as `trivy-db:2`. Returns the
/// reference to pass to `trivy --db-repository` / `cargo xtask scan --db-repository`.
pub fn publish_db(sh: &Shell, registry: &str, db_dir: &Path) -> Result<String> {
    for file in ["trivy.db", "metadata.json"] {
        if !db_dir.join(file).is_file() {
            bail!(
                "{} has no {file}: write a Trivy DB there first (TrivyDb::write) or copy one \
                 from a Trivy cache (CACHE_DIR/db)",
                db_dir.display()
            );
        }
    }
    let tmp = sh.create_temp_dir().context("cannot create a temporary directory")?;
    let work = tmp.path();
    (|| {
        let tarball = work.join("db.tar.gz");
        cmd!(sh, "tar -C {db_dir} -czf {tarball} trivy.db metadata.json")
            .quiet()
            .run()
            .with_context(|| format!("cannot pack {} into a tarball", db_dir.display()))?;
        let layer = std::fs::read(&tarball).context("cannot read the DB tarball")?;
        let config = b"{}".to_vec();
        let base = format!("http://{registry}/v2/{DB_REPOSITORY}");
        let layer_digest = push_blob(sh, &base, work, &layer)?;
        let config_digest = push_blob(sh, &base, work, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "artifactType": DB_CONFIG_MEDIA_TYPE,
            "config": {
                "mediaType": DB_CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": DB_LAYER_MEDIA_TYPE,
                "digest": layer_digest,
                "size": layer.len(),
                "annotations": { "org.opencontainers.image.title": "db.tar.gz" },
            }],
        });
        let manifest_file = work.join("manifest.json");
        std::fs::write(&manifest_file, manifest.to_string())
            .context("cannot write the manifest")?;
        let url = format!("{base}/manifests/{DB_TAG}");
        let content_type = format!("Content-Type: {OCI_MANIFEST_MEDIA_TYPE}");
        curl(sh, &["-X", "PUT", "-H", &content_type, "--data-binary"], &manifest_file, &url)
            .with_context(|| format!("cannot push the DB manifest to {registry}"))?;
        Ok(format!("{registry}/{DB_REPOSITORY}:{DB_TAG}"))
    })()
}

/// Uploads `bytes` as a blob (monolithic upload: POST, then PUT with the digest); skips the
/// upload when the registry already has it. Returns the digest.
fn push_blob(sh: &Shell, base: &str, work: &Path, bytes: &[u8]) -> Result<String> {
    let digest = format!("sha256:{:x}", Sha256::digest(bytes));
    let status_format = "%{http_code}";
    let exists = cmd!(sh, "curl -sS -o /dev/null -w {status_format} -I {base}/blobs/{digest}")
        .quiet()
        .read()
        .with_context(|| format!("cannot reach the registry at {base}: is it running?"))?;
    if exists.trim() == "200" {
        return Ok(digest);
    }
    let headers = cmd!(sh, "curl -sS -f -X POST -o /dev/null -D - {base}/blobs/uploads/")
        .quiet()
        .read()
        .with_context(|| format!("the registry refused a blob upload at {base}/blobs/uploads/"))?;
    let location = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim().eq_ignore_ascii_case("location").then(|| value.trim().to_string())
        })
        .context("the registry answered the upload request without a Location header")?;
    let location = if location.starts_with('/') {
        // A relative location: keep scheme and host of `base`.
        let host_end = base.find("/v2/").unwrap_or(base.len());
        format!("{}{location}", &base[..host_end])
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{separator}digest={digest}");
    let file = work.join(digest.replace(':', "-"));
    std::fs::write(&file, bytes).context("cannot stage a blob")?;
    curl(
        sh,
        &["-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary"],
        &file,
        &url,
    )
    .with_context(|| format!("cannot upload blob {digest}"))?;
    Ok(digest)
}

/// `curl -sS --fail-with-body ARGS @file URL`; the error carries the registry's answer.
fn curl(sh: &Shell, args: &[&str], file: &Path, url: &str) -> Result<()> {
    let data = format!("@{}", file.display());
    let out = cmd!(sh, "curl -sS --fail-with-body {args...} {data} {url}")
        .quiet()
        .ignore_status()
        .output()
        .context("cannot run curl: install it (apt-get install curl)")?;
    if !out.status.success() {
        bail!(
            "{} {}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}
