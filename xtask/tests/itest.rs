//! `cargo xtask itest` against the local stack: real Batch job containers started by moto, their
//! logs read from moto's CloudWatch Logs, results read back with the SDK and Docker.
//!
//! Each test has its own project on the test binary's stack (`support::stack()`), created like
//! Terraform would (`local up --project …`). The failure paths that need no splitter run small
//! bash jobs on the local Debian base image; the ones that do (not a video, another video, the
//! fixture's real output) deploy the real image, built from `container/Dockerfile` (BuildKit's
//! cache makes that a few seconds when `cargo xtask image` already ran on this machine, e.g. in
//! `xtask/tests/image.rs`). Damaged outputs are planted by a bash job that stands in for the
//! splitter: it hands the test its output prefix over TCP and succeeds once the test wrote the
//! files there (a real output, one thing changed).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_batch::types::{JobDefinitionType, JobStatus};
use support::{Run, Stack, assert_contains, docker, passed_job_id, remove_images};
use xtask::itest::{CHECKS, JOIN_CHECKS};

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

/// The real image, deployed once for this binary (`pipeline` without its scan and itest stages,
/// so through the same code as the individual commands).
fn deployed() -> &'static Project {
    static DEPLOYED: OnceLock<Project> = OnceLock::new();
    DEPLOYED.get_or_init(|| {
        // Earlier runs' images; this process's stay (its tests share them).
        remove_images("itreal", Some(std::process::id()));
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
    run.assert_one_line_error_with(&[
        &format!("job queue {project}-splitter-queue-dev does not exist"),
        "cargo xtask local up",
    ]);
}

#[test]
fn nothing_deployed_yet_is_refused_and_a_dry_run_changes_nothing() {
    let project = Project::new("itdry");
    // Revision 1 runs the placeholder image `local up` (Terraform) registers.
    project.run(&["itest"]).assert_one_line_error_with(&["placeholder", "cargo xtask pipeline"]);

    project.register(&base_image(project.stack), &["true", "Ref::input", "Ref::output"]);
    let dry = project.run(&["itest", "--dry-run", "--segment-seconds", "4"]);
    dry.assert_success();
    assert_contains(
        &dry.stdout(),
        &[
            "[dry-run] would upload xtask/fixtures/itest.mp4",
            "segments   4 s (--segment-seconds)",
            "expect     3 segment(s), 12.000 s of video, 1 audio file(s)",
            &format!("job definition {}:2 on queue {}", project.job_definition(), project.queue()),
            // The join job it would submit: its name, the revision, the command override.
            "-join (same revision and queue, command override: join s3://",
            "/output s3://",
            "/output/segments/ s3://",
            "/joined.mp4) and watch it, then compare the packets of joined.mp4",
        ],
    );
    let out = dry.stdout();
    let split_job = out
        .lines()
        .find_map(|l| l.strip_prefix("  [dry-run] would submit job "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no split job in the plan:\n{out}"));
    let join_line = out
        .lines()
        .find(|l| l.contains(&format!("would submit job {split_job}-join ")))
        .unwrap_or_else(|| panic!("no join job named after {split_job} in the plan:\n{out}"));
    let output = out
        .lines()
        .find_map(|l| l.strip_prefix("  output     "))
        .expect("the plan's output line")
        .trim();
    let run_prefix = output.strip_suffix("/output").expect("…/output");
    assert!(
        join_line.contains(&format!(
            "command override: join {output} {output}/segments/ {run_prefix}/joined.mp4)"
        )),
        "{join_line}"
    );
    let no_join = project.run(&["itest", "--dry-run", "--no-join"]);
    no_join.assert_success();
    assert_contains(&no_join.stdout(), &["  join       skipped (--no-join)"]);
    assert!(!no_join.stdout().contains("-join ("), "{}", no_join.stdout());
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
    run.assert_one_line_error_with(&["FAILED after", "last log line: boom: giving up on s3://"]);

    let out = run.stdout();
    let shown: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("    | ")).collect();
    let want: Vec<String> = (52..=60).map(|i| format!("line {i}")).collect();
    assert_eq!(shown.len(), 10, "the last 10 lines:\n{out}");
    assert_eq!(&shown[..9], want.as_slice(), "{out}");
    assert!(shown[9].starts_with("boom: giving up on s3://"), "{out}");
    assert_contains(
        &out,
        &[
            "last 10 line(s) of the log:",
            &format!("log            /aws/batch/job {}/default/", project.job_definition()),
        ],
    );

    // Batch (moto) has the job FAILED; its input was uploaded, then deleted with the run.
    let jobs = project.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].2, JobStatus::Failed);
    assert_contains(
        &out,
        &[&format!("submitted job {} ({})", jobs[0].1, jobs[0].0), "uploaded s3://"],
    );
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
    run.assert_one_line_error_with(&[
        "did not finish within 3s: terminated it (status now FAILED)",
        "raise --timeout",
    ]);
    let out = run.stdout();
    // The log line written before the kill is shown.
    assert_contains(
        &out,
        &[
            "timed out: TerminateJob sent (cargo xtask itest: no result within 3s)",
            "    | started on s3://",
        ],
    );

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
    run.assert_one_line_error_with(&[
        "the splitter says: s3://",
        "/input.mp4 is a text file, not a video (exit 4, not_a_video)",
    ]);
    let out = run.stdout();
    assert_contains(&out, &["expect     no video (ffprobe cannot read it): the job should fail"]);
    assert!(
        out.lines().any(|l| l.starts_with("    | ERROR ")
            && l.contains("not a video exit_code=4 kind=not_a_video")),
        "{out}"
    );
    // The real image ran (the deployed revision), and nothing is left of the run (the bucket
    // is shared with the other tests of the deployed image, some of which keep theirs).
    let image_line = out.lines().find(|l| l.starts_with("  image ")).expect("image line");
    assert!(image_line.contains(&format!("/{}-splitter-dev-ecr:", project.name)), "{image_line}");
    let input = out.lines().find_map(|l| l.strip_prefix("  input      ")).expect("input line");
    let run_prefix = input
        .trim()
        .strip_prefix(&format!("s3://{}/", project.bucket()))
        .and_then(|k| k.strip_suffix("/input.mp4"))
        .expect("the run's input key");
    let left: Vec<String> =
        project.keys().into_iter().filter(|k| k.starts_with(&format!("{run_prefix}/"))).collect();
    assert_eq!(left, Vec::<String>::new());
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
    assert_contains(
        &out,
        &[
            "segments   3 s (--segment-seconds)",
            "segments    3 at 3 s, expected 3 from the keyframes (ffprobe)",
            "duration    3.000 + 3.000 + 2.000 = 8.000 s; source 8.000 s (ffprobe)",
            "audio       0 file(s); the source has 0 audio stream(s) (ffprobe)",
            // Matroska stores no decode times; its millisecond times are compared as times.
            "  ok    join-video-packets  200 video packets identical to the source's (ffprobe: \
             data sha256, size, flags, pts, duration)",
            "; dts not compared: the source (matroska,webm) stores none",
            "  ok    join-audio-packets  no audio stream in the source, none in the joined file",
            "; joined it back (job ",
            "): 200 video and 0 audio packets identical to the source's",
        ],
    );

    // The job got the override as a parameter; the output, kept, has what the report says.
    let job_id = passed_job_id(&out);
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
    // The joined file sits beside the output, in the run's prefix (kept with it).
    assert!(project.keys().contains(&format!("{prefix}/joined.mp4")), "{:?}", project.keys());
}

#[test]
fn an_open_gop_split_is_checked_and_not_joined_back() {
    let project = deployed();
    // 4 s of 25 fps HEVC with open GOPs (x265's CRA pictures with leading pictures), a keyframe
    // every second: segment 1 needs a lead-in, so its own segments do not join back to the source.
    let video = project.dir.join("open-gop.mp4");
    support::run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .args(["testsrc2=size=256x144:rate=25:duration=4", "-c:v", "libx265"])
            .args(["-x265-params", "keyint=25:min-keyint=25:open-gop=1:bframes=3:log-level=error"])
            .args(["-tag:v", "hvc1"])
            .arg(&video),
    )
    .assert_success();
    let run = {
        let _heavy = support::docker_lock();
        project.run(&["itest", "--video", &video.display().to_string(), "--segment-seconds", "2"])
    };
    run.assert_success();
    let out = run.stdout();
    assert_contains(
        &out,
        &[
            "join skipped: 1 of the 2 segment(s) carry frames they do not own (",
            " lead-in and 0 trailing in all: an open GOP or context frames), so joining the \
             split's own segments is not the identity (a worker must drop those frames first)",
            "; join skipped (lead-in or trailing frames)",
        ],
    );
    assert!(!out.contains("submitted join job"), "{out}");
    let split_job = out
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the split job's name")
        .to_owned();
    let jobs = project.jobs();
    assert!(jobs.iter().any(|j| j.1 == split_job), "{jobs:?}");
    assert!(!jobs.iter().any(|j| j.1 == format!("{split_job}-join")), "no join job: {jobs:?}");
}

#[test]
fn without_ffprobe_itest_stops_before_touching_anything() {
    let stack = support::stack();
    let project = format!("noffprobe{}", std::process::id());
    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("empty-path-{project}"));
    std::fs::create_dir_all(&empty).expect("an empty PATH directory");
    let run =
        support::run(stack.xtask().args(["itest", "--project", &project]).env("PATH", &empty));
    // The tools' own check (it installs as root where apt-get is on PATH; here it is not).
    let line = run.assert_one_line_error_with(&[
        "missing ffmpeg (`ffprobe` not found)",
        "apt-get install -y --no-install-recommends ffmpeg`",
    ]);
    // Before any AWS call: the project has no queue, and that is not what it says.
    assert!(!line.contains("does not exist"), "{line}");
    std::fs::remove_dir_all(&empty).expect("cleanup");
}

/// One file of an output: its path under the output prefix, its bytes and its
/// `x-amz-meta-sha256` (`None`: stored without it).
#[derive(Debug, Clone)]
struct File {
    path: String,
    bytes: Vec<u8>,
    meta_sha256: Option<String>,
}

/// What the deployed image wrote for the fixture, kept (`itest --keep`) and read back with the
/// SDK, and what itest printed about it.
#[derive(Debug)]
struct RealOutput {
    stdout: String,
    /// `s3://{bucket}/{run prefix}/output`.
    output_uri: String,
    manifest: serde_json::Value,
    /// Every file the manifest lists, in its order (segments, then audio).
    files: Vec<File>,
    /// `{run prefix}/joined.mp4`, which the join job wrote.
    joined: Vec<u8>,
}

fn real_output() -> &'static RealOutput {
    static OUTPUT: OnceLock<RealOutput> = OnceLock::new();
    OUTPUT.get_or_init(|| {
        let project = deployed();
        let run = {
            let _heavy = support::docker_lock();
            project.run(&["itest", "--keep"])
        };
        run.assert_success();
        let stdout = run.stdout();
        let uri = stdout
            .lines()
            .find_map(|l| l.strip_prefix("  output     "))
            .expect("the plan's output line")
            .trim()
            .to_owned();
        let prefix = uri
            .strip_prefix(&format!("s3://{}/", project.bucket()))
            .expect("the output is in the bucket")
            .to_owned();
        let get = |key: &str| -> (Vec<u8>, Option<String>) {
            let aws = project.stack.aws();
            aws.block_on(async {
                let object = aws
                    .s3()
                    .get_object()
                    .bucket(project.bucket())
                    .key(key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("get {key}: {e}"));
                let meta = object.metadata().and_then(|m| m.get("sha256")).cloned();
                let bytes = object.body.collect().await.expect("download").into_bytes().to_vec();
                (bytes, meta)
            })
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(&get(&format!("{prefix}/manifest.json")).0)
                .expect("manifest JSON");
        let paths = manifest["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .chain(manifest["audio"].as_array().expect("audio"))
            .map(|f| f["path"].as_str().expect("path").to_owned());
        let files = paths
            .map(|path| {
                let (bytes, meta_sha256) = get(&format!("{prefix}/{path}"));
                File { path, bytes, meta_sha256 }
            })
            .collect();
        let run_prefix =
            prefix.strip_suffix("/output").expect("an output prefix ending in /output");
        let joined = get(&format!("{run_prefix}/joined.mp4")).0;
        RealOutput { stdout, output_uri: uri, manifest, files, joined }
    })
}

/// The checks' lines of an itest report: (ok, name, detail).
fn check_lines(stdout: &str) -> Vec<(bool, String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (ok, rest) = match l.strip_prefix("  ok    ") {
                Some(rest) => (true, rest),
                None => (false, l.strip_prefix("  FAIL  ")?),
            };
            let (name, detail) = rest.split_once("  ").unwrap_or((rest, ""));
            Some((ok, name.trim().to_owned(), detail.trim().to_owned()))
        })
        .collect()
}

#[test]
fn the_fixtures_real_segments_pass_ffprobes_count_and_keyframe_checks() {
    let real = real_output();
    let checks = check_lines(&real.stdout);
    let names: Vec<&str> = checks.iter().map(|(_, n, _)| n.as_str()).collect();
    // The split's checks, then the join round trip's.
    let all: Vec<&str> = CHECKS.iter().chain(&JOIN_CHECKS).copied().collect();
    assert_eq!(names, all, "{}", real.stdout);
    assert!(checks.iter().all(|(ok, _, _)| *ok), "{}", real.stdout);
    let detail = |name: &str| &checks.iter().find(|(_, n, _)| n == name).expect("a check").2;
    // The splitter now writes schema 2 (with pts_digest); the fixture's two segments hold 240
    // and 48 video packets by ffprobe's count, each starting on a keyframe.
    assert!(detail("manifest").starts_with("schema 2 (itest reads 1..=2)"), "{}", real.stdout);
    assert!(real.manifest["segments"][0]["pts_digest"].is_string(), "{}", real.manifest);
    assert_eq!(
        detail("packets"),
        "240 + 48 video packets (ffprobe) = lead-in + frames + trailing of each segment, as the manifest says"
    );
    assert_eq!(
        detail("keyframes"),
        "each of the 2 segment(s) starts on a keyframe (ffprobe, decode order)"
    );
    assert!(detail("objects").contains("x-amz-meta-sha256 too"), "{}", real.stdout);
    assert!(real.stdout.contains("; 11 checks passed; joined it back (job "), "{}", real.stdout);
    // The files it checked carry their sha256 as metadata (what the metadata check expects).
    for f in &real.files {
        assert_eq!(f.meta_sha256.as_deref(), Some(sha256_hex(&f.bytes).as_str()), "{}", f.path);
    }
}

/// The real image joined the fixture's segments back (the second job, watched like the first),
/// and the joined file is the fixture's packets: by itest's report, by Batch's record of the job,
/// and by the test's own ffprobe listing of the kept `joined.mp4`.
#[test]
fn the_real_image_joins_the_fixture_back_to_its_own_packets() {
    let real = real_output();
    let out = &real.stdout;
    let split_job = out
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the split job's name")
        .to_owned();
    let run_prefix = real.output_uri.strip_suffix("/output").expect("…/output");
    let command = [
        "join".to_owned(),
        real.output_uri.clone(),
        format!("{}/segments/", real.output_uri),
        format!("{run_prefix}/joined.mp4"),
    ];
    assert_contains(
        out,
        &[
            &format!("submitted join job {split_job}-join ("),
            &format!("): {}", command.join(" ")),
            "join job SUCCEEDED after ",
            "  ok    join-video-packets  288 video packets identical to the source's (ffprobe: \
             data sha256, size, flags, pts, dts, duration)",
            "  ok    join-audio-packets  564 audio packets in 1 stream(s) identical to the \
             source's (ffprobe: data sha256, pts)",
            "): 288 video and 564 audio packets identical to the source's",
        ],
    );
    // The join job's status lines come after the split's, watched the same way.
    let join_at = out.find("submitted join job").expect("join submitted");
    assert!(out[join_at..].contains("SUCCEEDED\n"), "{out}");

    // Batch's record: the same revision on the same queue, the command overridden.
    let project = deployed();
    let aws = project.stack.aws();
    let jobs = project.jobs();
    let id_of = |name: &str| {
        jobs.iter()
            .find(|j| j.1 == name)
            .unwrap_or_else(|| panic!("no job {name}: {jobs:?}"))
            .0
            .clone()
    };
    let (split_id, join_id) = (id_of(&split_job), id_of(&format!("{split_job}-join")));
    let described = aws
        .block_on(aws.batch().describe_jobs().jobs(&split_id).jobs(&join_id).send())
        .expect("describe the jobs");
    let job = |id: &str| {
        described.jobs().iter().find(|j| j.job_id() == Some(id)).expect("described").clone()
    };
    let (split, join) = (job(&split_id), job(&join_id));
    assert_eq!(join.status(), Some(&JobStatus::Succeeded));
    assert_eq!(join.job_definition(), split.job_definition());
    assert_eq!(join.job_queue(), split.job_queue());
    let command_ran = join.container().map(|c| c.command().to_vec()).expect("a container");
    assert_eq!(command_ran, command);

    // The test's own look, with the host's ffprobe: every video packet of the joined file is
    // the fixture's (data hash, size, flags and timestamps), and so is every audio packet. The
    // whole listings are compared (a packet with side data spans two CSV lines).
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("itest-joined-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let joined = dir.join("joined.mp4");
    std::fs::write(&joined, &real.joined).expect("write joined.mp4");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/itest.mp4");
    for stream in ["v:0", "a:0"] {
        let list = |file: &Path| {
            let run = support::run(
                Command::new("ffprobe")
                    .args(["-v", "error", "-select_streams", stream, "-show_entries"])
                    .args(["packet=pts,dts,duration,flags,size,data_hash", "-show_data_hash"])
                    .args(["sha256", "-of", "csv=p=0"])
                    .arg(file),
            );
            run.assert_success();
            run.stdout()
        };
        let (want, got) = (list(&fixture), list(&joined));
        let hashes = want.matches("SHA256:").count();
        assert_eq!(hashes, if stream == "v:0" { 288 } else { 564 }, "{stream}");
        if got != want {
            let first = want.lines().zip(got.lines()).position(|(a, b)| a != b);
            panic!(
                "{stream}: the joined file's packets are not the fixture's, first differing line \
                 {first:?}: {:?} against {:?}",
                first.and_then(|i| got.lines().nth(i)),
                first.and_then(|i| want.lines().nth(i))
            );
        }
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn damage_planted_in_a_real_output_fails_the_check_that_looks_for_it() {
    let real = real_output();
    let project = Project::new("itplant");
    let listener = stand_in(&project);
    let segment = |i: usize| &real.manifest["segments"][i];
    let decoded = |i: usize| {
        ["lead_in_frames", "frames", "trailing_frames"]
            .iter()
            .map(|k| segment(i)[k].as_u64().expect("a count"))
            .sum::<u64>()
    };
    assert_eq!(segment(1)["path"], "segments/000001.mp4");
    let want = decoded(1);

    // The real output as it is, and the real joined file: passes (the stand-in is faithful).
    let (run, calls) =
        plant(&project, &listener, &real.manifest, &real.files, &[], Join::Write(&real.joined));
    run.assert_success();
    assert!(run.stdout().contains("; 11 checks passed; joined it back (job "), "{}", run.stdout());
    assert_eq!(calls.len(), 2, "a split and a join: {calls:?}");

    // (a) Segment 1 replaced by a valid video with half its packets, its size, sha256 and
    // metadata updated everywhere: only ffprobe's count disagrees with the manifest.
    let half = remux(&project.dir, &real.files[1].bytes, &["-frames:v", &(want / 2).to_string()]);
    assert_eq!(ffprobe_packets(&project.dir, &half), (want / 2, true), "the planted file");
    let (manifest, files) = replace(&real.manifest, &real.files, 1, half);
    let line = plant(&project, &listener, &manifest, &files, &[], Join::Write(&real.joined))
        .0
        .assert_one_line_error();
    assert!(
        line.contains(&format!(
            "1 of 11 checks failed (listed above), first `packets`: segments/000001.mp4: {} video \
             packets (ffprobe), the manifest says {want} ({} lead-in + {} frames + {} trailing)",
            want / 2,
            segment(1)["lead_in_frames"],
            segment(1)["frames"],
            segment(1)["trailing_frames"]
        )),
        "{line}"
    );

    // (b) Segment 0 stored again, same bytes, without x-amz-meta-sha256.
    let mut files = real.files.clone();
    files[0].meta_sha256 = None;
    let (run, calls) =
        plant(&project, &listener, &real.manifest, &files, &[], Join::Write(&real.joined));
    let line = run.assert_one_line_error();
    assert_eq!(calls.len(), 1, "failed checks: no join job: {calls:?}");
    assert!(
        line.contains(
            "1 of 11 checks failed (listed above), first `objects`: segments/000000.mp4: no \
             x-amz-meta-sha256 (the splitter stores every file with its sha256 as metadata)"
        ),
        "{line}"
    );
    let failed: Vec<String> =
        check_lines(&run.stdout()).into_iter().filter(|c| !c.0).map(|c| c.1).collect();
    assert_eq!(failed, ["objects"], "{}", run.stdout());

    // (c) Segment 1 replaced by as many packets as the manifest says, the first not a keyframe
    // (segment 0 without its first packet).
    let keyless = remux(
        &project.dir,
        &real.files[0].bytes,
        &["-bsf:v", r"noise=drop=eq(n\,0)", "-frames:v", &want.to_string()],
    );
    assert_eq!(ffprobe_packets(&project.dir, &keyless), (want, false), "the planted file");
    let (manifest, files) = replace(&real.manifest, &real.files, 1, keyless);
    let line = plant(&project, &listener, &manifest, &files, &[], Join::Write(&real.joined))
        .0
        .assert_one_line_error();
    assert!(
        line.contains(
            "1 of 11 checks failed (listed above), first `keyframes`: segments/000001.mp4: its \
             first video packet is not a keyframe (ffprobe flags `"
        ),
        "{line}"
    );
    assert_eq!(project.keys(), Vec::<String>::new(), "every run's objects are deleted");
}

/// The join step on a real output (the split's checks all pass): a joined file with one byte
/// of one video packet changed fails `join-video-packets` at that packet; a join job that fails
/// is reported like a failed split job (its log tail, the splitter's error line, exit non-zero);
/// `--no-join` submits no join job.
#[test]
fn a_joined_file_that_differs_or_a_failed_join_job_fails_itest() {
    let real = real_output();
    let project = Project::new("itjoin");
    let listener = stand_in(&project);

    // (d) Video packet 100 (decode order) of the real joined file with one byte of its data
    // flipped, found by ffprobe's byte position: only its data hash changes.
    let dir = &project.dir;
    let joined = dir.join("joined.mp4");
    std::fs::write(&joined, &real.joined).expect("write");
    let positions = support::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size"])
            .args(["-of", "json"])
            .arg(&joined),
    );
    positions.assert_success();
    let listed: serde_json::Value = serde_json::from_str(&positions.stdout()).expect("JSON");
    let packet = &listed["packets"][100];
    let number = |v: &serde_json::Value| -> usize {
        v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{listed}"))
    };
    let (pos, size) = (number(&packet["pos"]), number(&packet["size"]));
    let mut damaged = real.joined.clone();
    damaged[pos + size / 2] ^= 0xff;
    let (run, calls) =
        plant(&project, &listener, &real.manifest, &real.files, &[], Join::Write(&damaged));
    let line = run.assert_one_line_error();
    assert!(
        line.contains(
            "itest failed: the join job SUCCEEDED but 1 of 2 join checks failed (listed above), \
             first `join-video-packets`: video: first difference at packet 100 (decode order, from \
             0) in data: joined pts="
        ),
        "{line}"
    );
    let checks = check_lines(&run.stdout());
    let failed: Vec<&str> = checks.iter().filter(|c| !c.0).map(|c| c.1.as_str()).collect();
    assert_eq!(failed, ["join-video-packets"], "{}", run.stdout());
    assert_eq!(checks.len(), CHECKS.len() + JOIN_CHECKS.len(), "{}", run.stdout());
    // The join job got the split's output, its segments and the run's joined.mp4.
    assert_eq!(calls.len(), 2, "{calls:?}");
    let output = &calls[0][2];
    let run_prefix = output.strip_suffix("/output").expect("…/output");
    assert_eq!(
        calls[1],
        [
            "join".to_owned(),
            output.clone(),
            format!("{output}/segments/"),
            format!("{run_prefix}/joined.mp4")
        ]
    );

    // (e) The join job fails as the splitter does when a processed segment has a frame too few.
    let error = r#"{"timestamp":"2026-11-30T00:00:00Z","level":"ERROR","message":"segment 1 (000001.mp4): expected 48 frames (the frames it owns), found 47","exit_code":4,"kind":"not_a_video"}"#;
    let (run, calls) =
        plant(&project, &listener, &real.manifest, &real.files, &[], Join::Fail(error));
    assert_eq!(calls.len(), 2, "{calls:?}");
    let out = run.stdout();
    let split_job = out
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the split job's name")
        .to_owned();
    run.assert_one_line_error_with(&[
        &format!("itest failed: job {split_job}-join FAILED after "),
        "the splitter says: segment 1 (000001.mp4): expected 48 frames (the frames it owns), \
         found 47 (exit 4, not_a_video); see the log tail above",
    ]);
    assert_contains(
        &out,
        &[
            &format!("submitted join job {split_job}-join ("),
            "line(s) of the log:",
            &format!("log            /aws/batch/job {}/default/", project.job_definition()),
            "    | ERROR segment 1 (000001.mp4): expected 48 frames (the frames it owns), found 47 \
             exit_code=4 kind=not_a_video",
        ],
    );
    // The split's checks ran and passed; no join check ran.
    let names: Vec<String> = check_lines(&out).into_iter().filter(|c| c.0).map(|c| c.1).collect();
    assert_eq!(names, CHECKS, "{out}");
    let jobs = project.jobs();
    let status = |name: &str| jobs.iter().find(|j| j.1 == name).map(|j| j.2.clone());
    assert_eq!(status(&split_job), Some(JobStatus::Succeeded), "{jobs:?}");
    assert_eq!(status(&format!("{split_job}-join")), Some(JobStatus::Failed), "{jobs:?}");

    // --no-join: the split only.
    let (run, calls) =
        plant(&project, &listener, &real.manifest, &real.files, &["--no-join"], Join::Fail(error));
    run.assert_success();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_contains(
        &run.stdout(),
        &["join skipped (--no-join)", "; 11 checks passed; join skipped (--no-join)"],
    );
    assert_eq!(project.keys(), Vec::<String>::new(), "every run's objects are deleted");
}

/// What the stand-in splitter does when the join job calls it.
#[derive(Debug, Clone, Copy)]
enum Join<'a> {
    /// The test writes these bytes to the joined file's key; the job succeeds.
    Write(&'a [u8]),
    /// The job prints this line (its log) and exits 4, writing nothing.
    Fail(&'a str),
}

/// A stand-in splitter image for `project` and a listener it calls: the local base image with
/// an entry point that sends the test its arguments over TCP and exits 0 when the test answers
/// `written` (after writing what a real splitter would), else prints the answer and exits 4. Like
/// the real image, its command is the subcommand and its arguments, so the split job (the job
/// definition's command) and the join job (the command override) both reach it. Registered as a
/// new revision of the project's job definition.
fn stand_in(project: &Project) -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the stand-in splitter");
    let port = listener.local_addr().expect("port").port();
    let script = format!(
        r#"#!/bin/bash
# The stand-in splitter: tells the test its arguments, then does as the test answers.
exec 3<>/dev/tcp/127.0.0.1/{port} || exit 9
printf '%s\n' "$*" >&3
read -r reply <&3
[ "$reply" = written ] && exit 0
printf '%s\n' "$reply"
exit 4
"#
    );
    // Earlier runs' stand-ins (`{prefix}{pid}-splitter-standin`); this process's stay.
    let prefix: String = project.name.chars().take_while(|c| !c.is_ascii_digit()).collect();
    remove_images(&prefix, Some(std::process::id()));
    let image = format!("{}-splitter-standin:{port}", project.name);
    let builder = format!("{}-standin-{port}", project.name);
    let mut child = Command::new("docker")
        .args(["run", "--interactive", "--name", &builder, &base_image(project.stack)])
        .args(["bash", "-c", "cat > /usr/local/bin/stand-in && chmod 755 /usr/local/bin/stand-in"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("docker run");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write the script");
    assert!(child.wait().expect("docker run").success(), "cannot write the stand-in script");
    docker(&[
        "commit",
        "--change",
        r#"ENTRYPOINT ["/usr/local/bin/stand-in"]"#,
        "--change",
        "CMD []",
        &builder,
        &image,
    ]);
    docker(&["rm", &builder]);
    project.register(
        &image,
        &["split", "Ref::input", "Ref::output", "--segment-seconds", "Ref::segment_seconds"],
    );
    listener
}

/// Runs itest (with `args`) on the fixture with the stand-in splitter ([`stand_in`]): the split
/// job gets `files` and then `manifest` written to its output prefix (with the SDK) before it
/// succeeds; the join job, if itest submits one, does as `join` says. Returns itest's run and
/// the arguments of each call of the stand-in, in order.
fn plant(
    project: &Project,
    listener: &TcpListener,
    manifest: &serde_json::Value,
    files: &[File],
    args: &[&str],
    join: Join<'_>,
) -> (support::Run, Vec<Vec<String>>) {
    let _heavy = support::docker_lock();
    let mut cmd = project.xtask(&["itest", "--timeout", "5m"]);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let command = format!("{cmd:?}");
    let mut child = cmd.spawn().expect("run xtask itest");
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut calls = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                calls.push(answer(project, &stream, manifest, files, join));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if child.try_wait().expect("itest status").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("itest output");
            panic!(
                "itest did not finish within 300 s (stand-in calls: {calls:?}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("itest output");
    (support::Run { command, output }, calls)
}

/// One call of the stand-in splitter: its arguments; writes what it would have written and
/// answers it.
fn answer(
    project: &Project,
    stream: &std::net::TcpStream,
    manifest: &serde_json::Value,
    files: &[File],
    join: Join<'_>,
) -> Vec<String> {
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("the stand-in's arguments");
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let bucket = format!("s3://{}/", project.bucket());
    let key_of = |uri: &str| {
        uri.strip_prefix(&bucket)
            .unwrap_or_else(|| panic!("not in the bucket: {uri} ({args:?})"))
            .to_owned()
    };
    let aws = project.stack.aws();
    let put = |key: String, bytes: Vec<u8>, meta: Option<String>| {
        let mut put = aws
            .s3()
            .put_object()
            .bucket(project.bucket())
            .key(&key)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes));
        if let Some(sha) = meta {
            put = put.metadata("sha256", sha);
        }
        aws.block_on(put.send()).unwrap_or_else(|e| panic!("put {key}: {e}"));
    };
    let reply = match args.first().map(String::as_str) {
        // split INPUT OUTPUT --segment-seconds N
        Some("split") => {
            let prefix = key_of(&args[2]);
            let manifest = serde_json::to_vec_pretty(manifest).expect("manifest JSON");
            let meta = Some(sha256_hex(&manifest));
            for (path, bytes, meta) in files
                .iter()
                .map(|f| (f.path.as_str(), f.bytes.clone(), f.meta_sha256.clone()))
                .chain([("manifest.json", manifest, meta)])
            {
                put(format!("{prefix}/{path}"), bytes, meta);
            }
            "written".to_owned()
        }
        // join SPLIT_OUTPUT PROCESSED OUTPUT_FILE
        Some("join") => match join {
            Join::Write(bytes) => {
                put(key_of(&args[3]), bytes.to_vec(), None);
                "written".to_owned()
            }
            Join::Fail(line) => line.to_owned(),
        },
        _ => panic!("the stand-in was called with {args:?}"),
    };
    let mut stream = stream;
    stream.write_all(format!("{reply}\n").as_bytes()).expect("answer the stand-in");
    args
}

/// `files[i]` replaced by `bytes`, with the manifest's size and sha256 and the metadata to match.
fn replace(
    manifest: &serde_json::Value,
    files: &[File],
    i: usize,
    bytes: Vec<u8>,
) -> (serde_json::Value, Vec<File>) {
    let sha = sha256_hex(&bytes);
    let mut manifest = manifest.clone();
    manifest["segments"][i]["bytes"] = bytes.len().into();
    manifest["segments"][i]["sha256"] = sha.clone().into();
    let mut files = files.to_vec();
    files[i].meta_sha256 = Some(sha);
    files[i].bytes = bytes;
    (manifest, files)
}

/// The host's ffmpeg, copying the video of `input` with `args` into a new MP4.
fn remux(dir: &Path, input: &[u8], args: &[&str]) -> Vec<u8> {
    let (from, to) = (dir.join("remux-in.mp4"), dir.join("remux-out.mp4"));
    std::fs::write(&from, input).expect("write");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&from)
        .args(["-map", "0:v", "-c", "copy"])
        .args(args)
        .arg(&to);
    support::run(&mut cmd).assert_success();
    std::fs::read(&to).expect("read")
}

/// Video packets and whether the first is a keyframe, by ffprobe (what the test plants).
fn ffprobe_packets(dir: &Path, bytes: &[u8]) -> (u64, bool) {
    let file = dir.join("probe.mp4");
    std::fs::write(&file, bytes).expect("write");
    let run = support::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags"])
            .args(["-of", "csv=p=0"])
            .arg(&file),
    );
    run.assert_success();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    (lines.len() as u64, lines.first().is_some_and(|l| l.contains('K')))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
