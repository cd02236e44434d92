//! What happens to each segment file once ffmpeg closes it, while ffmpeg cuts the next ones:
//! it is hashed (the hashing threads), its video packets are listed for the read-back (an MP4
//! from its sample tables, others by one ffmpeg run per batch of the segments closed so far,
//! [`readback::list_packets`]), and for an
//! S3 output it is uploaded and then deleted from the work directory. The scratch space then
//! holds the input plus the segments in flight, not every segment, and the upload overlaps the
//! cut. The read-back's verdict comes after the cut (it needs the source's whole packet list),
//! from the listings, which stay; the manifest is still written last.
//!
//! Work in flight is bounded (a few batches, bounded as `listing` bounds them), so memory does not
//! grow with the number of segments beyond one small record per segment.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::hash::{FileDigest, HashQueue, Pending};
use crate::listing;
use crate::manifest;
use crate::output::{OutputFile, Sink};
use crate::readback;
use crate::s3::Upload;
use crate::tools::Tools;

/// Batches being listed at once (each one ffmpeg run, bounded as `listing` bounds them).
const BATCHES: usize = listing::CONCURRENT_BATCHES;
/// Segments being stored at once, per upload permit.
const IN_FLIGHT: usize = 2;

/// A segment file ffmpeg has closed.
struct Closed {
    index: usize,
    path: PathBuf,
    /// Its size (for the bytes waiting to be uploaded).
    bytes: u64,
    hash: Pending,
}

enum Message {
    Closed(Closed),
    /// Forget every segment sent so far (the fast path's cuts were not frame-exact), once the
    /// work on them has stopped; then answer.
    Discard(oneshot::Sender<()>),
}

/// A segment through the pipeline.
#[derive(Debug)]
pub(crate) struct Finished {
    pub index: usize,
    /// The segment file (deleted when `stored`).
    pub path: PathBuf,
    pub digest: FileDigest,
    /// Its video packets as ffmpeg lists them (framecrc), for the read-back.
    pub listing: PathBuf,
    /// What the upload did (S3 output); `None` for a local output, published at the end.
    pub stored: Option<Upload>,
}

/// Where the cutter hands over each segment file it closes.
#[derive(Clone, Debug)]
pub(crate) struct Segments {
    sender: mpsc::UnboundedSender<Message>,
    hashes: HashQueue,
}

impl Segments {
    /// Segment `index` is in `path`, closed: it is hashed and goes through the pipeline.
    pub(crate) fn closed(&self, index: usize, path: PathBuf) {
        let hash = self.hashes.submit(path.clone());
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        // A send fails only when the pipeline has stopped on an error, which `finish` reports.
        let _ = self.sender.send(Message::Closed(Closed { index, path, bytes, hash }));
    }

    /// Forgets the segments sent so far, once nothing is being done with them any more (no
    /// upload of theirs can land after a later one of the same name).
    pub(crate) async fn discard(&self) {
        let (reply, done) = oneshot::channel();
        if self.sender.send(Message::Discard(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

/// What every segment goes through.
struct Work {
    tools: Tools,
    sink: Sink,
    extension: &'static str,
    /// Segments are uploaded (and deleted) as they come: an S3 output, not `--sequential`.
    /// Otherwise they are published at the end.
    uploads: bool,
    /// Segments being stored at once (bounds the tasks, not the requests: the uploader does).
    in_flight: Arc<Semaphore>,
    /// Bytes of closed segments still in the work directory (not uploaded yet).
    pending: watch::Sender<u64>,
}

/// The running pipeline: [`Pipeline::segments`] feeds it, [`Pipeline::finish`] collects it.
pub(crate) struct Pipeline {
    segments: Segments,
    pending: watch::Receiver<u64>,
    task: JoinHandle<Result<Vec<Finished>>>,
}

impl Pipeline {
    pub(crate) fn start(
        tools: &Tools,
        hashes: &HashQueue,
        sink: &Sink,
        extension: &'static str,
        upload_now: bool,
        upload_concurrency: usize,
    ) -> Pipeline {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (pending, _) = watch::channel(0);
        let work = Arc::new(Work {
            tools: tools.clone(),
            sink: sink.clone(),
            extension,
            uploads: upload_now && matches!(sink, Sink::S3 { .. }),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT * upload_concurrency.max(1))),
            pending,
        });
        let pending = work.pending.subscribe();
        let segments = Segments { sender, hashes: hashes.clone() };
        Pipeline { segments, pending, task: tokio::spawn(run(receiver, work)) }
    }

    /// Bytes of closed segments waiting in the work directory to be uploaded: what a feed
    /// holds back on (see [`crate::growing::Growing::held_back`]).
    pub(crate) fn pending(&self) -> watch::Receiver<u64> {
        self.pending.clone()
    }

    pub(crate) fn segments(&self) -> &Segments {
        &self.segments
    }

    /// Resolves only when the pipeline stopped early, on an error (to stop the cut).
    pub(crate) async fn failed(&mut self) -> anyhow::Error {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => anyhow::anyhow!("the segment pipeline stopped early"),
            Err(e) => anyhow::anyhow!("the segment pipeline failed: {e}"),
        }
    }

    /// Waits for every segment sent; they come back in index order.
    pub(crate) async fn finish(self) -> Result<Vec<Finished>> {
        drop(self.segments);
        let mut finished = self.task.await.context("the segment pipeline failed")??;
        finished.sort_by_key(|f| f.index);
        Ok(finished)
    }
}

async fn run(
    mut receiver: mpsc::UnboundedReceiver<Message>,
    work: Arc<Work>,
) -> Result<Vec<Finished>> {
    let (results_to, mut results) = mpsc::unbounded_channel();
    let mut queue: Vec<Closed> = Vec::new();
    let mut batches: JoinSet<Result<()>> = JoinSet::new();
    // Segments handed to a batch whose result has not come back yet.
    let mut outstanding = 0usize;
    let mut finished = Vec::new();
    let mut open = true;
    loop {
        while !queue.is_empty() && batches.len() < BATCHES {
            let mut fill = listing::BatchFill::default();
            let mut take = 0;
            while take < queue.len() && fill.fits(queue[take].bytes) {
                fill.add(queue[take].bytes);
                take += 1;
            }
            let batch: Vec<Closed> = queue.drain(..take).collect();
            outstanding += batch.len();
            batches.spawn(list_then_store(batch, Arc::clone(&work), results_to.clone()));
        }
        if !open && queue.is_empty() && outstanding == 0 {
            return Ok(finished);
        }
        tokio::select! {
            message = receiver.recv(), if open => match message {
                None => open = false,
                // While every batch slot is busy, the next batch grows.
                Some(Message::Closed(closed)) => {
                    if work.uploads {
                        work.pending.send_modify(|bytes| *bytes += closed.bytes);
                    }
                    queue.push(closed);
                }
                Some(Message::Discard(reply)) => {
                    // Waited for, not aborted: a request cancelled half-way could still land.
                    queue.clear();
                    while batches.join_next().await.is_some() {}
                    while outstanding > 0 && results.recv().await.is_some() {
                        outstanding -= 1;
                    }
                    outstanding = 0;
                    finished.clear();
                    work.pending.send_replace(0);
                    let _ = reply.send(());
                }
            },
            Some(done) = batches.join_next(), if !batches.is_empty() => {
                done.context("a segment task failed")??;
            }
            Some(result) = results.recv(), if outstanding > 0 => {
                outstanding -= 1;
                finished.push(result?);
            }
        }
    }
}

/// One batch: listed by one ffmpeg run, then each segment stored by a task of its own (at
/// most [`IN_FLIGHT`] per upload permit at once), its result sent to `results`.
async fn list_then_store(
    batch: Vec<Closed>,
    work: Arc<Work>,
    results: mpsc::UnboundedSender<Result<Finished>>,
) -> Result<()> {
    let files: Vec<PathBuf> = batch.iter().map(|c| c.path.clone()).collect();
    let listings: Vec<PathBuf> = files.iter().map(|f| f.with_extension("crc")).collect();
    readback::list_packets(&work.tools, &files, &listings).await?;
    for (closed, listing) in batch.into_iter().zip(listings) {
        let permit = Arc::clone(&work.in_flight).acquire_owned().await?;
        let (work, results) = (Arc::clone(&work), results.clone());
        tokio::spawn(async move {
            let result = store(closed, listing, &work).await;
            drop(permit);
            let _ = results.send(result);
        });
    }
    Ok(())
}

/// A listed segment, once hashed: uploaded and deleted (S3 output, unless sequential).
async fn store(closed: Closed, listing: PathBuf, work: &Work) -> Result<Finished> {
    let digest = closed.hash.wait().await.context("hashing a segment")?;
    let file = OutputFile {
        local: closed.path,
        relative: manifest::segment_path(closed.index, work.extension),
        digest,
    };
    let stored = match work.uploads {
        true => work.sink.store_now(&file).await?,
        false => None,
    };
    if stored.is_some() {
        std::fs::remove_file(&file.local)
            .with_context(|| format!("removing {}", file.local.display()))?;
        work.pending.send_modify(|bytes| *bytes = bytes.saturating_sub(closed.bytes));
    }
    Ok(Finished { index: closed.index, path: file.local, digest: file.digest, listing, stored })
}
