//! Pure: which processed file is which segment, and whether each one can be joined.

use std::collections::BTreeMap;

/// What ffprobe says about a processed segment's video (packets counted, nothing decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub pixel_format: Option<String>,
    pub packets: u64,
    /// Hash of the codec configuration (SPS/PPS and the like): one stream needs one.
    pub extradata: Option<String>,
}

/// The processed file of each segment, by index: `PROCESSED/000003.*` is segment 3. Exactly
/// one file per segment, none for a segment the split does not have.
pub fn match_segments(names: &[String], segments: usize) -> Result<Vec<String>, String> {
    let mut found: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for name in names {
        let Some((stem, extension)) = name.split_once('.') else { continue };
        if stem.len() != 6 || !stem.bytes().all(|b| b.is_ascii_digit()) || extension.is_empty() {
            continue;
        }
        let index: usize = stem.parse().map_err(|_| format!("bad file name {name}"))?;
        found.entry(index).or_default().push(name);
    }
    if let Some((&index, names)) = found.range(segments..).next() {
        return Err(format!(
            "segment {index}: {} is processed but the split has only {segments} segments (0 to {})",
            names[0],
            segments.saturating_sub(1)
        ));
    }
    (0..segments)
        .map(|index| match found.get(&index).map(Vec::as_slice) {
            Some([one]) => Ok((*one).to_string()),
            Some(many) => Err(format!(
                "segment {index}: {} processed files ({}); keep one",
                many.len(),
                sorted(many).join(", ")
            )),
            None => Err(format!("segment {index}: no processed file (expected {index:06}.*)")),
        })
        .collect()
}

fn sorted<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut names = names.to_vec();
    names.sort_unstable();
    names
}

/// Why segment `index` (file `name`) cannot be joined: its packet count against the frames
/// it owns, then its stream against segment 0's.
pub fn check_segment(
    index: usize,
    name: &str,
    frames: u64,
    facts: &Facts,
    first: &Facts,
) -> Result<(), String> {
    let at = format!("segment {index} ({name})");
    if facts.packets != frames {
        return Err(format!(
            "{at}: expected {frames} frames (the frames it owns), found {}",
            facts.packets
        ));
    }
    if facts.codec != first.codec {
        return Err(format!("{at}: codec {}, segment 0 has {}", facts.codec, first.codec));
    }
    if (facts.width, facts.height) != (first.width, first.height) {
        return Err(format!(
            "{at}: resolution {}x{}, segment 0 has {}x{}",
            facts.width, facts.height, first.width, first.height
        ));
    }
    if facts.pixel_format != first.pixel_format {
        let show = |p: &Option<String>| p.clone().unwrap_or_else(|| "unknown".into());
        return Err(format!(
            "{at}: pixel format {}, segment 0 has {}",
            show(&facts.pixel_format),
            show(&first.pixel_format)
        ));
    }
    if facts.extradata != first.extradata {
        return Err(format!(
            "{at}: its codec configuration (extradata) differs from segment 0's: encode every \
             segment with the same encoder settings"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn files_are_matched_by_index() {
        let got = match_segments(&names(&["000001.mkv", "notes.txt", "000000.mp4"]), 2);
        assert_eq!(got, Ok(names(&["000000.mp4", "000001.mkv"])));
        assert_eq!(
            match_segments(&names(&["000000.mp4"]), 2),
            Err("segment 1: no processed file (expected 000001.*)".into())
        );
        assert_eq!(
            match_segments(&names(&["000000.mp4", "000000.mkv"]), 1),
            Err("segment 0: 2 processed files (000000.mkv, 000000.mp4); keep one".into())
        );
        let extra = match_segments(&names(&["000000.mp4", "000002.mp4", "000001.mp4"]), 2);
        assert!(extra.expect_err("refused").starts_with("segment 2: 000002.mp4 is processed"));
        // Not segment names: ignored.
        assert_eq!(
            match_segments(&names(&["1.mp4", "000000", "000000.mp4"]), 1).map(|v| v.len()),
            Ok(1)
        );
    }

    #[test]
    fn counts_and_streams_are_compared() {
        let first = Facts {
            codec: "h264".into(),
            width: 640,
            height: 480,
            pixel_format: Some("yuv420p".into()),
            packets: 10,
            extradata: Some("a".into()),
        };
        assert_eq!(check_segment(0, "000000.mp4", 10, &first, &first), Ok(()));
        let e = check_segment(0, "000000.mp4", 9, &first, &first).expect_err("refused");
        assert_eq!(e, "segment 0 (000000.mp4): expected 9 frames (the frames it owns), found 10");
        let other = Facts { width: 320, height: 240, ..first.clone() };
        let e = check_segment(4, "000004.mp4", 10, &other, &first).expect_err("refused");
        assert_eq!(e, "segment 4 (000004.mp4): resolution 320x240, segment 0 has 640x480");
        let other = Facts { pixel_format: None, ..first.clone() };
        assert!(
            check_segment(1, "x", 10, &other, &first)
                .expect_err("refused")
                .contains("pixel format")
        );
        let other = Facts { codec: "hevc".into(), ..first.clone() };
        assert!(
            check_segment(1, "x", 10, &other, &first).expect_err("refused").contains("codec hevc")
        );
        let other = Facts { extradata: Some("b".into()), ..first.clone() };
        assert!(
            check_segment(1, "x", 10, &other, &first).expect_err("refused").contains("extradata")
        );
    }
}
