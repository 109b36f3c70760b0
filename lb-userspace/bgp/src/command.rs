//! Any speaker through commands: `announce_command` / `withdraw_command` run once per
//! VIP with `{prefix}` and `{family}` replaced, `status_command` for `lbctl bgp`.
//! For example GoBGP: `["gobgp", "global", "rib", "-a", "{family}", "add", "{prefix}"]`;
//! FRR: `["vtysh", "-c", "configure terminal", "-c", "router bgp 65100", "-c",
//! "address-family {family} unicast", "-c", "network {prefix}"]`.

use std::net::IpAddr;
use std::process::Stdio;

use tokio::io::AsyncReadExt;

use crate::{BgpError, REQUEST_TIMEOUT};

/// Most bytes of a command's output kept (for errors and `lbctl bgp`).
const MAX_OUTPUT: usize = 16 * 1024;

/// `argv` with `{prefix}` and `{family}` replaced for `vip`.
pub fn expand(argv: &[String], vip: IpAddr) -> Vec<String> {
    let (prefix, family) = match vip {
        IpAddr::V4(v) => (format!("{v}/32"), "ipv4"),
        IpAddr::V6(v) => (format!("{v}/128"), "ipv6"),
    };
    argv.iter()
        .map(|a| a.replace("{prefix}", &prefix).replace("{family}", family))
        .collect()
}

/// Run `argv` (no shell), at most [`REQUEST_TIMEOUT`]; its stdout when it exits 0.
pub async fn run(argv: &[String]) -> Result<String, BgpError> {
    let line = argv.join(" ");
    let fail = |message: String| BgpError::Command {
        command: line.clone(),
        message,
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(fail("empty command".into()));
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run: {e}")))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        // Both pipes at once: a command that fills one while lbd reads the other
        // would stall until the timeout.
        let (out, err) = tokio::join!(read_some(stdout.as_mut()), read_some(stderr.as_mut()));
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| fail(format!("no exit within {REQUEST_TIMEOUT:?}")))?;
    let status = status.map_err(|e| fail(format!("wait: {e}")))?;
    let out = String::from_utf8_lossy(&out).into_owned();
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        return Err(fail(format!(
            "{status}: {}",
            err.trim()
                .lines()
                .chain(out.trim().lines())
                .take(3)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(out)
}

/// At most [`MAX_OUTPUT`] bytes of a pipe (nothing without one).
async fn read_some(pipe: Option<&mut (impl tokio::io::AsyncRead + Unpin)>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = p.take(MAX_OUTPUT as u64).read_to_end(&mut buf).await;
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_family() {
        let argv: Vec<String> = [
            "gobgp", "global", "rib", "-a", "{family}", "add", "{prefix}",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            expand(&argv, "10.0.0.1".parse().unwrap())[4..],
            ["ipv4", "add", "10.0.0.1/32"]
        );
        assert_eq!(
            expand(&argv, "2001:db8::1".parse().unwrap())[4..],
            ["ipv6", "add", "2001:db8::1/128"]
        );
    }

    #[tokio::test]
    async fn a_failing_command_says_why() {
        let ok = run(&["sh".into(), "-c".into(), "echo hi".into()])
            .await
            .unwrap();
        assert_eq!(ok, "hi\n");
        let e = run(&["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("exit status: 3") && e.contains("nope"), "{e}");
        let e = run(&["/nonexistent/speaker".into()])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot run"), "{e}");
    }
}
