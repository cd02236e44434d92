//! The environment's signing key in AWS KMS: its public half (`kms:GetPublicKey`, checked
//! locally by [`super::cosign`]) and signatures made with it (`kms:Sign`, `ECDSA_SHA_256`). The
//! private key never leaves KMS.

use anyhow::{Context, Result, bail};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, MessageType, SigningAlgorithmSpec};
use sha2::{Digest, Sha256};

use crate::aws::sdk_error;

/// The largest message KMS signs as `MessageType=RAW`; longer ones are signed by their SHA-256
/// digest (`MessageType=DIGEST`), as KMS requires.
pub const RAW_LIMIT: usize = 4096;

/// A signing key by its alias.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub alias: String,
    /// Its key id (from `GetPublicKey`).
    pub key_id: String,
    /// DER SubjectPublicKeyInfo of its public key.
    pub public_key: Vec<u8>,
}

impl SigningKey {
    /// The key behind `alias` and its public key; one line saying who creates it when missing.
    pub async fn load(kms: &aws_sdk_kms::Client, alias: &str) -> Result<SigningKey> {
        let out = kms.get_public_key().key_id(alias).send().await;
        let out = match out {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found_exception()) => {
                bail!(
                    "the signing key {alias} does not exist in KMS: create it (Terraform; locally \
                     `cargo xtask local up`), an ECC_NIST_P256 SIGN_VERIFY key with that alias"
                )
            }
            Err(err) => {
                return Err(sdk_error(err)).with_context(|| {
                    format!(
                        "cannot read the public key of {alias} (kms:GetPublicKey): check the \
                         role's kms:GetPublicKey permission on the key"
                    )
                });
            }
        };
        if out.key_spec() != Some(&KeySpec::EccNistP256) {
            bail!(
                "the signing key {alias} is {}, not ECC_NIST_P256: cosign-format signatures here are \
                 ECDSA P-256",
                out.key_spec().map_or("of an unknown spec", |s| s.as_str())
            );
        }
        let public_key = out
            .public_key()
            .map(|b| b.as_ref().to_vec())
            .with_context(|| format!("KMS returned no public key for {alias}"))?;
        let key_id = out.key_id().unwrap_or(alias).to_owned();
        Ok(SigningKey { alias: alias.to_owned(), key_id, public_key })
    }

    /// A DER ECDSA P-256 signature over `message` (SHA-256), checked against the public key
    /// before it is returned.
    pub async fn sign(&self, kms: &aws_sdk_kms::Client, message: &[u8]) -> Result<Vec<u8>> {
        let (body, kind) = if message.len() <= RAW_LIMIT {
            (message.to_vec(), MessageType::Raw)
        } else {
            (Sha256::digest(message).to_vec(), MessageType::Digest)
        };
        let out = kms
            .sign()
            .key_id(&self.alias)
            .message(Blob::new(body))
            .message_type(kind.clone())
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!(
                    "cannot sign with {} (kms:Sign): check the role's kms:Sign permission on the key",
                    self.alias
                )
            })?;
        let signature =
            out.signature().map(|b| b.as_ref().to_vec()).context("KMS returned no signature")?;
        super::cosign::verify_signature(&self.public_key, message, &signature).with_context(|| {
            format!(
                "KMS signed with {} (MessageType={}) but the signature does not verify with its \
                 public key",
                self.alias,
                kind.as_str()
            )
        })?;
        Ok(signature)
    }
}
