//! The blocks that uploads write to the store themselves, as the node task
//! tracks them from the first write until the node adopts the content or the
//! upload is abandoned.
//!
//! The node does not know these blocks until it adopts them, so the node task
//! keeps them safe on its behalf. Three rules, each against one race:
//! - a block some running upload registered is never unlinked: a removal the
//!   node asks for is reported done and the file kept (the upload will hand
//!   the block back), and an abandoned upload removes only blocks nobody else
//!   registered, the node does not hold and is not writing;
//! - while a block is being removed (by the node, or after an upload), an
//!   upload that wants to write it waits, so its write cannot land before the
//!   removal and be lost to it;
//! - while an abandoned upload's blocks are being removed, the node's own
//!   writes of them wait too, for the same reason.
//!
//! Capacity is reserved block by block as uploads register them, so an upload
//! that cannot fit is refused as it goes, not after it filled the disk.

use std::collections::{BTreeMap, BTreeSet};

use distroweb_protocol::{Id, StoreDone, StoreOp};
use tokio::sync::oneshot;

use crate::error::NetError;
use crate::upload::UploadId;

/// An upload about to write a block asks whether it may (is there room) and
/// must (`false`: the node holds it already); it may have to wait for a
/// removal of the block to finish.
#[derive(Debug)]
pub(crate) struct Registration {
    pub upload: UploadId,
    pub id: Id,
    pub len: u32,
    pub reply: oneshot::Sender<Result<bool, NetError>>,
}

/// One running upload: the blocks it registered and what it reserved.
#[derive(Debug, Default)]
pub(crate) struct Running {
    /// Every block it registered, with its length.
    pub blocks: BTreeMap<Id, u32>,
    reserved_bytes: u64,
    reserved_blocks: usize,
}

/// Uploads in progress and the blocks they wrote.
#[derive(Debug, Default)]
pub(crate) struct UploadBlocks {
    running: BTreeMap<UploadId, Running>,
    /// How many running uploads registered each block.
    refs: BTreeMap<Id, u32>,
    /// Store capacity reserved by running uploads for blocks the node does not hold.
    reserved_bytes: u64,
    reserved_blocks: usize,
    /// Blocks of ended uploads that a blocking task is removing.
    cleaning: BTreeSet<Id>,
    /// Blocks the node has a removal in flight for.
    node_removing: BTreeSet<Id>,
    /// Blocks the node has a write in flight for.
    node_writing: BTreeSet<Id>,
    /// Registrations waiting for a removal of their block.
    parked: Vec<Registration>,
    /// Node writes waiting for the clean-up of their block.
    deferred: Vec<StoreOp>,
}

impl UploadBlocks {
    /// Running uploads.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Whether `upload` registered anything yet.
    pub fn is_running(&self, upload: UploadId) -> bool {
        self.running.contains_key(&upload)
    }

    /// Capacity reserved by running uploads: bytes and blocks.
    pub fn reserved(&self) -> (u64, usize) {
        (self.reserved_bytes, self.reserved_blocks)
    }

    /// Whether `upload` registered `id` already.
    pub fn has(&self, upload: UploadId, id: &Id) -> bool {
        self.running
            .get(&upload)
            .is_some_and(|r| r.blocks.contains_key(id))
    }

    /// Whether a registration of `id` must wait: the block is being removed.
    pub fn busy(&self, id: &Id) -> bool {
        self.cleaning.contains(id) || self.node_removing.contains(id)
    }

    /// Parks a registration until its block's removal has finished.
    pub fn park(&mut self, parked: Registration) {
        self.parked.push(parked);
    }

    /// Notes that `upload` wrote (or is about to write) `id`; `reserve` says
    /// whether it counts against the store's capacity (the node does not hold it).
    pub fn register(&mut self, upload: UploadId, id: Id, len: u32, reserve: bool) {
        let running = self.running.entry(upload).or_default();
        if running.blocks.insert(id, len).is_some() {
            return;
        }
        *self.refs.entry(id).or_insert(0) += 1;
        if reserve {
            running.reserved_bytes += u64::from(len);
            running.reserved_blocks += 1;
            self.reserved_bytes += u64::from(len);
            self.reserved_blocks += 1;
        }
    }

    /// Ends `upload` (adopted or abandoned): its reservation is released and
    /// its blocks returned, to be handed to the node or cleaned up.
    pub fn end(&mut self, upload: UploadId) -> BTreeMap<Id, u32> {
        let Some(running) = self.running.remove(&upload) else {
            return BTreeMap::new();
        };
        self.reserved_bytes -= running.reserved_bytes;
        self.reserved_blocks -= running.reserved_blocks;
        for id in running.blocks.keys() {
            if let Some(n) = self.refs.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    self.refs.remove(id);
                }
            }
        }
        running.blocks
    }

    /// Of the blocks an ended upload wrote, those to remove now: no running
    /// upload registered them and `unused` (the node neither holds nor writes
    /// them) says they are nobody's. They stay marked until [`Self::cleaned`].
    pub fn take_unused(
        &mut self,
        blocks: impl IntoIterator<Item = Id>,
        unused: impl Fn(&Id) -> bool,
    ) -> Vec<Id> {
        let ids: Vec<Id> = blocks
            .into_iter()
            .filter(|id| {
                !self.refs.contains_key(id)
                    && !self.node_writing.contains(id)
                    && !self.cleaning.contains(id)
                    && unused(id)
            })
            .collect();
        self.cleaning.extend(ids.iter().copied());
        ids
    }

    /// The clean-up of `ids` finished: returns the registrations and node
    /// writes that waited for it.
    pub fn cleaned(&mut self, ids: &[Id]) -> (Vec<Registration>, Vec<StoreOp>) {
        for id in ids {
            self.cleaning.remove(id);
        }
        let (ops, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|op| !self.cleaning.contains(&op.id()));
        self.deferred = waiting;
        (self.unpark(), ops)
    }

    /// Decides what becomes of a storage operation the node asks for: `Ok` if
    /// it may go to the store now (noted as in flight); else `Err` with the
    /// completion to report at once, or `None` when it waits for a clean-up.
    pub fn node_op(&mut self, op: StoreOp) -> Result<StoreOp, Option<StoreDone>> {
        match op {
            StoreOp::Remove { id } if self.refs.contains_key(&id) => {
                // An upload wrote this block too and will hand it back: keep the file.
                Err(Some(StoreDone::Removed { id }))
            }
            StoreOp::Remove { id } => {
                self.node_removing.insert(id);
                Ok(op)
            }
            StoreOp::Write { id, .. } if self.cleaning.contains(&id) => {
                self.deferred.push(op);
                Err(None)
            }
            StoreOp::Write { id, .. } => {
                self.node_writing.insert(id);
                Ok(op)
            }
            StoreOp::Read { .. } => Ok(op),
        }
    }

    /// A node operation completed: returns the registrations that waited for it.
    pub fn node_op_done(&mut self, done: &StoreDone) -> Vec<Registration> {
        match done {
            StoreDone::Written { id, .. } => {
                self.node_writing.remove(id);
                Vec::new()
            }
            StoreDone::Removed { id } if self.node_removing.remove(id) => self.unpark(),
            _ => Vec::new(),
        }
    }

    /// The parked registrations whose block is no longer being removed.
    fn unpark(&mut self) -> Vec<Registration> {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|p| !self.busy(&p.id));
        self.parked = waiting;
        ready
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn id(n: u8) -> Id {
        Id::hash_of(&[n])
    }

    #[test]
    fn blocks_of_running_uploads_are_never_removed() {
        let mut u = UploadBlocks::default();
        u.register(1, id(1), 10, true);
        u.register(1, id(2), 20, false);
        u.register(2, id(1), 10, true);
        assert_eq!(u.reserved(), (20, 2));
        // The node forgets a block an upload holds a reference to: the file stays.
        assert!(matches!(
            u.node_op(StoreOp::Remove { id: id(2) }),
            Err(Some(StoreDone::Removed { .. }))
        ));
        // Upload 1 is abandoned: block 1 is still upload 2's, block 2 goes.
        let blocks = u.end(1);
        assert_eq!(u.reserved(), (10, 1));
        let clean = u.take_unused(blocks.into_keys(), |_| true);
        assert_eq!(clean, vec![id(2)]);
        // While block 2 is removed, a registration and a node write of it wait.
        assert!(u.busy(&id(2)));
        let write = StoreOp::Write {
            id: id(2),
            data: Bytes::from_static(b"x"),
        };
        assert!(matches!(u.node_op(write), Err(None)));
        let (parked, ops) = u.cleaned(&clean);
        assert!(parked.is_empty());
        assert_eq!(ops.len(), 1);
        assert!(!u.busy(&id(2)));
        // The node's own removals in flight hold registrations back too.
        assert!(u.node_op(StoreOp::Remove { id: id(3) }).is_ok());
        assert!(u.busy(&id(3)));
        let (reply, _) = oneshot::channel();
        u.park(Registration {
            upload: 2,
            id: id(3),
            len: 1,
            reply,
        });
        assert_eq!(u.node_op_done(&StoreDone::Removed { id: id(3) }).len(), 1);
        let blocks = u.end(2);
        assert_eq!(u.reserved(), (0, 0));
        assert_eq!(
            u.take_unused(blocks.into_keys(), |_| false),
            Vec::<Id>::new()
        );
        assert_eq!(u.running(), 0);
    }
}
