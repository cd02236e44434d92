//! S3 at the edges: streaming download with hashing (resumed where it broke), bounded-
//! concurrency uploads (multipart for large files) that skip objects already stored with the
//! same SHA-256. Every request is retried on transient faults ([`retry`]).

pub mod retry;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::error::{Kind, fail};
use crate::growing::Arrival;
use crate::hash::{FileDigest, Hasher};
use retry::{Failed, Limits, with_retries};

/// Object metadata key holding the object's SHA-256 (`x-amz-meta-sha256`).
pub const SHA256_METADATA: &str = "sha256";

/// Builds a client from the default chain; path-style addressing when `AWS_ENDPOINT_URL` is set.
/// Retries are [`retry`]'s (the SDK's own loop is off); timeouts are [`Limits::get`]'s.
pub async fn client() -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let limits = Limits::get();
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        // Integrity is checked end to end with SHA-256 (`x-amz-meta-sha256`, the manifest,
        // `verify`); no per-request checksums keeps multipart uploads simple and compatible
        // with S3 look-alikes, and spares the SDK's warning that it cannot validate a
        // multipart object's part-level checksum on download.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(limits.connect_timeout)
                .read_timeout(limits.read_timeout)
                .build(),
        );
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

/// The error of a failed read of `uri` in one line ([`Kind::InputUnreadable`]).
fn read_error<E, R>(failed: &Failed<E, R>, bucket: &str, uri: &str) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let what = match classify(&failed.error) {
        ErrorClass::NoSuchBucket => format!("bucket {bucket} does not exist (reading {uri})"),
        ErrorClass::AccessDenied => format!("access denied reading {uri} ({})", failed.describe()),
        ErrorClass::NoCredentials => {
            format!("no usable AWS credentials to read {uri}: {}", failed.describe())
        }
        ErrorClass::NoSuchKey | ErrorClass::Other => {
            format!("cannot read {uri}: {}", failed.describe())
        }
    };
    fail(Kind::InputUnreadable, what)
}

/// Downloads an object to `dest` (see [`fetch`]), reporting to `arrival` how many bytes are on
/// disk as they arrive (so ffmpeg can read the input while it downloads; see
/// [`crate::growing`]). Errors are [`Kind::InputUnreadable`].
pub async fn download_arriving(
    client: &Client,
    bucket: &str,
    key: &str,
    dest: &Path,
    arrival: Arrival,
) -> Result<Fetched> {
    fetch(client, bucket, key, dest, Some(arrival))
        .await?
        .ok_or_else(|| fail(Kind::InputUnreadable, format!("s3://{bucket}/{key} does not exist")))
}

/// Downloads an object to `dest` (see [`fetch`]); a missing object is `Ok(None)`.
pub async fn download_if_exists(
    client: &Client,
    bucket: &str,
    key: &str,
    dest: &Path,
) -> Result<Option<FileDigest>> {
    Ok(fetch(client, bucket, key, dest, None).await?.map(|f| f.digest))
}

/// A finished download: the file's digest and how it was checked against the object.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub digest: FileDigest,
    /// "its x-amz-meta-sha256 matches", or why there was nothing to compare with.
    pub check: &'static str,
}

/// Bytes written between two progress reports to an [`Arrival`] (each report flushes).
const REPORT_EVERY: u64 = 1 << 20;

/// Downloads an object to `dest` (`None`: it does not exist), hashing on the way.
///
/// A body that breaks off (connection dropped, cut short, or no data for the read timeout) is
/// resumed from the byte it reached with a ranged GET pinned to the object's ETag, up to the
/// attempt limit. When the object carries `x-amz-meta-sha256` (the splitter's uploads do), the
/// download's SHA-256 is compared with it; the log says which check was made.
async fn fetch(
    client: &Client,
    bucket: &str,
    key: &str,
    dest: &Path,
    arrival: Option<Arrival>,
) -> Result<Option<Fetched>> {
    let uri = format!("s3://{bucket}/{key}");
    let limits = Limits::get();
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| fail(Kind::Other, format!("cannot create {}: {e}", dest.display())))?;
    let mut hasher = Hasher::default();
    let mut received: u64 = 0;
    let mut reported: u64 = 0;
    // Learnt from the first answer: the object's size, ETag and recorded SHA-256.
    let mut object: Option<(u64, Option<String>, Option<String>)> = None;
    let mut attempt = 1;
    loop {
        let request = client.get_object().bucket(bucket).key(key);
        let request = match &object {
            None => request,
            Some((_, etag, _)) => {
                request.range(format!("bytes={received}-")).set_if_match(etag.clone())
            }
        };
        let response = match with_retries(&format!("GET {uri}"), || request.clone().send()).await {
            Ok(response) => response,
            Err(failed) if object.is_none() && classify(&failed.error) == ErrorClass::NoSuchKey => {
                drop(file);
                let _ = tokio::fs::remove_file(dest).await;
                return Ok(None);
            }
            Err(failed) if failed.error.code() == Some("PreconditionFailed") => {
                return Err(fail(
                    Kind::InputUnreadable,
                    format!("{uri} changed while it was being downloaded; run the job again"),
                ));
            }
            Err(failed) => return Err(read_error(&failed, bucket, &uri)),
        };
        let (size, _, _) = object.get_or_insert_with(|| {
            let size = response.content_length().and_then(|n| u64::try_from(n).ok());
            let sha256 = response.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned();
            (size.unwrap_or(u64::MAX), response.e_tag().map(str::to_string), sha256)
        });
        let size = *size;
        let mut body = response.body;
        let broke = loop {
            match tokio::time::timeout(limits.read_timeout, body.try_next()).await {
                Ok(Ok(Some(chunk))) => {
                    hasher.update(&chunk);
                    file.write_all(&chunk).await.map_err(|e| {
                        fail(Kind::Other, format!("writing {}: {e}", dest.display()))
                    })?;
                    received += chunk.len() as u64;
                    if let Some(arrival) =
                        arrival.as_ref().filter(|_| received - reported >= REPORT_EVERY)
                    {
                        file.flush().await.map_err(|e| {
                            fail(Kind::Other, format!("writing {}: {e}", dest.display()))
                        })?;
                        arrival.arrived(received);
                        reported = received;
                    }
                }
                Ok(Ok(None)) if size == u64::MAX || received == size => break None,
                Ok(Ok(None)) => break Some(format!("the body ended at byte {received} of {size}")),
                Ok(Err(e)) => break Some(e.to_string()),
                Err(_) => {
                    break Some(format!("no data for {} s", limits.read_timeout.as_secs_f64()));
                }
            }
        };
        let Some(reason) = broke else { break };
        if attempt >= limits.max_attempts {
            return Err(fail(
                Kind::InputUnreadable,
                format!(
                    "reading {uri} failed at byte {received} of {size} (after {attempt} \
                     attempts): {reason}"
                ),
            ));
        }
        let request = format!("GET {uri} (resuming at byte {received})");
        retry::next_attempt(&request, &mut attempt, &reason).await;
    }
    file.flush().await.with_context(|| format!("writing {}", dest.display()))?;
    let digest = hasher.finish();
    // Checked before the download counts as complete: a reader stops at a failed one.
    let check = match object.and_then(|(_, _, sha256)| sha256) {
        Some(recorded) if recorded == digest.sha256 => "its x-amz-meta-sha256 matches",
        Some(recorded) => {
            return Err(fail(
                Kind::InputUnreadable,
                format!(
                    "{uri} downloaded with SHA-256 {} but its x-amz-meta-sha256 says {recorded}: \
                     the object or the transfer is corrupt",
                    digest.sha256
                ),
            ));
        }
        None => "none: no x-amz-meta-sha256 (its SHA-256 goes into the manifest)",
    };
    tracing::debug!(object = %uri, bytes = digest.bytes, check, "downloaded");
    if let Some(arrival) = arrival {
        arrival.complete(digest.bytes);
    }
    Ok(Some(Fetched { digest, check }))
}

/// The bytes of an object from offset `from` to its end, when there are at most `max` of them
/// (`Ok(None)` otherwise): a HEAD for its size and ETag, then a GET of that range pinned to the
/// ETag. For an MP4's index at the end of the object (see [`crate::faststart`]). Errors are
/// [`Kind::InputUnreadable`].
pub async fn tail(
    client: &Client,
    bucket: &str,
    key: &str,
    from: u64,
    max: u64,
) -> Result<Option<Vec<u8>>> {
    let uri = format!("s3://{bucket}/{key}");
    let head = with_retries(&format!("HEAD {uri}"), || {
        client.head_object().bucket(bucket).key(key).send()
    })
    .await
    .map_err(|failed| read_error(&failed, bucket, &uri))?;
    let size = head.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    if size <= from || size - from > max {
        return Ok(None);
    }
    let range = format!("bytes={from}-{}", size - 1);
    let data = get_whole(
        &format!("GET {uri} ({range})"),
        &format!("the end of {uri}"),
        Kind::InputUnreadable,
        || {
            client
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(&range)
                .set_if_match(head.e_tag().map(str::to_string))
                .send()
        },
        |failed| Some(read_error(failed, bucket, &uri)),
    )
    .await?;
    match data {
        Some(data) if data.len() as u64 == size - from => Ok(Some(data)),
        Some(data) => Err(fail(
            Kind::InputUnreadable,
            format!("reading the end of {uri}: {} bytes instead of {}", data.len(), size - from),
        )),
        None => Err(fail(Kind::InputUnreadable, format!("{uri} does not exist"))),
    }
}

/// Sends a GET (`send`, retried by [`with_retries`]) and reads its whole body, sending it again
/// while the body breaks off or stalls, up to the attempt limit. A failed send is `on_error`'s
/// error, or `Ok(None)` when that gives none (a missing object that is not an error); a body
/// that never arrives is one line of `kind` naming `what`.
async fn get_whole<F, Fut>(
    request: &str,
    what: &str,
    kind: Kind,
    send: F,
    on_error: impl Fn(&Failed<GetObjectError, HttpResponse>) -> Option<anyhow::Error>,
) -> Result<Option<Vec<u8>>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
            Output = Result<GetObjectOutput, SdkError<GetObjectError, HttpResponse>>,
        >,
{
    let limits = Limits::get();
    let mut attempt = 1;
    loop {
        let out = match with_retries(request, &send).await {
            Ok(out) => out,
            Err(failed) => return on_error(&failed).map_or(Ok(None), Err),
        };
        let reason = match tokio::time::timeout(limits.read_timeout, out.body.collect()).await {
            Ok(Ok(data)) => return Ok(Some(data.into_bytes().to_vec())),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "stalled".to_string(),
        };
        if attempt >= limits.max_attempts {
            return Err(fail(
                kind,
                format!("reading {what} failed (after {attempt} attempts): {reason}"),
            ));
        }
        retry::next_attempt(request, &mut attempt, &reason).await;
    }
}

/// Reads a small object into memory (the manifest). `Ok(None)` when it does not exist.
pub async fn get_small(client: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    let uri = format!("s3://{bucket}/{key}");
    get_whole(
        &format!("GET {uri}"),
        &uri,
        Kind::Other,
        || client.get_object().bucket(bucket).key(key).send(),
        |failed| match classify(&failed.error) {
            ErrorClass::NoSuchKey => None,
            _ => Some(output_error(failed, bucket, key, "reading")),
        },
    )
    .await
}

/// Maps an error on the output side: missing bucket and access denied are
/// [`Kind::OutputUnwritable`], the rest [`Kind::Other`].
pub fn output_error<E, R>(
    failed: &Failed<E, R>,
    bucket: &str,
    key: &str,
    doing: &str,
) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let uri = format!("s3://{bucket}/{key}");
    match classify(&failed.error) {
        ErrorClass::NoSuchBucket => {
            fail(Kind::OutputUnwritable, format!("output bucket {bucket} does not exist"))
        }
        ErrorClass::AccessDenied => fail(
            Kind::OutputUnwritable,
            format!("access denied {doing} {uri} ({})", failed.describe()),
        ),
        _ => fail(Kind::Other, format!("{doing} {uri} failed: {}", failed.describe())),
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
    /// Keys (and sizes) under the output's prefixes when the run started, if listed: a key
    /// that was not there needs no HEAD before its upload.
    existing: Option<Arc<HashMap<String, u64>>>,
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

/// A file's bytes `offset..offset + length` as a request body (built again for every attempt).
async fn file_body<E, R>(
    path: &Path,
    offset: u64,
    length: u64,
) -> Result<ByteStream, SdkError<E, R>> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(length))
        .buffer_size(256 << 10)
        .build()
        .await
        .map_err(SdkError::construction_failure)
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
            existing: None,
        }
    }

    /// Lists what is under `prefixes` now, so uploads skip the HEAD of keys that were not
    /// there (one LIST per 1000 keys instead of a HEAD per file).
    pub async fn remember_existing(&mut self, prefixes: &[String]) -> Result<()> {
        let mut existing = HashMap::new();
        for prefix in prefixes {
            existing.extend(self.list_sizes(prefix).await?);
        }
        self.existing = Some(Arc::new(existing));
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits.acquire().await.context("upload queue closed")
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Whether the object was there with this size and SHA-256 metadata when the run started
    /// (no request when the listing says it was not).
    async fn already_there(&self, key: &str, digest: &FileDigest) -> Result<bool> {
        if let Some(existing) = &self.existing {
            if existing.get(key) != Some(&digest.bytes) {
                return Ok(false);
            }
        }
        self.stored_now(key, digest).await
    }

    /// Whether the object is there now with this size and SHA-256 metadata (a HEAD).
    async fn stored_now(&self, key: &str, digest: &FileDigest) -> Result<bool> {
        let _permit = self.permit().await?;
        let head = with_retries(&format!("HEAD {}", self.uri(key)), || {
            self.client.head_object().bucket(&self.bucket).key(key).send()
        })
        .await;
        match head {
            Ok(head) => Ok(head.content_length() == i64::try_from(digest.bytes).ok()
                && head.metadata().and_then(|m| m.get(SHA256_METADATA)) == Some(&digest.sha256)),
            Err(failed) if classify(&failed.error) == ErrorClass::NoSuchKey => Ok(false),
            Err(failed) => Err(output_error(&failed, &self.bucket, key, "checking")),
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
        self.put_file(path, key, digest, None).await?;
        Ok(Upload::Uploaded { parts: 1 })
    }

    /// One PUT of a whole file (streamed from disk, under an upload permit), with its
    /// `x-amz-meta-sha256` and, when given, a content type; no check of what is there.
    pub async fn put_file(
        &self,
        path: &Path,
        key: &str,
        digest: &FileDigest,
        content_type: Option<&str>,
    ) -> Result<()> {
        let _permit = self.permit().await?;
        let length = i64::try_from(digest.bytes).unwrap_or(i64::MAX);
        with_retries(&format!("PUT {}", self.uri(key)), || async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(file_body(path, 0, digest.bytes).await?)
                .content_length(length)
                .set_content_type(content_type.map(str::to_string))
                .metadata(SHA256_METADATA, &digest.sha256)
                .send()
                .await
        })
        .await
        .map_err(|e| output_error(&e, &self.bucket, key, "uploading"))?;
        Ok(())
    }

    async fn upload_multipart(&self, path: &Path, key: &str, digest: &FileDigest) -> Result<usize> {
        let created = {
            let _permit = self.permit().await?;
            // A retry after a lost answer leaves the first upload unused; S3 lifecycle rules
            // (AbortIncompleteMultipartUpload) clean those up.
            with_retries(&format!("CreateMultipartUpload {}", self.uri(key)), || {
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .metadata(SHA256_METADATA, &digest.sha256)
                    .send()
            })
            .await
            .map_err(|e| output_error(&e, &self.bucket, key, "uploading"))?
        };
        let upload_id = created.upload_id().context("S3 returned no upload id")?.to_string();
        let result = self.upload_parts(path, key, &upload_id, digest.bytes).await;
        match result {
            Ok(parts) => {
                let count = parts.len();
                self.complete(key, &upload_id, parts, digest).await?;
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

    /// Completes a multipart upload. Retrying a completion whose answer was lost finds the
    /// upload gone (NoSuchUpload); the object then counts as stored only if it is there with
    /// the expected size and `x-amz-meta-sha256`.
    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        digest: &FileDigest,
    ) -> Result<()> {
        let _permit = self.permit().await?;
        let parts = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        let completed = with_retries(&format!("CompleteMultipartUpload {}", self.uri(key)), || {
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(parts.clone())
                .send()
        })
        .await;
        match completed {
            Ok(_) => Ok(()),
            Err(failed) if failed.attempts > 1 && failed.error.code() == Some("NoSuchUpload") => {
                drop(_permit);
                if self.stored_now(key, digest).await? {
                    tracing::info!(
                        key,
                        "an earlier attempt completed the upload (size and sha256 match)"
                    );
                    Ok(())
                } else {
                    Err(fail(
                        Kind::Other,
                        format!(
                            "completing the upload of {} failed: the upload is gone and the \
                             object is not there with the expected size and sha256; run the \
                             job again",
                            self.uri(key)
                        ),
                    ))
                }
            }
            Err(failed) => {
                Err(output_error(&failed, &self.bucket, key, "completing the upload of"))
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
                let request = format!("UploadPart {} part {number}", self.uri(key));
                let out = with_retries(&request, || async {
                    self.client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .content_length(i64::try_from(length).unwrap_or(i64::MAX))
                        .body(file_body(path, offset, length).await?)
                        .send()
                        .await
                })
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

    pub async fn delete(&self, key: &str) -> Result<()> {
        let _permit = self.permit().await?;
        with_retries(&format!("DELETE {}", self.uri(key)), || {
            self.client.delete_object().bucket(&self.bucket).key(key).send()
        })
        .await
        .map_err(|e| output_error(&e, &self.bucket, key, "deleting"))?;
        Ok(())
    }

    /// Keys under a prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.list_sizes(prefix).await?.into_iter().map(|(key, _)| key).collect())
    }

    /// Keys under a prefix, with their sizes.
    async fn list_sizes(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = with_retries(&format!("LIST {}", self.uri(prefix)), || {
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| output_error(&e, &self.bucket, prefix, "listing"))?;
            keys.extend(page.contents().iter().filter_map(|o| {
                let size = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(u64::MAX);
                o.key().map(|key| (key.to_string(), size))
            }));
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() || page.is_truncated() != Some(true) {
                return Ok(keys);
            }
        }
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
