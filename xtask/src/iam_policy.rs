//! `cargo xtask iam-policy` (not implemented yet).

use anyhow::{Result, bail};
use clap::Args;
use xshell::Shell;

#[derive(Debug, Args)]
pub struct IamPolicy {}

impl IamPolicy {
    pub fn run(self, _sh: &Shell) -> Result<()> {
        bail!("`cargo xtask iam-policy` is not implemented yet")
    }
}
