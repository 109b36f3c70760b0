//! Flow sync between lbd nodes, sans I/O: the protocol that shares connection-table
//! entries (and, in full resyncs, dirty Maglev slots) so that any node can take any
//! established flow. [`SyncCore`] takes datagrams and the time (`Instant` arguments,
//! never the system clock) and returns [`SyncEffect`]s; the daemon does the UDP and map
//! I/O around it.
//!
//! # Protocol
//!
//! Every datagram carries a header (magic `LBSY`, version 1, kind, flags, sender node
//! id, receiver node id when known, sender epoch, sequence number), a payload, and a
//! 16-byte truncated HMAC-SHA256 tag over everything before it under the shared key
//! ([`wire`], [`auth`]). Kinds: `Entries` (a batch), `Dirty` (one service's dirty
//! slots, split over datagrams and reassembled whole on the receiver), `Settled` (slots
//! of a service that are no longer dirty on the sender, split and reassembled the same
//! way), `Hello` (every `hello_every`, with the last sequence number sent, so a lost
//! tail is noticed), `ResyncRequest` (sent to where the peer's datagrams come from) and
//! `ResyncDone` (ends a full resync).
//!
//! Sequence numbers count per destination: each unicast peer, or the multicast group,
//! is one stream; unicast to an address outside the configured peers (a requester's
//! source address) is a separate "direct" stream (flag bit). A receiver keeps, per
//! sender node, its epoch and a 64-message sliding window per stream ([`replay`]):
//! datagrams from an older epoch, or with a sequence number already seen or older than
//! the window, are refused; a newer epoch (the sender restarted) replaces the session.
//! A hole in a stream that stays open for [`replay::REORDER_GRACE`] (250 ms), or slides
//! out of the window, is a loss: the receiver sends a `ResyncRequest` (at most once per
//! 2 s per peer, again if the resync makes no progress for 5 s), and the sender
//! answers with [`SyncEffect::DumpWanted`] `{ to: Some(requester) }`, whose
//! [`SyncCore::push_full`] goes out sequence-numbered like everything else, ending with
//! `ResyncDone`. At start, [`SyncCore::start`] asks every peer for a full resync.
//!
//! Refused datagrams (and why: truncated, oversized, bad magic, unknown version or
//! kind, bad tag, malformed payload, old epoch, replay, stale sequence, addressed to
//! another node) are counted in the view; nothing of them is ever installed. Our own
//! datagrams coming back (multicast loopback) are ignored.
//!
//! A node's id must stay the same across its restarts (e.g. a hash of its name): a
//! restart is told by its newer epoch, which replaces the old session and makes the
//! old epoch's datagrams refusable. A new id at every start would leave a dead session
//! per restart in the view, and a replay of an evicted session's datagrams would look
//! like a new node.
//!
//! # Budgets
//!
//! - Datagrams are at most [`wire::MAX_DATAGRAM`] = 1400 bytes: 39 header + 16 tag, so
//!   1345 bytes of payload.
//! - An entry whose client, VIP and backend are IPv4 takes 22 bytes: 61 per datagram
//!   (1399 bytes). All-IPv6: 58 bytes, 23 per datagram. A dirty slot takes 9 bytes
//!   (IPv4 backend): 147 per datagram.
//! - At most `max_messages_per_sec` datagrams per second (default 2000), all
//!   destinations together, as a token bucket holding a tenth of a second (at least
//!   one datagram per configured peer). At the default: at most 2.8 MB/s of UDP payload
//!   (about 23 Mbit/s on the wire), i.e. up to 122,000 IPv4 (46,000 IPv6) entries per
//!   second. With N unicast peers, a batch costs N datagrams, so each peer gets 1/N of
//!   that; a multicast group costs one.
//! - At most `max_queue` entries and dirty slots (default 65536, about 1075 IPv4
//!   datagrams: half a second of the default budget) wait to be sent, live entries and
//!   full resyncs together. Live entries beyond it are dropped, counted, and a full
//!   resync to every peer is offered once the queue has drained. A full resync is held
//!   in the same bound and sent over as many ticks as the budget needs (a 60,000-entry
//!   dump takes about half a second at the default rate); what does not fit is dropped,
//!   counted and offered again once the queue drains, except a dump larger than
//!   `max_queue` on its own, which is sent truncated: size `max_queue` to the
//!   connection table for complete resyncs.
//!
//! Control messages (hellos, resync requests) go before data within the same budget.
//!
//! # Driving it (the shell's part)
//!
//! Bind one UDP socket to the sync port (sending from it, so peers see the configured
//! address; join the group for multicast), create the core with the node's epoch, call
//! [`SyncCore::start`] once, [`SyncCore::tick`] about every [`TICK_EVERY`], and
//! [`SyncCore::receive`] for every datagram; hand new connection-table entries to
//! [`SyncCore::push`]. Carry out every [`SyncEffect`]: send, install, or answer
//! `DumpWanted` with [`SyncCore::push_full`]. `peers` should not list this node's own
//! address (its datagrams would come back, be ignored, and cost budget).

#![deny(missing_docs)]

pub mod auth;
pub mod budget;
mod core;
pub mod entry;
pub mod peer;
pub mod queue;
pub mod reject;
pub mod replay;
pub mod settings;
pub mod wire;

pub use crate::core::{SyncCore, SyncEffect, MAX_DIRECT_STREAMS, MAX_PEERS, TICK_EVERY};
pub use entry::{DirtySlots, FlowEntry};
pub use reject::Reject;
pub use settings::{
    node_id, Settings, SyncError, DEFAULT_HELLO_EVERY, DEFAULT_MAX_MESSAGES_PER_SEC,
    DEFAULT_MAX_QUEUE, DEFAULT_PEER_DEAD_AFTER, MIN_KEY_LEN,
};
pub use wire::MAX_DATAGRAM;
