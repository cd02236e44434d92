//! Batch job definition revisions: finding them (the latest ACTIVE one, every one: for `deploy`,
//! `rollback`, `itest`, `pipeline` and the local stack), the registrable properties of a
//! described revision, the change between two revisions, and registering one (with the diff,
//! `--dry-run`, the prod confirmation and the outputs `deploy` and `rollback` share).
//!
//! A new revision is built field by field from `DescribeJobDefinitions` ([`Properties`]): every
//! field `RegisterJobDefinition` accepts is carried over, the read-only ones (ARN, revision,
//! status, `containerOrchestrationType`) are dropped. Feeding a describe output back as is fails
//! (aws-cli#5882); a unit test below fails when the SDK grows a field nobody decided about.
//!
//! Each revision xtask registers carries tags saying where it came from:
//! [`TAG_PREVIOUS_REVISION`] (the revision that was the latest ACTIVE one when it was registered:
//! where `rollback` goes back to), [`TAG_IMAGE_TAG`] and, for a rollback, [`TAG_SOURCE_REVISION`].

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use aws_sdk_batch::types::{
    ConsumableResourceProperties, ContainerProperties, EcsProperties, EksProperties, JobDefinition,
    JobDefinitionType, JobTimeout, NodeProperties, PlatformCapability, RetryStrategy,
};

use crate::aws::{Aws, sdk_error};
use crate::config::{Env, Target};

/// The revision that was the latest ACTIVE one when this revision was registered.
pub const TAG_PREVIOUS_REVISION: &str = "splitter:previous-revision";
/// The image tag this revision runs (the git SHA).
pub const TAG_IMAGE_TAG: &str = "splitter:image-tag";
/// For a rollback: the revision whose properties this one re-registers.
pub const TAG_SOURCE_REVISION: &str = "splitter:source-revision";
/// xtask's bookkeeping tags: rewritten on every registration, ignored when comparing.
pub const OUR_TAGS: [&str; 3] = [TAG_PREVIOUS_REVISION, TAG_IMAGE_TAG, TAG_SOURCE_REVISION];

/// Everything `RegisterJobDefinition` accepts besides the name, as a described revision has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Properties {
    pub r#type: Option<JobDefinitionType>,
    pub parameters: Option<HashMap<String, String>>,
    pub scheduling_priority: Option<i32>,
    pub container_properties: Option<ContainerProperties>,
    pub node_properties: Option<NodeProperties>,
    pub retry_strategy: Option<RetryStrategy>,
    pub propagate_tags: Option<bool>,
    pub timeout: Option<JobTimeout>,
    pub tags: Option<HashMap<String, String>>,
    pub platform_capabilities: Option<Vec<PlatformCapability>>,
    pub eks_properties: Option<EksProperties>,
    pub ecs_properties: Option<EcsProperties>,
    pub consumable_resource_properties: Option<ConsumableResourceProperties>,
}

/// `JobDefinition` fields carried into the next revision (as `RegisterJobDefinition` names them).
#[cfg(test)]
const CARRIED: [&str; 13] = [
    "type",
    "parameters",
    "scheduling_priority",
    "container_properties",
    "node_properties",
    "retry_strategy",
    "propagate_tags",
    "timeout",
    "tags",
    "platform_capabilities",
    "eks_properties",
    "ecs_properties",
    "consumable_resource_properties",
];
/// `JobDefinition` fields that are read-only (or the name, which is the register call's key).
#[cfg(test)]
const DROPPED: [&str; 5] = [
    "job_definition_name",
    "job_definition_arn",
    "revision",
    "status",
    "container_orchestration_type",
];

impl Properties {
    /// The registrable properties of a described revision, field by field.
    pub fn from_described(def: &JobDefinition) -> Properties {
        Properties {
            r#type: def.r#type().map(JobDefinitionType::from),
            parameters: def.parameters().cloned(),
            scheduling_priority: def.scheduling_priority(),
            container_properties: def.container_properties().cloned(),
            node_properties: def.node_properties().cloned(),
            retry_strategy: def.retry_strategy().cloned(),
            propagate_tags: def.propagate_tags(),
            timeout: def.timeout().cloned(),
            tags: def.tags().cloned(),
            platform_capabilities: (!def.platform_capabilities().is_empty())
                .then(|| def.platform_capabilities().to_vec()),
            eks_properties: def.eks_properties().cloned(),
            ecs_properties: def.ecs_properties().cloned(),
            consumable_resource_properties: def.consumable_resource_properties().cloned(),
        }
    }

    /// The container image (`containerProperties.image`).
    pub fn image(&self) -> Option<&str> {
        self.container_properties.as_ref().and_then(|c| c.image())
    }

    /// The same properties running `image`. Only container job definitions
    /// (`containerProperties`) are supported: the splitter is one.
    pub fn with_image(mut self, name: &str, image: &str) -> Result<Properties> {
        let Some(container) = self.container_properties.as_mut() else {
            bail!(
                "job definition {name} has no containerProperties (a multi-node, EKS or ECS job definition): \
                 xtask deploys container job definitions only; fix the Terraform definition"
            );
        };
        container.image = Some(image.to_owned());
        Ok(self)
    }

    /// Sets one of xtask's bookkeeping tags.
    pub fn with_tag(mut self, key: &str, value: impl Into<String>) -> Properties {
        self.tags.get_or_insert_with(HashMap::new).insert(key.to_owned(), value.into());
        self
    }

    /// Without xtask's bookkeeping tags: what two revisions are compared on.
    pub fn without_our_tags(&self) -> Properties {
        let mut out = self.clone();
        if let Some(tags) = out.tags.as_mut() {
            tags.retain(|k, _| !OUR_TAGS.contains(&k.as_str()));
            if tags.is_empty() {
                out.tags = None;
            }
        }
        out
    }

    /// The value of a tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.as_ref().and_then(|t| t.get(key)).map(String::as_str)
    }

    /// Each comparable field with its value (containerProperties field by field).
    fn fields(&self) -> Vec<(String, String)> {
        let p = self.without_our_tags();
        let mut out = vec![
            ("type".to_owned(), format!("{:?}", p.r#type)),
            ("parameters".to_owned(), format!("{:?}", sorted(&p.parameters))),
            ("schedulingPriority".to_owned(), format!("{:?}", p.scheduling_priority)),
            ("nodeProperties".to_owned(), format!("{:?}", p.node_properties)),
            ("retryStrategy".to_owned(), format!("{:?}", p.retry_strategy)),
            ("propagateTags".to_owned(), format!("{:?}", p.propagate_tags)),
            ("timeout".to_owned(), format!("{:?}", p.timeout)),
            ("tags".to_owned(), format!("{:?}", sorted(&p.tags))),
            ("platformCapabilities".to_owned(), format!("{:?}", p.platform_capabilities)),
            ("eksProperties".to_owned(), format!("{:?}", p.eks_properties)),
            ("ecsProperties".to_owned(), format!("{:?}", p.ecs_properties)),
            (
                "consumableResourceProperties".to_owned(),
                format!("{:?}", p.consumable_resource_properties),
            ),
        ];
        match &p.container_properties {
            None => out.push(("containerProperties".to_owned(), "None".to_owned())),
            Some(c) => {
                let sub =
                    |name: &str, value: String| (format!("containerProperties.{name}"), value);
                out.extend([
                    sub("image", format!("{:?}", c.image)),
                    sub("command", format!("{:?}", c.command)),
                    sub("jobRoleArn", format!("{:?}", c.job_role_arn)),
                    sub("executionRoleArn", format!("{:?}", c.execution_role_arn)),
                    sub("resourceRequirements", format!("{:?}", c.resource_requirements)),
                    // Deprecated in favour of resourceRequirements, but still registrable.
                    #[allow(deprecated)]
                    sub("vcpus", format!("{:?}", c.vcpus)),
                    #[allow(deprecated)]
                    sub("memory", format!("{:?}", c.memory)),
                    sub("environment", format!("{:?}", c.environment)),
                    sub("secrets", format!("{:?}", c.secrets)),
                    sub("volumes", format!("{:?}", c.volumes)),
                    sub("mountPoints", format!("{:?}", c.mount_points)),
                    sub("linuxParameters", format!("{:?}", c.linux_parameters)),
                    sub("logConfiguration", format!("{:?}", c.log_configuration)),
                    sub("readonlyRootFilesystem", format!("{:?}", c.readonly_root_filesystem)),
                    sub("privileged", format!("{:?}", c.privileged)),
                    sub("ulimits", format!("{:?}", c.ulimits)),
                    sub("user", format!("{:?}", c.user)),
                    sub("instanceType", format!("{:?}", c.instance_type)),
                    sub("networkConfiguration", format!("{:?}", c.network_configuration)),
                    sub(
                        "fargatePlatformConfiguration",
                        format!("{:?}", c.fargate_platform_configuration),
                    ),
                    sub("ephemeralStorage", format!("{:?}", c.ephemeral_storage)),
                    sub("runtimePlatform", format!("{:?}", c.runtime_platform)),
                    sub("repositoryCredentials", format!("{:?}", c.repository_credentials)),
                    sub("enableExecuteCommand", format!("{:?}", c.enable_execute_command)),
                    // Anything this list does not name yet.
                    ("containerProperties".to_owned(), format!("{c:?}")),
                ]);
            }
        }
        out
    }

    /// The names of the fields that differ (xtask's bookkeeping tags ignored).
    pub fn changed_fields(&self, other: &Properties) -> Vec<String> {
        let (a, b) = (self.fields(), other.fields());
        let value = |fields: &[(String, String)], name: &str| {
            fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        };
        let mut changed: Vec<String> = Vec::new();
        for (name, _) in a.iter().chain(&b) {
            if !changed.contains(name) && value(&a, name) != value(&b, name) {
                changed.push(name.clone());
            }
        }
        // The whole-container entry only when no named field explains the difference.
        if changed.iter().any(|c| c.starts_with("containerProperties.")) {
            changed.retain(|c| c != "containerProperties");
        }
        changed
    }

    /// The `RegisterJobDefinition` request for these properties, field by field.
    fn request(
        self,
        batch: &aws_sdk_batch::Client,
        name: &str,
    ) -> aws_sdk_batch::operation::register_job_definition::builders::RegisterJobDefinitionFluentBuilder
    {
        batch
            .register_job_definition()
            .job_definition_name(name)
            .set_type(self.r#type)
            .set_parameters(self.parameters)
            .set_scheduling_priority(self.scheduling_priority)
            .set_container_properties(self.container_properties)
            .set_node_properties(self.node_properties)
            .set_retry_strategy(self.retry_strategy)
            .set_propagate_tags(self.propagate_tags)
            .set_timeout(self.timeout)
            .set_tags(self.tags)
            .set_platform_capabilities(self.platform_capabilities)
            .set_eks_properties(self.eks_properties)
            .set_ecs_properties(self.ecs_properties)
            .set_consumable_resource_properties(self.consumable_resource_properties)
    }

    /// Registers a new revision with these properties; returns its ARN and number.
    pub async fn register(
        self,
        batch: &aws_sdk_batch::Client,
        name: &str,
    ) -> Result<(String, i32)> {
        let out = self.request(batch, name).send().await.map_err(sdk_error).with_context(|| {
            format!(
                "cannot register a new revision of job definition {name}: check that the role has \
                 batch:RegisterJobDefinition and iam:PassRole on the job's roles"
            )
        })?;
        let arn = out.job_definition_arn().unwrap_or_default().to_owned();
        let revision = out.revision().context("Batch returned no revision number")?;
        Ok((arn, revision))
    }
}

fn sorted(map: &Option<HashMap<String, String>>) -> Option<Vec<(&String, &String)>> {
    map.as_ref().map(|m| {
        let mut v: Vec<_> = m.iter().collect();
        v.sort();
        v
    })
}

/// The seed's "No active job definition found", with the name and what to do.
pub fn no_active_error(target: &Target) -> anyhow::Error {
    anyhow::anyhow!(
        "No active job definition found named {} in {}: run Terraform apply first to create it (locally: \
         `cargo xtask local up --env {}`), and check that the project ({}, --project/PROJECT_NAME) and \
         --env match the name {{project}}-splitter-job-{{env}}",
        target.job_definition(),
        target.region,
        target.env,
        target.project
    )
}

/// The latest ACTIVE revision, or the seed's error.
pub async fn latest_active(
    batch: &aws_sdk_batch::Client,
    target: &Target,
) -> Result<JobDefinition> {
    find_latest_active(batch, &target.job_definition())
        .await?
        .ok_or_else(|| no_active_error(target))
}

/// The latest ACTIVE revision of a job definition, if any.
pub async fn find_latest_active(
    batch: &aws_sdk_batch::Client,
    name: &str,
) -> Result<Option<JobDefinition>> {
    let mut pages = batch
        .describe_job_definitions()
        .job_definition_name(name)
        .status("ACTIVE")
        .into_paginator()
        .send();
    let mut latest: Option<JobDefinition> = None;
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("cannot describe job definition {name}"))?;
        for def in page.job_definitions() {
            if latest.as_ref().is_none_or(|l| def.revision() > l.revision()) {
                latest = Some(def.clone());
            }
        }
    }
    Ok(latest)
}

/// Every revision of the job definition, ACTIVE and INACTIVE, oldest first.
pub async fn all_revisions(
    batch: &aws_sdk_batch::Client,
    name: &str,
) -> Result<Vec<JobDefinition>> {
    let mut pages =
        batch.describe_job_definitions().job_definition_name(name).into_paginator().send();
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(sdk_error)
            .with_context(|| format!("cannot describe job definition {name}"))?;
        all.extend(page.job_definitions().iter().cloned());
    }
    all.sort_by_key(|d| d.revision().unwrap_or(0));
    Ok(all)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_batch::types::{
        EvaluateOnExit, Host, KeyValuePair, LinuxParameters, LogConfiguration, LogDriver,
        MountPoint, ResourceRequirement, ResourceType, RetryAction, Tmpfs, Ulimit, Volume,
    };

    /// Field names of a generated SDK struct, from its `Debug` output.
    fn debug_fields(debug: &str) -> Vec<String> {
        let inner = debug.split_once('{').map(|(_, r)| r).unwrap_or("");
        inner
            .trim_end_matches(['}', ' '])
            .split(", ")
            .filter_map(|f| f.split_once(':').map(|(k, _)| k.trim().to_owned()))
            .filter(|k| !k.is_empty())
            .collect()
    }

    #[test]
    fn every_field_of_a_described_revision_is_carried_or_knowingly_dropped() {
        let described = debug_fields(&format!("{:?}", JobDefinition::builder().build()));
        let mut known: Vec<&str> = CARRIED.iter().chain(DROPPED.iter()).copied().collect();
        known.sort_unstable();
        let mut got: Vec<&str> = described.iter().map(|s| s.trim_start_matches("r#")).collect();
        got.sort_unstable();
        assert_eq!(
            got, known,
            "the SDK's JobDefinition changed: decide whether the new field is carried (Properties) or dropped"
        );
        let input =
            aws_sdk_batch::operation::register_job_definition::RegisterJobDefinitionInput::builder(
            )
            .build()
            .expect("builds");
        for field in debug_fields(&format!("{input:?}")) {
            let field = field.trim_start_matches("r#");
            assert!(
                field == "job_definition_name" || CARRIED.contains(&field),
                "RegisterJobDefinition takes {field}, which Properties does not carry"
            );
        }
    }

    fn rich() -> JobDefinition {
        let container = ContainerProperties::builder()
            .image("1.dkr.ecr.us-east-1.amazonaws.com/r:old")
            .command("split")
            .command("Ref::input")
            .job_role_arn("arn:aws:iam::1:role/job")
            .execution_role_arn("arn:aws:iam::1:role/exec")
            .resource_requirements(
                ResourceRequirement::builder().r#type(ResourceType::Vcpu).value("2").build(),
            )
            .environment(KeyValuePair::builder().name("A").value("1").build())
            .volumes(
                Volume::builder()
                    .name("scratch")
                    .host(Host::builder().source_path("/scratch").build())
                    .build(),
            )
            .mount_points(
                MountPoint::builder().source_volume("scratch").container_path("/s").build(),
            )
            .linux_parameters(
                LinuxParameters::builder()
                    .tmpfs(Tmpfs::builder().container_path("/tmp").size(64).build())
                    .build(),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/aws/batch/job")
                    .build(),
            )
            .ulimits(Ulimit::builder().name("nofile").soft_limit(1024).hard_limit(4096).build())
            .user("10001")
            .readonly_root_filesystem(true)
            .build();
        JobDefinition::builder()
            .job_definition_name("upscaler-splitter-job-dev")
            .job_definition_arn(
                "arn:aws:batch:us-east-1:1:job-definition/upscaler-splitter-job-dev:7",
            )
            .revision(7)
            .status("ACTIVE")
            .r#type("container")
            .scheduling_priority(5)
            .parameters("segment_seconds", "10")
            .retry_strategy(
                RetryStrategy::builder()
                    .attempts(3)
                    .evaluate_on_exit(
                        EvaluateOnExit::builder()
                            .on_status_reason("Host EC2*")
                            .action(RetryAction::Retry)
                            .build(),
                    )
                    .build(),
            )
            .container_properties(container)
            .timeout(JobTimeout::builder().attempt_duration_seconds(3600).build())
            .tags("Project", "upscaler")
            .tags(TAG_PREVIOUS_REVISION, "6")
            .propagate_tags(true)
            .platform_capabilities(PlatformCapability::Ec2)
            .container_orchestration_type(aws_sdk_batch::types::OrchestrationType::Ecs)
            .build()
    }

    #[test]
    fn a_new_image_changes_the_image_and_nothing_else() {
        let def = rich();
        let old = Properties::from_described(&def);
        let new = old
            .clone()
            .with_image("jd", "1.dkr.ecr.us-east-1.amazonaws.com/r:new")
            .expect("container")
            .with_tag(TAG_PREVIOUS_REVISION, "7")
            .with_tag(TAG_IMAGE_TAG, "new");
        assert_eq!(old.changed_fields(&new), ["containerProperties.image"]);
        assert_eq!(new.image(), Some("1.dkr.ecr.us-east-1.amazonaws.com/r:new"));
        assert_eq!(new.tag(TAG_PREVIOUS_REVISION), Some("7"));
        assert_eq!(new.tag("Project"), Some("upscaler"));
        // Every registrable field is there, field by field.
        assert_eq!(new.scheduling_priority, Some(5));
        assert_eq!(new.r#type, Some(JobDefinitionType::Container));
        assert_eq!(new.timeout, def.timeout().cloned());
        assert_eq!(new.retry_strategy, def.retry_strategy().cloned());
        assert_eq!(new.propagate_tags, Some(true));
        assert_eq!(new.platform_capabilities, Some(vec![PlatformCapability::Ec2]));
        let mut expected = def.container_properties().cloned().expect("container");
        expected.image = Some("1.dkr.ecr.us-east-1.amazonaws.com/r:new".into());
        assert_eq!(new.container_properties, Some(expected));
        // The same image again is no change at all (bookkeeping tags aside).
        assert!(old.changed_fields(&old.clone().with_tag(TAG_IMAGE_TAG, "x")).is_empty());
    }

    #[test]
    fn the_register_request_carries_every_property() {
        let conf = aws_sdk_batch::Config::builder()
            .behavior_version(aws_sdk_batch::config::BehaviorVersion::latest())
            .region(aws_sdk_batch::config::Region::new("us-east-1"))
            .build();
        let client = aws_sdk_batch::Client::from_conf(conf);
        let props = Properties::from_described(&rich()).with_tag(TAG_IMAGE_TAG, "new");
        let input = props.clone().request(&client, "jd").as_input().clone().build().expect("input");
        assert_eq!(input.job_definition_name.as_deref(), Some("jd"));
        let sent = Properties {
            r#type: input.r#type,
            parameters: input.parameters,
            scheduling_priority: input.scheduling_priority,
            container_properties: input.container_properties,
            node_properties: input.node_properties,
            retry_strategy: input.retry_strategy,
            propagate_tags: input.propagate_tags,
            timeout: input.timeout,
            tags: input.tags,
            platform_capabilities: input.platform_capabilities,
            eks_properties: input.eks_properties,
            ecs_properties: input.ecs_properties,
            consumable_resource_properties: input.consumable_resource_properties,
        };
        assert_eq!(sent, props);
        assert_eq!(sent.scheduling_priority, Some(5));
        assert_eq!(sent.propagate_tags, Some(true));
        assert_eq!(sent.platform_capabilities, Some(vec![PlatformCapability::Ec2]));
    }

    #[test]
    fn other_differences_are_named() {
        let old = Properties::from_described(&rich());
        let mut new = old.clone();
        new.timeout = Some(JobTimeout::builder().attempt_duration_seconds(60).build());
        if let Some(c) = new.container_properties.as_mut() {
            c.environment = Some(vec![]);
        }
        assert_eq!(old.changed_fields(&new), ["timeout", "containerProperties.environment"]);
    }

    #[test]
    fn only_container_job_definitions_get_a_new_image() {
        let def = JobDefinition::builder().r#type("multinode").build();
        let err = Properties::from_described(&def).with_image("jd", "x").expect_err("no container");
        assert!(err.to_string().contains("containerProperties"), "{err}");
    }
}
