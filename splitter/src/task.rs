//! A spawned task that is aborted when dropped: work whose result nobody waits for any more
//! (an abandoned check, a cut's pause once ffmpeg has exited) stops with its handle, and the
//! processes it runs are killed with it.

use anyhow::{Context, Result};

/// A spawned task, aborted when dropped.
#[derive(Debug)]
pub struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    pub fn spawn(work: impl std::future::Future<Output = T> + Send + 'static) -> Task<T> {
        Task(tokio::spawn(work))
    }

    pub async fn join(mut self) -> Result<T> {
        (&mut self.0).await.context("a background task failed")
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
