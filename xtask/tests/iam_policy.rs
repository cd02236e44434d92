//! `cargo xtask iam-policy`: the documents it prints, and that the deploy role's policy allows
//! every AWS call xtask makes, derived from the code two ways:
//!
//! - dynamically: push, sign, deploy and rollback run against the local stack with
//!   `XTASK_RECORD_AWS_CALLS` set (an SDK interceptor in `aws.rs` records `Service:Operation`
//!   for each call, and the key of a KMS call), then `iam-policy --check` maps each call to its
//!   IAM action (and a KMS call's key to the policy's signing key alias);
//! - statically: every SDK operation named in the sources of those commands (and itest,
//!   pipeline), their rooms included — the operation list comes from the SDK crates themselves —
//!   is checked the same way, so calls on paths the run above does not take are covered too. The
//!   lookups the commands share with the local stack (`lookup.rs`) count when the commands call
//!   them; the local stack's own code (`local.rs`, `local/`) is read too, and its calls are told
//!   apart: `local up` needs admin rights and is not the deploy role's.

mod support;
mod world;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use world::{World, sha};

fn iam_policy(args: &[&str]) -> support::Run {
    support::run(support::xtask().arg("iam-policy").args(args))
}

fn json_of(run: &support::Run) -> Value {
    run.assert_success();
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout()))
}

#[test]
fn prints_the_role_for_one_environment_of_one_repository() {
    let all = json_of(&iam_policy(&[
        "--env",
        "prod",
        "--account",
        "123456789012",
        "--repo",
        "acme/splitter",
        "--project",
        "acme",
    ]));
    assert_eq!(all["RoleName"], "acme-splitter-deploy-prod");
    let trust = &all["TrustPolicy"]["Statement"][0];
    assert_eq!(trust["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"],
        "repo:acme/splitter:environment:prod"
    );
    let permissions = all["PermissionsPolicy"].to_string();
    for arn in [
        "arn:aws:ecr:us-east-1:123456789012:repository/acme-splitter-prod-ecr",
        "arn:aws:batch:us-east-1:123456789012:job-definition/acme-splitter-job-prod",
        "arn:aws:batch:us-east-1:123456789012:job-queue/acme-splitter-queue-prod",
        "arn:aws:s3:::acme-splitter-prod-data",
        "arn:aws:iam::123456789012:role/acme-splitter-job-role-prod",
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/batch/job:log-stream:acme-splitter-job-prod/*",
        "arn:aws:kms:us-east-1:123456789012:key/*",
    ] {
        assert!(permissions.contains(arn), "{arn} missing:\n{permissions}");
    }
    assert!(!permissions.contains("-dev") && !permissions.contains("ecr:*"), "{permissions}");
    // The signing key: by its alias, the only way to name a key before it exists.
    let signing = all["PermissionsPolicy"]["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|s| s["Sid"] == "SigningKey")
        .expect("SigningKey statement")
        .clone();
    assert_eq!(signing["Action"], serde_json::json!(["kms:GetPublicKey", "kms:Sign"]));
    assert_eq!(
        signing["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"],
        "alias/acme-splitter-signing-prod"
    );

    // One document at a time, ready for `aws iam …`; the repository defaults to Cargo.toml's.
    let trust =
        json_of(&iam_policy(&["--env", "dev", "--account", "123456789012", "--document", "trust"]));
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"],
        "repo:upscaler/splitter:environment:dev"
    );
    let permissions = json_of(&iam_policy(&[
        "--env",
        "dev",
        "--account",
        "123456789012",
        "--document",
        "permissions",
    ]));
    assert_eq!(permissions["Version"], "2012-10-17");
    assert!(permissions.get("TrustPolicy").is_none());
}

#[test]
fn bad_input_is_one_line_with_the_fix() {
    let line = iam_policy(&["--env", "dev", "--account", "12ab", "--repo", "acme/splitter"])
        .assert_one_line_error();
    assert!(line.contains("12 digits"), "{line}");
    let line = iam_policy(&["--env", "dev", "--account", "123456789012", "--repo", "acme"])
        .assert_one_line_error();
    assert!(line.contains("OWNER/NAME"), "{line}");
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("iam-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let calls = dir.join("calls.txt");
    std::fs::write(&calls, "ECR:PutImage\nECR:DeleteRepository\n").expect("write");
    let line = iam_policy(&["--env", "dev", "--check", calls.to_str().expect("utf-8")])
        .assert_one_line_error();
    assert!(line.contains("does not allow ecr:DeleteRepository"), "{line}");

    // KMS calls are checked on the key they named: the environment's signing key only.
    std::fs::write(
        &calls,
        "KMS:Sign alias/upscaler-splitter-signing-dev\nKMS:GetPublicKey alias/upscaler-splitter-signing-dev\n",
    )
    .expect("write");
    let run = iam_policy(&["--env", "dev", "--check", calls.to_str().expect("utf-8")]);
    run.assert_success();
    assert!(run.stdout().contains("SigningKey"), "{}", run.stdout());
    for (line, denied) in [
        (
            "KMS:Sign alias/upscaler-splitter-signing-prod",
            "kms:Sign on alias/upscaler-splitter-signing-prod",
        ),
        ("KMS:GetPublicKey alias/someone-elses-key", "kms:GetPublicKey on alias/someone-elses-key"),
        (
            "KMS:Sign 1234abcd-12ab-34cd-56ef-1234567890ab",
            "kms:Sign on 1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
    ] {
        std::fs::write(&calls, format!("KMS:Sign alias/upscaler-splitter-signing-dev\n{line}\n"))
            .expect("write");
        let error = iam_policy(&["--env", "dev", "--check", calls.to_str().expect("utf-8")])
            .assert_one_line_error();
        assert!(error.contains(&format!("does not allow {denied}:")), "{error}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `iam-policy --check` on these calls (of `project`'s dev environment); panics with its table
/// unless all are allowed.
fn assert_allowed(file: &Path, project: &str, what: &str) -> String {
    let file = file.to_str().expect("utf-8");
    let run = iam_policy(&["--env", "dev", "--project", project, "--check", file]);
    assert!(
        run.success(),
        "{what}: calls the policy does not allow:\n{}\n{}",
        run.stdout(),
        run.stderr()
    );
    run.stdout()
}

#[test]
fn every_call_push_deploy_and_rollback_make_is_allowed() {
    let world = World::new("iamcov");
    world.up("dev");
    let calls = world.dir.join("aws-calls.txt");
    let _ = std::fs::remove_file(&calls);
    let recorded = |args: &[&str]| {
        let run = support::run(world.xtask(args).env("XTASK_RECORD_AWS_CALLS", &calls));
        run.assert_success();
    };
    let (a, b) = (sha('a'), sha('b'));
    // An SBOM big enough that its attestation (DSSE PAE over 4096 bytes) is signed as a digest.
    let sbom = world.dir.join("sbom.cdx.json");
    let components: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({"type": "library", "name": format!("component-{i}"), "version": "1.0.0"}))
        .collect();
    let sbom_json = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": components});
    std::fs::write(&sbom, sbom_json.to_string()).expect("write the SBOM");
    assert!(std::fs::metadata(&sbom).expect("SBOM").len() > 4096);
    {
        let _heavy = support::docker_lock();
        world.build(&a, false);
        recorded(&["push", "--env", "dev"]);
        recorded(&["sign", "--env", "dev", "--sbom", sbom.to_str().expect("utf-8")]);
        world.build(&b, false);
        recorded(&["push", "--env", "dev"]);
        recorded(&["sign", "--env", "dev", "--no-attestation"]);
    }
    recorded(&["deploy", "--env", "dev", "--tag", &a]);
    recorded(&["deploy", "--env", "dev", "--dry-run"]);
    recorded(&["deploy", "--env", "dev"]);
    recorded(&["rollback", "--env", "dev"]);
    recorded(&["rollback", "--env", "dev", "--to-tag", &b]);

    // itest against the same environment: the job runs the tiny test image, which is no
    // splitter, so the job fails; its calls (checks, upload, submit, watch, log tail, clean-up)
    // are recorded all the same.
    let run = support::run(
        world
            .xtask(&["itest", "--env", "dev", "--timeout", "90s"])
            .env("XTASK_RECORD_AWS_CALLS", &calls),
    );
    assert!(!run.success(), "the tiny image is not a splitter: itest must fail\n{}", run.stdout());

    let text = std::fs::read_to_string(&calls).expect("calls were recorded");
    let distinct: BTreeSet<&str> = text.lines().collect();
    let kms_sign = format!("KMS:Sign alias/{}-splitter-signing-dev", world.project);
    let kms_public_key = format!("KMS:GetPublicKey alias/{}-splitter-signing-dev", world.project);
    // The run took the paths that matter: uploads, tags, revisions, `latest` moved back.
    for call in [
        "ECR:GetAuthorizationToken",
        "ECR:PutImage",
        "ECR:DescribeImages",
        "ECR:BatchGetImage",
        "Batch:DescribeJobDefinitions",
        "Batch:RegisterJobDefinition",
        "S3:PutObject",
        // The signing key, by the environment's alias (the policy's only key).
        kms_sign.as_str(),
        kms_public_key.as_str(),
        "Batch:SubmitJob",
        "Batch:DescribeJobs",
    ] {
        assert!(distinct.contains(call), "{call} not recorded: {distinct:?}");
    }
    let table = assert_allowed(&calls, &world.project, "push/sign/deploy/rollback/itest");
    eprintln!("{table}");
    assert!(table.contains("all allowed"), "{table}");
    // Planted: the same calls checked against another project's policy: its KMS key differs.
    let other = iam_policy(&["--env", "dev", "--check", calls.to_str().expect("utf-8")]);
    let line = other.assert_one_line_error();
    assert!(
        line.contains(&format!("kms:Sign on alias/{}-splitter-signing-dev", world.project)),
        "{line}"
    );
}

/// The SDK operations (snake_case, as the fluent client names them) of each service crate
/// xtask uses, read from the crates' `src/operation/` directories.
fn sdk_operations() -> Vec<(&'static str, BTreeSet<String>)> {
    let meta = support::run(std::process::Command::new(env!("CARGO")).args([
        "metadata",
        "--format-version",
        "1",
        "--offline",
        "--filter-platform",
        "x86_64-unknown-linux-gnu",
        "--manifest-path",
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
    ]));
    meta.assert_success();
    let meta: Value = serde_json::from_str(&meta.stdout()).expect("cargo metadata JSON");
    let services = [
        ("aws-sdk-ecr", "ECR"),
        ("aws-sdk-batch", "Batch"),
        ("aws-sdk-s3", "S3"),
        ("aws-sdk-cloudwatchlogs", "CloudWatch Logs"),
        ("aws-sdk-sts", "STS"),
        ("aws-sdk-iam", "IAM"),
        ("aws-sdk-kms", "KMS"),
    ];
    services
        .iter()
        .map(|(krate, service)| {
            let manifest = meta["packages"]
                .as_array()
                .expect("packages")
                .iter()
                .find(|p| p["name"] == *krate)
                .and_then(|p| p["manifest_path"].as_str())
                .unwrap_or_else(|| panic!("{krate} not in cargo metadata"));
            let dir = Path::new(manifest).parent().expect("crate dir").join("src/operation");
            let ops: BTreeSet<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            assert!(ops.len() > 5, "{krate}: {ops:?}");
            (*service, ops)
        })
        .collect()
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The modules of the commands the deploy role runs (each with its rooms, recursively): every SDK
/// operation they name must be allowed.
const DEPLOY_COMMANDS: [&str; 9] =
    ["push", "sign", "deploy", "rollback", "itest", "pipeline", "ecr", "jobdef", "gha"];
/// Shared by the deploy commands and the local stack: an operation counts for the deploy role
/// when the deploy commands' code calls the function it is in (directly or through another one
/// of these).
const SHARED: [&str; 1] = ["lookup"];
/// The local stack (`local up`, `local status`): creating the resources needs admin rights and is
/// deliberately left out of the policy, like Terraform's own calls.
const LOCAL_ONLY: [&str; 1] = ["local"];

/// The text of `src/{name}.rs` and of every `.rs` file under `src/{name}/`, for each name.
fn sources(names: &[&str]) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for name in names {
        files.push(src.join(format!("{name}.rs")));
        walk(&src.join(name), &mut files);
    }
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

/// An SDK operation named in the code: (operation, the services that have it).
type Call = (String, Vec<&'static str>);

/// Each fluent SDK call (`.operation_name()`) in `code`, with the function it is in.
fn sdk_calls(code: &str, ops: &[(&'static str, BTreeSet<String>)]) -> Vec<(Call, String)> {
    let mut calls = Vec::new();
    let mut function = String::new();
    for line in code.lines() {
        if let Some(name) = fn_name(line) {
            function = name;
        }
        for piece in line.split('.').skip(1) {
            let method: String =
                piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if method.is_empty() || !piece[method.len()..].starts_with("()") {
                continue;
            }
            // Operations the same name has in several services are each checked on their own.
            let services: Vec<&str> =
                ops.iter().filter(|(_, o)| o.contains(&method)).map(|(s, _)| *s).collect();
            if !services.is_empty() {
                calls.push(((method, services), function.clone()));
            }
        }
    }
    calls
}

/// The name of the function a line declares, if it does.
fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    if !words[..at].iter().all(|w| ["pub", "pub(crate)", "pub(super)", "async"].contains(w)) {
        return None;
    }
    let name = words.get(at + 1)?.split(['(', '<']).next()?;
    Some(name.to_owned())
}

/// The functions of `shared` that `callers` call, directly or through each other.
fn reached(shared: &[String], callers: &str) -> BTreeSet<String> {
    // Each function's body: its lines up to the next function.
    let mut bodies: Vec<(String, String)> = Vec::new();
    for line in shared.iter().flat_map(|code| code.lines()) {
        match fn_name(line) {
            Some(name) => bodies.push((name, String::new())),
            None => {
                if let Some((_, body)) = bodies.last_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    let calls = |code: &str, name: &str| code.contains(&format!("{name}("));
    let mut reached: BTreeSet<String> =
        bodies.iter().filter(|(n, _)| calls(callers, n)).map(|(n, _)| n.clone()).collect();
    loop {
        let more: Vec<String> = bodies
            .iter()
            .filter(|(n, _)| !reached.contains(n))
            .filter(|(n, _)| bodies.iter().any(|(r, b)| reached.contains(r) && calls(b, n)))
            .map(|(n, _)| n.clone())
            .collect();
        if more.is_empty() {
            return reached;
        }
        reached.extend(more);
    }
}

#[test]
fn every_sdk_operation_in_the_deploy_commands_sources_is_allowed() {
    let ops = sdk_operations();
    let commands = sources(&DEPLOY_COMMANDS);
    let shared = sources(&SHARED);
    let local = sources(&LOCAL_ONLY);
    let used = reached(&shared, &commands.concat());

    // What the deploy role must allow, and what only the local stack calls.
    let mut found: BTreeSet<Call> = BTreeSet::new();
    let mut local_only: BTreeSet<Call> = BTreeSet::new();
    for (call, _) in commands.iter().flat_map(|code| sdk_calls(code, &ops)) {
        found.insert(call);
    }
    for (call, function) in shared.iter().flat_map(|code| sdk_calls(code, &ops)) {
        let calls = if used.contains(&function) { &mut found } else { &mut local_only };
        calls.insert(call);
    }
    for (call, _) in local.iter().flat_map(|code| sdk_calls(code, &ops)) {
        local_only.insert(call);
    }
    local_only.retain(|call| !found.contains(call));
    let names =
        |calls: &BTreeSet<Call>| -> Vec<String> { calls.iter().map(|(m, _)| m.clone()).collect() };
    let (found_names, local_names) = (names(&found), names(&local_only));
    eprintln!("deploy commands: {found_names:?}\nlocal stack only: {local_names:?}");
    // The scan sees the commands, the lookups they share (itest's preflight) and the local stack.
    for call in [
        "register_job_definition",
        "put_image",
        "head_bucket",
        "describe_job_queues",
        "sign",
        "get_public_key",
    ] {
        assert!(found_names.iter().any(|m| m == call), "{call} not found: {found_names:?}");
    }
    for call in ["get_role", "create_compute_environment", "create_key", "describe_key"] {
        assert!(local_names.iter().any(|m| m == call), "{call} not local-only: {local_names:?}");
    }

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("iam-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut missing = Vec::new();
    for (method, services) in &found {
        // Allowed in at least one of the services that have this operation.
        let allowed = services.iter().any(|service| {
            let file = dir.join("call.txt");
            std::fs::write(&file, format!("{service}:{}\n", pascal(method))).expect("write");
            iam_policy(&["--env", "dev", "--check", file.to_str().expect("utf-8")]).success()
        });
        if !allowed {
            missing.push(format!("{method} ({})", services.join("/")));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        missing.is_empty(),
        "SDK calls in the deploy commands the policy does not allow: {missing:?}"
    );
}
