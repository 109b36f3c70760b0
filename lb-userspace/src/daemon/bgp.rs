//! The BGP announcer's I/O (`[bgp]`): a task that makes the speaker hold the VIPs the
//! node core decided (`node::announce`), retries every failure, polls the speaker's
//! sessions, and keeps the status `lbctl bgp` and the metrics read. Forwarding never
//! waits on it: a dead or refusing speaker is logged, counted and retried.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lb_api::view::{BgpSessionView, BgpView, BgpVipView};
use lb_bgp::speaker::{Driver, Speaker};
use lb_config::{BgpConfig, Config};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::node::announce::VipDecision;

/// Live status, written by the task, read by observers.
pub type BgpStatus = Arc<Mutex<BgpView>>;

/// How often the speaker's sessions are read (also the liveness check).
const POLL: Duration = Duration::from_secs(2);
/// How soon a failed request is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How often a command speaker is told everything again (GoBGP forgets its routes
/// when it restarts; FRR's `network` survives, and re-adding is harmless).
const REASSERT: Duration = Duration::from_secs(30);

/// The decisions to carry out, numbered so the shell can wait for one to be applied.
type Want = (u64, Vec<VipDecision>);

/// The running task's handle.
pub struct Handle {
    /// What observers read.
    pub status: BgpStatus,
    want: watch::Sender<Want>,
    applied: watch::Receiver<u64>,
}

impl Handle {
    /// Hand the node's latest decisions to the task.
    pub fn set(&self, decisions: Vec<VipDecision>) {
        self.want.send_modify(|(generation, want)| {
            *generation += 1;
            *want = decisions;
        });
    }

    /// Show the node as draining.
    pub fn mark_draining(&self) {
        lock(&self.status).draining = true;
    }

    /// Withdraw every VIP and wait (at most `timeout`) until the speaker was told.
    pub async fn withdraw_all(&mut self, reason: &str, timeout: Duration) -> bool {
        let decisions: Vec<VipDecision> = self
            .want
            .borrow()
            .1
            .iter()
            .map(|d| VipDecision {
                vip: d.vip,
                announce: false,
                reason: reason.to_owned(),
            })
            .collect();
        self.set(decisions);
        let target = self.want.borrow().0;
        tokio::time::timeout(timeout, self.applied.wait_for(|g| *g >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Start the announcer when `[bgp]` is configured.
pub fn spawn(config: &Config) -> Option<Handle> {
    let bgp = config.bgp.as_ref()?;
    let driver = driver(bgp);
    let speaker = Speaker::new(driver);
    let status: BgpStatus = Arc::new(Mutex::new(BgpView {
        enabled: true,
        speaker: speaker.describe(),
        ..BgpView::default()
    }));
    let (want_tx, want_rx) = watch::channel((0, Vec::new()));
    let (applied_tx, applied_rx) = watch::channel(0);
    tokio::spawn(run(speaker, want_rx, applied_tx, status.clone()));
    Some(Handle {
        status,
        want: want_tx,
        applied: applied_rx,
    })
}

fn driver(bgp: &BgpConfig) -> Driver {
    match &bgp.speaker {
        lb_config::Speaker::Bird {
            socket,
            routes_file,
        } => Driver::Bird {
            socket: socket.clone(),
            routes_file: routes_file.clone(),
        },
        lb_config::Speaker::Command {
            announce,
            withdraw,
            status,
        } => Driver::Command {
            announce: announce.clone(),
            withdraw: withdraw.clone(),
            status: status.clone(),
        },
    }
}

async fn run(
    mut speaker: Speaker,
    mut want_rx: watch::Receiver<Want>,
    applied_tx: watch::Sender<u64>,
    status: BgpStatus,
) {
    // Every VIP ever decided on: a command speaker's first apply withdraws those not
    // wanted, in case a previous lbd left them announced.
    let mut all: BTreeSet<IpAddr> = BTreeSet::new();
    let mut in_sync = false;
    let mut reachable: Option<bool> = None;
    let mut last_error: Option<String> = None;
    let mut next_poll = Instant::now();
    let mut next_reassert = Instant::now() + REASSERT;
    loop {
        let wake = if in_sync {
            next_poll
        } else {
            next_poll.min(Instant::now() + RETRY)
        };
        tokio::select! {
            changed = want_rx.changed() => {
                if changed.is_err() {
                    return; // lbd is exiting
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        let (generation, decisions) = want_rx.borrow_and_update().clone();
        let want: BTreeSet<IpAddr> = decisions
            .iter()
            .filter(|d| d.announce)
            .map(|d| d.vip)
            .collect();
        all.extend(decisions.iter().map(|d| d.vip));
        if speaker.needs_reassert() && Instant::now() >= next_reassert {
            speaker.forget();
            in_sync = false;
            next_reassert = Instant::now() + REASSERT;
        }
        if !in_sync || speaker.held() != want {
            let before = speaker.held();
            match speaker.apply(&want, &all).await {
                Ok(()) => {
                    if last_error.take().is_some() {
                        tracing::info!(speaker = %speaker.describe(), "BGP speaker accepts requests again");
                    }
                    if before != want {
                        let mut s = lock(&status);
                        s.changes += before.symmetric_difference(&want).count() as u64;
                    }
                    in_sync = true;
                }
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(&message) {
                        tracing::warn!(error = %message, "BGP speaker request failed; forwarding is unaffected; retrying every {RETRY:?}");
                    }
                    last_error = Some(message);
                    in_sync = false;
                    lock(&status).errors += 1;
                }
            }
        }
        // The speaker holds what this generation wants (also when nothing had to
        // change): a waiting `withdraw_all` may go on.
        if in_sync {
            applied_tx.send_replace(generation);
        }
        let mut sessions = None;
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + POLL;
            let result = speaker.sessions().await;
            let up = result.is_ok();
            if reachable != Some(up) {
                match &result {
                    Ok(_) => tracing::info!(speaker = %speaker.describe(), "BGP speaker reachable"),
                    Err(e) => {
                        tracing::warn!(error = %e, "BGP speaker unreachable; forwarding is unaffected")
                    }
                }
                // A speaker that came back is told again (BIRD re-read the file at
                // its start; a command speaker may have lost everything).
                if reachable == Some(false) && up {
                    speaker.forget();
                    in_sync = false;
                }
                reachable = Some(up);
            }
            match result {
                Ok(list) => sessions = Some(list),
                Err(e) => {
                    if last_error.is_none() {
                        last_error = Some(e.to_string());
                    }
                    sessions = Some(Vec::new());
                }
            }
        }
        let held = speaker.held();
        let mut s = lock(&status);
        s.speaker_ok = in_sync && reachable != Some(false);
        s.last_error = last_error.clone();
        s.vips = decisions
            .iter()
            .map(|d| BgpVipView {
                vip: d.vip,
                wanted: d.announce,
                announced: held.contains(&d.vip),
                reason: d.reason.clone(),
            })
            .collect();
        if let Some(list) = sessions {
            s.sessions = list
                .into_iter()
                .map(|x| BgpSessionView {
                    name: x.name,
                    state: x.state,
                    info: x.info,
                })
                .collect();
        }
    }
}

fn lock(status: &BgpStatus) -> std::sync::MutexGuard<'_, BgpView> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}
