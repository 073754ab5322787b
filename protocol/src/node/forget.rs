//! Letting go of held content, so a bounded store can make room (eviction is
//! the driver's policy; this is the mechanism).

use std::collections::BTreeSet;

use crate::contact::Address;
use crate::id::Id;

use super::Node;

impl<A: Address> Node<A> {
    /// Stops holding the content `root`: it is no longer announced (nor its site
    /// files), and every block of it that no other held content and no running
    /// fetch needs is removed from the store. Returns the blocks removed.
    ///
    /// Content not held, or being fetched or published right now, is left alone (0).
    pub fn forget(&mut self, root: &Id) -> usize {
        if self.fetch_by_root.contains_key(root) || self.publishes.contains_key(root) {
            return 0;
        }
        let Some(blocks) = self.held_roots.remove(root) else {
            return 0;
        };
        let keep: BTreeSet<Id> = self.held_roots.values().flatten().copied().collect();
        self.stop_providing(root);
        for b in &blocks {
            // A site's file ids are among its blocks; stop announcing those too.
            if !keep.contains(b) {
                self.stop_providing(b);
            }
        }
        let mut removed = 0;
        for b in blocks {
            let busy = self.partial.contains_key(&b)
                || self.fetches.values().any(|f| f.wants(&b))
                || self.storage.writes.contains_key(&b);
            if !keep.contains(&b) && !busy && self.storage.contains(&b) {
                self.storage.remove(b);
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use crate::config::TransferConfig;
    use crate::content::{ContentStore, MemoryStore};
    use crate::{drain, Config, Driver, Event, Id, Node, SiteFile, StoreOp, Time, Transmit};

    /// A driver with a memory store and no network.
    #[derive(Default)]
    struct Alone {
        store: MemoryStore,
    }

    impl Driver<u32> for Alone {
        fn transmit(&mut self, _: &mut Node<u32>, _: Time, _: Transmit<u32>) {}
        fn store(&mut self, node: &mut Node<u32>, now: Time, op: StoreOp) {
            let done = self.store.apply(op);
            node.handle_input(now, crate::Input::Stored(done));
        }
        fn event(&mut self, _: &mut Node<u32>, _: Time, _: Event<u32>) {}
    }

    #[test]
    fn forgetting_keeps_what_other_content_shares() {
        let config = Config {
            transfer: TransferConfig {
                chunk_size: 1024,
                ..Default::default()
            },
            ..Config::default()
        };
        let mut io = Alone::default();
        let mut n: Node<u32> = Node::new(config, Id::hash_of(b"n"), 1, 7, Time::ZERO).unwrap();
        let shared = vec![7u8; 1024];
        let mut other = shared.clone();
        other.extend_from_slice(b"tail");
        let file = n
            .publish_file(Time::ZERO, shared.clone(), "text/plain")
            .unwrap();
        drain(&mut n, Time::ZERO, &mut io);
        let site = n
            .publish_site(
                Time::ZERO,
                vec![SiteFile::new("a.bin", "application/octet-stream", other)],
            )
            .unwrap();
        drain(&mut n, Time::ZERO, &mut io);
        assert!(n.holds(&site) && n.holds(&file));
        let before = n.block_count();
        assert_eq!(io.store.block_count(), before);
        // The site's first chunk is the file's only chunk: it must survive.
        let removed = n.forget(&site);
        drain(&mut n, Time::ZERO, &mut io);
        assert!(!n.holds(&site) && n.holds(&file));
        assert!(!n.provided_keys().any(|k| *k == site));
        assert_eq!(removed, 3, "site manifest, file manifest, tail chunk");
        assert_eq!(n.block_count(), before - removed);
        assert_eq!(
            io.store.block_count(),
            before - removed,
            "the store followed"
        );
        let got = crate::content::read_file(&io.store, &file).unwrap();
        assert_eq!(got.as_ref(), &shared[..]);
        assert_eq!(n.forget(&site), 0);
    }
}
