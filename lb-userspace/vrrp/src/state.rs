//! The VRRP state machine of one instance (RFC 3768 / RFC 5798, with keepalived's
//! FAULT state, tracking weights, `nopreempt`, `preempt_delay` and delayed
//! gratuitous ARP), on a clock the caller supplies.
//!
//! Pure code: no sockets, no timers, no `Instant::now()`, no logging. The daemon
//! feeds it decoded adverts ([`Instance::on_advert`]), timer expiries
//! ([`Instance::on_timer`], due at [`Instance::next_deadline`]), tracking results
//! ([`Instance::set_priority_adjustment`], [`Instance::set_fault`]) and shutdown, and
//! carries out the returned [`Action`]s in order. Tests drive it with a simulated
//! clock.
//!
//! Behaviour follows keepalived 2.2.7 where it refines the RFCs:
//! - a master hearing a lower priority (or priority 0) answers with an advert at once,
//!   but (unlike keepalived) at most once per advert interval: a flood of such
//!   adverts costs one extra advert per interval, not one per advert received;
//! - `preempt_delay`: a preempting backup keeps accepting the lower-priority master
//!   for that long after first hearing it, then lets its Master_Down timer run out;
//!   leaving FAULT also starts the delay;
//! - v3 Skew_Time is computed in whole centiseconds, v2 in microseconds;
//! - a master entering FAULT or stopping sends priority 0 and drops the VIPs.
//!
//! And where VRRPv3's lack of authentication makes keepalived's behaviour a
//! liability: a v3 backup adopts the master's advert interval (RFC 5798) only up to
//! its own configured one ([`Instance::master_adver_int`]). keepalived adopts any
//! value, so one forged advert with priority 255 and the largest interval (40.95 s)
//! holds every backup silent for 3 x 40.95 s + skew, about two minutes; here, for at
//! most 3 x our own interval + skew (3.6 s at the default 1 s). A shorter interval is
//! adopted as is (it only makes us take over sooner), and a genuine master whose
//! interval is longer than ours is still heard in time as long as it is below about
//! three of ours: give every node of a VRID the same `advert_interval` (VRRPv2
//! requires it; keepalived drops v2 adverts that differ).

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use super::packet::{AcceptChecksum, Advert, Expect, Version, V3_MAX_INTERVAL_CS};

/// The priority of the address owner: always master, never adjusted.
pub const PRIORITY_OWNER: u8 = 255;
/// How far ahead [`Instance::next_deadline`] points when nothing is timed (FAULT,
/// stopped): the daemon may call [`Instance::on_timer`] then; it does nothing.
const IDLE: Duration = Duration::from_secs(3600);
/// Smallest interval the state machine runs with (one centisecond, the v3 unit).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Configuration of one VRRP instance (keepalived `vrrp_instance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Instance name (for notifications: `INSTANCE <name> <STATE> <prio>`).
    pub name: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// VRRP version.
    pub version: Version,
    /// Base priority, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Our advert interval. v2: whole seconds, 1..=255 s; v3: 10 ms steps, up to
    /// 40.95 s.
    pub advert_int: Duration,
    /// Preempt a lower-priority master (false = keepalived `nopreempt`).
    pub preempt: bool,
    /// keepalived `preempt_delay`: how long a backup that would preempt waits first.
    pub preempt_delay: Duration,
    /// The virtual addresses.
    pub addresses: Vec<IpAddr>,
    /// Our own primary address (the adverts' source): the election tie-breaker.
    pub primary: IpAddr,
    /// Unicast peers (empty = multicast). Where to send is the daemon's business;
    /// here it decides whether the TTL is checked (see [`InstanceConfig::expect`]).
    pub unicast_peers: Vec<IpAddr>,
    /// Gratuitous ARPs / unsolicited NAs per burst (keepalived `garp_master_repeat`,
    /// default 5). 0: none.
    pub garp_repeat: u32,
    /// Delay of the second burst after becoming master (keepalived
    /// `garp_master_delay`, default 5 s). Zero: no second burst.
    pub garp_refresh_delay: Duration,
}

/// Why an [`InstanceConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// VRID 0.
    #[error("virtual_router_id must be 1..=255")]
    BadVrid,
    /// Priority 0 (reserved for "master leaving").
    #[error("priority must be 1..=255")]
    BadPriority,
    /// The advert interval is not representable in the version's field.
    #[error("advert_int {0:?} not allowed (v2: whole seconds 1..=255; v3: 10 ms steps, 10 ms..=40.95 s)")]
    BadInterval(Duration),
    /// A virtual address or peer is not of the primary address's family, or v2 is
    /// asked to carry IPv6.
    #[error("address {0} is not of the instance's address family")]
    AddressFamily(IpAddr),
    /// More than 255 virtual addresses.
    #[error("{0} virtual addresses; at most 255 fit in an advert")]
    TooManyAddresses(usize),
}

impl InstanceConfig {
    /// A config with keepalived's defaults: priority 100, advert_int 1 s, preempt
    /// on without delay, multicast, 5 gratuitous ARPs at transition and 5 more 5 s
    /// later.
    pub fn new(
        name: impl Into<String>,
        vrid: u8,
        version: Version,
        primary: IpAddr,
        addresses: Vec<IpAddr>,
    ) -> Self {
        InstanceConfig {
            name: name.into(),
            vrid,
            version,
            priority: 100,
            advert_int: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            addresses,
            primary,
            unicast_peers: Vec::new(),
            garp_repeat: 5,
            garp_refresh_delay: Duration::from_secs(5),
        }
    }

    /// Check what [`Instance::new`] would otherwise silently clamp.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::BadVrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::BadPriority);
        }
        let ms = self.advert_int.as_millis();
        let ok = match self.version {
            Version::V2 => {
                self.advert_int.subsec_nanos() == 0
                    && (1..=255).contains(&self.advert_int.as_secs())
            }
            Version::V3 => {
                self.advert_int.subsec_nanos().is_multiple_of(10_000_000)
                    && (10..=u128::from(V3_MAX_INTERVAL_CS) * 10).contains(&ms)
            }
        };
        if !ok {
            return Err(ConfigError::BadInterval(self.advert_int));
        }
        if self.version == Version::V2 && !self.primary.is_ipv4() {
            return Err(ConfigError::AddressFamily(self.primary));
        }
        if let Some(bad) = self
            .addresses
            .iter()
            .chain(&self.unicast_peers)
            .find(|a| a.is_ipv4() != self.primary.is_ipv4())
        {
            return Err(ConfigError::AddressFamily(*bad));
        }
        if self.addresses.len() > crate::limits::MAX_VIRTUAL_ADDRESSES {
            return Err(ConfigError::TooManyAddresses(self.addresses.len()));
        }
        Ok(())
    }

    /// Our advert interval in centiseconds, as sent (saturating).
    pub fn advert_int_cs(&self) -> u16 {
        u16::try_from(self.advert_int.as_millis() / 10).unwrap_or(u16::MAX)
    }

    /// What received adverts must match, as keepalived checks them: TTL only for
    /// multicast, the configured VIPs, both v3/IPv4 checksum forms; with unicast
    /// peers, the source must be one of them (keepalived's `check_unicast_src`,
    /// always on here: an advert from anyone else is dropped as `not_a_peer`).
    pub fn expect(&self, auth: Option<[u8; 8]>) -> Expect {
        Expect {
            version: self.version,
            vrid: self.vrid,
            auth,
            advert_int_cs: self.advert_int_cs(),
            check_ttl: self.unicast_peers.is_empty(),
            accept_checksum: AcceptChecksum::Both,
            addresses: Some(self.addresses.clone()),
            peers: (!self.unicast_peers.is_empty()).then(|| self.unicast_peers.clone()),
        }
    }
}

/// VRRP state (keepalived's, which adds FAULT to the RFC's three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running: before start and after [`Instance::shutdown`] (keepalived's
    /// STOP in notifications).
    Init,
    /// Listening to a master; takes over when it falls silent.
    Backup,
    /// Owning the VIPs and advertising.
    Master,
    /// Interface down or a weight-0 tracked check failing: neither master nor a
    /// candidate.
    Fault,
}

impl State {
    /// keepalived's name in notify arguments (`INSTANCE <name> <STATE> <prio>`).
    pub fn keepalived_name(self) -> &'static str {
        match self {
            State::Init => "STOP",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// What the daemon must do, in the order returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send one advert with this priority (0 = we are leaving).
    SendAdvert {
        /// Priority to put in the advert.
        priority: u8,
    },
    /// Add the VIPs, switch forwarding on.
    BecomeMaster,
    /// Switch forwarding off, remove the VIPs.
    LeaveMaster,
    /// One burst of [`InstanceConfig::garp_repeat`] gratuitous ARPs (IPv4, sender =
    /// target = VIP) / unsolicited NAs with the Override flag (IPv6) per VIP.
    SendGratuitous,
    /// Run notify hooks: state entered, with the effective priority.
    Notify {
        /// The state entered.
        state: State,
        /// Effective priority at that moment.
        priority: u8,
    },
}

/// One VRRP instance.
#[derive(Debug, Clone)]
pub struct Instance {
    cfg: InstanceConfig,
    /// Our advert interval (clamped to at least 10 ms).
    advert_int: Duration,
    base_priority: u8,
    adjustment: i32,
    state: State,
    fault: bool,
    stopped: bool,
    /// v2: ours; v3: the master's, adopted from its adverts while backup.
    master_adver_int: Duration,
    /// Backup: when the master is declared dead.
    master_down_at: Instant,
    /// Master: next advert.
    advert_at: Instant,
    /// Master: the delayed second gratuitous ARP burst.
    garp_refresh_at: Option<Instant>,
    /// Backup with preempt_delay: when preempting a lower-priority master may start.
    preempt_at: Option<Instant>,
    /// Master: when we last answered a lower-priority (or priority-0) advert at
    /// once; the next such answer waits one advert interval.
    answered_at: Option<Instant>,
    master: Option<IpAddr>,
    transitions: u64,
    /// Actions produced by `new` (startup), handed out by the next call.
    pending: Vec<Action>,
    /// Latest time seen (for the idle deadline).
    last_now: Instant,
}

impl Instance {
    /// Start an instance at `now`: in Backup with the Master_Down timer running, or,
    /// for the address owner (priority 255), in Master at once (RFC 5798 6.4.1).
    /// The startup actions (a `Notify`, and for the owner the master actions) come
    /// out of the next call; [`Instance::next_deadline`] is `now` until then, so
    /// calling [`Instance::on_timer`] right away collects them.
    ///
    /// Invalid values are clamped (priority 0 -> 1, interval -> at least 10 ms); use
    /// [`InstanceConfig::validate`] to reject them instead.
    pub fn new(cfg: InstanceConfig, now: Instant) -> Self {
        let advert_int = cfg.advert_int.max(MIN_INTERVAL);
        let base_priority = cfg.priority.max(1);
        let mut inst = Instance {
            cfg,
            advert_int,
            base_priority,
            adjustment: 0,
            state: State::Init,
            fault: false,
            stopped: false,
            master_adver_int: advert_int,
            master_down_at: now,
            advert_at: now,
            garp_refresh_at: None,
            preempt_at: None,
            answered_at: None,
            master: None,
            transitions: 0,
            pending: Vec::new(),
            last_now: now,
        };
        let mut out = Vec::new();
        if base_priority == PRIORITY_OWNER {
            inst.become_master(now, &mut out);
        } else {
            inst.enter_backup(now, &mut out);
        }
        inst.transitions = 0;
        inst.pending = out;
        inst
    }

    /// A decoded, valid advert from `from` (its IP source address).
    pub fn on_advert(&mut self, from: IpAddr, advert: &Advert, now: Instant) -> Vec<Action> {
        let mut out = self.begin(now);
        if self.stopped
            || self.fault
            || advert.vrid != self.cfg.vrid
            || advert.version != self.cfg.version
            || from == self.cfg.primary
        {
            // Not ours, not now, or our own advert looped back.
            return out;
        }
        let ours = self.effective_priority();
        match self.state {
            State::Backup => {
                if advert.priority == 0 {
                    // The master is leaving: take over after Skew_Time only.
                    self.master_down_at = now + self.skew();
                    self.master = None;
                } else if !self.cfg.preempt || advert.priority >= ours || self.preempt_holding(now)
                {
                    self.adopt_interval(advert);
                    self.master_down_at = now + self.master_down_interval();
                    self.master = Some(from);
                    if !self.cfg.preempt_delay.is_zero() {
                        if advert.priority >= ours {
                            self.preempt_at = None;
                        } else if self.preempt_at.is_none() {
                            self.preempt_at = Some(now + self.cfg.preempt_delay);
                        }
                    }
                } else {
                    // Lower priority and we preempt: ignore it and let the
                    // Master_Down timer run out.
                    self.master = Some(from);
                }
            }
            State::Master => {
                let higher =
                    advert.priority > ours || (advert.priority == ours && from > self.cfg.primary);
                if advert.priority != 0 && higher {
                    self.adopt_interval(advert);
                    self.leave_master(now, &mut out);
                    self.master = Some(from);
                } else if self.answered_at.is_none_or(|t| now >= t + self.advert_int) {
                    // Priority 0 (another master leaving) or a lower priority: assert
                    // ourselves at once, as keepalived does, but at most once per
                    // advert interval (a flood of adverts must not make us send one
                    // for each; the periodic advert follows within the interval).
                    out.push(Action::SendAdvert { priority: ours });
                    self.advert_at = now + self.advert_int;
                    self.answered_at = Some(now);
                }
            }
            State::Init | State::Fault => {}
        }
        out
    }

    /// The timer fired: call when `now >= next_deadline()` (earlier calls only hand
    /// out pending actions).
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = self.begin(now);
        if self.stopped || self.fault {
            return out;
        }
        match self.state {
            State::Backup => {
                if now >= self.master_down_at {
                    self.become_master(now, &mut out);
                }
            }
            State::Master => {
                if self.garp_refresh_at.is_some_and(|t| now >= t) {
                    self.garp_refresh_at = None;
                    out.push(Action::SendGratuitous);
                }
                if now >= self.advert_at {
                    out.push(Action::SendAdvert {
                        priority: self.effective_priority(),
                    });
                    let next = self.advert_at + self.advert_int;
                    // Late caller: do not fire a burst to catch up.
                    self.advert_at = if next > now {
                        next
                    } else {
                        now + self.advert_int
                    };
                }
            }
            State::Init | State::Fault => {}
        }
        out
    }

    /// When [`Instance::on_timer`] is next due.
    pub fn next_deadline(&self) -> Instant {
        if !self.pending.is_empty() {
            return self.last_now;
        }
        if self.stopped || self.fault {
            return self.last_now + IDLE;
        }
        match self.state {
            State::Backup => self.master_down_at,
            State::Master => match self.garp_refresh_at {
                Some(g) => g.min(self.advert_at),
                None => self.advert_at,
            },
            State::Init | State::Fault => self.last_now + IDLE,
        }
    }

    /// Tracking: the sum of the weights of tracked scripts / services that currently
    /// apply. Effective priority = clamp(base + delta, 1, 254); the owner (255)
    /// never moves. Like keepalived, nothing is sent at once: the election moves at
    /// the next advert / timer.
    pub fn set_priority_adjustment(&mut self, delta: i32, now: Instant) -> Vec<Action> {
        let out = self.begin(now);
        self.adjustment = delta;
        out
    }

    /// Interface down or a weight-0 tracked check failing (`true`), or recovered
    /// (`false`). A master entering FAULT sends priority 0 and leaves master;
    /// leaving FAULT goes to Backup (the owner straight to Master) and, with
    /// `preempt_delay`, starts the delay.
    pub fn set_fault(&mut self, fault: bool, now: Instant) -> Vec<Action> {
        let mut out = self.begin(now);
        if self.stopped || fault == self.fault {
            return out;
        }
        self.fault = fault;
        if fault {
            if self.state == State::Master {
                out.push(Action::SendAdvert { priority: 0 });
                out.push(Action::LeaveMaster);
            }
            self.garp_refresh_at = None;
            self.preempt_at = None;
            self.master = None;
            self.set_state(State::Fault, &mut out);
        } else {
            self.master_adver_int = self.advert_int;
            if self.base_priority == PRIORITY_OWNER {
                self.become_master(now, &mut out);
            } else {
                self.enter_backup(now, &mut out);
                if !self.cfg.preempt_delay.is_zero() {
                    self.preempt_at = Some(now + self.cfg.preempt_delay);
                }
            }
        }
        out
    }

    /// Stop: a master sends priority 0 and leaves master. Afterwards the instance is
    /// in [`State::Init`] and ignores everything.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        let mut out = self.begin(now);
        if self.stopped {
            return out;
        }
        if self.state == State::Master {
            out.push(Action::SendAdvert { priority: 0 });
            out.push(Action::LeaveMaster);
        }
        self.stopped = true;
        self.garp_refresh_at = None;
        self.preempt_at = None;
        self.master = None;
        self.set_state(State::Init, &mut out);
        out
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Priority we advertise: base + tracking adjustment, clamped to 1..=254; 255
    /// for the owner.
    pub fn effective_priority(&self) -> u8 {
        if self.base_priority == PRIORITY_OWNER {
            return PRIORITY_OWNER;
        }
        let p = (i64::from(self.base_priority) + i64::from(self.adjustment)).clamp(1, 254);
        u8::try_from(p).unwrap_or(254)
    }

    /// The current master as far as we know: our primary address while master, the
    /// last advertising master while backup, `None` when unknown.
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    /// State changes since start (the initial state does not count).
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// Master_Adver_Interval: ours (v2), or the master's adopted from its adverts
    /// (v3 backup), at most our own configured interval (see the module docs).
    pub fn master_adver_int(&self) -> Duration {
        self.master_adver_int
    }

    /// The advert to encode for [`Action::SendAdvert`] (`auth`: v2 PASS data).
    pub fn make_advert(&self, priority: u8, auth: Option<[u8; 8]>) -> Advert {
        Advert {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            max_advert_int_cs: self.cfg.advert_int_cs(),
            addresses: self.cfg.addresses.clone(),
            auth: match self.cfg.version {
                Version::V2 => auth,
                Version::V3 => None,
            },
        }
    }

    /// Skew_Time for our effective priority. v2: (256 - prio) / 256 s; v3:
    /// ((256 - prio) x Master_Adver_Interval) / 256 in whole centiseconds.
    pub fn skew(&self) -> Duration {
        let p = 256 - u64::from(self.effective_priority());
        match self.cfg.version {
            Version::V2 => Duration::from_micros(p * 1_000_000 / 256),
            Version::V3 => {
                let cs = u64::try_from(self.master_adver_int.as_millis() / 10).unwrap_or(u64::MAX);
                Duration::from_millis(p.saturating_mul(cs) / 256 * 10)
            }
        }
    }

    /// Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_int * 3 + self.skew()
    }

    /// Start of every entry point: remember the time, hand out pending actions.
    fn begin(&mut self, now: Instant) -> Vec<Action> {
        if now > self.last_now {
            self.last_now = now;
        }
        std::mem::take(&mut self.pending)
    }

    /// While a preempt delay is set and has not run out, a preempting backup still
    /// accepts the lower-priority master.
    fn preempt_holding(&self, now: Instant) -> bool {
        !self.cfg.preempt_delay.is_zero() && self.preempt_at.is_none_or(|t| now < t)
    }

    /// v3: Master_Adver_Interval := the advert's (at least one centisecond), capped
    /// at our own advert interval: v3 has no authentication, so an advert with a
    /// huge interval must not keep us silent for minutes.
    fn adopt_interval(&mut self, advert: &Advert) {
        if self.cfg.version == Version::V3 {
            let theirs = Duration::from_millis(u64::from(advert.max_advert_int_cs.max(1)) * 10);
            self.master_adver_int = theirs.min(self.advert_int);
        }
    }

    fn set_state(&mut self, state: State, out: &mut Vec<Action>) {
        if self.state != state {
            self.state = state;
            self.transitions += 1;
        }
        out.push(Action::Notify {
            state,
            priority: self.effective_priority(),
        });
    }

    fn enter_backup(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.master_down_at = now + self.master_down_interval();
        self.master = None;
        self.set_state(State::Backup, out);
    }

    fn become_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        let priority = self.effective_priority();
        out.push(Action::SendAdvert { priority });
        out.push(Action::BecomeMaster);
        if self.cfg.garp_repeat > 0 {
            out.push(Action::SendGratuitous);
            if !self.cfg.garp_refresh_delay.is_zero() {
                self.garp_refresh_at = Some(now + self.cfg.garp_refresh_delay);
            }
        }
        self.advert_at = now + self.advert_int;
        self.master_adver_int = self.advert_int;
        self.preempt_at = None;
        self.answered_at = None;
        self.master = Some(self.cfg.primary);
        self.set_state(State::Master, out);
    }

    /// Master -> Backup on hearing a better master; `master_adver_int` already set.
    fn leave_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::LeaveMaster);
        self.garp_refresh_at = None;
        self.preempt_at = None;
        self.master_down_at = now + self.master_down_interval();
        self.set_state(State::Backup, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{decode, encode, ChecksumMode, DropReason, Received, MCAST_V4};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip literal")
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn cfg(primary: &str, priority: u8, version: Version) -> InstanceConfig {
        InstanceConfig {
            priority,
            ..InstanceConfig::new(
                "VI_1",
                51,
                version,
                ip(primary),
                vec![ip("192.0.2.100"), ip("192.0.2.101")],
            )
        }
    }

    fn advert(priority: u8, version: Version, int_cs: u16) -> Advert {
        Advert {
            version,
            vrid: 51,
            priority,
            max_advert_int_cs: int_cs,
            addresses: vec![ip("192.0.2.100"), ip("192.0.2.101")],
            auth: None,
        }
    }

    fn master_actions(priority: u8) -> Vec<Action> {
        vec![
            Action::SendAdvert { priority },
            Action::BecomeMaster,
            Action::SendGratuitous,
            Action::Notify {
                state: State::Master,
                priority,
            },
        ]
    }

    /// Several instances on one simulated link, adverts delivered instantly through
    /// the real codec (encode -> decode with each receiver's Expect).
    struct Sim {
        t0: Instant,
        now: Instant,
        nodes: Vec<Instance>,
        up: Vec<bool>,
        /// (node, time since t0, action)
        log: Vec<(usize, Duration, Action)>,
    }

    impl Sim {
        fn new(cfgs: Vec<InstanceConfig>) -> Self {
            let t0 = Instant::now();
            let nodes: Vec<Instance> = cfgs.into_iter().map(|c| Instance::new(c, t0)).collect();
            let up = vec![true; nodes.len()];
            let mut sim = Sim {
                t0,
                now: t0,
                nodes,
                up,
                log: Vec::new(),
            };
            for i in 0..sim.nodes.len() {
                let a = sim.nodes[i].on_timer(t0);
                sim.handle(i, a);
            }
            sim
        }

        /// Add a node later (it starts at the current time).
        fn add(&mut self, c: InstanceConfig) -> usize {
            self.nodes.push(Instance::new(c, self.now));
            self.up.push(true);
            let i = self.nodes.len() - 1;
            let a = self.nodes[i].on_timer(self.now);
            self.handle(i, a);
            i
        }

        fn handle(&mut self, from: usize, actions: Vec<Action>) {
            let mut queue: Vec<(usize, Action)> = actions.into_iter().map(|a| (from, a)).collect();
            while !queue.is_empty() {
                let (node, action) = queue.remove(0);
                self.log.push((node, self.now - self.t0, action));
                let Action::SendAdvert { priority } = action else {
                    continue;
                };
                let sender = &self.nodes[node];
                let src = sender.config().primary;
                let adv = sender.make_advert(priority, None);
                let bytes = encode(&adv, src, IpAddr::V4(MCAST_V4), ChecksumMode::PseudoHeader)
                    .expect("encodes");
                for j in 0..self.nodes.len() {
                    if j == node || !self.up[j] {
                        continue;
                    }
                    let rx = Received {
                        src,
                        dst: IpAddr::V4(MCAST_V4),
                        ttl: 255,
                        payload: bytes.clone(),
                    };
                    let Ok(decoded) = decode(&rx, &self.nodes[j].config().expect(None)) else {
                        continue;
                    };
                    let now = self.now;
                    let more = self.nodes[j].on_advert(src, &decoded, now);
                    queue.extend(more.into_iter().map(|a| (j, a)));
                }
            }
        }

        /// Run timers until `t0 + until`.
        fn run(&mut self, until: Duration) {
            let end = self.t0 + until;
            loop {
                let next = (0..self.nodes.len())
                    .filter(|&i| self.up[i])
                    .map(|i| self.nodes[i].next_deadline())
                    .min();
                let Some(next) = next.filter(|&n| n <= end) else {
                    self.now = end;
                    return;
                };
                self.now = self.now.max(next);
                // Fire every due timer first, then deliver: nodes due at the same
                // instant act simultaneously (both may become master).
                let now = self.now;
                let due: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| self.up[i] && self.nodes[i].next_deadline() <= now)
                    .collect();
                let fired: Vec<(usize, Vec<Action>)> = due
                    .into_iter()
                    .map(|i| (i, self.nodes[i].on_timer(now)))
                    .collect();
                for (i, a) in fired {
                    self.handle(i, a);
                }
            }
        }

        /// Node crashes silently (no priority 0).
        fn kill(&mut self, i: usize) {
            self.up[i] = false;
        }

        fn call(&mut self, i: usize, f: impl FnOnce(&mut Instance, Instant) -> Vec<Action>) {
            let now = self.now;
            let a = f(&mut self.nodes[i], now);
            self.handle(i, a);
        }

        fn states(&self) -> Vec<State> {
            self.nodes.iter().map(Instance::state).collect()
        }

        /// When node `i` last became master (time since t0).
        fn became_master(&self, i: usize) -> Option<Duration> {
            self.log
                .iter()
                .rev()
                .find(|(n, _, a)| *n == i && *a == Action::BecomeMaster)
                .map(|(_, t, _)| *t)
        }

        fn masters(&self) -> usize {
            self.states()
                .iter()
                .filter(|s| **s == State::Master)
                .count()
        }
    }

    #[test]
    fn startup_backup_then_master_at_exactly_silence_deadline_v2() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg("192.0.2.1", 100, Version::V2), t0);
        assert_eq!(i.state(), State::Backup);
        assert_eq!(i.next_deadline(), t0);
        assert_eq!(
            i.on_timer(t0),
            vec![Action::Notify {
                state: State::Backup,
                priority: 100
            }]
        );
        // 3 x 1 s + (256 - 100) / 256 s = 3.609375 s.
        let down = t0 + Duration::from_micros(3_609_375);
        assert_eq!(i.next_deadline(), down);
        assert!(i.on_timer(down - Duration::from_nanos(1)).is_empty());
        assert_eq!(i.state(), State::Backup);
        assert_eq!(i.on_timer(down), master_actions(100));
        assert_eq!(i.state(), State::Master);
        assert_eq!(i.master(), Some(ip("192.0.2.1")));
        assert_eq!(i.transitions(), 1);
        // Adverts every second from then on; the second GARP burst after 5 s.
        assert_eq!(i.next_deadline(), down + secs(1.0));
        for k in 1..=4u32 {
            let t = i.next_deadline();
            assert_eq!(t, down + Duration::from_secs(k.into()));
            assert_eq!(i.on_timer(t), vec![Action::SendAdvert { priority: 100 }]);
        }
        let t = i.next_deadline();
        assert_eq!(t, down + secs(5.0));
        assert_eq!(
            i.on_timer(t),
            vec![Action::SendGratuitous, Action::SendAdvert { priority: 100 }]
        );
        // Only once.
        let t = i.next_deadline();
        assert_eq!(t, down + secs(6.0));
        assert_eq!(i.on_timer(t), vec![Action::SendAdvert { priority: 100 }]);
    }

    #[test]
    fn silence_deadline_v3_uses_centisecond_skew() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg("192.0.2.1", 100, Version::V3), t0);
        i.on_timer(t0);
        // (156 x 100 cs) / 256 = 60 cs (keepalived truncates to centiseconds).
        assert_eq!(i.skew(), Duration::from_millis(600));
        let down = t0 + Duration::from_millis(3600);
        assert_eq!(i.next_deadline(), down);
        assert!(i.on_timer(down - Duration::from_nanos(1)).is_empty());
        assert_eq!(i.on_timer(down), master_actions(100));
    }

    #[test]
    fn election_higher_priority_wins() {
        let mut sim = Sim::new(vec![
            cfg("192.0.2.1", 100, Version::V2),
            cfg("192.0.2.2", 150, Version::V2),
        ]);
        sim.run(secs(10.0));
        assert_eq!(sim.states(), vec![State::Backup, State::Master]);
        // 150 wins first: 3 + 106/256 s.
        assert_eq!(sim.became_master(1), Some(Duration::from_micros(3_414_062)));
        assert_eq!(sim.became_master(0), None);
        assert_eq!(sim.nodes[0].master(), Some(ip("192.0.2.2")));
        assert_eq!(sim.nodes[0].transitions(), 0);
    }

    #[test]
    fn tie_broken_by_higher_primary_address() {
        // Same priority, same start: both time out together, both become master,
        // the one with the lower address yields on hearing the other.
        for version in [Version::V2, Version::V3] {
            let mut sim = Sim::new(vec![
                cfg("192.0.2.20", 100, version),
                cfg("192.0.2.3", 100, version),
            ]);
            sim.run(secs(10.0));
            assert_eq!(sim.states(), vec![State::Master, State::Backup]);
            assert_eq!(sim.nodes[1].master(), Some(ip("192.0.2.20")));
            assert!(sim
                .log
                .iter()
                .any(|(n, _, a)| *n == 1 && *a == Action::LeaveMaster));
        }
        // Directly: a master hearing an equal priority from a lower address stays
        // and answers; from a higher address it yields.
        let t0 = Instant::now();
        let mut m = Instance::new(
            InstanceConfig {
                priority: 255,
                ..cfg("192.0.2.10", 0, Version::V2)
            },
            t0,
        );
        m.on_timer(t0);
        assert_eq!(m.state(), State::Master);
        let a = advert(255, Version::V2, 100);
        assert_eq!(
            m.on_advert(ip("192.0.2.9"), &a, t0),
            vec![Action::SendAdvert { priority: 255 }]
        );
        assert_eq!(
            m.on_advert(ip("192.0.2.11"), &a, t0),
            vec![
                Action::LeaveMaster,
                Action::Notify {
                    state: State::Backup,
                    priority: 255
                }
            ]
        );
    }

    #[test]
    fn preempt_takes_over_from_lower_master() {
        let mut sim = Sim::new(vec![cfg("192.0.2.1", 100, Version::V2)]);
        sim.run(secs(5.0));
        assert_eq!(sim.states(), vec![State::Master]);
        let b = sim.add(cfg("192.0.2.2", 150, Version::V2));
        sim.run(secs(12.0));
        assert_eq!(sim.states(), vec![State::Backup, State::Master]);
        // Joined at 5 s; ignored the lower adverts; took over at its own
        // Master_Down_Interval.
        assert_eq!(
            sim.became_master(b),
            Some(secs(5.0) + Duration::from_micros(3_414_062))
        );
        assert_eq!(sim.masters(), 1);
    }

    #[test]
    fn nopreempt_keeps_live_lower_master() {
        let mut sim = Sim::new(vec![cfg("192.0.2.1", 100, Version::V2)]);
        sim.run(secs(5.0));
        let b = sim.add(InstanceConfig {
            preempt: false,
            ..cfg("192.0.2.2", 150, Version::V2)
        });
        sim.run(secs(60.0));
        assert_eq!(sim.states(), vec![State::Master, State::Backup]);
        assert_eq!(sim.nodes[b].master(), Some(ip("192.0.2.1")));
        // ... but takes over when it dies.
        sim.kill(0);
        sim.run(secs(70.0));
        assert_eq!(sim.nodes[b].state(), State::Master);
    }

    #[test]
    fn preempt_delay_defers_takeover() {
        let mut sim = Sim::new(vec![cfg("192.0.2.1", 100, Version::V2)]);
        sim.run(secs(5.0));
        let b = sim.add(InstanceConfig {
            preempt_delay: secs(10.0),
            ..cfg("192.0.2.2", 150, Version::V2)
        });
        sim.run(secs(15.0));
        assert_eq!(sim.nodes[b].state(), State::Backup, "still delaying");
        sim.run(secs(40.0));
        assert_eq!(sim.states(), vec![State::Backup, State::Master]);
        let at = sim.became_master(b).expect("took over");
        // A advertises at 3.609375 + k s. B hears the first lower advert at
        // 5.609375 s, so the delay ends at 15.609375 s; the last accepted advert is
        // the one at 14.609375 s, and B's Master_Down timer (3.414062 s) runs out at
        // 18.023437 s.
        assert_eq!(at, Duration::from_micros(14_609_375 + 3_414_062));
        // Without the delay it would have been much earlier.
        assert!(at > secs(15.0));
    }

    #[test]
    fn priority_zero_takeover_within_skew_time() {
        let mut sim = Sim::new(vec![
            cfg("192.0.2.1", 200, Version::V2),
            cfg("192.0.2.2", 100, Version::V2),
        ]);
        sim.run(secs(10.0));
        assert_eq!(sim.states(), vec![State::Master, State::Backup]);
        sim.call(0, Instance::shutdown);
        assert_eq!(
            sim.log
                .iter()
                .filter(|(n, t, _)| *n == 0 && *t == secs(10.0))
                .map(|(_, _, a)| *a)
                .collect::<Vec<_>>(),
            vec![
                Action::SendAdvert { priority: 0 },
                Action::LeaveMaster,
                Action::Notify {
                    state: State::Init,
                    priority: 200
                }
            ]
        );
        sim.kill(0);
        sim.run(secs(20.0));
        assert_eq!(sim.nodes[1].state(), State::Master);
        // Skew_Time of priority 100: 156/256 s.
        assert_eq!(
            sim.became_master(1),
            Some(secs(10.0) + Duration::from_micros(609_375))
        );
    }

    #[test]
    fn silent_master_death_detected_at_master_down_interval() {
        let mut sim = Sim::new(vec![
            cfg("192.0.2.1", 200, Version::V2),
            cfg("192.0.2.2", 100, Version::V2),
        ]);
        sim.run(secs(10.0));
        // Master became master at 3 + 56/256 s, adverts every second after.
        let last_advert = Duration::from_micros(3_218_750) + secs(6.0);
        sim.kill(0);
        sim.run(secs(20.0));
        assert_eq!(
            sim.became_master(1),
            Some(last_advert + Duration::from_micros(3_609_375))
        );
    }

    #[test]
    fn owner_255_is_master_at_once_and_never_moves() {
        let t0 = Instant::now();
        let mut o = Instance::new(cfg("192.0.2.1", 255, Version::V3), t0);
        assert_eq!(o.state(), State::Master);
        assert_eq!(o.next_deadline(), t0);
        assert_eq!(o.on_timer(t0), master_actions(255));
        assert_eq!(o.transitions(), 0);
        assert!(o.set_priority_adjustment(-100, t0).is_empty());
        assert_eq!(o.effective_priority(), 255);
        assert_eq!(o.state(), State::Master);
        // A 254 advert: answered, not obeyed.
        assert_eq!(
            o.on_advert(ip("192.0.2.9"), &advert(254, Version::V3, 100), t0),
            vec![Action::SendAdvert { priority: 255 }]
        );
        // Against a 254 in a simulation: owner wins straight away.
        let mut sim = Sim::new(vec![
            cfg("192.0.2.9", 254, Version::V2),
            cfg("192.0.2.1", 255, Version::V2),
        ]);
        sim.run(secs(10.0));
        assert_eq!(sim.states(), vec![State::Backup, State::Master]);
        assert_eq!(sim.became_master(1), Some(Duration::ZERO));
    }

    #[test]
    fn tracking_weight_crosses_the_gap_both_ways() {
        let mut sim = Sim::new(vec![
            cfg("192.0.2.1", 150, Version::V2),
            cfg("192.0.2.2", 100, Version::V2),
        ]);
        sim.run(secs(10.0));
        assert_eq!(sim.states(), vec![State::Master, State::Backup]);
        // A's tracked service fails (weight -60): 90 < 100.
        sim.call(0, |i, now| i.set_priority_adjustment(-60, now));
        assert_eq!(sim.nodes[0].effective_priority(), 90);
        sim.run(secs(20.0));
        assert_eq!(sim.states(), vec![State::Backup, State::Master]);
        let b_at = sim.became_master(1).expect("B took over");
        assert!(b_at > secs(10.0) && b_at <= secs(10.0) + secs(1.0) + secs(3.61));
        // It recovers: 150 > 100 again, A preempts back.
        sim.call(0, |i, now| i.set_priority_adjustment(0, now));
        sim.run(secs(30.0));
        assert_eq!(sim.states(), vec![State::Master, State::Backup]);
        assert_eq!(sim.masters(), 1);

        // Positive weights too, and the clamp.
        let t0 = Instant::now();
        let mut i = Instance::new(cfg("192.0.2.1", 100, Version::V2), t0);
        i.set_priority_adjustment(50, t0);
        assert_eq!(i.effective_priority(), 150);
        i.set_priority_adjustment(500, t0);
        assert_eq!(i.effective_priority(), 254);
        i.set_priority_adjustment(-500, t0);
        assert_eq!(i.effective_priority(), 1);
        i.set_priority_adjustment(i32::MIN, t0);
        assert_eq!(i.effective_priority(), 1);
        i.set_priority_adjustment(i32::MAX, t0);
        assert_eq!(i.effective_priority(), 254);
    }

    #[test]
    fn fault_entering_and_leaving() {
        let mut sim = Sim::new(vec![
            cfg("192.0.2.1", 150, Version::V2),
            cfg("192.0.2.2", 100, Version::V2),
        ]);
        sim.run(secs(10.0));
        let t = sim.now;
        let out = sim.nodes[0].set_fault(true, t);
        assert_eq!(
            out,
            vec![
                Action::SendAdvert { priority: 0 },
                Action::LeaveMaster,
                Action::Notify {
                    state: State::Fault,
                    priority: 150
                }
            ]
        );
        assert_eq!(sim.nodes[0].state(), State::Fault);
        assert_eq!(sim.nodes[0].next_deadline(), t + IDLE);
        sim.handle(0, out);
        sim.run(secs(20.0));
        // B took over within its skew time after the priority 0.
        assert_eq!(
            sim.became_master(1),
            Some(secs(10.0) + Duration::from_micros(609_375))
        );
        // In FAULT: adverts and timers ignored, repeated set_fault(true) is a no-op.
        assert_eq!(sim.nodes[0].state(), State::Fault);
        assert!(sim.nodes[0].set_fault(true, t).is_empty());
        // Leaving FAULT: Backup, then preempts B again (150 > 100).
        let t = sim.now;
        assert_eq!(
            sim.nodes[0].set_fault(false, t),
            vec![Action::Notify {
                state: State::Backup,
                priority: 150
            }]
        );
        sim.run(secs(30.0));
        assert_eq!(sim.states(), vec![State::Master, State::Backup]);
        // A backup entering FAULT: only the notification.
        let t = sim.now;
        assert_eq!(
            sim.nodes[1].set_fault(true, t),
            vec![Action::Notify {
                state: State::Fault,
                priority: 100
            }]
        );
        // The owner leaving FAULT goes straight to master.
        let t0 = Instant::now();
        let mut o = Instance::new(cfg("192.0.2.5", 255, Version::V2), t0);
        o.on_timer(t0);
        o.set_fault(true, t0);
        assert_eq!(o.set_fault(false, t0), master_actions(255));
    }

    #[test]
    fn shutdown_backup_and_after() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg("192.0.2.1", 100, Version::V2), t0);
        i.on_timer(t0);
        assert_eq!(
            i.shutdown(t0),
            vec![Action::Notify {
                state: State::Init,
                priority: 100
            }]
        );
        assert_eq!(i.state(), State::Init);
        let later = t0 + secs(100.0);
        assert!(i.on_timer(later).is_empty());
        assert!(i
            .on_advert(ip("192.0.2.2"), &advert(0, Version::V2, 100), later)
            .is_empty());
        assert!(i.set_fault(true, later).is_empty());
        assert!(i.shutdown(later).is_empty());
        assert_eq!(i.state(), State::Init);
    }

    #[test]
    fn v3_backup_adopts_master_interval() {
        let t0 = Instant::now();
        // Configured for 1 s, the master advertises every 100 ms.
        let mut b = Instance::new(cfg("192.0.2.1", 100, Version::V3), t0);
        b.on_timer(t0);
        assert!(b
            .on_advert(ip("192.0.2.2"), &advert(200, Version::V3, 10), t0)
            .is_empty());
        assert_eq!(b.master_adver_int(), Duration::from_millis(100));
        // 3 x 100 ms + (156 x 10 cs) / 256 = 6 cs.
        assert_eq!(b.master_down_interval(), Duration::from_millis(360));
        assert_eq!(b.next_deadline(), t0 + Duration::from_millis(360));
        assert_eq!(
            b.on_timer(t0 + Duration::from_millis(360)),
            master_actions(100)
        );
        // As master it advertises its own interval again.
        assert_eq!(b.master_adver_int(), Duration::from_secs(1));
        assert_eq!(b.make_advert(100, None).max_advert_int_cs, 100);
        assert_eq!(b.next_deadline(), t0 + Duration::from_millis(1360));
    }

    #[test]
    fn a_flood_of_lower_adverts_is_answered_once_per_interval() {
        // The adversarial run: 3,000 valid priority-100 adverts in 1.5 s at a master
        // (1 s interval) drew 3,010 adverts. Now: one answer per interval, plus the
        // periodic adverts.
        let t0 = Instant::now();
        let mut m = Instance::new(
            InstanceConfig {
                garp_repeat: 0,
                ..cfg("192.0.2.1", 255, Version::V2)
            },
            t0,
        );
        m.on_timer(t0);
        assert_eq!(m.state(), State::Master);
        let lower = advert(100, Version::V2, 100);
        let (mut answers, mut periodic) = (0, 0);
        let sends = |a: &[Action]| {
            a.iter()
                .filter(|a| matches!(a, Action::SendAdvert { .. }))
                .count()
        };
        for k in 0..3000u64 {
            let now = t0 + Duration::from_micros(500 * k);
            if m.next_deadline() <= now {
                periodic += sends(&m.on_timer(now));
            }
            answers += sends(&m.on_advert(ip("192.0.2.66"), &lower, now));
        }
        assert_eq!(m.state(), State::Master);
        // Answers at 0 s and 1 s; the periodic advert due at 1 s went out too.
        assert_eq!(answers, 2, "answers");
        assert!(periodic <= 2, "periodic adverts: {periodic}");
        // Still answered promptly after a quiet interval.
        let later = t0 + secs(10.0);
        m.on_timer(later);
        assert_eq!(
            m.on_advert(ip("192.0.2.2"), &lower, later),
            vec![Action::SendAdvert { priority: 255 }]
        );
    }

    #[test]
    fn v3_adopted_interval_is_capped_at_ours() {
        // The adversarial run: a stranger's priority-255 advert with a 40.95 s
        // interval made the backup (and a master, which yields) wait 3 x 40.95 s.
        let t0 = Instant::now();
        let mut b = Instance::new(cfg("192.0.2.1", 100, Version::V3), t0);
        b.on_timer(t0);
        let forged = advert(255, Version::V3, 4095);
        assert!(b.on_advert(ip("192.0.2.66"), &forged, t0).is_empty());
        assert_eq!(b.master_adver_int(), Duration::from_secs(1));
        // 3 x 1 s + 60 cs, not 3 x 40.95 s + skew.
        assert_eq!(b.next_deadline(), t0 + Duration::from_millis(3600));
        assert_eq!(
            b.on_timer(t0 + Duration::from_millis(3600)),
            master_actions(100)
        );
        // A master that yields to it is capped the same way.
        let t1 = t0 + secs(5.0);
        let out = b.on_advert(ip("192.0.2.66"), &forged, t1);
        assert_eq!(out[0], Action::LeaveMaster);
        assert_eq!(b.master_adver_int(), Duration::from_secs(1));
        assert_eq!(b.next_deadline(), t1 + Duration::from_millis(3600));
        // Shorter intervals are adopted as they are (v3_backup_adopts_master_interval),
        // and exactly ours too.
        let mut c = Instance::new(cfg("192.0.2.1", 100, Version::V3), t0);
        c.on_timer(t0);
        c.on_advert(ip("192.0.2.2"), &advert(200, Version::V3, 100), t0);
        assert_eq!(c.master_adver_int(), Duration::from_secs(1));
    }

    #[test]
    fn v2_interval_mismatch_is_dropped_by_the_codec() {
        // A v2 peer running 2 s adverts: our codec drops them, so the backup takes
        // over at its own silence deadline (keepalived does the same).
        let t0 = Instant::now();
        let c = cfg("192.0.2.1", 100, Version::V2);
        let mut b = Instance::new(c.clone(), t0);
        b.on_timer(t0);
        let peer = advert(200, Version::V2, 200);
        let src = ip("192.0.2.2");
        let bytes =
            encode(&peer, src, IpAddr::V4(MCAST_V4), ChecksumMode::PseudoHeader).expect("encodes");
        let rx = Received {
            src,
            dst: IpAddr::V4(MCAST_V4),
            ttl: 255,
            payload: bytes,
        };
        assert_eq!(
            decode(&rx, &c.expect(None)),
            Err(DropReason::IntervalMismatch)
        );
        let down = b.next_deadline();
        assert_eq!(down, t0 + Duration::from_micros(3_609_375));
        assert_eq!(b.on_timer(down), master_actions(100));
    }

    #[test]
    fn master_answers_lower_and_zero_priority() {
        let t0 = Instant::now();
        let mut m = Instance::new(cfg("192.0.2.1", 150, Version::V2), t0);
        m.on_timer(t0);
        let t = m.next_deadline();
        m.on_timer(t);
        assert_eq!(m.state(), State::Master);
        let t1 = t + secs(0.5);
        assert_eq!(
            m.on_advert(ip("192.0.2.2"), &advert(100, Version::V2, 100), t1),
            vec![Action::SendAdvert { priority: 150 }]
        );
        assert_eq!(m.next_deadline(), t1 + secs(1.0), "advert timer reset");
        // Within the same interval another one is not answered (rate limit) ...
        assert!(m
            .on_advert(ip("192.0.2.2"), &advert(0, Version::V2, 100), t1)
            .is_empty());
        assert_eq!(m.next_deadline(), t1 + secs(1.0), "timer untouched");
        // ... one an interval later is.
        let t2 = t1 + secs(1.0);
        assert_eq!(
            m.on_advert(ip("192.0.2.2"), &advert(0, Version::V2, 100), t2),
            vec![Action::SendAdvert { priority: 150 }]
        );
        assert_eq!(m.state(), State::Master);
        // Own advert looped back: ignored.
        assert!(m
            .on_advert(ip("192.0.2.1"), &advert(150, Version::V2, 100), t1)
            .is_empty());
        // Another VRID / version: ignored.
        let mut other = advert(200, Version::V2, 100);
        other.vrid = 52;
        assert!(m.on_advert(ip("192.0.2.2"), &other, t1).is_empty());
        assert!(m
            .on_advert(ip("192.0.2.2"), &advert(200, Version::V3, 100), t1)
            .is_empty());
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn garp_settings() {
        let t0 = Instant::now();
        let mut i = Instance::new(
            InstanceConfig {
                garp_repeat: 0,
                ..cfg("192.0.2.1", 255, Version::V2)
            },
            t0,
        );
        assert_eq!(
            i.on_timer(t0),
            vec![
                Action::SendAdvert { priority: 255 },
                Action::BecomeMaster,
                Action::Notify {
                    state: State::Master,
                    priority: 255
                }
            ]
        );
        let mut i = Instance::new(
            InstanceConfig {
                garp_refresh_delay: Duration::ZERO,
                ..cfg("192.0.2.1", 255, Version::V2)
            },
            t0,
        );
        assert_eq!(i.on_timer(t0), master_actions(255));
        for k in 1..10u64 {
            let t = i.next_deadline();
            assert_eq!(t, t0 + Duration::from_secs(k));
            assert_eq!(i.on_timer(t), vec![Action::SendAdvert { priority: 255 }]);
        }
    }

    #[test]
    fn late_timer_calls_do_not_burst() {
        let t0 = Instant::now();
        let mut i = Instance::new(
            InstanceConfig {
                garp_repeat: 0,
                ..cfg("192.0.2.1", 255, Version::V2)
            },
            t0,
        );
        i.on_timer(t0);
        let late = t0 + secs(7.5);
        assert_eq!(i.on_timer(late), vec![Action::SendAdvert { priority: 255 }]);
        assert_eq!(i.next_deadline(), late + secs(1.0));
        assert!(i.on_timer(late).is_empty());
    }

    #[test]
    fn config_validation() {
        let good = cfg("192.0.2.1", 100, Version::V2);
        assert_eq!(good.validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut InstanceConfig)| {
            let mut c = good.clone();
            f(&mut c);
            c.validate()
        };
        assert_eq!(bad(&|c| c.vrid = 0), Err(ConfigError::BadVrid));
        assert_eq!(bad(&|c| c.priority = 0), Err(ConfigError::BadPriority));
        assert!(matches!(
            bad(&|c| c.advert_int = secs(0.5)),
            Err(ConfigError::BadInterval(_))
        ));
        assert!(matches!(
            bad(&|c| c.advert_int = secs(256.0)),
            Err(ConfigError::BadInterval(_))
        ));
        assert_eq!(
            bad(&|c| c.addresses.push(ip("2001:db8::1"))),
            Err(ConfigError::AddressFamily(ip("2001:db8::1")))
        );
        assert_eq!(
            bad(&|c| {
                c.version = Version::V3;
                c.advert_int = Duration::from_millis(100);
            }),
            Ok(())
        );
        assert!(matches!(
            bad(&|c| {
                c.version = Version::V3;
                c.advert_int = Duration::from_millis(105);
            }),
            Err(ConfigError::BadInterval(_))
        ));
        assert!(matches!(
            bad(&|c| {
                c.version = Version::V3;
                c.advert_int = secs(41.0);
            }),
            Err(ConfigError::BadInterval(_))
        ));
        let e = good.expect(Some([1; 8]));
        assert!(e.check_ttl);
        assert_eq!(e.advert_int_cs, 100);
        let uni = InstanceConfig {
            unicast_peers: vec![ip("192.0.2.2")],
            ..good.clone()
        };
        assert!(!uni.expect(None).check_ttl);
        // Unicast: only the configured peers are heard; multicast: anyone.
        assert_eq!(uni.expect(None).peers, Some(vec![ip("192.0.2.2")]));
        assert_eq!(good.expect(None).peers, None);
        // Clamping in `new`.
        let i = Instance::new(
            InstanceConfig {
                priority: 0,
                advert_int: Duration::ZERO,
                ..good
            },
            Instant::now(),
        );
        assert_eq!(i.effective_priority(), 1);
        assert_eq!(i.master_adver_int(), Duration::from_millis(10));
    }
}
