//! The content this node holds complete, whether the user wants it kept (published
//! or pinned) or it is a cache of what was fetched, and in what order it was used.
//!
//! The list is saved in the data directory so that a restarted node knows what to
//! serve again; eviction picks the least recently used unpinned content.

use std::collections::BTreeMap;
use std::time::Duration;

use distroweb_protocol::content::content_blocks;
use distroweb_protocol::{Id, Manifest, ManifestError, Time};

use crate::data_dir::DataDir;

/// Most roots remembered.
pub const MAX_HOLDINGS: usize = 65_536;

/// One piece of content held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holding {
    /// Published here or pinned by the user: never evicted.
    pub pinned: bool,
    /// Bytes of file content it spans.
    pub size: u64,
    /// When it was last published, fetched or served.
    pub last_used: Time,
}

/// Held content, by root id.
#[derive(Debug, Default)]
pub(crate) struct Holdings {
    roots: BTreeMap<Id, Holding>,
}

impl Holdings {
    /// The list saved by an earlier run (unreadable lines skipped), oldest use first.
    pub fn load(dir: &DataDir) -> Self {
        let mut h = Holdings::default();
        for (i, line) in dir
            .read_lines("held")
            .into_iter()
            .take(MAX_HOLDINGS)
            .enumerate()
        {
            let mut parts = line.split(' ');
            let (Some(id), Some(kind), Some(size)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(id), Ok(size)) = (id.parse::<Id>(), size.parse::<u64>()) else {
                continue;
            };
            // Keep the saved order as the order of last use.
            let last_used = Time::from_micros(i as u64);
            h.roots.insert(
                id,
                Holding {
                    pinned: kind == "pinned",
                    size,
                    last_used,
                },
            );
        }
        h
    }

    /// Saves the list, least recently used first.
    pub fn save(&self, dir: &DataDir) {
        let mut rows: Vec<_> = self.roots.iter().collect();
        rows.sort_by_key(|(id, h)| (h.last_used, **id));
        let text: String = rows
            .iter()
            .map(|(id, h)| {
                let kind = if h.pinned { "pinned" } else { "cached" };
                format!("{id} {kind} {}\n", h.size)
            })
            .collect();
        if let Err(e) = dir.write_file("held", text.as_bytes()) {
            tracing::warn!("could not save the list of held content: {e}");
        }
    }

    /// Records `root` as held (pinned if asked, or if it already was).
    pub fn insert(&mut self, root: Id, pinned: bool, size: u64, now: Time) {
        if self.roots.len() >= MAX_HOLDINGS && !self.roots.contains_key(&root) {
            return;
        }
        let h = self.roots.entry(root).or_insert(Holding {
            pinned,
            size,
            last_used: now,
        });
        h.pinned |= pinned;
        h.size = size;
        h.last_used = now;
    }

    /// Marks `root` used now.
    pub fn touch(&mut self, root: &Id, now: Time) {
        if let Some(h) = self.roots.get_mut(root) {
            h.last_used = now;
        }
    }

    /// Pins `root`; false if it is not held.
    pub fn pin(&mut self, root: &Id) -> bool {
        self.roots.get_mut(root).map(|h| h.pinned = true).is_some()
    }

    /// Forgets `root`.
    pub fn remove(&mut self, root: &Id) {
        self.roots.remove(root);
    }

    /// Every root held, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Id, &Holding)> + '_ {
        self.roots.iter()
    }

    /// Unpinned roots, least recently used first, not used within `grace` of `now`.
    pub fn evictable(&self, now: Time, grace: Duration) -> Vec<Id> {
        let mut v: Vec<_> = self
            .roots
            .iter()
            .filter(|(_, h)| !h.pinned && now.saturating_since(h.last_used) >= grace)
            .map(|(id, h)| (h.last_used, *id))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }
}

/// Bytes of file content a root manifest spans, as far as it says: a site
/// index lists its shards' files but not their sizes, so it counts 0 here
/// (see [`content_size`] where the manifests are at hand).
pub(crate) fn manifest_size(m: &Manifest) -> u64 {
    match m {
        Manifest::File(f) => f.len(),
        Manifest::Site(s) => s.total_size(),
        Manifest::FileTree(t) => t.len(),
        Manifest::SiteIndex(_) => 0,
    }
}

/// Bytes of file content the content `root` spans, from all its manifests
/// (a site index's too); 0 if they do not make whole content.
pub(crate) fn content_size(root: &Id, manifests: &[(Id, Manifest)]) -> u64 {
    let by_id: BTreeMap<&Id, &Manifest> = manifests.iter().map(|(id, m)| (id, m)).collect();
    content_blocks(root, |id| {
        by_id
            .get(id)
            .map(|m| (*m).clone())
            .ok_or(ManifestError::Truncated)
    })
    .map_or(0, |c| c.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_order_skips_pinned_and_recent() {
        let mut h = Holdings::default();
        let (a, b, c) = (Id::hash_of(b"a"), Id::hash_of(b"b"), Id::hash_of(b"c"));
        h.insert(a, false, 10, Time::from_secs(1));
        h.insert(b, true, 10, Time::from_secs(2));
        h.insert(c, false, 10, Time::from_secs(3));
        h.touch(&a, Time::from_secs(4));
        assert_eq!(
            h.evictable(Time::from_secs(100), Duration::ZERO),
            vec![c, a]
        );
        assert_eq!(
            h.evictable(Time::from_millis(6500), Duration::from_secs(3)),
            vec![c]
        );
        assert!(h.pin(&c));
        assert_eq!(h.evictable(Time::from_secs(100), Duration::ZERO), vec![a]);
    }
}
