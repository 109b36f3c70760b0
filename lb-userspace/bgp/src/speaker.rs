//! One speaker over both drivers: make it hold exactly a set of VIPs ([`Speaker::apply`]),
//! and read its sessions ([`Speaker::sessions`]). Idempotent: the caller applies the
//! wanted set again after any failure, and periodically.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::{bird, command, BgpError, Session};

/// How lbd reaches the speaker (`[bgp] speaker` in lbd's config, which uses this type).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Driver {
    /// BIRD 2 (the tested default): lbd writes the announced routes as `protocol
    /// static` blocks (`lb_vips4`, `lb_vips6`) into `routes_file`, which bird.conf
    /// includes at top level, and asks BIRD to `configure` over its control socket.
    Bird {
        /// BIRD's control socket (`birdc -s`; default `/run/bird/bird.ctl`).
        socket: PathBuf,
        /// The file lbd owns (default `/var/lib/lbd/bird-vips.conf`).
        routes_file: PathBuf,
    },
    /// Any other speaker (FRR, GoBGP, ...): lbd runs `announce` or `withdraw` once per
    /// VIP change, with `{prefix}` (e.g. `10.0.0.100/32`) and `{family}` (`ipv4` or
    /// `ipv6`) replaced in each argument; `status`, when set, is run for `lbctl bgp`.
    Command {
        /// `announce_command`.
        announce: Vec<String>,
        /// `withdraw_command`.
        withdraw: Vec<String>,
        /// `status_command`.
        status: Option<Vec<String>>,
    },
}

/// The speaker and what it was last told.
#[derive(Debug)]
pub struct Speaker {
    driver: Driver,
    /// VIPs the speaker holds, as far as lbd knows: what the last successful requests
    /// left it with. `None` until the first apply (unknown: a previous lbd may have
    /// left routes behind).
    held: Option<BTreeSet<IpAddr>>,
}

impl Speaker {
    /// A speaker reached through `driver`.
    pub fn new(driver: Driver) -> Self {
        Speaker { driver, held: None }
    }

    /// The driver, in words (for `lbctl bgp` and logs).
    pub fn describe(&self) -> String {
        match &self.driver {
            Driver::Bird { socket, .. } => format!("bird ({})", socket.display()),
            Driver::Command { announce, .. } => {
                format!("command ({})", announce.first().map_or("", String::as_str))
            }
        }
    }

    /// What the speaker holds as far as lbd knows (empty before the first apply).
    pub fn held(&self) -> BTreeSet<IpAddr> {
        self.held.clone().unwrap_or_default()
    }

    /// Forget what the speaker holds, so the next apply re-sends everything (a
    /// command speaker such as GoBGP forgets its routes when it restarts).
    pub fn forget(&mut self) {
        self.held = None;
    }

    /// Make the speaker hold exactly `want`, out of `all` (every VIP this config may
    /// announce: before the first success, those not wanted are withdrawn in case a
    /// previous run left them).
    pub async fn apply(
        &mut self,
        want: &BTreeSet<IpAddr>,
        all: &BTreeSet<IpAddr>,
    ) -> Result<(), BgpError> {
        match &self.driver {
            Driver::Bird {
                socket,
                routes_file,
            } => {
                bird::write_file(routes_file, &bird::routes_file(want))?;
                bird::request(socket, "configure").await?;
                self.held = Some(want.clone());
                Ok(())
            }
            Driver::Command {
                announce, withdraw, ..
            } => {
                let first = self.held.is_none();
                let mut held = self.held.clone().unwrap_or_default();
                let stale: Vec<IpAddr> = if first {
                    all.difference(want).copied().collect()
                } else {
                    held.difference(want).copied().collect()
                };
                for vip in stale {
                    match command::run(&command::expand(withdraw, vip)).await {
                        Ok(_) => {}
                        // A route a previous run may not have left: not an error.
                        Err(e) if first => {
                            tracing::debug!(%vip, error = %e, "initial withdrawal failed (the speaker may not hold it)")
                        }
                        Err(e) => {
                            self.held = Some(held);
                            return Err(e);
                        }
                    }
                    held.remove(&vip);
                }
                for vip in want.difference(&held).copied().collect::<Vec<_>>() {
                    if let Err(e) = command::run(&command::expand(announce, vip)).await {
                        self.held = Some(held);
                        return Err(e);
                    }
                    held.insert(vip);
                }
                self.held = Some(held);
                Ok(())
            }
        }
    }

    /// The speaker's BGP sessions: BIRD's `show protocols` (BGP ones); a command
    /// speaker's `status_command` output, a line each (none without one). Also the
    /// liveness check: an error means the speaker is not reachable.
    pub async fn sessions(&self) -> Result<Vec<Session>, BgpError> {
        match &self.driver {
            Driver::Bird { socket, .. } => {
                let reply = bird::request(socket, "show protocols").await?;
                Ok(bird::sessions(&reply))
            }
            Driver::Command { status: None, .. } => Ok(Vec::new()),
            Driver::Command {
                status: Some(argv), ..
            } => {
                let out = command::run(argv).await?;
                Ok(out
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .take(100)
                    .map(|l| Session {
                        name: String::new(),
                        state: String::new(),
                        info: l.trim().to_owned(),
                    })
                    .collect())
            }
        }
    }

    /// Whether the driver keeps its state in the speaker only (so a restarted speaker
    /// must be told again): true for commands; BIRD re-reads the routes file.
    pub fn needs_reassert(&self) -> bool {
        matches!(self.driver, Driver::Command { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// A command speaker whose "routes" are files in a directory.
    fn file_speaker(dir: &std::path::Path) -> Speaker {
        let d = dir.display();
        Speaker::new(Driver::Command {
            announce: vec![
                "sh".into(),
                "-c".into(),
                format!("echo {{family}} > '{d}/'$(echo {{prefix}} | tr / _)"),
            ],
            withdraw: vec![
                "sh".into(),
                "-c".into(),
                format!("rm '{d}/'$(echo {{prefix}} | tr / _)"),
            ],
            status: Some(vec!["ls".into(), d.to_string()]),
        })
    }

    #[tokio::test]
    async fn a_command_speaker_gets_the_differences() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = file_speaker(dir.path());
        let all = ips(&["10.0.0.1", "10.0.0.2", "2001:db8::1"]);
        // First apply: the not-wanted are withdrawn though nothing held them.
        s.apply(&ips(&["10.0.0.1", "2001:db8::1"]), &all)
            .await
            .unwrap();
        let names = |d: &std::path::Path| -> BTreeSet<String> {
            std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        };
        assert_eq!(
            names(dir.path()),
            ["10.0.0.1_32", "2001:db8::1_128"].map(String::from).into()
        );
        s.apply(&ips(&["10.0.0.2"]), &all).await.unwrap();
        assert_eq!(names(dir.path()), ["10.0.0.2_32"].map(String::from).into());
        assert_eq!(s.held(), ips(&["10.0.0.2"]));
        let sessions = s.sessions().await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].info, "10.0.0.2_32");
        // A withdrawal that fails after the first apply is an error, and retried.
        std::fs::remove_file(dir.path().join("10.0.0.2_32")).unwrap();
        assert!(s.apply(&BTreeSet::new(), &all).await.is_err());
        assert_eq!(s.held(), ips(&["10.0.0.2"]));
    }
}
