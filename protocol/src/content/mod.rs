//! Content: files split into hashed chunks, sites as directories of files, the
//! manifests that describe both, and the store that holds their blocks.
//!
//! Everything a node stores or transfers is a **block**: a chunk of a file, or a
//! manifest's canonical encoding. A block is named by its BLAKE3 hash, so any
//! holder can serve it and any receiver can check it. A content id is the hash
//! of a root manifest; see [`manifest`](crate::content::manifest) for the encoding.

mod chunking;
pub mod manifest;
mod media_type;
mod path;
mod read;
mod site;
mod store;
pub mod tree;
mod walk;

pub use chunking::{check_chunk_size, prepare_file, FileChunker, FileError, Prepared};
pub use manifest::{
    FileManifest, Manifest, ManifestError, SiteEntry, SiteManifest, FILE_MAGIC, MAX_FILE_CHUNKS,
    MAX_SITE_FILES, MIN_CHUNK_BYTES, SITE_MAGIC,
};
pub use media_type::{MediaType, MediaTypeError, MAX_MEDIA_TYPE_BYTES};
pub use path::{PathError, SitePath, MAX_PATH_BYTES, MAX_PATH_SEGMENTS};
pub use read::{read_content, read_entry, read_file, read_manifest, verify_file, ReadError};
pub use site::{prepare_site, SiteBuilder, SiteError, SiteFile, MAX_BUILT_SITE_FILES};
pub use store::{apply, BlockSource, ContentStore, MemoryStore, StoreError};
pub use tree::{
    Block, FileNode, FileTree, FileTreeBuilder, SiteIndex, SiteNode, SiteTreeBuilder, TreeError,
    INDEX_MAGIC, MAX_TREE_CHILDREN, MAX_TREE_DEPTH, TREE_MAGIC,
};
pub use walk::{content_blocks, ChunkAt, ContentBlocks, Leaf, LeafWalk, Lookup, PathLookup};

/// The default chunk size: 256 KiB, as in IPFS and most BitTorrent clients.
pub const DEFAULT_CHUNK_BYTES: usize = 256 * 1024;
