//! A tracker's name records: per name, the highest valid sequence seen.

use std::collections::BTreeMap;

use crate::contact::AddrGroup;
use crate::id::Id;

use super::record::{NameError, NameKey, NameRecord};

/// What [`NameStore::put`] did with a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameAdmission {
    /// A name not held before.
    Stored,
    /// A higher sequence replaced the one held.
    Updated,
    /// The very record held already (a republish).
    Same,
}

/// Who wrote a record into a store: the peer that sent it and its address
/// group, whose shares of the store are bounded. Records this node keeps on
/// its own account (published here, heard in its own resolutions) have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writer {
    /// The sender's proven id.
    pub peer: Id,
    /// The sender's address group, if its address has one.
    pub group: Option<AddrGroup>,
}

/// How much of a store one writer may fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameLimits {
    /// Names held at most.
    pub max_names: usize,
    /// Names one peer id may have written (and still hold the record of).
    pub max_per_peer: usize,
    /// Names one address group may have written.
    pub max_per_group: usize,
}

impl NameLimits {
    /// At most `max_names` names, with no share smaller than the whole.
    pub fn only(max_names: usize) -> Self {
        NameLimits {
            max_names,
            max_per_peer: max_names,
            max_per_group: max_names,
        }
    }
}

/// Name records, at most `max_names`, each the highest valid sequence seen.
///
/// Implementation note: when full, the names held stay and a new one is
/// refused until a record expires, as provider records do: a flood of fresh
/// names cannot push out the ones readers rely on. And since a fresh name
/// costs a flooder only a key generation, each peer and each address group
/// may fill only its share, so one cannot fill the store for everyone.
#[derive(Clone, Debug)]
pub struct NameStore {
    names: BTreeMap<NameKey, (NameRecord, Option<Writer>)>,
    by_peer: BTreeMap<Id, usize>,
    by_group: BTreeMap<AddrGroup, usize>,
    limits: NameLimits,
}

impl NameStore {
    /// An empty store of at most `max_names` names, with no per-writer shares.
    pub fn new(max_names: usize) -> Self {
        Self::with_limits(NameLimits::only(max_names))
    }

    /// An empty store bounded by `limits`.
    pub fn with_limits(limits: NameLimits) -> Self {
        NameStore {
            names: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            by_group: BTreeMap::new(),
            limits,
        }
    }

    /// Names held (expired ones included until [`NameStore::expire`]).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Takes `record`, on this node's own account, if it is valid at
    /// calendar time `now` (Unix seconds) and not older than the one held;
    /// nothing held changes otherwise.
    pub fn put(&mut self, record: NameRecord, now: u64) -> Result<NameAdmission, NameError> {
        self.put_from(record, now, None)
    }

    /// Takes `record` as [`NameStore::put`] does, written by `writer`, whose
    /// shares bound how many names it may have placed here.
    pub fn put_from(
        &mut self,
        record: NameRecord,
        now: u64,
        writer: Option<Writer>,
    ) -> Result<NameAdmission, NameError> {
        record.verify(now)?;
        let held = self.names.get(&record.name).copied();
        let admission = match held {
            // An expired record is no reason to refuse a lower sequence:
            // the author may have moved to a new machine and lost count.
            Some((held, _)) if held.expires > now => {
                if record.seq < held.seq {
                    return Err(NameError::Rollback {
                        held: held.seq,
                        got: record.seq,
                    });
                }
                if record == held {
                    return Ok(NameAdmission::Same);
                }
                if record.seq == held.seq && record.root == held.root {
                    // Re-signed with a later expiry: keep the longer.
                    if record.expires <= held.expires {
                        return Ok(NameAdmission::Same);
                    }
                } else if record.seq == held.seq && !record.supersedes(&held) {
                    // Two publishers with one key chose one sequence: every
                    // node keeps the same one of the two.
                    return Err(NameError::Conflict { seq: record.seq });
                }
                if record.seq == held.seq && record.root == held.root {
                    NameAdmission::Same
                } else {
                    NameAdmission::Updated
                }
            }
            Some(_) => NameAdmission::Updated,
            None => {
                if self.names.len() >= self.limits.max_names {
                    self.expire(now);
                    if self.names.len() >= self.limits.max_names {
                        return Err(NameError::StoreFull);
                    }
                }
                NameAdmission::Stored
            }
        };
        let previous = held.and_then(|(_, w)| w);
        if writer != previous && !self.has_room(writer) {
            return Err(NameError::ShareUsed);
        }
        self.uncount(previous);
        self.count(writer);
        self.names.insert(record.name, (record, writer));
        Ok(admission)
    }

    /// The live record of `name` at calendar time `now`.
    pub fn get(&self, name: &NameKey, now: u64) -> Option<&NameRecord> {
        self.names
            .get(name)
            .map(|(r, _)| r)
            .filter(|r| r.expires > now)
    }

    /// Drops every record expired at `now`.
    pub fn expire(&mut self, now: u64) {
        let expired: Vec<NameKey> = self
            .names
            .iter()
            .filter(|(_, (r, _))| r.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some((_, writer)) = self.names.remove(&key) {
                self.uncount(writer);
            }
        }
    }

    /// Names `peer` has placed here now.
    pub fn written_by(&self, peer: &Id) -> usize {
        self.by_peer.get(peer).copied().unwrap_or(0)
    }

    fn has_room(&self, writer: Option<Writer>) -> bool {
        let Some(w) = writer else {
            return true;
        };
        if self.written_by(&w.peer) >= self.limits.max_per_peer {
            return false;
        }
        w.group
            .is_none_or(|g| self.by_group.get(&g).copied().unwrap_or(0) < self.limits.max_per_group)
    }

    fn count(&mut self, writer: Option<Writer>) {
        let Some(w) = writer else {
            return;
        };
        *self.by_peer.entry(w.peer).or_default() += 1;
        if let Some(g) = w.group {
            *self.by_group.entry(g).or_default() += 1;
        }
    }

    fn uncount(&mut self, writer: Option<Writer>) {
        let Some(w) = writer else {
            return;
        };
        decrement(&mut self.by_peer, w.peer);
        if let Some(g) = w.group {
            decrement(&mut self.by_group, g);
        }
    }
}

/// Takes one from `key`'s count, dropping it at zero so the map holds only
/// writers with records here.
fn decrement<K: Ord>(counts: &mut BTreeMap<K, usize>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn rec(key: u8, seq: u64, root: u8, expires: u64) -> NameRecord {
        NameRecord::sign(&[key; 32], Id::hash_of(&[root]), seq, expires)
    }

    #[test]
    fn the_highest_sequence_wins_and_nothing_rolls_back() {
        let mut s = NameStore::new(4);
        let later = NOW + 3600;
        assert_eq!(s.put(rec(1, 5, 1, later), NOW), Ok(NameAdmission::Stored));
        assert_eq!(s.put(rec(1, 6, 2, later), NOW), Ok(NameAdmission::Updated));
        assert_eq!(
            s.put(rec(1, 5, 1, later), NOW),
            Err(NameError::Rollback { held: 6, got: 5 })
        );
        // One sequence, two roots: the tie goes the same way whatever the order.
        let (a, b) = (rec(1, 6, 2, later), rec(1, 6, 3, later));
        let (winner, loser) = if a.supersedes(&b) { (a, b) } else { (b, a) };
        let mut other = NameStore::new(4);
        assert!(other.put(winner, NOW).is_ok());
        assert_eq!(other.put(loser, NOW), Err(NameError::Conflict { seq: 6 }));
        let _ = s.put(b, NOW);
        assert_eq!(s.get(&a.name, NOW), Some(&winner));
        assert_eq!(s.put(winner, NOW), Ok(NameAdmission::Same));
        let name = rec(1, 0, 0, later).name;
        assert_eq!(s.get(&name, NOW).map(|r| r.seq), Some(6));
        // A forged record for the name changes nothing.
        let mut forged = rec(2, 99, 9, later);
        forged.name = name;
        assert_eq!(s.put(forged, NOW), Err(NameError::BadSignature));
        assert_eq!(s.get(&name, NOW).map(|r| r.seq), Some(6));
    }

    #[test]
    fn a_full_store_keeps_its_names_until_they_expire() {
        let mut s = NameStore::new(2);
        assert!(s.put(rec(1, 1, 1, NOW + 10), NOW).is_ok());
        assert!(s.put(rec(2, 1, 1, NOW + 100), NOW).is_ok());
        assert_eq!(
            s.put(rec(3, 1, 1, NOW + 100), NOW),
            Err(NameError::StoreFull)
        );
        // Updating a held name needs no room.
        assert!(s.put(rec(1, 2, 1, NOW + 10), NOW).is_ok());
        // Once name 1 lapses there is room, and it is gone.
        assert_eq!(
            s.put(rec(3, 1, 1, NOW + 100), NOW + 10),
            Ok(NameAdmission::Stored)
        );
        assert!(s.get(&rec(1, 0, 0, NOW + 1).name, NOW + 10).is_none());
        assert_eq!(s.len(), 2);
    }

    proptest! {
        /// Two publishers racing with one key: stores that see the same
        /// records in any order end on the same one, the highest sequence.
        #[test]
        fn racing_publishers_converge(
            offers in proptest::collection::vec((0u64..4, 0u8..4), 1..12),
            shuffle in any::<u64>(),
        ) {
            let records: Vec<NameRecord> =
                offers.iter().map(|&(seq, root)| rec(7, seq, root, NOW + 3600)).collect();
            let mut reversed = records.clone();
            reversed.reverse();
            let mut rotated = records.clone();
            let len = rotated.len();
            rotated.rotate_left((shuffle % len as u64) as usize);
            let held: Vec<Option<NameRecord>> = [records.clone(), reversed, rotated]
                .into_iter()
                .map(|order| {
                    let mut s = NameStore::new(2);
                    for r in order {
                        let _ = s.put(r, NOW);
                    }
                    s.get(&records[0].name, NOW).copied()
                })
                .collect();
            let top = offers.iter().map(|&(seq, _)| seq).max();
            prop_assert_eq!(held[0].map(|r| r.seq), top);
            prop_assert_eq!(held[0], held[1]);
            prop_assert_eq!(held[0], held[2]);
        }

        /// Whatever arrives, each held name carries the highest sequence of
        /// the valid records offered for it, and the bound holds.
        #[test]
        fn each_name_holds_its_highest_valid_sequence(
            ops in proptest::collection::vec((0u8..4, 0u64..6, 0u8..3, any::<bool>()), 0..60),
        ) {
            let mut s = NameStore::new(3);
            let mut best: BTreeMap<NameKey, u64> = BTreeMap::new();
            for (key, seq, root, forge) in ops {
                let mut r = rec(key, seq, root, NOW + 3600);
                if forge {
                    r.root = Id::hash_of(b"forged");
                }
                let before = s.get(&r.name, NOW).copied();
                let got = s.put(r, NOW);
                if forge {
                    prop_assert_eq!(got, Err(NameError::BadSignature));
                }
                if got.is_ok() {
                    let b = best.entry(r.name).or_insert(seq);
                    *b = (*b).max(seq);
                } else {
                    prop_assert_eq!(s.get(&r.name, NOW).copied(), before);
                }
                prop_assert!(s.len() <= 3);
                for (name, seq) in &best {
                    if let Some(held) = s.get(name, NOW) {
                        prop_assert_eq!(held.seq, *seq);
                        prop_assert_eq!(held.verify(NOW), Ok(()));
                    }
                }
            }
        }
    }
}
