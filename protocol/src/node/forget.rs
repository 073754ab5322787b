//! Letting go of held content, so a bounded store can make room (eviction is
//! the driver's policy; this is the mechanism).

use std::collections::BTreeSet;

use crate::contact::Address;
use crate::content::Manifest;
use crate::id::Id;

use super::{Node, ReadError};

impl<A: Address> Node<A> {
    /// Stops holding the content `root`: it is no longer announced (nor its site
    /// files), and every block of it that no other held content and no running
    /// fetch needs is removed from the store. Returns the blocks removed.
    ///
    /// Content not held, or being fetched right now, is left alone (`Ok(0)`).
    pub fn forget(&mut self, root: &Id) -> Result<usize, ReadError> {
        if !self.held_roots.contains(root) || self.fetch_by_root.contains_key(root) {
            return Ok(0);
        }
        let (blocks, files) = self.content_blocks(root)?;
        let mut keep = BTreeSet::new();
        for other in self.held_roots.iter().filter(|r| *r != root) {
            // Content whose manifests are unreadable keeps nothing alive.
            if let Ok((b, _)) = self.content_blocks(other) {
                keep.extend(b);
            }
        }
        self.held_roots.remove(root);
        self.stop_providing(root);
        for f in files {
            if !keep.contains(&f) {
                self.stop_providing(&f);
            }
        }
        let mut removed = 0;
        for b in blocks {
            let busy = self.partial.contains_key(&b) || self.fetches.values().any(|f| f.wants(&b));
            if !keep.contains(&b) && !busy && self.store.remove(&b)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every block of the held content `root` (manifests and chunks), and the
    /// file ids of a site.
    fn content_blocks(&self, root: &Id) -> Result<(BTreeSet<Id>, Vec<Id>), ReadError> {
        let mut blocks = BTreeSet::from([*root]);
        let mut files = Vec::new();
        match self.read_manifest(root)? {
            Manifest::File(m) => blocks.extend(m.chunks().iter().copied()),
            Manifest::Site(s) => {
                for e in s.entries() {
                    blocks.insert(e.file);
                    files.push(e.file);
                    if let Manifest::File(m) = self.read_manifest(&e.file)? {
                        blocks.extend(m.chunks().iter().copied());
                    }
                }
            }
        }
        Ok((blocks, files))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Id, Node, SiteFile, Time};

    #[test]
    fn forgetting_keeps_what_other_content_shares() {
        let config = Config {
            chunk_size: 1024,
            ..Config::default()
        };
        let mut n: Node<u32> = Node::new(config, Id::hash_of(b"n"), 1, 7, Time::ZERO).unwrap();
        let shared = vec![7u8; 1024];
        let mut other = shared.clone();
        other.extend_from_slice(b"tail");
        let file = n
            .publish_file(Time::ZERO, shared.clone(), "text/plain")
            .unwrap();
        let site = n
            .publish_site(
                Time::ZERO,
                vec![SiteFile::new("a.bin", "application/octet-stream", other)],
            )
            .unwrap();
        let before = n.content_store().block_count();
        // The site's first chunk is the file's only chunk: it must survive.
        let removed = n.forget(&site).unwrap();
        assert!(!n.holds(&site) && n.holds(&file));
        assert!(!n.provided_keys().any(|k| *k == site));
        assert_eq!(n.content_store().block_count(), before - removed);
        assert_eq!(n.read_file(&file).unwrap().as_ref(), &shared[..]);
        assert_eq!(removed, 3, "site manifest, file manifest, tail chunk");
        assert_eq!(n.forget(&site).unwrap(), 0);
    }
}
