//! lbd's bpffs handling (`lb_userspace::bpffs::ensure`) against a real kernel, in
//! mount namespaces of its own where nothing is mounted on /sys/fs/bpf: under
//! `unshare -m --propagation private` (the test unmounts /sys/fs/bpf there) and under
//! `ip netns exec` (which remounts /sys, so nothing is on /sys/fs/bpf). Both refuse
//! the default pin dir, keep the not-bpffs error elsewhere, and mount (mode 0700,
//! with a warning) for another pin dir under /sys/fs/bpf. Needs root.
//!
//! The pin directory checks (`lb_dataplane`'s pin.rs) run against a bpffs with the
//! kernel's default mode mounted on a scratch directory: a squatted pin dir, planted
//! links, foreign entries.
//!
//! Safety: the checks run in a child process (this test binary again, running
//! [`child`]), which unmounts and mounts only after making sure it is in another
//! mount namespace than its parent, and private; the host's /sys/fs/bpf is checked
//! to be unchanged afterwards.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use lb_tests::netns::Netns;
use lb_userspace::bpffs::{self, BpffsError, Outcome, Warning, BPFFS_ROOT};

/// Set in the child's environment: how its namespace was made.
const CHILD: &str = "LB_BPFFS_TEST_CHILD";
const DONE: &str = "bpffs child: all checks passed";

/// The host's mounts on /sys/fs/bpf (mountinfo lines), to compare before and after.
fn host_bpffs_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(BPFFS_ROOT))
        .map(|l| l.to_owned())
        .collect()
}

/// Runs [`child`] under `wrapper` and checks it passed and left the host alone.
fn run_child(mode: &str, wrapper: &[&str]) {
    let before = host_bpffs_mounts();
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(&exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .expect("spawn the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child ({mode}) failed:\n{text}");
    assert!(text.contains(DONE), "child ({mode}) did not run:\n{text}");
    assert_eq!(
        host_bpffs_mounts(),
        before,
        "the host's /sys/fs/bpf changed"
    );
}

#[test]
fn refuses_or_mounts_in_a_private_mount_namespace() {
    run_child("unshare", &["unshare", "-m", "--propagation", "private"]);
}

#[test]
fn refuses_or_mounts_under_ip_netns_exec() {
    let ns = Netns::new("bpffs");
    run_child("netns", &["ip", "netns", "exec", &ns.name]);
}

fn mount_ns(pid: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("ns link")
}

/// The checks, in the child (a no-op in a normal test run).
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    // Never touch the parent's (the host's) mounts.
    let parent = std::os::unix::process::parent_id().to_string();
    assert_ne!(
        mount_ns("self"),
        mount_ns(&parent),
        "not in a mount namespace of its own"
    );
    if mode == "unshare" {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        for line in mountinfo.lines() {
            assert!(!line.contains(" shared:"), "a shared mount: {line}");
        }
        let root = CString::new(BPFFS_ROOT).expect("path");
        while bpffs::mounted_on(
            &std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
            Path::new(BPFFS_ROOT),
        )
        .is_some()
        {
            // SAFETY: a NUL-terminated path; only this private namespace sees it.
            let rc = unsafe { libc::umount2(root.as_ptr(), libc::MNT_DETACH) };
            assert_eq!(rc, 0, "umount: {}", std::io::Error::last_os_error());
        }
    }
    assert!(!bpffs::on_bpffs(Path::new(BPFFS_ROOT)), "still a bpffs");

    // The default pin dir would die with lbd: refused, saying what to do.
    let default = lb_config::Global::default().pin_dir;
    match bpffs::ensure(&default) {
        Err(e @ BpffsError::PrivateNamespace(_)) => {
            assert!(e.to_string().contains("[global] pin_dir"), "{e}")
        }
        other => panic!("default pin dir: {other:?}"),
    }
    assert!(!bpffs::on_bpffs(Path::new(BPFFS_ROOT)), "mounted anyway");
    // Not under /sys/fs/bpf: today's error.
    let tmp = std::env::temp_dir().join("lb-bpffs-test-not-bpffs");
    assert!(matches!(bpffs::ensure(&tmp), Err(BpffsError::NotBpffs(_))));
    // A pin dir under /sys/fs/bpf the operator chose: mounted, with a warning.
    let chosen = Path::new(BPFFS_ROOT).join("lb-bpffs-test");
    assert_eq!(
        bpffs::ensure(&chosen).expect("mount"),
        Outcome::Mounted(Some(Warning::PrivateNamespace))
    );
    assert!(bpffs::on_bpffs(&chosen));
    let mode_bits = std::fs::metadata(BPFFS_ROOT)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    // (The kernel adds the sticky bit to a bpffs root whatever the mode= option.)
    assert_eq!(mode_bits, 0o700, "mode of the mounted bpffs");
    // Now it is there for everyone in this namespace.
    assert_eq!(bpffs::ensure(&default).expect("ok"), Outcome::AlreadyBpffs);
    println!("{DONE}");
}

// ----- The pin directory: squatting, planted links, foreign entries (issue 11.8) -----
//
// A bpffs mounted with the kernel's default mode is world-writable (01777): any user
// can create lbd's pin directory first, or plant a link in it. These tests mount one
// on a scratch directory (never /sys/fs/bpf) and load the data plane directly.

use lb_common::maps::{names, DataplaneConfig};
use lb_dataplane::{Capacities, Dataplane, DataplaneOptions};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

const NOBODY: u32 = 65534;

/// A bpffs with the kernel's default mode on a scratch directory; unmounted and
/// removed on drop, also when a test fails.
struct ScratchBpffs {
    dir: PathBuf,
}

impl ScratchBpffs {
    fn new(tag: &str) -> ScratchBpffs {
        let dir = std::env::temp_dir().join(format!("lb-pin-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let scratch = ScratchBpffs { dir };
        let st = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&scratch.dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount -t bpf on {}", scratch.dir.display());
        assert!(bpffs::on_bpffs(&scratch.dir));
        let mode = std::fs::metadata(&scratch.dir).expect("stat").mode() & 0o7777;
        assert_eq!(mode, 0o1777, "the kernel's default: world-writable, sticky");
        scratch
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for ScratchBpffs {
    fn drop(&mut self) {
        let c = CString::new(self.dir.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path; only our scratch mount.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn options(pin_dir: &Path) -> DataplaneOptions {
    DataplaneOptions {
        pin_dir: Some(pin_dir.to_owned()),
        capacities: Capacities {
            services: 16,
            backends: 16,
            conns: 1024,
            tx_ports: 8,
        },
    }
}

/// Another data plane on the same bpffs, with its own hash seed.
const VICTIM_SEED: u32 = 0x5eed_1234;

fn victim(fs: &ScratchBpffs) -> PathBuf {
    let dir = fs.path("victim");
    let mut dp = Dataplane::load(&options(&dir)).expect("victim loads");
    dp.set_config(&DataplaneConfig {
        forwarding: 1,
        hash_seed: VICTIM_SEED,
        insert_limit: 0,
        _pad: 0,
    })
    .expect("victim config");
    dir
}

fn victim_seed(dir: &Path) -> u32 {
    Dataplane::open_pinned(dir)
        .expect("victim readable")
        .config()
        .expect("config")
        .hash_seed
}

/// Loading with `pin_dir` fails; the error text.
fn refused(pin_dir: &Path) -> String {
    match Dataplane::load(&options(pin_dir)) {
        Ok(_) => panic!("{} was adopted", pin_dir.display()),
        Err(e) => e.to_string(),
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
}

#[test]
fn pin_dir_is_created_private_and_reused() {
    let fs = ScratchBpffs::new("fresh");
    let dir = fs.path("a/lbd");
    drop(Dataplane::load(&options(&dir)).expect("first load"));
    for d in [fs.path("a"), dir.clone()] {
        let m = std::fs::symlink_metadata(&d).expect("stat");
        assert_eq!(m.mode() & 0o7777, 0o700, "mode of {}", d.display());
        assert_eq!(m.uid(), 0);
    }
    // The next lbd adopts its own pins.
    drop(Dataplane::load(&options(&dir)).expect("adopting load"));
    assert!(Dataplane::pin_paths(&dir).iter().all(|(_, p)| p.exists()));
    Dataplane::remove_pinned(&dir).expect("detach");
}

#[test]
fn pin_dir_squatted_by_another_user_is_refused() {
    let fs = ScratchBpffs::new("squat");
    let dir = fs.path("lbd");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    chown(&dir, NOBODY);
    let e = refused(&dir);
    assert!(
        e.contains(&dir.display().to_string()) && e.contains("owned by uid 65534"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("list").count(),
        0,
        "nothing pinned in it"
    );
    // Root-owned but writable by others: refused too.
    chown(&dir, 0);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let e = refused(&dir);
    assert!(e.contains("writable by group or others"), "{e}");
    // A directory of another user above the pin dir.
    let team = fs.path("team");
    std::fs::create_dir(&team).expect("mkdir");
    chown(&team, NOBODY);
    let e = refused(&team.join("lbd"));
    assert!(
        e.contains("owned by uid 65534") && e.contains("team"),
        "{e}"
    );
    assert!(!team.join("lbd").exists(), "nothing created below it");
}

#[test]
fn planted_symlinks_are_never_followed() {
    let fs = ScratchBpffs::new("symlink");
    let victim = victim(&fs);
    assert_eq!(victim_seed(&victim), VICTIM_SEED);

    // A link in a pin dir (the attack: lbd adopted the other data plane's config
    // map and wrote its own hash seed into it).
    let dir = fs.path("lbd");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let planted = dir.join(names::CONFIG);
    std::os::unix::fs::symlink(victim.join(names::CONFIG), &planted).expect("symlink");
    chown(&planted, NOBODY);
    let e = refused(&dir);
    assert!(
        e.contains(&planted.display().to_string()) && e.contains("symbolic link"),
        "{e}"
    );
    assert!(
        Dataplane::open_pinned(&dir).is_err(),
        "lbctl refuses it too"
    );

    // The pin dir itself a link to the other data plane's.
    let linked = fs.path("lbd-linked");
    std::os::unix::fs::symlink(&victim, &linked).expect("symlink");
    chown(&linked, NOBODY);
    let e = refused(&linked);
    assert!(e.contains("symbolic link"), "{e}");
    // Detaching through it must not remove the other data plane's pins.
    let e = Dataplane::remove_pinned(&linked).expect_err("detach through a link");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(
        Dataplane::pin_paths(&victim)
            .iter()
            .all(|(_, p)| p.exists()),
        "the victim's pins are intact"
    );

    // Untouched.
    assert_eq!(victim_seed(&victim), VICTIM_SEED);
    Dataplane::remove_pinned(&victim).expect("clean up the victim");
}

#[test]
fn pin_dir_holding_anything_else_is_refused() {
    let fs = ScratchBpffs::new("foreign");
    let victim = victim(&fs);
    let dir = fs.path("lbd");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // A pinned object under a name that is not one of ours.
    let stray = dir.join("stray");
    aya::maps::MapData::from_pin(victim.join(names::CONFIG))
        .expect("victim map")
        .pin(&stray)
        .expect("pin a stray object");
    let e = refused(&dir);
    assert!(
        e.contains(&stray.display().to_string()) && e.contains("not one of lbd's pins"),
        "{e}"
    );
    std::fs::remove_file(&stray).expect("unpin");
    // A directory with a pin's name.
    let sub = dir.join(names::SERVICES);
    std::fs::create_dir(&sub).expect("mkdir");
    let e = refused(&dir);
    assert!(
        e.contains(&sub.display().to_string()) && e.contains("not a pinned object"),
        "{e}"
    );
    std::fs::remove_dir(&sub).expect("rmdir");
    // Clean again: used.
    drop(Dataplane::load(&options(&dir)).expect("clean pin dir loads"));
    assert_eq!(victim_seed(&victim), VICTIM_SEED);
    Dataplane::remove_pinned(&dir).expect("detach");
    Dataplane::remove_pinned(&victim).expect("clean up the victim");
}
