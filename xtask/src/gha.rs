//! GitHub Actions step outputs: `name=value` lines appended to the file `GITHUB_OUTPUT` names
//! (nothing happens outside Actions).

use std::io::Write;

use anyhow::{Context, Result, bail};

/// Appends `name=value` lines to `$GITHUB_OUTPUT` when it is set.
pub fn write_outputs(pairs: &[(&str, &str)]) -> Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut text = String::new();
    for (name, value) in pairs {
        if value.contains(['\n', '\r']) {
            bail!("output {name} has a line break: this is a bug in xtask");
        }
        text.push_str(&format!("{name}={value}\n"));
    }
    let path = std::path::PathBuf::from(path);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open GITHUB_OUTPUT file {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write GITHUB_OUTPUT file {}", path.display()))
}
