//! lbd's file-descriptor budget. The soft `RLIMIT_NOFILE` (often 1024) is raised to
//! the hard limit at start, and what lbd's own listeners may hold is capped
//! (`lb_api::control::MAX_CONNECTIONS`, `crate::metrics::MAX_CONNECTIONS`), so that
//! clients can never take the descriptors health checks, netlink, VRRP and the data
//! plane need: those always have at least [`RESERVE`] left.

use std::io;

/// Descriptors kept for everything but the listeners' clients: the data plane's maps
/// and links, netlink and VRRP sockets, and the health checks (at most 64 probes at
/// once, each a socket or a script's pipes), with room to spare.
pub const RESERVE: u64 = 512;

/// A soft limit above this is not asked for (the kernel's `nr_open` default is 2^20).
const CEILING: u64 = 1 << 20;

/// What [`raise_nofile`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nofile {
    /// Soft limit before.
    pub was: u64,
    /// Soft limit now.
    pub now: u64,
    /// Hard limit.
    pub hard: u64,
}

impl Nofile {
    /// Whether the listeners' caps plus [`RESERVE`] fit in the soft limit.
    pub fn enough(&self, listeners: u64) -> bool {
        self.now >= listeners + RESERVE
    }
}

/// The soft limit to ask for: the hard limit, bounded by [`CEILING`]; never lower
/// than the current one.
pub fn target(soft: u64, hard: u64) -> u64 {
    hard.min(CEILING).max(soft)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (bounded by 2^20).
pub fn raise_nofile() -> io::Result<Nofile> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (was, hard) = (lim.rlim_cur, lim.rlim_max);
    let want = target(was, hard);
    if want == was {
        return Ok(Nofile {
            was,
            now: was,
            hard,
        });
    }
    lim.rlim_cur = want;
    // SAFETY: setrlimit reads only the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Nofile {
        was,
        now: want,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_the_hard_limit_bounded() {
        assert_eq!(target(1024, 524_288), 524_288);
        assert_eq!(target(1024, libc::RLIM_INFINITY), CEILING);
        assert_eq!(target(4096, 4096), 4096);
        // Never lowered.
        assert_eq!(target(1 << 21, libc::RLIM_INFINITY), 1 << 21);
    }

    #[test]
    fn enough_leaves_the_reserve() {
        let n = Nofile {
            was: 256,
            now: 256,
            hard: 256,
        };
        assert!(!n.enough(128));
        let n = Nofile { now: 1024, ..n };
        assert!(n.enough(128));
    }
}
