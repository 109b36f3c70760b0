//! The BPF filesystem under lbd's pin directory.
//!
//! lbd pins its program, maps and attach links in `[global] pin_dir` so that
//! forwarding survives a restart of lbd; that directory must be on a bpffs. When
//! the pin dir is under `/sys/fs/bpf` and nothing is mounted there, lbd mounts a
//! bpffs itself (mode 0700, as systemd does), as Cilium does. Any other problem
//! keeps the clear "not on a bpf filesystem" error.
//!
//! One trap: a mount lives in a mount namespace. In a private one (what
//! `ip netns exec` gives, a systemd unit with `PrivateTmp=`, `unshare -m`) the
//! bpffs lbd mounts dies with the namespace, i.e. when lbd exits, and takes the
//! pins, and so forwarding, with it. With the default pin dir lbd then refuses and
//! says what to do; with a pin dir under `/sys/fs/bpf` the operator chose, it
//! mounts and warns.
//!
//! [`decide`] is pure (facts in, [`Decision`] out) and unit-tested; [`ensure`]
//! gathers the facts (statfs, `/proc/self/mountinfo`, namespace ids), decides,
//! mounts, and logs what it did.

use std::ffi::CString;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Where lbd mounts a bpffs when nothing is mounted there.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// `statfs.f_type` of a bpffs (`BPF_FS_MAGIC` in linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Options of the bpffs lbd mounts: only root may list or open the pins.
const MOUNT_DATA: &std::ffi::CStr = c"mode=0700";

/// Whose mount namespace lbd runs in, i.e. how long a mount it makes lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountNs {
    /// The namespace of pid 1: a mount lives as long as the system (or container).
    Init,
    /// A namespace of its own (a readable ancestor is in another one): a mount
    /// dies with the last process in it, here lbd.
    Private,
    /// Could not be told (`/proc/<pid>/ns/mnt` of pid 1 and every ancestor
    /// unreadable or identical without pid 1 among them).
    Unknown,
}

/// What [`decide`] needs to know about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The pin dir, or its nearest existing ancestor, is on a bpffs (statfs).
    pub pin_dir_on_bpffs: bool,
    /// The file system type mounted on [`BPFFS_ROOT`] (the top of the stack, from
    /// mountinfo); `None` when nothing is mounted there.
    pub mounted_on_root: Option<String>,
    /// [`BPFFS_ROOT`] exists (the kernel's sysfs has it when BPF is built in).
    pub root_exists: bool,
    /// The mount namespace lbd runs in.
    pub ns: MountNs,
}

/// Why lbd mounts despite a doubt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning {
    /// The mount namespace is private: the mount (and the pins) die with lbd.
    PrivateNamespace,
    /// Whether the mount namespace is private could not be told.
    UnknownNamespace,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::PrivateNamespace => write!(
                f,
                "lbd runs in a private mount namespace: the bpffs it mounted on {BPFFS_ROOT} \
                 goes away when lbd exits, and the pinned program and maps (so forwarding) \
                 with it; for restart survival mount a bpffs on a path shared with the host \
                 and set [global] pin_dir to it"
            ),
            Warning::UnknownNamespace => write!(
                f,
                "could not tell whether lbd runs in the host's mount namespace \
                 (/proc/1/ns/mnt unreadable); if it does not, the bpffs it mounted on \
                 {BPFFS_ROOT} and the pins go away when lbd exits"
            ),
        }
    }
}

/// Why lbd refuses the pin dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not on a bpffs, and not a case lbd mounts for.
    NotBpffs,
    /// The default pin dir, nothing mounted, and a private mount namespace.
    PrivateNamespace,
}

/// What to do about the pin dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It is on a bpffs already.
    Ok,
    /// Mount a bpffs on [`BPFFS_ROOT`], logging the warning if any.
    Mount(Option<Warning>),
    /// Stop with an error.
    Refuse(Refusal),
}

/// What [`ensure`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The pin dir was on a bpffs already.
    AlreadyBpffs,
    /// lbd mounted a bpffs on [`BPFFS_ROOT`] (logged at info, the warning at warn).
    Mounted(Option<Warning>),
}

/// Why the pin dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    /// The pin directory is not on a BPF filesystem.
    #[error("pin_dir {0} is not on a bpf filesystem; mount one (mount -t bpf bpf /sys/fs/bpf) or set [global] pin_dir")]
    NotBpffs(PathBuf),
    /// The default pin dir would need a mount that dies with lbd.
    #[error(
        "pin_dir {0} needs a bpffs on {BPFFS_ROOT}, where nothing is mounted, but lbd runs in a \
         private mount namespace (e.g. `ip netns exec`): a bpffs mounted there goes away when lbd \
         exits, and the pinned program and maps, so forwarding, with it. Mount a bpffs on a path \
         shared with the host (e.g. `mkdir -p /run/lbd-bpf && mount -t bpf bpf /run/lbd-bpf` in \
         the host's namespace) and set [global] pin_dir to a directory on it (e.g. /run/lbd-bpf/lbd)"
    )]
    PrivateNamespace(PathBuf),
    /// mount(2) failed, or what it mounted is not a bpffs.
    #[error("mounting a bpffs on {BPFFS_ROOT} for pin_dir {pin_dir}: {source}")]
    Mount {
        /// The configured pin dir.
        pin_dir: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/self/mountinfo` could not be read.
    #[error("reading /proc/self/mountinfo: {0}")]
    Mountinfo(#[source] std::io::Error),
}

/// The pin dir lbd uses when `[global] pin_dir` is not set.
fn default_pin_dir() -> PathBuf {
    lb_config::Global::default().pin_dir
}

/// `path` is [`BPFFS_ROOT`] or below it, without `..` leading out.
fn under_root(path: &Path) -> bool {
    path.starts_with(BPFFS_ROOT) && !path.components().any(|c| c == Component::ParentDir)
}

/// What to do about `pin_dir`, given the facts. Pure.
pub fn decide(pin_dir: &Path, facts: &Facts) -> Decision {
    if facts.pin_dir_on_bpffs {
        return Decision::Ok;
    }
    // Only the well-known path gets a mount, and only when nothing is mounted on it
    // (a bpffs there with the pin dir not on it means a mount in between; another
    // file system there is the operator's, not to be shadowed).
    if !under_root(pin_dir) || facts.mounted_on_root.is_some() || !facts.root_exists {
        return Decision::Refuse(Refusal::NotBpffs);
    }
    match facts.ns {
        MountNs::Init => Decision::Mount(None),
        MountNs::Private if pin_dir == default_pin_dir() => {
            Decision::Refuse(Refusal::PrivateNamespace)
        }
        MountNs::Private => Decision::Mount(Some(Warning::PrivateNamespace)),
        MountNs::Unknown => Decision::Mount(Some(Warning::UnknownNamespace)),
    }
}

/// Makes sure `pin_dir` is on a bpffs: checks, mounts one on [`BPFFS_ROOT`] when
/// [`decide`] says so (logging it), or says why not.
pub fn ensure(pin_dir: &Path) -> Result<Outcome, BpffsError> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(BpffsError::Mountinfo)?;
    let facts = Facts {
        pin_dir_on_bpffs: on_bpffs(pin_dir),
        mounted_on_root: mounted_on(&mountinfo, Path::new(BPFFS_ROOT)),
        root_exists: Path::new(BPFFS_ROOT).is_dir(),
        ns: mount_ns(),
    };
    match decide(pin_dir, &facts) {
        Decision::Ok => Ok(Outcome::AlreadyBpffs),
        Decision::Refuse(Refusal::NotBpffs) => Err(BpffsError::NotBpffs(pin_dir.to_owned())),
        Decision::Refuse(Refusal::PrivateNamespace) => {
            Err(BpffsError::PrivateNamespace(pin_dir.to_owned()))
        }
        Decision::Mount(warning) => {
            mount_root().map_err(|source| BpffsError::Mount {
                pin_dir: pin_dir.to_owned(),
                source,
            })?;
            tracing::info!(
                pin_dir = %pin_dir.display(),
                "nothing was mounted on {BPFFS_ROOT}: mounted a bpffs there (mode 0700)"
            );
            if let Some(w) = warning {
                tracing::warn!("{w}");
            }
            Ok(Outcome::Mounted(warning))
        }
    }
}

/// mount -t bpf -o mode=0700,nosuid,nodev,noexec bpf /sys/fs/bpf, then checks it.
fn mount_root() -> std::io::Result<()> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            flags,
            MOUNT_DATA.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if fs_magic(Path::new(BPFFS_ROOT)) != Some(BPF_FS_MAGIC) {
        return Err(std::io::Error::other(
            "after mount(2) it is still not a bpffs",
        ));
    }
    Ok(())
}

/// statfs(2)'s `f_type` of `path`.
fn fs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: zeroed statfs is a valid out-parameter; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    (rc == 0).then_some(st.f_type as i64)
}

/// True if `path` (or its nearest existing ancestor) is on a bpffs.
pub fn on_bpffs(path: &Path) -> bool {
    let mut p = path;
    loop {
        if p.exists() {
            return fs_magic(p) == Some(BPF_FS_MAGIC);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// The file system type mounted on `point` per mountinfo(5) text (the last entry
/// for it, the top of the stack), or `None` when nothing is mounted there.
pub fn mounted_on(mountinfo: &str, point: &Path) -> Option<String> {
    mountinfo.lines().rev().find_map(|line| {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let mut fields = line.split(' ');
        let mount_point = fields.nth(4)?;
        let fstype = fields.skip_while(|f| *f != "-").nth(1)?;
        (Path::new(&unescape(mount_point)) == point).then(|| fstype.to_owned())
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, etc.).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which mount namespace this process is in.
///
/// How it is told, and why so: a mount lives as long as its namespace, so what
/// matters is whether ours is the one of pid 1 (lives as long as the system, or
/// the container). Comparing `/proc/self/ns/mnt` with `/proc/1/ns/mnt` answers
/// that exactly, but reading another process's ns links needs ptrace access, which
/// sandboxes, Yama or `hidepid` may deny for pid 1. Then the ancestors are asked:
/// one in another mount namespace proves ours was made below it (`ip netns exec`
/// and `unshare -m` exec their command, so the caller's shell is that ancestor).
/// Checking instead whether /sys is "a fresh sysfs of this namespace" is a
/// heuristic: mountinfo does not say which namespace made a mount.
fn mount_ns() -> MountNs {
    let Ok(own) = std::fs::read_link("/proc/self/ns/mnt") else {
        return MountNs::Unknown;
    };
    let ns_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    if let Some(init) = ns_of(1) {
        return if init == own {
            MountNs::Init
        } else {
            MountNs::Private
        };
    }
    let ancestors = std::iter::successors(parent_of(std::process::id()), |&pid| parent_of(pid));
    classify(&own, ancestors.take(64).filter_map(ns_of))
}

/// [`MountNs`] from the namespaces of the readable ancestors (pid 1's unreadable).
fn classify(own: &Path, mut ancestors: impl Iterator<Item = PathBuf>) -> MountNs {
    if ancestors.any(|ns| ns != own) {
        MountNs::Private
    } else {
        MountNs::Unknown
    }
}

/// The parent of `pid` from `/proc/<pid>/stat`; `None` past pid 1.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat).filter(|&p| p > 1)
}

/// The ppid field of a `/proc/<pid>/stat` line (after the parenthesised comm,
/// which may itself hold spaces and parentheses).
fn parse_ppid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ns: MountNs) -> Facts {
        Facts {
            pin_dir_on_bpffs: false,
            mounted_on_root: None,
            root_exists: true,
            ns,
        }
    }

    #[test]
    fn on_a_bpffs_is_ok_wherever_it_is() {
        let on = Facts {
            pin_dir_on_bpffs: true,
            mounted_on_root: Some("bpf".into()),
            ..facts(MountNs::Private)
        };
        assert_eq!(decide(Path::new("/sys/fs/bpf/lbd"), &on), Decision::Ok);
        assert_eq!(decide(Path::new("/run/lbd-bpf/lbd"), &on), Decision::Ok);
    }

    #[test]
    fn mounts_when_nothing_is_on_sys_fs_bpf_in_the_init_namespace() {
        let f = facts(MountNs::Init);
        assert_eq!(
            decide(Path::new("/sys/fs/bpf/lbd"), &f),
            Decision::Mount(None)
        );
        assert_eq!(
            decide(Path::new("/sys/fs/bpf/other/x"), &f),
            Decision::Mount(None)
        );
        assert_eq!(decide(Path::new("/sys/fs/bpf"), &f), Decision::Mount(None));
    }

    #[test]
    fn private_namespace_refuses_the_default_and_warns_otherwise() {
        let f = facts(MountNs::Private);
        assert_eq!(
            decide(Path::new("/sys/fs/bpf/lbd"), &f),
            Decision::Refuse(Refusal::PrivateNamespace)
        );
        assert_eq!(
            decide(Path::new("/sys/fs/bpf/lab-a"), &f),
            Decision::Mount(Some(Warning::PrivateNamespace))
        );
        assert_eq!(
            decide(Path::new("/sys/fs/bpf/lbd"), &facts(MountNs::Unknown)),
            Decision::Mount(Some(Warning::UnknownNamespace))
        );
    }

    #[test]
    fn other_problems_keep_the_not_bpffs_error() {
        let refuse = Decision::Refuse(Refusal::NotBpffs);
        // Not under /sys/fs/bpf: never mounted for.
        for ns in [MountNs::Init, MountNs::Private, MountNs::Unknown] {
            assert_eq!(decide(Path::new("/run/lbd/pins"), &facts(ns)), refuse);
            assert_eq!(decide(Path::new("/sys/fs/bpfx/lbd"), &facts(ns)), refuse);
            assert_eq!(
                decide(Path::new("/sys/fs/bpf/../../tmp"), &facts(ns)),
                refuse
            );
        }
        // Something is mounted on /sys/fs/bpf: a tmpfs is not shadowed; a bpffs with
        // the pin dir not on it means another mount in between.
        for fstype in ["tmpfs", "bpf"] {
            let f = Facts {
                mounted_on_root: Some(fstype.into()),
                ..facts(MountNs::Init)
            };
            assert_eq!(decide(Path::new("/sys/fs/bpf/lbd"), &f), refuse);
        }
        // No /sys/fs/bpf to mount on (no sysfs, or a kernel without BPF).
        let f = Facts {
            root_exists: false,
            ..facts(MountNs::Init)
        };
        assert_eq!(decide(Path::new("/sys/fs/bpf/lbd"), &f), refuse);
    }

    #[test]
    fn reads_what_is_mounted_where() {
        let mi = "\
23 27 0:22 / /sys rw,relatime shared:7 - sysfs sysfs rw
42 23 0:39 / /sys/fs/bpf rw,nosuid shared:14 - bpf bpf rw,mode=700
51 27 0:45 / /mnt/with\\040space rw - tmpfs tmpfs rw
60 42 0:50 / /sys/fs/bpf rw - tmpfs none rw
";
        let root = Path::new(BPFFS_ROOT);
        assert_eq!(
            mounted_on(mi, root).as_deref(),
            Some("tmpfs"),
            "top of the stack"
        );
        let (below, _) = mi.split_at(mi.find("51 ").expect("line 51"));
        assert_eq!(mounted_on(below, root).as_deref(), Some("bpf"));
        assert_eq!(mounted_on(mi, Path::new("/sys")).as_deref(), Some("sysfs"));
        assert_eq!(
            mounted_on(mi, Path::new("/mnt/with space")).as_deref(),
            Some("tmpfs")
        );
        assert_eq!(
            mounted_on("23 27 0:22 / /sys rw - sysfs sysfs rw\n", root),
            None
        );
        assert_eq!(mounted_on("garbage\n\n", root), None);
    }

    #[test]
    fn tells_the_namespace_from_the_ancestors() {
        let own = Path::new("mnt:[4026531832]");
        let same = || PathBuf::from("mnt:[4026531832]");
        let other = PathBuf::from("mnt:[4026532001]");
        assert_eq!(classify(own, [same(), other].into_iter()), MountNs::Private);
        assert_eq!(
            classify(own, [same(), same()].into_iter()),
            MountNs::Unknown
        );
        assert_eq!(classify(own, std::iter::empty()), MountNs::Unknown);
    }

    #[test]
    fn parses_the_parent_pid() {
        assert_eq!(parse_ppid("1234 (lbd) S 77 1234 1234 0 -1"), Some(77));
        assert_eq!(parse_ppid("9 (a) b) (c) R 3 9 9"), Some(3));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn the_refusal_says_what_to_do() {
        let e = BpffsError::PrivateNamespace(PathBuf::from("/sys/fs/bpf/lbd")).to_string();
        assert!(e.contains("private mount namespace"), "{e}");
        assert!(e.contains("[global] pin_dir"), "{e}");
        let e = BpffsError::NotBpffs(PathBuf::from("/tmp/x")).to_string();
        assert!(e.contains("mount -t bpf bpf /sys/fs/bpf"), "{e}");
    }
}
