//! What waits to be sent, within one memory bound: new entries and settled slots for
//! every peer (the live queue) and full-resync dumps (each to one peer or to all), taken a datagram's worth
//! at a time, alternating between the two so neither starves the other.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::entry::FlowEntry;
use crate::wire::{self, DirtyPart, Kind, Payload, ENTRIES_FIXED, MAX_PAYLOAD};

/// Where the next datagram's worth comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The live queue (to every peer): settled slots first, then entries.
    Live,
    /// The oldest dump, to one address or (`None`) to every peer.
    Dump(Option<SocketAddr>),
}

/// One datagram's payload, ready to be sealed for each destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Its kind.
    pub kind: Kind,
    /// Encoded payload (at most [`MAX_PAYLOAD`] bytes).
    pub payload: Vec<u8>,
    /// Entries it carries.
    pub entries: usize,
    /// Part of a dump.
    pub dump: bool,
}

/// What a dump admission kept and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Entries dropped for lack of room.
    pub entries_dropped: usize,
    /// Dirty slots dropped for lack of room (whole sets).
    pub slots_dropped: usize,
}

impl Admission {
    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.entries_dropped > 0 || self.slots_dropped > 0
    }
}

/// A full resync on its way to one peer or all.
#[derive(Debug)]
struct Dump {
    to: Option<SocketAddr>,
    dirty: VecDeque<DirtyPart>,
    entries: VecDeque<FlowEntry>,
    total_entries: u64,
    dirty_sets: u32,
    nonce: u64,
}

/// The send queue: at most `max` entries and dirty slots held, live and dumps together.
#[derive(Debug)]
pub struct SendQueue {
    max: usize,
    used: usize,
    live: VecDeque<FlowEntry>,
    settled: VecDeque<DirtyPart>,
    dumps: VecDeque<Dump>,
    dump_turn: bool,
}

impl SendQueue {
    /// An empty queue holding at most `max` entries and dirty slots.
    pub fn new(max: usize) -> Self {
        SendQueue {
            max,
            used: 0,
            live: VecDeque::new(),
            settled: VecDeque::new(),
            dumps: VecDeque::new(),
            dump_turn: false,
        }
    }

    /// Entries and dirty slots held.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether nothing waits (no entry, no dump, not even a dump's closing message).
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.settled.is_empty() && self.dumps.is_empty()
    }

    /// Whether a dump to `to` is queued.
    pub fn has_dump(&self, to: Option<SocketAddr>) -> bool {
        self.dumps.iter().any(|d| d.to == to)
    }

    /// Queues a live entry; false (dropped) when the queue is full.
    pub fn push_live(&mut self, e: FlowEntry) -> bool {
        if self.used >= self.max {
            return false;
        }
        self.used += 1;
        self.live.push_back(e);
        true
    }

    /// Queues one settled set (its parts) for every peer; false (dropped) when it does
    /// not fit whole.
    pub fn push_settled(&mut self, parts: Vec<DirtyPart>) -> bool {
        let slots: usize = parts.iter().map(|p| p.slots.slots.len()).sum();
        if self.used + slots > self.max {
            return false;
        }
        self.used += slots;
        self.settled.extend(parts);
        true
    }

    /// Queues a dump to `to` (replacing one queued to the same destination): dirty sets
    /// first, whole, while they fit, then as many entries as fit.
    pub fn push_dump(
        &mut self,
        to: Option<SocketAddr>,
        mut entries: Vec<FlowEntry>,
        dirty: Vec<Vec<DirtyPart>>,
        nonce: u64,
    ) -> Admission {
        if let Some(i) = self.dumps.iter().position(|d| d.to == to) {
            if let Some(old) = self.dumps.remove(i) {
                self.used -= old.entries.len();
                self.used -= old.dirty.iter().map(|p| p.slots.slots.len()).sum::<usize>();
            }
        }
        let mut adm = Admission::default();
        let mut parts = VecDeque::new();
        // The dump's end announces what the full state holds, not what fit: a receiver
        // that got less knows its resync is not complete.
        let sets = u32::try_from(dirty.len()).unwrap_or(u32::MAX);
        let total_entries = entries.len() as u64;
        for set in dirty {
            let slots: usize = set.iter().map(|p| p.slots.slots.len()).sum();
            if self.used + slots > self.max {
                adm.slots_dropped += slots;
                continue;
            }
            self.used += slots;
            parts.extend(set);
        }
        let room = self.max - self.used;
        if entries.len() > room {
            adm.entries_dropped = entries.len() - room;
            entries.truncate(room);
        }
        self.used += entries.len();
        self.dumps.push_back(Dump {
            to,
            dirty: parts,
            total_entries,
            entries: entries.into(),
            dirty_sets: sets,
            nonce,
        });
        adm
    }

    /// Where the next datagram's worth would come from.
    pub fn peek(&self) -> Option<Source> {
        let dump = self.dumps.front().map(|d| Source::Dump(d.to));
        if self.live.is_empty() && self.settled.is_empty() {
            return dump;
        }
        match dump {
            Some(d) if self.dump_turn => Some(d),
            _ => Some(Source::Live),
        }
    }

    /// Takes the next datagram's worth from `source` (as [`SendQueue::peek`] said).
    pub fn pop(&mut self, source: Source) -> Option<Batch> {
        match source {
            Source::Live => {
                if let Some(part) = self.settled.pop_front() {
                    self.used -= part.slots.slots.len();
                    self.dump_turn = true;
                    return Some(Batch {
                        kind: Kind::Settled,
                        payload: Payload::Settled(part).encode(),
                        entries: 0,
                        dump: false,
                    });
                }
                let (payload, n) = take_entries(&mut self.live);
                if n == 0 {
                    return None;
                }
                self.used -= n;
                self.dump_turn = true;
                Some(Batch {
                    kind: Kind::Entries,
                    payload,
                    entries: n,
                    dump: false,
                })
            }
            Source::Dump(_) => {
                self.dump_turn = false;
                let dump = self.dumps.front_mut()?;
                if let Some(part) = dump.dirty.pop_front() {
                    self.used -= part.slots.slots.len();
                    return Some(Batch {
                        kind: Kind::Dirty,
                        payload: Payload::Dirty(part).encode(),
                        entries: 0,
                        dump: true,
                    });
                }
                if !dump.entries.is_empty() {
                    let (payload, n) = take_entries(&mut dump.entries);
                    self.used -= n;
                    return Some(Batch {
                        kind: Kind::Entries,
                        payload,
                        entries: n,
                        dump: true,
                    });
                }
                let done = self.dumps.pop_front()?;
                Some(Batch {
                    kind: Kind::ResyncDone,
                    payload: Payload::ResyncDone {
                        entries: done.total_entries,
                        dirty_sets: done.dirty_sets,
                        nonce: done.nonce,
                    }
                    .encode(),
                    entries: 0,
                    dump: true,
                })
            }
        }
    }
}

/// Encodes entries from the front of `q` while they fit one payload.
fn take_entries(q: &mut VecDeque<FlowEntry>) -> (Vec<u8>, usize) {
    let mut body = Vec::with_capacity(MAX_PAYLOAD);
    body.extend_from_slice(&[0, 0]);
    let mut n: u16 = 0;
    while let Some(e) = q.front() {
        if body.len() + wire::entry_len(e) > MAX_PAYLOAD {
            break;
        }
        wire::put_entry(&mut body, e);
        q.pop_front();
        n += 1;
    }
    debug_assert!(body.len() >= ENTRIES_FIXED);
    body[..2].copy_from_slice(&n.to_be_bytes());
    (body, usize::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn e(i: u32) -> FlowEntry {
        FlowEntry {
            client: IpAddr::V4(Ipv4Addr::from(i)),
            client_port: 1,
            vip: "192.0.2.1".parse().unwrap(),
            vip_port: 80,
            proto: 6,
            backend: "10.0.0.1".parse().unwrap(),
            idle_ms: 0,
        }
    }

    #[test]
    fn live_bound_and_batches() {
        let mut q = SendQueue::new(100);
        for i in 0..150 {
            assert_eq!(q.push_live(e(i)), i < 100);
        }
        assert_eq!(q.used(), 100);
        let b = q.pop(Source::Live).unwrap();
        assert_eq!(b.entries, wire::ENTRIES_PER_DATAGRAM_V4);
        assert_eq!(q.used(), 100 - wire::ENTRIES_PER_DATAGRAM_V4);
        let b = q.pop(Source::Live).unwrap();
        assert_eq!(b.entries, 100 - wire::ENTRIES_PER_DATAGRAM_V4);
        assert!(q.is_empty());
        assert_eq!(q.peek(), None);
    }

    #[test]
    fn dump_truncated_to_room_then_done() {
        let mut q = SendQueue::new(100);
        for i in 0..40 {
            q.push_live(e(i));
        }
        let adm = q.push_dump(None, (0..100).map(e).collect(), vec![], 0);
        assert_eq!(adm.entries_dropped, 40);
        assert_eq!(q.used(), 100);
        // Alternates live and dump.
        assert_eq!(q.peek(), Some(Source::Live));
        q.pop(Source::Live).unwrap();
        assert_eq!(q.peek(), Some(Source::Dump(None)));
        let b = q.pop(Source::Dump(None)).unwrap();
        assert_eq!((b.kind, b.entries, b.dump), (Kind::Entries, 60, true));
        let b = q.pop(Source::Dump(None)).unwrap();
        assert_eq!(b.kind, Kind::ResyncDone);
        assert_eq!(q.used(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn dump_to_same_destination_replaces() {
        let mut q = SendQueue::new(100);
        let to: SocketAddr = "10.0.0.9:7000".parse().unwrap();
        q.push_dump(Some(to), (0..50).map(e).collect(), vec![], 0);
        q.push_dump(Some(to), (0..70).map(e).collect(), vec![], 0);
        assert_eq!(q.used(), 70);
        assert!(q.has_dump(Some(to)));
        assert!(!q.has_dump(None));
    }
}
