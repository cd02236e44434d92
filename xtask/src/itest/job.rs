//! The Batch job of a run (steps 3 and 4, and what Batch says in step 5): submitting it,
//! watching it (`DescribeJobs`, a live line on a terminal), terminating it on `--timeout`, on
//! Ctrl-C or when itest stops with an error while it still runs, and the facts of a job that did
//! not succeed (status reason, exit codes, its log stream).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_sdk_batch::types::{JobDetail, JobStatus};

use super::logs::{format_log_line, splitter_error};
use super::{Resolved, Run};
use crate::aws::{Aws, sdk_error};
use crate::time::format_duration;

/// How often the job's status is read (four times as often in its first 5 s).
const POLL: Duration = Duration::from_secs(1);
/// How long to wait for a terminated job to reach FAILED (its logs are complete then).
const TERMINATE_WAIT: Duration = Duration::from_secs(60);
/// Without a terminal, a line this often while the status stays the same.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// The job, once submitted, and whether it reached SUCCEEDED or FAILED: what must be terminated
/// when itest stops early.
#[derive(Debug, Default)]
pub(super) struct Tracked(RefCell<Option<(String, bool)>>);

impl Tracked {
    pub(super) fn submitted(&self, id: &str) {
        self.0.replace(Some((id.to_owned(), false)));
    }

    pub(super) fn ended(&self, id: &str) {
        self.0.replace(Some((id.to_owned(), true)));
    }

    /// Interrupted, or an AWS call failed while the job still runs: it must not run on.
    pub(super) fn terminate_if_running(&self, aws: &Aws, err: &anyhow::Error) {
        let Some((id, false)) = self.0.borrow().clone() else { return };
        clear_live_line();
        let reason = format!("cargo xtask itest stopped: {}", first_words(&format!("{err:#}")));
        match aws.block_on(async { terminate_job(&aws.batch(), &id, &reason).await }) {
            Ok(()) => println!("terminated job {id} (TerminateJob: {reason})"),
            Err(e) => eprintln!("warning: could not terminate job {id}: {e:#}"),
        }
    }
}

/// `work`, or an error as soon as Ctrl-C is pressed (`work` is dropped then).
pub(super) async fn or_ctrl_c<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (Ctrl-C): itest did not finish")),
    }
}

/// Step 3: submits the job to the environment's queue with the revision preflight resolved; returns its id.
pub(super) async fn submit(
    batch: &aws_sdk_batch::Client,
    resolved: &Resolved,
    run: &Run,
    segment_seconds: Option<&str>,
) -> Result<String> {
    let mut submit = batch
        .submit_job()
        .job_name(&run.job_name)
        .job_queue(&resolved.queue)
        .job_definition(&resolved.arn)
        .parameters("input", run.input_uri())
        .parameters("output", run.output_uri());
    if let Some(seconds) = segment_seconds {
        submit = submit.parameters("segment_seconds", seconds);
    }
    let submitted = submit.send().await.map_err(sdk_error).with_context(|| {
        format!(
            "cannot submit a job to queue {}: check the role's batch:SubmitJob permission",
            resolved.queue
        )
    })?;
    Ok(submitted.job_id().context("Batch returned no job id")?.to_owned())
}

/// Step 4: polls until the job ends, or terminates it when `timeout` runs out. Returns the last
/// description and whether it timed out.
pub(super) async fn watch(
    batch: &aws_sdk_batch::Client,
    id: &str,
    started: Instant,
    timeout: Duration,
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
            None if elapsed >= timeout => {
                clear_live_line();
                let reason =
                    format!("cargo xtask itest: no result within {}", format_duration(timeout));
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
                None => format!("timeout in {}", format_duration(timeout - elapsed)),
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

/// Status reason, exit codes and reasons of the job and its attempts (what real Batch gives;
/// moto gives none of them for a failed container).
pub(super) fn failure_facts(job: &JobDetail) -> Vec<(&'static str, String)> {
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
pub(super) fn log_stream(job: &JobDetail) -> Option<String> {
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

/// `: reason; exit code N; the splitter says "…"` for the error line (empty when nothing is known).
pub(super) fn failure_summary(job: &JobDetail, tail: &[String], with_reason: bool) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
