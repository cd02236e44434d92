//! An S3 input: downloaded into a work directory (hashed on the way, resumed where it broke),
//! and read by ffmpeg while it arrives when its container allows it (MP4, Matroska, MPEG-TS;
//! see [`probe::readiness`]): the probe waits for the head of the file only, and the cut's
//! first pass reads the rest on its stdin as it comes. An MP4 whose index (`moov`) follows the
//! media data gets its index first, with a ranged GET of the object's end, put in front of the
//! media data ([`faststart`]). Other inputs (AVI, MPEG-PS, …) are downloaded first.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aws_sdk_s3::Client;
use tokio::task::JoinHandle;

use crate::error::{Kind, fail};
use crate::faststart;
use crate::growing::{Arrival, Growing, Splice, State};
use crate::hash::FileDigest;
use crate::output::WorkDir;
use crate::probe::{self, PROBE_MARGIN, Readiness};
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
    /// What the probe reads: `path`, or for an index fetched from the end, a copy of the head
    /// of the input as ffmpeg is fed it (the index in front of the first media data).
    pub(super) probe_path: PathBuf,
    /// The index fetched from the end (its offset and bytes), checked against the download.
    fetched_index: Option<(u64, Vec<u8>)>,
}

/// The largest index fetched ahead from the end of an object (a 20 000 s, 25 fps video has
/// one of about 4 MB).
const MAX_FETCHED_INDEX: u64 = 64 << 20;

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
            probe_path: path.clone(),
            path,
            growing,
            task: Some(task),
            digest: None,
            streamed: false,
            fetched_index: None,
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
            Readiness::IndexAfterMedia { media } => {
                match download.index_ahead(client, bucket, key, media).await? {
                    Ok(probe_after) => {
                        tracing::info!(
                            index = "fetched from the end of the object first",
                            "reading the input while it downloads"
                        );
                        download.streamed = true;
                        probe_after
                    }
                    Err(reason) => {
                        tracing::info!(reason, "downloading the whole input before reading it");
                        u64::MAX
                    }
                }
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
        if download.fetched_index.is_some() && download.streamed {
            download.write_probe_head(needed)?;
        }
        probe::sniff_content(&download.path).map_err(|e| {
            let path = download.path.display().to_string();
            let message = crate::error::one_line(&e).replace(&path, shown);
            fail(crate::error::kind_of(&e), message)
        })?;
        Ok(download)
    }

    /// For an MP4 whose index follows its `media` data: fetches the index from the end of the
    /// object and sets the feed up to give it before the media data. `Ok(Ok(n))`: probe once
    /// `n` bytes are on disk; `Ok(Err(reason))`: it cannot be done simply, download first.
    async fn index_ahead(
        &mut self,
        client: &Client,
        bucket: &str,
        key: &str,
        media: std::ops::Range<u64>,
    ) -> Result<Result<u64, &'static str>> {
        let Some(tail) = s3::tail(client, bucket, key, media.end, MAX_FETCHED_INDEX).await? else {
            return Ok(Err(
                "its index (moov box), after the media data, is too large to fetch first",
            ));
        };
        let Some(index) = faststart::find_moov(&tail) else {
            return Ok(Err("no index (moov box) follows its media data"));
        };
        let moved = faststart::relocate(&tail[index.clone()], index.len() as u64);
        let Some(moved) = moved else {
            return Ok(Err("its index (moov box) cannot be moved in front of the media data"));
        };
        let offset = media.end + index.start as u64;
        self.fetched_index = Some((offset, tail[index].to_vec()));
        let probe_after = media.start.saturating_add(PROBE_MARGIN).min(media.end);
        self.growing =
            self.growing.clone().spliced(Splice { at: media.start, insert: moved, end: media.end });
        Ok(Ok(probe_after))
    }

    /// Writes the head of the input as the feed gives it (see [`Growing::spliced`]), the first
    /// `upto` bytes of the file with the index inserted, for the probe (streamed: `upto` is
    /// 16 MiB past the index).
    fn write_probe_head(&mut self, upto: u64) -> Result<()> {
        use std::io::{Read, Write};
        let head = self.path.with_extension("head.mp4");
        let spliced = self.growing.splice().context("no splice")?;
        let upto = upto.min(self.growing.state().bytes());
        let at = spliced.at.min(upto);
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::open(&self.path)?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&head)?);
            std::io::copy(&mut (&mut file).take(at), &mut out)?;
            out.write_all(&spliced.insert)?;
            std::io::copy(&mut file.take(upto - at), &mut out)?;
            out.flush()
        };
        write().with_context(|| format!("writing {}", head.display()))?;
        self.probe_path = head;
        Ok(())
    }

    /// For an index fetched ahead: whether the complete download holds that same index (the
    /// object did not change between the two reads).
    pub(super) fn check_fetched_index(&self, shown: &str) -> Result<()> {
        let Some((offset, index)) = &self.fetched_index else { return Ok(()) };
        let mut on_disk = vec![0u8; index.len()];
        if self.growing.read_at(*offset, &mut on_disk) && &on_disk == index {
            return Ok(());
        }
        Err(fail(
            Kind::InputUnreadable,
            format!(
                "{shown} changed while it was being downloaded (its index differs); run the job again"
            ),
        ))
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
