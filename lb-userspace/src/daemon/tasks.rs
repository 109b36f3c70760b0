//! The side tasks lbd's shell starts: MAC resolutions, VRRP track scripts and the
//! config reader for reloads. Each only reports its result to the loop; the node
//! decides what it means.

use std::{collections::HashSet, net::IpAddr, path::PathBuf, time::Duration};

use lb_api::control::Response;
use lb_config::{self as config, Config};
use lb_dataplane::reconcile::Link;
use lb_netlink::neigh::{self, NetlinkHandle};
use tokio::sync::{mpsc, oneshot};

/// How long one MAC resolution waits for the kernel's answer.
const RESOLVE_WAIT: Duration = Duration::from_secs(3);
/// The whole resolution (route, neighbour, link lookups and the wait) gives up after
/// this: a netlink reply lost to a socket overrun must not leave it pending forever.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(10);
/// Resolutions in flight at once: thousands of backends resolved together would
/// overrun the netlink socket's receive buffer and lose replies.
const RESOLVES_AT_ONCE: usize = 64;

/// The permits for [`RESOLVES_AT_ONCE`].
fn resolve_permits() -> std::sync::Arc<tokio::sync::Semaphore> {
    static PERMITS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    PERMITS
        .get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(RESOLVES_AT_ONCE)))
        .clone()
}

/// Resolve `ip`'s MAC (and egress link) after `delay`, reporting to the loop (an
/// error, a retry for the node, after [`RESOLVE_DEADLINE`] at the latest).
pub(super) fn resolve(
    netlink: NetlinkHandle,
    ip: IpAddr,
    delay: Duration,
    tx: mpsc::Sender<(IpAddr, Result<Link, String>)>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let Ok(_permit) = resolve_permits().acquire_owned().await else {
            return;
        };
        let result = tokio::time::timeout(RESOLVE_DEADLINE, async {
            let n = match netlink.resolve(ip, RESOLVE_WAIT).await {
                Ok(n) => n,
                // The backend is this host (an API server on the LB node): packets
                // for it go to the local stack.
                Err(neigh::NeighError::LocalAddress { .. }) => {
                    return Ok(Link {
                        mac: [0; 6],
                        ifindex: lb_common::maps::IFINDEX_LOCAL,
                        src_mac: [0; 6],
                    })
                }
                Err(e) => return Err(e.to_string()),
            };
            let mac = n.mac.ok_or_else(|| "no MAC".to_string())?;
            let link = netlink.link(n.ifindex).await.map_err(|e| e.to_string())?;
            Ok(Link {
                mac,
                ifindex: n.ifindex,
                src_mac: link.mac,
            })
        })
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer from netlink within {RESOLVE_DEADLINE:?}"
            ))
        });
        let _ = tx.send((ip, result)).await;
    });
}

/// Run every VRRP track script (each distinct script once) at its interval, with its
/// timeout, and report its rise/fall-filtered result to the main loop.
pub(super) fn spawn_script_tracks(config: &Config, tx: mpsc::Sender<(PathBuf, bool)>) {
    let mut seen = HashSet::new();
    for v in &config.vrrp {
        for t in &v.track {
            let Some(mut track) = crate::node::track::ScriptTrack::from_track(t) else {
                continue;
            };
            if !seen.insert(track.script.clone()) {
                continue;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                // Runs that could not even start here (out of descriptors, processes,
                // memory) in a row: not failures of the tracked thing, so they change
                // nothing; logged once per streak.
                let mut local = 0u64;
                loop {
                    let mut cmd = tokio::process::Command::new(&track.script);
                    cmd.kill_on_drop(true)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    let ok = match cmd.spawn() {
                        Ok(mut child) => {
                            matches!(tokio::time::timeout(track.timeout, child.wait()).await, Ok(Ok(status)) if status.success())
                        }
                        Err(e) if lb_health::probe::is_local(&e) => {
                            if local == 0 {
                                tracing::warn!(script = %track.script.display(), error = %e,
                                    "track script could not be started on this host; its state is kept, not counted as a failure (logged once until it runs again)");
                            }
                            local += 1;
                            tokio::time::sleep(track.interval).await;
                            continue;
                        }
                        Err(_) => false,
                    };
                    if local > 0 {
                        tracing::info!(script = %track.script.display(), skipped = local, "track script runs again");
                        local = 0;
                    }
                    if let Some(result) = track.observe(ok) {
                        if tx.send((track.script.clone(), result)).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(track.interval).await;
                }
            });
        }
    }
}

/// Where a reload's outcome goes: `lbctl reload`'s answer, or nowhere (SIGHUP).
pub(super) type ReloadReply = Option<oneshot::Sender<Response>>;

/// Reloads whose file read may wait behind a slow one; more are refused at once.
pub(super) const RELOADS_QUEUED: usize = 4;

/// Reads the config file for each reload request, in order, off the main loop (a
/// file on a hung mount must not stop lbd answering), and hands the result back.
/// `config::load` never blocks on a FIFO and reads at most a bounded regular file.
pub(super) fn spawn_config_reader(
    path: PathBuf,
    mut requests: mpsc::Receiver<ReloadReply>,
    loaded: mpsc::Sender<(Result<Config, config::ConfigError>, ReloadReply)>,
) {
    tokio::spawn(async move {
        while let Some(reply) = requests.recv().await {
            let p = path.clone();
            let result = tokio::task::spawn_blocking(move || config::load(&p))
                .await
                .unwrap_or_else(|e| {
                    Err(config::ConfigError {
                        file: path.clone(),
                        line: None,
                        field: String::new(),
                        message: format!("reading the configuration failed: {e}"),
                    })
                });
            if loaded.send((result, reply)).await.is_err() {
                break;
            }
        }
    });
}
