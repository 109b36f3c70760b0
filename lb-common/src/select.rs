//! Where a flow goes: the one backend-selection routine, shared by the XDP program
//! (per packet) and the controller (`lbctl explain`, differential tests).
//!
//! The rule, per Maglev slot:
//! - clean slot: the slot's backend. The connection table is not consulted; nothing
//!   since the last settle could have moved a flow away from it.
//! - dirty slot, TCP SYN: a new connection. It takes the slot's current backend and is
//!   recorded, overriding any stale entry for a reused 5-tuple.
//! - dirty slot, tracked flow: keeps its backend while that backend keeps flows (up or
//!   draining, same generation); otherwise it is re-balanced (IPVS
//!   `expire_nodest_conn=1`).
//! - dirty slot, untracked flow (the *untracked rule*): it predates the change, so it
//!   stays on the slot's previous backend if that one keeps flows, else takes the
//!   current one; either way it is recorded from now on.
//!
//! Recording can be refused: the flood guard caps how many entries each CPU creates
//! per second, and a full table can refuse an insert. A flow that cannot be recorded
//! is routed by the untracked rule instead (a SYN on a dirty slot then goes to the
//! slot's previous backend), because that is where its next packets, finding no entry,
//! will go too: a refused insert never splits a flow. So a flood can neither churn
//! real entries out of the table faster than the guard allows nor break a flow it
//! kept from being recorded.

use crate::{
    hash::{flow_hash, reduce},
    maps::{
        Backend, BigChunk, BigChunkKey, ConnKey, ConnValue, FragKey, ServiceKey, ServiceTable,
        TableEntry, BACKEND_UP, BIG_CHUNK_SLOTS, CONN_F_FIN, MAX_TABLE_SIZE, NO_BACKEND,
        SVC_F_BIG_TABLE, SVC_F_SOURCE_HASH,
    },
};

/// The service keys to try for an inbound flow, in order: the exact (VIP, port,
/// protocol), then the whole-VIP service (port 0).
#[inline(always)]
pub fn service_keys(flow: &ConnKey) -> (ServiceKey, ServiceKey) {
    let exact = ServiceKey {
        vip: flow.dst,
        port: flow.dport,
        proto: flow.proto,
        _pad: 0,
    };
    (exact, ServiceKey { port: 0, ..exact })
}

/// Whether `flow` is addressed to service `key`: same VIP and protocol, and the same
/// port unless the service takes every port (port 0). A flow to a port that has its
/// own service matches the whole-VIP service too; [`service_keys`] gives the order the
/// lookup tries them in.
#[inline(always)]
pub fn covers(key: &ServiceKey, flow: &ConnKey) -> bool {
    flow.dst == key.vip && flow.proto == key.proto && (key.port == 0 || flow.dport == key.port)
}

/// The bit of the VIP filter (`names::VIP_FILTER`, [`VIP_FILTER_WORDS`](crate::maps::VIP_FILTER_WORDS) words) that
/// stands for (`vip`, `proto`). Any service on that VIP and protocol sets it; a packet
/// whose bit is clear has no service, so the data plane passes it after this one
/// array read instead of two hash lookups. A multiplicative hash of the address words
/// as loaded (the controller computes it from the same words, on the same machine).
#[inline(always)]
pub fn vip_filter_bit(vip: &[u32; 4], proto: u8) -> u32 {
    let x = vip[0] ^ vip[1] ^ vip[2] ^ vip[3] ^ proto as u32;
    x.wrapping_mul(0x9e37_79b1) >> 16
}

/// The fragment-route key of a fragment's flow.
#[inline(always)]
pub fn frag_key(flow: &ConnKey) -> FragKey {
    FragKey {
        vip: flow.dst,
        proto: flow.proto,
        _pad: 0,
        _pad2: 0,
    }
}

/// Map access the selection needs. The XDP program implements it over its maps, the
/// controller over map snapshots (read-only for `explain`).
pub trait FlowState {
    /// The backend at `index`, if the index is within the array.
    fn backend(&self, index: u16) -> Option<&Backend>;
    /// The connection-table entry for `key`.
    fn conn(&self, key: &ConnKey) -> Option<ConnValue>;
    /// Record `value` for `key`: an existing entry is overwritten (no new entry, so no
    /// flood-guard charge: a retransmitted SYN, a reused 5-tuple, a re-balanced flow
    /// keep one entry); a new one is created if the flood guard permits. `absent`: the
    /// caller just looked the key up and found nothing (no second lookup).
    fn remember(&self, key: &ConnKey, value: &ConnValue, absent: bool) -> Recorded;
    /// Refresh the `last_seen_ns` of `key`'s existing entry to `now_ns`, in place, and
    /// with `fin` mark it closing ([`CONN_F_FIN`]).
    fn touch(&self, key: &ConnKey, now_ns: u64, fin: bool);
    /// Monotonic nanoseconds, for `last_seen_ns`.
    fn now_ns(&self) -> u64;
    /// A chunk of a big table, for a service flagged [`SVC_F_BIG_TABLE`] (its table is
    /// above `MAX_TABLE_SIZE` slots). Without it the slot has no backend.
    fn big_chunk(&self, key: &BigChunkKey) -> Option<&BigChunk> {
        let _ = key;
        None
    }
}

/// What [`FlowState::remember`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The entry is in the table.
    Yes,
    /// The flood guard refused it: this CPU's budget of new entries for this second
    /// is spent.
    Guarded,
    /// The table refused it.
    Failed,
}

/// How the backend was chosen (what `lbctl explain` prints, and what the data plane counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Clean slot: the Maglev answer, no connection-table lookup.
    CleanSlot,
    /// Dirty slot, TCP SYN: the slot's current backend; recorded.
    NewConnection,
    /// Dirty slot: the connection table named a backend that still keeps flows.
    Tracked,
    /// Dirty slot, untracked: the slot's previous backend, which still keeps flows.
    PreChange,
    /// Dirty slot, untracked, previous backend gone: the slot's current backend.
    Current,
    /// Dirty slot: the tracked backend was down or replaced; re-balanced to the current one.
    Rebalanced,
}

/// The outcome of [`choose`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Backend index.
    pub backend: u16,
    /// Maglev slot the flow hashed to.
    pub slot: u32,
    /// Why.
    pub how: How,
    /// The selection tried to record the flow and the table refused.
    pub insert_failed: bool,
}

/// Refresh a tracked entry's `last_seen_ns` at most this often.
pub const TOUCH_INTERVAL_NS: u64 = 1_000_000_000;

/// The hash that picks the slot: the 5-tuple, or the client address alone for
/// source-hash services. Fragments arrive with zero ports in `key`.
#[inline(always)]
pub fn slot_hash(seed: u32, flags: u32, key: &ConnKey) -> u32 {
    if flags & SVC_F_SOURCE_HASH != 0 {
        flow_hash(seed, &key.src, &[0; 4], 0, 0, key.proto)
    } else {
        flow_hash(seed, &key.src, &key.dst, key.sport, key.dport, key.proto)
    }
}

/// Choose the backend for the flow `key` (hash `hash`) of service `table`.
/// `syn` = TCP SYN without ACK; `fin` = TCP FIN or RST (a tracked flow's entry is then
/// marked closing). `None` = no usable backend: drop. The chosen backend's entry comes
/// with the choice, so the data plane reads it once.
#[inline(always)]
pub fn choose<'a, S: FlowState>(
    state: &'a S,
    table: &ServiceTable,
    hash: u32,
    key: &ConnKey,
    syn: bool,
    fin: bool,
) -> Option<(Choice, &'a Backend)> {
    let (slot, entry) = if table.flags & SVC_F_BIG_TABLE != 0 {
        big_slot(state, table, hash)?
    } else {
        let len = table.len;
        if len == 0 {
            return None;
        }
        let slot = reduce(hash, len);
        // `slot < len <= MAX_TABLE_SIZE`; the clamp states it in a form the BPF verifier
        // follows (a compare on the register that indexes), with no branch to a failure.
        (slot, table.entries[(slot as usize).min(MAX_TABLE_SIZE - 1)])
    };
    let current = entry.backend;

    if !entry.is_dirty() {
        let b = state.backend(current)?;
        if !b.keeps_flows() {
            return None;
        }
        return Some((
            Choice {
                backend: current,
                slot,
                how: How::CleanSlot,
                insert_failed: false,
            },
            b,
        ));
    }

    // The untracked rule, and where a flow that cannot be recorded goes.
    let untracked = || match state.backend(entry.prev) {
        Some(b) if b.keeps_flows() => (entry.prev, How::PreChange),
        _ => (current, How::Current),
    };
    let (pick, how) = if syn {
        (current, How::NewConnection)
    } else {
        match state.conn(key) {
            Some(tracked) => match state.backend(tracked.backend) {
                Some(b) if tracked.backend < NO_BACKEND && tracked.follows(b) => {
                    let now = state.now_ns();
                    let closing = fin && tracked.flags & CONN_F_FIN == 0;
                    if closing || now.wrapping_sub(tracked.last_seen_ns) > TOUCH_INTERVAL_NS {
                        state.touch(key, now, fin);
                    }
                    return Some((
                        Choice {
                            backend: tracked.backend,
                            slot,
                            how: How::Tracked,
                            insert_failed: false,
                        },
                        b,
                    ));
                }
                _ => (current, How::Rebalanced),
            },
            None => untracked(),
        }
    };

    let b = usable(state, pick, how)?;
    let value = ConnValue {
        backend: pick,
        flags: if fin { CONN_F_FIN } else { 0 },
        gen: b.gen,
        last_seen_ns: state.now_ns(),
    };
    let absent = matches!(how, How::PreChange | How::Current);
    let recorded = state.remember(key, &value, absent);
    let choice = Choice {
        backend: pick,
        slot,
        how,
        insert_failed: recorded == Recorded::Failed,
    };
    if recorded == Recorded::Yes || absent {
        return Some((choice, b));
    }
    // Not recorded (no entry existed for the flow, and none was made): its next
    // packets will find no entry either, so this one goes where they will.
    let (pick, how) = untracked();
    let b = usable(state, pick, how)?;
    Some((
        Choice {
            backend: pick,
            how,
            ..choice
        },
        b,
    ))
}

/// The slot of `hash` in a big table and its entry, from the chunk of the generation
/// the service's value names (so one update of the value switches the table whole).
/// `None` for an empty table or a missing chunk.
#[inline(always)]
fn big_slot<S: FlowState>(state: &S, table: &ServiceTable, hash: u32) -> Option<(u32, TableEntry)> {
    let len = table.len;
    if len == 0 {
        return None;
    }
    let slot = reduce(hash, len);
    let chunk = slot / BIG_CHUNK_SLOTS as u32;
    let key = BigChunkKey {
        id: table.id,
        gen: table.big_gen as u16,
        chunk: chunk as u16,
    };
    let at = (slot - chunk * BIG_CHUNK_SLOTS as u32) as usize;
    // `at < BIG_CHUNK_SLOTS`, stated for the verifier as above.
    let entry = state.big_chunk(&key)?.entries[at.min(BIG_CHUNK_SLOTS - 1)];
    Some((slot, entry))
}

/// The backend at `index` if it may take a flow chosen `how`: a pre-change flow may
/// stay on a draining backend, anything else needs one that is up.
#[inline(always)]
fn usable<S: FlowState>(state: &S, index: u16, how: How) -> Option<&Backend> {
    let b = state.backend(index)?;
    let ok = if how == How::PreChange {
        b.keeps_flows()
    } else {
        b.state == BACKEND_UP
    };
    ok.then_some(b)
}
