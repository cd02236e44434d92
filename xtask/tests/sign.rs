//! `cargo xtask sign`, and `deploy`/`rollback` refusing what is not signed, on the local stack
//! (moto's KMS and ECR, the local registry). Everything is read back independently of xtask's
//! code: the `.sig`/`.att` manifests with the AWS CLI, their blobs from the registry's HTTP API
//! (curl), the public key with `aws kms get-public-key`, and every signature checked with
//! `openssl dgst -sha256 -verify`.

mod support;
mod world;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use world::{World, sha, tag_of};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

fn att_tag(digest: &str) -> String {
    format!("sha256-{}.att", digest.trim_start_matches("sha256:"))
}

fn alias(world: &World) -> String {
    format!("alias/{}-splitter-signing-dev", world.project)
}

/// The manifest ECR holds under `tag` (AWS CLI `batch-get-image`), parsed, and its exact text.
fn ecr_manifest(world: &World, tag: &str) -> Option<(Value, String)> {
    let out = world.aws(&[
        "ecr",
        "batch-get-image",
        "--repository-name",
        &world.repository("dev"),
        "--image-ids",
        &format!("imageTag={tag}"),
        "--accepted-media-types",
        "application/vnd.oci.image.manifest.v1+json",
    ]);
    let text = out["images"][0]["imageManifest"].as_str()?.to_owned();
    Some((serde_json::from_str(&text).expect("manifest JSON"), text))
}

/// A blob of the dev repository from the local registry (curl: no xtask code).
fn registry_blob(world: &World, digest: &str) -> Vec<u8> {
    let url =
        format!("http://{}/v2/{}/blobs/{digest}", world.stack.registry(), world.repository("dev"));
    let out = Command::new("curl").args(["-fsS", &url]).output().expect("run curl");
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The KMS public key of the environment's alias as a PEM file (AWS CLI + openssl).
fn public_key_pem(world: &World, alias: &str) -> PathBuf {
    let key = world.aws(&["kms", "get-public-key", "--key-id", alias]);
    let der = STANDARD.decode(key["PublicKey"].as_str().expect("PublicKey")).expect("base64");
    assert_eq!(key["KeySpec"], "ECC_NIST_P256");
    let der_path = world.dir.join("pub.der");
    std::fs::write(&der_path, der).expect("write");
    let pem = world.dir.join("pub.pem");
    openssl(&["ec", "-pubin", "-inform", "DER", "-in", path(&der_path), "-out", path(&pem)]);
    pem
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether openssl verifies `signature` (DER) over `message` with the PEM public key.
fn openssl_verifies(world: &World, pem: &Path, message: &[u8], signature: &[u8]) -> bool {
    let (msg, sig) = (world.dir.join("message"), world.dir.join("signature.der"));
    std::fs::write(&msg, message).expect("write");
    std::fs::write(&sig, signature).expect("write");
    Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", path(pem), "-signature", path(&sig), path(&msg)])
        .output()
        .expect("run openssl")
        .status
        .success()
}

/// A CycloneDX SBOM over 4 KiB (its DSSE PAE is signed with `MessageType=DIGEST`).
fn sbom(world: &World) -> (PathBuf, Value) {
    let components: Vec<Value> = (0..80)
        .map(|i| {
            json!({"type": "library", "name": format!("lib{i}"), "version": format!("1.{i}.0"),
                   "purl": format!("pkg:deb/debian/lib{i}@1.{i}.0")})
        })
        .collect();
    let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
                      "components": components});
    let file = world.dir.join("sbom.cdx.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&sbom).expect("json")).expect("write");
    (file, sbom)
}

/// The latest dev revision's `splitter:signature` tag (AWS CLI).
fn signature_tag(world: &World) -> Option<String> {
    let latest = world.revisions("dev").last().cloned().expect("a revision");
    tag_of(&latest, "splitter:signature").map(str::to_owned)
}

/// The revisions of dev, to prove a refusal changed nothing.
fn revision_numbers(world: &World) -> Vec<i64> {
    world.revisions("dev").iter().filter_map(|d| d["revision"].as_i64()).collect()
}

#[test]
fn sign_writes_what_cosign_and_openssl_verify_and_deploy_then_accepts_it() {
    let world = World::new("signok");
    world.up("dev");
    let tag = sha('5');
    let digest = {
        let _heavy = support::docker_lock();
        world.push_unsigned(&tag, "dev")
    };
    let before = revision_numbers(&world);

    // Unsigned: refused, nothing registered.
    let line = world.run(&["deploy", "--env", "dev", "--tag", &tag]).assert_one_line_error();
    assert!(line.contains("no signature") && line.contains("cargo xtask sign"), "{line}");
    assert_eq!(revision_numbers(&world), before);

    // Sign, with an SBOM over 4 KiB.
    let (sbom_file, sbom) = sbom(&world);
    let run = world.run(&["sign", "--env", "dev", "--tag", &tag, "--sbom", path(&sbom_file)]);
    run.assert_success();
    let out = run.stdout();
    assert!(out.contains(&format!("{} stored", sig_tag(&digest))), "{out}");
    assert!(out.contains(&format!("{} stored", att_tag(&digest))), "{out}");

    // The signature, independently: the payload blob names the pushed digest, openssl verifies
    // the annotation's signature over it with KMS's public key.
    let pem = public_key_pem(&world, &alias(&world));
    let (manifest, _) = ecr_manifest(&world, &sig_tag(&digest)).expect("a .sig in ECR");
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    let payload = registry_blob(&world, layer["digest"].as_str().expect("digest"));
    assert_eq!(format!("sha256:{}", hex(&Sha256::digest(&payload))), layer["digest"]);
    let claims: Value = serde_json::from_slice(&payload).expect("payload JSON");
    assert_eq!(claims["critical"]["image"]["docker-manifest-digest"], digest.as_str());
    assert_eq!(claims["critical"]["type"], "cosign container image signature");
    assert_eq!(
        claims["critical"]["identity"]["docker-reference"],
        format!("{}/{}", world.stack.registry(), world.repository("dev"))
    );
    let signature = STANDARD
        .decode(layer["annotations"]["dev.cosignproject.cosign/signature"].as_str().expect("sig"))
        .expect("base64");
    assert!(openssl_verifies(&world, &pem, &payload, &signature), "openssl rejects the signature");
    assert!(!openssl_verifies(&world, &pem, b"another payload", &signature), "the check bites");

    // The attestation: a DSSE envelope whose statement is about this image and whose predicate
    // is the SBOM, its signature over DSSE's PAE verified by openssl.
    let (att, _) = ecr_manifest(&world, &att_tag(&digest)).expect("an .att in ECR");
    let layer = &att["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    assert_eq!(layer["annotations"]["predicateType"], "https://cyclonedx.org/bom");
    let envelope: Value =
        serde_json::from_slice(&registry_blob(&world, layer["digest"].as_str().expect("digest")))
            .expect("envelope JSON");
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let body = STANDARD.decode(envelope["payload"].as_str().expect("payload")).expect("base64");
    let statement: Value = serde_json::from_slice(&body).expect("statement");
    assert_eq!(statement["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(statement["predicate"], sbom, "the attestation decodes to the SBOM");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"));
    let kind = "application/vnd.in-toto+json";
    let mut pae = format!("DSSEv1 {} {kind} {} ", kind.len(), body.len()).into_bytes();
    pae.extend_from_slice(&body);
    assert!(pae.len() > 4096, "the PAE is signed by digest: {} bytes", pae.len());
    let sig =
        STANDARD.decode(envelope["signatures"][0]["sig"].as_str().expect("sig")).expect("b64");
    assert!(openssl_verifies(&world, &pem, &pae, &sig), "openssl rejects the attestation");

    // Idempotent: a second run signs and attests nothing new.
    let sig_digest = world.digest_of("dev", &sig_tag(&digest));
    let att_digest = world.digest_of("dev", &att_tag(&digest));
    let again = world.run(&["sign", "--env", "dev", "--tag", &tag, "--sbom", path(&sbom_file)]);
    again.assert_success();
    let out = again.stdout();
    assert!(
        out.contains("not signed again") && out.contains("already attests this image"),
        "{out}"
    );
    assert_eq!(world.digest_of("dev", &sig_tag(&digest)), sig_digest);
    assert_eq!(world.digest_of("dev", &att_tag(&digest)), att_digest);

    // Signed: deployed, and the revision says it was verified.
    let deploy = world.run(&["deploy", "--env", "dev", "--tag", &tag]);
    deploy.assert_success();
    assert_eq!(signature_tag(&world), Some("verified".to_owned()));
}

#[test]
fn deploy_refuses_another_key_another_digest_and_a_tampered_payload() {
    let world = World::new("signbad");
    world.up("dev");
    let (a, b) = (sha('6'), sha('7'));
    let (da, db) = {
        let _heavy = support::docker_lock();
        (world.push_unsigned(&a, "dev"), world.push(&b, "dev"))
    };
    let before = revision_numbers(&world);
    let refused = |what: &str, expect: &str| {
        let line = world.run(&["deploy", "--env", "dev", "--tag", &a]).assert_one_line_error();
        assert!(line.contains(expect), "{what}: {line}");
        assert_eq!(revision_numbers(&world), before, "{what}: nothing registered");
    };
    let put = |tag: &str, manifest: &str| {
        world.aws(&[
            "ecr",
            "put-image",
            "--repository-name",
            &world.repository("dev"),
            "--image-tag",
            tag,
            "--image-manifest",
            manifest,
            "--image-manifest-media-type",
            "application/vnd.oci.image.manifest.v1+json",
        ]);
    };

    // 1. Signed by another key: the alias points at another key while `sign` runs.
    let other = world.aws(&[
        "kms",
        "create-key",
        "--key-spec",
        "ECC_NIST_P256",
        "--key-usage",
        "SIGN_VERIFY",
    ]);
    let other_id = other["KeyMetadata"]["KeyId"].as_str().expect("key id").to_owned();
    let ours = world.aws(&["kms", "describe-key", "--key-id", &alias(&world)]);
    let ours_id = ours["KeyMetadata"]["KeyId"].as_str().expect("key id").to_owned();
    world.aws_run(&[
        "kms",
        "update-alias",
        "--alias-name",
        &alias(&world),
        "--target-key-id",
        &other_id,
    ]);
    world.run(&["sign", "--env", "dev", "--tag", &a, "--no-attestation"]).assert_success();
    world.aws_run(&[
        "kms",
        "update-alias",
        "--alias-name",
        &alias(&world),
        "--target-key-id",
        &ours_id,
    ]);
    refused("another key", "another key");

    // 2. A signature over another digest: B's valid .sig put under A's .sig tag.
    let (_, b_sig) = ecr_manifest(&world, &sig_tag(&db)).expect("B is signed");
    put(&sig_tag(&da), &b_sig);
    refused("another digest", "another image");

    // 3. A tampered payload: A's own signature, the layer now naming a changed payload.
    world.run(&["sign", "--env", "dev", "--tag", &a, "--no-attestation"]).assert_success();
    let (mut manifest, text) = ecr_manifest(&world, &sig_tag(&da)).expect("A is signed");
    world.run(&["deploy", "--env", "dev", "--tag", &a, "--dry-run"]).assert_success();
    let payload = registry_blob(&world, manifest["layers"][0]["digest"].as_str().expect("d"));
    let tampered = String::from_utf8(payload)
        .expect("utf-8")
        .replace("\"optional\":null", "\"optional\":{\"by\":\"mallory\"}");
    manifest["layers"][0]["digest"] =
        json!(format!("sha256:{}", hex(&Sha256::digest(tampered.as_bytes()))));
    manifest["layers"][0]["size"] = json!(tampered.len());
    put(&sig_tag(&da), &manifest.to_string());
    refused("tampered payload", "another image");

    // --allow-unsigned overrides, with a warning, and says so on the revision.
    let run = world.run(&["deploy", "--env", "dev", "--tag", &a, "--allow-unsigned"]);
    run.assert_success();
    assert!(run.stderr().contains("warning: --allow-unsigned"), "{}", run.stderr());
    assert_eq!(
        signature_tag(&world),
        Some("unverified: deployed with --allow-unsigned".to_owned())
    );

    // Re-signing repairs it: the valid manifest is back, the deploy verifies.
    put(&sig_tag(&da), &text);
    world.run(&["deploy", "--env", "dev", "--tag", &a, "--force"]).assert_success();
    assert_eq!(signature_tag(&world), Some("verified".to_owned()));
}

#[test]
fn rollback_refuses_an_unsigned_target() {
    let world = World::new("signrb");
    world.up("dev");
    let (a, b) = (sha('8'), sha('9'));
    {
        let _heavy = support::docker_lock();
        world.push(&a, "dev");
        world.push_unsigned(&b, "dev");
    }
    world.run(&["deploy", "--env", "dev", "--tag", &a]).assert_success();
    world.run(&["deploy", "--env", "dev", "--tag", &b, "--allow-unsigned"]).assert_success();
    let before = revision_numbers(&world);
    let line = world.run(&["rollback", "--env", "dev", "--to-tag", &b]).assert_one_line_error();
    assert!(line.contains("no signature") && line.contains("--allow-unsigned"), "{line}");
    assert_eq!(revision_numbers(&world), before, "nothing registered");
    // Back to A (signed): verified.
    world.run(&["rollback", "--env", "dev"]).assert_success();
    assert_eq!(signature_tag(&world), Some("verified".to_owned()));
}
