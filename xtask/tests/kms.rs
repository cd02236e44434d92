//! The local stack's KMS signs like AWS KMS, checked with openssl on the message itself:
//!
//! - `Sign` with `MessageType=DIGEST` signs the given SHA-256 digest as it is (what `cargo xtask
//!   sign` does for payloads over 4096 bytes, the SBOM attestation's DSSE PAE), and `Verify`
//!   with DIGEST accepts that signature;
//! - a `RAW` message over 4096 bytes is refused (`ValidationException`), as AWS refuses it;
//! - planted: a stock moto server (no xtask fix, started here on its own port) signs the digest
//!   of the digest, which openssl rejects, and takes any RAW size. When a moto release signs
//!   digests itself, this test fails: then remove xtask's fix (`xtask/src/local/servers.rs`);
//! - `GetPublicKey` answers `KeySpec` and the key ARN (a stock moto: neither).
//!
//! The signing key is the one `cargo xtask local up` creates behind the environment's alias.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use sha2::{Digest, Sha256};
use support::{Aws, free_port, run};
use xtask::proc::{http_status, wait_until};

const ALIAS: &str = "alias/upscaler-splitter-signing-dev";

/// A message bigger than KMS's 4096-byte RAW limit, like a DSSE PAE around an SBOM.
fn big_message() -> Vec<u8> {
    (0..5000u32).map(|i| b"DSSEv1 application/vnd.in-toto+json "[i as usize % 36]).collect()
}

/// A scratch directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xtask-kms-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn public_key(
    aws: &Aws,
    key_id: &str,
) -> aws_sdk_kms::operation::get_public_key::GetPublicKeyOutput {
    aws.block_on(aws.kms().get_public_key().key_id(key_id).send()).expect("GetPublicKey")
}

/// The key's public half as PEM (`GetPublicKey` → DER → `openssl ec -pubin -inform DER`).
fn public_pem(aws: &Aws, key_id: &str, dir: &Path) -> PathBuf {
    let out = public_key(aws, key_id);
    let der = dir.join("pub.der");
    std::fs::write(&der, out.public_key().expect("public key").as_ref()).expect("write DER");
    let pem = dir.join("pub.pem");
    run(Command::new("openssl")
        .args(["ec", "-pubin", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&pem))
    .assert_success();
    pem
}

fn sign(aws: &Aws, key_id: &str, message: &[u8], kind: MessageType) -> Result<Vec<u8>, String> {
    let out = aws.block_on(
        aws.kms()
            .sign()
            .key_id(key_id)
            .message(Blob::new(message))
            .message_type(kind)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send(),
    );
    match out {
        Ok(out) => Ok(out.signature().expect("signature").as_ref().to_vec()),
        Err(err) => Err(format!("{}", aws_sdk_kms::error::DisplayErrorContext(&err))),
    }
}

/// Whether `openssl dgst -sha256 -verify` accepts `signature` over `message`.
fn openssl_verifies(pem: &Path, signature: &[u8], message: &[u8], dir: &Path) -> bool {
    let (sig, msg) = (dir.join("sig.der"), dir.join("message"));
    std::fs::write(&sig, signature).expect("write signature");
    std::fs::write(&msg, message).expect("write message");
    let out = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(pem)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg));
    // openssl says which: `Verified OK` or `Verification failure` (anything else is a test bug).
    let said = out.stdout();
    assert!(
        said.contains("Verified OK") || said.contains("Verification failure"),
        "openssl could not check the signature:\n{said}\n{}",
        out.stderr()
    );
    out.success() && said.contains("Verified OK")
}

#[test]
fn the_local_stack_signs_digests_like_kms_and_refuses_big_raw_messages() {
    let stack = support::stack();
    let aws = stack.aws();
    let dir = scratch("fixed");
    // GetPublicKey answers as AWS does: the key spec, the key ARN.
    let key = public_key(&aws, ALIAS);
    assert_eq!(key.key_spec(), Some(&KeySpec::EccNistP256));
    assert_eq!(key.key_usage(), Some(&KeyUsageType::SignVerify));
    assert_eq!(key.signing_algorithms(), [SigningAlgorithmSpec::EcdsaSha256]);
    let arn = key.key_id().expect("KeyId");
    assert!(arn.starts_with("arn:aws:kms:us-east-1:") && arn.contains(":key/"), "{arn}");
    let pem = public_pem(&aws, ALIAS, &dir);
    let message = big_message();
    let digest = Sha256::digest(&message);

    // DIGEST: a signature over the message itself.
    let signature = sign(&aws, ALIAS, &digest, MessageType::Digest).expect("Sign DIGEST");
    assert!(
        openssl_verifies(&pem, &signature, &message, &dir),
        "openssl rejects the local stack's DIGEST signature"
    );
    let verified = aws
        .block_on(
            aws.kms()
                .verify()
                .key_id(ALIAS)
                .message(Blob::new(digest.as_slice()))
                .message_type(MessageType::Digest)
                .signature(Blob::new(signature.clone()))
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send(),
        )
        .expect("Verify DIGEST");
    assert!(verified.signature_valid(), "KMS Verify rejects its own DIGEST signature");
    assert!(!openssl_verifies(&pem, &signature, b"another message", &dir));

    // RAW: up to 4096 bytes, verified the same way; more is refused as AWS refuses it.
    let small = &message[..4096];
    let signature = sign(&aws, ALIAS, small, MessageType::Raw).expect("Sign RAW 4096 bytes");
    assert!(openssl_verifies(&pem, &signature, small, &dir));
    let err = sign(&aws, ALIAS, &message, MessageType::Raw).expect_err("RAW over 4096 bytes");
    assert!(err.contains("ValidationException") && err.contains("4096"), "{err}");
    // A digest of the wrong length is refused too.
    let err = sign(&aws, ALIAS, &digest[..20], MessageType::Digest).expect_err("short digest");
    assert!(err.contains("Digest is invalid length for algorithm ECDSA_SHA_256"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A moto server started by this test, stopped (by its PID) when dropped.
struct StockMoto(std::process::Child);

impl Drop for StockMoto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn planted_a_stock_moto_signs_the_digest_of_the_digest() {
    let dir = scratch("stock");
    let port = free_port();
    let python = std::env::var("SPLITTER_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let log = std::fs::File::create(dir.join("moto.log")).expect("log");
    let child = Command::new(python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(&dir)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start a stock moto server");
    let _moto = StockMoto(child);
    assert!(
        wait_until(Duration::from_secs(60), || http_status(port, "/moto-api/") == Some(200)),
        "the stock moto did not answer: {}",
        std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
    );
    let aws = Aws::local("us-east-1", &format!("http://127.0.0.1:{port}")).expect("SDK");
    let key = aws
        .block_on(
            aws.kms()
                .create_key()
                .key_spec(KeySpec::EccNistP256)
                .key_usage(KeyUsageType::SignVerify)
                .send(),
        )
        .expect("CreateKey");
    let key_id = key.key_metadata().expect("metadata").key_id().to_owned();
    // No KeySpec, the bare key id: what the fix adds.
    let key = public_key(&aws, &key_id);
    assert_eq!((key.key_spec(), key.key_id()), (None, Some(key_id.as_str())));
    let pem = public_pem(&aws, &key_id, &dir);
    let message = big_message();
    let digest = Sha256::digest(&message);

    let signature = sign(&aws, &key_id, &digest, MessageType::Digest).expect("Sign DIGEST");
    assert!(
        !openssl_verifies(&pem, &signature, &message, &dir),
        "a stock moto's DIGEST signature verifies: moto signs digests now, remove xtask's fix"
    );
    // What it signed instead: the digest, as a RAW message.
    assert!(openssl_verifies(&pem, &signature, &digest, &dir));
    // And it takes any RAW size.
    assert!(sign(&aws, &key_id, &message, MessageType::Raw).is_ok(), "stock moto refuses RAW");
    let _ = std::fs::remove_dir_all(&dir);
}
