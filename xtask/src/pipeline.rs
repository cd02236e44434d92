//! `cargo xtask pipeline`: image → scan → push → sign → deploy → itest, the deployment guide's
//! stages in order (sign added by issue 11: only a signed image is deployed), stopping at the first failure with the stage named; `--local` first brings the local
//! stack up. The README's main command: `cargo xtask pipeline --local`.
//!
//! Each stage is a command's own `run`, called in this process (no `cargo xtask` subprocess) on
//! the command's typed arguments (`local::Up`, `image::Image`, `scan::Scan`, `push::Push`,
//! `sign::Sign`, `deploy::Deploy`, `itest::Itest`), so errors are the individual commands'. Each stage's header
//! shows the equivalent command line, made from those arguments ([`command_lines`], whose test
//! parses every such line back with the command's own clap definition, so a shown line means what
//! the stage runs). The summary table at the end is [`summary`]'s.
//!
//! With `--local`, after `local up` the stack's env file is applied to this process
//! ([`crate::aws::set_env_overlay`]: the endpoint, dummy credentials and the local registry), the
//! offline Trivy DB is mirrored into the local registry and the scan downloads it from there.
//! What each stage did is read back afterwards (build record, scan report, ECR tags, job
//! definition revisions), so the summary shows what is, not what was intended.

mod command_lines;
mod summary;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use xshell::Shell;

use crate::aws::Aws;
use crate::build_record::BuildRecord;
use crate::config::{Env, LocalStack, Target};
use crate::deploy::{Deploy, RegisterFlags};
use crate::docker::short_id;
use crate::dry_run::DryRun;
use crate::image::Image;
use crate::itest::{Itest, JoinOutcome};
use crate::local::Up;
use crate::push::Push;
use crate::scan::Scan;
use crate::scan::trivy_db::Severity;
use crate::sign::Sign;
use crate::time::parse_duration;
use crate::{ecr, jobdef, scan, tools};
use summary::{Facts, Row, print_summary, stopped};

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

/// `itest --log-lines`' default.
const ITEST_LOG_LINES: usize = 40;

/// The stages `--skip` can name, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    Image,
    Scan,
    Push,
    Sign,
    Deploy,
    Itest,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Image => "image",
            Stage::Scan => "scan",
            Stage::Push => "push",
            Stage::Sign => "sign",
            Stage::Deploy => "deploy",
            Stage::Itest => "itest",
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask pipeline --local                     # fresh machine: stack, image, scan, push, sign, deploy, itest
  cargo xtask pipeline --local --allow-dirty       # with uncommitted changes (tags end in -dirty)
  cargo xtask pipeline --env staging               # real AWS (credentials from the default chain)
  cargo xtask pipeline --env prod --yes --skip itest
  cargo xtask pipeline --local --dry-run           # print the stages' commands only

Each stage runs the same code as its own command (`cargo xtask image`, `scan`, `push`, `sign`,
`deploy`, `itest`); the first failure stops the pipeline and names the stage. A summary table follows:
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
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    timeout: Duration,
    /// itest: keep the run's S3 objects.
    #[arg(long)]
    keep: bool,
    /// Print each stage's command; run nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The stages run so far: their rows, the `[n/total]` counter, what `--skip` leaves out.
#[derive(Debug)]
struct Progress {
    rows: Vec<Row>,
    n: usize,
    total: usize,
    skip: Vec<Stage>,
}

impl Progress {
    /// Runs `stage` (see [`Progress::step`]) unless `--skip` names it.
    fn stage(
        &mut self,
        stage: Stage,
        line: &str,
        f: impl FnOnce() -> Result<String>,
    ) -> Result<()> {
        if !self.skip.contains(&stage) {
            return self.step(stage.name(), line, f);
        }
        self.n += 1;
        println!("\n==> [{}/{}] {}: skipped (--skip)", self.n, self.total, stage.name());
        let result = Ok("skipped (--skip)".to_owned());
        self.rows.push(Row { name: stage.name(), seconds: None, result });
        Ok(())
    }

    /// Runs one step under a header showing its command line, timed; its result goes in the
    /// summary, and a failure stops the pipeline with the step named.
    fn step(
        &mut self,
        name: &'static str,
        line: &str,
        f: impl FnOnce() -> Result<String>,
    ) -> Result<()> {
        self.n += 1;
        println!("\n==> [{}/{}] {name}: {line}", self.n, self.total);
        let started = Instant::now();
        let result = f();
        let seconds = Some(started.elapsed().as_secs_f64());
        let failed = result.is_err();
        self.rows.push(Row { name, seconds, result: result.map_err(|e| format!("{e:#}")) });
        if failed {
            return Err(stopped(name, &self.rows));
        }
        Ok(())
    }
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
        let mut progress = Progress {
            rows: Vec::new(),
            n: 0,
            total: 6 + usize::from(self.local),
            skip: self.skip.clone(),
        };
        let mut facts = Facts::default();
        let started = Instant::now();
        let result = self.stages(sh, &mut progress, &mut facts);
        print_summary(&self, &progress.rows, &facts, started.elapsed());
        result
    }

    /// The stages in order, each a function named for it; the first failure stops them.
    fn stages(&self, sh: &Shell, p: &mut Progress, facts: &mut Facts) -> Result<()> {
        let dry = DryRun::new(self.dry_run);
        let mut base_image = self.base_image.clone().filter(|b| !b.trim().is_empty());

        // 0. With --local: the stack, whose env file the later stages then use.
        if self.local {
            let up = self.local_up_args(base_image.clone());
            p.step("local", &up.command_line(), || self.local_up(sh, up, &mut base_image))?;
        }

        // 1. image
        let image = self.image_args(base_image);
        p.stage(Stage::Image, &image.command_line(), || build_image(sh, image))?;

        // 2. scan (with --local, from the offline DB mirrored into the stack's registry)
        let (scan, mirror) = self.scan_args();
        let line = scan.command_line();
        p.stage(Stage::Scan, &line, || scan_image(sh, dry, scan, mirror.as_deref()))?;

        // 3. push
        let push = self.push_args();
        let line = push.command_line();
        p.stage(Stage::Push, &line, || in_process(dry, &line, || push_image(sh, push, facts)))?;

        // 4. sign (the image, and the scan's SBOM as an attestation)
        let sign = self.sign_args();
        let line = sign.command_line();
        p.stage(Stage::Sign, &line, || in_process(dry, &line, || sign_image(sign)))?;

        // 5. deploy (of the signed image)
        let deploy = self.deploy_args();
        let line = deploy.command_line();
        p.stage(Stage::Deploy, &line, || {
            in_process(dry, &line, || deploy_image(sh, deploy, facts))
        })?;

        // 6. itest
        let itest = self.itest_args();
        let line = itest.command_line();
        let result = p
            .stage(Stage::Itest, &line, || in_process(dry, &line, || run_itest(sh, &itest, facts)));
        if result.is_err() {
            facts.itest = Some("FAILED".to_owned());
        }
        result
    }

    /// Stage 0's arguments: `local up` on the pipeline's stack (its state directory given, so
    /// the line shows where the stack lives) and target.
    fn local_up_args(&self, base_image: Option<String>) -> Up {
        let stack = LocalStack { state_dir: Some(self.stack.state_dir()), ..self.stack.clone() };
        Up::new(stack, self.target.clone(), base_image, self.no_install, self.dry_run)
    }

    /// Stage 0: `local up`, the tools the later stages need, then the stack's env file applied to
    /// this process; the stack's base image unless one was given.
    fn local_up(&self, sh: &Shell, up: Up, base_image: &mut Option<String>) -> Result<String> {
        up.run(sh)?;
        let mode = if self.no_install { tools::Mode::CheckOnly } else { tools::Mode::Install };
        tools::ensure(sh, LOCAL_EXTRA_TOOLS, mode, DryRun::new(self.dry_run))?;
        if self.dry_run {
            return Ok("dry run".to_owned());
        }
        let env_file = self.stack.env_file();
        let text = std::fs::read_to_string(&env_file)
            .with_context(|| format!("`local up` wrote no env file at {}", env_file.display()))?;
        let vars = crate::aws::parse_env_file(&text);
        let var = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let endpoint = var("AWS_ENDPOINT_URL").context("the env file has no AWS_ENDPOINT_URL")?;
        let registry =
            var(ecr::LOCAL_REGISTRY_VAR).context("the env file has no SPLITTER_LOCAL_REGISTRY")?;
        if base_image.is_none() {
            *base_image = var("SPLITTER_BASE_IMAGE");
        }
        crate::aws::set_env_overlay(vars)?;
        Ok(format!("moto {endpoint}, registry {registry}"))
    }

    /// Stage 1's arguments.
    fn image_args(&self, base_image: Option<String>) -> Image {
        let mut image = Image::with_base_image(base_image);
        image.project = self.target.project.clone();
        image.no_cache = self.no_cache;
        image.dry_run = self.dry_run;
        image
    }

    /// Stage 2's arguments and, with `--local` and no `--db-repository`, the registry the
    /// offline DB is published to first (the stack's, from its env file when applied).
    fn scan_args(&self) -> (Scan, Option<String>) {
        let mirror = (self.local && self.db_repository.is_none()).then(|| {
            crate::aws::env_var(ecr::LOCAL_REGISTRY_VAR).unwrap_or_else(|| self.stack.registry())
        });
        let db_repository = match &mirror {
            Some(host) => {
                Some(format!("{host}/{}:{}", scan::mirror::DB_REPOSITORY, scan::mirror::DB_TAG))
            }
            None => self.db_repository.clone(),
        };
        (Scan::with_db_repository(db_repository), mirror)
    }

    /// Stage 3's arguments.
    fn push_args(&self) -> Push {
        Push { target: self.target.clone(), allow_dirty: self.allow_dirty, dry_run: false }
    }

    /// Stage 4's arguments: the build record's tag, the scan's SBOM (none when the scan is
    /// skipped).
    fn sign_args(&self) -> Sign {
        Sign {
            target: self.target.clone(),
            tag: None,
            sbom: None,
            no_attestation: self.skip.contains(&Stage::Scan),
            dry_run: false,
        }
    }

    /// Stage 5's arguments: the build record's tag.
    fn deploy_args(&self) -> Deploy {
        let register = RegisterFlags { yes: self.yes, ..RegisterFlags::default() };
        Deploy { target: self.target.clone(), tag: None, register }
    }

    /// Stage 6's arguments.
    fn itest_args(&self) -> Itest {
        Itest {
            target: self.target.clone(),
            video: self.video.clone(),
            timeout: self.timeout,
            segment_seconds: None,
            keep: self.keep,
            no_join: false,
            log_lines: ITEST_LOG_LINES,
            dry_run: false,
        }
    }
}

/// Runs a stage's command in this process, or prints `[dry-run] would run: LINE` on a dry run.
fn in_process(dry: DryRun, line: &str, f: impl FnOnce() -> Result<String>) -> Result<String> {
    Ok(dry.call(format_args!("run: {line}"), f)?.unwrap_or_else(|| "dry run".to_owned()))
}

/// Stage 1: the build (its own `--dry-run` prints the docker command); the record it wrote.
fn build_image(sh: &Shell, image: Image) -> Result<String> {
    let dry_run = image.dry_run;
    image.run(sh)?;
    if dry_run {
        return Ok("dry run".to_owned());
    }
    let record = BuildRecord::load()?;
    Ok(format!(
        "{} ({}, {:.1} MB)",
        record.image_ref(),
        short(&record.image_id),
        record.size_bytes as f64 / 1e6
    ))
}

/// Stage 2: the offline DB published to `mirror` (a registry) when given, then the scan; the
/// findings.
fn scan_image(sh: &Shell, dry: DryRun, scan: Scan, mirror: Option<&str>) -> Result<String> {
    if let Some(host) = mirror {
        dry.call(format_args!("publish the offline Trivy DB to {host}"), || {
            let tmp = sh.create_temp_dir().context("cannot create a temporary directory")?;
            scan::trivy_db::TrivyDb::offline().write(tmp.path())?;
            let reference = scan::mirror::publish_db(sh, host, tmp.path())?;
            println!("offline vulnerability DB published as {reference}");
            Ok(())
        })?;
    }
    let line = scan.command_line();
    in_process(dry, &line, || {
        scan.run(sh)?;
        Ok(scan_result())
    })
}

/// Stage 3: the push; whether ECR's digest under the full-SHA tag changed.
fn push_image(sh: &Shell, push: Push, facts: &mut Facts) -> Result<String> {
    let t = push.target.clone();
    let tag = BuildRecord::load()?.tags.first().cloned().unwrap_or_default();
    let aws = Aws::load(&t.region)?;
    let before = aws.block_on(ecr_digest(&aws, &t, &tag))?;
    push.run(sh)?;
    let after = aws
        .block_on(ecr_digest(&aws, &t, &tag))?
        .with_context(|| format!("ECR has no tag {tag} after the push"))?;
    facts.digest = Some(after.clone());
    Ok(if before.as_deref() == Some(after.as_str()) {
        format!("{} already in ECR: nothing uploaded", short(&after))
    } else {
        format!("{} pushed as {}", short(&after), short_tag(&tag))
    })
}

/// Stage 4: the signature and the attestation; whether they were new.
fn sign_image(sign: Sign) -> Result<String> {
    let signed = sign.execute()?.context("sign ran as a dry run")?;
    let attestation = match signed.attested {
        Some(true) => ", SBOM attested",
        Some(false) => ", SBOM attestation already there",
        None => ", no SBOM attestation (scan skipped)",
    };
    Ok(if signed.signed {
        format!("{} signed with key {}{attestation}", short(&signed.digest), signed.key_id)
    } else {
        format!("{} already signed with key {}{attestation}", short(&signed.digest), signed.key_id)
    })
}

/// Stage 5: the deploy; the latest ACTIVE revision before and after.
fn deploy_image(sh: &Shell, deploy: Deploy, facts: &mut Facts) -> Result<String> {
    let t = deploy.target.clone();
    let aws = Aws::load(&t.region)?;
    let before = aws.block_on(latest_revision(&aws, &t))?;
    deploy.run(sh)?;
    let after = aws.block_on(latest_revision(&aws, &t))?;
    facts.revision = after.map(|r| format!("{}:{r}", t.job_definition()));
    Ok(match (before, after) {
        (Some(b), Some(a)) if a == b => format!("revision {a} already runs it: nothing registered"),
        (b, Some(a)) => format!(
            "registered revision {a}{}",
            b.map(|b| format!(" (was {b})")).unwrap_or_default()
        ),
        (_, None) => "no ACTIVE revision afterwards".to_owned(),
    })
}

/// Stage 6: the integration test; what it checked.
fn run_itest(sh: &Shell, itest: &Itest, facts: &mut Facts) -> Result<String> {
    let outcome = itest.execute(sh)?.context("itest ran as a dry run")?;
    facts.itest = Some(format!("passed ({})", outcome.job_definition));
    let join = match &outcome.join {
        JoinOutcome::Joined { job_id, job_seconds, .. } => {
            format!("joined back identical (job {job_id}, {job_seconds:.1} s)")
        }
        JoinOutcome::Skipped(why) => format!("join skipped ({why})"),
    };
    Ok(format!(
        "passed: {} segments + {} audio, {} checks (job {}, {:.1} s), {join}",
        outcome.segments, outcome.audio, outcome.checks, outcome.job_id, outcome.job_seconds
    ))
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
