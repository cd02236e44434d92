//! `cargo xtask deploy` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Deploy {}

impl Deploy {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask deploy` is not implemented yet")
    }
}
