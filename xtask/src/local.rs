//! `cargo xtask local` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Local {}

impl Local {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask local` is not implemented yet")
    }
}
