//! The pipeline's summary: what each stage did ([`Row`]), the facts read back afterwards
//! ([`Facts`]), the table printed at the end (also as Markdown for the GitHub Actions job
//! summary) and the error that names the stage the pipeline stopped at.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::anyhow;

use super::Pipeline;

/// What one stage did.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) name: &'static str,
    pub(super) seconds: Option<f64>,
    pub(super) result: Result<String, String>,
}

/// Facts for the summary's last lines.
#[derive(Debug, Default)]
pub(super) struct Facts {
    pub(super) digest: Option<String>,
    pub(super) revision: Option<String>,
    pub(super) itest: Option<String>,
}

/// The error that ends the pipeline: the failed stage and its one-line reason.
pub(super) fn stopped(stage: &str, rows: &[Row]) -> anyhow::Error {
    let why = rows
        .iter()
        .rev()
        .find_map(|r| r.result.as_ref().err().cloned())
        .unwrap_or_else(|| "failed".to_owned());
    anyhow!("pipeline stopped at stage `{stage}`: {why}")
}

/// Prints the summary table and appends it to the GitHub Actions job summary.
pub(super) fn print_summary(p: &Pipeline, rows: &[Row], facts: &Facts, total: Duration) {
    let mut out = String::new();
    let place = if p.local {
        format!("local stack {}", p.stack.endpoint_url())
    } else {
        std::env::var("AWS_ENDPOINT_URL")
            .map(|e| format!("endpoint {e}"))
            .unwrap_or_else(|_| "AWS".to_owned())
    };
    let _ = writeln!(
        out,
        "\npipeline summary: project {}, env {}, {}, {place}{}",
        p.target.project,
        p.target.env,
        p.target.region,
        if p.dry_run { " (dry run)" } else { "" }
    );
    let _ = writeln!(out, "  {:<7} {:>8}  result", "stage", "time");
    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    let all: Vec<&str> = if p.local { vec!["local"] } else { vec![] }
        .into_iter()
        .chain(["image", "scan", "push", "sign", "deploy", "itest"])
        .collect();
    for name in all {
        let Some(row) = rows.iter().find(|r| r.name == name) else {
            if !names.contains(&name) {
                let _ = writeln!(out, "  {name:<7} {:>8}  not run", "-");
            }
            continue;
        };
        let time = row.seconds.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".to_owned());
        let result = match &row.result {
            Ok(text) => format!("ok    {text}"),
            Err(e) => format!("FAILED {}", first_line(e)),
        };
        let _ = writeln!(out, "  {name:<7} {time:>8}  {result}");
    }
    let _ = writeln!(out, "  {:<7} {:>8}", "total", format!("{:.1} s", total.as_secs_f64()));
    let dash = || "-".to_owned();
    let _ = writeln!(out, "  image digest  {}", facts.digest.clone().unwrap_or_else(dash));
    let _ = writeln!(out, "  revision      {}", facts.revision.clone().unwrap_or_else(dash));
    let _ = writeln!(out, "  itest result  {}", facts.itest.clone().unwrap_or_else(dash));
    print!("{out}");
    if let Err(e) = crate::gha::append_step_summary(&summary_markdown(rows, facts, total)) {
        eprintln!("warning: {e:#}");
    }
}

/// The summary as a Markdown table, for the GitHub Actions job summary.
fn summary_markdown(rows: &[Row], facts: &Facts, total: Duration) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut md = String::from("### Pipeline\n\n| stage | time | result |\n|---|---:|---|\n");
    for row in rows {
        let time = row.seconds.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".to_owned());
        let result = match &row.result {
            Ok(text) => format!("✅ {}", cell(text)),
            Err(e) => format!("❌ {}", cell(&first_line(e))),
        };
        let _ = writeln!(md, "| {} | {time} | {result} |", row.name);
    }
    let _ = writeln!(md, "| total | {:.1} s | |\n", total.as_secs_f64());
    for (k, v) in
        [("image digest", &facts.digest), ("revision", &facts.revision), ("itest", &facts.itest)]
    {
        let _ = writeln!(md, "- {k}: `{}`", v.as_deref().unwrap_or("-"));
    }
    md.push('\n');
    md
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failed_stage_is_named_with_its_reason() {
        let rows = vec![
            Row { name: "image", seconds: Some(1.0), result: Ok("built".into()) },
            Row {
                name: "scan",
                seconds: Some(2.0),
                result: Err("vulnerability gate failed: 1 HIGH".into()),
            },
        ];
        assert_eq!(
            stopped("scan", &rows).to_string(),
            "pipeline stopped at stage `scan`: vulnerability gate failed: 1 HIGH"
        );
        assert_eq!(crate::pipeline::short("sha256:0123456789abcdef"), "sha256:0123456789ab");
        let facts = Facts { digest: Some("sha256:ab".into()), revision: None, itest: None };
        let md = summary_markdown(&rows, &facts, Duration::from_secs(3));
        assert!(md.contains("| image | 1.0 s | ✅ built |"), "{md}");
        assert!(md.contains("| scan | 2.0 s | ❌ vulnerability gate failed: 1 HIGH |"), "{md}");
        assert!(
            md.contains("- image digest: `sha256:ab`") && md.contains("- revision: `-`"),
            "{md}"
        );
        assert_eq!(first_line("a\nb"), "a");
    }
}
