//! `cargo xtask scan`: scan the built image with Trivy, write SARIF + SBOM, gate on severity.
//!
//! Trivy runs once, `--format json` with every severity and every package; the SARIF report
//! (all findings, for GitHub's Security tab) and the CycloneDX SBOM are converted from that JSON
//! with `trivy convert`, and the gate reads the same JSON here. So a LOW finding shows up in
//! SARIF but never fails the build, a fixable HIGH always does, and a Trivy failure (no DB, a
//! broken DB, no image) is never mistaken for a gate result: Trivy's exit code only says
//! whether Trivy worked.
//!
//! Reports (`target/xtask/scan/`): `trivy.json`, `trivy.sarif`, `sbom.cdx.json`, `summary.md`,
//! `trivy.log`. Stale reports are removed first and each appears only once complete.
//!
//! Trivy's command lines, running it and its failures explained are [`trivy`]'s; reading its JSON
//! and the gate are [`report`]'s.

pub mod mirror;
pub mod report;
mod trivy;
pub mod trivy_db;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use xshell::Shell;

use crate::build_record::BuildRecord;
use crate::display_path;
use crate::docker::Docker;
use crate::dry_run::command_line;
use report::{Gate, Report};
use trivy::{condense, explain_failure, trivy_version};

/// Report file names under `target/xtask/scan/`.
pub const JSON_REPORT: &str = "trivy.json";
pub const SARIF_REPORT: &str = "trivy.sarif";
pub const SBOM: &str = "sbom.cdx.json";
pub const SUMMARY: &str = "summary.md";
pub const TRIVY_LOG: &str = "trivy.log";

/// `--severity`'s default: the gate.
pub(crate) const DEFAULT_SEVERITY: &str = "CRITICAL,HIGH";
/// The environment variables of `--cache-dir`, `--db-repository` and `--trivy`.
const CACHE_DIR_VAR: &str = "TRIVY_CACHE_DIR";
const DB_REPOSITORY_VAR: &str = "TRIVY_DB_REPOSITORY";
const TRIVY_VAR: &str = "TRIVY";
/// `--trivy`'s default.
pub(crate) const DEFAULT_TRIVY: &str = "trivy";

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cargo xtask scan                                  # the image `cargo xtask image` built
  cargo xtask scan --image debian:trixie --severity CRITICAL
  cargo xtask scan --skip-db-update --offline-scan  # air-gapped: DB already in the cache dir
  cargo xtask scan --db-repository 127.0.0.1:5000/trivy-db:2   # DB from a local mirror

Exit status: 0 when the gate passes; non-zero when it fails (the gating CVEs are listed) or
when Trivy cannot scan (the error says why; see target/xtask/scan/trivy.log).")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Scan {
    #[command(subcommand)]
    action: Option<Action>,
    /// Local Docker image to scan [default: the image in target/xtask/image.json, written by
    /// `cargo xtask image`].
    #[arg(long, value_name = "REF")]
    pub(crate) image: Option<String>,
    /// Severities that fail the gate, comma-separated (UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL).
    /// The SARIF report always lists every severity.
    #[arg(long, value_name = "LIST", default_value = DEFAULT_SEVERITY)]
    pub(crate) severity: String,
    /// Also fail on vulnerabilities that have no fixed version yet (ignored by default).
    #[arg(long)]
    pub(crate) include_unfixed: bool,
    /// Trivy ignore file: CVE ids accepted as risks, one per line [default:
    /// container/.trivyignore].
    #[arg(long, value_name = "PATH")]
    pub(crate) ignorefile: Option<PathBuf>,
    /// Trivy cache directory: the vulnerability DB (DIR/db) and the layer cache [default:
    /// target/xtask/trivy-cache].
    #[arg(long, env = CACHE_DIR_VAR, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Where to download the vulnerability DB from (an OCI repository, e.g. a mirror
    /// `127.0.0.1:5000/trivy-db:2`) [default: Trivy's, ghcr.io/aquasecurity/trivy-db:2 and
    /// mirror.gcr.io; they are rate-limited].
    #[arg(long, env = DB_REPOSITORY_VAR, value_name = "REPO")]
    pub(crate) db_repository: Option<String>,
    /// Use the DB already in the cache directory; never download one.
    #[arg(long)]
    pub(crate) skip_db_update: bool,
    /// Make no network requests while scanning.
    #[arg(long)]
    pub(crate) offline_scan: bool,
    /// The Trivy binary.
    #[arg(long, env = TRIVY_VAR, value_name = "PATH", default_value = DEFAULT_TRIVY)]
    pub(crate) trivy: PathBuf,
    /// Print the Trivy commands instead of running them.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Put a generated vulnerability DB in a cache dir or a local registry (air-gapped runs).
    ///
    /// The DB holds no real advisories, only a LOW marker (XTASK-OFFLINE-DB on base-files) that
    /// shows in reports that the scan used it. It goes into a Trivy cache directory (replacing
    /// any DB there) and/or a local registry as REGISTRY/trivy-db:2. With internet, mirror the
    /// real DB instead: `oras copy ghcr.io/aquasecurity/trivy-db:2 REGISTRY/trivy-db:2`.
    OfflineDb(OfflineDb),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Then scan with it:
  cargo xtask scan --cache-dir DIR --skip-db-update --offline-scan
  cargo xtask scan --db-repository REGISTRY/trivy-db:2")]
struct OfflineDb {
    /// Registry (`host:port`, plain HTTP, e.g. 127.0.0.1:5000) to push REGISTRY/trivy-db:2 to.
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "cache_dir")]
    registry: Option<String>,
    /// Trivy cache directory to install the DB into (as DIR/db).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

impl OfflineDb {
    fn run(self, sh: &Shell) -> Result<()> {
        let db = trivy_db::TrivyDb::offline();
        if let Some(dir) = &self.cache_dir {
            let dir = sh.current_dir().join(dir);
            db.install_in_cache(&dir)?;
            println!("Offline vulnerability DB written to {}", display_path(&dir.join("db")));
        }
        if let Some(registry) = &self.registry {
            let tmp = sh.create_temp_dir().context("cannot create a temporary directory")?;
            db.write(tmp.path())?;
            let reference = mirror::publish_db(sh, registry, tmp.path())?;
            println!("Offline vulnerability DB published as {reference}");
        }
        Ok(())
    }
}

impl Scan {
    /// `cargo xtask scan [--db-repository REPO]` without other flags, as the pipeline runs it:
    /// the defaults, and the environment variables the flags read (`TRIVY`, `TRIVY_CACHE_DIR`,
    /// `TRIVY_DB_REPOSITORY`; an empty one counts as unset) where no value is given.
    pub(crate) fn with_db_repository(db_repository: Option<String>) -> Scan {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Scan {
            action: None,
            image: None,
            severity: DEFAULT_SEVERITY.to_owned(),
            include_unfixed: false,
            ignorefile: None,
            cache_dir: var(CACHE_DIR_VAR).map(PathBuf::from),
            db_repository: db_repository
                .or_else(|| var(DB_REPOSITORY_VAR).map(|v| v.to_string_lossy().into_owned())),
            skip_db_update: false,
            offline_scan: false,
            trivy: var(TRIVY_VAR).map_or_else(|| DEFAULT_TRIVY.into(), PathBuf::from),
            dry_run: false,
        }
    }

    pub fn run(self, sh: &Shell) -> Result<()> {
        if let Some(Action::OfflineDb(cmd)) = self.action {
            return cmd.run(sh);
        }
        // 1. What to scan and how: the gate, the ignore file, the image, the directories.
        let severities = Gate::parse_severities(&self.severity).map_err(anyhow::Error::msg)?;
        let gate = Gate { severities, include_unfixed: self.include_unfixed };
        let ignorefile = self.ignorefile(sh)?;
        let image = self.image()?;
        let xtask_dir = crate::xtask_dir();
        let out_dir = xtask_dir.join("scan");
        let cache_dir = match &self.cache_dir {
            Some(dir) => sh.current_dir().join(dir),
            None => xtask_dir.join("trivy-cache"),
        };
        let inputs = Inputs { image, ignorefile, cache_dir, out_dir };
        if self.dry_run {
            self.print_commands(sh, &inputs);
            return Ok(());
        }
        let Inputs { image, ignorefile, cache_dir, out_dir } = &inputs;

        // 2. Trivy runs, Docker has the image; stale reports go.
        let version = trivy_version(sh, &self.trivy)?;
        check_docker(sh, image)?;
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        for file in [JSON_REPORT, SARIF_REPORT, SBOM, SUMMARY, TRIVY_LOG] {
            remove_if_exists(&out_dir.join(file))?;
        }

        // 3. The one Trivy run: the JSON report, read here.
        eprintln!("Scanning {image} with Trivy {version} (DB cache: {})", display_path(cache_dir));
        let started = Instant::now();
        let report = self.scan_to_json(sh, &inputs)?;

        // 4. SARIF and the SBOM, converted from that JSON.
        self.convert_reports(sh, out_dir)?;

        // 5. The summary, then the gate.
        let ignore_path = display_path(ignorefile);
        print!("{}", report::summary_text(&report, &gate, &ignore_path));
        println!(
            "Reports in {}: {JSON_REPORT}, {SARIF_REPORT} (all findings), {SBOM} ({:.1} s)",
            display_path(out_dir),
            started.elapsed().as_secs_f64()
        );
        let markdown = report::summary_markdown(&report, &gate, &ignore_path);
        std::fs::write(out_dir.join(SUMMARY), &markdown)
            .with_context(|| format!("cannot write {}", out_dir.join(SUMMARY).display()))?;
        crate::gha::append_step_summary(&markdown)?;
        if let Some(verdict) = gate.verdict(&report) {
            bail!(
                "vulnerability gate failed: {verdict} in {image} (listed above, SARIF in {}): \
                 update the base image or packages, or accept a CVE in {}",
                display_path(&out_dir.join(SARIF_REPORT)),
                ignore_path
            );
        }
        Ok(())
    }

    /// Step 1: the ignore file, which must exist.
    fn ignorefile(&self, sh: &Shell) -> Result<PathBuf> {
        let ignorefile = match &self.ignorefile {
            Some(path) => sh.current_dir().join(path),
            None => crate::project_root().join("container").join(".trivyignore"),
        };
        if !ignorefile.is_file() {
            bail!(
                "ignore file {} not found: create it (one CVE id per line, may be empty) or \
                 pass --ignorefile",
                ignorefile.display()
            );
        }
        Ok(ignorefile)
    }

    /// Step 1: the image, `--image` or the build record's.
    fn image(&self) -> Result<String> {
        Ok(match &self.image {
            Some(image) => image.clone(),
            None => {
                let record = BuildRecord::load()?;
                if record.tags.is_empty() { record.image_id } else { record.image_ref() }
            }
        })
    }

    /// `--dry-run`: the Trivy commands, not run (bare command lines: they are this command's
    /// output).
    fn print_commands(&self, sh: &Shell, inputs: &Inputs) {
        let json = inputs.out_dir.join(JSON_REPORT);
        println!("{}", command_line(self.scan_cmd(sh, inputs, &json)));
        for (format, file) in [("sarif", SARIF_REPORT), ("cyclonedx", SBOM)] {
            let output = inputs.out_dir.join(file);
            println!("{}", command_line(self.convert_cmd(sh, format, &output, &json)));
        }
    }

    /// Step 3: runs Trivy into a partial JSON report (its stderr in the log), reads the report
    /// and only then gives it its name. A failed run is explained and left in the step summary.
    fn scan_to_json(&self, sh: &Shell, inputs: &Inputs) -> Result<Report> {
        let Inputs { image, cache_dir, out_dir, .. } = inputs;
        let json_path = out_dir.join(JSON_REPORT);
        let partial = partial_path(&json_path);
        let scan = self.scan_cmd(sh, inputs, &partial);
        let out = self.run_to_partial(scan, &partial)?;
        let log_path = out_dir.join(TRIVY_LOG);
        std::fs::write(&log_path, &out.stderr)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = explain_failure(&stderr, self, cache_dir, image, &log_path);
            let markdown = format!("### ⚠️ Trivy could not scan `{image}`\n\n{why}\n");
            crate::gha::append_step_summary(&markdown)?;
            bail!("{why}");
        }
        let text = std::fs::read_to_string(&partial)
            .with_context(|| format!("Trivy wrote no report (see {})", display_path(&log_path)))?;
        let report = Report::from_trivy_json(&text).with_context(|| {
            format!("cannot read {} (see {})", display_path(&partial), display_path(&log_path))
        })?;
        std::fs::rename(&partial, &json_path)
            .with_context(|| format!("cannot write {}", json_path.display()))?;
        Ok(report)
    }

    /// Step 4: SARIF and the CycloneDX SBOM from the JSON report, each named once complete.
    fn convert_reports(&self, sh: &Shell, out_dir: &Path) -> Result<()> {
        let json_path = out_dir.join(JSON_REPORT);
        for (format, file) in [("sarif", SARIF_REPORT), ("cyclonedx", SBOM)] {
            let path = out_dir.join(file);
            let partial = partial_path(&path);
            let convert = self.convert_cmd(sh, format, &partial, &json_path);
            let out = self.run_to_partial(convert, &partial)?;
            if !out.status.success() {
                bail!(
                    "`trivy convert --format {format}` failed: {}",
                    condense(&String::from_utf8_lossy(&out.stderr))
                );
            }
            std::fs::rename(&partial, &path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// What step 1 resolved: the image to scan, the ignore file, Trivy's cache directory and the
/// reports' directory.
#[derive(Debug)]
struct Inputs {
    image: String,
    ignorefile: PathBuf,
    cache_dir: PathBuf,
    out_dir: PathBuf,
}

/// The Docker daemon answers and has `image`.
fn check_docker(sh: &Shell, image: &str) -> Result<()> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into());
    let docker = Docker::detect(sh)
        .context("docker CLI not found on PATH: install Docker (apt-get install docker.io)")?;
    if docker.server_version(sh).is_err() {
        bail!(
            "Docker daemon not reachable at {host}: start it (`sudo systemctl start docker`, or \
             `dockerd &`) or fix DOCKER_HOST, then rerun"
        );
    }
    if !docker.image_exists(sh, image).context("cannot run docker")? {
        bail!(
            "image {image} is not in the local Docker daemon: build it with `cargo xtask image` \
             (or pass --image with a local image)"
        );
    }
    Ok(())
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove stale {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_paths_keep_the_directory() {
        assert_eq!(partial_path(Path::new("/a/trivy.json")), Path::new("/a/trivy.json.partial"));
    }
}
