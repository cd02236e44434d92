//! GitHub Actions files: step outputs (`name=value` lines appended to the file `GITHUB_OUTPUT`
//! names) and the job summary (Markdown appended to the file `GITHUB_STEP_SUMMARY` names).
//! Nothing happens outside Actions.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Appends `name=value` lines to `$GITHUB_OUTPUT` when it is set.
pub fn write_outputs(pairs: &[(&str, &str)]) -> Result<()> {
    let Some(path) = file_of("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let mut text = String::new();
    for (name, value) in pairs {
        if value.contains(['\n', '\r']) {
            bail!("output {name} has a line break: this is a bug in xtask");
        }
        text.push_str(&format!("{name}={value}\n"));
    }
    append("GITHUB_OUTPUT", &path, &text)
}

/// Appends Markdown to the job summary, `$GITHUB_STEP_SUMMARY`, when it is set.
pub fn append_step_summary(markdown: &str) -> Result<()> {
    match file_of("GITHUB_STEP_SUMMARY") {
        Some(path) => append("GITHUB_STEP_SUMMARY", &path, markdown),
        None => Ok(()),
    }
}

fn file_of(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|p| !p.is_empty()).map(PathBuf::from)
}

fn append(var: &str, path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {var} file {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {var} file {}", path.display()))
}
