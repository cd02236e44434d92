//! cosign's signature and attestation objects, built and checked without I/O.
//!
//! The objects are those of cosign's tag-based storage (what cosign v2 writes by default; cosign
//! v3 writes it with `--new-bundle-format=false --use-signing-config=false`), for a key-pair
//! signature made without a transparency log entry (so `cosign verify` needs
//! `--insecure-ignore-tlog=true`).
//!
//! ## The signature: tag `sha256-<hex>.sig` ([`signature_artifact`])
//!
//! An OCI image manifest in the image's repository, with one layer:
//!
//! - the layer is the "simple signing" payload ([`simple_signing_payload`]): JSON naming the
//!   repository and the manifest digest, media type [`SIMPLE_SIGNING_MEDIA_TYPE`];
//! - its descriptor's annotation [`SIGNATURE_ANNOTATION`] is the base64 of the DER ECDSA signature
//!   over the payload's bytes (what KMS `Sign` returns for `ECDSA_SHA_256` with
//!   `MessageType=RAW` and the payload as message, or `DIGEST` and its SHA-256);
//! - the config blob is go-containerregistry's empty image config with the layer appended
//!   ([`OCI_CONFIG_MEDIA_TYPE`]; `diff_ids` = the layer digest; zero `created` times, as cosign
//!   v2 writes it without `--record-creation-timestamp`).
//!
//! ## The SBOM attestation: tag `sha256-<hex>.att` ([`attestation_artifact`])
//!
//! The same manifest shape; the layer is a DSSE envelope ([`envelope`], media type
//! [`DSSE_MEDIA_TYPE`]) around an in-toto statement ([`statement`]) whose predicate is the
//! CycloneDX SBOM. The signature is inside the envelope, over DSSE's pre-authentication encoding
//! ([`pae`]); the layer's annotations are an empty [`SIGNATURE_ANNOTATION`] and
//! [`PREDICATE_TYPE_ANNOTATION`].
//!
//! ## Bytes
//!
//! JSON is written as Go's `encoding/json` writes it (cosign's `json.Marshal`): struct fields in
//! declaration order, map keys sorted, no whitespace, `<`, `>`, `&`, U+2028 and U+2029 escaped.
//! The tests reproduce, byte for byte, a payload, config blob and manifest that cosign 1.13 pushed
//! (their digests and sizes as a registry served them). Output is deterministic: the same input
//! gives the same bytes and digests.
//!
//! ## Checking
//!
//! [`check_sig_manifest`] needs the `.sig` manifest only, no blob: it rebuilds the payload the
//! signature must be over from the expected repository and digest, and requires a layer with that
//! payload's digest and size. A payload for another image, or a modified one, has another digest.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ecr::sha256_digest;

/// `critical.type` of cosign's simple signing payload.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";
/// Media type of the `.sig` layer (the simple signing payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of the `.att` layer (a DSSE envelope).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Media type of the `.sig` and `.att` manifests.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of their config blob.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Layer annotation holding the base64 signature (empty on an attestation layer).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation naming an attestation's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// DSSE `payloadType` of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of the statements cosign `attest` writes.
pub const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// `_type` of in-toto v1 statements (accepted when reading).
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of a CycloneDX SBOM (`cosign attest --type cyclonedx`).
pub const CYCLONEDX_PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

/// Go's zero `time.Time`, as go-containerregistry writes an unset `created`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// cosign's simple signing payload for `docker_reference` (the repository, `HOST/NAME`, without
/// tag or digest) at `manifest_digest` (`sha256:<hex>`): the bytes the `.sig` signature is over.
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Payload<'a> {
        critical: Critical<'a>,
        optional: Option<()>,
    }
    #[derive(Serialize)]
    struct Critical<'a> {
        identity: Identity<'a>,
        image: Image<'a>,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    #[derive(Serialize)]
    struct Identity<'a> {
        #[serde(rename = "docker-reference")]
        docker_reference: &'a str,
    }
    #[derive(Serialize)]
    struct Image<'a> {
        #[serde(rename = "docker-manifest-digest")]
        docker_manifest_digest: &'a str,
    }
    go_json(&Payload {
        critical: Critical {
            identity: Identity { docker_reference },
            image: Image { docker_manifest_digest: manifest_digest },
            kind: COSIGN_SIGNATURE_TYPE,
        },
        optional: None,
    })
}

/// The tag of the signature of the image at `manifest_digest`: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> Result<String> {
    Ok(format!("sha256-{}.sig", digest_hex(manifest_digest)?))
}

/// The tag of the attestations of the image at `manifest_digest`: `sha256-<hex>.att`.
pub fn attestation_tag(manifest_digest: &str) -> Result<String> {
    Ok(format!("sha256-{}.att", digest_hex(manifest_digest)?))
}

/// A `.sig` or `.att` artifact ready to push: upload the blobs, then put the manifest under `tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `sha256-<hex>.sig` or `sha256-<hex>.att`.
    pub tag: String,
    /// The manifest's exact bytes.
    pub manifest: Vec<u8>,
    /// [`OCI_MANIFEST_MEDIA_TYPE`].
    pub media_type: &'static str,
    /// `sha256:` + hex of [`Artifact::manifest`].
    pub digest: String,
    /// The blobs the manifest names (config and layer), by digest.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// The `.sig` artifact of `docker_reference` at `manifest_digest`, with `der_signature` (DER
/// ECDSA, as KMS `Sign` returns it) over [`simple_signing_payload`] of the same two.
pub fn signature_artifact(
    docker_reference: &str,
    manifest_digest: &str,
    der_signature: &[u8],
) -> Result<Artifact> {
    check_reference(docker_reference)?;
    let tag = signature_tag(manifest_digest)?;
    Signature::from_der(der_signature)
        .map_err(|e| anyhow!("the signature is not a DER ECDSA P-256 signature: {e}"))?;
    let payload = simple_signing_payload(docker_reference, manifest_digest);
    let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION, STANDARD.encode(der_signature))]);
    Ok(artifact(tag, SIMPLE_SIGNING_MEDIA_TYPE, payload, annotations))
}

/// DSSE's pre-authentication encoding, the bytes a DSSE signature is over:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body` (lengths in ASCII decimal).
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The in-toto statement cosign `attest --type cyclonedx` makes: the CycloneDX `sbom` about
/// `docker_reference` at `manifest_digest`. To sign: [`pae`] of [`IN_TOTO_PAYLOAD_TYPE`] and it.
pub fn statement(docker_reference: &str, manifest_digest: &str, sbom: &Value) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Statement<'a> {
        #[serde(rename = "_type")]
        kind: &'a str,
        #[serde(rename = "predicateType")]
        predicate_type: &'a str,
        subject: [Subject<'a>; 1],
        predicate: &'a Value,
    }
    #[derive(Serialize)]
    struct Subject<'a> {
        name: &'a str,
        digest: DigestSet<'a>,
    }
    #[derive(Serialize)]
    struct DigestSet<'a> {
        sha256: &'a str,
    }
    check_reference(docker_reference)?;
    let sha256 = digest_hex(manifest_digest)?;
    Ok(go_json(&Statement {
        kind: IN_TOTO_STATEMENT_V01,
        predicate_type: CYCLONEDX_PREDICATE_TYPE,
        subject: [Subject { name: docker_reference, digest: DigestSet { sha256 } }],
        predicate: sbom,
    }))
}

/// A DSSE envelope as cosign writes it (`keyid` empty): the `statement` with `der_signature` over
/// its [`pae`].
pub fn envelope(statement: &[u8], der_signature: &[u8]) -> Vec<u8> {
    go_json(&Envelope {
        payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
        payload: STANDARD.encode(statement),
        signatures: vec![EnvelopeSignature {
            keyid: String::new(),
            sig: STANDARD.encode(der_signature),
        }],
    })
}

/// The `.att` artifact of the image at `manifest_digest` holding one SBOM attestation
/// (`envelope`, from [`envelope`]).
pub fn attestation_artifact(manifest_digest: &str, envelope: &[u8]) -> Result<Artifact> {
    let tag = attestation_tag(manifest_digest)?;
    let annotations = BTreeMap::from([
        (SIGNATURE_ANNOTATION, String::new()),
        (PREDICATE_TYPE_ANNOTATION, CYCLONEDX_PREDICATE_TYPE.to_owned()),
    ]);
    Ok(artifact(tag, DSSE_MEDIA_TYPE, envelope.to_vec(), annotations))
}

/// The statement in a DSSE envelope and its CycloneDX SBOM (the predicate). Decodes only: see
/// [`verify_envelope`] and [`check_attestation`].
pub fn statement_from_envelope(envelope: &[u8]) -> Result<(Value, Value)> {
    let (envelope, payload) = decode_envelope(envelope)?;
    let statement: Value =
        serde_json::from_slice(&payload).context("the envelope's payload is not JSON")?;
    let kind = statement["_type"].as_str().unwrap_or_default();
    if kind != IN_TOTO_STATEMENT_V01 && kind != IN_TOTO_STATEMENT_V1 {
        bail!("the envelope's payload is not an in-toto statement (_type {kind:?})");
    }
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        bail!(
            "the envelope's payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        );
    }
    let predicate_type = statement["predicateType"].as_str().unwrap_or_default();
    if predicate_type != CYCLONEDX_PREDICATE_TYPE {
        bail!("the statement is not a CycloneDX SBOM (predicateType {predicate_type:?})");
    }
    let sbom = match statement.get("predicate") {
        Some(sbom @ Value::Object(_)) => sbom.clone(),
        _ => bail!("the statement's predicate is not a JSON object"),
    };
    Ok((statement, sbom))
}

/// Whether a signature of the DSSE `envelope` verifies with the public key `spki_der` (over the
/// [`pae`] of its payload type and payload).
pub fn verify_envelope(envelope: &[u8], spki_der: &[u8]) -> Result<()> {
    let key = verifying_key(spki_der)?;
    let (envelope, payload) = decode_envelope(envelope)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut last = anyhow!("the envelope has no signature");
    for signature in &envelope.signatures {
        let verified = decode_base64(&signature.sig)
            .context("a signature of the envelope is not base64")
            .and_then(|der| verify_with(&key, &message, &der));
        match verified {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The SBOM of an attestation, once its envelope's signature verifies with `spki_der` and its
/// statement is about `expected_reference` at `expected_digest`.
pub fn check_attestation(
    envelope: &[u8],
    expected_reference: &str,
    expected_digest: &str,
    spki_der: &[u8],
) -> Result<Value> {
    let hex = digest_hex(expected_digest)?;
    verify_envelope(envelope, spki_der).context("the attestation's signature does not verify")?;
    let (statement, sbom) = statement_from_envelope(envelope)?;
    let subjects = statement["subject"].as_array().map(Vec::as_slice).unwrap_or_default();
    let about = |s: &Value| s["name"] == expected_reference && s["digest"]["sha256"] == hex;
    if !subjects.iter().any(about) {
        bail!(
            "the attestation is about another image (subject {}), not {expected_reference}@{expected_digest}",
            statement["subject"]
        );
    }
    Ok(sbom)
}

/// Verifies an ECDSA P-256 / SHA-256 signature: `spki_der` is a DER SubjectPublicKeyInfo (KMS
/// `GetPublicKey`), `der_signature` a DER signature (KMS `Sign`, `ECDSA_SHA_256`) over `message`.
pub fn verify_signature(spki_der: &[u8], message: &[u8], der_signature: &[u8]) -> Result<()> {
    verify_with(&verifying_key(spki_der)?, message, der_signature)
}

/// Why a `.sig` manifest is refused ([`check_sig_manifest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The manifest is not an image manifest (the reason).
    Malformed(String),
    /// The manifest has no layer.
    NoLayer,
    /// No layer is a simple signing payload (the media types found).
    WrongMediaType(Vec<String>),
    /// No payload layer is for the expected image: it names another image or was modified.
    PayloadForAnotherImage,
    /// The payload layer has no signature annotation.
    SignatureMissing,
    /// The signature does not verify (the reason).
    SignatureInvalid(String),
    /// The check itself cannot run: the expected digest or the public key is unusable.
    BadInput(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(reason) => {
                write!(f, "the signature manifest is not an image manifest: {reason}")
            }
            Refusal::NoLayer => write!(f, "the signature manifest has no layer: no signature"),
            Refusal::WrongMediaType(found) => write!(
                f,
                "the signature manifest has no {SIMPLE_SIGNING_MEDIA_TYPE} layer (found {}): \
                 not a cosign signature",
                found.join(", ")
            ),
            Refusal::PayloadForAnotherImage => write!(
                f,
                "the signature's payload is for another image, or was modified (no layer has the \
                 digest and size of the expected image's payload)"
            ),
            Refusal::SignatureMissing => write!(
                f,
                "the signature's payload layer has no {SIGNATURE_ANNOTATION} annotation: unsigned"
            ),
            Refusal::SignatureInvalid(reason) => write!(
                f,
                "the signature does not verify with the public key (made with another key, or \
                 tampered): {reason}"
            ),
            Refusal::BadInput(reason) => write!(f, "cannot check the signature: {reason}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Checks a `.sig` manifest: one of its layers is the simple signing payload of
/// `expected_reference` at `expected_digest` (by digest and size: no blob download) with a
/// signature over it that verifies with `spki_der`. Other layers (signatures cosign appended for
/// other keys) are ignored.
pub fn check_sig_manifest(
    manifest: &[u8],
    expected_reference: &str,
    expected_digest: &str,
    spki_der: &[u8],
) -> Result<(), Refusal> {
    #[derive(Deserialize)]
    struct Manifest {
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    #[derive(Deserialize)]
    struct Descriptor {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        digest: String,
        size: u64,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }

    check_reference(expected_reference)
        .and_then(|()| digest_hex(expected_digest))
        .map_err(|e| Refusal::BadInput(format!("{e:#}")))?;
    let key = verifying_key(spki_der).map_err(|e| Refusal::BadInput(format!("{e:#}")))?;
    let manifest: Manifest =
        serde_json::from_slice(manifest).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if manifest.layers.is_empty() {
        return Err(Refusal::NoLayer);
    }
    let payloads: Vec<&Descriptor> =
        manifest.layers.iter().filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE).collect();
    if payloads.is_empty() {
        let mut found: Vec<String> = manifest.layers.iter().map(|l| l.media_type.clone()).collect();
        found.sort_unstable();
        found.dedup();
        return Err(Refusal::WrongMediaType(found));
    }
    let payload = simple_signing_payload(expected_reference, expected_digest);
    let (digest, size) = (sha256_digest(&payload), payload.len() as u64);
    let ours: Vec<&Descriptor> =
        payloads.into_iter().filter(|l| l.digest == digest && l.size == size).collect();
    if ours.is_empty() {
        return Err(Refusal::PayloadForAnotherImage);
    }
    let mut invalid = None;
    for layer in ours {
        let Some(b64) = layer.annotations.get(SIGNATURE_ANNOTATION).filter(|s| !s.is_empty())
        else {
            continue;
        };
        let verified = STANDARD
            .decode(b64)
            .context("the annotation is not base64")
            .and_then(|der| verify_with(&key, &payload, &der));
        match verified {
            Ok(()) => return Ok(()),
            Err(e) => invalid = Some(format!("{e:#}")),
        }
    }
    Err(invalid.map_or(Refusal::SignatureMissing, Refusal::SignatureInvalid))
}

/// The hex of a `sha256:<64 lowercase hex>` digest.
fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => bail!("{digest:?} is not an image digest (sha256: and 64 lowercase hex digits)"),
    }
}

/// A repository as cosign names it in payloads (`HOST/NAME`): no tag, no digest.
fn check_reference(reference: &str) -> Result<()> {
    let name = reference.rsplit('/').next().unwrap_or_default();
    if reference.is_empty()
        || reference.contains('@')
        || name.contains(':')
        || reference.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("{reference:?} is not a repository (HOST/NAME, without tag or digest)");
    }
    Ok(())
}

fn verifying_key(spki_der: &[u8]) -> Result<VerifyingKey> {
    VerifyingKey::from_public_key_der(spki_der).map_err(|e| {
        anyhow!("the public key is not a DER SubjectPublicKeyInfo of a P-256 EC key: {e}")
    })
}

fn verify_with(key: &VerifyingKey, message: &[u8], der_signature: &[u8]) -> Result<()> {
    let signature = Signature::from_der(der_signature)
        .map_err(|e| anyhow!("the signature is not a DER ECDSA P-256 signature: {e}"))?;
    key.verify(message, &signature)
        .map_err(|_| anyhow!("the ECDSA P-256 SHA-256 signature does not verify"))
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Serialize, Deserialize)]
struct EnvelopeSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

fn decode_envelope(envelope: &[u8]) -> Result<(Envelope, Vec<u8>)> {
    let envelope: Envelope =
        serde_json::from_slice(envelope).context("not a DSSE envelope (JSON)")?;
    let payload =
        decode_base64(&envelope.payload).context("the envelope's payload is not base64")?;
    Ok((envelope, payload))
}

/// DSSE allows standard and URL-safe base64.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    STANDARD.decode(text).or_else(|_| URL_SAFE.decode(text)).map_err(Into::into)
}

/// One config blob and one layer under an OCI manifest, as cosign appends a layer to
/// go-containerregistry's empty image.
fn artifact(
    tag: String,
    layer_media_type: &str,
    layer: Vec<u8>,
    annotations: BTreeMap<&str, String>,
) -> Artifact {
    let layer_digest = sha256_digest(&layer);
    let config = config_blob(&layer_digest, ZERO_TIME);
    let manifest = manifest_bytes(&config, layer_media_type, &layer, annotations);
    let digest = sha256_digest(&manifest);
    let blobs = BTreeMap::from([(sha256_digest(&config), config), (layer_digest, layer)]);
    Artifact { tag, manifest, media_type: OCI_MANIFEST_MEDIA_TYPE, digest, blobs }
}

/// go-containerregistry's `ConfigFile` of an empty image with one layer appended.
fn config_blob(layer_digest: &str, created: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct ConfigFile<'a> {
        architecture: &'a str,
        created: &'a str,
        history: [History<'a>; 1],
        os: &'a str,
        rootfs: RootFs<'a>,
        config: Empty,
    }
    #[derive(Serialize)]
    struct History<'a> {
        created: &'a str,
    }
    #[derive(Serialize)]
    struct RootFs<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        diff_ids: [&'a str; 1],
    }
    #[derive(Serialize)]
    struct Empty {}
    go_json(&ConfigFile {
        architecture: "",
        created,
        history: [History { created: ZERO_TIME }],
        os: "",
        rootfs: RootFs { kind: "layers", diff_ids: [layer_digest] },
        config: Empty {},
    })
}

fn manifest_bytes(
    config: &[u8],
    layer_media_type: &str,
    layer: &[u8],
    annotations: BTreeMap<&str, String>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Manifest<'a> {
        #[serde(rename = "schemaVersion")]
        schema_version: u32,
        #[serde(rename = "mediaType")]
        media_type: &'a str,
        config: Descriptor<'a>,
        layers: [Descriptor<'a>; 1],
    }
    #[derive(Serialize)]
    struct Descriptor<'a> {
        #[serde(rename = "mediaType")]
        media_type: &'a str,
        size: usize,
        digest: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        annotations: BTreeMap<&'a str, String>,
    }
    go_json(&Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST_MEDIA_TYPE,
        config: Descriptor {
            media_type: OCI_CONFIG_MEDIA_TYPE,
            size: config.len(),
            digest: sha256_digest(config),
            annotations: BTreeMap::new(),
        },
        layers: [Descriptor {
            media_type: layer_media_type,
            size: layer.len(),
            digest: sha256_digest(layer),
            annotations,
        }],
    })
}

/// JSON as Go's `json.Marshal` writes it. serde already matches it on field order (declaration
/// order), map keys (sorted: `serde_json` without `preserve_order`) and whitespace (none); Go also
/// escapes `<`, `>`, `&`, U+2028 and U+2029, which only occur inside strings.
fn go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let json =
        serde_json::to_vec(value).expect("serializing to memory with string keys cannot fail");
    let mut out = Vec::with_capacity(json.len());
    let mut rest = json.as_slice();
    while let Some((&byte, tail)) = rest.split_first() {
        match (byte, tail) {
            (b'<', _) => out.extend_from_slice(br"\u003c"),
            (b'>', _) => out.extend_from_slice(br"\u003e"),
            (b'&', _) => out.extend_from_slice(br"\u0026"),
            (0xE2, [0x80, 0xA8, ..]) => out.extend_from_slice(br"\u2028"),
            (0xE2, [0x80, 0xA9, ..]) => out.extend_from_slice(br"\u2029"),
            _ => {
                out.push(byte);
                rest = tail;
                continue;
            }
        }
        rest = if byte == 0xE2 { &tail[2..] } else { tail };
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use serde_json::json;
    use xshell::{Shell, TempDir, cmd};

    use super::*;

    /// sigstore/sigstore's `payload_test.go` ("no claims").
    const SIGSTORE_PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"example.com/test/image"},"image":{"docker-manifest-digest":"sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f"},"type":"cosign container image signature"},"optional":null}"#;

    // What cosign 1.13.1 pushed for `cosign sign --key cosign.key chihjenhuang/cosign1@sha256:4c1c…`
    // (from an HTTP trace of the push: the manifest's bytes, the digests and sizes served).
    const TRACE_REFERENCE: &str = "index.docker.io/chihjenhuang/cosign1";
    const TRACE_DIGEST: &str =
        "sha256:4c1c50d0ffc614f90b93b07d778028dc765548e823f676fb027f61d281ac380d";
    const TRACE_PAYLOAD_DIGEST: &str =
        "sha256:b671489ededd1a180bd87235bba00fd83354f9c7d13b71d9f8b66a8e52965ebc";
    const TRACE_CREATED: &str = "2023-02-17T09:25:33.91047962-08:00";
    const TRACE_CONFIG_DIGEST: &str =
        "sha256:85ad8e17d3d7c00664855c638832bd99f32d42542c2d587851410a45a7f60b95";
    const TRACE_MANIFEST_DIGEST: &str =
        "sha256:7ebe8964225fa4619b53aa35416ef0246c037e36ddf81776b21b15e1dda2262b";
    const TRACE_SIGNATURE: &str = "MEYCIQCPH7NJAIfrB6BZN91dV0o7l/i11muXrvrAh100jDMMhAIhAPsLH0oXb2OPITXRpWBMUd3vHtz5Ks5pql2Hr6t/IJXw";

    const REFERENCE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/splitter";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OTHER_DIGEST: &str =
        "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    /// The DER SubjectPublicKeyInfo prefix of a P-256 key (id-ecPublicKey, prime256v1, 65 bytes).
    const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
    /// The DSSE spec's test vector key (protocol.md, "Test Vectors"): d, and x‖y.
    const DSSE_D: &str = "d73ec437fd6346e3619c5ebfdfff0f6916804955ad32ac9ac492b0ede1f6ffb7";
    const DSSE_XY: &str = "67cd390f77aa359cb08c2235f652270493a9ed832b0abcc01f70954c0390d2380c782bd54e269125a44f4433aff1432ce94e12bca73aa67ac80cea12608ddf74";
    /// Its signature over the PAE of `hello world` (raw r‖s, deterministic RFC 6979).
    const DSSE_SIG: &str =
        "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==";

    fn hex(text: &str) -> Vec<u8> {
        let byte = |i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex");
        (0..text.len()).step_by(2).map(byte).collect()
    }

    /// The DER SubjectPublicKeyInfo of a P-256 key.
    fn spki_of(key: &VerifyingKey) -> Vec<u8> {
        let mut der = hex(P256_SPKI_PREFIX);
        der.extend_from_slice(key.to_encoded_point(false).as_bytes());
        der
    }

    fn signing_key(byte: u8) -> SigningKey {
        SigningKey::from_slice(&[byte; 32]).expect("a valid scalar")
    }

    fn p256_sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
        let signature: Signature = key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("UTF-8")
    }

    fn to_json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    #[test]
    fn the_payload_is_cosigns() {
        let payload = simple_signing_payload(
            "example.com/test/image",
            "sha256:d34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33fd34db33f",
        );
        assert_eq!(text(&payload), SIGSTORE_PAYLOAD);
        let payload = simple_signing_payload(TRACE_REFERENCE, TRACE_DIGEST);
        assert_eq!((sha256_digest(&payload).as_str(), payload.len()), (TRACE_PAYLOAD_DIGEST, 252));
    }

    #[test]
    fn config_and_manifest_are_byte_for_byte_cosigns() -> Result<()> {
        let config = config_blob(TRACE_PAYLOAD_DIGEST, TRACE_CREATED);
        assert_eq!((sha256_digest(&config).as_str(), config.len()), (TRACE_CONFIG_DIGEST, 247));
        let payload = simple_signing_payload(TRACE_REFERENCE, TRACE_DIGEST);
        let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION, TRACE_SIGNATURE.to_owned())]);
        let manifest = manifest_bytes(&config, SIMPLE_SIGNING_MEDIA_TYPE, &payload, annotations);
        let manifest_digest = sha256_digest(&manifest);
        assert_eq!((manifest_digest.as_str(), manifest.len()), (TRACE_MANIFEST_DIGEST, 558));

        // The artifact: the same, with cosign v2's zero creation time.
        let der = STANDARD.decode(TRACE_SIGNATURE)?;
        let artifact = signature_artifact(TRACE_REFERENCE, TRACE_DIGEST, &der)?;
        assert_eq!(artifact.tag, format!("sha256-{}.sig", &TRACE_DIGEST[7..]));
        assert_eq!(artifact.media_type, OCI_MANIFEST_MEDIA_TYPE);
        assert_eq!(artifact.digest, sha256_digest(&artifact.manifest));
        let config = config_blob(TRACE_PAYLOAD_DIGEST, ZERO_TIME);
        assert_eq!(
            text(&config),
            format!(
                r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{TRACE_PAYLOAD_DIGEST}"]}},"config":{{}}}}"#
            )
        );
        let config_digest = sha256_digest(&config);
        let expected_blobs =
            BTreeMap::from([(config_digest, config), (TRACE_PAYLOAD_DIGEST.into(), payload)]);
        assert_eq!(artifact.blobs, expected_blobs);
        let manifest = to_json(&artifact.manifest);
        assert_eq!(manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION], TRACE_SIGNATURE);
        assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG_MEDIA_TYPE);

        let again = signature_artifact(TRACE_REFERENCE, TRACE_DIGEST, &der)?;
        assert_eq!(again, artifact, "deterministic");
        Ok(())
    }

    #[test]
    fn tags_take_only_sha256_digests() -> Result<()> {
        assert_eq!(signature_tag(DIGEST)?, format!("sha256-{}.sig", &DIGEST[7..]));
        assert_eq!(attestation_tag(DIGEST)?, format!("sha256-{}.att", &DIGEST[7..]));
        for bad in [
            "",
            &DIGEST[7..],
            &DIGEST[..70],
            &format!("{DIGEST}0"),
            &DIGEST.to_uppercase().replace("SHA256", "sha256"),
            &DIGEST.replace("sha256", "sha512"),
            &DIGEST.replace('a', "g"),
        ] {
            assert!(signature_tag(bad).is_err(), "{bad:?}");
            assert!(attestation_tag(bad).is_err(), "{bad:?}");
        }
        let der = p256_sign(&signing_key(0x42), b"x");
        assert!(signature_artifact(REFERENCE, "sha256:00", &der).is_err());
        for bad in ["", "repo:tag", "host:5000/repo:tag", "repo@sha256:00", "re po"] {
            assert!(signature_artifact(bad, DIGEST, &der).is_err(), "{bad:?}");
        }
        signature_artifact("127.0.0.1:5000/splitter", DIGEST, &der)?;
        assert!(signature_artifact(REFERENCE, DIGEST, &der[..der.len() - 1]).is_err(), "not DER");
        Ok(())
    }

    #[test]
    fn pae_and_signature_match_the_dsse_spec() -> Result<()> {
        let pae = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(text(&pae), "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
        assert_eq!(super::pae("", b""), b"DSSEv1 0  0 ");

        // The spec's signature (raw r‖s) verifies over our PAE with its key...
        let raw = STANDARD.decode(DSSE_SIG)?;
        let der = Signature::from_slice(&raw).expect("r‖s").to_der().as_bytes().to_vec();
        let spki = [hex(P256_SPKI_PREFIX), vec![0x04], hex(DSSE_XY)].concat();
        verify_signature(&spki, &pae, &der)?;
        assert!(verify_signature(&spki, b"hello world", &der).is_err());
        // ...and RFC 6979 signing with its private key gives exactly that signature.
        let key = SigningKey::from_slice(&hex(DSSE_D)).expect("d");
        assert_eq!(spki_of(key.verifying_key()), spki);
        let signature: Signature = key.sign(&pae);
        assert_eq!(STANDARD.encode(signature.to_bytes()), DSSE_SIG);
        Ok(())
    }

    #[test]
    fn statement_envelope_and_att_round_trip() -> Result<()> {
        let sbom = json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "version": 1,
            "components": [{"name": "ffmpeg", "description": "a <b> & c\u{2028}"}],
        });
        let statement = statement(REFERENCE, DIGEST, &sbom)?;
        let head = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://cyclonedx.org/bom","subject":[{{"name":"{REFERENCE}","digest":{{"sha256":"{}"}}}}],"predicate":{{"bomFormat":"CycloneDX","components":"#,
            &DIGEST[7..]
        );
        assert!(text(&statement).starts_with(&head), "{}", text(&statement));
        assert!(text(&statement).contains(r#""a \u003cb\u003e \u0026 c\u2028""#), "Go's escapes");
        assert!(super::statement(REFERENCE, "sha256:0", &sbom).is_err());

        let key = signing_key(0x42);
        let der = p256_sign(&key, &pae(IN_TOTO_PAYLOAD_TYPE, &statement));
        let envelope = envelope(&statement, &der);
        assert_eq!(
            text(&envelope),
            format!(
                r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{}","signatures":[{{"keyid":"","sig":"{}"}}]}}"#,
                STANDARD.encode(&statement),
                STANDARD.encode(&der)
            )
        );
        let (decoded, predicate) = statement_from_envelope(&envelope)?;
        assert_eq!(decoded, to_json(&statement));
        assert_eq!(predicate, sbom);
        let spki = spki_of(key.verifying_key());
        verify_envelope(&envelope, &spki)?;
        assert_eq!(check_attestation(&envelope, REFERENCE, DIGEST, &spki)?, sbom);
        let err = check_attestation(&envelope, REFERENCE, OTHER_DIGEST, &spki)
            .expect_err("another image's");
        assert!(format!("{err:#}").contains("about another image"), "{err:#}");
        let other = spki_of(signing_key(7).verifying_key());
        assert!(check_attestation(&envelope, REFERENCE, DIGEST, &other).is_err());
        let without_pae = super::envelope(&statement, &p256_sign(&key, &statement));
        assert!(verify_envelope(&without_pae, &spki).is_err(), "signed without PAE");

        let artifact = attestation_artifact(DIGEST, &envelope)?;
        assert_eq!(artifact.tag, format!("sha256-{}.att", &DIGEST[7..]));
        let manifest = to_json(&artifact.manifest);
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], DSSE_MEDIA_TYPE);
        assert_eq!(layer["digest"], sha256_digest(&envelope));
        assert_eq!(layer["size"], envelope.len());
        assert_eq!(
            layer["annotations"],
            json!({SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: CYCLONEDX_PREDICATE_TYPE})
        );
        assert_eq!(artifact.blobs.get(&sha256_digest(&envelope)), Some(&envelope));
        assert_eq!(artifact.blobs.len(), 2);

        // Not an SBOM statement, not in-toto, not base64.
        let spdx = text(&statement).replace(CYCLONEDX_PREDICATE_TYPE, "https://spdx.dev/Document");
        assert!(statement_from_envelope(&super::envelope(spdx.as_bytes(), &der)).is_err());
        assert!(statement_from_envelope(&super::envelope(b"{}", &der)).is_err());
        let not_base64 =
            br#"{"payloadType":"application/vnd.in-toto+json","payload":"%","signatures":[]}"#;
        assert!(statement_from_envelope(not_base64).is_err());
        Ok(())
    }

    #[test]
    fn go_json_escapes_like_go() {
        // U+2027 shares U+2028's first two UTF-8 bytes and is left as is.
        let json = go_json(&json!({"b": "<&>", "a": "\u{2029}\u{2027}é"}));
        assert_eq!(text(&json), "{\"a\":\"\\u2029\u{2027}é\",\"b\":\"\\u003c\\u0026\\u003e\"}");
    }

    #[test]
    fn high_s_signatures_verify_too() -> Result<()> {
        // ECDSA signatures are malleable: (r, n-s) is valid too. KMS and OpenSSL do not normalize s.
        let key = signing_key(0x42);
        let payload = simple_signing_payload(REFERENCE, DIGEST);
        let signature: Signature = key.sign(&payload);
        let flipped = Signature::from_scalars(signature.r(), -signature.s()).expect("r, -s");
        let spki = spki_of(key.verifying_key());
        for s in [signature, flipped] {
            verify_signature(&spki, &payload, s.to_der().as_bytes())?;
        }
        Ok(())
    }

    /// The `openssl` CLI in a temporary directory.
    struct OpenSsl {
        sh: Shell,
        dir: TempDir,
    }

    impl OpenSsl {
        fn new() -> Result<OpenSsl> {
            let sh = Shell::new()?;
            let dir = sh.create_temp_dir()?;
            Ok(OpenSsl { sh, dir })
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// A new key of `curve` in `NAME.pem`; its public key's DER SubjectPublicKeyInfo.
        fn key(&self, name: &str, curve: &str) -> Result<Vec<u8>> {
            let (sh, key) = (&self.sh, self.path(&format!("{name}.pem")));
            cmd!(sh, "openssl ecparam -name {curve} -genkey -noout -out {key}").quiet().run()?;
            let public = self.path(&format!("{name}.pub.der"));
            cmd!(sh, "openssl ec -in {key} -pubout -outform DER -out {public}")
                .quiet()
                .ignore_stderr()
                .run()?;
            Ok(std::fs::read(public)?)
        }

        /// `openssl dgst -sha256 -sign`: a DER signature over `message` with key `name`.
        fn sign(&self, name: &str, message: &[u8]) -> Result<Vec<u8>> {
            let (sh, key) = (&self.sh, self.path(&format!("{name}.pem")));
            let (input, output) = (self.path("message"), self.path("signature.der"));
            std::fs::write(&input, message)?;
            cmd!(sh, "openssl dgst -sha256 -sign {key} -out {output} {input}").quiet().run()?;
            Ok(std::fs::read(output)?)
        }

        /// `openssl dgst -sha256 -verify`: whether `der_signature` over `message` verifies.
        fn verify(&self, public_pem: &Path, message: &[u8], der_signature: &[u8]) -> Result<bool> {
            let (input, signature) = (self.path("message"), self.path("signature.der"));
            std::fs::write(&input, message)?;
            std::fs::write(&signature, der_signature)?;
            let sh = &self.sh;
            Ok(cmd!(sh, "openssl dgst -sha256 -verify {public_pem} -signature {signature} {input}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()
                .is_ok())
        }
    }

    #[test]
    fn openssl_signatures_verify_and_planted_ones_are_refused() -> Result<()> {
        let openssl = OpenSsl::new()?;
        let spki = openssl.key("kms", "prime256v1")?;
        let other_key = openssl.key("other", "prime256v1")?;
        let payload = simple_signing_payload(REFERENCE, DIGEST);
        let der = openssl.sign("kms", &payload)?;
        verify_signature(&spki, &payload, &der)?;
        let good = signature_artifact(REFERENCE, DIGEST, &der)?;
        check_sig_manifest(&good.manifest, REFERENCE, DIGEST, &spki)?;

        let check = |manifest: &[u8]| check_sig_manifest(manifest, REFERENCE, DIGEST, &spki);
        let invalid = |r: Result<(), Refusal>| matches!(r, Err(Refusal::SignatureInvalid(_)));

        // Another key's signature.
        let by_other = signature_artifact(REFERENCE, DIGEST, &openssl.sign("other", &payload)?)?;
        assert!(invalid(check(&by_other.manifest)), "{:?}", check(&by_other.manifest));
        check_sig_manifest(&by_other.manifest, REFERENCE, DIGEST, &other_key)?;

        // A genuine signature of another image, under this image's payload...
        let other_payload = simple_signing_payload(REFERENCE, OTHER_DIGEST);
        let of_other = openssl.sign("kms", &other_payload)?;
        let swapped = signature_artifact(REFERENCE, DIGEST, &of_other)?;
        assert!(invalid(check(&swapped.manifest)), "{:?}", check(&swapped.manifest));
        // ...or with its own payload: the payload is for another image.
        let other_image = signature_artifact(REFERENCE, OTHER_DIGEST, &of_other)?;
        assert_eq!(check(&other_image.manifest), Err(Refusal::PayloadForAnotherImage));
        let other_repo = signature_artifact("x.example/splitter", DIGEST, &der)?;
        assert_eq!(check(&other_repo.manifest), Err(Refusal::PayloadForAnotherImage));

        // A tampered payload (signed as is) has another digest and size.
        let tampered = text(&payload).replace(r#""optional":null"#, r#""optional":{"x":1}"#);
        let tampered_der = openssl.sign("kms", tampered.as_bytes())?;
        let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION, STANDARD.encode(&tampered_der))]);
        let tag = good.tag.clone();
        let tampered = artifact(tag, SIMPLE_SIGNING_MEDIA_TYPE, tampered.into_bytes(), annotations);
        assert_eq!(check(&tampered.manifest), Err(Refusal::PayloadForAnotherImage));

        // A flipped signature byte: either no longer DER or no longer valid.
        let good_text = text(&good.manifest);
        for i in [4, der.len() / 2, der.len() - 1] {
            let mut bad = der.clone();
            bad[i] ^= 0x01;
            let manifest = good_text.replace(&STANDARD.encode(&der), &STANDARD.encode(&bad));
            let refusal = check(manifest.as_bytes());
            assert!(invalid(refusal.clone()), "byte {i}: {refusal:?}");
        }
        let not_base64 = good_text.replace(&STANDARD.encode(&der), "%%%");
        assert!(invalid(check(not_base64.as_bytes())));

        // No signature annotation; an empty one.
        let mut manifest = to_json(&good.manifest);
        manifest["layers"][0]["annotations"] = json!({});
        assert_eq!(check(manifest.to_string().as_bytes()), Err(Refusal::SignatureMissing));
        manifest["layers"][0]["annotations"] = json!({SIGNATURE_ANNOTATION: ""});
        assert_eq!(check(manifest.to_string().as_bytes()), Err(Refusal::SignatureMissing));

        // Wrong media type, no layer, not a manifest.
        let tar = "application/vnd.oci.image.layer.v1.tar+gzip";
        let mut manifest = to_json(&good.manifest);
        manifest["layers"][0]["mediaType"] = json!(tar);
        let refusal = check(manifest.to_string().as_bytes());
        assert_eq!(refusal, Err(Refusal::WrongMediaType(vec![tar.into()])));
        manifest["layers"] = json!([]);
        assert_eq!(check(manifest.to_string().as_bytes()), Err(Refusal::NoLayer));
        assert!(matches!(check(b"<html>"), Err(Refusal::Malformed(_))));

        // A layer appended by another key's signing does not hide ours.
        let mut manifest = to_json(&by_other.manifest);
        let ours = to_json(&good.manifest)["layers"][0].clone();
        manifest["layers"].as_array_mut().context("layers")?.push(ours);
        check(manifest.to_string().as_bytes())?;

        // Unusable inputs are not a refusal of the image.
        let p384 = openssl.key("p384", "secp384r1")?;
        let refusal = check_sig_manifest(&good.manifest, REFERENCE, DIGEST, &p384);
        assert!(matches!(refusal, Err(Refusal::BadInput(_))), "{refusal:?}");
        assert!(verify_signature(&p384, &payload, &der).is_err());
        let refusal = check_sig_manifest(&good.manifest, REFERENCE, "sha256:0", &spki);
        assert!(matches!(refusal, Err(Refusal::BadInput(_))), "{refusal:?}");
        let refusal = check_sig_manifest(&good.manifest, "repo:tag", DIGEST, &spki);
        assert!(matches!(refusal, Err(Refusal::BadInput(_))), "{refusal:?}");

        // The SBOM attestation, signed by openssl.
        let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []});
        let statement = statement(REFERENCE, DIGEST, &sbom)?;
        let signature = openssl.sign("kms", &pae(IN_TOTO_PAYLOAD_TYPE, &statement))?;
        let envelope = envelope(&statement, &signature);
        assert_eq!(check_attestation(&envelope, REFERENCE, DIGEST, &spki)?, sbom);
        assert!(check_attestation(&envelope, REFERENCE, DIGEST, &other_key).is_err());
        Ok(())
    }

    #[test]
    fn p256_signatures_verify_with_openssl() -> Result<()> {
        let openssl = OpenSsl::new()?;
        let key = signing_key(0x42);
        let body = STANDARD.encode(spki_of(key.verifying_key()));
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(text).collect();
        let pem = openssl.path("pub.pem");
        let pem_text = lines.join("\n");
        std::fs::write(
            &pem,
            format!("-----BEGIN PUBLIC KEY-----\n{pem_text}\n-----END PUBLIC KEY-----\n"),
        )?;

        let payload = simple_signing_payload(REFERENCE, DIGEST);
        let der = p256_sign(&key, &payload);
        assert!(openssl.verify(&pem, &payload, &der)?, "openssl rejects p256's signature");
        let other = simple_signing_payload(REFERENCE, OTHER_DIGEST);
        assert!(!openssl.verify(&pem, &other, &der)?, "openssl accepts anything");
        let statement = statement(REFERENCE, DIGEST, &json!({"bomFormat": "CycloneDX"}))?;
        let message = pae(IN_TOTO_PAYLOAD_TYPE, &statement);
        assert!(openssl.verify(&pem, &message, &p256_sign(&key, &message))?);
        Ok(())
    }
}
