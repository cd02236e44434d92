//! `cargo xtask pipeline --local`, end to end, on the test binary's private stack: the real image
//! built from `container/Dockerfile`, scanned by Trivy with the offline DB mirrored into the
//! stack's registry, pushed, deployed, and run as a real Batch job container by moto, whose
//! segments in S3 are read back and checked here independently of xtask (SDK, sha256, ffprobe).
//! Then the same pipeline again: nothing uploaded, nothing registered, itest still passes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_batch::types::JobStatus;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Run, Stack, docker, passed_job_id, remove_images};

/// The summary line of `stage`: (time, result), e.g. ("3.1 s", "ok    …").
fn summary_row<'a>(out: &'a str, stage: &str) -> Option<&'a str> {
    let summary = out.rsplit("pipeline summary:").next()?;
    summary.lines().find_map(|l| {
        let rest = l.strip_prefix("  ")?.strip_prefix(stage)?;
        rest.starts_with(' ').then(|| rest.trim_start())
    })
}

fn summary_value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let summary = out.rsplit("pipeline summary:").next()?;
    summary.lines().find_map(|l| l.strip_prefix(&format!("  {key}")).map(str::trim))
}

/// Requests of the stack's registry for `repo` that upload something: blob uploads started and
/// manifests written (from its access log).
fn registry_uploads(stack: &Stack, repo: &str) -> (usize, usize) {
    let log = std::fs::read_to_string(stack.state_dir.join("registry.log")).expect("registry log");
    let blobs = log.matches(&format!("\"POST /v2/{repo}/blobs/uploads/")).count();
    let manifests = log.matches(&format!("\"PUT /v2/{repo}/manifests/")).count();
    (blobs, manifests)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn get_object(stack: &Stack, bucket: &str, key: &str) -> Vec<u8> {
    let aws = stack.aws();
    let object = aws
        .block_on(aws.s3().get_object().bucket(bucket).key(key).send())
        .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"));
    aws.block_on(object.body.collect()).expect("body").into_bytes().to_vec()
}

/// ffprobe of one file: (codec_type, codec_name, packets) of its only stream.
fn probe(path: &Path) -> (String, String, u64) {
    let out = support::run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_packets",
                "-show_entries",
                "stream=codec_type,codec_name,nb_read_packets",
                "-of",
                "json",
            ])
            .arg(path),
    );
    out.assert_success();
    let v: Value = serde_json::from_str(&out.stdout()).expect("ffprobe JSON");
    let streams = v["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "{path:?} has one stream: {v}");
    let s = &streams[0];
    (
        s["codec_type"].as_str().unwrap_or_default().to_owned(),
        s["codec_name"].as_str().unwrap_or_default().to_owned(),
        s["nb_read_packets"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0),
    )
}

#[test]
fn the_local_pipeline_runs_end_to_end_and_a_second_run_changes_nothing() {
    let stack = support::stack();
    let pid = std::process::id();
    let project = format!("pipe{pid}");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xtask-pipeline").join(&project);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docker-config")).expect("project dir");
    // Trivy's layer cache outlives a test run (the offline DB comes from the stack's registry).
    let trivy_cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xtask-pipeline-trivy-cache");
    remove_images("pipe", Some(pid));
    let base = stack.var("SPLITTER_BASE_IMAGE").expect("base image").to_owned();
    let pipeline = |extra: &[&str]| -> Run {
        // A clean environment: `--local` alone must point every stage at the stack.
        let mut cmd = support::xtask();
        cmd.args(["pipeline", "--local", "--project", &project, "--allow-dirty"])
            .args(["--base-image", &base])
            .args(stack.args())
            .args(extra)
            .env("CARGO_TARGET_DIR", &dir)
            .env("DOCKER_CONFIG", dir.join("docker-config"))
            .env("TRIVY_CACHE_DIR", &trivy_cache);
        support::run(&mut cmd)
    };
    let repo = format!("{project}-splitter-dev-ecr");
    let bucket = format!("{project}-splitter-dev-data");
    let job_definition = format!("{project}-splitter-job-dev");
    let _heavy = support::docker_lock();

    // First run: everything happens; the run's objects are kept to be checked here.
    let first = pipeline(&["--keep"]);
    first.assert_success();
    let out = first.stdout();
    for stage in ["local", "image", "scan", "push", "sign", "deploy", "itest"] {
        let row = summary_row(&out, stage).unwrap_or_else(|| panic!("no {stage} row:\n{out}"));
        assert!(row.contains(" s  ok "), "{stage}: {row}");
    }
    assert!(summary_row(&out, "scan").expect("scan").contains("gate passed"), "{out}");
    assert!(summary_row(&out, "push").expect("push").contains("pushed as"), "{out}");
    let sign = summary_row(&out, "sign").expect("sign");
    assert!(sign.contains("signed with key") && sign.contains("SBOM attested"), "{out}");
    assert!(
        summary_row(&out, "deploy").expect("deploy").contains("registered revision 2 (was 1)"),
        "{out}"
    );
    let digest = summary_value(&out, "image digest").expect("digest").to_owned();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    assert_eq!(summary_value(&out, "revision"), Some(format!("{job_definition}:2").as_str()));
    assert_eq!(
        summary_value(&out, "itest result"),
        Some(format!("passed ({job_definition}:2)").as_str())
    );
    assert!(out.contains("offline vulnerability DB published as 127.0.0.1:"), "{out}");

    // The image: built locally with the build record's id, in ECR under three tags.
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("xtask/image.json")).expect("build record"),
    )
    .expect("build record JSON");
    let tag = record["tags"][0].as_str().expect("tag").to_owned();
    let local_image = format!("{project}-splitter:{tag}");
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &local_image]),
        record["image_id"].as_str().expect("id")
    );
    let aws = stack.aws();
    let images = aws
        .block_on(aws.ecr().describe_images().repository_name(&repo).send())
        .expect("describe images");
    let details = images.image_details();
    // The image, its signature and its SBOM attestation (cosign's tags, next to it).
    assert_eq!(details.len(), 3, "image, .sig and .att in {repo}: {details:?}");
    let hex = digest.trim_start_matches("sha256:");
    let tagged = |t: &str| details.iter().any(|d| d.image_tags().iter().any(|x| x == t));
    assert!(tagged(&format!("sha256-{hex}.sig")) && tagged(&format!("sha256-{hex}.att")));
    let image = details
        .iter()
        .find(|d| d.image_digest() == Some(digest.as_str()))
        .expect("the image in ECR");
    // The attestation decodes to the SBOM the scan wrote (ECR manifest, registry blob by curl).
    let att = aws
        .block_on(
            aws.ecr()
                .batch_get_image()
                .repository_name(&repo)
                .image_ids(
                    aws_sdk_ecr::types::ImageIdentifier::builder()
                        .image_tag(format!("sha256-{hex}.att"))
                        .build(),
                )
                .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
                .send(),
        )
        .expect("the .att manifest");
    let att: Value = serde_json::from_str(att.images()[0].image_manifest().expect("manifest"))
        .expect("manifest JSON");
    let blob = Command::new("curl")
        .arg("-fsS")
        .arg(format!(
            "http://{}/v2/{repo}/blobs/{}",
            stack.registry(),
            att["layers"][0]["digest"].as_str().expect("layer digest")
        ))
        .output()
        .expect("curl");
    assert!(blob.status.success(), "{}", String::from_utf8_lossy(&blob.stderr));
    let envelope: Value = serde_json::from_slice(&blob.stdout).expect("envelope JSON");
    use base64::Engine as _;
    let statement: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().expect("payload"))
            .expect("base64"),
    )
    .expect("statement");
    let scanned: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("xtask/scan/sbom.cdx.json")).expect("the scan's SBOM"),
    )
    .expect("SBOM JSON");
    assert_eq!(statement["predicate"], scanned, "the attestation is the SBOM the scan wrote");
    let mut tags: Vec<&str> = image.image_tags().iter().map(String::as_str).collect();
    tags.sort_unstable();
    let short = format!("{}{}", &tag[..7], if tag.ends_with("-dirty") { "-dirty" } else { "" });
    let mut want = vec![tag.as_str(), short.as_str(), "latest"];
    want.sort_unstable();
    assert_eq!(tags, want);

    // The job: SUCCEEDED on revision 2, which runs that image from the stack's registry.
    let job_id = passed_job_id(&out).to_owned();
    let batch = aws.batch();
    let jobs = aws.block_on(batch.describe_jobs().jobs(&job_id).send()).expect("describe the job");
    let job = &jobs.jobs()[0];
    assert_eq!(job.status(), Some(&JobStatus::Succeeded));
    assert!(
        job.job_definition().is_some_and(|d| d.ends_with(&format!("{job_definition}:2"))),
        "{job:?}"
    );
    let defs = aws
        .block_on(batch.describe_job_definitions().job_definition_name(&job_definition).send())
        .expect("job definitions");
    let rev2 = defs.job_definitions().iter().find(|d| d.revision() == Some(2)).expect("revision 2");
    assert_eq!(
        rev2.container_properties().and_then(|c| c.image()),
        Some(format!("{}/{repo}:{tag}", stack.registry()).as_str())
    );
    let params = job.parameters().expect("job parameters");
    let input = params.get("input").expect("input parameter");
    let output = params.get("output").expect("output parameter");
    let run_prefix = input
        .strip_prefix(&format!("s3://{bucket}/"))
        .and_then(|k| k.strip_suffix("/input.mp4"))
        .expect("the input is in the env's bucket");
    assert!(run_prefix.starts_with("itest/"), "{run_prefix}");
    assert_eq!(output, &format!("s3://{bucket}/{run_prefix}/output"));

    // The job's log: the splitter's own JSON events, ending with `split complete`.
    let stream = job.container().and_then(|c| c.log_stream_name()).expect("log stream").to_owned();
    let events = aws
        .block_on(
            aws.logs()
                .get_log_events()
                .log_group_name("/aws/batch/job")
                .log_stream_name(&stream)
                .send(),
        )
        .expect("log events");
    let messages: Vec<&str> = events.events().iter().filter_map(|e| e.message()).collect();
    assert!(messages.iter().any(|m| m.contains("\"split complete\"")), "{messages:?}");

    // The segments in S3, checked here: manifest, sha256 of every object, ffprobe of each file.
    let manifest: Value = serde_json::from_slice(&get_object(
        stack,
        &bucket,
        &format!("{run_prefix}/output/manifest.json"),
    ))
    .expect("manifest JSON");
    let source = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/itest.mp4"))
        .expect("fixture");
    assert_eq!(manifest["source"]["sha256"], sha256_hex(&source).as_str());
    let segments = manifest["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 2, "12 s at 10 s a segment: {manifest}");
    let files = dir.join("segments");
    std::fs::create_dir_all(&files).expect("dir");
    let mut frames = 0;
    for (i, s) in segments.iter().enumerate() {
        let path = s["path"].as_str().expect("path");
        let bytes = get_object(stack, &bucket, &format!("{run_prefix}/output/{path}"));
        assert_eq!(bytes.len() as u64, s["bytes"].as_u64().expect("bytes"), "{path}");
        assert_eq!(sha256_hex(&bytes), s["sha256"].as_str().expect("sha256"), "{path}");
        let file = files.join(format!("{i}.mp4"));
        std::fs::write(&file, &bytes).expect("write segment");
        let (kind, codec, packets) = probe(&file);
        assert_eq!((kind.as_str(), codec.as_str()), ("video", "h264"), "{path}");
        let own = s["frames"].as_u64().expect("frames");
        assert_eq!(packets, own + s["lead_in_frames"].as_u64().unwrap_or(0), "{path}");
        frames += own;
    }
    assert_eq!(frames, 288, "every frame of the fixture, once");
    let audio = manifest["audio"].as_array().expect("audio");
    assert_eq!(audio.len(), 1, "{manifest}");
    let path = audio[0]["path"].as_str().expect("audio path");
    let bytes = get_object(stack, &bucket, &format!("{run_prefix}/output/{path}"));
    assert_eq!(sha256_hex(&bytes), audio[0]["sha256"].as_str().expect("sha256"));
    let file = files.join("audio.m4a");
    std::fs::write(&file, &bytes).expect("write audio");
    let (kind, codec, _) = probe(&file);
    assert_eq!((kind.as_str(), codec.as_str()), ("audio", "aac"));

    // Second run, no code change: nothing uploaded, nothing registered, itest passes again.
    let uploads = registry_uploads(stack, &repo);
    assert!(uploads.0 > 0 && uploads.1 > 0, "the first push went to the registry: {uploads:?}");
    let second = pipeline(&[]);
    second.assert_success();
    let out2 = second.stdout();
    assert!(
        summary_row(&out2, "push").expect("push").contains("already in ECR: nothing uploaded"),
        "{out2}"
    );
    assert!(out2.contains("uploading nothing"), "{out2}");
    let sign = summary_row(&out2, "sign").expect("sign");
    assert!(
        sign.contains("already signed") && sign.contains("attestation already there"),
        "a second run signs nothing new: {out2}"
    );
    assert!(
        summary_row(&out2, "deploy")
            .expect("deploy")
            .contains("revision 2 already runs it: nothing registered"),
        "{out2}"
    );
    assert!(
        summary_row(&out2, "itest")
            .expect("itest")
            .contains(" s  ok    passed: 2 segments + 1 audio, 11 checks (job "),
        "{out2}"
    );
    // The join round trip ran too.
    assert!(
        summary_row(&out2, "itest").expect("itest").contains(" s), joined back identical (job "),
        "{out2}"
    );
    assert_eq!(summary_value(&out2, "image digest"), Some(digest.as_str()));
    assert_eq!(registry_uploads(stack, &repo), uploads, "no blob or manifest uploaded");
    let images2 = aws
        .block_on(aws.ecr().describe_images().repository_name(&repo).send())
        .expect("describe images");
    let digests = |d: &[aws_sdk_ecr::types::ImageDetail]| {
        let mut v: Vec<String> =
            d.iter().filter_map(|i| i.image_digest()).map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(
        digests(images2.image_details()),
        digests(details),
        "the same image, signature and attestation: nothing signed again"
    );
    let defs2 = aws
        .block_on(batch.describe_job_definitions().job_definition_name(&job_definition).send())
        .expect("job definitions");
    assert_eq!(defs2.job_definitions().len(), 2, "no revision registered");
    assert_ne!(passed_job_id(&out2), job_id, "a new job ran");
    // Without --keep, the second run's objects are gone; the first run's are still there.
    let listed = aws
        .block_on(aws.s3().list_objects_v2().bucket(&bucket).prefix("itest/").send())
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with(&format!("{run_prefix}/"))),
        "{keys:?}"
    );

    drop(_heavy);
    remove_images("pipe", None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_stage_stops_the_pipeline_and_names_it() {
    let stack = support::stack();
    let project = format!("pfail{}", std::process::id());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xtask-pipeline").join(&project);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");

    // Against the stack without --local (its env file applied, like a sourced shell): no image
    // was built, so push fails; deploy and itest never run.
    let run = support::run(
        stack
            .xtask()
            .args(["pipeline", "--project", &project, "--skip", "image,scan"])
            .env("CARGO_TARGET_DIR", &dir),
    );
    let line = run.assert_one_line_error_with(&["run `cargo xtask image` first"]);
    assert!(
        line.starts_with("error: pipeline stopped at stage `push`: no image built yet"),
        "{line}"
    );
    let out = run.stdout();
    assert!(
        summary_row(&out, "image").expect("image").ends_with("ok    skipped (--skip)"),
        "{out}"
    );
    assert!(
        summary_row(&out, "push").expect("push").contains("FAILED no image built yet"),
        "{out}"
    );
    assert!(summary_row(&out, "deploy").expect("deploy").ends_with("not run"), "{out}");
    assert!(summary_row(&out, "itest").expect("itest").ends_with("not run"), "{out}");
    assert!(!out.contains("==> [4/5] deploy"), "deploy did not start:\n{out}");

    // prod needs --yes, asked before anything is built.
    let run =
        support::run(stack.xtask().args(["pipeline", "--project", &project, "--env", "prod"]));
    run.assert_one_line_error_with(&["needs confirmation: rerun with --yes"]);
    assert!(!run.stdout().contains("==>"), "no stage ran:\n{}", run.stdout());

    // A dry run prints every stage's command and runs none.
    let run = support::run(
        stack
            .xtask()
            .args(["pipeline", "--project", &project, "--dry-run"])
            .env("CARGO_TARGET_DIR", &dir),
    );
    run.assert_success();
    let out = run.stdout();
    for command in [
        format!("cargo xtask image --project {project}"),
        "cargo xtask scan".to_owned(),
        format!(
            "[dry-run] would run: cargo xtask push --project {project} --env dev --region us-east-1"
        ),
        format!(
            "[dry-run] would run: cargo xtask deploy --project {project} --env dev --region us-east-1"
        ),
        format!(
            "[dry-run] would run: cargo xtask itest --project {project} --env dev --region us-east-1 --timeout 15m"
        ),
    ] {
        assert!(out.contains(&command), "missing {command:?} in:\n{out}");
    }
    assert!(!dir.join("xtask/image.json").exists(), "nothing built");
    let _ = std::fs::remove_dir_all(&dir);
}
