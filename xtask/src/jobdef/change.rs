//! A new revision about to be registered ([`Change`]): the diff shown, then registered unless it
//! is a no-op, a dry run or an unconfirmed prod change; the outputs `deploy` and `rollback` share.

use anyhow::{Result, bail};
use aws_sdk_batch::types::JobDefinition;

use super::{Properties, find_latest_active};
use crate::aws::Aws;
use crate::config::{Env, Target};

/// What `deploy` and `rollback` share: how to confirm and whether to stop before registering.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub dry_run: bool,
    pub yes: bool,
    pub force: bool,
}

/// A new revision about to be registered.
#[derive(Debug)]
pub struct Change {
    /// The latest ACTIVE revision now.
    pub current: JobDefinition,
    /// The new revision's properties (bookkeeping tags included).
    pub next: Properties,
    /// What this change is, for the messages ("image abc…", "revision 3's properties").
    pub what: String,
}

/// The outcome of [`Change::apply`].
#[derive(Debug)]
pub enum Applied {
    /// Nothing registered: the latest revision already has these properties.
    Unchanged,
    /// `--dry-run`: the diff was shown, nothing registered.
    DryRun,
    Registered,
}

impl Change {
    /// Shows the diff, then registers unless it is a no-op, a dry run or an unconfirmed prod
    /// change. Prints the result and writes the `GITHUB_OUTPUT` lines.
    pub fn apply(self, aws: &Aws, target: &Target, rules: Rules) -> Result<Applied> {
        let name = target.job_definition();
        let current_rev = self.current.revision().unwrap_or(0);
        let current_arn = self.current.job_definition_arn().unwrap_or_default().to_owned();
        let current = Properties::from_described(&self.current);
        let changed = current.changed_fields(&self.next);
        let old_image = current.image().unwrap_or("(none)").to_owned();
        let new_image = self.next.image().unwrap_or("(none)").to_owned();

        println!("job definition {name} ({}, {})", target.env, target.region);
        if changed.is_empty() && !rules.force {
            println!(
                "  revision {current_rev} already runs {new_image} with these properties: nothing to register \
                 (--force registers a new revision anyway)"
            );
            crate::gha::write_outputs(&[
                ("job-definition-arn", &current_arn),
                ("job-definition-revision", &current_rev.to_string()),
                ("image-uri", &new_image),
            ])?;
            return Ok(Applied::Unchanged);
        }
        println!("  revision  {current_rev} → {} (new, {})", current_rev + 1, self.what);
        if old_image == new_image {
            println!("  image     {new_image} (unchanged)");
        } else {
            println!("  image     {old_image}");
            println!("         →  {new_image}");
        }
        let others: Vec<&String> =
            changed.iter().filter(|c| *c != "containerProperties.image").collect();
        if !others.is_empty() {
            let list: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
            println!("  also      {}", list.join(", "));
        } else if changed.is_empty() {
            println!("  also      nothing else (--force)");
        }

        if rules.dry_run {
            println!("dry run: nothing registered");
            return Ok(Applied::DryRun);
        }
        if target.env == Env::Prod && !rules.yes {
            bail!(
                "changing the prod job definition needs confirmation: check the diff above and rerun with --yes \
                 (in CI, the prod GitHub environment's reviewers approve and the workflow passes --yes)"
            );
        }

        let batch = aws.batch();
        let (arn, revision) = aws.block_on(self.next.register(&batch, &name))?;
        println!("registered revision {revision}: {arn}");
        if revision != current_rev + 1 {
            println!(
                "note: revision(s) {}..{} were registered by someone else between reading revision {current_rev} \
                 and registering this one (a concurrent deploy?); rollback from this revision goes back to {current_rev}",
                current_rev + 1,
                revision - 1
            );
        }
        let latest = aws.block_on(find_latest_active(&batch, &name))?;
        match latest {
            Some(l) if l.revision().unwrap_or(0) > revision => {
                let image = l.container_properties().and_then(|c| c.image()).unwrap_or("?");
                println!(
                    "warning: revision {} was registered after this one and is the latest: new jobs run it ({image}), \
                     not revision {revision}",
                    l.revision().unwrap_or(0)
                );
            }
            _ => println!(
                "new jobs run {new_image}; jobs already submitted keep the revision they started with"
            ),
        }
        crate::gha::write_outputs(&[
            ("job-definition-arn", &arn),
            ("job-definition-revision", &revision.to_string()),
            ("image-uri", &new_image),
        ])?;
        Ok(Applied::Registered)
    }
}
