//! Logs go to stderr: human-readable text on a terminal, JSON lines otherwise (CloudWatch).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `SPLITTER_LOG_FORMAT` / `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    Text,
    Json,
}

impl LogFormat {
    /// `Auto` resolved against stderr.
    pub fn resolve(self) -> LogFormat {
        match self {
            LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Text,
            LogFormat::Auto => LogFormat::Json,
            other => other,
        }
    }
}

/// Installs the subscriber. The level comes from `SPLITTER_LOG` (e.g. `debug`), default
/// `info`; the AWS SDK's own chatter stays at `warn`.
pub fn init(format: LogFormat) {
    let default = "info,aws_config=error,aws_smithy_runtime=warn,aws_sdk_s3=warn,hyper=warn";
    let filter = std::env::var("SPLITTER_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format.resolve() {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .try_init(),
        _ => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .try_init(),
    };
    // Already installed (tests): keep the existing one.
    let _ = result;
}
