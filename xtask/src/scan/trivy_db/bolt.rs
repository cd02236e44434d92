//! A writer for bbolt database files (the key/value store Trivy keeps its vulnerability DB in).
//!
//! Only what a freshly written, read-only database needs: the whole tree is built in memory
//! ([`Bucket`]) and written once, so there is no free space, no transaction log and a single
//! commit. The file layout follows bbolt (`go.etcd.io/bbolt`, format version 2):
//!
//! - every page starts with a 16-byte header: `id u64, flags u16, count u16, overflow u32`;
//!   a page whose content does not fit spans `overflow` more pages;
//! - pages 0 and 1 are meta pages (magic, version, page size, root bucket, freelist page, high
//!   water mark, txid, then an FNV-1a 64 checksum of the 56 meta bytes before it — file bytes
//!   16..72 of each page); bbolt uses the valid one with the higher txid;
//! - page 2 is an empty freelist page;
//! - a bucket is a B+tree of leaf pages (elements `flags u32, pos u32, ksize u32, vsize u32`,
//!   `pos` relative to the element) under branch pages (elements `pos u32, ksize u32, pgid u64`);
//!   keys sorted bytewise;
//! - a nested bucket is a leaf element with flag 1 whose value is `root pgid u64, sequence u64`;
//!   a small bucket without sub-buckets is stored *inline*: root 0 and its leaf page right
//!   after that header (bbolt inlines buckets under a quarter page; so does this writer).
//!
//! All integers are little-endian (bbolt writes native byte order; Trivy runs on little-endian
//! machines).

use std::collections::BTreeMap;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const LEAF_ELEMENT: usize = 16;
const BRANCH_ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
const BUCKET_LEAF_FLAG: u32 = 0x01;
/// The page size of the databases this writer produces (bbolt's default on x86-64 Linux).
pub const PAGE_SIZE: usize = 4096;

/// A value in a bucket: plain bytes or a nested bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Value(Vec<u8>),
    Bucket(Bucket),
}

/// A bucket: keys (sorted bytewise, as bbolt stores them) to values or nested buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    entries: BTreeMap<Vec<u8>, Entry>,
}

impl Bucket {
    pub fn new() -> Bucket {
        Bucket::default()
    }

    /// Sets `key` to `value` (replacing a value or bucket of that name).
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        self.entries.insert(key.as_ref().to_vec(), Entry::Value(value.into()));
    }

    /// The nested bucket `name`, created if missing (a value of that name is replaced).
    pub fn bucket(&mut self, name: impl AsRef<[u8]>) -> &mut Bucket {
        let entry = self
            .entries
            .entry(name.as_ref().to_vec())
            .and_modify(|e| {
                if !matches!(e, Entry::Bucket(_)) {
                    *e = Entry::Bucket(Bucket::new());
                }
            })
            .or_insert_with(|| Entry::Bucket(Bucket::new()));
        match entry {
            Entry::Bucket(b) => b,
            Entry::Value(_) => unreachable!("replaced above"),
        }
    }

    #[cfg(test)]
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&Entry> {
        self.entries.get(key.as_ref())
    }

    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_slice(), v))
    }

    fn has_sub_buckets(&self) -> bool {
        self.entries.values().any(|e| matches!(e, Entry::Bucket(_)))
    }
}

/// Serializes `root` (the database's top-level buckets) into a bbolt file image.
///
/// Top-level entries must be buckets: bbolt's root holds only buckets.
pub fn write(root: &Bucket) -> Result<Vec<u8>, String> {
    if let Some((key, _)) = root.entries().find(|(_, e)| matches!(e, Entry::Value(_))) {
        return Err(format!(
            "bbolt keeps only buckets at the top level, not the value {:?}",
            String::from_utf8_lossy(key)
        ));
    }
    let mut file = FileWriter { pages: vec![0; 3 * PAGE_SIZE] };
    let root_pgid = file.write_tree(root)?;
    // Page 2: an empty freelist.
    file.page_header(2, FREELIST_PAGE, 0, 0);
    let high_water = (file.pages.len() / PAGE_SIZE) as u64;
    for txid in 0..2u64 {
        let start = txid as usize * PAGE_SIZE;
        file.page_header(txid, META_PAGE, 0, 0);
        let mut meta = Vec::with_capacity(64);
        meta.extend_from_slice(&MAGIC.to_le_bytes());
        meta.extend_from_slice(&VERSION.to_le_bytes());
        meta.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
        meta.extend_from_slice(&0u32.to_le_bytes()); // flags
        meta.extend_from_slice(&root_pgid.to_le_bytes()); // root bucket: root page
        meta.extend_from_slice(&0u64.to_le_bytes()); // root bucket: sequence
        meta.extend_from_slice(&2u64.to_le_bytes()); // freelist page
        meta.extend_from_slice(&high_water.to_le_bytes());
        meta.extend_from_slice(&txid.to_le_bytes());
        let checksum = fnv1a64(&meta);
        meta.extend_from_slice(&checksum.to_le_bytes());
        file.pages[start + PAGE_HEADER..start + PAGE_HEADER + meta.len()].copy_from_slice(&meta);
    }
    Ok(file.pages)
}

/// FNV-1a, 64 bit (Go's `hash/fnv.New64a`), which bbolt uses for meta page checksums.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

struct FileWriter {
    pages: Vec<u8>,
}

/// One leaf element before layout: flags, key, value.
type LeafElement = (u32, Vec<u8>, Vec<u8>);

impl FileWriter {
    fn page_header(&mut self, pgid: u64, flags: u16, count: u16, overflow: u32) {
        let at = pgid as usize * PAGE_SIZE;
        let header = &mut self.pages[at..at + PAGE_HEADER];
        header[0..8].copy_from_slice(&pgid.to_le_bytes());
        header[8..10].copy_from_slice(&flags.to_le_bytes());
        header[10..12].copy_from_slice(&count.to_le_bytes());
        header[12..16].copy_from_slice(&overflow.to_le_bytes());
    }

    /// Appends a page (plus overflow pages) holding `body` after its header; returns its id.
    fn append_page(&mut self, flags: u16, count: u16, body: &[u8]) -> u64 {
        let pgid = (self.pages.len() / PAGE_SIZE) as u64;
        let pages = (PAGE_HEADER + body.len()).div_ceil(PAGE_SIZE);
        self.pages.resize(self.pages.len() + pages * PAGE_SIZE, 0);
        self.page_header(pgid, flags, count, (pages - 1) as u32);
        let at = pgid as usize * PAGE_SIZE + PAGE_HEADER;
        self.pages[at..at + body.len()].copy_from_slice(body);
        pgid
    }

    /// Writes a bucket's B+tree (and, first, its non-inline sub-buckets); returns the root page.
    fn write_tree(&mut self, bucket: &Bucket) -> Result<u64, String> {
        let mut elements: Vec<LeafElement> = Vec::with_capacity(bucket.entries.len());
        for (key, entry) in bucket.entries() {
            if key.is_empty() {
                return Err("bbolt keys must not be empty".into());
            }
            match entry {
                Entry::Value(v) => elements.push((0, key.to_vec(), v.clone())),
                Entry::Bucket(b) => {
                    elements.push((BUCKET_LEAF_FLAG, key.to_vec(), self.bucket_value(b)?))
                }
            }
        }
        // Leaf pages: fill each up to a page (a single large element overflows instead).
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut chunk: Vec<&LeafElement> = Vec::new();
        let mut size = PAGE_HEADER;
        for element in &elements {
            let element_size = LEAF_ELEMENT + element.1.len() + element.2.len();
            if !chunk.is_empty() && size + element_size > PAGE_SIZE {
                level.push((chunk[0].1.clone(), self.append_leaf(&chunk)?));
                chunk.clear();
                size = PAGE_HEADER;
            }
            chunk.push(element);
            size += element_size;
        }
        if !chunk.is_empty() || level.is_empty() {
            let first = chunk.first().map(|e| e.1.clone()).unwrap_or_default();
            level.push((first, self.append_leaf(&chunk)?));
        }
        // Branch levels until one page is the root.
        while level.len() > 1 {
            let mut next = Vec::new();
            let mut chunk: Vec<(Vec<u8>, u64)> = Vec::new();
            let mut size = PAGE_HEADER;
            for (key, pgid) in level {
                let element_size = BRANCH_ELEMENT + key.len();
                if chunk.len() >= 2 && size + element_size > PAGE_SIZE {
                    let first = chunk[0].0.clone();
                    next.push((first, self.append_branch(&chunk)?));
                    chunk.clear();
                    size = PAGE_HEADER;
                }
                chunk.push((key, pgid));
                size += element_size;
            }
            let first = chunk[0].0.clone();
            next.push((first, self.append_branch(&chunk)?));
            level = next;
        }
        Ok(level[0].1)
    }

    /// The value stored for a nested bucket: inline when small and without sub-buckets.
    fn bucket_value(&mut self, bucket: &Bucket) -> Result<Vec<u8>, String> {
        let inline_size = PAGE_HEADER
            + bucket.entries().map(|(k, e)| LEAF_ELEMENT + k.len() + value_len(e)).sum::<usize>();
        let mut value = Vec::with_capacity(BUCKET_HEADER + inline_size);
        if !bucket.has_sub_buckets() && inline_size <= PAGE_SIZE / 4 {
            value.extend_from_slice(&0u64.to_le_bytes()); // root 0: inline
            value.extend_from_slice(&0u64.to_le_bytes()); // sequence
            let elements: Vec<LeafElement> = bucket
                .entries()
                .map(|(k, e)| match e {
                    Entry::Value(v) => (0, k.to_vec(), v.clone()),
                    Entry::Bucket(_) => unreachable!("checked: no sub-buckets"),
                })
                .collect();
            let refs: Vec<&LeafElement> = elements.iter().collect();
            let (count, body) = leaf_body(&refs)?;
            let mut header = [0u8; PAGE_HEADER];
            header[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
            header[10..12].copy_from_slice(&count.to_le_bytes());
            value.extend_from_slice(&header);
            value.extend_from_slice(&body);
        } else {
            let root = self.write_tree(bucket)?;
            value.extend_from_slice(&root.to_le_bytes());
            value.extend_from_slice(&0u64.to_le_bytes());
        }
        Ok(value)
    }

    fn append_leaf(&mut self, elements: &[&LeafElement]) -> Result<u64, String> {
        let (count, body) = leaf_body(elements)?;
        Ok(self.append_page(LEAF_PAGE, count, &body))
    }

    fn append_branch(&mut self, children: &[(Vec<u8>, u64)]) -> Result<u64, String> {
        let count = u16::try_from(children.len()).map_err(|_| "too many branch elements")?;
        let mut body = vec![0u8; children.len() * BRANCH_ELEMENT];
        for (i, (key, pgid)) in children.iter().enumerate() {
            let at = i * BRANCH_ELEMENT;
            let pos = (body.len() - at) as u32;
            body[at..at + 4].copy_from_slice(&pos.to_le_bytes());
            body[at + 4..at + 8].copy_from_slice(&(key.len() as u32).to_le_bytes());
            body[at + 8..at + 16].copy_from_slice(&pgid.to_le_bytes());
            body.extend_from_slice(key);
        }
        Ok(self.append_page(BRANCH_PAGE, count, &body))
    }
}

fn value_len(entry: &Entry) -> usize {
    match entry {
        Entry::Value(v) => v.len(),
        // Only reached for buckets without sub-buckets, which then are not inlined.
        Entry::Bucket(_) => BUCKET_HEADER,
    }
}

/// The body of a leaf page (after its header): the element array, then keys and values.
fn leaf_body(elements: &[&LeafElement]) -> Result<(u16, Vec<u8>), String> {
    let count = u16::try_from(elements.len()).map_err(|_| "too many leaf elements")?;
    let mut body = vec![0u8; elements.len() * LEAF_ELEMENT];
    for (i, (flags, key, value)) in elements.iter().enumerate() {
        let at = i * LEAF_ELEMENT;
        let pos = u32::try_from(body.len() - at).map_err(|_| "page too large")?;
        let ksize = u32::try_from(key.len()).map_err(|_| "key too large")?;
        let vsize = u32::try_from(value.len()).map_err(|_| "value too large")?;
        body[at..at + 4].copy_from_slice(&flags.to_le_bytes());
        body[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
        body[at + 8..at + 12].copy_from_slice(&ksize.to_le_bytes());
        body[at + 12..at + 16].copy_from_slice(&vsize.to_le_bytes());
        body.extend_from_slice(key);
        body.extend_from_slice(value);
    }
    Ok((count, body))
}

/// Reads a file written by [`write`] (or any bbolt file without free pages in use) back into
/// buckets. Used by the tests to check the layout; Trivy itself is the real reader.
#[cfg(test)]
pub fn read(file: &[u8]) -> Result<Bucket, String> {
    let meta = |pgid: usize| -> Result<(u64, u64), String> {
        let at = pgid * PAGE_SIZE + PAGE_HEADER;
        let m = file.get(at..at + 64).ok_or("file too short for meta pages")?;
        let u32_at = |o: usize| u32::from_le_bytes(m[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(m[o..o + 8].try_into().expect("8 bytes"));
        if u32_at(0) != MAGIC || u32_at(4) != VERSION || u32_at(8) as usize != PAGE_SIZE {
            return Err(format!("meta page {pgid}: bad magic, version or page size"));
        }
        if fnv1a64(&m[..56]) != u64_at(56) {
            return Err(format!("meta page {pgid}: checksum mismatch"));
        }
        Ok((u64_at(48), u64_at(16)))
    };
    let (txid0, root0) = meta(0)?;
    let (txid1, root1) = meta(1)?;
    let root = if txid1 > txid0 { root1 } else { root0 };
    let mut bucket = Bucket::new();
    read_page(file, root as usize * PAGE_SIZE, true, &mut bucket)?;
    Ok(bucket)
}

#[cfg(test)]
fn read_page(file: &[u8], at: usize, check_id: bool, into: &mut Bucket) -> Result<(), String> {
    let bytes = |from: usize, len: usize| -> Result<&[u8], String> {
        file.get(from..from + len).ok_or_else(|| format!("read past the end at {from}"))
    };
    let u16_at = |o: usize| -> Result<u16, String> {
        Ok(u16::from_le_bytes(bytes(o, 2)?.try_into().expect("2 bytes")))
    };
    let u32_at = |o: usize| -> Result<u32, String> {
        Ok(u32::from_le_bytes(bytes(o, 4)?.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        Ok(u64::from_le_bytes(bytes(o, 8)?.try_into().expect("8 bytes")))
    };
    if check_id && u64_at(at)? as usize * PAGE_SIZE != at {
        return Err(format!("page at {at} names another id"));
    }
    let flags = u16_at(at + 8)?;
    let count = u16_at(at + 10)? as usize;
    for i in 0..count {
        let el = at + PAGE_HEADER + i * 16;
        match flags {
            LEAF_PAGE => {
                let (eflags, pos) = (u32_at(el)?, u32_at(el + 4)? as usize);
                let (ksize, vsize) = (u32_at(el + 8)? as usize, u32_at(el + 12)? as usize);
                let key = bytes(el + pos, ksize)?.to_vec();
                let value_at = el + pos + ksize;
                if eflags & BUCKET_LEAF_FLAG != 0 {
                    let child = into.bucket(&key);
                    let root = u64_at(value_at)?;
                    if root == 0 {
                        read_page(file, value_at + BUCKET_HEADER, false, child)?;
                    } else {
                        read_page(file, root as usize * PAGE_SIZE, true, child)?;
                    }
                } else {
                    into.put(key, bytes(value_at, vsize)?);
                }
            }
            BRANCH_PAGE => {
                let pgid = u64_at(el + 8)? as usize;
                read_page(file, pgid * PAGE_SIZE, true, into)?;
            }
            other => return Err(format!("page at {at}: unexpected flags {other:#x}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_go() {
        // Go: fnv.New64a() over "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn small_nested_buckets_are_inline_and_round_trip() {
        let mut root = Bucket::new();
        root.bucket("debian 13").bucket("glibc").put("CVE-1", br#"{"Severity":3}"#);
        root.bucket("vulnerability").put("CVE-1", br#"{"Severity":"HIGH"}"#);
        let file = write(&root).expect("writes");
        // meta, meta, freelist, then one page per non-inline bucket: the root and "debian 13"
        // (it has a sub-bucket); "glibc" and "vulnerability" are inline.
        assert_eq!(file.len(), 5 * PAGE_SIZE);
        assert_eq!(read(&file).expect("reads"), root);
    }

    #[test]
    fn large_buckets_split_into_leaf_and_branch_pages() {
        let mut root = Bucket::new();
        let big = root.bucket("vulnerability");
        for i in 0..2000 {
            big.put(
                format!("CVE-2099-{i:05}"),
                format!("{{\"Title\":\"{}\"}}", "x".repeat(i % 50)),
            );
        }
        root.bucket("huge").put("one", vec![7u8; 3 * PAGE_SIZE]);
        let file = write(&root).expect("writes");
        assert!(file.len() > 20 * PAGE_SIZE);
        assert_eq!(read(&file).expect("reads"), root);
    }

    #[test]
    fn meta_checksum_covers_bytes_16_to_72() {
        let mut root = Bucket::new();
        root.bucket("b").put("k", "v");
        let mut file = write(&root).expect("writes");
        let sum = u64::from_le_bytes(file[72..80].try_into().expect("8 bytes"));
        assert_eq!(sum, fnv1a64(&file[16..72]));
        file[40] ^= 1;
        assert!(read(&file).expect_err("corrupt meta 0").contains("checksum"));
    }

    #[test]
    fn top_level_values_are_rejected() {
        let mut root = Bucket::new();
        root.put("k", "v");
        assert!(write(&root).is_err());
    }
}
