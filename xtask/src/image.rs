//! `cargo xtask image` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Image {}

impl Image {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask image` is not implemented yet")
    }
}
