//! The content model through the public API: golden ids that must never change,
//! canonical encodings, and hostile manifests refused without allocating.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use distroweb_protocol::content::{
    prepare_file, prepare_site, Manifest, ManifestError, FILE_MAGIC, MAX_FILE_CHUNKS,
    MAX_SITE_FILES, SITE_MAGIC,
};
use distroweb_protocol::wire::MAX_BLOCK_BYTES;
use distroweb_protocol::{Id, PathError, SiteFile};
use proptest::prelude::*;

/// Counts the bytes this thread allocates, so a test can show that decoding a
/// hostile manifest does not reserve what the manifest claims.
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same layout, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the pointer came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f`, returning its result and the bytes it allocated on this thread.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

const CS: usize = 256 * 1024;

fn golden_file() -> Bytes {
    Bytes::from(
        (0..600_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn golden_site() -> Vec<SiteFile> {
    vec![
        SiteFile::new("index.html", "text/html", "<h1>hello</h1>\n"),
        SiteFile::new("css/site.css", "text/css", "body{margin:0}\n"),
        SiteFile::new("img/big.bin", "application/octet-stream", golden_file()),
    ]
}

#[test]
fn golden_ids_never_change() {
    let small = prepare_file(Bytes::from_static(b"hello, distroweb\n"), "text/plain", CS).unwrap();
    let big = prepare_file(golden_file(), "application/octet-stream", CS).unwrap();
    let site = prepare_site(golden_site(), CS).unwrap();
    let got = [small.root, big.root, site.root].map(|id| id.to_string());
    // If this fails, ids published with an earlier version no longer resolve:
    // change the encoding only with a new magic (version), never silently.
    assert_eq!(
        got,
        [
            "4c8b2cf2a2ea0b7d83a47f65a0e53703e5e19b0f891daf254744b2bd35dbe6a4",
            "fdbaa7a91fa2411ca677a6afb48b30e735f9f9088aa481475803f8f202ef6913",
            "607eb336b82e2c6509a5a324732fb6086af8e4960c0f917e564bf796f2ffdff4",
        ]
    );
}

#[test]
fn the_encoding_is_the_documented_one() {
    let p = prepare_file(Bytes::from_static(b"hi"), "text/plain", CS).unwrap();
    let enc = p.manifest.encode();
    let mut want = FILE_MAGIC.to_vec();
    want.extend_from_slice(&(CS as u32).to_le_bytes());
    want.extend_from_slice(&2u64.to_le_bytes());
    want.push(10);
    want.extend_from_slice(b"text/plain");
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(Id::hash_of(b"hi").as_bytes());
    assert_eq!(enc, want);
    assert_eq!(Id::hash_of(&enc), p.root);
    assert_eq!(p.manifest.id(), p.root);

    let site = prepare_site(vec![SiteFile::new("a.txt", "text/plain", "hi")], CS).unwrap();
    let mut want = SITE_MAGIC.to_vec();
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&5u16.to_le_bytes());
    want.extend_from_slice(b"a.txt");
    want.extend_from_slice(p.root.as_bytes());
    want.extend_from_slice(&2u64.to_le_bytes());
    want.push(10);
    want.extend_from_slice(b"text/plain");
    assert_eq!(site.manifest.encode(), want);
}

#[test]
fn the_same_site_in_any_order_has_one_id() {
    let mut files = golden_site();
    let a = prepare_site(files.clone(), CS).unwrap().root;
    files.reverse();
    files[0].path = b"./img/./big.bin".to_vec();
    assert_eq!(prepare_site(files, CS).unwrap().root, a);
}

fn file_header(chunk_size: u32, length: u64, count: u32) -> Vec<u8> {
    let mut b = FILE_MAGIC.to_vec();
    b.extend_from_slice(&chunk_size.to_le_bytes());
    b.extend_from_slice(&length.to_le_bytes());
    b.push(10);
    b.extend_from_slice(b"text/plain");
    b.extend_from_slice(&count.to_le_bytes());
    b
}

fn site_header(count: u32) -> Vec<u8> {
    let mut b = SITE_MAGIC.to_vec();
    b.extend_from_slice(&count.to_le_bytes());
    b
}

fn site_entry(path: &[u8]) -> Vec<u8> {
    let mut b = (path.len() as u16).to_le_bytes().to_vec();
    b.extend_from_slice(path);
    b.extend_from_slice(&[7u8; 32]);
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(9);
    b.extend_from_slice(b"text/html");
    b
}

#[test]
fn absurd_manifests_are_refused_without_allocating_them() {
    let max_chunks = MAX_FILE_CHUNKS as u32;
    let cases: Vec<(Vec<u8>, ManifestError)> = vec![
        (
            file_header(1024, u64::MAX, u32::MAX),
            ManifestError::TooManyChunks {
                count: u64::from(u32::MAX),
                max: MAX_FILE_CHUNKS,
            },
        ),
        (
            // A consistent header for the largest file, with no ids behind it.
            file_header(1024, u64::from(max_chunks) * 1024, max_chunks),
            ManifestError::Truncated,
        ),
        (
            file_header(1024, u64::MAX, 3),
            ManifestError::ChunkCount {
                count: 3,
                expected: u64::MAX.div_ceil(1024),
            },
        ),
        (file_header(0, 0, 0), ManifestError::BadChunkSize(0)),
        (
            file_header(u32::MAX, 0, 0),
            ManifestError::BadChunkSize(u32::MAX),
        ),
        (
            site_header(u32::MAX),
            ManifestError::FileCount {
                count: u64::from(u32::MAX),
                max: MAX_SITE_FILES,
            },
        ),
        (site_header(MAX_SITE_FILES as u32), ManifestError::Truncated),
        (
            site_header(0),
            ManifestError::FileCount {
                count: 0,
                max: MAX_SITE_FILES,
            },
        ),
        (b"dwfile\0\x02rest".to_vec(), ManifestError::UnknownMagic),
        (Vec::new(), ManifestError::Truncated),
        (
            vec![0u8; MAX_BLOCK_BYTES + 1],
            ManifestError::TooLarge {
                len: MAX_BLOCK_BYTES + 1,
                max: MAX_BLOCK_BYTES,
            },
        ),
    ];
    // The counter sees real allocations: 100 chunk ids are 3,200 bytes.
    let mut valid = file_header(1024, 100 * 1024, 100);
    valid.extend(std::iter::repeat_n(7u8, 100 * 32));
    let (ok, allocated) = allocated_by(|| Manifest::decode(&valid));
    assert!(ok.is_ok() && allocated >= 3200, "{allocated}");
    for (bytes, want) in cases {
        let (got, allocated) = allocated_by(|| Manifest::decode(&bytes));
        assert_eq!(got, Err(want));
        assert!(allocated < 1024, "{got:?} allocated {allocated} bytes");
    }
}

#[test]
fn sites_that_break_the_canonical_form_are_refused() {
    let site = |entries: &[&[u8]]| {
        let mut b = site_header(entries.len() as u32);
        for e in entries {
            b.extend(site_entry(e));
        }
        Manifest::decode(&b)
    };
    assert!(site(&[b"a.html", b"b.html"]).is_ok());
    assert_eq!(site(&[b"b.html", b"a.html"]), Err(ManifestError::Unsorted));
    assert_eq!(site(&[b"a.html", b"a.html"]), Err(ManifestError::Unsorted));
    assert_eq!(site(&[b"./a.html"]), Err(ManifestError::NotNormal));
    assert_eq!(
        site(&[b"../a.html"]),
        Err(ManifestError::Path(PathError::ParentSegment))
    );
    assert_eq!(
        site(&[b"a", b"a/b.html"]),
        Err(ManifestError::FileIsDirectory("a".into()))
    );
    let mut trailing = site_header(1);
    trailing.extend(site_entry(b"a.html"));
    trailing.push(0);
    assert_eq!(
        Manifest::decode(&trailing),
        Err(ManifestError::TrailingBytes(1))
    );
}

proptest! {
    #[test]
    fn prepared_manifests_round_trip(len in 0usize..6000, chunk in 1024usize..2048) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let p = prepare_file(Bytes::from(data), "application/x-test", chunk).unwrap();
        let enc = p.manifest.encode();
        prop_assert_eq!(Manifest::decode(&enc), Ok(p.manifest.clone()));
        let Manifest::File(m) = &p.manifest else { unreachable!() };
        prop_assert_eq!(m.chunks().len(), len.div_ceil(chunk));
        let total: usize = (0..m.chunks().len()).filter_map(|i| m.chunk_len(i)).sum();
        prop_assert_eq!(total, len);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), magic in 0u8..3) {
        let mut input = match magic {
            0 => FILE_MAGIC.to_vec(),
            1 => SITE_MAGIC.to_vec(),
            _ => Vec::new(),
        };
        input.extend(bytes);
        let _ = Manifest::decode(&input);
    }
}
