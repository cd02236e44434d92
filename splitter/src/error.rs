//! Failure categories and the exit codes they map to (documented in the README).

use std::fmt;
use std::process::ExitCode;

/// What went wrong, from the caller's point of view. Each kind has its own exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anything else: an ffmpeg run that failed unexpectedly, a network error, a bug. Exit 1.
    Other,
    /// Bad command line (also clap's own errors). Exit 2.
    Usage,
    /// The input does not exist or cannot be read (missing file, object or bucket, access
    /// denied). Exit 3.
    InputUnreadable,
    /// The input was read but is not a video this tool can split (empty, random bytes, text,
    /// a still image, audio only, truncated). Exit 4.
    NotAVideo,
    /// The output cannot be written (not a directory, bucket missing, access denied, disk
    /// full). Exit 5.
    OutputUnwritable,
    /// ffmpeg or ffprobe is missing, not runnable or older than the minimum version. Exit 6.
    Tools,
    /// `verify` found problems. Exit 7.
    VerifyFailed,
    /// Interrupted by SIGINT/SIGTERM. Exit 130.
    Interrupted,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::InputUnreadable => 3,
            Kind::NotAVideo => 4,
            Kind::OutputUnwritable => 5,
            Kind::Tools => 6,
            Kind::VerifyFailed => 7,
            Kind::Interrupted => 130,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Other => "other",
            Kind::Usage => "usage",
            Kind::InputUnreadable => "input_unreadable",
            Kind::NotAVideo => "not_a_video",
            Kind::OutputUnwritable => "output_unwritable",
            Kind::Tools => "tools",
            Kind::VerifyFailed => "verify_failed",
            Kind::Interrupted => "interrupted",
        }
    }
}

impl From<Kind> for ExitCode {
    fn from(kind: Kind) -> ExitCode {
        ExitCode::from(kind.exit_code())
    }
}

/// An error with a category; carried inside `anyhow::Error` chains.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Builds an `anyhow::Error` of the given kind.
pub fn fail(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure { kind, message: message.into() })
}

/// The kind of an error: the first [`Failure`] in its chain, else [`Kind::Other`].
pub fn kind_of(err: &anyhow::Error) -> Kind {
    // `downcast_ref` also sees a Failure used as context (it walks nested contexts); the chain
    // walk finds one wrapped as a plain source.
    err.downcast_ref::<Failure>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<Failure>()))
        .map_or(Kind::Other, |f| f.kind)
}

/// The whole chain on one line: "context: cause: root cause".
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        let text = text.trim().to_string();
        if text.is_empty() || parts.last().is_some_and(|last| last.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Attaches a kind to errors of a `Result`, keeping the original as the cause.
pub trait ResultExt<T> {
    fn kind(self, kind: Kind, message: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn kind(self, kind: Kind, message: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| e.into().context(Failure { kind, message: message() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kind_is_found_anywhere_in_the_chain() {
        let err = fail(Kind::NotAVideo, "no video stream").context("probing input.mp4");
        assert_eq!(kind_of(&err), Kind::NotAVideo);
        assert_eq!(one_line(&err), "probing input.mp4: no video stream");
        let plain = anyhow::anyhow!("boom");
        assert_eq!(kind_of(&plain), Kind::Other);
    }

    #[test]
    fn result_ext_keeps_the_cause_on_the_same_line() {
        let io: Result<(), std::io::Error> =
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"));
        let err = io
            .kind(Kind::InputUnreadable, || "cannot open x.mp4".into())
            .context("split")
            .expect_err("must fail");
        assert_eq!(kind_of(&err), Kind::InputUnreadable);
        assert_eq!(one_line(&err), "split: cannot open x.mp4: No such file");
        assert_eq!(Kind::InputUnreadable.exit_code(), 3);
    }
}
