//! `cargo xtask itest`: stage 4 of the deployment guide ("Integration Test"). Runs one real
//! Batch job of the environment on a test video and checks what it wrote.
//!
//! 1. Checks the job queue, the job definition (its latest ACTIVE revision must take
//!    `Ref::input` and `Ref::output`) and the bucket exist, before touching anything.
//! 2. Uploads the video to `s3://{bucket}/itest/{UTC time}-{random}/input.{ext}`.
//! 3. Submits a job to the environment's queue with that revision, passing `input`, `output`
//!    (`…/output`) and, with `--segment-seconds`, `segment_seconds` as job parameters: nothing
//!    environment-specific is baked into the image.
//! 4. Watches it (`DescribeJobs` every second): each status change with the elapsed time, a live
//!    line on a terminal. On `--timeout` (or Ctrl-C) it terminates the job (`TerminateJob`).
//! 5. FAILED or timed out: the status reason and exit code (when Batch gives them) and the last
//!    lines of the job's CloudWatch log stream, the splitter's error line named in the error.
//! 6. SUCCEEDED: reads `manifest.json` and checks every object it lists (size and sha256 of the
//!    downloaded bytes, and an `x-amz-meta-sha256` that must be there and agree), each segment
//!    independently of the manifest's own numbers (the host's ffprobe lists its video packets:
//!    as many as `lead_in_frames + frames + trailing_frames`, the first a keyframe), the segment
//!    count for the keyframes and `segment_seconds`, contiguous segments whose durations add up
//!    to the source's within one frame, every frame owned once, one audio file per audio
//!    stream, nothing unlisted.
//! 7. Deletes the run's prefix, unless `--keep`.
//!
//! Locally the job really runs: moto's Batch starts the job definition's image as a Docker
//! container, which reads and writes moto's S3.

mod source;
mod verify;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_batch::types::{JobDetail, JobStatus};
use clap::Args;
use sha2::{Digest, Sha256};
use xshell::Shell;

use crate::aws::{Aws, sdk_error};
use crate::config::{BATCH_LOG_GROUP, PLACEHOLDER_TAG, Target};
use crate::{infra, jobdef, shown};
use source::Source;
use verify::{Manifest, Stored};

/// How often the job's status is read (four times as often in its first 5 s).
const POLL: Duration = Duration::from_secs(1);
/// How long to wait for a terminated job to reach FAILED (its logs are complete then).
const TERMINATE_WAIT: Duration = Duration::from_secs(60);
/// Without a terminal, a line this often while the status stays the same.
const HEARTBEAT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  cargo xtask itest --env dev                      # the fixture, xtask/fixtures/itest.mp4
  cargo xtask itest --env staging --video movie.mkv --timeout 30m --keep
  cargo xtask itest --dry-run                      # print the plan; upload and submit nothing
  . target/xtask/local/env && cargo xtask itest    # the local stack (moto runs the container)

Exit status: 0 when the job SUCCEEDED and every check passed; non-zero otherwise (the job's
status reason and log tail are printed). Needs ffprobe on PATH (install ffmpeg): it lists each
segment's video packets, and probes a `--video` to know what a correct split of it looks like.")]
pub struct Itest {
    #[command(flatten)]
    pub target: Target,
    /// The video to split [default: xtask/fixtures/itest.mp4, 12 s of H.264 + AAC].
    #[arg(long, value_name = "PATH")]
    pub video: Option<PathBuf>,
    /// Give up (and terminate the job) after this long, e.g. `90s`, `10m`, `1h30m`.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Pass `segment_seconds` as a job parameter [default: the job definition's default].
    #[arg(long, value_name = "SECONDS", value_parser = parse_segment_seconds)]
    pub segment_seconds: Option<String>,
    /// Keep the run's S3 objects (input and output) instead of deleting them.
    #[arg(long)]
    pub keep: bool,
    /// How many lines of the job's log to show when it fails.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub log_lines: usize,
    /// Print what would be uploaded, submitted and checked; do nothing (read-only AWS calls
    /// still run).
    #[arg(long)]
    pub dry_run: bool,
}

/// What a passed run did, for the pipeline's summary.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub job_id: String,
    /// `name:revision` of the job definition that ran.
    pub job_definition: String,
    pub segments: usize,
    pub audio: usize,
    pub checks: usize,
    /// From submission to SUCCEEDED.
    pub job_seconds: f64,
}

/// Where the run's objects go and what the job is called.
#[derive(Debug, Clone)]
struct Run {
    bucket: String,
    /// `itest/{stamp}-{random}` (no trailing slash).
    prefix: String,
    input_key: String,
    job_name: String,
}

impl Run {
    fn new(target: &Target, source: &Source) -> Run {
        let id = format!("{}-{}", crate::time::compact(SystemTime::now()), random_hex(6));
        let prefix = format!("itest/{id}");
        let mut job_name = format!("{}-itest-{}-{id}", target.project, target.env);
        job_name.retain(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        job_name.truncate(128);
        Run {
            bucket: target.bucket(),
            input_key: format!("{prefix}/{}", source.object_name()),
            prefix,
            job_name,
        }
    }
    fn input_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.input_key)
    }
    fn output_prefix(&self) -> String {
        format!("{}/output", self.prefix)
    }
    fn output_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.output_prefix())
    }
}

/// What exists in the environment, checked before anything is uploaded.
#[derive(Debug)]
struct Plan {
    queue: String,
    job_definition: String,
    revision: i32,
    arn: String,
    image: String,
    log_group: String,
    /// The value the job gets, and where it comes from.
    segment_seconds: f64,
    segment_seconds_from: &'static str,
}

impl Itest {
    pub fn run(self, sh: &Shell) -> Result<()> {
        self.execute(sh).map(|_| ())
    }

    /// Runs the test; `None` for a dry run.
    pub fn execute(&self, sh: &Shell) -> Result<Option<Outcome>> {
        // Installed like the other tools when missing (as root), else the install command.
        crate::tools::ensure(
            sh,
            &[crate::tools::FFMPEG],
            crate::tools::Mode::Install,
            self.dry_run,
        )?;
        let ffprobe = find_ffprobe()?;
        let source = Source::load(sh, self.video.as_deref())?;
        let aws = Aws::load(&self.target.region)?;
        let plan = aws.block_on(preflight(&aws, &self.target, self.segment_seconds.as_deref()))?;
        let run = Run::new(&self.target, &source);
        self.print_plan(&source, &plan, &run, &ffprobe);
        if plan.image.ends_with(&format!(":{PLACEHOLDER_TAG}")) {
            let next = "deploy an image first: `cargo xtask image`, `push` and `deploy` (or `cargo xtask pipeline`)";
            if !self.dry_run {
                bail!(
                    "revision {} of {} runs the placeholder image {} (nothing deployed yet): {next}",
                    plan.revision,
                    plan.job_definition,
                    plan.image
                );
            }
            println!("note: the job definition runs the placeholder image: {next}");
        }
        if self.dry_run {
            println!("dry run: nothing uploaded, no job submitted");
            return Ok(None);
        }

        // The job, once submitted, and whether it reached SUCCEEDED or FAILED.
        let job = RefCell::new(None::<(String, bool)>);
        let result = aws.block_on(async {
            tokio::select! {
                r = self.run_job(&aws, &source, &plan, &run, &ffprobe, &job) => r,
                _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (Ctrl-C): itest did not finish")),
            }
        });
        // Interrupted, or an AWS call failed while the job still runs: it must not run on.
        if let (Err(err), Some((id, false))) = (&result, job.borrow().as_ref()) {
            clear_live_line();
            let reason = format!("cargo xtask itest stopped: {}", first_words(&format!("{err:#}")));
            match aws.block_on(terminate(&aws, id, &reason)) {
                Ok(()) => println!("terminated job {id} (TerminateJob: {reason})"),
                Err(e) => eprintln!("warning: could not terminate job {id}: {e:#}"),
            }
        }
        if self.keep {
            println!("kept s3://{}/{}/ (--keep)", run.bucket, run.prefix);
        } else {
            match aws.block_on(delete_prefix(&aws, &run.bucket, &format!("{}/", run.prefix))) {
                Ok(n) => println!("deleted s3://{}/{}/ ({n} objects)", run.bucket, run.prefix),
                Err(e) => eprintln!(
                    "warning: could not delete s3://{}/{}/: {e:#}",
                    run.bucket, run.prefix
                ),
            }
        }
        let outcome = result?;
        crate::gha::write_outputs(&[
            ("itest-job-id", &outcome.job_id),
            ("itest-job-definition", &outcome.job_definition),
        ])?;
        println!(
            "itest passed: job {} ({}) split {} into {} segment(s) and {} audio file(s) in {:.1} s; {} checks passed",
            outcome.job_id,
            outcome.job_definition,
            shown(&source.path),
            outcome.segments,
            outcome.audio,
            outcome.job_seconds,
            outcome.checks
        );
        Ok(Some(outcome))
    }

    fn print_plan(&self, source: &Source, plan: &Plan, run: &Run, ffprobe: &Path) {
        let e = &source.expect;
        println!(
            "itest {} ({}, {}): job definition {}:{} on queue {}",
            self.target.env,
            self.target.project,
            self.target.region,
            plan.job_definition,
            plan.revision,
            plan.queue
        );
        println!("  image      {}", plan.image);
        println!(
            "  video      {} ({} bytes, sha256 {}…)",
            shown(&source.path),
            source.bytes,
            &source.sha256[..12]
        );
        println!("  input      {}", run.input_uri());
        println!("  output     {}", run.output_uri());
        println!("  segments   {} s ({})", plan.segment_seconds, plan.segment_seconds_from);
        if e.video_seconds > 0.0 {
            let count = match e.segments(plan.segment_seconds) {
                Some(n) => n.to_string(),
                None => format!("1..={}", e.max_segments(plan.segment_seconds)),
            };
            println!(
                "  expect     {count} segment(s), {:.3} s of video, {} audio file(s) ({})",
                e.video_seconds, e.audio_streams, e.from
            );
        } else {
            println!("  expect     no video ({}): the job should fail", e.from);
        }
        println!("  timeout    {} (then TerminateJob)", format_duration(self.timeout));
        println!("  ffprobe    {} (lists each segment's video packets)", ffprobe.display());
        if self.dry_run {
            println!("  [dry-run] would upload {} to {}", shown(&source.path), run.input_uri());
            println!(
                "  [dry-run] would submit job {} and watch it, then check the output and {}",
                run.job_name,
                if self.keep {
                    "keep it (--keep)".to_owned()
                } else {
                    format!("delete s3://{}/{}/", run.bucket, run.prefix)
                }
            );
        }
    }

    async fn run_job(
        &self,
        aws: &Aws,
        source: &Source,
        plan: &Plan,
        run: &Run,
        ffprobe: &Path,
        job: &RefCell<Option<(String, bool)>>,
    ) -> Result<Outcome> {
        let s3 = aws.s3();
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&source.path)
            .await
            .with_context(|| format!("cannot read {}", source.path.display()))?;
        s3.put_object()
            .bucket(&run.bucket)
            .key(&run.input_key)
            .body(body)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!(
                    "cannot upload the video to {}: check the role's s3:PutObject permission on the bucket",
                    run.input_uri()
                )
            })?;
        println!("uploaded {} ({} bytes)", run.input_uri(), source.bytes);

        let batch = aws.batch();
        let mut submit = batch
            .submit_job()
            .job_name(&run.job_name)
            .job_queue(&plan.queue)
            .job_definition(&plan.arn)
            .parameters("input", run.input_uri())
            .parameters("output", run.output_uri());
        if let Some(seconds) = &self.segment_seconds {
            submit = submit.parameters("segment_seconds", seconds);
        }
        let submitted = submit.send().await.map_err(sdk_error).with_context(|| {
            format!(
                "cannot submit a job to queue {}: check the role's batch:SubmitJob permission",
                plan.queue
            )
        })?;
        let id = submitted.job_id().context("Batch returned no job id")?.to_owned();
        job.replace(Some((id.clone(), false)));
        let started = Instant::now();
        println!("submitted job {} ({id})", run.job_name);

        let (detail, timed_out) = self.watch(&batch, &id, started).await?;
        job.replace(Some((id.clone(), true)));
        let job = detail;
        let elapsed = started.elapsed().as_secs_f64();
        let status = job.status().cloned();
        if timed_out || status != Some(JobStatus::Succeeded) {
            let tail = self.report_failure(aws, plan, &job).await;
            // After a timeout the status reason is ours: not worth repeating.
            let mut why = failure_summary(&job, tail.as_deref().unwrap_or_default(), !timed_out);
            if tail.is_none() {
                why.push_str(&format!(
                    "; no container ran: can the compute environment pull {}?",
                    plan.image
                ));
            }
            let tail_hint =
                if tail.is_some() { "see the log tail above" } else { "see the job above" };
            if timed_out {
                bail!(
                    "itest failed: job {} did not finish within {}: terminated it (status now {}){why}; \
                     {tail_hint}, or raise --timeout",
                    run.job_name,
                    format_duration(self.timeout),
                    status.as_ref().map(|s| s.as_str()).unwrap_or("?")
                );
            }
            bail!(
                "itest failed: job {} {} after {elapsed:.1} s{why}; {tail_hint}",
                run.job_name,
                status.as_ref().map(|s| s.as_str()).unwrap_or("?")
            );
        }
        println!("job SUCCEEDED after {elapsed:.1} s; checking {}/", run.output_uri());

        let (manifest, checks) = check_output(aws, source, plan, run, ffprobe).await?;
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &checks {
            println!("  {}  {:width$}  {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail);
        }
        let failed: Vec<&verify::Check> = checks.iter().filter(|c| !c.ok).collect();
        if let Some(first) = failed.first() {
            bail!(
                "itest failed: the job SUCCEEDED but {} of {} checks failed (listed above), first `{}`: {}",
                failed.len(),
                checks.len(),
                first.name,
                first.detail
            );
        }
        Ok(Outcome {
            job_id: id,
            job_definition: format!("{}:{}", plan.job_definition, plan.revision),
            segments: manifest.segments.len(),
            audio: manifest.audio.len(),
            checks: checks.len(),
            job_seconds: elapsed,
        })
    }

    /// Polls until the job ends, or terminates it when `--timeout` runs out. Returns the last
    /// description and whether it timed out.
    async fn watch(
        &self,
        batch: &aws_sdk_batch::Client,
        id: &str,
        started: Instant,
    ) -> Result<(JobDetail, bool)> {
        let live = std::io::stdout().is_terminal();
        let mut last: Option<JobStatus> = None;
        let mut last_line = Instant::now();
        let mut terminated_at: Option<Instant> = None;
        loop {
            let job = describe_job(batch, id).await?;
            let status = job.status().cloned();
            let elapsed = started.elapsed();
            if status != last {
                clear_live_line();
                let name = status.as_ref().map(|s| s.as_str()).unwrap_or("?");
                println!("  {:>8}  {name}", format!("{:.1} s", elapsed.as_secs_f64()));
                last = status.clone();
                last_line = Instant::now();
            } else if !live && last_line.elapsed() >= HEARTBEAT {
                let name = status.as_ref().map(|s| s.as_str()).unwrap_or("?");
                println!("  {:>8}  still {name}", format!("{:.1} s", elapsed.as_secs_f64()));
                last_line = Instant::now();
            }
            if matches!(status, Some(JobStatus::Succeeded | JobStatus::Failed)) {
                clear_live_line();
                return Ok((job, terminated_at.is_some()));
            }
            match terminated_at {
                None if elapsed >= self.timeout => {
                    clear_live_line();
                    let reason = format!(
                        "cargo xtask itest: no result within {}",
                        format_duration(self.timeout)
                    );
                    terminate_job(batch, id, &reason).await?;
                    println!(
                        "  {:>8}  timed out: TerminateJob sent ({reason})",
                        format!("{:.1} s", elapsed.as_secs_f64())
                    );
                    terminated_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() >= TERMINATE_WAIT => {
                    clear_live_line();
                    println!(
                        "  the job is still {} {} s after TerminateJob",
                        status.as_ref().map(|s| s.as_str()).unwrap_or("?"),
                        TERMINATE_WAIT.as_secs()
                    );
                    return Ok((job, true));
                }
                _ => {}
            }
            if live {
                let name = status.as_ref().map(|s| s.as_str()).unwrap_or("?");
                let left = match terminated_at {
                    Some(_) => "terminating".to_owned(),
                    None => format!("timeout in {}", format_duration(self.timeout - elapsed)),
                };
                print!(
                    "\r\x1b[2K  {:>8}  {name} …  ({left}; Ctrl-C terminates the job)",
                    format!("{:.1} s", elapsed.as_secs_f64())
                );
                let _ = std::io::stdout().flush();
            }
            // Local jobs finish in seconds: look more often at first.
            let poll = if elapsed < Duration::from_secs(5) { POLL / 4 } else { POLL };
            tokio::time::sleep(poll).await;
        }
    }

    /// Prints the status reason, exit code and log tail of a job that did not succeed; returns
    /// the log tail (`None`: the job has no log stream).
    async fn report_failure(&self, aws: &Aws, plan: &Plan, job: &JobDetail) -> Option<Vec<String>> {
        let status = job.status().map(|s| s.as_str()).unwrap_or("?");
        println!("job {status}");
        for (what, value) in failure_facts(job) {
            println!("  {what:<14} {value}");
        }
        let Some(stream) = log_stream(job) else {
            println!("  log            none: the job has no log stream (it never ran a container)");
            return None;
        };
        println!("  log            {} {stream}", plan.log_group);
        Some(match log_tail(aws, &plan.log_group, &stream, self.log_lines).await {
            Ok(lines) if lines.is_empty() => {
                println!("  (the log stream is empty)");
                vec![]
            }
            Ok(lines) => {
                println!("  last {} line(s) of the log:", lines.len());
                for line in &lines {
                    println!("    | {}", format_log_line(line));
                }
                lines
            }
            Err(e) => {
                println!("  (cannot read the log: {e:#})");
                vec![]
            }
        })
    }
}

/// Checks queue, job definition and bucket; reads the revision to run.
async fn preflight(aws: &Aws, target: &Target, segment_override: Option<&str>) -> Result<Plan> {
    let batch = aws.batch();
    let queue = target.job_queue();
    let found = infra::find_job_queue(&batch, &queue).await.with_context(|| {
        format!(
            "cannot describe job queue {queue}: check the AWS credentials (locally: \
             `. target/xtask/local/env`) and the batch:DescribeJobQueues permission"
        )
    })?;
    let Some(q) = found else {
        bail!(
            "job queue {queue} does not exist in {}: it is created by Terraform (locally: \
             `cargo xtask local up --env {}`); check --project ({}) and --env",
            target.region,
            target.env,
            target.project
        );
    };
    if q.state().map(|s| s.as_str()) != Some("ENABLED") {
        bail!(
            "job queue {queue} is {}: enable it (`aws batch update-job-queue --job-queue {queue} --state ENABLED`)",
            q.state().map(|s| s.as_str()).unwrap_or("not enabled")
        );
    }

    let def = jobdef::latest_active(&batch, target).await?;
    let name = target.job_definition();
    let revision = def.revision().unwrap_or(0);
    let container = def.container_properties();
    let command: Vec<&str> =
        container.map(|c| c.command().iter().map(String::as_str).collect()).unwrap_or_default();
    for param in ["input", "output"] {
        let reference = format!("Ref::{param}");
        if !command.iter().any(|part| part.contains(&reference)) {
            bail!(
                "revision {revision} of {name} does not take the `{param}` parameter (its command is {command:?}): \
                 itest passes the video through Ref::input and Ref::output; fix the job definition's command \
                 (Terraform), e.g. [\"split\", \"Ref::input\", \"Ref::output\", \"--segment-seconds\", \"Ref::segment_seconds\"]"
            );
        }
    }
    let log_group = container
        .and_then(|c| c.log_configuration())
        .and_then(|l| l.options())
        .and_then(|o| o.get("awslogs-group"))
        .cloned()
        .unwrap_or_else(|| BATCH_LOG_GROUP.to_owned());
    let default = def.parameters().and_then(|p| p.get("segment_seconds"));
    let (segment_seconds, segment_seconds_from) = match (segment_override, default) {
        (Some(v), _) => (v.parse::<f64>().unwrap_or(0.0), "--segment-seconds"),
        (None, Some(v)) => match v.parse::<f64>() {
            Ok(n) if n > 0.0 => (n, "the job definition's default"),
            _ => bail!(
                "revision {revision} of {name} has segment_seconds = {v:?}, not a number of seconds: \
                 fix the job definition, or pass --segment-seconds"
            ),
        },
        (None, None) => (10.0, "the splitter's default"),
    };

    let bucket = target.bucket();
    let exists = infra::bucket_exists(&aws.s3(), &bucket).await.with_context(|| {
        format!("cannot read S3 bucket {bucket}: check the role's s3:ListBucket permission")
    })?;
    if !exists {
        bail!(
            "S3 bucket {bucket} does not exist: it is created by Terraform (locally: `cargo xtask local up --env {}`); \
             check --project and --env",
            target.env
        );
    }
    Ok(Plan {
        queue,
        job_definition: name,
        revision,
        arn: def.job_definition_arn().unwrap_or_default().to_owned(),
        image: container.and_then(|c| c.image()).unwrap_or("?").to_owned(),
        log_group,
        segment_seconds,
        segment_seconds_from,
    })
}

async fn describe_job(batch: &aws_sdk_batch::Client, id: &str) -> Result<JobDetail> {
    let out = batch
        .describe_jobs()
        .jobs(id)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("cannot describe job {id}"))?;
    out.jobs()
        .iter()
        .find(|j| j.job_id() == Some(id))
        .cloned()
        .with_context(|| format!("Batch does not know job {id} (anymore)"))
}

async fn terminate_job(batch: &aws_sdk_batch::Client, id: &str, reason: &str) -> Result<()> {
    batch.terminate_job().job_id(id).reason(reason).send().await.map_err(sdk_error).with_context(
        || format!("cannot terminate job {id}: check the role's batch:TerminateJob permission"),
    )?;
    Ok(())
}

async fn terminate(aws: &Aws, id: &str, reason: &str) -> Result<()> {
    terminate_job(&aws.batch(), id, reason).await
}

/// Status reason, exit codes and reasons of the job and its attempts (what real Batch gives;
/// moto gives none of them for a failed container).
fn failure_facts(job: &JobDetail) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(r) = job.status_reason() {
        out.push(("status reason", r.to_owned()));
    }
    if let Some(c) = job.container() {
        if let Some(code) = c.exit_code() {
            out.push(("exit code", code.to_string()));
        }
        if let Some(r) = c.reason() {
            out.push(("container", r.to_owned()));
        }
    }
    let attempts = job.attempts();
    if attempts.len() > 1 {
        for (i, a) in attempts.iter().enumerate() {
            let mut text = String::new();
            if let Some(code) = a.container().and_then(|c| c.exit_code()) {
                let _ = write!(text, "exit code {code}");
            }
            for r in
                [a.status_reason(), a.container().and_then(|c| c.reason())].into_iter().flatten()
            {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(r);
            }
            if !text.is_empty() {
                out.push(("attempt", format!("{}: {text}", i + 1)));
            }
        }
    }
    out
}

/// The log stream of the job's container (its last attempt's when the job has none).
fn log_stream(job: &JobDetail) -> Option<String> {
    job.container()
        .and_then(|c| c.log_stream_name())
        .or_else(|| {
            job.attempts()
                .iter()
                .rev()
                .find_map(|a| a.container().and_then(|c| c.log_stream_name()))
        })
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The last `n` messages of a log stream. Real CloudWatch may lag a few seconds behind a job
/// that just stopped: an absent or empty stream is asked again a few times.
async fn log_tail(aws: &Aws, group: &str, stream: &str, n: usize) -> Result<Vec<String>> {
    let logs = aws.logs();
    let limit = i32::try_from(n.clamp(1, 10_000)).unwrap_or(10_000);
    let mut last_err = None;
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let out = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(false)
            .limit(limit)
            .send()
            .await;
        match out {
            Ok(out) => {
                let lines: Vec<String> =
                    out.events().iter().filter_map(|e| e.message()).map(str::to_owned).collect();
                if !lines.is_empty() {
                    let skip = lines.len().saturating_sub(n);
                    return Ok(lines.into_iter().skip(skip).collect());
                }
                last_err = None;
            }
            Err(err)
                if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                last_err = Some(anyhow!("log stream {stream} not found in {group}"));
            }
            Err(err) => {
                return Err(sdk_error(err)).with_context(|| {
                    format!("cannot read log stream {stream}: check the role's logs:GetLogEvents permission")
                });
            }
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(vec![]),
    }
}

/// A log line for people: the splitter's JSON events as `LEVEL message key=value…`.
fn format_log_line(line: &str) -> String {
    let Ok(serde_json::Value::Object(event)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return line.to_owned();
    };
    let (Some(level), Some(message)) = (
        event.get("level").and_then(|v| v.as_str()),
        event.get("message").and_then(|v| v.as_str()),
    ) else {
        return line.to_owned();
    };
    let mut out = format!("{level:<5} {message}");
    for (k, v) in &event {
        if matches!(k.as_str(), "level" | "message" | "timestamp") {
            continue;
        }
        match v {
            serde_json::Value::String(s) => {
                let _ = write!(out, " {k}={s}");
            }
            other => {
                let _ = write!(out, " {k}={other}");
            }
        }
    }
    out
}

/// The splitter's error event in a log tail: `message (exit N, kind)`.
fn splitter_error(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? != "ERROR" {
            return None;
        }
        let message = v.get("message")?.as_str()?;
        let mut extra = Vec::new();
        if let Some(code) = v.get("exit_code").and_then(|c| c.as_i64()) {
            extra.push(format!("exit {code}"));
        }
        if let Some(kind) = v.get("kind").and_then(|k| k.as_str()) {
            extra.push(kind.to_owned());
        }
        Some(if extra.is_empty() {
            message.to_owned()
        } else {
            format!("{message} ({})", extra.join(", "))
        })
    })
}

/// `: reason; exit code N; the splitter says "…"` for the error line (empty when nothing is known).
fn failure_summary(job: &JobDetail, tail: &[String], with_reason: bool) -> String {
    let mut parts = Vec::new();
    if let Some(r) = job.status_reason().filter(|_| with_reason) {
        parts.push(r.to_owned());
    }
    if let Some(code) = job.container().and_then(|c| c.exit_code()) {
        parts.push(format!("exit code {code}"));
    }
    match splitter_error(tail) {
        Some(e) => parts.push(format!("the splitter says: {e}")),
        None => {
            if let Some(last) = tail.iter().rev().find(|l| !l.trim().is_empty()) {
                parts.push(format!("last log line: {}", format_log_line(last)));
            }
        }
    }
    if parts.is_empty() { String::new() } else { format!(": {}", parts.join("; ")) }
}

/// The host's ffprobe: the independent witness of what each segment holds.
fn find_ffprobe() -> Result<PathBuf> {
    crate::tools::find_program("ffprobe").context(
        "itest needs ffprobe on PATH to list the video packets of each segment the job writes: \
         install ffmpeg (`apt-get install ffmpeg`)",
    )
}

/// Reads the manifest and every object it lists (segments probed with ffprobe); runs the checks.
async fn check_output(
    aws: &Aws,
    source: &Source,
    plan: &Plan,
    run: &Run,
    ffprobe: &Path,
) -> Result<(Manifest, Vec<verify::Check>)> {
    let s3 = aws.s3();
    let prefix = run.output_prefix();
    let key = format!("{prefix}/manifest.json");
    let object = match s3.get_object().bucket(&run.bucket).key(&key).send().await {
        Ok(o) => o,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => bail!(
            "itest failed: the job SUCCEEDED but wrote no s3://{}/{key}: the splitter must write it last, \
             and only on success (a splitter bug: see its log in {})",
            run.bucket,
            plan.log_group
        ),
        Err(err) => {
            return Err(sdk_error(err))
                .with_context(|| format!("cannot read s3://{}/{key}", run.bucket));
        }
    };
    let bytes = object
        .body
        .collect()
        .await
        .with_context(|| format!("cannot download s3://{}/{key}", run.bucket))?
        .into_bytes();
    let manifest: Manifest = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "itest failed: s3://{}/{key} is not a splitter manifest (schema {}..={})",
            run.bucket,
            verify::SCHEMAS.start(),
            verify::SCHEMAS.end()
        )
    })?;

    let scratch = Scratch::create()?;
    let mut stored = Vec::new();
    for (path, _, _) in manifest.files() {
        let key = format!("{prefix}/{path}");
        let is_segment = manifest.segments.iter().any(|s| s.path == path);
        let copy = is_segment.then(|| scratch.file_for(path));
        let mut object = stored_object(&s3, &run.bucket, &key, path, copy.as_deref()).await?;
        if let (Some(file), Some(_)) = (copy, object.bytes) {
            let ffprobe = ffprobe.to_owned();
            let probe_file = file.clone();
            object.packets = Some(
                tokio::task::spawn_blocking(move || probe_segment(&ffprobe, &probe_file))
                    .await
                    .context("the ffprobe task failed")??,
            );
            let _ = std::fs::remove_file(&file);
        }
        stored.push(object);
    }
    let listed = list_keys(&s3, &run.bucket, &format!("{prefix}/")).await?;
    let relative: Vec<String> = listed
        .iter()
        .filter_map(|k| k.strip_prefix(&format!("{prefix}/")).map(str::to_owned))
        .collect();
    let checks = verify::verify(&manifest, source, plan.segment_seconds, &stored, &relative);
    Ok((manifest, checks))
}

/// A private temporary directory for the downloaded segments, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "xtask-itest-{}-{}",
            std::process::id(),
            random_hex(8)
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    /// Where the copy of a manifest path goes (its file name kept: `000001.mp4`).
    fn file_for(&self, path: &str) -> PathBuf {
        self.0.join(path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("segment"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lists the video packets of a downloaded segment with ffprobe (decode order, no decoding).
/// `Ok(Err(why))`: ffprobe ran but cannot read the file (a failed check, not an error).
fn probe_segment(ffprobe: &Path, file: &Path) -> Result<Result<verify::Packets, String>> {
    let out = std::process::Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,flags"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .with_context(|| format!("cannot run {}", ffprobe.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.trim_start_matches(&format!("{}: ", file.display())).to_owned())
            .unwrap_or_else(|| format!("ffprobe exited with {}", out.status));
        return Ok(Err(why));
    }
    Ok(verify::parse_packets(&String::from_utf8_lossy(&out.stdout)))
}

/// Downloads one object, hashing it on the way (and writing it to `copy`, when given).
async fn stored_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &str,
    copy: Option<&Path>,
) -> Result<Stored> {
    let mut object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Ok(Stored {
                path: path.to_owned(),
                bytes: None,
                sha256: None,
                meta_sha256: None,
                packets: None,
            });
        }
        Err(err) => {
            return Err(sdk_error(err)).with_context(|| format!("cannot read s3://{bucket}/{key}"));
        }
    };
    let meta_sha256 = object.metadata().and_then(|m| m.get("sha256")).cloned();
    let mut file = match copy {
        Some(p) => Some(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => None,
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .with_context(|| format!("cannot download s3://{bucket}/{key}"))?
    {
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        if let (Some(f), Some(p)) = (file.as_mut(), copy) {
            f.write_all(&chunk).with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    Ok(Stored {
        path: path.to_owned(),
        bytes: Some(bytes),
        sha256: Some(source::hex(&hasher.finalize())),
        meta_sha256,
        packets: None,
    })
}

async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("cannot list s3://{bucket}/{prefix}"))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
    }
    Ok(keys)
}

/// Deletes every object under `prefix`; returns how many.
async fn delete_prefix(aws: &Aws, bucket: &str, prefix: &str) -> Result<usize> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let s3 = aws.s3();
    let keys = list_keys(&s3, bucket, prefix).await?;
    for chunk in keys.chunks(1000) {
        let objects = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(Delete::builder().set_objects(Some(objects)).quiet(true).build()?)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cannot delete objects under s3://{bucket}/{prefix}"))?;
        if let Some(e) = out.errors().first() {
            bail!(
                "cannot delete s3://{bucket}/{}: {}",
                e.key().unwrap_or("?"),
                e.message().unwrap_or("no reason given")
            );
        }
    }
    Ok(keys.len())
}

/// At most 200 characters of an error, for a Batch status reason.
fn first_words(text: &str) -> String {
    text.chars().take(200).collect()
}

fn clear_live_line() {
    if std::io::stdout().is_terminal() {
        print!("\r\x1b[2K");
        let _ = std::io::stdout().flush();
    }
}

/// `90s`, `10m`, `1h30m`, `2h`, or plain seconds (`90`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration: use e.g. 90s, 10m, 1h30m");
    if let Ok(secs) = text.parse::<u64>() {
        return if secs == 0 { Err(bad()) } else { Ok(Duration::from_secs(secs)) };
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut units_seen = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let factor = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        if number.is_empty() || units_seen.contains(c) {
            return Err(bad());
        }
        units_seen.push(c);
        total += number.parse::<u64>().map_err(|_| bad())? * factor;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// The shortest of `1h30m`, `10m`, `90s` style (whole seconds).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 || out.is_empty() {
        let _ = write!(out, "{s}s");
    }
    out
}

fn parse_segment_seconds(text: &str) -> Result<String, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(text.trim().to_owned()),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

/// `n` random hex digits (std's randomly seeded hasher, no extra dependency).
fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    let hex = format!("{:016x}", h.finish());
    hex[..n.min(16)].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m5s"), Ok(Duration::from_secs(125)));
        for bad in ["", "0", "0s", "m", "5x", "1m1m", "10m5", "-3s", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn segment_seconds_must_be_positive() {
        assert_eq!(parse_segment_seconds("4").as_deref(), Ok("4"));
        assert_eq!(parse_segment_seconds(" 2.5").as_deref(), Ok("2.5"));
        for bad in ["0", "-1", "x", "inf", "NaN"] {
            assert!(parse_segment_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn run_names_are_unique_and_valid() {
        let target = Target {
            project: "upscaler".into(),
            env: crate::config::Env::Dev,
            region: "us-east-1".into(),
        };
        let source = Source {
            path: "/v/clip.mp4".into(),
            bytes: 1,
            sha256: "00".into(),
            expect: source::Expect::fixture(),
        };
        let (a, b) = (Run::new(&target, &source), Run::new(&target, &source));
        assert_ne!(a.prefix, b.prefix);
        assert!(a.prefix.starts_with("itest/") && a.prefix.len() == "itest/".len() + 16 + 1 + 6);
        assert_eq!(a.input_key, format!("{}/input.mp4", a.prefix));
        assert_eq!(a.input_uri(), format!("s3://upscaler-splitter-dev-data/{}", a.input_key));
        assert_eq!(a.output_uri(), format!("s3://upscaler-splitter-dev-data/{}/output", a.prefix));
        // Batch: letters, digits, hyphens and underscores, up to 128.
        assert!(a.job_name.starts_with("upscaler-itest-dev-"), "{}", a.job_name);
        assert!(
            a.job_name.len() <= 128
                && a.job_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    /// The real ffprobe on real files (needs ffmpeg: `cargo xtask test` installs it).
    #[test]
    fn ffprobe_lists_the_video_packets_of_a_file() {
        let ffprobe = find_ffprobe().expect("ffprobe on PATH");
        let fixture = crate::project_root().join(source::FIXTURE);
        let p = probe_segment(&ffprobe, &fixture).expect("ffprobe runs").expect("a video");
        // 12 s at 24 fps, closed GOPs with B-frames: no leading pictures; audio not counted.
        assert_eq!((p.count, p.leading), (288, 0), "{p:?}");
        assert!(p.starts_on_keyframe(), "{p:?}");

        let scratch = Scratch::create().expect("scratch dir");
        let text = scratch.file_for("segments/000000.mp4");
        assert!(text.ends_with("000000.mp4") && text.starts_with(&scratch.0));
        std::fs::write(&text, "not a video\n").expect("write");
        let why = probe_segment(&ffprobe, &text).expect("ffprobe runs").expect_err("not a video");
        assert!(why.contains("Invalid data found"), "{why}");
        assert!(!why.contains(&scratch.0.display().to_string()), "no temporary path: {why}");
        let dir = scratch.0.clone();
        drop(scratch);
        assert!(!dir.exists(), "the scratch directory is removed");
    }

    #[test]
    fn splitter_json_logs_read_like_text_and_name_the_error() {
        let lines = vec![
            r#"{"timestamp":"2026-11-27T21:04:01Z","level":"INFO","message":"probed","codec":"h264","width":320}"#.to_owned(),
            "plain text".to_owned(),
            r#"{"timestamp":"2026-11-27T21:04:01Z","level":"ERROR","message":"/tmp/in is a text file, not a video","exit_code":4,"kind":"not_a_video"}"#.to_owned(),
        ];
        assert_eq!(format_log_line(&lines[0]), "INFO  probed codec=h264 width=320");
        assert_eq!(format_log_line(&lines[1]), "plain text");
        assert_eq!(
            format_log_line(&lines[2]),
            "ERROR /tmp/in is a text file, not a video exit_code=4 kind=not_a_video"
        );
        assert_eq!(
            splitter_error(&lines).as_deref(),
            Some("/tmp/in is a text file, not a video (exit 4, not_a_video)")
        );
        assert_eq!(splitter_error(&lines[..2]), None);
    }

    #[test]
    fn what_batch_says_about_a_failure_is_shown_when_present() {
        use aws_sdk_batch::types::{AttemptContainerDetail, AttemptDetail, ContainerDetail};
        // Real AWS: a reason and exit codes.
        let job = JobDetail::builder()
            .job_name("j")
            .job_id("1")
            .job_queue("q")
            .status(JobStatus::Failed)
            .status_reason("Essential container in task exited")
            .container(
                ContainerDetail::builder().exit_code(4).log_stream_name("s/default/t").build(),
            )
            .attempts(
                AttemptDetail::builder()
                    .container(AttemptContainerDetail::builder().exit_code(137).build())
                    .status_reason("Host EC2 terminated")
                    .build(),
            )
            .attempts(
                AttemptDetail::builder()
                    .container(AttemptContainerDetail::builder().exit_code(4).build())
                    .build(),
            )
            .started_at(1)
            .job_definition("d")
            .build();
        let facts = failure_facts(&job);
        assert_eq!(facts[0], ("status reason", "Essential container in task exited".to_owned()));
        assert_eq!(facts[1], ("exit code", "4".to_owned()));
        assert_eq!(facts[2], ("attempt", "1: exit code 137; Host EC2 terminated".to_owned()));
        assert_eq!(log_stream(&job).as_deref(), Some("s/default/t"));
        let tail = vec![r#"{"level":"ERROR","message":"boom","exit_code":4}"#.to_owned()];
        assert_eq!(
            failure_summary(&job, &tail, true),
            ": Essential container in task exited; exit code 4; the splitter says: boom (exit 4)"
        );
        // moto: nothing but the log stream, on the attempt.
        let bare = JobDetail::builder()
            .job_name("j")
            .job_id("1")
            .job_queue("q")
            .status(JobStatus::Failed)
            .attempts(
                AttemptDetail::builder()
                    .container(
                        AttemptContainerDetail::builder().log_stream_name("a/default/1").build(),
                    )
                    .build(),
            )
            .started_at(1)
            .job_definition("d")
            .build();
        assert!(failure_facts(&bare).is_empty());
        assert_eq!(log_stream(&bare).as_deref(), Some("a/default/1"));
        assert_eq!(
            failure_summary(&bare, &["x".to_owned(), "last words".to_owned()], true),
            ": last log line: last words"
        );
        assert_eq!(failure_summary(&bare, &[], true), "");
        assert_eq!(failure_summary(&job, &[], false), ": exit code 4");
    }
}
