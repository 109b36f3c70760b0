//! Drives the `lb-conns` helper (tests/src/bin/lb-conns.rs) from a lab's client:
//! long-lived connections through the VIP, and which of them broke, per checkpoint.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};

use crate::lab::{Lab, VIP};

/// One connection at a checkpoint.
#[derive(Debug)]
pub struct ConnState {
    /// The client's local port.
    pub port: u16,
    /// The backend that answers it ("b1".."b3").
    pub backend: String,
    /// The phase it broke in, and why.
    pub broken: Option<(String, String)>,
}

/// `lb-conns hold` in the client namespace; killed (by its pid) on drop.
pub struct Holder {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Holder {
    /// Open `count` connections to VIP:`port` from local ports `first_port`.. with the
    /// `lb_conns` binary; each exchanges a line every 200 ms from then on. Returns the
    /// holder and each connection's backend.
    pub fn start(
        lab: &Lab,
        lb_conns: &Path,
        port: u16,
        first_port: u16,
        count: u16,
    ) -> Result<(Holder, Vec<ConnState>)> {
        Holder::start_in(
            lab.command_in("client", lb_conns),
            &format!("{VIP}:{port}"),
            first_port,
            count,
        )
    }

    /// The same from any namespace: `client` is the `lb_conns` binary as a command in
    /// the client's namespace, `to` the VIP:port.
    pub fn start_in(
        mut client: std::process::Command,
        to: &str,
        first_port: u16,
        count: u16,
    ) -> Result<(Holder, Vec<ConnState>)> {
        let mut child = client
            .args(["hold", "--to", to])
            .args(["--first-port", &first_port.to_string()])
            .args(["--count", &count.to_string()])
            .args(["--interval-ms", "200", "--timeout-ms", "8000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start lb-conns hold")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("lb-conns hold without pipes");
        };
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut holder = Holder {
            child,
            stdin,
            lines,
        };
        let opened = holder.until("ready")?;
        Ok((holder, opened))
    }

    /// Read `conn ...` lines until `last`; at most 30 s in all.
    fn until(&mut self, last: &str) -> Result<Vec<ConnState>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conns = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|e| anyhow!("lb-conns hold: no {last:?} within 30 s ({e})"))?;
            if line == last {
                return Ok(conns);
            }
            let fields: Vec<&str> = line.splitn(6, ' ').collect();
            let port = |p: &str| {
                p.parse::<u16>()
                    .with_context(|| format!("lb-conns said {line:?}"))
            };
            match fields[..] {
                ["conn", p, backend] | ["conn", p, backend, "ok", _] => conns.push(ConnState {
                    port: port(p)?,
                    backend: backend.into(),
                    broken: None,
                }),
                ["conn", p, backend, "broken", phase, ref reason @ ..] => conns.push(ConnState {
                    port: port(p)?,
                    backend: backend.into(),
                    broken: Some((phase.into(), reason.join(" "))),
                }),
                _ => bail!("lb-conns hold said {line:?}"),
            }
        }
    }

    /// Send `command` (a line) to the helper.
    pub fn send(&mut self, command: &str) -> Result<()> {
        writeln!(self.stdin, "{command}").context("command lb-conns hold")?;
        self.stdin.flush().context("flush")
    }

    /// From now on, a connection that breaks is reported in phase `name`.
    pub fn phase(&mut self, name: &str) -> Result<()> {
        self.send(&format!("phase {name}"))
    }

    /// Every open connection exchanges a line now; the state of all of them.
    pub fn check(&mut self, name: &str) -> Result<Vec<ConnState>> {
        self.send(&format!("check {name}"))?;
        self.until(&format!("end {name}"))
    }
}

/// How many of `conns` are not broken.
pub fn kept(conns: &[ConnState]) -> usize {
    conns.iter().filter(|c| c.broken.is_none()).count()
}

/// Per backend: how many connections, how many broken.
pub fn tally(conns: &[ConnState]) -> String {
    let mut per: Vec<String> = Vec::new();
    for b in ["b1", "b2", "b3"] {
        let on: Vec<_> = conns.iter().filter(|c| c.backend == b).collect();
        if !on.is_empty() {
            let broken = on.iter().filter(|c| c.broken.is_some()).count();
            per.push(format!("{b}: {broken} of {} broken", on.len()));
        }
    }
    per.join(", ")
}
