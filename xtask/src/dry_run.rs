//! `--dry-run`, written once: a command builds the real thing (an [`xshell::Cmd`], or the closure
//! that sends an SDK request) and a [`DryRun`] either runs it or prints what it would do, the way
//! cross-rs's `build_docker_image` takes a `Cmd` and its `--dry-run`. So a dry run prints the very
//! command a real run starts, not a line formatted to look like it.
//!
//! The printed lines read `[dry-run] would run: PROGRAM ARGS…` for a process and
//! `[dry-run] would WHAT` for anything else (an SDK request, an in-process stage).

use std::fmt::Display;
use std::process::Command;

use anyhow::Result;
use xshell::Cmd;

/// Whether to run or to print; `Copy`, so it is passed by value to whatever runs commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DryRun {
    on: bool,
    /// Spaces before each printed line (output nested under a heading).
    indent: usize,
}

impl DryRun {
    /// Runs everything (a step whose dry run is its own business, e.g. a command that prints its
    /// own plan).
    pub(crate) const OFF: DryRun = DryRun { on: false, indent: 0 };

    /// `--dry-run` given: print instead of running.
    pub(crate) fn new(on: bool) -> DryRun {
        DryRun { on, indent: 0 }
    }

    /// Whether this is a dry run (for a command that stops early when nothing happened).
    pub(crate) fn is_on(self) -> bool {
        self.on
    }

    /// The same, its lines indented by two more spaces.
    pub(crate) fn nested(self) -> DryRun {
        DryRun { indent: self.indent + 2, ..self }
    }

    /// Runs `cmd`, or prints `[dry-run] would run: CMD` (see [`command_line`]).
    pub(crate) fn run(self, cmd: Cmd<'_>) -> Result<()> {
        if self.on {
            self.would(format_args!("run: {}", command_line(cmd)));
            return Ok(());
        }
        Ok(cmd.run()?)
    }

    /// Calls `f`, or prints `[dry-run] would WHAT` and returns `None`: for what is not a
    /// process, e.g. an SDK request (`"tag … as latest (ecr:PutImage)"`).
    pub(crate) fn call<T>(
        self,
        what: impl Display,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<Option<T>> {
        if self.on {
            self.would(what);
            return Ok(None);
        }
        f().map(Some)
    }

    /// Prints `[dry-run] would WHAT` on a dry run, nothing otherwise: for a plan printed before
    /// a command stops short.
    pub(crate) fn would(self, what: impl Display) {
        if self.on {
            println!("{:indent$}[dry-run] would {what}", "", indent = self.indent);
        }
    }
}

/// `cmd` as one line for a POSIX shell: the variables it sets (`KEY=value`; removed ones are
/// left out), the program as it will be started, the arguments, each word quoted when it needs
/// it. Standard input is not shown (a password given on stdin stays out of it).
pub(crate) fn command_line(cmd: Cmd<'_>) -> String {
    process_line(&Command::from(cmd))
}

/// [`command_line`] of a [`Command`] (one that is started detached rather than run); its working
/// directory is not shown.
pub(crate) fn process_line(command: &Command) -> String {
    let env = command.get_envs().filter_map(|(key, value)| {
        let value = value?;
        Some(format!("{}={}", key.to_string_lossy(), shell_quote(&value.to_string_lossy())))
    });
    let words = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| shell_quote(&word.to_string_lossy()));
    env.chain(words).collect::<Vec<_>>().join(" ")
}

/// Quotes a word for a POSIX shell when it needs it ([`command_line`], the local stack's env file).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%^".contains(c));
    if plain { word.to_owned() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("linux/amd64"), "linux/amd64");
        assert_eq!(
            shell_quote("BUILD_DATE=2025-01-01T00:00:00Z"),
            "BUILD_DATE=2025-01-01T00:00:00Z"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
    use xshell::{Shell, cmd};

    #[test]
    fn commands_print_as_shell_lines() {
        let sh = Shell::new().expect("shell");
        let (file, quote) = ("my file.txt", "it's");
        let line = command_line(
            cmd!(sh, "/usr/bin/docker tag {file} {quote}")
                .env("DOCKER_BUILDKIT", "1")
                .env_remove("X"),
        );
        assert_eq!(line, r"DOCKER_BUILDKIT=1 /usr/bin/docker tag 'my file.txt' 'it'\''s'");
        let secret = cmd!(sh, "docker login --password-stdin host").stdin("hunter2");
        assert_eq!(command_line(secret), "docker login --password-stdin host");
    }

    #[test]
    fn a_dry_run_calls_nothing() {
        let sh = Shell::new().expect("shell");
        let dry = DryRun::new(true).nested();
        assert!(dry.is_on());
        assert_eq!(dry.call("fail", || -> Result<()> { anyhow::bail!("called") }).ok(), Some(None));
        // A program that cannot exist: running it would fail.
        dry.run(cmd!(sh, "/nonexistent/xtask-dry-run-test")).expect("printed, not run");
        assert_eq!(DryRun::OFF.call("add", || Ok(2)).ok(), Some(Some(2)));
        assert!(DryRun::new(false).run(cmd!(sh, "/nonexistent/xtask-dry-run-test")).is_err());
    }
}
