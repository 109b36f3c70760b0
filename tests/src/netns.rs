//! Network namespaces for tests: created with iproute2, entered per thread with
//! setns(2), and deleted on drop, also when a test panics.

use std::{fs::File, os::fd::AsRawFd, process::Command};

/// Run a command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace that is deleted on drop.
pub struct Netns {
    /// Its name (`ip netns` name).
    pub name: String,
}

impl Netns {
    /// Create `lbt-<tag>-<pid>` (unique per process and tag).
    pub fn new(tag: &str) -> Self {
        let name = format!("lbt-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&format!("ip netns add {name}"));
        let ns = Netns { name };
        ns.exec("ip link set lo up");
        ns
    }

    /// Run a shell command inside the namespace.
    pub fn exec(&self, cmd: &str) -> String {
        sh(&format!(
            "ip netns exec {} sh -c '{}'",
            self.name,
            cmd.replace('\'', "'\\''")
        ))
    }

    /// Move the calling thread into the namespace (for in-process BPF attach).
    /// Returns a guard that moves the thread back on drop.
    pub fn enter(&self) -> EnteredNetns {
        let home = File::open("/proc/self/task/thread-self/ns/net")
            .or_else(|_| File::open("/proc/thread-self/ns/net"))
            .expect("open own netns");
        let target = File::open(format!("/var/run/netns/{}", self.name)).expect("open netns");
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
        EnteredNetns { home }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Move the calling thread into the existing namespace `name` (made by someone else,
/// e.g. scripts/lab.sh). Returns the guard that moves it back.
pub fn enter_existing(name: &str) -> EnteredNetns {
    let home = File::open("/proc/thread-self/ns/net").expect("open own netns");
    let target = File::open(format!("/var/run/netns/{name}")).expect("open netns");
    // SAFETY: setns on a valid namespace fd affects only this thread.
    let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns into {name}: {}",
        std::io::Error::last_os_error()
    );
    EnteredNetns { home }
}

/// While alive, the thread is inside a namespace; dropping returns it home.
pub struct EnteredNetns {
    home: File,
}

impl Drop for EnteredNetns {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}
