//! INPUT and OUTPUT arguments: a local path or `s3://bucket/key`.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl Location {
    /// Parses an argument; `Err` explains what is wrong with an `s3://` URI.
    pub fn parse(arg: &str) -> Result<Location, String> {
        let Some(rest) = arg.strip_prefix("s3://") else {
            if arg.is_empty() {
                return Err("empty path".into());
            }
            return Ok(Location::Local(PathBuf::from(arg)));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
        if !valid_bucket {
            return Err(format!("{arg:?}: {bucket:?} is not a valid S3 bucket name"));
        }
        Ok(Location::S3 { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// For an output prefix: the key of `relative` under it.
    pub fn join_key(prefix: &str, relative: &str) -> String {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() { relative.to_string() } else { format!("{prefix}/{relative}") }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_and_s3() {
        assert_eq!(Location::parse("in.mp4"), Ok(Location::Local("in.mp4".into())));
        assert_eq!(
            Location::parse("s3://my-bucket/videos/a.mp4"),
            Ok(Location::S3 { bucket: "my-bucket".into(), key: "videos/a.mp4".into() })
        );
        assert_eq!(
            Location::parse("s3://my-bucket"),
            Ok(Location::S3 { bucket: "my-bucket".into(), key: String::new() })
        );
        assert!(Location::parse("s3://Bad_Bucket/x").is_err());
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("").is_err());
        assert_eq!(Location::join_key("out/", "manifest.json"), "out/manifest.json");
        assert_eq!(Location::join_key("", "manifest.json"), "manifest.json");
        assert_eq!(
            Location::parse("s3://b-1/k").map(|l| l.to_string()),
            Ok("s3://b-1/k".to_string())
        );
    }
}
