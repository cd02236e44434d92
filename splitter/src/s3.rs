//! S3 at the edges: streaming download with hashing, bounded-concurrency uploads (multipart
//! for large files) that skip objects already stored with the same SHA-256.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::error::{Kind, fail};
use crate::hash::{FileDigest, Hasher};

/// Object metadata key holding the object's SHA-256 (`x-amz-meta-sha256`).
pub const SHA256_METADATA: &str = "sha256";

/// Builds a client from the default chain; path-style addressing when `AWS_ENDPOINT_URL` is set.
pub async fn client() -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        // Integrity is checked end to end with SHA-256 (manifest + `verify`); no per-request
        // checksums keeps multipart uploads simple and compatible with S3 look-alikes.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
    if shared.region().is_none() {
        builder = builder.region(Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty()) {
        builder = builder.force_path_style(true);
    }
    Client::from_conf(builder.build())
}

/// Broad classes of S3 errors, for exit codes and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    NoSuchKey,
    NoSuchBucket,
    AccessDenied,
    /// No usable credentials (nothing in the default chain, or it failed).
    NoCredentials,
    Other,
}

pub fn classify<E, R>(err: &SdkError<E, R>) -> ErrorClass
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HasStatus + std::fmt::Debug,
{
    if matches!(err, SdkError::DispatchFailure(_)) && chain_text(err).contains("credentials") {
        return ErrorClass::NoCredentials;
    }
    let code = err.code();
    let status = err.raw_response().map(HasStatus::status);
    match (code, status) {
        (Some("NoSuchKey" | "NotFound"), _) => ErrorClass::NoSuchKey,
        (Some("NoSuchBucket"), _) => ErrorClass::NoSuchBucket,
        (
            Some(
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AllAccessDisabled"
                | "ExpiredToken"
                | "InvalidToken"
                | "Forbidden",
            ),
            _,
        ) => ErrorClass::AccessDenied,
        (_, Some(403)) => ErrorClass::AccessDenied,
        (_, Some(404)) => ErrorClass::NoSuchKey,
        _ => ErrorClass::Other,
    }
}

/// The HTTP status of a raw response (implemented for the SDK's response type).
pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

fn chain_text<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// One line describing an SDK error: its code and message, the HTTP status, or the
/// transport problem.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match (err.code(), err.message(), err.raw_response().map(HasStatus::status)) {
        (Some(code), Some(message), _) => format!("{code}: {message}"),
        (Some(code), None, _) => code.to_string(),
        (None, _, Some(status)) => format!("HTTP {status}"),
        _ => chain_text(err),
    }
}

/// Downloads an object to `dest`, hashing on the way. Errors are [`Kind::InputUnreadable`].
pub async fn download(client: &Client, bucket: &str, key: &str, dest: &Path) -> Result<FileDigest> {
    download_if_exists(client, bucket, key, dest)
        .await?
        .ok_or_else(|| fail(Kind::InputUnreadable, format!("s3://{bucket}/{key} does not exist")))
}

/// Like [`download`], but a missing object is `Ok(None)`.
pub async fn download_if_exists(
    client: &Client,
    bucket: &str,
    key: &str,
    dest: &Path,
) -> Result<Option<FileDigest>> {
    let uri = format!("s3://{bucket}/{key}");
    let response = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(response) => response,
        Err(e) => {
            let what = match classify(&e) {
                ErrorClass::NoSuchKey => return Ok(None),
                ErrorClass::NoSuchBucket => {
                    format!("bucket {bucket} does not exist (reading {uri})")
                }
                ErrorClass::AccessDenied => {
                    format!("access denied reading {uri} ({})", describe(&e))
                }
                ErrorClass::NoCredentials => {
                    format!("no usable AWS credentials to read {uri}: {}", describe(&e))
                }
                ErrorClass::Other => format!("cannot read {uri}: {}", describe(&e)),
            };
            return Err(fail(Kind::InputUnreadable, what));
        }
    };
    let mut body = response.body;
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| fail(Kind::Other, format!("cannot create {}: {e}", dest.display())))?;
    let mut hasher = Hasher::default();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| fail(Kind::InputUnreadable, format!("reading {uri} failed: {e}")))?
    {
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| fail(Kind::Other, format!("writing {}: {e}", dest.display())))?;
    }
    file.flush().await.with_context(|| format!("writing {}", dest.display()))?;
    Ok(Some(hasher.finish()))
}

/// Reads a small object into memory (the manifest). `Ok(None)` when it does not exist.
pub async fn get_small(client: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let data = out.body.collect().await.context("reading the object")?;
            Ok(Some(data.into_bytes().to_vec()))
        }
        Err(e) if classify(&e) == ErrorClass::NoSuchKey => Ok(None),
        Err(e) => Err(output_error(&e, bucket, key, "reading")),
    }
}

/// Maps an error on the output side: missing bucket and access denied are
/// [`Kind::OutputUnwritable`], the rest [`Kind::Other`].
pub fn output_error<E, R>(
    err: &SdkError<E, R>,
    bucket: &str,
    key: &str,
    doing: &str,
) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let uri = format!("s3://{bucket}/{key}");
    match classify(err) {
        ErrorClass::NoSuchBucket => {
            fail(Kind::OutputUnwritable, format!("output bucket {bucket} does not exist"))
        }
        ErrorClass::AccessDenied => {
            fail(Kind::OutputUnwritable, format!("access denied {doing} {uri} ({})", describe(err)))
        }
        _ => fail(Kind::Other, format!("{doing} {uri} failed: {}", describe(err))),
    }
}

/// Uploads files under a prefix with a bound on concurrent requests.
#[derive(Clone, Debug)]
pub struct Uploader {
    client: Client,
    bucket: String,
    /// Requests in flight.
    permits: Arc<Semaphore>,
    /// Files in flight (bounds open files; parts of one file may use every request permit).
    files: Arc<Semaphore>,
    part_size: u64,
    multipart_threshold: u64,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upload {
    Uploaded {
        parts: usize,
    },
    /// The object already existed with the same size and SHA-256.
    Skipped,
}

impl Uploader {
    pub fn new(client: Client, bucket: &str, concurrency: usize, part_size: u64) -> Uploader {
        // S3 requires parts of at least 5 MiB (except the last).
        let part_size = part_size.max(5 << 20);
        Uploader {
            client,
            bucket: bucket.to_string(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            files: Arc::new(Semaphore::new(concurrency.max(1))),
            part_size,
            multipart_threshold: part_size,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits.acquire().await.context("upload queue closed")
    }

    /// Whether the object exists with this size and SHA-256 metadata.
    async fn already_there(&self, key: &str, digest: &FileDigest) -> Result<bool> {
        let _permit = self.permit().await?;
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(head.content_length() == i64::try_from(digest.bytes).ok()
                && head.metadata().and_then(|m| m.get(SHA256_METADATA)) == Some(&digest.sha256)),
            Err(e) if classify(&e) == ErrorClass::NoSuchKey => Ok(false),
            Err(e) => Err(output_error(&e, &self.bucket, key, "checking")),
        }
    }

    /// Uploads `path` to `key` unless an identical object is already there.
    pub async fn upload(&self, path: &Path, key: &str, digest: &FileDigest) -> Result<Upload> {
        let _file = self.files.acquire().await.context("upload queue closed")?;
        if self.already_there(key, digest).await? {
            return Ok(Upload::Skipped);
        }
        if digest.bytes > self.multipart_threshold {
            let parts = self.upload_multipart(path, key, digest).await?;
            return Ok(Upload::Uploaded { parts });
        }
        let _permit = self.permit().await?;
        let body = ByteStream::read_from()
            .path(path)
            .buffer_size(256 << 10)
            .build()
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .content_length(i64::try_from(digest.bytes).unwrap_or(i64::MAX))
            .metadata(SHA256_METADATA, &digest.sha256)
            .send()
            .await
            .map_err(|e| output_error(&e, &self.bucket, key, "uploading"))?;
        Ok(Upload::Uploaded { parts: 1 })
    }

    async fn upload_multipart(&self, path: &Path, key: &str, digest: &FileDigest) -> Result<usize> {
        let created = {
            let _permit = self.permit().await?;
            self.client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .metadata(SHA256_METADATA, &digest.sha256)
                .send()
                .await
                .map_err(|e| output_error(&e, &self.bucket, key, "uploading"))?
        };
        let upload_id = created.upload_id().context("S3 returned no upload id")?.to_string();
        let result = self.upload_parts(path, key, &upload_id, digest.bytes).await;
        match result {
            Ok(parts) => {
                let count = parts.len();
                let _permit = self.permit().await?;
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder().set_parts(Some(parts)).build(),
                    )
                    .send()
                    .await
                    .map_err(|e| output_error(&e, &self.bucket, key, "completing the upload of"))?;
                Ok(count)
            }
            Err(err) => {
                // Best effort: do not leave the parts billed and invisible.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(err)
            }
        }
    }

    async fn upload_parts(
        &self,
        path: &Path,
        key: &str,
        upload_id: &str,
        size: u64,
    ) -> Result<Vec<CompletedPart>> {
        let count = size.div_ceil(self.part_size).max(1);
        let mut tasks = Vec::with_capacity(count as usize);
        for n in 0..count {
            let offset = n * self.part_size;
            let length = self.part_size.min(size - offset);
            let number = i32::try_from(n + 1).context("too many parts")?;
            tasks.push(async move {
                let _permit = self.permit().await?;
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .buffer_size(256 << 10)
                    .build()
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(i64::try_from(length).unwrap_or(i64::MAX))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| output_error(&e, &self.bucket, key, "uploading"))?;
                anyhow::Ok(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .build(),
                )
            });
        }
        join_all(tasks).await.into_iter().collect()
    }

    /// Stores small in-memory data (the manifest).
    pub async fn put_bytes(&self, key: &str, data: Vec<u8>, content_type: &str) -> Result<()> {
        let _permit = self.permit().await?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| output_error(&e, &self.bucket, key, "writing"))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        let _permit = self.permit().await?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| output_error(&e, &self.bucket, key, "deleting"))?;
        Ok(())
    }

    /// Keys under a prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| output_error(&e, &self.bucket, prefix, "listing"))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        Ok(keys)
    }
}

/// Runs futures concurrently on the current task and collects their results in order.
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::with_capacity(futures.len());
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut results: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => results[i] = Some(out),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    results.into_iter().flatten().collect()
}
