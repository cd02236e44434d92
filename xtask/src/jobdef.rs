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
//!
//! Registering with the diff, `--dry-run` and the prod confirmation is [`Change::apply`]
//! (`jobdef/change.rs`).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use aws_sdk_batch::types::{
    ConsumableResourceProperties, ContainerProperties, EcsProperties, EksProperties, JobDefinition,
    JobDefinitionType, JobTimeout, NodeProperties, PlatformCapability, RetryStrategy,
};

use crate::aws::sdk_error;
use crate::config::Target;

mod change;
#[cfg(test)]
mod tests;

pub use change::{Applied, Change, Rules};

/// The revision that was the latest ACTIVE one when this revision was registered.
pub const TAG_PREVIOUS_REVISION: &str = "splitter:previous-revision";
/// The image tag this revision runs (the git SHA).
pub const TAG_IMAGE_TAG: &str = "splitter:image-tag";
/// For a rollback: the revision whose properties this one re-registers.
pub const TAG_SOURCE_REVISION: &str = "splitter:source-revision";
/// xtask's bookkeeping tags: rewritten on every registration, ignored when comparing.
pub const OUR_TAGS: [&str; 3] = [TAG_PREVIOUS_REVISION, TAG_IMAGE_TAG, TAG_SOURCE_REVISION];

/// Everything `RegisterJobDefinition` accepts besides the name, as a described revision has it.
/// The parameters and tags are sorted, so that two revisions compare (and print) in one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Properties {
    pub r#type: Option<JobDefinitionType>,
    pub parameters: Option<BTreeMap<String, String>>,
    pub scheduling_priority: Option<i32>,
    pub container_properties: Option<ContainerProperties>,
    pub node_properties: Option<NodeProperties>,
    pub retry_strategy: Option<RetryStrategy>,
    pub propagate_tags: Option<bool>,
    pub timeout: Option<JobTimeout>,
    pub tags: Option<BTreeMap<String, String>>,
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

/// `(name, value)` of each listed field of `$value`: the name as the Batch API spells it, after
/// `$prefix` (see [`api_name`]), the value as `Debug` prints it.
macro_rules! named_fields {
    ($prefix:literal, $value:expr; $($field:ident)*) => {
        vec![$((api_name($prefix, stringify!($field)), format!("{:?}", $value.$field))),*]
    };
}

impl Properties {
    /// The registrable properties of a described revision, field by field.
    pub fn from_described(def: &JobDefinition) -> Properties {
        Properties {
            r#type: def.r#type().map(JobDefinitionType::from),
            parameters: def.parameters().cloned().map(BTreeMap::from_iter),
            scheduling_priority: def.scheduling_priority(),
            container_properties: def.container_properties().cloned(),
            node_properties: def.node_properties().cloned(),
            retry_strategy: def.retry_strategy().cloned(),
            propagate_tags: def.propagate_tags(),
            timeout: def.timeout().cloned(),
            tags: def.tags().cloned().map(BTreeMap::from_iter),
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
        self.tags.get_or_insert_with(BTreeMap::new).insert(key.to_owned(), value.into());
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

    /// Each comparable field with its value (containerProperties field by field), in the order
    /// [`Properties::changed_fields`] names them.
    // vcpus and memory: deprecated in favour of resourceRequirements, but still registrable.
    #[allow(deprecated)]
    fn fields(&self) -> Vec<(String, String)> {
        let p = self.without_our_tags();
        let mut out = named_fields!("", p;
            r#type parameters scheduling_priority node_properties retry_strategy propagate_tags
            timeout tags platform_capabilities eks_properties ecs_properties
            consumable_resource_properties);
        match &p.container_properties {
            None => out.push(("containerProperties".to_owned(), "None".to_owned())),
            Some(c) => {
                out.extend(named_fields!("containerProperties.", c;
                    image command job_role_arn execution_role_arn resource_requirements vcpus
                    memory environment secrets volumes mount_points linux_parameters
                    log_configuration readonly_root_filesystem privileged ulimits user
                    instance_type network_configuration fargate_platform_configuration
                    ephemeral_storage runtime_platform repository_credentials
                    enable_execute_command));
                // Anything this list does not name yet.
                out.push(("containerProperties".to_owned(), format!("{c:?}")));
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
            .set_parameters(self.parameters.map(HashMap::from_iter))
            .set_scheduling_priority(self.scheduling_priority)
            .set_container_properties(self.container_properties)
            .set_node_properties(self.node_properties)
            .set_retry_strategy(self.retry_strategy)
            .set_propagate_tags(self.propagate_tags)
            .set_timeout(self.timeout)
            .set_tags(self.tags.map(HashMap::from_iter))
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

/// `prefix` and a field's name as the Batch API spells it: `job_role_arn` → `jobRoleArn`,
/// `r#type` → `type`.
fn api_name(prefix: &str, field: &str) -> String {
    let mut out = prefix.to_owned();
    let mut words = field.trim_start_matches("r#").split('_');
    out.extend(words.next());
    for word in words {
        let mut chars = word.chars();
        out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        out.push_str(chars.as_str());
    }
    out
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
