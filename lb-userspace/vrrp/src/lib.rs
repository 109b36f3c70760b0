//! VRRP for lbd, speaking exactly what keepalived 2.2.7 speaks: VRRPv2 (RFC 3768,
//! with keepalived's PASS auth) and VRRPv3 (RFC 5798 / 9568), IPv4 and IPv6,
//! multicast and unicast.
//!
//! The pure core (codec, state machine, counters) and the I/O edge an instance needs
//! (raw sockets, gratuitous ARP / NA, notify scripts); VIP addresses are
//! `lb_netlink::addr`, tracking is lbd's node core:
//! - [`packet`]: the wire codec (encode, IPv4 header parsing, decode with every
//!   check keepalived makes, each failure a counted [`DropReason`]);
//! - [`state`]: one instance's state machine on a caller-supplied clock, returning
//!   [`Action`]s;
//! - [`Counters`]: what the daemon exposes per instance (drops by reason, adverts
//!   received / sent, transitions);
//! - [`notify`]: starting keepalived-style notify scripts on a state change.
//!
//! Typical use per instance: `peek_vrid` to route a received packet, `decode` with
//! `InstanceConfig::expect`, `Counters::record_decode`, `Instance::on_advert`; run
//! `Instance::on_timer` at `Instance::next_deadline`; perform the actions in order,
//! encoding `SendAdvert` with `Instance::make_advert` + `encode`.

pub mod announce;
pub mod io;
pub mod limits;
pub mod notify;
pub mod packet;
pub mod state;

pub use packet::{
    auth_from_password, decode, encode, parse_ipv4_packet, peek_vrid, AcceptChecksum, Advert,
    AuthError, ChecksumMode, DropReason, EncodeError, Expect, Received, Version, IPPROTO_VRRP,
    MCAST_V4, MCAST_V6, VRRP_TTL,
};
pub use state::{Action, ConfigError, Instance, InstanceConfig, State, PRIORITY_OWNER};

/// Per-instance VRRP counters for metrics and `lbctl`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Adverts that passed every check.
    pub adverts_received: u64,
    /// Of those, adverts with priority 0 (a master leaving).
    pub priority_zero_received: u64,
    /// Adverts sent (counted by the daemon after a successful send).
    pub adverts_sent: u64,
    /// State transitions.
    pub transitions: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Count one dropped packet.
    pub fn record_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Count one accepted advert.
    pub fn record_received(&mut self, advert: &Advert) {
        self.adverts_received += 1;
        if advert.priority == 0 {
            self.priority_zero_received += 1;
        }
    }

    /// Count the outcome of [`decode`] (or [`parse_ipv4_packet`] mapped into it).
    pub fn record_decode(&mut self, result: &Result<Advert, DropReason>) {
        match result {
            Ok(a) => self.record_received(a),
            Err(r) => self.record_drop(*r),
        }
    }

    /// Count one advert sent.
    pub fn record_sent(&mut self) {
        self.adverts_sent += 1;
    }

    /// Take the transition count from the instance (it counts them itself).
    pub fn sync_transitions(&mut self, instance: &Instance) {
        self.transitions = instance.transitions();
    }

    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every reason with its count (zeros included, in [`DropReason::ALL`] order),
    /// for metrics labelled by [`DropReason::name`].
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.drops[r.index()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn counters_count_by_reason() {
        let mut c = Counters::default();
        let a = Advert {
            version: Version::V3,
            vrid: 1,
            priority: 0,
            max_advert_int_cs: 100,
            addresses: vec![],
            auth: None,
        };
        c.record_decode(&Ok(a.clone()));
        c.record_decode(&Ok(Advert { priority: 9, ..a }));
        c.record_decode(&Err(DropReason::BadTtl));
        c.record_decode(&Err(DropReason::BadTtl));
        c.record_drop(DropReason::AuthMismatch);
        c.record_sent();
        assert_eq!(c.adverts_received, 2);
        assert_eq!(c.priority_zero_received, 1);
        assert_eq!(c.adverts_sent, 1);
        assert_eq!(c.dropped(DropReason::BadTtl), 2);
        assert_eq!(c.dropped(DropReason::AuthMismatch), 1);
        assert_eq!(c.dropped(DropReason::Truncated), 0);
        assert_eq!(c.dropped_total(), 3);
        assert_eq!(c.drops().count(), DropReason::ALL.len());
        let t0 = Instant::now();
        let cfg = InstanceConfig {
            priority: 255,
            ..InstanceConfig::new(
                "x",
                1,
                Version::V3,
                "192.0.2.1".parse().expect("ip"),
                vec![],
            )
        };
        let mut i = Instance::new(cfg, t0);
        i.on_timer(t0);
        i.shutdown(t0);
        c.sync_transitions(&i);
        assert_eq!(c.transitions, 1);
    }
}
