//! The splitter: cuts a video into keyframe-aligned, stream-copied segments (plus one file per
//! audio stream) that each decode standalone to exactly their frames, with a manifest written
//! last. See `README.md` for the command line, the manifest schema and the exit codes.
//!
//! Pure planning lives in [`plan`] (packets in, cut list out); everything that touches
//! ffmpeg, files or S3 sits at the edges ([`probe`], [`cut`], [`readback`], [`output`],
//! [`s3`]).

pub mod cut;
pub mod error;
pub mod faststart;
pub mod growing;
pub mod hash;
pub mod hold;
pub mod join;
pub mod listing;
pub mod location;
pub mod logging;
pub mod manifest;
pub mod mp4;
pub mod output;
pub mod packets;
pub mod plan;
pub mod probe;
pub mod readback;
pub mod s3;
pub mod split;
pub mod store;
pub mod task;
pub mod timestamps;
pub mod tools;
pub mod verify;

/// Peak resident memory of this process (VmHWM), in KiB; `None` off Linux.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
