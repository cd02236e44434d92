//! `cargo xtask pipeline` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Pipeline {}

impl Pipeline {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask pipeline` is not implemented yet")
    }
}
