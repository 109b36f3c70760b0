//! What a node's flow sync is configured with ([`Settings`], its defaults) and the
//! errors a bad configuration gives ([`SyncError`]).

use std::net::SocketAddr;
use std::time::Duration;

/// Default send budget: datagrams per second, all peers together.
pub const DEFAULT_MAX_MESSAGES_PER_SEC: u32 = 2000;
/// Default bound on entries (and dirty slots) waiting to be sent.
pub const DEFAULT_MAX_QUEUE: usize = 65536;
/// Default interval between hellos.
pub const DEFAULT_HELLO_EVERY: Duration = Duration::from_secs(1);
/// Default silence after which a peer counts as dead.
pub const DEFAULT_PEER_DEAD_AFTER: Duration = Duration::from_secs(3);
/// Shortest shared secret accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// A node's sync id from what names it (e.g. its `node_name` and host name): the first
/// 8 bytes of their SHA-256, never 0. Stable across restarts and builds (a restart
/// shows as a newer epoch, not a new node).
pub fn node_id(parts: &[&[u8]]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id).max(1)
}

/// A node's flow-sync configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// This node's id (e.g. a hash of its name). Messages carrying it are our own,
    /// looped back (multicast), and are ignored.
    pub node_id: u64,
    /// The shared secret, at least [`MIN_KEY_LEN`] bytes.
    pub key: Vec<u8>,
    /// Where our messages go: each unicast peer, or one multicast group address.
    pub peers: Vec<SocketAddr>,
    /// Send budget: datagrams per second, all destinations together (at least 1).
    pub max_messages_per_sec: u32,
    /// Entries (and dirty slots) waiting to be sent, at most (at least 1).
    pub max_queue: usize,
    /// Interval between hellos to every peer (non-zero).
    pub hello_every: Duration,
    /// A peer without any valid message for this long counts as dead.
    pub peer_dead_after: Duration,
}

impl Settings {
    /// Settings with the defaults for everything but identity, secret and peers.
    pub fn new(node_id: u64, key: impl Into<Vec<u8>>, peers: Vec<SocketAddr>) -> Self {
        Settings {
            node_id,
            key: key.into(),
            peers,
            max_messages_per_sec: DEFAULT_MAX_MESSAGES_PER_SEC,
            max_queue: DEFAULT_MAX_QUEUE,
            hello_every: DEFAULT_HELLO_EVERY,
            peer_dead_after: DEFAULT_PEER_DEAD_AFTER,
        }
    }

    /// Checks the settings, as [`crate::SyncCore::new`] does.
    pub fn validate(&self) -> Result<(), SyncError> {
        if self.key.len() < MIN_KEY_LEN {
            return Err(SyncError::KeyTooShort {
                len: self.key.len(),
            });
        }
        if self.max_messages_per_sec == 0 {
            return Err(SyncError::ZeroRate);
        }
        if self.max_queue == 0 {
            return Err(SyncError::ZeroQueue);
        }
        if self.hello_every.is_zero() {
            return Err(SyncError::ZeroHelloInterval);
        }
        Ok(())
    }
}

/// A configuration [`crate::SyncCore::new`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The shared secret is shorter than [`MIN_KEY_LEN`].
    #[error("sync key is {len} bytes, at least {MIN_KEY_LEN} are required")]
    KeyTooShort {
        /// Its length.
        len: usize,
    },
    /// `max_messages_per_sec` is 0.
    #[error("sync max_messages_per_sec must be at least 1")]
    ZeroRate,
    /// `max_queue` is 0.
    #[error("sync max_queue must be at least 1")]
    ZeroQueue,
    /// `hello_every` is 0.
    #[error("sync hello_every must be non-zero")]
    ZeroHelloInterval,
}

#[cfg(test)]
mod node_id_tests {
    use super::node_id;

    #[test]
    fn ids_are_stable_and_tell_parts_apart() {
        assert_eq!(node_id(&[b"lb1", b"host"]), node_id(&[b"lb1", b"host"]));
        assert_ne!(node_id(&[b"lb1", b"host"]), node_id(&[b"lb2", b"host"]));
        assert_ne!(node_id(&[b"lb1h", b"ost"]), node_id(&[b"lb1", b"host"]));
        assert_ne!(node_id(&[]), 0);
    }
}
