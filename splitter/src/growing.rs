//! An input that is still downloading, read while it arrives: the download reports how many
//! bytes are on disk ([`Arrival`]); readers wait for the bytes they need ([`Growing`]). ffmpeg
//! gets such an input on its stdin ([`Growing::feed`]), so its end of file is exactly the end
//! of the download; a download that fails ends the feed early, and the caller, not ffmpeg,
//! reports the failure (see `split`).

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// How far a download got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// This many bytes are on disk, more to come.
    Arriving(u64),
    /// The download is complete: the file has this many bytes.
    Complete(u64),
    /// The download failed after this many bytes (the error goes to whoever awaits it).
    Failed(u64),
}

impl State {
    pub fn bytes(self) -> u64 {
        match self {
            State::Arriving(n) | State::Complete(n) | State::Failed(n) => n,
        }
    }

    pub fn ended(self) -> bool {
        !matches!(self, State::Arriving(_))
    }
}

/// The download's side: reports progress. Dropping it without [`Arrival::complete`] counts as
/// a failure.
#[derive(Debug)]
pub struct Arrival {
    sender: watch::Sender<State>,
}

impl Arrival {
    /// A new download into `path`, and its reader.
    pub fn new(path: &Path) -> (Arrival, Growing) {
        let (sender, state) = watch::channel(State::Arriving(0));
        (Arrival { sender }, Growing { path: path.to_path_buf(), state, splice: None })
    }

    /// `bytes` are now on disk (flushed, readable by another file handle).
    pub fn arrived(&self, bytes: u64) {
        self.sender.send_replace(State::Arriving(bytes));
    }

    pub fn complete(self, bytes: u64) {
        self.sender.send_replace(State::Complete(bytes));
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.sender.send_if_modified(|state| match *state {
            State::Arriving(n) => {
                *state = State::Failed(n);
                true
            }
            _ => false,
        });
    }
}

/// The readers' side of a download in progress.
#[derive(Clone, Debug)]
pub struct Growing {
    path: PathBuf,
    state: watch::Receiver<State>,
    /// What [`Growing::feed`] gives instead of the plain file.
    splice: Option<Arc<Splice>>,
}

/// The file as ffmpeg should read it: bytes `..at`, then `insert`, then bytes `at..end` (an
/// MP4's index put in front of its media data, see [`crate::faststart`]).
#[derive(Debug)]
pub struct Splice {
    pub at: u64,
    pub insert: Vec<u8>,
    pub end: u64,
}

impl Growing {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn splice(&self) -> Option<&Splice> {
        self.splice.as_deref()
    }

    /// The same download, fed as `splice` says.
    pub fn spliced(mut self, splice: Splice) -> Growing {
        self.splice = Some(Arc::new(splice));
        self
    }

    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Waits until at least `bytes` are on disk or the download ended; returns the state then.
    pub async fn wait_for(&self, bytes: u64) -> State {
        let mut state = self.state.clone();
        let reached = state.wait_for(|s| s.ended() || s.bytes() >= bytes).await.map(|s| *s);
        // An error: the sender is gone, and its last state (Drop made it final) is the answer.
        reached.unwrap_or_else(|_| *state.borrow())
    }

    /// Waits for the end of the download.
    pub async fn ended(&self) -> State {
        self.wait_for(u64::MAX).await
    }

    /// Reads `buf.len()` bytes at `offset`, if they are on disk already.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> bool {
        use std::os::unix::fs::FileExt;
        if offset.saturating_add(buf.len() as u64) > self.state().bytes() {
            return false;
        }
        std::fs::File::open(&self.path).and_then(|f| f.read_exact_at(buf, offset)).is_ok()
    }

    /// Copies the file to `out` as it arrives, until the download ends (complete or failed),
    /// then closes `out`. An error writing to `out` (the reader went away) ends it early.
    pub async fn feed(self, mut out: impl AsyncWrite + Unpin) -> io::Result<()> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        let mut state = self.state.clone();
        let mut position = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        let end = self.splice.as_ref().map_or(u64::MAX, |s| s.end);
        let mut to_insert = self.splice.as_deref();
        loop {
            let now = *state.borrow_and_update();
            let available = now.bytes().min(end);
            loop {
                if let Some(splice) = to_insert.filter(|s| s.at == position) {
                    out.write_all(&splice.insert).await?;
                    to_insert = None;
                }
                if position >= available {
                    break;
                }
                let stop = to_insert.map_or(available, |s| available.min(s.at));
                let want = usize::try_from(stop - position).unwrap_or(usize::MAX);
                let take = want.min(buf.len());
                let n = file.read(&mut buf[..take]).await?;
                if n == 0 {
                    // Reported but not readable yet: look again from the same place.
                    file.seek(SeekFrom::Start(position)).await?;
                    tokio::task::yield_now().await;
                    continue;
                }
                out.write_all(&buf[..n]).await?;
                position += n as u64;
            }
            if now.ended() || position >= end {
                break;
            }
            if state.changed().await.is_err() && state.borrow().bytes() == position {
                break;
            }
        }
        out.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_gets_every_byte_as_it_arrives_and_sees_the_end() {
        let dir = std::env::temp_dir().join(format!("growing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("in");
        let (arrival, growing) = Arrival::new(&path);
        let mut file = std::fs::File::create(&path).expect("create");
        let (fed_end, mut test_end) = tokio::io::duplex(1 << 20);
        let feed = tokio::spawn(growing.clone().feed(fed_end));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut written = 0;
        for chunk in data.chunks(70_000) {
            use std::io::Write;
            file.write_all(chunk).expect("write");
            written += chunk.len() as u64;
            arrival.arrived(written);
            assert_eq!(growing.wait_for(written).await, State::Arriving(written));
        }
        let mut head = [0u8; 4];
        assert!(growing.read_at(250, &mut head));
        assert_eq!(head, [250, 0, 1, 2]);
        assert!(!growing.read_at(written - 2, &mut head), "not on disk yet");
        arrival.complete(written);
        let mut fed = Vec::new();
        test_end.read_to_end(&mut fed).await.expect("read");
        feed.await.expect("join").expect("feed");
        assert_eq!(fed, data);
        assert_eq!(growing.ended().await, State::Complete(written));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_spliced_feed_inserts_its_bytes_and_stops_at_its_end() {
        let path = std::env::temp_dir().join(format!("growing-splice-{}", std::process::id()));
        std::fs::write(&path, b"").expect("create");
        let (arrival, growing) = Arrival::new(&path);
        let growing = growing.spliced(Splice { at: 4, insert: b"INDEX".to_vec(), end: 10 });
        let (fed_end, mut test_end) = tokio::io::duplex(1 << 16);
        let feed = tokio::spawn(growing.feed(fed_end));
        // Arriving in pieces that straddle the splice point.
        for (data, total) in [(&b"hea"[..], 3), (b"dMEDI", 8), (b"A!trailer", 17)] {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
            f.write_all(data).expect("write");
            arrival.arrived(total);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        arrival.complete(17);
        let mut fed = Vec::new();
        test_end.read_to_end(&mut fed).await.expect("read");
        feed.await.expect("join").expect("feed");
        assert_eq!(fed, b"headINDEXMEDIA!");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_dropped_download_is_a_failure_and_ends_the_feed() {
        let path = std::env::temp_dir().join(format!("growing-fail-{}", std::process::id()));
        std::fs::write(&path, b"abc").expect("write");
        let (arrival, growing) = Arrival::new(&path);
        arrival.arrived(3);
        let (fed_end, mut test_end) = tokio::io::duplex(1024);
        let feed = tokio::spawn(growing.clone().feed(fed_end));
        drop(arrival);
        let mut fed = Vec::new();
        test_end.read_to_end(&mut fed).await.expect("read");
        feed.await.expect("join").expect("feed");
        assert_eq!(fed, b"abc");
        assert_eq!(growing.ended().await, State::Failed(3));
        let _ = std::fs::remove_file(&path);
    }
}
