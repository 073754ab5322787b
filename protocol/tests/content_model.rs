//! The content model through the public API: golden ids that must never change,
//! canonical encodings, and non-canonical manifests refused. (Hostile manifests
//! and their allocations are in `hostile_input.rs`.)

use bytes::Bytes;
use distroweb_protocol::content::{
    prepare_file, prepare_site, Manifest, ManifestError, FILE_MAGIC, SITE_MAGIC,
};
use distroweb_protocol::{Id, PathError, SiteFile};
use proptest::prelude::*;

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
