//! The flow-sync state machine ([`SyncCore`]): datagrams and the clock in, [`SyncEffect`]s
//! out. It owns the send queue and budget, the per-destination sequence numbers, and
//! every peer session; it never touches a socket, a map or the system clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lb_api::view::{SyncPeerView, SyncView};

use crate::auth::Key;
use crate::budget::TokenBucket;
use crate::entry::{DirtySlots, FlowEntry};
use crate::peer::{Peer, RESYNC_TIMEOUT};
use crate::queue::{SendQueue, Source};
use crate::reject::Reject;
use crate::replay::{check_epoch, EpochCheck, Window};
use crate::settings::{Settings, SyncError};
use crate::wire::{self, Header, Kind, Payload, FLAG_DIRECT, FLAG_DUMP};

/// Peer sessions held at most (the longest-silent one makes room for a new node).
pub const MAX_PEERS: usize = 1024;
/// Direct streams (unicast destinations outside the configured peers, e.g. a
/// requester's source address) held at most; resync requests from further new
/// addresses are refused ([`Reject::TooManyStreams`]).
pub const MAX_DIRECT_STREAMS: usize = 1024;
/// How often the shell should call [`SyncCore::tick`] (finer is fine; coarser makes
/// sends burstier and loss detection later).
pub const TICK_EVERY: Duration = Duration::from_millis(10);

/// What the shell must do after a call into [`SyncCore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncEffect {
    /// Send `datagram` to `to` over UDP.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The datagram (at most [`wire::MAX_DATAGRAM`] bytes).
        datagram: Vec<u8>,
    },
    /// Authenticated, fresh entries from a peer: install them in the connection table.
    Install(Vec<FlowEntry>),
    /// Authenticated, complete dirty slots of one service from a peer: install them.
    InstallDirty(DirtySlots),
    /// Authenticated, complete slots of one service that settled on a peer (no longer
    /// dirty there): settle them here too.
    InstallSettled(DirtySlots),
    /// A peer asked for everything (its restart, or it missed messages), or our own
    /// queue overflowed (`to: None`): read the maps and call [`SyncCore::push_full`].
    DumpWanted {
        /// The requester, or `None` for every peer.
        to: Option<SocketAddr>,
    },
}

/// A control message waiting for budget (sent before any data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Hello(SocketAddr),
    ResyncRequest(SocketAddr),
}

/// What a sealed payload is made of.
enum Body<'a> {
    Bytes(&'a [u8]),
    /// A hello: its payload depends on the stream's sequence number.
    Hello,
}

/// Whole-node counters.
#[derive(Clone, Debug, Default)]
struct Totals {
    entries_sent: u64,
    datagrams_sent: u64,
    entries_received: u64,
    entries_dropped: u64,
    resyncs_requested: u64,
    resyncs_served: u64,
    looped_back: u64,
    dumps_truncated: u64,
    rejected: BTreeMap<Reject, u64>,
}

/// The flow-sync protocol of one node, sans I/O. See the crate docs for the protocol.
#[derive(Debug)]
pub struct SyncCore {
    settings: Settings,
    key: Key,
    epoch: u64,
    bucket: TokenBucket,
    queue: SendQueue,
    control: VecDeque<Control>,
    /// Last sequence number sent, per destination (each its own stream).
    seqs: HashMap<SocketAddr, u64>,
    direct_streams: usize,
    peers: BTreeMap<u64, Peer>,
    /// Node id of the peer last heard from each address (the `dest_node` we put in
    /// datagrams to it).
    node_at: HashMap<SocketAddr, u64>,
    next_hello: Instant,
    started_at: Option<Instant>,
    /// The nonce each requester's resync request carried, for its dump's end.
    dump_nonces: HashMap<SocketAddr, u64>,
    /// Full resyncs to offer ([`SyncEffect::DumpWanted`]) once the queue is empty.
    redump: Vec<Option<SocketAddr>>,
    next_set_id: u32,
    totals: Totals,
}

impl SyncCore {
    /// A node's sync state. `epoch` must grow with every start of the node (the shell
    /// passes unix time in ns): peers refuse anything from an epoch older than one they
    /// have seen.
    pub fn new(settings: Settings, epoch: u64, now: Instant) -> Result<Self, SyncError> {
        settings.validate()?;
        let key = Key::new(&settings.key)?;
        let min_burst = u32::try_from(settings.peers.len()).unwrap_or(u32::MAX);
        Ok(SyncCore {
            bucket: TokenBucket::new(settings.max_messages_per_sec, min_burst, now),
            queue: SendQueue::new(settings.max_queue),
            key,
            epoch,
            control: VecDeque::new(),
            seqs: HashMap::new(),
            direct_streams: 0,
            peers: BTreeMap::new(),
            node_at: HashMap::new(),
            next_hello: now,
            started_at: None,
            redump: Vec::new(),
            dump_nonces: HashMap::new(),
            next_set_id: 0,
            totals: Totals::default(),
            settings,
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This node's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Entries and dirty slots waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.used()
    }

    /// Whether this node holds its peers' state since [`SyncCore::start`]: every peer
    /// heard from within `peer_dead_after` has finished a full resync to us and none is
    /// still awaited; with no live peer, once `peer_dead_after` has passed since start
    /// (nobody to wait for). A VRRP node waits for this before it takes the VIPs.
    pub fn caught_up(&self, now: Instant) -> bool {
        let Some(start) = self.started_at else {
            return false;
        };
        let dead_after = self.settings.peer_dead_after;
        let mut alive = self
            .peers
            .values()
            .filter(|p| now.saturating_duration_since(p.last_seen) < dead_after)
            .peekable();
        if alive.peek().is_none() {
            return now.saturating_duration_since(start) >= dead_after;
        }
        alive.all(|p| p.resyncs_received > 0 && p.resync.awaiting.is_none() && !p.resync.wanted)
    }

    /// Datagrams refused for `reason` so far.
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.totals.rejected.get(&reason).copied().unwrap_or(0)
    }

    /// At startup: asks every peer for a full resync.
    pub fn start(&mut self, now: Instant) -> Vec<SyncEffect> {
        self.started_at = Some(now);
        self.next_hello = now;
        for &to in &self.settings.peers {
            self.control.push_back(Control::ResyncRequest(to));
            self.totals.resyncs_requested += 1;
        }
        let mut out = Vec::new();
        self.flush_control(now, &mut out);
        out
    }

    /// New or refreshed entries, for every peer (ignored when no peer is configured).
    /// Beyond `max_queue` they are dropped and counted, and a full resync to every peer
    /// is offered ([`SyncEffect::DumpWanted`] `{ to: None }`) once the queue has
    /// drained. Entries are not deduplicated: a flow pushed twice is sent twice.
    pub fn push(&mut self, entries: impl IntoIterator<Item = FlowEntry>) {
        if self.settings.peers.is_empty() {
            return;
        }
        let mut dropped = 0u64;
        for e in entries {
            if !self.queue.push_live(e) {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.totals.entries_dropped += dropped;
            self.schedule_redump(None);
        }
    }

    /// Slots of one service that settled here (are no longer dirty), for every peer,
    /// sent before queued entries. A set that does not fit the queue whole is dropped,
    /// counted (its slots in `entries_dropped`), and a full resync to every peer is
    /// offered once the queue has drained, as for [`SyncCore::push`].
    pub fn push_settled(&mut self, settled: DirtySlots) {
        if self.settings.peers.is_empty() {
            return;
        }
        let id = self.next_set_id;
        self.next_set_id = self.next_set_id.wrapping_add(1);
        let total = settled.slots.len();
        let (parts, cut) = wire::split_dirty(settled, id);
        if cut > 0 || !self.queue.push_settled(parts) {
            self.totals.entries_dropped += total as u64;
            self.schedule_redump(None);
        }
    }

    /// The answer to [`SyncEffect::DumpWanted`]: everything, to one peer (`Some`, over
    /// unicast) or to every peer. It replaces a dump to the same destination still
    /// queued, and is sent over as many ticks as the budget needs, dirty slots first,
    /// ending with a `ResyncDone`.
    ///
    /// It is held in the send queue, within `max_queue` (entries and dirty slots
    /// together): what does not fit is dropped and counted (`entries_dropped`; dirty
    /// sets are kept or dropped whole, before entries). If the dump alone would fit an
    /// empty queue, a new [`SyncEffect::DumpWanted`] for the same destination follows
    /// once the queue has drained; a dump larger than `max_queue` itself can never be
    /// sent whole, is sent truncated and is not offered again (raise `max_queue`).
    pub fn push_full(
        &mut self,
        to: Option<SocketAddr>,
        entries: Vec<FlowEntry>,
        dirty: Vec<DirtySlots>,
    ) {
        if to.is_none() && self.settings.peers.is_empty() {
            return;
        }
        let mut wanted = entries.len();
        let mut cut = 0usize;
        let mut sets = Vec::with_capacity(dirty.len());
        for d in dirty {
            wanted += d.slots.len();
            let id = self.next_set_id;
            self.next_set_id = self.next_set_id.wrapping_add(1);
            let (parts, left_out) = wire::split_dirty(d, id);
            cut += left_out;
            sets.push(parts);
        }
        let nonce = to.and_then(|a| self.dump_nonces.remove(&a)).unwrap_or(0);
        let adm = self.queue.push_dump(to, entries, sets, nonce);
        self.totals.entries_dropped += (adm.entries_dropped + adm.slots_dropped + cut) as u64;
        if adm.truncated() || cut > 0 {
            if wanted <= self.settings.max_queue && cut == 0 {
                self.schedule_redump(to);
            } else {
                self.totals.dumps_truncated += 1;
            }
        }
    }

    /// A datagram from `from`. Anything refused is counted by reason and yields nothing
    /// but (maybe) a resync request.
    pub fn receive(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Vec<SyncEffect> {
        let mut out = Vec::new();
        if let Err(reason) = self.accept(from, datagram, now, &mut out) {
            *self.totals.rejected.entry(reason).or_default() += 1;
        }
        if !self.control.is_empty() {
            self.flush_control(now, &mut out);
        }
        out
    }

    /// Time passes: losses become resync requests, hellos go out, queued entries and
    /// dumps are sent within the budget, drained overflows are offered as full resyncs.
    pub fn tick(&mut self, now: Instant) -> Vec<SyncEffect> {
        let mut out = Vec::new();
        let dead_after = self.settings.peer_dead_after;
        for peer in self.peers.values_mut() {
            peer.dirty.expire(now);
            if !peer.alive(now, dead_after) {
                // Its comeback shows as a sequence gap.
                peer.resync.awaiting = None;
                continue;
            }
            let mut lost = false;
            for w in &mut peer.streams {
                lost |= w.poll(now);
            }
            request_if_due(peer, lost, now, &mut self.totals, &mut self.control);
        }
        if now >= self.next_hello {
            for &to in &self.settings.peers {
                if !self.control.contains(&Control::Hello(to)) {
                    self.control.push_back(Control::Hello(to));
                }
            }
            self.next_hello += self.settings.hello_every;
            if self.next_hello <= now {
                self.next_hello = now + self.settings.hello_every;
            }
        }
        if self.queue.is_empty() {
            for to in self.redump.drain(..) {
                out.push(SyncEffect::DumpWanted { to });
            }
        }
        self.flush_control(now, &mut out);
        self.flush_data(&mut out);
        out
    }

    /// Counters and peers, for lbctl and metrics.
    pub fn view(&self, now: Instant) -> SyncView {
        let dead_after = self.settings.peer_dead_after;
        let mut peers: Vec<SyncPeerView> = self
            .peers
            .values()
            .map(|p| SyncPeerView {
                address: p.addr,
                node_id: p.node_id,
                epoch: p.epoch,
                state: if p.alive(now, dead_after) {
                    "alive"
                } else {
                    "dead"
                }
                .to_string(),
                last_seen_secs: Some(now.saturating_duration_since(p.last_seen).as_secs()),
                entries_received: p.entries_received,
                datagrams_received: p.datagrams_received,
                resyncs_requested: p.resyncs_requested,
                resyncs_served: p.resyncs_served,
                restarts: p.restarts,
            })
            .collect();
        for &a in &self.settings.peers {
            if a.ip().is_multicast() || self.peers.values().any(|p| p.addr == a) {
                continue;
            }
            peers.push(SyncPeerView {
                address: a,
                node_id: 0,
                epoch: 0,
                state: "unknown".to_string(),
                last_seen_secs: None,
                entries_received: 0,
                datagrams_received: 0,
                resyncs_requested: 0,
                resyncs_served: 0,
                restarts: 0,
            });
        }
        SyncView {
            enabled: true,
            node_id: self.settings.node_id,
            epoch: self.epoch,
            peers,
            entries_sent: self.totals.entries_sent,
            datagrams_sent: self.totals.datagrams_sent,
            entries_received: self.totals.entries_received,
            entries_dropped: self.totals.entries_dropped,
            rejected: self
                .totals
                .rejected
                .iter()
                .map(|(r, n)| (r.as_str().to_string(), *n))
                .collect(),
            resyncs_requested: self.totals.resyncs_requested,
            resyncs_served: self.totals.resyncs_served,
            queue: self.queue.used(),
            looped_back: self.totals.looped_back,
        }
    }

    /// Full resyncs cut short because they exceeded `max_queue` on their own.
    pub fn dumps_truncated(&self) -> u64 {
        self.totals.dumps_truncated
    }

    fn schedule_redump(&mut self, to: Option<SocketAddr>) {
        if !self.redump.contains(&to) {
            self.redump.push(to);
        }
    }

    /// Checks a datagram and, when it is good, applies it.
    fn accept(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
        out: &mut Vec<SyncEffect>,
    ) -> Result<(), Reject> {
        let (h, body) = wire::open(&self.key, datagram)?;
        if h.node_id == self.settings.node_id {
            self.totals.looped_back += 1;
            return Ok(());
        }
        if h.dest_node != 0 && h.dest_node != self.settings.node_id {
            return Err(Reject::NotForUs);
        }
        let stream = h.stream();
        // Every check before anything changes.
        let fresh_session = match self.peers.get(&h.node_id) {
            Some(p) => match check_epoch(p.epoch, h.epoch)? {
                EpochCheck::Current => {
                    p.streams[stream].check(h.seq)?;
                    false
                }
                EpochCheck::Restarted => true,
            },
            None => true,
        };
        if fresh_session {
            Window::new().check(h.seq)?;
        }
        let payload = Payload::decode(h.kind, body)?;
        if matches!(payload, Payload::ResyncRequest { .. })
            && !self.seqs.contains_key(&from)
            && !self.settings.peers.contains(&from)
            && self.direct_streams >= MAX_DIRECT_STREAMS
        {
            return Err(Reject::TooManyStreams);
        }

        // Accepted.
        if fresh_session {
            self.open_session(&h, from, now);
        }
        let start_recent = self
            .started_at
            .filter(|t| now.saturating_duration_since(*t) < RESYNC_TIMEOUT);
        let Some(peer) = self.peers.get_mut(&h.node_id) else {
            return Ok(());
        };
        if peer.addr != from || self.node_at.get(&from) != Some(&h.node_id) {
            if self.node_at.get(&peer.addr) == Some(&h.node_id) {
                self.node_at.remove(&peer.addr);
            }
            self.node_at.insert(from, h.node_id);
        }
        peer.addr = from;
        peer.last_seen = now;
        peer.datagrams_received += 1;
        let window = &mut peer.streams[stream];
        if !window.touched() && (start_recent.is_some() || peer.resync.awaiting.is_some()) {
            // Joined late while a full resync is on its way: what came before is in it.
            window.baseline(h.seq);
            if let (Some(t), None) = (start_recent, peer.resync.last_request) {
                // Our start-up request counts as this peer's.
                peer.resync.last_request = Some(t);
                peer.resync.awaiting.get_or_insert(t);
            }
        }
        let mut lost = window.accept(h.seq);
        if h.flags & FLAG_DUMP != 0 {
            if let Some(t) = peer.resync.awaiting.as_mut() {
                *t = now;
            }
        }
        match payload {
            Payload::Entries(entries) => {
                let n = entries.len() as u64;
                if h.flags & FLAG_DUMP != 0 {
                    peer.resync.got_entries += n;
                }
                peer.entries_received += n;
                self.totals.entries_received += n;
                if !entries.is_empty() {
                    out.push(SyncEffect::Install(entries));
                }
            }
            Payload::Dirty(part) => {
                if let Some(d) = peer.dirty.add(part, false, now) {
                    if h.flags & FLAG_DUMP != 0 {
                        peer.resync.got_sets += 1;
                    }
                    out.push(SyncEffect::InstallDirty(d));
                }
            }
            Payload::Settled(part) => {
                if let Some(d) = peer.dirty.add(part, true, now) {
                    out.push(SyncEffect::InstallSettled(d));
                }
            }
            Payload::Hello { last_seq } => peer.streams[stream].announce(last_seq),
            Payload::ResyncRequest { nonce } => {
                peer.resyncs_served += 1;
                self.totals.resyncs_served += 1;
                if self.dump_nonces.len() < MAX_PEERS || self.dump_nonces.contains_key(&from) {
                    self.dump_nonces.insert(from, nonce);
                }
                out.push(SyncEffect::DumpWanted { to: Some(from) });
            }
            Payload::ResyncDone {
                entries,
                dirty_sets,
                nonce,
            } => {
                // Complete only if it answers this session's request and every part of
                // it arrived; else ask again.
                if peer.resync.done(entries, dirty_sets, nonce, self.epoch) {
                    peer.resyncs_received += 1;
                }
            }
        }
        lost |= peer.streams[stream].poll(now);
        request_if_due(peer, lost, now, &mut self.totals, &mut self.control);
        Ok(())
    }

    /// A node we did not know, or a restart of one we did.
    fn open_session(&mut self, h: &Header, from: SocketAddr, now: Instant) {
        if let Some(p) = self.peers.get_mut(&h.node_id) {
            p.restart(h.epoch);
            return;
        }
        if self.peers.len() >= MAX_PEERS {
            let oldest = self
                .peers
                .values()
                .min_by_key(|p| p.last_seen)
                .map(|p| p.node_id);
            if let Some(p) = oldest.and_then(|id| self.peers.remove(&id)) {
                if self.node_at.get(&p.addr) == Some(&p.node_id) {
                    self.node_at.remove(&p.addr);
                }
            }
        }
        self.peers
            .insert(h.node_id, Peer::new(h.node_id, h.epoch, from, now));
    }

    /// Seals a datagram for `to` with the next sequence number of its stream (`None`
    /// when a new direct stream would exceed [`MAX_DIRECT_STREAMS`]).
    fn seal_for(
        &mut self,
        to: SocketAddr,
        kind: Kind,
        dump: bool,
        body: Body<'_>,
    ) -> Option<Vec<u8>> {
        let direct = !self.settings.peers.contains(&to);
        if !self.seqs.contains_key(&to) {
            if direct {
                if self.direct_streams >= MAX_DIRECT_STREAMS {
                    return None;
                }
                self.direct_streams += 1;
            }
            self.seqs.insert(to, 0);
        }
        let seq = self.seqs.get_mut(&to)?;
        let last = *seq;
        *seq += 1;
        let hello;
        let payload = match body {
            Body::Bytes(b) => b,
            Body::Hello => {
                hello = Payload::Hello { last_seq: last }.encode();
                &hello[..]
            }
        };
        let header = Header {
            kind,
            flags: if direct { FLAG_DIRECT } else { 0 } | if dump { FLAG_DUMP } else { 0 },
            node_id: self.settings.node_id,
            dest_node: self.node_at.get(&to).copied().unwrap_or(0),
            epoch: self.epoch,
            seq: last + 1,
        };
        let datagram = wire::seal(&self.key, &header, payload)?;
        self.totals.datagrams_sent += 1;
        Some(datagram)
    }

    /// Sends queued control messages (hellos, resync requests) the budget allows.
    fn flush_control(&mut self, now: Instant, out: &mut Vec<SyncEffect>) {
        self.bucket.refill(now);
        // A resync request carries our epoch; the dump's end echoes it.
        let nonce = self.epoch.to_be_bytes();
        while let Some(&c) = self.control.front() {
            if !self.bucket.take(1) {
                break;
            }
            self.control.pop_front();
            let (to, kind, body) = match c {
                Control::Hello(to) => (to, Kind::Hello, Body::Hello),
                Control::ResyncRequest(to) => (to, Kind::ResyncRequest, Body::Bytes(&nonce)),
            };
            if let Some(datagram) = self.seal_for(to, kind, false, body) {
                out.push(SyncEffect::Send { to, datagram });
            }
        }
    }

    /// Sends queued entries and dumps the budget allows (after [`Self::flush_control`],
    /// which refilled the bucket).
    fn flush_data(&mut self, out: &mut Vec<SyncEffect>) {
        while let Some(source) = self.queue.peek() {
            let dests: Vec<SocketAddr> = match source {
                Source::Live | Source::Dump(None) => self.settings.peers.clone(),
                Source::Dump(Some(to)) => vec![to],
            };
            if dests.is_empty() {
                // Nowhere to send it.
                if self.queue.pop(source).is_none() {
                    break;
                }
                continue;
            }
            let cost = u32::try_from(dests.len()).unwrap_or(u32::MAX);
            if !self.bucket.take(cost) {
                break;
            }
            let Some(batch) = self.queue.pop(source) else {
                break;
            };
            for to in dests {
                let body = Body::Bytes(&batch.payload);
                if let Some(datagram) = self.seal_for(to, batch.kind, batch.dump, body) {
                    self.totals.entries_sent += batch.entries as u64;
                    out.push(SyncEffect::Send { to, datagram });
                }
            }
        }
    }
}

/// After a loss (`lost`) a full resync from `peer` is wanted; queue the request when
/// its rate limit allows, and count it.
fn request_if_due(
    peer: &mut Peer,
    lost: bool,
    now: Instant,
    totals: &mut Totals,
    control: &mut VecDeque<Control>,
) {
    if lost {
        peer.resync.wanted = true;
    }
    if peer.resync.due(now) {
        peer.resyncs_requested += 1;
        totals.resyncs_requested += 1;
        control.push_back(Control::ResyncRequest(peer.addr));
    }
}
