//! Orphan blocks: blocks in the store that no held content names, left by a
//! crash during a publish or a fetch (the blocks were written, the `held` list
//! was not). Nothing would ever read or evict them, yet they count against the
//! store's capacity for good; so at start they are found and deleted.

use std::collections::BTreeSet;

use distroweb_protocol::content::content_blocks;
use distroweb_protocol::{Id, Manifest, ManifestError};

use crate::block_store::BlockStore;

use crate::disk_store::DiskStore;
use crate::holdings::Holdings;

/// Deletes every block of `store` that no content in `held` names (its root
/// manifest, its file manifests and their chunks) and returns how many went.
///
/// A manifest that cannot be read names nothing: that content cannot be
/// restored either (the restore step drops it), so its blocks go too.
pub fn collect(store: &DiskStore, held: &Holdings) -> usize {
    let mut named = BTreeSet::new();
    for (root, _) in held.iter() {
        name_blocks(store, *root, &mut named);
    }
    let mut removed = 0usize;
    for (id, _) in store.blocks() {
        if named.contains(&id) {
            continue;
        }
        match store.remove(&id) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(block = %id.short(), "cannot remove an orphan block: {e}"),
        }
    }
    if removed > 0 {
        tracing::info!(
            blocks = removed,
            "removed blocks that no held content names (left by an interrupted publish or fetch)"
        );
    }
    removed
}

/// Adds `root` and every block its manifests name to `named`: a site's index
/// nodes and shards, every file's tree nodes and leaves, and their chunks.
/// Manifests read before a walk fails are named; chunks only of a whole walk.
fn name_blocks(store: &DiskStore, root: Id, named: &mut BTreeSet<Id>) {
    let walked = content_blocks(&root, |id| {
        let m = read_manifest(store, id).ok_or(ManifestError::Truncated)?;
        named.insert(*id);
        Ok::<_, ManifestError>(m)
    });
    if let Ok(walked) = walked {
        named.extend(walked.chunks.iter().map(|c| c.id));
    }
}

fn read_manifest(store: &DiskStore, id: &Id) -> Option<Manifest> {
    let block = store.get(id).ok().flatten()?;
    Manifest::decode(&block).ok()
}
