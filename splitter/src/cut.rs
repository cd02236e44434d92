//! The one ffmpeg run that does the heavy lifting: stream-copies the video into segment
//! files (ffmpeg's segment muxer), every audio stream into its own file, and optionally lists
//! the video packets (framecrc) and the IDR pictures (filter_units + framecrc), all while
//! reading the input once. Completed pieces are reported as the muxer closes them.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::{Kind, fail};
use crate::growing::Growing;
use crate::hold::Hold;
use crate::plan::Layout;
use crate::tools::Tools;

/// How the segment muxer(s) cut the video.
#[derive(Clone, Debug)]
pub enum VideoCuts {
    /// ffmpeg decides: first keyframe at or after every `seconds` (fast path, checked after).
    Every { seconds: f64 },
    /// Exact packet indices per muxer (planned path).
    Planned(Layout),
}

/// Container used for segment files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Container {
    pub muxer: &'static str,
    pub extension: &'static str,
}

// Not VP9: its `vpcC` box needs profile and bit depth, which a decoder-less ffmpeg cannot
// know for VP9 coming from WebM/Matroska; Matroska needs nothing of the sort.
const MP4_VIDEO: &[&str] = &["h264", "hevc", "av1", "mpeg1video", "mpeg2video", "mpeg4"];
const MP4_AUDIO: &[&str] = &["aac", "mp3", "mp2", "ac3", "eac3", "alac", "opus", "flac"];

/// MP4 (without edit lists, so a standalone decode shows every packet) where the codec fits,
/// else Matroska.
pub fn segment_container(codec: &str) -> Container {
    if MP4_VIDEO.contains(&codec) {
        Container { muxer: "mp4", extension: "mp4" }
    } else {
        Container { muxer: "matroska", extension: "mkv" }
    }
}

/// Audio stays in the source's container family, which keeps encoder delay and edit lists
/// exactly (an MP4 edit list cannot be expressed in Matroska and vice versa).
pub fn audio_container(source_format: &str, codec: &str) -> Container {
    let mov_family = source_format.split(',').any(|f| f == "mov" || f == "mp4");
    match (mov_family, MP4_AUDIO.contains(&codec)) {
        (true, true) => Container { muxer: "mp4", extension: "m4a" },
        (true, false) => Container { muxer: "mov", extension: "mov" },
        (false, _) => Container { muxer: "matroska", extension: "mka" },
    }
}

/// The common recipe the splitter replaces, as ffmpeg arguments after the global options:
/// ffmpeg's segment muxer on the first video stream with reset timestamps, cutting at the first
/// keyframe after every `seconds`. `split` never runs it; the benchmark times it and the tests
/// show where it loses or adds frames (open GOPs, edit lists).
pub fn common_recipe(input: &Path, seconds: &str, pattern: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-i".into(), input.into()];
    args.extend(
        ["-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_time", seconds]
            .map(OsString::from),
    );
    args.extend(["-reset_timestamps", "1"].map(OsString::from));
    args.push(pattern.into());
    args
}

/// One audio stream to extract.
#[derive(Clone, Debug)]
pub struct AudioJob {
    pub stream_index: u32,
    pub container: Container,
    pub file: PathBuf,
}

/// Everything one ffmpeg run does.
#[derive(Clone, Debug)]
pub struct CutPass {
    pub input: PathBuf,
    /// `input` is still downloading: ffmpeg reads it on stdin as it arrives.
    pub arriving: Option<Growing>,
    /// ffmpeg is stopped while this is over its limit (segments waiting to be uploaded).
    pub hold: Option<Hold>,
    pub video_stream: u32,
    /// Segment files, or none (a probing run).
    pub video: Option<(VideoCuts, Container)>,
    /// Directory for the segment muxers' pieces.
    pub pieces_dir: PathBuf,
    /// Write the video packet list here.
    pub packet_log: Option<PathBuf>,
    /// Write the list of IDR pictures here, using this `filter_units` selection.
    pub idr_log: Option<(PathBuf, &'static str)>,
    pub audio: Vec<AudioJob>,
}

/// A piece the segment muxer closed.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub muxer: usize,
    pub index: usize,
    pub path: PathBuf,
    /// Start time the muxer reports (seconds, the run's timeline); meaningless for piece 0.
    pub start_seconds: f64,
}

/// How the run ended.
#[derive(Clone, Debug)]
pub struct PassOutcome {
    pub stderr_tail: Vec<String>,
    /// ffmpeg reported reading past the end of the data (a truncated file).
    pub truncated: bool,
}

/// The `filter_units` unit types of pictures a decoder can start at and show every frame:
/// H.264 IDR (5), HEVC IDR_W_RADL/IDR_N_LP (19, 20).
pub fn idr_unit_types(codec: &str) -> Option<&'static str> {
    match codec {
        "h264" => Some("pass_types=5"),
        "hevc" => Some("pass_types=19-20"),
        _ => None,
    }
}

/// The file name prefix of segment muxer `i`'s pieces: `a`, `b`, … `z`, `ba`, `bb`, … (the
/// number in base 26, letters for digits), then the piece number.
fn muxer_name(mut i: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'a' + (i % 26) as u8);
        i /= 26;
        if i == 0 {
            break;
        }
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

fn piece_from_list_line(line: &str, dir: &Path) -> Option<Piece> {
    // csv: name,start,end (the name is the basename; ours never need quoting)
    let mut fields = line.trim().split(',');
    let name = fields.next()?;
    let start_seconds: f64 = fields.next()?.trim().parse().ok()?;
    let letters = name.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 || letters > 8 {
        return None;
    }
    let muxer = name.bytes().take(letters).fold(0usize, |n, b| n * 26 + usize::from(b - b'a'));
    let digits: String = name[letters..].chars().take_while(char::is_ascii_digit).collect();
    let index = digits.parse().ok()?;
    Some(Piece { muxer, index, path: dir.join(name), start_seconds })
}

impl CutPass {
    fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
        // MPEG program streams give a timestamp to a PES packet, not to every frame in it:
        // `genpts` fills the missing pts from the decode timestamps of the following frames
        // (a demuxer feature, no decoding). Inputs whose packets all have one are unchanged.
        push(&["-fflags", "+genpts", "-i"]);
        match &self.arriving {
            Some(_) => a.push("pipe:0".into()),
            None => a.push(self.input.clone().into_os_string()),
        }
        let map = format!("0:{}", self.video_stream);
        if let Some((cuts, container)) = &self.video {
            let muxers: Vec<Option<String>> = match cuts {
                VideoCuts::Every { .. } => vec![None],
                VideoCuts::Planned(layout) => layout
                    .muxers
                    .iter()
                    .map(|m| {
                        // No cut at all: a frame number past the end never triggers.
                        let frames = if m.cut_packets.is_empty() {
                            i32::MAX.to_string()
                        } else {
                            m.cut_packets.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
                        };
                        Some(frames)
                    })
                    .collect(),
            };
            for (i, frames) in muxers.iter().enumerate() {
                let mut v: Vec<String> = vec![
                    "-map".into(),
                    map.clone(),
                    "-c".into(),
                    "copy".into(),
                    "-map_metadata".into(),
                    "-1".into(),
                    "-map_chapters".into(),
                    "-1".into(),
                    "-fflags".into(),
                    "+bitexact".into(),
                    "-f".into(),
                    "segment".into(),
                    "-segment_format".into(),
                    container.muxer.into(),
                ];
                if container.muxer == "mp4" {
                    v.extend(["-segment_format_options".into(), "use_editlist=0".into()]);
                }
                match (cuts, frames) {
                    (VideoCuts::Every { seconds }, _) => {
                        v.extend(["-segment_time".into(), format!("{seconds}")]);
                    }
                    (VideoCuts::Planned(_), Some(frames)) => {
                        v.extend(["-segment_frames".into(), frames.clone()]);
                    }
                    (VideoCuts::Planned(_), None) => {}
                }
                v.extend([
                    "-reset_timestamps".into(),
                    "1".into(),
                    // Keep the muxer's timeline equal to the packet list's.
                    "-avoid_negative_ts".into(),
                    "disabled".into(),
                    "-segment_list".into(),
                    "pipe:1".into(),
                    "-segment_list_type".into(),
                    "csv".into(),
                ]);
                a.extend(v.into_iter().map(OsString::from));
                let pattern = format!("{}%06d.{}", muxer_name(i), container.extension);
                a.push(self.pieces_dir.join(pattern).into_os_string());
            }
        }
        if let Some(log) = &self.packet_log {
            a.extend(["-map", &map, "-c", "copy", "-f", "framecrc"].map(OsString::from));
            a.push(log.clone().into_os_string());
        }
        if let Some((log, types)) = &self.idr_log {
            let bsf = format!("filter_units={types}");
            a.extend(
                ["-map", &map, "-c", "copy", "-bsf:v", &bsf, "-f", "framecrc"].map(OsString::from),
            );
            a.push(log.clone().into_os_string());
        }
        for job in &self.audio {
            let amap = format!("0:{}", job.stream_index);
            a.extend(
                ["-map", &amap, "-c", "copy", "-fflags", "+bitexact", "-f", job.container.muxer]
                    .map(OsString::from),
            );
            a.push(job.file.clone().into_os_string());
        }
        a
    }

    /// Runs ffmpeg; `on_piece` is called as each segment piece is closed.
    pub async fn run(&self, tools: &Tools, mut on_piece: impl FnMut(Piece)) -> Result<PassOutcome> {
        let args = self.args();
        tracing::debug!(args = ?args, "running ffmpeg");
        let mut command = tools.ffmpeg();
        command.arg("-y").args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.arriving.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().map_err(|e| {
            fail(Kind::Tools, format!("cannot run {}: {e}", tools.ffmpeg.display()))
        })?;
        // The input as it downloads. The feed ends by itself when ffmpeg stops reading (a write
        // error; ffmpeg's status says why) or the download ends.
        if let (Some(growing), Some(stdin)) = (&self.arriving, child.stdin.take()) {
            tokio::spawn(growing.clone().feed(stdin));
        }
        // Aborted as soon as ffmpeg has exited (below), before its process id can be reused.
        let pause = match (&self.hold, child.id()) {
            (Some(hold), Some(pid)) => {
                Some(crate::task::Task::spawn(hold.clone().pause_while_over(pid)))
            }
            _ => None,
        };
        let stdout = child.stdout.take().context("ffmpeg stdout")?;
        let stderr = child.stderr.take().context("ffmpeg stderr")?;
        // Collect stderr concurrently, keeping only the last lines (a damaged input can make
        // ffmpeg print a lot).
        let stderr_task = tokio::spawn(async move {
            let mut tail: VecDeque<String> = VecDeque::new();
            let mut truncated = false;
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            while matches!(reader.read_until(b'\n', &mut buf).await, Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                buf.clear();
                if line.contains("partial file") {
                    truncated = true;
                }
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            (tail.into_iter().collect::<Vec<_>>(), truncated)
        });
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await.context("reading ffmpeg's segment list")? {
            match piece_from_list_line(&line, &self.pieces_dir) {
                Some(piece) => on_piece(piece),
                None => tracing::debug!(line, "unexpected segment list line"),
            }
        }
        let status = child.wait().await.context("waiting for ffmpeg")?;
        drop(pause);
        let (stderr_tail, truncated) = stderr_task.await.context("reading ffmpeg's errors")?;
        if !status.success() {
            let last = stderr_tail.last().cloned().unwrap_or_else(|| format!("{status}"));
            let text = stderr_tail.join("\n");
            let kind = if text.contains("No space left on device")
                || text.contains("Permission denied")
                || text.contains("Read-only file system")
            {
                Kind::OutputUnwritable
            } else if text.contains("Invalid data found") || truncated {
                Kind::NotAVideo
            } else {
                Kind::Other
            };
            return Err(fail(kind, format!("ffmpeg failed: {last}")));
        }
        Ok(PassOutcome { stderr_tail, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::MuxerLayout;

    #[test]
    fn containers_follow_codecs_and_source_family() {
        assert_eq!(segment_container("hevc").extension, "mp4");
        assert_eq!(segment_container("vp8").muxer, "matroska");
        assert_eq!(segment_container("vp9").extension, "mkv");
        assert_eq!(audio_container("mov,mp4,m4a,3gp,3g2,mj2", "aac").extension, "m4a");
        assert_eq!(audio_container("mov,mp4,m4a,3gp,3g2,mj2", "pcm_s16le").muxer, "mov");
        assert_eq!(audio_container("matroska,webm", "opus").extension, "mka");
        assert_eq!(audio_container("mpegts", "aac").extension, "mka");
    }

    #[test]
    fn segment_list_lines_name_the_piece() {
        let dir = Path::new("/w");
        let piece = piece_from_list_line("b000012.mp4,20.480000,30.520000", dir).expect("piece");
        assert_eq!((piece.muxer, piece.index), (1, 12));
        assert_eq!(piece.path, Path::new("/w/b000012.mp4"));
        assert!((piece.start_seconds - 20.48).abs() < 1e-9);
        assert_eq!(piece_from_list_line("garbage", dir), None);
    }

    #[test]
    fn any_number_of_muxers_have_distinct_names() {
        let dir = Path::new("/w");
        let names: Vec<String> = (0..800).map(muxer_name).collect();
        assert_eq!((names[0].as_str(), names[1].as_str(), names[25].as_str()), ("a", "b", "z"));
        assert_eq!((names[26].as_str(), names[27].as_str()), ("ba", "bb"));
        for (i, name) in names.iter().enumerate() {
            let line = format!("{name}000042.mp4,1.5,2.5");
            let piece = piece_from_list_line(&line, dir).expect("piece");
            assert_eq!((piece.muxer, piece.index), (i, 42), "{name}");
        }
    }

    #[test]
    fn planned_pass_arguments() {
        let pass = CutPass {
            input: "in.mp4".into(),
            arriving: None,
            hold: None,
            video_stream: 0,
            video: Some((
                VideoCuts::Planned(Layout {
                    muxers: vec![
                        MuxerLayout {
                            cut_packets: vec![7, 27],
                            pieces: vec![Some(0), Some(2), None],
                        },
                        MuxerLayout { cut_packets: vec![], pieces: vec![Some(1)] },
                    ],
                }),
                segment_container("hevc"),
            )),
            pieces_dir: "/w".into(),
            packet_log: None,
            idr_log: Some(("/w/idr.crc".into(), "pass_types=19-20")),
            audio: vec![AudioJob {
                stream_index: 1,
                container: audio_container("mov", "aac"),
                file: "/w/audio-1.m4a".into(),
            }],
        };
        let args: Vec<String> =
            pass.args().into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let text = args.join(" ");
        assert!(text.contains("-segment_frames 7,27"), "{text}");
        assert!(text.contains(&format!("-segment_frames {}", i32::MAX)), "{text}");
        assert!(text.contains("/w/a%06d.mp4"), "{text}");
        assert!(text.contains("/w/b%06d.mp4"), "{text}");
        assert!(text.contains("-bsf:v filter_units=pass_types=19-20 -f framecrc /w/idr.crc"));
        assert!(text.contains("-map 0:1 -c copy -fflags +bitexact -f mp4 /w/audio-1.m4a"));
        assert!(text.contains("use_editlist=0"));
    }
}
