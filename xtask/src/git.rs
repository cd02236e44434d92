//! What git says about the work tree: the commit an image is built from and whether the tree
//! has changes that commit does not contain.

use std::path::Path;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The commit a build starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Full SHA of HEAD.
    pub sha: String,
    /// Uncommitted changes, staged or not, or untracked files that are not ignored.
    pub dirty: bool,
    /// Committer date of HEAD in UTC, RFC 3339 (`2025-01-31T12:00:00Z`): the reproducible stand-in
    /// for a build date (as SOURCE_DATE_EPOCH).
    pub commit_time: String,
}

impl Revision {
    /// Reads HEAD of the work tree at `dir`.
    pub fn read(sh: &Shell, dir: &Path) -> Result<Revision> {
        let _cd = sh.push_dir(dir);
        let inside = cmd!(sh, "git rev-parse --is-inside-work-tree").quiet().ignore_stderr().read();
        if inside.ok().as_deref() != Some("true") {
            bail!(
                "{} is not a git work tree: images are tagged with the commit SHA, so build from a git clone",
                dir.display()
            );
        }
        let sha = cmd!(sh, "git rev-parse --verify HEAD")
            .quiet()
            .ignore_stderr()
            .read()
            .context("the repository has no commit yet: commit your work, then build")?;
        let status = cmd!(sh, "git status --porcelain=v1 --untracked-files=normal")
            .quiet()
            .read()
            .context("`git status` failed: check that git works in this clone")?;
        let commit_time =
            cmd!(sh, "git show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD")
                .env("TZ", "UTC")
                .quiet()
                .read()
                .context("`git show` failed: check that git works in this clone")?;
        Ok(Revision { sha, dirty: !status.trim().is_empty(), commit_time })
    }

    /// The image tag for this revision: the full SHA, `-dirty` when the tree has changes.
    pub fn tag(&self) -> String {
        if self.dirty { format!("{}-dirty", self.sha) } else { self.sha.clone() }
    }
}

/// The first 7 characters of a SHA (the deployment guide's short-SHA tag).
pub fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (Shell, std::path::PathBuf) {
        let sh = Shell::new().expect("shell");
        let dir = std::env::temp_dir().join(format!(
            "xtask-git-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        sh.change_dir(&dir);
        cmd!(sh, "git init -q").run().expect("git init");
        cmd!(sh, "git config user.email test@example.com").run().expect("git config");
        cmd!(sh, "git config user.name test").run().expect("git config");
        (sh, dir)
    }

    #[test]
    fn clean_and_dirty_trees() {
        let (sh, dir) = repo();
        std::fs::write(dir.join("a.txt"), "one").expect("write");
        assert!(Revision::read(&sh, &dir).is_err(), "no commit yet must be an error");

        cmd!(sh, "git add a.txt").run().expect("git add");
        cmd!(sh, "git commit -q -m one").run().expect("git commit");
        let clean = Revision::read(&sh, &dir).expect("read");
        assert_eq!(clean.sha.len(), 40);
        assert!(!clean.dirty);
        assert_eq!(clean.tag(), clean.sha);
        assert_eq!(short_sha(&clean.sha), &clean.sha[..7]);
        assert!(
            clean.commit_time.len() == 20 && clean.commit_time.ends_with('Z'),
            "RFC 3339 UTC: {}",
            clean.commit_time
        );

        // An untracked file makes the tree dirty (it would be in a build context).
        std::fs::write(dir.join("b.txt"), "new").expect("write");
        let untracked = Revision::read(&sh, &dir).expect("read");
        assert!(untracked.dirty);
        assert_eq!(untracked.tag(), format!("{}-dirty", clean.sha));

        // An ignored one does not.
        std::fs::write(dir.join(".gitignore"), "b.txt\n").expect("write");
        cmd!(sh, "git add .gitignore").run().expect("git add");
        cmd!(sh, "git commit -q -m ignore").run().expect("git commit");
        let ignored = Revision::read(&sh, &dir).expect("read");
        assert!(!ignored.dirty);
        assert_ne!(ignored.sha, clean.sha);

        // A modified tracked file does.
        std::fs::write(dir.join("a.txt"), "two").expect("write");
        assert!(Revision::read(&sh, &dir).expect("read").dirty);

        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn outside_a_repository_says_so() {
        let sh = Shell::new().expect("shell");
        let dir = std::env::temp_dir().join(format!("xtask-git-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let err = Revision::read(&sh, &dir).expect_err("not a repository");
        assert!(err.to_string().contains("not a git work tree"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
