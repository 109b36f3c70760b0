//! One peer node's session as a receiver sees it: its epoch, where it speaks from, the
//! replay windows of its two streams, whether and when to ask it for a full resync,
//! its dirty-slot sets being reassembled, and its counters.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::entry::DirtySlots;
use crate::replay::Window;
use crate::wire::DirtyPart;

/// Least time between two resync requests to one peer.
pub const RESYNC_MIN_INTERVAL: Duration = Duration::from_secs(2);
/// A requested resync that makes no progress (no dump datagram, no end) for this long
/// is asked for again.
pub const RESYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// Incomplete dirty-slot sets are forgotten after this long.
pub const PARTIAL_TTL: Duration = Duration::from_secs(30);
/// Incomplete dirty-slot sets held per peer, at most.
pub const MAX_PARTIAL_SETS: usize = 64;
/// Dirty slots held in incomplete sets per peer, at most.
pub const MAX_PARTIAL_SLOTS: usize = 1 << 20;

/// When to ask a peer for a full resync.
#[derive(Clone, Debug, Default)]
pub struct ResyncState {
    /// A loss was seen: a request is due (when the rate limit allows).
    pub wanted: bool,
    /// When the last request went out.
    pub last_request: Option<Instant>,
    /// A resync is awaited: when it last made progress (request, dump datagram).
    pub awaiting: Option<Instant>,
    /// Entries that arrived in dump datagrams since the last request.
    pub got_entries: u64,
    /// Dirty sets completed from dump datagrams since the last request.
    pub got_sets: u32,
}

impl ResyncState {
    /// Whether a request should go out now (and records that it does).
    pub fn due(&mut self, now: Instant) -> bool {
        if let Some(t) = self.awaiting {
            if now.saturating_duration_since(t) >= RESYNC_TIMEOUT {
                self.awaiting = None;
                self.wanted = true;
            }
        }
        if !self.wanted {
            return false;
        }
        if let Some(t) = self.last_request {
            if now.saturating_duration_since(t) < RESYNC_MIN_INTERVAL {
                return false;
            }
        }
        self.wanted = false;
        self.last_request = Some(now);
        self.awaiting = Some(now);
        self.got_entries = 0;
        self.got_sets = 0;
        true
    }

    /// A dump's end announced `entries` and `dirty_sets`: true if all of it arrived
    /// (the resync is complete); else another request is due. Either way the counts
    /// start over.
    /// Only the answer to this session's request counts: `nonce` must be `ours` (our
    /// epoch, which the request carried).
    pub fn done(&mut self, entries: u64, dirty_sets: u32, nonce: u64, ours: u64) -> bool {
        if nonce != ours {
            // Not an answer to our request (a dump nobody asked for, or a replay from
            // before we restarted): its data counts, its end does not.
            return false;
        }
        let complete = !self.wanted && self.got_entries >= entries && self.got_sets >= dirty_sets;
        self.got_entries = 0;
        self.got_sets = 0;
        self.awaiting = None;
        if !complete {
            self.wanted = true;
        }
        complete
    }
}

/// A dirty-slot set whose parts are arriving.
#[derive(Clone, Debug)]
struct Partial {
    started: Instant,
    /// Settled or dirty, and the service.
    head: (bool, IpAddr, u16, u8, u32),
    parts: Vec<Option<Vec<(u32, IpAddr)>>>,
    have: usize,
    slots: usize,
}

/// Dirty-slot (and settled-slot) sets being reassembled, by set id.
#[derive(Clone, Debug, Default)]
pub struct Reassembly {
    sets: BTreeMap<u32, Partial>,
    slots: usize,
}

impl Reassembly {
    /// Adds a part of a dirty set (`settled`: of a settled set); returns the whole set
    /// once every part is there.
    pub fn add(&mut self, p: DirtyPart, settled: bool, now: Instant) -> Option<DirtySlots> {
        if p.parts <= 1 {
            return Some(p.slots);
        }
        let head = (
            settled,
            p.slots.vip,
            p.slots.port,
            p.slots.proto,
            p.slots.table_len,
        );
        let fresh = match self.sets.get(&p.set_id) {
            Some(s) => s.head != head || s.parts.len() != usize::from(p.parts),
            None => true,
        };
        if fresh {
            self.remove(p.set_id);
            while self.sets.len() >= MAX_PARTIAL_SETS {
                self.evict_oldest();
            }
            self.sets.insert(
                p.set_id,
                Partial {
                    started: now,
                    head,
                    parts: vec![None; usize::from(p.parts)],
                    have: 0,
                    slots: 0,
                },
            );
        }
        let n = p.slots.slots.len();
        while self.slots + n > MAX_PARTIAL_SLOTS && self.sets.len() > 1 {
            if !self.evict_oldest_except(p.set_id) {
                break;
            }
        }
        if self.slots + n > MAX_PARTIAL_SLOTS {
            self.remove(p.set_id);
            return None;
        }
        let set = self.sets.get_mut(&p.set_id)?;
        let slot = set.parts.get_mut(usize::from(p.part))?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(p.slots.slots);
        set.have += 1;
        set.slots += n;
        self.slots += n;
        if set.have < set.parts.len() {
            return None;
        }
        let set = self.sets.remove(&p.set_id)?;
        self.slots -= set.slots;
        let (_, vip, port, proto, table_len) = set.head;
        Some(DirtySlots {
            vip,
            port,
            proto,
            table_len,
            slots: set.parts.into_iter().flatten().flatten().collect(),
        })
    }

    /// Forgets sets older than [`PARTIAL_TTL`].
    pub fn expire(&mut self, now: Instant) {
        let old: Vec<u32> = self
            .sets
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.started) >= PARTIAL_TTL)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.remove(id);
        }
    }

    /// Slots held.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn remove(&mut self, id: u32) {
        if let Some(s) = self.sets.remove(&id) {
            self.slots -= s.slots;
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(id) = self
            .sets
            .iter()
            .min_by_key(|(_, s)| s.started)
            .map(|(i, _)| *i)
        {
            self.remove(id);
        }
    }

    fn evict_oldest_except(&mut self, keep: u32) -> bool {
        let victim = self
            .sets
            .iter()
            .filter(|(id, _)| **id != keep)
            .min_by_key(|(_, s)| s.started)
            .map(|(i, _)| *i);
        match victim {
            Some(id) => {
                self.remove(id);
                true
            }
            None => false,
        }
    }
}

/// One peer node's session (one epoch), and its counters (kept across its restarts).
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its node id.
    pub node_id: u64,
    /// Its current epoch.
    pub epoch: u64,
    /// Where its last valid datagram came from (resync requests go there).
    pub addr: SocketAddr,
    /// When its last valid datagram came.
    pub last_seen: Instant,
    /// Replay windows: 0 = its stream to its configured peers, 1 = its direct stream
    /// to us.
    pub streams: [Window; 2],
    /// Resync requests to it.
    pub resync: ResyncState,
    /// Its dirty-slot sets being reassembled.
    pub dirty: Reassembly,
    /// Entries accepted from it.
    pub entries_received: u64,
    /// Datagrams accepted from it.
    pub datagrams_received: u64,
    /// Resyncs we asked it for.
    pub resyncs_requested: u64,
    /// Resyncs it asked us for, answered.
    pub resyncs_served: u64,
    /// Full resyncs from it that ended.
    pub resyncs_received: u64,
    /// Times a newer epoch replaced its session.
    pub restarts: u64,
}

impl Peer {
    /// A fresh session.
    pub fn new(node_id: u64, epoch: u64, addr: SocketAddr, now: Instant) -> Self {
        Peer {
            node_id,
            epoch,
            addr,
            last_seen: now,
            streams: [Window::new(), Window::new()],
            resync: ResyncState::default(),
            dirty: Reassembly::default(),
            entries_received: 0,
            datagrams_received: 0,
            resyncs_requested: 0,
            resyncs_served: 0,
            resyncs_received: 0,
            restarts: 0,
        }
    }

    /// The node restarted: a fresh session for `epoch`, counters kept.
    pub fn restart(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.streams = [Window::new(), Window::new()];
        self.resync = ResyncState::default();
        self.dirty = Reassembly::default();
        self.restarts += 1;
    }

    /// Whether it was heard from within `dead_after`.
    pub fn alive(&self, now: Instant, dead_after: Duration) -> bool {
        now.saturating_duration_since(self.last_seen) < dead_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(set_id: u32, part: u16, parts: u16, slots: Vec<(u32, IpAddr)>) -> DirtyPart {
        DirtyPart {
            set_id,
            part,
            parts,
            slots: DirtySlots {
                vip: "192.0.2.1".parse().unwrap(),
                port: 80,
                proto: 6,
                table_len: 100,
                slots,
            },
        }
    }

    #[test]
    fn reassembles_out_of_order_once() {
        let t = Instant::now();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let mut r = Reassembly::default();
        assert!(r.add(part(1, 2, 3, vec![(5, b)]), false, t).is_none());
        assert!(r.add(part(1, 0, 3, vec![(1, b)]), false, t).is_none());
        assert!(r.add(part(1, 0, 3, vec![(1, b)]), false, t).is_none());
        // A settled set with the same id does not mix in.
        assert!(r.add(part(1, 1, 3, vec![(7, b)]), true, t).is_none());
        assert!(r.add(part(1, 0, 3, vec![(1, b)]), false, t).is_none());
        assert!(r.add(part(1, 2, 3, vec![(5, b)]), false, t).is_none());
        let d = r.add(part(1, 1, 3, vec![(3, b)]), false, t).unwrap();
        assert_eq!(d.slots, vec![(1, b), (3, b), (5, b)]);
        assert_eq!(r.slots(), 0);
    }

    #[test]
    fn incomplete_sets_expire_and_are_bounded() {
        let t = Instant::now();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let mut r = Reassembly::default();
        for id in 0..(MAX_PARTIAL_SETS as u32 + 10) {
            r.add(part(id, 0, 2, vec![(1, b)]), false, t);
        }
        assert_eq!(r.sets.len(), MAX_PARTIAL_SETS);
        r.expire(t + PARTIAL_TTL);
        assert_eq!(r.sets.len(), 0);
        assert_eq!(r.slots(), 0);
    }

    #[test]
    fn resync_rate_limit_and_timeout() {
        let t = Instant::now();
        let mut s = ResyncState::default();
        assert!(!s.due(t));
        s.wanted = true;
        assert!(s.due(t));
        s.wanted = true;
        assert!(!s.due(t + Duration::from_secs(1)));
        assert!(s.due(t + RESYNC_MIN_INTERVAL));
        // No progress: asked again after the timeout.
        let t2 = t + RESYNC_MIN_INTERVAL;
        assert!(!s.due(t2 + RESYNC_TIMEOUT - Duration::from_millis(1)));
        assert!(s.due(t2 + RESYNC_TIMEOUT));
    }
}
