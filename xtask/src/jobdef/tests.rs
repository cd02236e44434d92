//! The unit tests of [`super`]: what a new revision carries over, and what a diff names.

use super::*;
use aws_sdk_batch::types::{
    EvaluateOnExit, Host, KeyValuePair, LinuxParameters, LogConfiguration, LogDriver, MountPoint,
    ResourceRequirement, ResourceType, RetryAction, Tmpfs, Ulimit, Volume,
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
        aws_sdk_batch::operation::register_job_definition::RegisterJobDefinitionInput::builder()
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
        .mount_points(MountPoint::builder().source_volume("scratch").container_path("/s").build())
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
        .job_definition_arn("arn:aws:batch:us-east-1:1:job-definition/upscaler-splitter-job-dev:7")
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
        parameters: input.parameters.map(BTreeMap::from_iter),
        scheduling_priority: input.scheduling_priority,
        container_properties: input.container_properties,
        node_properties: input.node_properties,
        retry_strategy: input.retry_strategy,
        propagate_tags: input.propagate_tags,
        timeout: input.timeout,
        tags: input.tags.map(BTreeMap::from_iter),
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

#[test]
fn fields_are_named_as_the_api_names_them_in_a_fixed_order() {
    let names: Vec<String> =
        Properties::from_described(&rich()).fields().into_iter().map(|(n, _)| n).collect();
    let want = "type parameters schedulingPriority nodeProperties retryStrategy propagateTags \
        timeout tags platformCapabilities eksProperties ecsProperties consumableResourceProperties \
        image command jobRoleArn executionRoleArn resourceRequirements vcpus memory environment \
        secrets volumes mountPoints linuxParameters logConfiguration readonlyRootFilesystem \
        privileged ulimits user instanceType networkConfiguration fargatePlatformConfiguration \
        ephemeralStorage runtimePlatform repositoryCredentials enableExecuteCommand";
    let want: Vec<String> = want
        .split_whitespace()
        .enumerate()
        .map(|(i, n)| if i < 12 { n.to_owned() } else { format!("containerProperties.{n}") })
        .chain(["containerProperties".to_owned()])
        .collect();
    assert_eq!(names, want);
    let none = Properties { container_properties: None, ..Properties::from_described(&rich()) };
    assert_eq!(
        none.fields().last().map(|(n, v)| (n.as_str(), v.as_str())),
        Some(("containerProperties", "None"))
    );
}
