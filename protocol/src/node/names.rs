//! Names on the DHT: publishing a signed name record at the trackers of the
//! name, resolving it, and keeping records as a tracker.
//!
//! A record proves itself (its signature), so unlike a provider record it may
//! be stored by anyone who has it: the publisher, any tracker, any reader. A
//! resolution walks towards the name's id asking each peer for its record,
//! and ends a short grace period (`records.name_grace`) after the first valid
//! one, with the highest sequence heard: an old tracker can delay a reader's
//! update to its next resolution, never roll it back.
//!
//! Records expire in calendar time, which this crate cannot read: the driver
//! anchors it with [`Node::set_calendar`]. A node with no calendar keeps,
//! answers and resolves no names.

use crate::config::Strategy;
use crate::contact::{Address, Contact};
use crate::event::Misbehaviour;
use crate::id::Id;
use crate::names::{NameAdmission, NameError, NameKey, NameRecord, Writer};
use crate::query::{QueryId, QueryKind};
use crate::records::Token;
use crate::time::Time;
use crate::wire::{Body, RpcId};

use super::{micros, CommandError, Node};

/// Names this node publishes, each republished every `republish_interval`.
#[derive(Debug, Default)]
pub(super) struct PublishedNames {
    /// The record to keep in place, and when to put it again.
    records: std::collections::BTreeMap<NameKey, (NameRecord, Time)>,
}

impl PublishedNames {
    /// Names published.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Up to `max` records whose republish time has come, name order.
    fn take_due(
        &mut self,
        now: Time,
        max: usize,
        interval: core::time::Duration,
    ) -> Vec<NameRecord> {
        let mut due = Vec::new();
        for (record, at) in self.records.values_mut() {
            if due.len() >= max {
                break;
            }
            if *at <= now {
                *at = now + interval;
                due.push(*record);
            }
        }
        due
    }
}

/// What a `Name` reply said.
pub(super) struct NameAnswer<A> {
    /// The name it answers about.
    pub name: NameKey,
    /// The record it holds, unchecked yet.
    pub record: Option<NameRecord>,
    /// Its closest contacts to the name.
    pub closer: Vec<Contact<A>>,
}

impl<A: Address> Node<A> {
    /// Anchors calendar time: `unix_secs` is the Unix time at protocol time
    /// `now`. Name records expire in calendar time, which only the driver can
    /// read; a live driver re-anchors now and then so that the two clocks'
    /// drift stays small, a simulator once with its scenario's start date.
    pub fn set_calendar(&mut self, now: Time, unix_secs: u64) {
        let now = self.tick(now);
        self.calendar = Some((now, unix_secs));
    }

    /// The calendar time (Unix seconds) at protocol time `now`, once anchored.
    pub fn calendar_at(&self, now: Time) -> Option<u64> {
        let (at, unix) = self.calendar?;
        let elapsed = micros(now.saturating_since(at)) / 1_000_000;
        Some(unix.saturating_add(elapsed))
    }

    /// The record this node holds for `name` (tracked, resolved or published),
    /// valid now: what a reader may serve while it resolves again.
    pub fn name_record(&self, name: &NameKey) -> Option<NameRecord> {
        let unix = self.calendar_at(self.now)?;
        self.names.get(name, unix).copied()
    }

    /// Publishes `record` (signed by the driver, which holds the key): keeps it
    /// here, stores it at the `r` nodes closest to the name's id, and puts it
    /// there again every `republish_interval` while it is valid. A later
    /// record for the same name replaces it.
    pub fn publish_name(&mut self, now: Time, record: NameRecord) -> Result<QueryId, CommandError> {
        let now = self.tick(now);
        let unix = self.calendar_at(now).ok_or(CommandError::NoCalendar)?;
        if !self.published_names.records.contains_key(&record.name)
            && self.published_names.len() >= self.config.records.max_published_names.get()
        {
            return Err(CommandError::TooManyNames {
                max: self.config.records.max_published_names.get(),
            });
        }
        match self.names.put(record, unix) {
            Ok(_) => {}
            // A lower sequence than one this node holds would be refused at
            // every tracker that holds it too: say so now.
            Err(e) => return Err(CommandError::Name(e)),
        }
        let q = self.start_name_store(now, record)?;
        self.published_names.records.insert(
            record.name,
            (record, now + self.config.records.republish_interval),
        );
        Ok(q)
    }

    /// Stops republishing `name`; records already stored lapse when they expire.
    pub fn stop_publishing_name(&mut self, name: &NameKey) -> bool {
        self.published_names.records.remove(name).is_some()
    }

    /// Finds the latest record of `name`: the highest valid sequence heard
    /// within `records.name_grace` of the first valid record a peer gave (or
    /// by the end of the walk), or the one this node holds if none is higher.
    /// What this node holds does not start the grace: a reader that holds
    /// last week's record would otherwise stop before its walk reached the
    /// trackers and never see an update (`distroweb experiment update` at
    /// 10,000 nodes: 7 % of readers within 60 s). Name lookups walk
    /// iteratively under either strategy:
    /// every tracker on the way may hold a newer record, and a route would
    /// hear from one. The record is kept here, so that [`Node::name_record`]
    /// serves it at once next time and this node can pass it on.
    pub fn resolve_name(&mut self, now: Time, name: NameKey) -> Result<QueryId, CommandError> {
        let now = self.tick(now);
        let unix = self.calendar_at(now).ok_or(CommandError::NoCalendar)?;
        let q = self.start(now, QueryKind::ResolveName, name.id(), Strategy::Iterative)?;
        let known = self.names.get(&name, unix).copied();
        if let Some(query) = self.queries.get_mut(&q) {
            query.name = Some(name);
            query.record = known;
        }
        self.launch(now, q);
        Ok(q)
    }

    /// Starts the walk that stores `record` at the closest nodes to its name.
    fn start_name_store(&mut self, now: Time, record: NameRecord) -> Result<QueryId, CommandError> {
        let q = self.start(
            now,
            QueryKind::PublishName,
            record.name.id(),
            Strategy::Iterative,
        )?;
        if let Some(query) = self.queries.get_mut(&q) {
            query.name = Some(record.name);
            query.record = Some(record);
        }
        self.launch(now, q);
        Ok(q)
    }

    /// Puts again every published name whose time has come (maintenance),
    /// dropping those that expired: the driver signs a fresh one. Starts at
    /// most `room` queries; returns how many it started.
    pub(super) fn republish_names_due(&mut self, now: Time, room: usize) -> usize {
        let Some(unix) = self.calendar_at(now) else {
            return 0;
        };
        self.published_names
            .records
            .retain(|_, (r, _)| r.expires > unix);
        self.names.expire(unix);
        let interval = self.config.records.republish_interval;
        let mut started = 0;
        for record in self.published_names.take_due(now, room, interval) {
            match self.start_name_store(now, record) {
                Ok(q) => {
                    started += 1;
                    if let Some(query) = self.queries.get_mut(&q) {
                        query.internal = true;
                    }
                }
                Err(_) => break,
            }
        }
        started
    }

    /// `GetName`: the record held, if any, and the nodes closest to the name.
    pub(super) fn on_get_name(&mut self, now: Time, sender: Contact<A>, rpc: RpcId, name: NameKey) {
        self.observe(now, sender.clone());
        let record = self
            .calendar_at(now)
            .and_then(|unix| self.names.get(&name, unix).copied());
        let k = self.config.dht.k.get();
        let closer = self.table.closest_by(self.config.dht.metric, &name.id(), k);
        let token = self.issue_token(now, &sender);
        self.reply(
            &sender,
            rpc,
            Body::Name {
                name,
                record,
                closer,
                token,
            },
        );
    }

    /// `PutName`: kept if the sender holds a token of ours and the record is
    /// valid and not older than the one held.
    pub(super) fn on_put_name(
        &mut self,
        now: Time,
        sender: Contact<A>,
        rpc: RpcId,
        record: NameRecord,
        token: Option<Token>,
    ) {
        let key = record.name.id();
        let Some(token) = token else {
            self.refuse_record(now, sender, rpc, key);
            return;
        };
        if !self.tokens.check(now, &token, &sender.id, &sender.addr) {
            self.counters.bad_tokens += 1;
            self.misbehaved(sender, Misbehaviour::BadToken);
            return;
        }
        let Some(unix) = self.calendar_at(now) else {
            self.refuse_record(now, sender, rpc, key);
            return;
        };
        let writer = Writer {
            peer: sender.id,
            group: sender.addr.group(),
        };
        match self.names.put_from(record, unix, Some(writer)) {
            Ok(_) => {
                self.observe(now, sender.clone());
                self.reply(&sender, rpc, Body::NameStored { name: record.name });
            }
            Err(NameError::BadSignature) => {
                self.misbehaved(sender, Misbehaviour::BadNameRecord);
            }
            // A rollback, a losing tie, an expired or over-long record, no
            // room or the writer's share used: what is held stays, and the
            // writer hears no.
            Err(_) => self.refuse_record(now, sender, rpc, key),
        }
    }

    /// Answers a record write that was not kept, with a fresh token.
    fn refuse_record(&mut self, now: Time, sender: Contact<A>, rpc: RpcId, key: Id) {
        self.counters.records_refused += 1;
        let token = self.issue_token(now, &sender);
        self.reply(&sender, rpc, Body::RecordRefused { key, token });
    }

    /// A `Name` reply to a resolution (or to a publication's walk, which asks
    /// the same question so that it may pass a newer record on).
    pub(super) fn name_reply(
        &mut self,
        now: Time,
        q: QueryId,
        sender: Contact<A>,
        seed: bool,
        answer: NameAnswer<A>,
    ) {
        let NameAnswer {
            name,
            record,
            closer,
        } = answer;
        let asked = self.queries.get(&q).and_then(|query| query.name);
        if asked != Some(name) || record.is_some_and(|r| r.name != name) {
            let to_id = (!seed).then_some(sender.id);
            self.misbehaved(sender, Misbehaviour::WrongReply);
            self.query_request_failed(now, q, to_id);
            return;
        }
        if let Some(record) = record {
            let valid = self
                .calendar_at(now)
                .map(|unix| record.verify(unix).map(|()| unix));
            match valid {
                Some(Ok(unix)) => self.heard_record(now, q, record, unix),
                Some(Err(NameError::BadSignature)) => {
                    // A forgery: worth nothing, and its sender's contacts
                    // are not followed either.
                    let to_id = (!seed).then_some(sender.id);
                    self.misbehaved(sender, Misbehaviour::BadNameRecord);
                    self.query_request_failed(now, q, to_id);
                    return;
                }
                // Expired (an old tracker), or no calendar: no answer, but
                // the contacts still lead on.
                _ => {}
            }
        }
        self.query_reply(now, q, sender, seed, closer, Vec::new());
    }

    /// A valid record heard by query `q`: the best so far if its sequence is
    /// the highest; kept here as any tracker would keep it.
    fn heard_record(&mut self, now: Time, q: QueryId, record: NameRecord, unix: u64) {
        // Keeping it can fail (a full store, a losing tie): the query's
        // answer does not depend on this node's store.
        let _: Result<NameAdmission, NameError> = self.names.put(record, unix);
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        let first = query.name_answers == 0;
        query.name_answers = query.name_answers.saturating_add(1);
        if query.kind == QueryKind::ResolveName
            && query.record.is_none_or(|best| record.supersedes(&best))
        {
            query.record = Some(record);
        }
        if query.kind == QueryKind::ResolveName && first {
            self.name_grace_starts(now, q);
        }
    }

    /// A resolution heard its first valid record: it ends `name_grace` from
    /// now (or sooner, if its walk ends first).
    fn name_grace_starts(&mut self, now: Time, q: QueryId) {
        let grace = now + self.config.records.name_grace;
        let Some(query) = self.queries.get_mut(&q) else {
            return;
        };
        if grace < query.deadline {
            self.query_deadlines.remove(&(query.deadline, q));
            query.deadline = grace;
            self.query_deadlines.insert((grace, q));
        }
    }

    /// A query's deadline passed: a resolution that heard a record ends with
    /// it (its grace period is over); anything else times out.
    pub(super) fn query_deadline_passed(&mut self, now: Time, q: QueryId) {
        let resolved = self
            .queries
            .get(&q)
            .is_some_and(|query| query.kind == QueryKind::ResolveName && query.record.is_some());
        if resolved {
            self.finish(now, q);
        } else {
            self.fail_query(now, q, crate::query::QueryError::Timeout);
        }
    }
}
