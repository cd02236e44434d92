//! The `cargo xtask …` line each stage's header (and a dry run) shows, made from the stage's
//! typed arguments ([`Line`]); the test parses every such line back with the command's own clap
//! definition, so a line means what the stage runs.

use std::fmt::Display;
use std::path::Path;

use super::ITEST_LOG_LINES;
use crate::config::Target;
use crate::deploy::Deploy;
use crate::dry_run::shell_quote;
use crate::image::{self, Image};
use crate::itest::Itest;
use crate::local::Up;
use crate::push::Push;
use crate::scan::{self, Scan};
use crate::sign::Sign;
use crate::time::format_duration;

/// `cargo xtask …` equivalent to a stage's typed arguments: the lines the headers and a dry run
/// show. Flags at their defaults are left out, except the target's (always shown) and itest's
/// `--timeout`.
struct Line(Vec<String>);

impl Line {
    /// A line for `command` (`"image"`, `"local up"`).
    fn new(command: &str) -> Line {
        Line(command.split(' ').map(str::to_owned).collect())
    }
    fn target(self, t: &Target) -> Line {
        self.value("--project", &t.project).value("--env", t.env).value("--region", &t.region)
    }
    fn value(mut self, flag: &str, value: impl Display) -> Line {
        self.0.extend([flag.to_owned(), value.to_string()]);
        self
    }
    fn option(self, flag: &str, value: Option<impl Display>) -> Line {
        match value {
            Some(value) => self.value(flag, value),
            None => self,
        }
    }
    fn switch(mut self, flag: &str, on: bool) -> Line {
        if on {
            self.0.push(flag.to_owned());
        }
        self
    }
    fn finish(self) -> String {
        xtask_line(&self.0)
    }
}

impl Image {
    /// The build's command line (not `save`/`load`, which the pipeline never runs).
    pub(super) fn command_line(&self) -> String {
        let mut line = Line::new("image")
            .value("--project", &self.project)
            .option("--platform", Some(&self.platform).filter(|p| *p != image::DEFAULT_PLATFORM))
            .option("--base-image", self.base_image.as_ref())
            .switch("--no-cache", self.no_cache);
        for spec in &self.cache_from {
            line = line.value("--cache-from", spec);
        }
        line.option("--cache-to", self.cache_to.as_ref()).switch("--dry-run", self.dry_run).finish()
    }
}

impl Scan {
    pub(super) fn command_line(&self) -> String {
        Line::new("scan")
            .option("--image", self.image.as_ref())
            .option("--severity", Some(&self.severity).filter(|s| *s != scan::DEFAULT_SEVERITY))
            .switch("--include-unfixed", self.include_unfixed)
            .option("--ignorefile", self.ignorefile.as_ref().map(|p| p.display()))
            .option("--cache-dir", self.cache_dir.as_ref().map(|p| p.display()))
            .option("--db-repository", self.db_repository.as_ref())
            .switch("--skip-db-update", self.skip_db_update)
            .switch("--offline-scan", self.offline_scan)
            .option(
                "--trivy",
                Some(self.trivy.display())
                    .filter(|_| self.trivy.as_path() != Path::new(scan::DEFAULT_TRIVY)),
            )
            .switch("--dry-run", self.dry_run)
            .finish()
    }
}

impl Push {
    pub(super) fn command_line(&self) -> String {
        Line::new("push")
            .target(&self.target)
            .switch("--allow-dirty", self.allow_dirty)
            .switch("--dry-run", self.dry_run)
            .finish()
    }
}

impl Sign {
    pub(super) fn command_line(&self) -> String {
        Line::new("sign")
            .target(&self.target)
            .option("--tag", self.tag.as_ref())
            .option("--sbom", self.sbom.as_ref().map(|p| p.display()))
            .switch("--no-attestation", self.no_attestation)
            .switch("--dry-run", self.dry_run)
            .finish()
    }
}

impl Deploy {
    pub(super) fn command_line(&self) -> String {
        Line::new("deploy")
            .target(&self.target)
            .option("--tag", self.tag.as_ref())
            .switch("--force", self.register.force)
            .switch("--dry-run", self.register.dry_run)
            .switch("--yes", self.register.yes)
            .switch("--allow-unsigned", self.register.allow_unsigned)
            .finish()
    }
}

impl Itest {
    pub(super) fn command_line(&self) -> String {
        Line::new("itest")
            .target(&self.target)
            .option("--video", self.video.as_ref().map(|v| v.display()))
            .value("--timeout", format_duration(self.timeout))
            .option("--segment-seconds", self.segment_seconds.as_ref())
            .switch("--keep", self.keep)
            .switch("--no-join", self.no_join)
            .option("--log-lines", Some(self.log_lines).filter(|n| *n != ITEST_LOG_LINES))
            .switch("--dry-run", self.dry_run)
            .finish()
    }
}

impl Up {
    pub(super) fn command_line(&self) -> String {
        let stack = &self.stack;
        Line::new("local up")
            .value("--moto-port", stack.moto_port)
            .value("--registry-port", stack.registry_port)
            .option("--state-dir", stack.state_dir.as_ref().map(|d| d.display()))
            .target(&self.target)
            .option("--base-image", self.base_image.as_ref())
            .switch("--no-install", self.no_install)
            .option("--owner-pid", self.owner_pid)
            .switch("--dry-run", self.dry_run)
            .finish()
    }
}

/// `cargo xtask ARGS…`, quoted for a shell.
pub(super) fn xtask_line(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    format!("cargo xtask {}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::{Result, anyhow};
    use clap::{Args, Parser};

    use super::*;
    use crate::config::{Env, LocalStack};
    use crate::deploy::RegisterFlags;

    /// A command's arguments parsed by its own clap definition, as `cargo xtask ARGV…` would
    /// (`argv[0]` is the subcommand's name, where clap expects the binary's).
    fn parse<T: Args>(argv: &[String]) -> Result<T> {
        #[derive(Debug, Parser)]
        struct Command<T: Args> {
            #[command(flatten)]
            inner: T,
        }
        Command::<T>::try_parse_from(argv)
            .map(|c| c.inner)
            .map_err(|e| anyhow!("invalid command `{}`: {e}", xtask_line(argv)))
    }

    /// The words of a line [`xtask_line`] made (plain words and `'…'` quoting, `\'` escapes).
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                ' ' => words.extend(word.take()),
                '\'' => {
                    let w = word.get_or_insert_with(String::new);
                    w.extend(chars.by_ref().take_while(|c| *c != '\''));
                }
                '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
                c => word.get_or_insert_with(String::new).push(c),
            }
        }
        words.extend(word);
        words
    }

    /// `line` (`cargo xtask CMD …`, `cargo xtask local up …`) parsed by `T`'s clap definition,
    /// the way `cargo xtask` parses it: from the last word before the first flag.
    fn parse_line<T: Args>(line: &str) -> T {
        let words = shell_words(line);
        assert_eq!(words[..2], ["cargo", "xtask"], "{line}");
        let first_flag = words.iter().position(|w| w.starts_with("--")).unwrap_or(words.len());
        parse(&words[first_flag - 1..]).unwrap_or_else(|e| panic!("{line}: {e:#}"))
    }

    /// Each stage's command line means its typed arguments: parsed back by the command's own
    /// definition, it gives the same value (compared by their `Debug` text).
    #[test]
    fn stage_command_lines_parse_back_to_the_same_arguments() {
        fn round_trip<T: Args + std::fmt::Debug>(value: &T, line: &str) {
            let parsed: T = parse_line(line);
            assert_eq!(format!("{parsed:?}"), format!("{value:?}"), "{line}");
        }
        let target = Target { project: "p".into(), env: Env::Staging, region: "eu-west-1".into() };

        // What the pipeline runs, as `cargo xtask pipeline --local --dry-run` would.
        let mut image = Image::with_base_image(Some("upscaler-base:trixie".into()));
        image.dry_run = true;
        round_trip(&image, &image.command_line());
        assert_eq!(
            image.command_line(),
            "cargo xtask image --project upscaler --base-image upscaler-base:trixie --dry-run"
        );
        let scan = Scan::with_db_repository(Some("127.0.0.1:5000/trivy-db:2".into()));
        round_trip(&scan, &scan.command_line());
        let push = Push { target: target.clone(), allow_dirty: false, dry_run: false };
        assert_eq!(
            push.command_line(),
            "cargo xtask push --project p --env staging --region eu-west-1"
        );
        round_trip(&push, &push.command_line());
        let sign = Sign {
            target: target.clone(),
            tag: None,
            sbom: None,
            no_attestation: false,
            dry_run: false,
        };
        assert_eq!(
            sign.command_line(),
            "cargo xtask sign --project p --env staging --region eu-west-1"
        );
        round_trip(&sign, &sign.command_line());
        let register = RegisterFlags { yes: true, ..RegisterFlags::default() };
        let deploy = Deploy { target: target.clone(), tag: None, register };
        assert_eq!(
            deploy.command_line(),
            "cargo xtask deploy --project p --env staging --region eu-west-1 --yes"
        );
        round_trip(&deploy, &deploy.command_line());
        let mut itest = Itest {
            target: target.clone(),
            video: Some("my clip.mp4".into()),
            timeout: Duration::from_secs(5400),
            segment_seconds: None,
            keep: true,
            no_join: false,
            log_lines: ITEST_LOG_LINES,
            dry_run: false,
        };
        assert_eq!(
            itest.command_line(),
            "cargo xtask itest --project p --env staging --region eu-west-1 --video 'my clip.mp4' \
             --timeout 1h30m --keep"
        );
        round_trip(&itest, &itest.command_line());

        let stack = LocalStack {
            moto_port: 4600,
            registry_port: 5001,
            state_dir: Some("/tmp/a stack".into()),
        };
        let mut up =
            Up::new(stack, target.clone(), Some("upscaler-base:trixie".into()), false, true);
        assert_eq!(
            up.command_line(),
            "cargo xtask local up --moto-port 4600 --registry-port 5001 --state-dir '/tmp/a stack' \
             --project p --env staging --region eu-west-1 --base-image upscaler-base:trixie --dry-run"
        );
        round_trip(&up, &up.command_line());

        // Every flag away from its default.
        up.no_install = true;
        up.owner_pid = Some(42);
        up.dry_run = false;
        round_trip(&up, &up.command_line());
        image.project = "acme".into();
        image.platform = "linux/arm64".into();
        image.no_cache = true;
        image.cache_from = vec!["type=gha".into(), "it's:cached".into()];
        image.cache_to = Some("type=gha,mode=max".into());
        round_trip(&image, &image.command_line());
        let mut scan = Scan::with_db_repository(Some("mirror:5000/db:2".into()));
        scan.image = Some("some:image".into());
        scan.severity = "CRITICAL".into();
        scan.include_unfixed = true;
        scan.ignorefile = Some("a dir/.trivyignore".into());
        scan.cache_dir = Some("/c".into());
        scan.skip_db_update = true;
        scan.offline_scan = true;
        scan.trivy = "/opt/trivy".into();
        scan.dry_run = true;
        round_trip(&scan, &scan.command_line());
        let push = Push { target: target.clone(), allow_dirty: true, dry_run: true };
        round_trip(&push, &push.command_line());
        let register =
            RegisterFlags { force: true, dry_run: true, yes: false, allow_unsigned: true };
        let deploy = Deploy { target: target.clone(), tag: Some("0123abc".into()), register };
        round_trip(&deploy, &deploy.command_line());
        let sign = Sign {
            target: target.clone(),
            tag: Some("0123abc".into()),
            sbom: Some("my sbom.json".into()),
            no_attestation: false,
            dry_run: true,
        };
        round_trip(&sign, &sign.command_line());
        itest.segment_seconds = Some("4".into());
        itest.log_lines = 7;
        itest.no_join = true;
        itest.dry_run = true;
        round_trip(&itest, &itest.command_line());
    }

    #[test]
    fn lines_are_quoted_and_unknown_flags_refused() {
        let args = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        let err = parse::<Up>(&args(&["up", "--bogus"])).expect_err("unknown");
        assert!(err.to_string().contains("cargo xtask up --bogus"), "{err}");
        assert_eq!(
            xtask_line(&args(&["itest", "--video", "my clip.mp4"])),
            "cargo xtask itest --video 'my clip.mp4'"
        );
        assert_eq!(shell_words(r"a 'b c' 'it'\''s'"), ["a", "b c", "it's"]);
    }
}
