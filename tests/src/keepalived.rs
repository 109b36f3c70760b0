//! keepalived 2.2.7 (Debian) as a real VRRP peer in a test namespace: started in the
//! foreground (VRRP only) with its own pid files and log, stopped with SIGTERM (so it
//! sends priority 0) and reaped, its VRRP child included, on drop.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Debian's keepalived binary (cargo xtask test installs the package).
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// A keepalived (VRRP only) in a namespace; SIGTERMed and reaped on drop.
pub struct Keepalived {
    child: Option<Child>,
    dir: PathBuf,
}

impl Keepalived {
    /// Start keepalived with `config` in the namespace named `netns`; `tag` names its
    /// scratch directory and config id.
    pub fn start(netns: &str, tag: &str, config: &str) -> Self {
        assert!(
            Path::new(KEEPALIVED).exists(),
            "{KEEPALIVED} is not installed (cargo xtask test installs it)"
        );
        let dir = PathBuf::from(format!("/tmp/lbt-vrrp-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let conf = dir.join("keepalived.conf");
        fs::write(&conf, config).expect("write config");
        let log = fs::File::create(dir.join("log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", netns, KEEPALIVED])
            .args(["-n", "-l", "-D", "-P", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .arg("-i")
            .arg(format!("lbt-{tag}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn keepalived");
        Keepalived {
            child: Some(child),
            dir,
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.dir.join("log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Wait until the log has at least `n` lines containing `needle`.
    pub fn wait_for(&self, needle: &str, n: usize, timeout: Duration) {
        let end = Instant::now() + timeout;
        while self.count(needle) < n {
            assert!(
                Instant::now() < end,
                "keepalived never logged {n} x `{needle}`:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM without waiting: keepalived then sends priority 0, removes its VIPs
    /// and exits (about a second later).
    pub fn terminate(&self) {
        if let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| libc::pid_t::try_from(c.id()).ok())
        {
            // SAFETY: signalling our own child process by pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }

    /// SIGTERM (keepalived then sends priority 0 and removes its VIPs) and reap.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: signalling our own child process by pid.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // A VRRP child left behind by a killed parent: only the pid in our own
        // pid file, and only if it is still a keepalived running our config.
        if let Ok(pid) = fs::read_to_string(self.dir.join("vrrp.pid")) {
            let pid = pid.trim();
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&*self.dir.to_string_lossy());
            if let (true, Ok(pid)) = (ours, pid.parse::<libc::pid_t>()) {
                // SAFETY: plain kill(2) of a process verified to be ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
