//! `cargo xtask`: builds, scans, pushes, deploys and integration-tests the splitter container.
//!
//! One module per command; every command is
//! `impl Cmd { pub fn run(self, sh: &Shell) -> Result<()> }` with a single [`xshell::Shell`]
//! rooted at the workspace. Every process goes through xshell and every AWS call through the Rust
//! SDK, so a laptop and CI run the same steps. Pointing `AWS_ENDPOINT_URL` at the local stack
//! (`cargo xtask local up`) is the only difference between local and real AWS.
//!
//! This library is the whole of xtask; the `xtask` binary (`main.rs`) only parses the command line
//! (`flags.rs`) and runs the command. The command modules are public for it, [`aws`],
//! [`proc`] and [`scan::trivy_db`] / [`scan::mirror`] for the integration tests (`xtask/tests/`),
//! which talk to the local stack, wait for its processes and build Trivy DBs with the same code;
//! the rest stays inside the crate.

// The docs are for xtask's contributors, and link into the `pub(crate)` helpers on purpose
// (`cargo doc -p xtask --document-private-items` renders those links).
#![allow(rustdoc::private_intra_doc_links)]

pub mod aws;
pub(crate) mod build_record;
pub(crate) mod config;
pub mod deploy;
pub(crate) mod docker;
pub(crate) mod dry_run;
pub(crate) mod ecr;
pub(crate) mod gha;
pub(crate) mod git;
pub mod iam_policy;
pub mod image;
pub mod itest;
pub(crate) mod jobdef;
pub mod local;
pub(crate) mod lookup;
pub mod pipeline;
pub mod proc;
pub mod push;
pub mod rollback;
pub mod scan;
pub mod sign;
pub mod test;
pub(crate) mod time;
pub(crate) mod tools;

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// `path` for display: relative to the workspace when inside it (shorter messages), else as is.
pub fn display_path(path: &Path) -> String {
    path.strip_prefix(project_root()).unwrap_or(path).display().to_string()
}

/// Where xtask keeps its state and reports: `target/xtask/` (or under `CARGO_TARGET_DIR`).
pub fn xtask_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    target.join("xtask")
}
