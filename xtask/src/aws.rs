//! AWS clients from the default credential chain (profiles, env, SSO, OIDC web identity).
//!
//! `AWS_ENDPOINT_URL` (read by `aws-config` itself) is the only switch between real AWS and the
//! local stack: there is no separate code path for "local". When an endpoint is set, S3 uses
//! path-style addressing (moto and most S3-compatible stores need it).

use std::future::Future;

use anyhow::{Context, Result, anyhow};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::runtime::Runtime;

/// A tokio runtime plus the loaded SDK configuration. Commands stay synchronous and call
/// [`Aws::block_on`] around SDK calls.
#[derive(Debug)]
pub struct Aws {
    rt: Runtime,
    pub config: SdkConfig,
}

impl Aws {
    /// Loads the configuration for `region` from the default chain.
    #[allow(dead_code)] // used by push, deploy and itest (their branches land separately)
    pub fn load(region: &str) -> Result<Aws> {
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
            crate::config::LOCAL_ACCESS_KEY_ID,
            crate::config::LOCAL_SECRET_ACCESS_KEY,
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
        aws_sdk_ecr::Client::new(&self.config)
    }
    pub fn batch(&self) -> aws_sdk_batch::Client {
        aws_sdk_batch::Client::new(&self.config)
    }
    #[allow(dead_code)] // used by push (its branch lands separately)
    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.config)
    }
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config)
    }
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.config)
    }
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// Turns an SDK error into an `anyhow` error that keeps the service's message (the SDK's own
/// `Display` says only "service error").
pub fn sdk_error<E: std::error::Error>(err: E) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sts::error::DisplayErrorContext(&err))
}
