//! Step 7 of itest: the join round trip. A closed-GOP split's own segments, joined back by a
//! second job (the same revision and queue, its command overridden to `join OUTPUT
//! OUTPUT/segments/ s3://…/joined.mp4`), must give back the source's packets: the host's ffprobe
//! lists the packets of the uploaded video and of the joined file (no decoding, independent of
//! the splitter), which must be the same one for one ([`JOIN_CHECKS`]). When the identity join
//! does not apply (lead-ins, trailing frames, a container that stores the bitstream otherwise)
//! it is skipped with the reason: [`skip_reason`], [`dts_compared`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aws_sdk_batch::types::ContainerOverrides;
use serde_json::Value;

use super::manifest::Manifest;
use super::verify::Check;
use super::{Resolved, Run};
use crate::aws::sdk_error;

/// The join round trip's checks, in the order they are reported (after [`super::CHECKS`]).
pub const JOIN_CHECKS: [&str; 2] = ["join-video-packets", "join-audio-packets"];

/// The joined file's name under the run's prefix.
pub const JOINED: &str = "joined.mp4";

/// Why joining the split's own segments cannot give back the source (`None`: it can): segments
/// that carry frames they do not own (an open GOP's lead-in, `--context-frames`) must go through
/// a worker that drops them first.
pub(super) fn skip_reason(m: &Manifest) -> Option<String> {
    let lead_in: u64 = m.segments.iter().map(|s| s.lead_in_frames).sum();
    let trailing: u64 = m.segments.iter().map(|s| s.trailing_frames).sum();
    if lead_in + trailing == 0 {
        return None;
    }
    let with = m.segments.iter().filter(|s| s.lead_in_frames + s.trailing_frames > 0).count();
    Some(format!(
        "{with} of the {} segment(s) carry frames they do not own ({lead_in} lead-in and \
         {trailing} trailing in all: an open GOP or context frames), so joining the split's own \
         segments is not the identity (a worker must drop those frames first)",
        m.segments.len()
    ))
}

/// Whether the joined file's decode times can be compared with the source's (`Ok(true)`: MP4
/// or MOV, which store them; `Ok(false)`: Matroska/WebM, which store none, so ffprobe's are
/// guesses), or why the source's packets cannot come back byte for byte in an MP4 (`Err`: other
/// containers, e.g. MPEG-TS, carry H.264 as Annex B byte streams, which MP4 stores otherwise).
pub(super) fn dts_compared(format: &str) -> Result<bool, String> {
    let names: Vec<&str> = format.split(',').collect();
    if names.contains(&"mov") || names.contains(&"mp4") {
        Ok(true)
    } else if names.contains(&"matroska") || names.contains(&"webm") {
        Ok(false)
    } else {
        Err(format!(
            "the video is `{format}`: only an MP4/MOV or Matroska source's packets come back byte \
             for byte in {JOINED} (other containers store the codec's bitstream differently)"
        ))
    }
}

/// The join job's command (the image's entry point is the splitter): the split's output, its
/// own segments as the processed ones, the joined file.
pub(super) fn command(run: &Run) -> [String; 4] {
    let output = run.output_uri();
    ["join".to_owned(), output.clone(), format!("{output}/segments/"), run.joined_uri()]
}

/// Submits the join job: the split's revision on the split's queue, the command overridden.
pub(super) async fn submit(
    batch: &aws_sdk_batch::Client,
    resolved: &Resolved,
    run: &Run,
) -> Result<String> {
    let overrides = ContainerOverrides::builder().set_command(Some(command(run).to_vec())).build();
    let submitted = batch
        .submit_job()
        .job_name(&run.join_job_name)
        .job_queue(&resolved.queue)
        .job_definition(&resolved.arn)
        .container_overrides(overrides)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!(
                "cannot submit the join job to queue {}: check the role's batch:SubmitJob permission",
                resolved.queue
            )
        })?;
    Ok(submitted.job_id().context("Batch returned no job id")?.to_owned())
}

/// One packet as ffprobe lists it (timestamps in its stream's time base; `None`: `N/A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub pts: Option<i64>,
    pub dts: Option<i64>,
    pub duration: Option<i64>,
    pub size: u64,
    pub flags: String,
    /// ffprobe's `data_hash` (`SHA256:…`).
    pub hash: String,
}

/// One stream's packets in decode order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// The stream's index in its file.
    pub index: u64,
    /// `(num, den)`, both positive.
    pub time_base: (i64, i64),
    pub packets: Vec<Packet>,
}

/// A file's video (its first video stream that is not cover art) and audio streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// ffprobe's `format_name`, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format: String,
    pub video: Option<Track>,
    pub audio: Vec<Track>,
}

/// What ffprobe is asked for: JSON, since its CSV breaks a packet's line where the packet has
/// side data (AAC priming).
const ENTRIES: &str = "format=format_name:stream=index,codec_type,time_base:stream_disposition=attached_pic:packet=stream_index,pts,dts,duration,size,flags,data_hash";

/// Lists the packets of `file` with the host's ffprobe (every packet read and hashed, nothing
/// decoded). `Ok(Err(why))`: ffprobe ran but cannot read the file.
pub(super) async fn probe(ffprobe: &Path, file: &Path) -> Result<Result<Probed, String>> {
    let (ffprobe, file): (PathBuf, PathBuf) = (ffprobe.to_owned(), file.to_owned());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(&ffprobe)
            .args(["-v", "error", "-show_entries", ENTRIES, "-show_data_hash", "sha256"])
            .args(["-of", "json"])
            .arg(&file)
            .output()
            .with_context(|| format!("cannot run {}", ffprobe.display()))?;
        if !out.status.success() {
            return Ok(Err(super::output::ffprobe_failure(&file, &out)));
        }
        Ok(parse_probe(&String::from_utf8_lossy(&out.stdout)))
    })
    .await
    .context("the ffprobe task failed")?
}

/// Reads ffprobe's JSON ([`ENTRIES`]).
pub fn parse_probe(json: &str) -> Result<Probed, String> {
    let info: Value =
        serde_json::from_str(json).map_err(|e| format!("ffprobe printed no JSON: {e}"))?;
    let format = info["format"]["format_name"].as_str().unwrap_or("?").to_owned();
    let streams = info["streams"].as_array().map(Vec::as_slice).unwrap_or_default();
    let track = |s: &Value| -> Result<Track, String> {
        let index = s["index"].as_u64().ok_or("ffprobe listed a stream without an index")?;
        let time_base = s["time_base"]
            .as_str()
            .and_then(|t| t.split_once('/'))
            .and_then(|(n, d)| Some((n.parse::<i64>().ok()?, d.parse::<i64>().ok()?)))
            .filter(|(n, d)| *n > 0 && *d > 0)
            .ok_or_else(|| format!("stream {index}: no time base"))?;
        Ok(Track { index, time_base, packets: vec![] })
    };
    let mut video = streams
        .iter()
        .find(|s| {
            s["codec_type"] == "video" && s["disposition"]["attached_pic"].as_i64() != Some(1)
        })
        .map(track)
        .transpose()?;
    let mut audio: Vec<Track> = streams
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .map(track)
        .collect::<Result<_, _>>()?;
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    };
    for p in info["packets"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let index = p["stream_index"].as_u64().ok_or("ffprobe listed a packet without a stream")?;
        let target = match video.as_mut().filter(|v| v.index == index) {
            Some(v) => v,
            None => match audio.iter_mut().find(|a| a.index == index) {
                Some(a) => a,
                None => continue,
            },
        };
        target.packets.push(Packet {
            pts: number(&p["pts"]),
            dts: number(&p["dts"]),
            duration: number(&p["duration"]),
            size: number(&p["size"]).and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            flags: p["flags"].as_str().unwrap_or_default().to_owned(),
            hash: p["data_hash"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(Probed { format, video, audio })
}

/// What two packets are compared on.
#[derive(Debug, Clone, Copy)]
struct Fields {
    /// size, flags, duration.
    all: bool,
    dts: bool,
}

/// Whether two timestamps, each in its stream's time base, are the same instant: equal to
/// within one tick of the coarser time base (so exactly equal when the time bases are the same;
/// Matroska rounds to milliseconds). Two unknowns are the same; one unknown is not.
fn same_time(a: Option<i64>, (an, ad): (i64, i64), b: Option<i64>, (bn, bd): (i64, i64)) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (a, b) = (i128::from(a), i128::from(b));
            let (an, ad, bn, bd) = (i128::from(an), i128::from(ad), i128::from(bn), i128::from(bd));
            // a·an/ad − b·bn/bd, over ad·bd; one tick of each, over ad·bd: an·bd, bn·ad.
            (a * an * bd - b * bn * ad).abs() < (an * bd).max(bn * ad)
        }
        _ => false,
    }
}

/// The fields in which the joined packet `j` differs from the source's packet `s`.
fn differences(
    j: &Packet,
    jt: &Track,
    s: &Packet,
    st: &Track,
    fields: Fields,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    if j.hash != s.hash {
        out.push("data");
    }
    if !same_time(j.pts, jt.time_base, s.pts, st.time_base) {
        out.push("pts");
    }
    if fields.dts && !same_time(j.dts, jt.time_base, s.dts, st.time_base) {
        out.push("dts");
    }
    if fields.all {
        if !same_time(j.duration, jt.time_base, s.duration, st.time_base) {
            out.push("duration");
        }
        if j.size != s.size {
            out.push("size");
        }
        if j.flags != s.flags {
            out.push("flags");
        }
    }
    out
}

/// `pts=… dts=… duration=… size=… flags=… sha256 0123456789ab…`
fn show(p: &Packet) -> String {
    let t = |v: Option<i64>| v.map_or("N/A".to_owned(), |v| v.to_string());
    let hash = p.hash.strip_prefix("SHA256:").unwrap_or(&p.hash);
    format!(
        "pts={} dts={} duration={} size={} flags={} sha256 {}…",
        t(p.pts),
        t(p.dts),
        t(p.duration),
        p.size,
        p.flags,
        &hash[..hash.len().min(12)]
    )
}

/// `Ok(n)`: the joined track has the source's `n` packets; `Err`: the count and the first
/// packet that differs (or is missing on one side).
fn compare_track(joined: &Track, source: &Track, fields: Fields) -> Result<usize, String> {
    let (nj, ns) = (joined.packets.len(), source.packets.len());
    let first = joined.packets.iter().zip(&source.packets).enumerate().find_map(|(i, (j, s))| {
        let diff = differences(j, joined, s, source, fields);
        (!diff.is_empty()).then(|| {
            format!(
                "first difference at packet {i} (decode order, from 0) in {}: joined {}; source {}",
                diff.join(", "),
                show(j),
                show(s)
            )
        })
    });
    let mut text = String::new();
    if nj != ns {
        let _ = write!(text, "{nj} packets in the joined file, {ns} in the source; ");
    }
    match first {
        Some(d) => text.push_str(&d),
        None if nj == ns => return Ok(nj),
        None if nj < ns => {
            let _ = write!(
                text,
                "the first {nj} are the same, the source's packet {nj} on are missing: {}",
                show(&source.packets[nj])
            );
        }
        None => {
            let _ = write!(
                text,
                "the first {ns} are the same, then packets the source does not have: {}",
                show(&joined.packets[ns])
            );
        }
    }
    Err(text)
}

/// A note when the two tracks' time bases differ (times are then compared in seconds).
fn time_bases(joined: &Track, source: &Track) -> String {
    if joined.time_base == source.time_base {
        return String::new();
    }
    let tb = |(n, d): (i64, i64)| format!("{n}/{d}");
    format!(
        "; times compared in seconds, to one tick of the coarser time base (joined {}, source {})",
        tb(joined.time_base),
        tb(source.time_base)
    )
}

/// `join-video-packets`: the joined file's video packets are the source's, one for one: data
/// (sha256), size, flags, pts, duration and (`dts`) dts.
fn video_check(joined: &Probed, source: &Probed, dts: bool) -> (bool, String) {
    let (Some(j), Some(s)) = (&joined.video, &source.video) else {
        return (
            false,
            format!(
                "a video stream in the joined file: {}; in the source: {}",
                joined.video.is_some(),
                source.video.is_some()
            ),
        );
    };
    match compare_track(j, s, Fields { all: true, dts }) {
        Ok(n) => {
            let mut text = format!(
                "{n} video packets identical to the source's (ffprobe: data sha256, size, flags, \
                 pts, {}duration){}",
                if dts { "dts, " } else { "" },
                time_bases(j, s)
            );
            if !dts {
                let _ =
                    write!(text, "; dts not compared: the source ({}) stores none", source.format);
            }
            (true, text)
        }
        Err(e) => (false, format!("video: {e}")),
    }
}

/// `join-audio-packets`: as many audio streams as the source, each stream's packets the
/// source's one for one: data (sha256) and pts.
fn audio_check(joined: &Probed, source: &Probed) -> (bool, String) {
    let (nj, ns) = (joined.audio.len(), source.audio.len());
    if nj != ns {
        return (false, format!("{nj} audio stream(s) in the joined file, {ns} in the source"));
    }
    if ns == 0 {
        return (true, "no audio stream in the source, none in the joined file".to_owned());
    }
    let mut counts = Vec::new();
    let mut notes = String::new();
    for (k, (j, s)) in joined.audio.iter().zip(&source.audio).enumerate() {
        match compare_track(j, s, Fields { all: false, dts: false }) {
            Ok(n) => counts.push(n.to_string()),
            Err(e) => return (false, format!("audio stream a:{k}: {e}")),
        }
        notes.push_str(&time_bases(j, s));
    }
    (
        true,
        format!(
            "{} audio packets in {ns} stream(s) identical to the source's (ffprobe: data sha256, pts){notes}",
            counts.join(" + ")
        ),
    )
}

/// The join checks ([`JOIN_CHECKS`]) of the joined file against the source; `joined` is why
/// ffprobe cannot read the joined file, when it cannot.
pub fn checks(joined: Result<&Probed, &str>, source: &Probed, dts: bool) -> Vec<Check> {
    let verdicts = match joined {
        Ok(j) => [video_check(j, source, dts), audio_check(j, source)],
        Err(why) => {
            let why = format!("ffprobe cannot read the joined file: {why}");
            [(false, why.clone()), (false, why)]
        }
    };
    JOIN_CHECKS
        .into_iter()
        .zip(verdicts)
        .map(|(name, (ok, detail))| Check { name, ok, detail })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pts: i64, dts: i64, hash: &str) -> Packet {
        Packet {
            pts: Some(pts),
            dts: Some(dts),
            duration: Some(512),
            size: 100,
            flags: "__".into(),
            hash: format!("SHA256:{hash}"),
        }
    }

    /// A source like the fixture: 6 video packets with B-frames, 3 audio packets.
    fn fixture_like() -> Probed {
        let mut video: Vec<Packet> = [(0, -1024), (2048, -512), (1024, 0), (512, 512)]
            .iter()
            .enumerate()
            .map(|(i, (p, d))| packet(*p, *d, &format!("{i:064x}")))
            .collect();
        video[0].flags = "K_".into();
        video.push(packet(1536, 1024, &"a".repeat(64)));
        video.push(packet(3072, 1536, &"b".repeat(64)));
        let audio = (0..3).map(|i| packet(i * 1024 - 1024, i * 1024 - 1024, &"c".repeat(64)));
        Probed {
            format: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            video: Some(Track { index: 0, time_base: (1, 12288), packets: video }),
            audio: vec![Track { index: 1, time_base: (1, 48000), packets: audio.collect() }],
        }
    }

    fn video(p: &mut Probed) -> &mut Vec<Packet> {
        &mut p.video.as_mut().expect("video").packets
    }

    fn verdicts(joined: &Probed, source: &Probed, dts: bool) -> Vec<(bool, String)> {
        checks(Ok(joined), source, dts).into_iter().map(|c| (c.ok, c.detail)).collect()
    }

    #[test]
    fn the_same_packets_pass() {
        let s = fixture_like();
        let v = verdicts(&s, &s, true);
        assert_eq!(
            v[0],
            (
                true,
                "6 video packets identical to the source's (ffprobe: data sha256, size, flags, pts, dts, duration)"
                    .to_owned()
            )
        );
        assert_eq!(
            v[1],
            (
                true,
                "3 audio packets in 1 stream(s) identical to the source's (ffprobe: data sha256, pts)"
                    .to_owned()
            )
        );
        let names: Vec<&str> = checks(Ok(&s), &s, true).iter().map(|c| c.name).collect();
        assert_eq!(names, JOIN_CHECKS);
    }

    #[test]
    fn a_planted_difference_is_reported_at_its_packet() {
        let s = fixture_like();
        // One byte of packet 3's data changed: its hash differs, nothing else.
        let mut j = s.clone();
        video(&mut j)[3].hash = format!("SHA256:{}", "f".repeat(64));
        let v = verdicts(&j, &s, true);
        assert!(!v[0].0 && v[1].0, "{v:?}");
        assert_eq!(
            v[0].1,
            format!(
                "video: first difference at packet 3 (decode order, from 0) in data: joined \
                 pts=512 dts=512 duration=512 size=100 flags=__ sha256 ffffffffffff…; source \
                 pts=512 dts=512 duration=512 size=100 flags=__ sha256 {}…",
                &format!("{:064x}", 3)[..12]
            )
        );
        // Timestamps, flags: each named.
        let mut j = s.clone();
        let p = &mut video(&mut j)[1];
        p.pts = Some(2049);
        p.flags = "K_".into();
        let v = verdicts(&j, &s, true);
        assert!(
            v[0].1.contains("at packet 1 (decode order, from 0) in pts, flags: joined pts=2049"),
            "{v:?}"
        );
        // dts only when asked for (a Matroska source has none).
        let mut j = s.clone();
        video(&mut j)[2].dts = None;
        assert!(verdicts(&j, &s, true)[0].1.contains("at packet 2 (decode order, from 0) in dts"));
        let v = verdicts(&j, &s, false);
        assert!(v[0].0, "{v:?}");
        assert!(
            v[0].1
                .ends_with("; dts not compared: the source (mov,mp4,m4a,3gp,3g2,mj2) stores none"),
            "{v:?}"
        );
        // Audio: data and pts only.
        let mut j = s.clone();
        j.audio[0].packets[2].duration = Some(7);
        j.audio[0].packets[2].flags = "KD".into();
        assert!(verdicts(&j, &s, true)[1].0);
        j.audio[0].packets[2].pts = Some(1025);
        let v = verdicts(&j, &s, true);
        assert!(
            !v[1].0 && v[1].1.starts_with("audio stream a:0: first difference at packet 2"),
            "{v:?}"
        );
    }

    #[test]
    fn missing_and_extra_packets_and_streams_fail() {
        let s = fixture_like();
        let mut j = s.clone();
        video(&mut j).pop();
        let v = verdicts(&j, &s, true);
        assert_eq!(
            v[0].1,
            "video: 5 packets in the joined file, 6 in the source; the first 5 are the same, the \
             source's packet 5 on are missing: pts=3072 dts=1536 duration=512 size=100 flags=__ \
             sha256 bbbbbbbbbbbb…"
        );
        let mut j = s.clone();
        video(&mut j).remove(1);
        let v = verdicts(&j, &s, true);
        assert!(
            v[0].1.starts_with(
                "video: 5 packets in the joined file, 6 in the source; first difference at packet 1"
            ),
            "{v:?}"
        );
        let mut j = s.clone();
        video(&mut j).push(packet(4000, 2000, "d"));
        assert!(
            verdicts(&j, &s, true)[0].1.contains("then packets the source does not have: pts=4000")
        );
        let mut j = s.clone();
        j.audio.clear();
        assert_eq!(
            verdicts(&j, &s, true)[1],
            (false, "0 audio stream(s) in the joined file, 1 in the source".to_owned())
        );
        let mut j = s.clone();
        j.video = None;
        assert!(!verdicts(&j, &s, true)[0].0);
        let none = Probed { audio: vec![], ..s.clone() };
        assert_eq!(
            verdicts(&none, &none, true)[1],
            (true, "no audio stream in the source, none in the joined file".to_owned())
        );
        let c = checks(Err("Invalid data found when processing input"), &s, true);
        assert!(
            c.iter()
                .all(|c| !c.ok && c.detail.ends_with("Invalid data found when processing input"))
        );
    }

    #[test]
    fn times_in_other_time_bases_are_compared_in_seconds() {
        // Matroska (milliseconds) against MP4 (1/16000, 1/48000).
        assert!(same_time(Some(160), (1, 1000), Some(2560), (1, 16000)));
        assert!(!same_time(Some(161), (1, 1000), Some(2560), (1, 16000)));
        // 21.33 ms of AAC, rounded to 21 ms by Matroska: within one millisecond.
        assert!(same_time(Some(21), (1, 1000), Some(1024), (1, 48000)));
        assert!(same_time(Some(42), (1, 1000), Some(2040), (1, 48000)));
        assert!(!same_time(Some(43), (1, 1000), Some(2112), (1, 48000)));
        // One time base: exact.
        assert!(same_time(Some(-1024), (1, 12288), Some(-1024), (1, 12288)));
        assert!(!same_time(Some(-1024), (1, 12288), Some(-1023), (1, 12288)));
        assert!(same_time(None, (1, 1), None, (1, 2)));
        assert!(!same_time(Some(0), (1, 1), None, (1, 1)));

        let mut s = fixture_like();
        s.format = "matroska,webm".into();
        let mut j = fixture_like();
        let v = j.video.as_mut().expect("video");
        v.time_base = (1, 24576);
        for p in &mut v.packets {
            p.pts = p.pts.map(|t| t * 2);
            p.dts = p.dts.map(|t| t * 2);
            p.duration = p.duration.map(|t| t * 2);
        }
        let v = verdicts(&j, &s, false);
        assert!(v[0].0, "{v:?}");
        assert!(
            v[0].1.contains("; times compared in seconds, to one tick of the coarser time base (joined 1/24576, source 1/12288)"),
            "{v:?}"
        );
    }

    #[test]
    fn ffprobes_json_is_read() {
        let json = r#"{
            "packets": [
                {"stream_index": 1, "pts": -1024, "dts": -1024, "duration": 1024, "size": "132",
                 "flags": "KD", "side_data_list": [{}], "data_hash": "SHA256:63e3"},
                {"stream_index": 0, "pts": 0, "dts": -1024, "duration": 512, "size": "3483",
                 "flags": "K_", "data_hash": "SHA256:66fd"},
                {"stream_index": 2, "pts": 0, "size": "9", "flags": "K_", "data_hash": "SHA256:00"},
                {"stream_index": 3, "pts": 0, "size": "1", "flags": "K_", "data_hash": "SHA256:01"}
            ],
            "streams": [
                {"index": 0, "codec_type": "video", "time_base": "1/12288", "disposition": {"attached_pic": 0}},
                {"index": 1, "codec_type": "audio", "time_base": "1/48000", "disposition": {"attached_pic": 0}},
                {"index": 2, "codec_type": "video", "time_base": "1/90000", "disposition": {"attached_pic": 1}},
                {"index": 3, "codec_type": "subtitle", "time_base": "1/1000", "disposition": {"attached_pic": 0}}
            ],
            "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"}
        }"#;
        let p = parse_probe(json).expect("parsed");
        assert_eq!(p.format, "mov,mp4,m4a,3gp,3g2,mj2");
        let v = p.video.expect("video");
        assert_eq!((v.index, v.time_base), (0, (1, 12288)));
        assert_eq!(
            v.packets,
            [Packet {
                pts: Some(0),
                dts: Some(-1024),
                duration: Some(512),
                size: 3483,
                flags: "K_".into(),
                hash: "SHA256:66fd".into()
            }]
        );
        assert_eq!(p.audio.len(), 1);
        assert_eq!(p.audio[0].packets[0].pts, Some(-1024));
        assert_eq!(p.audio[0].packets[0].size, 132);
        // N/A timestamps are left out of ffprobe's JSON.
        let p = parse_probe(
            r#"{"packets": [{"stream_index": 0, "pts": 40, "size": "5", "flags": "__", "data_hash": "SHA256:aa"}],
                "streams": [{"index": 0, "codec_type": "video", "time_base": "1/1000"}],
                "format": {"format_name": "matroska,webm"}}"#,
        )
        .expect("parsed");
        assert_eq!(p.video.expect("video").packets[0].dts, None);
        assert!(parse_probe("not json").is_err());
        assert!(parse_probe(r#"{"streams": [{"index": 0, "codec_type": "video"}]}"#).is_err());
    }

    #[test]
    fn what_can_be_compared_and_what_is_skipped() {
        assert_eq!(dts_compared("mov,mp4,m4a,3gp,3g2,mj2"), Ok(true));
        assert_eq!(dts_compared("matroska,webm"), Ok(false));
        let why = dts_compared("mpegts").expect_err("MPEG-TS");
        assert!(
            why.starts_with("the video is `mpegts`: only an MP4/MOV or Matroska source"),
            "{why}"
        );

        let mut m: Manifest = serde_json::from_str(
            r#"{"schema_version": 2, "splitter_version": "0.1.0", "segment_seconds": 10.0,
                "source": {"bytes": 1, "sha256": "00", "video": {"codec": "hevc", "width": 64,
                  "height": 64, "frame_rate": 25.0, "frames": 50}},
                "segments": [
                  {"index": 0, "path": "segments/000000.mp4", "bytes": 1, "sha256": "0",
                   "frames": 25, "lead_in_frames": 0, "trailing_frames": 0,
                   "start_seconds": 0.0, "duration_seconds": 1.0},
                  {"index": 1, "path": "segments/000001.mp4", "bytes": 1, "sha256": "0",
                   "frames": 25, "lead_in_frames": 0, "trailing_frames": 0,
                   "start_seconds": 1.0, "duration_seconds": 1.0}]}"#,
        )
        .expect("manifest");
        assert_eq!(skip_reason(&m), None);
        m.segments[1].lead_in_frames = 3;
        assert_eq!(
            skip_reason(&m).as_deref(),
            Some(
                "1 of the 2 segment(s) carry frames they do not own (3 lead-in and 0 trailing in \
                 all: an open GOP or context frames), so joining the split's own segments is not \
                 the identity (a worker must drop those frames first)"
            )
        );
    }

    /// The real ffprobe on the fixture (needs ffmpeg: `cargo xtask test` installs it): its
    /// packets are its packets.
    #[test]
    fn ffprobe_lists_every_packet_of_the_fixture() {
        let ffprobe = super::super::output::find_ffprobe().expect("ffprobe on PATH");
        let fixture = crate::project_root().join(super::super::source::FIXTURE);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let p = rt.block_on(probe(&ffprobe, &fixture)).expect("ffprobe runs").expect("a video");
        assert_eq!(dts_compared(&p.format), Ok(true));
        let v = p.video.as_ref().expect("video");
        assert_eq!((v.packets.len(), v.time_base), (288, (1, 12288)));
        assert_eq!(p.audio.len(), 1);
        assert_eq!(p.audio[0].packets.len(), 564);
        assert!(v.packets.iter().all(|p| p.hash.len() == "SHA256:".len() + 64 && p.size > 0));
        // AAC priming: the first audio packet has side data, and is still one packet.
        assert_eq!(p.audio[0].packets[0].pts, Some(-1024));
        let c = checks(Ok(&p), &p, true);
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        assert!(c[0].detail.starts_with("288 video packets identical"), "{c:?}");
        assert!(c[1].detail.starts_with("564 audio packets in 1 stream(s) identical"), "{c:?}");

        let text =
            std::env::temp_dir().join(format!("xtask-join-probe-{}.mp4", std::process::id()));
        std::fs::write(&text, "not a video\n").expect("write");
        let why = rt.block_on(probe(&ffprobe, &text)).expect("ffprobe runs").expect_err("text");
        assert!(why.contains("Invalid data found"), "{why}");
        let _ = std::fs::remove_file(&text);
    }
}
