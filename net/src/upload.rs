//! Publishing content as it streams in: each chunk is hashed and written to
//! the store the moment it is complete, so an upload of any size holds only a
//! few chunks in memory.
//!
//! The node task never sees the bytes. An [`Upload`] registers every block
//! with it before writing (so the store's capacity is checked as the upload
//! goes, and no other upload's clean-up can delete a block this one still
//! needs), writes the block itself on tokio's blocking pool, and at the end
//! hands the manifests over: the node adopts the content as published
//! ([`distroweb_protocol::Node::adopt_written`]) and announces it. An upload
//! dropped before that leaves nothing behind: the node task removes the blocks
//! it wrote that nothing else uses. A crash leaves them as orphans, which the
//! next start collects (`orphans.rs`).

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Read};

use bytes::Bytes;
use distroweb_protocol::content::{
    check_chunk_size, Block, FileError, FileTreeBuilder, ManifestError, MediaType, SiteBuilder,
};
use distroweb_protocol::{Id, Manifest, PublishError, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::NetError;
use crate::handle::{Command, NodeHandle, Published};
use crate::upload_blocks::Registration;

/// Names one upload for the node task while it runs.
pub(crate) type UploadId = u64;

/// Why an upload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Reading the content failed: the source broke off or reported an error.
    #[error("reading the content failed")]
    Read(#[source] io::Error),
    /// The content cannot be published as given (a bad path, a file too large
    /// for a manifest), or the store has no room for it.
    #[error("cannot publish")]
    Publish(#[from] PublishError),
    /// The node refused the upload or stopped.
    #[error("the node did not take it")]
    Node(#[source] NetError),
}

impl From<NetError> for UploadError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Publish(e) => UploadError::Publish(e),
            e => UploadError::Node(e),
        }
    }
}

/// Content being written to the node's store as it arrives: one file, or the
/// files of a site one after another. Get one from [`NodeHandle::upload`].
///
/// The writing methods block (on reads from the source and on the store);
/// call them from a blocking thread (`tokio::task::spawn_blocking`), never
/// from async code. [`Upload::publish`] then hands the content to the node.
#[derive(Debug)]
pub struct Upload {
    id: UploadId,
    node: NodeHandle,
    /// Writes in flight, at most the node's `store_workers`: the bound on
    /// chunks held in memory.
    writes: VecDeque<JoinHandle<Result<(), StoreError>>>,
    /// Blocks this upload registered already: a repeated chunk is written once.
    registered: BTreeSet<Id>,
    /// Every manifest written, under its id.
    manifests: Vec<(Id, Manifest)>,
    site: SiteBuilder,
    /// Set once the node took the content (or refused it, and cleaned up itself).
    handed_over: bool,
}

impl Upload {
    pub(crate) fn new(id: UploadId, node: NodeHandle) -> Self {
        Upload {
            id,
            node,
            writes: VecDeque::new(),
            registered: BTreeSet::new(),
            manifests: Vec::new(),
            site: SiteBuilder::new(),
            handed_over: false,
        }
    }

    /// Reads one file from `data` to its end, writing each chunk as it
    /// completes and each manifest block as the file's tree completes it
    /// (a file of more chunks than one manifest lists is a tree, see
    /// `content::tree`); returns the file's id (its root manifest's), length
    /// and media type. Holds a few chunks and one tree node per level. Blocks.
    pub fn write_file(
        &mut self,
        media_type: &str,
        data: &mut dyn Read,
    ) -> Result<(Id, u64, MediaType), UploadError> {
        let chunk_size = self.node.identity().chunk_size;
        let media_type =
            MediaType::new(media_type).map_err(|e| PublishError::from(FileError::from(e)))?;
        let size = check_chunk_size(chunk_size).map_err(PublishError::from)?;
        let mut tree = FileTreeBuilder::new(size, media_type.clone()).map_err(tree_error)?;
        let mut length = 0u64;
        loop {
            let chunk = read_chunk(data, chunk_size).map_err(UploadError::Read)?;
            if chunk.is_empty() {
                break;
            }
            let last = chunk.len() < chunk_size;
            let id = Id::hash_of(&chunk);
            length += chunk.len() as u64;
            let done = tree.push(id, chunk.len() as u64).map_err(tree_error)?;
            self.write(id, chunk)?;
            self.write_manifests(done)?;
            if last {
                // `read_chunk` comes back short only at the end of the source.
                break;
            }
        }
        let (root, rest) = tree.finish().map_err(tree_error)?;
        self.write_manifests(rest)?;
        Ok((root, length, media_type))
    }

    /// Adds a file at `path` to the site being uploaded, reading it from
    /// `data`; the path is checked before a byte is read. Blocks.
    pub fn add_site_file(
        &mut self,
        path: &[u8],
        media_type: &str,
        data: &mut dyn Read,
    ) -> Result<(), UploadError> {
        let path = self.site.check(path).map_err(PublishError::from)?;
        let (id, size, media_type) = self.write_file(media_type, data)?;
        self.site
            .add_file(path, id, size, media_type)
            .map_err(PublishError::from)?;
        Ok(())
    }

    /// Writes the manifests of the site whose files were added (one site
    /// manifest, or an index and its shards for a site one manifest cannot
    /// hold) and returns its id, to [`Upload::publish`]. Blocks.
    pub fn seal_site(&mut self) -> Result<Id, UploadError> {
        let (root, blocks) = std::mem::take(&mut self.site)
            .finish_tree()
            .map_err(PublishError::from)?;
        self.write_manifests(blocks)?;
        Ok(root)
    }

    /// Writes manifest blocks a builder completed, keeping each decoded for
    /// the node, which checks the whole content against them.
    fn write_manifests(&mut self, blocks: Vec<Block>) -> Result<(), UploadError> {
        for (id, encoded) in blocks {
            let manifest =
                Manifest::decode(&encoded).map_err(|e| PublishError::from(FileError::Tree(e)))?;
            if !self.registered.contains(&id) {
                self.manifests.push((id, manifest));
            }
            self.write(id, Bytes::from(encoded))?;
        }
        Ok(())
    }

    /// Waits for every write, then has the node adopt `root` (a file from
    /// [`Upload::write_file`] or a site from [`Upload::seal_site`]) as
    /// published, and returns once its announcement has finished, like
    /// [`NodeHandle::publish_file`].
    pub async fn publish(mut self, root: Id) -> Result<Published, UploadError> {
        while let Some(write) = self.writes.pop_front() {
            write
                .await
                .map_err(|_| NetError::Stopped)?
                .map_err(PublishError::from)?;
        }
        let manifests = std::mem::take(&mut self.manifests);
        let upload = self.id;
        // From here the node task owns the clean-up, whatever the answer.
        self.handed_over = true;
        let node = self.node.clone();
        let id = node
            .ask(|reply| Command::UploadFinish {
                upload,
                root,
                manifests,
                reply,
            })
            .await??;
        Ok(node.announced(id).await?)
    }

    /// Registers a block with the node task (which may refuse it: no room),
    /// then writes it on the blocking pool, keeping at most `max_writes` in flight.
    fn write(&mut self, id: Id, data: Bytes) -> Result<(), UploadError> {
        if !self.registered.insert(id) {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let registration = Registration {
            upload: self.id,
            id,
            len: data.len() as u32,
            reply,
        };
        self.node
            .commands()
            .blocking_send(Command::UploadBlock(registration))
            .map_err(|_| NetError::Stopped)?;
        let needed = answer.blocking_recv().map_err(|_| NetError::Stopped)??;
        if !needed {
            // The node holds it already, and keeps it while this upload runs.
            return Ok(());
        }
        while self.writes.len() >= self.node.identity().upload_writes.max(1) {
            self.wait_one()?;
        }
        let identity = self.node.identity();
        let store = identity.store.clone();
        // Published content may be the only copy: written durably.
        let write = identity
            .runtime
            .spawn_blocking(move || store.put_durable(id, data));
        self.writes.push_back(write);
        Ok(())
    }

    /// Waits for the oldest write in flight.
    fn wait_one(&mut self) -> Result<(), UploadError> {
        let Some(write) = self.writes.pop_front() else {
            return Ok(());
        };
        self.node
            .identity()
            .runtime
            .block_on(write)
            .map_err(|_| NetError::Stopped)?
            .map_err(PublishError::from)?;
        Ok(())
    }
}

impl Drop for Upload {
    /// An upload that never reached the node is abandoned: once its writes in
    /// flight have landed (so none lands after the clean-up), the node task
    /// removes the blocks it wrote that nothing else uses.
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        let writes = std::mem::take(&mut self.writes);
        let commands: mpsc::Sender<Command> = self.node.commands().clone();
        let upload = self.id;
        // Spawned, because a drop may happen on an async thread, which must not block.
        self.node.identity().runtime.spawn(async move {
            for write in writes {
                let _ = write.await;
            }
            let _ = commands.send(Command::UploadEnd { upload }).await;
        });
    }
}

/// A tree builder's error, which only a file past the deepest tree meets.
fn tree_error(e: ManifestError) -> UploadError {
    PublishError::from(FileError::Tree(e)).into()
}

/// Reads up to `len` bytes, fewer only at the end of `data`.
fn read_chunk(data: &mut dyn Read, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match data.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}
