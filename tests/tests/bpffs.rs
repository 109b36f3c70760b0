//! lbd's bpffs handling (`lb_userspace::bpffs::ensure`) against a real kernel, in
//! mount namespaces of its own where nothing is mounted on /sys/fs/bpf: under
//! `unshare -m --propagation private` (the test unmounts /sys/fs/bpf there) and under
//! `ip netns exec` (which remounts /sys, so nothing is on /sys/fs/bpf). Both refuse
//! the default pin dir, keep the not-bpffs error elsewhere, and mount (mode 0700,
//! with a warning) for another pin dir under /sys/fs/bpf. Needs root.
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
