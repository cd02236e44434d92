//! Retries of S3 requests: which failures are transient, how long to wait between attempts,
//! how many attempts, and the timeouts that turn a hung connection into a failure that can be
//! retried. The policy is pure ([`verdict`], [`backoff`]); [`with_retries`] applies it to one
//! request, built afresh for every attempt.
//!
//! The SDK's own retry loop is off for the splitter's client: one loop, this one, retries
//! everything, so each retry is logged once with its attempt number and the attempts are
//! bounded in one place. It retries the classes the SDK's standard mode retries (throttling and
//! transient error codes, HTTP 500/502/503/504, timeouts, I/O errors) and also transport
//! failures the SDK leaves alone ("connection closed before message completed" when a proxy or
//! load balancer drops a connection after it read the request). Every request the splitter
//! sends is idempotent or made safe to repeat by its caller (see `Uploader::complete`).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Result, bail};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::{HasStatus, describe};

/// Environment variables that set the limits (documented in the splitter README).
pub const ENV_MAX_ATTEMPTS: &str = "SPLITTER_S3_MAX_ATTEMPTS";
pub const ENV_CONNECT_TIMEOUT: &str = "SPLITTER_S3_CONNECT_TIMEOUT_SECONDS";
pub const ENV_READ_TIMEOUT: &str = "SPLITTER_S3_READ_TIMEOUT_SECONDS";

/// How hard the splitter tries before an S3 request counts as failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time from sending a request to the first byte of its answer, and the longest pause
    /// allowed between two chunks of a download.
    pub read_timeout: Duration,
    /// First backoff (doubled per attempt, with full jitter) and its cap.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Limits {
    /// Suited to a Batch job in the bucket's region: a dropped connection or a throttling
    /// answer costs a few seconds. The waits between 8 attempts add up to 11–23 s, so a
    /// refused connection fails in about 20 s and an endpoint that drops connection attempts
    /// in about a minute (8 × 5 s); then Batch's own retry can take over.
    fn default() -> Limits {
        Limits {
            max_attempts: 8,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The limits from the environment (defaults where unset); one line naming the variable
    /// when a value is not usable.
    pub fn from_env() -> Result<Limits> {
        Limits::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Limits> {
        let mut limits = Limits::default();
        if let Some(v) = get(ENV_MAX_ATTEMPTS).filter(|v| !v.is_empty()) {
            match v.trim().parse::<u32>() {
                Ok(n @ 1..=100) => limits.max_attempts = n,
                _ => bail!("{ENV_MAX_ATTEMPTS} must be a whole number from 1 to 100, not {v:?}"),
            }
        }
        for (name, slot) in [
            (ENV_CONNECT_TIMEOUT, &mut limits.connect_timeout),
            (ENV_READ_TIMEOUT, &mut limits.read_timeout),
        ] {
            if let Some(v) = get(name).filter(|v| !v.is_empty()) {
                match v.trim().parse::<f64>() {
                    Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => {
                        *slot = Duration::from_secs_f64(s)
                    }
                    _ => bail!(
                        "{name} must be a number of seconds above 0 (at most 3600), not {v:?}"
                    ),
                }
            }
        }
        Ok(limits)
    }

    /// The process's limits: [`Limits::install`]ed at start-up, else the environment's (bad
    /// values then fall back to the defaults; `main` installs them first and refuses bad ones).
    pub fn get() -> &'static Limits {
        LIMITS.get_or_init(|| Limits::from_env().unwrap_or_default())
    }

    /// Sets the process's limits (once; later calls keep the first).
    pub fn install(limits: Limits) {
        let _ = LIMITS.set(limits);
    }
}

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// What is known about a failed request, for [`verdict`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure<'a> {
    /// The request could not be sent or its answer not received. `permanent`: the cause is on
    /// this side (bad request, no credentials), not the network.
    Dispatch { permanent: bool },
    /// A timeout (connect, first byte, or a stalled body).
    Timeout,
    /// An answer arrived but could not be read (cut short, garbled).
    Response,
    /// S3 answered with an error.
    Service { status: u16, code: Option<&'a str> },
    /// The request could not be built: a bug or a local file problem, never transient.
    Construction,
}

/// Whether a failure is worth another attempt.
pub fn is_transient(failure: Failure<'_>) -> bool {
    match failure {
        Failure::Dispatch { permanent } => !permanent,
        Failure::Timeout | Failure::Response => true,
        Failure::Service { status, code } => {
            matches!(status, 429 | 500 | 502 | 503 | 504)
                || code.is_some_and(|c| {
                    [
                        "SlowDown",
                        "Throttling",
                        "ThrottlingException",
                        "RequestThrottled",
                        "TooManyRequestsException",
                        "InternalError",
                        "ServiceUnavailable",
                        "RequestTimeout",
                        "RequestTimeoutException",
                    ]
                    .contains(&c)
                })
        }
        Failure::Construction => false,
    }
}

/// The wait before attempt `next` (2, 3, …): a random point between half and all of
/// `base · 2^(next-2)`, capped at `max_delay`. `random` is any uniformly random number.
pub fn backoff(limits: &Limits, next: u32, random: u64) -> Duration {
    let exponent = next.saturating_sub(2).min(20);
    let ceiling = limits.base_delay.saturating_mul(1 << exponent).min(limits.max_delay);
    let fraction = 0.5 + (random % 1_000_000) as f64 / 2_000_000.0;
    ceiling.mul_f64(fraction)
}

/// A random number for the jitter (the standard library's per-process random hash keys).
pub fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}

/// The [`Failure`] an SDK error is.
pub fn failure_of<E, R>(err: &SdkError<E, R>) -> Failure<'_>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HasStatus + std::fmt::Debug,
{
    match err {
        SdkError::DispatchFailure(d) => Failure::Dispatch {
            permanent: d.is_user() || super::classify(err) == super::ErrorClass::NoCredentials,
        },
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::ResponseError(_) => Failure::Response,
        SdkError::ServiceError(s) => {
            Failure::Service { status: s.raw().status(), code: err.code() }
        }
        _ => Failure::Construction,
    }
}

/// A request that failed for good: the last error and how many attempts were made.
#[derive(Debug)]
pub struct Failed<E, R> {
    pub error: SdkError<E, R>,
    pub attempts: u32,
}

impl<E, R> Failed<E, R>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HasStatus + std::fmt::Debug,
{
    /// The error in one line, with the attempts when there was more than one.
    pub fn describe(&self) -> String {
        match self.attempts {
            1 => describe(&self.error),
            n => format!("{} (after {n} attempts)", describe(&self.error)),
        }
    }
}

/// Sends a request (`attempt` builds and sends it afresh each time) until it succeeds, fails
/// for good, or runs out of attempts; each retry is logged once (`request` names it).
pub async fn with_retries<T, E, R, F, Fut>(request: &str, mut attempt: F) -> Result<T, Failed<E, R>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: HasStatus + std::fmt::Debug,
{
    let limits = Limits::get();
    let mut attempts = 1;
    loop {
        match attempt().await {
            Ok(out) => return Ok(out),
            Err(error) => {
                if attempts >= limits.max_attempts || !is_transient(failure_of(&error)) {
                    return Err(Failed { error, attempts });
                }
                next_attempt(request, &mut attempts, &describe(&error)).await;
            }
        }
    }
}

/// Counts the next attempt of `request`, which failed for `reason`, logs the retry (its one
/// log line) and waits its backoff.
pub async fn next_attempt(request: &str, attempt: &mut u32, reason: &str) {
    let limits = Limits::get();
    *attempt += 1;
    let wait = backoff(limits, *attempt, random());
    tracing::warn!(
        request,
        attempt = *attempt,
        max_attempts = limits.max_attempts,
        error = reason,
        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "S3 request failed; retrying"
    );
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_the_network_throttling_and_server_errors() {
        assert!(is_transient(Failure::Dispatch { permanent: false }));
        assert!(!is_transient(Failure::Dispatch { permanent: true }));
        assert!(is_transient(Failure::Timeout));
        assert!(is_transient(Failure::Response));
        assert!(is_transient(Failure::Service { status: 503, code: Some("SlowDown") }));
        assert!(is_transient(Failure::Service { status: 500, code: None }));
        assert!(is_transient(Failure::Service { status: 400, code: Some("RequestTimeout") }));
        assert!(!is_transient(Failure::Service { status: 403, code: Some("AccessDenied") }));
        assert!(!is_transient(Failure::Service { status: 404, code: Some("NoSuchUpload") }));
        assert!(!is_transient(Failure::Service { status: 404, code: Some("NoSuchBucket") }));
        assert!(!is_transient(Failure::Construction));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let limits = Limits::default();
        for random in [0, 123_456, 999_999, u64::MAX] {
            let first = backoff(&limits, 2, random);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
            let third = backoff(&limits, 4, random);
            assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
            let late = backoff(&limits, 30, random);
            assert!(late >= Duration::from_secs(5) && late <= Duration::from_secs(10));
        }
        assert_ne!(backoff(&limits, 3, 1), backoff(&limits, 3, 700_000));
    }

    #[test]
    fn limits_come_from_the_environment_and_bad_values_are_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(Limits::from_lookup(env(&[])).expect("defaults"), Limits::default());
        let set = Limits::from_lookup(env(&[
            (ENV_MAX_ATTEMPTS, "3"),
            (ENV_CONNECT_TIMEOUT, "0.5"),
            (ENV_READ_TIMEOUT, "2"),
        ]))
        .expect("valid");
        assert_eq!(set.max_attempts, 3);
        assert_eq!(set.connect_timeout, Duration::from_millis(500));
        assert_eq!(set.read_timeout, Duration::from_secs(2));
        for bad in [
            &[(ENV_MAX_ATTEMPTS, "0")][..],
            &[(ENV_MAX_ATTEMPTS, "many")],
            &[(ENV_READ_TIMEOUT, "-1")],
            &[(ENV_CONNECT_TIMEOUT, "inf")],
        ] {
            let err = Limits::from_lookup(env(bad)).expect_err("refused").to_string();
            assert!(err.contains(bad[0].0), "{err}");
        }
    }
}
