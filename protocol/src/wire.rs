//! The wire format: every message two nodes exchange, and its binary codec.
//!
//! Encoding is postcard (serde, varint integers, no field names), so both drivers
//! share one byte format. Decoding is bounded: every list has a cap checked
//! before its elements are read, nothing is preallocated beyond what the input
//! holds, and every failure is a typed [`DecodeError`]. (`protocol/tests/hostile_input.rs`
//! measures what decoding hostile input allocates.)

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use bytes::Bytes;

use crate::contact::Contact;
use crate::id::Id;
use crate::names::{NameKey, NameRecord};
pub use crate::records::Token;

/// The largest encoded message a node accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The most contacts or providers one list in a message may carry.
pub const MAX_LIST_LEN: usize = 64;
/// The most nodes a recursive route may carry in its path.
pub const MAX_ROUTE_PATH: usize = 64;
/// The largest block (a chunk or a manifest) one message may carry: a frame
/// less room for the header, so a full block always fits in [`MAX_MESSAGE_BYTES`].
pub const MAX_BLOCK_BYTES: usize = MAX_MESSAGE_BYTES - 1024;

/// Matches a reply to its request; chosen by the requester.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RpcId(pub u64);

/// One message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "A: Serialize + DeserializeOwned")]
pub struct Message<A> {
    /// The sender's node id.
    pub sender: Id,
    /// The request this message is, or answers.
    pub rpc: RpcId,
    /// What it says.
    pub body: Body<A>,
}

/// What a message says. Requests come first, each followed by its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "A: Serialize + DeserializeOwned")]
pub enum Body<A> {
    /// Are you alive?
    Ping,
    /// Yes.
    Pong,
    /// Which nodes do you know closest to `target`?
    FindNode {
        /// The id to get close to.
        target: Id,
    },
    /// The nodes I know closest to the target.
    Nodes {
        /// Closest first, at most `k`.
        #[serde(deserialize_with = "capped::<_, A, MAX_LIST_LEN>")]
        closer: Vec<Contact<A>>,
        /// A write token for the asker, at the id and address it asked from,
        /// for an [`Body::AddProvider`] or [`Body::AddFetching`] to this node.
        token: Token,
    },
    /// Who holds `key`, or who is closer to it?
    GetProviders {
        /// The content id.
        key: Id,
    },
    /// The providers I track for the key, and the nodes I know closest to it.
    Providers {
        /// The content id asked about.
        key: Id,
        /// Peers that announced they hold it.
        #[serde(deserialize_with = "capped::<_, A, MAX_LIST_LEN>")]
        providers: Vec<Contact<A>>,
        /// Closest first, at most `k`.
        #[serde(deserialize_with = "capped::<_, A, MAX_LIST_LEN>")]
        closer: Vec<Contact<A>>,
        /// A write token for the asker, as in [`Body::Nodes`].
        token: Token,
    },
    /// Record that I (the sender, at the address I sent from) hold `key`.
    AddProvider {
        /// The content id.
        key: Id,
        /// The token this node handed the sender (at this id and address);
        /// `None` when the sender has none, which the node answers with
        /// [`Body::RecordRefused`] carrying one.
        token: Option<Token>,
    },
    /// The provider record for `key` is stored.
    ProviderAdded {
        /// The content id.
        key: Id,
    },
    /// A recursive lookup on its way to the node responsible for the target.
    Route(Route<A>),
    /// Hop-by-hop receipt of a [`Body::Route`], so a hop can route around a dead peer.
    RouteAck,
    /// The outcome of a recursive lookup, travelling back down its path.
    RouteReply(RouteReply<A>),
    /// Record, for a short while, that I (the sender) am fetching `key` and can
    /// serve what I already hold of it (CoralCDN's "fetch in progress"). Answered
    /// with [`Body::ProviderAdded`].
    AddFetching {
        /// The content id.
        key: Id,
        /// As in [`Body::AddProvider`].
        token: Option<Token>,
    },
    /// Send me the block (chunk or manifest) whose hash is `id`.
    GetBlock {
        /// The block's hash.
        id: Id,
    },
    /// The block asked for; the receiver checks it against its hash.
    Block {
        /// The block's hash, as asked.
        id: Id,
        /// Its bytes, at most [`MAX_BLOCK_BYTES`].
        data: Payload,
    },
    /// I do not hold that block (or not yet).
    DontHave {
        /// The block asked for.
        id: Id,
    },
    /// I hold it but am uploading all I may right now: ask someone else.
    Busy {
        /// The block asked for.
        id: Id,
    },
    /// Which nodes do you know closest to `target` under your routing table's
    /// metric? Answered with [`Body::Nodes`]. The same as [`Body::FindNode`]
    /// where the table's metric is the key metric; where it is not (Hamming
    /// keys over XOR-shaped tables) joins and refreshes use this to learn the
    /// table's neighbourhood.
    ///
    /// Implementation note: last in the enum so the other variants keep their
    /// tags on the wire.
    FindNeighbours {
        /// The id to get close to.
        target: Id,
    },
    /// The answer to an [`Body::AddProvider`] or [`Body::AddFetching`] the
    /// node did not store: no token, a wrong or expired one, or no room
    /// (full, or the sender's share used up). It carries a fresh token for the
    /// sender, so one that had none may try once more (the DNS-cookie shape,
    /// RFC 7873: a refusal hands out the cookie).
    RecordRefused {
        /// The content id.
        key: Id,
        /// A token for the sender, at the id and address it wrote from.
        token: Token,
    },
    /// What is the latest record you hold for name `name`, or who is closer to it?
    /// (The name's records are tracked at the nodes closest to [`NameKey::id`].)
    GetName {
        /// The name asked about.
        name: NameKey,
    },
    /// The record held for a name (the asker checks its signature), and the
    /// nodes known closest to the name's id.
    Name {
        /// The name asked about.
        name: NameKey,
        /// The highest valid record held, if any.
        record: Option<NameRecord>,
        /// Closest first, at most `k`.
        #[serde(deserialize_with = "capped::<_, A, MAX_LIST_LEN>")]
        closer: Vec<Contact<A>>,
        /// A write token for the asker, as in [`Body::Nodes`].
        token: Token,
    },
    /// Keep this name record (self-authenticating: anyone may pass one on).
    /// Answered with [`Body::NameStored`], or [`Body::RecordRefused`] keyed by
    /// the name's id.
    PutName {
        /// The signed record.
        record: NameRecord,
        /// As in [`Body::AddProvider`].
        token: Option<Token>,
    },
    /// The name record is held: this one or a higher sequence.
    NameStored {
        /// The name.
        name: NameKey,
    },
}

/// A block's bytes on the wire: a cheaply cloned [`Bytes`], capped at
/// [`MAX_BLOCK_BYTES`] when decoded, shown by length in debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Payload(pub Bytes);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload(b)
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;

        impl PayloadVisitor {
            fn check<E: de::Error>(len: usize) -> Result<(), E> {
                if len > MAX_BLOCK_BYTES {
                    return Err(E::invalid_length(len, &PayloadVisitor));
                }
                Ok(())
            }
        }

        impl<'de> Visitor<'de> for PayloadVisitor {
            type Value = Payload;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {MAX_BLOCK_BYTES} bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Self::check(v.len())?;
                Ok(Payload(Bytes::copy_from_slice(v)))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Self::check(v.len())?;
                Ok(Payload(Bytes::from(v)))
            }
        }

        d.deserialize_byte_buf(PayloadVisitor)
    }
}

/// What a recursive lookup wants from the responsible node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteWant {
    /// The nodes closest to the target.
    Closest,
    /// Providers of the target key (any node on the way that tracks it may answer).
    Providers,
}

/// A recursive lookup in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "A: Serialize + DeserializeOwned")]
pub struct Route<A> {
    /// The origin's tag for this lookup.
    pub tag: u64,
    /// The id being looked up.
    pub target: Id,
    /// What the origin wants.
    pub want: RouteWant,
    /// Every node the request has passed through, the origin first.
    #[serde(deserialize_with = "capped::<_, A, MAX_ROUTE_PATH>")]
    pub path: Vec<Contact<A>>,
    /// Best-first forwarding: the closest candidates seen so far that are not on
    /// the path, closest first, at most `k`; empty under greedy forwarding.
    #[serde(deserialize_with = "capped::<_, A, MAX_LIST_LEN>")]
    pub frontier: Vec<Contact<A>>,
    /// Messages sent for this route so far, by every hop: forwards (retries
    /// included) and acknowledgements, this message counted.
    pub messages: u32,
}

/// Why a recursive lookup stopped short.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RouteFailure {
    /// The request came back to a node already on its path.
    Loop,
    /// A hop knew closer peers but none of them acknowledged the request.
    DeadEnd,
    /// The path reached the hop limit.
    HopLimit,
    /// A hop was too busy forwarding for others.
    Busy,
}

impl fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteFailure::Loop => "routing loop",
            RouteFailure::DeadEnd => "dead end",
            RouteFailure::HopLimit => "hop limit reached",
            RouteFailure::Busy => "hop too busy",
        })
    }
}

/// How a recursive lookup ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "A: Serialize + DeserializeOwned")]
pub enum RouteOutcome<A> {
    /// The last node on the path answered.
    Found {
        /// The nodes it knows closest to the target, itself included, closest first.
        #[serde(deserialize_with = "capped::<_, A, MAX_LIST_LEN>")]
        closest: Vec<Contact<A>>,
        /// Providers it tracks for the target (empty when not asked).
        #[serde(deserialize_with = "capped::<_, A, MAX_LIST_LEN>")]
        providers: Vec<Contact<A>>,
        /// A write token from the answering node for the origin, at the id and
        /// address the path names for it (the origin then writes directly).
        token: Token,
    },
    /// The lookup failed at the last node on the path.
    Failed(RouteFailure),
}

/// The answer to a recursive lookup on its way back to the origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "A: Serialize + DeserializeOwned")]
pub struct RouteReply<A> {
    /// The origin's tag.
    pub tag: u64,
    /// The id that was looked up.
    pub target: Id,
    /// The path the request took, origin first, answering node last.
    #[serde(deserialize_with = "capped::<_, A, MAX_ROUTE_PATH>")]
    pub path: Vec<Contact<A>>,
    /// How it ended.
    pub outcome: RouteOutcome<A>,
    /// Messages sent for the route so far: the route's own tally, then one
    /// for each step of this reply back down the path, this one counted.
    pub messages: u32,
}

/// What a message is for, so drivers can account for traffic by purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TrafficClass {
    /// Keeping the overlay alive: pings, node lookups, provider records.
    Maintenance,
    /// Finding who holds content.
    Lookup,
    /// Moving content: block requests and the blocks themselves.
    Transfer,
}

impl<A> Body<A> {
    /// Whether this body asks for a reply.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Body::Ping
                | Body::FindNode { .. }
                | Body::FindNeighbours { .. }
                | Body::GetProviders { .. }
                | Body::AddProvider { .. }
                | Body::Route(_)
                | Body::AddFetching { .. }
                | Body::GetBlock { .. }
                | Body::GetName { .. }
                | Body::PutName { .. }
        )
    }

    /// What the message is for.
    pub fn class(&self) -> TrafficClass {
        match self {
            Body::Ping
            | Body::Pong
            | Body::FindNode { .. }
            | Body::FindNeighbours { .. }
            | Body::Nodes { .. }
            | Body::AddProvider { .. }
            | Body::ProviderAdded { .. }
            | Body::RecordRefused { .. }
            | Body::AddFetching { .. }
            | Body::PutName { .. }
            | Body::NameStored { .. } => TrafficClass::Maintenance,
            Body::GetProviders { .. }
            | Body::Providers { .. }
            | Body::Route(_)
            | Body::RouteAck
            | Body::RouteReply(_)
            | Body::GetName { .. }
            | Body::Name { .. } => TrafficClass::Lookup,
            Body::GetBlock { .. }
            | Body::Block { .. }
            | Body::DontHave { .. }
            | Body::Busy { .. } => TrafficClass::Transfer,
        }
    }

    /// A short name for logs and per-kind counters.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Ping => "ping",
            Body::Pong => "pong",
            Body::FindNode { .. } => "find_node",
            Body::FindNeighbours { .. } => "find_neighbours",
            Body::Nodes { .. } => "nodes",
            Body::GetProviders { .. } => "get_providers",
            Body::Providers { .. } => "providers",
            Body::AddProvider { .. } => "add_provider",
            Body::ProviderAdded { .. } => "provider_added",
            Body::RecordRefused { .. } => "record_refused",
            Body::Route(_) => "route",
            Body::RouteAck => "route_ack",
            Body::RouteReply(_) => "route_reply",
            Body::AddFetching { .. } => "add_fetching",
            Body::GetBlock { .. } => "get_block",
            Body::Block { .. } => "block",
            Body::DontHave { .. } => "dont_have",
            Body::Busy { .. } => "busy",
            Body::GetName { .. } => "get_name",
            Body::Name { .. } => "name",
            Body::PutName { .. } => "put_name",
            Body::NameStored { .. } => "name_stored",
        }
    }
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ended in the middle of a message.
    #[error("message is truncated")]
    Truncated,
    /// A field holds a value outside its bounds: an unknown variant, a bad
    /// integer, or a list over its cap.
    #[error("message is malformed: {0}")]
    Malformed(&'static str),
    /// A whole message was read and bytes were left over.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoding would exceed [`MAX_MESSAGE_BYTES`]; the peer would refuse it.
    #[error("encoded message exceeds the limit of {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The serializer failed (a bug: our own types always serialise).
    #[error("serializer failed: {0}")]
    Serializer(&'static str),
}

impl<A: Serialize + DeserializeOwned> Message<A> {
    /// Encodes the message into a fresh buffer.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let bytes = postcard::to_allocvec(self).map_err(|e| match e {
            postcard::Error::SerializeBufferFull => EncodeError::TooLarge {
                max: MAX_MESSAGE_BYTES,
            },
            _ => EncodeError::Serializer("postcard"),
        })?;
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(EncodeError::TooLarge {
                max: MAX_MESSAGE_BYTES,
            });
        }
        Ok(bytes)
    }

    /// The length of [`Message::encode`]'s output, without allocating it.
    pub fn encoded_len(&self) -> usize {
        postcard::experimental::serialized_size(self).unwrap_or(usize::MAX)
    }

    /// Decodes one whole message; `bytes` must hold exactly one.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let (msg, rest) = postcard::take_from_bytes(bytes).map_err(decode_error)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(msg)
    }
}

fn decode_error(e: postcard::Error) -> DecodeError {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => DecodeError::Truncated,
        E::DeserializeBadVarint => DecodeError::Malformed("bad varint"),
        E::DeserializeBadBool => DecodeError::Malformed("bad bool"),
        E::DeserializeBadChar => DecodeError::Malformed("bad char"),
        E::DeserializeBadUtf8 => DecodeError::Malformed("bad utf-8"),
        E::DeserializeBadOption => DecodeError::Malformed("bad option tag"),
        E::DeserializeBadEnum => DecodeError::Malformed("unknown variant"),
        E::DeserializeBadEncoding => DecodeError::Malformed("bad encoding"),
        E::SerdeDeCustom => DecodeError::Malformed("value out of bounds"),
        _ => DecodeError::Malformed("undecodable"),
    }
}

/// Deserialises a list of at most `N` elements, refusing longer ones before
/// reading them and growing the list only as elements actually arrive.
fn capped<'de, D, A, const N: usize>(d: D) -> Result<Vec<Contact<A>>, D::Error>
where
    D: Deserializer<'de>,
    A: DeserializeOwned,
{
    struct CappedVisitor<A, const N: usize>(PhantomData<A>);

    impl<'de, A: DeserializeOwned, const N: usize> Visitor<'de> for CappedVisitor<A, N> {
        type Value = Vec<Contact<A>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {N} contacts")
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            if seq.size_hint().is_some_and(|n| n > N) {
                return Err(de::Error::invalid_length(
                    seq.size_hint().unwrap_or(0),
                    &self,
                ));
            }
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                if out.len() == N {
                    return Err(de::Error::invalid_length(N + 1, &self));
                }
                out.push(item);
            }
            Ok(out)
        }
    }

    d.deserialize_seq(CappedVisitor::<A, N>(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = Id> {
        any::<[u8; 32]>().prop_map(Id::from_bytes)
    }

    fn contacts(max: usize) -> impl Strategy<Value = Vec<Contact<u32>>> {
        proptest::collection::vec(
            (id(), any::<u32>()).prop_map(|(i, a)| Contact::new(i, a)),
            0..=max,
        )
    }

    fn token() -> impl Strategy<Value = Token> {
        any::<[u8; crate::records::TOKEN_BYTES]>().prop_map(Token)
    }

    /// Any record, signed or not: the codec does not check signatures.
    fn name_record() -> impl Strategy<Value = NameRecord> {
        (
            any::<[u8; 32]>(),
            id(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(k, root, seq, expires, sig)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&sig);
                signature[32..].copy_from_slice(&k);
                NameRecord {
                    name: NameKey(k),
                    root,
                    seq,
                    expires,
                    signature: crate::names::Signature(signature),
                }
            })
    }

    fn route_failure() -> impl Strategy<Value = RouteFailure> {
        prop_oneof![
            Just(RouteFailure::Loop),
            Just(RouteFailure::DeadEnd),
            Just(RouteFailure::HopLimit),
            Just(RouteFailure::Busy),
        ]
    }

    fn body() -> impl Strategy<Value = Body<u32>> {
        prop_oneof![
            Just(Body::Ping),
            Just(Body::Pong),
            id().prop_map(|target| Body::FindNode { target }),
            id().prop_map(|target| Body::FindNeighbours { target }),
            (contacts(MAX_LIST_LEN), token())
                .prop_map(|(closer, token)| Body::Nodes { closer, token }),
            id().prop_map(|key| Body::GetProviders { key }),
            (
                id(),
                contacts(MAX_LIST_LEN),
                contacts(MAX_LIST_LEN),
                token()
            )
                .prop_map(|(key, providers, closer, token)| Body::Providers {
                    key,
                    providers,
                    closer,
                    token,
                }),
            (id(), proptest::option::of(token()))
                .prop_map(|(key, token)| Body::AddProvider { key, token }),
            (id(), token()).prop_map(|(key, token)| Body::RecordRefused { key, token }),
            id().prop_map(|key| Body::ProviderAdded { key }),
            (
                (any::<u64>(), id(), any::<bool>()),
                contacts(MAX_ROUTE_PATH),
                contacts(MAX_LIST_LEN),
                any::<u32>()
            )
                .prop_map(|((tag, target, p), path, frontier, messages)| {
                    Body::Route(Route {
                        tag,
                        target,
                        want: if p {
                            RouteWant::Providers
                        } else {
                            RouteWant::Closest
                        },
                        path,
                        frontier,
                        messages,
                    })
                }),
            Just(Body::RouteAck),
            (
                any::<u64>(),
                id(),
                contacts(MAX_ROUTE_PATH),
                contacts(MAX_LIST_LEN),
                contacts(MAX_LIST_LEN),
                token(),
            )
                .prop_map(|(tag, target, path, closest, providers, token)| {
                    Body::RouteReply(RouteReply {
                        tag,
                        target,
                        path,
                        outcome: RouteOutcome::Found {
                            closest,
                            providers,
                            token,
                        },
                        messages: tag as u32,
                    })
                }),
            (id(), proptest::option::of(token()))
                .prop_map(|(key, token)| Body::AddFetching { key, token }),
            id().prop_map(|id| Body::GetBlock { id }),
            (id(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(id, d)| {
                Body::Block {
                    id,
                    data: Payload(Bytes::from(d)),
                }
            }),
            id().prop_map(|id| Body::DontHave { id }),
            id().prop_map(|id| Body::Busy { id }),
            (any::<u64>(), id(), contacts(4), route_failure()).prop_map(
                |(tag, target, path, f)| {
                    Body::RouteReply(RouteReply {
                        tag,
                        target,
                        path,
                        outcome: RouteOutcome::Failed(f),
                        messages: 3,
                    })
                }
            ),
            any::<[u8; 32]>().prop_map(|k| Body::GetName { name: NameKey(k) }),
            (
                name_record(),
                any::<bool>(),
                contacts(MAX_LIST_LEN),
                token()
            )
                .prop_map(|(r, some, closer, token)| Body::Name {
                    name: r.name,
                    record: some.then_some(r),
                    closer,
                    token,
                }),
            (name_record(), proptest::option::of(token()))
                .prop_map(|(record, token)| Body::PutName { record, token }),
            any::<[u8; 32]>().prop_map(|k| Body::NameStored { name: NameKey(k) }),
        ]
    }

    fn message() -> impl Strategy<Value = Message<u32>> {
        (id(), any::<u64>(), body()).prop_map(|(sender, rpc, body)| Message {
            sender,
            rpc: RpcId(rpc),
            body,
        })
    }

    proptest! {
        #[test]
        fn every_message_round_trips(m in message()) {
            let bytes = m.encode().unwrap();
            prop_assert_eq!(bytes.len(), m.encoded_len());
            prop_assert_eq!(Message::<u32>::decode(&bytes), Ok(m));
        }

        #[test]
        fn socket_addresses_round_trip(m in message(), port in any::<u16>(), v6 in any::<bool>()) {
            use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
            let addr: SocketAddr = if v6 {
                (Ipv6Addr::LOCALHOST, port).into()
            } else {
                (Ipv4Addr::LOCALHOST, port).into()
            };
            let msg = Message {
                sender: m.sender,
                rpc: m.rpc,
                body: Body::Nodes { closer: vec![Contact::new(m.sender, addr)], token: Token([7; 8]) },
            };
            prop_assert_eq!(Message::<SocketAddr>::decode(&msg.encode().unwrap()), Ok(msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Message::<u32>::decode(&bytes);
            let _ = Message::<std::net::SocketAddr>::decode(&bytes);
        }

        #[test]
        fn truncation_is_an_error(m in message(), cut in any::<prop::sample::Index>()) {
            let bytes = m.encode().unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(Message::<u32>::decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn mutated_messages_never_panic(m in message(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = m.encode().unwrap();
            for (i, b) in flips {
                let i = i.index(bytes.len());
                bytes[i] ^= b;
            }
            let _ = Message::<u32>::decode(&bytes);
        }
    }

    #[test]
    fn a_token_costs_eight_bytes_on_the_wire() {
        let with = |token| {
            Message::<u32> {
                sender: Id::ZERO,
                rpc: RpcId(1),
                body: Body::AddProvider {
                    key: Id::ZERO,
                    token,
                },
            }
            .encoded_len()
        };
        assert_eq!(with(Some(Token([0xff; 8]))) - with(None), 8);
    }

    #[test]
    fn over_long_list_is_refused() {
        let sender = Id::ZERO;
        let closer: Vec<Contact<u32>> = (0..=MAX_LIST_LEN as u32)
            .map(|i| Contact::new(sender, i))
            .collect();
        // Encoding has no cap (we would never send this); decoding refuses it.
        let bytes = postcard::to_allocvec(&Message {
            sender,
            rpc: RpcId(1),
            body: Body::Nodes {
                closer,
                token: Token([0; 8]),
            },
        })
        .unwrap();
        assert_eq!(
            Message::<u32>::decode(&bytes),
            Err(DecodeError::Malformed("value out of bounds"))
        );
    }

    #[test]
    fn a_full_block_fits_in_a_frame_and_a_larger_one_is_refused() {
        let full = Message::<u32> {
            sender: Id::ZERO,
            rpc: RpcId(u64::MAX),
            body: Body::Block {
                id: Id::ZERO,
                data: Payload(Bytes::from(vec![7u8; MAX_BLOCK_BYTES])),
            },
        };
        let bytes = full.encode().unwrap();
        assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(Message::<u32>::decode(&bytes), Ok(full));
        let over = postcard::to_allocvec(&Message::<u32> {
            sender: Id::ZERO,
            rpc: RpcId(1),
            body: Body::Block {
                id: Id::ZERO,
                data: Payload(Bytes::from(vec![7u8; MAX_BLOCK_BYTES + 1])),
            },
        })
        .unwrap();
        assert_eq!(
            Message::<u32>::decode(&over),
            Err(DecodeError::Malformed("value out of bounds"))
        );
        assert_eq!(
            Body::<u32>::GetBlock { id: Id::ZERO }.class(),
            TrafficClass::Transfer
        );
    }

    #[test]
    fn oversized_frame_and_trailing_bytes_are_typed() {
        assert!(matches!(
            Message::<u32>::decode(&vec![0u8; MAX_MESSAGE_BYTES + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut bytes = Message::<u32> {
            sender: Id::ZERO,
            rpc: RpcId(7),
            body: Body::Ping,
        }
        .encode()
        .unwrap();
        bytes.push(0);
        assert_eq!(
            Message::<u32>::decode(&bytes),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(Message::<u32>::decode(&[]), Err(DecodeError::Truncated));
    }
}
