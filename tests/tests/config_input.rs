//! Bad configuration input through the real binaries (no root needed): `lbd
//! --check-config`, `lbctl --config` and `lbctl import-keepalived` on files that
//! never end, never open, are not text, or name paths the OS refuses. Each must
//! fail at once with the file, the line where there is one, and a reason; none may
//! hang (every run has a watchdog that kills the process it started and fails the
//! test). `-o` files are created owner-only.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lb_tests::lab::binary;

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lb-cfgin-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).expect("write");
        p
    }

    fn fifo(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("cstr");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` (stdin closed); a watchdog thread kills it (by its own pid) and fails
/// the test if it has not exited within `secs`.
fn run(mut cmd: Command, secs: u64) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child this function started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = rx.recv_timeout(Duration::from_secs(5));
            panic!("{cmd:?} did not finish within {secs}s (hung)");
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `lbd --check-config FILE`: must fail (exit 1) within the watchdog; its stderr.
#[track_caller]
fn check_config_fails(file: &Path) -> String {
    let mut cmd = Command::new(binary("lbd"));
    cmd.arg("--check-config").arg(file);
    let out = run(cmd, 30);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "lbd --check-config: {err}");
    err
}

#[test]
fn check_config_of_dev_zero_fails_at_once() {
    let err = check_config_fails(Path::new("/dev/zero"));
    assert!(
        err.contains(
            "/dev/zero: cannot read the configuration: a character device, not a regular file"
        ),
        "{err}"
    );
}

#[test]
fn check_config_of_a_fifo_fails_at_once() {
    let s = Scratch::new("fifo");
    let fifo = s.fifo("lbd.toml");
    let err = check_config_fails(&fifo);
    assert!(
        err.contains(&format!(
            "{}: cannot read the configuration: a FIFO, not a regular file",
            fifo.display()
        )),
        "{err}"
    );
}

#[test]
fn lbctl_with_a_fifo_as_config_does_not_hang() {
    let s = Scratch::new("lbctlfifo");
    let fifo = s.fifo("lbd.toml");
    let mut cmd = Command::new(binary("lbctl"));
    cmd.arg("--config")
        .arg(&fifo)
        .arg("--socket")
        .arg(s.path("none.sock"))
        .arg("health");
    let out = run(cmd, 30);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: cannot read the configuration: a FIFO",
            fifo.display()
        )),
        "{err}"
    );
}

#[test]
fn control_character_is_named_with_its_line() {
    let s = Scratch::new("ctl");
    let file = s.write(
        "lbd.toml",
        "[[interface]]\nname = \"eth0\"\n# a comment with \u{1} in it\n",
    );
    let err = check_config_fails(&file);
    assert!(
        err.contains(&format!(
            "{}:3: control character U+0001 at column 18",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn invalid_utf8_is_named_with_its_line() {
    let s = Scratch::new("utf8");
    let file = s.write(
        "lbd.toml",
        b"[[interface]]\nname = \"eth0\"\n# caf\xe9\n".as_slice(),
    );
    let err = check_config_fails(&file);
    assert!(
        err.contains(&format!(
            "{}:3: cannot read the configuration: not UTF-8 text: byte 0xe9 at column 6",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn limits_the_os_and_kernel_enforce_are_checked() {
    let s = Scratch::new("limits");
    let long = format!("/run/{}/lbd.sock", "d".repeat(100));
    let file = s.write(
        "lbd.toml",
        format!("[global]\ncontrol_socket = \"{long}\"\n\n[[interface]]\nname = \"eth0\"\n"),
    );
    let err = check_config_fails(&file);
    assert!(
        err.contains(&format!(
            "{}:2: global.control_socket: the path is {} bytes: a Unix socket path holds at most 107",
            file.display(),
            long.len()
        )),
        "{err}"
    );
    for (key, value, limit) in [
        ("conn_table_size", "67108865", "1..=67108864"),
        ("max_services", "65537", "1..=65536"),
        ("max_backends", "65536", "1..=65535"),
        ("maglev_table_size", "655379", "maximum 655373"),
    ] {
        let file = s.write(
            "lbd.toml",
            format!("[global]\n{key} = {value}\n\n[[interface]]\nname = \"eth0\"\n"),
        );
        let err = check_config_fails(&file);
        assert!(
            err.contains(&format!("{}:2: global.{key}: ", file.display())) && err.contains(limit),
            "{key}: {err}"
        );
    }
    // At the bounds the file passes.
    let file = s.write(
        "lbd.toml",
        format!(
            "[global]\ncontrol_socket = \"/{}\"\nconn_table_size = 67108864\nmax_services = 65536\n\n[[interface]]\nname = \"eth0\"\n",
            "s".repeat(106)
        ),
    );
    let mut cmd = Command::new(binary("lbd"));
    cmd.arg("--check-config").arg(&file);
    let out = run(cmd, 30);
    assert!(out.status.success(), "{}", stderr(&out));
}

const KEEPALIVED: &str = "vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        10.0.0.100/24
    }
}
";

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn import_keepalived_writes_the_output_owner_only() {
    let s = Scratch::new("import");
    let input = s.write("keepalived.conf", KEEPALIVED);
    let output = s.path("lbd.toml");
    let import = |output: &Path| {
        let mut cmd = Command::new(binary("lbctl"));
        cmd.arg("import-keepalived")
            .arg(&input)
            .arg("-o")
            .arg(output);
        let out = run(cmd, 60);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    import(&output);
    assert_eq!(mode(&output), 0o600);
    let text = std::fs::read_to_string(&output).expect("read");
    assert!(text.contains("auth_pass = \"s3cret\""), "{text}");

    // An existing world-readable file is replaced by an owner-only one.
    std::fs::write(&output, "old").expect("write");
    std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    import(&output);
    assert_eq!(mode(&output), 0o600);
    assert!(std::fs::read_to_string(&output)
        .expect("read")
        .contains("auth_pass"));
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&s.0)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn import_keepalived_refuses_devices_fifos_and_control_characters() {
    let s = Scratch::new("importbad");
    let fifo = s.fifo("keepalived.conf");
    let bad = s.write(
        "ctl.conf",
        "global_defs {\n    router_id lb\u{2}1\n}\n".as_bytes(),
    );
    for (input, expect) in [
        (
            PathBuf::from("/dev/zero"),
            "/dev/zero: cannot read: a character device, not a regular file".to_owned(),
        ),
        (
            fifo.clone(),
            format!(
                "{}: cannot read: a FIFO, not a regular file",
                fifo.display()
            ),
        ),
        (
            bad.clone(),
            format!("{}:2: control character U+0002", bad.display()),
        ),
    ] {
        let mut cmd = Command::new(binary("lbctl"));
        cmd.arg("import-keepalived")
            .arg(&input)
            .arg("-o")
            .arg(s.path("out.toml"));
        let out = run(cmd, 30);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&expect), "{input:?}: {err}");
        assert!(!err.contains("converter bug"), "{err}");
        assert!(!s.path("out.toml").exists());
    }
}
