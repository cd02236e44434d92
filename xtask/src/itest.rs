//! `cargo xtask itest` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Itest {}

impl Itest {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask itest` is not implemented yet")
    }
}
