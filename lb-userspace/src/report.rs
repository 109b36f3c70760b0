//! Errors at lbd's and lbctl's edge: the whole cause chain down to the system call's
//! errno (libraries such as aya put the errno only in a `source()`, so `"{e}"` alone
//! says "failed to create map `LB_FRAG_ROUTES`" and nothing else), plus what a
//! permission or descriptor error means for this program.
//!
//! [`describe`] is pure (the process's privileges are passed in), so the wording is
//! tested without root; [`Privileges::current`] reads them from `/proc/self/status`.

use std::{error::Error, io};

/// Which program reports the error (the hint differs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// lbd: loads, pins and attaches the data plane, talks rtnetlink, runs VRRP.
    Lbd,
    /// lbctl: reads the pinned maps when lbd is not running, removes them on detach.
    Lbctl,
}

/// Capabilities lbd uses, as `(bit, name)`, in the order the hint names them.
const CAPS: [(u32, &str); 4] = [
    (39, "CAP_BPF"),
    (38, "CAP_PERFMON"),
    (12, "CAP_NET_ADMIN"),
    (13, "CAP_NET_RAW"),
];
/// CAP_SYS_ADMIN's bit: before Linux 5.8 it stands for CAP_BPF and CAP_PERFMON.
const CAP_SYS_ADMIN: u32 = 21;

/// The privileges a process runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privileges {
    /// Effective user id.
    pub euid: u32,
    /// Effective capability set (`CapEff` bits).
    pub cap_eff: u64,
}

impl Privileges {
    /// This process's, from `/proc/self/status` (all capabilities assumed if it
    /// cannot be read: then the hint says nothing wrong about them).
    pub fn current() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let cap_eff = field("CapEff:")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or(u64::MAX);
        Privileges { euid, cap_eff }
    }

    fn has(&self, bit: u32) -> bool {
        self.cap_eff & (1u64 << bit) != 0
    }

    /// The capabilities lbd uses that this process lacks (CAP_BPF and CAP_PERFMON
    /// count as held when CAP_SYS_ADMIN is).
    pub fn missing(&self) -> Vec<&'static str> {
        CAPS.iter()
            .filter(|(bit, _)| {
                !(self.has(*bit) || (*bit == 39 || *bit == 38) && self.has(CAP_SYS_ADMIN))
            })
            .map(|(_, name)| *name)
            .collect()
    }
}

/// `err` and its causes, `": "`-separated; a cause whose text its parent already
/// shows is left out.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The errno of the first system-call error in `err`'s chain.
pub fn errno(err: &(dyn Error + 'static)) -> Option<i32> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(code) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        next = e.source();
    }
    None
}

/// The symbolic name of the errnos a hint is given for.
fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        _ => return None,
    })
}

/// What `errno` means for `who` running with `privs`, if anything useful can be said.
pub fn hint(code: i32, who: Who, privs: &Privileges) -> Option<String> {
    let name = errno_name(code)?;
    let text = match code {
        libc::EPERM | libc::EACCES => {
            let missing = privs.missing();
            let running = if missing.is_empty() {
                format!(
                    "it runs as uid {} with all of them, so a security module, a seccomp \
                     filter or the pin directory's permissions refused it",
                    privs.euid
                )
            } else {
                format!(
                    "it runs as uid {} without {}",
                    privs.euid,
                    missing.join(", ")
                )
            };
            match who {
                Who::Lbd => format!(
                    "lbd needs root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN before Linux \
                     5.8) to create, load and pin the data plane, CAP_NET_ADMIN to attach \
                     XDP and manage neighbours and VIPs, CAP_NET_RAW for [[vrrp]], and \
                     write access to the pin directory on the bpffs (scripts/deploy/lbd.service \
                     grants exactly these); {running}"
                ),
                Who::Lbctl => format!(
                    "lbctl needs root (or CAP_BPF and access to the pin directory) to read \
                     or remove the pinned maps, and root to use lbd's control socket; \
                     {running}"
                ),
            }
        }
        _ => "out of file descriptors: raise the limit (`ulimit -n`, or LimitNOFILE= in \
              the systemd unit; scripts/deploy/lbd.service sets 65536)"
            .to_owned(),
    };
    Some(format!("{name}: {text}"))
}

/// The whole message for `err`: its chain, then the hint for its errno, if any.
pub fn describe(err: &(dyn Error + 'static), who: Who, privs: &Privileges) -> String {
    let mut out = chain(err);
    if let Some(h) = errno(err).and_then(|code| hint(code, who, privs)) {
        out.push_str(" (");
        out.push_str(&h);
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to create map `LB_FRAG_ROUTES`")]
    struct Create {
        #[source]
        io_error: io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("loading the XDP object: {0}")]
        Load(#[source] Create),
    }

    const NOBODY: Privileges = Privileges {
        euid: 65534,
        cap_eff: 0,
    };

    fn eperm() -> Outer {
        Outer::Load(Create {
            io_error: io::Error::from_raw_os_error(libc::EPERM),
        })
    }

    #[test]
    fn chain_reaches_the_errno() {
        let e = eperm();
        assert_eq!(
            chain(&e),
            "loading the XDP object: failed to create map `LB_FRAG_ROUTES`: \
             Operation not permitted (os error 1)"
        );
        assert_eq!(errno(&e), Some(libc::EPERM));
        let plain = io::Error::other("no errno here");
        assert_eq!(errno(&plain), None);
        assert_eq!(describe(&plain, Who::Lbd, &NOBODY), "no errno here");
    }

    #[test]
    fn eperm_names_root_and_the_missing_capabilities() {
        let text = describe(&eperm(), Who::Lbd, &NOBODY);
        assert!(
            text.contains("(os error 1) (EPERM: lbd needs root, or CAP_BPF"),
            "{text}"
        );
        assert!(
            text.ends_with("without CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW)"),
            "{text}"
        );
        // CAP_SYS_ADMIN stands for CAP_BPF and CAP_PERFMON.
        let sys_admin = Privileges {
            euid: 0,
            cap_eff: 1 << CAP_SYS_ADMIN,
        };
        assert_eq!(sys_admin.missing(), ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
        let all = Privileges {
            euid: 0,
            cap_eff: u64::MAX,
        };
        assert!(all.missing().is_empty());
        let text = describe(&eperm(), Who::Lbd, &all);
        assert!(text.contains("with all of them"), "{text}");
        let text = describe(&eperm(), Who::Lbctl, &NOBODY);
        assert!(text.contains("EPERM: lbctl needs root"), "{text}");
    }

    #[test]
    fn emfile_says_raise_the_limit() {
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        let text = describe(&e, Who::Lbd, &NOBODY);
        assert!(
            text.starts_with("Too many open files (os error 24) (EMFILE: out of file descriptors"),
            "{text}"
        );
        // Other errnos: the chain only.
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            describe(&e, Who::Lbd, &NOBODY),
            "No such file or directory (os error 2)"
        );
    }
}
