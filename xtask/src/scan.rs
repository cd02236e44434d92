//! `cargo xtask scan` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct Scan {}

impl Scan {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask scan` is not implemented yet")
    }
}
