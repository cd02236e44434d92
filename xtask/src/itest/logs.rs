//! The failed job's CloudWatch log (step 5): the tail of its log stream, the splitter's JSON
//! events shown as text, and the splitter's error event picked out for the error line.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::aws::{Aws, sdk_error};

/// Prints the last `n` lines of the job's log stream; returns them (empty when the stream is
/// empty or cannot be read: that is printed too).
pub(super) async fn show_tail(aws: &Aws, group: &str, stream: &str, n: usize) -> Vec<String> {
    match tail(aws, group, stream, n).await {
        Ok(lines) if lines.is_empty() => {
            println!("  (the log stream is empty)");
            vec![]
        }
        Ok(lines) => {
            println!("  last {} line(s) of the log:", lines.len());
            for line in &lines {
                println!("    | {}", format_log_line(line));
            }
            lines
        }
        Err(e) => {
            println!("  (cannot read the log: {e:#})");
            vec![]
        }
    }
}

/// The last `n` messages of a log stream. Real CloudWatch may lag a few seconds behind a job
/// that just stopped: an absent or empty stream is asked again a few times.
async fn tail(aws: &Aws, group: &str, stream: &str, n: usize) -> Result<Vec<String>> {
    let logs = aws.logs();
    let limit = i32::try_from(n.clamp(1, 10_000)).unwrap_or(10_000);
    let mut last_err = None;
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let out = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(false)
            .limit(limit)
            .send()
            .await;
        match out {
            Ok(out) => {
                let lines: Vec<String> =
                    out.events().iter().filter_map(|e| e.message()).map(str::to_owned).collect();
                if !lines.is_empty() {
                    let skip = lines.len().saturating_sub(n);
                    return Ok(lines.into_iter().skip(skip).collect());
                }
                last_err = None;
            }
            Err(err)
                if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                last_err = Some(anyhow!("log stream {stream} not found in {group}"));
            }
            Err(err) => {
                return Err(sdk_error(err)).with_context(|| {
                    format!("cannot read log stream {stream}: check the role's logs:GetLogEvents permission")
                });
            }
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(vec![]),
    }
}

/// A log line for people: the splitter's JSON events as `LEVEL message key=value…`.
pub(super) fn format_log_line(line: &str) -> String {
    let Ok(serde_json::Value::Object(event)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return line.to_owned();
    };
    let (Some(level), Some(message)) = (
        event.get("level").and_then(|v| v.as_str()),
        event.get("message").and_then(|v| v.as_str()),
    ) else {
        return line.to_owned();
    };
    let mut out = format!("{level:<5} {message}");
    for (k, v) in &event {
        if matches!(k.as_str(), "level" | "message" | "timestamp") {
            continue;
        }
        match v {
            serde_json::Value::String(s) => {
                let _ = write!(out, " {k}={s}");
            }
            other => {
                let _ = write!(out, " {k}={other}");
            }
        }
    }
    out
}

/// The splitter's error event in a log tail: `message (exit N, kind)`.
pub(super) fn splitter_error(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? != "ERROR" {
            return None;
        }
        let message = v.get("message")?.as_str()?;
        let mut extra = Vec::new();
        if let Some(code) = v.get("exit_code").and_then(|c| c.as_i64()) {
            extra.push(format!("exit {code}"));
        }
        if let Some(kind) = v.get("kind").and_then(|k| k.as_str()) {
            extra.push(kind.to_owned());
        }
        Some(if extra.is_empty() {
            message.to_owned()
        } else {
            format!("{message} ({})", extra.join(", "))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_json_logs_read_like_text_and_name_the_error() {
        let lines = vec![
            r#"{"timestamp":"2026-11-27T21:04:01Z","level":"INFO","message":"probed","codec":"h264","width":320}"#.to_owned(),
            "plain text".to_owned(),
            r#"{"timestamp":"2026-11-27T21:04:01Z","level":"ERROR","message":"/tmp/in is a text file, not a video","exit_code":4,"kind":"not_a_video"}"#.to_owned(),
        ];
        assert_eq!(format_log_line(&lines[0]), "INFO  probed codec=h264 width=320");
        assert_eq!(format_log_line(&lines[1]), "plain text");
        assert_eq!(
            format_log_line(&lines[2]),
            "ERROR /tmp/in is a text file, not a video exit_code=4 kind=not_a_video"
        );
        assert_eq!(
            splitter_error(&lines).as_deref(),
            Some("/tmp/in is a text file, not a video (exit 4, not_a_video)")
        );
        assert_eq!(splitter_error(&lines[..2]), None);
    }
}
