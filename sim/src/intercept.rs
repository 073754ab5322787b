//! Rules over messages on the wire: hold a message back, or drop it, when a
//! predicate matches it. The test harness's `hold` and `drop_next` rest on them.
//!
//! A rule sits on the network, outside every node, and is consulted when a
//! message reaches a node that is up, before the node's behaviour wrapper sees
//! it. The protocol gains no back door: a node only ever sees messages arrive
//! late or not at all, as on a real network.

use core::fmt;

use distroweb_protocol::Message;

use crate::addr::NodeIdx;

/// A message on its way, as a rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// Who sent it.
    pub from: NodeIdx,
    /// Who it is for.
    pub to: NodeIdx,
    /// What it says.
    pub msg: &'a Message<NodeIdx>,
}

/// What a rule does with a message it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it back, undelivered, until [`crate::Sim::release`] lets it go.
    Hold,
    /// Lose it, as the network might.
    Drop,
}

/// Names a rule, so that it can be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(u64);

/// A predicate over envelopes.
pub type Matcher = Box<dyn FnMut(&Envelope<'_>) -> bool>;

struct Rule {
    id: RuleId,
    verdict: Verdict,
    /// How many more messages it applies to; `None`: every one it matches.
    remaining: Option<u32>,
    matches: Matcher,
}

/// The rules in force, consulted in the order they were added: the first that
/// matches a message decides its fate.
#[derive(Default)]
pub(crate) struct Rules {
    rules: Vec<Rule>,
    next: u64,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| (r.id, r.verdict, r.remaining)))
            .finish()
    }
}

impl Rules {
    pub fn add(&mut self, verdict: Verdict, limit: Option<u32>, matches: Matcher) -> RuleId {
        let id = RuleId(self.next);
        self.next += 1;
        self.rules.push(Rule {
            id,
            verdict,
            remaining: limit,
            matches,
        });
        id
    }

    pub fn remove(&mut self, id: RuleId) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    /// Removes every rule with this verdict; returns how many there were.
    pub fn remove_all(&mut self, verdict: Verdict) -> usize {
        let before = self.rules.len();
        self.rules.retain(|r| r.verdict != verdict);
        before - self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The verdict of the first rule that matches `envelope`, if any; a rule
    /// with a limit counts the match and goes once it is used up.
    pub fn verdict(&mut self, envelope: &Envelope<'_>) -> Option<Verdict> {
        let i = self.rules.iter_mut().position(|r| (r.matches)(envelope))?;
        let rule = &mut self.rules[i];
        let verdict = rule.verdict;
        if let Some(n) = rule.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.rules.remove(i);
            }
        }
        Some(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distroweb_protocol::{Body, Id, RpcId};

    fn ping(rpc: u64) -> Message<NodeIdx> {
        Message {
            sender: Id::ZERO,
            rpc: RpcId(rpc),
            body: Body::Ping,
        }
    }

    fn envelope(msg: &Message<NodeIdx>) -> Envelope<'_> {
        Envelope {
            from: NodeIdx(1),
            to: NodeIdx(2),
            msg,
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_limited_rules_run_out() {
        let mut rules = Rules::default();
        let once = rules.add(Verdict::Drop, Some(1), Box::new(|e| e.msg.rpc.0 == 7));
        let hold = rules.add(Verdict::Hold, None, Box::new(|e| e.msg.rpc.0 >= 5));
        let (seven, six, four) = (ping(7), ping(6), ping(4));
        assert_eq!(rules.verdict(&envelope(&seven)), Some(Verdict::Drop));
        assert_eq!(rules.verdict(&envelope(&seven)), Some(Verdict::Hold));
        assert_eq!(rules.verdict(&envelope(&six)), Some(Verdict::Hold));
        assert_eq!(rules.verdict(&envelope(&four)), None);
        assert!(!rules.remove(once), "used up, so already gone");
        assert_eq!(rules.remove_all(Verdict::Hold), 1);
        assert!(!rules.remove(hold));
        assert!(rules.is_empty());
    }
}
