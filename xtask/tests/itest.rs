//! `cargo xtask itest` against the local stack: real Batch job containers started by moto, their
//! logs read from moto's CloudWatch Logs, results read back with the SDK and Docker.
//!
//! Each test has its own project on the test binary's stack (`support::stack()`), created like
//! Terraform would (`local up --project …`). The failure paths that need no splitter run small
//! bash jobs on the local Debian base image; the one that does (not a video) deploys the real
//! image, built from `container/Dockerfile` (BuildKit's cache makes that a few seconds when
//! `cargo xtask image` already ran on this machine, e.g. in `xtask/tests/image.rs`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aws_sdk_batch::types::{JobDefinitionType, JobStatus};
use support::{Run, Stack};

/// A test's own project on the shared stack.
#[derive(Debug)]
struct Project {
    stack: &'static Stack,
    name: String,
    /// CARGO_TARGET_DIR of its xtask runs (build record, scan reports) and its Docker config.
    dir: PathBuf,
}

impl Project {
    /// `prefix`: a few lowercase letters naming the test. Creates the environment's resources.
    fn new(prefix: &str) -> Project {
        let stack = support::stack();
        let name = format!("{prefix}{}", std::process::id());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xtask-itest").join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docker-config")).expect("project dir");
        let project = Project { stack, name, dir };
        support::run(
            stack
                .xtask()
                .args(["local", "up", "--no-install", "--project", &project.name])
                .args(stack.args()),
        )
        .assert_success();
        project
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = self.stack.xtask();
        cmd.args(args)
            .env("PROJECT_NAME", &self.name)
            .env("CARGO_TARGET_DIR", &self.dir)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        support::run(&mut self.xtask(args))
    }

    fn queue(&self) -> String {
        format!("{}-splitter-queue-dev", self.name)
    }

    fn bucket(&self) -> String {
        format!("{}-splitter-dev-data", self.name)
    }

    fn job_definition(&self) -> String {
        format!("{}-splitter-job-dev", self.name)
    }

    /// Registers a revision like the latest one, running `command` in `image`.
    fn register(&self, image: &str, command: &[&str]) -> i32 {
        let aws = self.stack.aws();
        let batch = aws.batch();
        let described = aws
            .block_on(
                batch
                    .describe_job_definitions()
                    .job_definition_name(self.job_definition())
                    .status("ACTIVE")
                    .send(),
            )
            .expect("describe the job definition");
        let latest = described
            .job_definitions()
            .iter()
            .max_by_key(|d| d.revision())
            .expect("a job definition")
            .clone();
        let mut container = latest.container_properties().expect("container").clone();
        container.image = Some(image.to_owned());
        container.command = Some(command.iter().map(|s| (*s).to_owned()).collect());
        let out = aws
            .block_on(
                batch
                    .register_job_definition()
                    .job_definition_name(self.job_definition())
                    .r#type(JobDefinitionType::Container)
                    .container_properties(container)
                    .set_parameters(latest.parameters().cloned())
                    .send(),
            )
            .expect("register a revision");
        out.revision().expect("revision")
    }

    /// (job id, job name, status, status reason) of every job on the project's queue.
    fn jobs(&self) -> Vec<(String, String, JobStatus, Option<String>)> {
        let aws = self.stack.aws();
        let batch = aws.batch();
        let mut out = Vec::new();
        for status in
            [JobStatus::Submitted, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed]
        {
            let listed = aws
                .block_on(batch.list_jobs().job_queue(self.queue()).job_status(status).send())
                .expect("list jobs");
            for j in listed.job_summary_list() {
                out.push((
                    j.job_id().unwrap_or_default().to_owned(),
                    j.job_name().unwrap_or_default().to_owned(),
                    j.status().cloned().unwrap_or(JobStatus::Submitted),
                    j.status_reason().map(str::to_owned),
                ));
            }
        }
        out
    }

    /// Every key in the project's bucket.
    fn keys(&self) -> Vec<String> {
        let aws = self.stack.aws();
        let out = aws
            .block_on(aws.s3().list_objects_v2().bucket(self.bucket()).send())
            .expect("list the bucket");
        out.contents().iter().filter_map(|o| o.key()).map(str::to_owned).collect()
    }
}

fn base_image(stack: &Stack) -> String {
    stack.var("SPLITTER_BASE_IMAGE").expect("the stack's base image").to_owned()
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a file");
    path
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the images earlier runs of this file left (`{prefix}{pid}-splitter:*` and
/// `{registry}/{prefix}{pid}-splitter-*`), except this process's (its tests share them).
fn remove_stale_images(prefix: &str) {
    let me = std::process::id().to_string();
    let listed = docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    for image in listed.lines() {
        let repo = image
            .split_once('/')
            .filter(|(h, _)| h.starts_with("127.0.0.1:"))
            .map_or(image, |(_, r)| r);
        let Some(rest) = repo.strip_prefix(prefix) else { continue };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() || digits == me || !rest[digits.len()..].starts_with("-splitter") {
            continue;
        }
        let _ = Command::new("docker").args(["image", "rm", "--force", image]).output();
    }
}

/// The real image, deployed once for this binary (`pipeline` without its scan and itest stages,
/// so through the same code as the individual commands).
fn deployed() -> &'static Project {
    static DEPLOYED: OnceLock<Project> = OnceLock::new();
    DEPLOYED.get_or_init(|| {
        remove_stale_images("itreal");
        let project = Project::new("itreal");
        let _heavy = support::docker_lock();
        let run = project.run(&["pipeline", "--skip", "scan,itest", "--allow-dirty"]);
        run.assert_success();
        project
    })
}

/// The README's command, run again into a temporary file, makes a video with the same
/// properties as the committed one; both are what itest expects of the fixture.
#[test]
fn the_fixture_is_what_its_command_makes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned();
    let fixture = root.join("xtask/fixtures/itest.mp4");
    let size = std::fs::metadata(&fixture).expect("the fixture exists").len();
    assert!(size < 2_000_000, "the fixture is {size} bytes, over 2 MB");

    let readme = std::fs::read_to_string(root.join("xtask/fixtures/README.md")).expect("README");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sh block with the command");
    let words: Vec<&str> = block.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"ffmpeg"), "{block}");
    assert_eq!(words.last(), Some(&"xtask/fixtures/itest.mp4"), "{block}");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("itest-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let again = dir.join("itest.mp4");
    let mut args: Vec<String> = words[1..words.len() - 1].iter().map(|w| (*w).to_owned()).collect();
    args.push(again.display().to_string());
    let made = support::run(
        Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error"]).args(&args),
    );
    made.assert_success();

    for video in [&fixture, &again] {
        let probe = support::run(Command::new("ffprobe").args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,codec_name,profile,width,height,avg_frame_rate,duration,nb_read_packets,sample_rate,channels:format=duration",
            "-of",
            "json",
        ]).arg(video));
        probe.assert_success();
        let info: serde_json::Value = serde_json::from_str(&probe.stdout()).expect("ffprobe JSON");
        let streams = info["streams"].as_array().expect("streams");
        assert_eq!(streams.len(), 2, "{video:?}: {info}");
        let v = &streams[0];
        assert_eq!(
            (v["codec_type"].as_str(), v["codec_name"].as_str(), v["profile"].as_str()),
            (Some("video"), Some("h264"), Some("Main")),
            "{video:?}"
        );
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(320), Some(240)));
        assert_eq!(v["avg_frame_rate"], "24/1");
        assert_eq!(v["nb_read_packets"], "288", "{video:?}: 12 s at 24 fps");
        assert_eq!(v["duration"], "12.000000");
        let a = &streams[1];
        assert_eq!(
            (a["codec_type"].as_str(), a["codec_name"].as_str()),
            (Some("audio"), Some("aac"))
        );
        assert_eq!((a["sample_rate"].as_str(), a["channels"].as_u64()), (Some("48000"), Some(2)));
        assert_eq!(info["format"]["duration"], "12.000000");

        let keyframes = support::run(
            Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "packet=pts_time,flags",
                    "-of",
                    "csv=p=0",
                ])
                .arg(video),
        );
        keyframes.assert_success();
        let times: Vec<String> = keyframes
            .stdout()
            .lines()
            .filter(|l| l.contains('K'))
            .map(|l| l.split(',').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            times,
            ["0.000000", "2.000000", "4.000000", "6.000000", "8.000000", "10.000000"],
            "{video:?}"
        );
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_missing_queue_is_one_clear_line() {
    let stack = support::stack();
    let project = format!("noqueue{}", std::process::id());
    let run = support::run(stack.xtask().args(["itest", "--project", &project]));
    let line = run.assert_one_line_error();
    assert!(
        line.contains(&format!("job queue {project}-splitter-queue-dev does not exist")),
        "{line}"
    );
    assert!(line.contains("cargo xtask local up"), "{line}");
}

#[test]
fn nothing_deployed_yet_is_refused_and_a_dry_run_changes_nothing() {
    let project = Project::new("itdry");
    // Revision 1 runs the placeholder image `local up` (Terraform) registers.
    let line = project.run(&["itest"]).assert_one_line_error();
    assert!(line.contains("placeholder"), "{line}");
    assert!(line.contains("cargo xtask pipeline"), "{line}");

    project.register(&base_image(project.stack), &["true", "Ref::input", "Ref::output"]);
    let dry = project.run(&["itest", "--dry-run", "--segment-seconds", "4"]);
    dry.assert_success();
    let out = dry.stdout();
    assert!(out.contains("[dry-run] would upload xtask/fixtures/itest.mp4"), "{out}");
    assert!(out.contains("segments   4 s (--segment-seconds)"), "{out}");
    assert!(out.contains("expect     3 segment(s), 12.000 s of video, 1 audio file(s)"), "{out}");
    assert!(
        out.contains(&format!(
            "job definition {}:2 on queue {}",
            project.job_definition(),
            project.queue()
        )),
        "{out}"
    );
    assert_eq!(project.keys(), Vec::<String>::new(), "a dry run uploads nothing");
    assert!(project.jobs().is_empty(), "a dry run submits nothing");

    // Bad flags are refused by the parser, before any AWS call.
    let bad = project.run(&["itest", "--timeout", "soon"]);
    assert!(!bad.success() && bad.stderr().contains("is not a duration"), "{}", bad.stderr());
}

#[test]
fn a_failing_container_shows_the_tail_of_its_log() {
    let project = Project::new("itfail");
    // One stream: moto merges a container's stdout and stderr by timestamp, which can tie.
    let script = r#"exec 2>&1; for i in $(seq 1 60); do echo "line $i"; done; echo "boom: giving up on $1" >&2; exit 3"#;
    project.register(
        &base_image(project.stack),
        &["bash", "-c", script, "job", "Ref::input", "Ref::output"],
    );
    let run = {
        let _heavy = support::docker_lock();
        project.run(&["itest", "--log-lines", "10"])
    };
    let line = run.assert_one_line_error();
    assert!(line.contains("FAILED after"), "{line}");
    assert!(line.contains("last log line: boom: giving up on s3://"), "{line}");

    let out = run.stdout();
    let shown: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("    | ")).collect();
    let want: Vec<String> = (52..=60).map(|i| format!("line {i}")).collect();
    assert_eq!(shown.len(), 10, "the last 10 lines:\n{out}");
    assert_eq!(&shown[..9], want.as_slice(), "{out}");
    assert!(shown[9].starts_with("boom: giving up on s3://"), "{out}");
    assert!(out.contains("last 10 line(s) of the log:"), "{out}");
    assert!(
        out.contains(&format!(
            "log            /aws/batch/job {}/default/",
            project.job_definition()
        )),
        "{out}"
    );

    // Batch (moto) has the job FAILED; its input was uploaded, then deleted with the run.
    let jobs = project.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].2, JobStatus::Failed);
    assert!(out.contains(&format!("submitted job {} ({})", jobs[0].1, jobs[0].0)), "{out}");
    assert!(out.contains("uploaded s3://"), "{out}");
    assert_eq!(project.keys(), Vec::<String>::new(), "the run's objects are deleted");
}

#[test]
fn a_job_past_its_timeout_is_terminated() {
    let project = Project::new("ittime");
    let script = r#"echo "started on $1"; exec sleep 600"#;
    project.register(
        &base_image(project.stack),
        &["bash", "-c", script, "job", "Ref::input", "Ref::output"],
    );
    let run = {
        let _heavy = support::docker_lock();
        project.run(&["itest", "--timeout", "3s", "--keep"])
    };
    let line = run.assert_one_line_error();
    assert!(line.contains("did not finish within 3s: terminated it (status now FAILED)"), "{line}");
    assert!(line.contains("raise --timeout"), "{line}");
    let out = run.stdout();
    assert!(
        out.contains("timed out: TerminateJob sent (cargo xtask itest: no result within 3s)"),
        "{out}"
    );
    assert!(out.contains("    | started on s3://"), "the log written before the kill: {out}");

    // TerminateJob took effect: FAILED with our reason, and moto removed the container.
    let jobs = project.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let (id, _, status, reason) = &jobs[0];
    assert_eq!(*status, JobStatus::Failed);
    assert_eq!(reason.as_deref(), Some("cargo xtask itest: no result within 3s"));
    let containers = docker(&["ps", "--all", "--quiet", "--filter", &format!("name={id}")]);
    assert_eq!(containers.trim(), "", "the job's container is gone");

    // --keep kept the input.
    let keys = project.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("itest/") && keys[0].ends_with("/input.mp4"), "{keys:?}");
    assert!(out.contains(&format!("kept s3://{}/", project.bucket())), "{out}");
}

#[test]
fn a_video_that_is_not_a_video_fails_with_the_splitters_error() {
    let project = deployed();
    let text = write_file(&project.dir, "notes.mp4", "these are meeting notes, not a video\n");
    let run = {
        let _heavy = support::docker_lock();
        project.run(&["itest", "--video", &text.display().to_string()])
    };
    let line = run.assert_one_line_error();
    assert!(
        line.contains("the splitter says: s3://")
            && line.contains("/input.mp4 is a text file, not a video (exit 4, not_a_video)"),
        "{line}"
    );
    let out = run.stdout();
    assert!(
        out.contains("expect     no video (ffprobe cannot read it): the job should fail"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("    | ERROR ")
            && l.contains("not a video exit_code=4 kind=not_a_video")),
        "{out}"
    );
    // The real image ran (the deployed revision), and nothing is left in the bucket.
    let image_line = out.lines().find(|l| l.starts_with("  image ")).expect("image line");
    assert!(image_line.contains(&format!("/{}-splitter-dev-ecr:", project.name)), "{image_line}");
    assert_eq!(project.keys(), Vec::<String>::new());
}

#[test]
fn another_video_is_probed_and_split_as_asked() {
    let project = deployed();
    // 8 s of 25 fps H.264 in Matroska, a keyframe every second, no audio.
    let video = project.dir.join("clip.mkv");
    support::run(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=256x144:rate=25:duration=8",
                "-c:v",
                "libx264",
                "-g",
                "25",
                "-keyint_min",
                "25",
                "-sc_threshold",
                "0",
            ])
            .arg(&video),
    )
    .assert_success();
    let run = {
        let _heavy = support::docker_lock();
        project.run(&[
            "itest",
            "--video",
            &video.display().to_string(),
            "--segment-seconds",
            "3",
            "--keep",
        ])
    };
    run.assert_success();
    let out = run.stdout();
    assert!(out.contains("segments   3 s (--segment-seconds)"), "{out}");
    assert!(out.contains("segments    3 at 3 s, expected 3 from the keyframes (ffprobe)"), "{out}");
    assert!(
        out.contains("duration    3.000 + 3.000 + 2.000 = 8.000 s; source 8.000 s (ffprobe)"),
        "{out}"
    );
    assert!(
        out.contains("audio       0 file(s); the source has 0 audio stream(s) (ffprobe)"),
        "{out}"
    );

    // The job got the override as a parameter; the output, kept, has what the report says.
    let job_id = out
        .lines()
        .find_map(|l| l.strip_prefix("itest passed: job "))
        .and_then(|l| l.split_whitespace().next())
        .expect("itest passed line");
    let aws = project.stack.aws();
    let jobs =
        aws.block_on(aws.batch().describe_jobs().jobs(job_id).send()).expect("describe the job");
    let params = jobs.jobs()[0].parameters().expect("parameters");
    assert_eq!(params.get("segment_seconds").map(String::as_str), Some("3"));
    let input = params.get("input").expect("input");
    assert!(input.ends_with("/input.mkv"), "{input}");
    let prefix = input
        .strip_prefix(&format!("s3://{}/", project.bucket()))
        .expect("in the bucket")
        .trim_end_matches("/input.mkv");
    let mut keys: Vec<String> = project
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(&format!("{prefix}/output/")))
        .collect();
    keys.sort();
    let relative: Vec<&str> = keys.iter().map(|k| &k[prefix.len() + "/output/".len()..]).collect();
    assert_eq!(
        relative,
        ["manifest.json", "segments/000000.mp4", "segments/000001.mp4", "segments/000002.mp4"]
    );
}
