//! `iam-policy --check`: recorded SDK calls (`Service:Operation`) mapped to the IAM actions they
//! need, and each matched against the permissions policy's Allow statements.
//!
//! A call is checked on its action, and KMS calls (recorded with the key they named,
//! `KMS:Sign alias/…`) on their key too: the deploy role may use one key, the one whose aliases
//! include the environment's signing key alias (`kms:ResourceAliases`). A statement allows such a
//! call when its `Resource` covers the key and its conditions hold for it; a condition the check
//! does not know counts as not holding, and a key named by its id (whose aliases a recording
//! does not show) passes no alias condition. Calls recorded without a resource (other services,
//! the static scan's `Service:Operation` lines) are checked on their action only.

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
        "KMS" => "kms",
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

/// The `Sid` of the first Allow statement of `policy` that grants `action` (on some resource).
pub fn allowing_statement(policy: &Value, action: &str) -> Option<String> {
    allowing(policy, action, |_| true)
}

/// The `Sid` of the first Allow statement of `policy` that grants the KMS `action` on the key a
/// call named `key_id` (an alias name or ARN, a key id or ARN): see the module docs.
pub fn allowing_statement_on_key(policy: &Value, action: &str, key_id: &str) -> Option<String> {
    allowing(policy, action, |s| covers_key(s, key_id) && key_conditions_hold(s, key_id))
}

fn allowing(policy: &Value, action: &str, applies: impl Fn(&Value) -> bool) -> Option<String> {
    let statements = policy["Statement"].as_array()?;
    statements.iter().find_map(|s| {
        if s["Effect"] != "Allow" {
            return None;
        }
        let granted = strings(&s["Action"]).iter().any(|pattern| action_matches(pattern, action));
        (granted && applies(s)).then(|| s["Sid"].as_str().unwrap_or("(no Sid)").to_owned())
    })
}

/// A policy element that is a string or a list of strings.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// The alias a KMS key id names (`alias/NAME`), if it is an alias name or alias ARN.
fn alias_of(key_id: &str) -> Option<&str> {
    if key_id.starts_with("alias/") {
        return Some(key_id);
    }
    let at = key_id.strip_prefix("arn:")?.find(":alias/")?;
    Some(&key_id["arn:".len() + at + 1..])
}

/// Whether the statement's `Resource` covers the key `key_id` names. IAM names KMS keys by key
/// ARN only: an alias may name any key, so only `*` or `…:key/*` surely covers it.
fn covers_key(statement: &Value, key_id: &str) -> bool {
    strings(&statement["Resource"]).iter().any(|r| {
        *r == "*"
            || r.ends_with(":key/*")
            || (alias_of(key_id).is_none()
                && (wildcard(r, key_id, false) || r.ends_with(&format!(":key/{key_id}"))))
    })
}

/// Whether every condition of the statement holds for a call on `key_id`. Understood:
/// `ForAnyValue:StringEquals` / `ForAnyValue:StringLike` on `kms:ResourceAliases`, which hold
/// when the call named the key by one of those aliases.
fn key_conditions_hold(statement: &Value, key_id: &str) -> bool {
    let Some(conditions) = statement.get("Condition") else { return true };
    let Some(conditions) = conditions.as_object() else { return false };
    let alias = alias_of(key_id);
    conditions.iter().all(|(operator, keys)| {
        let Some(keys) = keys.as_object() else { return false };
        keys.iter().all(|(key, values)| {
            if !key.eq_ignore_ascii_case(super::documents::KMS_RESOURCE_ALIASES) {
                return false;
            }
            let Some(alias) = alias else { return false };
            let values = strings(values);
            match operator.as_str() {
                "ForAnyValue:StringEquals" => values.contains(&alias),
                "ForAnyValue:StringLike" => values.iter().any(|p| wildcard(p, alias, false)),
                _ => false,
            }
        })
    })
}

/// IAM action matching: case-insensitive, `*` matches any run of characters.
fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard(pattern, action, true)
}

/// `*` matches any run of characters, `?` any one.
fn wildcard(pattern: &str, text: &str, ignore_case: bool) -> bool {
    fn go(p: &[u8], a: &[u8], ignore_case: bool) -> bool {
        match p.split_first() {
            None => a.is_empty(),
            Some((b'*', rest)) => (0..=a.len()).any(|i| go(rest, &a[i..], ignore_case)),
            Some((c, rest)) => {
                a.first().is_some_and(|x| {
                    *c == b'?' || x == c || (ignore_case && x.eq_ignore_ascii_case(c))
                }) && go(rest, &a[1..], ignore_case)
            }
        }
    }
    go(pattern.as_bytes(), text.as_bytes(), ignore_case)
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
        // `Service:Operation` (a service name may hold a space: `CloudWatch Logs`), then the
        // resource the call named, if recorded (KMS: its key).
        let (service, rest) = call.split_once(':').with_context(|| {
            format!("recorded line {call:?} is not `Service:Operation [resource]`")
        })?;
        let (operation, resource) = match rest.split_once(char::is_whitespace) {
            Some((operation, resource)) => (operation, Some(resource.trim())),
            None => (rest, None),
        };
        let Some(action) = iam_action(service, operation)? else {
            println!("{call:40} (needs no permission)");
            continue;
        };
        let allowed = match resource {
            Some(key) if action.starts_with("kms:") => {
                allowing_statement_on_key(policy, &action, key)
            }
            _ => allowing_statement(policy, &action),
        };
        match allowed {
            Some(sid) => println!("{call:40} {action:32} {sid}"),
            None => {
                println!("{call:40} {action:32} NOT ALLOWED");
                denied.push(match resource {
                    Some(r) => format!("{action} on {r}"),
                    None => action,
                });
            }
        }
    }
    if !denied.is_empty() {
        let keys = if denied.iter().any(|d| d.contains(" on ")) {
            " (KMS: or name the key by the environment's signing key alias)"
        } else {
            ""
        };
        bail!(
            "the deploy role's policy does not allow {}: add them to iam_policy::permissions_policy{keys}",
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
    use serde_json::json;

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
        assert_eq!(map("KMS", "Sign").as_deref(), Some("kms:Sign"));
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
            check_calls(
                &policy,
                "ECR:PutImage\nSTS:GetCallerIdentity\nS3:ListObjectsV2\nCloudWatch Logs:GetLogEvents\n"
            )
            .is_ok()
        );
        let err = check_calls(&policy, "ECR:PutImage\nECR:DeleteRepository\n").expect_err("denied");
        assert!(err.to_string().contains("does not allow ecr:DeleteRepository"), "{err}");
        assert!(check_calls(&policy, "\n").is_err());
    }

    fn dev_policy() -> Value {
        permissions_policy(
            &Target { project: "upscaler".into(), env: Env::Dev, region: "us-east-1".into() },
            "111122223333",
        )
    }

    #[test]
    fn kms_calls_are_allowed_on_the_environments_signing_key_only() {
        let policy = dev_policy();
        let own = "alias/upscaler-splitter-signing-dev";
        for call in [
            format!("KMS:Sign {own}\n"),
            format!("KMS:GetPublicKey {own}\n"),
            format!("KMS:Sign arn:aws:kms:us-east-1:111122223333:{own}\n"),
            // Without a recorded key (the static scan): the action alone.
            "KMS:Sign\n".to_owned(),
        ] {
            assert!(check_calls(&policy, &call).is_ok(), "{call}");
        }
        assert_eq!(
            allowing_statement_on_key(&policy, "kms:Sign", own).as_deref(),
            Some("SigningKey")
        );

        // The planted cases: another environment's key, another alias, a key by its id (whose
        // aliases the recording cannot show), an action the statement does not grant.
        for (call, denied) in [
            (
                "KMS:Sign alias/upscaler-splitter-signing-prod",
                "kms:Sign on alias/upscaler-splitter-signing-prod",
            ),
            ("KMS:GetPublicKey alias/other", "kms:GetPublicKey on alias/other"),
            (
                "KMS:Sign 1234abcd-12ab-34cd-56ef-1234567890ab",
                "kms:Sign on 1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            (
                "KMS:Sign arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "kms:Sign on arn:aws:kms:us-east-1:111122223333:key/1234abcd",
            ),
            (&format!("KMS:Verify {own}"), "kms:Verify on alias/upscaler-splitter-signing-dev"),
            (&format!("KMS:ScheduleKeyDeletion {own}"), "kms:ScheduleKeyDeletion on"),
        ] {
            let err = check_calls(&policy, &format!("{call}\n")).expect_err(call);
            assert!(err.to_string().contains(&format!("does not allow {denied}")), "{err}");
        }
    }

    #[test]
    fn key_statements_are_read_like_iam() {
        let statement = |resource: Value, condition: Value| {
            json!({"Statement": [{
                "Sid": "S", "Effect": "Allow", "Action": "kms:Sign",
                "Resource": resource, "Condition": condition
            }]})
        };
        let key = "arn:aws:kms:us-east-1:111122223333:key/k1";
        let allows = |policy: &Value, key_id: &str| {
            allowing_statement_on_key(policy, "kms:Sign", key_id).is_some()
        };
        // A key ARN as the resource, no condition: that key only, by id or ARN; no alias.
        let by_arn = json!({"Statement": [{"Sid": "S", "Effect": "Allow", "Action": "kms:Sign", "Resource": key}]});
        assert!(allows(&by_arn, key) && allows(&by_arn, "k1"));
        assert!(!allows(&by_arn, "k2") && !allows(&by_arn, "alias/a"));
        // Patterns on the alias; unknown operators and condition keys never hold.
        let like = statement(
            json!("*"),
            json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/a-*"}}),
        );
        assert!(allows(&like, "alias/a-dev") && !allows(&like, "alias/b-dev"));
        let all = statement(
            json!("*"),
            json!({"ForAllValues:StringEquals": {"kms:ResourceAliases": "alias/a"}}),
        );
        assert!(!allows(&all, "alias/a"));
        let other =
            statement(json!("*"), json!({"StringEquals": {"aws:RequestedRegion": "us-east-1"}}));
        assert!(!allows(&other, "alias/a"));
        // An alias resource names the alias, not a key (AWS: aliases in Resource do not grant use).
        let alias_resource =
            statement(json!("arn:aws:kms:us-east-1:111122223333:alias/a"), json!({}));
        assert!(!allows(&alias_resource, "alias/a"));
        assert_eq!(alias_of("arn:aws:kms:us-east-1:111122223333:alias/a"), Some("alias/a"));
        assert_eq!(alias_of("arn:aws:kms:us-east-1:111122223333:key/k1"), None);
    }
}
