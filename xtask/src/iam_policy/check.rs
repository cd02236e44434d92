//! `iam-policy --check`: recorded SDK calls (`Service:Operation`) mapped to the IAM actions they
//! need, and each matched against the permissions policy's Allow statements.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The IAM action an SDK call needs, from the operation metadata the recorder writes
/// (`Service:Operation`). `Ok(None)`: the call needs no permission.
pub fn iam_action(service: &str, operation: &str) -> Result<Option<String>> {
    let prefix = match service {
        "ECR" => "ecr",
        "Batch" => "batch",
        "CloudWatch Logs" => "logs",
        "IAM" => "iam",
        "S3" => "s3",
        // GetCallerIdentity needs no permission (AWS: "no permissions are required").
        "STS" if operation == "GetCallerIdentity" => return Ok(None),
        "STS" => "sts",
        other => bail!(
            "AWS service {other:?} ({operation}) is unknown to iam-policy: add its IAM prefix to iam_policy::iam_action"
        ),
    };
    // S3's IAM actions are not named after its operations.
    let action = match (prefix, operation) {
        ("s3", "ListObjectsV2" | "ListObjects" | "HeadBucket") => "ListBucket",
        ("s3", "HeadObject" | "GetObject" | "GetObjectAttributes") => "GetObject",
        (
            "s3",
            "PutObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "CompleteMultipartUpload"
            | "CopyObject",
        ) => "PutObject",
        ("s3", "DeleteObjects") => "DeleteObject",
        (_, op) => op,
    };
    Ok(Some(format!("{prefix}:{action}")))
}

/// The `Sid` of the first Allow statement of `policy` that grants `action`.
pub fn allowing_statement(policy: &Value, action: &str) -> Option<String> {
    let statements = policy["Statement"].as_array()?;
    statements.iter().find_map(|s| {
        if s["Effect"] != "Allow" {
            return None;
        }
        let actions: Vec<&str> = match &s["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        actions
            .iter()
            .any(|pattern| action_matches(pattern, action))
            .then(|| s["Sid"].as_str().unwrap_or("(no Sid)").to_owned())
    })
}

/// IAM action matching: case-insensitive, `*` matches any run of characters.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], a: &[u8]) -> bool {
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..])),
            Some((c, rest)) => {
                a.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &a[1..])
            }
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

/// Prints each distinct recorded call with the action and statement that allows it; fails
/// naming every call the policy does not allow.
pub(super) fn check_calls(policy: &Value, recorded: &str) -> Result<()> {
    let calls: BTreeSet<&str> = recorded.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if calls.is_empty() {
        bail!("no AWS calls recorded: run xtask commands with XTASK_RECORD_AWS_CALLS=FILE first");
    }
    let mut denied = Vec::new();
    for call in &calls {
        let (service, operation) = call
            .split_once(':')
            .with_context(|| format!("recorded line {call:?} is not `Service:Operation`"))?;
        match iam_action(service, operation)? {
            None => println!("{call:40} (needs no permission)"),
            Some(action) => match allowing_statement(policy, &action) {
                Some(sid) => println!("{call:40} {action:32} {sid}"),
                None => {
                    println!("{call:40} {action:32} NOT ALLOWED");
                    denied.push(action);
                }
            },
        }
    }
    if !denied.is_empty() {
        bail!(
            "the deploy role's policy does not allow {}: add them to iam_policy::permissions_policy",
            denied.join(", ")
        );
    }
    println!("{} distinct calls, all allowed", calls.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, Target};
    use crate::iam_policy::permissions_policy;

    #[test]
    fn recorded_calls_map_to_iam_actions() {
        let map = |s, o| iam_action(s, o).expect("known service");
        assert_eq!(map("ECR", "PutImage").as_deref(), Some("ecr:PutImage"));
        assert_eq!(
            map("Batch", "RegisterJobDefinition").as_deref(),
            Some("batch:RegisterJobDefinition")
        );
        assert_eq!(map("CloudWatch Logs", "GetLogEvents").as_deref(), Some("logs:GetLogEvents"));
        assert_eq!(map("S3", "ListObjectsV2").as_deref(), Some("s3:ListBucket"));
        assert_eq!(map("S3", "HeadObject").as_deref(), Some("s3:GetObject"));
        assert_eq!(map("S3", "UploadPart").as_deref(), Some("s3:PutObject"));
        assert_eq!(map("S3", "DeleteObjects").as_deref(), Some("s3:DeleteObject"));
        assert_eq!(map("STS", "GetCallerIdentity"), None);
        let err = iam_action("Lambda", "Invoke").expect_err("unknown service");
        assert!(err.to_string().contains("unknown to iam-policy"), "{err}");
    }

    #[test]
    fn action_patterns_match_like_iam() {
        assert!(action_matches("ecr:PutImage", "ecr:putimage"));
        assert!(action_matches("ecr:*", "ecr:PutImage"));
        assert!(action_matches("s3:Get*", "s3:GetObject"));
        assert!(!action_matches("ecr:Put*", "ecr:GetAuthorizationToken"));
        assert!(!action_matches("ecr:PutImage", "ecr:PutImageScanningConfiguration"));
    }

    #[test]
    fn checking_calls_names_what_is_missing() {
        let policy = permissions_policy(
            &Target { project: "upscaler".into(), env: Env::Dev, region: "us-east-1".into() },
            "111122223333",
        );
        assert!(
            check_calls(&policy, "ECR:PutImage\nSTS:GetCallerIdentity\nS3:ListObjectsV2\n").is_ok()
        );
        let err = check_calls(&policy, "ECR:PutImage\nECR:DeleteRepository\n").expect_err("denied");
        assert!(err.to_string().contains("does not allow ecr:DeleteRepository"), "{err}");
        assert!(check_calls(&policy, "\n").is_err());
    }
}
