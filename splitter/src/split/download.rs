//! An S3 input: downloaded into a work directory (hashed on the way, resumed where it broke),
//! and read by ffmpeg while it arrives when its container allows it (fast-start MP4, Matroska,
//! MPEG-TS; see [`probe::readiness`]): the probe waits for the head of the file only, and the
//! cut's first pass reads the rest on its stdin as it comes. Other inputs (an MP4 whose index is
//! at the end, AVI, MPEG-PS, …) are downloaded first.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aws_sdk_s3::Client;
use tokio::task::JoinHandle;

use crate::error::{Kind, fail};
use crate::growing::{Arrival, Growing, State};
use crate::hash::FileDigest;
use crate::output::WorkDir;
use crate::probe::{self, Readiness};
use crate::s3;

pub(super) struct Download {
    /// Holds the file; removed when the download is dropped.
    _work: WorkDir,
    pub(super) path: PathBuf,
    growing: Growing,
    task: Option<JoinHandle<Result<s3::Fetched>>>,
    digest: Option<FileDigest>,
    /// ffmpeg's first pass reads the input while it arrives.
    pub(super) streamed: bool,
}

impl Download {
    /// Starts downloading `s3://bucket/key` into a new work directory and returns once the
    /// input can be probed: its head is on disk (streamed) or all of it (otherwise, and always
    /// when `sequential`). The head is sniffed (not media: one line, nothing more downloaded).
    pub(super) async fn start(
        work_dir: &Path,
        client: &Client,
        bucket: &str,
        key: &str,
        shown: &str,
        sequential: bool,
    ) -> Result<Download> {
        let work = WorkDir::create(work_dir, Kind::Other)?;
        let name = Path::new(key)
            .extension()
            .map_or("input".to_string(), |e| format!("input.{}", e.to_string_lossy()));
        let path = work.path().join(name);
        let (arrival, growing) = Arrival::new(&path);
        tracing::info!(input = %shown, "downloading");
        let task = {
            let (client, bucket, key, path) =
                (client.clone(), bucket.to_string(), key.to_string(), path.clone());
            tokio::spawn(async move {
                s3::download_arriving(&client, &bucket, &key, &path, arrival).await
            })
        };
        let mut download = Download {
            _work: work,
            path,
            growing,
            task: Some(task),
            digest: None,
            streamed: false,
        };
        let readiness = match sequential {
            true => Readiness::AfterDownload("--sequential"),
            false => download.readiness().await,
        };
        let needed = match readiness {
            Readiness::Stream { probe_after } => {
                tracing::info!("reading the input while it downloads");
                download.streamed = true;
                probe_after
            }
            Readiness::AfterDownload(reason) => {
                tracing::info!(reason, "downloading the whole input before reading it");
                u64::MAX
            }
            Readiness::NeedMore => u64::MAX,
        };
        if download.growing.wait_for(needed).await.ended() {
            // Complete (its digest), or failed (its error).
            download.finish().await?;
        }
        probe::sniff_content(&download.path).map_err(|e| {
            let path = download.path.display().to_string();
            let message = crate::error::one_line(&e).replace(&path, shown);
            fail(crate::error::kind_of(&e), message)
        })?;
        Ok(download)
    }

    /// How the input can be read, decided from its first bytes as they arrive.
    async fn readiness(&self) -> Readiness {
        let mut seen = 0;
        loop {
            let state = self.growing.wait_for(seen + 1).await;
            seen = state.bytes();
            let mut head = vec![0u8; 512.min(usize::try_from(seen).unwrap_or(512))];
            let container = match self.growing.read_at(0, &mut head) {
                true => probe::container_from_magic(&head),
                false => None,
            };
            let readiness = probe::readiness(container, state.ended(), |offset| {
                let mut header = [0u8; 16];
                self.growing.read_at(offset, &mut header).then(|| probe::mp4_box(&header))
            });
            if readiness != Readiness::NeedMore || state.ended() {
                return readiness;
            }
        }
    }

    /// The input for the cut's first pass to read as it arrives; `None` once it is complete.
    pub(super) fn arriving(&self) -> Option<&Growing> {
        (self.streamed && !matches!(self.growing.state(), State::Complete(_)))
            .then_some(&self.growing)
    }

    /// Whether the download has failed (its error comes from [`Download::finish`]).
    pub(super) fn failed(&self) -> bool {
        matches!(self.growing.state(), State::Failed(_))
    }

    /// Waits for the end of the download: the input's digest, or the download's error.
    pub(super) async fn finish(&mut self) -> Result<FileDigest> {
        if let Some(task) = self.task.take() {
            let fetched = task.await.context("the download task failed")??;
            let bytes = fetched.digest.bytes;
            tracing::info!(bytes, check = fetched.check, "downloaded");
            self.digest = Some(fetched.digest);
        }
        self.digest.clone().context("the download did not finish")
    }

    /// Stops the download (the split failed for another reason).
    pub(super) fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
