//! AWS clients from the default credential chain (profiles, env, SSO, OIDC web identity).
//!
//! `AWS_ENDPOINT_URL` (read by `aws-config` itself) is the only switch between real AWS and the
//! local stack: there is no separate code path for "local". When an endpoint is set, S3 uses
//! path-style addressing (moto and most S3-compatible stores need it).
//!
//! The integration tests use this module too (`xtask/tests/support/mod.rs`), so they talk to the
//! local stack through the same clients and read its env file the same way.

use std::future::Future;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::runtime::Runtime;

/// The dummy credentials of the local stack (moto accepts any).
pub const LOCAL_ACCESS_KEY_ID: &str = "test";
pub const LOCAL_SECRET_ACCESS_KEY: &str = "test";

/// A tokio runtime plus the loaded SDK configuration. Commands stay synchronous and call
/// [`Aws::block_on`] around SDK calls.
#[derive(Debug)]
pub struct Aws {
    rt: Runtime,
    pub config: SdkConfig,
}

impl Aws {
    /// Loads the configuration for `region` from the default chain; with an
    /// [environment overlay](set_env_overlay) naming `AWS_ENDPOINT_URL`, the local stack's
    /// configuration ([`Aws::local`]) instead.
    pub fn load(region: &str) -> Result<Aws> {
        if let Some(endpoint) = overlay_var("AWS_ENDPOINT_URL") {
            return Aws::local(region, &endpoint);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the tokio runtime")?;
        let config = rt.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(region.to_owned()))
                .load(),
        );
        Ok(Aws { rt, config })
    }

    /// Configuration for the local stack at `endpoint_url`, with its dummy credentials: whatever
    /// the caller's shell says (profiles, `AWS_*`), calls made through this never reach real AWS.
    /// Only `cargo xtask local` uses it; every other command reads `AWS_ENDPOINT_URL` from the
    /// environment like any SDK client.
    pub fn local(region: &str, endpoint_url: &str) -> Result<Aws> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the tokio runtime")?;
        let credentials = aws_sdk_sts::config::Credentials::new(
            LOCAL_ACCESS_KEY_ID,
            LOCAL_SECRET_ACCESS_KEY,
            None,
            None,
            "xtask-local-stack",
        );
        let config = rt.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(region.to_owned()))
                .endpoint_url(endpoint_url)
                .credentials_provider(credentials)
                .load(),
        );
        Ok(Aws { rt, config })
    }

    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// The endpoint override, when one is configured (`AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> Option<&str> {
        self.config.endpoint_url()
    }

    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        let mut conf = aws_sdk_ecr::config::Builder::from(&self.config);
        if let Some(recorder) = RecordCalls::from_env() {
            conf = conf.interceptor(recorder);
        }
        aws_sdk_ecr::Client::from_conf(conf.build())
    }
    pub fn batch(&self) -> aws_sdk_batch::Client {
        let mut conf = aws_sdk_batch::config::Builder::from(&self.config);
        if let Some(recorder) = RecordCalls::from_env() {
            conf = conf.interceptor(recorder);
        }
        aws_sdk_batch::Client::from_conf(conf.build())
    }
    pub fn sts(&self) -> aws_sdk_sts::Client {
        let mut conf = aws_sdk_sts::config::Builder::from(&self.config);
        if let Some(recorder) = RecordCalls::from_env() {
            conf = conf.interceptor(recorder);
        }
        aws_sdk_sts::Client::from_conf(conf.build())
    }
    pub fn iam(&self) -> aws_sdk_iam::Client {
        let mut conf = aws_sdk_iam::config::Builder::from(&self.config);
        if let Some(recorder) = RecordCalls::from_env() {
            conf = conf.interceptor(recorder);
        }
        aws_sdk_iam::Client::from_conf(conf.build())
    }
    /// CloudWatch Logs. Behind an endpoint override, responses pass through
    /// [`IntegerTimestamps`]: moto stores Batch job log events with fractional millisecond
    /// timestamps (`"timestamp": 1795808949661.823`), which the SDK's integer fields reject.
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        let mut conf = aws_sdk_cloudwatchlogs::config::Builder::from(&self.config);
        if self.endpoint_url().is_some() {
            conf = conf.http_client(IntegerTimestamps::client());
        }
        if let Some(recorder) = RecordCalls::from_env() {
            conf = conf.interceptor(recorder);
        }
        aws_sdk_cloudwatchlogs::Client::from_conf(conf.build())
    }
    /// KMS: the image signing key (`Sign`, `GetPublicKey`). Recorded calls name the key they
    /// used (`KMS:Sign alias/…`): the deploy role may use only its environment's signing key.
    pub fn kms(&self) -> aws_sdk_kms::Client {
        let mut conf = aws_sdk_kms::config::Builder::from(&self.config);
        if let Some(recorder) = RecordCalls::from_env() {
            conf = conf.interceptor(recorder.with_resource(kms_key_id));
        }
        aws_sdk_kms::Client::from_conf(conf.build())
    }
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let mut conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.endpoint_url().is_some());
        if let Some(recorder) = RecordCalls::from_env() {
            conf = conf.interceptor(recorder);
        }
        aws_sdk_s3::Client::from_conf(conf.build())
    }
}

/// Variables that take precedence over the process environment, set once per process.
static ENV_OVERLAY: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Makes `vars` (e.g. the local stack's env file) count as if they were exported, for
/// [`Aws::load`] (`AWS_ENDPOINT_URL`: the local stack's endpoint and dummy credentials) and
/// whatever reads [`env_var`] (the local-registry switch). `cargo xtask pipeline --local` uses it
/// after `local up`: what `. target/xtask/local/env` does for a shell, inside one process
/// (edition 2024 makes `std::env::set_var` unsafe, which the workspace forbids). Set once.
pub fn set_env_overlay(vars: Vec<(String, String)>) -> Result<()> {
    if ENV_OVERLAY.set(vars).is_err() {
        bail!("the environment overlay is already set: this is a bug in xtask");
    }
    Ok(())
}

fn overlay_var(name: &str) -> Option<String> {
    lookup(ENV_OVERLAY.get().map(Vec::as_slice).unwrap_or_default(), name)
}

fn lookup(vars: &[(String, String)], name: &str) -> Option<String> {
    vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The variables of the local stack's env file (what an overlay is usually made of): its
/// `export NAME=value` lines as `local up` writes them (plain or single-quoted values).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .map(|v| v.replace(r"'\''", "'"))
                .unwrap_or_else(|| v.to_owned());
            (k.to_owned(), v)
        })
        .collect()
}

/// An environment variable, the [overlay](set_env_overlay) first.
pub fn env_var(name: &str) -> Option<String> {
    overlay_var(name).or_else(|| std::env::var(name).ok())
}

/// Turns an SDK error into an `anyhow` error that keeps the service's message (the SDK's own
/// `Display` says only "service error").
pub fn sdk_error<E: std::error::Error>(err: E) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sts::error::DisplayErrorContext(&err))
}

/// The environment variable that turns call recording on: `XTASK_RECORD_AWS_CALLS=FILE`.
pub const RECORD_CALLS_VAR: &str = "XTASK_RECORD_AWS_CALLS";

/// Appends `Service:Operation` (e.g. `ECR:PutImage`, `CloudWatch Logs:GetLogEvents`) to the
/// file `XTASK_RECORD_AWS_CALLS` names, once per SDK operation a client starts (retries are not
/// counted again), whether it succeeds or not. KMS calls also name the key they were given, after
/// a space (`KMS:Sign alias/upscaler-splitter-signing-dev`): the policy allows one key only.
/// `cargo xtask iam-policy --check FILE` then says whether the deploy role's policy allows each
/// call; the IAM coverage test drives it.
#[derive(Debug, Clone)]
struct RecordCalls {
    path: std::path::PathBuf,
    /// The resource an operation's input names, for services whose policy is per resource.
    resource: Option<fn(&Input) -> Option<String>>,
}

impl RecordCalls {
    fn from_env() -> Option<RecordCalls> {
        std::env::var_os(RECORD_CALLS_VAR)
            .filter(|p| !p.is_empty())
            .map(|p| RecordCalls { path: p.into(), resource: None })
    }

    fn with_resource(self, resource: fn(&Input) -> Option<String>) -> RecordCalls {
        RecordCalls { resource: Some(resource), ..self }
    }
}

/// The `KeyId` of the KMS operations that take one on the signing key (`Sign`, `GetPublicKey`,
/// `Verify`, `DescribeKey`), as the caller gave it (an alias name, key id or ARN).
fn kms_key_id(input: &Input) -> Option<String> {
    use aws_sdk_kms::operation::{describe_key, get_public_key, sign, verify};
    let key = None
        .or_else(|| input.downcast_ref::<sign::SignInput>().map(|i| i.key_id()))
        .or_else(|| input.downcast_ref::<get_public_key::GetPublicKeyInput>().map(|i| i.key_id()))
        .or_else(|| input.downcast_ref::<verify::VerifyInput>().map(|i| i.key_id()))
        .or_else(|| input.downcast_ref::<describe_key::DescribeKeyInput>().map(|i| i.key_id()));
    key.flatten().map(str::to_owned)
}

impl Intercept for RecordCalls {
    fn name(&self) -> &'static str {
        "RecordCalls"
    }

    // Not `read_before_execution`: a client's interceptors run that before the operation's
    // configuration (which holds its `Metadata`) is applied. This runs once per operation too.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use std::io::Write;
        let Some(meta) = cfg.load::<Metadata>() else { return Ok(()) };
        let resource = self.resource.and_then(|of| of(context.input()));
        let line = match resource.filter(|r| !r.is_empty()) {
            // A key id never holds whitespace; the line stays one line whatever it is.
            Some(r) => format!(
                "{}:{} {}\n",
                meta.service(),
                meta.name(),
                r.replace(char::is_whitespace, "_")
            ),
            None => format!("{}:{}\n", meta.service(), meta.name()),
        };
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        // One write per line: processes recording into one file do not interleave lines.
        file.write_all(line.as_bytes())?;
        Ok(())
    }
}

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::ConfigBag;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// An HTTP client that drops the fraction of `"timestamp"` and `"ingestionTime"` numbers in
/// responses (see [`Aws::logs`]); everything else passes through unchanged.
#[derive(Debug)]
struct IntegerTimestamps {
    inner: SharedHttpClient,
}

impl IntegerTimestamps {
    fn client() -> SharedHttpClient {
        use aws_smithy_http_client::tls;
        let inner = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .build_https();
        SharedHttpClient::new(IntegerTimestamps { inner })
    }
}

impl HttpClient for IntegerTimestamps {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let inner = self.inner.http_connector(settings, components);
        SharedHttpConnector::new(IntegerTimestampsConnector { inner })
    }
}

#[derive(Debug)]
struct IntegerTimestampsConnector {
    inner: SharedHttpConnector,
}

impl HttpConnector for IntegerTimestampsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let response = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let mut response = response.await?;
            let body = response.take_body();
            let bytes = aws_smithy_types::byte_stream::ByteStream::new(body)
                .collect()
                .await
                .map_err(|e| ConnectorError::io(Box::new(e)))?
                .into_bytes();
            let fixed = integer_timestamps(&bytes);
            response.headers_mut().insert("content-length", fixed.len().to_string());
            *response.body_mut() = aws_smithy_types::body::SdkBody::from(fixed);
            Ok(response)
        })
    }
}

/// Drops the fraction of the numbers that follow a `"timestamp"` or `"ingestionTime"` key.
fn integer_timestamps(json: &[u8]) -> Vec<u8> {
    const KEYS: [&[u8]; 2] = [b"\"timestamp\"", b"\"ingestionTime\""];
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    while i < json.len() {
        let key =
            KEYS.iter().find(|k| json[i..].starts_with(k) && (i == 0 || json[i - 1] != b'\\'));
        let Some(key) = key else {
            out.push(json[i]);
            i += 1;
            continue;
        };
        out.extend_from_slice(key);
        i += key.len();
        // `: ` then digits; a `.` and digits after them are skipped.
        while i < json.len() && (json[i] == b':' || json[i].is_ascii_whitespace()) {
            out.push(json[i]);
            i += 1;
        }
        while i < json.len() && (json[i].is_ascii_digit() || json[i] == b'-') {
            out.push(json[i]);
            i += 1;
        }
        if i < json.len() && json[i] == b'.' {
            i += 1;
            while i < json.len() && json[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Aws, RecordCalls, integer_timestamps, kms_key_id, lookup, parse_env_file};

    #[test]
    fn kms_calls_are_recorded_with_the_key_they_name() {
        let file = std::env::temp_dir().join(format!("xtask-record-kms-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        // Nothing listens on port 1: each call fails after the recorder wrote its line.
        let aws = Aws::local("us-east-1", "http://127.0.0.1:1").expect("config");
        let recorder = RecordCalls { path: file.clone(), resource: None }.with_resource(kms_key_id);
        let conf = aws_sdk_kms::config::Builder::from(&aws.config)
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .interceptor(recorder)
            .build();
        let kms = aws_sdk_kms::Client::from_conf(conf);
        let alias = "alias/upscaler-splitter-signing-dev";
        let message = aws_smithy_types::Blob::new(b"payload".to_vec());
        let _ = aws.block_on(kms.sign().key_id(alias).message(message).send());
        let _ = aws.block_on(kms.get_public_key().key_id("arn:aws:kms:us-east-1:1:key/k1").send());
        let _ = aws.block_on(kms.list_keys().send());
        let text = std::fs::read_to_string(&file).expect("recorded calls");
        let _ = std::fs::remove_file(&file);
        assert_eq!(
            text,
            "KMS:Sign alias/upscaler-splitter-signing-dev\n\
             KMS:GetPublicKey arn:aws:kms:us-east-1:1:key/k1\n\
             KMS:ListKeys\n"
        );
    }

    #[test]
    fn the_overlay_lookup_takes_the_last_value() {
        let vars = vec![("A".to_owned(), "1".to_owned()), ("A".to_owned(), "2".to_owned())];
        assert_eq!(lookup(&vars, "A").as_deref(), Some("2"));
        assert_eq!(lookup(&vars, "B"), None);
        assert_eq!(lookup(&[], "A"), None);
    }

    #[test]
    fn the_env_file_is_read_back() {
        let text = "# comment\nexport AWS_ENDPOINT_URL=http://127.0.0.1:4566\nexport SPLITTER_LOCAL_STATE_DIR='/a dir/it'\\''s'\nnot an export\n";
        assert_eq!(
            parse_env_file(text),
            vec![
                ("AWS_ENDPOINT_URL".to_owned(), "http://127.0.0.1:4566".to_owned()),
                ("SPLITTER_LOCAL_STATE_DIR".to_owned(), "/a dir/it's".to_owned()),
            ]
        );
    }

    #[test]
    fn fractional_timestamps_lose_their_fraction_and_nothing_else_changes() {
        let moto = br#"{"events": [{"ingestionTime": 1795808949767, "message": "say \"timestamp\": 1.5", "timestamp": 1795808949661.823}], "nextForwardToken": "f/0"}"#;
        let fixed = String::from_utf8(integer_timestamps(moto)).expect("utf-8");
        assert_eq!(
            fixed,
            r#"{"events": [{"ingestionTime": 1795808949767, "message": "say \"timestamp\": 1.5", "timestamp": 1795808949661}], "nextForwardToken": "f/0"}"#
        );
        let real = br#"{"events":[{"timestamp":1700000000000,"message":"x"}]}"#;
        assert_eq!(integer_timestamps(real), real.to_vec());
    }
}
