//! Hostile input through the public API: decoding what a peer sends never
//! reserves memory for what the input only claims. A counting global allocator
//! (which must live in a test binary of its own) measures what each decode
//! allocates; a valid input of the same shape shows the counter sees real
//! allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use distroweb_protocol::content::{
    Manifest, ManifestError, FILE_MAGIC, MAX_FILE_CHUNKS, MAX_SITE_FILES, SITE_MAGIC,
};
use distroweb_protocol::wire::{MAX_BLOCK_BYTES, MAX_LIST_LEN};
use distroweb_protocol::{Body, Contact, DecodeError, Id, Message, Payload, RpcId};

/// Counts the bytes this thread allocates, so a test can show that decoding
/// hostile input does not reserve what the input claims.
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

/// What decoding a hostile input may allocate at most, in bytes: a few small
/// buffers, never the claimed length.
const BOUND_BYTES: usize = 1024;

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
        assert!(
            allocated < BOUND_BYTES,
            "{got:?} allocated {allocated} bytes"
        );
    }
}

/// The start of a message frame: a zero sender id, rpc 1, then `variant`
/// (the body's index in `Body`).
fn frame(variant: u8) -> Vec<u8> {
    let mut b = vec![0u8; 32];
    b.extend_from_slice(&[1, variant]);
    b
}

/// `u32::MAX` as a postcard varint: a length prefix claiming four billion items.
const HUGE: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

/// Body variant indices, in `Body`'s declaration order.
const NODES: u8 = 3;
const PROVIDERS: u8 = 5;
const ROUTE: u8 = 8;
const BLOCK: u8 = 13;

#[test]
fn huge_declared_lengths_are_refused_without_allocating_them() {
    let out_of_bounds = DecodeError::Malformed("value out of bounds");
    // A length beyond what the input could hold is refused as truncated before
    // anything is read; a length the input could hold but over the list's cap
    // is refused by the cap, before any element is read.
    let mut cases: Vec<(&str, Vec<u8>, DecodeError)> = Vec::new();
    // A node list claiming u32::MAX contacts, none present.
    let mut nodes = frame(NODES);
    nodes.extend_from_slice(&HUGE);
    cases.push(("nodes", nodes, DecodeError::Truncated));
    // A node list claiming 1,000 contacts, every byte of them present.
    let mut many = frame(NODES);
    many.extend_from_slice(&[0xe8, 0x07]);
    for i in 0..1_000u32 {
        many.extend_from_slice(&[7u8; 32]);
        many.push((i % 100) as u8);
    }
    cases.push(("nodes over the cap", many, out_of_bounds.clone()));
    // A node list at its cap, with one contact present and the rest missing.
    let mut short = frame(NODES);
    short.push(MAX_LIST_LEN as u8);
    short.extend_from_slice(&[7u8; 32]);
    short.push(9);
    cases.push(("nodes at the cap, cut short", short, DecodeError::Truncated));
    // A provider list claiming u32::MAX providers.
    let mut providers = frame(PROVIDERS);
    providers.extend_from_slice(&[0u8; 32]);
    providers.extend_from_slice(&HUGE);
    cases.push(("providers", providers, DecodeError::Truncated));
    // A route whose path claims u32::MAX hops: tag, target, want, then the path.
    let mut route = frame(ROUTE);
    route.push(5);
    route.extend_from_slice(&[0u8; 32]);
    route.push(0);
    route.extend_from_slice(&HUGE);
    cases.push(("route path", route, DecodeError::Truncated));
    // A block claiming u32::MAX bytes, none present.
    let mut block = frame(BLOCK);
    block.extend_from_slice(&[0u8; 32]);
    block.extend_from_slice(&HUGE);
    cases.push(("block", block, DecodeError::Truncated));
    // A block one byte over the limit, every byte present: refused before the copy.
    let over = block_message(MAX_BLOCK_BYTES + 1).encode().unwrap();
    cases.push(("block over the limit", over, out_of_bounds));

    // The counter sees real allocations: a full list of contacts, and a full block.
    let full = Message::<u32> {
        sender: Id::ZERO,
        rpc: RpcId(1),
        body: Body::Nodes {
            closer: (0..MAX_LIST_LEN as u32)
                .map(|i| Contact::new(Id::ZERO, i))
                .collect(),
            token: distroweb_protocol::wire::Token([0; 8]),
        },
    }
    .encode()
    .unwrap();
    let (ok, allocated) = allocated_by(|| Message::<u32>::decode(&full));
    let contacts = MAX_LIST_LEN * std::mem::size_of::<Contact<u32>>();
    assert!(ok.is_ok() && allocated >= contacts, "{allocated}");
    let big = block_message(MAX_BLOCK_BYTES).encode().unwrap();
    let (ok, allocated) = allocated_by(|| Message::<u32>::decode(&big));
    assert!(ok.is_ok() && allocated >= MAX_BLOCK_BYTES, "{allocated}");

    for (name, bytes, want) in cases {
        let (got, allocated) = allocated_by(|| Message::<u32>::decode(&bytes));
        assert_eq!(got, Err(want), "{name}");
        assert!(
            allocated < BOUND_BYTES,
            "{name}: allocated {allocated} bytes"
        );
    }
}

fn block_message(len: usize) -> Message<u32> {
    Message {
        sender: Id::ZERO,
        rpc: RpcId(1),
        body: Body::Block {
            id: Id::ZERO,
            data: Payload(Bytes::from(vec![7u8; len])),
        },
    }
}
