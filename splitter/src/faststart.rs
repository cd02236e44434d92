//! An MP4 whose index (`moov`) follows its media data (`mdat`), read front to back anyway: the
//! index is fetched first (a ranged GET of the object's tail), its chunk offsets moved by its
//! own size, and ffmpeg is fed the file's head, then the moved index, then the media data as
//! it downloads — the layout `-movflags +faststart` writes, without rewriting the object.
//!
//! Pure: bytes in, bytes out. Only the sample tables' chunk offsets (`stco`, `co64`) point
//! into the file; an index holding anything else that does (`iloc`), or fragments (`mvex`), is
//! declined (`None`), as is a 32-bit offset that would overflow: the input is then downloaded
//! first, as before.

use std::ops::Range;

/// A box header at `at` in `data`: (type, header length, box length), `None` when it does not
/// fit or is malformed.
fn header(data: &[u8], at: usize) -> Option<([u8; 4], usize, usize)> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(data.get(i..i + 4)?.try_into().ok()?))
    };
    let size = word(at)?;
    let kind: [u8; 4] = data.get(at + 4..at + 8)?.try_into().ok()?;
    let (head, len) = match size {
        1 => {
            let hi = u64::from(word(at + 8)?);
            let lo = u64::from(word(at + 12)?);
            (16, usize::try_from((hi << 32) | lo).ok()?)
        }
        0 => (8, data.len() - at),
        n => (8, n as usize),
    };
    (len >= head && at.checked_add(len)? <= data.len()).then_some((kind, head, len))
}

/// Where the top-level `moov` box lies in `tail` (bytes that start on a box boundary and run to
/// the end of the file).
pub fn find_moov(tail: &[u8]) -> Option<Range<usize>> {
    let mut at = 0;
    while at < tail.len() {
        let (kind, _, len) = header(tail, at)?;
        if &kind == b"moov" {
            return Some(at..at + len);
        }
        at += len;
    }
    None
}

/// Boxes whose children are boxes, on the way from `moov` to the sample tables.
const CONTAINERS: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

/// `moov` (the whole box) with every chunk offset moved by `shift` bytes: the index to put in
/// front of the media data it describes, when it is `shift` bytes long itself. `None` when
/// the index cannot be moved that simply (see the module notes).
pub fn relocate(moov: &[u8], shift: u64) -> Option<Vec<u8>> {
    let mut out = moov.to_vec();
    let (kind, _, len) = header(&out, 0)?;
    (&kind == b"moov" && len == out.len()).then_some(())?;
    shift_box(&mut out, 0, shift)?;
    Some(out)
}

/// Moves the chunk offsets inside the box at `at` (recursively through [`CONTAINERS`]).
fn shift_box(data: &mut [u8], at: usize, shift: u64) -> Option<()> {
    let (kind, head, len) = header(data, at)?;
    match &kind {
        b"mvex" | b"iloc" | b"moof" => None,
        b"stco" => shift_offsets(&mut data[at + head..at + len], 4, shift),
        b"co64" => shift_offsets(&mut data[at + head..at + len], 8, shift),
        // `meta` is a full box (4 bytes of version and flags before its children) that may
        // hold `iloc`.
        b"meta" => (!contains(&data[at..at + len], head + 4, b"iloc")).then_some(()),
        k if CONTAINERS.contains(&k) => {
            let mut child = at + head;
            while child < at + len {
                let (_, _, child_len) = header(&data[..at + len], child)?;
                shift_box(data, child, shift)?;
                child += child_len;
            }
            Some(())
        }
        _ => Some(()),
    }
}

/// Whether a box of type `kind` is among the children starting at `from` in `data`.
fn contains(data: &[u8], from: usize, kind: &[u8; 4]) -> bool {
    let mut at = from;
    while let Some((k, _, len)) = header(data, at) {
        if &k == kind {
            return true;
        }
        at += len;
    }
    false
}

/// A `stco`/`co64` body (version and flags, entry count, entries of `width` bytes), each entry
/// moved by `shift`; `None` if one would not fit.
fn shift_offsets(body: &mut [u8], width: usize, shift: u64) -> Option<()> {
    let count = u32::from_be_bytes(body.get(4..8)?.try_into().ok()?) as usize;
    let entries = body.get_mut(8..8 + count.checked_mul(width)?)?;
    for entry in entries.chunks_exact_mut(width) {
        if width == 4 {
            let moved = u64::from(u32::from_be_bytes(entry.try_into().ok()?)) + shift;
            entry.copy_from_slice(&u32::try_from(moved).ok()?.to_be_bytes());
        } else {
            let moved = u64::from_be_bytes(entry.try_into().ok()?).checked_add(shift)?;
            entry.copy_from_slice(&moved.to_be_bytes());
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn table(width: usize, entries: &[u64]) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for &e in entries {
            match width {
                4 => body.extend_from_slice(&(e as u32).to_be_bytes()),
                _ => body.extend_from_slice(&e.to_be_bytes()),
            }
        }
        body
    }

    fn moov(stbl_children: &[u8]) -> Vec<u8> {
        let stbl = boxed(b"stbl", stbl_children);
        let minf = boxed(b"minf", &stbl);
        let mdia = boxed(b"mdia", &[boxed(b"mdhd", &[0; 24]), minf].concat());
        let trak = boxed(b"trak", &[boxed(b"tkhd", &[0; 84]), mdia].concat());
        boxed(b"moov", &[boxed(b"mvhd", &[0; 100]), trak.clone(), trak].concat())
    }

    #[test]
    fn chunk_offsets_of_every_track_move_and_nothing_else() {
        let stsz = boxed(b"stsz", &[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2]);
        let original = moov(
            &[
                boxed(b"stco", &table(4, &[48, 1000])),
                boxed(b"co64", &table(8, &[1 << 33])),
                stsz.clone(),
            ]
            .concat(),
        );
        let moved = relocate(&original, 500).expect("moved");
        let expected = moov(
            &[
                boxed(b"stco", &table(4, &[548, 1500])),
                boxed(b"co64", &table(8, &[(1 << 33) + 500])),
                stsz,
            ]
            .concat(),
        );
        assert_eq!(moved, expected);
        assert_eq!(moved.len(), original.len());
    }

    #[test]
    fn what_cannot_be_moved_simply_is_declined() {
        let overflow = moov(&boxed(b"stco", &table(4, &[u64::from(u32::MAX) - 10])));
        assert_eq!(relocate(&overflow, 11), None, "a 32-bit offset past 4 GiB");
        assert!(relocate(&overflow, 10).is_some());
        let fragmented = boxed(b"moov", &[boxed(b"mvhd", &[0; 100]), boxed(b"mvex", &[])].concat());
        assert_eq!(relocate(&fragmented, 1), None);
        let meta = boxed(b"meta", &[vec![0; 4], boxed(b"iloc", &[0; 8])].concat());
        let with_iloc = boxed(b"moov", &[boxed(b"mvhd", &[0; 100]), meta].concat());
        assert_eq!(relocate(&with_iloc, 1), None);
        let truncated = moov(&boxed(b"stco", &table(4, &[1, 2])));
        assert_eq!(relocate(&truncated[..truncated.len() - 3], 1), None);
        assert_eq!(relocate(&boxed(b"free", &[0; 8]), 1), None, "not a moov box");
    }

    #[test]
    fn the_index_is_found_among_the_boxes_after_the_media() {
        let m = moov(&boxed(b"stco", &table(4, &[8])));
        let tail = [boxed(b"free", &[0; 5]), m.clone(), boxed(b"udta", &[1, 2])].concat();
        assert_eq!(find_moov(&tail), Some(13..13 + m.len()));
        assert_eq!(find_moov(&boxed(b"free", &[0; 5])), None);
        assert_eq!(find_moov(&tail[..20]), None, "cut inside the index");
    }
}
