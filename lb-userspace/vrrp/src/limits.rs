//! The bounds VRRP (and keepalived) put on an instance's settings: the one place they
//! are defined. The config validator, the keepalived importer, the codec and the state
//! machine all check against these.

use std::time::Duration;

/// Largest VRRPv3 Max Advertise Interval (12 bits, centiseconds).
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;
/// Largest VRRPv3 advert interval (4095 centiseconds).
pub const V3_MAX_INTERVAL: Duration = Duration::from_millis(V3_MAX_INTERVAL_CS as u64 * 10);
/// Largest VRRPv2 advert interval, in whole seconds (8 bits).
pub const V2_MAX_INTERVAL_SECS: u64 = 255;
/// Virtual addresses that fit in one advert (the count field is 8 bits).
pub const MAX_VIRTUAL_ADDRESSES: usize = 255;
/// keepalived's bound on a tracking weight (`-253..=253`).
pub const MAX_TRACK_WEIGHT: i64 = 253;
/// keepalived's (and lbd's) bound on `preempt_delay`.
pub const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(1000);
/// Bytes of a VRRPv2 PASS password.
pub const AUTH_PASS_LEN: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v3_interval_bound_is_40_95_s() {
        assert_eq!(V3_MAX_INTERVAL, Duration::from_millis(40_950));
    }
}
