//! S3 against a real `moto_server` on 127.0.0.1 that each test starts (and stops).

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn video() -> PathBuf {
    s3_video()
}

fn run(moto: &Moto, args: &[&str]) -> Run {
    run_against(moto, &moto.endpoint(), args, &[])
}

fn run_text(moto: &Moto, args: &[&str]) -> Run {
    run_against(moto, &moto.endpoint(), args, &[("SPLITTER_LOG_FORMAT", "text")])
}

#[tokio::test]
async fn s3_input_to_s3_output_is_frame_exact_and_verifies() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "videos").await;
    create_bucket(&client, "segments").await;
    let src = video();
    put_file(&client, "videos", "in/movie.mp4", &src).await;

    let out = run(
        &moto,
        &["split", "s3://videos/in/movie.mp4", "s3://segments/jobs/1", "--segment-seconds", "2"],
    );
    out.assert_ok();
    let manifest = manifest_at(&client, "segments", "jobs/1").await.expect("manifest written");
    assert_eq!(manifest["source"]["uri"], "s3://videos/in/movie.mp4");
    assert_eq!(manifest["source"]["sha256"], sha256_file(&src).as_str());
    // Every listed file is there, with its sha256 in the object metadata; nothing else is.
    let mut expected: Vec<String> =
        digests(&manifest).keys().map(|p| format!("jobs/1/{p}")).collect();
    expected.push("jobs/1/manifest.json".into());
    expected.sort();
    let mut keys = list_keys(&client, "segments", "jobs/1/").await;
    keys.sort();
    assert_eq!(keys, expected);
    for (path, sha) in digests(&manifest) {
        let head = client
            .head_object()
            .bucket("segments")
            .key(format!("jobs/1/{path}"))
            .send()
            .await
            .expect("head");
        assert_eq!(head.metadata().and_then(|m| m.get("sha256")), Some(&sha));
    }
    // Progress per file in the JSON logs.
    let uploads = out.json_logs().iter().filter(|l| l["message"] == "uploaded").count();
    assert_eq!(uploads, expected.len() - 1);

    let verify = run(&moto, &["verify", "s3://segments/jobs/1"]);
    verify.assert_ok();

    let local = TempDir::new("s3-download");
    download_prefix(&client, "segments", "jobs/1", local.path()).await;
    assert_frame_exact(&src, local.path());
}

#[tokio::test]
async fn failure_part_way_leaves_no_manifest_and_reruns_skip_what_is_there() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "out").await;
    let src = video();
    let s = path_str(&src);

    // A complete earlier run (2 s segments).
    run(&moto, &["split", s, "s3://out/job", "--segment-seconds", "2"]).assert_ok();
    assert!(manifest_at(&client, "out", "job").await.is_some());

    // A new run (3 s segments) that loses access after 5 requests: the stale-manifest delete,
    // then the first HEADs and PUTs; the rest is denied.
    moto.deny_after("5");
    let failed = run_text(
        &moto,
        &["split", s, "s3://out/job", "--segment-seconds", "3", "--upload-concurrency", "1"],
    );
    failed.assert_fails(5, "access denied");
    moto.deny_after("inf");
    assert!(
        manifest_at(&client, "out", "job").await.is_none(),
        "the old manifest was removed before writing and no new one was written"
    );
    // What is stored now: objects of the 2 s run and those the failed run managed to write.
    let mut stored = std::collections::BTreeMap::new();
    for key in list_keys(&client, "out", "job/").await {
        let head = client.head_object().bucket("out").key(&key).send().await.expect("head");
        let sha = head.metadata().and_then(|m| m.get("sha256")).cloned().unwrap_or_default();
        stored.insert(key, sha);
    }

    // The same run again: what the failed run uploaded is skipped, the rest uploaded.
    let rerun = run(&moto, &["split", s, "s3://out/job", "--segment-seconds", "3"]);
    rerun.assert_ok();
    let manifest = manifest_at(&client, "out", "job").await.expect("manifest");
    let already = digests(&manifest)
        .iter()
        .filter(|(path, sha)| stored.get(&format!("job/{path}")) == Some(*sha))
        .count();
    assert!(already >= 1, "the failed run uploaded something before access was lost");
    assert!(already < digests(&manifest).len(), "…but not everything");
    assert_eq!(rerun.completion()["skipped_existing"].as_u64(), Some(already as u64));
    assert_eq!(manifest["segment_seconds"], 3.0);
    // Stale objects of the 2 s run (more segments) are gone.
    let mut keys = list_keys(&client, "out", "job/").await;
    keys.sort();
    let mut expected: Vec<String> = digests(&manifest).keys().map(|p| format!("job/{p}")).collect();
    expected.push("job/manifest.json".into());
    expected.sort();
    assert_eq!(keys, expected);

    // And once more: everything is already there.
    let again = run(&moto, &["split", s, "s3://out/job", "--segment-seconds", "3"]);
    again.assert_ok();
    assert_eq!(
        again.completion()["skipped_existing"].as_u64(),
        Some(digests(&manifest).len() as u64)
    );
    run(&moto, &["verify", "s3://out/job"]).assert_ok();
}

#[tokio::test]
async fn large_files_are_uploaded_in_parts() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "out").await;
    let src = noise_12mb();
    let size = std::fs::metadata(&src).expect("stat").len();
    assert!(size > 10 << 20, "fixture is {size} bytes");
    let out = run(
        &moto,
        &[
            "split",
            path_str(&src),
            "s3://out/big",
            "--segment-seconds",
            "100",
            "--part-size-mib",
            "5",
        ],
    );
    out.assert_ok();
    let parts: Vec<u64> = out
        .json_logs()
        .iter()
        .filter(|l| l["message"] == "uploaded")
        .filter_map(|l| l["parts"].as_u64())
        .collect();
    assert_eq!(parts, vec![3], "one segment, uploaded in 3 parts");
    run(&moto, &["verify", "s3://out/big"]).assert_ok();
    let local = TempDir::new("multipart");
    download_prefix(&client, "out", "big", local.path()).await;
    assert_frame_exact(&src, local.path());
}

#[tokio::test]
async fn missing_object_bucket_and_access_denied() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "src-in").await;
    create_bucket(&client, "dst-out").await;
    put_file(&client, "src-in", "a.mp4", &video()).await;
    let dir = TempDir::new("s3-bad");
    let local_out = dir.join("out");
    let o = path_str(&local_out);

    run_text(&moto, &["split", "s3://src-in/missing.mp4", o])
        .assert_fails(3, "s3://src-in/missing.mp4 does not exist");
    run_text(&moto, &["split", "s3://no-such-bucket/a.mp4", o])
        .assert_fails(3, "bucket no-such-bucket does not exist");
    run_text(&moto, &["split", "s3://src-in/a.mp4", "s3://no-such-bucket/x"])
        .assert_fails(5, "output bucket no-such-bucket does not exist");
    assert!(!local_out.join("manifest.json").exists());
    assert!(list_keys(&client, "dst-out", "").await.is_empty());

    // From now on moto checks credentials: the test's dummy keys are not in its IAM.
    moto.deny_after("0");
    run_text(&moto, &["split", "s3://src-in/a.mp4", o])
        .assert_fails(3, "access denied reading s3://src-in/a.mp4");
    run_text(&moto, &["split", path_str(&video()), "s3://dst-out/x"])
        .assert_fails(5, "access denied");
    assert!(!local_out.join("manifest.json").exists());
}

/// An ffmpeg that reads its first input at 4× real time (the splitter's cut pass reads the
/// source as its first input), so an 8 s cut takes 2 s: long enough to see what the splitter
/// does while ffmpeg is still cutting.
fn ffmpeg_at_4x(dir: &Path) -> PathBuf {
    let path = dir.join("ffmpeg-at-4x");
    write_script(&path, "#!/bin/sh\nexec \"${SPLITTER_TEST_FFMPEG:-ffmpeg}\" -readrate 4 \"$@\"\n");
    path
}

#[tokio::test]
async fn segments_upload_while_ffmpeg_cuts_unless_sequential() {
    let moto = Moto::start();
    let client = moto.client().await;
    create_bucket(&client, "out").await;
    let src = video();
    let tools = TempDir::new("ffmpeg-4x");
    let wrapper = ffmpeg_at_4x(tools.path());
    let mut manifests = Vec::new();
    for (sequential, prefix) in [(false, "overlapped"), (true, "sequential")] {
        let mut env = moto.env();
        env.push(("SPLITTER_FFMPEG", path_str(&wrapper).to_string()));
        env.push(("SPLITTER_SEQUENTIAL", sequential.to_string()));
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = format!("s3://out/{prefix}");
        let run = splitter(&["split", path_str(&src), &output, "--segment-seconds", "1"], &refs);
        run.assert_ok();
        // RFC 3339 UTC timestamps of one format: their text order is their time order.
        let times = |message: &str| -> Vec<String> {
            run.json_logs()
                .iter()
                .filter(|l| l["message"] == message)
                .map(|l| l["timestamp"].as_str().expect("timestamp").to_string())
                .collect()
        };
        let last_cut = times("segment written").into_iter().max().expect("segments written");
        let uploads = times("uploaded");
        assert_eq!(uploads.len(), 9, "8 segments and the audio");
        let first_upload = uploads.into_iter().min().expect("uploads");
        if sequential {
            assert!(first_upload > last_cut, "{first_upload} after the cut ({last_cut})");
        } else {
            assert!(first_upload < last_cut, "{first_upload} while ffmpeg cuts ({last_cut})");
        }
        manifests.push(manifest_at(&client, "out", prefix).await.expect("manifest"));
    }
    assert_eq!(digests(&manifests[0]), digests(&manifests[1]), "the same files either way");
    let local = TempDir::new("overlapped");
    download_prefix(&client, "out", "overlapped", local.path()).await;
    assert_frame_exact(&src, local.path());
}
