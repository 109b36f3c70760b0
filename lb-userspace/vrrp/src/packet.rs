//! VRRP wire codec: VRRPv2 (RFC 3768, with keepalived's `auth_type PASS`) and
//! VRRPv3 (RFC 5798 / RFC 9568) for IPv4 and IPv6, byte for byte as keepalived 2.2.7
//! writes and checks them.
//!
//! Pure code: no sockets, no clock, no logging. A raw socket hands over the IPv4
//! packet ([`parse_ipv4_packet`]) or, for IPv6, the VRRP message plus source,
//! destination and hop limit from ancillary data ([`Received::ipv6`]); [`decode`]
//! checks it against what the local instance expects ([`Expect`]) and either returns
//! the [`Advert`] or the [`DropReason`] to count. [`encode`] builds the VRRP message
//! (the IP header is the socket's job) with its checksum filled in.
//!
//! Checksums, as keepalived does them (verified against captures from a real
//! keepalived, see `tests/fixtures/vrrp/`):
//! - v2: one's-complement sum over the VRRP message, the 8 auth bytes included.
//! - v3 over IPv6: with the IPv6 pseudo-header (RFC 5798).
//! - v3 over IPv4: with the IPv4 pseudo-header (src, dst, 0, 112, length), the form
//!   keepalived and FRR send and require ([`ChecksumMode::PseudoHeader`]); RFC 9568
//!   says message only ([`ChecksumMode::MessageOnly`]). Decoding accepts both by
//!   default ([`AcceptChecksum::Both`]), plus the form old keepalived versions used
//!   for unicast (pseudo-header with 224.0.0.18 as destination).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The TTL / hop limit every VRRP advert is sent with and (for multicast) must
/// arrive with.
pub const VRRP_TTL: u8 = 255;
/// IPv4 multicast group of VRRP.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP.
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// Fixed VRRP header length (both versions).
const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data that follows the addresses.
const AUTH_LEN: usize = 8;
/// The only VRRP packet type.
const TYPE_ADVERT: u8 = 1;
/// v2 auth types.
const AUTH_NONE: u8 = 0;
const AUTH_PASS: u8 = 1;
pub use crate::limits::V3_MAX_INTERVAL_CS;

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRPv2 (RFC 3768): IPv4 only, whole-second intervals, optional PASS auth.
    V2,
    /// VRRPv3 (RFC 5798 / 9568): IPv4 and IPv6, centisecond intervals, no auth.
    V3,
}

impl Version {
    /// The version nibble on the wire.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// One VRRP advertisement, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual router id (1..=255).
    pub vrid: u8,
    /// Sender's priority: 255 address owner, 1..=254 normal, 0 master leaving.
    pub priority: u8,
    /// Advertisement interval in centiseconds. v3: the 12-bit Max Advertise Interval;
    /// v2: the whole-second Adver Int times 100.
    pub max_advert_int_cs: u16,
    /// The virtual addresses, all of the family of the packet.
    pub addresses: Vec<IpAddr>,
    /// v2 `auth_type PASS` data (password zero-padded to 8 bytes); `None` for no
    /// authentication and always for v3.
    pub auth: Option<[u8; 8]>,
}

/// How to checksum a VRRPv3 message sent over IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Include the IPv4 pseudo-header: what keepalived and FRR send and require.
    #[default]
    PseudoHeader,
    /// The VRRP message only, as RFC 9568 specifies.
    MessageOnly,
}

/// Which VRRPv3-over-IPv4 checksum forms [`decode`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceptChecksum {
    /// Either form (default).
    #[default]
    Both,
    /// Only the pseudo-header form (keepalived's own behaviour).
    PseudoHeaderOnly,
    /// Only the RFC 9568 message-only form.
    MessageOnly,
}

/// Why [`encode`] refused an advert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Source and destination are of different address families.
    #[error("source {src} and destination {dst} are of different address families")]
    MixedEndpoints {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
    },
    /// A virtual address is not of the packet's address family.
    #[error("virtual address {0} is not of the packet's address family")]
    AddressFamily(IpAddr),
    /// VRRPv2 is IPv4 only.
    #[error("VRRPv2 carries IPv4 only")]
    V2NotIpv4,
    /// More than 255 virtual addresses.
    #[error("{0} virtual addresses; at most 255 fit in an advert")]
    TooManyAddresses(usize),
    /// VRID 0 does not exist.
    #[error("virtual router id 0 is invalid (1..=255)")]
    BadVrid,
    /// The interval cannot be expressed in this version's field.
    #[error("advert interval {cs} cs cannot be sent in {version:?} (v2: 1..=255 whole seconds; v3: 1..=4095 cs)")]
    BadInterval {
        /// The version asked for.
        version: Version,
        /// The interval in centiseconds.
        cs: u16,
    },
    /// VRRPv3 has no authentication.
    #[error("VRRPv3 has no authentication")]
    AuthOnV3,
}

/// Why a password cannot be used for `auth_type PASS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The password is empty.
    #[error("empty auth_pass")]
    Empty,
    /// Longer than the 8 bytes the wire carries (keepalived silently truncates; a
    /// silently dropped 9th character is a classic split-brain cause, so refuse).
    #[error("auth_pass is {len} bytes; VRRP carries at most 8")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// Why a received packet was dropped. Every variant has a stable counter name
/// ([`DropReason::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum DropReason {
    /// Shorter than its headers, or than the address count it announces.
    #[error("truncated packet")]
    Truncated,
    /// IPv4 header malformed: not version 4, header length below 20 bytes, total
    /// length disagreeing with what was received.
    #[error("malformed IP header")]
    BadIpHeader,
    /// IPv4 protocol is not 112 (e.g. AH, which is not supported).
    #[error("IP protocol is not VRRP (112)")]
    BadProtocol,
    /// Longer than the address count it announces implies.
    #[error("packet longer than its address count implies")]
    BadLength,
    /// Source and destination of different families, or VRRPv2 over IPv6.
    #[error("address family mismatch")]
    AddressFamily,
    /// VRRP version differs from the instance's.
    #[error("wrong VRRP version")]
    BadVersion,
    /// Not an advertisement (type 1).
    #[error("not an advertisement")]
    BadType,
    /// Another virtual router's advert (counted: on a segment shared with other
    /// VRIDs this rises with their adverts; from a unicast peer it means the two
    /// ends disagree on the VRID).
    #[error("wrong virtual router id")]
    WrongVrid,
    /// TTL / hop limit is not 255.
    #[error("TTL/hop limit is not 255")]
    BadTtl,
    /// Checksum does not verify (in any accepted form).
    #[error("bad checksum")]
    BadChecksum,
    /// v2 auth type differs from the instance's (or is unsupported, e.g. AH).
    #[error("authentication type mismatch")]
    AuthTypeMismatch,
    /// v2 PASS data differs from the instance's password.
    #[error("authentication mismatch")]
    AuthMismatch,
    /// v2 advert interval differs from the instance's (keepalived drops these to
    /// keep two masters from running one VRID with different timers).
    #[error("advert interval mismatch")]
    IntervalMismatch,
    /// Number of virtual addresses differs from the instance's.
    #[error("virtual address count mismatch")]
    AddressCountMismatch,
    /// A configured virtual address is missing from the advert.
    #[error("virtual address list mismatch")]
    AddressListMismatch,
    /// Unicast: the source is not one of the configured peers ([`Expect::peers`]).
    #[error("source is not a configured unicast peer")]
    NotAPeer,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 16] = [
        DropReason::Truncated,
        DropReason::BadIpHeader,
        DropReason::BadProtocol,
        DropReason::BadLength,
        DropReason::AddressFamily,
        DropReason::BadVersion,
        DropReason::BadType,
        DropReason::WrongVrid,
        DropReason::BadTtl,
        DropReason::BadChecksum,
        DropReason::AuthTypeMismatch,
        DropReason::AuthMismatch,
        DropReason::IntervalMismatch,
        DropReason::AddressCountMismatch,
        DropReason::AddressListMismatch,
        DropReason::NotAPeer,
    ];

    /// Stable snake_case name for counters and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadProtocol => "bad_protocol",
            DropReason::BadLength => "bad_length",
            DropReason::AddressFamily => "address_family",
            DropReason::BadVersion => "bad_version",
            DropReason::BadType => "bad_type",
            DropReason::WrongVrid => "wrong_vrid",
            DropReason::BadTtl => "bad_ttl",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::AuthTypeMismatch => "auth_type_mismatch",
            DropReason::AuthMismatch => "auth_mismatch",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::AddressCountMismatch => "address_count_mismatch",
            DropReason::AddressListMismatch => "address_list_mismatch",
            DropReason::NotAPeer => "not_a_peer",
        }
    }

    /// Position in [`DropReason::ALL`] (for array-backed counters).
    pub fn index(&self) -> usize {
        *self as usize
    }
}

/// A received VRRP packet as a raw socket delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address (multicast group or our unicast address).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The VRRP message (everything after the IP header).
    pub payload: Vec<u8>,
}

impl Received {
    /// An IPv6 VRRP message as an `AF_INET6` raw socket delivers it: the message
    /// itself, with source, destination (`IPV6_PKTINFO`) and hop limit
    /// (`IPV6_HOPLIMIT`) from ancillary data.
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, payload: Vec<u8>) -> Self {
        Received {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            ttl: hop_limit,
            payload,
        }
    }
}

/// Split an IPv4 packet as an `AF_INET` raw socket delivers it (IP header
/// included) into a [`Received`].
pub fn parse_ipv4_packet(packet: &[u8]) -> Result<Received, DropReason> {
    if packet.len() < 20 {
        return Err(DropReason::Truncated);
    }
    if packet[0] >> 4 != 4 {
        return Err(DropReason::BadIpHeader);
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(DropReason::BadIpHeader);
    }
    if packet.len() < ihl {
        return Err(DropReason::Truncated);
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < ihl {
        return Err(DropReason::BadIpHeader);
    }
    if total > packet.len() {
        return Err(DropReason::Truncated);
    }
    if total != packet.len() {
        // keepalived: "ip_tot_len mismatch against received length".
        return Err(DropReason::BadIpHeader);
    }
    if packet[9] != IPPROTO_VRRP {
        return Err(DropReason::BadProtocol);
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Ok(Received {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl: packet[8],
        payload: packet[ihl..total].to_vec(),
    })
}

/// What the local instance expects of a received advert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The instance's VRRP version.
    pub version: Version,
    /// The instance's VRID.
    pub vrid: u8,
    /// v2 `auth_type PASS` data; `None` expects auth type 0. Ignored for v3.
    pub auth: Option<[u8; 8]>,
    /// The instance's advert interval in centiseconds; v2 adverts must match it
    /// (in whole seconds). Not checked for v3 (a v3 backup adopts the master's).
    pub advert_int_cs: u16,
    /// Require TTL / hop limit 255. keepalived skips this for unicast.
    pub check_ttl: bool,
    /// Accepted checksum forms for v3 over IPv4.
    pub accept_checksum: AcceptChecksum,
    /// The instance's virtual addresses. `Some`: like keepalived, drop adverts with
    /// a different count or missing one of these. `None`: do not check.
    pub addresses: Option<Vec<IpAddr>>,
    /// Unicast peers. `Some`: accept adverts only from one of these source
    /// addresses (keepalived's `check_unicast_src`; lbd sets it whenever
    /// `unicast_peers` is configured), dropping others as [`DropReason::NotAPeer`].
    /// `None`: any source.
    pub peers: Option<Vec<IpAddr>>,
}

impl Expect {
    /// Expect `version`/`vrid` with `advert_int_cs`, no auth, TTL checked, both
    /// checksum forms, addresses not checked.
    pub fn new(version: Version, vrid: u8, advert_int_cs: u16) -> Self {
        Expect {
            version,
            vrid,
            auth: None,
            advert_int_cs,
            check_ttl: true,
            accept_checksum: AcceptChecksum::Both,
            addresses: None,
            peers: None,
        }
    }
}

/// The zero-padded 8 bytes keepalived puts on the wire for `auth_pass`.
pub fn auth_from_password(pass: &str) -> Result<[u8; 8], AuthError> {
    let bytes = pass.as_bytes();
    if bytes.is_empty() {
        return Err(AuthError::Empty);
    }
    if bytes.len() > AUTH_LEN {
        return Err(AuthError::TooLong { len: bytes.len() });
    }
    let mut out = [0u8; AUTH_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// The VRID of a VRRP message, without checking anything else: lets a receiver
/// that runs several instances on one socket pick the instance to [`decode`] for.
pub fn peek_vrid(payload: &[u8]) -> Option<u8> {
    payload.get(1).copied()
}

/// Build the VRRP message for `advert` sent from `src` to `dst`, checksum filled.
/// `v3_ipv4_checksum` picks the checksum form for VRRPv3 over IPv4 and is ignored
/// otherwise.
pub fn encode(
    advert: &Advert,
    src: IpAddr,
    dst: IpAddr,
    v3_ipv4_checksum: ChecksumMode,
) -> Result<Vec<u8>, EncodeError> {
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(EncodeError::MixedEndpoints { src, dst });
    }
    if advert.vrid == 0 {
        return Err(EncodeError::BadVrid);
    }
    if let Some(bad) = advert
        .addresses
        .iter()
        .find(|a| a.is_ipv4() != src.is_ipv4())
    {
        return Err(EncodeError::AddressFamily(*bad));
    }
    let count = u8::try_from(advert.addresses.len())
        .map_err(|_| EncodeError::TooManyAddresses(advert.addresses.len()))?;
    let bad_interval = EncodeError::BadInterval {
        version: advert.version,
        cs: advert.max_advert_int_cs,
    };
    let mut msg = Vec::with_capacity(HEADER_LEN + advert.addresses.len() * 16 + AUTH_LEN);
    match advert.version {
        Version::V2 => {
            if !src.is_ipv4() {
                return Err(EncodeError::V2NotIpv4);
            }
            let cs = advert.max_advert_int_cs;
            if cs == 0 || !cs.is_multiple_of(100) {
                return Err(bad_interval);
            }
            let secs = u8::try_from(cs / 100).map_err(|_| bad_interval)?;
            let auth_type = if advert.auth.is_some() {
                AUTH_PASS
            } else {
                AUTH_NONE
            };
            msg.extend_from_slice(&[
                (2 << 4) | TYPE_ADVERT,
                advert.vrid,
                advert.priority,
                count,
                auth_type,
                secs,
                0,
                0,
            ]);
            push_addresses(&mut msg, &advert.addresses);
            // keepalived always carries the 8 auth bytes in v2 (zeros without auth).
            msg.extend_from_slice(&advert.auth.unwrap_or([0; AUTH_LEN]));
            let sum = checksum(&[&msg]);
            msg[6..8].copy_from_slice(&sum.to_be_bytes());
        }
        Version::V3 => {
            if advert.auth.is_some() {
                return Err(EncodeError::AuthOnV3);
            }
            let cs = advert.max_advert_int_cs;
            if cs == 0 || cs > V3_MAX_INTERVAL_CS {
                return Err(bad_interval);
            }
            let [hi, lo] = cs.to_be_bytes();
            msg.extend_from_slice(&[
                (3 << 4) | TYPE_ADVERT,
                advert.vrid,
                advert.priority,
                count,
                hi & 0x0f,
                lo,
                0,
                0,
            ]);
            push_addresses(&mut msg, &advert.addresses);
            let sum = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => match v3_ipv4_checksum {
                    ChecksumMode::PseudoHeader => v4_pseudo_checksum(s, d, &msg),
                    ChecksumMode::MessageOnly => checksum(&[&msg]),
                },
                (IpAddr::V6(s), IpAddr::V6(d)) => v6_pseudo_checksum(s, d, &msg),
                _ => return Err(EncodeError::MixedEndpoints { src, dst }),
            };
            msg[6..8].copy_from_slice(&sum.to_be_bytes());
        }
    }
    Ok(msg)
}

fn push_addresses(msg: &mut Vec<u8>, addresses: &[IpAddr]) {
    for a in addresses {
        match a {
            IpAddr::V4(a) => msg.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => msg.extend_from_slice(&a.octets()),
        }
    }
}

/// Check `rx` against `expect` and decode it.
///
/// Checks, in order: length of the fixed header, VRID, version, type, source (unicast
/// peers only), TTL, address family, length against the address count, checksum, v2 auth type and password,
/// v2 interval, and the address list against [`Expect::addresses`].
pub fn decode(rx: &Received, expect: &Expect) -> Result<Advert, DropReason> {
    let p = &rx.payload;
    if p.len() < HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    // The VRID first (same place in every version): another virtual router's
    // advert is `WrongVrid`, whatever else differs.
    let vrid = p[1];
    if vrid != expect.vrid {
        return Err(DropReason::WrongVrid);
    }
    let version = match p[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        _ => return Err(DropReason::BadVersion),
    };
    if version != expect.version {
        return Err(DropReason::BadVersion);
    }
    if p[0] & 0x0f != TYPE_ADVERT {
        return Err(DropReason::BadType);
    }
    if let Some(peers) = &expect.peers {
        if !peers.contains(&rx.src) {
            return Err(DropReason::NotAPeer);
        }
    }
    if expect.check_ttl && rx.ttl != VRRP_TTL {
        return Err(DropReason::BadTtl);
    }
    let v4 = match (rx.src, rx.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => true,
        (IpAddr::V6(_), IpAddr::V6(_)) => false,
        _ => return Err(DropReason::AddressFamily),
    };
    if version == Version::V2 && !v4 {
        return Err(DropReason::AddressFamily);
    }
    let priority = p[2];
    let count = usize::from(p[3]);
    let addr_len = if v4 { 4 } else { 16 };
    let auth_len = if version == Version::V2 { AUTH_LEN } else { 0 };
    let needed = HEADER_LEN + count * addr_len + auth_len;
    if p.len() < needed {
        return Err(DropReason::Truncated);
    }
    if p.len() > needed {
        return Err(DropReason::BadLength);
    }
    if !checksum_ok(rx, version, expect.accept_checksum) {
        return Err(DropReason::BadChecksum);
    }
    let addresses: Vec<IpAddr> = p[HEADER_LEN..HEADER_LEN + count * addr_len]
        .chunks_exact(addr_len)
        .map(|c| ip_from_slice(c, v4))
        .collect();
    let (max_advert_int_cs, auth) = match version {
        Version::V2 => {
            let auth_type = p[4];
            let mut data = [0u8; AUTH_LEN];
            data.copy_from_slice(&p[needed - AUTH_LEN..needed]);
            let auth = match (expect.auth, auth_type) {
                (None, AUTH_NONE) => None,
                (Some(want), AUTH_PASS) => {
                    if want != data {
                        return Err(DropReason::AuthMismatch);
                    }
                    Some(data)
                }
                _ => return Err(DropReason::AuthTypeMismatch),
            };
            let cs = u16::from(p[5]) * 100;
            if cs != expect.advert_int_cs {
                return Err(DropReason::IntervalMismatch);
            }
            (cs, auth)
        }
        Version::V3 => (
            u16::from_be_bytes([p[4] & 0x0f, p[5]]),
            None, // v3 has no auth; `expect.auth` is irrelevant
        ),
    };
    if let Some(want) = &expect.addresses {
        if want.len() != addresses.len() {
            return Err(DropReason::AddressCountMismatch);
        }
        if want.iter().any(|w| !addresses.contains(w)) {
            return Err(DropReason::AddressListMismatch);
        }
    }
    Ok(Advert {
        version,
        vrid,
        priority,
        max_advert_int_cs,
        addresses,
        auth,
    })
}

fn ip_from_slice(c: &[u8], v4: bool) -> IpAddr {
    if v4 {
        let mut o = [0u8; 4];
        o.copy_from_slice(c);
        IpAddr::from(o)
    } else {
        let mut o = [0u8; 16];
        o.copy_from_slice(c);
        IpAddr::from(o)
    }
}

fn checksum_ok(rx: &Received, version: Version, accept: AcceptChecksum) -> bool {
    let msg = &rx.payload[..];
    match (version, rx.src, rx.dst) {
        (Version::V2, _, _) => checksum(&[msg]) == 0,
        (Version::V3, IpAddr::V6(s), IpAddr::V6(d)) => v6_pseudo_checksum(s, d, msg) == 0,
        (Version::V3, IpAddr::V4(s), IpAddr::V4(d)) => {
            let pseudo = || {
                v4_pseudo_checksum(s, d, msg) == 0
                    // Older keepalived put the multicast group in the pseudo-header
                    // even for unicast; keepalived still accepts that form.
                    || (d != MCAST_V4 && v4_pseudo_checksum(s, MCAST_V4, msg) == 0)
            };
            let plain = || checksum(&[msg]) == 0;
            match accept {
                AcceptChecksum::Both => pseudo() || plain(),
                AcceptChecksum::PseudoHeaderOnly => pseudo(),
                AcceptChecksum::MessageOnly => plain(),
            }
        }
        _ => false,
    }
}

/// Internet checksum (RFC 1071) over the concatenation of `parts`, each of even
/// length except possibly the last. Over a message whose checksum field is filled
/// in, the result is 0 when it verifies.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(u16::from_be_bytes([*last, 0]));
        }
        // Fold as we go so the accumulator never overflows.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Truncation is the point: the folded sum fits in 16 bits.
    !(sum as u16)
}

/// Checksum over the IPv4 pseudo-header (src, dst, 0, 112, length) and `msg`.
fn v4_pseudo_checksum(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> u16 {
    let len = (msg.len() as u16).to_be_bytes();
    let mut ph = [0u8; 12];
    ph[0..4].copy_from_slice(&src.octets());
    ph[4..8].copy_from_slice(&dst.octets());
    ph[9] = IPPROTO_VRRP;
    ph[10..12].copy_from_slice(&len);
    checksum(&[&ph, msg])
}

/// Checksum over the IPv6 pseudo-header (src, dst, length, 0, 112) and `msg`.
fn v6_pseudo_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut ph = [0u8; 40];
    ph[0..16].copy_from_slice(&src.octets());
    ph[16..32].copy_from_slice(&dst.octets());
    ph[32..36].copy_from_slice(&(msg.len() as u32).to_be_bytes());
    ph[39] = IPPROTO_VRRP;
    checksum(&[&ph, msg])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture captured from real keepalived (see tests/fixtures/vrrp/capture.sh).
    struct Fixture {
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        packet: Vec<u8>,
        vrrp: Vec<u8>,
    }

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    fn fixture(text: &str) -> Fixture {
        let field = |key: &str| -> &str {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
                .unwrap_or_else(|| panic!("fixture lacks `{key}`"))
                .trim()
        };
        Fixture {
            src: field("src").parse().expect("src"),
            dst: field("dst").parse().expect("dst"),
            ttl: field("ttl").parse().expect("ttl"),
            packet: hex(field("packet")),
            vrrp: hex(field("vrrp")),
        }
    }

    const V2_PASS: &str = include_str!("../../../tests/fixtures/vrrp/v2_pass.hex");
    const V2_PASS_PRIO0: &str = include_str!("../../../tests/fixtures/vrrp/v2_pass_prio0.hex");
    const V3_UNICAST_V4: &str = include_str!("../../../tests/fixtures/vrrp/v3_unicast_v4.hex");
    const V3_UNICAST_V4_PRIO0: &str =
        include_str!("../../../tests/fixtures/vrrp/v3_unicast_v4_prio0.hex");
    const V3_IPV6: &str = include_str!("../../../tests/fixtures/vrrp/v3_ipv6.hex");
    const V3_IPV6_PRIO0: &str = include_str!("../../../tests/fixtures/vrrp/v3_ipv6_prio0.hex");

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip literal")
    }

    fn secret12() -> [u8; 8] {
        auth_from_password("secret12").expect("8-byte password")
    }

    fn v2_expect() -> Expect {
        Expect {
            auth: Some(secret12()),
            addresses: Some(vec![ip("192.0.2.51")]),
            ..Expect::new(Version::V2, 51, 100)
        }
    }

    fn v3u_expect() -> Expect {
        Expect {
            check_ttl: false,
            addresses: Some(vec![ip("192.0.2.52"), ip("192.0.2.152")]),
            ..Expect::new(Version::V3, 52, 10)
        }
    }

    fn v6_expect() -> Expect {
        Expect {
            addresses: Some(vec![ip("2001:db8::53")]),
            ..Expect::new(Version::V3, 53, 100)
        }
    }

    /// The received form of an IPv4 fixture, via the IP-header parser.
    fn rx_v4(f: &Fixture) -> Received {
        let rx = parse_ipv4_packet(&f.packet).expect("fixture parses");
        assert_eq!(rx.src, f.src);
        assert_eq!(rx.dst, f.dst);
        assert_eq!(rx.ttl, f.ttl);
        assert_eq!(rx.payload, f.vrrp);
        rx
    }

    /// The received form of an IPv6 fixture, as a raw socket + cmsgs would give it.
    fn rx_v6(f: &Fixture) -> Received {
        let (IpAddr::V6(s), IpAddr::V6(d)) = (f.src, f.dst) else {
            panic!("not an IPv6 fixture")
        };
        // The header fields in the fixture agree with the captured IPv6 header.
        assert_eq!(f.packet[0] >> 4, 6);
        assert_eq!(f.packet[6], IPPROTO_VRRP);
        assert_eq!(f.packet[7], f.ttl);
        assert_eq!(&f.packet[8..24], &s.octets());
        assert_eq!(&f.packet[24..40], &d.octets());
        assert_eq!(&f.packet[40..], &f.vrrp[..]);
        Received::ipv6(s, d, f.ttl, f.vrrp.clone())
    }

    /// Recompute the checksum of a (mutated) message in the form keepalived uses.
    fn refill_checksum(rx: &mut Received) {
        rx.payload[6] = 0;
        rx.payload[7] = 0;
        let v3 = rx.payload[0] >> 4 == 3;
        let sum = match (rx.src, rx.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) if v3 => v4_pseudo_checksum(s, d, &rx.payload),
            (IpAddr::V6(s), IpAddr::V6(d)) => v6_pseudo_checksum(s, d, &rx.payload),
            _ => checksum(&[&rx.payload]),
        };
        rx.payload[6..8].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn v2_pass_fixture_decodes_and_reencodes() {
        let f = fixture(V2_PASS);
        assert_eq!(f.src, ip("192.0.2.1"));
        assert_eq!(f.dst, IpAddr::V4(MCAST_V4));
        assert_eq!(f.ttl, 255);
        let rx = rx_v4(&f);
        let a = decode(&rx, &v2_expect()).expect("valid advert");
        assert_eq!(
            a,
            Advert {
                version: Version::V2,
                vrid: 51,
                priority: 150,
                max_advert_int_cs: 100,
                addresses: vec![ip("192.0.2.51")],
                auth: Some(*b"secret12"),
            }
        );
        assert_eq!(peek_vrid(&rx.payload), Some(51));
        let bytes = encode(&a, f.src, f.dst, ChecksumMode::PseudoHeader).expect("encodes");
        assert_eq!(bytes, f.vrrp);
        // The mode only matters for v3 over IPv4.
        let bytes = encode(&a, f.src, f.dst, ChecksumMode::MessageOnly).expect("encodes");
        assert_eq!(bytes, f.vrrp);
    }

    #[test]
    fn v2_prio0_fixture() {
        let f = fixture(V2_PASS_PRIO0);
        let rx = rx_v4(&f);
        let a = decode(&rx, &v2_expect()).expect("valid advert");
        assert_eq!(a.priority, 0);
        assert_eq!(a.vrid, 51);
        assert_eq!(a.max_advert_int_cs, 100);
        assert_eq!(a.auth, Some(*b"secret12"));
        assert_eq!(a.addresses, vec![ip("192.0.2.51")]);
        let bytes = encode(&a, f.src, f.dst, ChecksumMode::PseudoHeader).expect("encodes");
        assert_eq!(bytes, f.vrrp);
    }

    #[test]
    fn v3_unicast_v4_fixture_uses_pseudo_header() {
        let f = fixture(V3_UNICAST_V4);
        assert_eq!(f.src, ip("192.0.2.1"));
        assert_eq!(f.dst, ip("192.0.2.2"));
        assert_eq!(f.ttl, 255);
        let rx = rx_v4(&f);
        let a = decode(&rx, &v3u_expect()).expect("valid advert");
        assert_eq!(
            a,
            Advert {
                version: Version::V3,
                vrid: 52,
                priority: 100,
                max_advert_int_cs: 10,
                addresses: vec![ip("192.0.2.52"), ip("192.0.2.152")],
                auth: None,
            }
        );
        // keepalived used the IPv4 pseudo-header form.
        let bytes = encode(&a, f.src, f.dst, ChecksumMode::PseudoHeader).expect("encodes");
        assert_eq!(bytes, f.vrrp);
        let (IpAddr::V4(s), IpAddr::V4(d)) = (f.src, f.dst) else {
            panic!("IPv4 fixture")
        };
        assert_eq!(v4_pseudo_checksum(s, d, &f.vrrp), 0);
        assert_ne!(checksum(&[&f.vrrp]), 0, "not the message-only form");
        // The RFC 9568 form differs only in the checksum.
        let plain = encode(&a, f.src, f.dst, ChecksumMode::MessageOnly).expect("encodes");
        assert_eq!(plain[..6], f.vrrp[..6]);
        assert_eq!(plain[8..], f.vrrp[8..]);
        assert_ne!(plain[6..8], f.vrrp[6..8]);
        assert_eq!(checksum(&[&plain]), 0);
    }

    #[test]
    fn v3_unicast_v4_prio0_fixture() {
        let f = fixture(V3_UNICAST_V4_PRIO0);
        let rx = rx_v4(&f);
        let a = decode(&rx, &v3u_expect()).expect("valid advert");
        assert_eq!(a.priority, 0);
        assert_eq!(a.max_advert_int_cs, 10);
        let bytes = encode(&a, f.src, f.dst, ChecksumMode::PseudoHeader).expect("encodes");
        assert_eq!(bytes, f.vrrp);
    }

    #[test]
    fn v3_ipv6_fixture_decodes_and_reencodes() {
        let f = fixture(V3_IPV6);
        assert_eq!(f.src, ip("fe80::ff:fe00:a01"));
        assert_eq!(f.dst, IpAddr::V6(MCAST_V6));
        assert_eq!(f.ttl, 255);
        let rx = rx_v6(&f);
        let a = decode(&rx, &v6_expect()).expect("valid advert");
        assert_eq!(
            a,
            Advert {
                version: Version::V3,
                vrid: 53,
                priority: 100,
                max_advert_int_cs: 100,
                addresses: vec![ip("2001:db8::53")],
                auth: None,
            }
        );
        let bytes = encode(&a, f.src, f.dst, ChecksumMode::MessageOnly).expect("encodes");
        assert_eq!(bytes, f.vrrp);
    }

    #[test]
    fn v3_ipv6_prio0_fixture() {
        let f = fixture(V3_IPV6_PRIO0);
        let rx = rx_v6(&f);
        let a = decode(&rx, &v6_expect()).expect("valid advert");
        assert_eq!(a.priority, 0);
        let bytes = encode(&a, f.src, f.dst, ChecksumMode::PseudoHeader).expect("encodes");
        assert_eq!(bytes, f.vrrp);
    }

    #[test]
    fn v3_ipv4_checksum_acceptance() {
        let f = fixture(V3_UNICAST_V4);
        let pseudo = rx_v4(&f);
        let a = decode(&pseudo, &v3u_expect()).expect("valid");
        let mut plain = pseudo.clone();
        plain.payload = encode(&a, f.src, f.dst, ChecksumMode::MessageOnly).expect("encodes");
        // Old-keepalived unicast form: multicast group in the pseudo-header.
        let mut compat = pseudo.clone();
        compat.payload =
            encode(&a, f.src, IpAddr::V4(MCAST_V4), ChecksumMode::PseudoHeader).expect("encodes");
        let with = |accept| Expect {
            accept_checksum: accept,
            ..v3u_expect()
        };
        for rx in [&pseudo, &plain, &compat] {
            assert!(decode(rx, &with(AcceptChecksum::Both)).is_ok());
        }
        assert!(decode(&pseudo, &with(AcceptChecksum::PseudoHeaderOnly)).is_ok());
        assert!(decode(&compat, &with(AcceptChecksum::PseudoHeaderOnly)).is_ok());
        assert_eq!(
            decode(&plain, &with(AcceptChecksum::PseudoHeaderOnly)),
            Err(DropReason::BadChecksum)
        );
        assert!(decode(&plain, &with(AcceptChecksum::MessageOnly)).is_ok());
        assert_eq!(
            decode(&pseudo, &with(AcceptChecksum::MessageOnly)),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn every_drop_reason_from_mutated_fixtures() {
        let v2 = rx_v4(&fixture(V2_PASS));
        let v3u = rx_v4(&fixture(V3_UNICAST_V4));
        let v6 = rx_v6(&fixture(V3_IPV6));
        let v2_packet = fixture(V2_PASS).packet;
        let mut seen = std::collections::BTreeSet::new();
        let mut check = |rx: &Received, expect: &Expect, want: DropReason| {
            assert_eq!(decode(rx, expect), Err(want), "{}", want.name());
            seen.insert(want);
        };
        let check_ip = |packet: &[u8], want: DropReason| {
            assert_eq!(parse_ipv4_packet(packet), Err(want), "{}", want.name());
            want
        };
        let mut ip_seen = Vec::new();

        // --- IP level (parse_ipv4_packet) ---
        ip_seen.push(check_ip(&v2_packet[..19], DropReason::Truncated));
        ip_seen.push(check_ip(&v2_packet[..30], DropReason::Truncated)); // tot_len > received
        let mut p = v2_packet.clone();
        p[0] = 0x65;
        ip_seen.push(check_ip(&p, DropReason::BadIpHeader));
        let mut p = v2_packet.clone();
        p[0] = 0x44;
        ip_seen.push(check_ip(&p, DropReason::BadIpHeader));
        let mut p = v2_packet.clone();
        p.push(0);
        ip_seen.push(check_ip(&p, DropReason::BadIpHeader)); // tot_len < received
        let mut p = v2_packet.clone();
        p[9] = 51; // AH
        ip_seen.push(check_ip(&p, DropReason::BadProtocol));

        // --- VRRP level ---
        for (rx, exp) in [(&v2, v2_expect()), (&v3u, v3u_expect()), (&v6, v6_expect())] {
            // Truncated: below the fixed header, and short of the announced count.
            let mut m = rx.clone();
            m.payload.truncate(7);
            check(&m, &exp, DropReason::Truncated);
            let mut m = rx.clone();
            m.payload.pop();
            check(&m, &exp, DropReason::Truncated);
            let mut m = rx.clone();
            m.payload[3] += 1;
            refill_checksum(&mut m);
            check(&m, &exp, DropReason::Truncated);
            // BadLength: trailing bytes.
            let mut m = rx.clone();
            m.payload.extend_from_slice(&[0, 0]);
            refill_checksum(&mut m);
            check(&m, &exp, DropReason::BadLength);
            // BadVersion: other version, and a nonsense one.
            for first in [
                0x11u8,
                if exp.version == Version::V2 {
                    0x31
                } else {
                    0x21
                },
            ] {
                let mut m = rx.clone();
                m.payload[0] = first;
                refill_checksum(&mut m);
                check(&m, &exp, DropReason::BadVersion);
            }
            // BadType.
            let mut m = rx.clone();
            m.payload[0] = (m.payload[0] & 0xf0) | 2;
            refill_checksum(&mut m);
            check(&m, &exp, DropReason::BadType);
            // WrongVrid.
            let mut m = rx.clone();
            m.payload[1] = 99;
            refill_checksum(&mut m);
            check(&m, &exp, DropReason::WrongVrid);
            // BadChecksum: one bit flipped in the checksum, and in the body.
            let mut m = rx.clone();
            m.payload[7] ^= 1;
            check(&m, &exp, DropReason::BadChecksum);
            let mut m = rx.clone();
            m.payload[2] ^= 0x10;
            check(&m, &exp, DropReason::BadChecksum);
            // AddressCountMismatch / AddressListMismatch against the configured VIPs.
            let mut want = exp.addresses.clone().expect("fixture expects addresses");
            let extra = if rx.src.is_ipv4() {
                ip("192.0.2.99")
            } else {
                ip("2001:db8::99")
            };
            want.push(extra);
            let e = Expect {
                addresses: Some(want.clone()),
                ..exp.clone()
            };
            check(rx, &e, DropReason::AddressCountMismatch);
            want.remove(0);
            let e = Expect {
                addresses: Some(want),
                ..exp.clone()
            };
            check(rx, &e, DropReason::AddressListMismatch);
            // Unchecked addresses: fine.
            let e = Expect {
                addresses: None,
                ..exp.clone()
            };
            assert!(decode(rx, &e).is_ok());
            // NotAPeer: unicast peers configured, the source is not one of them.
            let stranger = if rx.src.is_ipv4() {
                ip("192.0.2.66")
            } else {
                ip("2001:db8::66")
            };
            let e = Expect {
                peers: Some(vec![stranger]),
                ..exp.clone()
            };
            check(rx, &e, DropReason::NotAPeer);
            let e = Expect {
                peers: Some(vec![stranger, rx.src]),
                ..exp.clone()
            };
            assert!(decode(rx, &e).is_ok(), "from a configured peer");
        }

        // BadTtl: multicast (checked) vs unicast (keepalived skips the check).
        let mut m = v2.clone();
        m.ttl = 64;
        check(&m, &v2_expect(), DropReason::BadTtl);
        let mut m = v6.clone();
        m.ttl = 1;
        check(&m, &v6_expect(), DropReason::BadTtl);
        let mut m = v3u.clone();
        m.ttl = 64;
        assert!(
            decode(&m, &v3u_expect()).is_ok(),
            "unicast: TTL not checked"
        );
        let e = Expect {
            check_ttl: true,
            ..v3u_expect()
        };
        check(&m, &e, DropReason::BadTtl);

        // AddressFamily: mixed endpoints, v2 over IPv6.
        let mut m = v3u.clone();
        m.dst = IpAddr::V6(MCAST_V6);
        check(&m, &v3u_expect(), DropReason::AddressFamily);
        let mut m = v6.clone();
        m.payload[0] = 0x21;
        let e = Expect {
            version: Version::V2,
            ..v6_expect()
        };
        check(&m, &e, DropReason::AddressFamily);

        // AuthMismatch: wrong password, and the same password in the packet but a
        // different expected one; flipping a byte of the auth data after refilling.
        let e = Expect {
            auth: Some(auth_from_password("secret13").expect("ok")),
            ..v2_expect()
        };
        check(&v2, &e, DropReason::AuthMismatch);
        let mut m = v2.clone();
        let last = m.payload.len() - 1;
        m.payload[last] ^= 0x01;
        refill_checksum(&mut m);
        check(&m, &v2_expect(), DropReason::AuthMismatch);
        // AuthTypeMismatch: PASS received without auth configured, none received with
        // auth configured, AH / unknown type received.
        let e = Expect {
            auth: None,
            ..v2_expect()
        };
        check(&v2, &e, DropReason::AuthTypeMismatch);
        for t in [0u8, 2, 7] {
            let mut m = v2.clone();
            m.payload[4] = t;
            refill_checksum(&mut m);
            check(&m, &v2_expect(), DropReason::AuthTypeMismatch);
        }
        // IntervalMismatch (v2 only): packet says 1 s, we run 2 s; and vice versa.
        let e = Expect {
            advert_int_cs: 200,
            ..v2_expect()
        };
        check(&v2, &e, DropReason::IntervalMismatch);
        let mut m = v2.clone();
        m.payload[5] = 3;
        refill_checksum(&mut m);
        check(&m, &v2_expect(), DropReason::IntervalMismatch);
        // v3 does not check the interval: a backup adopts the master's.
        let e = Expect {
            advert_int_cs: 100,
            ..v3u_expect()
        };
        assert_eq!(decode(&v3u, &e).map(|a| a.max_advert_int_cs), Ok(10));

        for r in DropReason::ALL {
            assert!(
                seen.contains(&r) || ip_seen.contains(&r),
                "DropReason::{r:?} not covered"
            );
        }
    }

    #[test]
    fn no_panic_on_any_prefix_or_garbage() {
        let f = fixture(V2_PASS);
        for n in 0..f.packet.len() {
            let _ = parse_ipv4_packet(&f.packet[..n]);
        }
        let rx = rx_v6(&fixture(V3_IPV6));
        for n in 0..rx.payload.len() {
            let mut m = rx.clone();
            m.payload.truncate(n);
            assert!(decode(&m, &v6_expect()).is_err());
        }
        // Count 255 with a tiny body, all-ones bytes, etc.
        let mut state = 0x1234_5678u32;
        for len in 0..64 {
            let payload: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect();
            for exp in [v2_expect(), v3u_expect(), v6_expect()] {
                let (src, dst) = if exp.vrid == 53 {
                    (ip("fe80::1"), IpAddr::V6(MCAST_V6))
                } else {
                    (ip("192.0.2.9"), IpAddr::V4(MCAST_V4))
                };
                let rx = Received {
                    src,
                    dst,
                    ttl: 255,
                    payload: payload.clone(),
                };
                let _ = decode(&rx, &exp);
            }
        }
    }

    #[test]
    fn encode_validation() {
        let base = Advert {
            version: Version::V3,
            vrid: 7,
            priority: 100,
            max_advert_int_cs: 100,
            addresses: vec![ip("192.0.2.7")],
            auth: None,
        };
        let (s, d) = (ip("192.0.2.1"), IpAddr::V4(MCAST_V4));
        let ok = encode(&base, s, d, ChecksumMode::PseudoHeader).expect("encodes");
        assert_eq!(ok.len(), 12);
        assert_eq!(
            encode(&base, s, IpAddr::V6(MCAST_V6), ChecksumMode::PseudoHeader),
            Err(EncodeError::MixedEndpoints {
                src: s,
                dst: IpAddr::V6(MCAST_V6)
            })
        );
        let a = Advert {
            addresses: vec![ip("2001:db8::1")],
            ..base.clone()
        };
        assert_eq!(
            encode(&a, s, d, ChecksumMode::PseudoHeader),
            Err(EncodeError::AddressFamily(ip("2001:db8::1")))
        );
        let a = Advert {
            vrid: 0,
            ..base.clone()
        };
        assert_eq!(
            encode(&a, s, d, ChecksumMode::PseudoHeader),
            Err(EncodeError::BadVrid)
        );
        for cs in [0u16, 4096] {
            let a = Advert {
                max_advert_int_cs: cs,
                ..base.clone()
            };
            assert!(matches!(
                encode(&a, s, d, ChecksumMode::PseudoHeader),
                Err(EncodeError::BadInterval { .. })
            ));
        }
        let a = Advert {
            auth: Some([1; 8]),
            ..base.clone()
        };
        assert_eq!(
            encode(&a, s, d, ChecksumMode::PseudoHeader),
            Err(EncodeError::AuthOnV3)
        );
        let a = Advert {
            addresses: (0..256u32)
                .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
                .collect(),
            ..base.clone()
        };
        assert_eq!(
            encode(&a, s, d, ChecksumMode::PseudoHeader),
            Err(EncodeError::TooManyAddresses(256))
        );
        let v2 = Advert {
            version: Version::V2,
            ..base.clone()
        };
        for cs in [0u16, 150, 25600] {
            let a = Advert {
                max_advert_int_cs: cs,
                ..v2.clone()
            };
            assert!(matches!(
                encode(&a, s, d, ChecksumMode::PseudoHeader),
                Err(EncodeError::BadInterval { .. })
            ));
        }
        let a = Advert {
            addresses: vec![ip("2001:db8::1")],
            ..v2.clone()
        };
        assert_eq!(
            encode(
                &a,
                ip("fe80::1"),
                IpAddr::V6(MCAST_V6),
                ChecksumMode::PseudoHeader
            ),
            Err(EncodeError::V2NotIpv4)
        );
        // v2 without auth: auth type 0, 8 zero bytes, and it decodes back.
        let bytes = encode(&v2, s, d, ChecksumMode::PseudoHeader).expect("encodes");
        assert_eq!(bytes.len(), 8 + 4 + 8);
        assert_eq!(bytes[4], AUTH_NONE);
        assert_eq!(&bytes[12..], &[0; 8]);
        let rx = Received {
            src: s,
            dst: d,
            ttl: 255,
            payload: bytes,
        };
        assert_eq!(decode(&rx, &Expect::new(Version::V2, 7, 100)), Ok(v2));
    }

    #[test]
    fn password_rules() {
        assert_eq!(auth_from_password("secret12"), Ok(*b"secret12"));
        assert_eq!(auth_from_password("abc"), Ok(*b"abc\0\0\0\0\0"));
        assert_eq!(auth_from_password(""), Err(AuthError::Empty));
        assert_eq!(
            auth_from_password("secret123"),
            Err(AuthError::TooLong { len: 9 })
        );
    }

    #[test]
    fn drop_reason_names_are_unique_and_indexed() {
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(names.insert(r.name()), "duplicate {}", r.name());
        }
    }
}
