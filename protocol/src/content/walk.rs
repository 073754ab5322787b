//! Walking content of any depth one block at a time: a file's leaves in order
//! (holding one tree node per level, never the whole list of chunks), one
//! path of a site (reading one block per index level), and every block of some
//! content (to hold, adopt or keep it).
//!
//! The walkers are sans-IO: they say which block they want next and are fed it
//! decoded, so the same code serves a synchronous store and an async fetch.
//! Every child is checked against its parent (`check_child`), and depths fall
//! strictly on the way down, so a hostile tree cannot loop or lie about sizes.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::id::Id;

use super::manifest::{FileManifest, Manifest, ManifestError, SiteEntry, SiteManifest};
use super::media_type::MediaType;
use super::tree::{FileNode, FileTree, SiteIndex, SiteNode, TreeError, MAX_TREE_DEPTH};

/// One leaf of a file: a one-level file manifest and where its bytes start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The leaf's id.
    pub id: Id,
    /// Where its first byte sits in the whole file.
    pub offset: u64,
    /// Its chunks.
    pub manifest: FileManifest,
}

/// A file's leaves in file order, from some byte on, read block by block.
///
/// Holds the tree nodes on the path to the current leaf (at most
/// [`MAX_TREE_DEPTH`], each at most one block): a file of any size is walked
/// in bounded memory, which is how a fetch or a response expands a tree as
/// its window advances instead of listing every chunk up front.
#[derive(Clone, Debug)]
pub struct LeafWalk {
    /// The next block to feed.
    want: Option<Id>,
    /// The tree nodes above `want`, each with the index of the child wanted.
    stack: Vec<(FileTree, usize)>,
    /// Where the block `want` names starts in the file.
    offset: u64,
    /// Leaves wholly before this byte are not descended into.
    from: u64,
}

impl LeafWalk {
    /// A walk of the file `root` from its first byte.
    pub fn new(root: Id) -> Self {
        LeafWalk::from_offset(root, 0)
    }

    /// A walk of the file `root` from the leaf holding byte `from` (a range).
    pub fn from_offset(root: Id, from: u64) -> Self {
        LeafWalk {
            want: Some(root),
            stack: Vec::new(),
            offset: 0,
            from,
        }
    }

    /// The block to feed next, or `None` once the last leaf was given.
    pub fn want(&self) -> Option<Id> {
        self.want
    }

    /// Feeds the block [`LeafWalk::want`] named, decoded; gives the leaf when
    /// it was one. A block that is not the node its parent describes is refused.
    pub fn feed(&mut self, block: Manifest) -> Result<Option<Leaf>, ManifestError> {
        let Some(id) = self.want else {
            return Ok(None);
        };
        let node = match block {
            Manifest::File(m) => FileNode::Leaf(m),
            Manifest::FileTree(t) => FileNode::Tree(t),
            Manifest::Site(_) | Manifest::SiteIndex(_) => {
                return Err(TreeError::Kind(id).into());
            }
        };
        if let Some((parent, index)) = self.stack.last() {
            parent.check_child(*index, &node)?;
        }
        match node {
            FileNode::Leaf(manifest) => {
                let leaf = Leaf {
                    id,
                    offset: self.offset,
                    manifest,
                };
                self.offset += leaf.manifest.len();
                self.advance();
                Ok(Some(leaf))
            }
            FileNode::Tree(tree) => {
                // check_child makes depths fall; this bound holds for the root too.
                if self.stack.len() >= usize::from(MAX_TREE_DEPTH) {
                    return Err(TreeError::Depth(tree.depth()).into());
                }
                let start = self.from.saturating_sub(self.offset);
                let index = tree.child_at(start).unwrap_or(0);
                let (skip, _) = tree.child_span(index).unwrap_or((0, 0));
                if start >= tree.len() && self.stack.is_empty() {
                    // A range past the end: nothing to walk.
                    self.want = None;
                    return Ok(None);
                }
                self.offset += skip;
                self.want = tree.children().get(index).copied();
                self.stack.push((tree, index));
                Ok(None)
            }
        }
    }

    /// Moves `want` to the next child after a leaf, climbing past finished nodes.
    fn advance(&mut self) {
        self.want = None;
        while let Some((tree, index)) = self.stack.last_mut() {
            *index += 1;
            if let Some(next) = tree.children().get(*index) {
                self.want = Some(*next);
                return;
            }
            self.stack.pop();
        }
    }
}

/// What a site lookup found after a block was fed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The path's entry, or `None`: the site has no such file.
    Found(Option<SiteEntry>),
    /// Feed this block next: the shard whose range holds the path.
    Next(Id),
}

/// One path of a site, found by reading one block per level: the root, then
/// the shard whose range holds the path, down to a site manifest. O(log n)
/// blocks for a site of n files, never the whole listing.
#[derive(Clone, Debug)]
pub struct PathLookup {
    path: String,
    /// The index node last read and the shard chosen in it.
    parent: Option<(SiteIndex, usize)>,
    /// Blocks fed so far.
    blocks: u32,
}

impl PathLookup {
    /// A lookup of `path` (normalised, as [`super::SitePath`] writes it).
    pub fn new(path: &str) -> Self {
        PathLookup {
            path: path.to_owned(),
            parent: None,
            blocks: 0,
        }
    }

    /// Blocks fed so far.
    pub fn blocks_read(&self) -> u32 {
        self.blocks
    }

    /// Feeds the next block (first the site's root, then what [`Lookup::Next`]
    /// named), decoded, with its id.
    pub fn feed(&mut self, id: Id, block: Manifest) -> Result<Lookup, ManifestError> {
        self.blocks += 1;
        let node = match block {
            Manifest::Site(s) => SiteNode::Leaf(s),
            Manifest::SiteIndex(i) => SiteNode::Index(i),
            Manifest::File(_) | Manifest::FileTree(_) => return Err(TreeError::Kind(id).into()),
        };
        if let Some((parent, index)) = &self.parent {
            parent.check_child(*index, &node)?;
        }
        match node {
            SiteNode::Leaf(site) => {
                self.parent = None;
                Ok(Lookup::Found(site.get(&self.path).cloned()))
            }
            SiteNode::Index(index) => {
                if self.blocks > u32::from(MAX_TREE_DEPTH) {
                    return Err(TreeError::Depth(index.depth()).into());
                }
                let Some(shard) = index.shard_for(&self.path) else {
                    self.parent = None;
                    return Ok(Lookup::Found(None));
                };
                let next = index.shards()[shard].id;
                self.parent = Some((index, shard));
                Ok(Lookup::Next(next))
            }
        }
    }
}

/// One chunk of some content, with the length its leaf gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkAt {
    /// The chunk's id.
    pub id: Id,
    /// Its length.
    pub len: u32,
    /// The leaf (file manifest) listing it.
    pub leaf: Id,
    /// Its index in that leaf.
    pub index: usize,
}

/// Every block of some content, as [`content_blocks`] finds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentBlocks {
    /// Every manifest block once, in walk order: the root, index nodes, site
    /// manifests, files' tree nodes and leaves.
    pub manifests: Vec<Id>,
    /// Every chunk, in walk order (a chunk repeated in the content repeats here).
    pub chunks: Vec<ChunkAt>,
    /// The root of each distinct file of a site, in path order (empty for a file).
    pub files: Vec<Id>,
    /// The sum of the sizes of the content's files (each path counted).
    pub size: u64,
}

/// Walks the whole content `root`, reading each manifest block with `get`
/// once and checking each against its parent (and each site file against its
/// entry). For holding, adopting or keeping content: the output lists every
/// block, so it is as large as the content's block count.
pub fn content_blocks<E: From<ManifestError>>(
    root: &Id,
    mut get: impl FnMut(&Id) -> Result<Manifest, E>,
) -> Result<ContentBlocks, E> {
    let mut out = ContentBlocks::default();
    let mut seen = BTreeSet::new();
    let top = get(root)?;
    match top {
        Manifest::File(_) | Manifest::FileTree(_) => {
            let (size, _) = walk_file(root, Some(top), &mut get, &mut out, &mut seen)?;
            out.size = size;
        }
        Manifest::Site(_) | Manifest::SiteIndex(_) => {
            seen.insert(*root);
            out.manifests.push(*root);
            // Depth first, shards in order, one index node per level held:
            // each with the index of the shard to read next.
            let mut stack: Vec<(Arc<SiteIndex>, usize)> = Vec::new();
            let mut files = BTreeSet::new();
            let mut next = Some((*root, top));
            loop {
                if let Some((id, block)) = next.take() {
                    let node = match block {
                        Manifest::Site(s) => SiteNode::Leaf(s),
                        Manifest::SiteIndex(i) => SiteNode::Index(i),
                        _ => return Err(ManifestError::from(TreeError::Kind(id)).into()),
                    };
                    if let Some((parent, index)) = stack.last() {
                        parent
                            .check_child(*index, &node)
                            .map_err(ManifestError::from)?;
                    }
                    match node {
                        SiteNode::Leaf(site) => {
                            site_files(&site, &mut get, &mut out, &mut seen, &mut files)?
                        }
                        SiteNode::Index(index) => {
                            if stack.len() >= usize::from(MAX_TREE_DEPTH) {
                                return Err(
                                    ManifestError::from(TreeError::Depth(index.depth())).into()
                                );
                            }
                            // The first shard is read below, as the next of index 0.
                            stack.push((Arc::new(index), usize::MAX));
                        }
                    }
                }
                // The next shard: after the one just read, climbing past finished nodes.
                let Some((index, i)) = stack.last_mut() else {
                    break;
                };
                *i = i.wrapping_add(1);
                let Some(shard) = index.shards().get(*i) else {
                    stack.pop();
                    continue;
                };
                let id = shard.id;
                if !seen.insert(id) {
                    // Shards have distinct first paths, so a repeat is a cycle or a lie.
                    return Err(ManifestError::from(TreeError::Child {
                        index: *i,
                        what: "a shard repeated",
                    })
                    .into());
                }
                out.manifests.push(id);
                next = Some((id, get(&id)?));
            }
        }
    }
    Ok(out)
}

/// Walks the files of one site manifest into `out`, each distinct file once.
fn site_files<E: From<ManifestError>>(
    site: &SiteManifest,
    get: &mut impl FnMut(&Id) -> Result<Manifest, E>,
    out: &mut ContentBlocks,
    seen: &mut BTreeSet<Id>,
    files: &mut BTreeSet<Id>,
) -> Result<(), E> {
    for e in site.entries() {
        out.size = out.size.saturating_add(e.size);
        if !files.insert(e.file) {
            continue;
        }
        let (len, media_type) = walk_file(&e.file, None, get, out, seen)?;
        if len != e.size || media_type != e.media_type {
            return Err(ManifestError::from(TreeError::Entry(e.file)).into());
        }
        out.files.push(e.file);
    }
    Ok(())
}

/// Walks one file's blocks into `out`; returns its length and media type.
/// `first` is its root block when already read.
fn walk_file<E: From<ManifestError>>(
    root: &Id,
    first: Option<Manifest>,
    get: &mut impl FnMut(&Id) -> Result<Manifest, E>,
    out: &mut ContentBlocks,
    seen: &mut BTreeSet<Id>,
) -> Result<(u64, MediaType), E> {
    let mut walk = LeafWalk::new(*root);
    let mut first = first;
    let mut shape: Option<(u64, MediaType)> = None;
    while let Some(id) = walk.want() {
        let block = match first.take() {
            Some(b) => b,
            None => get(&id)?,
        };
        if shape.is_none() {
            shape = match &block {
                Manifest::File(m) => Some((m.len(), m.media_type().clone())),
                Manifest::FileTree(t) => Some((t.len(), t.media_type().clone())),
                _ => None,
            };
        }
        let leaf = walk.feed(block)?;
        if seen.insert(id) {
            out.manifests.push(id);
        }
        if let Some(leaf) = leaf {
            for (index, c) in leaf.manifest.chunks().iter().enumerate() {
                let len = leaf.manifest.chunk_len(index).unwrap_or(0) as u32;
                out.chunks.push(ChunkAt {
                    id: *c,
                    len,
                    leaf: leaf.id,
                    index,
                });
            }
        }
    }
    shape.ok_or_else(|| ManifestError::from(TreeError::Kind(*root)).into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::content::tree::{FileTreeBuilder, SiteTreeBuilder};
    use crate::content::{SitePath, MAX_FILE_CHUNKS, MAX_SITE_FILES};

    type Blocks = BTreeMap<Id, Manifest>;

    fn chunk(i: u64) -> Id {
        Id::hash_of(&i.to_le_bytes())
    }

    fn media() -> MediaType {
        MediaType::new("application/octet-stream").unwrap()
    }

    /// A file of `n` chunks of 1 KiB (the last of 7 bytes), as its manifest blocks.
    fn tree_file(n: u64, blocks: &mut Blocks) -> Id {
        let mut b = FileTreeBuilder::new(1024, media()).unwrap();
        let keep = |done: Vec<(Id, Vec<u8>)>, blocks: &mut Blocks| {
            for (id, bytes) in done {
                blocks.insert(id, Manifest::decode(&bytes).unwrap());
            }
        };
        for i in 0..n {
            let len = if i + 1 == n { 7 } else { 1024 };
            let done = b.push(chunk(i), len).unwrap();
            keep(done, blocks);
        }
        let (root, rest) = b.finish().unwrap();
        keep(rest, blocks);
        root
    }

    fn walk(mut w: LeafWalk, blocks: &Blocks) -> Result<Vec<Leaf>, ManifestError> {
        let mut leaves = Vec::new();
        while let Some(id) = w.want() {
            if let Some(leaf) = w.feed(blocks[&id].clone())? {
                leaves.push(leaf);
            }
        }
        Ok(leaves)
    }

    /// One chunk past a manifest is a tree of two leaves: the walk gives both
    /// in order with their offsets and every chunk once, from the start or
    /// from inside the second leaf, and nothing past the end.
    #[test]
    fn a_tree_file_walks_leaf_by_leaf_from_any_offset() {
        let n = MAX_FILE_CHUNKS as u64 + 5;
        let mut blocks = Blocks::new();
        let root = tree_file(n, &mut blocks);
        assert!(matches!(blocks[&root], Manifest::FileTree(_)));
        let leaves = walk(LeafWalk::new(root), &blocks).unwrap();
        let second = MAX_FILE_CHUNKS as u64 * 1024;
        let offsets: Vec<u64> = leaves.iter().map(|l| l.offset).collect();
        assert_eq!(offsets, [0, second]);
        let chunks: Vec<Id> = leaves
            .iter()
            .flat_map(|l| l.manifest.chunks().to_vec())
            .collect();
        assert_eq!(chunks, (0..n).map(chunk).collect::<Vec<_>>());
        let tail = walk(LeafWalk::from_offset(root, second + 3000), &blocks).unwrap();
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].offset, second);
        let len = second + 4 * 1024 + 7;
        assert!(walk(LeafWalk::from_offset(root, len), &blocks)
            .unwrap()
            .is_empty());
    }

    /// A leaf in the wrong place, a site where a file should be, and a tree
    /// given as its own child are refused, not walked.
    #[test]
    fn a_hostile_file_tree_is_refused() {
        let mut blocks = Blocks::new();
        let root = tree_file(MAX_FILE_CHUNKS as u64 + 5, &mut blocks);
        let Manifest::FileTree(tree) = blocks[&root].clone() else {
            panic!("a tree");
        };
        let (first, second) = (tree.children()[0], tree.children()[1]);
        let mut swapped = blocks.clone();
        swapped.insert(first, blocks[&second].clone());
        let e = walk(LeafWalk::new(root), &swapped).unwrap_err();
        assert!(
            matches!(&e, ManifestError::Tree(t) if matches!(**t, TreeError::Child { index: 0, .. }))
        );

        let mut looped = blocks.clone();
        looped.insert(first, blocks[&root].clone());
        assert!(
            walk(LeafWalk::new(root), &looped).is_err(),
            "a node as its own child"
        );

        let site = SiteTreeBuilder::new();
        let mut site = site;
        site.push(entry(0)).unwrap();
        let (_, made) = site.finish().unwrap();
        let mut sited = blocks.clone();
        sited.insert(second, Manifest::decode(&made[0].1).unwrap());
        let e = walk(LeafWalk::new(root), &sited).unwrap_err();
        assert_eq!(e, ManifestError::from(TreeError::Kind(second)));
    }

    fn path(i: usize) -> String {
        format!("d/{i:06}.html")
    }

    fn entry(i: usize) -> SiteEntry {
        SiteEntry {
            path: SitePath::new(path(i).as_bytes()).unwrap(),
            file: chunk(1_000_000 + i as u64),
            size: 7,
            media_type: MediaType::new("text/html").unwrap(),
        }
    }

    /// A site of `n` files, each a one-chunk file manifest of 7 bytes.
    fn site(n: usize, blocks: &mut Blocks) -> Id {
        let mut b = SiteTreeBuilder::new();
        let mut all = Vec::new();
        for i in 0..n {
            let mut f = FileTreeBuilder::new(1024, MediaType::new("text/html").unwrap()).unwrap();
            f.push(chunk(i as u64), 7).unwrap();
            let (file, made) = f.finish().unwrap();
            for (id, bytes) in made {
                blocks.insert(id, Manifest::decode(&bytes).unwrap());
            }
            let mut e = entry(i);
            e.file = file;
            all.extend(b.push(e).unwrap());
        }
        let (root, rest) = b.finish().unwrap();
        all.extend(rest);
        for (id, bytes) in all {
            blocks.insert(id, Manifest::decode(&bytes).unwrap());
        }
        root
    }

    fn find(root: Id, p: &str, blocks: &Blocks) -> Result<(Option<SiteEntry>, u32), ManifestError> {
        let mut lookup = PathLookup::new(p);
        let mut next = root;
        loop {
            match lookup.feed(next, blocks[&next].clone())? {
                Lookup::Found(e) => return Ok((e, lookup.blocks_read())),
                Lookup::Next(id) => next = id,
            }
        }
    }

    /// A site of more files than one manifest holds is an index of shards: any
    /// path is found reading two blocks (the root and its shard), a missing
    /// one too; the whole walk lists every block once and checks every shard.
    #[test]
    fn a_path_in_a_sharded_site_is_found_one_block_per_level() {
        let n = 2 * MAX_SITE_FILES + 10;
        let mut blocks = Blocks::new();
        let root = site(n, &mut blocks);
        let Manifest::SiteIndex(index) = blocks[&root].clone() else {
            panic!("an index");
        };
        assert_eq!(index.shards().len(), 3);
        for i in [0, 1, MAX_SITE_FILES - 1, MAX_SITE_FILES, n - 1] {
            let (found, read) = find(root, &path(i), &blocks).unwrap();
            assert_eq!(found.map(|e| e.path.to_string()), Some(path(i)));
            assert_eq!(read, 2, "root and shard");
        }
        assert_eq!(find(root, "d/000005.htm", &blocks).unwrap().0, None);
        assert_eq!(find(root, "a", &blocks).unwrap(), (None, 1));
        assert_eq!(find(root, "e", &blocks).unwrap().0, None);

        let walked = content_blocks(&root, |id| {
            blocks.get(id).cloned().ok_or(ManifestError::Truncated)
        })
        .unwrap();
        assert_eq!(walked.files.len(), n);
        assert_eq!(walked.chunks.len(), n);
        assert_eq!(walked.manifests.len(), 1 + 3 + n);
        assert_eq!(walked.size, 7 * n as u64);

        // A shard in another's place, or a file where a shard should be.
        let (s0, s1) = (index.shards()[0].id, index.shards()[1].id);
        let mut swapped = blocks.clone();
        swapped.insert(s0, blocks[&s1].clone());
        let get = |b: &Blocks, id: &Id| b.get(id).cloned().ok_or(ManifestError::Truncated);
        assert!(content_blocks(&root, |id| get(&swapped, id)).is_err());
        assert!(find(root, &path(0), &swapped).is_err());
        let mut filed = blocks.clone();
        filed.insert(s1, blocks[&walked.files[0]].clone());
        assert_eq!(
            find(root, &path(MAX_SITE_FILES + 1), &filed).unwrap_err(),
            ManifestError::from(TreeError::Kind(s1))
        );
        // A file whose size is not its entry's.
        let mut lying = blocks.clone();
        let big = tree_file(3, &mut lying);
        lying.insert(walked.files[5], lying[&big].clone());
        assert!(content_blocks(&root, |id| get(&lying, id)).is_err());
    }
}
