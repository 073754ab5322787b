//! Multi-level manifests: files of more chunks, and sites of more files, than
//! one manifest block can list.
//!
//! A content id is still the hash of one root block. Content that fits one
//! level keeps its one-level manifest ([`FileManifest`], [`SiteManifest`]) and
//! its id: a tree is made only when one level cannot hold it, so every id
//! published before trees existed stays valid and means the same content.
//!
//! # Canonical encoding, version 1
//!
//! Integers are little-endian and of fixed width; ids are 32 raw bytes.
//!
//! A **file tree** (a file of more than [`MAX_FILE_CHUNKS`] chunks):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"dwtree\0\x01"` |
//! | 4 | `chunk_size`: u32, as in a file manifest |
//! | 8 | `length`: u64, the whole file's length |
//! | 1 + n | media type, as in a file manifest |
//! | 1 | `depth`: 1..=[`MAX_TREE_DEPTH`]; the children are file manifests at depth 1, file trees of depth − 1 above |
//! | 4 | `count`: u32, the number of children, 2..=[`MAX_TREE_CHILDREN`] |
//! | 32 × count | the id of each child, in file order |
//!
//! Every child but the last covers exactly [`chunks_per_child`]`(depth)`
//! chunks, the last the rest, so `count` is ⌈chunks / chunks_per_child⌉ and at
//! least 2 (a file that one child could hold is that child); each child has
//! the tree's chunk size and media type and the length of the bytes it covers.
//!
//! A **site index** (a site of more files than one site manifest holds):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"dwdirs\0\x01"` |
//! | 1 | `depth`: 1..=[`MAX_TREE_DEPTH`]; the shards are site manifests at depth 1, site indexes of depth − 1 above |
//! | 8 | `files`: u64, the site's number of files, the sum of the shards' |
//! | 4 | `count`: u32, the number of shards, 2..=[`MAX_TREE_CHILDREN`] |
//! | per shard | `path_len`: u16 and the shard's first path (normal form), 32 bytes of shard id, u64 files in the shard |
//!
//! Shards appear in strictly ascending order of their first paths; a shard
//! holds the files from its first path up to the next shard's first path. The
//! split is the one [`SiteTreeBuilder`] makes: files in path order, each leaf
//! filled while it has fewer than [`MAX_SITE_FILES`] files and its encoding
//! stays within a block, each index level likewise. A lookup of one path reads
//! one block per level (the root, then the shard whose range holds the path):
//! O(log n) blocks, never the whole listing.
//! Every block is at most [`MAX_BLOCK_BYTES`].

use crate::id::{Id, ID_BYTES};
use crate::wire::MAX_BLOCK_BYTES;

use super::manifest::{
    FileManifest, ManifestError, SiteEntry, SiteManifest, MAX_FILE_CHUNKS, MAX_SITE_FILES,
    MIN_CHUNK_BYTES,
};
use super::media_type::MediaType;
use super::path::{PathError, SitePath, MAX_PATH_BYTES};

/// Leads a file tree: format name, NUL, version.
pub const TREE_MAGIC: [u8; 8] = *b"dwtree\0\x01";
/// Leads a site index: format name, NUL, version.
pub const INDEX_MAGIC: [u8; 8] = *b"dwdirs\0\x01";
/// The most children one tree node lists: as many ids as a file manifest.
pub const MAX_TREE_CHILDREN: usize = MAX_FILE_CHUNKS;
/// The most levels above the one-level manifests. Four levels of 32,000
/// children over 32,000-chunk leaves cover more than `u64` bytes at any chunk
/// size; the bound keeps every walk and every product below finite.
pub const MAX_TREE_DEPTH: u8 = 4;

/// The largest header of a file tree: magic, chunk size, length, media type,
/// depth, count.
const TREE_HEADER_MAX: usize = 8 + 4 + 8 + 1 + 255 + 1 + 4;
/// The header of a site index: magic, depth, files, count.
const INDEX_HEADER: usize = 8 + 1 + 8 + 4;
/// The smallest encoded shard: path length, one path byte, id, files.
const MIN_SHARD_BYTES: usize = 2 + 1 + ID_BYTES + 8;

/// Chunks under each child of a tree node of `depth` (all but the last):
/// [`MAX_FILE_CHUNKS`] × [`MAX_TREE_CHILDREN`]^(depth − 1), or `None` past `u64`.
pub fn chunks_per_child(depth: u8) -> Option<u64> {
    Limits::STANDARD.chunks_per_child(depth)
}

/// The sizes that shape trees. Always [`Limits::STANDARD`] outside this
/// module's tests, which build deep trees with small limits: a depth-2 file
/// at the standard ones has a billion chunks.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Chunks per file manifest.
    leaf_chunks: u64,
    /// Files per site manifest.
    leaf_files: usize,
    /// Children per tree or index node.
    fanout: usize,
    /// Bytes per block.
    block: usize,
}

impl Limits {
    const STANDARD: Limits = Limits {
        leaf_chunks: MAX_FILE_CHUNKS as u64,
        leaf_files: MAX_SITE_FILES,
        fanout: MAX_TREE_CHILDREN,
        block: MAX_BLOCK_BYTES,
    };

    fn chunks_per_child(&self, depth: u8) -> Option<u64> {
        let fanout = self.fanout as u64;
        (1..depth).try_fold(self.leaf_chunks, |n, _| n.checked_mul(fanout))
    }
}

/// A file of more chunks than one file manifest lists: a node of the tree
/// whose leaves are file manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTree {
    chunk_size: u32,
    length: u64,
    media_type: MediaType,
    depth: u8,
    children: Vec<Id>,
}

/// Why a file tree or site index is not valid (beyond [`ManifestError`]'s
/// shared reasons, which these reuse for truncation, sizes and paths).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The bytes are not a manifest of this module.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Depth 0 or above [`MAX_TREE_DEPTH`].
    #[error("depth {0} is out of range")]
    Depth(u8),
    /// Fewer than two children, or more than [`MAX_TREE_CHILDREN`].
    #[error("{count} children (2..={max} allowed)")]
    Children {
        /// Declared count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// The child count does not fit the length, or the depth is not the
    /// least that holds the file.
    #[error("{count} children at depth {depth} do not fit {chunks} chunks")]
    Shape {
        /// Declared count.
        count: u64,
        /// Declared depth.
        depth: u8,
        /// Chunks the length implies.
        chunks: u64,
    },
    /// A shard lists no files, or the shards' files do not add up.
    #[error("the shards' files do not add up to {0}")]
    Files(u64),
    /// A file was expected (a site's entry, a file's root) but the block is
    /// a site's, or a site was expected and the block is a file's.
    #[error("block {0:?} is not the kind of manifest expected")]
    Kind(Id),
    /// A site's file is not what its entry says: its size or media type differ.
    #[error("file {0:?} disagrees with its site entry")]
    Entry(Id),
    /// A child is not what its parent says it is (kind, length, first path,
    /// number of files, or a path outside its range).
    #[error("child {index} does not match its parent: {what}")]
    Child {
        /// Which child.
        index: usize,
        /// What differs.
        what: &'static str,
    },
}

impl FileTree {
    /// The chunk size, as in every leaf.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The whole file's length.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Never true: a tree holds more than one manifest's chunks.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The media type, as in every leaf.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// 1 if the children are file manifests, more for trees of trees.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// The children's ids, in file order.
    pub fn children(&self) -> &[Id] {
        &self.children
    }

    /// The bytes child `index` covers, as (offset, length), or `None` past the end.
    pub fn child_span(&self, index: usize) -> Option<(u64, u64)> {
        self.child_span_with(Limits::STANDARD, index)
    }

    fn child_span_with(&self, limits: Limits, index: usize) -> Option<(u64, u64)> {
        if index >= self.children.len() {
            return None;
        }
        let per = limits
            .chunks_per_child(self.depth)?
            .checked_mul(u64::from(self.chunk_size))?;
        let offset = per.checked_mul(index as u64)?;
        Some((offset, (self.length - offset).min(per)))
    }

    /// The child that holds byte `offset`, or `None` past the end.
    pub fn child_at(&self, offset: u64) -> Option<usize> {
        self.child_at_with(Limits::STANDARD, offset)
    }

    fn child_at_with(&self, limits: Limits, offset: u64) -> Option<usize> {
        if offset >= self.length {
            return None;
        }
        let per = limits
            .chunks_per_child(self.depth)?
            .checked_mul(u64::from(self.chunk_size))?;
        Some((offset / per) as usize)
    }

    /// Checks that `child` (decoded from child `index`'s block) is the node or
    /// leaf this tree says it is: its kind, chunk size, media type and length.
    pub fn check_child(&self, index: usize, child: &FileNode) -> Result<(), TreeError> {
        let bad = |what| TreeError::Child { index, what };
        let (_, length) = self.child_span(index).ok_or(bad("no such child"))?;
        // The last child is the canonical shape of what is left, which may be
        // of any lower depth; the others are full nodes one level down.
        let last = index + 1 == self.children.len();
        let (chunk_size, len, media_type) = match child {
            FileNode::Leaf(m) if self.depth == 1 || last => {
                (m.chunk_size(), m.len(), m.media_type())
            }
            FileNode::Tree(t) if t.depth + 1 == self.depth || (last && t.depth < self.depth) => {
                (t.chunk_size, t.length, &t.media_type)
            }
            _ => return Err(bad("kind or depth")),
        };
        if chunk_size != self.chunk_size || media_type != &self.media_type {
            return Err(bad("chunk size or media type"));
        }
        if len != length {
            return Err(bad("length"));
        }
        Ok(())
    }

    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TREE_HEADER_MAX + self.children.len() * ID_BYTES);
        out.extend_from_slice(&TREE_MAGIC);
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.push(self.media_type.as_str().len() as u8);
        out.extend_from_slice(self.media_type.as_str().as_bytes());
        out.push(self.depth);
        out.extend_from_slice(&(self.children.len() as u32).to_le_bytes());
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
        }
        out
    }

    /// Its id: the hash of its encoding.
    pub fn id(&self) -> Id {
        Id::hash_of(&self.encode())
    }

    /// Decodes a canonical encoding (magic included), refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        let mut r = Reader::new(bytes)?;
        if r.array::<8>()? != TREE_MAGIC {
            return Err(ManifestError::UnknownMagic.into());
        }
        let chunk_size = u32::from_le_bytes(r.array()?);
        if !(MIN_CHUNK_BYTES..=MAX_BLOCK_BYTES).contains(&(chunk_size as usize)) {
            return Err(ManifestError::BadChunkSize(chunk_size).into());
        }
        let length = u64::from_le_bytes(r.array()?);
        let [len] = r.array::<1>()?;
        let media_type =
            MediaType::from_bytes(r.take(usize::from(len))?).map_err(ManifestError::from)?;
        let [depth] = r.array::<1>()?;
        let count = u64::from(u32::from_le_bytes(r.array()?));
        check_shape(chunk_size, length, depth, count)?;
        let count = count as usize;
        if r.rest() < count * ID_BYTES {
            return Err(ManifestError::Truncated.into());
        }
        let children = (0..count)
            .map(|_| r.array().map(Id::from_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        r.end()?;
        Ok(FileTree {
            chunk_size,
            length,
            media_type,
            depth,
            children,
        })
    }
}

/// Checks a tree's depth and child count against its length.
fn check_shape(chunk_size: u32, length: u64, depth: u8, count: u64) -> Result<(), TreeError> {
    if depth == 0 || depth > MAX_TREE_DEPTH {
        return Err(TreeError::Depth(depth));
    }
    if !(2..=MAX_TREE_CHILDREN as u64).contains(&count) {
        return Err(TreeError::Children {
            count,
            max: MAX_TREE_CHILDREN,
        });
    }
    let chunks = length.div_ceil(u64::from(chunk_size));
    let shape = TreeError::Shape {
        count,
        depth,
        chunks,
    };
    let per = chunks_per_child(depth).ok_or(shape.clone())?;
    // The least depth: one child of this depth could not hold the file.
    if count != chunks.div_ceil(per) || chunks <= per {
        return Err(shape);
    }
    Ok(())
}

/// A block of a file: a one-level manifest (a leaf, or a whole small file)
/// or a tree node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileNode {
    /// Up to [`MAX_FILE_CHUNKS`] chunks.
    Leaf(FileManifest),
    /// More.
    Tree(FileTree),
}

impl FileNode {
    /// The canonical encoding of either kind.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            FileNode::Leaf(m) => m.encode(),
            FileNode::Tree(t) => t.encode(),
        }
    }

    /// Its id.
    pub fn id(&self) -> Id {
        Id::hash_of(&self.encode())
    }
}

/// Builds a file of any size from its chunk ids as they are hashed, holding at
/// most one leaf's ids and one node's per level: a publisher streams a file
/// from disk through it in constant memory, storing each block it gives back.
///
/// The shape is the canonical one: a file of at most [`MAX_FILE_CHUNKS`]
/// chunks is one file manifest; above, a node of the least depth that holds
/// it, whose children are full nodes one level down (full leaves at depth 1)
/// but for the last, which is the canonical shape of the chunks left over.
#[derive(Debug)]
pub struct FileTreeBuilder {
    limits: Limits,
    chunk_size: u32,
    media_type: MediaType,
    length: u64,
    /// True once a chunk shorter than the chunk size came: it must be the last.
    short: bool,
    /// The chunks of the leaf being filled.
    leaf: Vec<Id>,
    /// Per level from depth 1: the ids of the full children of the node being
    /// filled at that depth.
    levels: Vec<Vec<Id>>,
}

/// A block the builder made: its id and encoding, to store.
pub type Block = (Id, Vec<u8>);

impl FileTreeBuilder {
    /// A builder for a file of `chunk_size` chunks and `media_type`.
    pub fn new(chunk_size: u32, media_type: MediaType) -> Result<Self, ManifestError> {
        if !(MIN_CHUNK_BYTES..=MAX_BLOCK_BYTES).contains(&(chunk_size as usize)) {
            return Err(ManifestError::BadChunkSize(chunk_size));
        }
        Ok(FileTreeBuilder {
            limits: Limits::STANDARD,
            chunk_size,
            media_type,
            length: 0,
            short: false,
            leaf: Vec::new(),
            levels: Vec::new(),
        })
    }

    /// Adds the next chunk: its id and length (the chunk size, except for the
    /// last chunk). Returns the blocks this completes (full leaves and nodes).
    pub fn push(&mut self, chunk: Id, len: u64) -> Result<Vec<Block>, ManifestError> {
        if self.short {
            return Err(ManifestError::ChunkCount {
                count: self.length.div_ceil(u64::from(self.chunk_size)) + 1,
                expected: self.length.div_ceil(u64::from(self.chunk_size)),
            });
        }
        if len == 0 || len > u64::from(self.chunk_size) {
            return Err(ManifestError::BadChunkSize(
                len.min(u64::from(u32::MAX)) as u32
            ));
        }
        let mut out = Vec::new();
        // A full leaf is a tree's child only once a chunk follows it: a file
        // of exactly one leaf stays a one-level manifest.
        if self.leaf.len() as u64 == self.limits.leaf_chunks {
            let chunks = std::mem::take(&mut self.leaf);
            let leaf = FileNode::Leaf(FileManifest::from_parts(
                self.chunk_size,
                self.limits.leaf_chunks * u64::from(self.chunk_size),
                self.media_type.clone(),
                chunks,
            ));
            self.add_child(1, &leaf, &mut out)?;
        }
        self.leaf.push(chunk);
        self.length += len;
        self.short = len < u64::from(self.chunk_size);
        Ok(out)
    }

    /// The finished file: its root block's id, and the blocks not yet given
    /// (the last leaf and the last node of each level, root last).
    pub fn finish(mut self) -> Result<(Id, Vec<Block>), ManifestError> {
        let mut out = Vec::new();
        let full: u64 = (1..=self.levels.len())
            .map(|d| self.full_bytes(d as u8))
            .sum();
        let mut carry_len = self.length - full;
        let mut carry = FileNode::Leaf(FileManifest::from_parts(
            self.chunk_size,
            carry_len,
            self.media_type.clone(),
            std::mem::take(&mut self.leaf),
        ));
        let mut d = 1;
        // Levels may grow while a full node moves up, so count as we go.
        while d <= self.levels.len() {
            let depth = d as u8;
            let held = self.levels[d - 1].len();
            if held == 0 {
                // Less than a full child here: what is left keeps its shape.
                d += 1;
                continue;
            }
            if held == self.limits.fanout {
                // A full node: it moves up whole, and what is left follows it there.
                let per = self.limits.chunks_per_child(depth).unwrap_or(u64::MAX);
                let full = FileNode::Tree(FileTree {
                    chunk_size: self.chunk_size,
                    length: per
                        .saturating_mul(self.limits.fanout as u64)
                        .saturating_mul(u64::from(self.chunk_size)),
                    media_type: self.media_type.clone(),
                    depth,
                    children: std::mem::take(&mut self.levels[d - 1]),
                });
                self.add_child(depth + 1, &full, &mut out)?;
                d += 1;
                continue;
            }
            let below = self.full_bytes(depth);
            let mut children = std::mem::take(&mut self.levels[d - 1]);
            let encoded = carry.encode();
            let id = Id::hash_of(&encoded);
            out.push((id, encoded));
            children.push(id);
            carry_len += below;
            carry = FileNode::Tree(FileTree {
                chunk_size: self.chunk_size,
                length: carry_len,
                media_type: self.media_type.clone(),
                depth,
                children,
            });
            d += 1;
        }
        let encoded = carry.encode();
        let id = Id::hash_of(&encoded);
        out.push((id, encoded));
        Ok((id, out))
    }

    /// Bytes under the full children now held at `depth`.
    fn full_bytes(&self, depth: u8) -> u64 {
        let per = self.limits.chunks_per_child(depth).unwrap_or(u64::MAX);
        let held = self
            .levels
            .get(usize::from(depth) - 1)
            .map_or(0, |ids| ids.len() as u64);
        held.saturating_mul(per)
            .saturating_mul(u64::from(self.chunk_size))
    }

    /// Adds `child`, a full node one level below `depth`, to the node being
    /// filled at `depth`; a node already full moves up as a child first.
    fn add_child(
        &mut self,
        depth: u8,
        child: &FileNode,
        out: &mut Vec<Block>,
    ) -> Result<(), ManifestError> {
        if depth > MAX_TREE_DEPTH {
            return Err(ManifestError::TooManyChunks {
                count: u64::MAX,
                max: MAX_FILE_CHUNKS,
            });
        }
        let encoded = child.encode();
        let id = Id::hash_of(&encoded);
        out.push((id, encoded));
        let level = usize::from(depth) - 1;
        if level == self.levels.len() {
            self.levels.push(Vec::new());
        }
        if self.levels[level].len() == self.limits.fanout {
            let per = self.limits.chunks_per_child(depth).unwrap_or(u64::MAX);
            let full = FileNode::Tree(FileTree {
                chunk_size: self.chunk_size,
                length: per
                    .saturating_mul(self.limits.fanout as u64)
                    .saturating_mul(u64::from(self.chunk_size)),
                media_type: self.media_type.clone(),
                depth,
                children: std::mem::take(&mut self.levels[level]),
            });
            self.add_child(depth + 1, &full, out)?;
        }
        self.levels[level].push(id);
        Ok(())
    }
}

/// One shard of a site index: where its range starts, its id, its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// The smallest path in the shard.
    pub first: SitePath,
    /// The id of the shard's block (a site manifest, or an index one level down).
    pub id: Id,
    /// Files in the shard.
    pub files: u64,
}

/// A site of more files than one site manifest holds: a node of the index
/// whose leaves are site manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteIndex {
    depth: u8,
    files: u64,
    shards: Vec<Shard>,
}

impl SiteIndex {
    /// 1 if the shards are site manifests, more for indexes of indexes.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// The site's number of files.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// The shards, in path order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard whose range holds `path` (normalised): the last one whose
    /// first path is not after it. `None` if `path` sorts before every shard.
    pub fn shard_for(&self, path: &str) -> Option<usize> {
        let after = self
            .shards
            .partition_point(|s| s.first.as_str().as_bytes() <= path.as_bytes());
        after.checked_sub(1)
    }

    /// The paths shard `index` may hold: from its first path to the next
    /// shard's first (excluded), or to the end.
    pub fn range(&self, index: usize) -> Option<(&SitePath, Option<&SitePath>)> {
        let shard = self.shards.get(index)?;
        Some((&shard.first, self.shards.get(index + 1).map(|s| &s.first)))
    }

    /// Checks that `child` (decoded from shard `index`'s block) is what this
    /// index says: the right kind, the same first path and number of files,
    /// and every path within the shard's range.
    pub fn check_child(&self, index: usize, child: &SiteNode) -> Result<(), TreeError> {
        let bad = |what| TreeError::Child { index, what };
        let (first, next) = self.range(index).ok_or(bad("no such shard"))?;
        let files = self.shards[index].files;
        // The last shard is the canonical shape of what is left, which may be
        // of any lower depth; the others are full nodes one level down.
        let last = index + 1 == self.shards.len();
        let (child_first, child_last, child_files) = match child {
            SiteNode::Leaf(s) if self.depth == 1 || last => {
                let entries = s.entries();
                let (Some(a), Some(b)) = (entries.first(), entries.last()) else {
                    return Err(bad("no files"));
                };
                (&a.path, &b.path, entries.len() as u64)
            }
            SiteNode::Index(i) if i.depth + 1 == self.depth || (last && i.depth < self.depth) => {
                let (Some(a), Some(b)) = (i.shards.first(), i.shards.last()) else {
                    return Err(bad("no shards"));
                };
                (&a.first, &b.first, i.files)
            }
            _ => return Err(bad("kind or depth")),
        };
        if child_first != first {
            return Err(bad("first path"));
        }
        if child_files != files {
            return Err(bad("number of files"));
        }
        if next.is_some_and(|n| child_last >= n) {
            return Err(bad("a path past the shard's range"));
        }
        Ok(())
    }

    /// The canonical encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_HEADER + self.shards.len() * 64);
        out.extend_from_slice(&INDEX_MAGIC);
        out.push(self.depth);
        out.extend_from_slice(&self.files.to_le_bytes());
        out.extend_from_slice(&(self.shards.len() as u32).to_le_bytes());
        for s in &self.shards {
            put_shard(&mut out, s);
        }
        out
    }

    /// Its id: the hash of its encoding.
    pub fn id(&self) -> Id {
        Id::hash_of(&self.encode())
    }

    /// Decodes a canonical encoding (magic included), refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        let mut r = Reader::new(bytes)?;
        if r.array::<8>()? != INDEX_MAGIC {
            return Err(ManifestError::UnknownMagic.into());
        }
        let [depth] = r.array::<1>()?;
        if depth == 0 || depth > MAX_TREE_DEPTH {
            return Err(TreeError::Depth(depth));
        }
        let files = u64::from_le_bytes(r.array()?);
        let count = u64::from(u32::from_le_bytes(r.array()?));
        if !(2..=MAX_TREE_CHILDREN as u64).contains(&count) {
            return Err(TreeError::Children {
                count,
                max: MAX_TREE_CHILDREN,
            });
        }
        if (r.rest() as u64) < count * MIN_SHARD_BYTES as u64 {
            return Err(ManifestError::Truncated.into());
        }
        let mut shards: Vec<Shard> = Vec::with_capacity(count as usize);
        let mut sum: u64 = 0;
        for _ in 0..count {
            let path_len = usize::from(u16::from_le_bytes(r.array()?));
            if path_len > MAX_PATH_BYTES {
                return Err(ManifestError::Path(PathError::TooLong {
                    len: path_len,
                    max: MAX_PATH_BYTES,
                })
                .into());
            }
            let raw = r.take(path_len)?;
            let first = SitePath::new(raw).map_err(ManifestError::Path)?;
            if first.as_str().as_bytes() != raw {
                return Err(ManifestError::NotNormal.into());
            }
            if shards.last().is_some_and(|prev| prev.first >= first) {
                return Err(ManifestError::Unsorted.into());
            }
            let id = Id::from_bytes(r.array()?);
            let shard_files = u64::from_le_bytes(r.array()?);
            sum = sum
                .checked_add(shard_files)
                .filter(|_| shard_files > 0)
                .ok_or(TreeError::Files(files))?;
            shards.push(Shard {
                first,
                id,
                files: shard_files,
            });
        }
        if sum != files {
            return Err(TreeError::Files(files));
        }
        r.end()?;
        Ok(SiteIndex {
            depth,
            files,
            shards,
        })
    }
}

fn put_shard(out: &mut Vec<u8>, s: &Shard) {
    let path = s.first.as_str().as_bytes();
    out.extend_from_slice(&(path.len() as u16).to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(s.id.as_bytes());
    out.extend_from_slice(&s.files.to_le_bytes());
}

fn shard_bytes(s: &Shard) -> usize {
    2 + s.first.as_str().len() + ID_BYTES + 8
}

/// A block of a site: a site manifest (a leaf, or a whole small site) or an
/// index node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteNode {
    /// Up to [`MAX_SITE_FILES`] files.
    Leaf(SiteManifest),
    /// More.
    Index(SiteIndex),
}

impl SiteNode {
    /// The canonical encoding of either kind.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SiteNode::Leaf(m) => m.encode(),
            SiteNode::Index(i) => i.encode(),
        }
    }
}

/// Builds a site of any size from its files in path order, giving back each
/// block as it is completed: at most one leaf's entries and one node's shards
/// per level are held.
#[derive(Debug)]
pub struct SiteTreeBuilder {
    limits: Limits,
    /// The entries of the leaf being filled, and its encoded size.
    leaf: Vec<SiteEntry>,
    leaf_bytes: usize,
    /// Per level from depth 1: the shards of the node being filled at that
    /// depth, and its encoded size.
    levels: Vec<(Vec<Shard>, usize)>,
    /// Files pushed so far.
    files: u64,
}

impl Default for SiteTreeBuilder {
    fn default() -> Self {
        SiteTreeBuilder::new()
    }
}

/// The encoded size of an empty site manifest (magic and count).
const SITE_HEADER: usize = 8 + 4;

fn entry_bytes(e: &SiteEntry) -> usize {
    2 + e.path.as_str().len() + ID_BYTES + 8 + 1 + e.media_type.as_str().len()
}

impl SiteTreeBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        SiteTreeBuilder {
            limits: Limits::STANDARD,
            leaf: Vec::new(),
            leaf_bytes: SITE_HEADER,
            levels: Vec::new(),
            files: 0,
        }
    }

    /// Adds the next file; paths must come in strictly ascending order (the
    /// site's own checks, no file used as a directory of another, are the
    /// caller's, as for one-level sites). Returns the blocks this completes.
    pub fn push(&mut self, entry: SiteEntry) -> Result<Vec<Block>, ManifestError> {
        if self.leaf.last().is_some_and(|prev| prev.path >= entry.path) {
            return Err(ManifestError::Unsorted);
        }
        let mut out = Vec::new();
        let size = entry_bytes(&entry);
        if !self.leaf.is_empty()
            && (self.leaf.len() == self.limits.leaf_files
                || self.leaf_bytes + size > self.limits.block)
        {
            let leaf = std::mem::take(&mut self.leaf);
            self.leaf_bytes = SITE_HEADER;
            let shard = leaf_shard(SiteManifest::from_sorted(leaf), &mut out);
            self.add_shard(1, shard, &mut out);
        }
        self.leaf_bytes += size;
        self.leaf.push(entry);
        self.files += 1;
        Ok(out)
    }

    /// The finished site: its root block's id, and the blocks not yet given.
    /// A site of no files is refused, as for one-level sites.
    pub fn finish(mut self) -> Result<(Id, Vec<Block>), ManifestError> {
        if self.files == 0 {
            return Err(ManifestError::FileCount {
                count: 0,
                max: MAX_SITE_FILES,
            });
        }
        let mut out = Vec::new();
        let leaf = SiteManifest::from_sorted(std::mem::take(&mut self.leaf));
        if self.levels.is_empty() {
            let encoded = leaf.encode();
            let id = Id::hash_of(&encoded);
            out.push((id, encoded));
            return Ok((id, out));
        }
        let mut carry = leaf_shard(leaf, &mut out);
        let mut level = 0;
        // Levels may grow while a full node moves up, so count as we go.
        while level < self.levels.len() {
            let depth = level as u8 + 1;
            if self.levels[level].0.is_empty() {
                // Less than a full shard here: what is left keeps its shape.
                level += 1;
                continue;
            }
            let size = shard_bytes(&carry);
            let (shards, bytes) = &self.levels[level];
            if shards.len() == self.limits.fanout || *bytes + size > self.limits.block {
                let full = index_of(depth, std::mem::take(&mut self.levels[level].0));
                self.levels[level].1 = INDEX_HEADER;
                let up = index_shard(full, &mut out);
                self.add_shard(depth + 1, up, &mut out);
                level += 1;
                continue;
            }
            let mut shards = std::mem::take(&mut self.levels[level].0);
            shards.push(carry);
            carry = index_shard(index_of(depth, shards), &mut out);
            level += 1;
        }
        Ok((carry.id, out))
    }

    fn add_shard(&mut self, depth: u8, shard: Shard, out: &mut Vec<Block>) {
        let level = usize::from(depth) - 1;
        if level >= self.levels.len() {
            self.levels.push((Vec::new(), INDEX_HEADER));
        }
        let size = shard_bytes(&shard);
        let limits = self.limits;
        let (shards, bytes) = &mut self.levels[level];
        if shards.len() == limits.fanout || *bytes + size > limits.block {
            let full = index_of(depth, std::mem::take(shards));
            *bytes = INDEX_HEADER;
            let up = index_shard(full, out);
            self.add_shard(depth + 1, up, out);
        }
        let (shards, bytes) = &mut self.levels[level];
        *bytes += size;
        shards.push(shard);
    }
}

fn index_of(depth: u8, shards: Vec<Shard>) -> SiteIndex {
    let files = shards.iter().map(|s| s.files).sum();
    SiteIndex {
        depth,
        files,
        shards,
    }
}

fn leaf_shard(leaf: SiteManifest, out: &mut Vec<Block>) -> Shard {
    let encoded = leaf.encode();
    let id = Id::hash_of(&encoded);
    out.push((id, encoded));
    let entries = leaf.entries();
    Shard {
        first: entries[0].path.clone(),
        id,
        files: entries.len() as u64,
    }
}

fn index_shard(index: SiteIndex, out: &mut Vec<Block>) -> Shard {
    let encoded = index.encode();
    let id = Id::hash_of(&encoded);
    out.push((id, encoded));
    Shard {
        first: index.shards[0].first.clone(),
        id,
        files: index.files,
    }
}

/// A cursor that fails with `Truncated` instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(ManifestError::TooLarge {
                len: bytes.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        Ok(Reader(bytes))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if self.0.len() < n {
            return Err(ManifestError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ManifestError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn rest(&self) -> usize {
        self.0.len()
    }

    fn end(&self) -> Result<(), ManifestError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::TrailingBytes(self.0.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::content::manifest::Manifest;

    fn chunk(i: u64) -> Id {
        Id::hash_of(&i.to_le_bytes())
    }

    fn media() -> MediaType {
        MediaType::new("application/octet-stream").expect("a valid media type")
    }

    /// The canonical shape, built top-down from every chunk at once: what the
    /// streaming builder must produce.
    fn reference(
        limits: Limits,
        chunks: &[Id],
        chunk_size: u32,
        length: u64,
        blocks: &mut BTreeMap<Id, Vec<u8>>,
    ) -> FileNode {
        let n = chunks.len() as u64;
        let node = if n <= limits.leaf_chunks {
            FileNode::Leaf(FileManifest::from_parts(
                chunk_size,
                length,
                media(),
                chunks.to_vec(),
            ))
        } else {
            let depth = (1..=MAX_TREE_DEPTH)
                .find(|d| {
                    limits
                        .chunks_per_child(*d)
                        .is_some_and(|p| p * limits.fanout as u64 >= n)
                })
                .expect("deep enough");
            let per = limits.chunks_per_child(depth).expect("fits") as usize;
            let mut children = Vec::new();
            let mut start = 0;
            while start < chunks.len() {
                let end = (start + per).min(chunks.len());
                let full = (end - start) as u64 * u64::from(chunk_size);
                let len = if end == chunks.len() {
                    length - start as u64 * u64::from(chunk_size)
                } else {
                    full
                };
                let child = reference(limits, &chunks[start..end], chunk_size, len, blocks);
                children.push(child.id());
                start = end;
            }
            FileNode::Tree(FileTree {
                chunk_size,
                length,
                media_type: media(),
                depth,
                children,
            })
        };
        blocks.insert(node.id(), node.encode());
        node
    }

    fn build(limits: Limits, n: u64, chunk_size: u32, last: u64) -> (Id, Vec<Block>) {
        let mut b = FileTreeBuilder::new(chunk_size, media()).expect("builder");
        b.limits = limits;
        let mut out = Vec::new();
        for i in 0..n {
            let len = if i + 1 == n {
                last
            } else {
                u64::from(chunk_size)
            };
            out.extend(b.push(chunk(i), len).expect("push"));
        }
        let (root, rest) = b.finish().expect("finish");
        out.extend(rest);
        (root, out)
    }

    const SMALL: Limits = Limits {
        leaf_chunks: 3,
        leaf_files: 3,
        fanout: 3,
        block: MAX_BLOCK_BYTES,
    };

    proptest! {
        /// Streaming chunk by chunk gives exactly the canonical tree: the same
        /// root and the same set of blocks, at every depth.
        #[test]
        fn the_builder_makes_the_canonical_tree(n in 1u64..=243, last in 1u64..=1024) {
            let (root, blocks) = build(SMALL, n, 1024, last);
            let chunks: Vec<Id> = (0..n).map(chunk).collect();
            let length = (n - 1) * 1024 + last;
            let mut want = BTreeMap::new();
            let node = reference(SMALL, &chunks, 1024, length, &mut want);
            prop_assert_eq!(root, node.id());
            let got: BTreeMap<Id, Vec<u8>> = blocks.into_iter().collect();
            prop_assert_eq!(got, want);
        }

        /// Reading the tree from its root finds every chunk where its offset says.
        #[test]
        fn every_offset_walks_to_its_chunk(n in 1u64..=243) {
            let (root, blocks) = build(SMALL, n, 1024, 1024);
            let blocks: BTreeMap<Id, Vec<u8>> = blocks.into_iter().collect();
            for i in 0..n {
                // Down from the root, the offset taken relative to each node.
                let mut rel = i * 1024 + 7;
                let mut id = root;
                let found = loop {
                    let bytes = &blocks[&id];
                    if bytes.starts_with(&TREE_MAGIC) {
                        let t = decode_small(bytes);
                        let c = t.child_at_with(SMALL, rel).expect("in range");
                        let (start, _) = t.child_span_with(SMALL, c).expect("a child");
                        rel -= start;
                        id = t.children()[c];
                    } else {
                        let Ok(Manifest::File(m)) = Manifest::decode(bytes) else {
                            panic!("a leaf");
                        };
                        break m.chunks()[(rel / 1024) as usize];
                    }
                };
                prop_assert_eq!(found, chunk(i));
            }
        }
    }

    /// A tree node built with small limits, decoded without the standard
    /// shape checks (which need the standard limits).
    fn decode_small(bytes: &[u8]) -> FileTree {
        let mut r = Reader::new(bytes).expect("size");
        let _magic: [u8; 8] = r.array().expect("magic");
        let chunk_size = u32::from_le_bytes(r.array().expect("chunk size"));
        let length = u64::from_le_bytes(r.array().expect("length"));
        let [len] = r.array::<1>().expect("media type length");
        let media_type = MediaType::from_bytes(r.take(usize::from(len)).expect("media type"))
            .expect("media type");
        let [depth] = r.array::<1>().expect("depth");
        let count = u32::from_le_bytes(r.array().expect("count"));
        let children = (0..count)
            .map(|_| Id::from_bytes(r.array().expect("id")))
            .collect();
        FileTree {
            chunk_size,
            length,
            media_type,
            depth,
            children,
        }
    }

    /// At the standard limits: one chunk past a full manifest makes a tree of
    /// two children, which decodes to itself, checks its children and maps
    /// offsets to them; one chunk fewer is a plain file manifest, as before.
    #[test]
    fn a_file_one_chunk_past_a_manifest_is_a_two_child_tree() {
        let n = MAX_FILE_CHUNKS as u64 + 1;
        let (root, blocks) = build(Limits::STANDARD, n, 1024, 1024);
        let blocks: BTreeMap<Id, Vec<u8>> = blocks.into_iter().collect();
        assert_eq!(blocks.len(), 3, "two leaves and the root");
        let tree = FileTree::decode(&blocks[&root]).expect("decodes");
        assert_eq!(tree.encode(), blocks[&root]);
        assert_eq!((tree.depth(), tree.children().len()), (1, 2));
        assert_eq!(tree.len(), n * 1024);
        for (i, id) in tree.children().iter().enumerate() {
            let Ok(Manifest::File(m)) = Manifest::decode(&blocks[id]) else {
                panic!("leaf {i}");
            };
            tree.check_child(i, &FileNode::Leaf(m)).expect("matches");
        }
        assert_eq!(tree.child_at(0), Some(0));
        assert_eq!(tree.child_at(MAX_FILE_CHUNKS as u64 * 1024), Some(1));
        assert_eq!(tree.child_at(n * 1024), None);
        // The wrong leaf in the wrong place is caught.
        let Ok(Manifest::File(first)) = Manifest::decode(&blocks[&tree.children()[0]]) else {
            panic!("leaf");
        };
        assert!(matches!(
            tree.check_child(1, &FileNode::Leaf(first)),
            Err(TreeError::Child { index: 1, .. })
        ));
        let (small, _) = build(Limits::STANDARD, n - 1, 1024, 1024);
        let (_, blocks) = build(Limits::STANDARD, n - 1, 1024, 1024);
        assert_eq!(blocks.len(), 1);
        assert!(matches!(
            Manifest::decode(&blocks[0].1),
            Ok(Manifest::File(_))
        ));
        assert_eq!(small, blocks[0].0);
    }

    /// A file past what [`MAX_TREE_DEPTH`] levels hold is refused, not
    /// wrapped into a deeper tree no reader accepts (small limits: 3 · 3⁴ chunks).
    #[test]
    fn a_file_past_the_depth_bound_is_refused() {
        let mut b = FileTreeBuilder::new(1024, media()).expect("builder");
        b.limits = SMALL;
        let refused = (0..244).try_for_each(|i| b.push(chunk(i), 1024).map(drop));
        let result = refused.and_then(|()| b.finish().map(drop));
        assert!(
            matches!(result, Err(ManifestError::TooManyChunks { .. })),
            "{result:?}"
        );
    }

    /// If this fails, trees published with an earlier version no longer
    /// resolve: change the encoding only with a new magic (version).
    #[test]
    fn golden_tree_and_index_ids_never_change() {
        let (file, _) = build(Limits::STANDARD, MAX_FILE_CHUNKS as u64 + 1, 1024, 100);
        let (site, _) = site(Limits::STANDARD, MAX_SITE_FILES + 1);
        assert_eq!(
            [file.to_string(), site.to_string()],
            [
                "d73502749c9d9dd9e568de83553f772a723c63a65fc93f7ed7f82f94311a2355".to_string(),
                "bcc5206328be5af999b7fe6e1d5446f7252530fbb1502e8f531aded461470cfc".to_string(),
            ]
        );
    }

    /// Bad trees and indexes are refused with what is wrong, never a panic.
    #[test]
    fn malformed_nodes_are_refused() {
        let (root, blocks) = build(Limits::STANDARD, MAX_FILE_CHUNKS as u64 + 1, 1024, 1024);
        let good = blocks
            .iter()
            .find(|(id, _)| *id == root)
            .expect("root")
            .1
            .clone();
        let depth_at = 8 + 4 + 8 + 1 + "application/octet-stream".len();
        let mut bad = good.clone();
        bad[depth_at] = 0;
        assert_eq!(FileTree::decode(&bad), Err(TreeError::Depth(0)));
        let mut bad = good.clone();
        bad[depth_at] = 2;
        assert!(matches!(
            FileTree::decode(&bad),
            Err(TreeError::Shape { .. })
        ));
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(
            FileTree::decode(&bad),
            Err(TreeError::Manifest(ManifestError::TrailingBytes(1)))
        );
        assert_eq!(
            FileTree::decode(&good[..good.len() - 1]),
            Err(TreeError::Manifest(ManifestError::Truncated))
        );
        let (root, blocks) = site(Limits::STANDARD, MAX_SITE_FILES + 1);
        let good = blocks
            .iter()
            .find(|(id, _)| *id == root)
            .expect("root")
            .1
            .clone();
        let mut bad = good.clone();
        // The total number of files no longer adds up.
        bad[9] ^= 1;
        assert!(matches!(SiteIndex::decode(&bad), Err(TreeError::Files(_))));
        for cut in 0..good.len() {
            assert!(SiteIndex::decode(&good[..cut]).is_err());
        }
    }

    fn entry(i: usize) -> SiteEntry {
        // Short paths: a full manifest of them fits one block.
        let path = format!("d{}/{i:05}", i % 7);
        SiteEntry {
            path: SitePath::new(path.as_bytes()).expect("a valid path"),
            file: chunk(i as u64),
            size: i as u64,
            media_type: MediaType::new("text/html").expect("valid"),
        }
    }

    fn site(limits: Limits, n: usize) -> (Id, Vec<Block>) {
        let mut entries: Vec<SiteEntry> = (0..n).map(entry).collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut b = SiteTreeBuilder::new();
        b.limits = limits;
        let mut out = Vec::new();
        for e in entries {
            out.extend(b.push(e).expect("push"));
        }
        let (root, rest) = b.finish().expect("finish");
        out.extend(rest);
        (root, out)
    }

    proptest! {
        /// Every path of a site of any size is found by reading one block per
        /// level from the root, every shard matches its parent's entry, and
        /// every shard but each node's last is full.
        #[test]
        fn every_path_is_found_one_block_per_level(n in 1usize..=120) {
            let (root, blocks) = site(SMALL, n);
            let blocks: BTreeMap<Id, Vec<u8>> = blocks.into_iter().collect();
            let node = |id: &Id| -> SiteNode {
                let bytes = &blocks[id];
                if bytes.starts_with(&INDEX_MAGIC) {
                    SiteNode::Index(SiteIndex::decode(bytes).expect("index"))
                } else {
                    let Ok(Manifest::Site(s)) = Manifest::decode(bytes) else {
                        panic!("a site manifest");
                    };
                    SiteNode::Leaf(s)
                }
            };
            let root_depth = match node(&root) {
                SiteNode::Index(i) => usize::from(i.depth()),
                SiteNode::Leaf(_) => 0,
            };
            for i in 0..n {
                let e = entry(i);
                let mut id = root;
                let mut read = 0;
                let found = loop {
                    read += 1;
                    match node(&id) {
                        SiteNode::Index(idx) => {
                            let s = idx.shard_for(e.path.as_str()).expect("in range");
                            let child = node(&idx.shards()[s].id);
                            idx.check_child(s, &child).expect("shard matches");
                            if s + 1 < idx.shards().len() {
                                let full = match &child {
                                    SiteNode::Leaf(l) => l.entries().len() == SMALL.leaf_files,
                                    SiteNode::Index(c) => c.shards().len() == SMALL.fanout,
                                };
                                prop_assert!(full, "shard {} of a node is not full", s);
                            }
                            id = idx.shards()[s].id;
                        }
                        SiteNode::Leaf(l) => break l.get(e.path.as_str()).cloned(),
                    }
                };
                prop_assert_eq!(found.as_ref(), Some(&e));
                prop_assert!(read <= root_depth + 1);
            }
        }
    }

    /// At the standard limits a site of one file more than a manifest holds
    /// is an index of two shards; one file fewer is a plain site manifest.
    #[test]
    fn a_site_one_file_past_a_manifest_is_an_index() {
        let (root, blocks) = site(Limits::STANDARD, MAX_SITE_FILES + 1);
        let index = SiteIndex::decode(&blocks.iter().find(|(id, _)| *id == root).expect("root").1)
            .expect("an index");
        assert_eq!(
            (index.depth(), index.files(), index.shards().len()),
            (1, MAX_SITE_FILES as u64 + 1, 2)
        );
        let (_, blocks) = site(Limits::STANDARD, MAX_SITE_FILES);
        assert_eq!(blocks.len(), 1);
        assert!(matches!(
            Manifest::decode(&blocks[0].1),
            Ok(Manifest::Site(_))
        ));
    }
}
