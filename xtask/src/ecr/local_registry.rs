//! The local switch's registry ([`super::Registry::Local`]): a pushed manifest read back from a
//! Distribution registry's HTTP API (plain HTTP/1.0, 127.0.0.1 only), its digest the sha256 of
//! the exact bytes and checked against `Docker-Content-Digest`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{MANIFEST_MEDIA_TYPES, Manifest, media_type_in, sha256_digest};

/// The manifest of `repo:tag` from a Distribution registry's HTTP API (the local switch).
pub fn registry_manifest(host: &str, repo: &str, tag: &str) -> Result<Manifest> {
    let path = format!("/v2/{repo}/manifests/{tag}");
    let response = http_get(host, &path, &MANIFEST_MEDIA_TYPES.join(", ")).with_context(|| {
        format!("cannot read the manifest of {repo}:{tag} from the local registry {host}: is the local stack up (`cargo xtask local status`)?")
    })?;
    if response.status != 200 {
        bail!(
            "the local registry {host} answered {} for {path}: the push did not land there; run `cargo xtask local status`",
            response.status
        );
    }
    let digest = sha256_digest(&response.body);
    if let Some(claimed) = response.header("docker-content-digest") {
        if claimed != digest {
            bail!(
                "the local registry {host} says {path} is {claimed} but its bytes hash to {digest}: restart the stack"
            );
        }
    }
    let content_type = response.header("content-type").map(str::to_owned);
    let text = String::from_utf8(response.body)
        .with_context(|| format!("the manifest of {repo}:{tag} is not UTF-8"))?;
    let media_type = content_type
        .or_else(|| media_type_in(&text))
        .unwrap_or_else(|| MANIFEST_MEDIA_TYPES[0].to_owned());
    Ok(Manifest { text, media_type, digest })
}

/// A response of [`http_get`].
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET path` over plain HTTP/1.0 (the local registry listens on 127.0.0.1 only).
fn http_get(host: &str, path: &str, accept: &str) -> Result<HttpResponse> {
    http_request(host, "GET", path, &[("Accept", accept)], &[])
}

/// One request over plain HTTP/1.0 with `body` (its `Content-Length` is added).
fn http_request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse> {
    let mut stream =
        TcpStream::connect(host).with_context(|| format!("cannot connect to {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    if method != "GET" && method != "HEAD" {
        head += &format!("Content-Length: {}\r\n", body.len());
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("cannot read from {host}"))?;
    parse_http_response(&raw, method != "HEAD")
}

/// Stores `blobs` (digest → bytes; those already there are skipped) and then `manifest` under
/// `tag` in `repo` of the local registry, through the Distribution HTTP API (monolithic
/// uploads: `POST …/blobs/uploads/`, then `PUT <location>&digest=…`).
pub fn registry_put_artifact(
    host: &str,
    repo: &str,
    blobs: &std::collections::BTreeMap<String, Vec<u8>>,
    manifest: &Manifest,
    tag: &str,
) -> Result<()> {
    let hint = "is the local stack up (`cargo xtask local status`)?";
    for (digest, bytes) in blobs {
        let there = http_request(host, "HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])
            .with_context(|| format!("cannot reach the local registry {host}: {hint}"))?;
        if there.status == 200 {
            continue;
        }
        let started = http_request(host, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])
            .with_context(|| format!("cannot start a blob upload to {host}: {hint}"))?;
        let location = match (started.status, started.header("location")) {
            (202, Some(location)) => location.to_owned(),
            (status, _) => bail!(
                "the local registry {host} answered {status} to a blob upload for {repo}: {hint}"
            ),
        };
        // The location may be absolute (`http://host/v2/…?_state=…`) or a path.
        let path = match location.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/".to_owned(), |i| rest[i..].to_owned()),
            None => location,
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let put = http_request(
            host,
            "PUT",
            &format!("{path}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )
        .with_context(|| format!("cannot upload blob {digest} to {host}"))?;
        if put.status != 201 {
            bail!(
                "the local registry {host} answered {} to blob {digest} of {repo}: {}",
                put.status,
                String::from_utf8_lossy(&put.body).trim()
            );
        }
    }
    let put = http_request(
        host,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", &manifest.media_type)],
        manifest.text.as_bytes(),
    )
    .with_context(|| format!("cannot put the manifest {repo}:{tag} to {host}"))?;
    if put.status != 201 {
        bail!(
            "the local registry {host} answered {} to the manifest {repo}:{tag}: {}",
            put.status,
            String::from_utf8_lossy(&put.body).trim()
        );
    }
    if let Some(claimed) = put.header("docker-content-digest") {
        if claimed != manifest.digest {
            bail!(
                "the local registry {host} stored {repo}:{tag} as {claimed}, not {}",
                manifest.digest
            );
        }
    }
    Ok(())
}

/// `with_body`: false for a HEAD request, whose `Content-Length` describes no body.
fn parse_http_response(raw: &[u8], with_body: bool) -> Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("incomplete HTTP response (no end of headers)")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if let Some(length) = length.filter(|_| with_body) {
        if body.len() < length {
            bail!("truncated HTTP body ({} of {length} bytes)", body.len());
        }
        body.truncate(length);
    }
    Ok(HttpResponse { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_parse() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDocker-Content-Digest: sha256:1\r\nContent-Length: 2\r\n\r\n{}trailing";
        let r = parse_http_response(raw, true).expect("parses");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("docker-content-digest"), Some("sha256:1"));
        assert_eq!(r.body, b"{}");
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n", true).is_err());
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}";
        assert!(parse_http_response(short, true).is_err());
        assert!(parse_http_response(short, false).is_ok());
    }
}
