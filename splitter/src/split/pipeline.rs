//! What happens to each segment file once ffmpeg closes it, while ffmpeg cuts the next ones:
//! it is hashed (the hashing threads), its video packets are listed for the read-back (one
//! ffmpeg run per batch of the segments closed so far, [`readback::list_packets`]), and for an
//! S3 output it is uploaded and then deleted from the work directory. The scratch space then
//! holds the input plus the segments in flight, not every segment, and the upload overlaps the
//! cut. The read-back's verdict comes after the cut (it needs the source's whole packet list),
//! from the listings, which stay; the manifest is still written last.
//!
//! Work in flight is bounded (a few batches of at most [`BATCH`] segments), so memory does not
//! grow with the number of segments beyond one small record per segment.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::hash::{FileDigest, Pending};
use crate::manifest;
use crate::output::{OutputFile, Sink};
use crate::readback;
use crate::s3::{Upload, join_all};
use crate::tools::Tools;

/// Segments listed by one ffmpeg run (and uploaded together) at most.
pub const BATCH: usize = 64;
/// Batches in flight at once.
const BATCHES: usize = 2;

/// A segment file ffmpeg has closed.
struct Closed {
    index: usize,
    path: PathBuf,
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
}

impl Segments {
    pub(crate) fn closed(&self, index: usize, path: PathBuf, hash: Pending) {
        // A send fails only when the pipeline has stopped on an error, which `finish` reports.
        let _ = self.sender.send(Message::Closed(Closed { index, path, hash }));
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
    /// Upload (S3) as segments come; otherwise they are published at the end.
    upload_now: bool,
}

/// The running pipeline: [`Pipeline::segments`] feeds it, [`Pipeline::finish`] collects it.
pub(crate) struct Pipeline {
    segments: Segments,
    task: JoinHandle<Result<Vec<Finished>>>,
}

impl Pipeline {
    pub(crate) fn start(
        tools: &Tools,
        sink: &Sink,
        extension: &'static str,
        upload_now: bool,
    ) -> Pipeline {
        let (sender, receiver) = mpsc::unbounded_channel();
        let sink = sink.clone();
        let context = Arc::new(Work { tools: tools.clone(), sink, extension, upload_now });
        Pipeline { segments: Segments { sender }, task: tokio::spawn(run(receiver, context)) }
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
    context: Arc<Work>,
) -> Result<Vec<Finished>> {
    let mut queue: Vec<Closed> = Vec::new();
    let mut batches: JoinSet<Result<Vec<Finished>>> = JoinSet::new();
    let mut finished = Vec::new();
    let mut open = true;
    loop {
        while !queue.is_empty() && batches.len() < BATCHES {
            let batch: Vec<Closed> = queue.drain(..queue.len().min(BATCH)).collect();
            batches.spawn(process(batch, Arc::clone(&context)));
        }
        if !open && queue.is_empty() && batches.is_empty() {
            return Ok(finished);
        }
        tokio::select! {
            message = receiver.recv(), if open => match message {
                None => open = false,
                // While both batches are busy, the next one grows (to BATCH).
                Some(Message::Closed(closed)) => queue.push(closed),
                Some(Message::Discard(reply)) => {
                    // Waited for, not aborted: a request cancelled half-way could still land.
                    queue.clear();
                    while batches.join_next().await.is_some() {}
                    finished.clear();
                    let _ = reply.send(());
                }
            },
            Some(done) = batches.join_next(), if !batches.is_empty() => {
                finished.extend(done.context("a segment task failed")??);
            }
        }
    }
}

/// One batch: listed by one ffmpeg run, then each segment (once hashed) uploaded and deleted.
async fn process(batch: Vec<Closed>, context: Arc<Work>) -> Result<Vec<Finished>> {
    let files: Vec<PathBuf> = batch.iter().map(|c| c.path.clone()).collect();
    let listings: Vec<PathBuf> = files.iter().map(|f| f.with_extension("crc")).collect();
    readback::list_packets(&context.tools, &files, &listings).await?;
    let context = &context;
    let uploads = batch.into_iter().zip(listings).map(|(closed, listing)| async move {
        let digest = closed.hash.wait().await.context("hashing a segment")?;
        let file = OutputFile {
            local: closed.path,
            relative: manifest::segment_path(closed.index, context.extension),
            digest,
        };
        let stored = match context.upload_now {
            true => context.sink.store_now(&file).await?,
            false => None,
        };
        if stored.is_some() {
            std::fs::remove_file(&file.local)
                .with_context(|| format!("removing {}", file.local.display()))?;
        }
        anyhow::Ok(Finished {
            index: closed.index,
            path: file.local,
            digest: file.digest,
            listing,
            stored,
        })
    });
    join_all(uploads.collect()).await.into_iter().collect()
}
