//! The xtask foundation against real components: the CLI, `cargo xtask local up | status | down`
//! on private ports, the resources read back through the SDK, and moto's Batch running a real
//! Docker container that writes to moto's S3.

mod support;

use std::path::Path;
use std::time::Duration;

use aws_sdk_batch::types::{JobStatus, KeyValuePair, ResourceRequirement, ResourceType};
use support::{Stack, free_port, pid_alive, run, xtask};
use xtask::proc::{port_free, wait_until};

const COMMANDS: [&str; 10] = [
    "local",
    "test",
    "image",
    "scan",
    "push",
    "deploy",
    "rollback",
    "itest",
    "pipeline",
    "iam-policy",
];

#[test]
fn no_arguments_prints_the_help_and_every_command_has_help() {
    let bare = run(&mut xtask());
    assert_eq!(bare.output.status.code(), Some(2), "{}", bare.stderr());
    let help = bare.stderr();
    for command in COMMANDS {
        assert!(help.contains(&format!("  {command} ")), "`{command}` missing from:\n{help}");
        let sub = run(xtask().args([command, "--help"]));
        sub.assert_success();
        assert!(sub.stdout().contains("Usage: cargo xtask"), "{}", sub.stdout());
    }
    for sub in ["up", "down", "status", "env"] {
        let out = run(xtask().args(["local", sub, "--help"]));
        out.assert_success();
        assert!(out.stdout().contains("--state-dir"), "local {sub} --help:\n{}", out.stdout());
    }
}

#[test]
fn dry_run_names_every_resource_from_the_config_and_starts_nothing() {
    let dir = tempdir("dry-run");
    let (moto, registry) = (free_port(), free_port());
    let out = run(xtask()
        .args(["local", "up", "--dry-run", "--no-install"])
        .args(["--moto-port", &moto.to_string(), "--registry-port", &registry.to_string()])
        .args(["--state-dir", &dir.display().to_string()])
        .env("PROJECT_NAME", "acme")
        .args(["--env", "staging", "--region", "eu-west-1"]));
    out.assert_success();
    let text = out.stdout();
    for name in [
        "acme-splitter-job-role-staging",
        "acme-splitter-batch-service-role-staging",
        "acme-splitter-staging-data",
        "acme-splitter-staging-ecr",
        "/aws/batch/job",
        "acme-splitter-compute-staging",
        "acme-splitter-queue-staging",
        "acme-splitter-job-staging",
        "alias/acme-splitter-signing-staging",
        "export AWS_REGION=eu-west-1",
        &format!("export AWS_ENDPOINT_URL=http://127.0.0.1:{moto}"),
        &format!("export SPLITTER_LOCAL_REGISTRY=127.0.0.1:{registry}"),
        "export PROJECT_NAME=acme",
    ] {
        assert!(text.contains(name), "`{name}` missing from the dry run:\n{text}");
    }
    assert!(port_free(moto) && port_free(registry), "a dry run started a server");
    assert!(!dir.join("moto.pid").exists() && !dir.join("env").exists(), "a dry run wrote state");
}

#[test]
fn up_twice_reuses_everything_then_status_then_down_leaves_nothing() {
    let stack = Stack::start("lifecycle");
    let moto_pid = read_pid(&stack.state_dir.join("moto.pid"));
    let registry_pid = read_pid(&stack.state_dir.join("registry.pid"));
    assert!(pid_alive(moto_pid) && pid_alive(registry_pid));
    assert!(stack.up_output.contains("created"), "{}", stack.up_output);
    // The signing key, read back with the AWS CLI: ECDSA P-256 for signing, behind its alias.
    let key = aws_cli(&stack, &["kms", "describe-key", "--key-id", SIGNING_ALIAS]);
    let key = &key["KeyMetadata"];
    assert_eq!(key["KeySpec"], "ECC_NIST_P256", "{key}");
    assert_eq!(key["KeyUsage"], "SIGN_VERIFY", "{key}");
    assert_eq!(key["KeyState"], "Enabled", "{key}");
    assert_eq!(key["SigningAlgorithms"], serde_json::json!(["ECDSA_SHA_256"]), "{key}");
    let key_id = key["KeyId"].as_str().expect("KeyId").to_owned();
    let tags = aws_cli(&stack, &["kms", "list-resource-tags", "--key-id", &key_id]);
    let tag =
        |k: &str| tags["Tags"].as_array().expect("Tags").iter().find(|t| t["TagKey"] == k).cloned();
    assert_eq!(tag("Environment").map(|t| t["TagValue"].clone()), Some("dev".into()), "{tags}");
    assert_eq!(tag("ManagedBy").map(|t| t["TagValue"].clone()), Some("cargo-xtask".into()));

    // Second `up`: same processes, nothing created.
    let again = run(stack.xtask().args(["local", "up", "--no-install"]));
    again.assert_success();
    let text = again.stdout();
    assert!(text.contains(&format!("pid {moto_pid}")) && text.contains("(reused)"), "{text}");
    assert_eq!(read_pid(&stack.state_dir.join("moto.pid")), moto_pid);
    assert_eq!(read_pid(&stack.state_dir.join("registry.pid")), registry_pid);
    let resource_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(resource_lines.len(), 9, "{text}");
    assert!(
        resource_lines.iter().all(|l| l.contains(" exists")),
        "a second up created something:\n{text}"
    );
    // The alias still names the same key, and no other key was made.
    let key = aws_cli(&stack, &["kms", "describe-key", "--key-id", SIGNING_ALIAS]);
    assert_eq!(key["KeyMetadata"]["KeyId"], key_id.as_str(), "a second up replaced the key");
    let keys = aws_cli(&stack, &["kms", "list-keys"]);
    assert_eq!(keys["Keys"].as_array().map(Vec::len), Some(1), "{keys}");
    let aws = stack.aws();
    let defs = aws
        .block_on(
            aws.batch()
                .describe_job_definitions()
                .job_definition_name("upscaler-splitter-job-dev")
                .send(),
        )
        .expect("describe job definitions");
    assert_eq!(defs.job_definitions().len(), 1, "a second up registered another revision");

    // `status`: what runs, ports, resources.
    let status = run(stack.xtask().args(["local", "status"]));
    status.assert_success();
    let text = status.stdout();
    assert!(
        text.contains(&format!(
            "moto      running  pid {moto_pid}  http://127.0.0.1:{}  answers",
            stack.moto_port
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "registry  running  pid {registry_pid}  127.0.0.1:{}  answers",
            stack.registry_port
        )),
        "{text}"
    );
    assert!(!text.contains("missing"), "{text}");
    assert!(text.contains("upscaler-splitter-job-dev") && text.contains("revision 1"), "{text}");
    let key_line = text.lines().find(|l| l.contains(SIGNING_ALIAS)).unwrap_or_default();
    assert!(
        key_line.contains(&format!("exists  → key {key_id} (ECC_NIST_P256, SIGN_VERIFY, Enabled)")),
        "{text}"
    );

    // `env` prints the env file, which another shell can source.
    let env = run(stack.xtask().args(["local", "env"]));
    env.assert_success();
    let file = std::fs::read_to_string(stack.state_dir.join("env")).expect("env file");
    assert_eq!(env.stdout(), file);
    let sourced = run(std::process::Command::new("sh")
        .arg("-c")
        .arg(". \"$1\" && echo \"$AWS_ENDPOINT_URL $SPLITTER_LOCAL_REGISTRY\"")
        .arg("sh")
        .arg(stack.state_dir.join("env")));
    sourced.assert_success();
    assert_eq!(sourced.stdout().trim(), format!("{} {}", stack.endpoint(), stack.registry()));

    // `down`: processes gone, ports free, env file gone; a second down has nothing to do.
    let down = stack.down();
    assert!(down.stdout().contains(&format!("stopped moto (pid {moto_pid})")), "{}", down.stdout());
    assert!(!pid_alive(moto_pid) && !pid_alive(registry_pid));
    assert!(port_free(stack.moto_port) && port_free(stack.registry_port));
    assert!(!stack.state_dir.join("env").exists());
    for pid_file in ["moto.pid", "registry.pid", "watch.pid"] {
        assert!(!stack.state_dir.join(pid_file).exists(), "{pid_file} left behind");
    }
    assert!(stack.down().stdout().contains("nothing runs"));
    let status = run(xtask().args(["local", "status"]).args(stack.args()));
    status.assert_success();
    assert!(status.stdout().contains("moto      stopped"), "{}", status.stdout());
}

#[test]
fn the_stack_stops_when_its_owner_exits() {
    let dir = tempdir("owner");
    let (moto, registry) = (free_port(), free_port());
    /// Kills the owner even when an assertion fails first.
    struct Owner(std::process::Child);
    impl Drop for Owner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut owner = Owner(std::process::Command::new("sleep").arg("600").spawn().expect("sleep"));
    let up = run(xtask()
        .args(["local", "up", "--no-install", "--owner-pid", &owner.0.id().to_string()])
        .args(["--moto-port", &moto.to_string(), "--registry-port", &registry.to_string()])
        .args(["--state-dir", &dir.display().to_string()]));
    up.assert_success();
    let pids: Vec<u32> =
        ["moto.pid", "registry.pid", "watch.pid"].iter().map(|f| read_pid(&dir.join(f))).collect();
    assert!(pids.iter().all(|p| pid_alive(*p)));
    owner.0.kill().expect("kill the owner");
    owner.0.wait().expect("reap the owner");
    assert!(
        wait_until(Duration::from_secs(20), || pids.iter().all(|p| !pid_alive(*p))),
        "the stack outlived its owner"
    );
    assert!(port_free(moto) && port_free(registry));
}

#[test]
fn created_resources_read_back_through_the_sdk() {
    let stack = support::stack();
    let aws = stack.aws();

    let role = aws
        .block_on(aws.iam().get_role().role_name("upscaler-splitter-job-role-dev").send())
        .expect("job role");
    let role = role.role().expect("role");
    let trust = urlish_decode(role.assume_role_policy_document().unwrap_or_default());
    assert!(trust.contains("ecs-tasks.amazonaws.com"), "{trust}");
    let policy = aws
        .block_on(
            aws.iam()
                .get_role_policy()
                .role_name("upscaler-splitter-job-role-dev")
                .policy_name("splitter-data")
                .send(),
        )
        .expect("job role policy");
    assert!(urlish_decode(policy.policy_document()).contains("upscaler-splitter-dev-data"));
    let attached = aws
        .block_on(
            aws.iam()
                .list_attached_role_policies()
                .role_name("upscaler-splitter-batch-service-role-dev")
                .send(),
        )
        .expect("service role policies");
    assert!(
        attached.attached_policies().iter().any(|p| p.policy_name() == Some("AWSBatchServiceRole"))
    );

    let ces = aws
        .block_on(
            aws.batch()
                .describe_compute_environments()
                .compute_environments("upscaler-splitter-compute-dev")
                .send(),
        )
        .expect("compute environments");
    let ce = &ces.compute_environments()[0];
    assert_eq!(ce.state().map(|s| s.as_str()), Some("ENABLED"));
    let queues = aws
        .block_on(
            aws.batch().describe_job_queues().job_queues("upscaler-splitter-queue-dev").send(),
        )
        .expect("job queues");
    let queue = &queues.job_queues()[0];
    assert_eq!(queue.state().map(|s| s.as_str()), Some("ENABLED"));
    // Real AWS answers with the compute environment's ARN, moto with the name it was given.
    let fed = queue.compute_environment_order()[0].compute_environment().unwrap_or_default();
    assert!(
        fed == "upscaler-splitter-compute-dev" || Some(fed) == ce.compute_environment_arn(),
        "the queue feeds {fed}, not the compute environment"
    );

    let repos = aws
        .block_on(
            aws.ecr().describe_repositories().repository_names("upscaler-splitter-dev-ecr").send(),
        )
        .expect("ecr repository");
    let repo = &repos.repositories()[0];
    let uri = repo.repository_uri().expect("uri");
    assert!(uri.ends_with("/upscaler-splitter-dev-ecr"), "{uri}");
    assert_eq!(repo.image_scanning_configuration().map(|c| c.scan_on_push()), Some(true));
    let lifecycle = aws
        .block_on(
            aws.ecr().get_lifecycle_policy().repository_name("upscaler-splitter-dev-ecr").send(),
        )
        .expect("lifecycle policy");
    let rules: serde_json::Value =
        serde_json::from_str(lifecycle.lifecycle_policy_text().unwrap_or_default()).expect("json");
    assert_eq!(rules["rules"].as_array().map(Vec::len), Some(2), "{rules}");

    aws.block_on(aws.s3().head_bucket().bucket("upscaler-splitter-dev-data").send())
        .expect("bucket");
    let groups = aws
        .block_on(aws.logs().describe_log_groups().log_group_name_prefix("/aws/batch/job").send())
        .expect("log groups");
    assert!(groups.log_groups().iter().any(|g| g.log_group_name() == Some("/aws/batch/job")));

    // The job definition, shaped like a real one.
    let defs = aws
        .block_on(
            aws.batch()
                .describe_job_definitions()
                .job_definition_name("upscaler-splitter-job-dev")
                .status("ACTIVE")
                .send(),
        )
        .expect("job definition");
    let def = &defs.job_definitions()[0];
    assert_eq!(def.r#type(), Some("container"));
    assert_eq!(
        def.parameters().and_then(|p| p.get("segment_seconds")).map(String::as_str),
        Some("10")
    );
    assert_eq!(def.propagate_tags(), Some(true));
    assert_eq!(def.platform_capabilities().first().map(|p| p.as_str()), Some("EC2"));
    assert_eq!(def.tags().and_then(|t| t.get("Environment")).map(String::as_str), Some("dev"));
    assert_eq!(def.timeout().and_then(|t| t.attempt_duration_seconds()), Some(3600));
    let retry = def.retry_strategy().expect("retry strategy");
    assert_eq!(retry.attempts(), Some(3));
    assert_eq!(retry.evaluate_on_exit().len(), 2);
    let c = def.container_properties().expect("container properties");
    assert_eq!(c.image(), Some(format!("{uri}:placeholder").as_str()));
    assert_eq!(
        c.command(),
        ["split", "Ref::input", "Ref::output", "--segment-seconds", "Ref::segment_seconds"]
    );
    assert_eq!(c.job_role_arn(), Some(role.arn()));
    assert_eq!(c.readonly_root_filesystem(), Some(true));
    let tmpfs = c.linux_parameters().map(|l| l.tmpfs()).unwrap_or_default();
    assert_eq!(tmpfs.first().and_then(|t| t.container_path()), Some("/tmp"));
    let vcpu = c.resource_requirements().iter().find(|r| r.r#type() == Some(&ResourceType::Vcpu));
    assert_eq!(vcpu.and_then(ResourceRequirement::value), Some("1"));
    let env = |name: &str| {
        c.environment()
            .iter()
            .find(|e| e.name() == Some(name))
            .and_then(KeyValuePair::value)
            .map(str::to_owned)
    };
    assert_eq!(env("AWS_ENDPOINT_URL"), Some(stack.endpoint()));
    assert_eq!(env("AWS_ACCESS_KEY_ID").as_deref(), Some("test"));
    assert_eq!(env("AWS_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(env("SPLITTER_LOG_FORMAT").as_deref(), Some("json"));
    let log = c.log_configuration().expect("log configuration");
    assert_eq!(log.log_driver().map(|d| d.as_str()), Some("awslogs"));

    // The env file matches the stack.
    assert_eq!(stack.var("AWS_ENDPOINT_URL"), Some(stack.endpoint().as_str()));
    assert_eq!(stack.var("SPLITTER_LOCAL_REGISTRY"), Some(stack.registry().as_str()));
    let base = stack.var("SPLITTER_BASE_IMAGE").expect("SPLITTER_BASE_IMAGE in the env file");
    let inspect = run(std::process::Command::new("docker").args(["image", "inspect", base]));
    inspect.assert_success();
}

/// moto's Batch really runs the job: a container from the local base image, on the env's queue,
/// with the env's job environment, reaches moto's S3 over host networking and writes an object.
#[test]
fn a_batch_job_runs_a_container_that_writes_to_s3() {
    let stack = support::stack();
    let aws = stack.aws();
    let batch = aws.batch();
    let base = stack.var("SPLITTER_BASE_IMAGE").expect("base image");

    // The environment of the real job definition (endpoint + dummy credentials locally).
    let defs = aws
        .block_on(
            batch
                .describe_job_definitions()
                .job_definition_name("upscaler-splitter-job-dev")
                .send(),
        )
        .expect("job definition");
    let env =
        defs.job_definitions()[0].container_properties().expect("container").environment().to_vec();

    // bash's /dev/tcp speaks just enough HTTP for an unsigned path-style PUT.
    let script = r#"set -eu
hostport=${AWS_ENDPOINT_URL#http://}
body="written by batch job $AWS_BATCH_JOB_ID"
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
printf 'PUT /%s HTTP/1.0\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s' "$1" "$hostport" "${#body}" "$body" >&3
read -r status <&3
echo "moto answered: $status"
case $status in *" 200 "*) ;; *) exit 1 ;; esac"#;
    let props = aws_sdk_batch::types::ContainerProperties::builder()
        .image(base)
        .command("bash")
        .command("-c")
        .command(script)
        .command("probe")
        .command("Ref::target")
        .resource_requirements(
            ResourceRequirement::builder().r#type(ResourceType::Vcpu).value("1").build(),
        )
        .resource_requirements(
            ResourceRequirement::builder().r#type(ResourceType::Memory).value("256").build(),
        )
        .set_environment(Some(env))
        .build();
    let key = format!("probe/{}.txt", std::process::id());
    aws.block_on(
        batch
            .register_job_definition()
            .job_definition_name("probe-s3-write")
            .r#type(aws_sdk_batch::types::JobDefinitionType::Container)
            .container_properties(props)
            .parameters("target", format!("upscaler-splitter-dev-data/{key}"))
            .send(),
    )
    .expect("register the probe job definition");

    let _heavy = support::docker_lock();
    let job = aws
        .block_on(
            batch
                .submit_job()
                .job_name("probe-s3-write")
                .job_queue("upscaler-splitter-queue-dev")
                .job_definition("probe-s3-write")
                .send(),
        )
        .expect("submit");
    let job_id = job.job_id().expect("job id").to_owned();
    let mut status = None;
    let finished = wait_until(Duration::from_secs(120), || {
        let jobs = aws.block_on(batch.describe_jobs().jobs(&job_id).send()).expect("describe job");
        status = jobs.jobs().first().and_then(|j| j.status().cloned());
        matches!(status, Some(JobStatus::Succeeded | JobStatus::Failed))
    });
    assert!(finished, "the job did not finish within 120 s (last status {status:?})");

    // The job's output reached CloudWatch Logs (read through xtask's own logs client).
    let log_stream = format!("probe-s3-write/default/{job_id}");
    let events = aws
        .block_on(
            aws.logs()
                .get_log_events()
                .log_group_name("/aws/batch/job")
                .log_stream_name(&log_stream)
                .send(),
        )
        .expect("the job's log stream");
    let log: Vec<&str> = events.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(status, Some(JobStatus::Succeeded), "job log: {log:?}");
    assert!(log.iter().any(|l| l.contains("moto answered: HTTP/1.1 200")), "{log:?}");

    let object = aws
        .block_on(aws.s3().get_object().bucket("upscaler-splitter-dev-data").key(&key).send())
        .expect("the object the job wrote");
    let body = aws.block_on(object.body.collect()).expect("body").into_bytes();
    assert_eq!(String::from_utf8_lossy(&body), format!("written by batch job {job_id}"));
}

#[test]
fn bad_situations_give_one_clear_line() {
    let dir = tempdir("errors");
    let dir_s = dir.display().to_string();

    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let registry = free_port().to_string();
    let out = run(xtask()
        .args(["local", "up", "--no-install", "--moto-port", &port, "--registry-port", &registry])
        .args(["--state-dir", &dir_s]));
    let line = out.assert_one_line_error();
    assert!(
        line.contains(&format!("port {port} on 127.0.0.1 is in use"))
            && line.contains("--moto-port"),
        "{line}"
    );

    // Docker not answering.
    let out = run(xtask()
        .args(["local", "up", "--no-install", "--state-dir", &dir_s])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    let line = out.assert_one_line_error();
    assert!(line.contains("DOCKER_HOST=unix:///nonexistent/docker.sock does not answer"), "{line}");

    // moto missing: a Python without it.
    let venv = dir.join("venv");
    run(std::process::Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&venv))
        .assert_success();
    let out = run(xtask()
        .args(["local", "up", "--no-install", "--state-dir", &dir_s])
        .env("SPLITTER_PYTHON", venv.join("bin/python")));
    let line = out.assert_one_line_error();
    assert!(line.contains("moto not installed"), "{line}");
    assert!(line.contains(&format!("-m pip install 'moto[server]=={}'", moto_pin())), "{line}");

    // The registry missing: a PATH without it (daemons are also looked for in sbin).
    let python = run(
        std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"])
    );
    let python = python.assert_success().stdout().trim().to_owned();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("dir");
    let out = run(xtask()
        .args(["local", "up", "--no-install", "--state-dir", &dir_s])
        .env("PATH", &bin)
        .env("SPLITTER_PYTHON", &python));
    let line = out.assert_one_line_error();
    assert!(line.contains("Distribution registry (`docker-registry` not found)"), "{line}");
    assert!(
        line.contains("apt-get install -y --no-install-recommends docker-registry ffmpeg`"),
        "{line}"
    );

    // The Docker client missing: the registry (and ffprobe) on PATH, `docker` not.
    for program in ["docker-registry", "ffprobe"] {
        std::os::unix::fs::symlink(format!("/usr/bin/{program}"), bin.join(program))
            .expect("symlink");
    }
    let out = run(xtask()
        .args(["local", "up", "--no-install", "--state-dir", &dir_s])
        .env("PATH", &bin)
        .env("SPLITTER_PYTHON", &python));
    let line = out.assert_one_line_error();
    assert!(line.contains("Docker is missing (the `docker` client is not installed)"), "{line}");
    assert!(line.contains("apt-get install -y --no-install-recommends docker.io`"), "{line}");

    // A base image that does not exist.
    let out = run(xtask()
        .args(["local", "up", "--no-install", "--state-dir", &dir_s])
        .args([
            "--moto-port",
            &free_port().to_string(),
            "--registry-port",
            &free_port().to_string(),
        ])
        .env("SPLITTER_BASE_IMAGE", "no-such-image:anywhere"));
    let line = out.assert_one_line_error();
    assert!(
        line.contains("SPLITTER_BASE_IMAGE=no-such-image:anywhere is not a local image"),
        "{line}"
    );
    assert!(!dir.join("moto.pid").exists(), "started moto before checking the base image");
}

/// The alias of the dev environment's signing key.
const SIGNING_ALIAS: &str = "alias/upscaler-splitter-signing-dev";

/// The AWS CLI against `stack` (read back independently of xtask's SDK code); its JSON output.
fn aws_cli(stack: &Stack, args: &[&str]) -> serde_json::Value {
    let mut cmd = std::process::Command::new("aws");
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(stack.env.iter().map(|(k, v)| (k, v))).args(args).args(["--output", "json"]);
    let out = run(&mut cmd);
    out.assert_success();
    serde_json::from_str(&out.stdout()).unwrap_or_else(|e| {
        panic!("`aws {}` printed no JSON ({e}):\n{}", args.join(" "), out.stdout())
    })
}

/// The pinned moto version, as `cargo xtask test --list` describes it is not enough: read the
/// source of truth.
fn moto_pin() -> String {
    let tools = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tools.rs"))
        .expect("tools.rs");
    let after = tools.split("macro_rules! moto_version").nth(1).expect("moto_version macro");
    after.split('"').nth(1).expect("a quoted version").to_owned()
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PID in {}", path.display()))
}

/// A scratch directory under the target directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(name: &str) -> TempDir {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tempdir");
    TempDir(dir)
}

/// IAM returns policy documents URL-encoded; enough decoding to search them.
fn urlish_decode(s: &str) -> String {
    let mut out = String::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).map(char::from).unwrap_or('?'));
        } else {
            out.push(char::from(b));
        }
    }
    out
}
