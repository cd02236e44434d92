//! Reading Trivy's JSON report, the gate decision and the summary (terminal and markdown).
//! Pure: no processes, no files.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::trivy_db::Severity;

/// One vulnerable package, as Trivy reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: String,
    pub package: String,
    pub installed: String,
    /// `None` when there is no fix yet.
    pub fixed: Option<String>,
    pub severity: Severity,
    pub title: String,
}

/// What a Trivy scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub trivy_version: String,
    pub artifact: String,
    /// e.g. `debian 13.8`; `None` when Trivy found no OS (a `FROM scratch` image).
    pub os: Option<String>,
    /// OS packages plus language packages (crates, …) Trivy saw.
    pub packages: usize,
    pub findings: Vec<Finding>,
    /// Findings an ignore file suppressed (reported by `--show-suppressed`).
    pub suppressed: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonReport {
    #[serde(default)]
    artifact_name: String,
    #[serde(default)]
    metadata: JsonMetadata,
    #[serde(default)]
    trivy: Option<JsonTrivy>,
    #[serde(default)]
    results: Vec<JsonResult>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct JsonMetadata {
    #[serde(rename = "OS")]
    os: Option<JsonOs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonOs {
    family: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonTrivy {
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonResult {
    #[serde(default)]
    packages: Vec<serde_json::Value>,
    #[serde(default)]
    vulnerabilities: Vec<JsonVulnerability>,
    #[serde(default)]
    experimental_modified_findings: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonVulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    #[serde(default)]
    installed_version: String,
    #[serde(default)]
    fixed_version: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: String,
}

impl Report {
    /// Parses `trivy image --format json` output.
    pub fn from_trivy_json(text: &str) -> Result<Report> {
        let json: JsonReport =
            serde_json::from_str(text).context("Trivy's JSON report has an unexpected shape")?;
        let mut report = Report {
            trivy_version: json.trivy.map(|t| t.version).unwrap_or_default(),
            artifact: json.artifact_name,
            os: json.metadata.os.map(|os| format!("{} {}", os.family, os.name).trim().to_string()),
            packages: 0,
            findings: Vec::new(),
            suppressed: 0,
        };
        for result in json.results {
            report.packages += result.packages.len();
            report.suppressed += result.experimental_modified_findings.len();
            for v in result.vulnerabilities {
                report.findings.push(Finding {
                    severity: v.severity.parse().unwrap_or(Severity::Unknown),
                    id: v.vulnerability_id,
                    package: v.pkg_name,
                    installed: v.installed_version,
                    fixed: Some(v.fixed_version).filter(|f| !f.is_empty()),
                    title: v.title,
                });
            }
        }
        report
            .findings
            .sort_by(|a, b| (b.severity, &a.id, &a.package).cmp(&(a.severity, &b.id, &b.package)));
        Ok(report)
    }

    pub fn count(&self, severity: Severity) -> (usize, usize) {
        let of = self.findings.iter().filter(|f| f.severity == severity);
        let fixable = of.clone().filter(|f| f.fixed.is_some()).count();
        (of.count(), fixable)
    }
}

/// Which findings fail the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub severities: BTreeSet<Severity>,
    pub include_unfixed: bool,
}

impl Gate {
    /// Parses `--severity` (comma-separated names, any case).
    pub fn parse_severities(list: &str) -> Result<BTreeSet<Severity>, String> {
        let set = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<BTreeSet<Severity>, String>>()?;
        if set.is_empty() {
            return Err("--severity is empty: name at least one of UNKNOWN, LOW, MEDIUM, HIGH, \
                        CRITICAL"
                .into());
        }
        Ok(set)
    }

    pub fn blocks(&self, finding: &Finding) -> bool {
        self.severities.contains(&finding.severity)
            && (finding.fixed.is_some() || self.include_unfixed)
    }

    pub fn blocking<'r>(&self, report: &'r Report) -> Vec<&'r Finding> {
        report.findings.iter().filter(|f| self.blocks(f)).collect()
    }

    /// Findings of a gating severity not counted because they have no fix.
    pub fn unfixed_not_counted<'r>(&self, report: &'r Report) -> Vec<&'r Finding> {
        report
            .findings
            .iter()
            .filter(|f| self.severities.contains(&f.severity) && !self.blocks(f))
            .collect()
    }

    /// "2 fixable CRITICAL/HIGH findings (1 CVE)": what fails the gate, for the error line.
    pub fn verdict(&self, report: &Report) -> Option<String> {
        let blocking = self.blocking(report);
        if blocking.is_empty() {
            return None;
        }
        let ids: BTreeSet<&str> = blocking.iter().map(|f| f.id.as_str()).collect();
        let fixable = if self.include_unfixed { "" } else { " fixable" };
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        Some(format!(
            "{}{fixable} {} finding{} ({} CVE{})",
            blocking.len(),
            self.names(),
            plural(blocking.len()),
            ids.len(),
            plural(ids.len())
        ))
    }

    /// `CRITICAL/HIGH`, highest first.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.severities.iter().rev().map(|s| s.as_str()).collect();
        names.join("/")
    }

    fn describe(&self) -> String {
        let unfixed = if self.include_unfixed { "unfixed counted" } else { "unfixed ignored" };
        format!("{}, {unfixed}", self.names())
    }
}

/// The terminal summary: counts by severity, then the gating vulnerabilities.
pub fn summary_text(report: &Report, gate: &Gate, ignorefile: &str) -> String {
    let mut out = String::new();
    let os = report.os.as_deref().unwrap_or("no OS detected");
    let _ = writeln!(
        out,
        "Trivy {} scanned {} ({os}): {} packages, {} vulnerabilities",
        report.trivy_version,
        report.artifact,
        report.packages,
        report.findings.len()
    );
    let _ = writeln!(out, "  {:<10} {:>6} {:>8}  GATE", "SEVERITY", "TOTAL", "FIXABLE");
    for severity in Severity::ALL {
        let (total, fixable) = report.count(severity);
        let gates = if gate.severities.contains(&severity) { "yes" } else { "" };
        let line = format!("  {:<10} {total:>6} {fixable:>8}  {gates}", severity.as_str());
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if report.suppressed > 0 {
        let _ = writeln!(out, "  suppressed by {ignorefile}: {}", report.suppressed);
    }
    let blocking = gate.blocking(report);
    let verdict = if blocking.is_empty() { "passed" } else { "FAILED" };
    let _ = writeln!(out, "Gate ({}): {verdict}", gate.describe());
    if !blocking.is_empty() {
        let rows: Vec<[&str; 4]> = blocking
            .iter()
            .map(|f| {
                [
                    f.id.as_str(),
                    f.package.as_str(),
                    f.installed.as_str(),
                    f.fixed.as_deref().unwrap_or("(no fix)"),
                ]
            })
            .collect();
        let header = ["VULNERABILITY", "PACKAGE", "INSTALLED", "FIXED"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> =
                row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            let _ = writeln!(out, "  {}", line.join("  ").trim_end());
        }
    }
    let unfixed = gate.unfixed_not_counted(report);
    if !unfixed.is_empty() {
        let _ = writeln!(
            out,
            "  {} {} vulnerabilities have no fix yet and are not counted (--include-unfixed \
             counts them)",
            unfixed.len(),
            gate.names()
        );
    }
    out
}

/// The same summary as markdown, for `GITHUB_STEP_SUMMARY`.
pub fn summary_markdown(report: &Report, gate: &Gate, ignorefile: &str) -> String {
    let mut out = String::new();
    let blocking = gate.blocking(report);
    let icon = if blocking.is_empty() { "✅" } else { "❌" };
    let verdict = if blocking.is_empty() { "passed" } else { "failed" };
    let _ = writeln!(out, "### {icon} Trivy scan {verdict}: `{}`\n", md(&report.artifact));
    let _ = writeln!(
        out,
        "Trivy {}, {}, {} packages. Gate: {}.\n",
        report.trivy_version,
        report.os.as_deref().unwrap_or("no OS detected"),
        report.packages,
        gate.describe()
    );
    let _ = writeln!(out, "| Severity | Total | Fixable | Gates |\n|---|---:|---:|:---:|");
    for severity in Severity::ALL {
        let (total, fixable) = report.count(severity);
        let gates = if gate.severities.contains(&severity) { "✔" } else { "" };
        let _ = writeln!(out, "| {} | {total} | {fixable} | {gates} |", severity.as_str());
    }
    if report.suppressed > 0 {
        let _ = writeln!(out, "\n{} finding(s) suppressed by `{ignorefile}`.", report.suppressed);
    }
    if !blocking.is_empty() {
        let _ = writeln!(
            out,
            "\n| Vulnerability | Severity | Package | Installed | Fixed |\n|---|---|---|---|---|"
        );
        for f in blocking {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                md(&f.id),
                f.severity,
                md(&f.package),
                md(&f.installed),
                md(f.fixed.as_deref().unwrap_or("(no fix)"))
            );
        }
    }
    let unfixed = gate.unfixed_not_counted(report);
    if !unfixed.is_empty() {
        let _ = writeln!(
            out,
            "\n{} {} vulnerabilities without a fix are not counted.",
            unfixed.len(),
            gate.names()
        );
    }
    out
}

/// Escapes what would break a markdown table cell.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{
      "SchemaVersion": 2,
      "Trivy": {"Version": "0.76.0"},
      "ArtifactName": "xtask-scantest:1",
      "Metadata": {"OS": {"Family": "debian", "Name": "13.8"}},
      "Results": [
        {"Target": "xtask-scantest:1 (debian 13.8)", "Class": "os-pkgs",
         "Packages": [{"Name": "libc6"}, {"Name": "libgmp10"}, {"Name": "zlib1g"}],
         "Vulnerabilities": [
           {"VulnerabilityID": "CVE-1", "PkgName": "libgmp10", "InstalledVersion": "2:6.3.0",
            "FixedVersion": "2:6.3.1", "Severity": "LOW"},
           {"VulnerabilityID": "CVE-2", "PkgName": "libc6", "InstalledVersion": "2.41-12",
            "FixedVersion": "2.41-13", "Severity": "HIGH", "Title": "glibc: overflow"},
           {"VulnerabilityID": "CVE-3", "PkgName": "zlib1g", "InstalledVersion": "1:1.3",
            "Severity": "CRITICAL", "Status": "affected"}
         ],
         "ExperimentalModifiedFindings": [{"Status": "ignored"}]},
        {"Target": "usr/bin/splitter", "Class": "lang-pkgs", "Packages": [{"Name": "anyhow"}]}
      ]
    }"#;

    fn gate(list: &str, include_unfixed: bool) -> Gate {
        Gate { severities: Gate::parse_severities(list).expect("valid"), include_unfixed }
    }

    #[test]
    fn reads_trivy_json() {
        let r = Report::from_trivy_json(JSON).expect("parses");
        assert_eq!(r.trivy_version, "0.76.0");
        assert_eq!(r.os.as_deref(), Some("debian 13.8"));
        assert_eq!(r.packages, 4);
        assert_eq!(r.suppressed, 1);
        let ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["CVE-3", "CVE-2", "CVE-1"], "sorted by severity, highest first");
        assert_eq!(r.findings[0].fixed, None);
        assert_eq!(r.count(Severity::High), (1, 1));
        assert_eq!(r.count(Severity::Critical), (1, 0));
    }

    #[test]
    fn a_scratch_image_has_no_os_and_no_results() {
        let r = Report::from_trivy_json(r#"{"ArtifactName":"x","Metadata":{}}"#).expect("parses");
        assert_eq!((r.os, r.packages, r.findings.len()), (None, 0, 0));
    }

    #[test]
    fn the_gate_counts_fixed_vulnerabilities_of_gating_severities() {
        let r = Report::from_trivy_json(JSON).expect("parses");
        let default = gate("CRITICAL,HIGH", false);
        let ids = |g: &Gate| g.blocking(&r).iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&default), ["CVE-2"]);
        assert_eq!(ids(&gate("critical,high", true)), ["CVE-3", "CVE-2"]);
        assert_eq!(ids(&gate("LOW", false)), ["CVE-1"]);
        assert!(ids(&gate("MEDIUM", true)).is_empty());
        assert_eq!(default.unfixed_not_counted(&r).len(), 1);
    }

    #[test]
    fn severity_lists_are_validated() {
        assert!(Gate::parse_severities("HIGH,SEVERE").expect_err("bad").contains("SEVERE"));
        assert!(Gate::parse_severities(" , ").is_err());
        assert_eq!(gate("high,CRITICAL,high", false).names(), "CRITICAL/HIGH");
    }

    #[test]
    fn summaries_list_the_gating_vulnerabilities() {
        let r = Report::from_trivy_json(JSON).expect("parses");
        let g = gate("CRITICAL,HIGH", false);
        let text = summary_text(&r, &g, "container/.trivyignore");
        assert!(text.contains("Gate (CRITICAL/HIGH, unfixed ignored): FAILED"), "{text}");
        let row = text.lines().find(|l| l.contains("CVE-2")).expect("a row for CVE-2");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["CVE-2", "libc6", "2.41-12", "2.41-13"]);
        assert!(!text.contains("CVE-1"), "LOW is counted, not listed: {text}");
        assert!(text.contains("suppressed by container/.trivyignore: 1"), "{text}");
        assert!(text.contains("1 CRITICAL/HIGH vulnerabilities have no fix yet"), "{text}");
        let md = summary_markdown(&r, &g, "container/.trivyignore");
        assert!(md.contains("| CVE-2 | HIGH | libc6 | 2.41-12 | 2.41-13 |"), "{md}");
        assert!(md.contains("| LOW | 1 | 1 |  |"), "{md}");
        assert!(md.starts_with("### ❌"), "{md}");
        assert_eq!(g.verdict(&r).as_deref(), Some("1 fixable CRITICAL/HIGH finding (1 CVE)"));
        assert_eq!(
            gate("CRITICAL,HIGH,LOW", true).verdict(&r).as_deref(),
            Some("3 CRITICAL/HIGH/LOW findings (3 CVEs)")
        );
        assert!(gate("MEDIUM", false).verdict(&r).is_none());
        assert!(!text.lines().any(|l| l.ends_with(' ')), "no trailing spaces: {text:?}");
        let pass = summary_text(&r, &gate("MEDIUM", false), "i");
        assert!(pass.contains("Gate (MEDIUM, unfixed ignored): passed"), "{pass}");
    }
}
