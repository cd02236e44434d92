//! `cargo xtask itest`: stage 4 of the deployment guide ("Integration Test"). Runs one real
//! Batch job of the environment on a test video and checks what it wrote, then a second one that
//! joins the segments back and checks that the source comes back.
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
//! 7. Joins them back, unless `--no-join`: a second job (the same revision and queue, named like
//!    the first plus `-join`) with its command overridden to `join {output} {output}/segments/
//!    s3://{bucket}/{prefix}/joined.mp4`, watched like the first (steps 4 and 5); then the host's
//!    ffprobe lists the packets of the uploaded video and of the downloaded `joined.mp4`: the
//!    video packets must be the source's one for one (data sha256, size, flags, pts, dts,
//!    duration), and each audio stream's too (data sha256, pts) ([`JOIN_CHECKS`]). Skipped, with
//!    the reason printed, when the split's own segments cannot join back to the source: segments
//!    with lead-in or trailing frames (an open GOP, context frames), or a container other than
//!    MP4/MOV and Matroska (their bitstream is stored otherwise).
//! 8. Deletes the run's prefix, unless `--keep`.
//!
//! Locally the job really runs: moto's Batch starts the job definition's image as a Docker
//! container, which reads and writes moto's S3.
//!
//! Each step is a function named for it: [`preflight()`], [`upload`], [`job::submit`],
//! [`job::watch`], [`Itest::report_failure`], [`check_output`], [`Itest::join_back`],
//! [`Itest::clean_up`]; this file keeps the command, the plan printout and the steps' order
//! ([`Itest::execute`]). The rooms: `preflight` (what exists in the environment), `job` (submit,
//! watch, terminate on a timeout, Ctrl-C or an error), `logs` (the CloudWatch log tail), `output`
//! (downloading the objects, ffprobe of the segments, deleting the prefix), `manifest` (the
//! manifest as itest reads it), `verify` (the checks, [`CHECKS`]), `join` (the join job and the
//! packet comparison, [`JOIN_CHECKS`]) and `source` (the video and what a correct split of it
//! looks like).

mod job;
mod join;
mod logs;
mod manifest;
mod output;
mod preflight;
mod source;
mod verify;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_batch::types::{JobDetail, JobStatus};
use clap::Args;
use xshell::Shell;

use crate::aws::{Aws, sdk_error};
use crate::config::{PLACEHOLDER_TAG, Target};
use crate::display_path;
use crate::dry_run::DryRun;
use crate::time::{format_duration, parse_duration};
pub use join::JOIN_CHECKS;
use manifest::Manifest;
use preflight::{Resolved, preflight};
use source::Source;
pub use verify::CHECKS;

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  cargo xtask itest --env dev                      # the fixture, xtask/fixtures/itest.mp4
  cargo xtask itest --env staging --video movie.mkv --timeout 30m --keep
  cargo xtask itest --dry-run                      # print the plan; upload and submit nothing
  . target/xtask/local/env && cargo xtask itest    # the local stack (moto runs the container)

Exit status: 0 when the jobs SUCCEEDED and every check passed; non-zero otherwise (the failed
job's status reason and log tail are printed). After the split, a second job joins its own
segments back into joined.mp4, whose packets must be the video's (skipped with a note for an
open-GOP split or a container other than MP4/MOV and Matroska; `--no-join` skips it). Needs
ffprobe on PATH (install ffmpeg): it lists each segment's video packets and the joined file's
and the video's packets, and probes a `--video` to know what a correct split of it looks like.")]
pub struct Itest {
    #[command(flatten)]
    pub target: Target,
    /// The video to split [default: xtask/fixtures/itest.mp4, 12 s of H.264 + AAC].
    #[arg(long, value_name = "PATH")]
    pub video: Option<PathBuf>,
    /// Give up (and terminate the job) after this long, e.g. `90s`, `10m`, `1h30m` (each job:
    /// the split, then the join).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Pass `segment_seconds` as a job parameter [default: the job definition's default].
    #[arg(long, value_name = "SECONDS", value_parser = parse_segment_seconds)]
    pub segment_seconds: Option<String>,
    /// Keep the run's S3 objects (input, output and joined.mp4) instead of deleting them.
    #[arg(long)]
    pub keep: bool,
    /// Do not join the segments back (the second job, `splitter join`, and its packet checks).
    #[arg(long)]
    pub no_join: bool,
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
    /// The join round trip (step 7).
    pub join: JoinOutcome,
}

/// What the join step did.
#[derive(Debug, Clone)]
pub enum JoinOutcome {
    /// Not run: why (`--no-join`, lead-in frames, the container).
    Skipped(String),
    /// The join job SUCCEEDED and the joined file's packets are the source's.
    Joined {
        job_id: String,
        /// From submission to SUCCEEDED.
        job_seconds: f64,
        video_packets: usize,
        audio_packets: usize,
    },
}

impl JoinOutcome {
    /// For the pass line: `joined it back (job …, 1.1 s): 288 video and 564 audio packets
    /// identical` or `join skipped (…)`.
    pub fn summary(&self) -> String {
        match self {
            JoinOutcome::Skipped(why) => format!("join skipped ({why})"),
            JoinOutcome::Joined { job_id, job_seconds, video_packets, audio_packets } => format!(
                "joined it back (job {job_id}, {job_seconds:.1} s): {video_packets} video and \
                 {audio_packets} audio packets identical to the source's"
            ),
        }
    }
}

/// What steps 2 to 7 work on: the clients, the video, what preflight resolved, the run's
/// names, the host's ffprobe and the job being tracked (for Ctrl-C and errors).
#[derive(Debug, Clone, Copy)]
struct Ctx<'a> {
    aws: &'a Aws,
    source: &'a Source,
    resolved: &'a Resolved,
    run: &'a Run,
    ffprobe: &'a Path,
    job: &'a job::Tracked,
}

/// Where the run's objects go and what the job is called.
#[derive(Debug, Clone)]
struct Run {
    bucket: String,
    /// `itest/{stamp}-{random}` (no trailing slash).
    prefix: String,
    input_key: String,
    job_name: String,
    /// `{job_name}-join`, within Batch's 128 characters.
    join_job_name: String,
}

impl Run {
    fn new(target: &Target, source: &Source) -> Run {
        let id = format!("{}-{}", crate::time::compact(SystemTime::now()), random_hex(6));
        let prefix = format!("itest/{id}");
        let mut job_name = format!("{}-itest-{}-{id}", target.project, target.env);
        job_name.retain(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        job_name.truncate(128);
        let mut join_job_name = job_name.clone();
        join_job_name.truncate(128 - "-join".len());
        join_job_name.push_str("-join");
        Run {
            bucket: target.bucket(),
            input_key: format!("{prefix}/{}", source.object_name()),
            prefix,
            job_name,
            join_job_name,
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
    fn joined_key(&self) -> String {
        format!("{}/{}", self.prefix, join::JOINED)
    }
    fn joined_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.joined_key())
    }
}

impl Itest {
    pub fn run(self, sh: &Shell) -> Result<()> {
        self.execute(sh).map(|_| ())
    }

    /// Runs the test; `None` for a dry run.
    pub fn execute(&self, sh: &Shell) -> Result<Option<Outcome>> {
        let ffprobe = self.ffprobe(sh)?;
        let source = Source::load(sh, self.video.as_deref())?;
        let aws = Aws::load(&self.target.region)?;
        let resolved =
            aws.block_on(preflight(&aws, &self.target, self.segment_seconds.as_deref()))?;
        let run = Run::new(&self.target, &source);
        self.print_plan(&source, &resolved, &run, &ffprobe);
        self.refuse_placeholder(&resolved)?;
        if self.dry_run {
            println!("dry run: nothing uploaded, no job submitted");
            return Ok(None);
        }

        // Steps 2 to 6, until Ctrl-C; a job an error leaves running is terminated.
        let job = job::Tracked::default();
        let result = aws.block_on(job::or_ctrl_c(self.run_job(Ctx {
            aws: &aws,
            source: &source,
            resolved: &resolved,
            run: &run,
            ffprobe: &ffprobe,
            job: &job,
        })));
        if let Err(err) = &result {
            job.terminate_if_running(&aws, err);
        }
        self.clean_up(&aws, &run);
        let outcome = result?;
        crate::gha::write_outputs(&[
            ("itest-job-id", &outcome.job_id),
            ("itest-job-definition", &outcome.job_definition),
        ])?;
        println!(
            "itest passed: job {} ({}) split {} into {} segment(s) and {} audio file(s) in {:.1} s; {} checks passed; {}",
            outcome.job_id,
            outcome.job_definition,
            display_path(&source.path),
            outcome.segments,
            outcome.audio,
            outcome.job_seconds,
            outcome.checks,
            outcome.join.summary()
        );
        Ok(Some(outcome))
    }

    /// The host's ffprobe, installed like the other tools when missing (as root), else the
    /// install command.
    fn ffprobe(&self, sh: &Shell) -> Result<PathBuf> {
        crate::tools::ensure(
            sh,
            &[crate::tools::FFMPEG],
            crate::tools::Mode::Install,
            DryRun::new(self.dry_run),
        )?;
        output::find_ffprobe()
    }

    /// The plan: what will be uploaded, submitted and checked, and what to expect.
    fn print_plan(&self, source: &Source, resolved: &Resolved, run: &Run, ffprobe: &Path) {
        let e = &source.expect;
        println!(
            "itest {} ({}, {}): job definition {}:{} on queue {}",
            self.target.env,
            self.target.project,
            self.target.region,
            resolved.job_definition,
            resolved.revision,
            resolved.queue
        );
        println!("  image      {}", resolved.image);
        println!(
            "  video      {} ({} bytes, sha256 {}…)",
            display_path(&source.path),
            source.bytes,
            &source.sha256[..12]
        );
        println!("  input      {}", run.input_uri());
        println!("  output     {}", run.output_uri());
        println!("  segments   {} s ({})", resolved.segment_seconds, resolved.segment_seconds_from);
        if e.video_seconds > 0.0 {
            let count = match e.segments(resolved.segment_seconds) {
                Some(n) => n.to_string(),
                None => format!("1..={}", e.max_segments(resolved.segment_seconds)),
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
        let dry = DryRun::new(self.dry_run).nested();
        dry.would(format_args!("upload {} to {}", display_path(&source.path), run.input_uri()));
        dry.would(format_args!("submit job {} and watch it, then check the output", run.job_name));
        if self.no_join {
            println!("  join       skipped (--no-join)");
        } else {
            println!(
                "  join       {} (unless the split has lead-in or trailing frames, or the video is \
                 not MP4/MOV or Matroska)",
                run.joined_uri()
            );
            dry.would(format_args!(
                "submit job {} (same revision and queue, command override: {}) and watch it, then \
                 compare the packets of {} with the video's (ffprobe)",
                run.join_job_name,
                join::command(run).join(" "),
                join::JOINED
            ));
        }
        if self.keep {
            println!("  keep       s3://{}/{}/ (--keep)", run.bucket, run.prefix);
        } else {
            dry.would(format_args!("delete s3://{}/{}/", run.bucket, run.prefix));
        }
    }

    /// A job definition that still runs the placeholder image is refused (a note on a dry run).
    fn refuse_placeholder(&self, resolved: &Resolved) -> Result<()> {
        if resolved.image.ends_with(&format!(":{PLACEHOLDER_TAG}")) {
            let next = "deploy an image first: `cargo xtask image`, `push` and `deploy` (or `cargo xtask pipeline`)";
            if !self.dry_run {
                bail!(
                    "revision {} of {} runs the placeholder image {} (nothing deployed yet): {next}",
                    resolved.revision,
                    resolved.job_definition,
                    resolved.image
                );
            }
            println!("note: the job definition runs the placeholder image: {next}");
        }
        Ok(())
    }

    /// Steps 2 to 6; `job` knows the job once it is submitted, and whether it ended, so that it
    /// does not run on when these stop early (Ctrl-C, a failed AWS call).
    async fn run_job(&self, ctx: Ctx<'_>) -> Result<Outcome> {
        let Ctx { aws, source, resolved, run, ffprobe, job } = ctx;
        upload(aws, source, run).await?;
        let batch = aws.batch();
        let id = job::submit(&batch, resolved, run, self.segment_seconds.as_deref()).await?;
        println!("submitted job {} ({id})", run.job_name);
        let elapsed = self.watch_to_success(aws, resolved, &run.job_name, &id, job).await?;
        println!("job SUCCEEDED after {elapsed:.1} s; checking {}/", run.output_uri());

        let (manifest, checks) = check_output(aws, source, resolved, run, ffprobe).await?;
        let join = self.join_back(ctx, &manifest).await?;
        Ok(Outcome {
            job_id: id,
            job_definition: format!("{}:{}", resolved.job_definition, resolved.revision),
            segments: manifest.segments.len(),
            audio: manifest.audio.len(),
            checks: checks.len(),
            job_seconds: elapsed,
            join,
        })
    }

    /// Watches a submitted job to its end (`job` tracks it, for Ctrl-C and errors); the seconds
    /// it took to SUCCEED, or the error [`Itest::report_failure`] makes of any other end.
    async fn watch_to_success(
        &self,
        aws: &Aws,
        resolved: &Resolved,
        name: &str,
        id: &str,
        job: &job::Tracked,
    ) -> Result<f64> {
        job.submitted(id);
        let started = Instant::now();
        let (detail, timed_out) = job::watch(&aws.batch(), id, started, self.timeout).await?;
        job.ended(id);
        let elapsed = started.elapsed().as_secs_f64();
        if timed_out || detail.status() != Some(&JobStatus::Succeeded) {
            return Err(self
                .report_failure(aws, resolved, name, &detail, timed_out, elapsed)
                .await);
        }
        Ok(elapsed)
    }

    /// Step 7: the join job (the split's own segments back into `joined.mp4`), watched like the
    /// split's, and the joined file's packets against the video's; skipped (with the reason
    /// printed) when that cannot give back the source.
    async fn join_back(&self, ctx: Ctx<'_>, manifest: &Manifest) -> Result<JoinOutcome> {
        let Ctx { aws, source, resolved, run, ffprobe, job } = ctx;
        if self.no_join {
            println!("join skipped (--no-join)");
            return Ok(JoinOutcome::Skipped("--no-join".to_owned()));
        }
        if let Some(why) = join::skip_reason(manifest) {
            println!("join skipped: {why}");
            return Ok(JoinOutcome::Skipped("lead-in or trailing frames".to_owned()));
        }
        let source_packets = join::probe(ffprobe, &source.path).await?.map_err(|why| {
            anyhow!("ffprobe cannot list the packets of {}: {why}", display_path(&source.path))
        })?;
        let dts = match join::dts_compared(&source_packets.format) {
            Ok(dts) => dts,
            Err(why) => {
                println!("join skipped: {why}");
                return Ok(JoinOutcome::Skipped(format!("a {} video", source_packets.format)));
            }
        };

        let batch = aws.batch();
        let id = join::submit(&batch, resolved, run).await?;
        println!(
            "submitted join job {} ({id}): {}",
            run.join_job_name,
            join::command(run).join(" ")
        );
        let elapsed = self.watch_to_success(aws, resolved, &run.join_job_name, &id, job).await?;
        println!(
            "join job SUCCEEDED after {elapsed:.1} s; comparing the packets of {} with {} (ffprobe)",
            run.joined_uri(),
            display_path(&source.path)
        );

        let scratch = output::Scratch::create()?;
        let file = scratch.file_for(join::JOINED);
        let found = output::download(aws, &run.bucket, &run.joined_key(), &file).await?;
        if found.is_none() {
            bail!(
                "itest failed: the join job SUCCEEDED but wrote no {}: the splitter must upload it \
                 before it exits 0 (a splitter bug: see its log in {})",
                run.joined_uri(),
                resolved.log_group
            );
        }
        let joined = join::probe(ffprobe, &file).await?;
        let checks = join::checks(joined.as_ref().map_err(String::as_str), &source_packets, dts);
        print_checks(&checks);
        let failed: Vec<&verify::Check> = checks.iter().filter(|c| !c.ok).collect();
        if let Some(first) = failed.first() {
            bail!(
                "itest failed: the join job SUCCEEDED but {} of {} join checks failed (listed above), first `{}`: {}",
                failed.len(),
                checks.len(),
                first.name,
                first.detail
            );
        }
        let packets = |t: &join::Track| t.packets.len();
        Ok(JoinOutcome::Joined {
            job_id: id,
            job_seconds: elapsed,
            video_packets: source_packets.video.as_ref().map_or(0, packets),
            audio_packets: source_packets.audio.iter().map(packets).sum(),
        })
    }

    /// Step 5: prints the status reason, exit code and log tail of a job that did not succeed
    /// (or timed out), the split's or the join's (`name`); returns the error that names them.
    async fn report_failure(
        &self,
        aws: &Aws,
        resolved: &Resolved,
        name: &str,
        job: &JobDetail,
        timed_out: bool,
        elapsed: f64,
    ) -> anyhow::Error {
        let status = job.status().map(|s| s.as_str()).unwrap_or("?");
        println!("job {status}");
        for (what, value) in job::failure_facts(job) {
            println!("  {what:<14} {value}");
        }
        // `None`: the job has no log stream.
        let tail = match job::log_stream(job) {
            None => {
                println!(
                    "  log            none: the job has no log stream (it never ran a container)"
                );
                None
            }
            Some(stream) => {
                println!("  log            {} {stream}", resolved.log_group);
                Some(logs::show_tail(aws, &resolved.log_group, &stream, self.log_lines).await)
            }
        };

        // After a timeout the status reason is ours: not worth repeating.
        let mut why = job::failure_summary(job, tail.as_deref().unwrap_or_default(), !timed_out);
        if tail.is_none() {
            why.push_str(&format!(
                "; no container ran: can the compute environment pull {}?",
                resolved.image
            ));
        }
        let tail_hint = if tail.is_some() { "see the log tail above" } else { "see the job above" };
        if timed_out {
            return anyhow!(
                "itest failed: job {name} did not finish within {}: terminated it (status now {status}){why}; \
                 {tail_hint}, or raise --timeout",
                format_duration(self.timeout),
            );
        }
        anyhow!("itest failed: job {name} {status} after {elapsed:.1} s{why}; {tail_hint}")
    }

    /// Step 8: deletes the run's prefix, unless `--keep` (a failure to delete is a warning).
    fn clean_up(&self, aws: &Aws, run: &Run) {
        if self.keep {
            println!("kept s3://{}/{}/ (--keep)", run.bucket, run.prefix);
            return;
        }
        match aws.block_on(output::delete_prefix(aws, &run.bucket, &format!("{}/", run.prefix))) {
            Ok(n) => println!("deleted s3://{}/{}/ ({n} objects)", run.bucket, run.prefix),
            Err(e) => {
                eprintln!("warning: could not delete s3://{}/{}/: {e:#}", run.bucket, run.prefix)
            }
        }
    }
}

/// Step 2: uploads the video to the run's input key.
async fn upload(aws: &Aws, source: &Source, run: &Run) -> Result<()> {
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&source.path)
        .await
        .with_context(|| format!("cannot read {}", source.path.display()))?;
    aws.s3()
        .put_object()
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
    Ok(())
}

/// Step 6: reads what the job wrote ([`output::read`]), runs the checks ([`verify::verify`]) and
/// prints them; fails unless every check passed.
async fn check_output(
    aws: &Aws,
    source: &Source,
    resolved: &Resolved,
    run: &Run,
    ffprobe: &Path,
) -> Result<(Manifest, Vec<verify::Check>)> {
    let output = output::read(aws, resolved, run, ffprobe).await?;
    let checks = verify::verify(
        &output.manifest,
        source,
        resolved.segment_seconds,
        &output.stored,
        &output.listed,
    );
    print_checks(&checks);
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
    Ok((output.manifest, checks))
}

/// One line per check: `  ok    name  detail` or `  FAIL  name  detail`.
fn print_checks(checks: &[verify::Check]) {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in checks {
        println!("  {}  {:width$}  {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail);
    }
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
        assert_eq!(
            a.joined_uri(),
            format!("s3://upscaler-splitter-dev-data/{}/joined.mp4", a.prefix)
        );
        // Batch: letters, digits, hyphens and underscores, up to 128.
        assert!(a.job_name.starts_with("upscaler-itest-dev-"), "{}", a.job_name);
        assert_eq!(a.join_job_name, format!("{}-join", a.job_name));
        for name in [&a.job_name, &a.join_job_name] {
            assert!(
                name.len() <= 128
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
        // A long project name: the join job's name keeps its suffix within the limit.
        let long = Target { project: "p".repeat(120), ..target };
        let run = Run::new(&long, &source);
        assert_eq!(run.job_name.len(), 128);
        assert_eq!(run.join_job_name.len(), 128);
        assert!(run.join_job_name.ends_with("-join"), "{}", run.join_job_name);
        assert_eq!(
            join::command(&run),
            [
                "join".to_owned(),
                run.output_uri(),
                format!("{}/segments/", run.output_uri()),
                run.joined_uri()
            ]
        );
    }
}
