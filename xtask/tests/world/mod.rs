//! The tests' shared world, used by the push, deploy, rollback and iam-policy tests: a private
//! [`World`] per test on the test binary's local stack (its own project name, build record,
//! Docker config and a `docker` wrapper that logs every argv), tiny images made with
//! `docker import`, and the AWS CLI to read results back independently of xtask's SDK code.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{self, Run, Stack};

/// moto's ECR authorization token is `AWS:{account}-auth-token`: the password the tests look
/// for in every argv, log and output.
pub const MOTO_ECR_PASSWORD: &str = "123456789012-auth-token";

/// A test's own project on the shared stack.
#[derive(Debug)]
pub struct World {
    pub stack: &'static Stack,
    /// Unique per test and process: resource names and Docker tags cannot collide.
    pub project: String,
    /// CARGO_TARGET_DIR of the xtask runs (the build record lives under it), the Docker config,
    /// the argv log and GITHUB_OUTPUT.
    pub dir: PathBuf,
    docker_wrapper: PathBuf,
    images: std::sync::Mutex<Vec<String>>,
}

impl World {
    /// `name` (a few lowercase letters) tells the tests of one binary apart.
    pub fn new(name: &str) -> World {
        let stack = support::stack();
        let project = format!("{name}{}", std::process::id());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xtask-world").join(&project);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docker-config")).expect("create the world's dir");
        let docker_wrapper = dir.join("docker");
        let real = real_docker();
        std::fs::write(
            &docker_wrapper,
            format!(
                "#!/bin/sh\n# Logs every docker argv, then runs the real client.\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                dir.join("docker-argv.log").display(),
                real.display()
            ),
        )
        .expect("write the docker wrapper");
        make_executable(&docker_wrapper);
        World { stack, project, dir, docker_wrapper, images: Default::default() }
    }

    /// The environment's resources, as `cargo xtask local up` creates them (what Terraform does).
    pub fn up(&self, env: &str) -> &Self {
        let run = support::run(
            self.stack
                .xtask()
                .args(["local", "up", "--no-install", "--project", &self.project, "--env", env])
                .args(self.stack.args()),
        );
        run.assert_success();
        self
    }

    /// xtask on the stack, for this world's project, build record, Docker config and wrapper.
    pub fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = self.stack.xtask();
        cmd.args(args)
            .env("PROJECT_NAME", &self.project)
            .env("CARGO_TARGET_DIR", &self.dir)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER", &self.docker_wrapper)
            .env("GITHUB_OUTPUT", self.dir.join("github-output"))
            .env_remove("GITHUB_ACTIONS");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        support::run(&mut self.xtask(args))
    }

    /// Every docker argv xtask ran so far, one per line.
    pub fn docker_argv(&self) -> String {
        std::fs::read_to_string(self.dir.join("docker-argv.log")).unwrap_or_default()
    }

    /// What xtask wrote to GITHUB_OUTPUT so far; cleared.
    pub fn take_github_output(&self) -> String {
        let path = self.dir.join("github-output");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text
    }

    pub fn repository(&self, env: &str) -> String {
        format!("{}-splitter-{env}-ecr", self.project)
    }

    /// Creates the environment's ECR repository (as Terraform would) and returns its name.
    pub fn create_repository(&self, env: &str) -> String {
        let repo = self.repository(env);
        self.aws(&["ecr", "create-repository", "--repository-name", &repo]);
        repo
    }

    pub fn job_definition(&self, env: &str) -> String {
        format!("{}-splitter-job-{env}", self.project)
    }

    /// A tiny image (one file, `docker import`) tagged `{project}-splitter:{sha}`, and the build
    /// record `cargo xtask image` would write for it. Returns the image id.
    pub fn build(&self, sha: &str, dirty: bool) -> String {
        let tag = if dirty { format!("{sha}-dirty") } else { sha.to_owned() };
        let image = format!("{}-splitter:{tag}", self.project);
        let ctx = self.dir.join(format!("ctx-{tag}"));
        std::fs::create_dir_all(&ctx).expect("context dir");
        std::fs::write(ctx.join("content.txt"), format!("{} {tag}\n", self.project))
            .expect("write content");
        let tar =
            Command::new("tar").arg("-C").arg(&ctx).args(["-c", "."]).output().expect("run tar");
        assert!(tar.status.success(), "tar failed");
        let mut import = Command::new(real_docker())
            .args(["import", "-", &image])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run docker import");
        {
            use std::io::Write;
            import.stdin.take().expect("stdin").write_all(&tar.stdout).expect("feed docker import");
        }
        let out = import.wait_with_output().expect("docker import");
        assert!(out.status.success(), "docker import {image} failed");
        self.images.lock().unwrap_or_else(|e| e.into_inner()).push(image.clone());
        let id = docker_out(&["image", "inspect", "--format", "{{.Id}}", &image]);
        let record = serde_json::json!({
            "image_id": id,
            "repository": format!("{}-splitter", self.project),
            "tags": [tag],
            "git_sha": sha,
            "dirty": dirty,
            "size_bytes": 64,
            "platform": "linux/amd64",
            "version": "0.1.0",
            "created": "2025-01-01T00:00:00Z",
        });
        let path = self.dir.join("xtask/image.json");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("xtask dir");
        std::fs::write(&path, record.to_string()).expect("write build record");
        id
    }

    /// Builds, pushes and signs (`cargo xtask sign --no-attestation`, as the workflow does
    /// before a deploy) an image for `sha` to `env`, whose signing key `up` created; returns its
    /// ECR digest.
    pub fn push(&self, sha: &str, env: &str) -> String {
        let digest = self.push_unsigned(sha, env);
        self.run(&["sign", "--env", env, "--tag", sha, "--no-attestation"]).assert_success();
        digest
    }

    /// Builds and pushes an image for `sha` to `env` without signing it; returns its ECR digest.
    pub fn push_unsigned(&self, sha: &str, env: &str) -> String {
        self.build(sha, false);
        let run = self.run(&["push", "--env", env]);
        run.assert_success();
        let out = run.stdout();
        out.lines()
            .find_map(|l| l.strip_prefix("digest  "))
            .unwrap_or_else(|| panic!("no digest line in:\n{out}"))
            .trim()
            .to_owned()
    }

    /// The AWS CLI against the stack; its JSON output.
    pub fn aws(&self, args: &[&str]) -> Value {
        let out = self.aws_run(args);
        assert!(out.success(), "`aws {}` failed:\n{}", args.join(" "), out.stderr());
        serde_json::from_str(&out.stdout()).unwrap_or_else(|e| {
            panic!("`aws {}` printed no JSON ({e}):\n{}", args.join(" "), out.stdout())
        })
    }

    pub fn aws_run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("aws");
        for (key, _) in std::env::vars() {
            if key.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.stack.env.iter().map(|(k, v)| (k, v))).args(args).args(["--output", "json"]);
        support::run(&mut cmd)
    }

    /// Tag → digest of every tagged image in a repository (AWS CLI).
    pub fn ecr_tags(&self, env: &str) -> Vec<(String, String)> {
        let images =
            self.aws(&["ecr", "describe-images", "--repository-name", &self.repository(env)]);
        let mut out = Vec::new();
        for image in images["imageDetails"].as_array().expect("imageDetails") {
            let digest = image["imageDigest"].as_str().expect("digest").to_owned();
            for tag in image["imageTags"].as_array().into_iter().flatten() {
                out.push((tag.as_str().expect("tag").to_owned(), digest.clone()));
            }
        }
        out.sort();
        out
    }

    pub fn digest_of(&self, env: &str, tag: &str) -> Option<String> {
        self.ecr_tags(env).into_iter().find(|(t, _)| t == tag).map(|(_, d)| d)
    }

    /// Every revision of the environment's job definition (AWS CLI), oldest first.
    pub fn revisions(&self, env: &str) -> Vec<Value> {
        let out = self.aws(&[
            "batch",
            "describe-job-definitions",
            "--job-definition-name",
            &self.job_definition(env),
        ]);
        let mut defs = out["jobDefinitions"].as_array().expect("jobDefinitions").clone();
        defs.sort_by_key(|d| d["revision"].as_i64());
        defs
    }

    pub fn revision(&self, env: &str, n: i64) -> Value {
        self.revisions(env)
            .into_iter()
            .find(|d| d["revision"].as_i64() == Some(n))
            .unwrap_or_else(|| panic!("no revision {n} of {}", self.job_definition(env)))
    }

    /// The image URI deploy writes on the local stack.
    pub fn image_uri(&self, env: &str, tag: &str) -> String {
        format!("{}/{}:{tag}", self.stack.registry(), self.repository(env))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Batch job containers moto made for this project's jobs: when a job's container fails
        // to start (the tiny images have no splitter), moto leaves it behind in "Created".
        let filter = format!("name=^/?{}-", self.project);
        let containers = best_effort(&["ps", "--all", "--quiet", "--filter", &filter]);
        for id in containers.split_whitespace() {
            best_effort(&["rm", "--force", id]);
        }
        let images = self.images.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let registry = self.stack.registry();
        for image in images {
            best_effort(&["image", "rm", "--force", &image]);
        }
        // The tags push added for the local registry.
        let listed = best_effort(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
        let prefix = format!("{registry}/{}-splitter-", self.project);
        for image in listed.lines().filter(|i| i.starts_with(&prefix)) {
            best_effort(&["image", "rm", "--force", image]);
        }
    }
}

/// A docker command for clean-up in `drop`: its stdout, or nothing when it fails. Never panics
/// (a panic in `drop` while a failing test unwinds would abort the whole test binary).
fn best_effort(args: &[&str]) -> String {
    Command::new(real_docker())
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// A job definition revision with what legitimately changes between revisions removed: ARN,
/// revision, status, the image and xtask's bookkeeping tags.
pub fn comparable(def: &Value) -> Value {
    let mut def = def.clone();
    let obj = def.as_object_mut().expect("object");
    for key in ["jobDefinitionArn", "revision", "status"] {
        obj.remove(key);
    }
    if let Some(c) = obj.get_mut("containerProperties").and_then(Value::as_object_mut) {
        c.remove("image");
    }
    if let Some(tags) = obj.get_mut("tags").and_then(Value::as_object_mut) {
        tags.retain(|k, _| !k.starts_with("splitter:"));
    }
    def
}

pub fn image_of(def: &Value) -> &str {
    def["containerProperties"]["image"].as_str().expect("image")
}

pub fn tag_of<'a>(def: &'a Value, key: &str) -> Option<&'a str> {
    def["tags"][key].as_str()
}

/// The Docker client the tests run directly (and the wrapper runs): `docker` on PATH.
pub fn real_docker() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("docker"))
        .find(|p| p.is_file())
        .expect("no docker client on PATH")
}

pub fn docker_out(args: &[&str]) -> String {
    let out = Command::new(real_docker()).args(args).output().expect("run docker");
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path).expect("metadata").permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).expect("chmod");
}

/// A 40-hex "git SHA" made of one repeated character.
pub fn sha(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}
