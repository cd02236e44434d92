//! `cargo xtask push` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Push {}

impl Push {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask push` is not implemented yet")
    }
}
