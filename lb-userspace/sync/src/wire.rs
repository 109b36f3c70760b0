//! The datagram format: header, payloads, encoding and decoding. Every datagram is
//!
//! ```text
//!  0       4         5      6       7         15          23      31    39        len-16  len
//!  | magic | version | kind | flags | node_id | dest_node | epoch | seq | payload | tag |
//!    "LBSY"    1                      u64       u64         u64     u64             16 bytes
//! ```
//!
//! with the tag a truncated HMAC-SHA256 over everything before it ([`crate::auth`]).
//! `dest_node` is the receiver's node id when the sender knows it (it heard from that
//! address), 0 otherwise (a multicast group, a peer not heard from yet): a receiver
//! refuses datagrams addressed to another node, so one peer's unicast stream cannot be
//! replayed into another's.
//! All integers are big-endian. Payloads by kind:
//!
//! - `Entries`: `count: u16`, then `count` entries, each `flags: u8` (bit 0 client,
//!   bit 1 VIP, bit 2 backend is IPv6), `proto: u8`, `client_port: u16`,
//!   `vip_port: u16`, `idle_ms: u32`, then client, VIP and backend addresses (4 or 16
//!   bytes each): [`ENTRY_V4_LEN`] bytes all-IPv4, [`ENTRY_V6_LEN`] all-IPv6.
//! - `Dirty`: `set_id: u32`, `part: u16`, `parts: u16`, `flags: u8` (bit 0 VIP is
//!   IPv6), `proto: u8`, `port: u16`, `table_len: u32`, VIP, `count: u16`, then `count`
//!   slots, each `slot: u32`, `family: u8` (4 or 6), backend address.
//! - `Settled`: as `Dirty`; the slots are no longer dirty on the sender.
//! - `Hello`: `last_seq: u64`, the sequence number of the last datagram sent on this
//!   stream before the hello.
//! - `ResyncRequest`: `nonce: u64`, the requester's epoch.
//! - `ResyncDone`: `entries: u64`, `dirty_sets: u32` (what the full state held),
//!   `nonce: u64` (the request's): only an answer to this session's request completes
//!   a resync, so a replayed `ResyncDone` from before the requester restarted does not.
//!
//! Decoding never panics and never trusts a count: any byte left over or missing, an
//! unknown flag bit or family, a slot outside its table, is [`Reject::Malformed`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::auth::{Key, TAG_LEN};
use crate::entry::{DirtySlots, FlowEntry};
use crate::reject::Reject;

/// The largest datagram sent or accepted, in bytes (UDP payload: fits a 1500-byte MTU
/// with IPv6 and UDP headers and room for a tunnel).
pub const MAX_DATAGRAM: usize = 1400;
/// First four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"LBSY";
/// The protocol version spoken (others are refused).
pub const VERSION: u8 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 39;
/// Header and tag: the smallest datagram.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The largest payload.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - OVERHEAD;
/// Bytes of an entry whose addresses are all IPv4.
pub const ENTRY_V4_LEN: usize = 22;
/// Bytes of an entry whose addresses are all IPv6.
pub const ENTRY_V6_LEN: usize = 58;
/// Bytes before the entries of an `Entries` payload (the count).
pub const ENTRIES_FIXED: usize = 2;
/// All-IPv4 entries that fit in one datagram.
pub const ENTRIES_PER_DATAGRAM_V4: usize = (MAX_PAYLOAD - ENTRIES_FIXED) / ENTRY_V4_LEN;
/// All-IPv6 entries that fit in one datagram.
pub const ENTRIES_PER_DATAGRAM_V6: usize = (MAX_PAYLOAD - ENTRIES_FIXED) / ENTRY_V6_LEN;
/// Bytes of a `Dirty` payload before its slots, for an IPv4 VIP.
pub const DIRTY_FIXED_V4: usize = 22;
/// Bytes of a `Dirty` payload before its slots, for an IPv6 VIP.
pub const DIRTY_FIXED_V6: usize = 34;
/// Bytes of a dirty slot whose backend is IPv4.
pub const SLOT_V4_LEN: usize = 9;
/// Bytes of a dirty slot whose backend is IPv6.
pub const SLOT_V6_LEN: usize = 21;
/// Dirty slots (IPv4 VIP and backends) that fit in one datagram.
pub const SLOTS_PER_DATAGRAM_V4: usize = (MAX_PAYLOAD - DIRTY_FIXED_V4) / SLOT_V4_LEN;

/// Header flag: sent on the sender's direct stream to this receiver (a unicast address
/// outside its configured peers), which has its own sequence numbers.
pub const FLAG_DIRECT: u8 = 0x01;
/// Header flag: part of a full resync (a dump).
pub const FLAG_DUMP: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_DIRECT | FLAG_DUMP;

/// What a datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A batch of connection-table entries.
    Entries = 1,
    /// One part of one service's dirty slots.
    Dirty = 2,
    /// Liveness, and the last sequence number sent (reveals a lost tail).
    Hello = 3,
    /// "Send me everything": a full resync, to the requester's source address.
    ResyncRequest = 4,
    /// The end of a full resync.
    ResyncDone = 5,
    /// One part of one service's slots that settled (are no longer dirty).
    Settled = 6,
}

impl Kind {
    /// The kind with this number.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Entries,
            2 => Kind::Dirty,
            3 => Kind::Hello,
            4 => Kind::ResyncRequest,
            5 => Kind::ResyncDone,
            6 => Kind::Settled,
            _ => return None,
        })
    }
}

/// A datagram's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub kind: Kind,
    /// [`FLAG_DIRECT`], [`FLAG_DUMP`].
    pub flags: u8,
    /// Sender's node id.
    pub node_id: u64,
    /// Receiver's node id, 0 when the sender does not know it (multicast, first
    /// contact).
    pub dest_node: u64,
    /// Sender's epoch (grows with every start of the sender).
    pub epoch: u64,
    /// Sequence number on the sender's stream to this receiver (from 1).
    pub seq: u64,
}

impl Header {
    /// The stream the datagram belongs to: 0 = the sender's stream to its configured
    /// peers, 1 = its direct stream to this receiver.
    pub fn stream(&self) -> usize {
        usize::from(self.flags & FLAG_DIRECT != 0)
    }
}

/// One datagram's worth of one service's dirty (or settled) slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyPart {
    /// Identifies the set the parts belong to (per sender and epoch).
    pub set_id: u32,
    /// This part's index, from 0.
    pub part: u16,
    /// Parts in the set (at least 1).
    pub parts: u16,
    /// The service and this part's slots.
    pub slots: DirtySlots,
}

/// A decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Entries.
    Entries(Vec<FlowEntry>),
    /// Part of a dirty-slot set.
    Dirty(DirtyPart),
    /// Part of a set of slots that settled.
    Settled(DirtyPart),
    /// Hello, with the last sequence number sent before it.
    Hello {
        /// Last sequence number sent on this stream before the hello.
        last_seq: u64,
    },
    /// Resync request.
    ResyncRequest {
        /// The requester's epoch, echoed by the dump's end.
        nonce: u64,
    },
    /// End of a full resync.
    ResyncDone {
        /// Entries the full state held.
        entries: u64,
        /// Dirty sets the full state held.
        dirty_sets: u32,
        /// The request's nonce (0: a dump nobody asked for).
        nonce: u64,
    },
}

impl Payload {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Entries(_) => Kind::Entries,
            Payload::Dirty(_) => Kind::Dirty,
            Payload::Settled(_) => Kind::Settled,
            Payload::Hello { .. } => Kind::Hello,
            Payload::ResyncRequest { .. } => Kind::ResyncRequest,
            Payload::ResyncDone { .. } => Kind::ResyncDone,
        }
    }

    /// Its encoding (at most [`MAX_PAYLOAD`] bytes when built by this crate's batching;
    /// [`seal`] refuses larger ones).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Payload::Entries(entries) => {
                put_u16(&mut out, entries.len().min(usize::from(u16::MAX)) as u16);
                for e in entries.iter().take(usize::from(u16::MAX)) {
                    put_entry(&mut out, e);
                }
            }
            Payload::Dirty(part) | Payload::Settled(part) => put_dirty(&mut out, part),
            Payload::Hello { last_seq } => out.extend_from_slice(&last_seq.to_be_bytes()),
            Payload::ResyncRequest { nonce } => out.extend_from_slice(&nonce.to_be_bytes()),
            Payload::ResyncDone {
                entries,
                dirty_sets,
                nonce,
            } => {
                out.extend_from_slice(&entries.to_be_bytes());
                out.extend_from_slice(&dirty_sets.to_be_bytes());
                out.extend_from_slice(&nonce.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a payload of `kind`.
    pub fn decode(kind: Kind, bytes: &[u8]) -> Result<Payload, Reject> {
        let mut r = Reader { buf: bytes };
        let payload = match kind {
            Kind::Entries => {
                let count = usize::from(r.u16()?);
                if count > ENTRIES_PER_DATAGRAM_V4 {
                    return Err(Reject::Malformed);
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    entries.push(r.entry()?);
                }
                Payload::Entries(entries)
            }
            Kind::Dirty => Payload::Dirty(r.dirty()?),
            Kind::Settled => Payload::Settled(r.dirty()?),
            Kind::Hello => Payload::Hello { last_seq: r.u64()? },
            Kind::ResyncRequest => Payload::ResyncRequest { nonce: r.u64()? },
            Kind::ResyncDone => Payload::ResyncDone {
                entries: r.u64()?,
                dirty_sets: r.u32()?,
                nonce: r.u64()?,
            },
        };
        if !r.buf.is_empty() {
            return Err(Reject::Malformed);
        }
        Ok(payload)
    }
}

/// Bytes of one address.
fn addr_len(a: &IpAddr) -> usize {
    if a.is_ipv4() {
        4
    } else {
        16
    }
}

/// Bytes `e` takes in an `Entries` payload.
pub fn entry_len(e: &FlowEntry) -> usize {
    10 + addr_len(&e.client) + addr_len(&e.vip) + addr_len(&e.backend)
}

/// Bytes a `Dirty` payload takes before its slots.
pub fn dirty_fixed_len(vip: &IpAddr) -> usize {
    if vip.is_ipv4() {
        DIRTY_FIXED_V4
    } else {
        DIRTY_FIXED_V6
    }
}

/// Bytes one dirty slot takes.
pub fn slot_len(backend: &IpAddr) -> usize {
    1 + 4 + addr_len(backend)
}

/// Splits one service's dirty slots into parts that each fit a datagram, labelled
/// `set_id`. A set needing more than `u16::MAX` parts is cut there; the second value
/// counts the slots left out.
pub fn split_dirty(d: DirtySlots, set_id: u32) -> (Vec<DirtyPart>, usize) {
    let fixed = dirty_fixed_len(&d.vip);
    let mut chunks: Vec<Vec<(u32, IpAddr)>> = Vec::new();
    let mut cur = Vec::new();
    let mut size = fixed;
    let mut dropped = 0;
    let total = d.slots.len();
    for (i, slot) in d.slots.iter().enumerate() {
        let len = slot_len(&slot.1);
        if size + len > MAX_PAYLOAD {
            chunks.push(std::mem::take(&mut cur));
            size = fixed;
            if chunks.len() == usize::from(u16::MAX) {
                dropped = total - i;
                break;
            }
        }
        cur.push(*slot);
        size += len;
    }
    if !cur.is_empty() || chunks.is_empty() {
        chunks.push(cur);
    }
    let parts = chunks.len() as u16;
    let parts = chunks
        .into_iter()
        .enumerate()
        .map(|(i, slots)| DirtyPart {
            set_id,
            part: i as u16,
            parts,
            slots: DirtySlots {
                vip: d.vip,
                port: d.port,
                proto: d.proto,
                table_len: d.table_len,
                slots,
            },
        })
        .collect();
    (parts, dropped)
}

/// A complete datagram: `header`, `payload` and the tag over both. `None` when the
/// payload is larger than [`MAX_PAYLOAD`].
pub fn seal(key: &Key, header: &Header, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let mut out = Vec::with_capacity(OVERHEAD + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(header.kind as u8);
    out.push(header.flags);
    out.extend_from_slice(&header.node_id.to_be_bytes());
    out.extend_from_slice(&header.dest_node.to_be_bytes());
    out.extend_from_slice(&header.epoch.to_be_bytes());
    out.extend_from_slice(&header.seq.to_be_bytes());
    out.extend_from_slice(payload);
    let tag = key.tag(&out);
    out.extend_from_slice(&tag);
    Some(out)
}

/// Checks a datagram's size, magic, version, kind and tag, and returns its header and
/// (still encoded) payload.
pub fn open<'a>(key: &Key, datagram: &'a [u8]) -> Result<(Header, &'a [u8]), Reject> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(Reject::Oversized);
    }
    if datagram.len() < OVERHEAD {
        return Err(Reject::Truncated);
    }
    if datagram[..4] != MAGIC {
        return Err(Reject::BadMagic);
    }
    if datagram[4] != VERSION {
        return Err(Reject::UnknownVersion);
    }
    let kind = Kind::from_u8(datagram[5]).ok_or(Reject::UnknownKind)?;
    let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    if !key.verify(signed, tag) {
        return Err(Reject::BadTag);
    }
    let flags = datagram[6];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Reject::Malformed);
    }
    let mut r = Reader {
        buf: &signed[7..HEADER_LEN],
    };
    let header = Header {
        kind,
        flags,
        node_id: r.u64()?,
        dest_node: r.u64()?,
        epoch: r.u64()?,
        seq: r.u64()?,
    };
    Ok((header, &signed[HEADER_LEN..]))
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_addr(out: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// Appends `e`'s encoding ([`entry_len`] bytes) to `out`.
pub fn put_entry(out: &mut Vec<u8>, e: &FlowEntry) {
    let flags = u8::from(e.client.is_ipv6())
        | u8::from(e.vip.is_ipv6()) << 1
        | u8::from(e.backend.is_ipv6()) << 2;
    out.push(flags);
    out.push(e.proto);
    put_u16(out, e.client_port);
    put_u16(out, e.vip_port);
    out.extend_from_slice(&e.idle_ms.to_be_bytes());
    put_addr(out, &e.client);
    put_addr(out, &e.vip);
    put_addr(out, &e.backend);
}

fn put_dirty(out: &mut Vec<u8>, p: &DirtyPart) {
    let d = &p.slots;
    out.extend_from_slice(&p.set_id.to_be_bytes());
    put_u16(out, p.part);
    put_u16(out, p.parts);
    out.push(u8::from(d.vip.is_ipv6()));
    out.push(d.proto);
    put_u16(out, d.port);
    out.extend_from_slice(&d.table_len.to_be_bytes());
    put_addr(out, &d.vip);
    put_u16(out, d.slots.len().min(usize::from(u16::MAX)) as u16);
    for (slot, backend) in d.slots.iter().take(usize::from(u16::MAX)) {
        out.extend_from_slice(&slot.to_be_bytes());
        out.push(if backend.is_ipv4() { 4 } else { 6 });
        put_addr(out, backend);
    }
}

/// A cursor over untrusted bytes: every read checks the length.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Reject> {
        if self.buf.len() < N {
            return Err(Reject::Malformed);
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Reject> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Reject> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, Reject> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, Reject> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn addr(&mut self, v6: bool) -> Result<IpAddr, Reject> {
        Ok(if v6 {
            IpAddr::V6(Ipv6Addr::from(self.take::<16>()?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.take::<4>()?))
        })
    }

    fn entry(&mut self) -> Result<FlowEntry, Reject> {
        let flags = self.u8()?;
        if flags & !0b111 != 0 {
            return Err(Reject::Malformed);
        }
        let proto = self.u8()?;
        let client_port = self.u16()?;
        let vip_port = self.u16()?;
        let idle_ms = self.u32()?;
        let client = self.addr(flags & 1 != 0)?;
        let vip = self.addr(flags & 2 != 0)?;
        let backend = self.addr(flags & 4 != 0)?;
        Ok(FlowEntry {
            client,
            client_port,
            vip,
            vip_port,
            proto,
            backend,
            idle_ms,
        })
    }

    fn dirty(&mut self) -> Result<DirtyPart, Reject> {
        let set_id = self.u32()?;
        let part = self.u16()?;
        let parts = self.u16()?;
        if parts == 0 || part >= parts {
            return Err(Reject::Malformed);
        }
        let flags = self.u8()?;
        if flags & !1 != 0 {
            return Err(Reject::Malformed);
        }
        let proto = self.u8()?;
        let port = self.u16()?;
        let table_len = self.u32()?;
        let vip = self.addr(flags & 1 != 0)?;
        let count = usize::from(self.u16()?);
        if count > SLOTS_PER_DATAGRAM_V4 {
            return Err(Reject::Malformed);
        }
        let mut slots = Vec::with_capacity(count);
        for _ in 0..count {
            let slot = self.u32()?;
            let backend = match self.u8()? {
                4 => self.addr(false)?,
                6 => self.addr(true)?,
                _ => return Err(Reject::Malformed),
            };
            if slot >= table_len {
                return Err(Reject::Malformed);
            }
            slots.push((slot, backend));
        }
        Ok(DirtyPart {
            set_id,
            part,
            parts,
            slots: DirtySlots {
                vip,
                port,
                proto,
                table_len,
                slots,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(b"0123456789abcdef").unwrap()
    }

    fn v4_entry(i: u32) -> FlowEntry {
        FlowEntry {
            client: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            client_port: 40000,
            vip: "192.0.2.1".parse().unwrap(),
            vip_port: 443,
            proto: 6,
            backend: "10.1.0.2".parse().unwrap(),
            idle_ms: i,
        }
    }

    fn v6_entry() -> FlowEntry {
        FlowEntry {
            client: "2001:db8::1".parse().unwrap(),
            client_port: 1,
            vip: "2001:db8::2".parse().unwrap(),
            vip_port: 2,
            proto: 17,
            backend: "2001:db8::3".parse().unwrap(),
            idle_ms: 7,
        }
    }

    #[test]
    fn budget_numbers() {
        assert_eq!(MAX_PAYLOAD, 1345);
        assert_eq!(entry_len(&v4_entry(1)), ENTRY_V4_LEN);
        assert_eq!(entry_len(&v6_entry()), ENTRY_V6_LEN);
        assert_eq!(ENTRIES_PER_DATAGRAM_V4, 61);
        assert_eq!(ENTRIES_PER_DATAGRAM_V6, 23);
        assert_eq!(SLOTS_PER_DATAGRAM_V4, 147);
        let mut buf = Vec::new();
        put_entry(&mut buf, &v4_entry(1));
        assert_eq!(buf.len(), ENTRY_V4_LEN);
    }

    #[test]
    fn full_datagram_round_trip() {
        let entries: Vec<_> = (0..ENTRIES_PER_DATAGRAM_V4 as u32).map(v4_entry).collect();
        let payload = Payload::Entries(entries);
        let bytes = payload.encode();
        assert!(bytes.len() <= MAX_PAYLOAD);
        let header = Header {
            kind: Kind::Entries,
            flags: FLAG_DUMP,
            node_id: 7,
            dest_node: 8,
            epoch: 9,
            seq: 11,
        };
        let dgram = seal(&key(), &header, &bytes).unwrap();
        assert!(dgram.len() <= MAX_DATAGRAM);
        let (h, p) = open(&key(), &dgram).unwrap();
        assert_eq!(h, header);
        assert_eq!(Payload::decode(h.kind, p).unwrap(), payload);
    }

    #[test]
    fn every_kind_round_trips() {
        let d = DirtySlots {
            vip: "2001:db8::9".parse().unwrap(),
            port: 6443,
            proto: 6,
            table_len: 65537,
            slots: vec![
                (1, "10.0.0.1".parse().unwrap()),
                (65536, v6_entry().backend),
            ],
        };
        let (parts, dropped) = split_dirty(d, 3);
        assert_eq!(dropped, 0);
        for p in [
            Payload::Entries(vec![v6_entry(), v4_entry(3)]),
            Payload::Dirty(parts[0].clone()),
            Payload::Settled(parts[0].clone()),
            Payload::Hello { last_seq: 42 },
            Payload::ResyncRequest { nonce: 9 },
            Payload::ResyncDone {
                entries: 5,
                dirty_sets: 2,
                nonce: 9,
            },
        ] {
            assert_eq!(Payload::decode(p.kind(), &p.encode()).unwrap(), p);
        }
    }

    #[test]
    fn split_dirty_fits_and_keeps_every_slot() {
        let slots: Vec<_> = (0..1000u32)
            .map(|i| (i, IpAddr::V4(Ipv4Addr::from(i))))
            .collect();
        let d = DirtySlots {
            vip: "192.0.2.1".parse().unwrap(),
            port: 80,
            proto: 6,
            table_len: 65537,
            slots: slots.clone(),
        };
        let (parts, dropped) = split_dirty(d, 1);
        assert_eq!(dropped, 0);
        assert_eq!(parts.len(), 1000usize.div_ceil(SLOTS_PER_DATAGRAM_V4));
        let mut all = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(usize::from(p.part), i);
            assert!(Payload::Dirty(p.clone()).encode().len() <= MAX_PAYLOAD);
            all.extend_from_slice(&p.slots.slots);
        }
        assert_eq!(all, slots);
    }

    #[test]
    fn empty_dirty_set_is_one_part() {
        let d = DirtySlots {
            vip: "192.0.2.1".parse().unwrap(),
            port: 80,
            proto: 6,
            table_len: 7,
            slots: vec![],
        };
        let (parts, _) = split_dirty(d, 1);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].parts, 1);
    }

    #[test]
    fn trailing_or_missing_bytes_are_malformed() {
        let mut bytes = Payload::Hello { last_seq: 1 }.encode();
        bytes.push(0);
        assert_eq!(Payload::decode(Kind::Hello, &bytes), Err(Reject::Malformed));
        let bytes = Payload::Entries(vec![v4_entry(1)]).encode();
        assert_eq!(
            Payload::decode(Kind::Entries, &bytes[..bytes.len() - 1]),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn header_checks_in_order() {
        let header = Header {
            kind: Kind::Hello,
            flags: 0,
            node_id: 1,
            dest_node: 0,
            epoch: 1,
            seq: 1,
        };
        let good = seal(&key(), &header, &Payload::Hello { last_seq: 0 }.encode()).unwrap();
        assert!(open(&key(), &good).is_ok());
        assert_eq!(open(&key(), &good[..OVERHEAD - 1]), Err(Reject::Truncated));
        assert_eq!(
            open(&key(), &vec![0u8; MAX_DATAGRAM + 1]),
            Err(Reject::Oversized)
        );
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(open(&key(), &bad), Err(Reject::BadMagic));
        let mut bad = good.clone();
        bad[4] = 2;
        assert_eq!(open(&key(), &bad), Err(Reject::UnknownVersion));
        let mut bad = good.clone();
        bad[5] = 99;
        assert_eq!(open(&key(), &bad), Err(Reject::UnknownKind));
        let mut bad = good.clone();
        bad[20] ^= 1;
        assert_eq!(open(&key(), &bad), Err(Reject::BadTag));
        assert!(seal(&key(), &header, &[0u8; MAX_PAYLOAD + 1]).is_none());
    }
}
