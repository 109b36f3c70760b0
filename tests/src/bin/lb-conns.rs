//! `lb-conns`: long-lived TCP connections for the e2e labs that exchange data on demand
//! and know which backend they are on (tests/tests/sync_e2e.rs).
//!
//! `lb-conns serve --port P --name NAME` runs on a backend: every line a connection
//! sends is answered with `NAME <line>`, for as long as the connection stays open (no
//! idle timeout). A connection that only opens and closes (a TCP health check) is fine.
//!
//! `lb-conns hold --to VIP:P --first-port F --count N` runs on the client: it opens N
//! connections from local ports F.., exchanges one line on each (so each learns its
//! backend), prints `conn PORT BACKEND` per connection (`conn PORT - broken open
//! REASON` for one that could not) and `ready`. From then on every open connection
//! exchanges a line every `--interval-ms`, checking that the answer comes from the same
//! backend, and a connection that fails (reset, closed, no answer within
//! `--timeout-ms`, another backend answering) is closed and remembered as broken, with
//! the phase it broke in. Commands on stdin, one per line:
//!
//! - `phase NAME`: what happens from now on is phase NAME (the first is `open`);
//! - `check NAME`: every open connection exchanges a line now (started after the
//!   command); then a report: per connection `conn PORT BACKEND ok EXCHANGES` or
//!   `conn PORT BACKEND broken PHASE REASON...`, then `end NAME`;
//! - `quit` (or end of input): exit.
//!
//! Every wait is bounded: a check reports at the latest after `--timeout-ms` plus 5 s
//! (a connection still waiting then is reported `broken PHASE stalled ...`).

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader},
    net::{tcp::OwnedReadHalf, tcp::OwnedWriteHalf, TcpSocket},
    sync::watch,
};

#[derive(Parser)]
#[command(about = "Long-lived TCP connections that know their backend (e2e labs)")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// On a backend: answer every line with "NAME <line>".
    Serve {
        /// TCP port to listen on (all addresses, so also the VIP on lo).
        #[arg(long)]
        port: u16,
        /// This backend's name.
        #[arg(long)]
        name: String,
    },
    /// On the client: hold connections and exchange lines on them.
    Hold {
        /// Destination (the VIP and service port).
        #[arg(long)]
        to: SocketAddr,
        /// First local port; connection i uses first_port + i.
        #[arg(long)]
        first_port: u16,
        /// Number of connections.
        #[arg(long)]
        count: u16,
        /// Time between two exchanges on one connection.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        /// How long an exchange may wait for its answer (TCP retransmits meanwhile).
        #[arg(long, default_value_t = 8000)]
        timeout_ms: u64,
    },
}

fn main() -> Result<()> {
    match Args::parse().command {
        Cmd::Serve { port, name } => serve(port, &name),
        Cmd::Hold {
            to,
            first_port,
            count,
            interval_ms,
            timeout_ms,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(hold(
                to,
                first_port,
                count,
                Duration::from_millis(interval_ms),
                Duration::from_millis(timeout_ms),
            )),
    }
}

fn serve(port: u16, name: &str) -> Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port)).with_context(|| format!("bind :{port}"))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let name = name.to_string();
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let Ok(mut out) = stream.try_clone() else {
                return;
            };
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if writeln!(out, "{name} {line}").is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

/// What became of one connection.
enum Status {
    Open,
    Broken { phase: String, reason: String },
}

/// One held connection, shared between its task and the reporter.
struct Conn {
    port: u16,
    backend: String,
    status: Mutex<Status>,
    exchanges: AtomicU64,
    /// The highest check number an exchange started after (and completed) answered.
    checked: AtomicU64,
}

struct Line {
    reader: AsyncBufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    seq: u64,
}

impl Line {
    /// Send the next sequence number; return who answered.
    async fn exchange(&mut self, timeout: Duration) -> std::result::Result<String, String> {
        self.seq += 1;
        let seq = self.seq;
        let round = async {
            self.writer
                .write_all(format!("{seq}\n").as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut answer = String::new();
            let n = self
                .reader
                .read_line(&mut answer)
                .await
                .map_err(|e| format!("receive: {e}"))?;
            if n == 0 {
                return Err("closed by the peer".to_string());
            }
            let answer = answer.trim_end();
            match answer.rsplit_once(' ') {
                Some((who, s)) if s == seq.to_string() => Ok(who.to_string()),
                _ => Err(format!("unexpected answer {answer:?} to {seq}")),
            }
        };
        tokio::time::timeout(timeout, round)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }
}

async fn open(
    to: SocketAddr,
    port: u16,
    timeout: Duration,
) -> std::result::Result<(Line, String), String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| format!("reuseaddr: {e}"))?;
    socket
        .bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .map_err(|e| format!("bind :{port}: {e}"))?;
    let stream = tokio::time::timeout(timeout, socket.connect(to))
        .await
        .map_err(|_| format!("connect: no answer within {timeout:?}"))?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut line = Line {
        reader: AsyncBufReader::new(r),
        writer: w,
        seq: 0,
    };
    let backend = line.exchange(timeout).await?;
    Ok((line, backend))
}

async fn keep(
    conn: Arc<Conn>,
    mut line: Line,
    interval: Duration,
    timeout: Duration,
    phase: Arc<Mutex<String>>,
    mut checks: watch::Receiver<u64>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = checks.changed() => if changed.is_err() { return },
        }
        // A check asked before this exchange starts is answered by it.
        let check = *checks.borrow_and_update();
        let failure = match line.exchange(timeout).await {
            Ok(who) if who == conn.backend => None,
            Ok(who) => Some(format!("answered by {who}")),
            Err(e) => Some(e),
        };
        match failure {
            None => {
                conn.exchanges.fetch_add(1, Ordering::Relaxed);
                conn.checked.fetch_max(check, Ordering::Relaxed);
            }
            Some(reason) => {
                let phase = phase.lock().expect("phase").clone();
                *conn.status.lock().expect("status") = Status::Broken { phase, reason };
                return;
            }
        }
    }
}

/// Print the state of every connection after check number `check` (named `name`):
/// one that is open but completed no exchange for that check is reported stalled.
fn report(conns: &[Arc<Conn>], check: u64, name: &str, current_phase: &str) {
    let mut out = std::io::stdout().lock();
    for c in conns {
        let status = c.status.lock().expect("status");
        let _ = match &*status {
            Status::Broken { phase, reason } => {
                writeln!(out, "conn {} {} broken {phase} {reason}", c.port, c.backend)
            }
            Status::Open if c.checked.load(Ordering::Relaxed) < check => writeln!(
                out,
                "conn {} {} broken {current_phase} stalled: no exchange completed for check {name}",
                c.port, c.backend
            ),
            Status::Open => writeln!(
                out,
                "conn {} {} ok {}",
                c.port,
                c.backend,
                c.exchanges.load(Ordering::Relaxed)
            ),
        };
    }
    let _ = writeln!(out, "end {name}");
    let _ = out.flush();
}

async fn hold(
    to: SocketAddr,
    first_port: u16,
    count: u16,
    interval: Duration,
    timeout: Duration,
) -> Result<()> {
    let phase = Arc::new(Mutex::new("open".to_string()));
    let (check_tx, check_rx) = watch::channel(0u64);
    let mut conns = Vec::new();
    for i in 0..count {
        let port = first_port + i;
        match open(to, port, timeout).await {
            Ok((line, backend)) => {
                println!("conn {port} {backend}");
                let conn = Arc::new(Conn {
                    port,
                    backend,
                    status: Mutex::new(Status::Open),
                    exchanges: AtomicU64::new(1),
                    checked: AtomicU64::new(0),
                });
                tokio::spawn(keep(
                    conn.clone(),
                    line,
                    interval,
                    timeout,
                    phase.clone(),
                    check_rx.clone(),
                ));
                conns.push(conn);
            }
            Err(e) => println!("conn {port} - broken open {e}"),
        }
    }
    println!("ready");
    let mut stdin = AsyncBufReader::new(tokio::io::stdin()).lines();
    let mut checks = 0u64;
    while let Some(command) = stdin.next_line().await? {
        let (verb, arg) = command
            .trim()
            .split_once(' ')
            .unwrap_or((command.trim(), ""));
        match verb {
            "phase" => *phase.lock().expect("phase") = arg.to_string(),
            "check" => {
                checks += 1;
                check_tx.send_replace(checks);
                let deadline = Instant::now() + timeout + Duration::from_secs(5);
                let done = |c: &Arc<Conn>| {
                    matches!(*c.status.lock().expect("status"), Status::Broken { .. })
                        || c.checked.load(Ordering::Relaxed) >= checks
                };
                while Instant::now() < deadline && !conns.iter().all(done) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let current = phase.lock().expect("phase").clone();
                report(&conns, checks, arg, &current);
            }
            "quit" => break,
            "" => {}
            other => eprintln!("lb-conns: unknown command {other:?}"),
        }
    }
    Ok(())
}
