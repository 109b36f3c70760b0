//! Notify scripts: what keepalived runs on a state change (`notify_master`,
//! `notify_backup`, `notify_fault` without arguments, `notify` with
//! `INSTANCE <name> <STATE> <priority>`).
//!
//! [`notify`] never blocks the caller and never fails: each script is started and
//! reaped from a short-lived thread, and anything that goes wrong (the script is
//! missing, not executable, exits non-zero, dies from a signal) is logged with
//! `tracing`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::State;

/// How often starting a script is retried when it is busy being written
/// (`ETXTBSY`: e.g. a configuration management tool replacing it right now).
const BUSY_RETRIES: u32 = 5;
/// Pause between those retries.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// Notify scripts of a VRRP instance, run on every state change without waiting
/// (see [`notify`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Notify {
    /// `notify`: run with `INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>`.
    pub any: Option<PathBuf>,
    /// `notify_master`: run without arguments on becoming master.
    pub master: Option<PathBuf>,
    /// `notify_backup`: run without arguments on becoming backup.
    pub backup: Option<PathBuf>,
    /// `notify_fault`: run without arguments on entering FAULT.
    pub fault: Option<PathBuf>,
}

/// Runs the scripts keepalived would run for `instance` entering `state` with
/// effective priority `priority`, without waiting for them:
/// - the state's own script (`master`, `backup` or `fault`; none for
///   [`State::Init`], keepalived's STOP), without arguments;
/// - then the generic `any` script with `INSTANCE <instance> <STATE> <priority>`,
///   where STATE is [`State::keepalived_name`] (MASTER, BACKUP, FAULT or STOP).
///
/// Scripts get no standard input and no standard output; their standard error is
/// lbd's. Failures are logged, never returned.
pub fn notify(n: &Notify, instance: &str, state: State, priority: u8) {
    let specific = match state {
        State::Master => n.master.as_ref(),
        State::Backup => n.backup.as_ref(),
        State::Fault => n.fault.as_ref(),
        State::Init => None,
    };
    if let Some(script) = specific {
        spawn(instance, script.clone(), Vec::new());
    }
    if let Some(script) = &n.any {
        let args = vec![
            "INSTANCE".to_owned(),
            instance.to_owned(),
            state.keepalived_name().to_owned(),
            priority.to_string(),
        ];
        spawn(instance, script.clone(), args);
    }
}

/// Starts `script` with `args` and reaps it, on a detached thread.
fn spawn(instance: &str, script: PathBuf, args: Vec<String>) {
    let instance = instance.to_owned();
    let thread = std::thread::Builder::new()
        .name("lbd-notify".to_owned())
        .spawn(move || run(&instance, &script, &args));
    if let Err(e) = thread {
        tracing::warn!(error = %e, "VRRP notify: cannot start a thread to run the notify script");
    }
}

/// Runs one script to completion, logging the outcome.
fn run(instance: &str, script: &Path, args: &[String]) {
    let mut attempt = 0;
    let child = loop {
        let result = Command::new(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn();
        match result {
            Err(e) if is_busy(&e) && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(BUSY_PAUSE);
            }
            other => break other,
        }
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                instance,
                script = %script.display(),
                error = %e,
                "VRRP notify: cannot run the notify script"
            );
            return;
        }
    };
    tracing::debug!(instance, script = %script.display(), ?args, "VRRP notify script started");
    match child.wait() {
        Ok(status) if status.success() => {
            tracing::debug!(instance, script = %script.display(), "VRRP notify script done");
        }
        Ok(status) => tracing::warn!(
            instance,
            script = %script.display(),
            status = %describe(status),
            "VRRP notify script failed"
        ),
        Err(e) => tracing::warn!(
            instance,
            script = %script.display(),
            error = %e,
            "VRRP notify: cannot wait for the notify script"
        ),
    }
}

/// Whether `e` is `ETXTBSY` (the executable is open for writing).
fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ETXTBSY)
}

/// `exit status 3` / `killed by signal 9`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    /// Waits up to 5 s for `path` to hold a complete line.
    fn wait_for(path: &Path) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(s) = std::fs::read_to_string(path) {
                if s.ends_with('\n') {
                    return Some(s);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// All cases in one test: every script is written before any is run, so no
    /// concurrently forked child holds one open for writing (ETXTBSY).
    #[test]
    fn runs_the_scripts_keepalived_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, out: &str| {
            let path = dir.path().join(name);
            let target = dir.path().join(out);
            // Write to a temporary name and rename, so a reader never sees half a line.
            let body = format!(
                "#!/bin/sh\necho \"$#${{1:+ }}$*\" > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
                target.display()
            );
            std::fs::write(&path, body).expect("write script");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            path
        };
        let n = Notify {
            any: Some(write("notify.sh", "any")),
            master: Some(write("master.sh", "master")),
            backup: Some(write("backup.sh", "backup")),
            fault: Some(write("fault.sh", "fault")),
        };
        let out = |name: &str| dir.path().join(name);

        notify(&n, "VI_API", State::Master, 150);
        assert_eq!(
            wait_for(&out("any")).as_deref(),
            Some("4 INSTANCE VI_API MASTER 150\n")
        );
        assert_eq!(wait_for(&out("master")).as_deref(), Some("0\n"));

        for (state, file, name, prio) in [
            (State::Backup, "backup", "BACKUP", 90u8),
            (State::Fault, "fault", "FAULT", 0),
        ] {
            std::fs::remove_file(out("any")).expect("rm");
            notify(&n, "VI_API", state, prio);
            assert_eq!(
                wait_for(&out("any")),
                Some(format!("4 INSTANCE VI_API {name} {prio}\n"))
            );
            assert_eq!(wait_for(&out(file)).as_deref(), Some("0\n"));
        }

        // STOP: only the generic script (there is no notify_stop).
        std::fs::remove_file(out("any")).expect("rm");
        for f in ["master", "backup", "fault"] {
            std::fs::remove_file(out(f)).expect("rm");
        }
        notify(&n, "VI_API", State::Init, 100);
        assert_eq!(
            wait_for(&out("any")).as_deref(),
            Some("4 INSTANCE VI_API STOP 100\n")
        );
        std::thread::sleep(Duration::from_millis(100));
        for f in ["master", "backup", "fault"] {
            assert!(!out(f).exists(), "{f} ran on STOP");
        }

        // Only the state script configured; a missing script is logged, not fatal.
        let only_master = Notify {
            master: Some(n.master.clone().expect("master")),
            fault: Some(dir.path().join("missing.sh")),
            ..Notify::default()
        };
        notify(&only_master, "VI_API", State::Master, 150);
        assert_eq!(wait_for(&out("master")).as_deref(), Some("0\n"));
        notify(&only_master, "VI_API", State::Fault, 0);
        notify(&Notify::default(), "VI_API", State::Backup, 100);
    }
}
