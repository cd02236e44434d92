//! Streaming SHA-256 of files (a fixed 1 MiB buffer, whatever the file size).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// 64 KiB: the buffer stays in the CPU's L2 cache between `read` and hashing, which is
/// measurably faster than megabyte buffers (page cache → L2 → SHA rounds).
const BUF_SIZE: usize = 64 << 10;

/// Size and SHA-256 (lowercase hex) of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Hashes a reader to its end.
pub fn digest_reader(mut reader: impl Read) -> io::Result<FileDigest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut bytes = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileDigest { bytes, sha256: hex(&hasher.finalize()) })
}

/// Hashes a file (blocking: call from `spawn_blocking` in async code).
pub fn digest_file(path: &Path) -> io::Result<FileDigest> {
    digest_reader(File::open(path)?)
}

/// Background threads (two at most) that hash files in the order they are submitted.
///
/// Hashing is the splitter's biggest cost (SHA-256 of the source and of every segment: twice
/// the input's size): one thread hashes the source while the other keeps up with the segments
/// ffmpeg closes, and both help with whatever is left when ffmpeg is done.
#[derive(Clone, Debug)]
pub struct HashQueue {
    sender: std::sync::mpsc::Sender<(
        std::path::PathBuf,
        tokio::sync::oneshot::Sender<io::Result<FileDigest>>,
    )>,
}

/// The digest of a submitted file, once the queue gets to it.
#[derive(Debug)]
pub struct Pending(tokio::sync::oneshot::Receiver<io::Result<FileDigest>>);

impl Pending {
    /// A digest already known (e.g. computed while downloading).
    pub fn ready(digest: FileDigest) -> Pending {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(Ok(digest));
        Pending(rx)
    }

    pub async fn wait(self) -> io::Result<FileDigest> {
        self.0.await.unwrap_or_else(|_| Err(io::Error::other("the hashing thread stopped")))
    }
}

impl HashQueue {
    pub fn new() -> io::Result<HashQueue> {
        type Job = (std::path::PathBuf, tokio::sync::oneshot::Sender<io::Result<FileDigest>>);
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        for n in 0..threads {
            let receiver = std::sync::Arc::clone(&receiver);
            std::thread::Builder::new().name(format!("sha256-{n}")).spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match receiver.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((path, reply)) = job else { return };
                    let _ = reply.send(digest_file(&path));
                }
            })?;
        }
        Ok(HashQueue { sender })
    }

    pub fn submit(&self, path: std::path::PathBuf) -> Pending {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(std::sync::mpsc::SendError((_, reply))) = self.sender.send((path, tx)) {
            let _ = reply.send(Err(io::Error::other("the hashing thread stopped")));
        }
        Pending(rx)
    }
}

/// An incremental hasher for data that streams through (downloads).
#[derive(Default)]
pub struct Hasher {
    inner: Sha256,
    bytes: u64,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("bytes", &self.bytes).finish()
    }
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.bytes += data.len() as u64;
    }

    pub fn finish(self) -> FileDigest {
        FileDigest { bytes: self.bytes, sha256: hex(&self.inner.finalize()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let empty = digest_reader(&b""[..]).expect("hash");
        assert_eq!(empty.bytes, 0);
        assert_eq!(
            empty.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let abc = digest_reader(&b"abc"[..]).expect("hash");
        assert_eq!(abc.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let mut h = Hasher::default();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), abc);
    }

    #[tokio::test]
    async fn the_queue_hashes_files_in_order() {
        let dir = std::env::temp_dir().join(format!("splitter-hash-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("a"), b"abc").expect("write");
        let queue = HashQueue::new().expect("queue");
        let a = queue.submit(dir.join("a"));
        let missing = queue.submit(dir.join("missing"));
        assert_eq!(a.wait().await.expect("digest"), digest_reader(&b"abc"[..]).expect("hash"));
        assert!(missing.wait().await.is_err());
        let ready = Pending::ready(FileDigest { bytes: 1, sha256: "x".into() });
        assert_eq!(ready.wait().await.expect("ready").bytes, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn large_input_streams_through_the_buffer() {
        let data = vec![7u8; BUF_SIZE * 2 + 3];
        let streamed = digest_reader(&data[..]).expect("hash");
        let mut h = Hasher::default();
        h.update(&data);
        assert_eq!(streamed, h.finish());
        assert_eq!(streamed.bytes, data.len() as u64);
    }
}
