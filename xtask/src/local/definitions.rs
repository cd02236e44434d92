//! What Terraform defines for one environment, as values: the first job definition's container
//! and retry strategy, its shape (vCPUs, memory, tmpfs, timeout, parameters), the job role's
//! data policy, the roles' trust policies and the ECR lifecycle policy. [`super::seed`] creates
//! the local stack's resources from them; nothing here does I/O.

use aws_sdk_batch::types::{
    ContainerProperties, EvaluateOnExit, KeyValuePair, LinuxParameters, LogConfiguration,
    LogDriver, ResourceRequirement, ResourceType, RetryAction, RetryStrategy, Tmpfs,
};

use crate::config::{BATCH_LOG_GROUP, Target};

/// The splitter's Batch job shape (what Terraform's `aws_batch_job_definition` says).
pub const JOB_VCPUS: &str = "1";
pub const JOB_MEMORY_MIB: &str = "4096";
/// A read-only root filesystem; the splitter's temp space is a tmpfs at `/tmp`.
pub const JOB_TMP_SIZE_MIB: i32 = 2048;
pub const JOB_TIMEOUT_SECONDS: i32 = 3600;
pub const JOB_ATTEMPTS: i32 = 3;
/// The command, with Batch parameter references (the container's ENTRYPOINT is the splitter).
pub const JOB_COMMAND: [&str; 5] =
    ["split", "Ref::input", "Ref::output", "--segment-seconds", "Ref::segment_seconds"];
/// Parameter defaults; `input` and `output` are given per job.
pub const JOB_PARAMETER_DEFAULTS: [(&str, &str); 1] = [("segment_seconds", "10")];
/// ECR lifecycle: how many images to keep (untagged ones expire after a day).
pub const ECR_KEEP_IMAGES: u32 = 30;
pub const LOG_RETENTION_DAYS: i32 = 30;

/// The trust policy of a role a service assumes.
pub fn trust_policy(service: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole"
        }]
    })
    .to_string()
}

/// What the splitter job may do: read inputs and write outputs in the environment's bucket,
/// including deleting what a re-run replaces (a stale manifest first, then segments the new
/// manifest does not list).
pub fn job_role_policy(target: &Target) -> String {
    let bucket = target.bucket();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListData",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}")]
            },
            {
                "Sid": "ReadWriteData",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject"
                ],
                "Resource": [format!("arn:aws:s3:::{bucket}/*")]
            }
        ]
    })
    .to_string()
}

/// Keep the newest [`ECR_KEEP_IMAGES`] images; expire untagged ones after a day.
pub fn lifecycle_policy() -> String {
    serde_json::json!({
        "rules": [
            {
                "rulePriority": 1,
                "description": "Expire untagged images after 1 day",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1
                },
                "action": { "type": "expire" }
            },
            {
                "rulePriority": 2,
                "description": format!("Keep the last {ECR_KEEP_IMAGES} images"),
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": ECR_KEEP_IMAGES
                },
                "action": { "type": "expire" }
            }
        ]
    })
    .to_string()
}

/// The first job definition's container: `image` is the repository URI with a placeholder tag,
/// `extra_env` carries the local stack's endpoint and dummy credentials (empty for real AWS).
pub fn container_properties(
    target: &Target,
    image: &str,
    job_role_arn: &str,
    extra_env: &[(String, String)],
) -> ContainerProperties {
    let mut env: Vec<(String, String)> = vec![
        ("AWS_REGION".into(), target.region.clone()),
        ("SPLITTER_LOG_FORMAT".into(), "json".into()),
    ];
    env.extend(extra_env.iter().cloned());
    ContainerProperties::builder()
        .image(image)
        .set_command(Some(JOB_COMMAND.iter().map(|s| s.to_string()).collect()))
        .job_role_arn(job_role_arn)
        .resource_requirements(
            ResourceRequirement::builder().r#type(ResourceType::Vcpu).value(JOB_VCPUS).build(),
        )
        .resource_requirements(
            ResourceRequirement::builder()
                .r#type(ResourceType::Memory)
                .value(JOB_MEMORY_MIB)
                .build(),
        )
        .set_environment(Some(
            env.into_iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ))
        .readonly_root_filesystem(true)
        .linux_parameters(
            LinuxParameters::builder()
                .tmpfs(
                    Tmpfs::builder()
                        .container_path("/tmp")
                        .size(JOB_TMP_SIZE_MIB)
                        .mount_options("rw")
                        .mount_options("nosuid")
                        .mount_options("nodev")
                        .build(),
                )
                .build(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", BATCH_LOG_GROUP)
                .build(),
        )
        .build()
}

/// Retry when the host went away (Spot reclaim), give up on anything else.
pub fn retry_strategy() -> RetryStrategy {
    RetryStrategy::builder()
        .attempts(JOB_ATTEMPTS)
        .evaluate_on_exit(
            EvaluateOnExit::builder()
                .on_status_reason("Host EC2*")
                .action(RetryAction::Retry)
                .build(),
        )
        .evaluate_on_exit(
            EvaluateOnExit::builder().on_reason("*").action(RetryAction::Exit).build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn target() -> Target {
        Target { project: "upscaler".into(), env: Env::Dev, region: "us-east-1".into() }
    }

    #[test]
    fn the_job_definition_is_shaped_like_a_real_one() {
        let extra = vec![("AWS_ENDPOINT_URL".to_owned(), "http://127.0.0.1:4566".to_owned())];
        let image =
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/upscaler-splitter-dev-ecr:placeholder";
        let c = container_properties(&target(), image, "arn:aws:iam::123456789012:role/r", &extra);
        assert_eq!(c.image(), Some(image));
        assert_eq!(
            c.command(),
            ["split", "Ref::input", "Ref::output", "--segment-seconds", "Ref::segment_seconds"]
        );
        assert_eq!(c.job_role_arn(), Some("arn:aws:iam::123456789012:role/r"));
        assert_eq!(c.readonly_root_filesystem(), Some(true));
        let tmpfs = c.linux_parameters().map(|l| l.tmpfs()).unwrap_or_default();
        assert_eq!(tmpfs.len(), 1);
        assert_eq!(tmpfs[0].container_path(), Some("/tmp"));
        let req: Vec<(&str, &str)> = c
            .resource_requirements()
            .iter()
            .map(|r| (r.r#type().map(|t| t.as_str()).unwrap_or(""), r.value().unwrap_or("")))
            .collect();
        assert_eq!(req, [("VCPU", JOB_VCPUS), ("MEMORY", JOB_MEMORY_MIB)]);
        let env: Vec<(&str, &str)> = c
            .environment()
            .iter()
            .map(|e| (e.name().unwrap_or(""), e.value().unwrap_or("")))
            .collect();
        assert!(env.contains(&("AWS_REGION", "us-east-1")));
        assert!(env.contains(&("SPLITTER_LOG_FORMAT", "json")));
        assert!(env.contains(&("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")));
        let log = c.log_configuration().expect("log configuration");
        assert_eq!(log.log_driver(), Some(&LogDriver::Awslogs));
        assert_eq!(
            log.options().and_then(|o| o.get("awslogs-group")).map(String::as_str),
            Some(BATCH_LOG_GROUP)
        );
    }

    #[test]
    fn real_aws_gets_no_endpoint_or_credentials() {
        let c = container_properties(&target(), "img", "arn", &[]);
        assert!(
            c.environment().iter().all(|e| !e.name().unwrap_or("").starts_with("AWS_ENDPOINT"))
        );
        assert!(c.environment().iter().all(|e| e.name() != Some("AWS_ACCESS_KEY_ID")));
    }

    #[test]
    fn retries_only_lost_hosts() {
        let r = retry_strategy();
        assert_eq!(r.attempts(), Some(JOB_ATTEMPTS));
        let rules = r.evaluate_on_exit();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].action(), Some(&RetryAction::Retry));
        assert_eq!(rules[1].action(), Some(&RetryAction::Exit));
        assert_eq!(rules[1].on_reason(), Some("*"));
    }

    /// Every S3 operation the splitter sends (read from its source: `splitter/src/s3.rs` is
    /// where all of them are) maps to an IAM action the job role allows. A new call without a
    /// grant fails here, not in a Batch job on AWS (moto does not enforce IAM).
    #[test]
    fn the_job_role_allows_every_s3_call_of_the_splitter() {
        let source = include_str!("../../../splitter/src/s3.rs");
        let policy: serde_json::Value =
            serde_json::from_str(&job_role_policy(&target())).expect("json");
        // `.get_object()`, `.list_objects_v2()`: the fluent builders of aws-sdk-s3.
        let known = [
            "get_object",
            "head_object",
            "put_object",
            "create_multipart_upload",
            "upload_part",
            "complete_multipart_upload",
            "abort_multipart_upload",
            "delete_object",
            "list_objects_v2",
            "copy_object",
            "delete_objects",
            "list_parts",
        ];
        let operations: Vec<String> = known
            .iter()
            .filter(|name| source.contains(&format!(".{name}()")))
            .map(|name| {
                name.split('_')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        assert!(operations.len() >= 8, "the splitter's S3 calls were found: {operations:?}");
        for op in &operations {
            let action = crate::iam_policy::iam_action("S3", op)
                .expect("mapped")
                .unwrap_or_else(|| panic!("no IAM action known for S3:{op}"));
            assert!(
                crate::iam_policy::allowing_statement(&policy, &action).is_some(),
                "the job role does not allow {action} (the splitter calls S3:{op})"
            );
        }
        // Planted: without DeleteObject the check fails.
        let without = job_role_policy(&target()).replace("\"s3:DeleteObject\"", "\"s3:Nothing\"");
        let without: serde_json::Value = serde_json::from_str(&without).expect("json");
        assert!(crate::iam_policy::allowing_statement(&without, "s3:DeleteObject").is_none());
    }

    #[test]
    fn policies_are_valid_json_naming_the_bucket() {
        let p: serde_json::Value = serde_json::from_str(&job_role_policy(&target())).expect("json");
        let text = p.to_string();
        assert!(text.contains("arn:aws:s3:::upscaler-splitter-dev-data/*"));
        let l: serde_json::Value = serde_json::from_str(&lifecycle_policy()).expect("json");
        let rules = l["rules"].as_array().expect("rules");
        // An `any` rule must have the highest priority number.
        assert_eq!(rules.last().expect("rule")["selection"]["tagStatus"], "any");
        assert_eq!(rules.last().expect("rule")["selection"]["countNumber"], ECR_KEEP_IMAGES);
    }
}
