//! The side tasks lbd's shell starts: MAC resolutions and VRRP track scripts. Each
//! only reports its result to the loop; the node decides what it means.

use std::{collections::HashSet, net::IpAddr, path::PathBuf, time::Duration};

use lb_config::Config;
use lb_dataplane::reconcile::Link;
use lb_netlink::neigh::{self, NetlinkHandle};
use tokio::sync::mpsc;

/// How long one MAC resolution waits for the kernel's answer.
const RESOLVE_WAIT: Duration = Duration::from_secs(3);

/// Resolve `ip`'s MAC (and egress link) after `delay`, reporting to the loop.
pub(super) fn resolve(
    netlink: NetlinkHandle,
    ip: IpAddr,
    delay: Duration,
    tx: mpsc::Sender<(IpAddr, Result<Link, String>)>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = async {
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
        }
        .await;
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
                        Err(_) => false,
                    };
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
