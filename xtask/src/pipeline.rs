//! `cargo xtask pipeline`: image → scan → push → deploy → itest, the deployment guide's stages in
//! order, stopping at the first failure with the stage named; `--local` first brings the local
//! stack up. The README's main command: `cargo xtask pipeline --local`.
//!
//! Each stage is the very command a user would type (`cargo xtask image --project … …`): its
//! argument list is parsed by the command's own clap definition and its `run` is called in this
//! process (no `cargo xtask` subprocess). So flags, defaults and errors are the individual
//! commands', and the summary can print the equivalent command lines.
//!
//! With `--local`, after `local up` the stack's env file is applied to this process
//! ([`crate::aws::set_env_overlay`]: the endpoint, dummy credentials and the local registry), the
//! offline Trivy DB is mirrored into the local registry and the scan downloads it from there.
//! What each stage did is read back afterwards (build record, scan report, ECR tags, job
//! definition revisions), so the summary shows what is, not what was intended.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, ValueEnum};
use xshell::Shell;

use crate::aws::Aws;
use crate::build_record::BuildRecord;
use crate::config::{Env, LocalStack, Target};
use crate::docker::{shell_quote, short_id};
use crate::itest::{self, Itest};
use crate::scan::trivy_db::Severity;
use crate::{deploy, ecr, image, jobdef, local, push, scan, tools};

/// Tools the stages after `local up` need that `local up` does not install: Trivy (scan) and
/// curl (publishing the offline Trivy DB to the stack's registry).
const LOCAL_EXTRA_TOOLS: &[tools::Tool] = &[
    tools::TRIVY,
    tools::Tool {
        name: "curl",
        check: tools::Check::Program("curl"),
        install: tools::Install::Apt("curl"),
    },
];

/// The stages `--skip` can name, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    Image,
    Scan,
    Push,
    Deploy,
    Itest,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Image => "image",
            Stage::Scan => "scan",
            Stage::Push => "push",
            Stage::Deploy => "deploy",
            Stage::Itest => "itest",
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask pipeline --local                     # fresh machine: stack, image, scan, push, deploy, itest
  cargo xtask pipeline --local --allow-dirty       # with uncommitted changes (tags end in -dirty)
  cargo xtask pipeline --env staging               # real AWS (credentials from the default chain)
  cargo xtask pipeline --env prod --yes --skip itest
  cargo xtask pipeline --local --dry-run           # print the stages' commands only

Each stage runs the same code as its own command (`cargo xtask image`, `scan`, `push`, `deploy`,
`itest`); the first failure stops the pipeline and names the stage. A summary table follows:
each stage's time and result, the image digest, the job definition revision, the itest result.")]
pub struct Pipeline {
    #[command(flatten)]
    target: Target,
    /// Start (or reuse) the local stack first and run every stage against it, the Trivy DB from
    /// its registry.
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    stack: LocalStack,
    /// Do not install missing tools with `--local`; fail with the install command instead.
    #[arg(long)]
    no_install: bool,
    /// Debian trixie image the build starts from (image's --base-image) [default: the stack's
    /// with --local, else the Dockerfile's pinned one].
    #[arg(long, env = "SPLITTER_BASE_IMAGE", value_name = "IMAGE")]
    base_image: Option<String>,
    /// Rebuild every layer (image's --no-cache).
    #[arg(long)]
    no_cache: bool,
    /// Where Trivy gets its DB (scan's --db-repository) [default with --local: the offline DB
    /// mirrored into the stack's registry].
    #[arg(long, value_name = "REPO")]
    db_repository: Option<String>,
    /// Push an image built from a work tree with uncommitted changes (push's --allow-dirty).
    #[arg(long)]
    allow_dirty: bool,
    /// Confirm a prod deploy (deploy's --yes).
    #[arg(long)]
    yes: bool,
    /// Stages to leave out, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "STAGE")]
    skip: Vec<Stage>,
    /// itest: the video to split [default: the fixture].
    #[arg(long, value_name = "PATH")]
    video: Option<PathBuf>,
    /// itest: terminate the job and fail after this long.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = itest::parse_duration)]
    timeout: Duration,
    /// itest: keep the run's S3 objects.
    #[arg(long)]
    keep: bool,
    /// Print each stage's command; run nothing.
    #[arg(long)]
    dry_run: bool,
}

/// What one stage did.
#[derive(Debug)]
struct Row {
    name: &'static str,
    seconds: Option<f64>,
    result: Result<String, String>,
}

/// Facts for the summary's last lines.
#[derive(Debug, Default)]
struct Facts {
    digest: Option<String>,
    revision: Option<String>,
    itest: Option<String>,
}

impl Pipeline {
    pub fn run(self, sh: &Shell) -> Result<()> {
        if self.target.env == Env::Prod
            && !self.yes
            && !self.dry_run
            && !self.skip.contains(&Stage::Deploy)
        {
            bail!(
                "the pipeline deploys to prod, which needs confirmation: rerun with --yes (or --skip deploy,itest \
                 to build, scan and push only)"
            );
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut facts = Facts::default();
        let started = Instant::now();
        let result = self.stages(sh, &mut rows, &mut facts);
        print_summary(&self, &rows, &facts, started.elapsed());
        result
    }

    fn stages(&self, sh: &Shell, rows: &mut Vec<Row>, facts: &mut Facts) -> Result<()> {
        let t = &self.target;
        let common = vec![
            "--project".to_owned(),
            t.project.clone(),
            "--env".to_owned(),
            t.env.to_string(),
            "--region".to_owned(),
            t.region.clone(),
        ];
        let stack_args = vec![
            "--moto-port".to_owned(),
            self.stack.moto_port.to_string(),
            "--registry-port".to_owned(),
            self.stack.registry_port.to_string(),
            "--state-dir".to_owned(),
            self.stack.state_dir().display().to_string(),
        ];
        let total = 5 + usize::from(self.local);
        let mut n = 0;
        let mut base_image = self.base_image.clone().filter(|b| !b.trim().is_empty());
        let mut db_repository = self.db_repository.clone();

        if self.local {
            n += 1;
            let mut argv = args(&["local", "up"]);
            argv.extend(stack_args.clone());
            argv.extend(common.clone());
            if let Some(b) = &base_image {
                argv.extend(args(&["--base-image", b]));
            }
            if self.no_install {
                argv.push("--no-install".to_owned());
            }
            if self.dry_run {
                argv.push("--dry-run".to_owned());
            }
            header(n, total, "local", &argv);
            let r = timed(|| {
                parse::<local::Local>(&argv)?.run(sh)?;
                // What the later stages need besides the stack's own tools.
                let mode =
                    if self.no_install { tools::Mode::CheckOnly } else { tools::Mode::Install };
                tools::ensure(sh, LOCAL_EXTRA_TOOLS, mode, self.dry_run)?;
                if self.dry_run {
                    return Ok("dry run".to_owned());
                }
                let env_file = self.stack.env_file();
                let text = std::fs::read_to_string(&env_file).with_context(|| {
                    format!("`local up` wrote no env file at {}", env_file.display())
                })?;
                let vars = crate::aws::parse_env_file(&text);
                let var = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let endpoint =
                    var("AWS_ENDPOINT_URL").context("the env file has no AWS_ENDPOINT_URL")?;
                let registry = var(ecr::LOCAL_REGISTRY_VAR)
                    .context("the env file has no SPLITTER_LOCAL_REGISTRY")?;
                if base_image.is_none() {
                    base_image = var("SPLITTER_BASE_IMAGE");
                }
                crate::aws::set_env_overlay(vars)?;
                Ok(format!("moto {endpoint}, registry {registry}"))
            });
            if !record(rows, "local", r)? {
                return Err(stopped("local", rows));
            }
        }

        // image
        n += 1;
        let mut argv = args(&["image", "--project", &t.project]);
        if let Some(b) = &base_image {
            argv.extend(args(&["--base-image", b]));
        }
        if self.no_cache {
            argv.push("--no-cache".to_owned());
        }
        if self.dry_run {
            argv.push("--dry-run".to_owned());
        }
        if !self.stage(sh, rows, n, total, Stage::Image, &argv, |sh| {
            parse::<image::Image>(&argv)?.run(sh)?;
            if self.dry_run {
                return Ok("dry run".to_owned());
            }
            let record = BuildRecord::load()?;
            Ok(format!(
                "{} ({}, {:.1} MB)",
                record.image_ref(),
                short(&record.image_id),
                record.size_bytes as f64 / 1e6
            ))
        })? {
            return Err(stopped("image", rows));
        }

        // scan
        n += 1;
        let registry = crate::aws::env_var(ecr::LOCAL_REGISTRY_VAR);
        let mirror = self.local && db_repository.is_none();
        if mirror {
            let host = registry.clone().unwrap_or_else(|| self.stack.registry());
            db_repository =
                Some(format!("{host}/{}:{}", scan::mirror::DB_REPOSITORY, scan::mirror::DB_TAG));
        }
        let mut argv = args(&["scan"]);
        if let Some(repo) = &db_repository {
            argv.extend(args(&["--db-repository", repo]));
        }
        if !self.stage(sh, rows, n, total, Stage::Scan, &argv, |sh| {
            if mirror {
                let host = registry.clone().unwrap_or_else(|| self.stack.registry());
                if self.dry_run {
                    println!("[dry-run] would publish the offline Trivy DB to {host}");
                } else {
                    let tmp =
                        sh.create_temp_dir().context("cannot create a temporary directory")?;
                    scan::trivy_db::TrivyDb::offline().write(tmp.path())?;
                    let reference = scan::mirror::publish_db(sh, &host, tmp.path())?;
                    println!("offline vulnerability DB published as {reference}");
                }
            }
            if self.dry_run {
                println!("[dry-run] would run: {}", command_line(&argv));
                return Ok("dry run".to_owned());
            }
            parse::<scan::Scan>(&argv)?.run(sh)?;
            Ok(scan_result())
        })? {
            return Err(stopped("scan", rows));
        }

        // push
        n += 1;
        let mut argv = args(&["push"]);
        argv.extend(common.clone());
        if self.allow_dirty {
            argv.push("--allow-dirty".to_owned());
        }
        if !self.stage(sh, rows, n, total, Stage::Push, &argv, |sh| {
            if self.dry_run {
                println!("[dry-run] would run: {}", command_line(&argv));
                return Ok("dry run".to_owned());
            }
            let tag = BuildRecord::load()?.tags.first().cloned().unwrap_or_default();
            let aws = Aws::load(&t.region)?;
            let before = aws.block_on(ecr_digest(&aws, t, &tag))?;
            parse::<push::Push>(&argv)?.run(sh)?;
            let after = aws
                .block_on(ecr_digest(&aws, t, &tag))?
                .with_context(|| format!("ECR has no tag {tag} after the push"))?;
            facts.digest = Some(after.clone());
            Ok(if before.as_deref() == Some(after.as_str()) {
                format!("{} already in ECR: nothing uploaded", short(&after))
            } else {
                format!("{} pushed as {}", short(&after), short_tag(&tag))
            })
        })? {
            return Err(stopped("push", rows));
        }

        // deploy
        n += 1;
        let mut argv = args(&["deploy"]);
        argv.extend(common.clone());
        if self.yes {
            argv.push("--yes".to_owned());
        }
        if !self.stage(sh, rows, n, total, Stage::Deploy, &argv, |sh| {
            if self.dry_run {
                println!("[dry-run] would run: {}", command_line(&argv));
                return Ok("dry run".to_owned());
            }
            let aws = Aws::load(&t.region)?;
            let before = aws.block_on(latest_revision(&aws, t))?;
            parse::<deploy::Deploy>(&argv)?.run(sh)?;
            let after = aws.block_on(latest_revision(&aws, t))?;
            facts.revision = after.map(|r| format!("{}:{r}", t.job_definition()));
            Ok(match (before, after) {
                (Some(b), Some(a)) if a == b => {
                    format!("revision {a} already runs it: nothing registered")
                }
                (b, Some(a)) => format!(
                    "registered revision {a}{}",
                    b.map(|b| format!(" (was {b})")).unwrap_or_default()
                ),
                (_, None) => "no ACTIVE revision afterwards".to_owned(),
            })
        })? {
            return Err(stopped("deploy", rows));
        }

        // itest
        n += 1;
        let mut argv = args(&["itest"]);
        argv.extend(common.clone());
        if let Some(v) = &self.video {
            argv.extend(args(&["--video", &v.display().to_string()]));
        }
        argv.extend(args(&["--timeout", &itest::format_duration(self.timeout)]));
        if self.keep {
            argv.push("--keep".to_owned());
        }
        if !self.stage(sh, rows, n, total, Stage::Itest, &argv, |sh| {
            if self.dry_run {
                println!("[dry-run] would run: {}", command_line(&argv));
                return Ok("dry run".to_owned());
            }
            let outcome = parse::<Itest>(&argv)?.execute(sh)?.context("itest ran as a dry run")?;
            let text = format!(
                "passed: {} segments + {} audio, {} checks (job {}, {:.1} s)",
                outcome.segments,
                outcome.audio,
                outcome.checks,
                outcome.job_id,
                outcome.job_seconds
            );
            facts.itest = Some(format!("passed ({})", outcome.job_definition));
            Ok(text)
        })? {
            facts.itest = Some("FAILED".to_owned());
            return Err(stopped("itest", rows));
        }
        Ok(())
    }

    /// Runs one stage unless skipped; false when it failed (its error is in `rows`).
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &self,
        sh: &Shell,
        rows: &mut Vec<Row>,
        n: usize,
        total: usize,
        stage: Stage,
        argv: &[String],
        f: impl FnOnce(&Shell) -> Result<String>,
    ) -> Result<bool> {
        if self.skip.contains(&stage) {
            println!("\n==> [{n}/{total}] {}: skipped (--skip)", stage.name());
            rows.push(Row {
                name: stage.name(),
                seconds: None,
                result: Ok("skipped (--skip)".to_owned()),
            });
            return Ok(true);
        }
        header(n, total, stage.name(), argv);
        let r = timed(|| f(sh));
        record(rows, stage.name(), r)
    }
}

/// The error that ends the pipeline: the failed stage and its one-line reason.
fn stopped(stage: &str, rows: &[Row]) -> anyhow::Error {
    let why = rows
        .iter()
        .rev()
        .find_map(|r| r.result.as_ref().err().cloned())
        .unwrap_or_else(|| "failed".to_owned());
    anyhow!("pipeline stopped at stage `{stage}`: {why}")
}

fn timed(f: impl FnOnce() -> Result<String>) -> (f64, Result<String>) {
    let started = Instant::now();
    let r = f();
    (started.elapsed().as_secs_f64(), r)
}

/// Adds a row; Ok(false) when the stage failed.
fn record(
    rows: &mut Vec<Row>,
    name: &'static str,
    (seconds, r): (f64, Result<String>),
) -> Result<bool> {
    let ok = r.is_ok();
    rows.push(Row { name, seconds: Some(seconds), result: r.map_err(|e| format!("{e:#}")) });
    Ok(ok)
}

fn header(n: usize, total: usize, name: &str, argv: &[String]) {
    println!("\n==> [{n}/{total}] {name}: {}", command_line(argv));
}

/// `cargo xtask ARGS…`, quoted for a shell.
fn command_line(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    format!("cargo xtask {}", words.join(" "))
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// A command's arguments parsed by its own clap definition, as `cargo xtask ARGV…` would.
fn parse<T: Args>(argv: &[String]) -> Result<T> {
    /// The command's name is argv[0], where clap expects the binary's.
    #[derive(Debug, Parser)]
    struct Command<T: Args> {
        #[command(flatten)]
        inner: T,
    }
    Command::<T>::try_parse_from(argv)
        .map(|c| c.inner)
        .map_err(|e| anyhow!("pipeline built an invalid command `{}`: {e}", command_line(argv)))
}

/// Findings by severity from the scan's JSON report.
fn scan_result() -> String {
    let path = crate::xtask_dir().join("scan").join(scan::JSON_REPORT);
    let report = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| scan::report::Report::from_trivy_json(&text).ok());
    let Some(report) = report else { return "gate passed".to_owned() };
    let counts: Vec<String> = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low]
        .iter()
        .map(|s| format!("{} {}", report.count(*s).0, s.as_str()))
        .collect();
    format!("gate passed; findings: {}", counts.join(", "))
}

/// The digest ECR has under `tag` in the environment's repository.
async fn ecr_digest(aws: &Aws, target: &Target, tag: &str) -> Result<Option<String>> {
    let client = aws.ecr();
    let repo =
        ecr::describe_repository(&client, &target.ecr_repository(), target.env.as_str()).await?;
    ecr::tag_digest(&client, &repo, tag).await
}

async fn latest_revision(aws: &Aws, target: &Target) -> Result<Option<i32>> {
    let def = jobdef::find_latest_active(&aws.batch(), &target.job_definition()).await?;
    Ok(def.and_then(|d| d.revision()))
}

fn short(digest: &str) -> String {
    format!("sha256:{}", short_id(digest))
}

fn short_tag(tag: &str) -> String {
    if tag.len() > 12 { format!("{}…", &tag[..12]) } else { tag.to_owned() }
}

fn print_summary(p: &Pipeline, rows: &[Row], facts: &Facts, total: Duration) {
    let mut out = String::new();
    let place = if p.local {
        format!("local stack {}", p.stack.endpoint_url())
    } else {
        std::env::var("AWS_ENDPOINT_URL")
            .map(|e| format!("endpoint {e}"))
            .unwrap_or_else(|_| "AWS".to_owned())
    };
    let _ = writeln!(
        out,
        "\npipeline summary: project {}, env {}, {}, {place}{}",
        p.target.project,
        p.target.env,
        p.target.region,
        if p.dry_run { " (dry run)" } else { "" }
    );
    let _ = writeln!(out, "  {:<7} {:>8}  result", "stage", "time");
    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    let all: Vec<&str> = if p.local { vec!["local"] } else { vec![] }
        .into_iter()
        .chain(["image", "scan", "push", "deploy", "itest"])
        .collect();
    for name in all {
        let Some(row) = rows.iter().find(|r| r.name == name) else {
            if !names.contains(&name) {
                let _ = writeln!(out, "  {name:<7} {:>8}  not run", "-");
            }
            continue;
        };
        let time = row.seconds.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".to_owned());
        let result = match &row.result {
            Ok(text) => format!("ok    {text}"),
            Err(e) => format!("FAILED {}", first_line(e)),
        };
        let _ = writeln!(out, "  {name:<7} {time:>8}  {result}");
    }
    let _ = writeln!(out, "  {:<7} {:>8}", "total", format!("{:.1} s", total.as_secs_f64()));
    let dash = || "-".to_owned();
    let _ = writeln!(out, "  image digest  {}", facts.digest.clone().unwrap_or_else(dash));
    let _ = writeln!(out, "  revision      {}", facts.revision.clone().unwrap_or_else(dash));
    let _ = writeln!(out, "  itest result  {}", facts.itest.clone().unwrap_or_else(dash));
    print!("{out}");
    if let Err(e) = crate::gha::append_step_summary(&summary_markdown(rows, facts, total)) {
        eprintln!("warning: {e:#}");
    }
}

/// The summary as a Markdown table, for the GitHub Actions job summary.
fn summary_markdown(rows: &[Row], facts: &Facts, total: Duration) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut md = String::from("### Pipeline\n\n| stage | time | result |\n|---|---:|---|\n");
    for row in rows {
        let time = row.seconds.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".to_owned());
        let result = match &row.result {
            Ok(text) => format!("✅ {}", cell(text)),
            Err(e) => format!("❌ {}", cell(&first_line(e))),
        };
        let _ = writeln!(md, "| {} | {time} | {result} |", row.name);
    }
    let _ = writeln!(md, "| total | {:.1} s | |\n", total.as_secs_f64());
    for (k, v) in
        [("image digest", &facts.digest), ("revision", &facts.revision), ("itest", &facts.itest)]
    {
        let _ = writeln!(md, "- {k}: `{}`", v.as_deref().unwrap_or("-"));
    }
    md.push('\n');
    md
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_commands_parse_with_the_commands_own_definitions() {
        let argv = args(&[
            "push",
            "--project",
            "p",
            "--env",
            "staging",
            "--region",
            "eu-west-1",
            "--allow-dirty",
        ]);
        let push: push::Push = parse(&argv).expect("push parses");
        let debug = format!("{push:?}");
        assert!(
            debug.contains("project: \"p\"")
                && debug.contains("Staging")
                && debug.contains("allow_dirty: true"),
            "{debug}"
        );
        let local: local::Local =
            parse(&args(&["local", "up", "--moto-port", "4600", "--dry-run"])).expect("local up");
        assert!(format!("{local:?}").contains("moto_port: 4600"), "{local:?}");
        let err = parse::<push::Push>(&args(&["push", "--bogus"])).expect_err("unknown flag");
        assert!(err.to_string().contains("cargo xtask push --bogus"), "{err}");
        assert_eq!(
            command_line(&args(&["scan", "--db-repository", "127.0.0.1:5000/trivy-db:2"])),
            "cargo xtask scan --db-repository 127.0.0.1:5000/trivy-db:2"
        );
        assert_eq!(
            command_line(&args(&["itest", "--video", "my clip.mp4"])),
            "cargo xtask itest --video 'my clip.mp4'"
        );
    }

    #[test]
    fn the_failed_stage_is_named_with_its_reason() {
        let rows = vec![
            Row { name: "image", seconds: Some(1.0), result: Ok("built".into()) },
            Row {
                name: "scan",
                seconds: Some(2.0),
                result: Err("vulnerability gate failed: 1 HIGH".into()),
            },
        ];
        assert_eq!(
            stopped("scan", &rows).to_string(),
            "pipeline stopped at stage `scan`: vulnerability gate failed: 1 HIGH"
        );
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab");
        let facts = Facts { digest: Some("sha256:ab".into()), revision: None, itest: None };
        let md = summary_markdown(&rows, &facts, Duration::from_secs(3));
        assert!(md.contains("| image | 1.0 s | ✅ built |"), "{md}");
        assert!(md.contains("| scan | 2.0 s | ❌ vulnerability gate failed: 1 HIGH |"), "{md}");
        assert!(
            md.contains("- image digest: `sha256:ab`") && md.contains("- revision: `-`"),
            "{md}"
        );
        assert_eq!(first_line("a\nb"), "a");
    }
}
