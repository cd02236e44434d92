//! `cargo xtask rollback` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Rollback {}

impl Rollback {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask rollback` is not implemented yet")
    }
}
