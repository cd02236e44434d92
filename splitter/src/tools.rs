//! Finding ffmpeg and ffprobe and checking they are recent enough.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use tokio::process::Command;

use crate::error::{Kind, fail};

/// Oldest ffmpeg release the splitter supports (Debian 12 ships 5.1).
pub const MIN_VERSION: &str = "5.1";
/// libavformat of ffmpeg 5.1: what is actually checked (release strings vary by packager).
pub const MIN_LIBAVFORMAT: (u32, u32) = (59, 27);

/// The ffmpeg and ffprobe executables to run.
#[derive(Clone, Debug)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// ffmpeg's version string, e.g. "7.1.1" (recorded in the manifest).
    pub ffmpeg_version: String,
}

/// Parsed `-version` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub release: String,
    pub libavformat: Option<(u32, u32)>,
}

/// Parses the output of `ffmpeg -version` / `ffprobe -version`.
pub fn parse_version(program: &str, output: &str) -> Option<VersionInfo> {
    let first = output.lines().next()?;
    let prefix = format!("{program} version ");
    let release = first.strip_prefix(&prefix)?.split_whitespace().next()?.to_string();
    let libavformat = output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("libavformat")?;
        let version = rest.split('/').next()?.trim();
        let mut parts = version.split('.').map(|p| p.trim().parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        Some((major, minor))
    });
    Some(VersionInfo { release, libavformat })
}

/// Release numbers at the start of a version string: "5.1.9-0+deb12u1" → (5, 1),
/// "n7.1" → (7, 1). Git builds ("N-113000-g…") have none.
fn release_numbers(release: &str) -> Option<(u32, u32)> {
    let s = release.strip_prefix('n').unwrap_or(release);
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Whether this version is new enough: decided on libavformat when it is printed, else on
/// the release number. `None` when it cannot be told (a git build without library lines).
pub fn is_supported(info: &VersionInfo) -> Option<bool> {
    if let Some(lavf) = info.libavformat {
        return Some(lavf >= MIN_LIBAVFORMAT);
    }
    let min = release_numbers(MIN_VERSION)?;
    release_numbers(&info.release).map(|v| v >= min)
}

/// Runs `PROGRAM -version` and checks the version.
pub async fn check(program: &str, path: &OsStr) -> Result<VersionInfo> {
    let shown = PathBuf::from(path).display().to_string();
    let env_var = format!("SPLITTER_{}", program.to_uppercase());
    let child = Command::new(path)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            fail(
                Kind::Tools,
                format!(
                    "{program} not found or not runnable ({shown}: {e}); install ffmpeg \
                     {MIN_VERSION} or newer, or point {env_var} at it"
                ),
            )
        })?;
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| fail(Kind::Tools, format!("{shown} -version did not answer in 30 s")))?
        .map_err(|e| fail(Kind::Tools, format!("running {shown} -version: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let info =
        parse_version(program, &stdout).filter(|_| output.status.success()).ok_or_else(|| {
            fail(
                Kind::Tools,
                format!(
                    "{shown} does not look like {program} (`-version` printed {:?}); point \
                     {env_var} at ffmpeg {MIN_VERSION} or newer",
                    stdout.lines().next().unwrap_or("nothing")
                ),
            )
        })?;
    match is_supported(&info) {
        Some(true) => Ok(info),
        Some(false) => Err(fail(
            Kind::Tools,
            format!(
                "{program} {} at {shown} is too old: the splitter needs ffmpeg {MIN_VERSION} or \
                 newer (libavformat {}.{}+); point {env_var} at a newer build",
                info.release, MIN_LIBAVFORMAT.0, MIN_LIBAVFORMAT.1
            ),
        )),
        None => {
            tracing::warn!(
                program,
                version = %info.release,
                "cannot tell whether this {program} build is at least {MIN_VERSION}; assuming it is"
            );
            Ok(info)
        }
    }
}

impl Tools {
    /// Checks both tools (concurrently) and returns them.
    pub async fn locate(ffmpeg: Option<PathBuf>, ffprobe: Option<PathBuf>) -> Result<Tools> {
        let ffmpeg = ffmpeg.unwrap_or_else(|| PathBuf::from("ffmpeg"));
        let ffprobe = ffprobe.unwrap_or_else(|| PathBuf::from("ffprobe"));
        let (mpeg, probe) = tokio::join!(
            check("ffmpeg", ffmpeg.as_os_str()),
            check("ffprobe", ffprobe.as_os_str())
        );
        let mpeg = mpeg?;
        probe?;
        tracing::debug!(ffmpeg = %ffmpeg.display(), version = %mpeg.release, "ffmpeg found");
        Ok(Tools { ffmpeg, ffprobe, ffmpeg_version: mpeg.release })
    }

    pub fn ffmpeg(&self) -> Command {
        let mut cmd = Command::new(&self.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    pub fn ffprobe(&self) -> Command {
        ffprobe_command(&self.ffprobe)
    }
}

/// The last non-empty line a tool printed on stderr: its reason, by ffmpeg's convention.
pub fn last_line(stderr: &str) -> &str {
    stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no details")
}

pub fn ffprobe_command(path: &std::path::Path) -> Command {
    let mut cmd = Command::new(path);
    cmd.args(["-hide_banner", "-loglevel", "error"]).stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// The version ffprobe reports in its JSON (`-show_program_version -show_library_versions`),
/// so the probe itself checks ffprobe without another process.
pub fn version_from_json(json: &serde_json::Value) -> Option<VersionInfo> {
    let release = json.get("program_version")?.get("version")?.as_str()?.to_string();
    let libavformat = json.get("library_versions").and_then(|v| v.as_array()).and_then(|libs| {
        libs.iter()
            .find(|l| l.get("name").and_then(|n| n.as_str()) == Some("libavformat"))
            .and_then(|l| {
                let major = l.get("major")?.as_u64()?;
                let minor = l.get("minor")?.as_u64()?;
                Some((u32::try_from(major).ok()?, u32::try_from(minor).ok()?))
            })
    });
    Some(VersionInfo { release, libavformat })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_12: &str =
        "ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers
built with gcc 12 (Debian 12.2.0-14+deb12u1)
libavutil      57. 28.100 / 57. 28.100
libavformat    59. 27.100 / 59. 27.100
";

    #[test]
    fn debian_versions_are_parsed_from_libavformat() {
        let info = parse_version("ffmpeg", DEBIAN_12).expect("parse");
        assert_eq!(info.release, "5.1.9-0+deb12u1");
        assert_eq!(info.libavformat, Some((59, 27)));
        assert_eq!(is_supported(&info), Some(true));
        let old = "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright\nlibavformat    58. 76.100 / 58. 76.100\n";
        assert_eq!(is_supported(&parse_version("ffmpeg", old).expect("parse")), Some(false));
        let trixie =
            "ffprobe version 7.1.1-1+b1 Copyright\nlibavformat    61.  7.100 / 61.  7.100\n";
        let info = parse_version("ffprobe", trixie).expect("parse");
        assert_eq!(info.libavformat, Some((61, 7)));
        assert_eq!(is_supported(&info), Some(true));
    }

    #[test]
    fn ffprobe_json_carries_the_version() {
        let json = serde_json::json!({
            "program_version": {"version": "5.1.9-0+deb12u1"},
            "library_versions": [{"name": "libavutil", "major": 57, "minor": 28},
                                 {"name": "libavformat", "major": 59, "minor": 27}]
        });
        let info = version_from_json(&json).expect("version");
        assert_eq!(info.libavformat, Some((59, 27)));
        assert_eq!(is_supported(&info), Some(true));
        assert_eq!(version_from_json(&serde_json::json!({"streams": []})), None);
    }

    #[test]
    fn release_strings_without_library_lines() {
        let info = VersionInfo { release: "n5.0.3".into(), libavformat: None };
        assert_eq!(is_supported(&info), Some(false));
        let info = VersionInfo { release: "6.1".into(), libavformat: None };
        assert_eq!(is_supported(&info), Some(true));
        let git = VersionInfo { release: "N-113000-g1234abcd".into(), libavformat: None };
        assert_eq!(is_supported(&git), None);
        assert_eq!(parse_version("ffmpeg", "something else"), None);
        assert_eq!(parse_version("ffmpeg", ""), None);
    }
}
