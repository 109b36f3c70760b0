//! Whether a pin directory may be used: nobody but lbd's user can have put or
//! changed anything in it.
//!
//! A bpffs mounted with the kernel's default mode (`mount -t bpf bpf DIR`) is
//! world-writable (sticky, like /tmp), so any user can create lbd's pin directory
//! before lbd first starts, or plant a symbolic link in it. The kernel follows
//! symbolic links when it opens a pin (`BPF_OBJ_GET`), so a planted
//! `LB_CONFIG -> /sys/fs/bpf/other/LB_CONFIG` would have lbd adopt, and write, another
//! data plane's map. So before lbd (or lbctl) uses a pin directory:
//!
//! - lbd creates it with mode 0700 (and any missing parent too);
//! - it must be a real directory (not a symbolic link), owned by root or by lbd's
//!   effective uid, and not writable by group or others;
//! - every directory above it must be owned by root or lbd's uid and not writable
//!   by others unless sticky (else someone could swap the pin directory after the
//!   check); a symbolic link on the way must be owned by root or lbd's uid too;
//! - it may hold only lbd's pins: the maps of [`Dataplane::pin_paths`] and the attach
//!   links of [`link_pin_path`] (`link_<interface>`), each a plain pinned object
//!   (never a symbolic link or a directory) owned by root or lbd's uid.
//!
//! [`check`] is the decision (pure, unit-tested: facts in, the first problem out);
//! [`prepare`] gathers the facts (`lstat`, `open(O_DIRECTORY | O_NOFOLLOW)`,
//! `fstatat(AT_SYMLINK_NOFOLLOW)`: nothing is followed) and creates the directory.
//!
//! [`Dataplane::pin_paths`]: crate::Dataplane::pin_paths
//! [`link_pin_path`]: crate::link_pin_path

use std::{
    ffi::{CStr, CString, OsStr, OsString},
    fmt, io,
    os::unix::ffi::OsStrExt,
    os::unix::fs::{DirBuilderExt, MetadataExt},
    path::{Path, PathBuf},
};

use lb_common::maps::names;

/// What a directory entry is (from `lstat`, never following a link).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file: what a pinned map, program or link is on a bpffs.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (fifo, socket, device).
    Other,
}

impl Kind {
    fn from_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File => "a file",
            Kind::Symlink => "a symbolic link",
            Kind::Other => "a special file",
        }
    }
}

/// The facts about one path that matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) kind: Kind,
    /// Owner.
    pub(crate) uid: u32,
    /// Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub(crate) mode: u32,
}

impl Meta {
    fn from_stat(mode: u32, uid: u32) -> Meta {
        Meta {
            kind: Kind::from_mode(mode),
            uid,
            mode: mode & 0o7777,
        }
    }
}

/// Everything [`check`] looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The directories (and links) above the pin directory, as `lstat` sees them:
    /// the path's own prefixes and those of the real (canonical) parent.
    pub(crate) ancestors: Vec<(PathBuf, Meta)>,
    /// The pin directory itself (`lstat`, or `fstat` of it opened with
    /// `O_NOFOLLOW`).
    pub(crate) dir: Meta,
    /// What is in it (`fstatat(AT_SYMLINK_NOFOLLOW)`), without `.` and `..`.
    pub(crate) entries: Vec<(OsString, Meta)>,
}

/// What is wrong with a pin directory: the path concerned and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The pin directory, an ancestor or an entry.
    pub(crate) path: PathBuf,
    /// What is wrong with it.
    pub(crate) what: What,
}

/// The kinds of [`Problem`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum What {
    /// The pin directory is a symbolic link.
    DirIsSymlink,
    /// The pin directory is not a directory.
    NotADirectory(Kind),
    /// The pin directory is owned by someone else.
    DirOwner(u32),
    /// The pin directory is writable by group or others.
    DirWritable(u32),
    /// A directory above is owned by someone else.
    AncestorOwner(u32),
    /// A directory above is writable by group or others without the sticky bit.
    AncestorWritable(u32),
    /// A symbolic link above is owned by someone else.
    AncestorLinkOwner(u32),
    /// An entry that is not one of lbd's pin names.
    Foreign(Kind),
    /// An entry with a pin's name that is not a plain pinned object.
    NotAPin(Kind),
    /// A pin owned by someone else.
    PinOwner(u32),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.what {
            What::DirIsSymlink => write!(
                f,
                "{p} is a symbolic link; lbd never follows links to or in its pin directory \
                 (remove it, or set [global] pin_dir to a real directory)"
            ),
            What::NotADirectory(kind) => {
                write!(f, "{p} is {}, not a directory", kind.name())
            }
            What::DirOwner(uid) => write!(
                f,
                "{p} is owned by uid {uid}, not by root or lbd's uid: someone else may have \
                 created it to plant pins (remove it and let lbd create it, mode 0700)"
            ),
            What::DirWritable(mode) => write!(
                f,
                "{p} is writable by group or others (mode {mode:04o}); lbd needs it writable \
                 by its owner only (chmod 0700)"
            ),
            What::AncestorOwner(uid) => write!(
                f,
                "{p}, above the pin directory, is owned by uid {uid}, not by root or lbd's \
                 uid: its owner could replace the pin directory"
            ),
            What::AncestorWritable(mode) => write!(
                f,
                "{p}, above the pin directory, is writable by group or others without the \
                 sticky bit (mode {mode:04o}): anyone could replace the pin directory"
            ),
            What::AncestorLinkOwner(uid) => write!(
                f,
                "{p}, above the pin directory, is a symbolic link owned by uid {uid}, not by \
                 root or lbd's uid: its owner could point it elsewhere"
            ),
            What::Foreign(kind) => write!(
                f,
                "{p} ({}) is not one of lbd's pins (maps {}, links link_<interface>); \
                 lbd uses only a pin directory holding nothing else (remove it, or set \
                 [global] pin_dir)",
                kind.name(),
                names::ALL.join(", ")
            ),
            What::NotAPin(kind) => write!(
                f,
                "{p} is {}, not a pinned object; lbd never follows links in its pin \
                 directory (remove it)",
                kind.name()
            ),
            What::PinOwner(uid) => write!(
                f,
                "{p} is owned by uid {uid}, not by root or lbd's uid: someone else pinned it \
                 (remove it)"
            ),
        }
    }
}

impl std::error::Error for Problem {}

/// A name lbd pins under its pin directory: a map of `names::ALL`, or an attach
/// link `link_<interface>` (an interface name: 1 to 15 bytes, no `/`, no white
/// space, not `.` or `..`).
pub(crate) fn is_pin_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    if names::ALL.iter().any(|n| n.as_bytes() == b) {
        return true;
    }
    let Some(ifname) = b.strip_prefix(b"link_") else {
        return false;
    };
    (1..libc::IFNAMSIZ).contains(&ifname.len())
        && ifname != b"."
        && ifname != b".."
        && ifname
            .iter()
            .all(|c| (c.is_ascii_graphic() && *c != b'/') || *c >= 0x80)
}

/// May the directories (and links) above a pin directory be trusted by a process
/// of effective uid `euid`? Pure.
pub(crate) fn check_ancestors(ancestors: &[(PathBuf, Meta)], euid: u32) -> Result<(), Problem> {
    let trusted = |uid: u32| uid == 0 || uid == euid;
    for (path, m) in ancestors {
        let what = match m.kind {
            Kind::Symlink if !trusted(m.uid) => What::AncestorLinkOwner(m.uid),
            Kind::Symlink => continue,
            _ if !trusted(m.uid) => What::AncestorOwner(m.uid),
            _ if m.mode & 0o022 != 0 && m.mode & libc::S_ISVTX == 0 => {
                What::AncestorWritable(m.mode)
            }
            _ => continue,
        };
        return Err(Problem {
            path: path.clone(),
            what,
        });
    }
    Ok(())
}

/// May the pin directory described by `facts` be used by a process of effective
/// uid `euid`? The first problem found, or `Ok`. Pure.
pub(crate) fn check(pin_dir: &Path, facts: &Facts, euid: u32) -> Result<(), Problem> {
    let trusted = |uid: u32| uid == 0 || uid == euid;
    let problem = |path: &Path, what| {
        Err(Problem {
            path: path.to_owned(),
            what,
        })
    };
    check_ancestors(&facts.ancestors, euid)?;
    match facts.dir.kind {
        Kind::Dir => {}
        Kind::Symlink => return problem(pin_dir, What::DirIsSymlink),
        other => return problem(pin_dir, What::NotADirectory(other)),
    }
    if !trusted(facts.dir.uid) {
        return problem(pin_dir, What::DirOwner(facts.dir.uid));
    }
    if facts.dir.mode & 0o022 != 0 {
        return problem(pin_dir, What::DirWritable(facts.dir.mode));
    }
    for (name, m) in &facts.entries {
        let path = pin_dir.join(name);
        if !is_pin_name(name) {
            return problem(&path, What::Foreign(m.kind));
        }
        if m.kind != Kind::File {
            return problem(&path, What::NotAPin(m.kind));
        }
        if !trusted(m.uid) {
            return problem(&path, What::PinOwner(m.uid));
        }
    }
    Ok(())
}

/// Failure of [`prepare`] / [`check_removable`], naming the path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PinDirError {
    /// The pin directory may not be used.
    #[error("refusing it: {0}")]
    Refused(#[from] Problem),
    /// A system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// The call.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

impl PinDirError {
    /// As an `io::Error` (for `DataplaneError::PinDir` and `remove_pinned`).
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match &self {
            PinDirError::Io { source, .. } => source.kind(),
            PinDirError::Refused(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, self.to_string())
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PinDirError {
    let path = path.to_owned();
    move |source| PinDirError::Io { what, path, source }
}

fn lstat(path: &Path) -> io::Result<Meta> {
    let m = std::fs::symlink_metadata(path)?;
    Ok(Meta::from_stat(m.mode(), m.uid()))
}

/// The effective uid of this process.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Create `pin_dir` (mode 0700, parents too) if it does not exist, then check it
/// (see the module docs). Nothing is followed: the directory is opened with
/// `O_DIRECTORY | O_NOFOLLOW` and its entries are `fstatat`ed without following.
pub(crate) fn prepare(pin_dir: &Path) -> Result<(), PinDirError> {
    let pin_dir = &absolute(pin_dir)?;
    match std::fs::symlink_metadata(pin_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Nothing is created below a directory someone else controls.
            check_ancestors(&ancestors(pin_dir)?, euid())?;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(pin_dir)
                .map_err(io_err("creating", pin_dir))?
        }
        Err(e) => return Err(io_err("lstat", pin_dir)(e)),
        Ok(_) => {}
    }
    let facts = gather(pin_dir)?;
    check(pin_dir, &facts, euid())?;
    Ok(())
}

/// Before removing what is in `pin_dir` (`lbd --detach`, `lbctl detach`): it must
/// not be a symbolic link (unlinking in whatever it points to would remove another
/// data plane's pins). Entries are unlinked, never followed, so they need no check;
/// ownership is not checked either (root may detach an lbd that ran as another
/// user). A missing directory is fine.
pub(crate) fn check_removable(pin_dir: &Path) -> Result<(), PinDirError> {
    match lstat(pin_dir) {
        Ok(m) if m.kind == Kind::Symlink => Err(Problem {
            path: pin_dir.to_owned(),
            what: What::DirIsSymlink,
        }
        .into()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("lstat", pin_dir)(e)),
    }
}

fn absolute(path: &Path) -> Result<PathBuf, PinDirError> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let cwd = std::env::current_dir().map_err(io_err("current directory for", path))?;
    Ok(cwd.join(path))
}

/// The existing directories (and links) above `pin_dir` (absolute): its own
/// prefixes as written (a link on the way must be trusted not to move) and those
/// of the nearest existing ancestor's real path (where it really leads).
fn ancestors(pin_dir: &Path) -> Result<Vec<(PathBuf, Meta)>, PinDirError> {
    let mut out: Vec<(PathBuf, Meta)> = Vec::new();
    let add = |p: &Path, out: &mut Vec<(PathBuf, Meta)>| -> Result<bool, PinDirError> {
        if out.iter().any(|(a, _)| a == p) {
            return Ok(true);
        }
        match lstat(p) {
            Ok(m) => {
                out.push((p.to_owned(), m));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("lstat", p)(e)),
        }
    };
    let mut existing = None;
    for a in pin_dir.ancestors().skip(1) {
        if add(a, &mut out)? && existing.is_none() {
            existing = Some(a);
        }
    }
    if let Some(a) = existing {
        let real = std::fs::canonicalize(a).map_err(io_err("resolving", a))?;
        for r in real.ancestors() {
            add(r, &mut out)?;
        }
    }
    Ok(out)
}

/// The facts about `pin_dir` (absolute, existing).
fn gather(pin_dir: &Path) -> Result<Facts, PinDirError> {
    let ancestors = ancestors(pin_dir)?;
    let mut dir = lstat(pin_dir).map_err(io_err("lstat", pin_dir))?;
    let mut entries = Vec::new();
    if dir.kind == Kind::Dir {
        let fd = Dir::open(pin_dir)?;
        dir = fd.stat()?;
        entries = fd.entries(pin_dir)?;
    }
    Ok(Facts {
        ancestors,
        dir,
        entries,
    })
}

/// A directory opened with `O_DIRECTORY | O_NOFOLLOW`, read with `readdir`.
struct Dir(*mut libc::DIR);

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: a DIR from a successful fdopendir, closed once (closes its fd).
        unsafe { libc::closedir(self.0) };
    }
}

impl Dir {
    fn open(path: &Path) -> Result<Dir, PinDirError> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| PinDirError::Io {
            what: "opening",
            path: path.to_owned(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            return Err(io_err("opening (O_NOFOLLOW)", path)(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: fd is ours; on success the DIR owns it.
        let dir = unsafe { libc::fdopendir(fd) };
        if dir.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so fd is still ours to close.
            unsafe { libc::close(fd) };
            return Err(io_err("fdopendir", path)(e));
        }
        Ok(Dir(dir))
    }

    fn fd(&self) -> libc::c_int {
        // SAFETY: self.0 is a live DIR.
        unsafe { libc::dirfd(self.0) }
    }

    fn stat(&self) -> Result<Meta, PinDirError> {
        // SAFETY: a zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a live fd and a valid out-parameter.
        if unsafe { libc::fstat(self.fd(), &mut st) } != 0 {
            return Err(io_err("fstat", Path::new("pin directory"))(
                io::Error::last_os_error(),
            ));
        }
        Ok(Meta::from_stat(st.st_mode, st.st_uid))
    }

    /// Every entry but `.` and `..`, `fstatat`ed without following links.
    fn entries(&self, path: &Path) -> Result<Vec<(OsString, Meta)>, PinDirError> {
        let mut out = Vec::new();
        // Bounded: a directory lists a finite number of entries; the cap only
        // guards against a misbehaving file system.
        for _ in 0..1_000_000 {
            // SAFETY: errno is thread-local; resetting it tells end from error.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: self.0 is a live DIR.
            let ent = unsafe { libc::readdir(self.0) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                if e.raw_os_error().unwrap_or(0) != 0 {
                    return Err(io_err("reading", path)(e));
                }
                return Ok(out);
            }
            // SAFETY: d_name of a live dirent is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            // SAFETY: a zeroed stat is a valid out-parameter.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: a live dir fd, a NUL-terminated name, a valid out-parameter.
            let rc = unsafe {
                libc::fstatat(self.fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
            };
            let name = OsStr::from_bytes(bytes).to_owned();
            if rc != 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::NotFound {
                    continue; // removed meanwhile
                }
                return Err(io_err("lstat", &path.join(&name))(e));
            }
            out.push((name, Meta::from_stat(st.st_mode, st.st_uid)));
        }
        Err(io_err("reading", path)(io::Error::other(
            "more than a million entries",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LBD: u32 = 998;

    fn dir(uid: u32, mode: u32) -> Meta {
        Meta {
            kind: Kind::Dir,
            uid,
            mode,
        }
    }

    fn file(uid: u32) -> Meta {
        Meta {
            kind: Kind::File,
            uid,
            mode: 0o600,
        }
    }

    fn link(uid: u32) -> Meta {
        Meta {
            kind: Kind::Symlink,
            uid,
            mode: 0o777,
        }
    }

    /// /sys/fs/bpf (a default bpffs: 01777) holding lbd's pin dir with every map
    /// and one link, all root's.
    fn good() -> Facts {
        let mut entries: Vec<(OsString, Meta)> =
            names::ALL.iter().map(|n| ((*n).into(), file(0))).collect();
        entries.push(("link_eth0".into(), file(0)));
        Facts {
            ancestors: vec![
                ("/sys/fs/bpf".into(), dir(0, 0o1777)),
                ("/sys/fs".into(), dir(0, 0o755)),
                ("/sys".into(), dir(0, 0o555)),
                ("/".into(), dir(0, 0o755)),
            ],
            dir: dir(0, 0o700),
            entries,
        }
    }

    fn pin_dir() -> &'static Path {
        Path::new("/sys/fs/bpf/lbd")
    }

    fn what(facts: &Facts, euid: u32) -> Option<(PathBuf, What)> {
        check(pin_dir(), facts, euid)
            .err()
            .map(|p| (p.path, p.what))
    }

    #[test]
    fn a_root_owned_private_dir_with_our_pins_is_used() {
        assert_eq!(what(&good(), 0), None);
        // Empty (first start), or 0755 from an older lbd: fine too.
        let mut f = good();
        f.entries.clear();
        f.dir.mode = 0o755;
        assert_eq!(what(&f, 0), None);
        // lbd running as another uid owns its dir and pins.
        let mut f = good();
        f.dir.uid = LBD;
        for e in &mut f.entries {
            e.1.uid = LBD;
        }
        assert_eq!(what(&f, LBD), None);
        // A root-owned link on the way (e.g. /var/run -> /run) is fine.
        f.ancestors.push(("/var/run".into(), link(0)));
        assert_eq!(what(&f, LBD), None);
    }

    #[test]
    fn a_squatted_dir_is_refused() {
        let mut f = good();
        f.dir.uid = 65534;
        assert_eq!(what(&f, 0), Some((pin_dir().into(), What::DirOwner(65534))));
        // Owned by root but writable by others.
        for mode in [0o777, 0o1777, 0o720, 0o702] {
            let mut f = good();
            f.dir.mode = mode;
            assert_eq!(
                what(&f, 0),
                Some((pin_dir().into(), What::DirWritable(mode)))
            );
        }
    }

    #[test]
    fn links_are_never_followed() {
        let mut f = good();
        f.dir = link(0);
        f.entries.clear();
        assert_eq!(what(&f, 0), Some((pin_dir().into(), What::DirIsSymlink)));
        // A planted link with a pin's name (the hash seed attack).
        let mut f = good();
        f.entries[3].1 = link(65534);
        let name = f.entries[3].0.clone();
        assert_eq!(
            what(&f, 0),
            Some((pin_dir().join(name), What::NotAPin(Kind::Symlink)))
        );
        // Even a root-owned one.
        let mut f = good();
        f.entries[0].1 = link(0);
        assert!(matches!(
            what(&f, 0),
            Some((_, What::NotAPin(Kind::Symlink)))
        ));
        // A directory with a pin's name.
        let mut f = good();
        f.entries[0].1 = dir(0, 0o700);
        assert!(matches!(what(&f, 0), Some((_, What::NotAPin(Kind::Dir)))));
        // A link owned by someone else on the way.
        let mut f = good();
        f.ancestors.insert(0, ("/sys/fs/bpf/x".into(), link(1000)));
        assert_eq!(
            what(&f, 0),
            Some(("/sys/fs/bpf/x".into(), What::AncestorLinkOwner(1000)))
        );
    }

    #[test]
    fn anything_but_our_pins_is_refused() {
        let mut f = good();
        f.entries.push(("notes.txt".into(), file(0)));
        assert_eq!(
            what(&f, 0),
            Some((pin_dir().join("notes.txt"), What::Foreign(Kind::File)))
        );
        let mut f = good();
        f.entries.push(("sub".into(), dir(0, 0o700)));
        assert!(matches!(what(&f, 0), Some((_, What::Foreign(Kind::Dir)))));
        // A pin someone else made.
        let mut f = good();
        f.entries[1].1.uid = 1000;
        assert!(matches!(what(&f, 0), Some((_, What::PinOwner(1000)))));
        // Trusted as lbd's uid only when lbd runs as it.
        let mut f = good();
        f.entries[1].1.uid = LBD;
        assert_eq!(what(&f, LBD), None);
        assert!(what(&f, 0).is_some());
    }

    #[test]
    fn unsafe_ancestors_are_refused() {
        // World-writable without sticky: the pin dir could be renamed away.
        let mut f = good();
        f.ancestors[0].1.mode = 0o777;
        assert_eq!(
            what(&f, 0),
            Some(("/sys/fs/bpf".into(), What::AncestorWritable(0o777)))
        );
        // Sticky is fine (the kernel's default bpffs, /tmp).
        f.ancestors[0].1.mode = 0o1777;
        assert_eq!(what(&f, 0), None);
        // Owned by another user.
        let mut f = good();
        f.ancestors
            .insert(0, ("/sys/fs/bpf/team".into(), dir(1000, 0o755)));
        assert_eq!(
            what(&f, 0),
            Some(("/sys/fs/bpf/team".into(), What::AncestorOwner(1000)))
        );
        assert_eq!(what(&f, 1000), None);
    }

    #[test]
    fn pin_names() {
        for n in names::ALL {
            assert!(is_pin_name(OsStr::new(n)), "{n}");
        }
        for ok in ["link_eth0", "link_lbc0", "link_a", "link_123456789012345"] {
            assert!(is_pin_name(OsStr::new(ok)), "{ok}");
        }
        for bad in [
            "link_",
            "link_1234567890123456",
            "link_.",
            "link_..",
            "link_a b",
            "LB_CONFIG.bak",
            "lb_config",
            "x",
            ".hidden",
        ] {
            assert!(!is_pin_name(OsStr::new(bad)), "{bad}");
        }
    }

    #[test]
    fn messages_name_the_path_and_the_problem() {
        let p = |what| {
            Problem {
                path: "/sys/fs/bpf/lbd".into(),
                what,
            }
            .to_string()
        };
        let m = p(What::DirOwner(65534));
        assert!(
            m.contains("/sys/fs/bpf/lbd") && m.contains("uid 65534"),
            "{m}"
        );
        let m = p(What::DirIsSymlink);
        assert!(m.contains("symbolic link"), "{m}");
        let m = p(What::DirWritable(0o1777));
        assert!(m.contains("1777"), "{m}");
        let m = p(What::Foreign(Kind::File));
        assert!(m.contains("not one of lbd's pins"), "{m}");
        let e = PinDirError::from(Problem {
            path: "/x/LB_CONFIG".into(),
            what: What::NotAPin(Kind::Symlink),
        })
        .into_io();
        assert!(
            e.to_string().contains("/x/LB_CONFIG is a symbolic link"),
            "{e}"
        );
    }
}
