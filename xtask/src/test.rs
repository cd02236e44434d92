//! `cargo xtask test` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Test {}

impl Test {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask test` is not implemented yet")
    }
}
