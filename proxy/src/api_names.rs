//! `POST /api/v1/name/<name>?root=<id>`: points the name `<name>` (a key in
//! the node's data directory, created on first use) at `root`, with the next
//! sequence number, and publishes the record.
//!
//! The next sequence is one past the highest this machine signed and the
//! highest the network holds, so a key moved to a new machine
//! (`distroweb key import`) goes on from where the old one left off; the
//! number is saved before the record leaves, so a crash never reuses one.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use distroweb_net::{Chain, NameKeyError, NameKeys, NameSecret};
use distroweb_protocol::names::NameKey;
use distroweb_protocol::Id;
use http::{Response, StatusCode};
use serde_json::json;

use crate::api::{error, reply};
use crate::body::Body;
use crate::origin::{name_label, name_url, LOCALHOST};
use crate::server::State;

/// How long publishing waits to learn the network's latest sequence of a
/// name this node holds no record of.
const NETWORK_SEQ_WAIT: Duration = Duration::from_secs(5);

/// Signs and publishes a record pointing `name` at `root`.
pub async fn publish_name(state: &State, name: &str, root: Id) -> Response<Body> {
    let Some(dir) = state.config.data_dir.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this node has no data directory to keep name keys in",
        );
    };
    if let Err(e) = distroweb_net::name_keys::check_name(name) {
        return error(StatusCode::BAD_REQUEST, &Chain(&e).to_string());
    }
    let keys = NameKeys::new(&dir);
    let label = name.to_owned();
    let loaded = {
        let keys = keys.clone();
        tokio::task::spawn_blocking(move || -> Result<(NameSecret, u64), NameKeyError> {
            let secret = keys.load_or_create(&label)?;
            let last = keys.last_seq(&label)?;
            Ok((secret, last))
        })
        .await
    };
    let (secret, last) = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &Chain(&e).to_string()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the key task failed"),
    };
    let key = secret.public();
    let network = network_seq(state, key).await;
    let Some(seq) = last.max(network).checked_add(1) else {
        return error(StatusCode::CONFLICT, "the name's sequence is exhausted");
    };
    let saved = {
        let label = name.to_owned();
        tokio::task::spawn_blocking(move || {
            keys.save_seq(&label, seq)?;
            keys.save_root(&label, &root)
        })
        .await
    };
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &Chain(&e).to_string()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the key task failed"),
    }
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the system clock is before 1970",
        );
    };
    let expires = now
        .as_secs()
        .saturating_add(state.config.name_validity.as_secs());
    let record = secret.sign(root, seq, expires);
    match state.node.publish_name(record).await {
        Ok(stored) => reply(
            StatusCode::OK,
            &json!({
                "name": name,
                "key": name_label(&key),
                "seq": seq,
                "root": root.to_string(),
                "expires": expires,
                "stored_at": stored,
                "url": name_url(&key, LOCALHOST, state.port),
            }),
        ),
        Err(e) => error(StatusCode::BAD_GATEWAY, &Chain(&e).to_string()),
    }
}

/// Names this proxy keeps alive at most (the protocol's default
/// `max_published_names`).
const MAX_KEPT_NAMES: usize = 256;

/// Signs every name of the data directory again (its last root and sequence,
/// a fresh validity) and publishes it: a minute after start, then every
/// `name_resign_interval`, until `stop`.
pub async fn keep_alive(state: Arc<State>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let period = state.config.name_resign_interval;
    let first = tokio::time::Instant::now() + Duration::from_secs(60).min(period);
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = stop.wait_for(|s| *s) => true,
            _ = tick.tick() => false,
        };
        if stopped {
            return;
        }
        resign_all(&state).await;
    }
}

/// One round of [`keep_alive`].
async fn resign_all(state: &State) {
    let Some(dir) = state.config.data_dir.clone() else {
        return;
    };
    let keys = NameKeys::new(&dir);
    let loaded = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for name in keys.list(MAX_KEPT_NAMES)? {
            let (Some(secret), Some(root)) = (keys.load(&name)?, keys.last_root(&name)?) else {
                continue;
            };
            let seq = keys.last_seq(&name)?;
            if seq > 0 {
                out.push((name, secret, root, seq));
            }
        }
        Ok::<_, NameKeyError>(out)
    })
    .await;
    let names = match loaded {
        Ok(Ok(names)) => names,
        Ok(Err(e)) => {
            tracing::warn!(
                "cannot read the name keys to keep them alive: {}",
                Chain(&e)
            );
            return;
        }
        Err(_) => return,
    };
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return;
    };
    let expires = now
        .as_secs()
        .saturating_add(state.config.name_validity.as_secs());
    for (name, secret, root, seq) in names {
        let record = secret.sign(root, seq, expires);
        match state.node.publish_name(record).await {
            Ok(stored) => tracing::info!(name, seq, stored, "name signed again and republished"),
            // A higher sequence from another machine with this key wins, as it should.
            Err(e) => tracing::info!(name, seq, "name not republished: {}", Chain(&e)),
        }
    }
}

/// The highest sequence of `key` this node holds or can find within
/// [`NETWORK_SEQ_WAIT`]; 0 when none is found. It resolves even when it
/// holds a record: another machine with the key may have gone further.
async fn network_seq(state: &State, key: NameKey) -> u64 {
    let held = match state.node.name_record(key).await {
        Ok(Some(r)) => r.seq,
        _ => 0,
    };
    let found = match tokio::time::timeout(NETWORK_SEQ_WAIT, state.node.resolve_name(key)).await {
        Ok(Ok(r)) => r.seq,
        _ => 0,
    };
    held.max(found)
}
